//! `kill -9` of `edgedesk up` leaves nothing behind: its X server (Xorg-dummy by default, and
//! Xvfb), window manager, panel and terminal all go, because every child is started to die
//! with its parent (`PR_SET_PDEATHSIG`), not by cleanup code that a SIGKILL never runs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Processes whose environment has `DISPLAY=name` (the desktop's apps) or whose command line
/// is an X server for `name`.
fn on_display(name: &str) -> Vec<String> {
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

fn kill9_leaves_nothing(kind: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgedesk"))
        .args(["up", "--listen", "127.0.0.1:0", "--size", "800x600"])
        .args(["--display-kind", kind, "--token", "t"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut display = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(d) = line.trim().strip_prefix("Display: ") {
            display = Some(d.to_owned());
        }
        if line.starts_with("Token: ") {
            break;
        }
        line.clear();
    }
    let display = display.expect("edgedesk printed its Display: line");
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

    child.kill().unwrap(); // SIGKILL: no cleanup code of edgedesk runs
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = on_display(&display);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = on_display(&display);
    }
    assert!(
        left.is_empty(),
        "left behind after kill -9: {left:#?} (was {before:#?})"
    );
}

#[test]
fn kill_9_leaves_no_xorg_desktop_behind() {
    kill9_leaves_nothing("xorg");
}

#[test]
fn kill_9_leaves_no_xvfb_desktop_behind() {
    kill9_leaves_nothing("xvfb");
}
