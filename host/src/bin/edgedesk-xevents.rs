//! `edgedesk-xevents`: a tiny X client for input tests. It shows a window at an exact place,
//! takes the keyboard focus and prints every input event it receives, so a test can check
//! what an injector delivered.
//!
//! ```text
//! edgedesk-xevents --display :N --rect X,Y,W,H
//! ```
//!
//! The window is override-redirect (window managers leave it alone) and gets the input focus
//! once mapped; then `READY` is printed. Each event is one line on stdout (`X Y` relative to
//! the window, `RX RY` to the root):
//!
//! | line                                  | event                                        |
//! |---------------------------------------|----------------------------------------------|
//! | `key press KEYCODE 0xKEYSYM TEXT`     | KeyPress; TEXT is the character, if printable |
//! | `key release KEYCODE 0xKEYSYM TEXT`   | KeyRelease                                   |
//! | `button press N X Y RX RY`            | ButtonPress of X button N                    |
//! | `button release N X Y RX RY`          | ButtonRelease                                |
//! | `motion X Y RX RY`                    | MotionNotify                                 |
//!
//! The keysym is looked up without Xlib: the core mapping (`GetKeyboardMapping`, refreshed on
//! `MappingNotify`), column 1 with Shift in the event's state (column 0 when that is empty),
//! else column 0; with Mod5 (AltGr) columns 4/5 (XKB's levels 3/4). Lock swaps columns 0/1 of
//! a letter's case pair (XKB's ALPHABETIC type), Mod2 (Num Lock) those of a keypad key; group
//! modifiers are not interpreted.
//!
//! stdin takes one command per line; its reply comes after every event the server had sent
//! before it (the command travels as a ClientMessage through the server):
//!
//! | command       | reply (stdout)                                         |
//! |---------------|--------------------------------------------------------|
//! | `query`       | `pointer RX RY` (QueryPointer, root coordinates)       |
//! | `keys`        | `keys K1 K2 …` (QueryKeymap: keycodes down, ascending) |
//! | `state`       | `state 0xMASK` (QueryPointer's modifier/button mask)   |
//! | `sync`        | `SYNCED`                                               |
//! | `copy "TEXT"` | `COPIED` (owns CLIPBOARD with TEXT, a JSON string; answers `UTF8_STRING` and `TARGETS`) |
//! | `paste`       | `clipboard "TEXT"` (CLIPBOARD read as `UTF8_STRING`, JSON string) or `clipboard none` |
//! | `quit` / EOF  | exit                                                   |
//!
//! Bad commands print `ERROR <reason>` on stderr and are otherwise ignored.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ButtonPressEvent, ClientMessageEvent, ConnectionExt, CreateWindowAux, EventMask,
    InputFocus, KeyButMask, KeyPressEvent, Keysym, PropMode, SelectionNotifyEvent,
    SelectionRequestEvent, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

const CMD_QUIT: u32 = 0;
const CMD_QUERY: u32 = 1;
const CMD_KEYS: u32 = 2;
const CMD_STATE: u32 = 3;
const CMD_SYNC: u32 = 4;
const CMD_COPY: u32 = 5;
const CMD_PASTE: u32 = 6;

struct Args {
    display: String,
    rect: (i16, i16, u16, u16),
}

