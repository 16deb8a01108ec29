//! The input protocol: binary messages on the WebRTC data channel `input` (channel protocol
//! string [`CHANNEL_PROTOCOL`]). One data-channel message carries one protocol message: a 1-byte
//! opcode, then fixed little-endian fields. Pure code: no I/O, no clocks, no `unsafe`.
//!
//! The same table, with test vectors, lives in `client-web/input-protocol.json`; the host's
//! `tests/input_protocol.rs` fails if this doc table, this code or that file disagree, and the
//! client's `tests/input-protocol.test.mjs` does the same for `client-web/input-protocol.js`.
//!
//! Field types: `u8`/`u16`/`u32` unsigned, `i16` signed, `f64` IEEE-754 (must be finite),
//! `str16`/`str32` a `u16`/`u32` byte length followed by that many bytes of UTF-8.
//!
//! Client → host (opcodes `0x01`–`0x3f`):
//!
//! | opcode | message      | payload after the opcode                                     | meaning |
//! |--------|--------------|--------------------------------------------------------------|---------|
//! | `0x01` | `keyDown`    | `code: u16`                                                  | physical key pressed; index into [`KEY_CODES`] (`KeyboardEvent.code`) |
//! | `0x02` | `keyUp`      | `code: u16`                                                  | physical key released |
//! | `0x03` | `text`       | `text: str16`                                                | characters to type as they are (IME, compose, characters the keymap lacks); at most [`Limits::max_text_bytes`] |
//! | `0x04` | `keysymDown` | `code: u16, keysym: u32`                                     | the key `code` was pressed and makes X keysym `keysym` (1..=0x1fffffff) in the *client's* layout; the host types that keysym and holds it until `keyUp` of `code` |
//! | `0x05` | `locks`      | `flags: u8`                                                  | the client's lock keys: bit 0 Caps Lock, bit 1 Num Lock (other bits 0); the host makes the desktop's locks match |
//! | `0x10` | `pointerAbs` | `x: u16, y: u16, width: u16, height: u16`                    | pointer at (x, y) of a `width`×`height` video; `x < width`, `y < height` |
//! | `0x11` | `pointerRel` | `dx: i16, dy: i16`                                           | relative motion (pointer lock); + is right/down |
//! | `0x12` | `buttonDown` | `button: u8`                                                 | 0 left, 1 middle, 2 right, 3 back, 4 forward (as `MouseEvent.button`) |
//! | `0x13` | `buttonUp`   | `button: u8`                                                 | as `buttonDown` |
//! | `0x14` | `wheel`      | `dx: i16, dy: i16`                                           | scroll in 1/120 notch units ([`WHEEL_NOTCH`]); + is right/down, as DOM `WheelEvent` |
//! | `0x18` | `touch`      | `phase: u8, id: u8, x: u16, y: u16, width: u16, height: u16` | phase 0 start, 1 move, 2 end, 3 cancel; `id` tells fingers apart; coordinates as `pointerAbs` |
//! | `0x20` | `clipboard`  | `text: str32`                                                | client clipboard text for the host (the end of it, after any `clipboardPart`s); at most [`Limits::max_clipboard_bytes`] in all |
//! | `0x21` | `resize`     | `width: u16, height: u16, dprPercent: u16`                   | wanted display size in device pixels and `devicePixelRatio`×100; all non-zero |
//! | `0x22` | `clipboardPart` | `text: str32`                                             | the leading part of a clipboard text too long for one message (see below) |
//! | `0x30` | `ping`       | `seq: u32, clientTime: f64`                                  | host answers `pong` at once; `clientTime` in ms on the client's clock |
//! | `0x31` | `heartbeat`  | —                                                            | "still here": a controlling peer that stops sending anything has its keys released |
//! | `0x32` | `releaseAll` | —                                                            | the client lost focus: release every key and button it holds |
//!
//! Host → client (opcodes `0x80`–`0xbf`):
//!
//! | opcode | message        | payload after the opcode                          | meaning |
//! |--------|----------------|---------------------------------------------------|---------|
//! | `0x80` | `pong`         | `seq: u32, clientTime: f64, hostTime: f64`        | echo of a `ping`, plus the host's Unix time in ms |
//! | `0x81` | `clipboard`    | `text: str32`                                     | host clipboard text for the client (the end of it, after any `clipboardPart`s) |
//! | `0x82` | `resizeResult` | `status: u8, width: u16, height: u16`             | status 0 applied, 1 scaled by client (display stays `width`×`height`), 2 refused |
//! | `0x83` | `notice`       | `code: u8`                                        | 1 view-only, 2 clipboard off, 3 clipboard too large, 4 malformed, 5 rate limited; clients must accept unknown codes |
//! | `0x84` | `clipboardPart` | `text: str32`                                    | the leading part of a clipboard text too long for one message |
//! | `0x85` | `clock`        | `rtpTimestamp: u32, unixMs: f64`                  | the viewer's video RTP timestamp `rtpTimestamp` (90 kHz, capture time) is Unix time `unixMs` on the host: with `pong`'s clock offset, a client turns a shown frame's RTP timestamp into glass-to-glass |
//! | `0x86` | `linkStats`    | `estimateBps: u32, encoderBps: u32`               | about once a second under congestion control: the host's bandwidth estimate for this viewer and the bitrate the session's encoder is set to (bit/s; 0 = not known yet) |
//!
//! Long clipboard texts: a data-channel message is at most 64 KiB by default (256 KiB at
//! most in webrtc-rs and Chromium), so a sender splits a text longer than
//! [`CLIPBOARD_PART_BYTES`] at character boundaries into `clipboardPart` messages followed by
//! one `clipboard` message with the rest; the receiver joins them ([`ClipboardAssembler`]).
//! The cap applies to the joined text.
//!
//! Compatibility rules (the table is append-only): never renumber an opcode, reorder
//! [`KEY_CODES`] or an enum, or change an existing layout. A decoder rejects trailing bytes, so a
//! message never grows: a new need gets a new opcode, and an old peer drops it as
//! [`DecodeError::UnknownOpcode`] (the host counts and ignores such messages; the channel stays).
//! Every decoder checks the message size first (`Truncated`, `TrailingBytes`, `TooLong`), then
//! the contents (`BadUtf8`, `OutOfRange`), so one input always gives the same error on both sides.

use std::fmt;

