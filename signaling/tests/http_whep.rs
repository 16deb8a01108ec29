//! The WHEP front door end to end through `app(state)` with a recording fake backend; no
//! socket (`tower::ServiceExt::oneshot`).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use signaling::backend::{BackendError, Role, TrickleFragment, ViewerAnswer, WhepBackend};
use signaling::http::{app, AppState, IceServer, MAX_OFFER_BYTES};
use signaling::tokens::Tokens;
use tower::ServiceExt;

const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n";
const ANSWER: &str =
    "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
const CAND: &str = "candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host";
const SECRET_DETAIL: &str = "encoder exploded at /srv/secret/path";
const HOUR: Duration = Duration::from_secs(3600);

/// What the fake backend was asked to do.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Create {
        session: String,
        offer: String,
        role: Role,
    },
    Add {
        session: String,
        viewer: String,
        fragment: TrickleFragment,
    },
    Delete {
        session: String,
        viewer: String,
    },
}

/// A failure the next `create_viewer` returns.
enum Fail {
    Full(u32),
    BadOffer,
    Internal,
}

/// Sessions `s1` and `s2`; viewers `v1`, `v2`, … in creation order.
#[derive(Default)]
struct Fake {
    viewers: Mutex<HashSet<(String, String)>>,
    created: Mutex<u32>,
    fail_next: Mutex<VecDeque<Fail>>,
    calls: Mutex<Vec<Call>>,
}

impl Fake {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    fn fail_next(&self, f: Fail) {
        self.fail_next.lock().unwrap().push_back(f);
    }
}

#[async_trait]
impl WhepBackend for Fake {
    fn has_session(&self, session: &str) -> bool {
        session == "s1" || session == "s2"
    }

    async fn create_viewer(
        &self,
        session: &str,
        offer_sdp: String,
        role: Role,
        _token_id: Option<String>,
    ) -> Result<ViewerAnswer, BackendError> {
        self.calls.lock().unwrap().push(Call::Create {
            session: session.into(),
            offer: offer_sdp,
            role,
        });
        if let Some(f) = self.fail_next.lock().unwrap().pop_front() {
            return Err(match f {
                Fail::Full(secs) => BackendError::Full {
                    retry_after_secs: secs,
                },
                Fail::BadOffer => BackendError::BadOffer(SECRET_DETAIL.into()),
                Fail::Internal => BackendError::Internal(SECRET_DETAIL.into()),
            });
        }
        if !self.has_session(session) {
            return Err(BackendError::UnknownSession);
        }
        let mut n = self.created.lock().unwrap();
        *n += 1;
        let viewer_id = format!("v{n}");
        self.viewers
            .lock()
            .unwrap()
            .insert((session.into(), viewer_id.clone()));
        Ok(ViewerAnswer {
            viewer_id,
            answer_sdp: ANSWER.into(),
        })
    }

    async fn add_candidates(
        &self,
        session: &str,
        viewer_id: &str,
        fragment: TrickleFragment,
    ) -> Result<(), BackendError> {
        self.calls.lock().unwrap().push(Call::Add {
            session: session.into(),
            viewer: viewer_id.into(),
            fragment,
        });
        let known = self
            .viewers
            .lock()
            .unwrap()
            .contains(&(session.into(), viewer_id.into()));
        known.then_some(()).ok_or(BackendError::UnknownViewer)
    }

    async fn delete_viewer(&self, session: &str, viewer_id: &str) -> Result<(), BackendError> {
        self.calls.lock().unwrap().push(Call::Delete {
            session: session.into(),
            viewer: viewer_id.into(),
        });
        let removed = self
            .viewers
            .lock()
            .unwrap()
            .remove(&(session.into(), viewer_id.into()));
        removed.then_some(()).ok_or(BackendError::UnknownViewer)
    }

    async fn metrics_text(&self) -> String {
        "edgedesk_sessions 2\n".into()
    }
}

struct Harness {
    fake: Arc<Fake>,
    tokens: Arc<Tokens>,
    app: Router,
}

