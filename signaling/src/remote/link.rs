//! One host process as the control plane sees it: its control connection (requests matched
//! to replies by id) and whether it is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use control::{
    read_message, write_message, ControlError, ControlMessage, HostMessage, Reply, Request, Resume,
    SessionSpec, VERSION,
};
use tokio::io::BufReader;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::{SpawnError, REQUEST_TIMEOUT};
use crate::backend::BackendError;

/// One running host process: spawned by this control plane, or taken over from an earlier
/// one (then `exited` stays `None`: it is not our child).
pub(super) struct HostLink {
    pub(super) tx: mpsc::UnboundedSender<ControlMessage>,
    pub(super) pending: Mutex<HashMap<u64, oneshot::Sender<Result<Reply, ControlError>>>>,
    pub(super) next_id: AtomicU64,
    /// `Some(reason)` once the host is gone.
    pub(super) failed: Mutex<Option<String>>,
    pub(super) pid: u32,
    /// `Some(exit status)` once the process has exited.
    pub(super) exited: Mutex<Option<tokio::sync::watch::Receiver<Option<String>>>>,
    /// Turns true when its control connection has closed.
    pub(super) closed: tokio::sync::watch::Receiver<bool>,
    /// We asked it to stop: its exit is no failure.
    pub(super) stopping: std::sync::atomic::AtomicBool,
    /// The Xauthority file with the session display's cookie, if it has one.
    pub(super) xauthority: Option<String>,
}

impl HostLink {
    pub(super) async fn request(&self, request: Request) -> Result<Reply, BackendError> {
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
    pub(super) fn fail(&self, reason: String) {
        *self.failed.lock().unwrap() = Some(reason);
        self.pending.lock().unwrap().clear();
    }

    /// [`HostLink::fail`] unless a reason is already known: the closed channel of a killed host
    /// must not replace its exit status (the two are noticed in either order).
    pub(super) fn fail_unless_known(&self, reason: String) {
        self.failed.lock().unwrap().get_or_insert(reason);
        self.pending.lock().unwrap().clear();
    }
}

/// Resolves once the host process behind `w` has exited.
pub(super) async fn exited(mut w: tokio::sync::watch::Receiver<Option<String>>) {
    while w.borrow().is_none() {
        if w.changed().await.is_err() {
            break;
        }
    }
}

/// Removes the private directories a host process left (it removes them itself unless it was
/// killed): `edgedesk-host-PID-*` and its sound server's `edgedesk-audio-PID-*` in the
/// temporary directory.
pub(super) fn remove_host_dirs(pid: u32) {
    let prefix = format!("edgedesk-host-{pid}-");
    let audio = format!("edgedesk-audio-{pid}-");
    // Its display's: edgedesk-display-NUMBER-PID-RANDOM.
    let display_part = format!("-{pid}-");
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let display = name.strip_prefix("edgedesk-display-").is_some_and(|rest| {
            rest.split_once('-')
                .is_some_and(|(_, after)| format!("-{after}").starts_with(&display_part))
        });
        if name.starts_with(&prefix) || name.starts_with(&audio) || display {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot remove a host's directory");
            }
        }
    }
}

pub(super) fn backend_error(e: ControlError) -> BackendError {
    match e {
        ControlError::UnknownViewer => BackendError::UnknownViewer,
        ControlError::Full { retry_after_secs } => BackendError::Full { retry_after_secs },
        ControlError::BadOffer { message } => BackendError::BadOffer(message),
        ControlError::NoCommonCodec { message } => BackendError::NoCommonCodec(message),
        ControlError::Internal { message } => BackendError::Internal(message),
    }
}