/// Protocol version; bumped only for an incompatible change, which also changes
/// [`CHANNEL_PROTOCOL`].
pub const VERSION: u8 = 1;
/// The `protocol` string of the `input` data channel (`RTCDataChannelInit.protocol`).
pub const CHANNEL_PROTOCOL: &str = "edgedesk-input/1";
/// Default cap on a `text` message's UTF-8 bytes.
pub const DEFAULT_MAX_TEXT_BYTES: usize = 4096;
/// Default cap on a `clipboard` message's UTF-8 bytes (1 MiB).
pub const DEFAULT_MAX_CLIPBOARD_BYTES: usize = control::DEFAULT_MAX_CLIPBOARD_BYTES;
/// Most UTF-8 bytes a sender puts in one `clipboard`/`clipboardPart` message (fits the
/// default 64 KiB data-channel message size with room to spare).
pub const CLIPBOARD_PART_BYTES: usize = 60 * 1024;
/// Wheel units in one notch of a classic mouse wheel (like Windows' `WHEEL_DELTA`); smaller
/// deltas from trackpads accumulate on the host.
pub const WHEEL_NOTCH: i16 = 120;
/// `locks` flag: Caps Lock is on.
pub const LOCK_CAPS: u8 = 1;
/// `locks` flag: Num Lock is on.
pub const LOCK_NUM: u8 = 2;
/// The largest X keysym (keysyms are 29-bit values).
pub const MAX_KEYSYM: u32 = 0x1fff_ffff;

/// Opcodes, as in the table at the top of this module.
pub mod op {
    pub const KEY_DOWN: u8 = 0x01;
    pub const KEY_UP: u8 = 0x02;
    pub const TEXT: u8 = 0x03;
    pub const KEYSYM_DOWN: u8 = 0x04;
    pub const LOCKS: u8 = 0x05;
    pub const POINTER_ABS: u8 = 0x10;
    pub const POINTER_REL: u8 = 0x11;
    pub const BUTTON_DOWN: u8 = 0x12;
    pub const BUTTON_UP: u8 = 0x13;
    pub const WHEEL: u8 = 0x14;
    pub const TOUCH: u8 = 0x18;
    pub const CLIPBOARD: u8 = 0x20;
    pub const RESIZE: u8 = 0x21;
    pub const CLIPBOARD_PART: u8 = 0x22;
    pub const PING: u8 = 0x30;
    pub const HEARTBEAT: u8 = 0x31;
    pub const RELEASE_ALL: u8 = 0x32;

    pub const PONG: u8 = 0x80;
    pub const HOST_CLIPBOARD: u8 = 0x81;
    pub const RESIZE_RESULT: u8 = 0x82;
    pub const NOTICE: u8 = 0x83;
    pub const HOST_CLIPBOARD_PART: u8 = 0x84;
    pub const CLOCK: u8 = 0x85;
    pub const LINK_STATS: u8 = 0x86;
}

/// Size caps a decoder enforces, configurable per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most UTF-8 bytes in one `text` message (default [`DEFAULT_MAX_TEXT_BYTES`]).
    pub max_text_bytes: usize,
    /// Most UTF-8 bytes in one `clipboard` message (default [`DEFAULT_MAX_CLIPBOARD_BYTES`]).
    pub max_clipboard_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
            max_clipboard_bytes: DEFAULT_MAX_CLIPBOARD_BYTES,
        }
    }
}

/// `KeyboardEvent.code` values by wire index. Append-only: the order is part of the protocol.
#[rustfmt::skip]
pub const KEY_CODES: &[&str] = &[
    "KeyA", "KeyB", "KeyC", "KeyD", "KeyE", "KeyF", "KeyG", "KeyH",
    "KeyI", "KeyJ", "KeyK", "KeyL", "KeyM", "KeyN", "KeyO", "KeyP",
    "KeyQ", "KeyR", "KeyS", "KeyT", "KeyU", "KeyV", "KeyW", "KeyX",
    "KeyY", "KeyZ", "Digit0", "Digit1", "Digit2", "Digit3", "Digit4", "Digit5",
    "Digit6", "Digit7", "Digit8", "Digit9", "Enter", "Escape", "Backspace", "Tab",
    "Space", "Minus", "Equal", "BracketLeft", "BracketRight", "Backslash", "IntlBackslash", "Semicolon",
    "Quote", "Backquote", "Comma", "Period", "Slash", "CapsLock", "F1", "F2",
    "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10",
    "F11", "F12", "F13", "F14", "F15", "F16", "F17", "F18",
    "F19", "F20", "F21", "F22", "F23", "F24", "PrintScreen", "ScrollLock",
    "Pause", "Insert", "Home", "PageUp", "Delete", "End", "PageDown", "ArrowRight",
    "ArrowLeft", "ArrowDown", "ArrowUp", "NumLock", "NumpadDivide", "NumpadMultiply", "NumpadSubtract", "NumpadAdd",
    "NumpadEnter", "Numpad1", "Numpad2", "Numpad3", "Numpad4", "Numpad5", "Numpad6", "Numpad7",
    "Numpad8", "Numpad9", "Numpad0", "NumpadDecimal", "NumpadEqual", "NumpadComma", "NumpadParenLeft", "NumpadParenRight",
    "ContextMenu", "ControlLeft", "ShiftLeft", "AltLeft", "MetaLeft", "ControlRight", "ShiftRight", "AltRight",
    "MetaRight", "IntlRo", "IntlYen", "KanaMode", "Convert", "NonConvert", "Lang1", "Lang2",
    "Lang3", "Lang4", "Lang5", "AudioVolumeMute", "AudioVolumeDown", "AudioVolumeUp", "MediaPlayPause", "MediaStop",
    "MediaTrackNext", "MediaTrackPrevious", "MediaSelect", "LaunchMail", "LaunchApp1", "LaunchApp2", "BrowserSearch", "BrowserHome",
    "BrowserBack", "BrowserForward", "BrowserStop", "BrowserRefresh", "BrowserFavorites", "Eject", "Power", "Sleep",
    "WakeUp", "Help", "Again", "Undo", "Cut", "Copy", "Paste", "Find",
    "Open", "Props", "Select",
];

/// The `KeyboardEvent.code` string of a wire key index.
pub fn key_code_from_index(index: u16) -> Option<&'static str> {
    KEY_CODES.get(usize::from(index)).copied()
}

/// The wire key index of a `KeyboardEvent.code` string.
pub fn index_from_code(code: &str) -> Option<u16> {
    KEY_CODES
        .iter()
        .position(|&c| c == code)
        .and_then(|i| u16::try_from(i).ok())
}

/// A physical key: an index that is known to be in [`KEY_CODES`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyCode(u16);

impl KeyCode {
    pub fn from_index(index: u16) -> Option<Self> {
        key_code_from_index(index).map(|_| Self(index))
    }

    pub fn from_code(code: &str) -> Option<Self> {
        index_from_code(code).map(Self)
    }

    pub fn index(self) -> u16 {
        self.0
    }

    /// The `KeyboardEvent.code` string, e.g. `"KeyA"`.
    pub fn code(self) -> &'static str {
        key_code_from_index(self.0).unwrap_or("Unidentified")
    }
}

impl fmt::Debug for KeyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyCode({})", self.code())
    }
}

