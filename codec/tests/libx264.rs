//! Real libx264 encoder → real FFmpeg decoder round trips.

mod common;

use common::*;
use edgedesk_codec::bitstream::{self, h264};
use edgedesk_codec::convert::i420_rgb_at;
use edgedesk_codec::ffmpeg_backend::h264_profile_level_id_for;
use edgedesk_codec::{
    Codec, Decoder, EncodedFrame, Encoder, EncoderError, EncoderSettings, FfmpegBackend,
    PixelFormat, RateControl, VideoFrame,
};

fn settings(w: u32, h: u32, fps: u32, bitrate: u64) -> EncoderSettings {
    EncoderSettings {
        codec: Codec::H264,
        width: w,
        height: h,
        fps,
        bitrate_bps: bitrate,
        rate_control: RateControl::Cbr { vbv_frames: 1 },
        keyframe_interval: None,
        threads: 0,
    }
}

fn open(s: &EncoderSettings) -> Box<dyn Encoder> {
    Box::new(FfmpegBackend::Libx264.open(s).expect("libx264 opens"))
}

/// Encodes one frame and insists on exactly one access unit.
fn encode_one(enc: &mut dyn Encoder, f: &VideoFrame, key: bool) -> EncodedFrame {
    let out = enc
        .encode(f, key)
        .expect("encode")
        .expect("one access unit per frame");
    assert!(!out.data.is_empty());
    assert!(out.data.starts_with(&[0, 0, 0, 1]) || out.data.starts_with(&[0, 0, 1]));
    out
}

/// Encodes the moving picture, decodes each access unit at once and checks the colours of
/// every rectangle and the background.
fn round_trip(w: u32, h: u32, bitrate: u64, frames: u64) {
    init_logs();
    let s = settings(w, h, 30, bitrate);
    let mut enc = open(&s);
    assert_eq!(enc.name(), "ffmpeg:libx264");
    assert_eq!(enc.input_format(), PixelFormat::I420);
    let mut dec = Decoder::new(Codec::H264).unwrap();
    let mut worst = 0;
    for n in 0..frames {
        let input = moving_i420(n, w, h);
        let au = encode_one(enc.as_mut(), &input, false);
        assert_eq!(au.sequence, n);
        assert_eq!((au.width, au.height, au.codec), (w, h, Codec::H264));
        let types = bitstream::nal_types(Codec::H264, &au.data);
        if n == 0 {
            assert!(au.keyframe, "first frame must be a keyframe: {types:?}");
            assert!(bitstream::is_decodable_keyframe(Codec::H264, &au.data));
            let sps = types.iter().position(|&t| t == h264::SPS).unwrap();
            let pps = types.iter().position(|&t| t == h264::PPS).unwrap();
            let idr = types.iter().position(|&t| t == h264::IDR).unwrap();
            assert!(sps < pps && pps < idr, "{types:?}");
            let plid = bitstream::h264_profile_level_id(&au.data).unwrap();
            assert!(plid.starts_with("42c0"), "constrained baseline, got {plid}");
            assert_eq!(plid, h264_profile_level_id_for(&s), "predicted level");
        } else {
            assert!(!au.keyframe, "frame {n} is a keyframe: {types:?}");
            assert!(!types.contains(&h264::SPS));
        }
        // Low delay: access unit n yields picture n right away.
        let pics = dec.decode(&au.data).unwrap();
        assert_eq!(pics.len(), 1, "frame {n}: decoder held the picture");
        let pic = &pics[0];
        assert_eq!(pic.sequence, n);
        assert_eq!(
            (pic.width, pic.height, pic.format),
            (w, h, PixelFormat::I420)
        );
        if n == 0 || n % 5 == 4 {
            for (i, want) in RECTS.iter().enumerate() {
                let (x, y) = rect_centre(i, n, w, h);
                let got = i420_rgb_at(pic, x, y).unwrap();
                let d = max_diff(got, *want);
                worst = worst.max(d);
                assert!(d <= 24, "{w}x{h} frame {n} rect {i}: {got:?} vs {want:?}");
            }
            let got = i420_rgb_at(pic, 1, h - 2).unwrap();
            assert!(max_diff(got, BACKGROUND) <= 12, "background {got:?}");
        }
    }
    eprintln!("{w}x{h}: worst colour error {worst}");
}

