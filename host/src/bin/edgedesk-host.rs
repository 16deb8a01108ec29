//! `edgedesk-host`: one session in its own process (its display, desktop, capture, encoder,
//! viewers, input and clipboard), driven by the control plane (`edgedesk up`) over the control
//! channel. Started by the control plane, not by hand:
//!
//! ```text
//! edgedesk-host --control /run/…/control.sock --session NAME [--reconnect-grace SECS]
//! ```
//!
//! Its X server and apps die with it (even on SIGKILL); it ends when the control plane says
//! so or goes away (with `--reconnect-grace`, when no control plane has taken the session
//! back within that many seconds). Logs go to stderr (`RUST_LOG`, default `info`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    if std::env::var("EDGEDESK_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().init();
    } else {
        logs.init();
    }
    let (mut socket, mut session) = (None, None);
    let mut grace = std::time::Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--control" => {
                socket = Some(PathBuf::from(
                    args.next().context("--control needs a path")?,
                ))
            }
            "--session" => session = Some(args.next().context("--session needs a name")?),
            "--reconnect-grace" => {
                let secs: u64 = args
                    .next()
                    .context("--reconnect-grace needs seconds")?
                    .parse()
                    .context("--reconnect-grace needs whole seconds")?;
                grace = std::time::Duration::from_secs(secs);
            }
            "--check" => return check(),
            "-h" | "--help" => {
                println!(
                    "usage: edgedesk-host --control SOCKET --session NAME [--reconnect-grace SECS] (started by edgedesk serve/up)\n       edgedesk-host --check   (can this machine run a session? exit 0 and what it has, or 1 and why)"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let socket = socket.context("--control SOCKET is required")?;
    let session = session.context("--session NAME is required")?;
    let auth = private_xauthority().context("setting up X access control")?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = rt
        .block_on(edgedesk_host::control::serve(&socket, &session, grace))
        .with_context(|| format!("session {session}"));
    drop(rt);
    let _ = std::fs::remove_dir_all(&auth);
    result
}

/// `--check`: whether a session can start here: an X server to start (Xvfb, or Xorg with the
/// dummy driver) and an encoder that opens. The control plane's `/readyz` runs it.
fn check() -> Result<()> {
    use edgedesk_host::display::DisplayKind;
    let kinds: Vec<&str> = [
        (DisplayKind::Xvfb, "xvfb"),
        (DisplayKind::XorgDummy, "xorg"),
    ]
    .into_iter()
    .filter(|(k, _)| k.available().is_ok())
    .map(|(_, n)| n)
    .collect();
    if kinds.is_empty() {
        bail!(
            "no X server to start: {}",
            DisplayKind::Xvfb.available().unwrap_err()
        );
    }
    let registry = codec::registry::EncoderRegistry::probe();
    let encoders: Vec<String> = registry
        .available()
        .iter()
        .map(|b| b.name.clone())
        .collect();
    if encoders.is_empty() {
        bail!("no encoder opens on this machine");
    }
    println!(
        "ready: displays {}; encoders {}",
        kinds.join(","),
        encoders.join(",")
    );
    Ok(())
}

/// This process's own Xauthority file, in a new 0700 directory, with the caller's entries
/// copied in (so an existing display given with `--display` still opens): the session's
/// display adds its cookie there, and `XAUTHORITY` points every X connection of this process,
/// and everything it starts on the display, at it. Set before any thread exists.
fn private_xauthority() -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = std::env::temp_dir().join(format!(
        "edgedesk-host-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("Xauthority");
    let inherited = std::env::var_os("XAUTHORITY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".Xauthority")))
        .and_then(|p| std::fs::read(p).ok())
        .unwrap_or_default();
    std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &inherited))
        .with_context(|| format!("creating {}", file.display()))?;
    std::env::set_var("XAUTHORITY", &file);
    Ok(dir)
}