fn parse_args() -> Result<Args> {
    let mut display = std::env::var("DISPLAY").ok();
    let mut rect = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--display" => display = Some(value()?),
            "--rect" => {
                let v = value()?;
                let parts: Vec<i64> = v
                    .split(',')
                    .map(|p| p.trim().parse::<i64>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--rect must be X,Y,W,H, got {v:?}"))?;
                let [x, y, w, h] = parts[..] else {
                    bail!("--rect must be X,Y,W,H, got {v:?}");
                };
                if w <= 0 || h <= 0 {
                    bail!("--rect width and height must be positive");
                }
                rect = Some((
                    i16::try_from(x)?,
                    i16::try_from(y)?,
                    u16::try_from(w)?,
                    u16::try_from(h)?,
                ));
            }
            "-h" | "--help" => {
                println!("usage: edgedesk-xevents --display :N --rect X,Y,W,H");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(Args {
        display: display.context("--display is required (or set DISPLAY)")?,
        rect: rect.context("--rect X,Y,W,H is required")?,
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the test is gone; exit quietly then.
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// The core keyboard mapping.
struct Keymap {
    min: u8,
    per: usize,
    syms: Vec<Keysym>,
}

impl Keymap {
    fn load(conn: &RustConnection) -> Result<Keymap> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = conn
            .get_keyboard_mapping(min, max - min + 1)?
            .reply()
            .context("GetKeyboardMapping")?;
        Ok(Keymap {
            min,
            per: usize::from(reply.keysyms_per_keycode),
            syms: reply.keysyms,
        })
    }

    fn keysym(&self, keycode: u8, state: KeyButMask) -> Keysym {
        let i = usize::from(keycode.saturating_sub(self.min)) * self.per;
        let row = self.syms.get(i..i + self.per).unwrap_or(&[]);
        let col = |n: usize| row.get(n).copied().unwrap_or(0);
        // Caps Lock swaps the levels of a letter's lower/upper case pair, as XKB's
        // ALPHABETIC type does; other keys ignore it.
        // Num Lock (Mod2 in XKB's default modifier map) does the same on keypad keys.
        let lock = state.contains(KeyButMask::LOCK) && is_case_pair(col(0), col(1));
        let num = state.contains(KeyButMask::MOD2) && (0xff80..=0xffbd).contains(&col(1));
        let shift = state.contains(KeyButMask::SHIFT) != (lock || num);
        // AltGr (ISO_Level3_Shift, on Mod5 in XKB's default modifier map): levels 3 and 4,
        // which XKB puts in core columns 4 and 5.
        if state.contains(KeyButMask::MOD5) && col(4) != 0 {
            if shift && col(5) != 0 {
                col(5)
            } else {
                col(4)
            }
        } else if shift && col(1) != 0 {
            col(1)
        } else {
            col(0)
        }
    }
}

/// Whether two keysyms are one letter in lower and upper case.
fn is_case_pair(lower: Keysym, upper: Keysym) -> bool {
    let (l, u) = (keysym_text(lower), keysym_text(upper));
    !l.is_empty() && l != u && l.to_uppercase() == u
}

/// The printable character of a Latin-1 or Unicode keysym, if any.
fn keysym_text(keysym: Keysym) -> String {
    let c = match keysym {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(keysym),
        0x0100_0100..=0x0110_ffff => char::from_u32(keysym & 0x00ff_ffff),
        _ => None,
    };
    c.filter(|c| !c.is_control())
        .map(String::from)
        .unwrap_or_default()
}

fn say_key(kind: &str, e: &KeyPressEvent, keymap: &Keymap) {
    let keysym = keymap.keysym(e.detail, e.state);
    say(&format!(
        "key {kind} {} {keysym:#x} {}",
        e.detail,
        keysym_text(keysym)
    ));
}

fn say_button(kind: &str, e: &ButtonPressEvent) {
    say(&format!(
        "button {kind} {} {} {} {} {}",
        e.detail, e.event_x, e.event_y, e.root_x, e.root_y
    ));
}

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        EDGEDESK_XEVENTS_COMMAND,
        EDGEDESK_XEVENTS_PASTE,
        CLIPBOARD,
        UTF8_STRING,
        TARGETS,
        ATOM,
    }
}

/// The text `copy` put on CLIPBOARD.
type Copied = Arc<Mutex<String>>;

fn run_command(
    conn: &RustConnection,
    (root, window): (u32, u32),
    atoms: &Atoms,
    cmd: u32,
) -> Result<()> {
    match cmd {
        CMD_COPY => {
            conn.set_selection_owner(window, atoms.CLIPBOARD, x11rb::CURRENT_TIME)?
                .check()?;
            say("COPIED");
        }
        CMD_PASTE => {
            conn.convert_selection(
                window,
                atoms.CLIPBOARD,
                atoms.UTF8_STRING,
                atoms.EDGEDESK_XEVENTS_PASTE,
                x11rb::CURRENT_TIME,
            )?;
            conn.flush()?;
        }
        CMD_QUERY => {
            let p = conn.query_pointer(root)?.reply()?;
            say(&format!("pointer {} {}", p.root_x, p.root_y));
        }
        CMD_STATE => {
            let p = conn.query_pointer(root)?.reply()?;
            say(&format!("state {:#x}", u16::from(p.mask)));
        }
        CMD_KEYS => {
            let keys = conn.query_keymap()?.reply()?.keys;
            let mut line = String::from("keys");
            for (byte, bits) in keys.iter().enumerate() {
                for bit in 0..8 {
                    if bits & (1 << bit) != 0 {
                        line.push_str(&format!(" {}", byte * 8 + bit));
                    }
                }
            }
            say(&line);
        }
        CMD_SYNC => say("SYNCED"),
        other => bail!("unknown command id {other}"),
    }
    Ok(())
}

/// Another client asks for what `copy` put on CLIPBOARD.
fn answer_request(
    conn: &RustConnection,
    atoms: &Atoms,
    r: SelectionRequestEvent,
    copied: &Copied,
) -> Result<()> {
    let text = copied.lock().unwrap().clone();
    let ok = if r.target == atoms.UTF8_STRING {
        conn.change_property8(
            PropMode::REPLACE,
            r.requestor,
            r.property,
            atoms.UTF8_STRING,
            text.as_bytes(),
        )?;
        true
    } else if r.target == atoms.TARGETS {
        conn.change_property32(
            PropMode::REPLACE,
            r.requestor,
            r.property,
            atoms.ATOM,
            &[atoms.TARGETS, atoms.UTF8_STRING],
        )?;
        true
    } else {
        false
    };
    let notify = SelectionNotifyEvent {
        response_type: SELECTION_NOTIFY_EVENT,
        sequence: 0,
        time: r.time,
        requestor: r.requestor,
        selection: r.selection,
        target: r.target,
        property: if ok { r.property } else { x11rb::NONE },
    };
    conn.send_event(false, r.requestor, EventMask::NO_EVENT, notify)?;
    conn.flush()?;
    Ok(())
}

/// Reads stdin and forwards each command to the event loop as a ClientMessage through the
/// server, so that its reply is ordered after the events that came before it.
fn forward_commands(conn: &RustConnection, window: u32, atom: u32, copied: &Copied) -> Result<()> {
    let send = |cmd: u32| -> Result<()> {
        let event = ClientMessageEvent::new(32, window, atom, [cmd, 0, 0, 0, 0]);
        conn.send_event(false, window, EventMask::NO_EVENT, event)?;
        conn.flush()?;
        Ok(())
    };
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        let cmd = match line.trim() {
            "" => continue,
            "quit" => break,
            "query" => CMD_QUERY,
            "keys" => CMD_KEYS,
            "state" => CMD_STATE,
            "sync" => CMD_SYNC,
            "paste" => CMD_PASTE,
            copy if copy.starts_with("copy ") => match serde_json::from_str::<String>(&copy[5..]) {
                Ok(text) => {
                    *copied.lock().unwrap() = text;
                    CMD_COPY
                }
                Err(e) => {
                    eprintln!("ERROR copy needs a JSON string: {e}");
                    continue;
                }
            },
            other => {
                eprintln!("ERROR unknown command {other:?}");
                continue;
            }
        };
        send(cmd)?;
    }
    send(CMD_QUIT)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let (conn, screen_num) = RustConnection::connect(Some(&args.display))
        .with_context(|| format!("cannot open X display {}", args.display))?;
    let screen = &conn.setup().roots[screen_num];
    let root = screen.root;
    let black = screen.black_pixel;
    let window = conn.generate_id()?;
    let (x, y, w, h) = args.rect;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        root,
        x,
        y,
        w,
        h,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new()
            .override_redirect(1)
            .background_pixel(black)
            .event_mask(
                EventMask::KEY_PRESS
                    | EventMask::KEY_RELEASE
                    | EventMask::BUTTON_PRESS
                    | EventMask::BUTTON_RELEASE
                    | EventMask::POINTER_MOTION,
            ),
    )?
    .check()
    .context("CreateWindow")?;
    let atoms = Atoms::new(&conn)?.reply().context("InternAtom")?;
    let atom = atoms.EDGEDESK_XEVENTS_COMMAND;
    let copied = Copied::default();
    conn.map_window(window)?.check().context("MapWindow")?;
    conn.set_input_focus(InputFocus::PARENT, window, x11rb::CURRENT_TIME)?
        .check()
        .context("SetInputFocus")?;
    let mut keymap = Keymap::load(&conn)?;
    let focus = conn.get_input_focus()?.reply()?.focus;
    if focus != window {
        bail!("the window did not get the input focus (focus is {focus:#x})");
    }
    say("READY");

    let conn = Arc::new(conn);
    {
        let (conn, copied) = (Arc::clone(&conn), copied.clone());
        std::thread::spawn(move || {
            if let Err(e) = forward_commands(&conn, window, atom, &copied) {
                eprintln!("ERROR {e:#}");
                std::process::exit(1);
            }
        });
    }
    loop {
        match conn.wait_for_event()? {
            Event::KeyPress(e) => say_key("press", &e, &keymap),
            Event::KeyRelease(e) => say_key("release", &e, &keymap),
            Event::ButtonPress(e) => say_button("press", &e),
            Event::ButtonRelease(e) => say_button("release", &e),
            Event::MotionNotify(e) => {
                say(&format!(
                    "motion {} {} {} {}",
                    e.event_x, e.event_y, e.root_x, e.root_y
                ));
            }
            Event::MappingNotify(_) => keymap = Keymap::load(&conn)?,
            Event::ClientMessage(e) if e.window == window && e.type_ == atom => {
                let cmd = e.data.as_data32()[0];
                if cmd == CMD_QUIT {
                    return Ok(());
                }
                run_command(&conn, (root, window), &atoms, cmd)?;
            }
            Event::SelectionRequest(r) => answer_request(&conn, &atoms, r, &copied)?,
            Event::SelectionNotify(n) if n.requestor == window => {
                if n.property == x11rb::NONE {
                    say("clipboard none");
                } else {
                    let r = conn
                        .get_property(true, window, n.property, AtomEnum::ANY, 0, u32::MAX / 4)?
                        .reply()?;
                    let text = String::from_utf8_lossy(&r.value);
                    say(&format!("clipboard {}", serde_json::to_string(&text)?));
                }
            }
            Event::Error(e) => bail!("X error: {e:?}"),
            _ => {}
        }
    }
}
