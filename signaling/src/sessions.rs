//! The session registry the operator API drives: what sessions exist, in which state, and
//! how to start and end them. Behind the [`SessionManager`] trait: [`crate::remote::RemoteBackend`]
//! implements it with host processes on this machine (ids, states and specs are serde, ready
//! for a shared store such as etcd); API tests use a fake.

use async_trait::async_trait;
use control::SessionSpec;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a session is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum SessionState {
    /// Its host process is starting the display and desktop.
    Starting,
    /// It serves viewers on `display`.
    Running { display: String },
    /// It ended by itself (its host exited or crashed, or it did not start).
    Failed { reason: String },
    /// It was deleted.
    Ended,
}

/// A session as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    pub id: String,
    #[serde(flatten)]
    pub state: SessionState,
    /// When it was created, Unix ms.
    pub created_unix_ms: u64,
    /// Time to live from creation, seconds (0: none).
    pub ttl_secs: u64,
    /// Ended after this many seconds without a viewer (0: never).
    #[serde(default)]
    pub idle_timeout_secs: u64,
    /// What it was created with (ICE server credentials left out).
    #[schema(value_type = crate::http::openapi::SessionSpecSchema)]
    pub spec: SessionSpec,
}

/// Why the registry refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    #[error("session {0:?} exists")]
    Exists(String),
    #[error("no capacity for another session ({0} running)")]
    Full(usize),
    #[error("unknown session")]
    Unknown,
    #[error("the session is not running")]
    NotRunning,
    #[error("{0}")]
    Failed(String),
}

/// How long a session may live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetime {
    /// From creation, seconds (0: no limit).
    pub ttl_secs: u64,
    /// Without a viewer, seconds (0: no limit).
    pub idle_timeout_secs: u64,
}

/// Sessions on this node (see the module docs).
#[async_trait]
pub trait SessionManager: Send + Sync + 'static {
    /// Records a new session as `starting` (refused beyond the node's capacity).
    fn register(
        &self,
        id: &str,
        spec: SessionSpec,
        lifetime: Lifetime,
    ) -> Result<SessionInfo, ManagerError>;
    /// Starts a registered session (its state becomes `running` or `failed`).
    async fn launch(&self, id: &str);
    fn get(&self, id: &str) -> Option<SessionInfo>;
    fn list(&self) -> Vec<SessionInfo>;
    /// Ends a session: its processes, display and viewers. Ending an ended one is no error.
    async fn delete(&self, id: &str) -> Result<(), ManagerError>;
    /// How many sessions this node takes at most.
    fn capacity(&self) -> usize;
    /// Ends the viewers of session `id` that joined with token `token_id` (it was revoked);
    /// how many.
    async fn disconnect_token(&self, id: &str, token_id: &str) -> usize;
    /// How many viewers session `id` has now; `None` when it does not run.
    async fn viewer_count(&self, id: &str) -> Option<usize>;
    /// The session's current picture as a PNG at most `max_width` wide (0: full size).
    async fn screenshot(&self, id: &str, max_width: u32) -> Result<Vec<u8>, ManagerError>;
    /// What running session `id` does now (`None`: not running, or not known here).
    async fn live(&self, _id: &str) -> Option<control::LiveStats> {
        None
    }
    /// What happened to this node's host processes so far.
    fn host_events(&self) -> HostEvents {
        HostEvents::default()
    }
}

/// Counts of host-process events, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostEvents {
    /// Hosts that exited or lost their channel without being asked to stop.
    pub crashed: u64,
    /// Sessions a control plane took back from an earlier one after a restart.
    pub taken_back: u64,
    /// Sessions whose host did not come back after a restart.
    pub not_back: u64,
}

/// Unix time now, in ms.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
