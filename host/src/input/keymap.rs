//! Physical key table: UI Events `KeyboardEvent.code` → Linux evdev key code → X keycode.
//!
//! The browser reports *which key* was pressed (`code`, independent of the client's layout); we
//! press the same physical key on the X server and let the server's keymap decide the character,
//! exactly like a local keyboard. X servers using the `evdev` XKB keycodes (Xorg with libinput
//! or evdev, Xvfb, Xorg-dummy) number their keys `evdev + 8`, see [`x_keycode_from_code`].
//!
//! The values follow `linux/input-event-codes.h` and Chromium's
//! `ui/events/keycodes/dom/dom_code_data.inc` (the browser side of the same mapping). Codes a
//! browser reports without an evdev equivalent (`Fn`, `NumpadClear`, …) are absent, and so
//! are keys whose evdev code is too large for an X keycode (> 247).

/// Offset between an evdev key code and the X keycode of the same key (`evdev` XKB keycodes).
pub const X_KEYCODE_OFFSET: u16 = 8;

macro_rules! key_table {
    ($($code:literal => $evdev:literal,)*) => {
        /// The Linux evdev key code (`KEY_*`) of a UI Events `KeyboardEvent.code` value, e.g.
        /// `"KeyA"` → 30 (`KEY_A`). `None` for codes this table does not know.
        pub fn evdev_from_code(code: &str) -> Option<u16> {
            match code {
                $($code => Some($evdev),)*
                _ => None,
            }
        }

        /// Every `(code, evdev)` pair [`evdev_from_code`] knows, in table order.
        pub const CODES: &[(&str, u16)] = &[$(($code, $evdev),)*];
    };
}

