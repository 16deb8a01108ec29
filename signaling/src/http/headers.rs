//! Header helpers for the WHEP routes: ICE-server `Link` values, resource ETags and
//! `If-Match`, `Authorization: Bearer`, media types, CORS. Pure functions, unit-tested here.

use std::fmt;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `Accept-Post` / the offer media type.
pub(crate) const SDP: &str = "application/sdp";
/// `Accept-Patch` / the trickle media type (RFC 8840).
pub(crate) const TRICKLE: &str = "application/trickle-ice-sdpfrag";

/// CORS: request headers a browser may send.
pub(crate) const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match";
/// CORS: response headers a browser script may read.
const CORS_EXPOSE_HEADERS: &str = "Location, ETag, Link, Accept-Patch, Accept-Post, Retry-After";
/// CORS: how long a browser may cache a preflight (seconds).
pub(crate) const CORS_MAX_AGE: &str = "600";

/// One STUN or TURN server, advertised to clients in a `Link: <url>; rel="ice-server"` header
/// per URL (RFC 9725). TURN servers carry `username` and `credential` (sent with
/// `credential-type="password"`); for now these are plain configuration.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct IceServer {
    /// `stun:`, `stuns:`, `turn:` or `turns:` URLs (RFC 7064/7065), e.g.
    /// `turn:turn.example.net:3478?transport=udp`.
    pub urls: Vec<String>,
    /// TURN user name; set together with `credential`.
    #[serde(default)]
    pub username: Option<String>,
    /// TURN password; set together with `username`.
    #[serde(default)]
    pub credential: Option<String>,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// An [`IceServer`] that cannot be advertised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IceServerError {
    /// The server lists no URL.
    #[error("ICE server has no URL")]
    NoUrls,
    /// Not a `stun:`/`stuns:`/`turn:`/`turns:` URL of visible ASCII without `<>"` or spaces.
    #[error(
        "bad ICE server URL {0:?}: expected stun:, stuns:, turn: or turns: and no spaces or <>\""
    )]
    BadUrl(String),
    /// Only one of `username` and `credential` is set.
    #[error("ICE server {0:?}: username and credential must be set together")]
    CredentialsIncomplete(String),
    /// The user name or credential holds characters outside printable ASCII.
    #[error("ICE server {0:?}: username and credential must be printable ASCII")]
    BadCredential(String),
}

/// TURN servers with short-lived credentials minted per answer, as coturn checks them with
/// `use-auth-secret` / `static-auth-secret` (the "TURN REST API" draft,
/// draft-uberti-behave-turn-rest): user name `EXPIRY:edgedesk-RANDOM` (Unix seconds),
/// password base64(HMAC-SHA1(secret, user name)). The secret never leaves the server.
#[derive(Clone)]
pub struct TurnRest {
    /// `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    pub secret: String,
    /// How long a minted credential is valid (coturn refuses an allocation or refresh after).
    pub ttl: std::time::Duration,
}