/// A one-byte wire enum: variants, wire values and the spec's names in one list.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])* $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $value:literal => $wire:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some(Self::$variant),)+
                    _ => None,
                }
            }

            pub fn as_u8(self) -> u8 {
                self as u8
            }

            /// The name in `client-web/input-protocol.json`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }
        }
    };
}

wire_enum! {
    /// A mouse button, numbered as `MouseEvent.button`.
    Button {
        Left = 0 => "left",
        Middle = 1 => "middle",
        Right = 2 => "right",
        Back = 3 => "back",
        Forward = 4 => "forward",
    }
}

wire_enum! {
    /// Phase of one touch point.
    TouchPhase {
        Start = 0 => "start",
        Move = 1 => "move",
        End = 2 => "end",
        Cancel = 3 => "cancel",
    }
}

wire_enum! {
    /// What the host did with a resize request.
    ResizeStatus {
        /// The display now has the reported size.
        Applied = 0 => "applied",
        /// The display cannot change (e.g. Xvfb); it stays at the reported size and the client
        /// scales the video.
        ScaledByClient = 1 => "scaledByClient",
        /// Not allowed (policy or an impossible size); the display stays at the reported size.
        Refused = 2 => "refused",
    }
}

/// Code of a host `notice`. Unknown codes decode to [`NoticeCode::Unknown`] so that a newer host
/// can add codes without breaking older clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeCode {
    /// This peer is view-only: its input is ignored.
    ViewOnly,
    /// The session's clipboard policy does not allow this direction.
    ClipboardOff,
    /// A clipboard text exceeded the size cap and was dropped.
    ClipboardTooLarge,
    /// A message was malformed and dropped.
    Malformed,
    /// Input arrives faster than the host accepts it; some was dropped.
    RateLimited,
    Unknown(u8),
}

impl NoticeCode {
    pub const KNOWN: &'static [NoticeCode] = &[
        Self::ViewOnly,
        Self::ClipboardOff,
        Self::ClipboardTooLarge,
        Self::Malformed,
        Self::RateLimited,
    ];

    pub fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::ViewOnly,
            2 => Self::ClipboardOff,
            3 => Self::ClipboardTooLarge,
            4 => Self::Malformed,
            5 => Self::RateLimited,
            other => Self::Unknown(other),
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Self::ViewOnly => 1,
            Self::ClipboardOff => 2,
            Self::ClipboardTooLarge => 3,
            Self::Malformed => 4,
            Self::RateLimited => 5,
            Self::Unknown(other) => other,
        }
    }

    /// The name in `client-web/input-protocol.json`; `"unknown"` for codes it does not list.
    pub fn name(self) -> &'static str {
        match self {
            Self::ViewOnly => "viewOnly",
            Self::ClipboardOff => "clipboardOff",
            Self::ClipboardTooLarge => "clipboardTooLarge",
            Self::Malformed => "malformed",
            Self::RateLimited => "rateLimited",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// A message from the browser client to the host.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    KeyDown {
        key: KeyCode,
    },
    KeyUp {
        key: KeyCode,
    },
    Text {
        text: String,
    },
    /// A key that makes `keysym` in the client's layout (see the table).
    KeysymDown {
        key: KeyCode,
        keysym: u32,
    },
    /// The client's lock state ([`LOCK_CAPS`], [`LOCK_NUM`]).
    Locks {
        flags: u8,
    },
    PointerAbs {
        x: u16,
        y: u16,
        width: u16,
        height: u16,
    },
    PointerRel {
        dx: i16,
        dy: i16,
    },
    ButtonDown {
        button: Button,
    },
    ButtonUp {
        button: Button,
    },
    Wheel {
        dx: i16,
        dy: i16,
    },
    Touch {
        phase: TouchPhase,
        id: u8,
        x: u16,
        y: u16,
        width: u16,
        height: u16,
    },
    Clipboard {
        text: String,
    },
    Resize {
        width: u16,
        height: u16,
        dpr_percent: u16,
    },
    ClipboardPart {
        text: String,
    },
    Ping {
        seq: u32,
        client_time: f64,
    },
    Heartbeat,
    ReleaseAll,
}

/// A message from the host to the browser client.
#[derive(Debug, Clone, PartialEq)]
pub enum HostMessage {
    Pong {
        seq: u32,
        client_time: f64,
        host_time: f64,
    },
    Clipboard {
        text: String,
    },
    ResizeResult {
        status: ResizeStatus,
        width: u16,
        height: u16,
    },
    Notice {
        code: NoticeCode,
    },
    ClipboardPart {
        text: String,
    },
    /// RTP timestamp ↔ host Unix time of the viewer's video (see the table).
    Clock {
        rtp_timestamp: u32,
        unix_ms: f64,
    },
    /// The host's bandwidth estimate for this viewer and the session's encoder bitrate.
    LinkStats {
        estimate_bps: u32,
        encoder_bps: u32,
    },
}

/// Why bytes are not a valid message. Size errors come before content errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("empty message")]
    Empty,
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    #[error("opcode {opcode:#04x} truncated: needs {need} bytes, got {got}")]
    Truncated { opcode: u8, need: usize, got: usize },
    #[error("trailing bytes after the message")]
    TrailingBytes,
    #[error("text longer than the configured cap")]
    TooLong,
    #[error("text is not valid UTF-8")]
    BadUtf8,
    #[error("{0} out of range")]
    OutOfRange(&'static str),
}

impl DecodeError {
    /// A short stable name (the spec's error kinds), for metrics labels and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::UnknownOpcode(_) => "unknownOpcode",
            Self::Truncated { .. } => "truncated",
            Self::TrailingBytes => "trailingBytes",
            Self::TooLong => "tooLong",
            Self::BadUtf8 => "badUtf8",
            Self::OutOfRange(_) => "outOfRange",
        }
    }
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("text of {len} bytes does not fit a {max}-byte length field")]
    TooLong { len: usize, max: usize },
    #[error("{0} out of range")]
    OutOfRange(&'static str),
}

impl ClientMessage {
    pub fn opcode(&self) -> u8 {
        match self {
            Self::KeyDown { .. } => op::KEY_DOWN,
            Self::KeyUp { .. } => op::KEY_UP,
            Self::Text { .. } => op::TEXT,
            Self::KeysymDown { .. } => op::KEYSYM_DOWN,
            Self::Locks { .. } => op::LOCKS,
            Self::PointerAbs { .. } => op::POINTER_ABS,
            Self::PointerRel { .. } => op::POINTER_REL,
            Self::ButtonDown { .. } => op::BUTTON_DOWN,
            Self::ButtonUp { .. } => op::BUTTON_UP,
            Self::Wheel { .. } => op::WHEEL,
            Self::Touch { .. } => op::TOUCH,
            Self::Clipboard { .. } => op::CLIPBOARD,
            Self::Resize { .. } => op::RESIZE,
            Self::ClipboardPart { .. } => op::CLIPBOARD_PART,
            Self::Ping { .. } => op::PING,
            Self::Heartbeat => op::HEARTBEAT,
            Self::ReleaseAll => op::RELEASE_ALL,
        }
    }

