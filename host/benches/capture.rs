//! Full-screen capture on Xvfb: ours ([`X11Capturer::capture`], forced, MIT-SHM strips copied
//! into the caller's frame, cursor drawn in) against a plain core-protocol `GetImage` of the
//! same root window through x11rb (the non-SHM baseline: one request, the whole image arrives
//! over the socket), at 1280x720, 1920x1080, 3840x2160 and 7680x4320.
//!
//! Each size gets its own Xvfb (`VirtualDisplay`), on which a desktop-like picture (gradients,
//! noise, "text", see `common::pattern`) is drawn once with `PutImage`. Nothing changes after
//! that, so every grab is forced (`capture(.., force = true)`, as `examples/capture_timings.rs`
//! does): without damage the capturer would wait instead of grabbing.
//!
//! What each side delivers: ours, the picture in the caller's [`VideoFrame`] (reused, no
//! allocation) with the cursor alpha-blended in; the baseline, the picture in the reply buffer
//! x11rb allocated (usable as is, so no copy is charged to it, and no cursor).
//!
//! ```text
//! cargo bench -p edgedesk-host --bench capture
//! cargo bench -p edgedesk-host --bench capture -- --warm-up-time 1 --measurement-time 2
//! cargo bench -p edgedesk-host --bench capture -- 1920x1080     # one size
//! ```
//!
//! Ratios: see `common` (median per-iteration time from our own `iter_custom` timing), printed
//! per size and written to `target/criterion/edgedesk-ratios-capture.json`.

