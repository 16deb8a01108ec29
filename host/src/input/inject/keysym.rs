//! Keys by keysym: the client's layout decides the character.
//!
//! The browser knows what the user's own layout makes of a key (`KeyboardEvent.key`: `z` for
//! the physical Y key of a German keyboard, `"` for its Shift+2, `@` for AltGr+Q). The client
//! sends that as an X keysym ([`ClientMessage::KeysymDown`](crate::input::protocol::ClientMessage));
//! [`Injector::keysym_press`] presses a key of the *desktop's* keymap that makes exactly that
//! keysym, whatever the desktop's layout:
//!
//! 1. A keycode whose group-1 level 1 or 2 has the keysym (level 3/4 next, when the keymap has
//!    an `ISO_Level3_Shift` key); else a spare keycode remapped to `[keysym, keysym]`, shared
//!    with [`Injector::text`].
//! 2. The level needs Shift (level 2/4) or not, and Level 3 (AltGr) or not. Caps Lock inverts
//!    Shift on a key whose two levels are a lower/upper case pair, Num Lock on a keypad key,
//!    as XKB does. The user's held modifiers that do not fit are released around the press and
//!    pressed again after it; a missing Shift or Level 3 is pressed around it. X clients
//!    read the modifier state at the press, so the key's release needs none of this.
//!    Control, Alt and Super stay as the user holds them: Ctrl+Z is Ctrl and the key of `z`.
//! 3. A spare keycode typed while Caps Lock is on gets Caps Lock tapped off around the press
//!    (Xlib would upper-case it otherwise); the client's keysym already has the right case.
//!
//! Modifier keysyms (Shift, Control, `ISO_Level3_Shift`, …) are pressed as they are, with no
//! adjustment. [`Injector::set_locks`] makes the desktop's Caps Lock and Num Lock match the
//! client's (one `QueryPointer` round trip, a tap of the lock key where they differ).

use x11rb::protocol::xproto::{ConnectionExt as _, KeyButMask, Keycode, Keysym};

use super::map::keysym_char;
use super::{reply_err, InjectError, Injector};

pub(super) const XK_ISO_LEVEL3_SHIFT: Keysym = 0xfe03;
pub(super) const XK_MODE_SWITCH: Keysym = 0xff7e;
pub(super) const XK_NUM_LOCK: Keysym = 0xff7f;

/// How a keycode makes a keysym: its level (0-based: 0 plain, 1 Shift, 2 Level 3, 3 both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    keycode: Keycode,
    level: usize,
}

/// Whether a keysym is a modifier or lock key (pressed with no level adjustment).
pub fn is_modifier_keysym(keysym: Keysym) -> bool {
    matches!(keysym, 0xffe1..=0xffee | 0xfe01..=0xfe0f | XK_MODE_SWITCH | XK_NUM_LOCK)
}

/// Whether a pair of levels is a letter in lower and upper case (Caps Lock applies to it).
pub(super) fn is_case_pair(plain: Keysym, shifted: Keysym) -> bool {
    match (keysym_char(plain), keysym_char(shifted)) {
        (Some(l), Some(u)) if l != u => {
            let mut up = l.to_uppercase();
            up.next() == Some(u) && up.next().is_none()
        }
        _ => false,
    }
}

/// Whether a keysym is on the keypad (`KP_Space` .. `KP_9`, `KP_Equal`): Num Lock applies.
pub(super) fn is_keypad(keysym: Keysym) -> bool {
    (0xff80..=0xffbd).contains(&keysym)
}

/// The Shift and Level 3 a found key needs under the given lock state (pure, see module docs).
pub(super) fn needs(
    level: usize,
    plain: Keysym,
    shifted: Keysym,
    caps: bool,
    num: bool,
) -> (bool, bool) {
    let mut shift = level % 2 == 1;
    if level < 2 && ((caps && is_case_pair(plain, shifted)) || (num && is_keypad(shifted))) {
        shift = !shift;
    }
    (shift, level >= 2)
}

