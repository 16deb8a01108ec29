//! The bench tool end to end, as a user runs it: a short `local` run (Xvfb, stimulus, the
//! real `edgedesk` binary, the measuring client) gives plausible latencies — not the targets,
//! which are for the benchmark, not CI — and the error cases say clearly what is wrong.

mod common;

use std::process::{Command, Stdio};

use common::{assert_fails_in_one_line, bench, edgedesk, Guard};
use host::display::{DisplayKind, DisplayOptions, VirtualDisplay};

#[test]
fn a_short_local_run_measures_plausible_latencies() {
    let out_dir = std::env::temp_dir().join(format!("edgedesk-bench-test-{}", std::process::id()));
    let edgedesk = edgedesk();
    let out = bench(&[
        "local",
        "--size",
        "640x360",
        "--fps",
        "30",
        "--bitrate",
        "2M",
        "--seconds",
        "3",
        "--json",
        "--quiet",
        "--edgedesk",
        edgedesk.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "edgedesk-bench local failed: {stderr}"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));

    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(r["settings"]["codec"], "h264", "{r}");
    assert!(num(&r["fps"]) > 10.0, "{r}");
    assert!(num(&r["bitrate_kbps"]) > 0.0);
    assert!(r["codes"]["codes_seen"].as_u64().unwrap() > 30, "{r}");
    let g2g = &r["glass_to_glass_ms"]["summary"];
    assert!(num(&g2g["p50"]) > 0.0 && num(&g2g["p99"]) < 500.0, "{g2g}");
    let c2p = &r["click_to_photon_ms"]["summary"];
    assert!(c2p["count"].as_u64().unwrap() >= 1, "{r}");
    assert!(num(&c2p["p50"]) > 0.0 && num(&c2p["p50"]) < 1000.0, "{c2p}");
    // The breakdown adds up: the stages' means make the total's mean.
    let stages = r["stages"].as_array().expect("a stage breakdown");
    let mean = |name: &str| num(&stages.iter().find(|s| s["name"] == name).unwrap()["ms"]["mean"]);
    let parts: f64 = [
        "capture_wait",
        "grab",
        "queue",
        "convert",
        "encode",
        "send",
        "network",
        "decode",
    ]
    .iter()
    .map(|s| mean(s))
    .sum();
    assert!(
        (parts - mean("total")).abs() < 0.01,
        "{parts} vs {}",
        mean("total")
    );
    assert!(mean("encode") > 0.0 && mean("decode") > 0.0);

    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("glass-to-glass: CDF"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert!(json["raw"]["frames"].as_array().unwrap().len() > 30);
    let _ = std::fs::remove_dir_all(out_dir);
}

/// `--codec` picks what the client offers and edgedesk sends: frame codes are read through
/// the VP9 decoder as through H.264's.
#[test]
fn a_local_run_measures_another_codec() {
    let edgedesk = edgedesk();
    let out = bench(&[
        "local",
        "--size",
        "640x360",
        "--fps",
        "30",
        "--seconds",
        "2",
        "--codec",
        "vp9",
        "--no-clicks",
        "--json",
        "--quiet",
        "--edgedesk",
        edgedesk.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "edgedesk-bench local failed: {stderr}"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(r["settings"]["codec"], "vp9", "{r}");
    assert!(r["codes"]["codes_seen"].as_u64().unwrap() > 20, "{r}");
    assert!(
        r["glass_to_glass_ms"]["summary"]["p50"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    // A codec name that does not exist is refused before anything starts.
    let out = bench(&["local", "--codec", "mpeg2", "--quiet"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mpeg2"));
}

#[test]
fn errors_say_what_is_wrong() {
    // Nothing listening.
    let out = bench(&[
        "run",
        "--whep",
        "http://127.0.0.1:9/whep/x",
        "--seconds",
        "1",
        "--quiet",
    ]);
    assert_fails_in_one_line(&out, "cannot reach http://127.0.0.1:9/whep/x");

    // A real edgedesk with another token: refused, and said so.
    let mut server = Guard::spawn(
        Command::new(edgedesk())
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--size",
                "640x360",
                "--token",
                "right",
            ])
            .args(["--app", "", "--wm", ""])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let whep = {
        use std::io::BufRead;
        std::io::BufReader::new(server.0.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("WHEP: ").map(str::to_owned))
            .expect("edgedesk prints its WHEP URL")
    };
    let out = bench(&[
        "run",
        "--whep",
        &whep,
        "--token",
        "wrong",
        "--seconds",
        "1",
        "--quiet",
    ]);
    assert_fails_in_one_line(&out, "answered 401");

    // The stimulus on a display that is not the streamed one: no frame code, said so.
    let other = VirtualDisplay::start(DisplayOptions {
        width: 640,
        height: 360,
        kind: DisplayKind::Xvfb,
        ..DisplayOptions::default()
    })
    .unwrap();
    let out = bench(&[
        "run",
        "--whep",
        &whep,
        "--token",
        "right",
        "--stimulus-display",
        &other.name(),
        "--seconds",
        "8",
        "--quiet",
    ]);
    assert_fails_in_one_line(&out, "no frame code could be read");
}

#[test]
fn the_audio_run_measures_latency_bitrate_and_the_av_offset() {
    let out = bench(&[
        "audio",
        "--bursts",
        "5",
        "--flashes",
        "3",
        "--seconds",
        "1.5",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "edgedesk-bench audio failed: {stderr}"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let num = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("{k} is not a number: {r}"))
    };
    assert_eq!(r["latencies_ms"].as_array().map(Vec::len), Some(5), "{r}");
    // Plausible, not targets: heard within a quarter second, silence nearly free, speech
    // costs tens of kbit/s, the flash and the beep stamped within lip-sync tolerance.
    assert!((0.0..250.0).contains(&num("latency_p50_ms")), "{r}");
    assert!(num("silence_kbps") < 2.0, "{r}");
    assert!(num("speech_kbps") > 10.0, "{r}");
    let av = num("av_offset_p50_ms");
    assert!((-100.0..100.0).contains(&av), "{r}");
}
