//! Encoding a clip of N distinct BGRA frames (a moving desktop-like picture, see
//! `common::moving_frame`) to H.264: ours (BGRA → I420 with [`bgra_to_i420`], then the encoder
//! that `EncoderRegistry::probe()` + `open(.., Software)` gives, libx264 as the codec crate
//! configures it: ultrafast, zerolatency, baseline, CBR with a one-frame VBV, sliced threads)
//! against the `ffmpeg` CLI with libx264 fed the same raw frames through a pipe:
//!
//! ```text
//! ffmpeg -hide_banner -loglevel error -f rawvideo -pix_fmt bgra -s WxH -r 60 -i - \
//!        -pix_fmt yuv420p -c:v libx264 -preset ultrafast -tune zerolatency -g 100000 \
//!        -b:v BITRATE -f null -
//! ```
//!
//! `-pix_fmt yuv420p` is needed for a like-for-like encode: given BGRA, the CLI otherwise picks
//! yuv444p (x264 "High 4:4:4 Predictive"), twice the chroma samples we encode.
//!
//! One criterion iteration is the whole clip for both (ours starts it with a forced IDR, as the
//! CLI's fresh encoder does); ratio lines and JSON are per frame (iteration / N). The CLI figure
//! includes what ours does not pay per clip: process start-up, opening x264, writing the frames
//! into the pipe and the CLI reading them; nothing is subtracted. N is large enough that this is
//! small (the JSON notes the wall time of a one-frame CLI run, an upper bound of that overhead
//! per clip). The CLI also converts BGRA → YUV420P itself (libswscale with its default flags),
//! so both sides include a conversion. Differences left as they are: the CLI's rate control is
//! plain ABR (`-b:v`, no VBV) and x264 picks its own thread count (1.5 per core), ours runs one
//! slice thread per core (at most 4).
//!
//! Same libavcodec and libx264 on both sides: the crate links the system FFmpeg the CLI uses.
//! Without `ffmpeg` on `PATH` (or when it fails on a tiny probe clip) the CLI baseline is
//! skipped with the reason printed.
//!
//! ```text
//! cargo bench -p edgedesk-codec --bench encode
//! cargo bench -p edgedesk-codec --bench encode -- --warm-up-time 1 --measurement-time 2
//! cargo bench -p edgedesk-codec --bench encode -- 1920x1080     # one size
//! ```
//!
//! Ratios: see `common` (median per-iteration time from our own `iter_custom` timing), printed
//! per size and written to `target/criterion/edgedesk-ratios-encode.json`.

mod common;

use std::cell::OnceCell;
use std::hint::black_box;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{ms, size_label, Ratios, Row, Timing, SIZES};
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use edgedesk_codec::convert::bgra_to_i420;
use edgedesk_codec::{
    Encoder, EncoderPreference, EncoderRegistry, EncoderSettings, PixelFormat, VideoFrame,
};

/// Frames per clip and bitrate at each of [`SIZES`]. Few frames at 4K/8K: libx264 needs
/// tens to hundreds of ms per frame there on a small machine.
fn clip_params(w: u32) -> (usize, u64) {
    match w {
        0..=1280 => (120, 4_000_000),
        1281..=1920 => (120, 8_000_000),
        1921..=3840 => (30, 20_000_000),
        _ => (10, 40_000_000),
    }
}

/// N distinct BGRA frames of one size.
struct Clip {
    w: u32,
    h: u32,
    frames: Vec<VideoFrame>,
}

impl Clip {
    fn new(w: u32, h: u32, n: usize) -> Self {
        let base = common::pattern(w, h);
        let frames = (0..n as u64)
            .map(|i| {
                let mut f = VideoFrame::new(PixelFormat::Bgra, w, h);
                f.planes[0] = common::moving_frame(&base, w, h, i);
                f.sequence = i;
                f
            })
            .collect();
        Clip { w, h, frames }
    }
}

