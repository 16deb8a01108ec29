//! The playout-delay RTP header extension (min = max = 0: "render at once"): answered with the
//! offer's id when the viewer offers it, carried on every video packet; absent from the answer
//! and the packets when the viewer does not offer it or the host has it switched off. A real
//! Xvfb, the real pipeline and a headless WebRTC viewer over loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use codec::registry::{EncoderPreference, EncoderRegistry};
use codec::EncoderSettings;
use edgedesk_host as host;
use host::client::{extmap_id, ClientOptions, ViewerClient};
use host::display::VirtualDisplay;
use host::pipeline::PipelineConfig;
use host::rtp::{PlayoutDelay, PLAYOUT_DELAY_URI};
use host::session::{Session, SessionConfig};
use host::viewer::PeerSettings;

fn session(display: &VirtualDisplay, playout_delay: Option<PlayoutDelay>) -> Session {
    Session::start(
        SessionConfig {
            name: "pd".into(),
            pipeline: PipelineConfig {
                display: display.name(),
                encoder: EncoderSettings {
                    fps: 30,
                    bitrate_bps: 1_000_000,
                    ..EncoderSettings::default()
                },
                preference: EncoderPreference::Software,
            },
            peer: PeerSettings {
                playout_delay,
                ..PeerSettings::default()
            },
            max_viewers: 4,
            resizable: false,
            clipboard: Default::default(),
            codecs: vec![],
        },
        Arc::new(EncoderRegistry::probe()),
    )
    .expect("session")
}

/// Connects a viewer offering (or not) the extension; returns the answer and its counters
/// after the first frame.
async fn watch(session: &Session, offer_it: bool) -> (String, host::client::ClientCounters) {
    let (mut client, offer) = ViewerClient::with_options(
        vec!["127.0.0.1:0".into()],
        ClientOptions {
            playout_delay: offer_it,
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        extmap_id(&offer, PLAYOUT_DELAY_URI).is_some(),
        offer_it,
        "the offer holds the extension only when asked to"
    );
    let (_, answer) = session.add_viewer(offer, false).await.expect("answer");
    client.accept_answer(answer.clone()).await.unwrap();
    assert!(
        client.next_frame(Duration::from_secs(10)).await.is_some(),
        "a frame arrives"
    );
    let counters = client.counters();
    client.close().await;
    (answer, counters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playout_delay_zero_is_negotiated_and_on_every_packet() {
    let display = common::xvfb();
    let on = session(&display, Some(PlayoutDelay::default()));

    let (answer, c) = watch(&on, true).await;
    assert!(
        extmap_id(&answer, PLAYOUT_DELAY_URI).is_some(),
        "answer holds the extmap: {answer}"
    );
    assert!(c.packets > 0);
    assert_eq!(
        c.playout_delay_packets, c.packets,
        "every packet carries it"
    );
    assert_eq!(c.playout_delay, Some((0, 0)));

    // A viewer that does not offer it gets neither the extmap nor the extension, and still
    // receives the picture (a packet with an id it never negotiated would be dropped).
    let (answer, c) = watch(&on, false).await;
    assert_eq!(extmap_id(&answer, PLAYOUT_DELAY_URI), None);
    assert!(c.packets > 0 && c.frames > 0);
    assert_eq!(c.playout_delay_packets, 0);
    on.close().await;

    // Switched off on the host: not answered even when offered.
    let off = session(&display, None);
    let (answer, c) = watch(&off, true).await;
    assert_eq!(extmap_id(&answer, PLAYOUT_DELAY_URI), None, "{answer}");
    assert!(c.packets > 0);
    assert_eq!(c.playout_delay_packets, 0);
    off.close().await;
}
