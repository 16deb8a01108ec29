//! `edgedesk`: the control plane's composition root. `edgedesk up` starts one session in its
//! own host process (`edgedesk-host`: the X display, desktop, capture, encoder, viewers) and
//! the HTTP front door that relays WHEP to it over the control channel, prints where to
//! connect, and shuts it all down in reverse order on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use control::SessionSpec;
use host::clipboard::{ClipboardPolicy, DEFAULT_MAX_CLIPBOARD_BYTES};
use signaling::backend::Role;
use signaling::http::api::Operator;
use signaling::http::{app, AppState, IceServer};
use signaling::remote::RemoteBackend;
use signaling::sessions::{SessionManager, SessionState};
use signaling::tokens::Tokens;

#[derive(Parser)]
#[command(
    name = "edgedesk",
    version,
    about = "A Linux desktop in any browser, over WebRTC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a desktop session on this machine and serve it over HTTP + WebRTC.
    Up(UpArgs),
    /// Operate sessions through a running server's API (create, list, show, delete, token).
    Session {
        #[command(flatten)]
        server: signaling::cli::ServerArgs,
        #[command(subcommand)]
        command: signaling::cli::SessionCommand,
    },
}

/// Every key can also come from the environment (EDGEDESK_*).
#[derive(Args, Debug)]
struct UpArgs {
    /// HTTP listen address (the browser client, WHEP, health).
    #[arg(long, env = "EDGEDESK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Size of the virtual display, WIDTHxHEIGHT (ignored with --display).
    #[arg(long, env = "EDGEDESK_SIZE", default_value = "1920x1080", value_parser = parse_size)]
    size: (u32, u32),
    /// Maximum frames per second sent (frames are only made when the screen changes).
    #[arg(long, env = "EDGEDESK_FPS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,
    /// Video bitrate: bits per second, with an optional k/M suffix (e.g. 8M).
    #[arg(long, env = "EDGEDESK_BITRATE", default_value = "8M", value_parser = parse_bitrate)]
    bitrate: u64,
    /// A fixed bearer token accepted for control (default: a random signed join token).
    #[arg(long, env = "EDGEDESK_TOKEN")]
    token: Option<String>,
    /// Stream an existing X display (e.g. :0) instead of starting one.
    #[arg(long, env = "EDGEDESK_DISPLAY")]
    display: Option<String>,
    /// Which X server to start: auto (xorg where its dummy driver is installed, else xvfb),
    /// xvfb (fixed size) or xorg (Xorg + dummy driver: follows the browser window's size).
    #[arg(long, env = "EDGEDESK_DISPLAY_KIND", default_value = "auto", value_parser = parse_display_kind)]
    display_kind: String,
    /// Program started on a new display, after the window manager (shell words); "terminal"
    /// is a maximised xterm with a readable font; empty for none.
    #[arg(long, env = "EDGEDESK_APP", default_value = host::desktop::DEFAULT_APP)]
    app: String,
    /// Window manager started on a new display (shell words); "openbox" is openbox with a
    /// right-click menu, a panel (tint2, if installed) and a background; empty for none.
    #[arg(long, env = "EDGEDESK_WM", default_value = host::desktop::DEFAULT_WM)]
    wm: String,
    /// Session name (the WHEP path is /whep/NAME).
    #[arg(long, env = "EDGEDESK_SESSION", default_value = "default")]
    session: String,
    /// Encoder choice: auto, software, hardware, or a backend name such as ffmpeg:libx264.
    #[arg(long, env = "EDGEDESK_ENCODER", default_value = "auto")]
    encoder: String,
    /// Local UDP addresses for WebRTC (repeatable). Default: the listen IP, port 0.
    #[arg(long = "udp", env = "EDGEDESK_UDP", value_delimiter = ',')]
    udp: Vec<String>,
    /// STUN/TURN server for ICE, as URL[,username,credential] (repeatable).
    #[arg(
        long = "ice-server",
        env = "EDGEDESK_ICE_SERVERS",
        value_delimiter = ' '
    )]
    ice_servers: Vec<String>,
    /// Most viewers a session accepts; more get 503.
    #[arg(long, env = "EDGEDESK_MAX_VIEWERS", default_value_t = 8)]
    max_viewers: usize,
    /// Clipboard sharing between the desktop and controlling viewers: both, to-client,
    /// to-server or off.
    #[arg(long, env = "EDGEDESK_CLIPBOARD", default_value = "both")]
    clipboard: ClipboardPolicy,
    /// Largest clipboard text either way, in bytes (longer texts are dropped whole).
    #[arg(long, env = "EDGEDESK_CLIPBOARD_MAX_BYTES", default_value_t = DEFAULT_MAX_CLIPBOARD_BYTES, value_parser = parse_clipboard_max)]
    clipboard_max_bytes: usize,
    /// File holding the operator key for the API (`/api/v1`); default: a random key, printed
    /// on an `Operator key:` line.
    #[arg(long, env = "EDGEDESK_OPERATOR_KEY_FILE")]
    operator_key_file: Option<std::path::PathBuf>,
    /// The operator key itself (prefer the file: a command line is visible to local users).
    #[arg(long, env = "EDGEDESK_OPERATOR_KEY", hide_env_values = true)]
    operator_key: Option<String>,
    /// Most sessions this node runs at once (the API answers 503 beyond).
    #[arg(long, env = "EDGEDESK_MAX_SESSIONS", default_value_t = signaling::remote::DEFAULT_CAPACITY)]
    max_sessions: usize,
    /// Lifetime of the printed join token, in seconds.
    #[arg(long, env = "EDGEDESK_TOKEN_TTL", default_value_t = 12 * 3600)]
    token_ttl: u64,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size must be WIDTHxHEIGHT, got {s:?}"))?;
    let w: u32 = w
        .trim()
        .parse()
        .map_err(|_| format!("bad width in {s:?}"))?;
    let h: u32 = h
        .trim()
        .parse()
        .map_err(|_| format!("bad height in {s:?}"))?;
    if !(64..=8192).contains(&w) || !(64..=8192).contains(&h) {
        return Err(format!("size {w}x{h} is outside 64x64 ..= 8192x8192"));
    }
    Ok((w, h))
}

