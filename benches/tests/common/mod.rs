//! What the bench tool's integration tests share: the binaries, and servers in network
//! namespaces.
#![allow(dead_code)] // each test binary uses its own part

pub mod netns;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

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
