//! Input injection against a real Xvfb (no mocks): an [`Injector`] types and points, and the
//! `edgedesk-xevents` client reports exactly what arrived.
//!
//! Needs `Xvfb` (scripts/setup.sh installs it). Each test starts its own display.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use edgedesk_host::display::{DisplayOptions, VirtualDisplay};
use edgedesk_host::input::inject::{InjectError, Injector};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt as _;

fn xvfb(width: u32, height: u32) -> VirtualDisplay {
    VirtualDisplay::start(DisplayOptions {
        width,
        height,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("cannot start Xvfb: {e}"))
}

/// A running `edgedesk-xevents` covering the whole screen.
struct XEvents {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl XEvents {
    fn start(d: &VirtualDisplay) -> XEvents {
        let (w, h) = d.size();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgedesk-xevents"));
        cmd.arg("--display")
            .arg(d.name())
            .arg("--rect")
            .arg(format!("0,0,{w},{h}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = d.spawn_command(&mut cmd).expect("start edgedesk-xevents");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let x = XEvents {
            child,
            stdin,
            lines,
        };
        assert_eq!(x.line(), "READY");
        x
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("edgedesk-xevents: no line within 10 s")
    }

    fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("write to edgedesk-xevents");
        self.stdin.flush().unwrap();
    }

    /// Every event line that arrived for what the injector has done so far (the injector must
    /// have synced: then the server has queued all of them before the `sync` command).
    fn events(&mut self, inj: &mut Injector) -> Vec<String> {
        inj.sync().expect("injector sync");
        self.send("sync");
        let mut out = Vec::new();
        loop {
            let l = self.line();
            if l == "SYNCED" {
                return out;
            }
            out.push(l);
        }
    }

    /// One reply line of a query command (after all earlier events, which are dropped).
    fn query(&mut self, inj: &mut Injector, cmd: &str) -> String {
        self.events(inj);
        self.send(cmd);
        self.line()
    }
}

impl Drop for XEvents {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

/// The text of `key press` lines, concatenated.
fn typed(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|l| l.strip_prefix("key press "))
        .map(|rest| rest.splitn(3, ' ').nth(2).unwrap_or(""))
        .collect()
}

/// Keycodes of key press and release lines.
fn key_codes(events: &[String], kind: &str) -> Vec<u8> {
    let prefix = format!("key {kind} ");
    events
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

fn buttons(events: &[String]) -> Vec<&str> {
    events
        .iter()
        .filter(|l| l.starts_with("button "))
        .map(String::as_str)
        .collect()
}

/// The `code` and whether Shift is needed for a character on a US layout.
fn us_key(c: char) -> (String, bool) {
    match c {
        'a'..='z' => (format!("Key{}", c.to_ascii_uppercase()), false),
        'A'..='Z' => (format!("Key{c}"), true),
        '0'..='9' => (format!("Digit{c}"), false),
        ' ' => ("Space".into(), false),
        ',' => ("Comma".into(), false),
        '!' => ("Digit1".into(), true),
        other => panic!("no US key for {other:?} in this test"),
    }
}

fn keyboard_mapping(display: &str) -> (u8, Vec<u32>) {
    let (conn, _) = x11rb::connect(Some(display)).unwrap();
    let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
    let r = conn
        .get_keyboard_mapping(min, max - min + 1)
        .unwrap()
        .reply()
        .unwrap();
    (r.keysyms_per_keycode, r.keysyms)
}

#[test]
fn typing_with_shift_through_codes() {
    let d = xvfb(640, 480);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();

    let text = "Hello, World! 123";
    for c in text.chars() {
        let (code, shift) = us_key(c);
        if shift {
            inj.key("ShiftLeft", true).unwrap();
        }
        inj.key(&code, true).unwrap();
        inj.key(&code, false).unwrap();
        if shift {
            inj.key("ShiftLeft", false).unwrap();
        }
    }
    let ev = xe.events(&mut inj);
    assert_eq!(typed(&ev), text, "{ev:#?}");
    // Every press has its release; Shift is keycode 50 (evdev 42 + 8).
    let (mut pressed, mut released) = (key_codes(&ev, "press"), key_codes(&ev, "release"));
    pressed.sort();
    released.sort();
    assert_eq!(pressed, released);
    assert_eq!(
        key_codes(&ev, "press").iter().filter(|&&k| k == 50).count(),
        3
    );
    assert!(ev.contains(&"key press 43 0x48 H".to_string()), "{ev:#?}");
    assert!(inj.pressed_keys().is_empty());
    assert_eq!(xe.query(&mut inj, "keys"), "keys");
}

#[test]
fn text_through_the_keymap_and_spare_keycodes() {
    let d = xvfb(640, 480);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();
    let before = keyboard_mapping(&d.name());

    // Characters the US keymap lacks go through remapped spare keycodes.
    inj.text("é€ж😀").unwrap();
    let ev = xe.events(&mut inj);
    assert_eq!(typed(&ev), "é€ж😀", "{ev:#?}");
    let keysyms: Vec<&str> = ev
        .iter()
        .filter(|l| l.starts_with("key press"))
        .map(|l| l.split(' ').nth(3).unwrap())
        .collect();
    assert_eq!(keysyms, ["0xe9", "0x10020ac", "0x1000436", "0x101f600"]);
    assert_eq!(inj.spare_keycodes_in_use(), 4);
    let spare_codes = key_codes(&ev, "press");
    assert!(spare_codes.iter().all(|&k| k > 8), "{spare_codes:?}");

    // Repeats reuse the same keycodes (no new remap).
    inj.text("€é").unwrap();
    let ev = xe.events(&mut inj);
    assert_eq!(typed(&ev), "€é");
    assert_eq!(key_codes(&ev, "press"), [spare_codes[1], spare_codes[0]]);
    assert_eq!(inj.spare_keycodes_in_use(), 4);

    // Characters in the keymap use their keys, with Shift only where needed.
    inj.text("Hi, ~A!\n").unwrap();
    let ev = xe.events(&mut inj);
    assert_eq!(typed(&ev), "Hi, ~A!", "{ev:#?}");
    assert!(
        ev.iter().any(|l| l.starts_with("key press 36 0xff0d")),
        "Return: {ev:#?}"
    );
    assert_eq!(inj.spare_keycodes_in_use(), 4);

    // With the user holding Shift, a lower-case character still arrives lower-case and the
    // user's Shift stays down.
    inj.key("ShiftRight", true).unwrap();
    inj.text("a1B").unwrap();
    let ev = xe.events(&mut inj);
    assert_eq!(typed(&ev), "a1B", "{ev:#?}");
    assert_eq!(xe.query(&mut inj, "keys"), "keys 62");
    inj.key("ShiftRight", false).unwrap();

    // More new characters than there are spare keycodes: spares are reused, least recently
    // used first, and every character still arrives as itself.
    let many: String = ('а'..='ф').collect(); // 21 Cyrillic letters
    inj.text(&many).unwrap();
    let ev = xe.events(&mut inj);
    assert_eq!(typed(&ev), many, "{ev:#?}");
    assert!(inj.spare_keycodes_in_use() <= edgedesk_host::input::inject::SPARE_LIMIT);

    // Control characters are refused before anything is typed.
    assert!(matches!(
        inj.text("x\u{7}y"),
        Err(InjectError::UnsupportedChar('\u{7}'))
    ));
    assert!(typed(&xe.events(&mut inj)).is_empty());

    inj.restore_keymap().unwrap();
    assert_eq!(inj.spare_keycodes_in_use(), 0);
    assert_eq!(
        keyboard_mapping(&d.name()),
        before,
        "spare keycodes restored"
    );
    assert_eq!(xe.query(&mut inj, "keys"), "keys");
}

#[test]
fn text_with_caps_lock_on_turns_it_off_around_letters() {
    let d = xvfb(640, 480);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();
    inj.key("CapsLock", true).unwrap();
    inj.key("CapsLock", false).unwrap();
    assert_eq!(xe.query(&mut inj, "state"), "state 0x2");
    inj.text("a").unwrap();
    let ev = xe.events(&mut inj);
    let order: Vec<String> = ev
        .iter()
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    // Caps Lock (keycode 66) off, `a` (38), Caps Lock on again.
    assert_eq!(
        order,
        [
            "key press 66",
            "key release 66",
            "key press 38",
            "key release 38",
            "key press 66",
            "key release 66"
        ]
    );
    assert_eq!(typed(&ev), "a");
    assert_eq!(xe.query(&mut inj, "state"), "state 0x2");
    // Digits need no Caps Lock dance.
    inj.text("1").unwrap();
    assert_eq!(key_codes(&xe.events(&mut inj), "press"), [10]);
}

#[test]
fn pointer_abs_maps_video_to_screen_and_clicks_land_there() {
    let d = xvfb(1280, 960);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();
    assert_eq!(inj.screen_size(), (1280, 960));

    assert_eq!(inj.pointer_abs(100, 50, 640, 480).unwrap(), (200, 100));
    let ev = xe.events(&mut inj);
    assert_eq!(
        ev.last().map(String::as_str),
        Some("motion 200 100 200 100")
    );
    assert_eq!(xe.query(&mut inj, "query"), "pointer 200 100");

    inj.button(0, true).unwrap();
    inj.button(0, false).unwrap();
    let ev = xe.events(&mut inj);
    assert_eq!(
        buttons(&ev),
        [
            "button press 1 200 100 200 100",
            "button release 1 200 100 200 100"
        ]
    );

    // Edges and clamping, and a video scaled differently from the screen.
    for ((x, y, vw, vh), want) in [
        ((0, 0, 640, 480), (0, 0)),
        ((639, 479, 640, 480), (1278, 958)),
        ((640, 480, 640, 480), (1279, 959)),
        ((5000, 5000, 640, 480), (1279, 959)),
        ((333, 250, 1000, 750), (426, 320)),
    ] {
        assert_eq!(inj.pointer_abs(x, y, vw, vh).unwrap(), want);
        assert_eq!(
            xe.query(&mut inj, "query"),
            format!("pointer {} {}", want.0, want.1)
        );
    }
    assert!(matches!(
        inj.pointer_abs(1, 1, 0, 480),
        Err(InjectError::InvalidVideoSize { .. })
    ));

    // Right, middle, back and forward reach X buttons 3, 2, 8 and 9.
    inj.pointer_abs(100, 50, 640, 480).unwrap();
    for b in [2, 1, 3, 4] {
        inj.button(b, true).unwrap();
        inj.button(b, false).unwrap();
    }
    let ev = xe.events(&mut inj);
    let got: Vec<&str> = buttons(&ev)
        .iter()
        .filter(|l| l.starts_with("button press"))
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    assert_eq!(got, ["3", "2", "8", "9"]);
    assert!(matches!(
        inj.button(5, true),
        Err(InjectError::UnknownButton(5))
    ));

    // A size change (as RandR would report) is followed exactly.
    inj.screen_resized(640, 480);
    assert_eq!(inj.pointer_abs(100, 50, 640, 480).unwrap(), (100, 50));
    assert_eq!(xe.query(&mut inj, "query"), "pointer 100 50");
}

#[test]
fn pointer_rel_moves_relatively() {
    let d = xvfb(1280, 960);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();
    inj.pointer_abs(200, 100, 1280, 960).unwrap();
    inj.pointer_rel(15, -7).unwrap();
    assert_eq!(xe.query(&mut inj, "query"), "pointer 215 93");
    inj.pointer_rel(-1, 1).unwrap();
    inj.pointer_rel(-1, 1).unwrap();
    assert_eq!(xe.query(&mut inj, "query"), "pointer 213 95");
    // The server clamps at the screen edge.
    inj.pointer_rel(-100_000, 100_000).unwrap();
    assert_eq!(xe.query(&mut inj, "query"), "pointer 0 959");
}

#[test]
fn wheel_turns_hi_res_deltas_into_clicks() {
    let d = xvfb(640, 480);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();
    inj.pointer_abs(10, 10, 640, 480).unwrap();
    xe.events(&mut inj);

    // 3 x 40 = one notch down: exactly one click of button 5, nothing left over.
    inj.wheel(0, 40).unwrap();
    inj.wheel(0, 40).unwrap();
    assert!(buttons(&xe.events(&mut inj)).is_empty());
    assert_eq!(inj.wheel_remainder(), (0, 80));
    inj.wheel(0, 40).unwrap();
    assert_eq!(
        buttons(&xe.events(&mut inj)),
        ["button press 5 10 10 10 10", "button release 5 10 10 10 10"]
    );
    assert_eq!(inj.wheel_remainder(), (0, 0));

    // 250 up: two clicks of button 4, 10 kept.
    inj.wheel(0, -250).unwrap();
    let ev = xe.events(&mut inj);
    assert_eq!(buttons(&ev).len(), 4);
    assert!(buttons(&ev)
        .iter()
        .all(|l| l.split(' ').nth(2) == Some("4")));
    assert_eq!(inj.wheel_remainder(), (0, -10));

    // Horizontal: right is button 7, left button 6.
    inj.wheel(240, 0).unwrap();
    inj.wheel(-120, 0).unwrap();
    let ev = xe.events(&mut inj);
    let got: Vec<&str> = buttons(&ev)
        .iter()
        .filter(|l| l.starts_with("button press"))
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    assert_eq!(got, ["7", "7", "6"]);
    assert_eq!(inj.wheel_remainder(), (0, -10));
    assert!(inj.pressed_buttons().is_empty());
}

#[test]
fn release_all_leaves_nothing_pressed() {
    let d = xvfb(640, 480);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();
    inj.pointer_abs(20, 30, 640, 480).unwrap();
    inj.key("ShiftLeft", true).unwrap();
    inj.key("KeyA", true).unwrap();
    inj.button(0, true).unwrap();
    inj.button(2, true).unwrap();
    inj.button(3, true).unwrap();
    inj.text("ж").unwrap();
    assert_eq!(xe.query(&mut inj, "keys"), "keys 38 50");
    // Shift (0x1) and buttons 1 and 3 (0x100, 0x400).
    assert_eq!(xe.query(&mut inj, "state"), "state 0x501");
    assert_eq!(inj.pressed_keys(), [38, 50]);
    assert_eq!(inj.pressed_buttons(), [1, 3, 8]);
    assert_eq!(inj.spare_keycodes_in_use(), 1);

    inj.release_all().unwrap();
    let ev = xe.events(&mut inj);
    let mut released = key_codes(&ev, "release");
    released.sort();
    assert_eq!(released, [38, 50]);
    let mut released: Vec<&str> = buttons(&ev)
        .iter()
        .filter(|l| l.starts_with("button release"))
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    released.sort();
    assert_eq!(released, ["1", "3", "8"]);
    assert_eq!(xe.query(&mut inj, "keys"), "keys");
    assert_eq!(xe.query(&mut inj, "state"), "state 0x0");
    assert!(inj.pressed_keys().is_empty() && inj.pressed_buttons().is_empty());
    assert_eq!(inj.spare_keycodes_in_use(), 0);
}

#[test]
fn bad_input_is_refused() {
    let d = xvfb(640, 480);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();
    assert!(matches!(
        inj.key("NoSuchKey", true),
        Err(InjectError::UnknownCode(c)) if c == "NoSuchKey"
    ));
    assert!(xe.events(&mut inj).is_empty());
    assert!(matches!(
        Injector::connect(":4999"),
        Err(InjectError::Connect { .. })
    ));
}

#[test]
fn dropping_the_injector_releases_everything() {
    let d = xvfb(640, 480);
    let mut xe = XEvents::start(&d);
    let before = keyboard_mapping(&d.name());
    let mut inj = Injector::connect(&d.name()).unwrap();
    inj.key("ControlLeft", true).unwrap();
    inj.button(1, true).unwrap();
    inj.text("😀").unwrap();
    assert_eq!(xe.query(&mut inj, "keys"), "keys 37");
    drop(inj);
    let mut probe = Injector::connect(&d.name()).unwrap();
    assert_eq!(xe.query(&mut probe, "keys"), "keys");
    assert_eq!(xe.query(&mut probe, "state"), "state 0x0");
    assert_eq!(keyboard_mapping(&d.name()), before);
}

/// Presses and releases the key that makes `keysym` (as the client's `keysymDown`/`keyUp`).
fn keysym_tap(inj: &mut Injector, keysym: u32) {
    let k = inj.keysym_press(keysym).unwrap();
    inj.keycode_release(k).unwrap();
}

#[test]
fn keysyms_type_what_the_clients_layout_made_on_a_us_keymap() {
    let d = xvfb(640, 480);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();

    // A German keyboard: Z and Y print z and y; Shift+2 prints " (US: Shift+'), Shift+7 prints
    // / (US: no Shift: the user's Shift is let go around it); ö ä ü ß are not on the US keymap
    // (spare keycodes); AltGr+Q prints @ (US: Shift+2, AltGr let go around it).
    for c in "zy".chars() {
        keysym_tap(&mut inj, u32::from(c));
    }
    inj.key("ShiftLeft", true).unwrap();
    keysym_tap(&mut inj, u32::from('"'));
    keysym_tap(&mut inj, u32::from('/'));
    keysym_tap(&mut inj, u32::from('Z'));
    inj.key("ShiftLeft", false).unwrap();
    for c in "öäüß".chars() {
        keysym_tap(&mut inj, u32::from(c));
    }
    let altgr = inj.keysym_press(0xfe03).unwrap(); // ISO_Level3_Shift
    keysym_tap(&mut inj, u32::from('@'));
    keysym_tap(&mut inj, u32::from('{'));
    inj.keycode_release(altgr).unwrap();
    keysym_tap(&mut inj, 0x0100_20ac); // €
    let ev = xe.events(&mut inj);
    assert_eq!(typed(&ev), "zy\"/Zöäüß@{€", "{ev:#?}");
    // The user's Shift was released around '/' and pressed again after it.
    let around_slash: Vec<&String> = ev
        .iter()
        .skip_while(|l| !l.contains(" 0x22 "))
        .take_while(|l| !l.contains(" 0x5a "))
        .collect();
    assert!(
        around_slash
            .iter()
            .any(|l| l.starts_with("key release 50 ")),
        "{around_slash:#?}"
    );
    assert!(inj.pressed_keys().is_empty(), "{:?}", inj.pressed_keys());
    assert_eq!(xe.query(&mut inj, "keys"), "keys");

    // Ctrl stays held: Ctrl+z is Control and the key of z.
    inj.key("ControlLeft", true).unwrap();
    keysym_tap(&mut inj, u32::from('z'));
    inj.key("ControlLeft", false).unwrap();
    let ev = xe.events(&mut inj);
    assert_eq!(
        ev.iter()
            .filter(|l| l.starts_with("key press "))
            .map(|l| l.split(' ').nth(2).unwrap())
            .collect::<Vec<_>>(),
        ["37", "52"],
        "{ev:#?}"
    );
}

#[test]
fn keysyms_follow_caps_lock_and_locks_follow_the_client() {
    let d = xvfb(640, 480);
    let mut xe = XEvents::start(&d);
    let mut inj = Injector::connect(&d.name()).unwrap();

    // The client says Caps Lock is on: the desktop's turns on (Lock is bit 0x2).
    assert!(inj.set_locks(true, false).unwrap());
    assert!(
        !inj.set_locks(true, false).unwrap(),
        "already on: nothing to tap"
    );
    let state = xe.query(&mut inj, "state");
    let mask = u32::from_str_radix(state.trim_start_matches("state 0x"), 16).unwrap();
    assert_eq!(mask & 0x2, 0x2, "{state}");
    // With Caps Lock on, 'A' is the a key without Shift and 'a' the a key with Shift; the
    // spare-typed 'ö' keeps its case.
    for ks in [
        u32::from('A'),
        u32::from('a'),
        u32::from('ö'),
        u32::from('1'),
    ] {
        keysym_tap(&mut inj, ks);
    }
    let ev = xe.events(&mut inj);
    assert_eq!(typed(&ev), "Aaö1", "{ev:#?}");
    // Off again; Num Lock on (Mod2, 0x10) and a keypad digit.
    inj.set_locks(false, true).unwrap();
    keysym_tap(&mut inj, 0xffb1); // KP_1
    inj.set_locks(false, false).unwrap();
    keysym_tap(&mut inj, 0xffb2); // KP_2, Num Lock off: Shift around it
    let ev = xe.events(&mut inj);
    let keypad: Vec<&str> = ev
        .iter()
        .filter(|l| l.starts_with("key press ") && !l.starts_with("key press 50 "))
        .filter_map(|l| l.split(' ').nth(3))
        .filter(|ks| ks.starts_with("0xffb"))
        .collect();
    assert_eq!(keypad, ["0xffb1", "0xffb2"], "{ev:#?}");
    let state = xe.query(&mut inj, "state");
    assert_eq!(state, "state 0x0");
    assert!(inj.pressed_keys().is_empty());
}