fn parse_bitrate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad bitrate {s:?}"))?;
    let bps = (v * mult as f64) as u64;
    if !(100_000..=500_000_000).contains(&bps) {
        return Err(format!("bitrate {bps} bit/s is outside 100k ..= 500M"));
    }
    Ok(bps)
}

fn parse_clipboard_max(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("bad byte count {s:?}"))?;
    // An X request (one ChangeProperty) must carry the text: stay well under 16 MiB.
    if !(1..=8 << 20).contains(&n) {
        return Err(format!("clipboard cap {n} is outside 1 ..= 8388608 bytes"));
    }
    Ok(n)
}

/// `--display-kind`: one of [`control::DISPLAY_KINDS`].
fn parse_display_kind(s: &str) -> Result<String, String> {
    if control::DISPLAY_KINDS.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "display kind must be auto, xvfb or xorg, got {s:?}"
        ))
    }
}

/// The operator key: from `--operator-key-file`, `--operator-key`, or a fresh random one
/// (then `true`: it is printed).
fn operator_key(args: &UpArgs) -> Result<(String, bool)> {
    let key = match (&args.operator_key_file, &args.operator_key) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("--operator-key-file {}", path.display()))?
            .trim()
            .to_owned(),
        (None, Some(k)) => k.trim().to_owned(),
        (None, None) => return Ok((signaling::tokens::random_id(), true)),
    };
    if key.len() < 16 {
        bail!("the operator key must be at least 16 characters");
    }
    Ok((key, false))
}

fn parse_ice_server(s: &str) -> Result<IceServer> {
    let mut parts = s.split(',');
    let url = parts.next().unwrap_or_default().to_owned();
    if !(url.starts_with("stun:") || url.starts_with("turn:") || url.starts_with("turns:")) {
        bail!("ICE server {url:?} must start with stun:, turn: or turns:");
    }
    Ok(IceServer {
        urls: vec![url],
        username: parts.next().map(str::to_owned),
        credential: parts.next().map(str::to_owned),
    })
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,webrtc=warn,rtc=warn,rtc_dtls=error,rtc_ice=error".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Up(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(up(args))
        }
        Command::Session { server, command } => match signaling::cli::run(&server, command) {
            Ok(text) => {
                use std::io::Write;
                let _ = writeln!(std::io::stdout(), "{text}");
                Ok(())
            }
            Err(e) => {
                eprintln!("edgedesk session: {}", e.message);
                std::process::exit(e.code);
            }
        },
    }
}

