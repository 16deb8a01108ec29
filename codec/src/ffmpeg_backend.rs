//! [`Encoder`] backends through FFmpeg (`ffmpeg-next`): libx264, libx265, libvpx (VP8, VP9)
//! and libaom (AV1) in software, NVENC (H.264, HEVC) and VAAPI (H.264) in hardware.
//!
//! # Latency settings
//! Every backend is configured to emit one access unit per input frame, right away: no
//! B-frames, no lookahead, no frame-parallel threads, CBR with a VBV of
//! [`RateControl::Cbr::vbv_frames`](crate::RateControl) frame intervals
//! (`vbv-maxrate = bitrate`, `vbv-bufsize = bitrate / fps * vbv_frames`), parameter sets
//! repeated before every IDR, Annex B output. [`Encoder::encode`] with `force_keyframe` makes
//! an IDR (`forced-idr`). The option mapping lives in one place, [`FfmpegBackend::options`].
//!
//! libx264: preset `ultrafast`, tune `zerolatency`, profile `baseline` (x264 writes it as
//! constrained baseline, `42c0xx`), `sliced-threads` (frame threads would delay output by one
//! frame per thread; threads "auto" = one per core, at most [`MAX_AUTO_THREADS`]),
//! `scenecut=0` (keyframes only on demand or on the interval).
//!
//! # Changing rate while running
//! - **Bitrate**: libx264 and NVENC re-read bitrate/VBV from the codec context on the next
//!   frame (`x264_encoder_reconfig` / `nvEncReconfigureEncoder`), so [`Encoder::set_bitrate`]
//!   costs nothing and does not force a keyframe. libx265 and VAAPI cannot: the encoder is
//!   reopened before the next frame, which then is an IDR.
//! - **Frame rate**: rate control gives each frame `bitrate / fps` bits. Rather than reopen,
//!   [`Encoder::set_fps`] keeps the frame rate the encoder was opened with (`F0`) and scales
//!   the bitrate handed to it by `F0 / fps`, which yields exactly `bitrate / fps` bits per
//!   frame and a VBV of `vbv_frames` frames at the new rate. (The SPS timing info keeps `F0`;
//!   WebRTC receivers ignore it.) Backends without live reconfiguration reopen at the new fps.
//!
//! # Sizes
//! Width and height must be even (see [`EncoderSettings::validate`]): the encoders take no
//! padding, so the host captures an even size or crops one pixel. Sizes beyond a backend's
//! [`Capabilities`] are [`EncoderError::InvalidSettings`].

use std::path::Path;
use std::time::Instant;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, color, encoder, format::Pixel, frame, picture, Dictionary, Packet};

use crate::bitstream;
use crate::damage::Rect;
use crate::encoder::{Codec, EncodedFrame, Encoder, EncoderError, EncoderSettings, RateControl};
use crate::ffmpeg_ffi::{self, VaapiFrames};
use crate::frame::{PixelFormat, VideoFrame};

/// Initialises FFmpeg once per process (codecs, log level `warning`, log routed into
/// `tracing` under target `ffmpeg`). Every constructor here calls it; calling it again is free.
pub fn init_ffmpeg() {
    ffmpeg_ffi::init();
}

/// What a backend can do, reported by the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Codecs the backend emits.
    pub codecs: Vec<Codec>,
    /// Runs on a GPU / fixed-function encoder.
    pub hardware: bool,
    /// The pixel format [`Encoder::encode`] takes.
    pub input_format: PixelFormat,
    /// Largest width and height accepted.
    pub max_width: u32,
    pub max_height: u32,
    /// Bitrate and fps changes apply without reopening the encoder (no forced IDR).
    pub live_reconfigure: bool,
}

/// The FFmpeg encoders edgedesk drives. [`FfmpegBackend::ALL`] is the probe order: hardware
/// first, software last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FfmpegBackend {
    /// NVIDIA NVENC, H.264 (`h264_nvenc`).
    H264Nvenc,
    /// NVIDIA NVENC, HEVC (`hevc_nvenc`).
    HevcNvenc,
    /// VAAPI (Intel/AMD), H.264 (`h264_vaapi`), on the first DRM render node.
    H264Vaapi,
    /// x264 in software (`libx264`).
    Libx264,
    /// x265 in software (`libx265`); for HEVC without a GPU (Safari, the bench tool).
    Libx265,
    /// libvpx VP8 in software (`libvpx`).
    Libvpx,
    /// libvpx VP9 in software (`libvpx-vp9`).
    LibvpxVp9,
    /// libaom AV1 in software (`libaom-av1`), real-time mode. (SVT-AV1 is faster, but
    /// FFmpeg 5.1's wrapper hands a frame out only when the next one is sent: one frame of
    /// delay, unbounded on a damage-driven stream.)
    Libaom,
}

