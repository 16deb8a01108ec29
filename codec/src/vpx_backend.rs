//! VP9 through libvpx directly (`vpx:vp9`), for one thing FFmpeg 5.1's
//! wrapper cannot pass on: the **active map**. Each frame's [`VideoFrame::damage`] becomes a
//! map of the 16x16 macroblocks that may have changed; libvpx codes the others as skipped
//! without analysing them, so the encoder's cost follows what changed on the desktop instead
//! of the screen's size (the way Chrome Remote Desktop drives libvpx). A frame whose damage is
//! unknown, or relative to a frame the encoder did not see, and every keyframe, has all
//! macroblocks active.
//!
//! Settings (libvpx's real-time mode, as the FFmpeg backend sets them): one-pass CBR with a
//! buffer of `vbv_frames` frame intervals, no lag, error resilient, keyframes only on demand
//! (or every `keyframe_interval`), speed `cpu-used` 8, static-block threshold, no noise
//! reduction, screen-content tuning, cyclic-refresh AQ (it also recodes a few inactive blocks
//! a frame, so static areas keep improving after a starved keyframe), row multithreading and
//! tile columns. Bitrate and frame rate change live through `vpx_codec_enc_config_set` (no
//! keyframe).
//!
//! VP8 stays on FFmpeg's wrapper: driven directly with the same settings, its rate control
//! did not come down to a 2 Mbit/s target on 1080p noise (42 kB frames where FFmpeg's make
//! 5 kB), and the cause was not found.

use std::time::Instant;

use vpx_sys::vp8e_enc_control_id as C;

use crate::damage::Rect;
use crate::encoder::{Codec, EncodedFrame, Encoder, EncoderError, EncoderSettings, RateControl};
use crate::ffmpeg_backend::Capabilities;
use crate::frame::{PixelFormat, VideoFrame};
use crate::vpx_ffi::{VpxCodec, VpxConfig, VpxContext};

/// The direct libvpx backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VpxBackend {
    Vp9,
}

impl VpxBackend {
    /// Probe order among themselves.
    pub const ALL: [VpxBackend; 1] = [VpxBackend::Vp9];