    /// The message's name in the spec (`"keyDown"`, …), for logs and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            Self::KeyDown { .. } => "keyDown",
            Self::KeyUp { .. } => "keyUp",
            Self::Text { .. } => "text",
            Self::KeysymDown { .. } => "keysymDown",
            Self::Locks { .. } => "locks",
            Self::PointerAbs { .. } => "pointerAbs",
            Self::PointerRel { .. } => "pointerRel",
            Self::ButtonDown { .. } => "buttonDown",
            Self::ButtonUp { .. } => "buttonUp",
            Self::Wheel { .. } => "wheel",
            Self::Touch { .. } => "touch",
            Self::Clipboard { .. } => "clipboard",
            Self::Resize { .. } => "resize",
            Self::ClipboardPart { .. } => "clipboardPart",
            Self::Ping { .. } => "ping",
            Self::Heartbeat => "heartbeat",
            Self::ReleaseAll => "releaseAll",
        }
    }

    /// The wire bytes. Fails for values that [`decode_client`] would reject (other than the
    /// decoder's configurable [`Limits`]).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(16);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the wire bytes to `out`; on error `out` is left as it was.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.validate().map_err(EncodeError::OutOfRange)?;
        let start = out.len();
        out.push(self.opcode());
        let written = match self {
            Self::KeyDown { key } | Self::KeyUp { key } => {
                put_u16(out, key.index());
                Ok(())
            }
            Self::Text { text } => put_str16(out, text),
            Self::KeysymDown { key, keysym } => {
                put_u16(out, key.index());
                out.extend_from_slice(&keysym.to_le_bytes());
                Ok(())
            }
            Self::Locks { flags } => {
                out.push(*flags);
                Ok(())
            }
            Self::PointerAbs {
                x,
                y,
                width,
                height,
            } => {
                put_u16s(out, &[*x, *y, *width, *height]);
                Ok(())
            }
            Self::PointerRel { dx, dy } | Self::Wheel { dx, dy } => {
                out.extend_from_slice(&dx.to_le_bytes());
                out.extend_from_slice(&dy.to_le_bytes());
                Ok(())
            }
            Self::ButtonDown { button } | Self::ButtonUp { button } => {
                out.push(button.as_u8());
                Ok(())
            }
            Self::Touch {
                phase,
                id,
                x,
                y,
                width,
                height,
            } => {
                out.push(phase.as_u8());
                out.push(*id);
                put_u16s(out, &[*x, *y, *width, *height]);
                Ok(())
            }
            Self::Clipboard { text } | Self::ClipboardPart { text } => put_str32(out, text),
            Self::Resize {
                width,
                height,
                dpr_percent,
            } => {
                put_u16s(out, &[*width, *height, *dpr_percent]);
                Ok(())
            }
            Self::Ping { seq, client_time } => {
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&client_time.to_le_bytes());
                Ok(())
            }
            Self::Heartbeat | Self::ReleaseAll => Ok(()),
        };
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    /// Value checks shared by the decoder and the encoder: the name of the first bad field.
    fn validate(&self) -> Result<(), &'static str> {
        match *self {
            Self::PointerAbs {
                x,
                y,
                width,
                height,
            }
            | Self::Touch {
                x,
                y,
                width,
                height,
                ..
            } => check_point(x, y, width, height),
            Self::Resize {
                width,
                height,
                dpr_percent,
            } => {
                nonzero(width, "width")?;
                nonzero(height, "height")?;
                nonzero(dpr_percent, "dprPercent")
            }
            Self::Ping { client_time, .. } => finite(client_time, "clientTime"),
            Self::KeysymDown { keysym, .. } if keysym == 0 || keysym > MAX_KEYSYM => Err("keysym"),
            Self::Locks { flags } if flags & !(LOCK_CAPS | LOCK_NUM) != 0 => Err("flags"),
            _ => Ok(()),
        }
    }
}

impl HostMessage {
    pub fn opcode(&self) -> u8 {
        match self {
            Self::Pong { .. } => op::PONG,
            Self::Clipboard { .. } => op::HOST_CLIPBOARD,
            Self::ResizeResult { .. } => op::RESIZE_RESULT,
            Self::Notice { .. } => op::NOTICE,
            Self::ClipboardPart { .. } => op::HOST_CLIPBOARD_PART,
            Self::Clock { .. } => op::CLOCK,
            Self::LinkStats { .. } => op::LINK_STATS,
        }
    }

    /// The message's name in the spec (`"pong"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pong { .. } => "pong",
            Self::Clipboard { .. } => "clipboard",
            Self::ResizeResult { .. } => "resizeResult",
            Self::Notice { .. } => "notice",
            Self::ClipboardPart { .. } => "clipboardPart",
            Self::Clock { .. } => "clock",
            Self::LinkStats { .. } => "linkStats",
        }
    }

    /// The wire bytes. Fails for values that [`decode_host`] would reject (other than the
    /// decoder's configurable [`Limits`]).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(24);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the wire bytes to `out`; on error `out` is left as it was.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.validate().map_err(EncodeError::OutOfRange)?;
        let start = out.len();
        out.push(self.opcode());
        let written = match self {
            Self::Pong {
                seq,
                client_time,
                host_time,
            } => {
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&client_time.to_le_bytes());
                out.extend_from_slice(&host_time.to_le_bytes());
                Ok(())
            }
            Self::Clipboard { text } | Self::ClipboardPart { text } => put_str32(out, text),
            Self::ResizeResult {
                status,
                width,
                height,
            } => {
                out.push(status.as_u8());
                put_u16s(out, &[*width, *height]);
                Ok(())
            }
            Self::Notice { code } => {
                out.push(code.as_u8());
                Ok(())
            }
            Self::Clock {
                rtp_timestamp,
                unix_ms,
            } => {
                out.extend_from_slice(&rtp_timestamp.to_le_bytes());
                out.extend_from_slice(&unix_ms.to_le_bytes());
                Ok(())
            }
            Self::LinkStats {
                estimate_bps,
                encoder_bps,
            } => {
                out.extend_from_slice(&estimate_bps.to_le_bytes());
                out.extend_from_slice(&encoder_bps.to_le_bytes());
                Ok(())
            }
        };
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    fn validate(&self) -> Result<(), &'static str> {
        match *self {
            Self::Pong {
                client_time,
                host_time,
                ..
            } => {
                finite(client_time, "clientTime")?;
                finite(host_time, "hostTime")
            }
            Self::Clock { unix_ms, .. } => finite(unix_ms, "unixMs"),
            _ => Ok(()),
        }
    }
}

