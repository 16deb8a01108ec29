//! The clipboard bridge against a real Xvfb and real X selection owners: a viewer's text set on
//! CLIPBOARD is readable by another X client; a desktop copy reaches subscribers, in one piece,
//! through INCR, and through the STRING fallback; texts over the cap are dropped and counted.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgedesk_host::clipboard::{Clipboard, ClipboardError, ClipboardUpdate};
use tokio::sync::broadcast;
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
fn read_clipboard(display: &str, target: &str) -> Option<(String, Vec<u8>)> {
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
struct TestOwner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestOwner {
    fn start(display: &str, text: Vec<u8>, targets: &[&str], chunk: Option<usize>) -> Self {
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

/// The next update, or None after `timeout`.
fn next(
    rx: &mut broadcast::Receiver<ClipboardUpdate>,
    timeout: Duration,
) -> Option<ClipboardUpdate> {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.try_recv() {
            Ok(u) => return Some(u),
            Err(broadcast::error::TryRecvError::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn a_viewer_paste_is_readable_by_x_clients_in_every_text_target() {
    let display = common::xvfb();
    let clip = Clipboard::start(&display.name(), 1 << 20).unwrap();
    let mut rx = clip.subscribe();
    clip.set("héllo € ✓", Some(Arc::from("viewer-1"))).unwrap();
    let own = next(&mut rx, Duration::from_secs(1)).unwrap();
    assert_eq!(&*own.text, "héllo € ✓");
    assert_eq!(own.origin.as_deref(), Some("viewer-1"));

    let (t, v) = read_clipboard(&display.name(), "UTF8_STRING").unwrap();
    assert_eq!(
        (t.as_str(), v.as_slice()),
        ("UTF8_STRING", "héllo € ✓".as_bytes())
    );
    let (_, v) = read_clipboard(&display.name(), "text/plain;charset=utf-8").unwrap();
    assert_eq!(v, "héllo € ✓".as_bytes());
    // STRING is Latin-1: é survives, € and ✓ cannot.
    let (t, v) = read_clipboard(&display.name(), "STRING").unwrap();
    assert_eq!(
        (t.as_str(), v.as_slice()),
        ("STRING", b"h\xe9llo ? ?".as_slice())
    );
    let (t, v) = read_clipboard(&display.name(), "TARGETS").unwrap();
    assert_eq!(t, "ATOM");
    assert!(v.len() >= 4 * 4);
    assert!(
        read_clipboard(&display.name(), "image/png").is_none(),
        "no images"
    );
    assert!(clip.stats.served.load(Ordering::Relaxed) >= 4);

    // Over the cap: refused, nothing published.
    let small = Clipboard::start(&display.name(), 4).unwrap();
    assert!(matches!(
        small.set("12345", None),
        Err(ClipboardError::TooLarge { len: 5, max: 4 })
    ));
}

#[test]
fn a_desktop_copy_reaches_subscribers() {
    let display = common::xvfb();
    let clip = Clipboard::start(&display.name(), 1 << 20).unwrap();
    let mut rx = clip.subscribe();

    // A plain owner with UTF8_STRING.
    let owner = TestOwner::start(&display.name(), "copied ✓".into(), &["UTF8_STRING"], None);
    let u = next(&mut rx, Duration::from_secs(2)).expect("the desktop copy is published");
    assert_eq!((&*u.text, u.origin), ("copied ✓", None));
    drop(owner);

    // An old client that knows only STRING (Latin-1).
    let owner = TestOwner::start(&display.name(), b"caf\xe9".to_vec(), &["STRING"], None);
    let u = next(&mut rx, Duration::from_secs(2)).expect("STRING fallback");
    assert_eq!(&*u.text, "café");
    drop(owner);

    // A large text through INCR in 4 KiB chunks.
    let big: String = (0..300_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let owner = TestOwner::start(
        &display.name(),
        big.clone().into(),
        &["UTF8_STRING"],
        Some(4096),
    );
    let u = next(&mut rx, Duration::from_secs(5)).expect("INCR transfer");
    assert_eq!(u.text.len(), big.len());
    assert_eq!(&*u.text, big.as_str());
    drop(owner);

    // The same text again is not republished; a viewer's set after a desktop copy works.
    let owner = TestOwner::start(
        &display.name(),
        big.clone().into(),
        &["UTF8_STRING"],
        Some(4096),
    );
    assert!(next(&mut rx, Duration::from_millis(500)).is_none());
    drop(owner);
    clip.set("from the browser", Some(Arc::from("v"))).unwrap();
    assert_eq!(
        &*next(&mut rx, Duration::from_secs(1)).unwrap().text,
        "from the browser"
    );
    assert_eq!(
        read_clipboard(&display.name(), "UTF8_STRING").unwrap().1,
        b"from the browser"
    );
}

#[test]
fn desktop_texts_over_the_cap_are_dropped_and_counted() {
    let display = common::xvfb();
    let clip = Clipboard::start(&display.name(), 1000).unwrap();
    let mut rx = clip.subscribe();

    let owner = TestOwner::start(&display.name(), vec![b'x'; 1001], &["UTF8_STRING"], None);
    assert!(next(&mut rx, Duration::from_millis(800)).is_none());
    drop(owner);
    let owner = TestOwner::start(
        &display.name(),
        vec![b'y'; 5000],
        &["UTF8_STRING"],
        Some(512),
    );
    assert!(next(&mut rx, Duration::from_millis(800)).is_none());
    drop(owner);
    assert_eq!(clip.stats.too_large.load(Ordering::Relaxed), 2);

    // Exactly the cap passes, and the bridge still works after the discarded INCR.
    let owner = TestOwner::start(
        &display.name(),
        vec![b'z'; 1000],
        &["UTF8_STRING"],
        Some(300),
    );
    let u = next(&mut rx, Duration::from_secs(2)).expect("a text of exactly the cap");
    assert_eq!(u.text.len(), 1000);
    drop(owner);
    // An owner that offers no text at all is counted as failed, not published.
    let owner = TestOwner::start(&display.name(), b"png".to_vec(), &["image/png"], None);
    assert!(next(&mut rx, Duration::from_millis(500)).is_none());
    drop(owner);
    assert!(clip.stats.failed.load(Ordering::Relaxed) >= 1);
}
