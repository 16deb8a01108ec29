//! One input thread per session: decoded client messages from every controlling viewer go
//! through a channel to the session's [`Injector`], which owns its own X connection (XTest
//! requests never run on the async runtime).
//!
//! Safety rules kept here, in one place:
//! * a viewer that leaves, or whose messages (heartbeats included) stop for
//!   [`HEARTBEAT_TIMEOUT`] while it holds keys or buttons, gets everything released;
//! * text typed through spare keycodes is restored to the keymap once text input has been idle
//!   for [`KEYMAP_RESTORE_IDLE`];
//! * an injection error is logged and counted; the thread keeps serving.
//!
//! Receipt-to-injection latency is recorded per message (see [`InputStats`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::inject::{InjectError, Injector};
use super::protocol::{ClientMessage, TouchPhase, LOCK_CAPS, LOCK_NUM};

/// A viewer holding keys or buttons that sends nothing for this long gets them released.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);
/// Spare keycodes remapped for text are restored after text has been idle this long.
pub const KEYMAP_RESTORE_IDLE: Duration = Duration::from_secs(2);
/// A wheel remainder older than this is dropped: the scroll gesture has ended.
pub const WHEEL_GESTURE_GAP: Duration = Duration::from_secs(1);
const LATENCY_SAMPLES: usize = 4096;

/// Messages waiting for the input thread; beyond this, new ones are dropped and counted (a
/// slow text burst must not let the queue, and the delay before a release, grow without end).
const QUEUE: usize = 512;

struct Message {
    viewer: Arc<str>,
    msg: ClientMessage,
    received: Instant,
}

/// Rare commands that must never be dropped, on their own unbounded channel: releases that
/// did not fit the queue, a viewer leaving, shutdown.
enum Control {
    Message(Message),
    ViewerGone(Arc<str>),
    Stop,
}

/// Counters and latency samples of a session's input.
#[derive(Debug, Default)]
pub struct InputStats {
    pub injected: AtomicU64,
    pub failed: AtomicU64,
    /// Dropped because the queue was full.
    pub dropped: AtomicU64,
    pub releases: AtomicU64,
    /// Receipt on the data channel → XTest request sent, in microseconds (ring buffer).
    latencies_us: Mutex<Vec<u32>>,
}

impl InputStats {
    /// p50 and p99 of receipt → injection latency in microseconds, over the last samples.
    pub fn latency_percentiles(&self) -> Option<(u32, u32)> {
        let mut v = self.latencies_us.lock().unwrap().clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Some((at(0.5), at(0.99)))
    }

    fn record(&self, d: Duration) {
        let mut v = self.latencies_us.lock().unwrap();
        if v.len() >= LATENCY_SAMPLES {
            v.remove(0);
        }
        v.push(d.as_micros().min(u32::MAX as u128) as u32);
    }
}

/// The session's input thread.
pub struct InputDispatcher {
    tx: mpsc::SyncSender<Message>,
    ctl: Mutex<mpsc::Sender<Control>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<InputStats>,
}

impl InputDispatcher {
    /// Connects an injector to `display` and starts the thread.
    pub fn start(display: &str) -> Result<Self, InjectError> {
        let injector = Injector::connect(display)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (ctl, ctl_rx) = mpsc::channel();
        let stats = Arc::new(InputStats::default());
        let s = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("input{display}"))
            .spawn(move || run(injector, rx, ctl_rx, &s))
            .map_err(|e| InjectError::Protocol(format!("cannot start the input thread: {e}")))?;
        Ok(InputDispatcher {
            tx,
            ctl: Mutex::new(ctl),
            thread: Some(thread),
            stats,
        })
    }

    /// Queue a message from a controlling viewer (never blocks). When the queue is full the
    /// message is dropped and counted, except releases, which always get through.
    pub fn send(&self, viewer: &Arc<str>, msg: ClientMessage, received: Instant) {
        let m = Message {
            viewer: viewer.clone(),
            msg,
            received,
        };
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(m)) if is_release(&m.msg) => {
                let _ = self.ctl.lock().unwrap().send(Control::Message(m));
            }
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A viewer left: whatever it held is released.
    pub fn viewer_gone(&self, viewer: &Arc<str>) {
        let _ = self
            .ctl
            .lock()
            .unwrap()
            .send(Control::ViewerGone(viewer.clone()));
    }
}

