//! The operator API (`/api/v1`) through `app(state)` with a fake session registry; no socket.
//! Every route, and every refusal: 401 (missing and wrong key), 404, 409, 415, 422, 503; and
//! the OpenAPI document against the routes the router serves and the answers it gives.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use control::SessionSpec;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use signaling::backend::{BackendError, Role, TrickleFragment, ViewerAnswer, WhepBackend};
use signaling::http::api::{route_paths, Operator};
use signaling::http::{app, AppState};
use signaling::sessions::{Lifetime, ManagerError, SessionInfo, SessionManager, SessionState};
use signaling::tokens::Tokens;
use tower::ServiceExt;

const KEY: &str = "operator-key-for-tests-0123456789";

fn defaults() -> SessionSpec {
    SessionSpec {
        width: 1280,
        height: 720,
        display: None,
        display_kind: "auto".into(),
        wm: "openbox".into(),
        app: "terminal".into(),
        fps: 60,
        bitrate_bps: 8_000_000,
        encoder: "auto".into(),
        udp: vec!["127.0.0.1:0".into()],
        ice_servers: vec![],
        max_viewers: 8,
        clipboard: "both".into(),
        clipboard_max_bytes: 1 << 20,
        codecs: vec![],
        congestion: "gcc".into(),
        min_bitrate_bps: 300_000,
        max_bitrate_bps: 8_000_000,
        public_ip: None,
        audio: "out".into(),
        audio_frame_ms: 10,
    }
}

/// Sessions in a map; `launch` makes them running at once.
#[derive(Default)]
struct FakeManager {
    sessions: Mutex<HashMap<String, SessionInfo>>,
    capacity: usize,
    disconnected: Mutex<Vec<String>>,
}

#[async_trait]
impl SessionManager for FakeManager {
    fn register(
        &self,
        id: &str,
        spec: SessionSpec,
        lifetime: Lifetime,
    ) -> Result<SessionInfo, ManagerError> {
        let mut s = self.sessions.lock().unwrap();
        let live = s
            .values()
            .filter(|i| !matches!(i.state, SessionState::Ended))
            .count();
        if live >= self.capacity {
            return Err(ManagerError::Full(live));
        }
        let info = SessionInfo {
            id: id.into(),
            state: SessionState::Starting,
            created_unix_ms: s.len() as u64,
            ttl_secs: lifetime.ttl_secs,
            idle_timeout_secs: lifetime.idle_timeout_secs,
            spec,
        };
        s.insert(id.into(), info.clone());
        Ok(info)
    }
    async fn launch(&self, id: &str) {
        if let Some(i) = self.sessions.lock().unwrap().get_mut(id) {
            i.state = SessionState::Running {
                display: ":99".into(),
            };
        }
    }
    fn get(&self, id: &str) -> Option<SessionInfo> {
        self.sessions.lock().unwrap().get(id).cloned()
    }
    fn list(&self) -> Vec<SessionInfo> {
        let mut v: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        v.sort_by_key(|s| s.created_unix_ms);
        v
    }
    async fn delete(&self, id: &str) -> Result<(), ManagerError> {
        let mut s = self.sessions.lock().unwrap();
        let i = s.get_mut(id).ok_or(ManagerError::Unknown)?;
        i.state = SessionState::Ended;
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    async fn viewer_count(&self, id: &str) -> Option<usize> {
        matches!(self.get(id)?.state, SessionState::Running { .. }).then_some(0)
    }
    async fn screenshot(&self, id: &str, _: u32) -> Result<Vec<u8>, ManagerError> {
        match self.get(id).map(|s| s.state) {
            None => Err(ManagerError::Unknown),
            Some(SessionState::Running { .. }) => Ok(b"\x89PNG fake".to_vec()),
            Some(_) => Err(ManagerError::NotRunning),
        }
    }
    async fn disconnect_token(&self, _: &str, token_id: &str) -> usize {
        self.disconnected.lock().unwrap().push(token_id.to_owned());
        1
    }
}

struct NoViewers;
#[async_trait]
impl WhepBackend for NoViewers {
    fn has_session(&self, _: &str) -> bool {
        false
    }
    async fn create_viewer(
        &self,
        _: &str,
        _: String,
        _: Role,
        _: Option<String>,
    ) -> Result<ViewerAnswer, BackendError> {
        Err(BackendError::UnknownSession)
    }
    async fn add_candidates(
        &self,
        _: &str,
        _: &str,
        _: TrickleFragment,
    ) -> Result<(), BackendError> {
        Err(BackendError::UnknownSession)
    }
    async fn delete_viewer(&self, _: &str, _: &str) -> Result<(), BackendError> {
        Err(BackendError::UnknownSession)
    }
}

struct Api {
    app: Router,
    tokens: Arc<Tokens>,
    manager: Arc<FakeManager>,
}

impl Api {
    fn new(capacity: usize) -> Api {
        let tokens = Arc::new(Tokens::random());
        let manager = Arc::new(FakeManager {
            capacity,
            ..Default::default()
        });
        let state = AppState::new(Arc::new(NoViewers), tokens.clone())
            .with_operator(Operator::new(KEY, manager.clone(), defaults()));
        Api {
            app: app(state),
            tokens,
            manager,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "edge.example:8080");
        if let Some(k) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, headers, value)
    }

