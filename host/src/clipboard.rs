//! The session's clipboard: the X `CLIPBOARD` selection ⇄ the viewers.
//!
//! One [`Clipboard`] per session owns an X connection, an unmapped window and a thread:
//!
//! * **Host → viewers.** XFixes reports every new owner of `CLIPBOARD`; the thread asks the
//!   owner for `UTF8_STRING` (falling back to `STRING`, Latin-1), reads the reply property —
//!   in one piece or through the ICCCM `INCR` protocol for large texts — and publishes the text
//!   to subscribers ([`Clipboard::subscribe`]). Texts over the cap are dropped and counted.
//! * **Viewers → host.** [`Clipboard::set`] makes the window the `CLIPBOARD` owner with the
//!   viewer's text; the thread answers other clients' `SelectionRequest`s (`TARGETS`,
//!   `UTF8_STRING`, `text/plain;charset=utf-8`, `TEXT`, `STRING`, `text/plain`) until another
//!   client takes the selection. The text is also published, tagged with the viewer it came
//!   from, so the other viewers get it and the sender does not get its own text back.
//!
//! What may flow which way is the session's [`ClipboardPolicy`]; the viewer task enforces it.
//! Only `CLIPBOARD` is bridged, not `PRIMARY` (the middle-click selection changes with every
//! text selection on the desktop and would flood the browser's clipboard).

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::broadcast;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xfixes::{self, ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    self, Atom, AtomEnum, ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask,
    PropMode, Property, SelectionNotifyEvent, SelectionRequestEvent, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{CURRENT_TIME, NONE};

pub use crate::input::protocol::DEFAULT_MAX_CLIPBOARD_BYTES;

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        CLIPBOARD,
        TARGETS,
        UTF8_STRING,
        TEXT,
        INCR,
        ATOM,
        TEXT_PLAIN_UTF8: b"text/plain;charset=utf-8",
        TEXT_PLAIN: b"text/plain",
        EDGEDESK_CLIPBOARD,
        EDGEDESK_STOP,
    }
}

/// Which way clipboard text may flow in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClipboardPolicy {
    /// Both ways (the default).
    #[default]
    Both,
    /// Only from the desktop to the viewers (copy out, no paste in).
    ToClient,
    /// Only from the viewers to the desktop (paste in, no copy out).
    ToServer,
    /// Not at all.
    Off,
}

impl ClipboardPolicy {
    pub fn to_client(self) -> bool {
        matches!(self, Self::Both | Self::ToClient)
    }

    pub fn to_server(self) -> bool {
        matches!(self, Self::Both | Self::ToServer)
    }

    /// The name used on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::ToClient => "to-client",
            Self::ToServer => "to-server",
            Self::Off => "off",
        }
    }
}

impl FromStr for ClipboardPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Both, Self::ToClient, Self::ToServer, Self::Off]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("unknown clipboard policy {s:?} (both, to-client, to-server or off)")
            })
    }
}

impl std::fmt::Display for ClipboardPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A session's clipboard settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipboardConfig {
    pub policy: ClipboardPolicy,
    /// Most UTF-8 bytes of one clipboard text, either way; longer texts are dropped whole.
    pub max_bytes: usize,
}

impl Default for ClipboardConfig {
    fn default() -> Self {
        Self {
            policy: ClipboardPolicy::Both,
            max_bytes: DEFAULT_MAX_CLIPBOARD_BYTES,
        }
    }
}

/// A new clipboard text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipboardUpdate {
    pub text: Arc<str>,
    /// The viewer whose paste set it; `None` when an X client on the desktop copied it.
    pub origin: Option<Arc<str>>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClipboardError {
    #[error("cannot connect to X display {display}: {reason}")]
    Connect { display: String, reason: String },
    #[error("X: {0}")]
    X(String),
    #[error("clipboard text of {len} bytes is over the cap of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("another X client kept the CLIPBOARD selection")]
    NotOwner,
}

impl From<x11rb::errors::ConnectionError> for ClipboardError {
    fn from(e: x11rb::errors::ConnectionError) -> Self {
        Self::X(e.to_string())
    }
}

impl From<x11rb::errors::ReplyError> for ClipboardError {
    fn from(e: x11rb::errors::ReplyError) -> Self {
        Self::X(e.to_string())
    }
}

impl From<x11rb::errors::ReplyOrIdError> for ClipboardError {
    fn from(e: x11rb::errors::ReplyOrIdError) -> Self {
        Self::X(e.to_string())
    }
}