    pub fn name(self) -> &'static str {
        match self {
            VpxBackend::Vp9 => "vpx:vp9",
        }
    }

    pub fn codec(self) -> Codec {
        match self {
            VpxBackend::Vp9 => Codec::Vp9,
        }
    }

    pub fn capabilities(self) -> Capabilities {
        Capabilities {
            codecs: vec![self.codec()],
            hardware: false,
            input_format: PixelFormat::I420,
            max_width: 8192,
            max_height: 8192,
            live_reconfigure: true,
        }
    }

    /// Opens a small encoder and encodes one frame.
    pub fn probe(self) -> Result<(), EncoderError> {
        let settings = EncoderSettings {
            codec: self.codec(),
            width: 64,
            height: 64,
            ..EncoderSettings::default()
        };
        let mut enc = self.open(&settings)?;
        let frame = VideoFrame::new(PixelFormat::I420, 64, 64);
        match enc.encode(&frame, true)? {
            Some(_) => Ok(()),
            None => Err(EncoderError::Unavailable {
                backend: self.name().into(),
                reason: "the probe frame produced no output".into(),
            }),
        }
    }

    pub fn open(self, settings: &EncoderSettings) -> Result<VpxEncoder, EncoderError> {
        settings.validate()?;
        if settings.codec != self.codec() {
            return Err(EncoderError::InvalidSettings(format!(
                "{} encodes {:?}, not {:?}",
                self.name(),
                self.codec(),
                settings.codec
            )));
        }
        let caps = self.capabilities();
        if settings.width > caps.max_width || settings.height > caps.max_height {
            return Err(EncoderError::InvalidSettings(format!(
                "{} takes at most {}x{}, not {}x{}",
                self.name(),
                caps.max_width,
                caps.max_height,
                settings.width,
                settings.height
            )));
        }
        let ctx = self
            .context(settings)
            .map_err(|reason| EncoderError::Unavailable {
                backend: self.name().into(),
                reason,
            })?;
        Ok(VpxEncoder {
            backend: self,
            settings: settings.clone(),
            ctx,
            pts: 0,
            last_seq: 0,
            map: Vec::new(),
        })
    }

    fn context(self, s: &EncoderSettings) -> Result<VpxContext, String> {
        let RateControl::Cbr { vbv_frames } = s.rate_control;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let threads = if s.threads == 0 {
            cores.clamp(1, 8)
        } else {
            s.threads
        };
        let mut ctx = VpxContext::open(&VpxConfig {
            codec: match self {
                VpxBackend::Vp9 => VpxCodec::Vp9,
            },
            width: s.width,
            height: s.height,
            fps: s.fps,
            bitrate_kbps: kbps(s.bitrate_bps),
            buffer_ms: (vbv_frames * 1000 / s.fps).max(1),
            threads,
            keyframe_interval: s.keyframe_interval,
        })?;
        ctx.control(C::VP8E_SET_STATIC_THRESHOLD, 100)?;
        ctx.control(C::VP8E_SET_MAX_INTRA_BITRATE_PCT, 300)?;
        match self {
            VpxBackend::Vp9 => {
                ctx.control(C::VP8E_SET_CPUUSED, 8)?;
                ctx.control(C::VP9E_SET_TUNE_CONTENT, 1)?; // VP9E_CONTENT_SCREEN
                ctx.control(C::VP9E_SET_AQ_MODE, 3)?;
                ctx.control(C::VP9E_SET_ROW_MT, 1)?;
                ctx.control(C::VP9E_SET_TILE_COLUMNS, vp9_tile_columns(s.width))?;
                ctx.control(C::VP9E_SET_FRAME_PARALLEL_DECODING, 0)?;
                ctx.control(C::VP9E_SET_NOISE_SENSITIVITY, 0)?;
            }
        }
        Ok(ctx)
    }
}

/// log2 of VP9 tile columns: at least 256 pixels per column, at most 16 columns.
fn vp9_tile_columns(width: u32) -> i32 {
    let mut log2 = 0;
    while log2 < 4 && (width >> (log2 + 1)) >= 256 {
        log2 += 1;
    }
    log2
}

fn kbps(bps: u64) -> u32 {
    (bps / 1000).clamp(1, u64::from(u32::MAX)) as u32
}

/// An open direct-libvpx encoder.
pub struct VpxEncoder {
    backend: VpxBackend,
    settings: EncoderSettings,
    ctx: VpxContext,
    pts: i64,
    /// The sequence of the last frame encoded (0: none), which a frame's damage must be
    /// relative to for its active map to be used.
    last_seq: u64,
    /// Reused active-map buffer.
    map: Vec<u8>,
}

impl VpxEncoder {
    /// The active map for `frame`: `None` when every macroblock must be coded.
    fn active_map(&mut self, frame: &VideoFrame, keyframe: bool) -> Option<(u32, u32)> {
        let d = frame.damage.as_ref()?;
        if keyframe || self.last_seq == 0 || d.since != self.last_seq {
            return None;
        }
        let (rows, cols) = (self.ctx.mb_rows(), self.ctx.mb_cols());
        self.map.clear();
        self.map.resize((rows * cols) as usize, 0);
        mark_macroblocks(&mut self.map, cols, &d.rects, frame.width, frame.height);
        Some((rows, cols))
    }
}

/// Sets to 1 every 16x16 macroblock of a `cols`-wide map that a rectangle touches.
fn mark_macroblocks(map: &mut [u8], cols: u32, rects: &[Rect], width: u32, height: u32) {
    for r in rects {
        let r = r.clip(width, height);
        if r.is_empty() {
            continue;
        }
        let (c0, c1) = (r.x / 16, (r.x + r.w - 1) / 16);
        let (r0, r1) = (r.y / 16, (r.y + r.h - 1) / 16);
        for row in r0..=r1 {
            let start = (row * cols + c0) as usize;
            map[start..=start + (c1 - c0) as usize].fill(1);
        }
    }
}

