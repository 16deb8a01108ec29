//! The control plane's [`WhepBackend`]: each session runs in its own `edgedesk-host` process,
//! spawned and supervised here and driven over the control channel (the `edgedesk-control`
//! crate; no media code in this process).
//!
//! The control plane listens on a Unix socket in a private 0700 directory; each host it
//! spawns connects, says `Hello`, gets `Start` with its [`SessionSpec`] and answers `Ready`
//! (or `Failed`). WHEP requests then become control requests matched to replies by id. Host
//! processes die with this process (`PR_SET_PDEATHSIG`); a host that exits or crashes ends
//! only its own session: it is marked failed with the reason and its pending requests fail.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control::{ControlMessage, SessionSpec, VERSION};
use tokio::net::UnixListener;

use crate::backend::BackendError;

mod link;
mod registry;

use crate::sessions::{SessionInfo, SessionState};
use link::{exited, handshake, remove_host_dirs, HostLink};

/// How long a spawned host may take to say `Ready` (display, desktop, encoder probe).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may wait for its reply (an offer's answer waits for ICE gathering).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors of starting a session's host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    #[error("cannot start {program} (build it: cargo build -p edgedesk-host --bin edgedesk-host, or set EDGEDESK_HOST_BIN): {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("the host did not connect within {0:?}")]
    Timeout(Duration),
    #[error("the host exited before it was ready ({0})")]
    Exited(String),
    #[error("the host failed to start the session: {0}")]
    Failed(String),
    #[error("control channel: {0}")]
    Channel(#[from] control::ChannelError),
    #[error("the host spoke protocol version {0}, this control plane {VERSION}")]
    Version(u32),
    #[error("session {0:?} exists already")]
    Exists(String),
}

/// Sessions in host processes (see the module docs).
pub struct RemoteBackend {
    host_bin: PathBuf,
    dir: PathBuf,
    listener: tokio::sync::Mutex<UnixListener>,
    sessions: Mutex<HashMap<String, Arc<HostLink>>>,
    /// Every session this node knows (the operator API's registry), ended ones included.
    records: Mutex<HashMap<String, SessionInfo>>,
    /// Specs with their credentials, from `register` to `launch`.
    pending_specs: Mutex<HashMap<String, SessionSpec>>,
    capacity: usize,
}

/// Sessions a node runs at most by default.
pub const DEFAULT_CAPACITY: usize = 8;

