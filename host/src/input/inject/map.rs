//! The injector's pure keyboard bookkeeping: the core keyboard mapping as read from the server
//! (with the core protocol's level rules) and the pool of spare keycodes that text and
//! keysyms outside the keymap are typed through. No I/O; the X requests are the injector's.

use std::time::Instant;

use x11rb::protocol::xproto::{Keycode, Keysym};

use super::{keysym_for_char, NO_SYMBOL};

/// One spare keycode and what [`Injector::text`] has put on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spare {
    pub(super) keycode: Keycode,
    /// `None`: unmapped (`NoSymbol`, as found).
    pub(super) keysym: Option<Keysym>,
    pub(super) last_used: Option<Instant>,
}

/// The spare keycodes (pure bookkeeping; the X requests are the injector's).
#[derive(Debug, Default)]
pub(super) struct Spares {
    pub(super) slots: Vec<Spare>,
}

impl Spares {
    pub(super) fn find(&self, keysym: Keysym) -> Option<usize> {
        self.slots.iter().position(|s| s.keysym == Some(keysym))
    }

    /// The slot to remap next: a free one, else the least recently used; never one whose
    /// keycode `held` says is down.
    pub(super) fn victim(&self, held: impl Fn(Keycode) -> bool) -> Option<usize> {
        let free = |i: &usize| !held(self.slots[*i].keycode);
        (0..self.slots.len())
            .filter(free)
            .find(|&i| self.slots[i].keysym.is_none())
            .or_else(|| {
                (0..self.slots.len())
                    .filter(free)
                    .min_by_key(|&i| self.slots[i].last_used)
            })
    }

    pub(super) fn in_use(&self) -> usize {
        self.slots.iter().filter(|s| s.keysym.is_some()).count()
    }
}

/// The core keyboard mapping of keycodes `min..=max`.
#[derive(Debug, Default)]
pub(super) struct KeyboardMap {
    pub(super) min: Keycode,
    pub(super) per: usize,
    pub(super) syms: Vec<Keysym>,
}

impl KeyboardMap {
    pub(super) fn row(&self, keycode: Keycode) -> &[Keysym] {
        let i = usize::from(keycode.saturating_sub(self.min)) * self.per;
        self.syms.get(i..i + self.per).unwrap_or(&[])
    }

    pub(super) fn row_mut(&mut self, keycode: Keycode) -> &mut [Keysym] {
        let i = usize::from(keycode.saturating_sub(self.min)) * self.per;
        self.syms.get_mut(i..i + self.per).unwrap_or(&mut [])
    }

    /// Group-1 levels (unshifted, shifted) of a keycode, with the core protocol's rule for a
    /// missing second keysym (a cased letter gives its upper case, anything else itself).
    pub(super) fn levels(&self, keycode: Keycode) -> (Keysym, Keysym) {
        let row = self.row(keycode);
        let first = row.first().copied().unwrap_or(NO_SYMBOL);
        let second = row.get(1).copied().unwrap_or(NO_SYMBOL);
        if second != NO_SYMBOL {
            return (first, second);
        }
        let upper = keysym_char(first)
            .filter(|c| c.is_lowercase())
            .and_then(|c| {
                let mut up = c.to_uppercase();
                match (up.next(), up.next()) {
                    (Some(u), None) => keysym_for_char(u),
                    _ => None,
                }
            })
            .unwrap_or(first);
        (first, upper)
    }
}

/// The character of a Latin-1 or Unicode keysym (what [`keysym_for_char`] produces).
pub(super) fn keysym_char(keysym: Keysym) -> Option<char> {
    match keysym {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(keysym),
        0x0100_0100..=0x0110_ffff => char::from_u32(keysym & 0x00ff_ffff),
        _ => None,
    }
}

pub(super) fn has_case(c: char) -> bool {
    c.is_lowercase() || c.is_uppercase()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn core_levels_follow_the_protocol_rule() {
        let map = KeyboardMap {
            min: 8,
            per: 2,
            syms: vec![
                0x61, 0x41, // 8: a A
                0xe9, 0, // 9: eacute NoSymbol → É
                0xff0d, 0, // 10: Return NoSymbol → Return
                0, 0, // 11: nothing
            ],
        };
        assert_eq!(map.levels(8), (0x61, 0x41));
        assert_eq!(map.levels(9), (0xe9, 0xc9));
        assert_eq!(map.levels(10), (0xff0d, 0xff0d));
        assert_eq!(map.levels(11), (0, 0));
        assert_eq!(map.levels(200), (0, 0)); // out of range
    }

    #[test]
    fn spares_are_least_recently_used() {
        let t0 = Instant::now();
        let mut s = Spares {
            slots: (0..3)
                .map(|i| Spare {
                    keycode: 250 - i,
                    keysym: None,
                    last_used: None,
                })
                .collect(),
        };
        assert_eq!(s.victim(|_| false), Some(0));
        s.slots[0].keysym = Some(1);
        s.slots[0].last_used = Some(t0 + Duration::from_millis(5));
        assert_eq!(s.victim(|_| false), Some(1));
        s.slots[1].keysym = Some(2);
        s.slots[1].last_used = Some(t0 + Duration::from_millis(1));
        s.slots[2].keysym = Some(3);
        s.slots[2].last_used = Some(t0 + Duration::from_millis(9));
        assert_eq!(s.find(3), Some(2));
        assert_eq!(s.find(4), None);
        assert_eq!(s.in_use(), 3);
        // All taken: the least recently used goes.
        assert_eq!(s.victim(|_| false), Some(1));
        // A held spare is never taken.
        assert_eq!(s.victim(|k| k == 249), Some(0));
        assert_eq!(s.victim(|_| true), None);
        assert_eq!(Spares::default().victim(|_| false), None);
    }
}
