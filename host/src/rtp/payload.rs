//! The per-codec halves of RTP: a [`Payloader`] splits one encoded frame into RTP payloads (the
//! codec's payload descriptor plus its bytes); a [`Depacketizer`] puts a frame back together
//! from the payloads of one RTP frame, in sequence order, and says when what it got cannot be
//! a whole frame. Headers, timestamps and extensions are [`super::RtpPacketizer`]'s business.
//!
//! One implementation per codec: H.264 (RFC 6184, FU-A/STAP-A) and H.265 (RFC 7798) in
//! [`super::h26x`], VP8 (RFC 7741) in [`super::vp8`], VP9 (RFC 9628) in [`super::vp9`], AV1
//! (the AV1 RTP payload specification) in [`super::av1`]. [`payloader_for`] and
//! [`depacketizer_for`] pick one by codec.

use bytes::Bytes;
use codec::Codec;

/// What a payloader needs to know of the frame beyond its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// The frame can be decoded on its own (IDR, VP8/VP9 key frame, AV1 key frame with its
    /// sequence header).
    pub keyframe: bool,
    pub width: u32,
    pub height: u32,
}

/// Why a frame could not be packetized or put back together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The encoded frame is not valid for its codec (e.g. an OBU size past the end).
    #[error("malformed {codec} frame: {why}")]
    MalformedFrame { codec: Codec, why: String },
    /// The MTU leaves no room for payload after the descriptor.
    #[error("MTU {0} is too small")]
    MtuTooSmall(usize),
    /// A payload that does not parse, or that cannot follow the payloads before it (a
    /// continuation without its start, a frame that ends in the middle of a unit). The frame
    /// being assembled is broken; the depacketizer drops it and starts over.
    #[error("broken {codec} frame: {why}")]
    Broken { codec: Codec, why: String },
}

/// Splits encoded frames into RTP payloads of at most `mtu` bytes each. Stateful where the
/// format numbers pictures (VP8/VP9 picture IDs).
pub trait Payloader: Send + std::fmt::Debug {
    /// The payloads of one frame, in order (the last one gets the RTP marker bit).
    fn payload(
        &mut self,
        mtu: usize,
        frame: &Bytes,
        info: FrameInfo,
    ) -> Result<Vec<Bytes>, PayloadError>;
}

/// Reassembles one frame at a time from consecutive RTP payloads.
///
/// The caller feeds the payloads of one RTP timestamp in sequence order and calls
/// [`Depacketizer::reset`] when a packet is missing, when the timestamp changes before a
/// marker, or after an error. `marker` is the packet's RTP marker bit: with it the frame is
/// complete and is returned.
pub trait Depacketizer: Send {
    /// Takes one payload. `Ok(Some(frame))` on the marker packet of a frame that parsed whole:
    /// Annex B for H.264/H.265, the frame for VP8/VP9, a temporal unit of OBUs with size
    /// fields (low-overhead format, as FFmpeg's decoder takes it) for AV1.
    fn push(&mut self, payload: &[u8], marker: bool) -> Result<Option<Bytes>, PayloadError>;
    /// Forgets the frame in progress.
    fn reset(&mut self);
}

/// The payloader for `codec`.
pub fn payloader_for(codec: Codec) -> Box<dyn Payloader> {
    match codec {
        Codec::H264 => Box::new(super::h26x::H264::default()),
        Codec::Hevc => Box::new(super::h26x::H265),
        Codec::Vp8 => Box::new(super::vp8::Vp8Payloader::new(rand::random())),
        Codec::Vp9 => Box::new(super::vp9::Vp9Payloader::new(rand::random())),
        Codec::Av1 => Box::new(super::av1::Av1Payloader),
    }
}

/// The depacketizer for `codec`.
pub fn depacketizer_for(codec: Codec) -> Box<dyn Depacketizer> {
    match codec {
        Codec::H264 => Box::new(super::h26x::H264Depacketizer::default()),
        Codec::Hevc => Box::new(super::h26x::H265Depacketizer::default()),
        Codec::Vp8 => Box::new(super::vp8::Vp8Depacketizer::default()),
        Codec::Vp9 => Box::new(super::vp9::Vp9Depacketizer::default()),
        Codec::Av1 => Box::new(super::av1::Av1Depacketizer::default()),
    }
}