impl RemoteBackend {
    /// Listens on a control socket in a new private directory; hosts are `host_bin`.
    pub fn new(host_bin: PathBuf) -> Result<Self, SpawnError> {
        let dir = std::env::temp_dir().join(format!(
            "edgedesk-control-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(SpawnError::Socket)?;
        let socket = dir.join("control.sock");
        let listener = UnixListener::bind(&socket).map_err(SpawnError::Socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(SpawnError::Socket)?;
        Ok(RemoteBackend {
            host_bin,
            dir,
            listener: tokio::sync::Mutex::new(listener),
            sessions: Mutex::new(HashMap::new()),
            records: Mutex::new(HashMap::new()),
            pending_specs: Mutex::new(HashMap::new()),
            capacity: DEFAULT_CAPACITY,
        })
    }

    /// At most `n` live sessions (more are refused with 503 by the API).
    pub fn with_capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    fn set_state(&self, id: &str, state: SessionState) {
        if let Some(r) = self.records.lock().unwrap().get_mut(id) {
            r.state = state;
        }
    }

    /// The `edgedesk-host` beside the running binary (or `EDGEDESK_HOST_BIN`).
    pub fn default_host_bin() -> PathBuf {
        if let Some(p) = std::env::var_os("EDGEDESK_HOST_BIN") {
            return PathBuf::from(p);
        }
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("edgedesk-host")))
            .unwrap_or_else(|| PathBuf::from("edgedesk-host"))
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// Starts session `name` in a new host process; returns its X display once it is ready.
    pub async fn start_session(&self, name: &str, spec: SessionSpec) -> Result<String, SpawnError> {
        if self.sessions.lock().unwrap().contains_key(name) {
            return Err(SpawnError::Exists(name.to_owned()));
        }
        // One start at a time: the next connection on the socket is this host's.
        let listener = self.listener.lock().await;
        let mut cmd = std::process::Command::new(&self.host_bin);
        cmd.arg("--control")
            .arg(self.socket())
            .args(["--session", name])
            .stdin(std::process::Stdio::null());
        let mut child =
            control::process::spawn_tied(&mut cmd).map_err(|source| SpawnError::Spawn {
                program: self.host_bin.display().to_string(),
                source,
            })?;
        let pid = child.id();
        let (exit_tx, mut exit_rx) = tokio::sync::watch::channel(None::<String>);
        std::thread::Builder::new()
            .name(format!("host-{name}"))
            .spawn(move || {
                let status = child
                    .wait()
                    .map_or_else(|e| e.to_string(), |s| s.to_string());
                let _ = exit_tx.send(Some(status));
            })
            .map_err(SpawnError::Socket)?;
        let started = Self::connect_host(listener, name, spec, pid, &mut exit_rx).await;
        let (link, x_display) = match started {
            Ok(r) => r,
            Err(e) => {
                // Whatever went wrong, this host must not linger with its display.
                if exit_rx.borrow().is_none() {
                    let _ = control::process::kill(pid);
                }
                remove_host_dirs(pid);
                return Err(e);
            }
        };
        *link.exited.lock().unwrap() = Some(exit_rx.clone());
        // Supervision: the host's exit fails its session (and only that one).
        {
            let (link, name) = (link.clone(), name.to_owned());
            tokio::spawn(async move {
                let _ = exit_rx.changed().await;
                let status = exit_rx.borrow().clone().unwrap_or_default();
                if link.stopping.load(Ordering::Relaxed) {
                    tracing::info!(session = %name, pid = link.pid, %status, "the session's host has ended");
                } else {
                    tracing::error!(session = %name, pid = link.pid, %status, "the session's host exited; the session has failed");
                }
                link.fail(format!("host exited ({status})"));
                remove_host_dirs(link.pid);
            });
        }
        {
            let mut sessions = self.sessions.lock().unwrap();
            if sessions.contains_key(name) {
                // Another start of the same name won meanwhile: this host goes.
                link.stopping.store(true, Ordering::Relaxed);
                let _ = link.tx.send(ControlMessage::Shutdown);
                return Err(SpawnError::Exists(name.to_owned()));
            }
            sessions.insert(name.to_owned(), link);
        }
        tracing::info!(session = name, pid, display = %x_display, "session host ready");
        Ok(x_display)
    }

    /// Accepts the connection of the host with `pid` (others on the socket, such as a late
    /// host of an earlier start that timed out, are dropped) and runs the handshake.
    async fn connect_host(
        listener: tokio::sync::MutexGuard<'_, UnixListener>,
        name: &str,
        spec: SessionSpec,
        pid: u32,
        exit_rx: &mut tokio::sync::watch::Receiver<Option<String>>,
    ) -> Result<(Arc<HostLink>, String), SpawnError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let stream = loop {
            let accepted = tokio::select! {
                a = tokio::time::timeout_at(deadline, listener.accept()) => a,
                _ = exit_rx.changed() => {
                    return Err(SpawnError::Exited(exit_rx.borrow().clone().unwrap_or_default()));
                }
            };
            let stream = match accepted {
                Ok(Ok((s, _))) => s,
                Ok(Err(e)) => return Err(SpawnError::Socket(e)),
                Err(_) => return Err(SpawnError::Timeout(START_TIMEOUT)),
            };
            let peer = stream.peer_cred().ok().and_then(|c| c.pid());
            if peer == Some(pid as i32) {
                break stream;
            }
            tracing::warn!(
                ?peer,
                expected = pid,
                "dropping a control connection from another process"
            );
        };
        drop(listener);
        tokio::select! {
            r = tokio::time::timeout_at(deadline, handshake(stream, name, spec, pid)) => match r {
                Ok(r) => r,
                Err(_) => Err(SpawnError::Timeout(START_TIMEOUT)),
            },
            _ = exit_rx.changed() => {
                Err(SpawnError::Exited(exit_rx.borrow().clone().unwrap_or_default()))
            }
        }
    }

    /// Asks every host to end its session (their processes exit; they also would if this
    /// process died).
    pub fn shutdown(&self) {
        for link in self.sessions.lock().unwrap().values() {
            link.stopping.store(true, Ordering::Relaxed);
            let _ = link.tx.send(ControlMessage::Shutdown);
        }
    }

    /// [`shutdown`](Self::shutdown), then waits up to `grace` for every host process to exit
    /// (each tears its session down: viewers, pipeline, desktop, display).
    pub async fn stop(&self, grace: Duration) {
        self.shutdown();
        let waits: Vec<_> = self
            .sessions
            .lock()
            .unwrap()
            .values()
            .filter_map(|l| l.exited.lock().unwrap().clone())
            .collect();
        let all = async {
            for w in waits {
                exited(w).await;
            }
        };
        let _ = tokio::time::timeout(grace, all).await;
    }

    /// Why session `name` failed, if its host is gone.
    pub fn failure(&self, name: &str) -> Option<String> {
        self.link(name)
            .and_then(|l| l.failed.lock().unwrap().clone())
    }

    /// The Xauthority file holding session `name`'s display cookie (for the operator's own X
    /// clients on it), if it has access control.
    pub fn xauthority(&self, name: &str) -> Option<String> {
        self.link(name).and_then(|l| l.xauthority.clone())
    }

    /// The host process of session `name`.
    pub fn host_pid(&self, name: &str) -> Option<u32> {
        self.link(name).map(|l| l.pid)
    }

    fn link(&self, name: &str) -> Option<Arc<HostLink>> {
        self.sessions.lock().unwrap().get(name).cloned()
    }

    fn live(&self, name: &str) -> Result<Arc<HostLink>, BackendError> {
        let link = self.link(name).ok_or(BackendError::UnknownSession)?;
        if link.failed.lock().unwrap().is_some() {
            return Err(BackendError::UnknownSession);
        }
        Ok(link)
    }
}

impl Drop for RemoteBackend {
    fn drop(&mut self) {
        self.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
