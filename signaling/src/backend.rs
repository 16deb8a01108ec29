//! The boundary between the HTTP front door and whatever runs the sessions' peers.
//!
//! The HTTP layer ([`crate::http`]) parses and checks requests, then calls a [`WhepBackend`].
//! In `edgedesk up` the backend is [`crate::remote::RemoteBackend`] (each session in its own
//! host process); tests use a small fake.

use async_trait::async_trait;

/// What a verified join token allows (shared with the control channel).
pub use control::Role;

/// The answer to a WHEP offer.
#[derive(Debug, Clone)]
pub struct ViewerAnswer {
    /// Opaque id of the new WHEP resource (the last segment of its `Location`).
    pub viewer_id: String,
    /// The SDP answer, with all server candidates gathered.
    pub answer_sdp: String,
}

/// A parsed `application/trickle-ice-sdpfrag` body (RFC 8840), as the control channel
/// carries it.
pub use control::TrickleFragment;

/// Failures a backend reports; the HTTP layer maps each to a status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    #[error("unknown session")]
    UnknownSession,
    #[error("unknown viewer")]
    UnknownViewer,
    #[error("session is full")]
    Full { retry_after_secs: u32 },
    #[error("malformed offer: {0}")]
    BadOffer(String),
    /// The offer has none of the session's codecs (the text names what both sides have).
    #[error("{0}")]
    NoCommonCodec(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Runs viewers of sessions. Implementations must keep serving other sessions and viewers
/// whatever one request does.
#[async_trait]
pub trait WhepBackend: Send + Sync + 'static {
    /// True when `session` exists.
    fn has_session(&self, session: &str) -> bool;
    /// Create a viewer from an SDP offer; returns once the answer holds all local candidates.
    async fn create_viewer(
        &self,
        session: &str,
        offer_sdp: String,
        role: Role,
        token_id: Option<String>,
    ) -> Result<ViewerAnswer, BackendError>;
    /// Add remote candidates trickled by the client.
    async fn add_candidates(
        &self,
        session: &str,
        viewer_id: &str,
        fragment: TrickleFragment,
    ) -> Result<(), BackendError>;
    /// End a viewer.
    async fn delete_viewer(&self, session: &str, viewer_id: &str) -> Result<(), BackendError>;
    /// The backend's metrics in the Prometheus text format (served at `/metrics`).
    async fn metrics_text(&self) -> String {
        String::new()
    }
    /// Sessions' state and recent per-frame host timings as JSON (served at `/stats`).
    async fn stats_json(&self) -> serde_json::Value {
        serde_json::json!({ "sessions": [] })
    }
}
