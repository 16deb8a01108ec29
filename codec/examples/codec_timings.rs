//! Per-frame timings of the codec path on a moving synthetic desktop-like picture:
//! BGRA→I420 conversion (our SIMD path, the portable path, `dcv-color-primitives`, and
//! libswscale as the baseline) and libx264 encoding (as configured by `FfmpegEncoder`, with
//! auto and one thread), at 1280x720, 1920x1080 and 3840x2160. Also compares the x264
//! presets `ultrafast` and `superfast` (speed and PSNR at the same bitrate).
//!
//! ```text
//! cargo run --release -p edgedesk-codec --example codec_timings [frames]
//! ```

use std::time::{Duration, Instant};

use dcv_color_primitives as dcp;
use edgedesk_codec::convert::{bgra_to_i420_with, ConvertPath};
use edgedesk_codec::ffmpeg_backend::init_ffmpeg;
use edgedesk_codec::{
    Codec, Decoder, Encoder, EncoderSettings, FfmpegBackend, PixelFormat, VideoFrame,
};
use ffmpeg_next as ffmpeg;
use ffmpeg_next::software::scaling;

const SIZES: [(u32, u32, u64); 3] = [
    (1280, 720, 4_000_000),
    (1920, 1080, 8_000_000),
    (3840, 2160, 20_000_000),
];

fn main() {
    init_ffmpeg();
    let frames: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60);
    println!("{frames} frames per measurement; ms per frame as mean / p95\n");
    for (w, h, bitrate) in SIZES {
        let n = if w > 2000 { frames / 2 } else { frames };
        let pictures = Pictures::new(w, h);
        println!("== {w}x{h} ({n} frames)");
        conversions(&pictures, n);
        encodes(&pictures, n, bitrate);
        println!();
    }
}

/// A desktop-like picture: gradient, a scrolling block of "text", moving coloured windows.
struct Pictures {
    w: u32,
    h: u32,
    base: Vec<u8>,
}

impl Pictures {
    fn new(w: u32, h: u32) -> Self {
        let mut base = vec![0u8; (w * h * 4) as usize];
        let mut seed = 7u32;
        for y in 0..h {
            for x in 0..w {
                let o = ((y * w + x) * 4) as usize;
                let g = (x * 255 / w) as u8;
                let mut px = [g, (y * 255 / h) as u8, 200 - g / 2, 255];
                // "Text": dark glyph-like blocks in the left half.
                if x < w / 2 && (y / 16) % 2 == 0 {
                    if (x % 8) == 0 {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    }
                    if (seed >> 16) & 3 == 0 && (y % 16) > 3 && (x % 8) < 6 {
                        px = [20, 20, 20, 255];
                    }
                }
                base[o..o + 4].copy_from_slice(&px);
            }
        }
        Pictures { w, h, base }
    }

    /// Frame `n`: the text scrolls up one row per frame, three windows move.
    fn bgra(&self, n: u64) -> VideoFrame {
        let (w, h) = (self.w as usize, self.h as usize);
        let mut f = VideoFrame::new(PixelFormat::Bgra, self.w, self.h);
        let row = w * 4;
        let shift = (n as usize) % h;
        let dst = &mut f.planes[0];
        dst[..(h - shift) * row].copy_from_slice(&self.base[shift * row..]);
        dst[(h - shift) * row..].copy_from_slice(&self.base[..shift * row]);
        for (i, c) in [[0u8, 0, 255, 255], [0, 200, 0, 255], [255, 80, 0, 255]]
            .iter()
            .enumerate()
        {
            let s = h / 4;
            let x0 = (i * w / 3 + 4 * n as usize) % (w - s);
            let y0 = (i * h / 4 + 2 * n as usize) % (h - s);
            for y in y0..y0 + s {
                for x in x0..x0 + s {
                    dst[y * row + x * 4..y * row + x * 4 + 4].copy_from_slice(c);
                }
            }
        }
        f.sequence = n;
        f
    }

    fn i420(&self, n: u64) -> VideoFrame {
        let mut out = VideoFrame::new(PixelFormat::I420, self.w, self.h);
        bgra_to_i420_with(&self.bgra(n), &mut out, ConvertPath::Simd).unwrap();
        out
    }
}

