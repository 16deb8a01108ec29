//! The HTTP front door: WHEP endpoints for viewers, `/healthz`, and the embedded web client.
//!
//! Build the router with [`app`] from an [`AppState`]; everything it needs sits behind the
//! [`WhepBackend`] trait and [`Tokens`], so tests drive it with `tower::ServiceExt::oneshot`
//! and a fake backend, no socket.
//!
//! # Routes
//!
//! | method | path | answer |
//! |---|---|---|
//! | `POST` | `/whep/{session}` | `201` + SDP answer, `Location`, `ETag`, `Link` ice-servers, `Accept-Patch` |
//! | `PATCH` | `/whep/{session}/{viewer}` | trickle ICE (`application/trickle-ice-sdpfrag`), `204` |
//! | `DELETE` | `/whep/{session}/{viewer}` | `200` |
//! | `OPTIONS` | both | `204` + CORS, `Accept-Post` / `Accept-Patch`, `Link` ice-servers |
//! | `GET` | `/healthz` | `200 ok` (the process serves HTTP) |
//! | `GET` | `/readyz` | `200 ready`, or `503` and why this node cannot start a session now |
//! | any | `/api/v1/…` | the operator API ([`api`]): sessions, join tokens, nodes; its OpenAPI document at `/api/v1/openapi.json` ([`openapi`]) |
//! | `GET` | `/`, `/<file>` | the embedded client ([`crate::assets`]) |
//!
//! WHEP requests are checked in this order, each failure a short `text/plain` answer
//! ([`ApiError`]): path ids well-formed (else 404) → `Authorization: Bearer` join token for this
//! session (401 + `WWW-Authenticate: Bearer`) → `Content-Type` (415) → for `PATCH`, `If-Match`
//! (428 missing, 412 stale) → body size (413) → body syntax (400) → backend (404 unknown
//! session/viewer, 503 + `Retry-After` when full, 400 bad offer, 500 internal; details of the
//! last two are logged, never sent).
//!
//! # Resource ETags
//!
//! The ETag of a WHEP resource is derived, not stored: a keyed hash (HMAC-SHA256 under a
//! per-process random key) of session and viewer id. So the HTTP layer keeps no per-viewer map
//! that could grow stale when a backend drops a viewer on its own, and the backend trait needs
//! no ETag. The ETag changes only on an ICE restart, which is not supported yet: a `PATCH`
//! with `If-Match: *` that carries `a=ice-ufrag`/`a=ice-pwd` (the RFC 9725 ICE restart
//! request) answers `501`. When restarts land, the backend should return a generation number
//! to fold into the hash.
//!
//! # Who may do what
//!
//! Every WHEP request needs a join token for the session in the path (or the operator's static
//! token). `PATCH`/`DELETE` accept any role: the viewer id in the path is unguessable and is
//! only ever handed to the client that created it. `OPTIONS` never requires a token (browsers
//! send CORS preflights without one); ICE servers with credentials (TURN) are listed only when
//! the `OPTIONS` request carries a valid token, servers without credentials always.
//!
//! # CORS
//!
//! `Access-Control-Allow-Origin: *` and `Access-Control-Expose-Headers` on every WHEP
//! response, errors included; preflights are answered by the `OPTIONS` handlers. Tokens travel
//! in a header, never in cookies, so a wildcard origin is safe.

pub mod api;
mod error;
mod headers;
pub mod observe;
pub mod openapi;
mod sdp;
mod whep;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{middleware, Router};

use crate::backend::WhepBackend;
use crate::tokens::Tokens;

pub use error::ApiError;
pub use headers::{IceServer, IceServerError, TurnRest};
pub use sdp::{check_offer, parse_trickle_fragment, FragmentError, OfferError, MAX_CANDIDATES};

/// Largest SDP offer accepted (bytes); larger bodies get `413`.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// Largest trickle-ICE fragment accepted (bytes); larger bodies get `413`.
pub const MAX_FRAGMENT_BYTES: usize = 16 * 1024;