/// Decodes one client → host message. Never panics; any byte string gives a message or an error.
pub fn decode_client(buf: &[u8], limits: &Limits) -> Result<ClientMessage, DecodeError> {
    let mut r = Reader::new(buf)?;
    let msg = match r.opcode {
        op::KEY_DOWN => {
            r.exact(2)?;
            ClientMessage::KeyDown { key: r.key()? }
        }
        op::KEY_UP => {
            r.exact(2)?;
            ClientMessage::KeyUp { key: r.key()? }
        }
        op::TEXT => ClientMessage::Text {
            text: r.str16(limits.max_text_bytes)?,
        },
        op::KEYSYM_DOWN => {
            r.exact(6)?;
            ClientMessage::KeysymDown {
                key: r.key()?,
                keysym: r.u32()?,
            }
        }
        op::LOCKS => {
            r.exact(1)?;
            ClientMessage::Locks { flags: r.u8()? }
        }
        op::POINTER_ABS => {
            r.exact(8)?;
            ClientMessage::PointerAbs {
                x: r.u16()?,
                y: r.u16()?,
                width: r.u16()?,
                height: r.u16()?,
            }
        }
        op::POINTER_REL => {
            r.exact(4)?;
            ClientMessage::PointerRel {
                dx: r.i16()?,
                dy: r.i16()?,
            }
        }
        op::BUTTON_DOWN => {
            r.exact(1)?;
            ClientMessage::ButtonDown {
                button: r.button()?,
            }
        }
        op::BUTTON_UP => {
            r.exact(1)?;
            ClientMessage::ButtonUp {
                button: r.button()?,
            }
        }
        op::WHEEL => {
            r.exact(4)?;
            ClientMessage::Wheel {
                dx: r.i16()?,
                dy: r.i16()?,
            }
        }
        op::TOUCH => {
            r.exact(10)?;
            let phase = TouchPhase::from_u8(r.u8()?).ok_or(DecodeError::OutOfRange("phase"))?;
            ClientMessage::Touch {
                phase,
                id: r.u8()?,
                x: r.u16()?,
                y: r.u16()?,
                width: r.u16()?,
                height: r.u16()?,
            }
        }
        op::CLIPBOARD => ClientMessage::Clipboard {
            text: r.str32(limits.max_clipboard_bytes)?,
        },
        op::CLIPBOARD_PART => ClientMessage::ClipboardPart {
            text: r.str32(limits.max_clipboard_bytes)?,
        },
        op::RESIZE => {
            r.exact(6)?;
            ClientMessage::Resize {
                width: r.u16()?,
                height: r.u16()?,
                dpr_percent: r.u16()?,
            }
        }
        op::PING => {
            r.exact(12)?;
            ClientMessage::Ping {
                seq: r.u32()?,
                client_time: r.f64()?,
            }
        }
        op::HEARTBEAT => {
            r.exact(0)?;
            ClientMessage::Heartbeat
        }
        op::RELEASE_ALL => {
            r.exact(0)?;
            ClientMessage::ReleaseAll
        }
        other => return Err(DecodeError::UnknownOpcode(other)),
    };
    msg.validate().map_err(DecodeError::OutOfRange)?;
    Ok(msg)
}

/// Decodes one host → client message (the browser does this in JS; here for tests and tools).
pub fn decode_host(buf: &[u8], limits: &Limits) -> Result<HostMessage, DecodeError> {
    let mut r = Reader::new(buf)?;
    let msg = match r.opcode {
        op::PONG => {
            r.exact(20)?;
            HostMessage::Pong {
                seq: r.u32()?,
                client_time: r.f64()?,
                host_time: r.f64()?,
            }
        }
        op::HOST_CLIPBOARD => HostMessage::Clipboard {
            text: r.str32(limits.max_clipboard_bytes)?,
        },
        op::HOST_CLIPBOARD_PART => HostMessage::ClipboardPart {
            text: r.str32(limits.max_clipboard_bytes)?,
        },
        op::RESIZE_RESULT => {
            r.exact(5)?;
            let status = ResizeStatus::from_u8(r.u8()?).ok_or(DecodeError::OutOfRange("status"))?;
            HostMessage::ResizeResult {
                status,
                width: r.u16()?,
                height: r.u16()?,
            }
        }
        op::NOTICE => {
            r.exact(1)?;
            HostMessage::Notice {
                code: NoticeCode::from_u8(r.u8()?),
            }
        }
        op::CLOCK => {
            r.exact(12)?;
            HostMessage::Clock {
                rtp_timestamp: r.u32()?,
                unix_ms: r.f64()?,
            }
        }
        op::LINK_STATS => {
            r.exact(8)?;
            HostMessage::LinkStats {
                estimate_bps: r.u32()?,
                encoder_bps: r.u32()?,
            }
        }
        other => return Err(DecodeError::UnknownOpcode(other)),
    };
    msg.validate().map_err(DecodeError::OutOfRange)?;
    Ok(msg)
}

fn check_point(x: u16, y: u16, width: u16, height: u16) -> Result<(), &'static str> {
    nonzero(width, "width")?;
    nonzero(height, "height")?;
    if x >= width {
        return Err("x");
    }
    if y >= height {
        return Err("y");
    }
    Ok(())
}

fn nonzero(value: u16, field: &'static str) -> Result<(), &'static str> {
    if value == 0 {
        Err(field)
    } else {
        Ok(())
    }
}

fn finite(value: f64, field: &'static str) -> Result<(), &'static str> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(field)
    }
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u16s(out: &mut Vec<u8>, values: &[u16]) {
    for &v in values {
        put_u16(out, v);
    }
}

fn put_str16(out: &mut Vec<u8>, text: &str) -> Result<(), EncodeError> {
    let len = u16::try_from(text.len()).map_err(|_| EncodeError::TooLong {
        len: text.len(),
        max: usize::from(u16::MAX),
    })?;
    put_u16(out, len);
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

fn put_str32(out: &mut Vec<u8>, text: &str) -> Result<(), EncodeError> {
    let len = u32::try_from(text.len()).map_err(|_| EncodeError::TooLong {
        len: text.len(),
        max: usize::try_from(u32::MAX).unwrap_or(usize::MAX),
    })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// Reads fields after the opcode. Every read is bounds-checked, so no input can make it panic.
struct Reader<'a> {
    buf: &'a [u8],
    opcode: u8,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let (&opcode, _) = buf.split_first().ok_or(DecodeError::Empty)?;
        Ok(Self {
            buf,
            opcode,
            pos: 1,
        })
    }

    fn truncated(&self, need: usize) -> DecodeError {
        DecodeError::Truncated {
            opcode: self.opcode,
            need,
            got: self.buf.len(),
        }
    }

    /// A fixed-size message: exactly `payload` bytes after the opcode.
    fn exact(&self, payload: usize) -> Result<(), DecodeError> {
        let need = 1 + payload;
        match self.buf.len() {
            got if got < need => Err(self.truncated(need)),
            got if got > need => Err(DecodeError::TrailingBytes),
            _ => Ok(()),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.saturating_add(n);
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(end))?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let need = self.pos.saturating_add(N);
        self.take(N)?.try_into().map_err(|_| self.truncated(need))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    fn key(&mut self) -> Result<KeyCode, DecodeError> {
        KeyCode::from_index(self.u16()?).ok_or(DecodeError::OutOfRange("code"))
    }

    fn button(&mut self) -> Result<Button, DecodeError> {
        Button::from_u8(self.u8()?).ok_or(DecodeError::OutOfRange("button"))
    }

    fn str16(&mut self, max: usize) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        self.text(len, max)
    }

    fn str32(&mut self, max: usize) -> Result<String, DecodeError> {
        let len = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
        self.text(len, max)
    }

    /// The rest of a text message: size checks (cap, truncation, trailing bytes), then UTF-8.
    fn text(&mut self, len: usize, max: usize) -> Result<String, DecodeError> {
        if len > max {
            return Err(DecodeError::TooLong);
        }
        let bytes = self.take(len)?;
        if self.pos != self.buf.len() {
            return Err(DecodeError::TrailingBytes);
        }
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::BadUtf8)
    }
}

