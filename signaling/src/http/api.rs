//! The operator API, `/api/v1`: create, list, show and end sessions, and mint join tokens.
//!
//! Every route but the OpenAPI document needs `Authorization: Bearer <operator key>` (the key is kept as a SHA-256
//! digest and compared in constant time; missing → 401 with `WWW-Authenticate: Bearer`, wrong
//! → 401 `invalid_token`). Bodies are JSON; unknown fields and bad values are `422` with a
//! message naming the field.
//!
//! | method | path | answer |
//! |---|---|---|
//! | `GET` | `/api/v1/sessions` | `200` + every session |
//! | `POST` | `/api/v1/sessions` | `201` + `Location` + the session (`starting`); `422` bad value; `503` + `Retry-After` beyond the node's capacity |
//! | `GET` | `/api/v1/sessions/{id}` | `200` + the session, `404` |
//! | `DELETE` | `/api/v1/sessions/{id}` | `204` (again `204` once ended), `404` never known |
//! | `POST` | `/api/v1/sessions/{id}/tokens` | `201` + `{token, token_id, role, expires_unix, join_url, whep_url}`; `409` when the session has ended |
//! | `DELETE` | `/api/v1/sessions/{id}/tokens/{token_id}` | `200` + `{revoked, viewers_ended}`: refused from now on, its viewers ended at once |
//! | `GET` | `/api/v1/sessions/{id}/screenshot[?width=N]` | `200` + the current picture, `image/png`; `409` when not running |
//! | `GET` | `/api/v1/nodes` | `200` + this node: capacity, sessions |
//! | `GET` | `/api/v1/openapi.json` | `200` + the OpenAPI 3.1 document of these routes ([`super::openapi`]); no key needed |
//!
//! The routes are listed once, in [`ROUTES`]: the router serves exactly these, and a test
//! checks that the OpenAPI document describes exactly these paths with the methods each serves.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Json, Router};
use control::SessionSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::openapi::{NotFound, OperatorOff, RoleSchema, Unauthorized, UnsupportedMediaType};
use super::{ApiError, AppState};
use crate::backend::Role;
use crate::sessions::{Lifetime, ManagerError, SessionInfo, SessionManager, SessionState};

/// Longest session time-to-live accepted (7 days).
pub const MAX_TTL_SECS: u64 = 7 * 24 * 3600;
/// Longest join-token lifetime accepted (30 days).
pub const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

/// The operator API's configuration: the key, the registry, and the defaults a new session
/// takes for what its request leaves out.
pub struct Operator {
    key_digest: [u8; 32],
    manager: Arc<dyn SessionManager>,
    defaults: SessionSpec,
}

impl Operator {
    pub fn new(key: &str, manager: Arc<dyn SessionManager>, defaults: SessionSpec) -> Self {
        Operator {
            key_digest: Sha256::digest(key.as_bytes()).into(),
            manager,
            defaults,
        }
    }

    /// The session registry.
    pub fn manager(&self) -> &Arc<dyn SessionManager> {
        &self.manager
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let key = super::headers::bearer_token(headers).ok_or(ApiError::MissingToken)?;
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.key_digest)) {
            Ok(())
        } else {
            Err(ApiError::InvalidToken)
        }
    }
}

/// The handlers of one path, by method.
type Handlers = fn() -> MethodRouter<AppState>;

/// Every route of the operator API and its handlers by method: the one list. [`routes`]
/// serves exactly these; each handler carries its `#[utoipa::path]` and is named in
/// [`super::openapi`], and `tests/api.rs` fails when the document and these disagree.
const ROUTES: &[(&str, Handlers)] = &[
    ("/api/v1/sessions", || {
        get(list_sessions).post(create_session)
    }),
    ("/api/v1/sessions/{id}", || {
        get(show_session).delete(delete_session)
    }),
    ("/api/v1/sessions/{id}/tokens", || post(create_token)),
    ("/api/v1/sessions/{id}/tokens/{token_id}", || {
        delete(revoke_token)
    }),
    ("/api/v1/sessions/{id}/screenshot", || get(screenshot)),
    ("/api/v1/nodes", || get(nodes)),
    ("/api/v1/openapi.json", || get(super::openapi::serve)),
];