/// Everything the HTTP layer needs; cheap to clone (all shared behind `Arc`s).
#[derive(Clone)]
pub struct AppState {
    backend: Arc<dyn WhepBackend>,
    tokens: Arc<Tokens>,
    ice: Arc<headers::IceLinks>,
    etags: Arc<headers::EtagKey>,
    operator: Option<Arc<api::Operator>>,
    rejections: Arc<observe::Rejections>,
    readiness: observe::Readiness,
}

impl AppState {
    /// State with no ICE servers configured (the answer's host candidates only).
    pub fn new(backend: Arc<dyn WhepBackend>, tokens: Arc<Tokens>) -> Self {
        Self {
            backend,
            tokens,
            ice: Arc::new(headers::IceLinks::default()),
            etags: Arc::new(headers::EtagKey::random()),
            operator: None,
            rejections: Arc::default(),
            readiness: Arc::new(|| Ok(())),
        }
    }

    /// What `/readyz` checks (default: always ready).
    pub fn with_readiness(
        mut self,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.readiness = Arc::new(check);
        self
    }

    /// Serve the operator API (`/api/v1`, see [`api`]) with this key and registry.
    pub fn with_operator(mut self, operator: api::Operator) -> Self {
        self.operator = Some(Arc::new(operator));
        self
    }

    /// Advertise `servers` in `Link: <…>; rel="ice-server"` headers. Checked here, so a bad
    /// URL or credential fails at start with a message naming it.
    pub fn with_ice_servers(mut self, servers: Vec<IceServer>) -> Result<Self, IceServerError> {
        self.ice = Arc::new(headers::IceLinks::new(servers)?);
        Ok(self)
    }

    /// Also advertise TURN servers with credentials minted per answer (see
    /// [`headers::TurnRest`]); call after [`AppState::with_ice_servers`].
    pub fn with_turn(mut self, turn: headers::TurnRest) -> Result<Self, IceServerError> {
        self.ice = Arc::new((*self.ice).clone().with_turn(turn)?);
        Ok(self)
    }

    /// The backend that runs the viewers.
    pub fn backend(&self) -> &Arc<dyn WhepBackend> {
        &self.backend
    }

    /// The join-token verifier (and issuer).
    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.tokens
    }

    /// The configured ICE servers.
    pub fn ice_servers(&self) -> &[IceServer] {
        self.ice.servers()
    }
}

/// The whole HTTP application: WHEP routes (with CORS), `/healthz`, `/metrics`, `/stats`, and the embedded client as
/// the fallback.
pub fn app(state: AppState) -> Router {
    let whep = Router::new()
        .route(
            "/whep/{session}",
            post(whep::post_offer).options(whep::options_endpoint),
        )
        .route(
            "/whep/{session}/{viewer}",
            axum::routing::patch(whep::patch_resource)
                .delete(whep::delete_resource)
                .options(whep::options_resource),
        )
        .layer(middleware::map_response(headers::add_cors_headers))
        // The handlers read bodies with their own caps; this one guards any future extractor.
        .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES));

    let counted =
        Router::new()
            .merge(whep)
            .merge(api::routes())
            .layer(middleware::from_fn_with_state(
                state.clone(),
                observe::count_rejections,
            ));
    Router::new()
        .merge(counted)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .fallback(crate::assets::serve)
        .with_state(state)
}

/// Prometheus scrape endpoint (text format 0.0.4). Unauthenticated, like most exporters:
/// keep `--listen` on a private address, or put the scraper behind the same proxy.
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        observe::merge_expositions(&[
            observe::control_plane_metrics(&state),
            state.backend().metrics_text().await,
        ]),
    )
}

/// Readiness: this node can start a session now (`200 ready`), or `503` and why.
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match (state.readiness)() {
        Ok(()) => "ready".into_response(),
        Err(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// Sessions and their last frames' host timings, as JSON: the bench tool's stage breakdown
/// reads it. Unauthenticated, like `/metrics` (no secrets: timings and counters).
async fn stats(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(state.backend().stats_json().await)
}

/// Liveness: the process serves HTTP.
async fn healthz() -> &'static str {
    "ok"
}