key_table! {
    // Writing system keys (the alphanumeric block), named after their US-layout position.
    "Backquote" => 41,      // KEY_GRAVE
    "Backslash" => 43,      // KEY_BACKSLASH
    "BracketLeft" => 26,    // KEY_LEFTBRACE
    "BracketRight" => 27,   // KEY_RIGHTBRACE
    "Comma" => 51,          // KEY_COMMA
    "Digit0" => 11,
    "Digit1" => 2,
    "Digit2" => 3,
    "Digit3" => 4,
    "Digit4" => 5,
    "Digit5" => 6,
    "Digit6" => 7,
    "Digit7" => 8,
    "Digit8" => 9,
    "Digit9" => 10,
    "Equal" => 13,          // KEY_EQUAL
    "IntlBackslash" => 86,  // KEY_102ND
    "IntlRo" => 89,         // KEY_RO
    "IntlYen" => 124,       // KEY_YEN
    "KeyA" => 30,
    "KeyB" => 48,
    "KeyC" => 46,
    "KeyD" => 32,
    "KeyE" => 18,
    "KeyF" => 33,
    "KeyG" => 34,
    "KeyH" => 35,
    "KeyI" => 23,
    "KeyJ" => 36,
    "KeyK" => 37,
    "KeyL" => 38,
    "KeyM" => 50,
    "KeyN" => 49,
    "KeyO" => 24,
    "KeyP" => 25,
    "KeyQ" => 16,
    "KeyR" => 19,
    "KeyS" => 31,
    "KeyT" => 20,
    "KeyU" => 22,
    "KeyV" => 47,
    "KeyW" => 17,
    "KeyX" => 45,
    "KeyY" => 21,
    "KeyZ" => 44,
    "Minus" => 12,          // KEY_MINUS
    "Period" => 52,         // KEY_DOT
    "Quote" => 40,          // KEY_APOSTROPHE
    "Semicolon" => 39,      // KEY_SEMICOLON
    "Slash" => 53,          // KEY_SLASH

    // Functional keys of the alphanumeric block.
    "AltLeft" => 56,        // KEY_LEFTALT
    "AltRight" => 100,      // KEY_RIGHTALT (AltGr on many layouts)
    "Backspace" => 14,
    "CapsLock" => 58,
    "ContextMenu" => 127,   // KEY_COMPOSE (X: Menu)
    "ControlLeft" => 29,
    "ControlRight" => 97,
    "Enter" => 28,
    "MetaLeft" => 125,      // KEY_LEFTMETA
    "MetaRight" => 126,     // KEY_RIGHTMETA
    "OSLeft" => 125,        // old name of MetaLeft (Firefox < 118)
    "OSRight" => 126,       // old name of MetaRight
    "ShiftLeft" => 42,
    "ShiftRight" => 54,
    "Space" => 57,
    "Tab" => 15,
    "Convert" => 92,        // KEY_HENKAN
    "KanaMode" => 93,       // KEY_KATAKANAHIRAGANA
    "Lang1" => 122,         // KEY_HANGEUL
    "Lang2" => 123,         // KEY_HANJA
    "Lang3" => 90,          // KEY_KATAKANA
    "Lang4" => 91,          // KEY_HIRAGANA
    "Lang5" => 85,          // KEY_ZENKAKUHANKAKU
    "NonConvert" => 94,     // KEY_MUHENKAN

    // Control pad and arrows.
    "Delete" => 111,
    "End" => 107,
    "Help" => 138,
    "Home" => 102,
    "Insert" => 110,
    "PageDown" => 109,
    "PageUp" => 104,
    "ArrowDown" => 108,
    "ArrowLeft" => 105,
    "ArrowRight" => 106,
    "ArrowUp" => 103,

    // Numpad.
    "NumLock" => 69,
    "Numpad0" => 82,
    "Numpad1" => 79,
    "Numpad2" => 80,
    "Numpad3" => 81,
    "Numpad4" => 75,
    "Numpad5" => 76,
    "Numpad6" => 77,
    "Numpad7" => 71,
    "Numpad8" => 72,
    "Numpad9" => 73,
    "NumpadAdd" => 78,
    "NumpadComma" => 121,
    "NumpadDecimal" => 83,
    "NumpadDivide" => 98,
    "NumpadEnter" => 96,
    "NumpadEqual" => 117,
    "NumpadMultiply" => 55,
    "NumpadParenLeft" => 179,
    "NumpadParenRight" => 180,
    "NumpadSubtract" => 74,

    // Function row.
    "Escape" => 1,
    "F1" => 59,
    "F2" => 60,
    "F3" => 61,
    "F4" => 62,
    "F5" => 63,
    "F6" => 64,
    "F7" => 65,
    "F8" => 66,
    "F9" => 67,
    "F10" => 68,
    "F11" => 87,
    "F12" => 88,
    "F13" => 183,
    "F14" => 184,
    "F15" => 185,
    "F16" => 186,
    "F17" => 187,
    "F18" => 188,
    "F19" => 189,
    "F20" => 190,
    "F21" => 191,
    "F22" => 192,
    "F23" => 193,
    "F24" => 194,
    "PrintScreen" => 99,    // KEY_SYSRQ (X: Print)
    "ScrollLock" => 70,
    "Pause" => 119,

    // Editing keys of some keyboards (Sun-style).
    "Again" => 129,
    "Copy" => 133,
    "Cut" => 137,
    "Find" => 136,
    "Open" => 134,
    "Paste" => 135,
    "Props" => 130,         // KEY_PROPS (X: SunProps)
    "Select" => 132,        // KEY_FRONT, as Chromium maps it
    "Undo" => 131,

    // Media, browser and system keys.
    "AudioVolumeDown" => 114,
    "AudioVolumeMute" => 113,
    "AudioVolumeUp" => 115,
    "VolumeDown" => 114,    // old names (Firefox < 49)
    "VolumeMute" => 113,
    "VolumeUp" => 115,
    "BrightnessDown" => 224,
    "BrightnessUp" => 225,
    "BrowserBack" => 158,
    "BrowserFavorites" => 156, // KEY_BOOKMARKS
    "BrowserForward" => 159,
    "BrowserHome" => 172,   // KEY_HOMEPAGE
    "BrowserRefresh" => 173,
    "BrowserSearch" => 217,
    "BrowserStop" => 128,   // KEY_STOP
    "Eject" => 161,         // KEY_EJECTCD
    "LaunchApp1" => 144,    // KEY_FILE ("My Computer")
    "LaunchApp2" => 140,    // KEY_CALC
    "LaunchMail" => 155,
    "MailForward" => 233,
    "MailReply" => 232,
    "MailSend" => 231,
    "MediaFastForward" => 208,
    "MediaPlay" => 207,     // KEY_PLAY
    "MediaPlayPause" => 164,
    "MediaRecord" => 167,
    "MediaRewind" => 168,
    "MediaSelect" => 171,   // KEY_CONFIG
    "MediaStop" => 166,     // KEY_STOPCD
    "MediaTrackNext" => 163,
    "MediaTrackPrevious" => 165,
    "Power" => 116,
    "Sleep" => 142,
    "WakeUp" => 143,
}

