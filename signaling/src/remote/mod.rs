//! The control plane's [`WhepBackend`]: each session runs in its own `edgedesk-host` process,
//! spawned and supervised here and driven over the control channel (the `edgedesk-control`
//! crate; no media code in this process).
//!
//! The control plane listens on a Unix socket in a private 0700 directory; each host it
//! spawns connects, says `Hello`, gets `Start` with its [`SessionSpec`] and answers `Ready`
//! (or `Failed`). WHEP requests then become control requests matched to replies by id. A
//! host that exits or crashes ends only its own session: it is marked failed with the reason
//! and its pending requests fail.
//!
//! Two ways to run:
//! - [`RemoteBackend::new`]: a fresh directory per run; hosts die with this process
//!   (`PR_SET_PDEATHSIG`, and their control channel closes).
//! - [`RemoteBackend::open`] with a [`StateDir`]: the registry is saved there; hosts run in
//!   their own process group and outlive this process by a reconnect grace. A control plane
//!   started on the same directory within it takes their sessions back (viewers never notice:
//!   media goes from the hosts to the browsers, not through here); hosts that do not come
//!   back are marked failed, and a host no control plane takes back ends by itself.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control::{ControlMessage, SessionSpec, VERSION};
use tokio::net::UnixListener;

use crate::backend::BackendError;

mod accept;
mod link;
mod registry;
mod state;

pub use state::StateDir;

use crate::sessions::{SessionInfo, SessionState};
use link::{handshake, remove_host_dirs, resume_handshake, HostLink, HOST_PROGRAM};
use state::SavedSession;

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
    claims: Arc<Mutex<accept::Claims>>,
    acceptor: tokio::task::AbortHandle,
    sessions: Mutex<HashMap<String, Arc<HostLink>>>,
    /// Every session this node knows (the operator API's registry), ended ones included.
    records: Mutex<HashMap<String, SessionInfo>>,
    /// Specs with their credentials, from `register` to `launch`.
    pending_specs: Mutex<HashMap<String, SessionSpec>>,
    capacity: usize,
    /// Where the registry is saved (a control plane that hosts outlive).
    state: Option<StateDir>,
    /// How long hosts keep their sessions without a control plane (zero without a state dir).
    grace: Duration,
    /// Sessions whose hosts an earlier control plane started, not yet reconnected.
    resuming: Mutex<HashSet<String>>,
    /// [`detach`](Self::detach)ed: leave the hosts running at exit.
    detached: AtomicBool,
    events: Arc<Events>,
    save_lock: Mutex<()>,
}

/// Counters behind [`crate::sessions::HostEvents`].
#[derive(Default)]
struct Events {
    crashed: AtomicU64,
    taken_back: AtomicU64,
    not_back: AtomicU64,
}

/// Sessions a node runs at most by default.
pub const DEFAULT_CAPACITY: usize = 8;
/// How long hosts of a control plane with a state directory wait for it by default.
pub const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(60);

