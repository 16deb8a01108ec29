//! Viewer input: the binary protocol that the browser client speaks on the WebRTC data channel
//! `input` (keyboard, pointer, touch, clipboard, resize, ping), decoded here without any I/O.
//! See `protocol` for the wire table.

pub mod dispatch;
pub mod inject;
pub mod keymap;
pub mod protocol;
