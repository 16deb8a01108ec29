//! What the bench tool's integration tests share: the binaries, and servers in network
//! namespaces.
#![allow(dead_code)] // each test binary uses its own part

pub mod netns;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use host::display::{DisplayKind, DisplayOptions, VirtualDisplay};
use serde_json::Value;

pub const BENCH: &str = env!("CARGO_BIN_EXE_edgedesk-bench");

/// The `edgedesk` binary next to this package's binaries (built if missing).
pub fn edgedesk() -> PathBuf {
    let path = PathBuf::from(BENCH).with_file_name("edgedesk");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "edgedesk-signaling", "--bin", "edgedesk"])
            .status()
            .expect("cargo");
        assert!(status.success(), "building edgedesk failed");
    }
    path
}

/// A child process ended (SIGTERM, then waited for) when dropped — also when the test
/// panics, so a failing test leaves no server behind; [`Guard::spawn`] ties it to this process
/// too (`PR_SET_PDEATHSIG`), for a test binary that is killed.
pub struct Guard(pub std::process::Child);

impl Guard {
    pub fn spawn(cmd: &mut std::process::Command) -> Guard {
        Guard(control::process::spawn_tied(cmd).expect("spawning a server"))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Runs `edgedesk-bench ARGS` to the end.
pub fn bench(args: &[&str]) -> Output {
    Command::new(BENCH)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("edgedesk-bench runs")
}

/// A failed run: non-zero exit, and stderr one line (the error) that contains `needle`,
/// without a panic.
pub fn assert_fails_in_one_line(out: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(!out.status.success(), "succeeded: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("edgedesk-bench: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    err
}

pub fn display(width: u32, height: u32) -> VirtualDisplay {
    VirtualDisplay::start(DisplayOptions {
        width,
        height,
        kind: DisplayKind::Xvfb,
        ..DisplayOptions::default()
    })
    .expect("Xvfb")
}

/// The first stdout line of `child` that starts with `prefix` (its rest), within 30 s; the
/// rest of stdout is drained.
pub fn printed(child: &mut std::process::Child, prefix: &'static str) -> String {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("the server never printed {prefix:?}"))
}

pub fn gst_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("servers/gst-webrtcbin-whep.py")
}

/// Why the GStreamer server cannot run here, or `None`.
pub fn gst_unavailable() -> Option<String> {
    let check = "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstWebRTC','1.0'); \
        from gi.repository import Gst, GstWebRTC; Gst.init(None); \
        missing = [e for e in ('webrtcbin','ximagesrc','x264enc','nicesrc') if not Gst.ElementFactory.find(e)]; \
        assert not missing, missing";
    match Command::new("/usr/bin/python3")
        .args(["-c", check])
        .stdout(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "GStreamer's webrtcbin from python3-gi is not usable (scripts/setup.sh installs it): {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        )),
        Err(e) => Some(format!("/usr/bin/python3: {e}")),
    }
}

pub fn json(out: &std::process::Output) -> Value {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "edgedesk-bench failed: {err}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {err}"))
}

pub fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Why Chromium cannot be driven here, or `None`.
pub fn browser_unavailable() -> Option<String> {
    let client_web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../client-web");
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium is missing (scripts/setup.sh installs it)".into());
    }
    if !client_web.join("node_modules/playwright-core").exists() {
        return Some(
            "client-web's node packages are missing (scripts/setup.sh runs npm ci)".into(),
        );
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("node is not installed".into()),
    }
}

/// Every live process below `root` (pid, command name), from /proc.
pub fn descendants(root: u32) -> Vec<(u32, String)> {
    edgedesk_bench::proc::tree(root)
        .into_iter()
        .filter(|p| p.pid != root && !p.zombie)
        .map(|p| (p.pid, p.name))
        .collect()
}

/// Whether `pid` still runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}