/// The paths the operator API serves (from [`ROUTES`]); which methods each takes, the router
/// itself says (a `405` lists them in `Allow`).
pub fn route_paths() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().map(|(path, _)| *path)
}

pub(super) fn routes() -> Router<AppState> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers())
        })
}

fn operator<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a Operator, ApiError> {
    let op = state
        .operator
        .as_deref()
        .ok_or(ApiError::NotFound("the operator API is off"))?;
    op.check(headers)?;
    Ok(op)
}

fn json_body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    if !super::headers::content_type_is(headers, "application/json") {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::Unprocessable(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })
}

/// `POST /api/v1/sessions` body; every field optional (the node's defaults fill in).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateSession {
    /// `WIDTHxHEIGHT`, 64..=8192 each.
    #[schema(example = "1920x1080")]
    size: Option<String>,
    /// Frames per second, 1..=240.
    #[schema(minimum = 1, maximum = 240)]
    fps: Option<u32>,
    /// Bits per second, 100k..=500M.
    #[schema(minimum = 100_000, maximum = 500_000_000)]
    bitrate: Option<u64>,
    /// Video codecs in preference order, comma-separated (`av1,h264`): `h264`, `vp9`,
    /// `av1`, `vp8`, `h265`. Each viewer gets the first its offer accepts.
    codecs: Option<String>,
    /// One codec only (the same as `codecs` with one name).
    codec: Option<String>,
    /// `auto`, `software`, `hardware` or a backend name.
    encoder: Option<String>,
    /// `auto`, `xvfb`, `xorg`.
    display_kind: Option<String>,
    /// The program to run on the desktop (`terminal` for the default terminal).
    command: Option<String>,
    /// The window manager (`openbox` default, empty for none).
    wm: Option<String>,
    /// Ended this many seconds after creation (0 or absent: no limit; at most 7 days).
    #[schema(maximum = 604_800)]
    ttl_secs: Option<u64>,
    /// Ended after this many seconds without a viewer (0 or absent: never; at most 7 days).
    #[schema(maximum = 604_800)]
    idle_timeout_secs: Option<u64>,
    /// Most viewers at once, 1..=64.
    #[schema(minimum = 1, maximum = 64)]
    max_viewers: Option<usize>,
    /// `both`, `to-client`, `to-server`, `off`.
    clipboard: Option<String>,
    /// Sound: `out` (the desktop's, to viewers), `both` (and controlling viewers'
    /// microphones in) or `off`.
    audio: Option<String>,
    /// Opus frame length of the sound, 10 or 20 ms.
    audio_frame_ms: Option<u32>,
    /// `IP:PORT` for this session's WebRTC: a port other than 0 is one UDP port shared by
    /// every viewer of the session; port 0 gives each viewer its own. Default: the node's.
    #[schema(example = "0.0.0.0:3478")]
    udp: Option<String>,
}

fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::Unprocessable(format!("{field}: {why}"))
}

/// Whether `program` can be run: an executable path, or a name found on `PATH`.
fn runnable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &std::path::Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return exec(std::path::Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| exec(&d.join(program))))
}

