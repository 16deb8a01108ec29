//! `edgedesk-bench browser`: what Chromium displays, on edgedesk's own page and on the tool's
//! WHEP page in front of an independent server (GStreamer's webrtcbin, in a network
//! namespace); and a page that shows nothing fails in one line.

mod common;

use std::process::{Command, Stdio};

use common::netns::{self, Isolated};
use common::{
    assert_fails_in_one_line, bench, browser_unavailable, display, edgedesk, gst_script,
    gst_unavailable, num, printed, Guard,
};
use serde_json::Value;

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
    assert!(num(&b["presented_fps"]) > 10.0, "{b}");
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
    let d = display(640, 360);
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
    let why = browser_unavailable()
        .or_else(netns::unavailable)
        .or_else(gst_unavailable);
    if let Some(why) = why {
        eprintln!("skipped: {why}");
        return;
    }
    let d = display(640, 360);
    let script = gst_script();
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