// One definition of the ratio line and JSON for every edgedesk bench.
#[path = "../../codec/benches/common/mod.rs"]
mod common;

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use codec::{PixelFormat, VideoFrame};
use common::{ms, size_label, Ratios, Row, Timing, SIZES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgedesk_host::capture::{CaptureStatus, X11Capturer};
use edgedesk_host::display::{DisplayOptions, VirtualDisplay};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

/// An Xvfb showing [`common::pattern`], and a plain connection to it.
struct Screen {
    display: VirtualDisplay,
    conn: RustConnection,
    root: xproto::Window,
    pattern: Vec<u8>,
}

impl Screen {
    fn start(w: u32, h: u32) -> Self {
        let display = VirtualDisplay::start(DisplayOptions {
            width: w,
            height: h,
            ..Default::default()
        })
        .expect("start Xvfb");
        let (conn, n) = RustConnection::connect(Some(&display.name())).expect("connect to Xvfb");
        let screen = &conn.setup().roots[n];
        let (root, depth) = (screen.root, screen.root_depth);
        let pattern = common::pattern(w, h);
        draw(&conn, root, depth, w, h, &pattern);
        let s = Screen {
            display,
            conn,
            root,
            pattern,
        };
        // The picture is there: a pixel well away from the cursor (which sits at the centre).
        let (x, y) = (w / 4 + 3, h / 4 + 1);
        let px = s
            .conn
            .get_image(
                xproto::ImageFormat::Z_PIXMAP,
                root,
                x as i16,
                y as i16,
                1,
                1,
                !0,
            )
            .expect("GetImage")
            .reply()
            .expect("GetImage reply")
            .data;
        assert_eq!(
            px[..3],
            s.expected(x, y),
            "pattern not on screen at ({x}, {y})"
        );
        s
    }

    /// B, G, R of the pattern at (x, y).
    fn expected(&self, x: u32, y: u32) -> [u8; 3] {
        let w = self.display.size().0;
        let o = ((y * w + x) * 4) as usize;
        [self.pattern[o], self.pattern[o + 1], self.pattern[o + 2]]
    }
}

/// `PutImage` of a tightly packed 32-bit picture onto the root, in strips that fit the
/// server's largest request (an 8K screen is 132 MB, far more than one request may carry).
fn draw(conn: &RustConnection, root: xproto::Window, depth: u8, w: u32, h: u32, bgra: &[u8]) {
    let gc = conn.generate_id().expect("GC id");
    conn.create_gc(gc, root, &xproto::CreateGCAux::new())
        .expect("CreateGC");
    let row = w as usize * 4;
    let rows = ((conn.maximum_request_bytes() - 64) / row).clamp(1, h as usize);
    for (i, strip) in bgra.chunks(rows * row).enumerate() {
        conn.put_image(
            xproto::ImageFormat::Z_PIXMAP,
            root,
            gc,
            w as u16,
            (strip.len() / row) as u16,
            0,
            (i * rows) as i16,
            0,
            depth,
            strip,
        )
        .expect("PutImage");
    }
    conn.free_gc(gc).expect("FreeGC");
    conn.get_input_focus()
        .expect("GetInputFocus")
        .reply()
        .expect("draw the pattern");
}

fn bench(c: &mut Criterion) {
    let mut ratios = Ratios::new(
        "capture",
        "ms per full-screen grab on Xvfb; median of the per-iteration times of every \
         iter_custom call but the first (own timing inside criterion)",
    );
    for (w, h) in SIZES {
        let size = size_label(w, h);
        // Started on first use, so a size filtered out costs nothing.
        let cell: OnceCell<Screen> = OnceCell::new();
        let screen = || cell.get_or_init(|| Screen::start(w, h));
        let mut group = c.benchmark_group("capture");
        group.throughput(Throughput::Elements(1));

        // Criterion calls a bench closure once per sample: state lives outside it.
        let mut ours = Timing::default();
        let mut capturer: Option<X11Capturer> = None;
        let mut frame = VideoFrame::new(PixelFormat::Bgra, w, h);
        group.bench_function(BenchmarkId::new("edgedesk-shm", &size), |b| {
            let screen = screen();
            let cap = capturer.get_or_insert_with(|| {
                let mut cap = X11Capturer::connect(&screen.display.name()).expect("connect");
                assert!(
                    cap.uses_shm(),
                    "MIT-SHM unavailable: this would bench GetImage"
                );
                cap.capture(&mut frame, Duration::ZERO, true)
                    .expect("capture");
                let (x, y) = (w / 4 + 3, h / 4 + 1);
                let px = frame.bgra_at(x, y).expect("pixel");
                assert_eq!(
                    px[..3],
                    screen.expected(x, y),
                    "captured picture at ({x}, {y})"
                );
                cap
            });
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    // The whole screen each time, like the baseline (a static screen would
                    // otherwise cost only the round trip).
                    cap.invalidate();
                    let status = cap
                        .capture(&mut frame, Duration::ZERO, true)
                        .expect("capture");
                    assert_eq!(status, CaptureStatus::Frame);
                }
                let total = start.elapsed();
                black_box(&frame);
                ours.record(iters, total)
            });
        });
        drop(capturer);

        let mut baseline = Timing::default();
        let mut checked = false;
        group.bench_function(BenchmarkId::new("x11rb-getimage", &size), |b| {
            let screen = screen();
            let grab = || {
                screen
                    .conn
                    .get_image(
                        xproto::ImageFormat::Z_PIXMAP,
                        screen.root,
                        0,
                        0,
                        w as u16,
                        h as u16,
                        !0,
                    )
                    .expect("GetImage")
                    .reply()
                    .expect("GetImage reply")
            };
            if !checked {
                assert_eq!(grab().data.len(), (w * h * 4) as usize, "whole screen");
                checked = true;
            }
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(grab());
                }
                baseline.record(iters, start.elapsed())
            });
        });
        group.finish();

        ratios.add(Row {
            what: "capture".into(),
            width: w,
            height: h,
            ours: "edgedesk X11Capturer (MIT-SHM, forced, cursor drawn)".into(),
            ours_ms: ours.estimate().map(ms),
            baseline: "x11rb GetImage".into(),
            baseline_ms: baseline.estimate().map(ms),
            skipped: None,
            notes: vec![],
        });
    }
}

criterion_group! {
    name = benches;
    config = common::config(20);
    targets = bench
}
criterion_main!(benches);
