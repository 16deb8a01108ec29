//! edgedesk host: owns a session's display, captures it, encodes it once and fans the encoded
//! frames out to every WebRTC viewer of the session.
//!
//! Frame path (no async, no queues): capture thread (X11 MIT-SHM, damage-driven) → newest-wins
//! slot → encode thread → broadcast → one tokio task per viewer (RTP packetizing, PLI → keyframe).
//! See `../shared/ARCHITECTURE.md`.

pub mod audio;
pub mod capture;
pub mod client;
pub mod clipboard;
pub mod control;
pub mod desktop;
pub mod display;
pub mod input;
pub mod metrics;
pub mod pipeline;
pub mod ratecontrol;
pub mod resize;
pub mod rtp;
pub mod screenshot;
pub mod session;
pub mod timing;
pub mod viewer;