impl RemoteBackend {
    /// Listens on a control socket in a new private directory; hosts are `host_bin` and die
    /// with this process. Needs a Tokio runtime (the socket's acceptor is a task).
    pub fn new(host_bin: PathBuf) -> Result<Self, SpawnError> {
        sweep_stale_control_dirs();
        let dir = std::env::temp_dir().join(format!(
            "edgedesk-control-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(SpawnError::Socket)?;
        Self::listen(host_bin, dir, None, Duration::ZERO)
    }

    /// Runs from state directory `state`: takes back the sessions an earlier control plane
    /// left there (their hosts reconnect within their grace), and starts hosts that outlive
    /// this process by `grace`. Refused while another control plane serves the directory.
    pub fn open(
        host_bin: PathBuf,
        state: StateDir,
        grace: Duration,
        capacity: usize,
    ) -> Result<Arc<Self>, SpawnError> {
        let socket = state.socket();
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Err(SpawnError::Socket(std::io::Error::other(format!(
                "another control plane serves {}",
                state.path().display()
            ))));
        }
        let _ = std::fs::remove_file(&socket);
        let saved = state.load().map_err(SpawnError::Socket)?;
        let dir = state.path().to_owned();
        let backend =
            Arc::new(Self::listen(host_bin, dir, Some(state), grace)?.with_capacity(capacity));
        backend.take_back(saved);
        Ok(backend)
    }

    fn listen(
        host_bin: PathBuf,
        dir: PathBuf,
        state: Option<StateDir>,
        grace: Duration,
    ) -> Result<Self, SpawnError> {
        let socket = dir.join("control.sock");
        let listener = UnixListener::bind(&socket).map_err(SpawnError::Socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(SpawnError::Socket)?;
        let claims: Arc<Mutex<accept::Claims>> = Arc::default();
        let acceptor = tokio::spawn(accept::accept_loop(listener, claims.clone())).abort_handle();
        Ok(RemoteBackend {
            host_bin,
            dir,
            claims,
            acceptor,
            sessions: Mutex::new(HashMap::new()),
            records: Mutex::new(HashMap::new()),
            pending_specs: Mutex::new(HashMap::new()),
            capacity: DEFAULT_CAPACITY,
            state,
            grace,
            resuming: Mutex::new(HashSet::new()),
            detached: AtomicBool::new(false),
            events: Arc::default(),
            save_lock: Mutex::new(()),
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
        self.save();
    }

    /// Writes the registry to the state directory, if there is one.
    fn save(&self) {
        let Some(state) = &self.state else { return };
        // One writer at a time: each snapshot goes through the same temporary file.
        let _one = self.save_lock.lock().unwrap();
        let pids: HashMap<String, u32> = self
            .sessions
            .lock()
            .unwrap()
            .iter()
            .map(|(k, l)| (k.clone(), l.pid))
            .collect();
        let saved: Vec<SavedSession> = {
            let records = self.records.lock().unwrap();
            let mut v: Vec<SavedSession> = records
                .values()
                .map(|info| SavedSession {
                    info: info.clone(),
                    pid: pids.get(&info.id).copied(),
                })
                .collect();
            v.sort_by_key(|s| s.info.created_unix_ms);
            v
        };
        if let Err(e) = state.save(saved) {
            tracing::error!(dir = %state.path().display(), error = %e, "cannot save the session registry");
        }
    }

    /// Takes back what an earlier control plane saved: running sessions whose host still
    /// runs wait for it to reconnect; the others are marked failed.
    fn take_back(self: &Arc<Self>, saved: Vec<SavedSession>) {
        let wait = self.grace + Duration::from_secs(5);
        for SavedSession { mut info, pid } in saved {
            let id = info.id.clone();
            match (&info.state, pid) {
                (SessionState::Running { .. }, Some(pid))
                    if control::process::runs(pid, HOST_PROGRAM) =>
                {
                    // The record first: a host that reconnects at once must find it.
                    self.records
                        .lock()
                        .unwrap()
                        .insert(id.clone(), info.clone());
                    self.resuming.lock().unwrap().insert(id.clone());
                    let mut claim = accept::claim(&self.claims, pid);
                    let me = Arc::downgrade(self);
                    tokio::spawn(async move {
                        let stream = tokio::time::timeout(wait, &mut claim.stream).await;
                        drop(claim);
                        let Some(me) = me.upgrade() else { return };
                        let resumed = match stream {
                            Ok(Ok(stream)) => tokio::time::timeout(
                                Duration::from_secs(5),
                                resume_handshake(stream, &id, pid),
                            )
                            .await
                            .unwrap_or(Err(SpawnError::Timeout(Duration::from_secs(5)))),
                            _ => Err(SpawnError::Timeout(wait)),
                        };
                        me.resumed(&id, pid, resumed);
                    });
                }
                (SessionState::Running { .. } | SessionState::Starting, _) => {
                    info.state = SessionState::Failed {
                        reason: "its host ended while the control plane was down".into(),
                    };
                }
                _ => {}
            }
            self.records
                .lock()
                .unwrap()
                .entry(info.id.clone())
                .or_insert(info);
        }
        self.save();
    }

    /// A taken-back session's host reconnected (or did not).
    fn resumed(&self, id: &str, pid: u32, result: Result<(Arc<HostLink>, String), SpawnError>) {
        self.resuming.lock().unwrap().remove(id);
        match result {
            Ok((link, x_display)) => {
                tracing::info!(session = id, pid, display = %x_display, "took the session back from an earlier control plane");
                self.events.taken_back.fetch_add(1, Ordering::Relaxed);
                {
                    let (link, name) = (link.clone(), id.to_owned());
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        link.gone().await;
                        if !link.stopping.load(Ordering::Relaxed) {
                            events.crashed.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(session = %name, pid = link.pid, "the session's host went away; the session has failed");
                        }
                        remove_host_dirs(link.pid);
                    });
                }
                let deleted = matches!(
                    self.records.lock().unwrap().get(id).map(|r| &r.state),
                    Some(SessionState::Ended | SessionState::Failed { .. }) | None
                );
                if deleted {
                    // Ended while its host was away: it ends now.
                    link.stopping.store(true, Ordering::Relaxed);
                    let _ = link.tx.send(ControlMessage::Shutdown);
                    return;
                }
                self.sessions.lock().unwrap().insert(id.to_owned(), link);
                self.set_state(id, SessionState::Running { display: x_display });
            }
            Err(e) => {
                self.events.not_back.fetch_add(1, Ordering::Relaxed);
                tracing::error!(session = id, pid, error = %e, "the session's host did not come back");
                self.set_state(
                    id,
                    SessionState::Failed {
                        reason: format!(
                            "its host did not come back after a control-plane restart: {e}"
                        ),
                    },
                );
            }
        }
    }

    /// Whether session `id`'s host, started by an earlier control plane, has yet to
    /// reconnect.
    pub fn is_resuming(&self, id: &str) -> bool {
        self.resuming.lock().unwrap().contains(id)
    }

    /// Waits until no session is being taken back (at most `limit`).
    pub async fn settled(&self, limit: Duration) {
        let end = tokio::time::Instant::now() + limit;
        while !self.resuming.lock().unwrap().is_empty() && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The `edgedesk-host` beside the running binary (or `EDGEDESK_HOST_BIN`).
    pub fn default_host_bin() -> PathBuf {
        if let Some(p) = std::env::var_os("EDGEDESK_HOST_BIN") {
            return PathBuf::from(p);
        }
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join(HOST_PROGRAM)))
            .unwrap_or_else(|| PathBuf::from(HOST_PROGRAM))
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// The directory holding the control socket (the state directory, if there is one).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts session `name` in a new host process; returns its X display once it is ready.
    pub async fn start_session(&self, name: &str, spec: SessionSpec) -> Result<String, SpawnError> {
        if self.sessions.lock().unwrap().contains_key(name) {
            return Err(SpawnError::Exists(name.to_owned()));
        }
        let mut cmd = std::process::Command::new(&self.host_bin);
        cmd.arg("--control")
            .arg(self.socket())
            .args(["--session", name])
            .stdin(std::process::Stdio::null());
        let spawned = if self.grace.is_zero() {
            control::process::spawn_tied(&mut cmd)
        } else {
            cmd.args(["--reconnect-grace", &self.grace.as_secs().to_string()]);
            control::process::spawn_detached(&mut cmd)
        };
        let mut child = spawned.map_err(|source| SpawnError::Spawn {
            program: self.host_bin.display().to_string(),
            source,
        })?;
        let pid = child.id();
        let claim = accept::claim(&self.claims, pid);
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
        let started = Self::connect_host(claim, name, spec, pid, &mut exit_rx).await;
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
            let events = self.events.clone();
            tokio::spawn(async move {
                let _ = exit_rx.changed().await;
                let status = exit_rx.borrow().clone().unwrap_or_default();
                if link.stopping.load(Ordering::Relaxed) {
                    tracing::info!(session = %name, pid = link.pid, %status, "the session's host has ended");
                } else {
                    events.crashed.fetch_add(1, Ordering::Relaxed);
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

    /// Waits for the connection of the host with `pid` (connections of other processes, such
    /// as a late host of an earlier start that timed out, never reach here) and runs the
    /// handshake.
    async fn connect_host(
        claim: accept::Claim,
        name: &str,
        spec: SessionSpec,
        pid: u32,
        exit_rx: &mut tokio::sync::watch::Receiver<Option<String>>,
    ) -> Result<(Arc<HostLink>, String), SpawnError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut claim = claim;
        let stream = tokio::select! {
            a = tokio::time::timeout_at(deadline, &mut claim.stream) => match a {
                Ok(Ok(s)) => s,
                Ok(Err(_)) => return Err(SpawnError::Socket(std::io::Error::other("the control socket closed"))),
                Err(_) => return Err(SpawnError::Timeout(START_TIMEOUT)),
            },
            _ = exit_rx.changed() => {
                return Err(SpawnError::Exited(exit_rx.borrow().clone().unwrap_or_default()));
            }
        };
        drop(claim);
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
    /// process died without a state directory).
    pub fn shutdown(&self) {
        for link in self.sessions.lock().unwrap().values() {
            link.stopping.store(true, Ordering::Relaxed);
            let _ = link.tx.send(ControlMessage::Shutdown);
        }
    }

    /// Leaves every session running when this process exits, for the next control plane on
    /// the same state directory (an upgrade, a restart). `false` without a state directory.
    pub fn detach(&self) -> bool {
        if self.state.is_none() {
            return false;
        }
        self.detached.store(true, Ordering::Relaxed);
        self.save();
        true
    }

    /// [`shutdown`](Self::shutdown), then waits up to `grace` for every host process to exit
    /// (each tears its session down: viewers, pipeline, desktop, display).
    pub async fn stop(&self, grace: Duration) {
        self.shutdown();
        let links: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        let all = async {
            for l in links {
                l.gone().await;
            }
        };
        let _ = tokio::time::timeout(grace, all).await;
        let ids: Vec<String> = self.sessions.lock().unwrap().keys().cloned().collect();
        for id in ids {
            self.set_state(&id, SessionState::Ended);
        }
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

/// Removes the `edgedesk-control-PID-*` directories of control planes that are gone (a
/// `kill -9` runs no cleanup): a dead socket and nothing else.
fn sweep_stale_control_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("edgedesk-control-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for RemoteBackend {
    fn drop(&mut self) {
        self.acceptor.abort();
        if self.state.is_some() {
            let _ = std::fs::remove_file(self.socket());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if !self.detached.load(Ordering::Relaxed) {
            self.shutdown();
        }
    }
}
