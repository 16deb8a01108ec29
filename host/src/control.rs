//! The host side of the control channel (see the `edgedesk-control` crate): one process, one
//! session. [`serve`] connects to the control plane's socket, says hello, starts the session
//! the control plane's [`SessionSpec`] describes (display, desktop, pipeline, input,
//! clipboard), reports `Ready`, then answers requests until the control plane says `Shutdown`
//! or goes away; then everything is torn down in reverse order (viewers, session, display).
//!
//! Requests are served concurrently (a slow offer does not hold up a DELETE); replies go
//! through one writer task.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use codec::registry::{EncoderPreference, EncoderRegistry};
use codec::EncoderSettings;
use control::{
    read_message, write_message, ControlError, ControlMessage, HostMessage, Reply, Request, Resume,
    SessionSpec, TrickleFragment, VERSION,
};
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::audio::{AudioMode, AudioSettings, AudioSource, SoundServer};
use crate::clipboard::{ClipboardConfig, ClipboardPolicy};
use crate::display::{DisplayKind, VirtualDisplay};
use crate::pipeline::PipelineConfig;
use crate::session::{Host, HostError, Session, SessionConfig};
use crate::viewer::{PeerSettings, RTCIceServer};

/// Errors that end a host process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostProcessError {
    #[error("cannot reach the control plane at {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("control channel: {0}")]
    Channel(#[from] control::ChannelError),
    #[error("the control plane refused this host: {0}")]
    Refused(String),
    #[error("the control plane closed the channel before starting the session")]
    NoStart,
    #[error("the session did not start: {0}")]
    Start(String),
}

/// Parses `auto`/`xvfb`/`xorg` (`None` is auto).
pub fn parse_display_kind(s: &str) -> Result<Option<DisplayKind>, String> {
    match s {
        "auto" => Ok(None),
        "xvfb" => Ok(Some(DisplayKind::Xvfb)),
        "xorg" => Ok(Some(DisplayKind::XorgDummy)),
        _ => Err(format!(
            "display kind must be auto, xvfb or xorg, got {s:?}"
        )),
    }
}

/// Parses an encoder choice: `auto`, `software`, `hardware` or a backend name.
pub fn parse_preference(s: &str) -> EncoderPreference {
    match s {
        "auto" => EncoderPreference::Auto,
        "software" => EncoderPreference::Software,
        "hardware" => EncoderPreference::Hardware,
        name => EncoderPreference::Named(name.to_owned()),
    }
}

