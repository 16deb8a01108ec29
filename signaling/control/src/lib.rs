//! The control channel between the control plane (`edgedesk up`, later `edgedesk serve`) and
//! a session's host process (`edgedesk-host`), defined once for both sides.
//!
//! Transport: a Unix stream socket that the control plane listens on (mode 0600 in a private
//! 0700 directory); the host connects and speaks first. Framing: one JSON document per line
//! (serde_json's compact form never contains a raw newline), at most [`MAX_MESSAGE_BYTES`].
//!
//! Conversation:
//! 1. host → [`HostMessage::Hello`] with [`VERSION`], its session id and pid; a control plane
//!    that speaks another version answers [`ControlMessage::Refused`] and closes.
//! 2. control → [`ControlMessage::Start`] with the [`SessionSpec`] (over the socket, not the
//!    command line: it may hold TURN credentials); host → [`HostMessage::Ready`] with its
//!    display once the display, desktop and pipeline run, or [`HostMessage::Failed`] and exit.
//! 3. control → [`ControlMessage::Request`] `{id, request}`; host → [`HostMessage::Reply`]
//!    `{id, result}` — requests are answered in any order, matched by `id`.
//! 4. host → [`HostMessage::ViewerGone`] when a viewer leaves by itself.
//! 5. control → [`ControlMessage::Shutdown`]: the host ends its session and exits. A host
//!    whose control channel closes ends too, unless it was started with a reconnect grace
//!    (a control plane with a state directory): then its session keeps running, viewers
//!    included, while it reconnects to the same socket and says `Hello` with
//!    [`Resume`]; the new control plane answers [`ControlMessage::Resumed`] (requests follow
//!    as in 3.) or [`ControlMessage::Refused`] (the host ends). No control plane within the
//!    grace: the host ends.
//!
//! Unknown message types fail to decode; the receiver logs and drops them (the connection
//! stays): a newer peer's additions need a [`VERSION`] bump only when they change meaning.
#![deny(unsafe_code)]

pub mod process;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Version of this protocol; both sides must agree.
pub const VERSION: u32 = 1;
/// The longest message a receiver accepts (a `/stats` reply is ≈ 400 KB).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// How logs name a viewer: the first 6 characters of its id. The whole id is its WHEP
/// resource's name, which logs must not hold.
pub fn log_tag(viewer_id: &str) -> &str {
    viewer_id.get(..6).unwrap_or(viewer_id)
}

/// What a verified join token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watch and send input.
    Control,
    /// Watch only; the host ignores this peer's input.
    View,
}

/// A parsed `application/trickle-ice-sdpfrag` body (RFC 8840).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrickleFragment {
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub mid: Option<String>,
    /// Candidate attribute values without the `a=` prefix (`candidate:...`).
    pub candidates: Vec<String>,
    pub end_of_candidates: bool,
}

/// Host → control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum HostMessage {
    /// The first message: who this host is.
    Hello {
        version: u32,
        session: String,
        pid: u32,
        /// Set when this host already runs its session and reconnects to a restarted
        /// control plane (no `Start` follows; `Resumed` does).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<Resume>,
    },
    /// The session runs on `display` (e.g. `:21`) and takes requests.
    Ready {
        display: String,
        /// The Xauthority file holding the display's cookie (`None`: no access control, e.g.
        /// a display the spec named). For the operator, who may run X clients on it.
        #[serde(default)]
        xauthority: Option<String>,
    },
    /// The session could not start; the host exits next.
    Failed { reason: String },
    /// The answer to [`ControlMessage::Request`] `id`.
    Reply {
        id: u64,
        result: Result<Reply, ControlError>,
    },
    /// A viewer ended by itself (closed tab, ICE failure).
    ViewerGone { viewer: String },
}

/// Control plane → host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ControlMessage {
    /// Start the session (the answer to `Hello`).
    Start {
        spec: Box<SessionSpec>,
    },
    Request {
        id: u64,
        request: Request,
    },
    /// The answer to a `Hello` with [`Resume`]: requests follow.
    Resumed,
    /// End the session and exit.
    Shutdown,
    /// The control plane does not serve this host (e.g. another [`VERSION`]); it closes next.
    Refused {
        reason: String,
    },
}

/// What a reconnecting host reports of the session it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The session's X display, as its `Ready` said.
    pub display: String,
    #[serde(default)]
    pub xauthority: Option<String>,
}

