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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::inject::{InjectError, Injector};
use super::protocol::{ClientMessage, TouchPhase};

/// A viewer holding keys or buttons that sends nothing for this long gets them released.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);
/// Spare keycodes remapped for text are restored after text has been idle this long.
pub const KEYMAP_RESTORE_IDLE: Duration = Duration::from_secs(2);
const LATENCY_SAMPLES: usize = 4096;

enum Command {
    Message {
        viewer: Arc<str>,
        msg: ClientMessage,
        received: Instant,
    },
    ViewerGone(Arc<str>),
    Stop,
}

/// Counters and latency samples of a session's input.
#[derive(Debug, Default)]
pub struct InputStats {
    pub injected: AtomicU64,
    pub failed: AtomicU64,
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
    tx: Mutex<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<InputStats>,
}

impl InputDispatcher {
    /// Connects an injector to `display` and starts the thread.
    pub fn start(display: &str) -> Result<Self, InjectError> {
        let injector = Injector::connect(display)?;
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(InputStats::default());
        let s = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("input{display}"))
            .spawn(move || run(injector, rx, &s))
            .map_err(|e| InjectError::Protocol(format!("cannot start the input thread: {e}")))?;
        Ok(InputDispatcher {
            tx: Mutex::new(tx),
            thread: Some(thread),
            stats,
        })
    }

    /// Queue a message from a controlling viewer.
    pub fn send(&self, viewer: &Arc<str>, msg: ClientMessage, received: Instant) {
        let _ = self.tx.lock().unwrap().send(Command::Message {
            viewer: viewer.clone(),
            msg,
            received,
        });
    }

    /// A viewer left: whatever it held is released.
    pub fn viewer_gone(&self, viewer: &Arc<str>) {
        let _ = self
            .tx
            .lock()
            .unwrap()
            .send(Command::ViewerGone(viewer.clone()));
    }
}

impl Drop for InputDispatcher {
    fn drop(&mut self) {
        let _ = self.tx.lock().unwrap().send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Default)]
struct ViewerState {
    last_seen: Option<Instant>,
    /// Keys or buttons this viewer pressed and has not released.
    holding: usize,
}

fn run(mut inj: Injector, rx: mpsc::Receiver<Command>, stats: &InputStats) {
    let mut viewers: HashMap<Arc<str>, ViewerState> = HashMap::new();
    let mut last_text: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Command::Message {
                viewer,
                msg,
                received,
            }) => {
                let state = viewers.entry(viewer.clone()).or_default();
                state.last_seen = Some(Instant::now());
                if matches!(msg, ClientMessage::Text { .. }) {
                    last_text = Some(Instant::now());
                }
                match apply(&mut inj, &msg, state) {
                    Ok(true) => {
                        stats.record(received.elapsed());
                        stats.injected.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(viewer = %viewer, error = %e, "input not injected");
                    }
                }
            }
            Ok(Command::ViewerGone(viewer)) => {
                if viewers.remove(&viewer).is_some_and(|s| s.holding > 0) {
                    release(&mut inj, stats, &viewer, "viewer left");
                    viewers.values_mut().for_each(|s| s.holding = 0);
                }
            }
            Ok(Command::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = inj.release_all();
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        // Heartbeat loss: release what a silent viewer holds.
        let silent: Vec<Arc<str>> = viewers
            .iter()
            .filter(|(_, s)| {
                s.holding > 0 && s.last_seen.is_some_and(|t| t.elapsed() > HEARTBEAT_TIMEOUT)
            })
            .map(|(v, _)| v.clone())
            .collect();
        for v in silent {
            release(&mut inj, stats, &v, "heartbeat lost");
            viewers.values_mut().for_each(|s| s.holding = 0);
        }
        if last_text.is_some_and(|t| t.elapsed() > KEYMAP_RESTORE_IDLE) {
            last_text = None;
            if let Err(e) = inj.restore_keymap() {
                tracing::warn!(error = %e, "restoring the keymap failed");
            }
        }
    }
}

fn release(inj: &mut Injector, stats: &InputStats, viewer: &str, why: &str) {
    stats.releases.fetch_add(1, Ordering::Relaxed);
    match inj.release_all() {
        Ok(()) => tracing::info!(viewer, why, "released every key and button"),
        Err(e) => tracing::warn!(viewer, why, error = %e, "release failed"),
    }
}

/// Applies one message; `Ok(true)` when something was injected.
fn apply(
    inj: &mut Injector,
    msg: &ClientMessage,
    state: &mut ViewerState,
) -> Result<bool, InjectError> {
    match msg {
        ClientMessage::KeyDown { key } => {
            inj.key(key.code(), true)?;
            state.holding += 1;
        }
        ClientMessage::KeyUp { key } => {
            inj.key(key.code(), false)?;
            state.holding = state.holding.saturating_sub(1);
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
            inj.button(button.as_u8(), true)?;
            state.holding += 1;
        }
        ClientMessage::ButtonUp { button } => {
            inj.button(button.as_u8(), false)?;
            state.holding = state.holding.saturating_sub(1);
        }
        ClientMessage::Wheel { dx, dy } => inj.wheel(i32::from(*dx), i32::from(*dy))?,
        // Touch: pointer emulation (the client also emulates; raw touch is for clients that
        // send it): a touch moves the pointer and holds the left button.
        ClientMessage::Touch {
            phase,
            x,
            y,
            width,
            height,
            ..
        } => {
            inj.pointer_abs(
                u32::from(*x),
                u32::from(*y),
                u32::from(*width),
                u32::from(*height),
            )?;
            match phase {
                TouchPhase::Start => {
                    inj.button(0, true)?;
                    state.holding += 1;
                }
                TouchPhase::End | TouchPhase::Cancel => {
                    inj.button(0, false)?;
                    state.holding = state.holding.saturating_sub(1);
                }
                _ => {}
            }
        }
        ClientMessage::ReleaseAll => {
            inj.release_all()?;
            state.holding = 0;
        }
        // Handled elsewhere (ping) or not yet (clipboard, resize), and heartbeats only
        // refresh `last_seen`.
        _ => return Ok(false),
    }
    Ok(true)
}