impl CreateSession {
    /// The spec for this request on top of `defaults`, or `422` naming the first bad field.
    fn spec(self, defaults: &SessionSpec) -> Result<(SessionSpec, Lifetime), ApiError> {
        let mut spec = defaults.clone();
        spec.display = None; // API sessions always get a display of their own
        if let Some(size) = self.size {
            let (w, h) = size
                .split_once(['x', 'X'])
                .and_then(|(w, h)| {
                    Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?))
                })
                .ok_or_else(|| bad("size", format!("{size:?} is not WIDTHxHEIGHT")))?;
            if !(64..=8192).contains(&w) || !(64..=8192).contains(&h) {
                return Err(bad(
                    "size",
                    format!("{w}x{h} is outside 64x64 ..= 8192x8192"),
                ));
            }
            (spec.width, spec.height) = (w, h);
        }
        if let Some(fps) = self.fps {
            if !(1..=240).contains(&fps) {
                return Err(bad("fps", format!("{fps} is outside 1 ..= 240")));
            }
            spec.fps = fps;
        }
        if let Some(b) = self.bitrate {
            if !(100_000..=500_000_000).contains(&b) {
                return Err(bad(
                    "bitrate",
                    format!("{b} bit/s is outside 100k ..= 500M"),
                ));
            }
            spec.bitrate_bps = b;
        }
        if let Some(codec) = self.codec {
            if codec.contains(',') {
                return Err(bad("codec", "one codec; use codecs for a list"));
            }
            spec.codecs = control::parse_codecs(&codec).map_err(|e| bad("codec", e))?;
        }
        if let Some(codecs) = self.codecs {
            spec.codecs = control::parse_codecs(&codecs).map_err(|e| bad("codecs", e))?;
        }
        if let Some(e) = self.encoder {
            if e.trim().is_empty() {
                return Err(bad("encoder", "empty"));
            }
            spec.encoder = e;
        }
        if let Some(k) = self.display_kind {
            if !control::DISPLAY_KINDS.contains(&k.as_str()) {
                return Err(bad(
                    "display_kind",
                    format!("{k:?} is not auto, xvfb or xorg"),
                ));
            }
            spec.display_kind = k;
        }
        if let Some(c) = self.command {
            let program = c.split_whitespace().next().unwrap_or("");
            if !program.is_empty() && program != host_default_app() && !runnable(program) {
                return Err(bad(
                    "command",
                    format!("program {program:?} is not installed here"),
                ));
            }
            spec.app = c;
        }
        if let Some(wm) = self.wm {
            let program = wm.split_whitespace().next().unwrap_or("");
            if !program.is_empty() && !runnable(program) {
                return Err(bad(
                    "wm",
                    format!("program {program:?} is not installed here"),
                ));
            }
            spec.wm = wm;
        }
        if let Some(n) = self.max_viewers {
            if !(1..=64).contains(&n) {
                return Err(bad("max_viewers", format!("{n} is outside 1 ..= 64")));
            }
            spec.max_viewers = n;
        }
        if let Some(c) = self.clipboard {
            if !control::CLIPBOARD_POLICIES.contains(&c.as_str()) {
                return Err(bad(
                    "clipboard",
                    format!("{c:?} is not both, to-client, to-server or off"),
                ));
            }
            spec.clipboard = c;
        }
        if let Some(a) = self.audio {
            if !control::AUDIO_MODES.contains(&a.as_str()) {
                return Err(bad("audio", format!("{a:?} is not out, both or off")));
            }
            spec.audio = a;
        }
        if let Some(ms) = self.audio_frame_ms {
            if !matches!(ms, 10 | 20) {
                return Err(bad("audio_frame_ms", format!("{ms} is not 10 or 20")));
            }
            spec.audio_frame_ms = ms;
        }
        if let Some(u) = self.udp {
            let addr: std::net::SocketAddr = u
                .trim()
                .parse()
                .map_err(|_| bad("udp", format!("{u:?} is not IP:PORT")))?;
            spec.udp = vec![addr.to_string()];
        }
        let ttl = self.ttl_secs.unwrap_or(0);
        if ttl > MAX_TTL_SECS {
            return Err(bad("ttl_secs", format!("{ttl} is over {MAX_TTL_SECS}")));
        }
        let idle = self.idle_timeout_secs.unwrap_or(0);
        if idle > MAX_TTL_SECS {
            return Err(bad(
                "idle_timeout_secs",
                format!("{idle} is over {MAX_TTL_SECS}"),
            ));
        }
        Ok((
            spec,
            Lifetime {
                ttl_secs: ttl,
                idle_timeout_secs: idle,
            },
        ))
    }
}

/// The `--app` value that means the default terminal (see `host::desktop`).
fn host_default_app() -> &'static str {
    control::DEFAULT_APP
}

/// `http(s)://host` of this request, for the links handed out.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// A session as the API answers it: the registry's view and where viewers connect.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Session)]
pub(super) struct SessionView {
    #[serde(flatten)]
    info: SessionInfo,
    /// The WHEP endpoint of this session (a viewer posts its offer here, with a join token).
    #[schema(example = "http://edge.example:8080/whep/3q2-7Xc9Rb0")]
    whep_url: String,
    /// What a running session does now (`GET /api/v1/sessions/{id}` only): uptime, encoded
    /// frames and bits in the last second, last encode time, encoder, and each viewer with
    /// its role, address, time connected, loss and RTT from its RTCP reports, frames sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    live: Option<control::LiveStats>,
}