impl Encoder for VpxEncoder {
    fn name(&self) -> &str {
        self.backend.name()
    }

    fn input_format(&self) -> PixelFormat {
        PixelFormat::I420
    }

    fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, EncoderError> {
        let (width, height) = (self.settings.width, self.settings.height);
        if frame.format != PixelFormat::I420
            || (frame.width, frame.height) != (width, height)
            || frame.planes.len() < 3
            || frame.strides.len() < 3
        {
            return Err(EncoderError::BadFrame(format!(
                "{}: got {:?} {}x{} with {} planes, expected I420 {}x{}",
                self.backend.name(),
                frame.format,
                frame.width,
                frame.height,
                frame.planes.len(),
                width,
                height
            )));
        }
        let started = Instant::now();
        let keyframe = force_keyframe || self.pts == 0;
        let name = self.backend.name();
        let backend_error = |reason: String| EncoderError::Backend {
            backend: name.into(),
            reason,
        };
        let active = self.active_map(frame, keyframe);
        let map = active.map(|(rows, cols)| (&mut self.map[..], rows, cols));
        self.ctx.set_active_map(map).map_err(backend_error)?;
        let planes = [
            &frame.planes[0][..],
            &frame.planes[1][..],
            &frame.planes[2][..],
        ];
        let strides = [frame.strides[0], frame.strides[1], frame.strides[2]];
        let packets = self
            .ctx
            .encode(planes, strides, self.pts, keyframe)
            .map_err(backend_error)?;
        self.pts += 1;
        self.last_seq = frame.sequence;
        let mut data = Vec::new();
        let mut key = false;
        for p in packets {
            key |= p.keyframe;
            data.extend_from_slice(&p.data);
        }
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data: data.into(),
            keyframe: key,
            codec: self.backend.codec(),
            width,
            height,
            captured_at: frame.captured_at,
            sequence: frame.sequence,
            encode_time: started.elapsed(),
        }))
    }

    fn set_bitrate(&mut self, bps: u64) -> Result<(), EncoderError> {
        let mut s = self.settings.clone();
        s.bitrate_bps = bps;
        s.validate()?;
        self.ctx
            .set_rate(kbps(bps), s.fps)
            .map_err(|reason| EncoderError::Backend {
                backend: self.backend.name().into(),
                reason,
            })?;
        self.settings = s;
        Ok(())
    }

    fn set_fps(&mut self, fps: u32) -> Result<(), EncoderError> {
        let mut s = self.settings.clone();
        s.fps = fps;
        s.validate()?;
        self.ctx
            .set_rate(kbps(s.bitrate_bps), fps)
            .map_err(|reason| EncoderError::Backend {
                backend: self.backend.name().into(),
                reason,
            })?;
        self.settings = s;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangles_mark_the_macroblocks_they_touch() {
        // 64x48 picture: 4 x 3 macroblocks.
        let mut map = vec![0u8; 12];
        mark_macroblocks(
            &mut map,
            4,
            &[Rect::new(15, 0, 2, 1), Rect::new(40, 40, 100, 100)],
            64,
            48,
        );
        assert_eq!(map, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        // Off-picture and empty rectangles mark nothing.
        let mut map = vec![0u8; 12];
        mark_macroblocks(
            &mut map,
            4,
            &[Rect::new(70, 0, 5, 5), Rect::new(0, 0, 0, 9)],
            64,
            48,
        );
        assert!(map.iter().all(|&b| b == 0));
    }

    #[test]
    fn tile_columns_follow_the_width() {
        assert_eq!(vp9_tile_columns(640), 1);
        assert_eq!(vp9_tile_columns(1920), 2);
        assert_eq!(vp9_tile_columns(7680), 4);
    }
}
