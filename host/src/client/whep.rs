//! The WHEP side of the headless client (RFC 9725 and the WHEP draft): OPTIONS for the ICE
//! servers, POST the offer (following `307`/`308` redirects), DELETE the resource. Every
//! failure is one line that says what was asked of whom and what came back.

use std::time::Duration;

use webrtc::peer_connection::RTCIceServer;

use super::ClientError;

/// Redirects followed before giving up (a loop, or a chain nobody should build).
const MAX_REDIRECTS: usize = 5;

/// What a WHEP server answered.
#[derive(Debug, Clone)]
pub struct WhepAnswer {
    /// Absolute URL of the WHEP resource (for PATCH/DELETE).
    pub resource_url: String,
    pub etag: Option<String>,
    pub answer_sdp: String,
    /// The endpoint that answered, after redirects.
    pub endpoint: String,
    /// The STUN/TURN servers of the answer's `Link: <…>; rel="ice-server"` headers.
    pub ice_servers: Vec<RTCIceServer>,
}

fn agent() -> ureq::Agent {
    // Redirects are followed by hand: ureq would turn a redirected POST into a GET.
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(10))
        .build()
}

fn with_token(req: ureq::Request, token: Option<&str>) -> ureq::Request {
    match token {
        Some(t) => req.set("Authorization", &format!("Bearer {t}")),
        None => req,
    }
}

/// The ICE servers an endpoint advertises to `OPTIONS` (as WHIP/WHEP servers may, so that a
/// client can gather relay candidates before its offer). Servers that do not answer `OPTIONS`
/// give an empty list; only a server that cannot be reached at all is an error.
pub fn whep_options(endpoint: &str, token: Option<&str>) -> Result<Vec<RTCIceServer>, ClientError> {
    let agent = agent();
    let mut url = endpoint.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let req = with_token(agent.request("OPTIONS", &url), token);
        match req.call() {
            Ok(resp) if matches!(resp.status(), 307 | 308) => match resp.header("Location") {
                Some(location) => url = resolve_url(&url, location),
                None => return Ok(Vec::new()),
            },
            Ok(resp) => return Ok(ice_servers(&resp)),
            Err(ureq::Error::Status(..)) => return Ok(Vec::new()),
            Err(e) => {
                return Err(ClientError::Protocol(format!(
                    "cannot reach {url}: {}",
                    transport_error(&e)
                )))
            }
        }
    }
    Ok(Vec::new())
}

/// POSTs `offer` to a WHEP endpoint (blocking; call from `spawn_blocking`), following `307` and
/// `308` redirects with the same offer.
pub fn whep_post(
    endpoint: &str,
    token: Option<&str>,
    offer: &str,
) -> Result<WhepAnswer, ClientError> {
    let agent = agent();
    let mut url = endpoint.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let req = with_token(agent.post(&url), token).set("Content-Type", "application/sdp");
        let resp = match req.send_string(offer) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                let body = body.trim();
                return Err(ClientError::Protocol(format!(
                    "WHEP server {url} answered {code}{}{}",
                    if body.is_empty() { "" } else { ": " },
                    one_line(body)
                )));
            }
            Err(e) => {
                return Err(ClientError::Protocol(format!(
                    "cannot reach {url}: {}",
                    transport_error(&e)
                )))
            }
        };
        match resp.status() {
            201 => {}
            307 | 308 => {
                let location = resp.header("Location").ok_or_else(|| {
                    ClientError::Protocol(format!(
                        "WHEP server {url} redirected ({}) without a Location",
                        resp.status()
                    ))
                })?;
                url = resolve_url(&url, location);
                continue;
            }
            s => {
                return Err(ClientError::Protocol(format!(
                    "WHEP server {url} answered {s} {} instead of 201 Created",
                    resp.status_text()
                )))
            }
        }
        let location = resp.header("Location").ok_or_else(|| {
            ClientError::Protocol(format!("WHEP server {url} answered 201 without a Location"))
        })?;
        let resource_url = resolve_url(&url, location);
        let etag = resp.header("ETag").map(str::to_owned);
        let ice_servers = ice_servers(&resp);
        let content_type = resp.content_type().to_owned();
        let answer_sdp = resp
            .into_string()
            .map_err(|e| ClientError::Protocol(format!("reading the answer from {url}: {e}")))?;
        if !answer_sdp.trim_start().starts_with("v=0") {
            return Err(ClientError::Protocol(format!(
                "WHEP server {url} answered 201 with no SDP (Content-Type {content_type})"
            )));
        }
        return Ok(WhepAnswer {
            resource_url,
            etag,
            answer_sdp,
            endpoint: url,
            ice_servers,
        });
    }
    Err(ClientError::Protocol(format!(
        "more than {MAX_REDIRECTS} redirects from {endpoint} (last to {url})"
    )))
}

