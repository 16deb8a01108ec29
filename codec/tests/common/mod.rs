//! Synthetic pictures shared by the integration tests.
#![allow(dead_code)]

use edgedesk_codec::convert::bgra_to_i420;
use edgedesk_codec::{PixelFormat, VideoFrame};

/// Background and rectangle colours (RGB).
pub const BACKGROUND: [u8; 3] = [40, 40, 40];
pub const RECTS: [[u8; 3]; 4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];

/// A rectangle of `RECTS[i]` at frame `n`: side `s`, moving right by 2 px per frame.
pub fn rect(i: usize, n: u64, w: u32, h: u32) -> (u32, u32, u32) {
    let s = (w.min(h) / 5).max(8);
    let x = (i as u32 * (w / 4) + 2 * n as u32) % (w - s);
    let y = (h / 8 + i as u32 * (h / 5)) % (h - s);
    (x, y, s)
}

/// Centre of rectangle `i` at frame `n`.
pub fn rect_centre(i: usize, n: u64, w: u32, h: u32) -> (u32, u32) {
    let (x, y, s) = rect(i, n, w, h);
    (x + s / 2, y + s / 2)
}

/// A BGRA frame (stride padded by 64 bytes) with the four moving rectangles.
pub fn moving_bgra(n: u64, w: u32, h: u32) -> VideoFrame {
    let stride = w as usize * 4 + 64;
    let mut f = VideoFrame::new(PixelFormat::Bgra, w, h);
    f.strides[0] = stride;
    f.planes[0] = vec![0; stride * h as usize];
    let px = |f: &mut VideoFrame, x: u32, y: u32, c: [u8; 3]| {
        let o = y as usize * stride + x as usize * 4;
        f.planes[0][o..o + 4].copy_from_slice(&[c[2], c[1], c[0], 255]);
    };
    for y in 0..h {
        for x in 0..w {
            px(&mut f, x, y, BACKGROUND);
        }
    }
    for (i, c) in RECTS.iter().enumerate() {
        let (rx, ry, s) = rect(i, n, w, h);
        for y in ry..ry + s {
            for x in rx..rx + s {
                px(&mut f, x, y, *c);
            }
        }
    }
    f.sequence = n;
    f
}

/// The moving picture as I420.
pub fn moving_i420(n: u64, w: u32, h: u32) -> VideoFrame {
    let mut out = VideoFrame::new(PixelFormat::I420, w, h);
    bgra_to_i420(&moving_bgra(n, w, h), &mut out).unwrap();
    out
}

/// An I420 frame of deterministic noise (hard to compress), different for every `n`.
pub fn noise_i420(n: u64, w: u32, h: u32) -> VideoFrame {
    let mut f = VideoFrame::new(PixelFormat::I420, w, h);
    let mut seed = (n as u32).wrapping_mul(2_654_435_761).wrapping_add(1);
    for p in &mut f.planes {
        for b in p.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *b = 16 + (seed >> 24) as u8 % 220;
        }
    }
    f.sequence = n;
    f
}

/// Low-amplitude noise (±12 around mid-grey): texture every encoder can squeeze into a few
/// kilobytes per frame, so a bitrate change shows in frame sizes (full-range noise is
/// incompressible for VP8 and VP9 below ≈ 30 KB per 640x360 frame).
pub fn soft_noise_i420(n: u64, w: u32, h: u32) -> VideoFrame {
    let mut f = noise_i420(n, w, h);
    for p in &mut f.planes {
        for b in p.iter_mut() {
            *b = 116 + *b % 24;
        }
    }
    f
}

/// Largest per-channel difference between two RGB colours.
pub fn max_diff(a: [u8; 3], b: [u8; 3]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, y)| (x as i32 - y as i32).abs())
        .max()
        .unwrap()
}

/// Logs to the test output when RUST_LOG is set.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
