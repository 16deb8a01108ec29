//! Input injection into an X display through XTest.
//!
//! An [`Injector`] owns its own X connection. Every method queues its XTest requests, flushes
//! them (input must not sit in a buffer) and then reads, without blocking, whatever the server
//! has sent back: X errors are returned as [`InjectError::Rejected`] (an error caused by one
//! call may surface on the next one; [`Injector::sync`] waits for the server and reports every
//! error up to that point), RandR screen changes update the cached screen size and
//! `MappingNotify` marks the cached keyboard mapping stale.
//!
//! # Keys
//! [`Injector::key`] presses the *physical* key named by a `KeyboardEvent.code` (X keycode =
//! evdev + 8, see [`keymap`](super::keymap)); the server's keymap decides the character, like
//! a local keyboard. Modifiers are ordinary keys here.
//!
//! # Text (IME, compose, characters the keymap lacks)
//! [`Injector::text`] types characters, not keys, the way xdotool's `type` does:
//! 1. One round trip reads the current modifier state (`QueryPointer`). If Caps Lock is on and
//!    the text contains cased letters, Caps Lock is tapped off before and on again after.
//! 2. For each character (`\n` → Return, `\t` → Tab, other control characters are refused
//!    before anything is typed) the keysym is the code point for Latin-1 and
//!    `0x0100_0000 | code point` otherwise.
//! 3. A key whose group-1 level 1 (no Shift) or level 2 (Shift) gives that keysym is tapped,
//!    preferring one that needs no change of Shift. If it needs Shift and the user holds none,
//!    Shift is pressed around the tap; keys the user holds are never used and no modifier the
//!    user holds is released (Ctrl/Alt held by the user still apply, as on a local keyboard).
//! 4. Otherwise (not in the keymap, or only on a level that conflicts with a Shift the user
//!    holds) a *spare* keycode — one with no keysyms, not a modifier, not reachable from the
//!    `code` table — is remapped to `[keysym, keysym]` (same on both levels, so Shift does not
//!    matter) and tapped. Remapped spares stay mapped (a small LRU of [`SPARE_LIMIT`]
//!    keycodes) so repeated characters cost no remap, and because X clients look a keysym up
//!    *after* the event arrives: restoring at once would race them. A spare is reused for
//!    another keysym only when all are taken (least recently used first, and not within
//!    [`SPARE_REUSE_GUARD`] of its last use); all are restored to `NoSymbol` by
//!    [`Injector::restore_keymap`], [`Injector::release_all`] and on drop.
//!
//! Limits: only group 1 is searched (a character on AltGr/level 3 goes through a spare), and a
//! user holding AltGr/Mode_switch while text arrives changes what spare keys produce.
//!
//! # Pointer
//! [`Injector::pointer_abs`] maps video coordinates to the screen (`x * screen_w / video_w`,
//! rounded, clamped to the screen); [`Injector::pointer_rel`] moves relatively (no
//! acceleration); [`Injector::wheel`] turns hi-res deltas (120 per notch) into clicks of
//! buttons 4/5 (vertical) and 6/7 (horizontal), keeping the remainder.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::cookie::VoidCookie;
use x11rb::errors::{ConnectError, ConnectionError, ReplyError};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _, KeyButMask, Keycode, Keysym, Window};
use x11rb::protocol::xtest::{self, ConnectionExt as _};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::x11_utils::X11Error;

use super::keymap;

mod keysym;
mod map;

pub use keysym::is_modifier_keysym;
use keysym::{XK_ISO_LEVEL3_SHIFT, XK_MODE_SWITCH, XK_NUM_LOCK};
use map::{has_case, KeyboardMap, Spare, Spares};

/// Hi-res wheel units per notch (the browser's `WheelEvent` in pixels, normalised by the
/// client, and Windows' `WHEEL_DELTA`).
pub const WHEEL_NOTCH: i32 = 120;
/// At most this many wheel clicks per axis and call; the rest of a huge delta is dropped.
pub const MAX_WHEEL_CLICKS: i32 = 64;
/// How many spare keycodes [`Injector::text`] may keep remapped at once.
pub const SPARE_LIMIT: usize = 16;
/// A remapped spare keycode is not given another keysym sooner than this after its last use,
/// so that clients have looked the old one up.
pub const SPARE_REUSE_GUARD: Duration = Duration::from_millis(50);

const NO_SYMBOL: Keysym = 0;
const XK_RETURN: Keysym = 0xff0d;
const XK_TAB: Keysym = 0xff09;
const XK_SHIFT_L: Keysym = 0xffe1;
const XK_SHIFT_R: Keysym = 0xffe2;
const XK_CAPS_LOCK: Keysym = 0xffe5;

