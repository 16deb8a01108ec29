//! `edgedesk-bench run` against servers as a new user meets them: GStreamer's webrtcbin (an
//! independent WHEP server that announces only its interface addresses) and edgedesk, each in
//! a network namespace reachable only through a non-loopback address; redirects, advertised
//! ICE servers, and every failure one line without a panic.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::netns::{self, Isolated};
use common::{
    assert_fails_in_one_line, bench, display, edgedesk, gst_script, gst_unavailable, json, num,
    printed, Guard,
};

#[test]
fn gstreamer_webrtcbin_behind_a_namespace_is_measured_end_to_end() {
    if let Some(why) = netns::unavailable().or_else(gst_unavailable) {
        eprintln!("skipped: {why}");
        return;
    }
    let d = display(640, 360);
    let args: Vec<String> = [
        gst_script().to_str().unwrap(),
        "--display",
        &d.name(),
        "--listen",
        "{inside}:0",
        "--fps",
        "30",
        "--bitrate",
        "2000",
    ]
    .map(String::from)
    .to_vec();
    let mut gst = Isolated::spawn("/usr/bin/python3".as_ref(), &args, &[]).expect("namespace");
    let whep = printed(&mut gst.child, "listening ");
    assert!(
        whep.starts_with(&format!("http://{}:", gst.inside)),
        "{whep}"
    );

    let out = bench(&[
        "run",
        "--whep",
        &whep,
        "--stimulus-display",
        &d.name(),
        "--stimulus-fps",
        "30",
        "--seconds",
        "3",
        "--json",
        "--quiet",
    ]);
    let r = json(&out);
    assert_eq!(r["settings"]["codec"], "h264", "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!(num(&r["fps"]) > 10.0, "{r}");
    assert!(r["codes"]["codes_seen"].as_u64().unwrap() > 30, "{r}");
    let g2g = &r["glass_to_glass_ms"]["summary"];
    assert!(num(&g2g["p50"]) > 0.0 && num(&g2g["p99"]) < 500.0, "{g2g}");
    // Not edgedesk (no host timings): clicks go in with XTest on the display, and the report
    // says so.
    let via = r["clicks_via"].as_str().unwrap_or("");
    assert!(via.starts_with("XTest"), "{r}");
    let c2p = &r["click_to_photon_ms"]["summary"];
    assert!(c2p["count"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert!(num(&c2p["p50"]) > 0.0 && num(&c2p["p50"]) < 1000.0, "{r}");

    // Gathering on loopback only, the client cannot reach the namespace's address: ICE fails,
    // and the line names both sides' candidates.
    let out = bench(&["run", "--whep", &whep, "--bind", "127.0.0.1:0", "--quiet"]);
    let err = assert_fails_in_one_line(&out, "ICE did not connect");
    assert!(
        err.contains(&format!("{}:", gst.inside)) && err.contains("127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn edgedesk_reachable_only_through_a_namespace_address() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let d = display(640, 360);
    let args: Vec<String> = [
        "up",
        "--display",
        &d.name(),
        "--listen",
        "{inside}:0",
        "--token",
        "ns-token",
        "--session",
        "ns",
        "--fps",
        "30",
        "--bitrate",
        "2M",
    ]
    .map(String::from)
    .to_vec();
    let mut server =
        Isolated::spawn(&edgedesk(), &args, &[("RUST_LOG", "warn")]).expect("namespace");
    let whep = printed(&mut server.child, "WHEP: ");
    assert!(
        whep.starts_with(&format!("http://{}:", server.inside)),
        "{whep}"
    );
    let out = bench(&[
        "run",
        "--whep",
        &whep,
        "--token",
        "ns-token",
        "--stimulus-display",
        &d.name(),
        "--stimulus-fps",
        "30",
        "--seconds",
        "3",
        "--json",
        "--quiet",
    ]);
    let r = json(&out);
    assert!(r["codes"]["codes_seen"].as_u64().unwrap() > 30, "{r}");
    assert!(num(&r["glass_to_glass_ms"]["summary"]["p50"]) > 0.0, "{r}");
    let c2p = &r["click_to_photon_ms"]["summary"];
    assert!(c2p["count"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert!(
        r["clicks_via"]
            .as_str()
            .unwrap_or("")
            .contains("input data channel"),
        "{r}"
    );
}

/// Answers every request with a 307 to `to` (itself when `None`: a loop).
fn redirector(to: Option<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let me = format!("http://{}/whep", listener.local_addr().unwrap());
    let location = to.unwrap_or_else(|| me.clone());
    std::thread::spawn(move || {
        for mut s in listener.incoming().map_while(Result::ok) {
            // Read the whole request (headers, then Content-Length bytes): closing with unread
            // bytes would reset the connection before the client reads the answer.
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let head_end = req.windows(4).position(|w| w == b"\r\n\r\n");
                if let Some(end) = head_end {
                    let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if req.len() >= end + 4 + length {
                        break;
                    }
                }
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            );
        }
    });
    me
}

#[test]
fn redirects_advertised_ice_servers_and_refusals() {
    let mut server = Guard::spawn(
        Command::new(edgedesk())
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--size",
                "320x240",
                "--token",
                "t",
            ])
            .args(["--app", "", "--wm", "", "--codecs", "h264"])
            .args(["--ice-server", "stun:127.0.0.1:9"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let whep = printed(&mut server.0, "WHEP: ");

    // A 307 is followed with the same offer; the STUN server edgedesk advertises (OPTIONS,
    // through the redirect too) is gathered from; the report notes both.
    let via = redirector(Some(whep.clone()));
    let out = bench(&[
        "run",
        "--whep",
        &via,
        "--token",
        "t",
        "--seconds",
        "1",
        "--json",
        "--quiet",
    ]);
    let r = json(&out);
    let notes = r["notes"].to_string();
    assert!(notes.contains(&format!("redirected to {whep}")), "{notes}");
    assert!(
        notes.contains("ICE servers from OPTIONS: stun:127.0.0.1:9"),
        "{notes}"
    );
    assert!(r["frames_decoded"].as_u64().unwrap() > 0, "{r}");

    // Refusals, each one line: a codec the server does not send, a redirect loop, a bad
    // --ice-server.
    let out = bench(&[
        "run", "--whep", &whep, "--token", "t", "--codec", "vp8", "--quiet",
    ]);
    assert_fails_in_one_line(&out, "answered 406");
    let out = bench(&["run", "--whep", &redirector(None), "--quiet"]);
    assert_fails_in_one_line(&out, "more than 5 redirects");
    let out = bench(&["run", "--whep", &whep, "--ice-server", "turn:x", "--quiet"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("USERNAME,CREDENTIAL"));
}