/// Mean and p95 in milliseconds, leaving out the first three (warm-up) samples.
fn stats(d: Vec<Duration>) -> (f64, f64) {
    let warm = 3.min(d.len() - 1);
    let mut d: Vec<Duration> = d.into_iter().skip(warm).collect();
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    let mean = d.iter().map(|&x| ms(x)).sum::<f64>() / d.len() as f64;
    let p95 = ms(d[((d.len() as f64 * 0.95).ceil() as usize).clamp(1, d.len()) - 1]);
    (mean, p95)
}

fn report(label: &str, d: Vec<Duration>, extra: &str) {
    let (mean, p95) = stats(d);
    println!("  {label:<34} {mean:>7.2} / {p95:>7.2} ms {extra}");
}

fn conversions(p: &Pictures, n: u64) {
    let (w, h) = (p.w, p.h);
    let mut out = VideoFrame::new(PixelFormat::I420, w, h);
    for (label, path) in [
        ("BGRA->I420 simd (yuv crate)", ConvertPath::Simd),
        ("BGRA->I420 portable", ConvertPath::Portable),
    ] {
        let mut t = Vec::new();
        for i in 0..n {
            let src = p.bgra(i);
            let s = Instant::now();
            bgra_to_i420_with(&src, &mut out, path).unwrap();
            t.push(s.elapsed());
        }
        report(label, t, "");
    }

    // dcv-color-primitives (AWS), BT.601 limited.
    let src_fmt = dcp::ImageFormat {
        pixel_format: dcp::PixelFormat::Bgra,
        color_space: dcp::ColorSpace::Rgb,
        num_planes: 1,
    };
    let dst_fmt = dcp::ImageFormat {
        pixel_format: dcp::PixelFormat::I420,
        color_space: dcp::ColorSpace::Bt601,
        num_planes: 3,
    };
    let mut t = Vec::new();
    for i in 0..n {
        let src = p.bgra(i);
        let [y, u, v] = &mut out.planes[..] else {
            unreachable!()
        };
        let s = Instant::now();
        dcp::convert_image(
            w,
            h,
            &src_fmt,
            None,
            &[&src.planes[0]],
            &dst_fmt,
            None,
            &mut [y, u, v],
        )
        .unwrap();
        t.push(s.elapsed());
    }
    report("BGRA->I420 dcv-color-primitives", t, "");

    // libswscale baseline (BT.601 limited is its default matrix).
    for (label, flags) in [
        (
            "BGRA->I420 libswscale fast_bilinear",
            scaling::Flags::FAST_BILINEAR,
        ),
        ("BGRA->I420 libswscale point", scaling::Flags::POINT),
    ] {
        let mut ctx = scaling::Context::get(
            ffmpeg::format::Pixel::BGRA,
            w,
            h,
            ffmpeg::format::Pixel::YUV420P,
            w,
            h,
            flags,
        )
        .unwrap();
        let mut input = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::BGRA, w, h);
        let mut output = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, w, h);
        let mut t = Vec::new();
        for i in 0..n {
            let src = p.bgra(i);
            let stride = input.stride(0);
            let row = w as usize * 4;
            for (r, line) in src.planes[0].chunks_exact(row).enumerate() {
                input.data_mut(0)[r * stride..r * stride + row].copy_from_slice(line);
            }
            let s = Instant::now();
            ctx.run(&input, &mut output).unwrap();
            t.push(s.elapsed());
        }
        report(label, t, "");
    }
}