/// DELETEs a WHEP resource (blocking).
pub fn whep_delete(resource_url: &str, token: Option<&str>) -> Result<(), ClientError> {
    let req = with_token(agent().delete(resource_url), token);
    req.call()
        .map(|_| ())
        .map_err(|e| ClientError::Protocol(format!("DELETE {resource_url}: {e}")))
}

fn transport_error(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Transport(t) => {
            let mut s = t.kind().to_string();
            if let Some(m) = t.message() {
                s.push_str(": ");
                s.push_str(m);
            }
            if let Some(src) = std::error::Error::source(t) {
                s.push_str(&format!(" ({src})"));
            }
            s
        }
        other => other.to_string(),
    }
}

fn one_line(s: &str) -> String {
    let mut out: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > 300 {
        let mut cut = 300;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn ice_servers(resp: &ureq::Response) -> Vec<RTCIceServer> {
    let values: Vec<&str> = resp.all("Link");
    parse_ice_links(&values)
}

/// The `rel="ice-server"` links of `Link` header values (RFC 8288, as WHIP/WHEP use them:
/// `<turn:host?transport=udp>; rel="ice-server"; username="u"; credential="c";
/// credential-type="password"`). Several links may share one value, comma-separated; other
/// relations are skipped, and so are links whose URL is not `stun:`, `stuns:`, `turn:` or
/// `turns:`.
pub fn parse_ice_links(values: &[&str]) -> Vec<RTCIceServer> {
    let mut out = Vec::new();
    for value in values {
        for link in split_links(value) {
            let Some((url, params)) = parse_link(&link) else {
                continue;
            };
            let rel = params.iter().find(|(k, _)| k == "rel").map(|(_, v)| v);
            if !rel.is_some_and(|r| r.split_whitespace().any(|r| r == "ice-server")) {
                continue;
            }
            let scheme = url.split(':').next().unwrap_or("");
            if !["stun", "stuns", "turn", "turns"].contains(&scheme) {
                continue;
            }
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            out.push(RTCIceServer {
                urls: vec![url],
                username: get("username"),
                credential: get("credential"),
            });
        }
    }
    out
}

/// Splits a `Link` value at the commas between links (not those inside `<…>` or quotes).
fn split_links(value: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut in_url, mut in_quote, mut escaped) = (false, false, false);
    for c in value.chars() {
        if in_quote {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '<' => in_url = true,
            '>' => in_url = false,
            '"' if !in_url => in_quote = true,
            ',' if !in_url => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.retain(|l| !l.trim().is_empty());
    out
}

/// `<url>; k=v; k="quoted \" value"` → the URL and the (lower-cased key, unquoted value) pairs.
fn parse_link(link: &str) -> Option<(String, Vec<(String, String)>)> {
    let link = link.trim();
    let rest = link.strip_prefix('<')?;
    let end = rest.find('>')?;
    let url = rest[..end].trim().to_owned();
    let mut params = Vec::new();
    let mut chars = rest[end + 1..].chars().peekable();
    loop {
        // Skip to the next parameter.
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_owned();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), value));
    }
    Some((url, params))
}

/// Resolves a `Location` header against the endpoint it came from.
pub fn resolve_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    if location.starts_with('/') {
        format!("{}{}", &base[..host_end], location)
    } else {
        let dir_end = base
            .rfind('/')
            .filter(|&i| i >= host_end)
            .unwrap_or(host_end);
        format!("{}/{}", &base[..dir_end], location)
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_ice_links, resolve_url};

    #[test]
    fn resolves_locations() {
        let b = "http://127.0.0.1:8080/whep/default";
        assert_eq!(
            resolve_url(b, "/whep/default/abc"),
            "http://127.0.0.1:8080/whep/default/abc"
        );
        assert_eq!(resolve_url(b, "abc"), "http://127.0.0.1:8080/whep/abc");
        assert_eq!(resolve_url(b, "https://x/y"), "https://x/y");
    }

    #[test]
    fn reads_ice_server_links() {
        // As edgedesk writes them (signaling/src/http/headers.rs), two in one value, and links
        // of other relations or schemes that are not ICE servers.
        let values = [
            r#"<stun:stun.example.net>; rel="ice-server""#,
            r#"<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="pa\"ss, x"; credential-type="password", <turns:t2.example.net:5349>; rel=ice-server; username=u2; credential=c2"#,
            r#"<https://example.net/help>; rel="help", <http://x>; rel="ice-server""#,
            "garbage, <stun:ok.example.net>;REL=\"ice-server other\"",
        ];
        let servers = parse_ice_links(&values);
        let got: Vec<(&str, &str, &str)> = servers
            .iter()
            .map(|s| {
                (
                    s.urls[0].as_str(),
                    s.username.as_str(),
                    s.credential.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("stun:stun.example.net", "", ""),
                ("turn:turn.example.net?transport=udp", "user", "pa\"ss, x"),
                ("turns:t2.example.net:5349", "u2", "c2"),
                ("stun:ok.example.net", "", ""),
            ]
        );
    }
}
