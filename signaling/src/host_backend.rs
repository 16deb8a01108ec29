//! The in-process [`WhepBackend`]: the HTTP front door talking to this process's [`Host`].

use std::sync::Arc;

use async_trait::async_trait;
use host::session::{Host, HostError};

use crate::backend::{BackendError, Role, TrickleFragment, ViewerAnswer, WhepBackend};

/// Serves WHEP viewers from the sessions of a [`Host`].
pub struct HostBackend {
    host: Arc<Host>,
}

impl HostBackend {
    pub fn new(host: Arc<Host>) -> Self {
        HostBackend { host }
    }
}

fn map_err(e: HostError) -> BackendError {
    match e {
        HostError::UnknownSession => BackendError::UnknownSession,
        HostError::UnknownViewer => BackendError::UnknownViewer,
        HostError::Full(_) => BackendError::Full {
            retry_after_secs: 5,
        },
        HostError::BadOffer(m) => BackendError::BadOffer(m),
        other => BackendError::Internal(other.to_string()),
    }
}

#[async_trait]
impl WhepBackend for HostBackend {
    fn has_session(&self, session: &str) -> bool {
        self.host.get(session).is_some()
    }

    async fn create_viewer(
        &self,
        session: &str,
        offer_sdp: String,
        role: Role,
        _token_id: Option<String>,
    ) -> Result<ViewerAnswer, BackendError> {
        let s = self.host.get(session).ok_or(BackendError::UnknownSession)?;
        let (viewer_id, answer_sdp) = s
            .add_viewer(offer_sdp, role == Role::Control)
            .await
            .map_err(map_err)?;
        tracing::info!(session, viewer = %viewer_id, ?role, "viewer created");
        Ok(ViewerAnswer {
            viewer_id,
            answer_sdp,
        })
    }

    async fn add_candidates(
        &self,
        session: &str,
        viewer_id: &str,
        fragment: TrickleFragment,
    ) -> Result<(), BackendError> {
        let s = self.host.get(session).ok_or(BackendError::UnknownSession)?;
        let v = s.viewer(viewer_id).ok_or(BackendError::UnknownViewer)?;
        for c in fragment.candidates {
            v.add_candidate(c, fragment.mid.clone(), fragment.ice_ufrag.clone())
                .await
                .map_err(|e| BackendError::BadOffer(e.to_string()))?;
        }
        Ok(())
    }

    async fn delete_viewer(&self, session: &str, viewer_id: &str) -> Result<(), BackendError> {
        let s = self.host.get(session).ok_or(BackendError::UnknownSession)?;
        s.remove_viewer(viewer_id).await.map_err(map_err)
    }

    async fn metrics_text(&self) -> String {
        self.host.metrics_text()
    }

    async fn stats_json(&self) -> serde_json::Value {
        let sessions: Vec<_> = self.host.list().iter().map(|s| s.stats()).collect();
        serde_json::json!({ "sessions": sessions })
    }
}