/// Splits a clipboard text into the texts of the messages that carry it: every piece but the
/// last goes as a `clipboardPart`, the last as `clipboard`. Pieces are at most `part_bytes`
/// bytes (at least one character each) and end on character boundaries; an empty text is one
/// empty piece.
pub fn split_clipboard(text: &str, part_bytes: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > part_bytes {
        let mut cut = part_bytes.max(1);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            // A part size below one character: take the whole character.
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (head, tail) = rest.split_at(cut);
        pieces.push(head);
        rest = tail;
    }
    pieces.push(rest);
    pieces
}

/// Joins `clipboardPart`s and the closing `clipboard` of one text, enforcing the cap on the
/// joined text. A text over the cap is dropped whole (never delivered cut short).
#[derive(Debug)]
pub struct ClipboardAssembler {
    max_bytes: usize,
    buf: String,
    overflowed: bool,
}

/// A joined clipboard text went over the cap; it was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("clipboard text over the cap of {max_bytes} bytes")]
pub struct ClipboardTooLarge {
    pub max_bytes: usize,
}

impl ClipboardAssembler {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            buf: String::new(),
            overflowed: false,
        }
    }

    /// A `clipboardPart`: kept until the closing `clipboard` (nothing is kept past the cap).
    pub fn part(&mut self, text: &str) {
        if self.overflowed || self.buf.len() + text.len() > self.max_bytes {
            self.overflowed = true;
            self.buf = String::new();
        } else {
            self.buf.push_str(text);
        }
    }

    /// Marks the text being joined as refused (a part was over the cap on its own).
    pub fn reject(&mut self) {
        self.overflowed = true;
        self.buf = String::new();
    }

    /// The closing `clipboard`: the whole text, or the error if it went over the cap. Either
    /// way the assembler is ready for the next text.
    pub fn finish(&mut self, text: &str) -> Result<String, ClipboardTooLarge> {
        let overflowed = std::mem::take(&mut self.overflowed);
        let mut whole = std::mem::take(&mut self.buf);
        if overflowed || whole.len() + text.len() > self.max_bytes {
            return Err(ClipboardTooLarge {
                max_bytes: self.max_bytes,
            });
        }
        whole.push_str(text);
        Ok(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: &str) -> KeyCode {
        KeyCode::from_code(code).unwrap()
    }

    /// One or more of every client message.
    fn client_samples() -> Vec<ClientMessage> {
        vec![
            ClientMessage::KeyDown { key: key("KeyA") },
            ClientMessage::KeyUp { key: key("Select") },
            ClientMessage::Text {
                text: "ß€😀".into(),
            },
            ClientMessage::Text {
                text: String::new(),
            },
            ClientMessage::KeysymDown {
                key: key("KeyY"),
                keysym: 0x7a,
            },
            ClientMessage::KeysymDown {
                key: key("Digit2"),
                keysym: MAX_KEYSYM,
            },
            ClientMessage::Locks { flags: 0 },
            ClientMessage::Locks {
                flags: LOCK_CAPS | LOCK_NUM,
            },
            ClientMessage::PointerAbs {
                x: 1919,
                y: 1079,
                width: 1920,
                height: 1080,
            },
            ClientMessage::PointerRel {
                dx: -32768,
                dy: 32767,
            },
            ClientMessage::ButtonDown {
                button: Button::Back,
            },
            ClientMessage::ButtonUp {
                button: Button::Forward,
            },
            ClientMessage::Wheel {
                dx: -1,
                dy: WHEEL_NOTCH,
            },
            ClientMessage::Touch {
                phase: TouchPhase::Move,
                id: 7,
                x: 0,
                y: 0,
                width: 1,
                height: 1,
            },
            ClientMessage::Clipboard {
                text: "line\nline".into(),
            },
            ClientMessage::Resize {
                width: 3840,
                height: 2160,
                dpr_percent: 150,
            },
            ClientMessage::ClipboardPart { text: "€".into() },
            ClientMessage::Ping {
                seq: 9,
                client_time: -0.5,
            },
            ClientMessage::Heartbeat,
            ClientMessage::ReleaseAll,
        ]
    }

    fn host_samples() -> Vec<HostMessage> {
        vec![
            HostMessage::Pong {
                seq: 9,
                client_time: 1.5,
                host_time: 1.7e12,
            },
            HostMessage::Clipboard { text: "é".into() },
            HostMessage::ClipboardPart { text: "ab".into() },
            HostMessage::ResizeResult {
                status: ResizeStatus::ScaledByClient,
                width: 1,
                height: 2,
            },
            HostMessage::Notice {
                code: NoticeCode::ViewOnly,
            },
            HostMessage::Notice {
                code: NoticeCode::Unknown(200),
            },
            HostMessage::Clock {
                rtp_timestamp: u32::MAX,
                unix_ms: 1.7e12,
            },
            HostMessage::LinkStats {
                estimate_bps: 2_500_000,
                encoder_bps: u32::MAX,
            },
        ]
    }

    fn client_opcodes() -> Vec<u8> {
        client_samples().iter().map(ClientMessage::opcode).collect()
    }

    fn host_opcodes() -> Vec<u8> {
        host_samples().iter().map(HostMessage::opcode).collect()
    }

    #[test]
    fn round_trip() {
        let limits = Limits::default();
        for msg in client_samples() {
            let bytes = msg.encode().unwrap();
            assert_eq!(bytes[0], msg.opcode());
            assert_eq!(decode_client(&bytes, &limits), Ok(msg));
        }
        for msg in host_samples() {
            let bytes = msg.encode().unwrap();
            assert_eq!(decode_host(&bytes, &limits), Ok(msg));
        }
    }

    #[test]
    fn opcode_ranges_and_directions() {
        let limits = Limits::default();
        for opcode in client_opcodes() {
            assert!((0x01..=0x3f).contains(&opcode));
            assert_eq!(
                decode_host(&[opcode], &limits),
                Err(DecodeError::UnknownOpcode(opcode))
            );
        }
        for opcode in host_opcodes() {
            assert!((0x80..=0xbf).contains(&opcode));
            assert_eq!(
                decode_client(&[opcode], &limits),
                Err(DecodeError::UnknownOpcode(opcode))
            );
        }
    }

    #[test]
    fn every_truncation_is_truncated() {
        let limits = Limits::default();
        let client = client_samples()
            .iter()
            .map(|m| m.encode().unwrap())
            .collect::<Vec<_>>();
        let host = host_samples()
            .iter()
            .map(|m| m.encode().unwrap())
            .collect::<Vec<_>>();
        type Decode = fn(&[u8], &Limits) -> Result<(), DecodeError>;
        let decoders: [(&Vec<Vec<u8>>, Decode); 2] = [
            (&client, |b, l| decode_client(b, l).map(drop)),
            (&host, |b, l| decode_host(b, l).map(drop)),
        ];
        for (vectors, decode) in decoders {
            for bytes in vectors {
                assert_eq!(decode(&[], &limits), Err(DecodeError::Empty));
                for cut in 1..bytes.len() {
                    match decode(&bytes[..cut], &limits) {
                        Err(DecodeError::Truncated { opcode, need, got }) => {
                            assert_eq!((opcode, got), (bytes[0], cut));
                            assert!(
                                need > cut && need <= bytes.len(),
                                "{bytes:02x?} cut at {cut}"
                            );
                        }
                        other => panic!("{bytes:02x?} cut at {cut}: {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn trailing_bytes() {
        let limits = Limits::default();
        for msg in client_samples() {
            let mut bytes = msg.encode().unwrap();
            bytes.push(0);
            assert_eq!(
                decode_client(&bytes, &limits),
                Err(DecodeError::TrailingBytes),
                "{msg:?}"
            );
        }
        for msg in host_samples() {
            let mut bytes = msg.encode().unwrap();
            bytes.push(0);
            assert_eq!(
                decode_host(&bytes, &limits),
                Err(DecodeError::TrailingBytes),
                "{msg:?}"
            );
        }
    }

    #[test]
    fn unknown_opcodes() {
        let limits = Limits::default();
        let known = client_opcodes();
        for opcode in 0..=u8::MAX {
            let result = decode_client(&[opcode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &limits);
            if known.contains(&opcode) {
                assert_ne!(result, Err(DecodeError::UnknownOpcode(opcode)));
            } else {
                assert_eq!(result, Err(DecodeError::UnknownOpcode(opcode)));
            }
        }
        let known = host_opcodes();
        for opcode in 0..=u8::MAX {
            let result = decode_host(&[opcode], &limits);
            assert_eq!(
                known.contains(&opcode),
                result != Err(DecodeError::UnknownOpcode(opcode))
            );
        }
    }

    #[test]
    fn clipboard_split_and_join() {
        // Character boundaries: 'é' is 2 bytes, '€' 3.
        let text = "aé€b".repeat(1000);
        for part in [1, 2, 3, 4, 7, 100, 6000, 10_000] {
            let pieces = split_clipboard(&text, part);
            assert!(pieces
                .iter()
                .all(|p| !p.is_empty() && (p.len() <= part || p.chars().count() == 1)));
            let mut asm = ClipboardAssembler::new(text.len());
            let (last, parts) = pieces.split_last().unwrap();
            for p in parts {
                asm.part(p);
            }
            assert_eq!(asm.finish(last).unwrap(), text, "part size {part}");
        }
        assert_eq!(split_clipboard("", 10), vec![""]);
        assert_eq!(split_clipboard("abc", 3), vec!["abc"]);

        // Over the cap: dropped whole, and the next text is unaffected.
        let mut asm = ClipboardAssembler::new(5);
        asm.part("abc");
        asm.part("def");
        assert_eq!(asm.finish("g"), Err(ClipboardTooLarge { max_bytes: 5 }));
        assert_eq!(asm.finish("hello").unwrap(), "hello");
        asm.part("abc");
        assert!(asm.finish("def").is_err());
        assert_eq!(asm.finish("").unwrap(), "");
    }

    #[test]
    fn text_and_clipboard_caps() {
        let limits = Limits {
            max_text_bytes: 4,
            max_clipboard_bytes: 6,
        };
        let text = |s: &str| ClientMessage::Text { text: s.into() }.encode().unwrap();
        let clip = |s: &str| {
            ClientMessage::Clipboard { text: s.into() }
                .encode()
                .unwrap()
        };
        assert!(decode_client(&text("abcd"), &limits).is_ok());
        assert_eq!(
            decode_client(&text("abcde"), &limits),
            Err(DecodeError::TooLong)
        );
        assert!(decode_client(&clip("abcdef"), &limits).is_ok());
        assert_eq!(
            decode_client(&clip("abcdefg"), &limits),
            Err(DecodeError::TooLong)
        );
        // The cap is checked before the body is awaited: a huge claimed length costs nothing.
        assert_eq!(
            decode_client(&[op::CLIPBOARD, 0xff, 0xff, 0xff, 0xff], &limits),
            Err(DecodeError::TooLong)
        );
        let host_clip = HostMessage::Clipboard {
            text: "abcdefg".into(),
        }
        .encode()
        .unwrap();
        assert_eq!(decode_host(&host_clip, &limits), Err(DecodeError::TooLong));

        let defaults = Limits::default();
        let big = "x".repeat(DEFAULT_MAX_TEXT_BYTES);
        assert!(decode_client(&text(&big), &defaults).is_ok());
        assert_eq!(
            decode_client(&text(&(big + "x")), &defaults),
            Err(DecodeError::TooLong)
        );
        let big = "x".repeat(DEFAULT_MAX_CLIPBOARD_BYTES);
        assert!(decode_client(&clip(&big), &defaults).is_ok());
        assert_eq!(
            decode_client(&clip(&(big + "x")), &defaults),
            Err(DecodeError::TooLong)
        );
    }

    #[test]
    fn bad_utf8() {
        let limits = Limits::default();
        for bad in [
            &[0xff][..],
            &[0xc3, 0x28],
            &[0x80],
            &[0xed, 0xa0, 0x80],
            &[0xf0, 0x9f, 0x98],
        ] {
            let len = u8::try_from(bad.len()).unwrap();
            let mut text = vec![op::TEXT, len, 0];
            text.extend_from_slice(bad);
            assert_eq!(
                decode_client(&text, &limits),
                Err(DecodeError::BadUtf8),
                "{bad:02x?}"
            );
            let mut clip = vec![op::CLIPBOARD, len, 0, 0, 0];
            clip.extend_from_slice(bad);
            assert_eq!(
                decode_client(&clip, &limits),
                Err(DecodeError::BadUtf8),
                "{bad:02x?}"
            );
        }
    }

    #[test]
    fn out_of_range_values() {
        let limits = Limits::default();
        let bad = [
            (vec![op::KEY_DOWN, 0xff, 0xff], "code"),
            (
                vec![op::KEY_UP, u8::try_from(KEY_CODES.len()).unwrap(), 0],
                "code",
            ),
            (vec![op::BUTTON_DOWN, 5], "button"),
            (vec![op::BUTTON_UP, 0xff], "button"),
            (vec![op::POINTER_ABS, 10, 0, 0, 0, 10, 0, 10, 0], "x"),
            (vec![op::POINTER_ABS, 0, 0, 10, 0, 10, 0, 10, 0], "y"),
            (vec![op::POINTER_ABS, 0, 0, 0, 0, 0, 0, 10, 0], "width"),
            (vec![op::POINTER_ABS, 0, 0, 0, 0, 10, 0, 0, 0], "height"),
            (vec![op::TOUCH, 4, 0, 0, 0, 0, 0, 1, 0, 1, 0], "phase"),
            (vec![op::TOUCH, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0], "x"),
            (vec![op::RESIZE, 0, 0, 1, 0, 1, 0], "width"),
            (vec![op::RESIZE, 1, 0, 0, 0, 1, 0], "height"),
            (vec![op::RESIZE, 1, 0, 1, 0, 0, 0], "dprPercent"),
        ];
        for (bytes, field) in bad {
            assert_eq!(
                decode_client(&bytes, &limits),
                Err(DecodeError::OutOfRange(field)),
                "{bytes:02x?}"
            );
        }
        for t in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut ping = vec![op::PING, 0, 0, 0, 0];
            ping.extend_from_slice(&t.to_le_bytes());
            assert_eq!(
                decode_client(&ping, &limits),
                Err(DecodeError::OutOfRange("clientTime"))
            );
            let pong = HostMessage::Pong {
                seq: 0,
                client_time: 0.0,
                host_time: t,
            };
            assert_eq!(pong.encode(), Err(EncodeError::OutOfRange("hostTime")));
        }
        assert_eq!(
            decode_host(&[op::RESIZE_RESULT, 3, 1, 0, 1, 0], &limits),
            Err(DecodeError::OutOfRange("status"))
        );
    }

    #[test]
    fn encoder_refuses_what_the_decoder_rejects() {
        let abs = ClientMessage::PointerAbs {
            x: 5,
            y: 0,
            width: 5,
            height: 5,
        };
        assert_eq!(abs.encode(), Err(EncodeError::OutOfRange("x")));
        let text = ClientMessage::Text {
            text: "x".repeat(usize::from(u16::MAX) + 1),
        };
        assert_eq!(
            text.encode(),
            Err(EncodeError::TooLong {
                len: 65536,
                max: 65535
            })
        );
        let mut out = vec![1, 2, 3];
        assert!(text.encode_into(&mut out).is_err());
        assert_eq!(out, [1, 2, 3]);
        assert!(ClientMessage::Heartbeat.encode_into(&mut out).is_ok());
        assert_eq!(out, [1, 2, 3, op::HEARTBEAT]);
    }

    #[test]
    fn key_table() {
        assert!(KEY_CODES.len() < usize::from(u16::MAX));
        for (i, &code) in KEY_CODES.iter().enumerate() {
            let index = u16::try_from(i).unwrap();
            assert_eq!(index_from_code(code), Some(index), "{code} listed twice");
            assert_eq!(key_code_from_index(index), Some(code));
            assert_eq!(KeyCode::from_code(code).map(KeyCode::code), Some(code));
        }
        assert_eq!(
            key_code_from_index(u16::try_from(KEY_CODES.len()).unwrap()),
            None
        );
        assert_eq!(index_from_code("Unidentified"), None);
        assert_eq!(index_from_code("keya"), None);
        assert_eq!(format!("{:?}", key("Enter")), "KeyCode(Enter)");
    }

    #[test]
    fn wire_enums() {
        for (i, b) in Button::ALL.iter().enumerate() {
            assert_eq!(usize::from(b.as_u8()), i);
            assert_eq!(Button::from_u8(b.as_u8()), Some(*b));
        }
        assert_eq!(Button::from_u8(5), None);
        for value in 0..=u8::MAX {
            assert_eq!(NoticeCode::from_u8(value).as_u8(), value);
        }
        for code in NoticeCode::KNOWN {
            assert_ne!(code.name(), "unknown");
        }
    }

    /// xorshift64*: deterministic and dependency-free.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
        }
    }

    /// Random bytes never panic the decoders, and whatever decodes re-encodes to the same bytes
    /// (the encoding is canonical). Most inputs start with a real opcode and have a plausible
    /// length, so the field decoders are exercised, not only the opcode switch.
    #[test]
    fn random_bytes() {
        let limits = Limits {
            max_text_bytes: 16,
            max_clipboard_bytes: 24,
        };
        let opcodes = [client_opcodes(), host_opcodes()].concat();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut client_ok, mut host_ok) = (0, 0);
        for _ in 0..100_000 {
            let len = rng.below(32);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
            if let Some(first) = bytes.first_mut() {
                if rng.below(8) != 0 {
                    *first = opcodes[rng.below(opcodes.len())];
                }
            }
            if bytes.len() > 2 && rng.below(2) == 0 {
                // Small lengths, so that text messages sometimes fit exactly.
                bytes[1] = u8::try_from(rng.below(24)).unwrap();
                bytes[2] = 0;
                if bytes.len() > 4
                    && matches!(
                        bytes[0],
                        op::CLIPBOARD
                            | op::HOST_CLIPBOARD
                            | op::CLIPBOARD_PART
                            | op::HOST_CLIPBOARD_PART
                    )
                {
                    bytes[3] = 0;
                    bytes[4] = 0;
                }
            }
            if let Ok(msg) = decode_client(&bytes, &limits) {
                assert_eq!(msg.encode().unwrap(), bytes, "{msg:?}");
                client_ok += 1;
            }
            if let Ok(msg) = decode_host(&bytes, &limits) {
                assert_eq!(msg.encode().unwrap(), bytes, "{msg:?}");
                host_ok += 1;
            }
        }
        assert!(
            client_ok > 700 && host_ok > 100,
            "too few valid inputs: {client_ok} {host_ok}"
        );
    }
}
