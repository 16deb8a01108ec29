//! End to end without a browser: a real Xvfb, a real X client painting a colour, the real
//! `edgedesk` binary streaming it, and the headless Rust WebRTC viewer receiving over loopback
//! through WHEP, decoding with FFmpeg and finding the colour where it was painted.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use codec::decoder::Decoder;
use codec::{Codec, PixelFormat, VideoFrame};
use host::client::{whep_delete, whep_post, ViewerClient};
use host::display::{DisplayKind, DisplayOptions, VirtualDisplay};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn paint_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_edgedesk")).with_file_name("edgedesk-paint");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build -p edgedesk-host --bins` (cargo test --workspace does)",
        p.display()
    );
    p
}

/// Starts the painter and waits for READY.
fn painter(
    display: &str,
    rect: &str,
    color: &str,
) -> (Killed, ChildStdin, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(paint_bin())
        .args(["--display", display, "--rect", rect, "--color", color])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start edgedesk-paint");
    let stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY");
    (Killed(child), stdin, out)
}

/// Starts `edgedesk up` on an existing display; returns it and the WHEP URL.
fn edgedesk(display: &str, token: &str) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgedesk"))
        .args([
            "up",
            "--display",
            display,
            "--listen",
            "127.0.0.1:0",
            "--token",
            token,
            "--fps",
            "30",
            "--bitrate",
            "2M",
            // Everything but H.265, so an H.265-only offer has nothing in common.
            "--codecs",
            "h264,vp9,av1,vp8",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start edgedesk");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut whep = None;
    for _ in 0..10 {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(u) = line.strip_prefix("WHEP: ") {
            whep = Some(u.trim().to_owned());
            break;
        }
    }
    let whep = whep.expect("edgedesk printed no WHEP: line");
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    (Killed(child), whep)
}

/// RGB of an I420 pixel (BT.601 limited range, as the encoder writes it).
fn rgb_at(f: &VideoFrame, x: u32, y: u32) -> [u8; 3] {
    assert_eq!(f.format, PixelFormat::I420);
    let yv = f.planes[0][y as usize * f.strides[0] + x as usize] as f32;
    let u = f.planes[1][(y / 2) as usize * f.strides[1] + (x / 2) as usize] as f32 - 128.0;
    let v = f.planes[2][(y / 2) as usize * f.strides[2] + (x / 2) as usize] as f32 - 128.0;
    let c = (yv - 16.0) * 1.164;
    let cl = |v: f32| v.clamp(0.0, 255.0) as u8;
    [
        cl(c + 1.596 * v),
        cl(c - 0.392 * u - 0.813 * v),
        cl(c + 2.017 * u),
    ]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (*x as i32 - y as i32).abs() <= 40)
}