impl FfmpegBackend {
    /// Every backend, in probe order (hardware first).
    pub const ALL: [FfmpegBackend; 8] = [
        FfmpegBackend::H264Nvenc,
        FfmpegBackend::HevcNvenc,
        FfmpegBackend::H264Vaapi,
        FfmpegBackend::Libx264,
        FfmpegBackend::Libx265,
        FfmpegBackend::Libvpx,
        FfmpegBackend::LibvpxVp9,
        FfmpegBackend::Libaom,
    ];

    /// The FFmpeg encoder name, e.g. `libx264`.
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            FfmpegBackend::H264Nvenc => "h264_nvenc",
            FfmpegBackend::HevcNvenc => "hevc_nvenc",
            FfmpegBackend::H264Vaapi => "h264_vaapi",
            FfmpegBackend::Libx264 => "libx264",
            FfmpegBackend::Libx265 => "libx265",
            FfmpegBackend::Libvpx => "libvpx",
            FfmpegBackend::LibvpxVp9 => "libvpx-vp9",
            FfmpegBackend::Libaom => "libaom-av1",
        }
    }

    /// The backend name used in logs, metrics and [`Encoder::name`], e.g. `ffmpeg:libx264`.
    pub fn name(self) -> &'static str {
        match self {
            FfmpegBackend::H264Nvenc => "ffmpeg:h264_nvenc",
            FfmpegBackend::HevcNvenc => "ffmpeg:hevc_nvenc",
            FfmpegBackend::H264Vaapi => "ffmpeg:h264_vaapi",
            FfmpegBackend::Libx264 => "ffmpeg:libx264",
            FfmpegBackend::Libx265 => "ffmpeg:libx265",
            FfmpegBackend::Libvpx => "ffmpeg:libvpx",
            FfmpegBackend::LibvpxVp9 => "ffmpeg:libvpx-vp9",
            FfmpegBackend::Libaom => "ffmpeg:libaom-av1",
        }
    }

    /// Looks a backend up by [`name`](Self::name) or FFmpeg name (`ffmpeg:libx264`, `libx264`).
    pub fn from_name(name: &str) -> Option<Self> {
        let bare = name.strip_prefix("ffmpeg:").unwrap_or(name);
        Self::ALL.into_iter().find(|b| b.ffmpeg_name() == bare)
    }

    /// The codec this backend emits.
    pub fn codec(self) -> Codec {
        match self {
            FfmpegBackend::HevcNvenc | FfmpegBackend::Libx265 => Codec::Hevc,
            FfmpegBackend::Libvpx => Codec::Vp8,
            FfmpegBackend::LibvpxVp9 => Codec::Vp9,
            FfmpegBackend::Libaom => Codec::Av1,
            FfmpegBackend::H264Nvenc | FfmpegBackend::H264Vaapi | FfmpegBackend::Libx264 => {
                Codec::H264
            }
        }
    }

    /// Whether the backend encodes on a GPU.
    pub fn is_hardware(self) -> bool {
        matches!(
            self,
            FfmpegBackend::H264Nvenc | FfmpegBackend::HevcNvenc | FfmpegBackend::H264Vaapi
        )
    }

    /// Capabilities (static: what the backend supports when present).
    pub fn capabilities(self) -> Capabilities {
        let (max_width, max_height) = match self {
            // NVENC H.264 tops out at 4096 on every generation.
            FfmpegBackend::H264Nvenc | FfmpegBackend::H264Vaapi => (4096, 4096),
            // VP8 frame headers hold 14-bit sizes.
            FfmpegBackend::Libvpx => (16383, 16383),
            _ => (
                EncoderSettings::MAX_DIMENSION,
                EncoderSettings::MAX_DIMENSION,
            ),
        };
        Capabilities {
            codecs: vec![self.codec()],
            hardware: self.is_hardware(),
            input_format: self.input_format(),
            max_width,
            max_height,
            live_reconfigure: matches!(
                self,
                FfmpegBackend::Libx264 | FfmpegBackend::H264Nvenc | FfmpegBackend::HevcNvenc
            ),
        }
    }

    /// The pixel format [`Encoder::encode`] takes: I420, except VAAPI (NV12 surfaces).
    pub fn input_format(self) -> PixelFormat {
        match self {
            FfmpegBackend::H264Vaapi => PixelFormat::Nv12,
            _ => PixelFormat::I420,
        }
    }

    /// Opens an encoder. Equivalent to [`FfmpegEncoder::open`].
    pub fn open(self, settings: &EncoderSettings) -> Result<FfmpegEncoder, EncoderError> {
        FfmpegEncoder::open(self, settings)
    }

    /// Checks the backend really works here: opens it at 640x360 and encodes one frame.
    /// A missing driver or device is [`EncoderError::Unavailable`] with FFmpeg's reason.
    pub fn probe(self) -> Result<(), EncoderError> {
        let settings = EncoderSettings {
            codec: self.codec(),
            width: 640,
            height: 360,
            fps: 30,
            bitrate_bps: 1_000_000,
            ..EncoderSettings::default()
        };
        let mut enc = self.open(&settings)?;
        let frame = VideoFrame::new(self.input_format(), settings.width, settings.height);
        match enc.encode(&frame, true)? {
            Some(_) => Ok(()),
            None => Err(EncoderError::Unavailable {
                backend: self.name().into(),
                reason: "the probe frame produced no output".into(),
            }),
        }
    }

    /// The FFmpeg private options for `settings`: the one place typed settings become
    /// FFmpeg/encoder option strings. (Bitrate, VBV, GOP, pixel format and colour signalling
    /// go on the codec context, see `configure_context`.)
    pub fn options(self, settings: &EncoderSettings) -> Vec<(&'static str, String)> {
        let keyint = settings.keyframe_interval;
        match self {
            FfmpegBackend::Libx264 => {
                let keyint = keyint.map_or("infinite".to_string(), |k| k.to_string());
                vec![
                    ("preset", "ultrafast".into()),
                    ("tune", "zerolatency".into()),
                    ("profile", "baseline".into()),
                    ("forced-idr", "1".into()),
                    (
                        "x264-params",
                        format!(
                            "bframes=0:rc-lookahead=0:sync-lookahead=0:sliced-threads=1:\
                             repeat-headers=1:annexb=1:aud=0:scenecut=0:keyint={keyint}"
                        ),
                    ),
                ]
            }
            FfmpegBackend::Libx265 => {
                let keyint = keyint.map_or("-1".to_string(), |k| k.to_string());
                vec![
                    ("preset", "ultrafast".into()),
                    ("tune", "zerolatency".into()),
                    ("forced-idr", "1".into()),
                    (
                        "x265-params",
                        format!(
                            "bframes=0:rc-lookahead=0:frame-threads=1:repeat-headers=1:open-gop=0:\
                             annexb=1:aud=0:scenecut=0:keyint={keyint}:log-level=error"
                        ),
                    ),
                ]
            }
            FfmpegBackend::H264Nvenc | FfmpegBackend::HevcNvenc => {
                let profile = if self == FfmpegBackend::H264Nvenc {
                    "baseline"
                } else {
                    "main"
                };
                vec![
                    ("preset", "p1".into()),
                    ("tune", "ull".into()),
                    ("zerolatency", "1".into()),
                    ("delay", "0".into()),
                    ("rc", "cbr".into()),
                    ("rc-lookahead", "0".into()),
                    ("forced-idr", "1".into()),
                    ("no-scenecut", "1".into()),
                    ("profile", profile.into()),
                ]
            }
            FfmpegBackend::H264Vaapi => vec![
                ("rc_mode", "CBR".into()),
                ("profile", "constrained_baseline".into()),
                ("async_depth", "1".into()),
                ("aud", "0".into()),
            ],
            FfmpegBackend::Libvpx | FfmpegBackend::LibvpxVp9 => {
                let vp9 = self == FfmpegBackend::LibvpxVp9;
                let mut o = vec![
                    ("deadline", "realtime".into()),
                    // Fastest real-time speed (VP8 takes up to 16, VP9 up to 9; 8 is the
                    // fastest both run well at: VP9's 9 drops detail on text).
                    ("cpu-used", "8".into()),
                    ("lag-in-frames", "0".into()),
                    ("auto-alt-ref", "0".into()),
                    // Every frame decodable after a lost one with the same references.
                    ("error-resilient", "1".into()),
                    // Skip macroblocks whose difference is under the threshold: unchanged
                    // desktop areas cost nothing.
                    ("static-thresh", "100".into()),
                    ("undershoot-pct", "95".into()),
                    ("overshoot-pct", "25".into()),
                    ("max-intra-rate", "300".into()),
                    ("noise-sensitivity", "0".into()),
                ];
                if vp9 {
                    o.extend([
                        ("row-mt", "1".into()),
                        ("tile-columns", vp9_tile_columns(settings.width).to_string()),
                        ("frame-parallel", "0".into()),
                        // Cyclic refresh: the real-time adaptive quantisation.
                        ("aq-mode", "3".into()),
                        ("tune-content", "screen".into()),
                    ]);
                } else {
                    o.push(("screen-content-mode", "1".into()));
                }
                o
            }
            FfmpegBackend::Libaom => vec![
                ("usage", "realtime".into()),
                ("lag-in-frames", "0".into()),
                ("row-mt", "1".into()),
                ("tile-columns", av1_tile_columns(settings.width).to_string()),
                // Cyclic refresh, skipped static blocks, screen-content tools (palette).
                ("aq-mode", "3".into()),
                ("static-thresh", "100".into()),
                ("enable-palette", "1".into()),
                ("undershoot-pct", "95".into()),
                ("overshoot-pct", "25".into()),
                ("cpu-used", "8".into()),
                // FFmpeg 5.1 caps its own cpu-used at 8; libaom's real-time mode goes to
                // 10 (≈ 20 % faster at 1080p here for the same size).
                ("aom-params", "cpu-used=10:tune-content=screen".into()),
            ],
        }
    }
}