    async fn create(&self, body: Value) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.call(Method::POST, "/api/v1/sessions", Some(KEY), Some(body))
            .await
    }
}

#[tokio::test]
async fn every_route_needs_the_operator_key() {
    let api = Api::new(4);
    for (method, path) in [
        (Method::GET, "/api/v1/sessions"),
        (Method::POST, "/api/v1/sessions"),
        (Method::GET, "/api/v1/sessions/x"),
        (Method::DELETE, "/api/v1/sessions/x"),
        (Method::POST, "/api/v1/sessions/x/tokens"),
        (Method::GET, "/api/v1/nodes"),
        (Method::GET, "/api/v1/sessions/x/screenshot"),
        (Method::DELETE, "/api/v1/sessions/x/tokens/t"),
    ] {
        let (status, headers, _) = api.call(method.clone(), path, None, None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a key"
        );
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        let (status, headers, _) = api
            .call(method.clone(), path, Some("wrong-key-0123456789"), None)
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong key"
        );
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
    }
    assert!(api.manager.list().is_empty(), "nothing was created");
}

#[tokio::test]
async fn create_list_show_delete() {
    let api = Api::new(4);
    let (status, headers, body) = api.create(json!({"size": "1920x1080", "fps": 30, "max_viewers": 2, "clipboard": "off", "ttl_secs": 600, "udp": "0.0.0.0:3478"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 22, "a 128-bit random id: {id}");
    assert_eq!(headers[header::LOCATION], format!("/api/v1/sessions/{id}"));
    assert_eq!(body["state"], "starting");
    assert_eq!(
        body["whep_url"],
        format!("http://edge.example:8080/whep/{id}")
    );
    assert_eq!(
        (
            body["spec"]["width"].as_u64(),
            body["spec"]["height"].as_u64()
        ),
        (Some(1920), Some(1080))
    );
    assert_eq!(body["spec"]["fps"], 30);
    assert_eq!(body["spec"]["bitrate_bps"], 8_000_000, "defaults fill in");
    assert_eq!(body["spec"]["clipboard"], "off");
    assert_eq!(body["spec"]["udp"], json!(["0.0.0.0:3478"]));
    assert_eq!(body["ttl_secs"], 600);
    // The launch runs in the background: running soon.
    let mut state = String::new();
    for _ in 0..50 {
        let (s, _, b) = api
            .call(
                Method::GET,
                &format!("/api/v1/sessions/{id}"),
                Some(KEY),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        state = b["state"].as_str().unwrap().to_owned();
        if state == "running" {
            assert_eq!(b["display"], ":99");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(state, "running");
    let (_, _, second) = api.create(json!({})).await;
    let (s, _, list) = api
        .call(Method::GET, "/api/v1/sessions", Some(KEY), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str(), second["id"].as_str().unwrap()]);

    let (s, _, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{id}"),
            Some(KEY),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/sessions/{id}"),
            Some(KEY),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "deleting again is no error");
    let (_, _, b) = api
        .call(
            Method::GET,
            &format!("/api/v1/sessions/{id}"),
            Some(KEY),
            None,
        )
        .await;
    assert_eq!(b["state"], "ended");
    for (m, p) in [
        (Method::GET, "/api/v1/sessions/nope"),
        (Method::DELETE, "/api/v1/sessions/nope"),
    ] {
        assert_eq!(
            api.call(m, p, Some(KEY), None).await.0,
            StatusCode::NOT_FOUND,
            "{p}"
        );
    }
    let (s, _, nodes) = api
        .call(Method::GET, "/api/v1/nodes", Some(KEY), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (nodes[0]["capacity"].as_u64(), nodes[0]["sessions"].as_u64()),
        (Some(4), Some(1))
    );
}

#[tokio::test]
async fn bad_values_are_422_naming_the_field() {
    let api = Api::new(4);
    for (body, field) in [
        (json!({"size": "0x0"}), "size"),
        (json!({"size": "99999x1080"}), "size"),
        (json!({"size": "big"}), "size"),
        (json!({"fps": 0}), "fps"),
        (json!({"fps": 1000}), "fps"),
        (json!({"bitrate": 5}), "bitrate"),
        (json!({"codec": "theora"}), "codec"),
        (json!({"display_kind": "wayland"}), "display_kind"),
        (json!({"command": "no-such-program-here --flag"}), "command"),
        (json!({"wm": "no-such-wm"}), "wm"),
        (json!({"max_viewers": 0}), "max_viewers"),
        (json!({"clipboard": "sideways"}), "clipboard"),
        (json!({"udp": "nowhere"}), "udp"),
        (json!({"udp": "127.0.0.1:99999"}), "udp"),
        (json!({"ttl_secs": 99_999_999}), "ttl_secs"),
        (json!({"colour": "blue"}), "colour"),
        (json!({"fps": "fast"}), "fps"),
    ] {
        let (status, _, msg) = api.create(body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(msg.as_str().unwrap().contains(field), "{body}: {msg}");
    }
    // A command that exists is fine, with arguments.
    assert_eq!(
        api.create(json!({"command": "xterm -e top"})).await.0,
        StatusCode::CREATED
    );
    // Not JSON at all.
    let req = Request::post("/api/v1/sessions")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("size=1"))
        .unwrap();
    assert_eq!(
        api.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        api.manager.list().len(),
        1,
        "only the good request created a session"
    );
}

#[tokio::test]
async fn beyond_capacity_is_503_with_retry_after() {
    let api = Api::new(1);
    assert_eq!(api.create(json!({})).await.0, StatusCode::CREATED);
    let (status, headers, _) = api.create(json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "10");
}

#[tokio::test]
async fn join_tokens_are_signed_for_the_session_and_role() {
    let api = Api::new(4);
    let (_, _, body) = api.create(json!({})).await;
    let id = body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/sessions/{id}/tokens");
    let (status, _, t) = api
        .call(
            Method::POST,
            &path,
            Some(KEY),
            Some(json!({"role": "view", "ttl_secs": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let token = t["token"].as_str().unwrap();
    assert_eq!(
        api.tokens.verify(token, &id, SystemTime::now()).unwrap(),
        Role::View
    );
    assert!(api
        .tokens
        .verify(token, "another-session", SystemTime::now())
        .is_err());
    assert_eq!(t["role"], "view");
    assert_eq!(
        t["join_url"],
        format!("http://edge.example:8080/?session={id}#token={token}")
    );
    let (_, _, c) = api
        .call(
            Method::POST,
            &path,
            Some(KEY),
            Some(json!({"role": "control"})),
        )
        .await;
    assert_eq!(
        api.tokens
            .verify(c["token"].as_str().unwrap(), &id, SystemTime::now())
            .unwrap(),
        Role::Control
    );
    // Refusals.
    assert_eq!(
        api.call(
            Method::POST,
            &path,
            Some(KEY),
            Some(json!({"role": "admin"}))
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.call(
            Method::POST,
            &path,
            Some(KEY),
            Some(json!({"role": "view", "ttl_secs": 0}))
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.call(
            Method::POST,
            "/api/v1/sessions/nope/tokens",
            Some(KEY),
            Some(json!({"role": "view"}))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    api.call(
        Method::DELETE,
        &format!("/api/v1/sessions/{id}"),
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(
        api.call(
            Method::POST,
            &path,
            Some(KEY),
            Some(json!({"role": "view"}))
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn without_an_operator_the_api_is_404() {
    let state = AppState::new(Arc::new(NoViewers), Arc::new(Tokens::random()));
    let res = app(state)
        .oneshot(
            Request::get("/api/v1/sessions")
                .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_needs_no_key_even_without_an_operator() {
    let state = AppState::new(Arc::new(NoViewers), Arc::new(Tokens::random()));
    let res = app(state)
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
}

/// The operations of an OpenAPI path item, by their (lower-case) method names.
const OPENAPI_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The methods the router serves at `uri`: the `Allow` of the `405` it answers to a method no
/// route takes (axum lists every method of the matched path there). `HEAD`, which axum serves
/// with every `GET`, is left out, as OpenAPI leaves it out.
async fn served_methods(app: &Router, uri: &str) -> BTreeSet<String> {
    let req = Request::builder()
        .method(Method::from_bytes(b"PROBE").unwrap())
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "{uri} is not a route"
    );
    res.headers()[header::ALLOW]
        .to_str()
        .unwrap()
        .split(',')
        .map(|m| m.trim().to_owned())
        .filter(|m| m != "HEAD")
        .collect()
}

/// Follows a `$ref` (`#/components/...`) in `doc`; other values as they are.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => r
            .strip_prefix("#/")
            .unwrap_or_else(|| panic!("{r} is not local"))
            .split('/')
            .fold(doc, |node, key| &node[key]),
        None => v,
    }
}

/// Every `$ref` in `v` points to something in `doc`.
fn check_refs(doc: &Value, v: &Value) {
    match v {
        Value::Object(map) => {
            if map.contains_key("$ref") {
                assert!(!resolve(doc, v).is_null(), "dangling {}", map["$ref"]);
            }
            map.values().for_each(|x| check_refs(doc, x));
        }
        Value::Array(items) => items.iter().for_each(|x| check_refs(doc, x)),
        _ => {}
    }
}

/// The fields a schema documents (through `$ref`, `allOf`, `oneOf`, `anyOf`), and those it
/// requires in every case (its own and its `allOf` parts'; a `oneOf` choice's are optional).
fn fields(doc: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = resolve(doc, schema);
    let mut all: BTreeSet<String> = schema["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.keys().cloned())
        .collect();
    let mut required: BTreeSet<String> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    for (combinator, binding) in [("allOf", true), ("oneOf", false), ("anyOf", false)] {
        for part in schema[combinator].as_array().into_iter().flatten() {
            let (a, r) = fields(doc, part);
            all.extend(a);
            if binding {
                required.extend(r);
            }
        }
    }
    (all, required)
}

/// `value` has only fields `schema` documents, and every field it requires.
fn assert_documented(doc: &Value, schema: &str, value: &Value) {
    let (all, required) = fields(doc, &doc["components"]["schemas"][schema]);
    let got: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
    assert!(
        got.is_subset(&all),
        "{schema}: undocumented {:?}",
        got.difference(&all).collect::<Vec<_>>()
    );
    assert!(
        required.is_subset(&got),
        "{schema}: missing {:?}",
        required.difference(&got).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_served() {
    let api = Api::new(4);
    let (status, headers, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "no operator key needed: {doc}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{doc}"
    );

    // The paths and methods the router serves (the paths from the list it is built from, the
    // methods from the router itself) are the document's, no more, no fewer.
    let mut served = BTreeMap::new();
    for path in route_paths() {
        let uri: Vec<&str> = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "probe-id"
                } else {
                    seg
                }
            })
            .collect();
        served.insert(
            path.to_owned(),
            served_methods(&api.app, &uri.join("/")).await,
        );
    }
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeMap<String, BTreeSet<String>> = paths
        .iter()
        .map(|(path, item)| {
            let methods = OPENAPI_METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect();
    assert_eq!(served, documented, "served (left) and documented (right)");
    assert!(served.keys().all(|p| p.starts_with("/api/v1/")));

    // Each operation: its path parameters are the path's, and every one but the document's
    // own needs the operator key's bearer scheme and says what a missing key answers.
    let scheme = &doc["components"]["securitySchemes"]["operator_key"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    for (path, item) in paths {
        for method in OPENAPI_METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let op = &item[*method];
            let template: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let params: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(params, template, "{method} {path}: path parameters");
            if path == "/api/v1/openapi.json" {
                assert!(op.get("security").is_none(), "{method} {path} needs no key");
            } else {
                assert_eq!(
                    op["security"],
                    json!([{"operator_key": []}]),
                    "{method} {path}"
                );
                assert!(op["responses"].get("401").is_some(), "{method} {path}: 401");
            }
        }
    }
    check_refs(&doc, &doc);
}

#[tokio::test]
async fn the_answers_carry_the_fields_the_document_describes() {
    let api = Api::new(4);
    let (_, _, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let (status, _, created) = api.create(json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap().to_owned();
    let session = format!("/api/v1/sessions/{id}");
    let (_, _, list) = api
        .call(Method::GET, "/api/v1/sessions", Some(KEY), None)
        .await;
    let (_, _, token) = api
        .call(
            Method::POST,
            &format!("{session}/tokens"),
            Some(KEY),
            Some(json!({"role": "view"})),
        )
        .await;
    let token_id = token["token_id"].as_str().unwrap().to_owned();
    let (_, _, revoked) = api
        .call(
            Method::DELETE,
            &format!("{session}/tokens/{token_id}"),
            Some(KEY),
            None,
        )
        .await;
    let (_, _, nodes) = api
        .call(Method::GET, "/api/v1/nodes", Some(KEY), None)
        .await;
    api.call(Method::DELETE, &session, Some(KEY), None).await;
    let (_, _, ended) = api.call(Method::GET, &session, Some(KEY), None).await;
    for (schema, value) in [
        ("Session", &created),
        ("Session", &list[0]),
        ("Session", &ended),
        ("SessionSpec", &created["spec"]),
        ("JoinToken", &token),
        ("Revoked", &revoked),
        ("Node", &nodes[0]),
    ] {
        assert_documented(&doc, schema, value);
    }
}

#[tokio::test]
async fn metrics_count_refusals_and_sessions_by_state_readyz_says_why() {
    let api = Api::new(4);
    api.create(json!({})).await;
    api.call(Method::GET, "/api/v1/sessions", None, None).await; // 401
    api.call(Method::GET, "/api/v1/sessions/nope", Some(KEY), None)
        .await; // 404
    api.create(json!({"fps": 0})).await; // 422
    let (s, _, text) = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap().to_owned();
    for line in [
        "edgedesk_requests_rejected_total{status=\"401\"} 1",
        "edgedesk_requests_rejected_total{status=\"404\"} 1",
        "edgedesk_requests_rejected_total{status=\"422\"} 1",
        "edgedesk_requests_rejected_total{status=\"503\"} 0",
        "edgedesk_sessions_by_state{state=\"starting\"}",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line} in\n{text}"
        );
    }
    assert_eq!(
        text.matches("# HELP edgedesk_requests_rejected_total")
            .count(),
        1
    );

    let (s, _, body) = api.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((s, body), (StatusCode::OK, Value::String("ready".into())));
    let state = AppState::new(Arc::new(NoViewers), Arc::new(Tokens::random()))
        .with_readiness(|| Err("Xvfb is not installed".into()));
    let res = app(state)
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Xvfb is not installed");
}
