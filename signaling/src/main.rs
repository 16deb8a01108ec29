//! `edgedesk`: the control plane's composition root. `edgedesk serve` runs the control plane
//! (operator API, console, WHEP relay to session hosts); `edgedesk up` is the same with one
//! session started (in its own host process, `edgedesk-host`: the X display, desktop,
//! capture, encoder, viewers) and its link printed. Both shut down in reverse order on
//! Ctrl-C or SIGTERM; SIGUSR1 (with a state directory) exits leaving the sessions running
//! for the next control plane on that directory.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use control::SessionSpec;
use signaling::backend::{Role, WhepBackend};
use signaling::config::{parse_ice_server, Command, ServeArgs, UpArgs};
use signaling::http::api::Operator;
use signaling::http::{app, AppState};
use signaling::remote::{RemoteBackend, StateDir};
use signaling::sessions::{SessionManager, SessionState};
use signaling::tokens::Tokens;

fn main() -> Result<()> {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,webrtc=warn,rtc=warn,rtc_dtls=error,rtc_ice=error".into()
            }),
        )
        .with_writer(std::io::stderr);
    // One JSON object a line for log collectors; the hosts inherit the setting.
    if std::env::var("EDGEDESK_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().init();
    } else {
        logs.init();
    }
    let cli = match signaling::config::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(signaling::config::ParseError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("edgedesk: {e}");
            std::process::exit(2);
        }
    };
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    match cli.command {
        Command::Serve(args) => runtime()?.block_on(run(args, None)),
        Command::Up(args) => {
            let UpArgs {
                serve,
                token,
                display,
                session,
                token_ttl,
            } = args;
            let up = Up {
                token,
                display,
                session,
                token_ttl,
            };
            runtime()?.block_on(run(serve, Some(up)))
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

/// The session `edgedesk up` starts.
struct Up {
    token: Option<String>,
    display: Option<String>,
    session: String,
    token_ttl: u64,
}

/// The operator key: from `--operator-key-file`, `--operator-key`, the state directory, or a
/// fresh random one (then `true`: it is printed).
fn operator_key(args: &ServeArgs, state: Option<&StateDir>) -> Result<(String, bool)> {
    let key = match (&args.operator_key_file, &args.operator_key) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("--operator-key-file {}", path.display()))?
            .trim()
            .to_owned(),
        (None, Some(k)) => k.trim().to_owned(),
        (None, None) => {
            let key = match state {
                Some(s) => s
                    .secret("operator.key", signaling::tokens::random_id)
                    .context("the state directory's operator key")?,
                None => signaling::tokens::random_id(),
            };
            return Ok((key, true));
        }
    };
    if key.len() < 16 {
        bail!("the operator key must be at least 16 characters");
    }
    Ok((key, false))
}

