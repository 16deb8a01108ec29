//! The clipboard bridge against a real Xvfb and real X selection owners: a viewer's text set on
//! CLIPBOARD is readable by another X client; a desktop copy reaches subscribers, in one piece,
//! through INCR, and through the STRING fallback; texts over the cap are dropped and counted.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::xclip::{read_clipboard, TestOwner};
use edgedesk_host::clipboard::{Clipboard, ClipboardError, ClipboardUpdate};
use tokio::sync::broadcast;

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
