//! edgedesk codec layer: frame types, colour conversion, the [`Encoder`] trait, the encoder
//! [`registry`] and the backends behind it, plus a decoder for tests and the bench tool.
//!
//! Nothing here is async and nothing touches the network. The host's encode thread owns one
//! encoder per session and calls [`Encoder::encode`] with the newest captured frame; control
//! (keyframe, bitrate, fps) arrives as [`EncoderCommand`] values the host applies between frames.

#![deny(unsafe_code)]

pub mod bitstream;
pub mod convert;
pub mod damage;
pub mod decoder;
pub mod encoder;
pub mod ffmpeg_backend;
mod ffmpeg_ffi;
pub mod frame;
pub mod registry;
pub mod vpx_backend;
mod vpx_ffi;

pub use convert::ConvertError;
pub use damage::{Damage, DamageLog, Rect, RectSet};
pub use decoder::{DecodeError, Decoder};
pub use encoder::{
    Codec, EncodedFrame, Encoder, EncoderCommand, EncoderError, EncoderSettings, RateControl,
};
pub use ffmpeg_backend::{Capabilities, FfmpegBackend, FfmpegEncoder};
pub use frame::{PixelFormat, VideoFrame};
pub use registry::{BackendInfo, BackendStatus, EncoderPreference, EncoderRegistry};
pub use vpx_backend::{VpxBackend, VpxEncoder};