fn harness() -> Harness {
    let fake = Arc::new(Fake::default());
    let tokens = Arc::new(
        Tokens::new([9; 32])
            .with_static("operator-static-token", Role::Control)
            .unwrap(),
    );
    let state = AppState::new(fake.clone(), tokens.clone())
        .with_ice_servers(vec![
            IceServer {
                urls: vec!["stun:stun.example.net:3478".into()],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec!["turn:turn.example.net:3478?transport=udp".into()],
                username: Some("user".into()),
                credential: Some("turn-pass".into()),
            },
        ])
        .unwrap();
    Harness {
        fake,
        tokens,
        app: app(state),
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }
}

impl Harness {
    fn token(&self, session: &str, role: Role) -> String {
        self.tokens.issue(session, role, HOUR)
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn post(
        &self,
        session: &str,
        token: Option<&str>,
        ct: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut req = Request::post(format!("/whep/{session}"));
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        self.send(req.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    /// A good offer with a control token for `s1`.
    async fn post_ok(&self) -> Reply {
        let token = self.token("s1", Role::Control);
        let r = self
            .post("s1", Some(&token), Some("application/sdp"), OFFER)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r
    }

    async fn patch(
        &self,
        path: &str,
        token: Option<&str>,
        if_match: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut req =
            Request::patch(path).header(header::CONTENT_TYPE, "application/trickle-ice-sdpfrag");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(m) = if_match {
            req = req.header(header::IF_MATCH, m);
        }
        self.send(req.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = Request::delete(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }
}

fn assert_text_error(r: &Reply, status: StatusCode) {
    assert_eq!(r.status, status, "body: {}", r.body);
    assert!(
        r.header("content-type").starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    assert!(!r.body.is_empty() && r.body.len() < 100, "{}", r.body);
    assert!(!r.body.contains(SECRET_DETAIL));
    assert_eq!(
        r.header("access-control-allow-origin"),
        "*",
        "CORS on errors too"
    );
}

#[tokio::test]
async fn post_creates_viewer_with_all_headers() {
    let h = harness();
    let r = h.post_ok().await;
    assert_eq!(r.header("content-type"), "application/sdp");
    assert_eq!(r.header("location"), "/whep/s1/v1");
    let etag = r.header("etag");
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
        "{etag}"
    );
    assert_eq!(r.header("accept-patch"), "application/trickle-ice-sdpfrag");
    assert_eq!(
        r.all("link"),
        [
            r#"<stun:stun.example.net:3478>; rel="ice-server""#,
            r#"<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="user"; credential="turn-pass"; credential-type="password""#,
        ]
    );
    assert_eq!(r.header("access-control-allow-origin"), "*");
    let expose = r.header("access-control-expose-headers");
    for name in ["Location", "ETag", "Link", "Accept-Patch", "Retry-After"] {
        assert!(expose.contains(name), "{expose}");
    }
    assert_eq!(r.body, ANSWER);
    assert_eq!(
        h.fake.calls(),
        [Call::Create {
            session: "s1".into(),
            offer: OFFER.into(),
            role: Role::Control
        }]
    );
}

#[tokio::test]
async fn view_token_passes_view_role() {
    let h = harness();
    let token = h.token("s2", Role::View);
    let r = h
        .post(
            "s2",
            Some(&token),
            Some("application/sdp; charset=utf-8"),
            OFFER,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(
        matches!(&h.fake.calls()[0], Call::Create { role: Role::View, session, .. } if session == "s2")
    );
}

#[tokio::test]
async fn static_token_works_for_any_session() {
    let h = harness();
    for s in ["s1", "s2"] {
        let r = h
            .post(
                s,
                Some("operator-static-token"),
                Some("application/sdp"),
                OFFER,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    assert!(h.fake.calls().iter().all(|c| matches!(
        c,
        Call::Create {
            role: Role::Control,
            ..
        }
    )));
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let h = harness();
    let token = h.token("s1", Role::Control);
    for ct in [
        None,
        Some("text/plain"),
        Some("application/sdpx"),
        Some("application/json"),
    ] {
        let r = h.post("s1", Some(&token), ct, OFFER).await;
        assert_text_error(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    assert!(h.fake.calls().is_empty());
}

#[tokio::test]
async fn malformed_offer_is_400() {
    let h = harness();
    let token = h.token("s1", Role::Control);
    for body in [
        "",
        "hello",
        "v=0\r\ns=-\r\n",
        "v=1\r\nm=video 9 RTP/AVP 0\r\n",
    ] {
        let r = h
            .post("s1", Some(&token), Some("application/sdp"), body)
            .await;
        assert_text_error(&r, StatusCode::BAD_REQUEST);
    }
    // Invalid UTF-8.
    let req = Request::post("/whep/s1")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(Body::from(b"v=0\r\nm=\xff\xfe\r\n".to_vec()))
        .unwrap();
    assert_text_error(&h.send(req).await, StatusCode::BAD_REQUEST);
    assert!(
        h.fake.calls().is_empty(),
        "syntax is checked before the backend"
    );

    // The backend's own refusal is a 400 too, without its detail.
    h.fake.fail_next(Fail::BadOffer);
    let r = h
        .post("s1", Some(&token), Some("application/sdp"), OFFER)
        .await;
    assert_text_error(&r, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, "malformed offer");
}

#[tokio::test]
async fn oversized_offer_is_413() {
    let h = harness();
    let token = h.token("s1", Role::Control);
    let mut big = String::from(OFFER);
    big.push_str(&"a=x-pad:0123456789\r\n".repeat(MAX_OFFER_BYTES / 20 + 1));
    assert!(big.len() > MAX_OFFER_BYTES);
    // Without Content-Length: caught while streaming.
    let r = h
        .post("s1", Some(&token), Some("application/sdp"), &big)
        .await;
    assert_text_error(&r, StatusCode::PAYLOAD_TOO_LARGE);
    // With a declared Content-Length: refused before reading.
    let req = Request::post("/whep/s1")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/sdp")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    assert_text_error(&h.send(req).await, StatusCode::PAYLOAD_TOO_LARGE);
    // Exactly at the cap is fine as far as size goes.
    let mut exact = String::from(OFFER);
    exact.push_str(&"x".repeat(MAX_OFFER_BYTES - OFFER.len()));
    let r = h
        .post("s1", Some(&token), Some("application/sdp"), &exact)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn token_failures_are_401() {
    let h = harness();
    let now = SystemTime::now();
    let expired = h.tokens.issue_at("s1", Role::Control, HOUR, now - 2 * HOUR);
    let wrong_session = h.token("s2", Role::Control);
    let other_key = Tokens::new([1; 32]).issue("s1", Role::Control, HOUR);
    let huge = "a".repeat(100_000);

    let r = h.post("s1", None, Some("application/sdp"), OFFER).await;
    assert_text_error(&r, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), "Bearer");
    assert_eq!(r.body, "missing token");

    for bad in [
        &expired,
        &wrong_session,
        &other_key,
        "garbage",
        huge.as_str(),
    ] {
        let r = h
            .post("s1", Some(bad), Some("application/sdp"), OFFER)
            .await;
        assert_text_error(&r, StatusCode::UNAUTHORIZED);
        assert!(r.header("www-authenticate").starts_with("Bearer"));
        assert_eq!(r.body, "invalid token");
    }

    // Another scheme counts as missing.
    let req = Request::post("/whep/s1")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .header(header::CONTENT_TYPE, "application/sdp")
        .body(Body::from(OFFER))
        .unwrap();
    assert_text_error(&h.send(req).await, StatusCode::UNAUTHORIZED);
    assert!(h.fake.calls().is_empty());
}

#[tokio::test]
async fn unknown_session_is_404() {
    let h = harness();
    let token = h.token("nope", Role::Control);
    let r = h
        .post("nope", Some(&token), Some("application/sdp"), OFFER)
        .await;
    assert_text_error(&r, StatusCode::NOT_FOUND);
    assert!(h.fake.calls().is_empty(), "has_session is asked first");
    // Ids that cannot exist are refused before anything else.
    let r = h
        .post(
            "bad%20id",
            Some("operator-static-token"),
            Some("application/sdp"),
            OFFER,
        )
        .await;
    assert_text_error(&r, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn full_session_is_503_with_retry_after() {
    let h = harness();
    h.fake.fail_next(Fail::Full(7));
    let token = h.token("s1", Role::Control);
    let r = h
        .post("s1", Some(&token), Some("application/sdp"), OFFER)
        .await;
    assert_text_error(&r, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("retry-after"), "7");
}

#[tokio::test]
async fn internal_error_hides_details_and_next_request_works() {
    let h = harness();
    h.fake.fail_next(Fail::Internal);
    let token = h.token("s1", Role::Control);
    let r = h
        .post("s1", Some(&token), Some("application/sdp"), OFFER)
        .await;
    assert_text_error(&r, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body, "internal error");

    // A failure leaves nothing behind.
    let r = h.post_ok().await;
    assert_eq!(r.header("location"), "/whep/s1/v1");
}

#[tokio::test]
async fn patch_trickle() {
    let h = harness();
    let created = h.post_ok().await;
    let location = created.header("location").to_owned();
    let etag = created.header("etag").to_owned();
    let token = h.token("s1", Role::View);
    let frag = format!("a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na={CAND}\r\na=end-of-candidates\r\n");

    // 428 without If-Match, 412 with a stale one; the backend hears nothing.
    assert_text_error(
        &h.patch(&location, Some(&token), None, &frag).await,
        StatusCode::PRECONDITION_REQUIRED,
    );
    assert_text_error(
        &h.patch(&location, Some(&token), Some("\"stale\""), &frag)
            .await,
        StatusCode::PRECONDITION_FAILED,
    );
    assert_eq!(h.fake.calls().len(), 1);

    let r = h.patch(&location, Some(&token), Some(&etag), &frag).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), "*");
    assert_eq!(
        h.fake.calls()[1],
        Call::Add {
            session: "s1".into(),
            viewer: "v1".into(),
            fragment: TrickleFragment {
                ice_ufrag: Some("EsAw".into()),
                ice_pwd: Some("bP+XJMM09aR8AiX1jdukzR6Y".into()),
                mid: Some("0".into()),
                candidates: vec![CAND.into()],
                end_of_candidates: true,
            }
        }
    );

    // A list holding the tag matches; `*` without credentials is a plain trickle.
    let list = format!("\"other\", {etag}");
    assert_eq!(
        h.patch(&location, Some(&token), Some(&list), &format!("a={CAND}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.patch(&location, Some(&token), Some("*"), "a=end-of-candidates")
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    // `*` with new credentials is an ICE restart: not supported yet.
    let restart = "a=ice-ufrag:NEWu\r\na=ice-pwd:NEWpasswordNEWpassword1\r\n";
    assert_text_error(
        &h.patch(&location, Some(&token), Some("*"), restart).await,
        StatusCode::NOT_IMPLEMENTED,
    );

    // Bad fragment, token and media type.
    assert_text_error(
        &h.patch(&location, Some(&token), Some(&etag), "nonsense")
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_text_error(
        &h.patch(&location, None, Some(&etag), &frag).await,
        StatusCode::UNAUTHORIZED,
    );
    let other = h.token("s2", Role::Control);
    assert_text_error(
        &h.patch(&location, Some(&other), Some(&etag), &frag).await,
        StatusCode::UNAUTHORIZED,
    );
    let big = format!("a={CAND}\r\n").repeat(1000);
    assert_text_error(
        &h.patch(&location, Some(&token), Some(&etag), &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    let req = Request::patch(&location)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/sdp")
        .header(header::IF_MATCH, &etag)
        .body(Body::from(frag.clone()))
        .unwrap();
    assert_text_error(&h.send(req).await, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        h.fake.calls().len(),
        4,
        "the create and three good patches, nothing else"
    );
}

#[tokio::test]
async fn patch_and_delete_unknown_viewer_is_404() {
    let h = harness();
    let created = h.post_ok().await;
    let location = created.header("location").to_owned();
    let etag = created.header("etag").to_owned();
    let token = h.token("s1", Role::Control);

    let r = h.delete(&location, Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), "*");
    assert_text_error(
        &h.delete(&location, Some(&token)).await,
        StatusCode::NOT_FOUND,
    );
    let r = h
        .patch(&location, Some(&token), Some(&etag), &format!("a={CAND}"))
        .await;
    assert_text_error(&r, StatusCode::NOT_FOUND);
    assert_text_error(
        &h.delete("/whep/s1/never", Some(&token)).await,
        StatusCode::NOT_FOUND,
    );
    assert_eq!(
        h.fake.calls()[1],
        Call::Delete {
            session: "s1".into(),
            viewer: "v1".into()
        }
    );
}

#[tokio::test]
async fn delete_needs_a_token_for_the_session() {
    let h = harness();
    let location = h.post_ok().await.header("location").to_owned();
    let r = h.delete(&location, None).await;
    assert_text_error(&r, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), "Bearer");
    let other = h.token("s2", Role::Control);
    assert_text_error(
        &h.delete(&location, Some(&other)).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(h.fake.calls().len(), 1, "no delete reached the backend");
    // A view token may end its own viewer.
    let view = h.token("s1", Role::View);
    assert_eq!(
        h.delete(&location, Some(&view)).await.status,
        StatusCode::OK
    );
}

async fn options(h: &Harness, path: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header(header::ORIGIN, "https://viewer.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    h.send(req.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn options_endpoint_answers_cors_and_discovery() {
    let h = harness();
    let r = options(&h, "/whep/s1", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("access-control-allow-origin"), "*");
    assert!(r.header("access-control-allow-methods").contains("POST"));
    let allow = r.header("access-control-allow-headers");
    for name in ["Authorization", "Content-Type", "If-Match"] {
        assert!(allow.contains(name), "{allow}");
    }
    let expose = r.header("access-control-expose-headers");
    for name in ["Location", "ETag", "Link", "Accept-Patch", "Retry-After"] {
        assert!(expose.contains(name), "{expose}");
    }
    assert_eq!(r.header("accept-post"), "application/sdp");
    // Without a token: only servers without credentials.
    assert_eq!(
        r.all("link"),
        [r#"<stun:stun.example.net:3478>; rel="ice-server""#]
    );
    // With a token: TURN too.
    let token = h.token("s1", Role::View);
    let r = options(&h, "/whep/s1", Some(&token)).await;
    assert_eq!(r.all("link").len(), 2);
    assert!(r.all("link")[1].contains("credential=\"turn-pass\""));
    assert!(h.fake.calls().is_empty());
}

#[tokio::test]
async fn options_resource_answers_cors() {
    let h = harness();
    let r = options(&h, "/whep/s1/v1", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("access-control-allow-origin"), "*");
    let methods = r.header("access-control-allow-methods");
    assert!(
        methods.contains("PATCH") && methods.contains("DELETE"),
        "{methods}"
    );
    assert!(r
        .header("access-control-allow-headers")
        .contains("If-Match"));
    assert_eq!(r.header("accept-patch"), "application/trickle-ice-sdpfrag");
}

#[tokio::test]
async fn healthz_and_wrong_methods() {
    let h = harness();
    let r = h
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    let r = h
        .send(Request::get("/whep/s1").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = h
        .send(
            Request::get("/no-such-file.js")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_are_the_backends_in_prometheus_text_format() {
    let h = harness();
    let r = h
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // The backend's samples, after the control plane's own families.
    assert!(r.body.ends_with("\nedgedesk_sessions 2\n"), "{}", r.body);
    assert!(r
        .body
        .contains("# TYPE edgedesk_requests_rejected_total counter\n"));
}

#[tokio::test]
async fn embedded_assets_are_served() {
    use signaling::assets;
    let h = harness();
    for path in assets::paths() {
        let asset = assets::get(path).unwrap();
        let r = h
            .send(
                Request::get(format!("/{path}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header("content-type"), asset.content_type);
        assert_eq!(r.header("cache-control"), "no-cache");
        assert_eq!(r.body.as_bytes(), asset.bytes, "{path}");
    }
    let index = assets::get("/index.html");
    let r = h.send(Request::get("/").body(Body::empty()).unwrap()).await;
    match index {
        Some(index) => {
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
            assert_eq!(r.body.as_bytes(), index.bytes);
        }
        None => assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "client-web/index.html absent"
        ),
    }
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/.gitignore",
        "/tests/",
        "/node_modules/x.js",
    ] {
        let r = h
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
}
