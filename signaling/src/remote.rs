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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use control::{
    read_message, write_message, ControlError, ControlMessage, HostMessage, Reply, Request,
    SessionSpec, VERSION,
};
use tokio::io::BufReader;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{BackendError, Role, TrickleFragment, ViewerAnswer, WhepBackend};
use crate::sessions::{unix_ms, Lifetime, ManagerError, SessionInfo, SessionManager, SessionState};

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

/// One running host process.
struct HostLink {
    tx: mpsc::UnboundedSender<ControlMessage>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Reply, ControlError>>>>,
    next_id: AtomicU64,
    /// `Some(reason)` once the host is gone.
    failed: Mutex<Option<String>>,
    pid: u32,
    /// `Some(exit status)` once the process has exited.
    exited: Mutex<Option<tokio::sync::watch::Receiver<Option<String>>>>,
    /// We asked it to stop: its exit is no failure.
    stopping: std::sync::atomic::AtomicBool,
    /// The Xauthority file with the session display's cookie, if it has one.
    xauthority: Option<String>,
}

impl HostLink {
    async fn request(&self, request: Request) -> Result<Reply, BackendError> {
        if let Some(reason) = self.failed.lock().unwrap().clone() {
            return Err(BackendError::Internal(format!("session failed: {reason}")));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        // Removes the entry however this ends (a timeout, or the caller giving up).
        struct Pending<'a>(&'a HostLink, u64);
        impl Drop for Pending<'_> {
            fn drop(&mut self) {
                self.0.pending.lock().unwrap().remove(&self.1);
            }
        }
        let _pending = Pending(self, id);
        if self
            .tx
            .send(ControlMessage::Request { id, request })
            .is_err()
        {
            return Err(BackendError::Internal("the session's host is gone".into()));
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply.map_err(backend_error),
            Ok(Err(_)) => Err(BackendError::Internal("the session's host is gone".into())),
            Err(_) => Err(BackendError::Internal(
                "the session's host did not answer".into(),
            )),
        }
    }

    /// The host is gone: fail what waits, refuse what comes.
    fn fail(&self, reason: String) {
        *self.failed.lock().unwrap() = Some(reason);
        self.pending.lock().unwrap().clear();
    }
}

/// Resolves once the host process behind `w` has exited.
async fn exited(mut w: tokio::sync::watch::Receiver<Option<String>>) {
    while w.borrow().is_none() {
        if w.changed().await.is_err() {
            break;
        }
    }
}

/// Removes the private directories a host process left (it removes them itself unless it was
/// killed): `edgedesk-host-PID-*` in the temporary directory.
fn remove_host_dirs(pid: u32) {
    let prefix = format!("edgedesk-host-{pid}-");
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot remove a host's directory");
            }
        }
    }
}

fn backend_error(e: ControlError) -> BackendError {
    match e {
        ControlError::UnknownViewer => BackendError::UnknownViewer,
        ControlError::Full { retry_after_secs } => BackendError::Full { retry_after_secs },
        ControlError::BadOffer { message } => BackendError::BadOffer(message),
        ControlError::Internal { message } => BackendError::Internal(message),
    }
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

/// Hello → Start → Ready; then a reader task (replies) and a writer task (requests).
async fn handshake(
    stream: UnixStream,
    name: &str,
    spec: SessionSpec,
    pid: u32,
) -> Result<(Arc<HostLink>, String), SpawnError> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    match read_message::<HostMessage, _>(&mut read).await? {
        Some(HostMessage::Hello { version, .. }) if version != VERSION => {
            let _ = write_message(
                &mut write,
                &ControlMessage::Refused {
                    reason: format!("protocol version {VERSION} only"),
                },
            )
            .await;
            return Err(SpawnError::Version(version));
        }
        Some(HostMessage::Hello { session, .. }) if session == name => {}
        other => {
            return Err(SpawnError::Failed(format!(
                "expected Hello for {name:?}, got {other:?}"
            )))
        }
    }
    write_message(&mut write, &ControlMessage::Start { spec }).await?;
    let (display, xauthority) = match read_message::<HostMessage, _>(&mut read).await? {
        Some(HostMessage::Ready {
            display,
            xauthority,
        }) => (display, xauthority),
        Some(HostMessage::Failed { reason }) => return Err(SpawnError::Failed(reason)),
        other => return Err(SpawnError::Failed(format!("expected Ready, got {other:?}"))),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<ControlMessage>();
    let link = Arc::new(HostLink {
        tx,
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        failed: Mutex::new(None),
        pid,
        exited: Mutex::new(None),
        stopping: std::sync::atomic::AtomicBool::new(false),
        xauthority,
    });
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if write_message(&mut write, &m).await.is_err() {
                break;
            }
        }
    });
    let reader_link = link.clone();
    let session = name.to_owned();
    tokio::spawn(async move {
        loop {
            match read_message::<HostMessage, _>(&mut read).await {
                Ok(Some(HostMessage::Reply { id, result })) => {
                    if let Some(tx) = reader_link.pending.lock().unwrap().remove(&id) {
                        let _ = tx.send(result);
                    }
                }
                Ok(Some(HostMessage::ViewerGone { viewer })) => {
                    tracing::debug!(session = %session, %viewer, "viewer gone");
                }
                Ok(Some(other)) => {
                    tracing::warn!(session = %session, ?other, "unexpected host message")
                }
                Ok(None) => break,
                Err(control::ChannelError::Malformed(e)) => {
                    tracing::warn!(session = %session, error = %e, "dropping a malformed host message");
                }
                Err(e) => {
                    tracing::warn!(session = %session, error = %e, "control channel failed");
                    break;
                }
            }
        }
        reader_link.fail("control channel closed".into());
    });
    Ok((link, display))
}

