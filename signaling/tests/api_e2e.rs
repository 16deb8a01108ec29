//! The operator API against the real binary: `edgedesk up` with an operator key from a file,
//! a second session created through `POST /api/v1/sessions` in its own host process, joined
//! with a minted control token by the headless Rust viewer (frames decode), refused with a
//! token of another session, then deleted: its host process and display go, the first
//! session keeps running.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codec::decoder::Decoder;
use codec::Codec;
use host::client::{whep_post, ViewerClient};
use serde_json::{json, Value};

mod common;
use common::{http, json_of, on_display, Killed};

const KEY: &str = "api-e2e-operator-key-0123456789";

/// Starts `edgedesk up` on a small Xvfb with no desktop, plus `extra` arguments; returns it,
/// its base URL and whether it printed an `Operator key:` line, once it printed its last
/// connect line (its stdout is drained after that).
fn up(extra: &[&std::ffi::OsStr]) -> (Killed, String, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgedesk"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--display-kind",
            "xvfb",
            "--size",
            "320x240",
        ])
        .args(["--app", "", "--wm", "", "--fps", "30"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let child = Killed(child);
    let (mut base, mut printed_key) = (None, false);
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        printed_key |= line.starts_with("Operator key:");
        if let Some(w) = line.trim().strip_prefix("WHEP: ") {
            base = w.split("/whep/").next().map(str::to_owned);
        }
        if line.starts_with("API: ") || line.starts_with("Operator key:") {
            break;
        }
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, base.expect("WHEP: line"), printed_key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_through_the_api_streams_and_ends() {
    let key_file = std::env::temp_dir().join(format!("edgedesk-api-e2e-{}", std::process::id()));
    std::fs::write(&key_file, KEY).unwrap();
    let (child, base, printed_key) = up(&["--operator-key-file".as_ref(), key_file.as_os_str()]);
    assert!(!printed_key, "a key from a file is not printed");

    // The default session is listed, running.
    let (s, list) = http(&base, "GET", "/api/v1/sessions", Some(KEY), None);
    assert_eq!(s, 200, "{list}");
    let list = json_of(&list);
    assert_eq!(list[0]["id"], "default");
    assert_eq!(list[0]["state"], "running");
    assert_eq!(
        http(
            &base,
            "GET",
            "/api/v1/sessions",
            Some("not-the-key-0123456789"),
            None
        )
        .0,
        401
    );

    // A second session, in its own process.
    let (s, created) = http(
        &base,
        "POST",
        "/api/v1/sessions",
        Some(KEY),
        Some(&json!({"size": "640x360", "fps": 30})),
    );
    assert_eq!(s, 201, "{created}");
    let id = json_of(&created)["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let display = loop {
        let (_, b) = http(
            &base,
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some(KEY),
            None,
        );
        let b = json_of(&b);
        if b["state"] == "running" {
            break b["display"].as_str().unwrap().to_owned();
        }
        assert_ne!(b["state"], "failed", "{b}");
        assert!(started.elapsed() < Duration::from_secs(20), "still {b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "POST /api/v1/sessions → running in {} ms",
        started.elapsed().as_millis()
    );

    let (s, t) = http(
        &base,
        "POST",
        &format!("/api/v1/sessions/{id}/tokens"),
        Some(KEY),
        Some(&json!({"role": "control", "ttl_secs": 300})),
    );
    assert_eq!(s, 201, "{t}");
    let t = json_of(&t);
    let token = t["token"].as_str().unwrap().to_owned();
    let whep = t["whep_url"].as_str().unwrap().to_owned();
    assert!(t["join_url"]
        .as_str()
        .unwrap()
        .contains(&format!("?session={id}#token=")));

    // That token opens that session only.
    let (_, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await.unwrap();
    let (other, tok) = (format!("{base}/whep/default"), token.clone());
    let refused = tokio::task::spawn_blocking(move || whep_post(&other, Some(&tok), &offer))
        .await
        .unwrap();
    assert!(refused
        .expect_err("another session's token")
        .to_string()
        .contains("401"));

    let first_frame = Instant::now();
    let (mut client, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await.unwrap();
    let (w, tok) = (whep.clone(), token.clone());
    let answer = tokio::task::spawn_blocking(move || whep_post(&w, Some(&tok), &offer))
        .await
        .unwrap()
        .expect("WHEP POST");
    client.accept_answer(answer.answer_sdp).await.unwrap();
    let mut decoder = Decoder::new(Codec::H264).unwrap();
    let mut size = None;
    let end = Instant::now() + Duration::from_secs(10);
    while size.is_none() && Instant::now() < end {
        let Some(frame) = client.next_frame(end - Instant::now()).await else {
            break;
        };
        if let Some(f) = decoder
            .decode(&frame.data)
            .expect("decode")
            .into_iter()
            .next()
        {
            size = Some((f.width, f.height));
        }
    }
    assert_eq!(size, Some((640, 360)), "a decoded frame of the API session");
    eprintln!(
        "offer → first decoded frame {} ms",
        first_frame.elapsed().as_millis()
    );
    assert!(
        !on_display(&display).is_empty(),
        "the session's display runs"
    );

    // Its picture, as a PNG thumbnail.
    let addr = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(conn, "GET /api/v1/sessions/{id}/screenshot?width=160 HTTP/1.0\r\nAuthorization: Bearer {KEY}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, png) = (String::from_utf8_lossy(&raw[..at]), &raw[at..]);
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/png"),
        "{head}"
    );
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let dims = |o: usize| u32::from_be_bytes(png[o..o + 4].try_into().unwrap());
    assert_eq!(
        (dims(16), dims(20)),
        (160, 90),
        "a 640x360 screen shrunk to 160 wide"
    );

    // Revoking the token ends the live viewer within a second, and refuses the token.
    let token_id = t["token_id"].as_str().unwrap();
    let revoked_at = Instant::now();
    let (s, r) = http(
        &base,
        "DELETE",
        &format!("/api/v1/sessions/{id}/tokens/{token_id}"),
        Some(KEY),
        None,
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(json_of(&r)["viewers_ended"], 1);
    assert!(
        revoked_at.elapsed() < Duration::from_secs(1),
        "revocation took {:?}",
        revoked_at.elapsed()
    );
    // Whatever was in flight drains; then nothing more comes.
    let drain_end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < drain_end {
        if client
            .next_frame(drain_end - Instant::now())
            .await
            .is_none()
        {
            break;
        }
    }
    assert!(
        client
            .next_frame(Duration::from_millis(1500))
            .await
            .is_none(),
        "frames still arrive after revocation"
    );
    let (w, tok) = (whep.clone(), token.clone());
    let (_, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await.unwrap();
    let again = tokio::task::spawn_blocking(move || whep_post(&w, Some(&tok), &offer))
        .await
        .unwrap();
    assert!(again
        .expect_err("a revoked token")
        .to_string()
        .contains("401"));

    // Delete: its processes and display go; the first session keeps running.
    assert_eq!(
        http(
            &base,
            "DELETE",
            &format!("/api/v1/sessions/{id}"),
            Some(KEY),
            None
        )
        .0,
        204
    );
    let (_, b) = http(
        &base,
        "GET",
        &format!("/api/v1/sessions/{id}"),
        Some(KEY),
        None,
    );
    assert_eq!(json_of(&b)["state"], "ended");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !on_display(&display).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        on_display(&display).len(),
        0,
        "the deleted session's display is gone"
    );
    let (_, d) = http(&base, "GET", "/api/v1/sessions/default", Some(KEY), None);
    assert_eq!(json_of(&d)["state"], "running");
    drop(client);
    drop(child);
    let _ = std::fs::remove_file(&key_file);
}

/// `edgedesk session …` with `args`; (exit code, stdout, stderr).
fn cli(base: &str, key: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgedesk"));
    cmd.arg("session").args(["--server", base]).args(args);
    cmd.env_remove("EDGEDESK_OPERATOR_KEY")
        .env_remove("EDGEDESK_OPERATOR_KEY_FILE");
    if let Some(k) = key {
        cmd.env("EDGEDESK_OPERATOR_KEY", k);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_creates_lists_mints_and_deletes_with_clear_errors() {
    let (child, base, _) = up(&["--operator-key".as_ref(), KEY.as_ref()]);

    let (code, json_out, err) = cli(
        &base,
        Some(KEY),
        &["create", "--size", "400x300", "--wait", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let created = json_of(&json_out);
    assert_eq!(created["state"], "running", "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let (code, table, _) = cli(&base, Some(KEY), &["list"]);
    assert_eq!(code, 0);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("running") && l.contains("400x300@30")),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("default ")), "{table}");

    let (code, token, _) = cli(
        &base,
        Some(KEY),
        &["token", &id, "--role", "view", "--ttl", "60"],
    );
    assert_eq!(code, 0);
    assert!(
        token.contains(&format!("Join: {base}/?session={id}#token=v1.")),
        "{token}"
    );
    assert!(token.contains("Role: view"), "{token}");

    // Errors: one line, an exit code each.
    let (code, _, err) = cli(&base, Some(KEY), &["show", "no-such-session"]);
    assert_eq!((code, err.lines().count()), (5, 1), "{err}");
    let (code, _, err) = cli(&base, Some("wrong-key-0123456789"), &["list"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("refused the operator key"), "{err}");
    let (code, _, err) = cli(&base, None, &["list"]);
    assert_eq!(code, 4, "{err}");
    let (code, _, err) = cli(&base, Some(KEY), &["create", "--fps", "0"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("fps"), "{err}");
    let (code, _, err) = cli("http://127.0.0.1:1", Some(KEY), &["list"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot reach"), "{err}");

    let (code, done, _) = cli(&base, Some(KEY), &["delete", &id]);
    assert_eq!((code, done.trim()), (0, format!("{id} ended").as_str()));
    let (_, table, _) = cli(&base, Some(KEY), &["list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("ended")),
        "{table}"
    );
    drop(child);
}

/// The pid of the X server for `display` and its parent (the session's host).
fn server_and_host(display: &str) -> Option<(u32, u32)> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let server = args
            .first()
            .is_some_and(|a| a.ends_with(b"Xvfb") || a.ends_with(b"Xorg"))
            && args.contains(&display.as_bytes());
        if !server {
            return None;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some((pid, ppid))
    })
}

/// Creates a session through the API and waits until it runs; (id, display).
async fn running_session(base: &str, body: Value) -> (String, String) {
    let (s, created) = http(base, "POST", "/api/v1/sessions", Some(KEY), Some(&body));
    assert_eq!(s, 201, "{created}");
    let id = json_of(&created)["id"].as_str().unwrap().to_owned();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_fails_only_its_session() {
    // Room for the default session, A and B: a crashed A must give its slot back.
    let (_child, base, _) = up(&[
        "--operator-key".as_ref(),
        KEY.as_ref(),
        "--max-sessions".as_ref(),
        "3".as_ref(),
    ]);

    // A: to be killed. B: a terminal printing without end, so frames keep coming.
    let (a, a_display) = running_session(&base, json!({"size": "320x240"})).await;
    let (b, _) = running_session(
        &base,
        json!({"size": "320x240", "fps": 30, "command": "xterm -e yes"}),
    )
    .await;
    let (_, t) = http(
        &base,
        "POST",
        &format!("/api/v1/sessions/{b}/tokens"),
        Some(KEY),
        Some(&json!({"role": "view"})),
    );
    let t = json_of(&t);
    let (mut client, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await.unwrap();
    let (w, tok) = (
        t["whep_url"].as_str().unwrap().to_owned(),
        t["token"].as_str().unwrap().to_owned(),
    );
    let answer = tokio::task::spawn_blocking(move || whep_post(&w, Some(&tok), &offer))
        .await
        .unwrap()
        .expect("WHEP POST");
    client.accept_answer(answer.answer_sdp).await.unwrap();
    assert!(
        client.next_frame(Duration::from_secs(10)).await.is_some(),
        "B streams"
    );
    let before = frames_in(&mut client, Duration::from_secs(2)).await;

    let (_, a_host) = server_and_host(&a_display).expect("A's X server and host");
    let killed = Command::new("kill")
        .args(["-9", &a_host.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let after = frames_in(&mut client, Duration::from_secs(2)).await;
    eprintln!("B: {before} frames in the 2 s before A's host was killed, {after} in the 2 s after");
    assert!(
        before >= 10,
        "B streams continuously ({before} frames in 2 s)"
    );
    assert!(
        after * 10 >= before * 7,
        "B keeps its frame rate: {before} → {after}"
    );

    // A is failed, with the reason; its display is gone; B runs.
    let (_, s) = http(
        &base,
        "GET",
        &format!("/api/v1/sessions/{a}"),
        Some(KEY),
        None,
    );
    let s = json_of(&s);
    assert_eq!(s["state"], "failed", "{s}");
    assert!(s["reason"].as_str().unwrap().contains("exited"), "{s}");
    let (_, metrics) = http(&base, "GET", "/metrics", None, None);
    assert!(
        metrics.contains("edgedesk_host_events_total{event=\"crashed\"} 1\n"),
        "the crash is counted: {metrics}"
    );
    // Its X server got SIGTERM when its host died; give it a moment to exit.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server_and_host(&a_display).is_some() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server_and_host(&a_display).is_none(),
        "A's X server is gone"
    );
    // Its host could not clean up after a SIGKILL: the control plane removed its directories
    // (its Xauthority, its display's config and log).
    let marks = [format!("edgedesk-host-{a_host}-"), format!("-{a_host}-")];
    let deadline = Instant::now() + Duration::from_secs(5);
    let left = || -> Vec<String> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with(&marks[0])
                    || (n.starts_with("edgedesk-display-") && n.contains(&marks[1]))
            })
            .collect()
    };
    while !left().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left(), Vec::<String>::new(), "A's directories are removed");
    let (_, s) = http(
        &base,
        "GET",
        &format!("/api/v1/sessions/{b}"),
        Some(KEY),
        None,
    );
    assert_eq!(json_of(&s)["state"], "running");
    // A's slot is free again: a new session fits beside B and the default one.
    let (s, body) = http(
        &base,
        "POST",
        "/api/v1/sessions",
        Some(KEY),
        Some(&json!({"size": "320x240"})),
    );
    assert_eq!(s, 201, "the crashed session's capacity came back: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_after_its_idle_timeout() {
    let (_child, base, _) = up(&["--operator-key".as_ref(), KEY.as_ref()]);
    let (id, display) =
        running_session(&base, json!({"size": "320x240", "idle_timeout_secs": 2})).await;
    let (_, s) = http(
        &base,
        "GET",
        &format!("/api/v1/sessions/{id}"),
        Some(KEY),
        None,
    );
    assert_eq!(json_of(&s)["idle_timeout_secs"], 2);
    let started = Instant::now();
    let state = loop {
        let (_, s) = http(
            &base,
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some(KEY),
            None,
        );
        let state = json_of(&s)["state"].as_str().unwrap().to_owned();
        if state != "running" || started.elapsed() > Duration::from_secs(10) {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(state, "ended", "no viewer for 2 s ends it");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "not before its timeout"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !on_display(&display).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(on_display(&display).len(), 0, "its display is gone");
    // The default session (no idle timeout) keeps running.
    let (_, d) = http(&base, "GET", "/api/v1/sessions/default", Some(KEY), None);
    assert_eq!(json_of(&d)["state"], "running");
}