fn session_json(info: SessionInfo, base: &str) -> SessionView {
    SessionView {
        whep_url: format!("{base}/whep/{}", info.id),
        info,
        live: None,
    }
}

/// The `id` path parameter every session route takes.
const SESSION_ID: &str = "The session's id (as `POST /api/v1/sessions` answered it)";

#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    summary = "List the sessions",
    description = "Every session this node knows, ended and failed ones included.",
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "Every session", body = [SessionView]),
        (status = 401, response = Unauthorized),
        (status = 404, response = OperatorOff),
    )
)]
async fn list_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let op = operator(&state, &headers)?;
    let base = base_url(&headers);
    let all: Vec<_> = op
        .manager
        .list()
        .into_iter()
        .map(|s| session_json(s, &base))
        .collect();
    Ok(Json(all).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    tag = "sessions",
    summary = "Create a session",
    description = "Registers a session (`starting`) and starts it in the background: poll \
        `GET /api/v1/sessions/{id}` until it is `running` (or `failed`). Every body field is \
        optional; an empty body takes the node's defaults.",
    security(("operator_key" = [])),
    request_body(
        content = Option<CreateSession>,
        content_type = "application/json",
        description = "What differs from the node's defaults (unknown fields are refused)",
    ),
    responses(
        (status = 201, description = "Created; starting", body = SessionView,
            headers(("Location" = String, description = "`/api/v1/sessions/{id}`"))),
        (status = 401, response = Unauthorized),
        (status = 404, response = OperatorOff),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "A bad value; the text names the field", body = String,
            content_type = "text/plain", example = "fps: 0 is outside 1 ..= 240"),
        (status = 500, response = super::openapi::Internal),
        (status = 503, description = "The node runs as many sessions as it takes",
            body = String, content_type = "text/plain",
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
    )
)]
async fn create_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let op = operator(&state, &headers)?;
    let req: CreateSession = if body.is_empty() {
        serde_json::from_str("{}").expect("empty object")
    } else {
        json_body(&headers, &body)?
    };
    let (spec, lifetime) = req.spec(&op.defaults)?;
    let id = crate::tokens::random_id();
    let info = op
        .manager
        .register(&id, spec, lifetime)
        .map_err(|e| match e {
            ManagerError::Full(_) => ApiError::NodeFull {
                retry_after_secs: 10,
            },
            other => ApiError::internal(other),
        })?;
    tracing::info!(session = %id, "session created by the operator API");
    let manager = op.manager.clone();
    let launch_id = id.clone();
    tokio::spawn(async move {
        manager.launch(&launch_id).await;
        enforce_lifetime(manager, &launch_id, lifetime).await;
    });
    let base = base_url(&headers);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/sessions/{id}"))],
        Json(session_json(info, &base)),
    )
        .into_response())
}

/// Ends the session when its time to live is over, or when it has had no viewer for its idle
/// timeout (checked every second; a session that fails or ends stops the watch).
async fn enforce_lifetime(manager: Arc<dyn SessionManager>, id: &str, lifetime: Lifetime) {
    let Lifetime {
        ttl_secs,
        idle_timeout_secs,
    } = lifetime;
    if ttl_secs == 0 && idle_timeout_secs == 0 {
        return;
    }
    // The TTL counts from creation (as the session shows it), not from when it ran.
    let created = manager
        .get(id)
        .map_or_else(crate::sessions::unix_ms, |s| s.created_unix_ms);
    let mut last_viewer = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let running = matches!(
            manager.get(id).map(|s| s.state),
            Some(SessionState::Running { .. })
        );
        if !running {
            return; // failed or ended: nothing to enforce any more
        }
        let age_ms = crate::sessions::unix_ms().saturating_sub(created);
        if ttl_secs > 0 && age_ms >= ttl_secs * 1000 {
            tracing::info!(session = %id, ttl_secs, "time to live over: ending the session");
            break;
        }
        if idle_timeout_secs > 0 {
            // No answer (a busy host) is not "no viewer": only a count of 0 is.
            if manager.viewer_count(id).await != Some(0) {
                last_viewer = tokio::time::Instant::now();
            }
            if last_viewer.elapsed() >= Duration::from_secs(idle_timeout_secs) {
                tracing::info!(session = %id, idle_timeout_secs, "no viewer for the idle timeout: ending the session");
                break;
            }
        }
    }
    let _ = manager.delete(id).await;
}

