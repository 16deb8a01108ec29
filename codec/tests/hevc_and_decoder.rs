//! HEVC through libx265, and decoder behaviour.

mod common;

use common::*;
use edgedesk_codec::bitstream::{self, hevc};
use edgedesk_codec::convert::i420_rgb_at;
use edgedesk_codec::{Codec, DecodeError, Decoder, Encoder, EncoderSettings, FfmpegBackend};

#[test]
fn libx265_round_trip_one_unit_per_frame() {
    init_logs();
    let (w, h) = (320, 240);
    let s = EncoderSettings {
        codec: Codec::Hevc,
        width: w,
        height: h,
        fps: 30,
        bitrate_bps: 1_000_000,
        ..Default::default()
    };
    let mut enc = FfmpegBackend::Libx265.open(&s).unwrap();
    assert_eq!(enc.name(), "ffmpeg:libx265");
    assert_eq!(enc.h264_profile_level_id(), None);
    let mut dec = Decoder::new(Codec::Hevc).unwrap();
    for n in 0..12 {
        let au = enc
            .encode(&moving_i420(n, w, h), n == 8)
            .unwrap()
            .expect("one unit per frame");
        let types = bitstream::nal_types(Codec::Hevc, &au.data);
        let key = n == 0 || n == 8;
        assert_eq!(au.keyframe, key, "frame {n}: {types:?}");
        if key {
            assert!(
                types.contains(&hevc::VPS) && types.contains(&hevc::SPS),
                "{types:?}"
            );
        }
        let pics = dec.decode(&au.data).unwrap();
        assert_eq!(pics.len(), 1, "frame {n}: decoder held the picture");
        for (i, want) in RECTS.iter().enumerate() {
            let (x, y) = rect_centre(i, n, w, h);
            let got = i420_rgb_at(&pics[0], x, y).unwrap();
            assert!(max_diff(got, *want) <= 24, "frame {n} rect {i}: {got:?}");
        }
    }
    // libx265 cannot change rate live: the change reopens it and the next frame is an IDR.
    enc.set_bitrate(500_000).unwrap();
    let au = enc.encode(&moving_i420(12, w, h), false).unwrap().unwrap();
    assert!(au.keyframe);
    assert_eq!(dec.decode(&au.data).unwrap().len(), 1);
}

#[test]
fn decoder_rejects_garbage_without_panicking() {
    let mut dec = Decoder::new(Codec::H264).unwrap();
    assert!(dec.decode(&[]).unwrap().is_empty());
    // Random bytes: an error or nothing, never a panic or a picture.
    let junk: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    match dec.decode(&junk) {
        Ok(pics) => assert!(pics.is_empty()),
        Err(DecodeError::Invalid(_)) => {}
        Err(e) => panic!("{e}"),
    }
    let mut with_start = vec![0, 0, 0, 1, 0x65];
    with_start.extend_from_slice(&junk[..200]);
    let _ = dec.decode(&with_start);
    assert!(dec.flush().is_ok());
}
