//! The targets `compare` measures, and how each is started on the stimulus display.
//!
//! | target | started by the tool | measured as |
//! |---|---|---|
//! | `edgedesk` | `edgedesk up` (--edgedesk) | WHEP (its input channel clicks) and its own page |
//! | `gstreamer` | `benches/servers/gst-webrtcbin-whep.py` (webrtcbin, x264 zerolatency) | WHEP and the tool's WHEP page |
//! | `selkies`, `selkies:websockets` | `selkies` from PyPI (--selkies-bin), x264 at the same bitrate and fps | its page |
//! | `whep:URL[\|COMMAND]` | COMMAND, if given | WHEP and the tool's WHEP page |
//! | `page:URL[\|COMMAND]` | COMMAND, if given | the page |
//!
//! In a URL or COMMAND, `{port}` is a free TCP port the tool picks, `{display}` the stimulus
//! display, `{fps}` and `{kbps}` the run's frame rate and bitrate; COMMAND runs under `sh -c`
//! with `DISPLAY` set, and the tool waits until the URL's port accepts connections.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::runner::{self, Server, ServerProcess};

/// One target of the comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    Edgedesk,
    Gstreamer,
    Selkies { websockets: bool },
    Whep { url: String, start: Option<String> },
    Page { url: String, start: Option<String> },
}

impl TargetSpec {
    pub fn parse(text: &str) -> Result<TargetSpec, String> {
        let split = |rest: &str| match rest.split_once('|') {
            Some((url, cmd)) => (url.trim().to_owned(), Some(cmd.trim().to_owned())),
            None => (rest.trim().to_owned(), None),
        };
        Ok(match text {
            "edgedesk" => TargetSpec::Edgedesk,
            "gstreamer" => TargetSpec::Gstreamer,
            "selkies" | "selkies:webrtc" => TargetSpec::Selkies { websockets: false },
            "selkies:websockets" => TargetSpec::Selkies { websockets: true },
            t if t.starts_with("whep:") => {
                let (url, start) = split(&t[5..]);
                TargetSpec::Whep { url, start }
            }
            t if t.starts_with("page:") => {
                let (url, start) = split(&t[5..]);
                TargetSpec::Page { url, start }
            }
            t => {
                return Err(format!(
                    "unknown target {t:?}: edgedesk, gstreamer, selkies, selkies:websockets, \
                     whep:URL[|COMMAND] or page:URL[|COMMAND]"
                ))
            }
        })
    }

    /// A short name for tables.
    pub fn label(&self, index: usize) -> String {
        match self {
            TargetSpec::Edgedesk => "edgedesk".into(),
            TargetSpec::Gstreamer => "gstreamer".into(),
            TargetSpec::Selkies { websockets: false } => "selkies".into(),
            TargetSpec::Selkies { websockets: true } => "selkies-ws".into(),
            TargetSpec::Whep { .. } => format!("whep{}", index + 1),
            TargetSpec::Page { .. } => format!("page{}", index + 1),
        }
    }

    /// Whether a headless (decoder-side) measurement applies: the target speaks WHEP.
    pub fn has_whep(&self) -> bool {
        matches!(
            self,
            TargetSpec::Edgedesk | TargetSpec::Gstreamer | TargetSpec::Whep { .. }
        )
    }
}

/// What every started target shares.
pub struct Setup {
    pub display: String,
    pub fps: u32,
    pub kbps: u32,
    pub edgedesk: PathBuf,
    pub selkies: PathBuf,
    /// Video codecs edgedesk may send (`--codecs`).
    pub codecs: String,
}

