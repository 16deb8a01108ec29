//! The operator API's OpenAPI 3.1 document, served at `GET /api/v1/openapi.json`.
//!
//! Generated from the code with `utoipa`: each handler in [`super::api`] carries a
//! `#[utoipa::path]` (method, path, parameters, body, every status it answers), the request and
//! response types derive `ToSchema`, and [`ApiDoc`] names the handlers. The routes themselves
//! are listed once, in `api::ROUTES`; `tests/api.rs` checks that the document describes exactly
//! the paths and methods the router serves, so a route added without documentation (or
//! documentation left behind by a removed route) fails the build's tests.
//!
//! Types of the `control` crate keep no OpenAPI dependency: they are described here by mirror
//! types ([`SessionSpecSchema`], [`IceServerSchema`], [`RoleSchema`]), and a test checks each
//! mirror against what the real type serializes to.
//!
//! The document itself needs no operator key (it holds no secrets) and is served whether or
//! not the node runs the operator API.

use axum::Json;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use super::api;

/// The name of the operator-key security scheme the operator routes require.
pub const OPERATOR_KEY: &str = "operator_key";

/// The document: every operator API handler, the operator-key scheme, the shared responses.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "edgedesk operator API",
        description = "Create, list, show and end remote-desktop sessions, mint and revoke \
            join tokens, and see the node. Every route but this document needs \
            `Authorization: Bearer <operator key>`. Errors are short `text/plain` messages.",
    ),
    paths(
        api::list_sessions,
        api::create_session,
        api::show_session,
        api::delete_session,
        api::create_token,
        api::revoke_token,
        api::screenshot,
        api::nodes,
        serve,
    ),
    components(responses(Unauthorized, NotFound, OperatorOff, UnsupportedMediaType, Internal)),
    modifiers(&OperatorKeyScheme, &AbsentNotNull),
    tags(
        (name = "sessions", description = "Remote-desktop sessions on this node"),
        (name = "tokens", description = "Join tokens: what a viewer needs to connect"),
        (name = "nodes", description = "The control plane's nodes"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document of the operator API.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Adds the operator key's bearer scheme (the `security` of each operator route names it).
struct OperatorKeyScheme;

impl Modify for OperatorKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            OPERATOR_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The operator key (`edgedesk up --operator-key-file`), as \
                         `Authorization: Bearer <key>`",
                    ))
                    .build(),
            ),
        );
    }
}

/// An optional request body here means "may be absent" (`POST /api/v1/sessions` with no
/// body takes the defaults), never a JSON `null`, which the handlers refuse; utoipa writes an
/// `Option<T>` body as "`null` or `T`": make it "`T`, not required".
struct AbsentNotNull;

impl Modify for AbsentNotNull {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in operations.into_iter().flatten() {
                let Some(body) = op.request_body.as_mut() else {
                    continue;
                };
                for content in body.content.values_mut() {
                    if let Some(RefOr::T(Schema::OneOf(one))) = &content.schema {
                        if let [a, b] = &one.items[..] {
                            match (is_null(a), is_null(b)) {
                                (true, false) => content.schema = Some(b.clone()),
                                (false, true) => content.schema = Some(a.clone()),
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    summary = "This document",
    description = "The OpenAPI 3.1 document of the operator API. No key needed.",
    responses((status = 200, description = "The document", body = serde_json::Value)),
)]
pub(super) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

/// 401: the operator key is missing or wrong.
#[derive(ToResponse)]
#[response(
    description = "No `Authorization: Bearer` header, or not the operator key",
    content_type = "text/plain",
    headers((
        "WWW-Authenticate" = String,
        description = "`Bearer` when the header is missing, `Bearer error=\"invalid_token\"` \
            when the key is wrong"
    ))
)]
pub struct Unauthorized(pub String);

/// 404 on a route about one session.
#[derive(ToResponse)]
#[response(
    description = "Unknown session (or token id), or this node runs without the operator API",
    content_type = "text/plain"
)]
pub struct NotFound(pub String);

/// 404 on a route about no session in particular.
#[derive(ToResponse)]
#[response(
    description = "This node runs without the operator API",
    content_type = "text/plain"
)]
pub struct OperatorOff(pub String);

/// 415: a body that is not JSON.
#[derive(ToResponse)]
#[response(
    description = "The body is not `Content-Type: application/json`",
    content_type = "text/plain"
)]
pub struct UnsupportedMediaType(pub String);

/// 500: the details are logged, never sent.
#[derive(ToResponse)]
#[response(
    description = "Internal error (the details are in the node's log)",
    content_type = "text/plain"
)]
pub struct Internal(pub String);