impl fmt::Debug for TurnRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnRest")
            .field("urls", &self.urls)
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TurnRest {
    /// The user name and password valid until `now_unix + ttl`.
    pub fn credentials(&self, now_unix: u64, tag: &str) -> (String, String) {
        use base64::Engine as _;
        use hmac::Mac as _;
        let user = format!("{}:edgedesk-{tag}", now_unix + self.ttl.as_secs());
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(self.secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(user.as_bytes());
        let password =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        (user, password)
    }
}

/// The configured servers and their precomputed `Link` header values.
#[derive(Debug, Default, Clone)]
pub(crate) struct IceLinks {
    servers: Vec<IceServer>,
    /// TURN with per-answer credentials.
    turn: Option<TurnRest>,
    /// One value per URL of every server.
    all: Vec<HeaderValue>,
    /// Only servers without credentials: safe to show to unauthenticated requests.
    public: Vec<HeaderValue>,
}

impl IceLinks {
    /// Validate `servers` and build their header values.
    pub(crate) fn new(servers: Vec<IceServer>) -> Result<Self, IceServerError> {
        let mut all = Vec::new();
        let mut public = Vec::new();
        for server in &servers {
            let first = server.urls.first().ok_or(IceServerError::NoUrls)?;
            let creds = match (&server.username, &server.credential) {
                (Some(u), Some(c)) => Some((u.as_str(), c.as_str())),
                (None, None) => None,
                _ => return Err(IceServerError::CredentialsIncomplete(first.clone())),
            };
            for url in &server.urls {
                let value = link_value(url, creds)?;
                if creds.is_none() {
                    public.push(value.clone());
                }
                all.push(value);
            }
        }
        Ok(Self {
            servers,
            turn: None,
            all,
            public,
        })
    }

    /// Adds TURN servers with per-answer credentials; their URLs are checked here.
    pub(crate) fn with_turn(mut self, turn: TurnRest) -> Result<Self, IceServerError> {
        for url in &turn.urls {
            if !url.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("turn")) {
                return Err(IceServerError::BadUrl(url.clone()));
            }
            link_value(url, Some(("u", "p")))?;
        }
        if turn.urls.is_empty() {
            return Err(IceServerError::NoUrls);
        }
        self.turn = Some(turn);
        Ok(self)
    }

    pub(crate) fn servers(&self) -> &[IceServer] {
        &self.servers
    }

    /// The `Link` values to send: all of them to an authorised request (TURN REST servers
    /// with credentials minted now), else only those without credentials.
    pub(crate) fn links(&self, authorised: bool) -> Vec<HeaderValue> {
        if !authorised {
            return self.public.clone();
        }
        let mut out = self.all.clone();
        if let Some(turn) = &self.turn {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let tag = format!("{:08x}", rand::random::<u32>());
            let (user, password) = turn.credentials(now, &tag);
            // Checked at start with placeholder credentials; these are printable ASCII too.
            out.extend(
                turn.urls
                    .iter()
                    .filter_map(|url| link_value(url, Some((&user, &password))).ok()),
            );
        }
        out
    }
}

/// `<url>; rel="ice-server"[; username="…"; credential="…"; credential-type="password"]`.
fn link_value(url: &str, creds: Option<(&str, &str)>) -> Result<HeaderValue, IceServerError> {
    let scheme_ok = ["stun:", "stuns:", "turn:", "turns:"]
        .iter()
        .any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s));
    let chars_ok = url
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"'));
    if !scheme_ok || !chars_ok {
        return Err(IceServerError::BadUrl(url.to_owned()));
    }
    let mut value = format!("<{url}>; rel=\"ice-server\"");
    if let Some((username, credential)) = creds {
        let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !printable(username) || !printable(credential) {
            return Err(IceServerError::BadCredential(url.to_owned()));
        }
        let (username, credential) = (quote(username), quote(credential));
        value = format!(
            "{value}; username=\"{username}\"; credential=\"{credential}\"; credential-type=\"password\""
        );
    }
    HeaderValue::from_str(&value).map_err(|_| IceServerError::BadUrl(url.to_owned()))
}

/// Escape `"` and `\` for an HTTP quoted-string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Derives resource ETags: a keyed hash of session and viewer id (see the module docs of
/// [`crate::http`] for why nothing is stored).
pub(crate) struct EtagKey(Hmac<Sha256>);

impl EtagKey {
    /// A key from fresh random bytes.
    pub(crate) fn random() -> Self {
        Self::new(&rand::random::<[u8; 32]>())
    }

    fn new(key: &[u8]) -> Self {
        Self(Hmac::new_from_slice(key).expect("HMAC accepts keys of any length"))
    }

    /// The opaque tag (without quotes) of resource `session`/`viewer`.
    pub(crate) fn etag(&self, session: &str, viewer: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(session.as_bytes());
        mac.update(&[0]);
        mac.update(viewer.as_bytes());
        let digest = mac.finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(&digest[..16])
    }
}