#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}",
    tag = "sessions",
    summary = "Show one session",
    security(("operator_key" = [])),
    params(("id" = String, Path, description = SESSION_ID)),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
async fn show_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let op = operator(&state, &headers)?;
    let info = op
        .manager
        .get(&id)
        .ok_or(ApiError::NotFound("unknown session"))?;
    let running = matches!(info.state, crate::sessions::SessionState::Running { .. });
    let mut view = session_json(info, &base_url(&headers));
    if running {
        view.live = op.manager.live(&id).await;
    }
    Ok(Json(view).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{id}",
    tag = "sessions",
    summary = "End a session",
    description = "Ends its processes, display and viewers. Ending an ended session is no \
        error (`204` again).",
    security(("operator_key" = [])),
    params(("id" = String, Path, description = SESSION_ID)),
    responses(
        (status = 204, description = "Ended (or it had ended already)"),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 500, response = super::openapi::Internal),
    )
)]
async fn delete_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let op = operator(&state, &headers)?;
    match op.manager.delete(&id).await {
        Ok(()) => {
            tracing::info!(session = %id, "session deleted by the operator API");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(ManagerError::Unknown) => Err(ApiError::NotFound("unknown session")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// `POST /api/v1/sessions/{id}/tokens` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateToken {
    #[schema(value_type = RoleSchema)]
    role: Role,
    /// Lifetime in seconds, 1..=30 days (default 12 h).
    #[schema(minimum = 1, maximum = 2_592_000)]
    ttl_secs: Option<u64>,
}

/// A new join token and the links that use it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = JoinToken)]
pub(super) struct TokenView {
    /// The signed token (`Authorization: Bearer` for WHEP, or the join link's fragment).
    token: String,
    /// Its id, for `DELETE /api/v1/sessions/{id}/tokens/{token_id}`.
    token_id: String,
    #[schema(value_type = RoleSchema)]
    role: Role,
    /// When it expires, Unix seconds.
    expires_unix: u64,
    /// The web client's link for this session with the token.
    join_url: String,
    /// The session's WHEP endpoint.
    whep_url: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/sessions/{id}/tokens",
    tag = "tokens",
    summary = "Mint a join token",
    description = "A signed token for this session and role, and the links that use it.",
    security(("operator_key" = [])),
    params(("id" = String, Path, description = SESSION_ID)),
    request_body(content = CreateToken, content_type = "application/json"),
    responses(
        (status = 201, description = "The token and its links", body = TokenView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "The session has ended (or failed)", body = String,
            content_type = "text/plain"),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "A bad value; the text names the field", body = String,
            content_type = "text/plain", example = "role: unknown variant `admin`, expected `control` or `view`"),
    )
)]
async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let op = operator(&state, &headers)?;
    let req: CreateToken = json_body(&headers, &body)?;
    let info = op
        .manager
        .get(&id)
        .ok_or(ApiError::NotFound("unknown session"))?;
    if matches!(
        info.state,
        SessionState::Ended | SessionState::Failed { .. }
    ) {
        return Err(ApiError::Conflict("the session has ended"));
    }
    let ttl = req.ttl_secs.unwrap_or(12 * 3600);
    if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
        return Err(bad(
            "ttl_secs",
            format!("{ttl} is outside 1 ..= {MAX_TOKEN_TTL_SECS}"),
        ));
    }
    let (token, token_id) = state
        .tokens()
        .issue_with_id(&id, req.role, Duration::from_secs(ttl));
    let base = base_url(&headers);
    let expires = crate::sessions::unix_ms() / 1000 + ttl;
    Ok((
        StatusCode::CREATED,
        Json(TokenView {
            join_url: format!("{base}/?session={id}#token={token}"),
            whep_url: format!("{base}/whep/{id}"),
            token,
            token_id,
            role: req.role,
            expires_unix: expires,
        }),
    )
        .into_response())
}

