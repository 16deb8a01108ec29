//! The [`Encoder`] trait every backend implements, its typed settings and its output.

use std::time::{Duration, Instant};

use crate::frame::{PixelFormat, VideoFrame};

/// Video codecs edgedesk can emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    H264,
    Hevc,
    Vp8,
    Vp9,
    Av1,
}

impl Codec {
    /// Every codec, in the default preference order: H.264 first (the fastest software
    /// encoder, so the lowest latency, and hardware everywhere), then VP9, AV1 (best
    /// compression of screen content, but libaom takes twice x264's time per frame), VP8, and
    /// HEVC last (Safari; Chromium here does not decode it).
    pub const ALL: [Codec; 5] = [Codec::H264, Codec::Vp9, Codec::Av1, Codec::Vp8, Codec::Hevc];

    /// The RTP/SDP mime type of this codec.
    pub fn mime_type(self) -> &'static str {
        match self {
            Codec::H264 => "video/H264",
            Codec::Hevc => "video/H265",
            Codec::Vp8 => "video/VP8",
            Codec::Vp9 => "video/VP9",
            Codec::Av1 => "video/AV1",
        }
    }

    /// The short name used in flags, the API and logs: `h264`, `h265`, `vp8`, `vp9`, `av1`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "h265",
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "av1",
        }
    }

    /// The codec of an SDP `a=rtpmap` encoding name (`H264`, `VP8`, `AV1`, ...), any case.
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.mime_type()[6..].eq_ignore_ascii_case(name))
    }

    /// Whether access units are Annex B NAL unit streams (H.264, HEVC).
    pub fn is_annex_b(self) -> bool {
        matches!(self, Codec::H264 | Codec::Hevc)
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    /// `h264`/`avc`, `h265`/`hevc`, `vp8`, `vp9`, `av1`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "h264" | "avc" | "h.264" => Ok(Codec::H264),
            "h265" | "hevc" | "h.265" => Ok(Codec::Hevc),
            "vp8" => Ok(Codec::Vp8),
            "vp9" => Ok(Codec::Vp9),
            "av1" => Ok(Codec::Av1),
            other => Err(format!(
                "unknown codec {other:?} (want one of h264, h265, vp8, vp9, av1)"
            )),
        }
    }
}

/// Parses a comma-separated codec list (`av1,h264,vp9`): no duplicates, at least one.
pub fn parse_codec_list(text: &str) -> Result<Vec<Codec>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let c: Codec = part.parse()?;
        if out.contains(&c) {
            return Err(format!("codec {c} is listed twice"));
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err("the codec list is empty".into());
    }
    Ok(out)
}

/// Rate control. Remote desktop wants constant bitrate with a VBV of about one frame so a
/// frame never takes longer than one frame interval to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateControl {
    /// Constant bitrate with a VBV buffer of `vbv_frames` frame intervals.
    Cbr { vbv_frames: u32 },
}

/// Typed encoder settings. Defaults: H.264, 1920x1080, 60 fps, 8 Mbit/s, CBR with a one-frame
/// VBV, no periodic keyframes (keyframes come on demand: viewer join, PLI), encoder-chosen
/// thread count.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSettings {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u64,
    pub rate_control: RateControl,
    /// Frames between forced keyframes; `None` = only on demand.
    pub keyframe_interval: Option<u32>,
    /// Encoder threads; 0 lets the backend choose.
    pub threads: u32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            codec: Codec::H264,
            width: 1920,
            height: 1080,
            fps: 60,
            bitrate_bps: 8_000_000,
            rate_control: RateControl::Cbr { vbv_frames: 1 },
            keyframe_interval: None,
            threads: 0,
        }
    }
}

impl EncoderSettings {
    /// Largest width or height any backend is asked to take (H.264 level 6.2 allows 8192).
    pub const MAX_DIMENSION: u32 = 8192;
    /// Highest frame rate accepted.
    pub const MAX_FPS: u32 = 240;
    /// Bitrate bounds accepted (bits per second).
    pub const BITRATE_RANGE: std::ops::RangeInclusive<u64> = 10_000..=1_000_000_000;