/// Runs one session for the control plane listening at `socket` (see the module docs).
/// `grace`: how long the session outlives its control channel, reconnecting (zero: it ends
/// with the channel).
pub async fn serve(socket: &Path, session: &str, grace: Duration) -> Result<(), HostProcessError> {
    // From the start: a SIGTERM (ours, or PDEATHSIG when the control plane dies) must end
    // the session through the teardown below, not kill the process mid-way.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| HostProcessError::Start(format!("SIGTERM handler: {e}")))?;
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| HostProcessError::Connect {
            path: socket.display().to_string(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write_message(&mut write, &hello(session, None)).await?;
    let spec = loop {
        match read_message::<ControlMessage, _>(&mut read).await? {
            Some(ControlMessage::Start { spec }) => break *spec,
            Some(ControlMessage::Refused { reason }) => {
                return Err(HostProcessError::Refused(reason))
            }
            Some(ControlMessage::Shutdown) | None => return Err(HostProcessError::NoStart),
            Some(other) => tracing::warn!(kind = other.kind(), "ignoring a message before Start"),
        }
    };
    let started = {
        let session = session.to_owned();
        tokio::task::spawn_blocking(move || start_session(&session, &spec))
            .await
            .map_err(|e| HostProcessError::Start(e.to_string()))?
    };
    let (host, display, display_name) = match started {
        Ok(s) => s,
        Err(reason) => {
            let _ = write_message(
                &mut write,
                &HostMessage::Failed {
                    reason: reason.clone(),
                },
            )
            .await;
            return Err(HostProcessError::Start(reason));
        }
    };
    let resume = Resume {
        display: display_name.clone(),
        xauthority: display
            .as_ref()
            .and_then(|_| std::env::var("XAUTHORITY").ok()),
    };
    write_message(
        &mut write,
        &HostMessage::Ready {
            display: resume.display.clone(),
            xauthority: resume.xauthority.clone(),
        },
    )
    .await?;
    tracing::info!(session, display = %display_name, "session ready");

    // Which join token each viewer came with (a revoked token ends its viewers).
    let joined: Arc<Joined> = Arc::default();
    let mut writers = Vec::new();
    let mut channel = Some((read, write));
    while let Some((read, write)) = channel.take() {
        let (end, writer) = run_channel(read, write, &host, session, &joined, &mut term).await;
        writers.push(writer);
        if end != ChannelEnd::Lost || grace.is_zero() {
            break;
        }
        tracing::warn!(
            session,
            grace_secs = grace.as_secs(),
            "the control plane went away; the session keeps running while this host reconnects"
        );
        channel = reconnect(socket, session, &resume, grace, &mut term).await;
        if channel.is_none() {
            tracing::warn!(session, "no control plane came back; ending the session");
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), host.remove(session)).await;
    drop(host);
    // A request stuck in the session must not keep the process (and its display) alive.
    let writers = async {
        for w in writers {
            let _ = w.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(3), writers)
        .await
        .is_err()
    {
        tracing::warn!(session, "requests still running at shutdown; ending anyway");
    }
    drop(display);
    Ok(())
}

fn hello(session: &str, resume: Option<Resume>) -> HostMessage {
    HostMessage::Hello {
        version: VERSION,
        session: session.to_owned(),
        pid: std::process::id(),
        resume,
    }
}

/// Why [`run_channel`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelEnd {
    /// The control plane said `Shutdown`, or SIGTERM came: the session ends.
    Stop,
    /// The channel closed or broke.
    Lost,
}

type Reader = BufReader<tokio::net::unix::OwnedReadHalf>;
type Writer = tokio::net::unix::OwnedWriteHalf;

/// Answers requests on one control connection until it ends; returns why, and the task that
/// writes the replies (it ends once the replies of requests still running are written).
async fn run_channel(
    mut read: Reader,
    mut write: Writer,
    host: &Arc<Host>,
    session: &str,
    joined: &Arc<Joined>,
    term: &mut tokio::signal::unix::Signal,
) -> (ChannelEnd, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<HostMessage>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if let Err(e) = write_message(&mut write, &m).await {
                tracing::warn!(error = %e, "control channel write failed");
                break;
            }
        }
    });
    let end = loop {
        let next = tokio::select! {
            m = read_message::<ControlMessage, _>(&mut read) => m,
            _ = term.recv() => {
                tracing::info!(session, "SIGTERM: ending the session");
                break ChannelEnd::Stop;
            }
        };
        match next {
            Ok(Some(ControlMessage::Request { id, request })) => {
                let (host, tx, name) = (host.clone(), tx.clone(), session.to_owned());
                let joined = joined.clone();
                tokio::spawn(async move {
                    let result = handle(&host, &name, &joined, request).await;
                    let _ = tx.send(HostMessage::Reply { id, result });
                });
            }
            Ok(Some(ControlMessage::Shutdown)) => {
                tracing::info!(session, "shutdown asked");
                break ChannelEnd::Stop;
            }
            Ok(Some(other)) => tracing::warn!(
                kind = other.kind(),
                "ignoring an unexpected control message"
            ),
            Ok(None) => {
                tracing::info!(session, "the control channel closed");
                break ChannelEnd::Lost;
            }
            Err(control::ChannelError::Malformed(e)) => {
                tracing::warn!(error = %e, "dropping a malformed control message");
            }
            Err(e) => {
                tracing::warn!(error = %e, "control channel failed");
                break ChannelEnd::Lost;
            }
        }
    };
    (end, writer)
}