impl HostMessage {
    /// The message's type, for logs (its fields may hold SDP or credentials).
    pub fn kind(&self) -> &'static str {
        match self {
            HostMessage::Hello { .. } => "hello",
            HostMessage::Ready { .. } => "ready",
            HostMessage::Failed { .. } => "failed",
            HostMessage::Reply { .. } => "reply",
            HostMessage::ViewerGone { .. } => "viewerGone",
        }
    }
}

impl ControlMessage {
    /// The message's type, for logs (its fields may hold SDP or credentials).
    pub fn kind(&self) -> &'static str {
        match self {
            ControlMessage::Start { .. } => "start",
            ControlMessage::Request { .. } => "request",
            ControlMessage::Resumed => "resumed",
            ControlMessage::Shutdown => "shutdown",
            ControlMessage::Refused { .. } => "refused",
        }
    }
}

impl Reply {
    /// The reply's type, for logs and errors (its fields may hold SDP).
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::ViewerCreated { .. } => "viewerCreated",
            Reply::Done => "done",
            Reply::Disconnected { .. } => "disconnected",
            Reply::Viewers { .. } => "viewers",
            Reply::Screenshot { .. } => "screenshot",
            Reply::Metrics { .. } => "metrics",
            Reply::Stats { .. } => "stats",
            Reply::Live { .. } => "live",
        }
    }
}

/// A STUN/TURN server for the viewers' ICE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// The `display_kind` values a [`SessionSpec`] may carry.
pub const DISPLAY_KINDS: [&str; 3] = ["auto", "xvfb", "xorg"];
/// The default window manager of a new display (the host's `desktop` module says what it
/// starts for it).
pub const DEFAULT_WM: &str = "openbox";
/// The default app of a new display: a maximised terminal.
pub const DEFAULT_APP: &str = "terminal";
/// The default cap on clipboard texts, either way, in bytes.
pub const DEFAULT_MAX_CLIPBOARD_BYTES: usize = 1 << 20;

/// The video codecs a [`SessionSpec`] may list, in the hosts' default order.
pub const CODECS: [&str; 5] = ["h264", "vp9", "av1", "vp8", "h265"];

/// Parses a comma-separated codec list (`av1,h264`; `avc` and `hevc` are taken for `h264` and
/// `h265`): known names, no repeats, at least one.
pub fn parse_codecs(text: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let name = match part.to_ascii_lowercase().as_str() {
            "avc" | "h.264" => "h264".to_string(),
            "hevc" | "h.265" => "h265".to_string(),
            other => other.to_string(),
        };
        if !CODECS.contains(&name.as_str()) {
            return Err(format!(
                "unknown codec {part:?} (want some of {})",
                CODECS.join(", ")
            ));
        }
        if out.contains(&name) {
            return Err(format!("codec {name} is listed twice"));
        }
        out.push(name);
    }
    if out.is_empty() {
        return Err(format!(
            "no codec listed (want some of {})",
            CODECS.join(", ")
        ));
    }
    Ok(out)
}

/// The `clipboard` policies a [`SessionSpec`] may carry.
pub const CLIPBOARD_POLICIES: [&str; 4] = ["both", "to-client", "to-server", "off"];

/// The `audio` policies a [`SessionSpec`] may carry: the desktop's sound to viewers (`out`),
/// and controlling viewers' microphones into the session (`both`), or no sound (`off`).
pub const AUDIO_MODES: [&str; 3] = ["out", "both", "off"];

/// Everything a host needs to run one session (validated by the control plane; the host
/// refuses what it cannot do with [`HostMessage::Failed`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// Size of a new display.
    pub width: u32,
    pub height: u32,
    /// Stream this existing X display instead of starting one.
    pub display: Option<String>,
    /// `auto`, `xvfb` or `xorg`.
    pub display_kind: String,
    /// Window manager and app (see `host::desktop`); empty: none.
    pub wm: String,
    pub app: String,
    pub fps: u32,
    pub bitrate_bps: u64,
    /// `auto`, `software`, `hardware` or a backend name.
    pub encoder: String,
    /// Local UDP addresses for WebRTC.
    pub udp: Vec<String>,
    pub ice_servers: Vec<IceServer>,
    pub max_viewers: usize,
    /// `both`, `to-client`, `to-server` or `off`.
    pub clipboard: String,
    pub clipboard_max_bytes: usize,
    /// Video codecs in preference order (`h264`, `vp9`, `av1`, `vp8`, `h265`); empty: the
    /// host's default order.
    #[serde(default)]
    pub codecs: Vec<String>,
    /// Congestion control: `gcc` (also when empty) or `off`.
    #[serde(default)]
    pub congestion: String,
    /// The bounds the encoder's bitrate follows the estimate within; 0: 300 kbit/s (at most
    /// `bitrate_bps`) and `bitrate_bps`.
    #[serde(default)]
    pub min_bitrate_bps: u64,
    #[serde(default)]
    pub max_bitrate_bps: u64,
    /// The address viewers are told to reach the host at (a 1:1 NAT's public address);
    /// `None`: the local addresses.
    #[serde(default)]
    pub public_ip: Option<String>,
    /// One of [`AUDIO_MODES`]; empty: `out`.
    #[serde(default)]
    pub audio: String,
    /// Opus frame length of the session's sound, 10 or 20 ms; 0: 10.
    #[serde(default)]
    pub audio_frame_ms: u32,
}