impl Injector {
    /// Presses a key that makes `keysym` (see the module docs) and returns its keycode, which
    /// [`Injector::keycode_release`] lets go. A modifier keysym the keymap lacks is an error
    /// ([`InjectError::NotInKeymap`]); any other keysym it lacks goes through a spare keycode.
    pub fn keysym_press(&mut self, keysym: Keysym) -> Result<Keycode, InjectError> {
        if keysym == 0 {
            // NoSymbol would match an unmapped keycode (the protocol decoder refuses it too).
            return Err(InjectError::NotInKeymap(keysym));
        }
        self.drain()?;
        if self.map_stale {
            self.load_keyboard()?;
        }
        if is_modifier_keysym(keysym) {
            let k = self
                .find_keysym(keysym, false)
                .map(|f| f.keycode)
                .ok_or(InjectError::NotInKeymap(keysym))?;
            self.fake_key(k, true)?;
            self.flush()?;
            return Ok(k);
        }
        let state = self.modifier_state()?;
        let caps = state & u16::from(KeyButMask::LOCK) != 0;
        let num = self.mods.num_lock.is_some_and(|(_, m)| state & m != 0);
        let shift_on = state & u16::from(KeyButMask::SHIFT) != 0;
        let level3_on = self.mods.level3.is_some_and(|(_, m)| state & m != 0);
        let Some(found) = self.find_keysym(keysym, shift_on) else {
            return self.press_on_spare(keysym, caps);
        };
        let row = self.map.row(found.keycode);
        let plain = row.first().copied().unwrap_or(0);
        let (_, shifted) = self.map.levels(found.keycode);
        let (want_shift, want_level3) = needs(found.level, plain, shifted, caps, num);
        // Around the press: release what does not fit, press what is missing.
        let mut lift: Vec<Keycode> = Vec::new();
        let mut add: Vec<Keycode> = Vec::new();
        if shift_on && !want_shift {
            lift.extend(self.held_of(&self.mods.shifts.clone()));
        }
        if level3_on && !want_level3 {
            lift.extend(self.held_of(&self.mods.level3_keys.clone()));
        }
        if want_shift && !shift_on {
            add.extend(self.shift_keycode);
        }
        if want_level3 && !level3_on {
            add.extend(self.mods.level3.map(|(k, _)| k));
        }
        for &k in &lift {
            self.fake_key(k, false)?;
        }
        for &k in &add {
            self.fake_key(k, true)?;
        }
        let pressed = self.fake_key(found.keycode, true);
        for &k in add.iter().rev() {
            self.fake_key(k, false)?;
        }
        for &k in lift.iter().rev() {
            self.fake_key(k, true)?;
        }
        pressed?;
        self.flush()?;
        Ok(found.keycode)
    }

    /// Releases a keycode that [`Injector::keysym_press`] pressed (nothing if it is not down).
    pub fn keycode_release(&mut self, keycode: Keycode) -> Result<(), InjectError> {
        if !self.pressed_keys.contains(&keycode) {
            return Ok(());
        }
        self.fake_key(keycode, false)?;
        self.flush()
    }

    /// Makes the desktop's Caps Lock and Num Lock match `caps` and `num` (taps the lock keys
    /// where they differ). Returns whether anything was tapped.
    pub fn set_locks(&mut self, caps: bool, num: bool) -> Result<bool, InjectError> {
        self.drain()?;
        if self.map_stale {
            self.load_keyboard()?;
        }
        let state = self.modifier_state()?;
        let mut taps = Vec::new();
        if let Some(k) = self.caps_lock_keycode {
            if (state & u16::from(KeyButMask::LOCK) != 0) != caps {
                taps.push(k);
            }
        }
        if let Some((k, mask)) = self.mods.num_lock {
            if (state & mask != 0) != num {
                taps.push(k);
            }
        }
        for &k in &taps {
            if !self.pressed_keys.contains(&k) {
                self.tap(k)?;
            }
        }
        self.flush()?;
        Ok(!taps.is_empty())
    }

    /// The core modifier state (`QueryPointer`'s mask: Shift, Lock, Control, Mod1–Mod5).
    fn modifier_state(&mut self) -> Result<u16, InjectError> {
        Ok(u16::from(
            self.conn
                .query_pointer(self.root)?
                .reply()
                .map_err(reply_err("QueryPointer"))?
                .mask,
        ))
    }

    /// The keycodes of `of` this injector holds down.
    fn held_of(&self, of: &[Keycode]) -> Vec<Keycode> {
        of.iter()
            .copied()
            .filter(|k| self.pressed_keys.contains(k))
            .collect()
    }

