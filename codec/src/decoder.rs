//! An FFmpeg decoder of every codec edgedesk sends (H.264, HEVC, VP8, VP9 and AV1 through
//! dav1d), for tests and the bench tool.
//!
//! Configured for low delay: `AV_CODEC_FLAG_LOW_DELAY`, one thread (frame threading would hold
//! a frame per thread). For streams without B-frames (everything edgedesk sends) feeding access
//! unit *n* returns picture *n* from the same [`Decoder::decode`] call; the tests check this.

use std::time::Instant;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::{codec, decoder, format::Pixel, frame, Packet};

use crate::encoder::Codec;
use crate::ffmpeg_ffi;
use crate::frame::{PixelFormat, VideoFrame};

/// Why decoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// FFmpeg has no decoder for this codec, or it failed to open.
    #[error("no {codec:?} decoder: {reason}")]
    Unavailable { codec: Codec, reason: String },
    /// The data could not be decoded.
    #[error("decoding failed: {0}")]
    Invalid(String),
    /// The decoder produced a picture in a format we do not copy out (not 8-bit 4:2:0).
    #[error("decoded picture has unsupported pixel format {0}")]
    UnsupportedFormat(String),
}

/// A low-delay software decoder returning tightly packed I420 [`VideoFrame`]s.
pub struct Decoder {
    codec: Codec,
    dec: decoder::Video,
    picture: frame::Video,
    frames_out: u64,
}

impl Decoder {
    /// Opens FFmpeg's software decoder for `codec`.
    pub fn new(codec: Codec) -> Result<Self, DecodeError> {
        ffmpeg_ffi::init();
        let unavailable = |reason: String| DecodeError::Unavailable { codec, reason };
        let found = match codec {
            Codec::H264 => decoder::find(codec::Id::H264),
            Codec::Hevc => decoder::find(codec::Id::HEVC),
            Codec::Vp8 => decoder::find(codec::Id::VP8),
            Codec::Vp9 => decoder::find(codec::Id::VP9),
            // FFmpeg 5.1's own AV1 decoder needs a hardware accelerator; dav1d decodes in
            // software.
            Codec::Av1 => decoder::find_by_name("libdav1d"),
        }
        .ok_or_else(|| unavailable("not in this FFmpeg".into()))?;
        let mut ctx = codec::Context::new_with_codec(found);
        ctx.set_flags(codec::Flags::LOW_DELAY);
        ctx.set_threading(ffmpeg::threading::Config {
            kind: ffmpeg::threading::Type::None,
            count: 1,
            ..Default::default()
        });
        let dec = ctx
            .decoder()
            .video()
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(Decoder {
            codec,
            dec,
            picture: frame::Video::empty(),
            frames_out: 0,
        })
    }

    /// The codec this decoder takes.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one encoded frame (for H.264/HEVC any whole number of Annex B access units) and returns the pictures
    /// that came out, as I420 frames with `sequence` counting decoded pictures from 0 and
    /// `captured_at` set to the moment each came out.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Vec<VideoFrame>, DecodeError> {
        if frame.is_empty() {
            return Ok(Vec::new());
        }
        let packet = Packet::copy(frame);
        self.dec
            .send_packet(&packet)
            .map_err(|e| DecodeError::Invalid(e.to_string()))?;
        self.drain()
    }

    /// Signals end of stream and returns any pictures still held; the decoder is then reset
    /// and can take a new stream.
    pub fn flush(&mut self) -> Result<Vec<VideoFrame>, DecodeError> {
        self.dec
            .send_eof()
            .map_err(|e| DecodeError::Invalid(e.to_string()))?;
        let out = self.drain();
        self.dec.flush();
        out
    }

    fn drain(&mut self) -> Result<Vec<VideoFrame>, DecodeError> {
        let mut out = Vec::new();
        loop {
            match self.dec.receive_frame(&mut self.picture) {
                Ok(()) => {
                    let mut f = copy_out(&self.picture)?;
                    f.sequence = self.frames_out;
                    self.frames_out += 1;
                    out.push(f);
                }
                Err(ffmpeg::Error::Other {
                    errno: ffmpeg::error::EAGAIN,
                }) => break,
                Err(ffmpeg::Error::Eof) => break,
                Err(e) => return Err(DecodeError::Invalid(e.to_string())),
            }
        }
        Ok(out)
    }
}

/// Copies a decoded 8-bit 4:2:0 picture into a tightly packed I420 frame.
fn copy_out(picture: &frame::Video) -> Result<VideoFrame, DecodeError> {
    match picture.format() {
        Pixel::YUV420P | Pixel::YUVJ420P => {}
        other => return Err(DecodeError::UnsupportedFormat(format!("{other:?}"))),
    }
    let mut f = VideoFrame::new(PixelFormat::I420, picture.width(), picture.height());
    for i in 0..3 {
        let (row, rows) = f.plane_size(i);
        let (src, stride) = (picture.data(i), picture.stride(i));
        for (r, dst) in f.planes[i].chunks_exact_mut(row).take(rows).enumerate() {
            dst.copy_from_slice(&src[r * stride..r * stride + row]);
        }
    }
    f.captured_at = Instant::now();
    Ok(f)
}