    /// Checks the settings every backend needs: width and height even (4:2:0 chroma; the
    /// encoders take no padding, so capture an even size or crop one pixel), between 2 and
    /// [`Self::MAX_DIMENSION`]; fps 1..=[`Self::MAX_FPS`]; bitrate within
    /// [`Self::BITRATE_RANGE`]; a VBV of at least one frame; a keyframe interval of at least one.
    /// Backends check their own, possibly smaller, size limits on top.
    pub fn validate(&self) -> Result<(), EncoderError> {
        let bad = |m: String| Err(EncoderError::InvalidSettings(m));
        let (w, h) = (self.width, self.height);
        if w < 2 || h < 2 || w > Self::MAX_DIMENSION || h > Self::MAX_DIMENSION {
            return bad(format!(
                "size {w}x{h} is outside 2x2..{m}x{m}",
                m = Self::MAX_DIMENSION
            ));
        }
        if w % 2 != 0 || h % 2 != 0 {
            return bad(format!(
                "size {w}x{h} is odd; 4:2:0 encoders need even width and height \
                 (crop the capture to {}x{})",
                w & !1,
                h & !1
            ));
        }
        if self.fps == 0 || self.fps > Self::MAX_FPS {
            return bad(format!("fps {} is outside 1..={}", self.fps, Self::MAX_FPS));
        }
        if !Self::BITRATE_RANGE.contains(&self.bitrate_bps) {
            return bad(format!(
                "bitrate {} bit/s is outside {}..={}",
                self.bitrate_bps,
                Self::BITRATE_RANGE.start(),
                Self::BITRATE_RANGE.end()
            ));
        }
        match self.rate_control {
            RateControl::Cbr { vbv_frames: 0 } => {
                return bad("the VBV must hold at least one frame".into())
            }
            RateControl::Cbr { .. } => {}
        }
        if self.keyframe_interval == Some(0) {
            return bad("keyframe interval 0; use None for keyframes on demand only".into());
        }
        Ok(())
    }
}

/// Control messages the host sends to its encode thread; applied between frames.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EncoderCommand {
    ForceKeyframe,
    SetBitrate(u64),
    SetFps(u32),
    /// The display changed size; the encoder is rebuilt at the new size.
    Resize {
        width: u32,
        height: u32,
    },
}

/// One encoded access unit.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// H.264/HEVC in Annex B (start codes), parameter sets before every keyframe; VP8 and VP9
    /// one frame each (no IVF or superframe index beyond what libvpx writes); AV1 one temporal
    /// unit of OBUs in the low-overhead format (every OBU with its size field), the sequence
    /// header before every keyframe. Shared: every viewer's packetizer reads the same bytes.
    pub data: bytes::Bytes,
    pub keyframe: bool,
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    /// Copied from the input frame.
    pub captured_at: Instant,
    pub sequence: u64,
    /// Wall time the backend spent on this frame (conversion excluded).
    pub encode_time: Duration,
}

/// Errors from encoders and the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncoderError {
    #[error("encoder backend {backend} is unavailable: {reason}")]
    Unavailable { backend: String, reason: String },
    #[error("invalid encoder settings: {0}")]
    InvalidSettings(String),
    #[error("frame does not match the encoder: {0}")]
    BadFrame(String),
    #[error("{backend} failed: {reason}")]
    Backend { backend: String, reason: String },
}

/// A video encoder. Implementations are driven from one thread; they must emit exactly one
/// access unit per input frame (no lookahead, no B-frames, no frame delay).
pub trait Encoder: Send {
    /// Backend name for logs and metrics, e.g. `ffmpeg:libx264`.
    fn name(&self) -> &str;
    /// The pixel format `encode` takes.
    fn input_format(&self) -> PixelFormat;
    /// Current settings.
    fn settings(&self) -> &EncoderSettings;
    /// Encode one frame. `force_keyframe` makes this frame an IDR with parameter sets.
    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncoderError>;
    /// Change the target bitrate while running.
    fn set_bitrate(&mut self, bps: u64) -> Result<(), EncoderError>;
    /// Change the nominal frame rate (rate control) while running.
    fn set_fps(&mut self, fps: u32) -> Result<(), EncoderError>;
}