    /// A keycode (not held, not a spare) that makes `keysym`: levels 1–2 first (the one that
    /// needs no change of Shift preferred), then levels 3–4 if the keymap has a Level 3 key.
    fn find_keysym(&self, keysym: Keysym, shift_on: bool) -> Option<Found> {
        let mut best: Option<Found> = None;
        for k in self.min_keycode..=self.max_keycode {
            if self.pressed_keys.contains(&k) || self.spares.slots.iter().any(|s| s.keycode == k) {
                continue;
            }
            let (plain, shifted) = self.map.levels(k);
            let level = if plain == keysym {
                0
            } else if shifted == keysym {
                1
            } else {
                continue;
            };
            if (level == 1) == shift_on {
                return Some(Found { keycode: k, level });
            }
            best.get_or_insert(Found { keycode: k, level });
        }
        if best.is_some() || self.mods.level3.is_none() {
            return best;
        }
        (self.min_keycode..=self.max_keycode)
            .filter(|k| !self.pressed_keys.contains(k))
            .find_map(|k| {
                let row = self.map.row(k);
                let level = match (row.get(4), row.get(5)) {
                    (Some(&s), _) if s == keysym => 2,
                    (_, Some(&s)) if s == keysym => 3,
                    _ => return None,
                };
                Some(Found { keycode: k, level })
            })
    }

    /// Presses a spare keycode mapped to `[keysym, keysym]` (Caps Lock tapped off around the
    /// press when on, so Xlib does not change the case).
    fn press_on_spare(&mut self, keysym: Keysym, caps: bool) -> Result<Keycode, InjectError> {
        let i = self
            .spare_for(keysym)?
            .ok_or(InjectError::NoSpareForKeysym(keysym))?;
        let keycode = self.spares.slots[i].keycode;
        self.spares.slots[i].last_used = Some(std::time::Instant::now());
        let lock = self
            .caps_lock_keycode
            .filter(|k| caps && !self.pressed_keys.contains(k) && keysym_char(keysym).is_some());
        if let Some(k) = lock {
            self.tap(k)?;
        }
        let pressed = self.fake_key(keycode, true);
        if let Some(k) = lock {
            self.tap(k)?;
        }
        pressed?;
        self.flush()?;
        Ok(keycode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_pairs_and_keypad_keys() {
        assert!(is_case_pair(0x61, 0x41)); // a A
        assert!(is_case_pair(0xe4, 0xc4)); // ä Ä
        assert!(is_case_pair(0x0100_0436, 0x0100_0416)); // ж Ж
        assert!(!is_case_pair(0x31, 0x21)); // 1 !
        assert!(!is_case_pair(0x61, 0x61));
        assert!(!is_case_pair(0xff0d, 0xff0d));
        assert!(is_keypad(0xffb1)); // KP_1
        assert!(is_keypad(0xff95)); // KP_Home
        assert!(!is_keypad(0xff50)); // Home
        assert!(is_modifier_keysym(0xffe1));
        assert!(is_modifier_keysym(XK_ISO_LEVEL3_SHIFT));
        assert!(!is_modifier_keysym(0x61));
    }

    #[test]
    fn levels_and_locks_give_the_modifiers_needed() {
        // a/A: plain a needs nothing; A needs Shift; with Caps Lock on, the other way round.
        assert_eq!(needs(0, 0x61, 0x41, false, false), (false, false));
        assert_eq!(needs(1, 0x61, 0x41, false, false), (true, false));
        assert_eq!(needs(0, 0x61, 0x41, true, false), (true, false));
        assert_eq!(needs(1, 0x61, 0x41, true, false), (false, false));
        // 1/!: Caps Lock does not apply.
        assert_eq!(needs(1, 0x31, 0x21, true, false), (true, false));
        // KP_End/KP_1: KP_1 needs Shift without Num Lock, nothing with it.
        assert_eq!(needs(1, 0xff9c, 0xffb1, false, false), (true, false));
        assert_eq!(needs(1, 0xff9c, 0xffb1, false, true), (false, false));
        // Level 3 (AltGr) and 4.
        assert_eq!(needs(2, 0x71, 0x51, true, false), (false, true));
        assert_eq!(needs(3, 0x71, 0x51, false, false), (true, true));
    }
}
