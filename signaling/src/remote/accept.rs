//! The control socket's one acceptor: each connection goes to whoever waits for its peer's
//! pid (a host this control plane spawned, or one it takes over after a restart). A
//! connection that nobody claims within [`UNCLAIMED_FOR`] is dropped: only processes whose
//! pid the control plane knows get a channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

/// How long a connection may wait for its claim (a host can connect before the spawner has
/// recorded its pid).
const UNCLAIMED_FOR: Duration = Duration::from_secs(10);
/// At most this many unclaimed connections are held.
const MAX_UNCLAIMED: usize = 64;

#[derive(Default)]
pub(super) struct Claims {
    waiting: HashMap<u32, oneshot::Sender<UnixStream>>,
    arrived: HashMap<u32, (UnixStream, Instant)>,
}

/// A claim on the next connection of one pid; dropping it withdraws the claim.
pub(super) struct Claim {
    claims: Arc<Mutex<Claims>>,
    pid: u32,
    pub(super) stream: oneshot::Receiver<UnixStream>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.lock().unwrap().waiting.remove(&self.pid);
    }
}

/// Claims the (next) connection from process `pid`.
pub(super) fn claim(claims: &Arc<Mutex<Claims>>, pid: u32) -> Claim {
    let (tx, rx) = oneshot::channel();
    let mut c = claims.lock().unwrap();
    match c.arrived.remove(&pid) {
        Some((stream, _)) => {
            let _ = tx.send(stream);
        }
        None => {
            c.waiting.insert(pid, tx);
        }
    }
    Claim {
        claims: claims.clone(),
        pid,
        stream: rx,
    }
}

/// Accepts connections on `listener` for ever, handing each to its claim.
pub(super) async fn accept_loop(listener: UnixListener, claims: Arc<Mutex<Claims>>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(pid) = stream
            .peer_cred()
            .ok()
            .and_then(|c| c.pid())
            .and_then(|p| u32::try_from(p).ok())
        else {
            tracing::warn!("dropping a control connection without peer credentials");
            continue;
        };
        let mut c = claims.lock().unwrap();
        let before = c.arrived.len();
        c.arrived.retain(|_, (_, at)| at.elapsed() < UNCLAIMED_FOR);
        if c.arrived.len() < before {
            tracing::warn!(
                dropped = before - c.arrived.len(),
                "dropped control connections from processes this control plane does not know"
            );
        }
        let stream = match c.waiting.remove(&pid) {
            Some(tx) => match tx.send(stream) {
                Ok(()) => continue,
                Err(s) => s,
            },
            None => stream,
        };
        if c.arrived.len() >= MAX_UNCLAIMED {
            tracing::warn!(pid, "dropping a control connection: too many unclaimed");
            continue;
        }
        c.arrived.insert(pid, (stream, Instant::now()));
    }
}
