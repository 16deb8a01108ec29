//! BGRA → I420 (BT.601 limited), ours ([`bgra_to_i420`], the `yuv` crate's SIMD path) against
//! libswscale (`ffmpeg-next` `software::scaling`, BGRA → YUV420P at the same size) on the same
//! synthetic frame (gradients plus noise, see `common::pattern`), at 1280x720, 1920x1080,
//! 3840x2160 and 7680x4320.
//!
//! The baseline is libswscale with `SWS_POINT`, its fastest flag here (fast-bilinear is
//! measured too and is slower: `examples/codec_timings.rs`); the ratio line is against point.
//! Both convert into a preallocated destination; libswscale's input is copied into an
//! `AVFrame` once, outside the timing. Both are single-threaded.
//!
//! ```text
//! cargo bench -p edgedesk-codec --bench convert
//! cargo bench -p edgedesk-codec --bench convert -- --warm-up-time 1 --measurement-time 2
//! cargo bench -p edgedesk-codec --bench convert -- 1920x1080     # one size
//! ```
//!
//! Ratios: see `common` (median per-iteration time from our own `iter_custom` timing), printed
//! per size and written to `target/criterion/edgedesk-ratios-convert.json`.

mod common;

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Instant;

use common::{ms, size_label, Ratios, Row, Timing, SIZES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgedesk_codec::convert::bgra_to_i420;
use edgedesk_codec::ffmpeg_backend::init_ffmpeg;
use edgedesk_codec::{PixelFormat, VideoFrame};
use ffmpeg_next as ffmpeg;
use ffmpeg_next::software::scaling;

/// libswscale flags measured; the first is the baseline of the ratio line.
const SWS: [(&str, scaling::Flags); 2] = [
    ("libswscale point", scaling::Flags::POINT),
    ("libswscale fast-bilinear", scaling::Flags::FAST_BILINEAR),
];

fn bench(c: &mut Criterion) {
    init_ffmpeg();
    let mut ratios = Ratios::new(
        "convert",
        "ms per BGRA->I420 frame; median of the per-iteration times of every iter_custom call \
         but the first (own timing inside criterion); same synthetic frame for both",
    );
    for (w, h) in SIZES {
        let size = size_label(w, h);
        // Built on first use, so a size filtered out costs nothing.
        let cell: OnceCell<VideoFrame> = OnceCell::new();
        let source = || {
            cell.get_or_init(|| {
                let mut f = VideoFrame::new(PixelFormat::Bgra, w, h);
                f.planes[0] = common::pattern(w, h);
                f
            })
        };
        let mut group = c.benchmark_group("convert");
        group.throughput(Throughput::Elements(1));

        // Criterion calls a bench closure once per sample: state lives outside it.
        let mut ours = Timing::default();
        let mut dst = VideoFrame::new(PixelFormat::I420, w, h);
        group.bench_function(BenchmarkId::new("edgedesk", &size), |b| {
            let src = source();
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    bgra_to_i420(black_box(src), &mut dst).expect("BGRA->I420");
                }
                let total = start.elapsed();
                black_box(&dst);
                ours.record(iters, total)
            });
        });

        let mut baselines: Vec<Timing> = Vec::new();
        for (label, flags) in SWS {
            let mut t = Timing::default();
            let id = label.trim_start_matches("libswscale ");
            let mut state = None;
            group.bench_function(BenchmarkId::new(format!("libswscale-{id}"), &size), |b| {
                let (ctx, input, output) = state.get_or_insert_with(|| {
                    let ctx = scaling::Context::get(
                        ffmpeg::format::Pixel::BGRA,
                        w,
                        h,
                        ffmpeg::format::Pixel::YUV420P,
                        w,
                        h,
                        flags,
                    )
                    .expect("libswscale context");
                    let output = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, w, h);
                    (ctx, av_frame(source()), output)
                });
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        ctx.run(black_box(input), output).expect("libswscale run");
                    }
                    let total = start.elapsed();
                    black_box(&*output);
                    t.record(iters, total)
                });
            });
            baselines.push(t);
        }
        group.finish();

        for (i, (label, _)) in SWS.iter().enumerate() {
            ratios.add(Row {
                what: if i == 0 {
                    "convert".into()
                } else {
                    "convert (vs fast-bilinear)".into()
                },
                width: w,
                height: h,
                ours: "edgedesk bgra_to_i420 (yuv crate SIMD)".into(),
                ours_ms: ours.estimate().map(ms),
                baseline: (*label).into(),
                baseline_ms: baselines[i].estimate().map(ms),
                skipped: None,
                notes: vec![],
            });
        }
    }
}

/// The BGRA frame copied into an `AVFrame` (whose rows may be padded).
fn av_frame(src: &VideoFrame) -> ffmpeg::frame::Video {
    let mut f = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::BGRA, src.width, src.height);
    let stride = f.stride(0);
    let row = src.width as usize * 4;
    for (r, line) in src.planes[0].chunks_exact(src.strides[0]).enumerate() {
        f.data_mut(0)[r * stride..r * stride + row].copy_from_slice(&line[..row]);
    }
    f
}

criterion_group! {
    name = benches;
    config = common::config(20);
    targets = bench
}
criterion_main!(benches);
