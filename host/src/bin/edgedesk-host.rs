//! `edgedesk-host`: one session in its own process (its display, desktop, capture, encoder,
//! viewers, input and clipboard), driven by the control plane (`edgedesk up`) over the control
//! channel. Started by the control plane, not by hand:
//!
//! ```text
//! edgedesk-host --control /run/…/control.sock --session NAME
//! ```
//!
//! Its X server and apps die with it (even on SIGKILL); it ends when the control plane says
//! so or goes away. Logs go to stderr (`RUST_LOG`, default `info`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (mut socket, mut session) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--control" => {
                socket = Some(PathBuf::from(
                    args.next().context("--control needs a path")?,
                ))
            }
            "--session" => session = Some(args.next().context("--session needs a name")?),
            "-h" | "--help" => {
                println!(
                    "usage: edgedesk-host --control SOCKET --session NAME (started by edgedesk up)"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let socket = socket.context("--control SOCKET is required")?;
    let session = session.context("--session NAME is required")?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(edgedesk_host::control::serve(&socket, &session))
        .with_context(|| format!("session {session}"))
}
