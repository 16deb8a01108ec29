//! Connecting the measuring client to any WHEP server, as a new user would point it at one:
//! candidates on every interface (the server may announce only its interface addresses, or be
//! on another machine), the STUN/TURN servers the endpoint advertises (`OPTIONS`, or the
//! answer's `Link` headers: then the offer is made again with them), redirects followed, every
//! codec this client decodes offered, and every failure one line.

use std::time::Instant;

use anyhow::{Context, Result};
use codec::Codec;
use host::client::{whep_delete, whep_options, whep_post, ClientOptions, ViewerClient};
use host::viewer::RTCIceServer;

/// Where the client binds by default: one socket per interface (loopback and link-local
/// excluded, as webrtc-rs expands the wildcard) and loopback, for a server on this machine
/// that announces only 127.0.0.1.
pub const DEFAULT_BIND: [&str; 2] = ["0.0.0.0:0", "127.0.0.1:0"];

/// How to reach the server.
#[derive(Clone, Debug)]
pub struct Target {
    pub whep: String,
    pub token: Option<String>,
    /// Video codecs offered, in order.
    pub codecs: Vec<Codec>,
    /// Local UDP addresses to gather on (`0.0.0.0:0`: every interface).
    pub bind: Vec<String>,
    /// STUN/TURN servers given on the command line; when empty, the endpoint's are used.
    pub ice_servers: Vec<RTCIceServer>,
}

/// A connected client, its WHEP resource and when its (last) offer was posted.
pub struct Connection {
    pub client: ViewerClient,
    pub resource_url: String,
    pub posted: Instant,
    /// The ICE servers the offer gathered with.
    pub ice_servers: Vec<RTCIceServer>,
    /// Lines worth a note in the report (redirects, a second offer).
    pub notes: Vec<String>,
}

/// The codecs this machine's decoders handle, in the order offered by default.
pub fn decodable_codecs() -> Vec<Codec> {
    [Codec::H264, Codec::Vp8, Codec::Vp9, Codec::Av1, Codec::Hevc]
        .into_iter()
        .filter(|&c| codec::decoder::Decoder::new(c).is_ok())
        .collect()
}

/// Offers, posts and applies the answer. The connection may still fail later (ICE, DTLS):
/// [`ViewerClient::why_no_video`] says how.
pub async fn connect(target: &Target) -> Result<Connection> {
    let mut notes = Vec::new();
    let mut servers = target.ice_servers.clone();
    if servers.is_empty() {
        let (w, t) = (target.whep.clone(), target.token.clone());
        servers = tokio::task::spawn_blocking(move || whep_options(&w, t.as_deref())).await??;
        if !servers.is_empty() {
            notes.push(format!("ICE servers from OPTIONS: {}", urls(&servers)));
        }
    }
    let mut endpoint = target.whep.clone();
    let mut offered_again = false;
    loop {
        let (client, offer) = ViewerClient::with_options(
            target.bind.clone(),
            ClientOptions {
                codecs: target.codecs.clone(),
                ice_servers: servers.clone(),
                ..Default::default()
            },
        )
        .await
        .context("setting up the WebRTC client")?;
        let posted = Instant::now();
        let (w, t) = (endpoint.clone(), target.token.clone());
        let answer =
            tokio::task::spawn_blocking(move || whep_post(&w, t.as_deref(), &offer)).await??;
        if answer.endpoint != endpoint {
            notes.push(format!("redirected to {}", answer.endpoint));
        }
        let missing: Vec<RTCIceServer> = answer
            .ice_servers
            .iter()
            .filter(|s| !servers.iter().any(|k| k.urls == s.urls))
            .cloned()
            .collect();
        if !missing.is_empty() && target.ice_servers.is_empty() && !offered_again {
            offered_again = true;
            // The answer names ICE servers the offer did not gather from (a server that
            // advertises them only on POST): offer again with them.
            notes.push(format!(
                "the answer named ICE servers the offer lacked ({}): offered again with them",
                urls(&missing)
            ));
            delete(&answer.resource_url, &target.token).await;
            client.close().await;
            servers.extend(missing);
            endpoint = answer.endpoint;
            continue;
        }
        if let Err(e) = client.accept_answer(answer.answer_sdp).await {
            delete(&answer.resource_url, &target.token).await;
            client.close().await;
            return Err(anyhow::Error::new(e).context(format!("answer from {}", answer.endpoint)));
        }
        return Ok(Connection {
            client,
            resource_url: answer.resource_url,
            posted,
            ice_servers: servers,
            notes,
        });
    }
}

impl Connection {
    /// Ends the WHEP session (DELETE) and the peer connection.
    pub async fn close(self, token: &Option<String>) {
        delete(&self.resource_url, token).await;
        self.client.close().await;
    }
}

async fn delete(url: &str, token: &Option<String>) {
    let (url, t) = (url.to_owned(), token.clone());
    let _ = tokio::task::spawn_blocking(move || whep_delete(&url, t.as_deref())).await;
}

fn urls(servers: &[RTCIceServer]) -> String {
    let all: Vec<&str> = servers
        .iter()
        .flat_map(|s| s.urls.iter())
        .map(String::as_str)
        .collect();
    all.join(", ")
}

/// Parses `--ice-server URL[,username,credential]`.
pub fn parse_ice_server(text: &str) -> Result<RTCIceServer, String> {
    let mut parts = text.splitn(3, ',');
    let url = parts.next().unwrap_or_default().trim();
    let scheme = url.split(':').next().unwrap_or_default();
    if !["stun", "stuns", "turn", "turns"].contains(&scheme) {
        return Err(format!(
            "{url:?} is not a stun:, stuns:, turn: or turns: URL"
        ));
    }
    let username = parts.next().unwrap_or_default().to_owned();
    let credential = parts.next().unwrap_or_default().to_owned();
    if scheme.starts_with("turn") && (username.is_empty() || credential.is_empty()) {
        return Err(format!(
            "{url}: a TURN server needs URL,USERNAME,CREDENTIAL"
        ));
    }
    Ok(RTCIceServer {
        urls: vec![url.to_owned()],
        username,
        credential,
    })
}