/// Errors of input injection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InjectError {
    /// The display could not be opened.
    #[error("cannot connect to X display {display}: {source}")]
    Connect {
        display: String,
        #[source]
        source: ConnectError,
    },
    /// The server has no XTEST extension.
    #[error("X display {display} lacks the XTEST extension (needed to inject input)")]
    NoXTest { display: String },
    /// A `KeyboardEvent.code` the key table does not know.
    #[error("unknown key code {0:?} (not a KeyboardEvent.code this host maps)")]
    UnknownCode(String),
    /// A known code whose keycode the server does not have.
    #[error("key code {code:?} is X keycode {keycode}, outside the server's range {min}..={max}")]
    KeycodeOutOfRange {
        code: String,
        keycode: u8,
        min: u8,
        max: u8,
    },
    /// A mouse button other than 0..=4.
    #[error("unknown mouse button {0} (0 left, 1 middle, 2 right, 3 back, 4 forward)")]
    UnknownButton(u8),
    /// Absolute pointer position with an empty video size.
    #[error("invalid video size {width}x{height} for an absolute pointer position")]
    InvalidVideoSize { width: u32, height: u32 },
    /// A control character in text (other than newline and tab).
    #[error("cannot type control character U+{:04X}", u32::from(*.0))]
    UnsupportedChar(char),
    /// A modifier keysym that no key of the keymap makes (modifiers cannot go on spares).
    #[error("keysym {0:#x} is a modifier the keymap lacks")]
    NotInKeymap(Keysym),
    /// A keysym the keymap lacks, and every spare keycode is held down.
    #[error("cannot press keysym {0:#x}: it is not in the keymap and every spare keycode is held")]
    NoSpareForKeysym(Keysym),
    /// The keymap has no spare keycode to remap for a character it lacks.
    #[error("cannot type U+{:04X}: it is not in the keymap and there is no spare keycode to remap", u32::from(*.0))]
    NoSpareKeycode(char),
    /// The X connection failed (the display is gone).
    #[error("X connection failed: {0}")]
    Connection(#[from] ConnectionError),
    /// A request with a reply failed.
    #[error("X request {request} failed: {source}")]
    Reply {
        request: &'static str,
        #[source]
        source: ReplyError,
    },
    /// The server rejected a request (delivered asynchronously).
    #[error(
        "the X server rejected {}: {:?} (bad value {:#x})",
        .0.request_name.unwrap_or("a request"),
        .0.error_kind,
        .0.bad_value
    )]
    Rejected(X11Error),
    /// The server's reply did not make sense.
    #[error("unexpected reply from the X server: {0}")]
    Protocol(String),
}

fn reply_err(request: &'static str) -> impl FnOnce(ReplyError) -> InjectError {
    move |source| InjectError::Reply { request, source }
}

/// The X button of a protocol button: 0 left → 1, 1 middle → 2, 2 right → 3, 3 back → 8,
/// 4 forward → 9.
pub fn x_button(button: u8) -> Option<u8> {
    match button {
        0 => Some(1),
        1 => Some(2),
        2 => Some(3),
        3 => Some(8),
        4 => Some(9),
        _ => None,
    }
}

/// Maps coordinate `v` of a `video`-sized axis to a `screen`-sized one:
/// `round(v * screen / video)`, clamped to `0..screen`. `video` must not be 0.
pub fn map_axis(v: u32, video: u32, screen: u32) -> u32 {
    let (v, video, screen) = (u64::from(v), u64::from(video), u64::from(screen));
    let s = (v * screen + video / 2) / video;
    // Fits: at most screen - 1.
    s.min(screen.saturating_sub(1)) as u32
}

/// The keysym that types `c`: Return for `\n`/`\r`, Tab for `\t`, the code point for Latin-1,
/// `0x0100_0000 | code point` for the rest; `None` for other control characters.
pub fn keysym_for_char(c: char) -> Option<Keysym> {
    match c {
        '\n' | '\r' => Some(XK_RETURN),
        '\t' => Some(XK_TAB),
        c if c.is_control() => None,
        ' '..='~' | '\u{a0}'..='\u{ff}' => Some(u32::from(c)),
        c => Some(0x0100_0000 | u32::from(c)),
    }
}

/// Accumulates hi-res wheel deltas into whole clicks (pure; see [`Injector::wheel`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WheelAccumulator {
    x: i32,
    y: i32,
}

impl WheelAccumulator {
    /// Adds a delta; returns the whole clicks `(horizontal, vertical)` (positive: right/down).
    /// The remainder is kept for the next delta in the same direction; a delta in the other
    /// direction starts from zero (so reversing responds at once). At most
    /// [`MAX_WHEEL_CLICKS`] per axis; the excess is dropped.
    pub fn add(&mut self, dx: i32, dy: i32) -> (i32, i32) {
        fn axis(acc: &mut i32, d: i32) -> i32 {
            if d == 0 {
                return 0;
            }
            if (*acc > 0 && d < 0) || (*acc < 0 && d > 0) {
                *acc = 0;
            }
            let sum = acc.saturating_add(d);
            let clicks = sum / WHEEL_NOTCH;
            *acc = sum - clicks * WHEEL_NOTCH;
            clicks.clamp(-MAX_WHEEL_CLICKS, MAX_WHEEL_CLICKS)
        }
        (axis(&mut self.x, dx), axis(&mut self.y, dy))
    }