/// The defaults of the sessions this control plane starts.
fn session_defaults(args: &ServeArgs) -> Result<SessionSpec> {
    let ice_servers = args
        .ice_servers
        .iter()
        .map(|s| parse_ice_server(s).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let udp = if args.udp.is_empty() {
        vec![format!("{}:0", args.listen.ip())]
    } else {
        args.udp.clone()
    };
    Ok(SessionSpec {
        width: args.size.0,
        height: args.size.1,
        display: None,
        display_kind: args.display_kind.clone(),
        wm: args.wm.clone(),
        app: args.app.clone(),
        fps: args.fps,
        bitrate_bps: args.bitrate,
        encoder: args.encoder.clone(),
        udp,
        ice_servers: ice_servers
            .iter()
            .map(|s| control::IceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect(),
        max_viewers: args.max_viewers,
        clipboard: args.clipboard.clone(),
        clipboard_max_bytes: args.clipboard_max_bytes,
        codecs: args.codecs.0.clone(),
        congestion: args.congestion.clone(),
        min_bitrate_bps: args.min_bitrate.min(args.bitrate),
        max_bitrate_bps: args.max_bitrate.unwrap_or(args.bitrate).max(args.bitrate),
        public_ip: args.public_ip.map(|ip| ip.to_string()),
        audio: args.audio.clone(),
        audio_frame_ms: args.audio_frame_ms,
    })
}

async fn run(args: ServeArgs, up: Option<Up>) -> Result<()> {
    let defaults = session_defaults(&args)?;
    let ice_servers = args
        .ice_servers
        .iter()
        .map(|s| parse_ice_server(s).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;

    // 1. The session registry and its hosts; from the state directory, the sessions an
    //    earlier control plane left running there.
    let state = match &args.state_dir {
        Some(d) => Some(StateDir::open(d).with_context(|| format!("--state-dir {}", d.display()))?),
        None => None,
    };
    let grace = Duration::from_secs(args.reconnect_grace);
    let backend = match &state {
        Some(s) => RemoteBackend::open(
            RemoteBackend::default_host_bin(),
            s.clone(),
            grace,
            args.max_sessions.max(1),
        )
        .context("the state directory")?,
        None => Arc::new(
            RemoteBackend::new(RemoteBackend::default_host_bin())
                .context("the control socket")?
                .with_capacity(args.max_sessions.max(1)),
        ),
    };
    // Hosts reconnect within a few hundred ms; wait for them before serving.
    backend.settled(grace + Duration::from_secs(6)).await;

    // 2. Tokens: with a state directory, the key and revocations outlive this process.
    let mut tokens = match &state {
        Some(s) => {
            let secret = s
                .secret("token.key", || {
                    rand::random::<[u8; 32]>()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect()
                })
                .context("the state directory's token key")?;
            Tokens::from_secret(secret.as_bytes())
                .map_err(|e| anyhow::anyhow!("token.key: {e}"))?
                .with_revocation_log(s.path().join("revoked"))
                .context("the state directory's revocations")?
        }
        None => Tokens::random(),
    };

    // 3. `up`'s session (kept, when an earlier `up` on this state directory left it running).
    let mut printed = Vec::new();
    if let Some(up) = &up {
        let name = &up.session;
        let resumed = matches!(
            backend.get(name).map(|s| s.state),
            Some(SessionState::Running { .. })
        ) && backend.has_session(name);
        if !resumed {
            let spec = SessionSpec {
                display: up.display.clone(),
                ..defaults.clone()
            };
            backend
                .register(name, spec, Default::default())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            backend.launch(name).await;
        }
        let display_name = match backend.get(name).map(|s| s.state) {
            Some(SessionState::Running { display }) => display,
            Some(SessionState::Failed { reason }) => bail!("starting session {name:?}: {reason}"),
            other => bail!("starting session {name:?}: {other:?}"),
        };
        let token = match &up.token {
            Some(t) => {
                tokens = tokens.with_static(t, Role::Control).context("--token")?;
                t.clone()
            }
            None => tokens.issue(name, Role::Control, Duration::from_secs(up.token_ttl)),
        };
        printed.push(format!("Display: {display_name}"));
        if let Some(x) = backend.xauthority(name) {
            printed.push(format!("Xauthority: {x}"));
        }
        printed.push(format!("Open: {{base}}/?session={name}#token={token}"));
        printed.push(format!("WHEP: {{base}}/whep/{name}"));
        printed.push(format!("Token: {token}"));
    }
    let (operator_key, generated) = operator_key(&args, state.as_ref())?;

    // 4. The HTTP front door.
    let mut state_http = AppState::new(backend.clone(), Arc::new(tokens))
        .with_ice_servers(ice_servers)
        .context("--ice-server")?;
    if let Some(secret) = &args.turn_secret {
        state_http = state_http
            .with_turn(signaling::http::TurnRest {
                urls: args.turn_urls.clone(),
                secret: secret.clone(),
                ttl: Duration::from_secs(args.turn_ttl),
            })
            .context("--turn-url")?;
    }
    let state_http = state_http
        .with_operator(Operator::new(&operator_key, backend.clone(), defaults))
        .with_readiness(host_check(RemoteBackend::default_host_bin()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    if up.is_none() {
        printed.push(format!("API: {base}/api/v1"));
        printed.push(format!("Console: {base}/console.html"));
        if generated {
            printed.push(format!("Operator key: {operator_key}"));
        }
    } else if generated {
        printed.push(format!("Operator key: {operator_key}"));
    } else {
        printed.push(format!(
            "API: {base}/api/v1 (operator key from the configured file)"
        ));
    }
    // Where to connect, on stdout. A reader that stops reading (`| head`, a script that found
    // its line) must not take the server down: write errors are ignored, never a panic.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for line in &printed {
            if writeln!(out, "{}", line.replace("{base}", &base)).is_err() {
                break;
            }
        }
        let _ = out.flush();
    }
    tracing::info!(%addr, sessions = backend.list().len(), "serving");

    let (how_tx, how_rx) = tokio::sync::watch::channel(Stop::End);
    axum::serve(listener, app(state_http))
        .with_graceful_shutdown(async move {
            let _ = how_tx.send(stop_signal().await);
        })
        .await?;
    let how = *how_rx.borrow();

    if how == Stop::Detach && backend.detach() {
        tracing::info!(
            sessions = backend.list().len(),
            grace_secs = args.reconnect_grace,
            "SIGUSR1: leaving the sessions running for the next control plane"
        );
        return Ok(());
    }
    // Reverse order: the hosts end their sessions (viewers, pipeline, desktop, display).
    tracing::info!("shutting down");
    backend.stop(Duration::from_secs(5)).await;
    Ok(())
}

/// `/readyz`'s check: `edgedesk-host --check` (an X server to start, an encoder that opens:
/// what the host needs, known to the host, so this process links no media code), run now and
/// every 10 s on a thread of its own; the check answers the last result.
fn host_check(host_bin: std::path::PathBuf) -> impl Fn() -> Result<(), String> + Send + Sync {
    let run = move || -> Result<(), String> {
        let out = std::process::Command::new(&host_bin)
            .arg("--check")
            .stdin(std::process::Stdio::null())
            .env("RUST_LOG", "error")
            .output()
            .map_err(|e| format!("cannot run {} --check: {e}", host_bin.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("the host check failed")
            .trim_start_matches("Error: ")
            .to_owned())
    };
    let last = Arc::new(std::sync::Mutex::new(run()));
    {
        let last = Arc::downgrade(&last);
        std::thread::Builder::new()
            .name("readiness".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(10));
                let result = run();
                match last.upgrade() {
                    Some(l) => *l.lock().unwrap() = result,
                    None => break,
                }
            })
            .expect("starting the readiness thread");
    }
    move || last.lock().unwrap().clone()
}

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Ctrl-C, SIGTERM: end every session, then exit.
    End,
    /// SIGUSR1: exit, leaving the sessions to the next control plane (with a state directory).
    Detach,
}

async fn stop_signal() -> Stop {
    use tokio::signal::unix::{signal, SignalKind};
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut usr1 = signal(SignalKind::user_defined1()).expect("installing the SIGUSR1 handler");
    tokio::select! {
        _ = ctrl_c => Stop::End,
        _ = term.recv() => Stop::End,
        _ = usr1.recv() => Stop::Detach,
    }
}
