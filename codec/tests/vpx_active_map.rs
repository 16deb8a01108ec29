//! The direct libvpx backend turns each frame's damage into an active map: a changed block
//! inside the damage arrives in the decoded picture, changes outside it (damage that lies)
//! do not, which shows only the damaged macroblocks are coded (cyclic refresh also recodes a
//! few blocks a frame on purpose, so most, not all, stay; without the map all would change);
//! unknown damage codes everything.

mod common;

use common::*;
use edgedesk_codec::convert::yuv_at;
use edgedesk_codec::{Damage, Decoder, Encoder, EncoderSettings, Rect, VideoFrame, VpxBackend};

/// Paints a 32x32 block of luma `y` at (x, y0) of an I420 frame.
fn paint(f: &mut VideoFrame, x0: usize, y0: usize, y: u8) {
    for row in y0..y0 + 32 {
        for x in x0..x0 + 32 {
            f.planes[0][row * f.strides[0] + x] = y;
        }
    }
}

fn luma(f: &VideoFrame, x: u32, y: u32) -> u8 {
    yuv_at(f, x, y).unwrap()[0]
}

#[test]
fn damage_becomes_the_active_map() {
    init_logs();
    for backend in VpxBackend::ALL {
        let (w, h) = (320, 240);
        let s = EncoderSettings {
            codec: backend.codec(),
            width: w,
            height: h,
            fps: 30,
            bitrate_bps: 4_000_000,
            ..Default::default()
        };
        let mut enc = backend.open(&s).unwrap();
        let mut dec = Decoder::new(backend.codec()).unwrap();
        let mut frame = moving_i420(0, w, h);
        // Twelve dark blocks: the first will be damaged, the others change unannounced.
        let blocks: Vec<(usize, usize)> = (0..12)
            .map(|i| (16 + (i % 4) * 80, 16 + (i / 4) * 80))
            .collect();
        for &(x, y) in &blocks {
            paint(&mut frame, x, y, 40);
        }
        let mut encode = |f: &VideoFrame, enc: &mut dyn Encoder| {
            let au = enc.encode(f, false).unwrap().expect("one frame per input");
            let mut pics = dec.decode(&au.data).unwrap();
            assert_eq!(pics.len(), 1);
            pics.pop().unwrap()
        };
        // A few frames to settle the quality of the static picture.
        for seq in 1..=4 {
            frame.sequence = seq;
            frame.damage = None;
            encode(&frame, &mut enc);
        }
        // Every block turns bright; the damage names only the first.
        for &(x, y) in &blocks {
            paint(&mut frame, x, y, 220);
        }
        frame.sequence = 5;
        let (x0, y0) = blocks[0];
        frame.damage = Some(Damage {
            since: 4,
            rects: vec![Rect::new(x0 as u32, y0 as u32, 32, 32)],
        });
        let pic = encode(&frame, &mut enc);
        let name = backend.name();
        let bright = |pic: &VideoFrame, (x, y): (usize, usize)| {
            luma(pic, x as u32 + 16, y as u32 + 16) > 180
        };
        assert!(
            bright(&pic, blocks[0]),
            "{name}: the damaged block did not change"
        );
        let coded = blocks[1..].iter().filter(|&&b| bright(&pic, b)).count();
        assert!(
            coded <= 3,
            "{name}: {coded} of 11 blocks outside the active map were coded"
        );
        // Damage relative to a frame the encoder did not see: everything is coded.
        frame.sequence = 7;
        frame.damage = Some(Damage {
            since: 6,
            rects: vec![],
        });
        let mut pic = encode(&frame, &mut enc);
        for seq in 8..12 {
            frame.sequence = seq;
            frame.damage = None;
            pic = encode(&frame, &mut enc);
        }
        assert!(
            blocks.iter().all(|&b| bright(&pic, b)),
            "{name}: the full frame was not coded"
        );
    }
}