#[test]
fn round_trip_320x240() {
    round_trip(320, 240, 1_000_000, 30);
}

#[test]
fn round_trip_1280x720() {
    round_trip(1280, 720, 4_000_000, 20);
}

#[test]
fn padded_input_strides_are_accepted() {
    let s = settings(64, 48, 30, 200_000);
    let mut enc = open(&s);
    let tight = moving_i420(0, 64, 48);
    let mut padded = tight.clone();
    for p in 0..3 {
        let (row, rows) = tight.plane_size(p);
        let stride = row + 13;
        let mut buf = vec![0u8; stride * rows];
        for r in 0..rows {
            buf[r * stride..r * stride + row]
                .copy_from_slice(&tight.planes[p][r * row..(r + 1) * row]);
        }
        padded.planes[p] = buf;
        padded.strides[p] = stride;
    }
    let au = encode_one(enc.as_mut(), &padded, false);
    let pic = Decoder::new(Codec::H264)
        .unwrap()
        .decode(&au.data)
        .unwrap()
        .remove(0);
    let (x, y) = rect_centre(0, 0, 64, 48);
    assert!(max_diff(i420_rgb_at(&pic, x, y).unwrap(), RECTS[0]) <= 40);
}

#[test]
fn force_keyframe_makes_an_idr_with_parameter_sets() {
    let s = settings(320, 240, 30, 500_000);
    let mut enc = open(&s);
    let mut dec = Decoder::new(Codec::H264).unwrap();
    for n in 0..20 {
        let force = n == 12;
        let au = encode_one(enc.as_mut(), &moving_i420(n, 320, 240), force);
        let types = bitstream::nal_types(Codec::H264, &au.data);
        let expect_key = n == 0 || force;
        assert_eq!(au.keyframe, expect_key, "frame {n}: {types:?}");
        assert_eq!(
            types.contains(&h264::IDR),
            expect_key,
            "frame {n}: {types:?}"
        );
        assert_eq!(
            types.contains(&h264::SPS),
            expect_key,
            "frame {n}: {types:?}"
        );
        if force {
            // A fresh decoder can start from it.
            let mut fresh = Decoder::new(Codec::H264).unwrap();
            assert_eq!(fresh.decode(&au.data).unwrap().len(), 1);
        }
        assert_eq!(dec.decode(&au.data).unwrap().len(), 1);
    }
}

#[test]
fn keyframe_interval_is_honoured() {
    let s = EncoderSettings {
        keyframe_interval: Some(5),
        ..settings(160, 120, 30, 300_000)
    };
    let mut enc = open(&s);
    let keys: Vec<u64> = (0..16)
        .filter(|&n| encode_one(enc.as_mut(), &moving_i420(n, 160, 120), false).keyframe)
        .collect();
    assert_eq!(keys, vec![0, 5, 10, 15]);
}

fn mean_size(enc: &mut dyn Encoder, from: u64, to: u64, w: u32, h: u32) -> f64 {
    let total: usize = (from..to)
        .map(|n| encode_one(enc, &noise_i420(n, w, h), false).data.len())
        .sum();
    total as f64 / (to - from) as f64
}