async fn up(args: UpArgs) -> Result<()> {
    let ice_servers = args
        .ice_servers
        .iter()
        .map(|s| parse_ice_server(s))
        .collect::<Result<Vec<_>>>()?;

    // 1. The session, in its own host process (display, desktop, pipeline, viewers).
    let udp_addrs = if args.udp.is_empty() {
        vec![format!("{}:0", args.listen.ip())]
    } else {
        args.udp.clone()
    };
    let spec = SessionSpec {
        width: args.size.0,
        height: args.size.1,
        display: args.display.clone(),
        display_kind: args.display_kind.clone(),
        wm: args.wm.clone(),
        app: args.app.clone(),
        fps: args.fps,
        bitrate_bps: args.bitrate,
        encoder: args.encoder.clone(),
        udp: udp_addrs,
        ice_servers: ice_servers
            .iter()
            .map(|s| control::IceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect(),
        max_viewers: args.max_viewers,
        clipboard: args.clipboard.to_string(),
        clipboard_max_bytes: args.clipboard_max_bytes,
    };
    let backend = Arc::new(
        RemoteBackend::new(RemoteBackend::default_host_bin())
            .context("the control socket")?
            .with_capacity(args.max_sessions.max(1)),
    );
    let defaults = SessionSpec {
        display: None,
        ..spec.clone()
    };
    backend
        .register(&args.session, spec, Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    backend.launch(&args.session).await;
    let display_name = match backend.get(&args.session).map(|s| s.state) {
        Some(SessionState::Running { display }) => display,
        Some(SessionState::Failed { reason }) => {
            bail!("starting session {:?}: {reason}", args.session)
        }
        other => bail!("starting session {:?}: {other:?}", args.session),
    };
    let (operator_key, generated) = operator_key(&args)?;

    // 2. Tokens and the HTTP front door.
    let mut tokens = Tokens::random();
    let token = match &args.token {
        Some(t) => {
            tokens = tokens.with_static(t, Role::Control).context("--token")?;
            t.clone()
        }
        None => tokens.issue(
            &args.session,
            Role::Control,
            Duration::from_secs(args.token_ttl),
        ),
    };
    let state = AppState::new(backend.clone(), Arc::new(tokens))
        .with_ice_servers(ice_servers)
        .context("--ice-server")?
        .with_operator(Operator::new(&operator_key, backend.clone(), defaults))
        .with_readiness({
            let host_bin = RemoteBackend::default_host_bin();
            move || {
                if !host_bin.is_file() {
                    return Err(format!("{} is missing", host_bin.display()));
                }
                host::display::DisplayKind::Xvfb
                    .available()
                    .or_else(|_| host::display::DisplayKind::XorgDummy.available())
            }
        });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    // Where to connect, on stdout. A reader that stops reading (`| head`, a script that found
    // its line) must not take the server down: write errors are ignored, never a panic.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "Display: {display_name}")
            .and_then(|_| match backend.xauthority(&args.session) {
                Some(x) => writeln!(out, "Xauthority: {x}"),
                None => Ok(()),
            })
            .and_then(|_| writeln!(out, "Open: {base}/?session={}#token={token}", args.session))
            .and_then(|_| writeln!(out, "WHEP: {base}/whep/{}", args.session))
            .and_then(|_| writeln!(out, "Token: {token}"))
            .and_then(|_| match generated {
                true => writeln!(out, "Operator key: {operator_key}"),
                false => writeln!(
                    out,
                    "API: {base}/api/v1 (operator key from the configured file)"
                ),
            })
            .and_then(|_| out.flush());
    }
    tracing::info!(%addr, session = %args.session, "serving");

    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    // Reverse order: the hosts end their sessions (viewers, pipeline, desktop, display).
    tracing::info!("shutting down");
    backend.stop(Duration::from_secs(5)).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bitrates_parse_and_reject_nonsense() {
        assert_eq!(parse_size("1920x1080"), Ok((1920, 1080)));
        assert!(parse_size("0x0").is_err());
        assert!(parse_size("100000x100000").is_err());
        assert!(parse_size("big").is_err());
        assert_eq!(parse_bitrate("8M"), Ok(8_000_000));
        assert_eq!(parse_bitrate("2500k"), Ok(2_500_000));
        assert!(parse_bitrate("1").is_err());
        assert!(parse_bitrate("lots").is_err());
    }

    /// The README's configuration table and the code list the same options and variables.
    #[test]
    fn readme_documents_every_option() {
        use clap::CommandFactory;
        use std::collections::BTreeSet;
        let readme = include_str!("../../README.md");
        let cli = Cli::command();
        let up = cli.find_subcommand("up").expect("up subcommand");
        let in_code: BTreeSet<String> = up
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .filter(|l| l != "--help")
            .collect();
        let in_readme: BTreeSet<String> = readme
            .lines()
            .filter(|l| l.starts_with("| `--"))
            .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
            .collect();
        assert_eq!(
            in_code, in_readme,
            "README configuration table vs `edgedesk up`"
        );
        for a in up.get_arguments() {
            if let Some(env) = a.get_env() {
                let env = env.to_str().unwrap();
                assert!(
                    readme.contains(&format!("`{env}`")),
                    "{env} is not in the README"
                );
            }
        }
    }

    #[test]
    fn ice_servers_need_a_scheme() {
        assert!(parse_ice_server("stun:127.0.0.1:3478").is_ok());
        let t = parse_ice_server("turn:127.0.0.1:3478,u,p").unwrap();
        assert_eq!(t.username.as_deref(), Some("u"));
        assert!(parse_ice_server("http://x").is_err());
    }
}
