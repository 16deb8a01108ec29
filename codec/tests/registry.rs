//! The registry against the real FFmpeg backends on this machine.

mod common;

use common::*;
use edgedesk_codec::ffmpeg_backend::Capabilities;
use edgedesk_codec::registry::Backend;
use edgedesk_codec::{
    BackendStatus, Codec, Encoder, EncoderError, EncoderPreference, EncoderRegistry,
    EncoderSettings, FfmpegBackend, PixelFormat,
};

fn small(codec: Codec) -> EncoderSettings {
    EncoderSettings {
        codec,
        width: 320,
        height: 240,
        fps: 30,
        bitrate_bps: 500_000,
        ..Default::default()
    }
}

#[test]
fn probe_lists_every_backend_hardware_first() {
    init_logs();
    let reg = EncoderRegistry::probe();
    let names: Vec<&str> = reg.backends().iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ffmpeg:h264_nvenc",
            "ffmpeg:hevc_nvenc",
            "ffmpeg:h264_vaapi",
            "ffmpeg:libx264",
            "ffmpeg:libx265",
            "vpx:vp9",
            "ffmpeg:libvpx",
            "ffmpeg:libvpx-vp9",
            "ffmpeg:libaom-av1"
        ]
    );
    for b in reg.backends() {
        eprintln!("{}: {:?}", b.name, b.status);
        if let BackendStatus::Unavailable { reason } = &b.status {
            assert!(
                !reason.trim().is_empty(),
                "{} absent without a reason",
                b.name
            );
        }
    }
    let x264 = reg
        .backends()
        .into_iter()
        .find(|b| b.name == "ffmpeg:libx264")
        .unwrap();
    assert!(x264.is_available(), "{:?}", x264.status);
    assert!(!x264.capabilities.hardware);
    assert_eq!(x264.capabilities.codecs, vec![Codec::H264]);
    assert_eq!(x264.capabilities.input_format, PixelFormat::I420);
    let nvenc = &reg.backends()[0];
    assert!(nvenc.capabilities.hardware);
    if !nvenc.is_available() {
        // FFmpeg's own reason comes through: "Cannot load libcuda.so.1" without a driver,
        // "OpenEncodeSessionEx failed: unsupported device" on a GPU without NVENC (H100).
        let BackendStatus::Unavailable { reason } = &nvenc.status else {
            unreachable!()
        };
        assert!(
            reason.contains("libcuda") || reason.contains("EncodeSession"),
            "{reason}"
        );
    }
}

#[test]
fn hardware_preference_falls_back_to_software() {
    init_logs();
    let reg = EncoderRegistry::probe();
    let hw_present = reg.available().iter().any(|b| b.capabilities.hardware);
    let mut enc = reg
        .open(&small(Codec::H264), &EncoderPreference::Hardware)
        .unwrap();
    if !hw_present {
        assert_eq!(enc.name(), "ffmpeg:libx264");
    }
    let input = VideoFrameFor::new(enc.as_ref());
    assert!(enc.encode(&input.0, true).unwrap().unwrap().keyframe);

    let sw = reg
        .open(&small(Codec::H264), &EncoderPreference::Software)
        .unwrap();
    assert_eq!(sw.name(), "ffmpeg:libx264");
    let named = reg
        .open(&small(Codec::H264), &"ffmpeg:h264_nvenc".parse().unwrap())
        .unwrap();
    if !hw_present {
        assert_eq!(named.name(), "ffmpeg:libx264");
    }
    let hevc = reg
        .open(&small(Codec::Hevc), &EncoderPreference::Software)
        .unwrap();
    assert_eq!(hevc.name(), "ffmpeg:libx265");
}

/// A zeroed frame in whatever format an encoder takes.
struct VideoFrameFor(edgedesk_codec::VideoFrame);
impl VideoFrameFor {
    fn new(enc: &dyn Encoder) -> Self {
        let s = enc.settings();
        VideoFrameFor(edgedesk_codec::VideoFrame::new(
            enc.input_format(),
            s.width,
            s.height,
        ))
    }
}

#[test]
fn invalid_settings_are_not_retried_elsewhere() {
    let reg = EncoderRegistry::probe_backends(vec![Box::new(FfmpegBackend::Libx264)]);
    for (w, h) in [(0, 0), (100_000, 100_000), (641, 480)] {
        let s = EncoderSettings {
            width: w,
            height: h,
            ..small(Codec::H264)
        };
        assert!(matches!(
            reg.open(&s, &EncoderPreference::Auto),
            Err(EncoderError::InvalidSettings(_))
        ));
    }
    // No H.265 backend in this registry.
    assert!(matches!(
        reg.open(&small(Codec::Hevc), &EncoderPreference::Auto),
        Err(EncoderError::Unavailable { .. })
    ));
}

/// A hardware backend that probes fine but fails to open, to check the fallback path.
struct FlakyHardware;
impl Backend for FlakyHardware {
    fn name(&self) -> &str {
        "test:flaky"
    }
    fn capabilities(&self) -> Capabilities {
        let mut c = FfmpegBackend::H264Nvenc.capabilities();
        c.max_width = 4096;
        c
    }
    fn probe(&self) -> Result<(), EncoderError> {
        Ok(())
    }
    fn open(&self, _: &EncoderSettings) -> Result<Box<dyn Encoder>, EncoderError> {
        Err(EncoderError::Backend {
            backend: "test:flaky".into(),
            reason: "out of sessions".into(),
        })
    }
}

#[test]
fn a_backend_failing_at_open_falls_back() {
    let reg = EncoderRegistry::probe_backends(vec![
        Box::new(FlakyHardware),
        Box::new(FfmpegBackend::Libx264),
    ]);
    assert_eq!(reg.available().len(), 2);
    for pref in [
        EncoderPreference::Auto,
        EncoderPreference::Hardware,
        "test:flaky".parse().unwrap(),
    ] {
        let enc = reg.open(&small(Codec::H264), &pref).unwrap();
        assert_eq!(enc.name(), "ffmpeg:libx264", "{pref}");
    }
}

#[test]
fn preferences_parse() {
    assert_eq!(
        "auto".parse::<EncoderPreference>().unwrap(),
        EncoderPreference::Auto
    );
    assert_eq!(
        "Hardware".parse::<EncoderPreference>().unwrap(),
        EncoderPreference::Hardware
    );
    assert_eq!(
        "software".parse::<EncoderPreference>().unwrap(),
        EncoderPreference::Software
    );
    assert_eq!(
        "ffmpeg:libx264".parse::<EncoderPreference>().unwrap(),
        EncoderPreference::Named("ffmpeg:libx264".into())
    );
}