/// Receives and decodes until `pred` holds for a decoded frame or the deadline passes.
async fn wait_for(
    client: &mut ViewerClient,
    decoder: &mut Decoder,
    deadline: Duration,
    mut pred: impl FnMut(&VideoFrame) -> bool,
) -> Option<VideoFrame> {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        let Some(frame) = client.next_frame(end - Instant::now()).await else {
            break;
        };
        for decoded in decoder.decode(&frame.data).expect("decode") {
            if pred(&decoded) {
                return Some(decoded);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_viewer_receives_decodes_and_sees_repaints() {
    let display = VirtualDisplay::start(DisplayOptions {
        width: 640,
        height: 480,
        kind: DisplayKind::Xvfb,
        ..DisplayOptions::default()
    })
    .expect("Xvfb");
    let name = display.name().to_owned();
    let (_painter, mut paint_in, mut paint_out) = painter(&name, "100,100,200,150", "ff0000");
    let token = "e2e-secret-token";
    let (_server, whep) = edgedesk(&name, token);

    // A wrong token is refused and changes nothing for the next viewer.
    let (bad_client, bad_offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await.unwrap();
    let w = whep.clone();
    let refused = tokio::task::spawn_blocking(move || whep_post(&w, Some("wrong"), &bad_offer))
        .await
        .unwrap();
    let msg = refused
        .expect_err("a bad token must be refused")
        .to_string();
    assert!(msg.contains("401"), "{msg}");
    bad_client.close().await;

    // Offers that pass the HTTP layer's syntax check but no WebRTC stack could answer get a
    // 400 from the real host, and the server carries on.
    for junk in [
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n".to_owned(),
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n".to_owned(),
        "v=0\r\nm=audio 9 RTP/AVP 0\r\n".to_owned(),
    ] {
        let w = whep.clone();
        let r = tokio::task::spawn_blocking(move || whep_post(&w, Some("e2e-secret-token"), &junk))
            .await
            .unwrap();
        let msg = r.expect_err("a junk offer must be refused").to_string();
        assert!(msg.contains("400"), "{msg}");
    }

    // A real offer of a codec this server does not send: 406, naming both lists.
    let (hevc_client, hevc_offer) = ViewerClient::with_options(
        vec!["127.0.0.1:0".into()],
        host::client::ClientOptions {
            codecs: vec![Codec::Hevc],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let w = whep.clone();
    let t = token.to_owned();
    let r = tokio::task::spawn_blocking(move || whep_post(&w, Some(&t), &hevc_offer))
        .await
        .unwrap();
    let msg = r
        .expect_err("an H.265-only offer must be refused")
        .to_string();
    assert!(
        msg.contains("406")
            && msg.contains("offered h265")
            && msg.contains("sends h264, vp9, av1, vp8"),
        "{msg}"
    );
    hevc_client.close().await;

    let started = Instant::now();
    let (mut client, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await.unwrap();
    let w = whep.clone();
    let t = token.to_owned();
    let answer = tokio::task::spawn_blocking(move || whep_post(&w, Some(&t), &offer))
        .await
        .unwrap()
        .expect("WHEP POST");
    client
        .accept_answer(answer.answer_sdp.clone())
        .await
        .unwrap();

    let mut decoder = Decoder::new(Codec::H264).unwrap();
    let red = wait_for(&mut client, &mut decoder, Duration::from_secs(10), |f| {
        f.width == 640 && f.height == 480 && close(rgb_at(f, 200, 175), [255, 0, 0])
    })
    .await
    .expect("a decoded 640x480 frame with red at (200,175)");
    eprintln!(
        "first red frame {} ms after the offer",
        started.elapsed().as_millis()
    );
    // Outside the painted rectangle it is not red.
    assert!(!close(rgb_at(&red, 20, 20), [255, 0, 0]));

    writeln!(paint_in, "color 0000ff").unwrap();
    let mut line = String::new();
    paint_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "PAINTED");
    wait_for(&mut client, &mut decoder, Duration::from_secs(5), |f| {
        close(rgb_at(f, 200, 175), [0, 0, 255])
    })
    .await
    .expect("the repaint to blue reaches the viewer");
    let counters = client.counters();
    assert!(counters.frames >= 2, "{counters:?}");

    // The operator's view: /metrics counts the frames this viewer was sent.
    let metrics = http_get(&whep, "/metrics");
    let sent: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("edgedesk_frames_sent_total{session=\"default\"} "))
        .unwrap_or_else(|| panic!("no frames_sent in {metrics}"))
        .parse()
        .unwrap();
    assert!(sent >= 2, "{metrics}");
    assert!(metrics.contains("edgedesk_viewers{session=\"default\"} 1\n"));
    // /stats: the frames' host timings, in order along the frame path.
    let stats: serde_json::Value = serde_json::from_str(&http_get(&whep, "/stats")).unwrap();
    let frames = stats["sessions"][0]["frames"].as_array().unwrap();
    assert!(frames.len() >= 2, "{stats}");
    let sent: Vec<_> = frames
        .iter()
        .filter(|f| f["sent_ns"].as_u64() != Some(0))
        .collect();
    assert!(sent.len() >= 2, "{stats}");
    for f in sent {
        let at = |k: &str| f[k].as_u64().unwrap();
        assert!(at("grab_start_ns") > 0, "{f}");
        for (a, b) in [
            ("grab_start_ns", "captured_ns"),
            ("captured_ns", "encode_start_ns"),
            ("encode_start_ns", "encoded_ns"),
            ("encoded_ns", "sent_ns"),
        ] {
            assert!(at(a) <= at(b), "{a} after {b}: {f}");
        }
    }

    let url = answer.resource_url.clone();
    let t = token.to_owned();
    tokio::task::spawn_blocking(move || whep_delete(&url, Some(&t)))
        .await
        .unwrap()
        .expect("DELETE the WHEP resource");
    client.close().await;
}

/// GET `path` on the server of `url` (plain HTTP/1.0, body only).
fn http_get(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut conn = std::net::TcpStream::connect(&authority).unwrap();
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}
