//! `edgedesk-bench browser`: what Chromium displays, on edgedesk's own page and on the tool's
//! WHEP page in front of an independent server (GStreamer's webrtcbin, in a network
//! namespace); and a page that shows nothing fails in one line.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::netns::{self, Isolated};
use common::{assert_fails_in_one_line, bench, edgedesk, Guard};
use host::display::{DisplayKind, DisplayOptions, VirtualDisplay};
use serde_json::Value;

/// Why Chromium cannot be driven here, or `None`.
fn browser_unavailable() -> Option<String> {
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

fn display() -> VirtualDisplay {
    VirtualDisplay::start(DisplayOptions {
        width: 640,
        height: 360,
        kind: DisplayKind::Xvfb,
        ..DisplayOptions::default()
    })
    .expect("Xvfb")
}

fn printed(child: &mut std::process::Child, prefix: &'static str) -> String {
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

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The figures every browser run must have.
fn check_browser_report(out: &std::process::Output, codec: &str) -> Value {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "edgedesk-bench browser failed: {err}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(r["codes"]["codes_seen"].as_u64().unwrap_or(0) > 30, "{r}");
    let g2g = &r["glass_to_glass_ms"]["summary"];
    assert!(num(&g2g["p50"]) > 0.0 && num(&g2g["p99"]) < 1000.0, "{g2g}");
    let b = &r["browser"];
    assert_eq!(b["element"], "video", "{b}");
    assert!(num(&b["glass_to_glass_presented_ms"]["p50"]) > 0.0, "{b}");
    assert!(num(&b["chromium"]["decoded_fps"]) > 10.0, "{b}");
    assert!(num(&b["clock_uncertainty_ms"]) < 5.0, "{b}");
    assert_eq!(r["settings"]["codec"], codec, "{r}");
    let c2p = &r["click_to_photon_ms"]["summary"];
    assert!(c2p["count"].as_u64().unwrap_or(0) >= 1, "{r}");
    r
}

#[test]
fn edgedesks_page_is_measured_as_displayed() {
    if let Some(why) = browser_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let d = display();
    let mut server = Guard::spawn(
        Command::new(edgedesk())
            .args(["up", "--display", &d.name(), "--listen", "127.0.0.1:0"])
            .args(["--token", "page-token", "--fps", "30", "--codecs", "vp8"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let open = printed(&mut server.0, "Open: ");
    let out = bench(&[
        "browser",
        "--url",
        &open,
        "--stimulus-display",
        &d.name(),
        "--stimulus-fps",
        "30",
        "--seconds",
        "3",
        "--json",
        "--quiet",
    ]);
    check_browser_report(&out, "vp8");

    // A page with no video: one line, no panic.
    let out = bench(&[
        "browser",
        "--url",
        "data:text/html,<p>no video here</p>",
        "--stimulus-display",
        &d.name(),
        "--ready-timeout",
        "2",
        "--quiet",
    ]);
    assert_fails_in_one_line(&out, "no <video> or <canvas> showed a picture");
}

#[test]
fn the_tools_whep_page_measures_gstreamer_webrtcbin() {
    let gst_check =
        "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstWebRTC','1.0'); \
        from gi.repository import Gst; Gst.init(None); assert Gst.ElementFactory.find('webrtcbin')";
    let gst_ok = Command::new("/usr/bin/python3")
        .args(["-c", gst_check])
        .output()
        .is_ok_and(|o| o.status.success());
    let why = browser_unavailable()
        .or_else(netns::unavailable)
        .or((!gst_ok).then(|| "GStreamer's webrtcbin (python3-gi) is not usable".into()));
    if let Some(why) = why {
        eprintln!("skipped: {why}");
        return;
    }
    let d = display();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("servers/gst-webrtcbin-whep.py");
    let args: Vec<String> = [
        script.to_str().unwrap(),
        "--display",
        &d.name(),
        "--listen",
        "{inside}:0",
        "--fps",
        "30",
    ]
    .map(String::from)
    .to_vec();
    let mut gst = Isolated::spawn("/usr/bin/python3".as_ref(), &args, &[]).expect("namespace");
    let whep = printed(&mut gst.child, "listening ");
    let run = || {
        bench(&[
            "browser",
            "--whep",
            &whep,
            "--stimulus-display",
            &d.name(),
            "--stimulus-fps",
            "30",
            "--seconds",
            "3",
            "--ready-timeout",
            "15",
            "--json",
            "--quiet",
        ])
    };
    let mut out = run();
    if !out.status.success() {
        // GStreamer 1.22's webrtcbin now and then never completes DTLS with Chromium (ICE
        // connected, the browser's handshake packets dropped before its DTLS decoder): a
        // flaw of the baseline, not of the tool. One more connection.
        eprintln!(
            "note: first connection failed ({}); trying once more",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        out = run();
    }
    check_browser_report(&out, "h264");
}