/// The X keycode of a `KeyboardEvent.code` on a server with `evdev` keycodes: evdev + 8.
/// `None` for unknown codes (and codes beyond X's 8-bit keycodes, of which the table has none).
pub fn x_keycode_from_code(code: &str) -> Option<u8> {
    evdev_from_code(code).and_then(|e| u8::try_from(e + X_KEYCODE_OFFSET).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn known_values() {
        // From linux/input-event-codes.h.
        for (code, evdev) in [
            ("Escape", 1),
            ("Digit1", 2),
            ("Digit0", 11),
            ("KeyQ", 16),
            ("KeyA", 30),
            ("KeyZ", 44),
            ("Enter", 28),
            ("ShiftLeft", 42),
            ("ShiftRight", 54),
            ("Space", 57),
            ("F1", 59),
            ("F12", 88),
            ("F13", 183),
            ("F24", 194),
            ("ArrowUp", 103),
            ("ArrowDown", 108),
            ("Delete", 111),
            ("NumpadEnter", 96),
            ("NumpadMultiply", 55),
            ("IntlBackslash", 86),
            ("IntlRo", 89),
            ("IntlYen", 124),
            ("Lang1", 122),
            ("Lang2", 123),
            ("MetaLeft", 125),
            ("ContextMenu", 127),
            ("PrintScreen", 99),
            ("Pause", 119),
            ("AudioVolumeMute", 113),
            ("MediaPlayPause", 164),
            ("MediaTrackPrevious", 165),
            ("BrowserBack", 158),
            ("Power", 116),
            ("WakeUp", 143),
        ] {
            assert_eq!(evdev_from_code(code), Some(evdev), "{code}");
        }
    }

    #[test]
    fn x_keycodes_are_evdev_plus_8() {
        // X keycodes of the `evdev` XKB keycodes file (what `xmodmap -pke` shows on Xvfb).
        assert_eq!(x_keycode_from_code("Escape"), Some(9));
        assert_eq!(x_keycode_from_code("KeyA"), Some(38));
        assert_eq!(x_keycode_from_code("Enter"), Some(36));
        assert_eq!(x_keycode_from_code("ShiftLeft"), Some(50));
        assert_eq!(x_keycode_from_code("ContextMenu"), Some(135));
        assert_eq!(x_keycode_from_code("PrintScreen"), Some(107));
        assert_eq!(x_keycode_from_code("F13"), Some(191));
    }

    #[test]
    fn unknown_codes_are_none() {
        for code in [
            "",
            "keya",
            "KEYA",
            "Fn",
            "NumpadClear",
            "Key",
            "Unidentified",
        ] {
            assert_eq!(evdev_from_code(code), None, "{code:?}");
        }
    }

    #[test]
    fn every_wire_key_code_has_a_key() {
        for &code in crate::input::protocol::KEY_CODES {
            assert!(evdev_from_code(code).is_some(), "{code} has no evdev key");
        }
    }

    #[test]
    fn table_is_complete_and_consistent() {
        let mut seen = HashSet::new();
        for &(code, evdev) in CODES {
            assert!(seen.insert(code), "{code} twice");
            assert_eq!(evdev_from_code(code), Some(evdev));
            assert!(evdev > 0 && evdev + X_KEYCODE_OFFSET <= 255, "{code}");
        }
        for c in 'A'..='Z' {
            assert!(seen.contains(format!("Key{c}").as_str()), "Key{c}");
        }
        for d in 0..=9 {
            assert!(seen.contains(format!("Digit{d}").as_str()), "Digit{d}");
            assert!(seen.contains(format!("Numpad{d}").as_str()), "Numpad{d}");
        }
        for f in 1..=24 {
            assert!(seen.contains(format!("F{f}").as_str()), "F{f}");
        }
        // Distinct physical keys have distinct evdev codes (aliases aside).
        let aliases = ["OSLeft", "OSRight", "VolumeDown", "VolumeMute", "VolumeUp"];
        let mut evdevs = HashSet::new();
        for &(code, evdev) in CODES.iter().filter(|(c, _)| !aliases.contains(c)) {
            assert!(evdevs.insert(evdev), "{code}: evdev {evdev} used twice");
        }
    }
}
