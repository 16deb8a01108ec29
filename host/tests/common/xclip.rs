//! X selection helpers for clipboard tests: a plain reader of CLIPBOARD and a test owner that
//! answers only chosen targets, optionally through INCR (as GTK does for large texts).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt, CreateWindowAux, EventMask, PropMode,
    Property, SelectionNotifyEvent, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{CURRENT_TIME, NONE};

fn atom(conn: &RustConnection, name: &str) -> Atom {
    conn.intern_atom(false, name.as_bytes())
        .unwrap()
        .reply()
        .unwrap()
        .atom
}

fn window(conn: &RustConnection, screen: usize, mask: EventMask) -> u32 {
    let w = conn.generate_id().unwrap();
    let root = conn.setup().roots[screen].root;
    conn.create_window(
        0,
        w,
        root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_ONLY,
        0,
        &CreateWindowAux::new().event_mask(mask),
    )
    .unwrap()
    .check()
    .unwrap();
    w
}

/// Reads CLIPBOARD as `target` the way a plain X client does (no INCR: the texts here fit).
pub fn read_clipboard(display: &str, target: &str) -> Option<(String, Vec<u8>)> {
    let (conn, screen) = RustConnection::connect(Some(display)).unwrap();
    let w = window(&conn, screen, EventMask::NO_EVENT);
    let (clipboard, target, prop) = (
        atom(&conn, "CLIPBOARD"),
        atom(&conn, target),
        atom(&conn, "TEST_PROP"),
    );
    conn.convert_selection(w, clipboard, target, prop, CURRENT_TIME)
        .unwrap();
    conn.flush().unwrap();
    loop {
        if let Event::SelectionNotify(n) = conn.wait_for_event().unwrap() {
            if n.property == NONE {
                return None;
            }
            let r = conn
                .get_property(true, w, prop, AtomEnum::ANY, 0, u32::MAX / 4)
                .unwrap()
                .reply()
                .unwrap();
            let type_name = conn.get_atom_name(r.type_).unwrap().reply().unwrap().name;
            return Some((String::from_utf8(type_name).unwrap(), r.value));
        }
    }
}

/// An X client that owns CLIPBOARD with `text` and answers only `targets`, sending the data
/// through INCR in `chunk`-byte pieces when `chunk` is set (as GTK does for large texts).
pub struct TestOwner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestOwner {
    pub fn start(display: &str, text: Vec<u8>, targets: &[&str], chunk: Option<usize>) -> Self {
        let (conn, screen) = RustConnection::connect(Some(display)).unwrap();
        let w = window(&conn, screen, EventMask::NO_EVENT);
        let clipboard = atom(&conn, "CLIPBOARD");
        let incr = atom(&conn, "INCR");
        let targets: Vec<Atom> = targets.iter().map(|t| atom(&conn, t)).collect();
        conn.set_selection_owner(w, clipboard, CURRENT_TIME)
            .unwrap()
            .check()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            // (requestor, property, type, offset) of the INCR transfer in progress.
            let mut sending: Option<(u32, Atom, Atom, usize)> = None;
            while !stop2.load(Ordering::Relaxed) {
                let Some(ev) = conn.poll_for_event().unwrap() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                match ev {
                    Event::SelectionRequest(r) => {
                        let ok = targets.contains(&r.target);
                        if ok {
                            match chunk {
                                Some(_) => {
                                    conn.change_window_attributes(
                                        r.requestor,
                                        &ChangeWindowAttributesAux::new()
                                            .event_mask(EventMask::PROPERTY_CHANGE),
                                    )
                                    .unwrap();
                                    conn.change_property32(
                                        PropMode::REPLACE,
                                        r.requestor,
                                        r.property,
                                        incr,
                                        &[text.len() as u32],
                                    )
                                    .unwrap();
                                    sending = Some((r.requestor, r.property, r.target, 0));
                                }
                                None => {
                                    conn.change_property8(
                                        PropMode::REPLACE,
                                        r.requestor,
                                        r.property,
                                        r.target,
                                        &text,
                                    )
                                    .unwrap();
                                }
                            }
                        }
                        let n = SelectionNotifyEvent {
                            response_type: SELECTION_NOTIFY_EVENT,
                            sequence: 0,
                            time: r.time,
                            requestor: r.requestor,
                            selection: r.selection,
                            target: r.target,
                            property: if ok { r.property } else { NONE },
                        };
                        conn.send_event(false, r.requestor, EventMask::NO_EVENT, n)
                            .unwrap();
                        conn.flush().unwrap();
                    }
                    Event::PropertyNotify(p) if p.state == Property::DELETE => {
                        if let Some((req, prop, type_, offset)) = sending {
                            if p.window == req && p.atom == prop {
                                let end = (offset + chunk.unwrap()).min(text.len());
                                conn.change_property8(
                                    PropMode::REPLACE,
                                    req,
                                    prop,
                                    type_,
                                    &text[offset..end],
                                )
                                .unwrap();
                                conn.flush().unwrap();
                                sending = if offset == end {
                                    None // the zero-length chunk ended it
                                } else {
                                    Some((req, prop, type_, end))
                                };
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
        TestOwner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestOwner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
