//! Several viewers share one session's encoder: a real Xvfb, the real pipeline, two headless
//! WebRTC viewers over loopback. Each must receive the picture, the encoder must run once for
//! both (frames encoded ≈ frames each viewer got, not the sum), a joining viewer must trigger a
//! keyframe, and a viewer leaving must not disturb the other.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use edgedesk_host as host;
use host::client::ViewerClient;

async fn frames(client: &mut ViewerClient, n: usize) -> usize {
    let mut got = 0;
    while got < n {
        if client.next_frame(Duration::from_secs(10)).await.is_none() {
            break;
        }
        got += 1;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_viewers_share_one_encoder() {
    let display = common::xvfb();
    // Something that changes: the painter moving its window every few ms.
    let mut painter = display
        .spawn_command(
            Command::new(env!("CARGO_BIN_EXE_edgedesk-paint"))
                .args(["--rect", "10,10,50,50", "--color", "00ff00"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        )
        .expect("painter");
    let mut out = BufReader::new(painter.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    let mut stdin = painter.stdin.take().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut x = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                x = (x + 7) % 250;
                if writeln!(stdin, "move {x},{}", 20 + x % 150).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let session = common::session(&display, "two", 2);

    let (mut a, _) = common::connect(&session, true).await;
    assert_eq!(frames(&mut a, 10).await, 10, "first viewer receives");
    let keyframes_before = session.stats().pipeline.keyframes;
    let (mut b, b_id) = common::connect(&session, true).await;
    assert_eq!(frames(&mut b, 10).await, 10, "second viewer receives");
    assert!(
        session.stats().pipeline.keyframes > keyframes_before,
        "a joining viewer triggers a keyframe"
    );

    // A third viewer is refused: the session is full.
    let (c, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await.unwrap();
    assert!(matches!(
        session.add_viewer(offer, false).await,
        Err(host::session::HostError::Full(2))
    ));
    c.close().await;

    // Both keep receiving; the encoder ran once per frame, not once per viewer.
    let encoded_before = session.stats().pipeline.frames_encoded;
    let (ca, cb) = tokio::join!(frames(&mut a, 20), frames(&mut b, 20));
    assert_eq!((ca, cb), (20, 20));
    let encoded = session.stats().pipeline.frames_encoded - encoded_before;
    assert!(
        encoded < 30,
        "{encoded} frames encoded for 20 frames to each of two viewers"
    );

    // One viewer leaving leaves the other streaming.
    session.remove_viewer(&b_id).await.unwrap();
    assert_eq!(
        frames(&mut a, 10).await,
        10,
        "the remaining viewer keeps receiving"
    );
    assert_eq!(session.stats().viewers, 1);

    // A client that goes away without a DELETE is noticed within seconds (its data channel
    // closes, or ICE fails), and capture stops once nobody watches although the screen moves.
    a.close().await;
    let gone = tokio::time::Instant::now();
    while session.stats().viewers > 0 {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "a vanished client is still a viewer after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "vanished client removed after {} ms",
        gone.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let captured = session.stats().pipeline.frames_captured;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        session.stats().pipeline.frames_captured,
        captured,
        "capture idles without viewers"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    mover.join().unwrap();
    b.close().await;
    session.close().await;
    let _ = painter.kill();
    let _ = painter.wait();
}