/// Counters of a session's clipboard.
#[derive(Debug, Default)]
pub struct ClipboardStats {
    /// Texts read from the desktop and published to viewers.
    pub from_desktop: AtomicU64,
    /// Texts viewers set on the desktop.
    pub to_desktop: AtomicU64,
    /// Desktop texts dropped for being over the cap.
    pub too_large: AtomicU64,
    /// Desktop texts that could not be read (the owner refused or sent garbage).
    pub failed: AtomicU64,
    /// Requests from desktop clients answered with our text.
    pub served: AtomicU64,
}

/// State shared between the thread and [`Clipboard::set`].
#[derive(Default)]
struct Shared {
    /// The text we own the selection with (set by a viewer), until another client takes it.
    owned: Option<Arc<str>>,
    /// The last text published (to skip republishing the same text).
    latest: Option<Arc<str>>,
}

/// What the bridge's handle and its thread share.
struct Inner {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
    shared: Mutex<Shared>,
    updates: broadcast::Sender<ClipboardUpdate>,
    max_bytes: usize,
    stats: Arc<ClipboardStats>,
}

/// The X clipboard bridge of one display (see the module docs).
pub struct Clipboard {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<ClipboardStats>,
}

impl Clipboard {
    /// Connects to `display` and starts watching its `CLIPBOARD`.
    pub fn start(display: &str, max_bytes: usize) -> Result<Self, ClipboardError> {
        let (conn, screen) =
            RustConnection::connect(Some(display)).map_err(|e| ClipboardError::Connect {
                display: display.to_owned(),
                reason: e.to_string(),
            })?;
        conn.xfixes_query_version(5, 0)?
            .reply()
            .map_err(|e| ClipboardError::X(format!("no XFIXES extension: {e}")))?;
        let atoms = Atoms::new(&conn)?.reply()?;
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id()?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            -10,
            -10,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )?
        .check()?;
        conn.xfixes_select_selection_input(
            window,
            atoms.CLIPBOARD,
            SelectionEventMask::SET_SELECTION_OWNER
                | SelectionEventMask::SELECTION_WINDOW_DESTROY
                | SelectionEventMask::SELECTION_CLIENT_CLOSE,
        )?
        .check()?;
        let stats = Arc::new(ClipboardStats::default());
        let inner = Arc::new(Inner {
            conn,
            window,
            atoms,
            shared: Mutex::default(),
            updates: broadcast::channel(16).0,
            max_bytes,
            stats: stats.clone(),
        });
        let mut worker = Worker {
            inner: inner.clone(),
            read: Read::Idle,
        };
        let thread = std::thread::Builder::new()
            .name(format!("clipboard{display}"))
            .spawn(move || worker.run())
            .map_err(|e| ClipboardError::X(format!("cannot start the clipboard thread: {e}")))?;
        Ok(Clipboard {
            inner,
            thread: Some(thread),
            stats,
        })
    }

    /// New clipboard texts, from the desktop or from a viewer. A slow subscriber skips to the
    /// newest texts (older ones are stale anyway).
    pub fn subscribe(&self) -> broadcast::Receiver<ClipboardUpdate> {
        self.inner.updates.subscribe()
    }

    /// Puts a viewer's text on the desktop's `CLIPBOARD` (blocking: a few X round trips).
    pub fn set(&self, text: &str, origin: Option<Arc<str>>) -> Result<(), ClipboardError> {
        // One ChangeProperty must carry the text (no INCR sending): stay under the server's
        // request size too.
        let max = self
            .inner
            .max_bytes
            .min(self.inner.conn.maximum_request_bytes().saturating_sub(64));
        if text.len() > max {
            return Err(ClipboardError::TooLarge {
                len: text.len(),
                max,
            });
        }
        let text: Arc<str> = Arc::from(text);
        {
            let mut s = self.inner.shared.lock().unwrap();
            s.owned = Some(text.clone());
            s.latest = Some(text.clone());
        }
        self.inner
            .conn
            .set_selection_owner(self.inner.window, self.inner.atoms.CLIPBOARD, CURRENT_TIME)?
            .check()?;
        let owner = self
            .inner
            .conn
            .get_selection_owner(self.inner.atoms.CLIPBOARD)?
            .reply()?
            .owner;
        if owner != self.inner.window {
            self.inner.shared.lock().unwrap().owned = None;
            return Err(ClipboardError::NotOwner);
        }
        self.stats.to_desktop.fetch_add(1, Ordering::Relaxed);
        let _ = self.inner.updates.send(ClipboardUpdate { text, origin });
        Ok(())
    }
}

impl Drop for Clipboard {
    fn drop(&mut self) {
        let stop = ClientMessageEvent::new(
            32,
            self.inner.window,
            self.inner.atoms.EDGEDESK_STOP,
            [0u32; 5],
        );
        let sent = self
            .inner
            .conn
            .send_event(false, self.inner.window, EventMask::NO_EVENT, stop)
            .and_then(|_| self.inner.conn.flush());
        if let Some(t) = self.thread.take() {
            if sent.is_ok() {
                let _ = t.join();
            }
        }
        let _ = self.inner.conn.destroy_window(self.inner.window);
        let _ = self.inner.conn.flush();
    }
}