/// log2 of the VP9 tile columns for a width: one per 256-pixel-wide tile minimum, at most 6
/// (64 columns), so row multi-threading has columns to share out at 4K and 8K.
fn vp9_tile_columns(width: u32) -> u32 {
    let mut log2 = 0;
    while log2 < 6 && (width >> (log2 + 1)) >= 256 {
        log2 += 1;
    }
    log2.min(4)
}

/// log2 of AV1 tile columns: 1 at 1080p, 2 at 4K, 3 at 8K.
fn av1_tile_columns(width: u32) -> u32 {
    match width {
        0..=1280 => 0,
        1281..=2560 => 1,
        2561..=4096 => 2,
        _ => 3,
    }
}

/// An open FFmpeg encoder. Driven from one thread; see the module docs for its settings.
pub struct FfmpegEncoder {
    backend: FfmpegBackend,
    name: String,
    settings: EncoderSettings,
    state: Open,
    /// Reopen before the next frame (bitrate/fps change on a backend without live reconfig).
    reopen: bool,
    /// `profile-level-id` of the last SPS emitted.
    profile_level_id: Option<String>,
    frames_in: u64,
    empty_outputs: u64,
}

/// The FFmpeg objects of one open encoder.
struct Open {
    enc: encoder::Video,
    /// Reused input picture (software format).
    picture: frame::Video,
    vaapi: Option<VaapiFrames>,
    packet: Packet,
    /// The fps the encoder was opened with; rate control is scaled against it.
    opened_fps: u32,
    pts: i64,
    /// The sequence of the frame `picture` holds (0: none), so a frame whose
    /// [`VideoFrame::damage`] is relative to it is copied in by its changed rectangles only.
    picture_seq: u64,
}

