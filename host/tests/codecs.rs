//! Every codec end to end: a real Xvfb with two painted rectangles, the real pipeline and
//! encoders, a headless viewer over loopback offering one codec only. The codec negotiated
//! must be the one offered, and the decoded picture must hold each colour at its place; two
//! viewers with different codecs are served at once (one encoder per codec), and an offer
//! with none of the session's codecs is refused with both lists named.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codec::convert::i420_rgb_at;
use codec::{Codec, Decoder};
use edgedesk_host as host;
use host::client::{ClientOptions, ViewerClient};
use host::display::VirtualDisplay;
use host::session::{HostError, Session};

fn paint(display: &VirtualDisplay, rect: &str, color: &str) -> Child {
    let mut child = display
        .spawn_command(
            Command::new(env!("CARGO_BIN_EXE_edgedesk-paint"))
                .args(["--rect", rect, "--color", color])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        )
        .expect("painter");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY");
    child
}

async fn viewer(session: &Session, codec: Codec) -> Result<ViewerClient, HostError> {
    let options = ClientOptions {
        codecs: vec![codec],
        ..ClientOptions::default()
    };
    let (client, offer) = ViewerClient::with_options(vec!["127.0.0.1:0".into()], options)
        .await
        .unwrap();
    let (_, answer) = session.add_viewer(offer, false).await?;
    client.accept_answer(answer).await.unwrap();
    Ok(client)
}

/// Decodes frames until a picture comes out; returns it.
async fn picture(client: &mut ViewerClient, codec: Codec) -> codec::VideoFrame {
    let mut decoder = Decoder::new(codec).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let Some(frame) = client.next_frame(Duration::from_secs(10)).await else {
            break;
        };
        assert_eq!(frame.codec, codec);
        if let Some(p) = decoder.decode(&frame.data).unwrap().pop() {
            return p;
        }
    }
    panic!("{codec}: no picture decoded");
}

fn near(got: [u8; 3], want: [u8; 3]) -> bool {
    got.iter()
        .zip(want)
        .all(|(&g, w)| (g as i32 - w as i32).abs() <= 40)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_carries_the_picture_to_its_place() {
    let display = common::xvfb();
    let mut red = paint(&display, "200,40,80,60", "ff0000");
    let mut blue = paint(&display, "30,150,60,50", "0000ff");
    let session = common::session_codecs(&display, "codecs", vec![]);
    for codec in [Codec::H264, Codec::Vp8, Codec::Vp9, Codec::Av1, Codec::Hevc] {
        let started = Instant::now();
        let mut client = viewer(&session, codec).await.expect("answer");
        assert_eq!(client.codec(), codec, "negotiated the offered codec");
        let pic = picture(&mut client, codec).await;
        assert_eq!((pic.width, pic.height), (320, 240));
        let (r, b) = (
            i420_rgb_at(&pic, 240, 70).unwrap(),
            i420_rgb_at(&pic, 60, 175).unwrap(),
        );
        assert!(near(r, [255, 0, 0]), "{codec}: red at 240,70 is {r:?}");
        assert!(near(b, [0, 0, 255]), "{codec}: blue at 60,175 is {b:?}");
        eprintln!(
            "{codec}: picture after {} ms, {:?}",
            started.elapsed().as_millis(),
            client.counters()
        );
        client.close().await;
    }

    // Two viewers, two codecs, one session: each gets its own stream.
    let mut a = viewer(&session, Codec::H264).await.unwrap();
    let mut b = viewer(&session, Codec::Vp9).await.unwrap();
    picture(&mut a, Codec::H264).await;
    picture(&mut b, Codec::Vp9).await;
    let encoder = session.stats().pipeline.encoder;
    assert!(
        encoder.contains("libx264") && encoder.contains("vpx:vp9"),
        "{encoder}"
    );
    a.close().await;
    b.close().await;
    drop(session);

    // A session that sends H.264 only refuses a VP8-only offer, naming both sides.
    let h264_only = common::session_codecs(&display, "h264", vec![Codec::H264]);
    match viewer(&h264_only, Codec::Vp8).await {
        Err(HostError::NoCommonCodec(msg)) => {
            assert!(
                msg.contains("offered vp8") && msg.contains("sends h264"),
                "{msg}"
            )
        }
        Err(e) => panic!("wrong refusal: {e}"),
        Ok(_) => panic!("a VP8 offer was answered by an H.264-only session"),
    }
    assert_eq!(h264_only.viewer_count(), 0);
    let _ = red.kill();
    let _ = blue.kill();
    let _ = red.wait();
    let _ = blue.wait();
}