/// Where reading the desktop's clipboard stands.
enum Read {
    Idle,
    /// ConvertSelection sent for this target; waiting for SelectionNotify.
    Converting(Atom),
    /// Receiving an INCR transfer.
    Incr {
        target: Atom,
        data: Vec<u8>,
    },
    /// An INCR transfer over the cap: its chunks are deleted (so the owner finishes) unread.
    Discarding,
}

/// The bridge's thread: the shared parts plus where a read stands.
struct Worker {
    inner: Arc<Inner>,
    read: Read,
}

impl Worker {
    fn run(&mut self) {
        loop {
            let event = match self.inner.conn.wait_for_event() {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "clipboard: X connection lost");
                    return;
                }
            };
            let handled = match event {
                Event::ClientMessage(m)
                    if m.window == self.inner.window
                        && m.type_ == self.inner.atoms.EDGEDESK_STOP =>
                {
                    return;
                }
                Event::XfixesSelectionNotify(n) => self.owner_changed(n),
                Event::SelectionNotify(n) if n.requestor == self.inner.window => self.converted(n),
                Event::PropertyNotify(p)
                    if p.window == self.inner.window
                        && p.atom == self.inner.atoms.EDGEDESK_CLIPBOARD
                        && p.state == Property::NEW_VALUE =>
                {
                    self.incr_chunk()
                }
                Event::SelectionRequest(r) => self.answer(r),
                Event::SelectionClear(c) if c.owner == self.inner.window => {
                    self.inner.shared.lock().unwrap().owned = None;
                    Ok(())
                }
                Event::Error(e) => {
                    tracing::debug!(error = ?e, "clipboard: X error");
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = handled {
                tracing::warn!(error = %e, "clipboard: X request failed");
                self.read = Read::Idle;
            }
        }
    }

    /// Another client owns CLIPBOARD now: ask it for the text.
    fn owner_changed(&mut self, n: xfixes::SelectionNotifyEvent) -> Result<(), ClipboardError> {
        if n.selection != self.inner.atoms.CLIPBOARD
            || n.owner == self.inner.window
            || n.owner == NONE
        {
            return Ok(());
        }
        self.convert(self.inner.atoms.UTF8_STRING, n.selection_timestamp)
    }

    fn convert(&mut self, target: Atom, time: u32) -> Result<(), ClipboardError> {
        // A stale property would be mistaken for the reply.
        self.inner
            .conn
            .delete_property(self.inner.window, self.inner.atoms.EDGEDESK_CLIPBOARD)?;
        self.inner.conn.convert_selection(
            self.inner.window,
            self.inner.atoms.CLIPBOARD,
            target,
            self.inner.atoms.EDGEDESK_CLIPBOARD,
            time,
        )?;
        self.inner.conn.flush()?;
        self.read = Read::Converting(target);
        Ok(())
    }

    /// The owner answered a ConvertSelection.
    fn converted(&mut self, n: SelectionNotifyEvent) -> Result<(), ClipboardError> {
        let Read::Converting(target) = self.read else {
            return Ok(());
        };
        if n.property == NONE {
            // Refused: old clients know only STRING.
            if target == self.inner.atoms.UTF8_STRING {
                return self.convert(AtomEnum::STRING.into(), n.time);
            }
            self.read = Read::Idle;
            self.inner.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("clipboard: the owner offers no text");
            return Ok(());
        }
        // Read a little more than the cap, to tell "exactly the cap" from "over it".
        let reply =
            self.take_property(u32::try_from(self.inner.max_bytes / 4 + 2).unwrap_or(u32::MAX))?;
        if reply.type_ == self.inner.atoms.INCR {
            // Deleting the property (done above) asks the owner for the first chunk.
            self.read = Read::Incr {
                target,
                data: Vec::new(),
            };
            return Ok(());
        }
        self.read = Read::Idle;
        if reply.bytes_after > 0 || reply.value.len() > self.inner.max_bytes {
            self.too_large(reply.value.len() + reply.bytes_after as usize);
            return Ok(());
        }
        self.publish(target, reply.value);
        Ok(())
    }

    /// Reads and deletes the reply property (at most `words` 32-bit units of it).
    fn take_property(&self, words: u32) -> Result<xproto::GetPropertyReply, ClipboardError> {
        Ok(self
            .inner
            .conn
            .get_property(
                true,
                self.inner.window,
                self.inner.atoms.EDGEDESK_CLIPBOARD,
                AtomEnum::ANY,
                0,
                words,
            )?
            .reply()?)
    }