    /// The accumulated part that has not made a click yet, `(horizontal, vertical)`.
    pub fn remainder(&self) -> (i32, i32) {
        (self.x, self.y)
    }

    /// Forgets the remainder (a scroll gesture ended: leftovers must not complete a click in a
    /// later, unrelated one).
    pub fn reset(&mut self) {
        (self.x, self.y) = (0, 0);
    }
}

/// The modifier keys that change levels and locks, from the modifier mapping.
#[derive(Debug, Default, Clone)]
struct ModKeys {
    /// The Num_Lock key and its modifier bit.
    num_lock: Option<(Keycode, u16)>,
    /// An `ISO_Level3_Shift` key and its modifier bit (AltGr).
    level3: Option<(Keycode, u16)>,
    /// Every key that is a Shift modifier.
    shifts: Vec<Keycode>,
    /// Every key that is `ISO_Level3_Shift` or `Mode_switch`.
    level3_keys: Vec<Keycode>,
}

/// Injects keyboard and pointer input into one X display through XTest (see the module docs).
pub struct Injector {
    conn: RustConnection,
    display: String,
    root: Window,
    screen: (u16, u16),
    min_keycode: Keycode,
    max_keycode: Keycode,
    map: KeyboardMap,
    /// A `MappingNotify` from someone else arrived: reload before [`Injector::text`].
    map_stale: bool,
    shift_keycode: Option<Keycode>,
    caps_lock_keycode: Option<Keycode>,
    mods: ModKeys,
    modifier_keycodes: BTreeSet<Keycode>,
    /// Keycodes the `code` table can produce (never used as spares).
    table_keycodes: BTreeSet<Keycode>,
    spares: Spares,
    pressed_keys: BTreeSet<Keycode>,
    pressed_buttons: BTreeSet<u8>,
    wheel: WheelAccumulator,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector")
            .field("display", &self.display)
            .field("screen", &self.screen)
            .field("pressed_keys", &self.pressed_keys)
            .field("pressed_buttons", &self.pressed_buttons)
            .field("spares_in_use", &self.spares.in_use())
            .finish_non_exhaustive()
    }
}

impl Injector {
    /// Opens `display` (e.g. `":42"`), checks XTEST, reads the keyboard mapping, the modifier
    /// mapping and the screen size, and subscribes to RandR screen changes (when the server has
    /// RandR).
    pub fn connect(display: &str) -> Result<Self, InjectError> {
        let (conn, screen_num) =
            RustConnection::connect(Some(display)).map_err(|source| InjectError::Connect {
                display: display.to_owned(),
                source,
            })?;
        if conn
            .extension_information(xtest::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err(InjectError::NoXTest {
                display: display.to_owned(),
            });
        }
        conn.xtest_get_version(2, 2)?
            .reply()
            .map_err(reply_err("XTEST GetVersion"))?;
        let setup = conn.setup();
        let screen = setup.roots.get(screen_num).ok_or_else(|| {
            InjectError::Protocol(format!("screen {screen_num} missing from the setup"))
        })?;
        let root = screen.root;
        let size = (screen.width_in_pixels, screen.height_in_pixels);
        let (min_keycode, max_keycode) = (setup.min_keycode, setup.max_keycode);
        if conn
            .extension_information(randr::X11_EXTENSION_NAME)?
            .is_some()
        {
            conn.randr_query_version(1, 5)?
                .reply()
                .map_err(reply_err("RandR QueryVersion"))?;
            conn.randr_select_input(root, randr::NotifyMask::SCREEN_CHANGE)?
                .check()
                .map_err(reply_err("RandR SelectInput"))?;
        }
        let table_keycodes = keymap::CODES
            .iter()
            .filter_map(|&(code, _)| keymap::x_keycode_from_code(code))
            .collect();
        let mut inj = Injector {
            conn,
            display: display.to_owned(),
            root,
            screen: size,
            min_keycode,
            max_keycode,
            map: KeyboardMap::default(),
            map_stale: true,
            shift_keycode: None,
            caps_lock_keycode: None,
            mods: ModKeys::default(),
            modifier_keycodes: BTreeSet::new(),
            table_keycodes,
            spares: Spares::default(),
            pressed_keys: BTreeSet::new(),
            pressed_buttons: BTreeSet::new(),
            wheel: WheelAccumulator::default(),
        };
        inj.load_keyboard()?;
        tracing::debug!(
            display = %inj.display,
            width = size.0,
            height = size.1,
            min_keycode,
            max_keycode,
            spares = inj.spares.slots.len(),
            "input injector connected"
        );
        Ok(inj)
    }

