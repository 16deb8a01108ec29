//! Helpers shared by the tests that run the real `edgedesk` binary and look at the processes
//! it starts.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};

/// Processes whose environment has `DISPLAY=name` (the desktop's apps) or whose command line
/// is an X server for `name`.
pub fn on_display(name: &str) -> Vec<String> {
    let want_env = format!("DISPLAY={name}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let server = args
            .first()
            .is_some_and(|a| a.ends_with("Xorg") || a.ends_with("Xvfb"))
            && args.iter().any(|a| a == name);
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let app = environ.split(|&b| b == 0).any(|e| e == want_env.as_bytes());
        if server || app {
            found.push(format!("{pid} {}", args.join(" ")));
        }
    }
    found
}

/// Kills and reaps the child on drop, so a failing test leaves no server behind.
pub struct Killed(pub std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pid of the `edgedesk-host` child of `parent`.
pub fn host_child(parent: u32) -> Option<u32> {
    children_named(parent, "edgedesk-host").first().copied()
}

/// The children of `parent` whose command name is `comm`.
pub fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid …
            let after = stat.rsplit_once(')')?.1;
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent && stat.contains(&format!("({comm})"))).then_some(pid)
        })
        .collect()
}

/// Whether process `pid` exists (and is not a zombie).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, a)| !a.trim_start().starts_with('Z'))
    })
}

/// The session sound server directories of host `pid` (`edgedesk-audio-PID-*`).
pub fn audio_dirs(pid: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("edgedesk-audio-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// One HTTP/1.0 request; (status, body).
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}

pub fn json_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}