    /// The owner wrote the next INCR chunk; an empty chunk ends the transfer.
    fn incr_chunk(&mut self) -> Result<(), ClipboardError> {
        if !matches!(self.read, Read::Incr { .. } | Read::Discarding) {
            return Ok(());
        }
        let reply = self.take_property(u32::MAX / 4)?;
        self.inner.conn.flush()?;
        let done = reply.value.is_empty();
        match &mut self.read {
            Read::Incr { target, data } => {
                if done {
                    let (target, data) = (*target, std::mem::take(data));
                    self.read = Read::Idle;
                    self.publish(target, data);
                } else if data.len() + reply.value.len() > self.inner.max_bytes {
                    let len = data.len() + reply.value.len();
                    self.read = Read::Discarding;
                    self.too_large(len);
                } else {
                    data.extend_from_slice(&reply.value);
                }
            }
            Read::Discarding if done => self.read = Read::Idle,
            _ => {}
        }
        Ok(())
    }

    fn too_large(&self, len: usize) {
        self.inner.stats.too_large.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            bytes = len,
            max = self.inner.max_bytes,
            "desktop clipboard text over the cap; not sent to viewers"
        );
    }

    fn publish(&self, target: Atom, bytes: Vec<u8>) {
        let text: String = if target == u32::from(AtomEnum::STRING) {
            bytes.iter().map(|&b| char::from(b)).collect() // Latin-1
        } else {
            match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }
        };
        let text: Arc<str> = Arc::from(text);
        {
            let mut s = self.inner.shared.lock().unwrap();
            if s.latest.as_deref() == Some(&*text) {
                return;
            }
            s.latest = Some(text.clone());
        }
        self.inner
            .stats
            .from_desktop
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(bytes = text.len(), "desktop clipboard changed");
        let _ = self
            .inner
            .updates
            .send(ClipboardUpdate { text, origin: None });
    }

    /// Another client wants our text (ICCCM §2.2).
    fn answer(&self, r: SelectionRequestEvent) -> Result<(), ClipboardError> {
        let owned = self.inner.shared.lock().unwrap().owned.clone();
        // Obsolete clients send no property: use the target's name.
        let property = if r.property == NONE {
            r.target
        } else {
            r.property
        };
        let a = &self.inner.atoms;
        let stored = match owned {
            Some(text) if r.selection == a.CLIPBOARD && r.owner == self.inner.window => {
                if r.target == a.TARGETS {
                    let targets = [
                        a.TARGETS,
                        a.UTF8_STRING,
                        a.TEXT_PLAIN_UTF8,
                        a.TEXT,
                        AtomEnum::STRING.into(),
                        a.TEXT_PLAIN,
                    ];
                    self.inner.conn.change_property32(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        a.ATOM,
                        &targets,
                    )?;
                    true
                } else if r.target == a.UTF8_STRING
                    || r.target == a.TEXT_PLAIN_UTF8
                    || r.target == a.TEXT
                {
                    let type_ = if r.target == a.TEXT {
                        a.UTF8_STRING
                    } else {
                        r.target
                    };
                    self.inner.conn.change_property8(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        type_,
                        text.as_bytes(),
                    )?;
                    true
                } else if r.target == u32::from(AtomEnum::STRING) || r.target == a.TEXT_PLAIN {
                    let latin1: Vec<u8> = text
                        .chars()
                        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                        .collect();
                    self.inner.conn.change_property8(
                        PropMode::REPLACE,
                        r.requestor,
                        property,
                        AtomEnum::STRING,
                        &latin1,
                    )?;
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if stored {
            self.inner.stats.served.fetch_add(1, Ordering::Relaxed);
        }
        let notify = SelectionNotifyEvent {
            response_type: xproto::SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: r.time,
            requestor: r.requestor,
            selection: r.selection,
            target: r.target,
            property: if stored { property } else { NONE },
        };
        self.inner
            .conn
            .send_event(false, r.requestor, EventMask::NO_EVENT, notify)?;
        self.inner.conn.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for p in [
            ClipboardPolicy::Both,
            ClipboardPolicy::ToClient,
            ClipboardPolicy::ToServer,
            ClipboardPolicy::Off,
        ] {
            assert_eq!(p.name().parse::<ClipboardPolicy>(), Ok(p));
        }
        assert!("sideways".parse::<ClipboardPolicy>().is_err());
        assert!(ClipboardPolicy::Both.to_client() && ClipboardPolicy::Both.to_server());
        assert!(ClipboardPolicy::ToClient.to_client() && !ClipboardPolicy::ToClient.to_server());
        assert!(!ClipboardPolicy::ToServer.to_client() && ClipboardPolicy::ToServer.to_server());
        assert!(!ClipboardPolicy::Off.to_client() && !ClipboardPolicy::Off.to_server());
    }
}