    /// Presses (`down`) or releases the physical key of a `KeyboardEvent.code`.
    pub fn key(&mut self, code: &str, down: bool) -> Result<(), InjectError> {
        let keycode = keymap::x_keycode_from_code(code)
            .ok_or_else(|| InjectError::UnknownCode(code.to_owned()))?;
        if !(self.min_keycode..=self.max_keycode).contains(&keycode) {
            return Err(InjectError::KeycodeOutOfRange {
                code: code.to_owned(),
                keycode,
                min: self.min_keycode,
                max: self.max_keycode,
            });
        }
        self.fake_key(keycode, down)?;
        self.flush()
    }

    /// Types `text` (see "Text" in the module docs). Control characters other than `\n`,
    /// `\r` and `\t` are refused before anything is typed; `\r\n` types one Return.
    pub fn text(&mut self, text: &str) -> Result<(), InjectError> {
        let mut chars = Vec::with_capacity(text.len());
        let mut it = text.chars().peekable();
        while let Some(c) = it.next() {
            if c == '\r' && it.peek() == Some(&'\n') {
                continue;
            }
            chars.push((
                c,
                keysym_for_char(c).ok_or(InjectError::UnsupportedChar(c))?,
            ));
        }
        if chars.is_empty() {
            return Ok(());
        }
        self.drain()?;
        if self.map_stale {
            self.load_keyboard()?;
        }
        let state = self
            .conn
            .query_pointer(self.root)?
            .reply()
            .map_err(reply_err("QueryPointer"))?
            .mask;
        let shift_held = state.contains(KeyButMask::SHIFT);
        let caps = self.caps_lock_keycode.filter(|&k| {
            state.contains(KeyButMask::LOCK)
                && !self.pressed_keys.contains(&k)
                && chars.iter().any(|&(c, _)| has_case(c))
        });
        if let Some(k) = caps {
            self.tap(k)?;
        }
        let typed = chars
            .iter()
            .try_for_each(|&(c, keysym)| self.type_keysym(c, keysym, shift_held));
        if let Some(k) = caps {
            self.tap(k)?;
        }
        typed?;
        self.flush()
    }

    /// Moves the pointer to video position (`x`, `y`) of a `video_w` x `video_h` picture, mapped
    /// onto the current screen size (see [`map_axis`]). Returns the screen position.
    pub fn pointer_abs(
        &mut self,
        x: u32,
        y: u32,
        video_w: u32,
        video_h: u32,
    ) -> Result<(u16, u16), InjectError> {
        if video_w == 0 || video_h == 0 {
            return Err(InjectError::InvalidVideoSize {
                width: video_w,
                height: video_h,
            });
        }
        // Picks up a RandR change that arrived since the last call.
        self.drain()?;
        let (sw, sh) = self.screen;
        let sx = map_axis(x, video_w, u32::from(sw));
        let sy = map_axis(y, video_h, u32::from(sh));
        // Fit: screen sizes are at most 32767 in X.
        let (sx, sy) = (
            sx.min(i16::MAX as u32) as i16,
            sy.min(i16::MAX as u32) as i16,
        );
        let cookie = self.conn.xtest_fake_input(
            xproto::MOTION_NOTIFY_EVENT,
            0,
            x11rb::CURRENT_TIME,
            self.root,
            sx,
            sy,
            0,
        );
        Self::sent(cookie)?;
        self.flush()?;
        Ok((sx as u16, sy as u16))
    }

    /// Moves the pointer by (`dx`, `dy`) pixels (clamped to ±32767; the server clamps the
    /// result to the screen).
    pub fn pointer_rel(&mut self, dx: i32, dy: i32) -> Result<(), InjectError> {
        let clamp = |d: i32| d.clamp(-i32::from(i16::MAX), i32::from(i16::MAX)) as i16;
        let cookie = self.conn.xtest_fake_input(
            xproto::MOTION_NOTIFY_EVENT,
            1,
            x11rb::CURRENT_TIME,
            x11rb::NONE,
            clamp(dx),
            clamp(dy),
            0,
        );
        Self::sent(cookie)?;
        self.flush()
    }

    /// Presses or releases a mouse button: 0 left, 1 middle, 2 right, 3 back, 4 forward
    /// (X buttons 1, 2, 3, 8, 9).
    pub fn button(&mut self, button: u8, down: bool) -> Result<(), InjectError> {
        let xb = x_button(button).ok_or(InjectError::UnknownButton(button))?;
        self.fake_button(xb, down)?;
        self.flush()
    }