/// What the control plane asks of a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Request {
    /// A WHEP offer: create a viewer (`token_id`: the join token's id, for revocation).
    CreateViewer {
        offer_sdp: String,
        role: Role,
        #[serde(default)]
        token_id: Option<String>,
    },
    /// The join token `token_id` was revoked: end the viewers that joined with it.
    DisconnectToken { token_id: String },
    /// Trickled candidates for a viewer.
    AddCandidates {
        viewer: String,
        fragment: TrickleFragment,
    },
    /// End a viewer (WHEP DELETE).
    DeleteViewer { viewer: String },
    /// The current picture as a PNG at most `max_width` wide (0: full size).
    Screenshot { max_width: u32 },
    /// How many viewers the session has (for the idle timeout).
    Viewers,
    /// The session's metrics, Prometheus text format.
    Metrics,
    /// The session's state and per-frame timings (`/stats`).
    Stats,
    /// What the session does now: [`LiveStats`] (the operator API's session details).
    Live,
}

/// A host's successful answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Reply {
    ViewerCreated {
        viewer: String,
        answer_sdp: String,
    },
    Done,
    /// How many viewers a `DisconnectToken` ended.
    Disconnected {
        viewers: usize,
    },
    /// A `Viewers`: how many.
    Viewers {
        count: usize,
    },
    /// A `Screenshot`: the PNG, base64 (standard alphabet, padded).
    Screenshot {
        png_base64: String,
    },
    Metrics {
        text: String,
    },
    Stats {
        json: serde_json::Value,
    },
    Live {
        live: LiveStats,
    },
}

/// What a session does now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveStats {
    /// Since its host started it.
    pub uptime_secs: u64,
    /// Frames encoded in the last second.
    pub fps: f64,
    /// Encoded video in the last second, bit/s.
    pub bitrate_bps: u64,
    /// Encode time of the last frame, ms.
    pub encode_ms: f64,
    /// The encoder backend (e.g. `ffmpeg:libx264`).
    pub encoder: String,
    /// The bitrate congestion control set for the encoder (`None`: congestion control off).
    #[serde(default)]
    pub target_bitrate_bps: Option<u64>,
    pub viewers: Vec<LiveViewer>,
}

/// One viewer of [`LiveStats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveViewer {
    pub id: String,
    pub role: Role,
    /// Where its media goes (`IP:PORT`, as ICE selected it; `None` before).
    #[serde(default)]
    pub address: Option<String>,
    pub connected_secs: u64,
    /// Fraction of packets lost in its last receiver report, 0 ..= 1.
    pub loss: f64,
    /// Round-trip time from its receiver reports (`None` before the first).
    pub rtt_ms: Option<f64>,
    pub frames_sent: u64,
    /// Its bandwidth estimate, bit/s (`None` before feedback, or congestion control off).
    #[serde(default)]
    pub estimate_bps: Option<u64>,
}

/// A host's refusal, mapped to an HTTP status by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ControlError {
    #[error("unknown viewer")]
    UnknownViewer,
    #[error("session is full")]
    Full { retry_after_secs: u32 },
    #[error("malformed offer: {message}")]
    BadOffer { message: String },
    /// The offer has none of the session's codecs; `message` names both sides' lists.
    #[error("{message}")]
    NoCommonCodec { message: String },
    #[error("internal error: {message}")]
    Internal { message: String },
}

