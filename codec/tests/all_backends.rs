//! Every backend the probe finds on this machine, through the same checks: one access unit
//! per frame, decodable at once with the right colours, first frame and forced frames are
//! IDRs with parameter sets, live bitrate changes move frame sizes the right way. Absent
//! hardware is skipped (and printed); software must pass.

mod common;

use std::time::Duration;

use common::*;
use edgedesk_codec::convert::{bgra_to_i420, bgra_to_nv12, i420_rgb_at};
use edgedesk_codec::{
    bitstream, Codec, Decoder, Encoder, EncoderError, EncoderRegistry, EncoderSettings,
    FfmpegBackend, PixelFormat, VideoFrame, VpxBackend,
};

/// A backend of either kind, by its registry name.
#[derive(Clone, Copy)]
enum AnyBackend {
    Ffmpeg(FfmpegBackend),
    Vpx(VpxBackend),
}

impl AnyBackend {
    fn from_name(name: &str) -> AnyBackend {
        FfmpegBackend::from_name(name)
            .map(AnyBackend::Ffmpeg)
            .or_else(|| {
                VpxBackend::ALL
                    .into_iter()
                    .find(|b| b.name() == name)
                    .map(AnyBackend::Vpx)
            })
            .unwrap_or_else(|| panic!("unknown backend {name}"))
    }

    fn name(self) -> &'static str {
        match self {
            AnyBackend::Ffmpeg(b) => b.name(),
            AnyBackend::Vpx(b) => b.name(),
        }
    }

    fn codec(self) -> Codec {
        match self {
            AnyBackend::Ffmpeg(b) => b.codec(),
            AnyBackend::Vpx(b) => b.codec(),
        }
    }

    fn is_hardware(self) -> bool {
        matches!(self, AnyBackend::Ffmpeg(b) if b.is_hardware())
    }

    fn open(self, s: &EncoderSettings) -> Result<Box<dyn Encoder>, EncoderError> {
        Ok(match self {
            AnyBackend::Ffmpeg(b) => Box::new(b.open(s)?),
            AnyBackend::Vpx(b) => Box::new(b.open(s)?),
        })
    }
}

fn input_for(enc: &dyn Encoder, bgra: &VideoFrame) -> VideoFrame {
    let mut out = VideoFrame::new(enc.input_format(), 2, 2);
    match enc.input_format() {
        PixelFormat::Nv12 => bgra_to_nv12(bgra, &mut out).unwrap(),
        _ => bgra_to_i420(bgra, &mut out).unwrap(),
    }
    out
}

fn check_backend(backend: AnyBackend, w: u32, h: u32) {
    let s = EncoderSettings {
        codec: backend.codec(),
        width: w,
        height: h,
        fps: 60,
        bitrate_bps: 6_000_000,
        ..Default::default()
    };
    let mut enc = backend
        .open(&s)
        .unwrap_or_else(|e| panic!("{}: {e}", backend.name()));
    let mut dec = Decoder::new(backend.codec()).unwrap();
    let mut times = Vec::new();
    let mut worst = 0;
    for n in 0..40u64 {
        let force = n == 25;
        let mut input = input_for(enc.as_ref(), &moving_bgra(n, w, h));
        input.sequence = n + 1;
        let au = enc
            .encode(&input, force)
            .unwrap()
            .unwrap_or_else(|| panic!("{}: no access unit for frame {n}", backend.name()));
        times.push(au.encode_time);
        let key = n == 0 || force;
        assert_eq!(au.keyframe, key, "{} frame {n}", backend.name());
        assert_eq!(bitstream::is_decodable_keyframe(s.codec, &au.data), key);
        let pics = dec.decode(&au.data).unwrap();
        assert_eq!(
            pics.len(),
            1,
            "{} frame {n}: decoder held it",
            backend.name()
        );
        for (i, want) in RECTS.iter().enumerate() {
            let (x, y) = rect_centre(i, n, w, h);
            let d = max_diff(i420_rgb_at(&pics[0], x, y).unwrap(), *want);
            worst = worst.max(d);
            assert!(d <= 32, "{} frame {n} rect {i}: off by {d}", backend.name());
        }
    }
    // Bitrate: noise at 2 Mbit/s, then 12 Mbit/s.
    let sizes = |enc: &mut dyn Encoder, from: u64| -> f64 {
        (from..from + 20)
            .map(|n| {
                let mut f = soft_noise_i420(n, w, h);
                if enc.input_format() == PixelFormat::Nv12 {
                    let mut b = VideoFrame::new(PixelFormat::Bgra, w, h);
                    edgedesk_codec::convert::i420_to_bgra(&f, &mut b).unwrap();
                    f = input_for(enc, &b);
                }
                f.sequence = n + 1;
                enc.encode(&f, false).unwrap().unwrap().data.len() as f64
            })
            .sum::<f64>()
            / 20.0
    };
    enc.set_bitrate(2_000_000).unwrap();
    let low = sizes(enc.as_mut(), 100);
    enc.set_bitrate(12_000_000).unwrap();
    let high = sizes(enc.as_mut(), 200);
    assert!(high > low * 2.0, "{}: {low} -> {high}", backend.name());
    times.sort();
    let mean: Duration = times.iter().sum::<Duration>() / times.len() as u32;
    eprintln!(
        "{} {w}x{h}: encode mean {:.2} ms, max {:.2} ms; worst colour error {worst}; \
         2 Mbit/s {low:.0} B/frame, 12 Mbit/s {high:.0} B/frame",
        backend.name(),
        mean.as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[test]
fn every_available_backend_passes_the_same_checks() {
    init_logs();
    let registry = EncoderRegistry::probe();
    let mut ran = Vec::new();
    for info in registry.backends() {
        let backend = AnyBackend::from_name(&info.name);
        if !info.is_available() {
            assert!(
                backend.is_hardware(),
                "software backend {} absent: {:?}",
                info.name,
                info.status
            );
            eprintln!("skip {}: {:?}", info.name, info.status);
            continue;
        }
        for (w, h) in [(640, 360), (1920, 1080)] {
            check_backend(backend, w, h);
        }
        ran.push(info.name.clone());
    }
    for must in ["ffmpeg:libx264", "vpx:vp9"] {
        assert!(ran.iter().any(|n| n == must), "{must} did not run: {ran:?}");
    }
}
