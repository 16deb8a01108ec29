//! `edgedesk-bench compare`: two targets started by the tool on one stimulus, alternating runs,
//! each figure with its spread and the ratio to the first target; the page shows both.

mod common;

use common::{bench, edgedesk, gst_unavailable, Guard};
use serde_json::Value;

#[test]
fn two_targets_side_by_side_with_ratios() {
    if let Some(why) = gst_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let out_dir = std::env::temp_dir().join(format!("edgedesk-compare-{}", std::process::id()));
    let edgedesk = edgedesk();
    let out = bench(&[
        "compare",
        "edgedesk",
        "gstreamer",
        "--runs",
        "2",
        "--seconds",
        "2",
        "--size",
        "640x360",
        "--fps",
        "30",
        "--bitrate",
        "2M",
        "--views",
        "decoder",
        "--edgedesk",
        edgedesk.to_str().unwrap(),
        "--json",
        "--quiet",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "compare failed: {err}");
    let c: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(c["targets"], serde_json::json!(["edgedesk", "gstreamer"]));
    // Alternating: run 0 edgedesk, run 0 gstreamer, run 1 edgedesk, run 1 gstreamer.
    let order: Vec<(u64, u64)> = c["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["run"].as_u64().unwrap(), m["target"].as_u64().unwrap()))
        .collect();
    assert_eq!(order, [(0, 0), (0, 1), (1, 0), (1, 1)], "{c}");
    let g2g = c["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "g2g_p50" && f["view"] == "decoder")
        .unwrap_or_else(|| panic!("no glass-to-glass figure: {c}"));
    let cells = g2g["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2, "{g2g}");
    assert_eq!(cells[0]["ratio"].as_f64(), Some(1.0), "{g2g}");
    for cell in cells {
        let (lo, med, hi) = (
            cell["min"].as_f64().unwrap(),
            cell["median"].as_f64().unwrap(),
            cell["max"].as_f64().unwrap(),
        );
        assert!(0.0 < lo && lo <= med && med <= hi && hi < 500.0, "{cell}");
        assert_eq!(cell["runs"].as_u64(), Some(2), "{cell}");
    }
    let ratio = cells[1]["ratio"].as_f64().unwrap();
    let expect = cells[1]["median"].as_f64().unwrap() / cells[0]["median"].as_f64().unwrap();
    assert!((ratio - expect).abs() < 1e-9, "{g2g}");
    assert!(g2g["verdict"].as_str().unwrap().contains("2 runs"), "{g2g}");
    // The calibration figure (drawn → last packet received) is there for both.
    assert!(c["figures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["key"] == "received_p50" && f["cells"].as_array().unwrap().len() == 2));
    // Server CPU is known for targets the tool started.
    assert!(c["figures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["key"] == "server_cpu" && f["cells"].as_array().unwrap().len() == 2));
    let html = std::fs::read_to_string(out_dir.join("compare.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("gstreamer") && html.contains("CDF"));
    let _ = std::fs::remove_dir_all(out_dir);
}

/// `kill -9` of the tool in the middle of a comparison (while the second target, the GStreamer
/// server, runs) leaves no server or X server behind. (Servers are tied to the tool with
/// PR_SET_PDEATHSIG; an X client would also end with the tool's X server, so this checks the
/// outcome, not which of the two ended it.)
#[test]
fn a_killed_compare_leaves_nothing_running() {
    if let Some(why) = gst_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let edgedesk = edgedesk();
    let mut child = Guard(
        std::process::Command::new(common::BENCH)
            .args([
                "compare",
                "edgedesk",
                "gstreamer",
                "--runs",
                "2",
                "--seconds",
                "1",
            ])
            .args([
                "--size", "640x360", "--fps", "30", "--views", "decoder", "--quiet",
            ])
            .args(["--edgedesk", edgedesk.to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let started = loop {
        let d = common::descendants(child.0.id());
        if d.iter().any(|(_, name)| name.starts_with("python3")) {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the GStreamer server never started: {d:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(started.iter().any(|(_, n)| n == "Xvfb"), "{started:?}");
    child.0.kill().unwrap(); // SIGKILL: no cleanup code of the tool runs
    child.0.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: Vec<&(u32, String)> = started.iter().filter(|(p, _)| common::alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after kill -9: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