fn bench(c: &mut Criterion) {
    let registry = EncoderRegistry::probe();
    let cli = cli_available();
    match &cli {
        Ok(()) => println!("ffmpeg CLI baseline: ffmpeg {}", cli_args("WxH", "BITRATE")),
        Err(why) => println!("ffmpeg CLI baseline skipped: {why}"),
    }
    let mut ratios = Ratios::new(
        "encode",
        "ms per frame (one iteration = a clip of N frames, / N), BGRA in, H.264 out; median \
         of the per-iteration times of every iter_custom call but the first (own timing inside \
         criterion); the CLI figure includes process start-up, x264 open and the pipe",
    );
    for (w, h) in SIZES {
        let size = size_label(w, h);
        let (n, bitrate) = clip_params(w);
        // Built on first use, so a size filtered out costs nothing.
        let cell: OnceCell<Clip> = OnceCell::new();
        let clip = || cell.get_or_init(|| Clip::new(w, h, n));

        let mut group = c.benchmark_group("encode");
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Elements(n as u64));

        let mut ours = Timing::default();
        let mut encoder: Option<Box<dyn Encoder>> = None;
        let mut backend = String::new();
        group.bench_function(BenchmarkId::new("edgedesk", &size), |b| {
            let clip = clip();
            let enc = encoder.get_or_insert_with(|| {
                let settings = EncoderSettings {
                    width: w,
                    height: h,
                    fps: 60,
                    bitrate_bps: bitrate,
                    ..EncoderSettings::default()
                };
                registry
                    .open(&settings, &EncoderPreference::Software)
                    .expect("open the software encoder")
            });
            assert_eq!(enc.input_format(), PixelFormat::I420, "{}", enc.name());
            backend = enc.name().to_string();
            let mut yuv = VideoFrame::new(PixelFormat::I420, w, h);
            b.iter_custom(|iters| {
                let mut bytes = 0usize;
                let start = Instant::now();
                for _ in 0..iters {
                    for (i, frame) in clip.frames.iter().enumerate() {
                        bgra_to_i420(frame, &mut yuv).expect("BGRA->I420");
                        let out = enc
                            .encode(&yuv, i == 0)
                            .expect("encode")
                            .expect("one access unit per frame");
                        bytes += out.data.len();
                    }
                }
                let total = start.elapsed();
                black_box(bytes);
                ours.record(iters, total)
            });
        });
        drop(encoder);

        let mut cli_timing = Timing::default();
        if cli.is_ok() {
            group.bench_function(BenchmarkId::new("ffmpeg-cli", &size), |b| {
                let clip = clip();
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        run_cli(clip.w, clip.h, &clip.frames, bitrate).expect("ffmpeg CLI");
                    }
                    cli_timing.record(iters, start.elapsed())
                });
            });
        }
        group.finish();

        let per_frame = |t: &Timing| t.estimate().map(|d| ms(d) / n as f64);
        let mut notes = vec![
            ("frames_per_iteration".to_string(), n.to_string()),
            ("bitrate_bps".to_string(), bitrate.to_string()),
            ("ours_backend".to_string(), backend),
        ];
        if cli.is_ok() && cli_timing.estimate().is_some() {
            // Upper bound of the CLI's per-clip overhead: a one-frame run, measured apart.
            let one = (0..3)
                .filter_map(|_| {
                    let s = Instant::now();
                    run_cli(w, h, &clip().frames[..1], bitrate).ok()?;
                    Some(s.elapsed())
                })
                .min();
            if let Some(one) = one {
                notes.push(("cli_one_frame_run_ms".into(), format!("{:.1}", ms(one))));
                println!(
                    "ffmpeg CLI one-frame run at {size} (start-up + x264 open + one IDR): \
                     {:.1} ms, i.e. at most {:.2} ms of each frame's {:.2} ms",
                    ms(one),
                    ms(one) / n as f64,
                    per_frame(&cli_timing).unwrap_or_default()
                );
            }
        }
        ratios.add(Row {
            what: "encode".into(),
            width: w,
            height: h,
            ours: "edgedesk bgra_to_i420 + libx264 (registry, software)".into(),
            ours_ms: per_frame(&ours),
            baseline: "ffmpeg-cli libx264".into(),
            baseline_ms: per_frame(&cli_timing),
            skipped: cli.as_ref().err().cloned(),
            notes,
        });
    }
}

/// Whether the CLI baseline can run: `ffmpeg` on `PATH` and able to encode a tiny clip with
/// libx264 through the exact command the bench uses.
fn cli_available() -> Result<(), String> {
    let probe = Clip::new(64, 64, 2);
    run_cli(64, 64, &probe.frames, 1_000_000)
}

/// The CLI's arguments, as in the module docs (plus `-nostdin`: no key handling on the pipe).
fn cli_args(size: &str, bitrate: &str) -> String {
    format!(
        "-hide_banner -loglevel error -nostdin -f rawvideo -pix_fmt bgra -s {size} -r 60 -i - \
         -pix_fmt yuv420p -c:v libx264 -preset ultrafast -tune zerolatency -g 100000 \
         -b:v {bitrate} -f null -"
    )
}

/// Pipes `frames` (tightly packed BGRA) through the ffmpeg CLI's libx264 into the null muxer.
fn run_cli(w: u32, h: u32, frames: &[VideoFrame], bitrate: u64) -> Result<(), String> {
    let mut child = Command::new("ffmpeg")
        .args(cli_args(&size_label(w, h), &bitrate.to_string()).split_whitespace())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "ffmpeg is not on PATH".to_string(),
            _ => format!("cannot start ffmpeg: {e}"),
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut write_error = None;
    for f in frames {
        if let Err(e) = stdin.write_all(&f.planes[0]) {
            write_error = Some(e);
            break;
        }
    }
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for ffmpeg: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "ffmpeg failed ({}): {}",
            out.status,
            stderr.lines().next().unwrap_or("")
        ));
    }
    if let Some(e) = write_error {
        return Err(format!("writing frames to ffmpeg: {e}"));
    }
    Ok(())
}

criterion_group! {
    name = benches;
    config = common::config(10);
    targets = bench
}
criterion_main!(benches);