/// Y-plane PSNR between two I420 frames.
fn psnr_y(a: &VideoFrame, b: &VideoFrame) -> f64 {
    let (w, h) = (a.width as usize, a.height as usize);
    let mut se = 0f64;
    for y in 0..h {
        for x in 0..w {
            let d =
                a.planes[0][y * a.strides[0] + x] as f64 - b.planes[0][y * b.strides[0] + x] as f64;
            se += d * d;
        }
    }
    let mse = se / (w * h) as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

fn encodes(p: &Pictures, n: u64, bitrate: u64) {
    let inputs: Vec<VideoFrame> = (0..n.min(60)).map(|i| p.i420(i)).collect();
    for threads in [0, 1] {
        let s = EncoderSettings {
            codec: Codec::H264,
            width: p.w,
            height: p.h,
            fps: 60,
            bitrate_bps: bitrate,
            threads,
            ..Default::default()
        };
        let mut enc = FfmpegBackend::Libx264.open(&s).unwrap();
        let mut dec = Decoder::new(Codec::H264).unwrap();
        let (mut t, mut bytes, mut psnr) = (Vec::new(), 0usize, 0f64);
        for i in 0..n {
            let input = &inputs[(i as usize) % inputs.len()];
            let out = enc.encode(input, false).unwrap().unwrap();
            t.push(out.encode_time);
            bytes += out.data.len();
            psnr += psnr_y(input, &dec.decode(&out.data).unwrap()[0]);
        }
        let label = format!(
            "libx264 ultrafast threads={}",
            if threads == 0 {
                "auto(sliced)".to_string()
            } else {
                threads.to_string()
            }
        );
        let extra = format!(
            "{:.2} Mbit/s@60, Y-PSNR {:.1} dB, {}",
            bytes as f64 * 8.0 * 60.0 / n as f64 / 1e6,
            psnr / n as f64,
            enc.h264_profile_level_id().unwrap_or_default()
        );
        report(&label, t, &extra);
    }
    for preset in ["ultrafast", "superfast"] {
        let (t, mbps, psnr) = raw_x264(preset, &inputs, n, bitrate);
        report(
            &format!("raw libx264 {preset} baseline"),
            t,
            &format!("{mbps:.2} Mbit/s@60, Y-PSNR {psnr:.1} dB"),
        );
    }
}

/// libx264 through ffmpeg-next directly, to compare presets on equal terms (same options as
/// `FfmpegBackend::Libx264` except the preset).
fn raw_x264(
    preset: &str,
    inputs: &[VideoFrame],
    n: u64,
    bitrate: u64,
) -> (Vec<Duration>, f64, f64) {
    let (w, h) = (inputs[0].width, inputs[0].height);
    let codec = ffmpeg::encoder::find_by_name("libx264").unwrap();
    let mut video = ffmpeg::codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .unwrap();
    video.set_width(w);
    video.set_height(h);
    video.set_format(ffmpeg::format::Pixel::YUV420P);
    video.set_time_base((1, 60));
    video.set_max_b_frames(0);
    video.set_bit_rate(bitrate as usize);
    video.set_max_bit_rate(bitrate as usize);
    let mut opts = ffmpeg::Dictionary::new();
    for (k, v) in FfmpegBackend::Libx264.options(&EncoderSettings::default()) {
        match k {
            "preset" => opts.set(k, preset),
            // The VBV buffer (one frame) has no safe setter on the context; say it here.
            "x264-params" => opts.set(k, &format!("{v}:vbv-bufsize={}", bitrate / 60 / 1000)),
            _ => opts.set(k, &v),
        }
    }
    let mut enc = video.open_with(opts).unwrap();
    let mut dec = Decoder::new(Codec::H264).unwrap();
    let mut frame = ffmpeg::frame::Video::new(ffmpeg::format::Pixel::YUV420P, w, h);
    let mut packet = ffmpeg::Packet::empty();
    let (mut t, mut bytes, mut psnr) = (Vec::new(), 0usize, 0f64);
    let mut copies = Vec::new();
    for i in 0..n {
        let input = &inputs[(i as usize) % inputs.len()];
        let c = Instant::now();
        for p in 0..3 {
            let (row, rows) = input.plane_size(p);
            let stride = frame.stride(p);
            for r in 0..rows {
                frame.data_mut(p)[r * stride..r * stride + row]
                    .copy_from_slice(&input.planes[p][r * row..r * row + row]);
            }
        }
        copies.push(c.elapsed());
        frame.set_pts(Some(i as i64));
        let s = Instant::now();
        enc.send_frame(&frame).unwrap();
        enc.receive_packet(&mut packet).unwrap();
        t.push(s.elapsed());
        let data = packet.data().unwrap();
        bytes += data.len();
        psnr += psnr_y(input, &dec.decode(data).unwrap()[0]);
    }
    if preset == "ultrafast" {
        report("I420 copy into an AVFrame", copies, "");
    }
    (
        t,
        bytes as f64 * 8.0 * 60.0 / n as f64 / 1e6,
        psnr / n as f64,
    )
}