#[async_trait]
impl WhepBackend for RemoteBackend {
    fn has_session(&self, session: &str) -> bool {
        self.live(session).is_ok()
    }

    async fn create_viewer(
        &self,
        session: &str,
        offer_sdp: String,
        role: Role,
        token_id: Option<String>,
    ) -> Result<ViewerAnswer, BackendError> {
        let link = self.live(session)?;
        match link
            .request(Request::CreateViewer {
                offer_sdp,
                role,
                token_id,
            })
            .await?
        {
            Reply::ViewerCreated { viewer, answer_sdp } => {
                tracing::info!(session, viewer = %viewer, ?role, "viewer created");
                Ok(ViewerAnswer {
                    viewer_id: viewer,
                    answer_sdp,
                })
            }
            other => Err(BackendError::Internal(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }

    async fn add_candidates(
        &self,
        session: &str,
        viewer_id: &str,
        fragment: TrickleFragment,
    ) -> Result<(), BackendError> {
        let link = self.live(session)?;
        link.request(Request::AddCandidates {
            viewer: viewer_id.to_owned(),
            fragment,
        })
        .await
        .map(drop)
    }

    async fn delete_viewer(&self, session: &str, viewer_id: &str) -> Result<(), BackendError> {
        let link = self.live(session)?;
        link.request(Request::DeleteViewer {
            viewer: viewer_id.to_owned(),
        })
        .await
        .map(drop)
    }

    async fn metrics_text(&self) -> String {
        let links: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        let mut out = String::new();
        for link in links {
            if let Ok(Reply::Metrics { text }) = link.request(Request::Metrics).await {
                out.push_str(&text);
            }
        }
        out
    }

    async fn stats_json(&self) -> serde_json::Value {
        let links: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        let mut sessions = Vec::new();
        for link in links {
            if let Ok(Reply::Stats { json }) = link.request(Request::Stats).await {
                if let Some(list) = json.get("sessions").and_then(|s| s.as_array()) {
                    sessions.extend(list.iter().cloned());
                }
            }
        }
        serde_json::json!({ "sessions": sessions })
    }
}

#[async_trait]
impl SessionManager for RemoteBackend {
    fn register(
        &self,
        id: &str,
        spec: SessionSpec,
        lifetime: Lifetime,
    ) -> Result<SessionInfo, ManagerError> {
        let mut records = self.records.lock().unwrap();
        if records.contains_key(id) {
            return Err(ManagerError::Exists(id.to_owned()));
        }
        let live = records
            .values()
            .filter(|r| match r.state {
                SessionState::Starting => true,
                // A crashed host's session is failed even before anyone looks at it.
                SessionState::Running { .. } => self.failure(&r.id).is_none(),
                _ => false,
            })
            .count();
        if live >= self.capacity {
            return Err(ManagerError::Full(live));
        }
        self.pending_specs
            .lock()
            .unwrap()
            .insert(id.to_owned(), spec.clone());
        let mut shown = spec;
        for s in &mut shown.ice_servers {
            s.credential.clear();
        }
        let info = SessionInfo {
            id: id.to_owned(),
            state: SessionState::Starting,
            created_unix_ms: unix_ms(),
            ttl_secs: lifetime.ttl_secs,
            idle_timeout_secs: lifetime.idle_timeout_secs,
            spec: shown,
        };
        records.insert(id.to_owned(), info.clone());
        Ok(info)
    }

    async fn launch(&self, id: &str) {
        let Some(info) = self.records.lock().unwrap().get(id).cloned() else {
            return;
        };
        // The registry shows the spec without credentials; the host gets the real one.
        let spec = self
            .pending_specs
            .lock()
            .unwrap()
            .remove(id)
            .unwrap_or(info.spec);
        match self.start_session(id, spec).await {
            Ok(_) if matches!(self.get(id).map(|s| s.state), Some(SessionState::Ended)) => {
                // Deleted while it started: end it now.
                let _ = self.delete(id).await;
            }
            Ok(display) => self.set_state(id, SessionState::Running { display }),
            Err(e) => {
                tracing::error!(session = id, error = %e, "session did not start");
                self.set_state(
                    id,
                    SessionState::Failed {
                        reason: e.to_string(),
                    },
                );
            }
        }
    }

    fn get(&self, id: &str) -> Option<SessionInfo> {
        let mut info = self.records.lock().unwrap().get(id).cloned()?;
        if let (SessionState::Running { .. }, Some(reason)) = (&info.state, self.failure(id)) {
            info.state = SessionState::Failed { reason };
        }
        Some(info)
    }

    fn list(&self) -> Vec<SessionInfo> {
        let ids: Vec<String> = self.records.lock().unwrap().keys().cloned().collect();
        let mut all: Vec<SessionInfo> = ids.iter().filter_map(|id| self.get(id)).collect();
        all.sort_by_key(|s| s.created_unix_ms);
        all
    }

    async fn delete(&self, id: &str) -> Result<(), ManagerError> {
        if !self.records.lock().unwrap().contains_key(id) {
            return Err(ManagerError::Unknown);
        }
        let link = self.sessions.lock().unwrap().remove(id);
        if let Some(link) = link {
            link.stopping.store(true, Ordering::Relaxed);
            let _ = link.tx.send(ControlMessage::Shutdown);
            let exited = link.exited.lock().unwrap().clone();
            if let Some(w) = exited {
                let done = w.clone();
                let timed_out = tokio::time::timeout(Duration::from_secs(5), self::exited(w))
                    .await
                    .is_err();
                // Only a host still running: once reaped, its pid may be someone else's.
                if timed_out && done.borrow().is_none() {
                    tracing::warn!(
                        session = id,
                        pid = link.pid,
                        "host did not end within 5 s; killing it"
                    );
                    let _ = control::process::kill(link.pid);
                }
            }
            link.fail("deleted".into());
        }
        self.set_state(id, SessionState::Ended);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    async fn viewer_count(&self, id: &str) -> Option<usize> {
        let link = self.live(id).ok()?;
        match link.request(Request::Viewers).await {
            Ok(Reply::Viewers { count }) => Some(count),
            _ => None,
        }
    }

    async fn screenshot(&self, id: &str, max_width: u32) -> Result<Vec<u8>, ManagerError> {
        use base64::Engine as _;
        if !self.records.lock().unwrap().contains_key(id) {
            return Err(ManagerError::Unknown);
        }
        let link = self.live(id).map_err(|_| ManagerError::NotRunning)?;
        match link.request(Request::Screenshot { max_width }).await {
            Ok(Reply::Screenshot { png_base64 }) => base64::engine::general_purpose::STANDARD
                .decode(png_base64)
                .map_err(|e| ManagerError::Failed(e.to_string())),
            Ok(other) => Err(ManagerError::Failed(format!("unexpected reply {other:?}"))),
            Err(e) => Err(ManagerError::Failed(e.to_string())),
        }
    }

    async fn disconnect_token(&self, id: &str, token_id: &str) -> usize {
        let Ok(link) = self.live(id) else {
            return 0;
        };
        match link
            .request(Request::DisconnectToken {
                token_id: token_id.to_owned(),
            })
            .await
        {
            Ok(Reply::Disconnected { viewers }) => viewers,
            _ => 0,
        }
    }
}