/// `control::SessionSpec` as the API shows it: what a session was created with.
#[derive(ToSchema)]
#[schema(as = SessionSpec)]
pub struct SessionSpecSchema {
    /// Display width, pixels.
    pub width: u32,
    /// Display height, pixels.
    pub height: u32,
    /// An existing X display streamed instead of a new one (API sessions: always null).
    pub display: Option<String>,
    /// `auto`, `xvfb` or `xorg`.
    pub display_kind: String,
    /// The window manager (empty: none).
    pub wm: String,
    /// The program on the desktop (`terminal`: the default terminal; empty: none).
    pub app: String,
    /// Frames per second.
    pub fps: u32,
    /// Bits per second.
    pub bitrate_bps: u64,
    /// `auto`, `software`, `hardware` or a backend name.
    pub encoder: String,
    /// Local UDP addresses for WebRTC.
    pub udp: Vec<String>,
    /// STUN/TURN servers handed to viewers (credentials left out).
    pub ice_servers: Vec<IceServerSchema>,
    /// Most viewers at once.
    pub max_viewers: usize,
    /// `both`, `to-client`, `to-server` or `off`.
    pub clipboard: String,
    /// Largest clipboard text carried, bytes.
    pub clipboard_max_bytes: usize,
    /// Video codecs in preference order (empty: the host's default order).
    pub codecs: Vec<String>,
    /// Congestion control: `gcc` or `off` (a fixed `bitrate_bps`).
    pub congestion: String,
    /// The lowest bitrate congestion control may set, bit/s.
    pub min_bitrate_bps: u64,
    /// The highest bitrate congestion control may set, bit/s (`bitrate_bps` is where it starts).
    pub max_bitrate_bps: u64,
    /// The address viewers are told to reach the host at (null: the local addresses).
    pub public_ip: Option<String>,
    /// Sound: `out`, `both` (microphones in too) or `off`.
    pub audio: String,
    /// Opus frame length of the sound, 10 or 20 ms.
    pub audio_frame_ms: u32,
}

/// `control::IceServer`: a STUN/TURN server for the viewers' ICE.
#[derive(ToSchema)]
#[schema(as = IceServer)]
pub struct IceServerSchema {
    pub urls: Vec<String>,
    pub username: String,
    /// Always empty in API answers.
    pub credential: String,
}

/// `control::Role`: what a join token allows.
#[derive(ToSchema)]
#[schema(as = Role)]
#[serde(rename_all = "lowercase")]
pub enum RoleSchema {
    /// Watch and send input.
    Control,
    /// Watch only.
    View,
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// The property names a schema component of the document lists.
    fn properties(doc: &Value, name: &str) -> Vec<String> {
        let mut keys: Vec<String> = doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} has properties"))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    fn keys(v: &Value) -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn doc() -> Value {
        serde_json::to_value(document()).unwrap()
    }

    #[test]
    fn is_openapi_3_1_with_the_operator_key_scheme() {
        let doc = doc();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
        let scheme = &doc["components"]["securitySchemes"][OPERATOR_KEY];
        assert_eq!(
            (&scheme["type"], &scheme["scheme"]),
            (&json!("http"), &json!("bearer"))
        );
    }

    #[test]
    fn the_mirrors_of_control_types_match_what_those_serialize_to() {
        let doc = doc();
        let ice = control::IceServer {
            urls: vec!["stun:stun.example:3478".into()],
            username: String::new(),
            credential: String::new(),
        };
        let spec = control::SessionSpec {
            width: 1280,
            height: 720,
            display: None,
            display_kind: "auto".into(),
            wm: "openbox".into(),
            app: "terminal".into(),
            fps: 60,
            bitrate_bps: 8_000_000,
            encoder: "auto".into(),
            udp: vec![],
            ice_servers: vec![ice.clone()],
            max_viewers: 8,
            clipboard: "both".into(),
            clipboard_max_bytes: 1 << 20,
            codecs: vec!["h264".into()],
            congestion: "gcc".into(),
            min_bitrate_bps: 300_000,
            max_bitrate_bps: 8_000_000,
            public_ip: Some("203.0.113.9".into()),
            audio: "both".into(),
            audio_frame_ms: 20,
        };
        assert_eq!(
            properties(&doc, "SessionSpec"),
            keys(&serde_json::to_value(&spec).unwrap())
        );
        assert_eq!(
            properties(&doc, "IceServer"),
            keys(&serde_json::to_value(&ice).unwrap())
        );
        let roles: Vec<Value> = [control::Role::Control, control::Role::View]
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        assert_eq!(doc["components"]["schemas"]["Role"]["enum"], json!(roles));
    }
}
