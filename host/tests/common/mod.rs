//! Shared scaffolding of the host's session tests: a small Xvfb, a software-encoded session on
//! it, and headless viewers connected to it.
#![allow(dead_code)]

pub mod xclip;

use std::sync::Arc;
use std::time::Duration;

use codec::registry::{EncoderPreference, EncoderRegistry};
use codec::EncoderSettings;
use edgedesk_host::client::ViewerClient;
use edgedesk_host::clipboard::ClipboardConfig;
use edgedesk_host::display::{DisplayKind, DisplayOptions, VirtualDisplay};
use edgedesk_host::pipeline::PipelineConfig;
use edgedesk_host::session::{Session, SessionConfig};
use edgedesk_host::viewer::PeerSettings;

/// A 320x240 Xvfb.
pub fn xvfb() -> VirtualDisplay {
    VirtualDisplay::start(DisplayOptions {
        width: 320,
        height: 240,
        kind: DisplayKind::Xvfb,
        ..DisplayOptions::default()
    })
    .expect("Xvfb (scripts/setup.sh installs it)")
}

/// A libx264 session at 30 fps, 1 Mbit/s on `display`.
pub fn session(display: &VirtualDisplay, name: &str, max_viewers: usize) -> Session {
    session_with(display, name, max_viewers, ClipboardConfig::default())
}

/// [`session`] with the given clipboard settings.
pub fn session_with(
    display: &VirtualDisplay,
    name: &str,
    max_viewers: usize,
    clipboard: ClipboardConfig,
) -> Session {
    session_full(display, name, max_viewers, clipboard, vec![])
}

/// [`session`] sending `codecs` (in that preference order; empty: every codec).
pub fn session_codecs(display: &VirtualDisplay, name: &str, codecs: Vec<codec::Codec>) -> Session {
    session_full(display, name, 16, ClipboardConfig::default(), codecs)
}

fn session_full(
    display: &VirtualDisplay,
    name: &str,
    max_viewers: usize,
    clipboard: ClipboardConfig,
    codecs: Vec<codec::Codec>,
) -> Session {
    Session::start(
        SessionConfig {
            name: name.into(),
            pipeline: PipelineConfig {
                display: display.name(),
                encoder: EncoderSettings {
                    fps: 30,
                    bitrate_bps: 1_000_000,
                    ..EncoderSettings::default()
                },
                preference: EncoderPreference::Software,
            },
            peer: PeerSettings::default(),
            max_viewers,
            resizable: false,
            clipboard,
            codecs,
        },
        Arc::new(EncoderRegistry::probe()),
    )
    .expect("session")
}

/// A headless viewer connected to `session`, returned once it has received a frame.
pub async fn connect(session: &Session, control: bool) -> (ViewerClient, String) {
    let (mut client, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await.unwrap();
    let (id, answer) = session.add_viewer(offer, control).await.expect("answer");
    client.accept_answer(answer).await.unwrap();
    assert!(
        client.next_frame(Duration::from_secs(10)).await.is_some(),
        "a frame arrives"
    );
    (client, id)
}

/// Waits (up to 5 s) for the viewer's `input` data channel to open.
pub async fn input_open(client: &ViewerClient) {
    let open = std::time::Instant::now();
    while client.input.ready_state().await.map(|s| s.to_string()) != Ok("open".into()) {
        assert!(
            open.elapsed() < Duration::from_secs(5),
            "data channel opens"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