#[test]
fn set_bitrate_changes_frame_sizes_live() {
    let (w, h) = (320, 240);
    let mut enc = open(&settings(w, h, 30, 300_000));
    encode_one(enc.as_mut(), &noise_i420(0, w, h), false);
    let low = mean_size(enc.as_mut(), 1, 21, w, h);
    enc.set_bitrate(1_200_000).unwrap();
    assert_eq!(enc.settings().bitrate_bps, 1_200_000);
    // No reopen: the next frame is not a keyframe.
    assert!(!encode_one(enc.as_mut(), &noise_i420(21, w, h), false).keyframe);
    let high = mean_size(enc.as_mut(), 22, 42, w, h);
    eprintln!("300 kbit/s: {low:.0} B/frame, 1.2 Mbit/s: {high:.0} B/frame");
    // Targets 1250 and 5000 bytes per frame; x264 undershoots on noise (more with more slices).
    assert!(high > low * 2.5, "{low} -> {high}");
    assert!((600.0..2000.0).contains(&low), "{low}");
    assert!((2500.0..7000.0).contains(&high), "{high}");
    enc.set_bitrate(300_000).unwrap();
    encode_one(enc.as_mut(), &noise_i420(42, w, h), false);
    let back = mean_size(enc.as_mut(), 43, 63, w, h);
    assert!(back < high / 2.5, "{high} -> {back}");
    assert!(matches!(
        enc.set_bitrate(0),
        Err(EncoderError::InvalidSettings(_))
    ));
}

#[test]
fn set_fps_keeps_bitrate_per_second() {
    let (w, h) = (320, 240);
    let mut enc = open(&settings(w, h, 60, 600_000));
    encode_one(enc.as_mut(), &noise_i420(0, w, h), false);
    let at60 = mean_size(enc.as_mut(), 1, 21, w, h);
    enc.set_fps(15).unwrap();
    assert_eq!(enc.settings().fps, 15);
    assert!(!encode_one(enc.as_mut(), &noise_i420(21, w, h), false).keyframe);
    let at15 = mean_size(enc.as_mut(), 22, 42, w, h);
    eprintln!("600 kbit/s at 60 fps: {at60:.0} B/frame, at 15 fps: {at15:.0} B/frame");
    // 1250 vs 5000 bytes per frame.
    assert!(at15 > at60 * 2.5, "{at60} -> {at15}");
    assert!(matches!(
        enc.set_fps(0),
        Err(EncoderError::InvalidSettings(_))
    ));
}

#[test]
fn odd_and_absurd_sizes_are_invalid_settings() {
    for (w, h) in [
        (321, 240),
        (320, 241),
        (0, 0),
        (100_000, 100_000),
        (1, 1),
        (8194, 64),
    ] {
        match FfmpegBackend::Libx264.open(&settings(w, h, 30, 1_000_000)) {
            Err(EncoderError::InvalidSettings(msg)) => {
                eprintln!("{w}x{h}: {msg}");
                if w % 2 == 1 && w > 2 {
                    assert!(msg.contains("even"), "{msg}");
                }
            }
            Err(other) => panic!("{w}x{h}: wrong error {other}"),
            Ok(_) => panic!("{w}x{h} accepted"),
        }
    }
    let bad = [
        EncoderSettings {
            fps: 0,
            ..settings(64, 64, 30, 1_000_000)
        },
        EncoderSettings {
            bitrate_bps: 1,
            ..settings(64, 64, 30, 1_000_000)
        },
        EncoderSettings {
            keyframe_interval: Some(0),
            ..settings(64, 64, 30, 1_000_000)
        },
        EncoderSettings {
            rate_control: RateControl::Cbr { vbv_frames: 0 },
            ..settings(64, 64, 30, 1_000_000)
        },
        EncoderSettings {
            codec: Codec::Hevc,
            ..settings(64, 64, 30, 1_000_000)
        },
    ];
    for s in bad {
        assert!(
            matches!(
                FfmpegBackend::Libx264.open(&s),
                Err(EncoderError::InvalidSettings(_))
            ),
            "{s:?}"
        );
    }
}

#[test]
fn tiny_even_sizes_work() {
    for (w, h) in [(2, 2), (16, 2), (34, 18)] {
        let mut enc = open(&settings(w, h, 30, 100_000));
        let au = encode_one(
            enc.as_mut(),
            &VideoFrame::new(PixelFormat::I420, w, h),
            false,
        );
        let pics = Decoder::new(Codec::H264).unwrap().decode(&au.data).unwrap();
        assert_eq!((pics[0].width, pics[0].height), (w, h));
    }
}