// `encoder::video::Encoder` is Send (ffmpeg-next), as are frames, packets and VaapiFrames.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<FfmpegEncoder>();
};

impl FfmpegEncoder {
    /// Opens `backend` with `settings`. Invalid or out-of-range settings are
    /// [`EncoderError::InvalidSettings`]; a hardware backend whose driver or device is missing
    /// is [`EncoderError::Unavailable`] with FFmpeg's own reason.
    pub fn open(backend: FfmpegBackend, settings: &EncoderSettings) -> Result<Self, EncoderError> {
        init_ffmpeg();
        settings.validate()?;
        let caps = backend.capabilities();
        if !caps.codecs.contains(&settings.codec) {
            return Err(EncoderError::InvalidSettings(format!(
                "{} encodes {:?}, not {:?}",
                backend.name(),
                backend.codec(),
                settings.codec
            )));
        }
        if settings.width > caps.max_width || settings.height > caps.max_height {
            return Err(EncoderError::InvalidSettings(format!(
                "{}x{} exceeds {}'s maximum {}x{}",
                settings.width,
                settings.height,
                backend.name(),
                caps.max_width,
                caps.max_height
            )));
        }
        let state = Open::new(backend, settings)?;
        tracing::debug!(
            backend = backend.name(),
            width = settings.width,
            height = settings.height,
            fps = settings.fps,
            bitrate = settings.bitrate_bps,
            "encoder opened"
        );
        Ok(FfmpegEncoder {
            backend,
            name: backend.name().to_string(),
            settings: settings.clone(),
            state,
            reopen: false,
            profile_level_id: None,
            frames_in: 0,
            empty_outputs: 0,
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> FfmpegBackend {
        self.backend
    }

    /// The H.264 `profile-level-id` the stream actually carries (from the last SPS emitted),
    /// or, before the first keyframe, the one libx264 will choose
    /// ([`h264_profile_level_id_for`]). `None` for HEVC, and for hardware H.264 before its
    /// first keyframe.
    pub fn h264_profile_level_id(&self) -> Option<String> {
        if self.settings.codec != Codec::H264 {
            return None;
        }
        self.profile_level_id.clone().or_else(|| {
            (self.backend == FfmpegBackend::Libx264)
                .then(|| h264_profile_level_id_for(&self.settings))
        })
    }

    /// Reopens the encoder with the current settings (the next frame is an IDR).
    fn reopen(&mut self) -> Result<(), EncoderError> {
        tracing::debug!(
            backend = self.name,
            "reopening encoder for new rate settings"
        );
        self.state = Open::new(self.backend, &self.settings)?;
        self.reopen = false;
        Ok(())
    }

    /// Applies the current bitrate/fps to the running encoder, or schedules a reopen.
    fn apply_rate(&mut self) {
        if self.backend.capabilities().live_reconfigure {
            let Open {
                enc, opened_fps, ..
            } = &mut self.state;
            set_rate(enc, &self.settings, *opened_fps);
        } else {
            self.reopen = true;
        }
    }

    fn backend_error(&self, what: &str, e: ffmpeg::Error) -> EncoderError {
        EncoderError::Backend {
            backend: self.name.clone(),
            reason: format!("{what}: {e}"),
        }
    }
}

impl Open {
    fn new(backend: FfmpegBackend, settings: &EncoderSettings) -> Result<Self, EncoderError> {
        let unavailable = |reason: String| EncoderError::Unavailable {
            backend: backend.name().into(),
            reason,
        };
        let codec = encoder::find_by_name(backend.ffmpeg_name()).ok_or_else(|| {
            unavailable(format!(
                "this FFmpeg build has no {} encoder",
                backend.ffmpeg_name()
            ))
        })?;
        let vaapi =
            if backend == FfmpegBackend::H264Vaapi {
                let device = vaapi_render_node()
                    .ok_or_else(|| unavailable("no DRM render node (/dev/dri/renderD*)".into()))?;
                let (frames, log) = ffmpeg_ffi::capture_log(|| {
                    VaapiFrames::new(&device, settings.width, settings.height)
                });
                Some(frames.map_err(|e| {
                    unavailable(explain(&format!("VAAPI device {device}: {e}"), &log))
                })?)
            } else {
                None
            };
        let (opened, log) = ffmpeg_ffi::capture_log(|| -> Result<_, ffmpeg::Error> {
            let mut ctx = codec::Context::new_with_codec(codec);
            if !backend.is_hardware() {
                // The wrapper hands this to x264/x265 as their thread count; x264 uses slice
                // threads (set in the options), x265 frame-threads=1.
                ctx.set_threading(ffmpeg::threading::Config {
                    kind: ffmpeg::threading::Type::Slice,
                    count: software_threads(settings.threads, available_cores()),
                    ..Default::default()
                });
            }
            if let Some(v) = &vaapi {
                v.attach(&mut ctx)?;
            }
            let mut video = ctx.encoder().video()?;
            configure_context(&mut video, backend, settings);
            let mut opts = Dictionary::new();
            for (k, v) in backend.options(settings) {
                opts.set(k, &v);
            }
            video.open_with(opts)
        });
        let enc = opened.map_err(|e| {
            let reason = explain(&e.to_string(), &log);
            if backend.is_hardware() {
                unavailable(reason)
            } else {
                EncoderError::Backend {
                    backend: backend.name().into(),
                    reason: format!("open failed: {reason}"),
                }
            }
        })?;
        for line in &log {
            tracing::warn!(target: "ffmpeg", backend = backend.name(), "{line}");
        }
        let sw = match backend.input_format() {
            PixelFormat::Nv12 => Pixel::NV12,
            _ => Pixel::YUV420P,
        };
        Ok(Open {
            enc,
            picture: frame::Video::new(sw, settings.width, settings.height),
            vaapi,
            packet: Packet::empty(),
            opened_fps: settings.fps,
            pts: 0,
            picture_seq: 0,
        })
    }
}

/// Most slice threads chosen automatically. Each x264 slice thread gets its share of the
/// one-frame VBV; with many slices the first IDR starves (measured: 8 slices at 1080p and
/// 6 Mbit/s decoded as a flat grey first frame, 2-4 slices were clean).
pub const MAX_AUTO_THREADS: u32 = 4;

/// Software encoder threads for a `requested` count (0 = auto: one per core, at most
/// [`MAX_AUTO_THREADS`]).
fn software_threads(requested: u32, cores: usize) -> usize {
    if requested == 0 {
        cores.clamp(1, MAX_AUTO_THREADS as usize)
    } else {
        requested as usize
    }
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Codec-context fields common to all backends: size, pixel format, time base, GOP, no
/// B-frames, BT.601 limited-range signalling, rate control.
fn configure_context(
    video: &mut encoder::video::Video,
    backend: FfmpegBackend,
    settings: &EncoderSettings,
) {
    video.set_width(settings.width);
    video.set_height(settings.height);
    video.set_format(match backend {
        FfmpegBackend::H264Vaapi => Pixel::VAAPI,
        _ => Pixel::YUV420P,
    });
    video.set_time_base((1, settings.fps as i32));
    video.set_frame_rate(Some((settings.fps as i32, 1)));
    video.set_max_b_frames(0);
    // On demand only: the largest GOP FFmpeg passes on (libx264 takes `keyint` from its
    // params, which say `infinite`).
    video.set_gop(settings.keyframe_interval.unwrap_or(i32::MAX as u32));
    video.set_colorspace(color::Space::SMPTE170M);
    video.set_color_range(color::Range::MPEG);
    video.set_color_primaries(color::Primaries::SMPTE170M);
    video.set_color_transfer_characteristic(color::TransferCharacteristic::SMPTE170M);
    set_rate(video, settings, settings.fps);
}

/// Bitrate, VBV maximum rate and buffer for `settings`, scaled to an encoder opened at
/// `opened_fps` (see "Changing rate while running" in the module docs).
fn set_rate(enc: &mut encoder::Encoder, settings: &EncoderSettings, opened_fps: u32) {
    let (bitrate, buffer) = rate_for(settings, opened_fps);
    enc.set_bit_rate(bitrate as usize);
    enc.set_max_bit_rate(bitrate as usize);
    // min = max = target: libvpx runs CBR only then.
    ffmpeg_ffi::set_rc_min_rate(enc, bitrate);
    ffmpeg_ffi::set_rc_buffer_size(enc, buffer);
}

/// (bitrate to configure, VBV buffer bits) for `settings` on an encoder opened at
/// `opened_fps`.
fn rate_for(settings: &EncoderSettings, opened_fps: u32) -> (u64, i32) {
    let RateControl::Cbr { vbv_frames } = settings.rate_control;
    let fps = settings.fps.max(1) as u64;
    let bitrate = settings.bitrate_bps * opened_fps as u64 / fps;
    let buffer = settings.bitrate_bps * vbv_frames as u64 / fps;
    (bitrate, buffer.min(i32::MAX as u64) as i32)
}

/// The first DRM render node, if any.
fn vaapi_render_node() -> Option<String> {
    let mut nodes: Vec<String> = std::fs::read_dir(Path::new("/dev/dri"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.contains("renderD"))
        .collect();
    nodes.sort();
    nodes.into_iter().next()
}

/// What FFmpeg logged while failing, then its error code, e.g. "Cannot load libcuda.so.1
/// (Operation not permitted)". The `[encoder @ 0x...]` prefixes are dropped.
fn explain(error: &str, log: &[String]) -> String {
    let said: Vec<&str> = log
        .iter()
        .map(|l| match (l.starts_with('['), l.find("] ")) {
            (true, Some(end)) => &l[end + 2..],
            _ => l.as_str(),
        })
        .collect();
    if said.is_empty() {
        error.to_string()
    } else {
        format!("{} ({error})", said.join("; "))
    }
}

impl Encoder for FfmpegEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn input_format(&self) -> PixelFormat {
        self.backend.input_format()
    }

    fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncoderError> {
        let format = self.backend.input_format();
        if frame.format != format
            || frame.width != self.settings.width
            || frame.height != self.settings.height
        {
            return Err(EncoderError::BadFrame(format!(
                "{}: got {:?} {}x{}, expected {:?} {}x{}",
                self.name,
                frame.format,
                frame.width,
                frame.height,
                format,
                self.settings.width,
                self.settings.height
            )));
        }
        let planes = match format {
            PixelFormat::Nv12 => 2,
            _ => 3,
        };
        if frame.planes.len() < planes || frame.strides.len() < planes {
            return Err(EncoderError::BadFrame(format!(
                "{:?} frame with {} planes",
                format,
                frame.planes.len()
            )));
        }
        let started = Instant::now();
        let force = force_keyframe || self.reopen;
        if self.reopen {
            self.reopen()?;
        }
        let st = &mut self.state;
        ffmpeg_ffi::make_writable(&mut st.picture).map_err(|e| EncoderError::Backend {
            backend: self.name.clone(),
            reason: format!("input frame: {e}"),
        })?;
        // Only the changed rectangles when the picture holds the frame they are relative to
        // (whole 2x2 chroma blocks, so chroma rows and columns are halves of luma's).
        let whole = [Rect::new(0, 0, frame.width, frame.height)];
        let rects = match &frame.damage {
            Some(d) if st.picture_seq != 0 && d.since == st.picture_seq => &d.rects[..],
            _ => &whole[..],
        };
        for i in 0..planes {
            let (row, rows) = frame.plane_size(i);
            let (src, sstride) = (&frame.planes[i], frame.strides[i]);
            if sstride < row || src.len() < sstride * (rows - 1) + row {
                return Err(EncoderError::BadFrame(format!(
                    "plane {i}: {} bytes with stride {sstride} cannot hold {rows} rows of {row}",
                    src.len()
                )));
            }
            let dstride = st.picture.stride(i);
            let dst = st.picture.data_mut(i);
            for r in rects {
                let r = r.align_even(frame.width, frame.height);
                // Bytes and rows of this plane the rectangle covers.
                let (x0, x1, y0, y1) = match (i, format) {
                    (0, _) => (r.x, r.x + r.w, r.y, r.y + r.h),
                    (_, PixelFormat::Nv12) => (
                        r.x,
                        r.x + r.w.div_ceil(2) * 2,
                        r.y / 2,
                        (r.y + r.h).div_ceil(2),
                    ),
                    _ => (
                        r.x / 2,
                        r.x / 2 + r.w.div_ceil(2),
                        r.y / 2,
                        (r.y + r.h).div_ceil(2),
                    ),
                };
                let (x0, x1) = (x0 as usize, (x1 as usize).min(row));
                for y in y0 as usize..(y1 as usize).min(rows) {
                    dst[y * dstride + x0..y * dstride + x1]
                        .copy_from_slice(&src[y * sstride + x0..y * sstride + x1]);
                }
            }
        }
        st.picture_seq = frame.sequence;
        st.picture.set_pts(Some(st.pts));
        st.pts += 1;
        st.picture.set_kind(if force {
            picture::Type::I
        } else {
            picture::Type::None
        });
        let sent = match &st.vaapi {
            Some(v) => v.upload(&st.picture).and_then(|mut hw| {
                hw.set_pts(st.picture.pts());
                hw.set_kind(st.picture.kind());
                st.enc.send_frame(&hw)
            }),
            None => st.enc.send_frame(&st.picture),
        };
        sent.map_err(|e| self.backend_error("send_frame", e))?;

        let mut data = Vec::new();
        let mut units = 0;
        let mut packet_key = false;
        loop {
            match self.state.enc.receive_packet(&mut self.state.packet) {
                Ok(()) => {
                    units += 1;
                    // Read now: the next receive_packet empties the packet first.
                    packet_key |= self.state.packet.is_key();
                    data.extend_from_slice(self.state.packet.data().unwrap_or_default());
                }
                Err(ffmpeg::Error::Other {
                    errno: ffmpeg::error::EAGAIN,
                }) => break,
                Err(ffmpeg::Error::Eof) => break,
                Err(e) => return Err(self.backend_error("receive_packet", e)),
            }
        }
        let encode_time = started.elapsed();
        self.frames_in += 1;
        match units {
            1 => {}
            0 => {
                self.empty_outputs += 1;
                tracing::warn!(
                    backend = self.name,
                    frame = self.frames_in,
                    empty = self.empty_outputs,
                    "encoder buffered a frame instead of emitting it"
                );
                return Ok(None);
            }
            n => tracing::warn!(
                backend = self.name,
                units = n,
                "several access units for one frame"
            ),
        }
        let codec = self.settings.codec;
        let keyframe = if codec.is_annex_b() {
            bitstream::is_decodable_keyframe(codec, &data)
        } else {
            packet_key
        };
        if keyframe && codec == Codec::H264 {
            self.profile_level_id = bitstream::h264_profile_level_id(&data);
        }
        Ok(Some(EncodedFrame {
            data: data.into(),
            keyframe,
            codec,
            width: self.settings.width,
            height: self.settings.height,
            captured_at: frame.captured_at,
            sequence: frame.sequence,
            encode_time,
        }))
    }

    fn set_bitrate(&mut self, bps: u64) -> Result<(), EncoderError> {
        if !EncoderSettings::BITRATE_RANGE.contains(&bps) {
            return Err(EncoderError::InvalidSettings(format!(
                "bitrate {bps} bit/s is outside {:?}",
                EncoderSettings::BITRATE_RANGE
            )));
        }
        if bps != self.settings.bitrate_bps {
            self.settings.bitrate_bps = bps;
            self.apply_rate();
        }
        Ok(())
    }

    fn set_fps(&mut self, fps: u32) -> Result<(), EncoderError> {
        if fps == 0 || fps > EncoderSettings::MAX_FPS {
            return Err(EncoderError::InvalidSettings(format!(
                "fps {fps} is outside 1..={}",
                EncoderSettings::MAX_FPS
            )));
        }
        if fps != self.settings.fps {
            self.settings.fps = fps;
            self.apply_rate();
        }
        Ok(())
    }
}

/// The H.264 `profile-level-id` libx264 writes for `settings` with this module's options:
/// constrained baseline (`42c0`) and the lowest level whose limits (H.264 Table A-1: frame
/// size, macroblock rate, VBV rate and buffer) the stream fits, as x264 picks it. Use it in
/// SDP before the first frame exists; [`FfmpegEncoder::h264_profile_level_id`] reports the
/// real one afterwards. (A later [`Encoder::set_bitrate`] or `set_fps` does not change the
/// level in the stream.)
pub fn h264_profile_level_id_for(settings: &EncoderSettings) -> String {
    format!("42c0{:02x}", h264_level_idc(settings))
}

/// The `level_idc` x264 chooses for `settings` (see [`h264_profile_level_id_for`]).
pub fn h264_level_idc(settings: &EncoderSettings) -> u8 {
    // (level_idc, max MB/s, max frame size in MBs, max bitrate kbit/s, max CPB kbit)
    const LEVELS: [(u8, u64, u64, u64, u64); 19] = [
        (10, 1_485, 99, 64, 175),
        (9, 1_485, 99, 128, 350),
        (11, 3_000, 396, 192, 500),
        (12, 6_000, 396, 384, 1_000),
        (13, 11_880, 396, 768, 2_000),
        (20, 11_880, 396, 2_000, 2_000),
        (21, 19_800, 792, 4_000, 4_000),
        (22, 20_250, 1_620, 4_000, 4_000),
        (30, 40_500, 1_620, 10_000, 10_000),
        (31, 108_000, 3_600, 14_000, 14_000),
        (32, 216_000, 5_120, 20_000, 20_000),
        (40, 245_760, 8_192, 20_000, 25_000),
        (41, 245_760, 8_192, 50_000, 62_500),
        (42, 522_240, 8_704, 50_000, 62_500),
        (50, 589_824, 22_080, 135_000, 135_000),
        (51, 983_040, 36_864, 240_000, 240_000),
        (52, 2_073_600, 36_864, 240_000, 240_000),
        (60, 4_177_920, 139_264, 240_000, 240_000),
        (61, 8_355_840, 139_264, 480_000, 480_000),
    ];
    let mbw = settings.width.div_ceil(16) as u64;
    let mbh = settings.height.div_ceil(16) as u64;
    let mbs = mbw * mbh;
    let (bitrate, buffer) = rate_for(settings, settings.fps);
    let (kbps, kbuf) = (bitrate / 1000, buffer as u64 / 1000);
    let mbps = mbs * settings.fps as u64;
    LEVELS
        .iter()
        .find(|&&(_, max_mbps, max_fs, max_br, max_cpb)| {
            mbs <= max_fs
                && mbw * mbw <= max_fs * 8
                && mbh * mbh <= max_fs * 8
                && mbps <= max_mbps
                && kbps <= max_br
                && kbuf <= max_cpb
        })
        .map_or(62, |l| l.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in FfmpegBackend::ALL {
            assert_eq!(FfmpegBackend::from_name(b.name()), Some(b));
            assert_eq!(FfmpegBackend::from_name(b.ffmpeg_name()), Some(b));
        }
        assert_eq!(FfmpegBackend::from_name("ffmpeg:nope"), None);
        assert!(
            FfmpegBackend::ALL
                .iter()
                .rposition(|b| b.is_hardware())
                .unwrap()
                < FfmpegBackend::ALL
                    .iter()
                    .position(|b| !b.is_hardware())
                    .unwrap()
        );
    }

    #[test]
    fn auto_threads_are_capped() {
        assert_eq!(software_threads(0, 2), 2);
        assert_eq!(software_threads(0, 16), MAX_AUTO_THREADS as usize);
        assert_eq!(software_threads(0, 0), 1);
        assert_eq!(software_threads(8, 2), 8);
    }

    #[test]
    fn rate_scaling_keeps_bits_per_frame() {
        let mut s = EncoderSettings {
            fps: 60,
            bitrate_bps: 6_000_000,
            ..Default::default()
        };
        assert_eq!(rate_for(&s, 60), (6_000_000, 100_000));
        s.fps = 30;
        // Opened at 60: 12 Mbit/s at 60 fps = 200 kbit per frame = 6 Mbit/s at 30 fps.
        assert_eq!(rate_for(&s, 60), (12_000_000, 200_000));
    }

    #[test]
    fn levels_follow_table_a1() {
        let level = |w, h, fps, br| {
            h264_level_idc(&EncoderSettings {
                width: w,
                height: h,
                fps,
                bitrate_bps: br,
                ..Default::default()
            })
        };
        assert_eq!(level(1280, 720, 30, 4_000_000), 31);
        assert_eq!(level(1920, 1080, 60, 8_000_000), 42);
        assert_eq!(level(1920, 1080, 30, 8_000_000), 40);
        assert_eq!(level(3840, 2160, 30, 20_000_000), 51);
        assert_eq!(level(3840, 2160, 60, 20_000_000), 52);
        assert_eq!(level(320, 240, 30, 500_000), 13);
    }
}