    /// Scrolls by hi-res deltas ([`WHEEL_NOTCH`] = one notch; positive: right/down), sending a
    /// click of X button 4/5 (up/down) or 6/7 (left/right) per whole notch and keeping the
    /// remainder (see [`WheelAccumulator::add`]).
    pub fn wheel(&mut self, dx_hires: i32, dy_hires: i32) -> Result<(), InjectError> {
        let (h, v) = self.wheel.add(dx_hires, dy_hires);
        for (clicks, negative, positive) in [(v, 4u8, 5u8), (h, 6, 7)] {
            let xb = if clicks < 0 { negative } else { positive };
            for _ in 0..clicks.unsigned_abs() {
                self.fake_button(xb, true)?;
                self.fake_button(xb, false)?;
            }
        }
        self.flush()
    }

    /// The wheel remainder `(horizontal, vertical)` in hi-res units, not yet a click.
    pub fn wheel_remainder(&self) -> (i32, i32) {
        self.wheel.remainder()
    }

    /// Drops the wheel remainder (see [`WheelAccumulator::reset`]).
    pub fn reset_wheel(&mut self) {
        self.wheel.reset();
    }

    /// Releases every key and button this injector holds down, resets the wheel remainder and
    /// restores the remapped spare keycodes (what a disconnect needs; a client still looking up
    /// a character typed in the last moments may then see `NoSymbol`). Every release is sent
    /// even if one fails; the first error is returned.
    pub fn release_all(&mut self) -> Result<(), InjectError> {
        let keys: Vec<Keycode> = self.pressed_keys.iter().rev().copied().collect();
        let buttons: Vec<u8> = self.pressed_buttons.iter().copied().collect();
        let mut first_err = None;
        for &k in &keys {
            if let Err(e) = self.fake_key(k, false) {
                first_err.get_or_insert(e);
            }
        }
        for &b in &buttons {
            if let Err(e) = self.fake_button(b, false) {
                first_err.get_or_insert(e);
            }
        }
        if !keys.is_empty() || !buttons.is_empty() {
            tracing::debug!(display = %self.display, ?keys, ?buttons, "released held keys and buttons");
        }
        self.wheel = WheelAccumulator::default();
        if let Err(e) = self.flush() {
            first_err.get_or_insert(e);
        }
        if let Err(e) = self.restore_keymap() {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Sends queued requests and reports X errors that have arrived (non-blocking).
    pub fn flush(&mut self) -> Result<(), InjectError> {
        self.conn.flush()?;
        self.drain()
    }

    /// Waits until the server has processed everything sent so far (one round trip) and
    /// reports every X error up to that point.
    pub fn sync(&mut self) -> Result<(), InjectError> {
        self.conn
            .get_input_focus()?
            .reply()
            .map_err(reply_err("GetInputFocus"))?;
        self.drain()
    }

    /// Puts `NoSymbol` back on every spare keycode [`Injector::text`] remapped. Call it when
    /// text input has been idle for a while (clients look keysyms up after the event).
    pub fn restore_keymap(&mut self) -> Result<(), InjectError> {
        let mut first_err = None;
        for i in 0..self.spares.slots.len() {
            let Some(keysym) = self.spares.slots[i].keysym else {
                continue;
            };
            let keycode = self.spares.slots[i].keycode;
            if self.pressed_keys.contains(&keycode) {
                continue; // a key held by keysym: restored once released and idle again
            }
            match self.set_keysym(keycode, NO_SYMBOL) {
                Ok(()) => {
                    tracing::trace!(keycode, keysym, "spare keycode restored");
                    self.spares.slots[i].keysym = None;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Tells the injector the screen's new size (e.g. after the session resized it). RandR
    /// changes are also picked up by themselves.
    pub fn screen_resized(&mut self, width: u16, height: u16) {
        self.screen = (width, height);
    }

    /// The screen size pointer positions are mapped onto.
    pub fn screen_size(&self) -> (u16, u16) {
        self.screen
    }

    /// The X keycodes this injector holds down, ascending.
    pub fn pressed_keys(&self) -> Vec<u8> {
        self.pressed_keys.iter().copied().collect()
    }

    /// The X buttons this injector holds down, ascending.
    pub fn pressed_buttons(&self) -> Vec<u8> {
        self.pressed_buttons.iter().copied().collect()
    }

    /// How many spare keycodes carry a keysym put there by [`Injector::text`].
    pub fn spare_keycodes_in_use(&self) -> usize {
        self.spares.in_use()
    }

    // ---- internals ----

    /// A request without a reply was queued: its error, if any, arrives as an event that
    /// [`Injector::drain`] reports.
    fn sent(
        cookie: Result<VoidCookie<'_, RustConnection>, ConnectionError>,
    ) -> Result<(), InjectError> {
        drop(cookie?);
        Ok(())
    }

    fn fake_key(&mut self, keycode: Keycode, down: bool) -> Result<(), InjectError> {
        let kind = if down {
            xproto::KEY_PRESS_EVENT
        } else {
            xproto::KEY_RELEASE_EVENT
        };
        let cookie =
            self.conn
                .xtest_fake_input(kind, keycode, x11rb::CURRENT_TIME, x11rb::NONE, 0, 0, 0);
        Self::sent(cookie)?;
        if down {
            self.pressed_keys.insert(keycode);
        } else {
            self.pressed_keys.remove(&keycode);
        }
        Ok(())
    }

    fn fake_button(&mut self, button: u8, down: bool) -> Result<(), InjectError> {
        let kind = if down {
            xproto::BUTTON_PRESS_EVENT
        } else {
            xproto::BUTTON_RELEASE_EVENT
        };
        let cookie =
            self.conn
                .xtest_fake_input(kind, button, x11rb::CURRENT_TIME, x11rb::NONE, 0, 0, 0);
        Self::sent(cookie)?;
        if down {
            self.pressed_buttons.insert(button);
        } else {
            self.pressed_buttons.remove(&button);
        }
        Ok(())
    }

    fn tap(&mut self, keycode: Keycode) -> Result<(), InjectError> {
        self.fake_key(keycode, true)?;
        self.fake_key(keycode, false)
    }

    /// Reads every event that has arrived (without blocking): X errors are returned (the first;
    /// all are logged), RandR changes and mapping changes are applied.
    fn drain(&mut self) -> Result<(), InjectError> {
        let mut first_err = None;
        while let Some(event) = self.conn.poll_for_event()? {
            match event {
                Event::Error(e) => {
                    tracing::warn!(
                        display = %self.display,
                        request = e.request_name.unwrap_or("?"),
                        kind = ?e.error_kind,
                        bad_value = e.bad_value,
                        "X server rejected an input request"
                    );
                    first_err.get_or_insert(e);
                }
                Event::RandrScreenChangeNotify(e) if e.root == self.root => {
                    let rotated = e
                        .rotation
                        .intersects(randr::Rotation::ROTATE90 | randr::Rotation::ROTATE270);
                    self.screen = if rotated {
                        (e.height, e.width)
                    } else {
                        (e.width, e.height)
                    };
                    tracing::debug!(
                        display = %self.display,
                        width = self.screen.0,
                        height = self.screen.1,
                        "screen size changed"
                    );
                }
                Event::MappingNotify(e) => {
                    // Our own spare remaps notify us too; our cache already has them.
                    let own = e.request == xproto::Mapping::KEYBOARD
                        && e.count == 1
                        && self
                            .spares
                            .slots
                            .iter()
                            .any(|s| s.keycode == e.first_keycode);
                    if !own && e.request != xproto::Mapping::POINTER {
                        self.map_stale = true;
                    }
                }
                _ => {}
            }
        }
        first_err.map_or(Ok(()), |e| Err(InjectError::Rejected(e)))
    }

    /// (Re)reads the keyboard and modifier mappings and reconciles the spare keycodes.
    fn load_keyboard(&mut self) -> Result<(), InjectError> {
        let count = self.max_keycode - self.min_keycode + 1;
        let reply = self
            .conn
            .get_keyboard_mapping(self.min_keycode, count)?
            .reply()
            .map_err(reply_err("GetKeyboardMapping"))?;
        let per = usize::from(reply.keysyms_per_keycode);
        if reply.keysyms.len() != per * usize::from(count) {
            return Err(InjectError::Protocol(format!(
                "GetKeyboardMapping returned {} keysyms for {count} keycodes x {per}",
                reply.keysyms.len()
            )));
        }
        self.map = KeyboardMap {
            min: self.min_keycode,
            per,
            syms: reply.keysyms,
        };
        let modmap = self
            .conn
            .get_modifier_mapping()?
            .reply()
            .map_err(reply_err("GetModifierMapping"))?;
        let per_mod = modmap.keycodes.len() / 8;
        let of = |m: usize| -> Vec<Keycode> {
            modmap.keycodes[m * per_mod..(m + 1) * per_mod]
                .iter()
                .copied()
                .filter(|&k| k != 0)
                .collect()
        };
        self.shift_keycode = of(0)
            .into_iter()
            .find(|&k| matches!(self.map.levels(k).0, XK_SHIFT_L | XK_SHIFT_R));
        self.caps_lock_keycode = of(1)
            .into_iter()
            .find(|&k| self.map.levels(k).0 == XK_CAPS_LOCK);
        let mut mods = ModKeys::default();
        for m in 0..8 {
            for k in of(m) {
                let mask = 1u16 << m;
                match self.map.levels(k).0 {
                    XK_SHIFT_L | XK_SHIFT_R => mods.shifts.push(k),
                    XK_NUM_LOCK => {
                        mods.num_lock.get_or_insert((k, mask));
                    }
                    XK_ISO_LEVEL3_SHIFT => {
                        mods.level3.get_or_insert((k, mask));
                        mods.level3_keys.push(k);
                    }
                    XK_MODE_SWITCH => mods.level3_keys.push(k),
                    _ => {}
                }
            }
        }
        self.mods = mods;
        self.modifier_keycodes = modmap
            .keycodes
            .iter()
            .copied()
            .filter(|&k| k != 0)
            .collect();
        self.reconcile_spares();
        self.map_stale = false;
        Ok(())
    }

    /// Keeps the spares that still hold what we put there, drops the rest (someone else mapped
    /// them), and tops the pool up from the highest free keycodes.
    fn reconcile_spares(&mut self) {
        let map = &self.map;
        let unmapped = |k: Keycode| map.row(k).iter().all(|&s| s == NO_SYMBOL);
        self.spares.slots.retain(|s| match s.keysym {
            None => unmapped(s.keycode),
            Some(ks) => map.row(s.keycode).first() == Some(&ks),
        });
        let mut k = self.max_keycode;
        while self.spares.slots.len() < SPARE_LIMIT && k >= self.min_keycode {
            if unmapped(k)
                && !self.modifier_keycodes.contains(&k)
                && !self.table_keycodes.contains(&k)
                && !self.spares.slots.iter().any(|s| s.keycode == k)
            {
                self.spares.slots.push(Spare {
                    keycode: k,
                    keysym: None,
                    last_used: None,
                });
            }
            if k == self.min_keycode {
                break;
            }
            k -= 1;
        }
    }

    /// Puts `[keysym, keysym]` (or nothing, for `NO_SYMBOL`) on a keycode, checked.
    fn set_keysym(&mut self, keycode: Keycode, keysym: Keysym) -> Result<(), InjectError> {
        self.conn
            .change_keyboard_mapping(1, keycode, 2, &[keysym, keysym])?
            .check()
            .map_err(reply_err("ChangeKeyboardMapping"))?;
        let row = self.map.row_mut(keycode);
        row.fill(NO_SYMBOL);
        for s in row.iter_mut().take(2) {
            *s = keysym;
        }
        Ok(())
    }

    /// Types one keysym (step 3 and 4 of "Text" in the module docs).
    fn type_keysym(
        &mut self,
        c: char,
        keysym: Keysym,
        shift_held: bool,
    ) -> Result<(), InjectError> {
        if let Some(i) = self.spares.find(keysym) {
            return self.tap_spare(i);
        }
        let mut other_level = None;
        for k in self.min_keycode..=self.max_keycode {
            if self.pressed_keys.contains(&k) || self.spares.slots.iter().any(|s| s.keycode == k) {
                continue;
            }
            let (plain, shifted) = self.map.levels(k);
            let wanted = if shift_held { shifted } else { plain };
            if wanted == keysym {
                return self.tap(k);
            }
            if !shift_held && shifted == keysym && other_level.is_none() {
                other_level = Some(k);
            }
        }
        if let (Some(k), Some(shift)) = (other_level, self.shift_keycode) {
            if !self.pressed_keys.contains(&shift) {
                self.fake_key(shift, true)?;
                let tapped = self.tap(k);
                self.fake_key(shift, false)?;
                return tapped;
            }
        }
        let i = self
            .spare_for(keysym)?
            .ok_or(InjectError::NoSpareKeycode(c))?;
        self.tap_spare(i)
    }

    /// The spare slot carrying `keysym`, remapping the least recently used free one if none
    /// does (never one that is held down); `None` when every spare is held.
    fn spare_for(&mut self, keysym: Keysym) -> Result<Option<usize>, InjectError> {
        if let Some(i) = self.spares.find(keysym) {
            return Ok(Some(i));
        }
        let held = &self.pressed_keys;
        let Some(i) = self.spares.victim(|k| held.contains(&k)) else {
            return Ok(None);
        };
        if let Some(last) = self.spares.slots[i].last_used {
            let since = last.elapsed();
            if self.spares.slots[i].keysym.is_some() && since < SPARE_REUSE_GUARD {
                // Every spare was used within the guard (a long text of new characters): let
                // clients look up the old keysym before it changes.
                self.sync()?;
                std::thread::sleep(SPARE_REUSE_GUARD - since);
            }
        }
        let keycode = self.spares.slots[i].keycode;
        self.set_keysym(keycode, keysym)?;
        tracing::trace!(keycode, keysym, "spare keycode remapped");
        self.spares.slots[i].keysym = Some(keysym);
        Ok(Some(i))
    }

    fn tap_spare(&mut self, i: usize) -> Result<(), InjectError> {
        self.spares.slots[i].last_used = Some(Instant::now());
        self.tap(self.spares.slots[i].keycode)
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        if let Err(e) = self.release_all().and_then(|()| self.sync()) {
            tracing::warn!(display = %self.display, error = %e, "releasing input on drop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::map::keysym_char;
    use super::*;

    #[test]
    fn buttons_map_to_x_buttons() {
        assert_eq!(
            (0..=5).map(x_button).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3), Some(8), Some(9), None]
        );
    }

    #[test]
    fn axis_mapping_rounds_and_clamps() {
        assert_eq!(map_axis(100, 640, 1280), 200);
        assert_eq!(map_axis(50, 480, 960), 100);
        assert_eq!(map_axis(0, 640, 1280), 0);
        assert_eq!(map_axis(639, 640, 1280), 1278);
        assert_eq!(map_axis(640, 640, 1280), 1279); // past the edge: clamped
        assert_eq!(map_axis(u32::MAX, 1, 1920), 1919);
        // Video larger than the screen, rounding to nearest.
        assert_eq!(map_axis(3, 4, 3), 2); // 2.25 → 2
        assert_eq!(map_axis(1, 2, 3), 2); // 1.5 → 2
        assert_eq!(map_axis(333, 1000, 1280), 426); // 426.24
        assert_eq!(map_axis(5, 10, 0), 0);
    }

    #[test]
    fn wheel_accumulates_and_keeps_the_remainder() {
        let mut w = WheelAccumulator::default();
        assert_eq!(w.add(0, 40), (0, 0));
        assert_eq!(w.add(0, 40), (0, 0));
        assert_eq!(w.add(0, 40), (0, 1));
        assert_eq!(w.remainder(), (0, 0));
        assert_eq!(w.add(0, 250), (0, 2));
        assert_eq!(w.remainder(), (0, 10));
        // Reversal starts from zero.
        assert_eq!(w.add(0, -100), (0, 0));
        assert_eq!(w.remainder(), (0, -100));
        assert_eq!(w.add(-130, -20), (-1, -1));
        assert_eq!(w.remainder(), (-10, 0));
        assert_eq!(
            w.add(i32::MAX, i32::MIN),
            (MAX_WHEEL_CLICKS, -MAX_WHEEL_CLICKS)
        );
        // A reset drops the leftover: 100 + 100 after a reset is one click, not two.
        w.reset();
        assert_eq!(w.add(0, 100), (0, 0));
        w.reset();
        assert_eq!(w.add(0, 100), (0, 0));
        assert_eq!(w.remainder(), (0, 100));
    }

    #[test]
    fn keysyms_for_chars() {
        assert_eq!(keysym_for_char('a'), Some(0x61));
        assert_eq!(keysym_for_char(' '), Some(0x20));
        assert_eq!(keysym_for_char('é'), Some(0xe9));
        assert_eq!(keysym_for_char('\u{a0}'), Some(0xa0));
        assert_eq!(keysym_for_char('€'), Some(0x0100_20ac));
        assert_eq!(keysym_for_char('ж'), Some(0x0100_0436));
        assert_eq!(keysym_for_char('😀'), Some(0x0101_f600));
        assert_eq!(keysym_for_char('\n'), Some(XK_RETURN));
        assert_eq!(keysym_for_char('\t'), Some(XK_TAB));
        for c in ['\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}'] {
            assert_eq!(keysym_for_char(c), None, "{c:?}");
        }
        for c in ['a', 'é', '€', 'ж', '😀', '~'] {
            assert_eq!(keysym_char(keysym_for_char(c).unwrap()), Some(c));
        }
    }

    #[test]
    fn injector_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<Injector>();
    }

    /// Needs Xvfb: an X error caused by a request is returned, once, not swallowed.
    #[test]
    fn x_errors_are_reported() {
        use crate::display::{DisplayOptions, VirtualDisplay};
        let d = VirtualDisplay::start(DisplayOptions {
            width: 320,
            height: 240,
            ..Default::default()
        })
        .unwrap();
        let mut inj = Injector::connect(&d.name()).unwrap();
        // Keycode 3 is below every server's minimum keycode (8): BadValue.
        let cookie = inj.conn.xtest_fake_input(
            xproto::KEY_PRESS_EVENT,
            3,
            x11rb::CURRENT_TIME,
            x11rb::NONE,
            0,
            0,
            0,
        );
        Injector::sent(cookie).unwrap();
        let err = inj.sync().unwrap_err();
        assert!(
            matches!(&err, InjectError::Rejected(e) if e.error_kind == x11rb::protocol::ErrorKind::Value && e.bad_value == 3),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the X server rejected FakeInput: Value (bad value 0x3)"
        );
        inj.sync().unwrap();
        inj.key("KeyA", true).unwrap();
        inj.key("KeyA", false).unwrap();
        inj.sync().unwrap();
    }
}
