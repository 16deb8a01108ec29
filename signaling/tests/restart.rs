//! Control-plane restarts with a state directory (`edgedesk serve --state-dir`): a `kill -9`
//! of the control plane leaves the sessions' hosts streaming to their viewers; a new control
//! plane on the same directory takes the sessions back (listed running, old links valid,
//! revocations kept, deletable); hosts that no control plane takes back end by themselves
//! within their grace, leaving nothing behind; and one directory serves one control plane.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use host::client::{whep_post, ViewerClient};
use serde_json::json;

mod common;
use common::{http, json_of, on_display, Killed};

const KEY: &str = "restart-test-operator-key-0123456789";

/// Ends whatever a test left in its state directory (hosts of sessions, as saved), then
/// removes the directory: a failing assertion must leave no desktop running.
struct StateDirGuard(PathBuf);
impl Drop for StateDirGuard {
    fn drop(&mut self) {
        for pid in saved_pids(&self.0) {
            if host_runs(pid) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(log_file(&self.0));
    }
}

fn state_dir(tag: &str) -> StateDirGuard {
    StateDirGuard(std::env::temp_dir().join(format!(
        "edgedesk-restart-{tag}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )))
}

/// The host pids the control plane saved in `dir`.
fn saved_pids(dir: &Path) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string(dir.join("sessions.json")) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["sessions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["pid"].as_u64().map(|p| p as u32))
                .collect()
        })
        .unwrap_or_default()
}

fn host_runs(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("edgedesk-host"))
        .unwrap_or(false)
}

/// A free loopback port (the restarted control plane listens where the first did).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `edgedesk serve` on `port` with state directory `dir`; returns it and its base URL once
/// it printed its `Console:` line.
fn serve(dir: &Path, port: u16, grace: u64) -> (Killed, String) {
    // Debug logs of the control plane and its hosts (they share its stderr), appended to
    // `log_file(dir)`, which the tests search for secrets.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file(dir))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgedesk"))
        .env(
            "RUST_LOG",
            "info,edgedesk=debug,signaling=debug,edgedesk_host=debug,edgedesk_control=debug",
        )
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--state-dir")
        .arg(dir)
        .args(["--reconnect-grace", &grace.to_string()])
        .args(["--operator-key", KEY, "--display-kind", "xvfb"])
        .args(["--size", "320x240", "--app", "", "--wm", "", "--fps", "30"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let child = Killed(child);
    let mut line = String::new();
    let mut base = None;
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(api) = line.trim().strip_prefix("API: ") {
            base = api.split("/api/v1").next().map(str::to_owned);
        }
        if line.starts_with("Console: ") {
            break;
        }
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, base.expect("edgedesk serve printed its API: line"))
}

/// Where [`serve`] writes the logs of the control plane on `dir`, beside it.
fn log_file(dir: &Path) -> PathBuf {
    dir.with_extension("log")
}

/// Creates a session and waits until it runs; its id and display.
async fn running_session(base: &str, body: serde_json::Value) -> (String, String) {
    let (s, b) = http(base, "POST", "/api/v1/sessions", Some(KEY), Some(&body));
    assert_eq!(s, 201, "{b}");
    let id = json_of(&b)["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let (_, b) = http(
            base,
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some(KEY),
            None,
        );
        let b = json_of(&b);
        if b["state"] == "running" {
            return (id, b["display"].as_str().unwrap().to_owned());
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mints a `role` token for session `id`: (token, token id, WHEP URL).
fn mint(base: &str, id: &str, role: &str) -> (String, String, String) {
    let (s, t) = http(
        base,
        "POST",
        &format!("/api/v1/sessions/{id}/tokens"),
        Some(KEY),
        Some(&json!({ "role": role })),
    );
    assert_eq!(s, 201, "{t}");
    let t = json_of(&t);
    let field = |k: &str| t[k].as_str().unwrap().to_owned();
    (field("token"), field("token_id"), field("whep_url"))
}

/// Joins with `token`: the viewer, or the refusal's message.
async fn join(whep: &str, token: &str) -> Result<ViewerClient, String> {
    let (client, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await.unwrap();
    let (w, t) = (whep.to_owned(), token.to_owned());
    match tokio::task::spawn_blocking(move || whep_post(&w, Some(&t), &offer))
        .await
        .unwrap()
    {
        Ok(answer) => {
            client.accept_answer(answer.answer_sdp).await.unwrap();
            Ok(client)
        }
        Err(e) => {
            client.close().await;
            Err(e.to_string())
        }
    }
}

/// Frames the viewer receives in `window`.
async fn frames_in(client: &mut ViewerClient, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut n = 0;
    while Instant::now() < end {
        if client.next_frame(end - Instant::now()).await.is_some() {
            n += 1;
        }
    }
    n
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_control_plane_takes_back_a_live_session() {
    let dir = state_dir("live");
    let port = free_port();
    let (mut first, base) = serve(&dir.0, port, 20);
    // Ready: `edgedesk-host --check` found an X server and an encoder.
    let (s, b) = http(&base, "GET", "/readyz", None, None);
    assert_eq!((s, b.as_str()), (200, "ready"));

    // A terminal printing without end, so frames keep coming; a viewer on it.
    let (id, display) = running_session(
        &base,
        json!({"size": "320x240", "fps": 30, "command": "xterm -e yes"}),
    )
    .await;
    let (token, _, whep) = mint(&base, &id, "control");
    let (revoked, revoked_id, _) = mint(&base, &id, "view");
    let (s, b) = http(
        &base,
        "DELETE",
        &format!("/api/v1/sessions/{id}/tokens/{revoked_id}"),
        Some(KEY),
        None,
    );
    assert_eq!(s, 200, "{b}");
    let mut viewer = join(&whep, &token).await.expect("the viewer joins");
    assert!(
        viewer.next_frame(Duration::from_secs(10)).await.is_some(),
        "the session streams"
    );
    let before = frames_in(&mut viewer, Duration::from_secs(2)).await;
    let host = saved_pids(&dir.0);
    assert_eq!(host.len(), 1, "one host saved");
    let host = host[0];

    // kill -9 of the control plane: the host and its viewer carry on.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let during = frames_in(&mut viewer, Duration::from_secs(2)).await;
    assert!(host_runs(host), "the host outlives the control plane");
    eprintln!("frames in 2 s: {before} before the kill, {during} with no control plane");
    assert!(before >= 10, "the session streams ({before} frames in 2 s)");
    assert!(
        during * 10 >= before * 7,
        "the viewer keeps its frame rate without a control plane: {before} → {during}"
    );

    // A new control plane on the same directory and port takes the session back.
    let (mut second, base2) = serve(&dir.0, port, 20);
    assert_eq!(base2, base);
    let (s, b) = http(
        &base,
        "GET",
        &format!("/api/v1/sessions/{id}"),
        Some(KEY),
        None,
    );
    assert_eq!(s, 200, "{b}");
    let b = json_of(&b);
    assert_eq!(b["state"], "running", "{b}");
    assert_eq!(b["display"], display.as_str(), "{b}");
    let after = frames_in(&mut viewer, Duration::from_secs(2)).await;
    eprintln!("frames in 2 s after the restart: {after}");
    assert!(after * 10 >= before * 7, "{before} → {after}");
    // The host answers it: its metrics count the viewer that never left, and the control
    // plane counts the take-over.
    let (_, metrics) = http(&base, "GET", "/metrics", None, None);
    assert!(
        metrics.contains(&format!("edgedesk_viewers{{session=\"{id}\"}} 1\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "edgedesk_viewers_by_role{{session=\"{id}\",role=\"control\"}} 1\n"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgedesk_host_events_total{event=\"taken_back\"} 1\n"),
        "{metrics}"
    );
    // The session's details: its one viewer, its link, live rates.
    let (_, b) = http(
        &base,
        "GET",
        &format!("/api/v1/sessions/{id}"),
        Some(KEY),
        None,
    );
    let live = json_of(&b)["live"].clone();
    eprintln!("live: {live}");
    assert!(live["uptime_secs"].as_u64().unwrap() >= 4, "{live}");
    assert!(live["fps"].as_f64().unwrap() >= 10.0, "{live}");
    assert!(live["bitrate_bps"].as_u64().unwrap() > 0, "{live}");
    let viewers = live["viewers"].as_array().unwrap();
    assert_eq!(viewers.len(), 1, "{live}");
    assert_eq!(viewers[0]["role"], "control", "{live}");
    let address = viewers[0]["address"]
        .as_str()
        .expect("the viewer's address");
    assert!(address.starts_with("127.0.0.1:"), "{live}");
    assert!(viewers[0]["frames_sent"].as_u64().unwrap() > 100, "{live}");
    let rtt = viewers[0]["rtt_ms"]
        .as_f64()
        .expect("an RTT from the viewer's reports");
    assert!(rtt > 0.0 && rtt < 200.0, "loopback RTT {rtt} ms");
    assert_eq!(viewers[0]["loss"].as_f64(), Some(0.0), "{live}");
    // A link minted before the restart still joins (the key is kept); a token revoked
    // before it is still refused (so are revocations).
    let mut second_viewer = join(&whep, &token).await.expect("an old link joins");
    assert!(second_viewer
        .next_frame(Duration::from_secs(10))
        .await
        .is_some());
    second_viewer.close().await;
    let refused = join(&whep, &revoked)
        .await
        .err()
        .expect("revoked stays revoked");
    assert!(refused.contains("401"), "{refused}");

    // Deleting it ends its host and display.
    let (s, b) = http(
        &base,
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
        Some(KEY),
        None,
    );
    assert!(s == 200 || s == 204, "{s} {b}");
    wait_until("the host exits", Duration::from_secs(10), || {
        !host_runs(host)
    })
    .await;
    wait_until("the display goes", Duration::from_secs(10), || {
        on_display(&display).is_empty()
    })
    .await;
    viewer.close().await;

    // The logs (debug level, both control planes and the host) hold no secret: no operator
    // key, join token, viewer resource id, nor SDP credentials.
    let viewer_id = viewers[0]["id"].as_str().unwrap().to_owned();
    let logs = std::fs::read_to_string(log_file(&dir.0)).unwrap();
    assert!(
        logs.contains("took the session back"),
        "the logs were captured"
    );
    for (what, secret) in [
        ("the operator key", KEY),
        ("a join token", token.as_str()),
        ("a revoked join token", revoked.as_str()),
        ("a viewer's resource id", viewer_id.as_str()),
        ("an ICE password", "ice-pwd"),
        ("a DTLS fingerprint", "fingerprint:"),
    ] {
        assert!(!logs.contains(secret), "{what} is in the logs");
    }
    // SIGTERM ends the control plane cleanly.
    let _ = Command::new("kill").arg(second.0.id().to_string()).status();
    let status = second.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_no_control_plane_takes_back_end_by_themselves() {
    let dir = state_dir("orphan");
    let port = free_port();
    let (mut first, base) = serve(&dir.0, port, 2);

    // One state directory, one control plane.
    let out = Command::new(env!("CARGO_BIN_EXE_edgedesk"))
        .args(["serve", "--listen", "127.0.0.1:0", "--operator-key", KEY])
        .arg("--state-dir")
        .arg(&dir.0)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another control plane serves"), "{err}");

    // Without a host binary this node cannot start a session, and /readyz says why.
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgedesk"))
        .env("EDGEDESK_HOST_BIN", "/nonexistent/edgedesk-host")
        .env("EDGEDESK_LOG_FORMAT", "json")
        .args(["serve", "--listen", "127.0.0.1:0", "--operator-key", KEY])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut logs = BufReader::new(child.stderr.take().unwrap());
    let _no_host = Killed(child);
    // EDGEDESK_LOG_FORMAT=json: one JSON object a line, with level, fields and message.
    let mut first_log = String::new();
    logs.read_line(&mut first_log).unwrap();
    let entry: serde_json::Value = serde_json::from_str(&first_log)
        .unwrap_or_else(|e| panic!("{e}: a JSON log line expected, got {first_log:?}"));
    assert!(
        entry["level"].is_string() && entry["fields"]["message"].is_string(),
        "{entry}"
    );
    std::thread::spawn(move || std::io::copy(&mut logs, &mut std::io::sink()));
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let no_host = line
        .trim()
        .strip_prefix("API: ")
        .unwrap()
        .replace("/api/v1", "");
    let (s, b) = http(&no_host, "GET", "/readyz", None, None);
    assert_eq!(s, 503, "{b}");
    assert!(b.contains("/nonexistent/edgedesk-host"), "{b}");

    let (id, display) = running_session(&base, json!({"size": "320x240"})).await;
    wait_until("the host's pid is saved", Duration::from_secs(10), || {
        !saved_pids(&dir.0).is_empty()
    })
    .await;
    let host = saved_pids(&dir.0)[0];
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert!(host_runs(host), "the host waits for a control plane");
    // Its grace is 2 s: then it ends its session, display and all.
    wait_until("the orphaned host ends", Duration::from_secs(30), || {
        !host_runs(host)
    })
    .await;
    wait_until("its display goes", Duration::from_secs(10), || {
        on_display(&display).is_empty()
    })
    .await;
    let prefix = format!("edgedesk-host-{host}-");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "the host removed its directory: {left:?}");

    // A control plane started later shows the session failed, with why.
    let (mut later, base) = serve(&dir.0, port, 2);
    let (_, b) = http(
        &base,
        "GET",
        &format!("/api/v1/sessions/{id}"),
        Some(KEY),
        None,
    );
    let b = json_of(&b);
    assert_eq!(b["state"], "failed", "{b}");
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("control plane was down"),
        "{b}"
    );
    let _ = Command::new("kill").arg(later.0.id().to_string()).status();
    let _ = later.0.wait();
}