/// Errors of reading or writing the channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    #[error("control channel I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("control message over {MAX_MESSAGE_BYTES} bytes")]
    TooLong,
    #[error("malformed control message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Writes one message (one line) and flushes.
pub async fn write_message<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &T,
) -> Result<(), ChannelError> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one message; `Ok(None)` at a clean end of the stream. A malformed line is
/// [`ChannelError::Malformed`] and the stream stays usable for the next line; an over-long one
/// is [`ChannelError::TooLong`] (the rest of it is skipped).
pub async fn read_message<T: for<'de> Deserialize<'de>, R: AsyncBufRead + Unpin>(
    r: &mut R,
) -> Result<Option<T>, ChannelError> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return if line.is_empty() && !too_long {
                Ok(None)
            } else {
                Err(ChannelError::Io(std::io::ErrorKind::UnexpectedEof.into()))
            };
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_MESSAGE_BYTES {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        if done.is_some() {
            if too_long {
                return Err(ChannelError::TooLong);
            }
            return Ok(Some(serde_json::from_slice(&line)?));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    fn samples() -> Vec<HostMessage> {
        vec![
            HostMessage::Hello {
                version: VERSION,
                session: "s1".into(),
                pid: 42,
                resume: None,
            },
            HostMessage::Hello {
                version: VERSION,
                session: "s1".into(),
                pid: 43,
                resume: Some(Resume {
                    display: ":21".into(),
                    xauthority: None,
                }),
            },
            HostMessage::Ready {
                display: ":21".into(),
                xauthority: Some("/tmp/x/Xauthority".into()),
            },
            HostMessage::Reply {
                id: 7,
                result: Ok(Reply::ViewerCreated {
                    viewer: "v".into(),
                    answer_sdp: "v=0\r\na=x\r\n".into(),
                }),
            },
            HostMessage::Reply {
                id: 8,
                result: Err(ControlError::Full {
                    retry_after_secs: 5,
                }),
            },
            HostMessage::ViewerGone { viewer: "v".into() },
        ]
    }

    #[tokio::test]
    async fn messages_round_trip_one_per_line() {
        let mut buf = Vec::new();
        for m in samples() {
            write_message(&mut buf, &m).await.unwrap();
        }
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), samples().len());
        let mut r = BufReader::new(&buf[..]);
        for m in samples() {
            assert_eq!(
                read_message::<HostMessage, _>(&mut r).await.unwrap(),
                Some(m)
            );
        }
        assert!(read_message::<HostMessage, _>(&mut r)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_wire_form_is_tagged_json() {
        let mut buf = Vec::new();
        let req = ControlMessage::Request {
            id: 1,
            request: Request::CreateViewer {
                offer_sdp: "o".into(),
                role: Role::View,
                token_id: None,
            },
        };
        write_message(&mut buf, &req).await.unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"type\":\"request\",\"id\":1,\"request\":{\"kind\":\"createViewer\",\"offer_sdp\":\"o\",\"role\":\"view\",\"token_id\":null}}\n"
        );
    }

    #[tokio::test]
    async fn bad_lines_are_errors_and_the_next_line_still_reads() {
        let input = b"{\"type\":\"nope\"}\nnot json\n{\"type\":\"shutdown\"}\n{\"type\":\"shut";
        let mut r = BufReader::new(&input[..]);
        assert!(matches!(
            read_message::<ControlMessage, _>(&mut r).await,
            Err(ChannelError::Malformed(_))
        ));
        assert!(matches!(
            read_message::<ControlMessage, _>(&mut r).await,
            Err(ChannelError::Malformed(_))
        ));
        assert_eq!(
            read_message::<ControlMessage, _>(&mut r).await.unwrap(),
            Some(ControlMessage::Shutdown)
        );
        // Cut off mid-line: an error, not a clean end.
        assert!(read_message::<ControlMessage, _>(&mut r).await.is_err());
    }

    #[tokio::test]
    async fn over_long_lines_are_refused_and_skipped() {
        let mut input = vec![b'x'; MAX_MESSAGE_BYTES + 10];
        input.extend_from_slice(b"\n{\"type\":\"shutdown\"}\n");
        let mut r = BufReader::new(&input[..]);
        assert!(matches!(
            read_message::<ControlMessage, _>(&mut r).await,
            Err(ChannelError::TooLong)
        ));
        assert_eq!(
            read_message::<ControlMessage, _>(&mut r).await.unwrap(),
            Some(ControlMessage::Shutdown)
        );
    }
}
