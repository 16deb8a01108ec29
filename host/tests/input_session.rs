//! Input through a real session: a headless WebRTC viewer sends protocol messages on its
//! `input` data channel; a real X client (edgedesk-xevents) shows what arrived. A view-only
//! viewer's input never reaches X; malformed messages are counted and the channel stays open
//! (a ping still gets its pong).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod common;

use bytes::BytesMut;
use edgedesk_host as host;
use host::input::protocol::{Button, ClientMessage};

fn encode(m: ClientMessage) -> BytesMut {
    BytesMut::from(&m.encode().unwrap()[..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_only_input_is_ignored_and_malformed_input_is_counted() {
    let display = common::xvfb();
    let mut xev = display
        .spawn_command(
            Command::new(env!("CARGO_BIN_EXE_edgedesk-xevents"))
                .args(["--rect", "0,0,320,240"])
                .stdin(Stdio::piped()) // EOF on stdin would end it
                .stdout(Stdio::piped()),
        )
        .expect("xevents");
    let _xev_stdin = xev.stdin.take();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = xev.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "READY");
    let press_within = |d: Duration| -> Option<String> {
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.starts_with("button press") => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    };

    let session = common::session(&display, "input", 4);
    assert!(
        session.input().is_some(),
        "Xvfb has XTEST: input is injected"
    );

    // A view-only viewer clicks: nothing reaches X, and it is counted.
    let (viewer, viewer_id) = common::connect(&session, false).await;
    common::input_open(&viewer).await;
    let dc = viewer.input.clone();
    let click = [
        ClientMessage::PointerAbs {
            x: 100,
            y: 100,
            width: 320,
            height: 240,
        },
        ClientMessage::ButtonDown {
            button: Button::Left,
        },
        ClientMessage::ButtonUp {
            button: Button::Left,
        },
    ];
    for m in click.clone() {
        dc.send(encode(m)).await.unwrap();
    }
    assert_eq!(
        press_within(Duration::from_millis(800)),
        None,
        "view-only input was injected"
    );
    let v = session.viewer(&viewer_id).unwrap();
    let ignored_after = Instant::now();
    while v.counters.input_ignored.load(Ordering::Relaxed) < 3 {
        assert!(
            ignored_after.elapsed() < Duration::from_secs(3),
            "ignored input is counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A controlling viewer: malformed messages are counted, the channel stays usable, and a
    // click afterwards lands.
    let (control, control_id) = common::connect(&session, true).await;
    common::input_open(&control).await;
    let cdc = control.input.clone();
    for junk in [
        &[0xffu8][..],
        &[0x10, 1, 2],
        &[0x03, 0xff, 0xff, b'x'],
        &[0x12, 9],
    ] {
        cdc.send(BytesMut::from(junk)).await.unwrap();
    }
    for m in click {
        cdc.send(encode(m)).await.unwrap();
    }
    let press = press_within(Duration::from_secs(5)).expect("the controlling viewer's click lands");
    assert_eq!(press, "button press 1 100 100 100 100");
    // A repeated key-down presses once; a key-up for a key never pressed injects nothing.
    let key = |code| host::input::protocol::KeyCode::from_code(code).unwrap();
    for m in [
        ClientMessage::KeyDown { key: key("KeyA") },
        ClientMessage::KeyDown { key: key("KeyA") },
        ClientMessage::KeyUp { key: key("KeyB") },
        ClientMessage::KeyUp { key: key("KeyA") },
        ClientMessage::ButtonDown {
            button: Button::Middle,
        },
    ] {
        cdc.send(encode(m)).await.unwrap();
    }
    let mut key_lines = Vec::new();
    let end = Instant::now() + Duration::from_secs(5);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("button press 2") => break,
            Ok(l) if l.starts_with("key ") => {
                key_lines.push(l.split(' ').take(3).collect::<Vec<_>>().join(" "))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(key_lines, ["key press 38", "key release 38"]);

    let cv = session.viewer(&control_id).unwrap();
    assert_eq!(cv.counters.input_rejected.load(Ordering::Relaxed), 4);
    let (p50, p99) = session
        .input()
        .unwrap()
        .stats
        .latency_percentiles()
        .expect("latencies recorded");
    eprintln!("receipt → injection: p50 {p50} µs, p99 {p99} µs");

    // The same counters in the session's Prometheus metrics, and still there (monotonic)
    // once the viewers are gone.
    let metrics = |session: &host::session::Session| {
        let mut m = host::metrics::Metrics::new();
        session.metrics(&mut m);
        m.render()
    };
    let before = metrics(&session);
    assert!(
        before.contains("edgedesk_input_rejected_total{session=\"input\"} 4\n"),
        "{before}"
    );
    assert!(
        before.contains("edgedesk_input_ignored_total{session=\"input\"} 3\n"),
        "{before}"
    );
    assert!(
        before.contains("edgedesk_viewers{session=\"input\"} 2\n"),
        "{before}"
    );
    assert!(before.contains("edgedesk_input_latency_seconds{session=\"input\",quantile=\"0.99\"} "));
    session.remove_viewer(&viewer_id).await.unwrap();
    session.remove_viewer(&control_id).await.unwrap();
    let after = metrics(&session);
    assert!(
        after.contains("edgedesk_input_rejected_total{session=\"input\"} 4\n"),
        "{after}"
    );
    assert!(
        after.contains("edgedesk_input_ignored_total{session=\"input\"} 3\n"),
        "{after}"
    );
    assert!(
        after.contains("edgedesk_viewers{session=\"input\"} 0\n"),
        "{after}"
    );

    viewer.close().await;
    control.close().await;
    session.close().await;
    let _ = xev.kill();
    let _ = xev.wait();
}