fn is_release(m: &ClientMessage) -> bool {
    matches!(
        m,
        ClientMessage::KeyUp { .. } | ClientMessage::ButtonUp { .. } | ClientMessage::ReleaseAll
    ) || matches!(
        m,
        ClientMessage::Touch {
            phase: TouchPhase::End | TouchPhase::Cancel,
            ..
        }
    )
}

impl Drop for InputDispatcher {
    fn drop(&mut self) {
        let _ = self.ctl.lock().unwrap().send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a viewer's key is held: as its physical key, or as the keycode a keysym was typed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Physical,
    Keycode(u8),
}

/// What one viewer holds down on the X server, so that exactly that can be released.
#[derive(Default)]
struct ViewerState {
    last_seen: Option<Instant>,
    /// By `KeyboardEvent.code`.
    keys: HashMap<&'static str, Held>,
    buttons: HashSet<u8>,
}

/// Lets go of one held key.
fn release_key(inj: &mut Injector, code: &str, held: Held) -> Result<(), InjectError> {
    match held {
        Held::Physical => inj.key(code, false),
        Held::Keycode(k) => inj.keycode_release(k),
    }
}

impl ViewerState {
    fn holds_anything(&self) -> bool {
        !self.keys.is_empty() || !self.buttons.is_empty()
    }
}

fn run(
    mut inj: Injector,
    rx: mpsc::Receiver<Message>,
    ctl: mpsc::Receiver<Control>,
    stats: &InputStats,
) {
    let mut viewers: HashMap<Arc<str>, ViewerState> = HashMap::new();
    let mut last_text: Option<Instant> = None;
    let mut last_wheel: Option<Instant> = None;
    loop {
        // Control first: a leaving viewer's release must not wait behind a backlog.
        let next = match ctl.try_recv() {
            Ok(c) => Some(c),
            Err(mpsc::TryRecvError::Empty) => match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => Some(Control::Message(m)),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(Control::Stop),
            },
            Err(mpsc::TryRecvError::Disconnected) => Some(Control::Stop),
        };
        match next {
            Some(Control::Message(Message {
                viewer,
                msg,
                received,
            })) => {
                let state = viewers.entry(viewer.clone()).or_default();
                // When it arrived, not when it was dequeued: a backlog must not make an
                // active viewer look silent.
                state.last_seen = Some(received);
                if matches!(
                    msg,
                    ClientMessage::Text { .. } | ClientMessage::KeysymDown { .. }
                ) {
                    last_text = Some(Instant::now());
                }
                if matches!(msg, ClientMessage::Wheel { .. }) {
                    if last_wheel.is_some_and(|t| t.elapsed() > WHEEL_GESTURE_GAP) {
                        inj.reset_wheel();
                    }
                    last_wheel = Some(Instant::now());
                }
                match apply(&mut inj, &msg, state) {
                    Ok(true) => {
                        stats.record(received.elapsed());
                        stats.injected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(viewer = control::log_tag(&viewer), error = %e, "input not injected");
                    }
                }
            }
            Some(Control::ViewerGone(viewer)) => {
                if let Some(mut state) = viewers.remove(&viewer) {
                    release(&mut inj, stats, &viewer, &mut state, "viewer left");
                }
            }
            Some(Control::Stop) => {
                let _ = inj.release_all();
                return;
            }
            None => {}
        }
        // Heartbeat loss: release what a silent viewer holds.
        for (viewer, state) in viewers.iter_mut() {
            if state.holds_anything()
                && state
                    .last_seen
                    .is_some_and(|t| t.elapsed() > HEARTBEAT_TIMEOUT)
            {
                release(&mut inj, stats, viewer, state, "heartbeat lost");
            }
        }
        if last_text.is_some_and(|t| t.elapsed() > KEYMAP_RESTORE_IDLE) {
            last_text = None;
            if let Err(e) = inj.restore_keymap() {
                tracing::warn!(error = %e, "restoring the keymap failed");
            }
        }
    }
}

