//! A viewer's sound: its audio track (the session's Opus, sent on a task of its own so it
//! never waits behind a video frame) and, from a controlling viewer of a `--audio both`
//! session, its microphone played into the session.

use std::sync::{Arc, Weak};
use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::broadcast;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal as _;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::codecs;
use crate::audio::mic::Microphone;
use crate::audio::AudioSource;

/// The viewer's audio track, when the offer takes Opus and the session has sound.
pub(super) struct AudioParts {
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    pub payload_type: u8,
    pub source: Weak<AudioSource>,
}

/// A new audio track for the session's Opus, and its SSRC.
pub(super) fn track() -> (Arc<TrackLocalStaticRTP>, u32) {
    let ssrc: u32 = rand::random();
    // A media stream of its own (msid), not the picture's: Chromium lip-syncs the tracks of
    // one stream by holding the picture back to the sound's jitter buffer and output (and
    // its first picture waited for the audio output to start: ≈ 200 ms). A desktop's
    // picture must not wait; the timestamps and sender reports still put both on one clock
    // for a client that wants to sync.
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "edgedesk-sound".to_owned(),
        "sound".to_owned(),
        "sound".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codecs::opus_codec(),
            ..Default::default()
        }],
    )));
    (track, ssrc)
}

/// Starts playing a controlling viewer's microphone into the session (the player is started
/// off the async threads), until the track or the viewer (`alive`) ends.
pub(super) async fn start_microphone(
    id: Arc<str>,
    track: Arc<dyn TrackRemote>,
    source: &AudioSource,
    alive: tokio::sync::watch::Receiver<()>,
) {
    let (server, counters) = (source.server().pulse_server(), source.mic.clone());
    let started = tokio::task::spawn_blocking(move || Microphone::start(&server, counters)).await;
    match started.map_err(std::io::Error::other).and_then(|r| r) {
        Ok(mic) => {
            tracing::info!(
                viewer = control::log_tag(&id),
                "microphone plays into the session"
            );
            tokio::spawn(receive_microphone(id, track, mic, alive));
        }
        Err(e) => {
            tracing::warn!(viewer = control::log_tag(&id), error = %e, "cannot play the viewer's microphone")
        }
    }
}

/// Forwards a viewer's microphone into the session until the track or the viewer ends.
async fn receive_microphone(
    id: Arc<str>,
    track: Arc<dyn TrackRemote>,
    mic: Microphone,
    mut alive: tokio::sync::watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = alive.changed() => break,
            ev = track.poll() => match ev {
                Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                    if !mic.push(p.header.sequence_number, p.payload) {
                        tracing::warn!(viewer = control::log_tag(&id), "the session's sound server no longer plays the microphone");
                        break;
                    }
                }
                None | Some(TrackRemoteEvent::OnEnded | TrackRemoteEvent::OnError) => break,
                Some(_) => {}
            }
        }
    }
    tracing::debug!(viewer = control::log_tag(&id), "microphone ended");
    // Stopping the player joins its thread.
    let _ = tokio::task::spawn_blocking(move || drop(mic)).await;
}

/// Sends the session's sound to one viewer until the viewer's task ends: on its own task,
/// so audio never waits behind a video frame.
pub(super) async fn send(
    id: Arc<str>,
    parts: AudioParts,
    epoch: Instant,
    mut alive: tokio::sync::watch::Receiver<()>,
) {
    let AudioParts {
        track,
        ssrc,
        payload_type,
        source,
    } = parts;
    let Some((mut packets, start)) = source.upgrade().map(|s| (s.subscribe(), s.start_instant()))
    else {
        return;
    };
    drop(source);
    let mut rtp = crate::rtp::opus::OpusPacketizer::new(
        ssrc,
        payload_type,
        rand::random(),
        rand::random(),
        epoch,
        start,
    );
    tracing::debug!(
        viewer = control::log_tag(&id),
        payload_type,
        "sending audio"
    );
    loop {
        tokio::select! {
            _ = alive.changed() => break,
            p = packets.recv() => match p {
                Ok(p) => {
                    if let Some(packet) = rtp.packetize(&p.data, p.sample) {
                        if let Err(e) = track.write_rtp(packet).await {
                            tracing::debug!(viewer = control::log_tag(&id), error = %e, "audio write failed");
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(viewer = control::log_tag(&id), n, "audio packets dropped (viewer lagging)");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }
}