/// Hello → Start → Ready on a new host's connection; then [`HostLink::open`].
pub(super) async fn handshake(
    stream: UnixStream,
    name: &str,
    spec: SessionSpec,
    pid: u32,
) -> Result<(Arc<HostLink>, String), SpawnError> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let resume = hello(&mut read, &mut write, name).await?;
    if resume.is_some() {
        return Err(SpawnError::Failed(format!(
            "a new host for {name:?} claims to resume it"
        )));
    }
    write_message(
        &mut write,
        &ControlMessage::Start {
            spec: Box::new(spec),
        },
    )
    .await?;
    let (display, xauthority) = match read_message::<HostMessage, _>(&mut read).await? {
        Some(HostMessage::Ready {
            display,
            xauthority,
        }) => (display, xauthority),
        Some(HostMessage::Failed { reason }) => return Err(SpawnError::Failed(reason)),
        other => {
            return Err(SpawnError::Failed(format!(
                "expected Ready, got {}",
                other.as_ref().map_or("end of channel", HostMessage::kind)
            )))
        }
    };
    let link = HostLink::open(read, write, name, pid, xauthority, None);
    Ok((link, display))
}

/// Hello with [`Resume`] → Resumed, on the connection of a host that ran session `name` under
/// an earlier control plane; then [`HostLink::open`]. Returns the link and the display.
pub(super) async fn resume_handshake(
    stream: UnixStream,
    name: &str,
    pid: u32,
) -> Result<(Arc<HostLink>, String), SpawnError> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let Some(resume) = hello(&mut read, &mut write, name).await? else {
        return Err(SpawnError::Failed(format!(
            "the host of {name:?} asked to start it again instead of resuming it"
        )));
    };
    write_message(&mut write, &ControlMessage::Resumed).await?;
    let link = HostLink::open(read, write, name, pid, resume.xauthority, None);
    Ok((link, resume.display))
}

/// Reads the host's `Hello` for session `name` (refusing another protocol version).
async fn hello(
    read: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
    name: &str,
) -> Result<Option<Resume>, SpawnError> {
    match read_message::<HostMessage, _>(read).await? {
        Some(HostMessage::Hello { version, .. }) if version != VERSION => {
            let _ = write_message(
                write,
                &ControlMessage::Refused {
                    reason: format!("protocol version {VERSION} only"),
                },
            )
            .await;
            Err(SpawnError::Version(version))
        }
        Some(HostMessage::Hello {
            session, resume, ..
        }) if session == name => Ok(resume),
        other => Err(SpawnError::Failed(format!(
            "expected Hello for {name:?}, got {}",
            other.as_ref().map_or("end of channel", HostMessage::kind)
        ))),
    }
}

impl HostLink {
    /// The link over an established connection: a writer task (requests) and a reader task
    /// (replies; when the connection ends, the link fails and `closed` turns true).
    fn open(
        mut read: BufReader<OwnedReadHalf>,
        mut write: OwnedWriteHalf,
        name: &str,
        pid: u32,
        xauthority: Option<String>,
        exited: Option<tokio::sync::watch::Receiver<Option<String>>>,
    ) -> Arc<HostLink> {
        let (tx, mut rx) = mpsc::unbounded_channel::<ControlMessage>();
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        let link = Arc::new(HostLink {
            tx,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            failed: Mutex::new(None),
            pid,
            exited: Mutex::new(exited),
            closed,
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
                        tracing::debug!(session = %session, viewer = control::log_tag(&viewer), "viewer gone");
                    }
                    Ok(Some(other)) => {
                        tracing::warn!(session = %session, kind = other.kind(), "unexpected host message")
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
            reader_link.fail_unless_known("control channel closed".into());
            let _ = closed_tx.send(true);
        });
        link
    }

    /// Resolves once this host is gone: its process exited (a host this process spawned), or
    /// its connection closed and no `edgedesk-host` runs under its pid any more (a host taken
    /// over from an earlier control plane, which is not our child).
    pub(super) async fn gone(&self) {
        let spawned = self.exited.lock().unwrap().clone();
        if let Some(w) = spawned {
            return exited(w).await;
        }
        let mut closed = self.closed.clone();
        while !*closed.borrow() {
            if closed.changed().await.is_err() {
                break;
            }
        }
        while control::process::runs(self.pid, HOST_PROGRAM) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The host binary's name, as its processes' argv\[0\] ends.
pub(super) const HOST_PROGRAM: &str = "edgedesk-host";