/// Releases exactly what `state`'s viewer holds (another controller's keys stay down).
fn release(
    inj: &mut Injector,
    stats: &InputStats,
    viewer: &str,
    state: &mut ViewerState,
    why: &str,
) {
    if !state.holds_anything() {
        return;
    }
    stats.releases.fetch_add(1, Ordering::Relaxed);
    let mut result = Ok(());
    for (code, held) in state.keys.drain() {
        result = result.and(release_key(inj, code, held));
    }
    for b in state.buttons.drain() {
        result = result.and(inj.button(b, false));
    }
    match result.and(inj.flush()) {
        Ok(()) => tracing::info!(
            viewer = control::log_tag(viewer),
            why,
            "released the viewer's keys and buttons"
        ),
        Err(e) => tracing::warn!(viewer, why, error = %e, "release failed"),
    }
}

/// Applies one message; `Ok(true)` when something was injected. Held keys and buttons are
/// tracked as sets, updated before the request goes out: a repeated key-down (browser
/// auto-repeat; the X server repeats held keys itself) and a key-up for a key never pressed
/// (IME commit, PrintScreen) inject nothing.
fn apply(
    inj: &mut Injector,
    msg: &ClientMessage,
    state: &mut ViewerState,
) -> Result<bool, InjectError> {
    match msg {
        ClientMessage::KeyDown { key } => {
            if state.keys.contains_key(key.code()) {
                return Ok(false);
            }
            state.keys.insert(key.code(), Held::Physical);
            inj.key(key.code(), true)?;
        }
        ClientMessage::KeysymDown { key, keysym } => {
            if state.keys.contains_key(key.code()) {
                return Ok(false);
            }
            let held = match inj.keysym_press(*keysym) {
                Ok(k) => Held::Keycode(k),
                // A modifier the desktop's keymap lacks (AltGr on a keymap without Level 3):
                // the physical key is the best guess.
                Err(InjectError::NotInKeymap(_)) => {
                    inj.key(key.code(), true)?;
                    Held::Physical
                }
                Err(e) => return Err(e),
            };
            state.keys.insert(key.code(), held);
        }
        ClientMessage::KeyUp { key } => {
            let Some(held) = state.keys.remove(key.code()) else {
                return Ok(false);
            };
            release_key(inj, key.code(), held)?;
        }
        ClientMessage::Locks { flags } => {
            inj.set_locks(flags & LOCK_CAPS != 0, flags & LOCK_NUM != 0)?;
        }
        ClientMessage::Text { text } => inj.text(text)?,
        ClientMessage::PointerAbs {
            x,
            y,
            width,
            height,
        } => {
            inj.pointer_abs(
                u32::from(*x),
                u32::from(*y),
                u32::from(*width),
                u32::from(*height),
            )?;
        }
        ClientMessage::PointerRel { dx, dy } => inj.pointer_rel(i32::from(*dx), i32::from(*dy))?,
        ClientMessage::ButtonDown { button } => {
            if !state.buttons.insert(button.as_u8()) {
                return Ok(false);
            }
            inj.button(button.as_u8(), true)?;
        }
        ClientMessage::ButtonUp { button } => {
            if !state.buttons.remove(&button.as_u8()) {
                return Ok(false);
            }
            inj.button(button.as_u8(), false)?;
        }
        ClientMessage::Wheel { dx, dy } => inj.wheel(i32::from(*dx), i32::from(*dy))?,
        // Touch: pointer emulation (the browser client emulates on its side; raw touch is for
        // clients that send it): a touch moves the pointer and holds the left button.
        ClientMessage::Touch {
            phase,
            x,
            y,
            width,
            height,
            ..
        } => {
            let moved = inj.pointer_abs(
                u32::from(*x),
                u32::from(*y),
                u32::from(*width),
                u32::from(*height),
            );
            match phase {
                TouchPhase::Start if moved.is_ok() && state.buttons.insert(0) => {
                    inj.button(0, true)?;
                }
                // Released even if the move failed: a touch never leaves the button down.
                TouchPhase::End | TouchPhase::Cancel if state.buttons.remove(&0) => {
                    inj.button(0, false)?;
                }
                _ => {}
            }
            moved?;
        }
        ClientMessage::ReleaseAll => {
            for (code, held) in state.keys.drain() {
                release_key(inj, code, held)?;
            }
            for b in state.buttons.drain() {
                inj.button(b, false)?;
            }
        }
        // Handled elsewhere (ping) or not yet (clipboard, resize), and heartbeats only
        // refresh `last_seen`.
        _ => return Ok(false),
    }
    Ok(true)
}