#[test]
fn frames_that_do_not_match_are_bad_frames() {
    let mut enc = open(&settings(64, 48, 30, 200_000));
    let wrong_size = moving_i420(0, 32, 48);
    assert!(matches!(
        enc.encode(&wrong_size, false),
        Err(EncoderError::BadFrame(_))
    ));
    let bgra = moving_bgra(0, 64, 48);
    assert!(matches!(
        enc.encode(&bgra, false),
        Err(EncoderError::BadFrame(_))
    ));
    let mut short = moving_i420(0, 64, 48);
    short.planes[1].truncate(5);
    assert!(matches!(
        enc.encode(&short, false),
        Err(EncoderError::BadFrame(_))
    ));
    // Still usable afterwards.
    encode_one(enc.as_mut(), &moving_i420(0, 64, 48), false);
}

#[test]
fn profile_level_id_is_reported() {
    let s = settings(1920, 1080, 60, 8_000_000);
    let mut enc = FfmpegBackend::Libx264.open(&s).unwrap();
    assert_eq!(enc.h264_profile_level_id().as_deref(), Some("42c02a"));
    let au = encode_one(&mut enc, &moving_i420(0, 1920, 1080), false);
    assert_eq!(
        bitstream::h264_profile_level_id(&au.data).as_deref(),
        Some("42c02a")
    );
    assert_eq!(enc.h264_profile_level_id().as_deref(), Some("42c02a"));
    for (w, h, fps, br) in [
        (1280, 720, 30, 4_000_000),
        (640, 360, 30, 1_000_000),
        (3840, 2160, 30, 20_000_000),
    ] {
        let s = settings(w, h, fps, br);
        let mut enc = FfmpegBackend::Libx264.open(&s).unwrap();
        let au = encode_one(&mut enc, &VideoFrame::new(PixelFormat::I420, w, h), false);
        assert_eq!(
            bitstream::h264_profile_level_id(&au.data).unwrap(),
            h264_profile_level_id_for(&s),
            "{w}x{h}@{fps} {br}"
        );
    }
}

/// A frame that says which rectangles changed is copied into the encoder's picture by those
/// rectangles only, and the bitstream equals the one for the same frame given whole. A frame
/// whose damage leaves out a change (a broken promise) encodes differently, which shows the
/// rectangles are really all that is copied; damage relative to a frame the encoder does not
/// hold is ignored (whole copy).
#[test]
fn damage_rectangles_feed_the_same_picture() {
    use edgedesk_codec::{Damage, Rect};
    init_logs();
    let (w, h) = (320, 240);
    // One thread: x264's row-level VBV control across slice threads depends on their timing,
    // so only a single-threaded encoder gives the same bytes for the same pictures.
    let s = EncoderSettings {
        threads: 1,
        ..settings(w, h, 30, 1_000_000)
    };
    let mut a = moving_i420(1, w, h);
    a.sequence = 1;
    let mut b = a.clone();
    b.sequence = 2;
    // A changed 32x32 block at (40, 20): luma and the chroma under it.
    for y in 20..52 {
        for x in 40..72 {
            b.planes[0][y * b.strides[0] + x] = 200;
            b.planes[1][(y / 2) * b.strides[1] + x / 2] = 60;
        }
    }
    let run = |second: &VideoFrame| -> Vec<u8> {
        let mut enc = open(&s);
        encode_one(enc.as_mut(), &a, true);
        encode_one(enc.as_mut(), second, false).data.to_vec()
    };
    let with = |since: u64, rects: Vec<Rect>| {
        let mut f = b.clone();
        f.damage = Some(Damage { since, rects });
        f
    };
    let whole = run(&b);
    assert_eq!(run(&with(1, vec![Rect::new(40, 20, 32, 32)])), whole);
    // Odd rectangles are grown to whole chroma blocks.
    assert_eq!(run(&with(1, vec![Rect::new(41, 21, 31, 31)])), whole);
    assert_ne!(run(&with(1, vec![Rect::new(200, 200, 8, 8)])), whole);
    assert_eq!(run(&with(7, vec![Rect::new(200, 200, 8, 8)])), whole);
}