/// A target, started.
pub struct Running {
    /// The server's process group (None: already running elsewhere).
    pub server: Option<ServerProcess>,
    pub whep: Option<String>,
    pub token: Option<String>,
    /// The page to open for the displayed view (None: the tool's own WHEP page).
    pub page: Option<String>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `url`'s host and port accept TCP connections.
fn wait_for_port(url: &str, server: &mut Option<ServerProcess>, timeout: Duration) -> Result<()> {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .with_context(|| format!("{url} is not an http(s) URL"))?;
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else if url.starts_with("https") {
        format!("{authority}:443")
    } else {
        format!("{authority}:80")
    };
    let deadline = Instant::now() + timeout;
    loop {
        let addrs: Vec<_> = with_port
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default();
        if addrs
            .iter()
            .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(300)).is_ok())
        {
            return Ok(());
        }
        if let Some(s) = server {
            if let Ok(Some(status)) = s.child().try_wait() {
                bail!("the server exited ({status}) before {with_port} accepted connections");
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{with_port} did not accept connections within {} s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fill(text: &str, port: u16, s: &Setup) -> String {
    text.replace("{port}", &port.to_string())
        .replace("{display}", &s.display)
        .replace("{fps}", &s.fps.to_string())
        .replace("{kbps}", &s.kbps.to_string())
}

/// Starts `spec` on the stimulus display.
pub async fn start(spec: &TargetSpec, s: &Setup) -> Result<Running> {
    match spec {
        TargetSpec::Edgedesk => {
            let extra: Vec<String> = [
                "--fps",
                &s.fps.to_string(),
                "--bitrate",
                &format!("{}k", s.kbps),
                "--codecs",
                &s.codecs,
            ]
            .map(String::from)
            .to_vec();
            let e = runner::start_edgedesk(&s.edgedesk, &s.display, &extra).await?;
            Ok(Running {
                server: Some(e.server),
                whep: Some(e.whep),
                token: Some(e.token),
                page: Some(e.open),
            })
        }
        TargetSpec::Gstreamer => {
            let script = PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/servers/gst-webrtcbin-whep.py"
            ));
            let mut server = Server::spawn(
                Command::new("/usr/bin/python3")
                    .arg(&script)
                    .args(["--display", &s.display, "--listen", "127.0.0.1:0"])
                    .args([
                        "--fps",
                        &s.fps.to_string(),
                        "--bitrate",
                        &s.kbps.to_string(),
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null()),
            )
            .with_context(|| format!("starting {}", script.display()))?;
            let out = server.0.stdout.take().expect("piped");
            let url = tokio::task::spawn_blocking(move || {
                let mut lines = BufReader::new(out).lines();
                let url = lines
                    .by_ref()
                    .map_while(Result::ok)
                    .find_map(|l| l.strip_prefix("listening ").map(str::to_owned));
                // Keep draining, so the server never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                url
            })
            .await?
            .context("the GStreamer WHEP server exited without listening (scripts/setup.sh installs GStreamer's webrtcbin)")?;
            Ok(Running {
                server: Some(ServerProcess::Local(server)),
                whep: Some(url),
                token: None,
                page: None,
            })
        }
        TargetSpec::Selkies { websockets } => {
            let port = free_port()?;
            let rate = format!("{0}-{0}", s.kbps);
            let fps = format!("{0}-{0}", s.fps);
            let mut server = Some(ServerProcess::Local(
                Server::spawn(
                    Command::new(&s.selkies)
                        .args(["--mode", if *websockets { "websockets" } else { "webrtc" }])
                        .args(["--addr", "127.0.0.1", "--port", &port.to_string()])
                        .args(["--enable-basic-auth", "false", "--audio-enabled", "false"])
                        .args(["--enable-resize", "false", "--encoder", "h264enc"])
                        .args(["--framerate", &fps, "--video-bitrate", &rate])
                        .env("DISPLAY", &s.display)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                )
                .with_context(|| {
                    format!(
                        "starting {} (pip install selkies into a venv; --selkies-bin)",
                        s.selkies.display()
                    )
                })?,
            ));
            let page = format!("http://127.0.0.1:{port}/");
            wait_for_port(&page, &mut server, Duration::from_secs(30))?;
            Ok(Running {
                server,
                whep: None,
                token: None,
                page: Some(page),
            })
        }
        TargetSpec::Whep { url, start } | TargetSpec::Page { url, start } => {
            let port = free_port()?;
            let url = fill(url, port, s);
            let mut server = match start {
                Some(cmd) => Some(ServerProcess::Local(
                    Server::spawn(
                        Command::new("sh")
                            .args(["-c", &fill(cmd, port, s)])
                            .env("DISPLAY", &s.display)
                            .stdin(Stdio::null())
                            .stdout(Stdio::null()),
                    )
                    .with_context(|| format!("starting {cmd}"))?,
                )),
                None => None,
            };
            wait_for_port(&url, &mut server, Duration::from_secs(30))?;
            let whep = matches!(spec, TargetSpec::Whep { .. });
            Ok(Running {
                server,
                whep: whep.then(|| url.clone()),
                token: None,
                page: (!whep).then_some(url),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TargetSpec;

    #[test]
    fn parses_targets() {
        assert_eq!(TargetSpec::parse("edgedesk"), Ok(TargetSpec::Edgedesk));
        assert_eq!(
            TargetSpec::parse("selkies:websockets"),
            Ok(TargetSpec::Selkies { websockets: true })
        );
        assert_eq!(
            TargetSpec::parse("whep:http://127.0.0.1:{port}/whep | srv --port {port}"),
            Ok(TargetSpec::Whep {
                url: "http://127.0.0.1:{port}/whep".into(),
                start: Some("srv --port {port}".into())
            })
        );
        assert_eq!(
            TargetSpec::parse("page:http://x/?a=b"),
            Ok(TargetSpec::Page {
                url: "http://x/?a=b".into(),
                start: None
            })
        );
        assert!(TargetSpec::parse("vnc")
            .unwrap_err()
            .contains("unknown target"));
        assert_eq!(TargetSpec::Gstreamer.label(1), "gstreamer");
        assert!(!TargetSpec::Selkies { websockets: false }.has_whep());
    }
}
