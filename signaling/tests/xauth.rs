//! A session's display has access control: `edgedesk up` starts it with an MIT-MAGIC-COOKIE
//! that only the session's host process (its capture, input, clipboard, resize) and the apps
//! it starts hold. A local process without the cookie cannot open the display, so it can
//! neither read the screen nor type into it; with the cookie it can.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{host_child, Killed};

/// The XAUTHORITY that the apps on `display` were started with (the host sets it in its own
/// environment after exec, which /proc does not show; its children's start-up one does).
fn apps_xauthority(display: &str) -> Option<String> {
    let want = format!("DISPLAY={display}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let environ = std::fs::read(e.path().join("environ")).ok()?;
        let vars: Vec<String> = environ
            .split(|&b| b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if !vars.contains(&want) {
            return None;
        }
        vars.iter()
            .find_map(|v| v.strip_prefix("XAUTHORITY=").map(str::to_owned))
    })
}

/// `xdpyinfo -display D` with the given XAUTHORITY (and no home to fall back to).
fn xdpyinfo(display: &str, xauthority: &str) -> (bool, String) {
    let out = Command::new("xdpyinfo")
        .args(["-display", display])
        .env("XAUTHORITY", xauthority)
        .env("HOME", "/nonexistent")
        .output()
        .expect("xdpyinfo (x11-utils) runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn only_the_session_holds_the_cookie_to_its_display() {
    for kind in ["xvfb", "xorg"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgedesk"))
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--size",
                "640x480",
                "--token",
                "t",
            ])
            .args(["--display-kind", kind])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let child = Killed(child);
        let mut display = None;
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            if let Some(d) = line.trim().strip_prefix("Display: ") {
                display = Some(d.to_owned());
                break;
            }
            line.clear();
        }
        let display = display.expect("Display: line");
        host_child(child.0.id()).expect("the session runs in an edgedesk-host child");
        let started = Instant::now();
        let mut cookie_file = apps_xauthority(&display);
        while cookie_file.is_none() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            cookie_file = apps_xauthority(&display);
        }
        let cookie_file = cookie_file.expect("the desktop's apps get XAUTHORITY");
        assert!(
            cookie_file.contains("edgedesk-host-"),
            "a private file: {cookie_file}"
        );

        let (ok, err) = xdpyinfo(&display, "/nonexistent");
        assert!(!ok, "{kind}: a process without the cookie opened {display}");
        assert!(err.contains("unable to open display"), "{kind}: {err}");
        let (ok, err) = xdpyinfo(&display, &cookie_file);
        assert!(ok, "{kind}: the cookie opens {display}: {err}");
        // The desktop's apps hold it too: the terminal is connected.
        let started = Instant::now();
        let mut terminal = false;
        while !terminal && started.elapsed() < Duration::from_secs(10) {
            let (_, tree) = {
                let o = Command::new("xwininfo")
                    .args(["-display", &display, "-root", "-tree"])
                    .env("XAUTHORITY", &cookie_file)
                    .output()
                    .unwrap();
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                )
            };
            terminal = tree.contains("\"Terminal\"");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(terminal, "{kind}: the terminal window is on {display}");
        drop(child);
        // The host's private directory (its Xauthority) goes with it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&cookie_file).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !std::path::Path::new(&cookie_file).exists(),
            "{cookie_file} is left behind"
        );
    }
}