/// A parsed `If-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IfMatch {
    /// `If-Match: *`.
    Any,
    /// Strong entity tags, without quotes. Weak tags (`W/"…"`) never match (RFC 9110 §13.1.1
    /// uses the strong comparison) and are dropped.
    Tags(Vec<String>),
}

impl IfMatch {
    /// Parse every `If-Match` header of a request; `None` when there is none.
    /// Malformed members are dropped, so a header of only garbage matches nothing (412).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(header::IF_MATCH).iter().peekable();
        values.peek()?;
        let mut tags = Vec::new();
        for value in values {
            let Ok(text) = value.to_str() else { continue };
            for member in text.split(',').map(str::trim) {
                if member == "*" {
                    return Some(Self::Any);
                }
                if let Some(tag) = member
                    .strip_prefix('"')
                    .and_then(|m| m.strip_suffix('"'))
                    .filter(|t| !t.contains('"'))
                {
                    tags.push(tag.to_owned());
                }
            }
        }
        Some(Self::Tags(tags))
    }

    /// Whether `etag` (without quotes) is among the listed tags.
    pub(crate) fn matches(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| t == etag),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), if any.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether the request's `Content-Type` is `expected` (parameters ignored, case-insensitive).
pub(crate) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(expected))
}

/// Middleware for the WHEP routes: CORS headers on every response, errors included.
pub(crate) async fn add_cors_headers(mut res: Response) -> Response {
    let headers = res.headers_mut();
    set_default(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    set_default(
        headers,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        CORS_EXPOSE_HEADERS,
    );
    res
}

fn set_default(headers: &mut HeaderMap, name: HeaderName, value: &'static str) {
    headers
        .entry(name)
        .or_insert_with(|| HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(urls: &[&str], creds: Option<(&str, &str)>) -> IceServer {
        IceServer {
            urls: urls.iter().map(|s| s.to_string()).collect(),
            username: creds.map(|c| c.0.to_owned()),
            credential: creds.map(|c| c.1.to_owned()),
        }
    }

    #[test]
    fn link_values_follow_whip() {
        let links = IceLinks::new(vec![
            server(&["stun:stun.example.net"], None),
            server(
                &[
                    "turn:turn.example.net?transport=udp",
                    "turns:turn.example.net",
                ],
                Some(("user", "pa\"ss")),
            ),
        ])
        .unwrap();
        let values = links.links(true);
        let all: Vec<&str> = values.iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(
            all,
            [
                r#"<stun:stun.example.net>; rel="ice-server""#,
                r#"<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="pa\"ss"; credential-type="password""#,
                r#"<turns:turn.example.net>; rel="ice-server"; username="user"; credential="pa\"ss"; credential-type="password""#,
            ]
        );
        assert_eq!(links.links(false), &links.links(true)[..1]);
    }

    /// coturn's check, by hand: base64(HMAC-SHA1(secret, "EXPIRY:user")), the expiry the
    /// TTL after now; a fresh user per answer; nothing minted for an unauthorised request.
    #[test]
    fn turn_rest_credentials_are_what_coturn_checks() {
        let turn = TurnRest {
            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            secret: "north".into(),
            ttl: std::time::Duration::from_secs(600),
        };
        let (user, password) = turn.credentials(1_700_000_000, "ab12");
        assert_eq!(user, "1700000600:edgedesk-ab12");
        // echo -n 1700000600:edgedesk-ab12 | openssl dgst -sha1 -hmac north -binary | base64
        assert_eq!(password, "b5GH3Jv11j/E4dW1Hi4xaWzmPUk=");
        let links = IceLinks::new(vec![server(&["stun:stun.example.net"], None)])
            .unwrap()
            .with_turn(turn.clone())
            .unwrap();
        let (a, b) = (links.links(true), links.links(true));
        assert_eq!(a.len(), 2);
        let turn_link = a[1].to_str().unwrap();
        assert!(turn_link
            .starts_with(r#"<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username=""#));
        assert_ne!(a[1], b[1], "a fresh credential per answer");
        assert_eq!(links.links(false).len(), 1);
        let bad = TurnRest {
            urls: vec!["stun:x".into()],
            ..turn
        };
        assert!(IceLinks::default().with_turn(bad).is_err());
    }

    #[test]
    fn bad_ice_servers_are_refused() {
        let bad = |s: IceServer| IceLinks::new(vec![s]).unwrap_err();
        assert_eq!(bad(server(&[], None)), IceServerError::NoUrls);
        assert!(matches!(
            bad(server(&["http://x"], None)),
            IceServerError::BadUrl(_)
        ));
        assert!(matches!(
            bad(server(&["stun:"], None)),
            IceServerError::BadUrl(_)
        ));
        assert!(matches!(
            bad(server(&["stun:a b"], None)),
            IceServerError::BadUrl(_)
        ));
        assert!(matches!(
            bad(server(&["stun:a>"], None)),
            IceServerError::BadUrl(_)
        ));
        assert!(matches!(
            bad(server(&["turn:x"], Some(("u\n", "p")))),
            IceServerError::BadCredential(_)
        ));
        let half = IceServer {
            username: Some("u".into()),
            ..server(&["turn:x"], None)
        };
        assert!(matches!(
            bad(half),
            IceServerError::CredentialsIncomplete(_)
        ));
    }

    #[test]
    fn ice_server_debug_hides_credential() {
        let s = server(&["turn:x"], Some(("u", "secret-pw")));
        assert!(!format!("{s:?}").contains("secret-pw"));
    }

    #[test]
    fn etags_are_stable_and_distinct() {
        let k = EtagKey::new(&[1; 32]);
        assert_eq!(k.etag("s", "v"), k.etag("s", "v"));
        assert_ne!(k.etag("s", "v"), k.etag("s", "w"));
        assert_ne!(k.etag("s1", "v"), k.etag("s", "1v"), "fields are separated");
        assert_ne!(k.etag("s", "v"), EtagKey::new(&[2; 32]).etag("s", "v"));
        assert!(HeaderValue::from_str(&format!("\"{}\"", k.etag("s", "v"))).is_ok());
    }

    fn if_match(values: &[&str]) -> Option<IfMatch> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
        }
        IfMatch::from_headers(&h)
    }

    #[test]
    fn if_match_parsing() {
        assert_eq!(if_match(&[]), None);
        assert_eq!(if_match(&["*"]), Some(IfMatch::Any));
        assert_eq!(if_match(&["\"a\""]), Some(IfMatch::Tags(vec!["a".into()])));
        assert_eq!(
            if_match(&["\"a\", W/\"b\"", "\"c\""]),
            Some(IfMatch::Tags(vec!["a".into(), "c".into()]))
        );
        assert_eq!(if_match(&["garbage"]), Some(IfMatch::Tags(vec![])));
        assert!(if_match(&["\"x\", \"y\""]).unwrap().matches("y"));
        assert!(!if_match(&["W/\"y\""]).unwrap().matches("y"));
        assert!(
            !if_match(&["y"]).unwrap().matches("y"),
            "tags must be quoted"
        );
        assert!(if_match(&["*"]).unwrap().matches("anything"));
    }

    #[test]
    fn bearer_parsing() {
        let h = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(bearer_token(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&h("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&h("Basic abc")), None);
        assert_eq!(bearer_token(&h("Bearer")), None);
        assert_eq!(bearer_token(&h("Bearer ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn content_type_matching() {
        let h = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(content_type_is(&h("application/sdp"), SDP));
        assert!(content_type_is(&h("Application/SDP; charset=utf-8"), SDP));
        assert!(!content_type_is(&h("application/sdpx"), SDP));
        assert!(!content_type_is(&h("text/plain"), SDP));
        assert!(!content_type_is(&HeaderMap::new(), SDP));
    }
}
