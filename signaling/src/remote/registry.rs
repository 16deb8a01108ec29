//! [`RemoteBackend`] as the HTTP layer's [`WhepBackend`] and the operator API's
//! [`SessionManager`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use control::{ControlMessage, Reply, Request, SessionSpec};

use super::RemoteBackend;
use crate::backend::{BackendError, Role, TrickleFragment, ViewerAnswer, WhepBackend};
use crate::sessions::{unix_ms, Lifetime, ManagerError, SessionInfo, SessionManager, SessionState};

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
                tracing::info!(
                    session,
                    viewer = control::log_tag(&viewer),
                    ?role,
                    "viewer created"
                );
                Ok(ViewerAnswer {
                    viewer_id: viewer,
                    answer_sdp,
                })
            }
            other => Err(BackendError::Internal(format!(
                "unexpected reply {}",
                other.kind()
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
        // An ended or failed session's id may be used again (`edgedesk up`'s fixed name).
        let taken = records.get(id).is_some_and(|r| match r.state {
            SessionState::Starting => true,
            SessionState::Running { .. } => self.failure(id).is_none(),
            _ => false,
        });
        if taken {
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
        drop(records);
        // A failed earlier session of this id leaves its link behind.
        self.sessions.lock().unwrap().remove(id);
        self.save();
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
            let spawned = link.exited.lock().unwrap().clone();
            let timed_out = tokio::time::timeout(Duration::from_secs(5), link.gone())
                .await
                .is_err();
            // Only a host still running: once reaped, its pid may be someone else's.
            let running = match spawned {
                Some(w) => w.borrow().is_none(),
                None => control::process::runs(link.pid, super::HOST_PROGRAM),
            };
            if timed_out && running {
                tracing::warn!(
                    session = id,
                    pid = link.pid,
                    "host did not end within 5 s; killing it"
                );
                let _ = control::process::kill(link.pid);
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
            Ok(other) => Err(ManagerError::Failed(format!(
                "unexpected reply {}",
                other.kind()
            ))),
            Err(e) => Err(ManagerError::Failed(e.to_string())),
        }
    }

    async fn live(&self, id: &str) -> Option<control::LiveStats> {
        match self.live(id).ok()?.request(Request::Live).await {
            Ok(Reply::Live { live }) => Some(live),
            _ => None,
        }
    }

    fn host_events(&self) -> crate::sessions::HostEvents {
        crate::sessions::HostEvents {
            crashed: self.events.crashed.load(Ordering::Relaxed),
            taken_back: self.events.taken_back.load(Ordering::Relaxed),
            not_back: self.events.not_back.load(Ordering::Relaxed),
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
