//! `kill -9` of `edgedesk up` leaves nothing behind: its session's host process, X server
//! (Xorg-dummy by default, and Xvfb), window manager, panel and terminal all go, because every
//! child is started to die with its parent (`PR_SET_PDEATHSIG`), not by cleanup code that a
//! SIGKILL never runs. `kill -9` of the session's host ends that session only: its desktop
//! goes, the control plane keeps serving and says the session is gone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{audio_dirs, children_named, host_child, on_display, running, Killed};

/// Starts `edgedesk up` with a `kind` desktop; returns it, its display and its HTTP base URL.
fn up(kind: &str) -> (Killed, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgedesk"))
        .args(["up", "--listen", "127.0.0.1:0", "--size", "800x600"])
        .args(["--display-kind", kind, "--token", "t"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut display, mut base) = (None, None);
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(d) = line.trim().strip_prefix("Display: ") {
            display = Some(d.to_owned());
        }
        if let Some(w) = line.trim().strip_prefix("WHEP: ") {
            base = w.split("/whep/").next().map(str::to_owned);
        }
        if line.starts_with("Token: ") {
            break;
        }
        line.clear();
    }
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let display = display.expect("edgedesk printed its Display: line");
    (
        Killed(child),
        display,
        base.expect("edgedesk printed its WHEP: line"),
    )
}

/// A plain HTTP/1.0 request to `base` (`http://127.0.0.1:PORT`); the status code and body.
fn http(base: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

fn kill9_leaves_nothing(kind: &str) {
    let (mut child, display, _) = up(kind);
    // The desktop is up: the server and its apps (openbox, the panel, the terminal).
    let started = Instant::now();
    while on_display(&display).len() < 3 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = on_display(&display);
    assert!(
        before.len() >= 3,
        "the desktop did not come up: {before:#?}"
    );
    // The session's sound server.
    let host = host_child(child.0.id()).expect("the session's host process");
    let sound = children_named(host, "pulseaudio");
    assert_eq!(sound.len(), 1, "one sound server per session");
    assert_eq!(audio_dirs(host).len(), 1);

    child.0.kill().unwrap(); // SIGKILL: no cleanup code of edgedesk runs
    child.0.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = on_display(&display);
    let sound_left = || sound.iter().any(|&p| running(p)) || !audio_dirs(host).is_empty();
    while (!left.is_empty() || sound_left()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = on_display(&display);
    }
    assert!(
        left.is_empty(),
        "left behind after kill -9: {left:#?} (was {before:#?})"
    );
    assert!(
        !sound.iter().any(|&p| running(p)),
        "the session's pulseaudio survived kill -9"
    );
    assert_eq!(audio_dirs(host), Vec::<std::path::PathBuf>::new());
}

#[test]
fn kill_9_of_the_host_ends_only_its_session() {
    let (mut child, display, base) = up("xvfb");
    let (status, stats) = http(&base, "GET", "/stats", "");
    assert_eq!(status, 200);
    assert!(
        stats.contains("\"default\""),
        "the session is served: {}",
        &stats[..stats.len().min(200)]
    );
    let started = std::time::Instant::now();
    while on_display(&display).len() < 3 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let host =
        host_child(child.0.id()).expect("edgedesk up runs its session in an edgedesk-host child");
    let sound = children_named(host, "pulseaudio");
    assert_eq!(sound.len(), 1, "the session has its sound server");
    // SAFETY: kill(2) has no memory-safety preconditions.
    assert_eq!(unsafe { libc_kill(host as i32, 9) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = on_display(&display);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = on_display(&display);
    }
    assert!(
        left.is_empty(),
        "the killed host's desktop is left: {left:#?}"
    );
    // Its sound server dies with it; the control plane sweeps the directory it left.
    while (sound.iter().any(|&p| running(p)) || !audio_dirs(host).is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !sound.iter().any(|&p| running(p)),
        "pulseaudio outlived its host"
    );
    assert_eq!(audio_dirs(host), Vec::<std::path::PathBuf>::new());
    // The control plane keeps serving; the session is gone (no session in /stats, not a hang).
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "edgedesk up kept running"
    );
    assert_eq!(http(&base, "GET", "/healthz", "").0, 200);
    let (status, stats) = http(&base, "GET", "/stats", "");
    assert_eq!(status, 200);
    assert_eq!(stats.trim(), r#"{"sessions":[]}"#);
    drop(child);
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn kill_9_leaves_no_xorg_desktop_behind() {
    kill9_leaves_nothing("xorg");
}

#[test]
fn kill_9_leaves_no_xvfb_desktop_behind() {
    kill9_leaves_nothing("xvfb");
}
