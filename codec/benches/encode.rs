//! Encoding a clip of N distinct BGRA frames (a moving desktop-like picture, see
//! `common::moving_frame`) with each codec: ours (BGRA → I420 with [`bgra_to_i420`], then the
//! encoder that `EncoderRegistry::probe()` + `open(.., Software)` gives, as the codec crate
//! configures it — for H.264 libx264 ultrafast, zerolatency, baseline, CBR with a one-frame
//! VBV, sliced threads) against the `ffmpeg` CLI with the same encoder fed the same raw frames
//! through a pipe. For H.264:
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
//! The other codecs run the CLI with the same encoder and its real-time settings (see
//! [`codec_args`]): libvpx/libvpx-vp9 `-deadline realtime -cpu-used 8 -lag-in-frames 0`,
//! libaom `-usage realtime -cpu-used 8 -aom-params cpu-used=10 -lag-in-frames 0 -row-mt 1`,
//! libx265 `-preset ultrafast -tune zerolatency`; ours adds its own screen-content and
//! error-resilience options on top. `EDGEDESK_BENCH_CODECS=h264,av1` picks codecs (default:
//! all five).
//!
//! Same libavcodec and encoders on both sides: the crate links the system FFmpeg the CLI uses.
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
    Codec, Encoder, EncoderPreference, EncoderRegistry, EncoderSettings, PixelFormat, VideoFrame,
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

/// The codecs to run: `EDGEDESK_BENCH_CODECS` (comma-separated) or all of [`Codec::ALL`].
fn codecs() -> Vec<Codec> {
    match std::env::var("EDGEDESK_BENCH_CODECS") {
        Ok(list) => edgedesk_codec::encoder::parse_codec_list(&list)
            .unwrap_or_else(|e| panic!("EDGEDESK_BENCH_CODECS: {e}")),
        Err(_) => Codec::ALL.to_vec(),
    }
}

fn bench(c: &mut Criterion) {
    let registry = EncoderRegistry::probe();
    let mut ratios = Ratios::new(
        "encode",
        "ms per frame (one iteration = a clip of N frames, / N), BGRA in, one codec out; \
         median of the per-iteration times of every iter_custom call but the first (own timing \
         inside criterion); the CLI figure includes process start-up, encoder open and the pipe",
    );
    for codec in codecs() {
        let cli = cli_available(codec);
        match &cli {
            Ok(()) => println!(
                "ffmpeg CLI baseline ({codec}): ffmpeg {}",
                cli_args(codec, "WxH", "BITRATE")
            ),
            Err(why) => println!("ffmpeg CLI baseline ({codec}) skipped: {why}"),
        }
        bench_codec(c, &registry, &mut ratios, codec, &cli);
    }
}

fn bench_codec(
    c: &mut Criterion,
    registry: &EncoderRegistry,
    ratios: &mut Ratios,
    codec: Codec,
    cli: &Result<(), String>,
) {
    for (w, h) in SIZES {
        let size = size_label(w, h);
        let (n, bitrate) = clip_params(w);
        // Built on first use, so a size filtered out costs nothing.
        let cell: OnceCell<Clip> = OnceCell::new();
        let clip = || cell.get_or_init(|| Clip::new(w, h, n));

        let mut group = c.benchmark_group(format!("encode-{codec}"));
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Elements(n as u64));

        let mut ours = Timing::default();
        let mut encoder: Option<Box<dyn Encoder>> = None;
        let mut backend = String::new();
        group.bench_function(BenchmarkId::new("edgedesk", &size), |b| {
            let clip = clip();
            let enc = encoder.get_or_insert_with(|| {
                let settings = EncoderSettings {
                    codec,
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
                        run_cli(codec, clip.w, clip.h, &clip.frames, bitrate).expect("ffmpeg CLI");
                    }
                    cli_timing.record(iters, start.elapsed())
                });
            });
        }
        group.finish();

        let per_frame = |t: &Timing| t.estimate().map(|d| ms(d) / n as f64);
        let backend_name = backend.clone();
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
                    run_cli(codec, w, h, &clip().frames[..1], bitrate).ok()?;
                    Some(s.elapsed())
                })
                .min();
            if let Some(one) = one {
                notes.push(("cli_one_frame_run_ms".into(), format!("{:.1}", ms(one))));
                println!(
                    "ffmpeg CLI one-frame run, {codec} at {size} (start-up, open, one keyframe): \
                     {:.1} ms, i.e. at most {:.2} ms of each frame's {:.2} ms",
                    ms(one),
                    ms(one) / n as f64,
                    per_frame(&cli_timing).unwrap_or_default()
                );
            }
        }
        ratios.add(Row {
            what: format!("encode {codec}"),
            width: w,
            height: h,
            ours: format!("edgedesk bgra_to_i420 + {backend_name} (registry, software)"),
            ours_ms: per_frame(&ours),
            baseline: format!("ffmpeg-cli {}", cli_encoder(codec)),
            baseline_ms: per_frame(&cli_timing),
            skipped: cli.as_ref().err().cloned(),
            notes,
        });
    }
}

/// Whether the CLI baseline can run: `ffmpeg` on `PATH` and able to encode a tiny clip with
/// the codec's encoder through the exact command the bench uses.
fn cli_available(codec: Codec) -> Result<(), String> {
    let probe = Clip::new(64, 64, 2);
    run_cli(codec, 64, 64, &probe.frames, 1_000_000)
}

/// The FFmpeg encoder the CLI uses for `codec` (the one the registry picks in software).
fn cli_encoder(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "libx264",
        Codec::Hevc => "libx265",
        Codec::Vp8 => "libvpx",
        Codec::Vp9 => "libvpx-vp9",
        Codec::Av1 => "libaom-av1",
    }
}

/// The CLI's encoder options for `codec`: the encoder's own real-time mode.
fn codec_args(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "-c:v libx264 -preset ultrafast -tune zerolatency -g 100000",
        Codec::Hevc => "-c:v libx265 -preset ultrafast -tune zerolatency -g 100000",
        Codec::Vp8 => "-c:v libvpx -deadline realtime -cpu-used 8 -lag-in-frames 0 -g 100000",
        Codec::Vp9 => {
            "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -lag-in-frames 0 -row-mt 1 -g 100000"
        }
        Codec::Av1 => {
            "-c:v libaom-av1 -usage realtime -cpu-used 8 -aom-params cpu-used=10 \
             -lag-in-frames 0 -row-mt 1 -g 100000"
        }
    }
}

/// The CLI's arguments, as in the module docs (plus `-nostdin`: no key handling on the pipe).
fn cli_args(codec: Codec, size: &str, bitrate: &str) -> String {
    format!(
        "-hide_banner -loglevel error -nostdin -f rawvideo -pix_fmt bgra -s {size} -r 60 -i - \
         -pix_fmt yuv420p {} -b:v {bitrate} -f null -",
        codec_args(codec)
    )
}

/// Pipes `frames` (tightly packed BGRA) through the ffmpeg CLI's encoder into the null muxer.
fn run_cli(
    codec: Codec,
    w: u32,
    h: u32,
    frames: &[VideoFrame],
    bitrate: u64,
) -> Result<(), String> {
    let mut child = Command::new("ffmpeg")
        .args(cli_args(codec, &size_label(w, h), &bitrate.to_string()).split_whitespace())
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
