//! Capture timings on Xvfb: how long one forced `X11Capturer::capture` takes (SHM grab, copy
//! into the frame, cursor) at 1280x720, 1920x1080 and 3840x2160, plus a plain `memcpy` of the
//! same size for reference.
//!
//! ```text
//! cargo run --release -p edgedesk-host --example capture_timings [-- FRAMES]
//! ```

use std::time::{Duration, Instant};

use codec::{PixelFormat, VideoFrame};
use edgedesk_host::capture::{CaptureStatus, X11Capturer};
use edgedesk_host::display::{DisplayOptions, VirtualDisplay};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut t: Vec<Duration>) -> String {
    t.sort_unstable();
    let p = |q: f64| ms(t[((t.len() - 1) as f64 * q).round() as usize]);
    format!(
        "min {:6.3}  p50 {:6.3}  p90 {:6.3}  p99 {:6.3}  max {:6.3} ms",
        p(0.0),
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0)
    )
}

fn main() -> anyhow::Result<()> {
    let frames: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(300);
    for (width, height) in [(1280, 720), (1920, 1080), (3840, 2160)] {
        let display = VirtualDisplay::start(DisplayOptions {
            width,
            height,
            ..Default::default()
        })?;
        let mut cap = X11Capturer::connect(&display.name())?;
        let mut frame = VideoFrame::new(PixelFormat::Bgra, width, height);
        for _ in 0..10 {
            cap.capture(&mut frame, Duration::ZERO, true)?;
        }
        let mut times = Vec::with_capacity(frames);
        for _ in 0..frames {
            cap.invalidate(); // time whole grabs
            let t = Instant::now();
            let status = cap.capture(&mut frame, Duration::ZERO, true)?;
            times.push(t.elapsed());
            assert_eq!(status, CaptureStatus::Frame);
        }
        let src = vec![1u8; frame.planes[0].len()];
        let mut copies = Vec::with_capacity(frames);
        for _ in 0..frames {
            let t = Instant::now();
            frame.planes[0].copy_from_slice(std::hint::black_box(&src));
            copies.push(t.elapsed());
        }
        println!(
            "{width}x{height} shm={} capture: {}\n{:9} memcpy only: {}",
            cap.uses_shm(),
            summary(times),
            "",
            summary(copies)
        );
    }
    Ok(())
}