/// `GET /api/v1/sessions/{id}/screenshot[?width=N]`: the current picture as PNG.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{id}/screenshot",
    tag = "sessions",
    summary = "The session's current picture",
    security(("operator_key" = [])),
    params(
        ("id" = String, Path, description = SESSION_ID),
        ("width" = Option<u32>, Query, minimum = 16, maximum = 8192,
            description = "Scale down to at most this many pixels wide (absent: full size)"),
    ),
    responses(
        (status = 200, description = "The picture (`Cache-Control: no-store`)",
            content(("image/png"))),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, description = "The session is not running", body = String,
            content_type = "text/plain"),
        (status = 422, description = "`width` is not 16 ..= 8192", body = String,
            content_type = "text/plain"),
        (status = 500, response = super::openapi::Internal),
    )
)]
async fn screenshot(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let op = operator(&state, &headers)?;
    let width = match q.get("width") {
        None => 0,
        Some(w) => w
            .parse::<u32>()
            .ok()
            .filter(|w| (16..=8192).contains(w))
            .ok_or_else(|| bad("width", format!("{w:?} is not 16 ..= 8192")))?,
    };
    match op.manager.screenshot(&id, width).await {
        Ok(png) => Ok((
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            png,
        )
            .into_response()),
        Err(ManagerError::Unknown) => Err(ApiError::NotFound("unknown session")),
        Err(ManagerError::NotRunning) => Err(ApiError::Conflict("the session is not running")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// What a revocation did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Revoked)]
pub(super) struct RevokedView {
    /// The revoked token's id.
    revoked: String,
    /// How many viewers that joined with it were ended.
    viewers_ended: usize,
}

/// `DELETE /api/v1/sessions/{id}/tokens/{token_id}`: the token is refused from now on and
/// the viewers that joined with it are ended.
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{id}/tokens/{token_id}",
    tag = "tokens",
    summary = "Revoke a join token",
    description = "The token is refused from now on, and the viewers that joined with it are \
        ended at once. Revoking an id twice is no error.",
    security(("operator_key" = [])),
    params(
        ("id" = String, Path, description = SESSION_ID),
        ("token_id" = String, Path, max_length = 64,
            description = "The token's id (`token_id` when it was minted)"),
    ),
    responses(
        (status = 200, description = "Revoked", body = RevokedView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, token_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let op = operator(&state, &headers)?;
    op.manager
        .get(&id)
        .ok_or(ApiError::NotFound("unknown session"))?;
    if token_id.is_empty() || token_id.len() > 64 {
        return Err(ApiError::NotFound("unknown token"));
    }
    state.tokens().revoke(&token_id);
    let viewers = op.manager.disconnect_token(&id, &token_id).await;
    tracing::info!(session = %id, viewers, "join token revoked");
    Ok(Json(RevokedView {
        revoked: token_id,
        viewers_ended: viewers,
    })
    .into_response())
}

/// A node of the control plane (today: this one).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Node)]
pub(super) struct NodeView {
    /// Its host name.
    id: String,
    /// How many sessions it runs at most.
    capacity: usize,
    /// How many run (or start) now.
    sessions: usize,
    /// Its CPU count.
    cpus: usize,
}

#[utoipa::path(
    get,
    path = "/api/v1/nodes",
    tag = "nodes",
    summary = "List the nodes",
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "This node", body = [NodeView]),
        (status = 401, response = Unauthorized),
        (status = 404, response = OperatorOff),
    )
)]
async fn nodes(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let op = operator(&state, &headers)?;
    let live = op
        .manager
        .list()
        .iter()
        .filter(|s| {
            matches!(
                s.state,
                SessionState::Starting | SessionState::Running { .. }
            )
        })
        .count();
    let name = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "local".into());
    Ok(Json([NodeView {
        id: name,
        capacity: op.manager.capacity(),
        sessions: live,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
    }])
    .into_response())
}