/// Reconnects to a (restarted) control plane at `socket` within `grace`: `Hello` with
/// `resume`, answered `Resumed`. `None`: no control plane took the session back in time, it
/// refused it, or SIGTERM came.
async fn reconnect(
    socket: &Path,
    session: &str,
    resume: &Resume,
    grace: Duration,
    term: &mut tokio::signal::unix::Signal,
) -> Option<(Reader, Writer)> {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let attempt = async {
            let stream = UnixStream::connect(socket).await.ok()?;
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            write_message(&mut write, &hello(session, Some(resume.clone())))
                .await
                .ok()?;
            match tokio::time::timeout(
                Duration::from_secs(5),
                read_message::<ControlMessage, _>(&mut read),
            )
            .await
            {
                Ok(Ok(Some(ControlMessage::Resumed))) => Some(Ok((read, write))),
                Ok(Ok(Some(ControlMessage::Refused { reason }))) => Some(Err(reason)),
                _ => None,
            }
        };
        tokio::select! {
            r = tokio::time::timeout_at(deadline, attempt) => match r {
                Ok(Some(Ok(channel))) => {
                    tracing::info!(session, "reconnected to the control plane");
                    return Some(channel);
                }
                Ok(Some(Err(reason))) => {
                    tracing::warn!(session, %reason, "the control plane refused this session");
                    return None;
                }
                Ok(None) => {}
                Err(_) => return None,
            },
            _ = term.recv() => {
                tracing::info!(session, "SIGTERM: ending the session");
                return None;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The session's shared UDP socket, if any, and the address its answers advertise.
type UdpSettings = (
    Option<Arc<crate::viewer::udpmux::UdpMux>>,
    Option<std::net::IpAddr>,
);

/// One shared UDP socket when the spec's address has a port (see `viewer::udpmux`), and the
/// advertised address.
fn udp_settings(spec: &SessionSpec) -> Result<UdpSettings, String> {
    let public_ip = match &spec.public_ip {
        Some(ip) => Some(
            ip.parse()
                .map_err(|_| format!("public IP {ip:?} is not an IP address"))?,
        ),
        None => None,
    };
    let fixed: Vec<std::net::SocketAddr> = spec
        .udp
        .iter()
        .filter_map(|a| a.parse::<std::net::SocketAddr>().ok())
        .filter(|a| a.port() != 0)
        .collect();
    let mux = match fixed.as_slice() {
        [] => None,
        [one] if spec.udp.len() == 1 => {
            Some(crate::viewer::udpmux::UdpMux::bind(*one).map_err(|e| e.to_string())?)
        }
        _ => {
            return Err(format!(
                "one UDP port takes one address (got {}); several addresses only with port 0",
                spec.udp.join(",")
            ))
        }
    };
    Ok((mux, public_ip))
}

/// Starts the display (unless the spec names one), the desktop and the session.
fn start_session(
    name: &str,
    spec: &SessionSpec,
) -> Result<(Arc<Host>, Option<VirtualDisplay>, String), String> {
    let kind = parse_display_kind(&spec.display_kind)?;
    let clipboard: ClipboardPolicy = spec.clipboard.parse().map_err(|e: String| e)?;
    let codecs = spec
        .codecs
        .iter()
        .map(|c| c.parse::<codec::Codec>())
        .collect::<Result<Vec<_>, _>>()?;
    let (mux, public_ip) = udp_settings(spec)?;
    let audio_mode: AudioMode = spec.audio.parse()?;
    let registry = Arc::new(EncoderRegistry::probe());
    // The sound server first: the desktop's apps are told where it is. A session whose
    // sound server cannot start runs without sound.
    let sound = match audio_mode {
        AudioMode::Off => None,
        _ => match SoundServer::start() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no sound in this session");
                None
            }
        },
    };
    let (display_name, display, resizable) = match &spec.display {
        Some(d) => (d.clone(), None, false),
        None => {
            let d = VirtualDisplay::start_kind(kind, spec.width, spec.height, true)
                .map_err(|e| format!("starting the virtual display: {e}"))?;
            for (k, v) in sound.iter().flat_map(SoundServer::env) {
                d.set_app_env(&k, &v);
            }
            crate::desktop::start(&d, &spec.wm, &spec.app)
                .map_err(|e| format!("starting the desktop: {e}"))?;
            let resizable = d.kind() == DisplayKind::XorgDummy;
            (d.name(), Some(d), resizable)
        }
    };
    let config = SessionConfig {
        name: name.to_owned(),
        pipeline: PipelineConfig {
            display: display_name.clone(),
            encoder: EncoderSettings {
                fps: spec.fps,
                bitrate_bps: spec.bitrate_bps,
                ..EncoderSettings::default()
            },
            preference: parse_preference(&spec.encoder),
        },
        peer: PeerSettings {
            udp_addrs: spec.udp.clone(),
            ice_servers: spec
                .ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
            congestion: (spec.congestion != "off").then(|| {
                let min = match spec.min_bitrate_bps {
                    0 => 300_000,
                    m => m,
                }
                .min(spec.bitrate_bps);
                let max = match spec.max_bitrate_bps {
                    0 => spec.bitrate_bps,
                    m => m,
                }
                .max(spec.bitrate_bps);
                crate::ratecontrol::RateLimits {
                    start_bps: spec.bitrate_bps,
                    min_bps: min,
                    max_bps: max,
                }
            }),
            mux,
            public_ip,
            ..PeerSettings::default()
        },
        max_viewers: spec.max_viewers,
        resizable,
        clipboard: ClipboardConfig {
            policy: clipboard,
            max_bytes: spec.clipboard_max_bytes,
        },
        codecs,
    };
    let mut session = Session::start(config, registry)
        .map_err(|e| format!("starting session on display {display_name}: {e}"))?;
    if let Some(server) = sound {
        let settings = AudioSettings {
            frame_ms: match spec.audio_frame_ms {
                0 => 10,
                ms => ms,
            },
            ..AudioSettings::default()
        };
        match AudioSource::start(server, settings) {
            Ok(a) => {
                tracing::info!(mode = %audio_mode, "session sound on");
                session.attach_audio(a, audio_mode);
            }
            Err(e) => tracing::warn!(error = %e, "no sound in this session"),
        }
    }
    let host = Arc::new(Host::new());
    host.insert(session).map_err(|e| e.to_string())?;
    Ok((host, display, display_name))
}

fn control_error(e: HostError) -> ControlError {
    match e {
        HostError::UnknownViewer | HostError::UnknownSession => ControlError::UnknownViewer,
        HostError::Full(_) => ControlError::Full {
            retry_after_secs: 5,
        },
        HostError::BadOffer(message) => ControlError::BadOffer { message },
        HostError::NoCommonCodec(message) => ControlError::NoCommonCodec { message },
        other => ControlError::Internal {
            message: other.to_string(),
        },
    }
}

/// Viewer id → the id of the join token it came with.
type Joined = std::sync::Mutex<std::collections::HashMap<String, String>>;

/// Serves one request against the host's (only) session.
async fn handle(
    host: &Host,
    name: &str,
    joined: &Joined,
    request: Request,
) -> Result<Reply, ControlError> {
    let session = host.get(name).ok_or(ControlError::Internal {
        message: "the session has ended".into(),
    })?;
    match request {
        Request::CreateViewer {
            offer_sdp,
            role,
            token_id,
        } => {
            let (viewer, answer_sdp) = session
                .add_viewer(offer_sdp, role == control::Role::Control)
                .await
                .map_err(control_error)?;
            if let Some(t) = token_id {
                joined.lock().unwrap().insert(viewer.clone(), t);
            }
            tracing::info!(
                session = name,
                viewer = control::log_tag(&viewer),
                ?role,
                "viewer created"
            );
            Ok(Reply::ViewerCreated { viewer, answer_sdp })
        }
        Request::AddCandidates { viewer, fragment } => {
            let v = session.viewer(&viewer).ok_or(ControlError::UnknownViewer)?;
            let TrickleFragment {
                candidates,
                mid,
                ice_ufrag,
                ..
            } = fragment;
            for c in candidates {
                v.add_candidate(c, mid.clone(), ice_ufrag.clone())
                    .await
                    .map_err(|e| ControlError::BadOffer {
                        message: e.to_string(),
                    })?;
            }
            Ok(Reply::Done)
        }
        Request::DisconnectToken { token_id } => {
            let viewers: Vec<String> = {
                let mut j = joined.lock().unwrap();
                let ids: Vec<String> = j
                    .iter()
                    .filter(|(_, t)| **t == token_id)
                    .map(|(v, _)| v.clone())
                    .collect();
                for v in &ids {
                    j.remove(v);
                }
                ids
            };
            let mut ended = 0;
            for v in &viewers {
                if session.remove_viewer(v).await.is_ok() {
                    ended += 1;
                }
            }
            tracing::info!(
                session = name,
                viewers = ended,
                "revoked token: its viewers ended"
            );
            Ok(Reply::Disconnected { viewers: ended })
        }
        Request::DeleteViewer { viewer } => {
            joined.lock().unwrap().remove(&viewer);
            session
                .remove_viewer(&viewer)
                .await
                .map_err(control_error)?;
            Ok(Reply::Done)
        }
        Request::Viewers => Ok(Reply::Viewers {
            count: session.viewer_count(),
        }),
        Request::Screenshot { max_width } => {
            use base64::Engine as _;
            let display = session.config.pipeline.display.clone();
            let png =
                tokio::task::spawn_blocking(move || crate::screenshot::png(&display, max_width))
                    .await
                    .map_err(|e| ControlError::Internal {
                        message: e.to_string(),
                    })?
                    .map_err(|message| ControlError::Internal { message })?;
            Ok(Reply::Screenshot {
                png_base64: base64::engine::general_purpose::STANDARD.encode(png),
            })
        }
        // This session's families only (the control plane merges its hosts' texts and adds
        // its own, such as the session count).
        Request::Metrics => Ok(Reply::Metrics {
            text: {
                let mut m = crate::metrics::Metrics::new();
                session.metrics(&mut m);
                m.render()
            },
        }),
        Request::Live => Ok(Reply::Live {
            live: session.live().await,
        }),
        Request::Stats => Ok(Reply::Stats {
            json: serde_json::json!({ "sessions": [session.stats()] }),
        }),
    }
}
