//! One WebRTC viewer of a session: a peer connection that answers the viewer's offer, sends
//! the session's shared encoded stream on its own RTP stream, turns PLI/FIR into keyframe
//! requests, and accepts the client's `input` data channel.
//!
//! Keyframe lobby: a new viewer sends nothing until a keyframe arrives, and asks for one as
//! soon as its connection is up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet as IPacket, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use tokio::sync::{broadcast, mpsc, Notify};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder,
};

pub use webrtc::peer_connection::RTCIceServer;

mod audio;
pub mod codecs;
pub mod congestion;
pub mod gcc;
mod input_channel;
pub mod quality;
pub mod udpmux;
use input_channel::{input_channel, InputContext};
use quality::LinkQuality;

use crate::audio::AudioSource;
use crate::clipboard::{Clipboard, ClipboardConfig};
use crate::input::dispatch::InputDispatcher;
use crate::pipeline::Pipeline;
use crate::rtp::{FrameInfo, PlayoutDelay, RtpPacketizer, ABS_CAPTURE_TIME_URI, PLAYOUT_DELAY_URI};
use audio::AudioParts;
use codec::Codec;

/// Environment variable that sets [`PeerSettings::playout_delay`]'s default: `off`, `MS` or
/// `MIN-MAX` (milliseconds). Unset: 0 (render at once).
pub const PLAYOUT_DELAY_ENV: &str = "EDGEDESK_PLAYOUT_DELAY";

/// Network settings every viewer's peer connection uses.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// Local UDP addresses to bind (port 0 = ephemeral). A wildcard means every interface.
    pub udp_addrs: Vec<String>,
    /// STUN/TURN servers, passed to ICE.
    pub ice_servers: Vec<RTCIceServer>,
    /// Answer only after gathering completes or this long.
    pub gather_timeout: Duration,
    /// Playout delay asked of viewers that offer the playout-delay header extension (Chromium
    /// does): 0/0 makes Chromium render each frame as soon as it is decoded instead of holding
    /// it in its jitter buffer (≈ 8 ms at 1080p60 here). `None`: the extension is not
    /// negotiated. The default comes from [`PLAYOUT_DELAY_ENV`] (0 when unset or unreadable).
    pub playout_delay: Option<PlayoutDelay>,
    /// Send-side congestion control (transport-cc feedback, GCC, pacer) within these limits;
    /// `None`: off (the encoder keeps its configured bitrate, nothing is paced).
    pub congestion: Option<congestion::RateLimits>,
    /// One UDP port for every viewer (see [`udpmux`]); `None`: a port per viewer.
    pub mux: Option<Arc<udpmux::UdpMux>>,
    /// The address the answer's host candidates carry instead of the local ones (1:1 NAT).
    pub public_ip: Option<std::net::IpAddr>,
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings {
            udp_addrs: vec!["127.0.0.1:0".into()],
            ice_servers: vec![],
            gather_timeout: Duration::from_secs(2),
            playout_delay: playout_delay_from_env(),
            congestion: None,
            mux: None,
            public_ip: None,
        }
    }
}

fn playout_delay_from_env() -> Option<PlayoutDelay> {
    match std::env::var(PLAYOUT_DELAY_ENV) {
        Err(_) => Some(PlayoutDelay::default()),
        Ok(v) => PlayoutDelay::parse(&v).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring {PLAYOUT_DELAY_ENV}; using 0");
            Some(PlayoutDelay::default())
        }),
    }
}

/// Errors creating a viewer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewerError {
    #[error("malformed offer: {0}")]
    BadOffer(String),
    /// The offer has none of the session's codecs (HTTP 406 at the control plane).
    #[error("{0}")]
    NoCommonCodec(codecs::NoCommonCodec),
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
}

/// Per-viewer counters.
#[derive(Debug, Default)]
pub struct ViewerCounters {
    pub frames_sent: AtomicU64,
    pub frames_skipped: AtomicU64,
    /// Frames skipped because the viewer's link was backlogged (a subset of `frames_skipped`).
    pub frames_backlogged: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub input_messages: AtomicU64,
    /// Malformed input messages (dropped; the channel stays open).
    pub input_rejected: AtomicU64,
    /// Input from a view-only peer (or with no injector), dropped.
    pub input_ignored: AtomicU64,
    /// Input over [`input_channel::MAX_INPUT_PER_SEC`], dropped.
    pub input_rate_limited: AtomicU64,
    /// Clipboard texts sent to this viewer / received from it and put on the desktop.
    pub clipboard_sent: AtomicU64,
    pub clipboard_received: AtomicU64,
    /// Clipboard texts from this viewer refused (policy, size cap, X failure).
    pub clipboard_refused: AtomicU64,
}

impl ViewerCounters {
    /// Every counter with its Prometheus name and help, for metrics and for folding a
    /// departed viewer into its session's totals.
    pub fn fields(&self) -> [(&'static str, &'static str, &AtomicU64); 11] {
        [
            (
                "edgedesk_frames_sent_total",
                "Video frames sent to viewers.",
                &self.frames_sent,
            ),
            (
                "edgedesk_frames_skipped_total",
                "Video frames a viewer skipped (waiting for a keyframe, or lagging).",
                &self.frames_skipped,
            ),
            (
                "edgedesk_frames_backlogged_total",
                "Video frames a viewer skipped because its link was backlogged (it resumes at the next keyframe).",
                &self.frames_backlogged,
            ),
            (
                "edgedesk_keyframe_requests_total",
                "PLI/FIR keyframe requests from viewers.",
                &self.keyframe_requests,
            ),
            (
                "edgedesk_input_messages_total",
                "Input messages received from viewers.",
                &self.input_messages,
            ),
            (
                "edgedesk_input_rejected_total",
                "Malformed input messages dropped.",
                &self.input_rejected,
            ),
            (
                "edgedesk_input_ignored_total",
                "Input from view-only viewers (or with no injector) dropped.",
                &self.input_ignored,
            ),
            (
                "edgedesk_input_rate_limited_total",
                "Input messages over the per-viewer rate limit dropped.",
                &self.input_rate_limited,
            ),
            (
                "edgedesk_clipboard_sent_total",
                "Clipboard texts sent to viewers.",
                &self.clipboard_sent,
            ),
            (
                "edgedesk_clipboard_received_total",
                "Clipboard texts from viewers put on the desktop.",
                &self.clipboard_received,
            ),
            (
                "edgedesk_clipboard_refused_total",
                "Clipboard texts from viewers refused (policy, size cap, X failure).",
                &self.clipboard_refused,
            ),
        ]
    }

    /// Adds every counter of `other` to this one.
    pub fn absorb(&self, other: &ViewerCounters) {
        for ((_, _, mine), (_, _, theirs)) in self.fields().into_iter().zip(other.fields()) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// What a viewer uses of its session.
#[derive(Clone, Default)]
pub struct SessionLinks {
    pub pipeline: Weak<Pipeline>,
    /// XTest injection; `None` if the display has none (viewers can only watch).
    pub input: Option<Arc<InputDispatcher>>,
    /// The display to resize on request, when it can change size.
    pub resize: Option<String>,
    /// The desktop's clipboard; `None` when the policy is off or X refused it.
    pub clipboard: Option<Arc<Clipboard>>,
    pub clipboard_config: ClipboardConfig,
    /// The codecs the session sends, in preference order (its list, limited to the
    /// encoders this host has). Empty: H.264.
    pub codecs: Vec<Codec>,
    /// The session's rate controller, when congestion control is on.
    pub rate: Option<Arc<std::sync::Mutex<crate::ratecontrol::RateController>>>,
    /// The session's sound, when it has any (`--audio out|both`).
    pub audio: Option<Weak<AudioSource>>,
    /// Controlling viewers' microphones are played into the session (`--audio both`).
    pub microphone: bool,
}

/// A live viewer. Closing it (or the remote going away) ends its task.
pub struct Viewer {
    pub id: String,
    pub control: bool,
    /// The video codec negotiated with this viewer.
    pub codec: Codec,
    pc: Arc<dyn PeerConnection>,
    pub counters: Arc<ViewerCounters>,
    /// Loss and round-trip time, from the viewer's RTCP reports.
    pub quality: Arc<LinkQuality>,
    /// The bandwidth estimate of this viewer's link, when congestion control is on.
    pub estimate: Option<Arc<congestion::Estimate>>,
    /// Wakes the viewer's task to end it (DELETE, session end, data channel closed).
    stop: Arc<Notify>,
    pub created: Instant,
    /// What the task needs; taken by [`Viewer::start`].
    task: std::sync::Mutex<Option<TaskParts>>,
}

struct TaskParts {
    codec: Codec,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
    /// The negotiated playout-delay extension id and the delay to ask for.
    playout_delay: Option<(u8, PlayoutDelay)>,
    /// The negotiated abs-capture-time extension id.
    abs_capture_time: Option<u8>,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    early: Vec<PeerEvent>,
    links: SessionLinks,
    estimate: Option<Arc<congestion::Estimate>>,
    audio: Option<AudioParts>,
}

/// How long a new viewer may take to connect before it is dropped (an abandoned offer).
const CONNECT_DEADLINE: Duration = Duration::from_secs(15);
/// ICE: no traffic for this long → disconnected; this much longer → failed (viewer ends).
const ICE_DISCONNECTED: Duration = Duration::from_secs(2);
const ICE_FAILED: Duration = Duration::from_secs(4);
const ICE_KEEPALIVE: Duration = Duration::from_millis(500);
/// Connectivity checks while connecting: every 25 ms (the crate's default is 200 ms, which a
/// controlled agent waits out before it confirms the browser's nominated pair: ≈ 60–150 ms of
/// the time to first picture on loopback), up to 56 per candidate pair (the default 1.4 s).
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(25);
/// Packets kept for retransmission: ~0.5 s at 1080p60 8 Mbit/s, seconds on a thin link.
/// Older ones are not worth resending (the receiver has given up on them).
const NACK_HISTORY: u16 = 512;

/// The most a frame may wait behind earlier ones in the pacer before the viewer skips to the
/// next keyframe instead.
const MAX_SEND_BACKLOG: Duration = Duration::from_millis(250);
/// A viewer whose link is backlogged asks for a keyframe this often at most.
const BACKLOG_KEYFRAME_EVERY: Duration = Duration::from_secs(1);

/// A model of the pacer's queue: bytes in, drained at the pacing rate.
#[derive(Default)]
struct SendBacklog {
    bits: f64,
    at: Option<Instant>,
}

impl SendBacklog {
    /// How long what is queued takes to leave at `pacing` bit/s, at `now`.
    fn delay(&mut self, now: Instant, pacing: f64) -> Duration {
        if let Some(at) = self.at {
            self.bits =
                (self.bits - pacing * now.saturating_duration_since(at).as_secs_f64()).max(0.0);
        }
        self.at = Some(now);
        Duration::from_secs_f64(if pacing > 0.0 {
            self.bits / pacing
        } else {
            0.0
        })
    }

    /// A frame of `bytes` payload went to the pacer (RTP/SRTP headers ≈ 5 %).
    fn add(&mut self, bytes: usize) {
        self.bits += bytes as f64 * 8.0 * 1.05;
    }
}

/// How often a viewer's estimate reaches the session's rate controller.
const RATE_TICK: Duration = Duration::from_millis(100);
/// A view-only viewer too slow for the session asks for a keyframe this often at most.
const SLOW_VIEWER_KEYFRAME_EVERY: Duration = Duration::from_secs(3);
const ICE_MAX_BINDING_REQUESTS: u16 = 56;

enum PeerEvent {
    State(RTCPeerConnectionState),
    Gathered,
    DataChannel(Arc<dyn DataChannel>),
    Track(Arc<dyn TrackRemote>, RtpCodecKind),
}

struct Handler {
    tx: mpsc::UnboundedSender<PeerEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.tx.send(PeerEvent::Gathered);
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.send(PeerEvent::State(state));
    }
    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let _ = self.tx.send(PeerEvent::DataChannel(dc));
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let _ = self.tx.send(PeerEvent::Track(track, kind));
    }
}

/// Interceptor that hands PLI and FIR to the application (they are consumed inside the
/// stack otherwise) and reads the viewer's receiver reports into its [`LinkQuality`];
/// everything passes through untouched.
#[derive(Default)]
struct KeyframeRequests {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    quality: Arc<LinkQuality>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;
    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let IPacket::Rtcp(packets) = &msg.message.packet {
            self.quality.on_rtcp(packets, std::time::SystemTime::now());
            if packets.iter().any(|p| {
                let any = p.as_any();
                any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
            }) {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// Cheap checks before the offer reaches the WebRTC stack.
pub fn check_offer(sdp: &str) -> Result<(), ViewerError> {
    if !sdp.lines().any(|l| l.starts_with("m=video")) {
        return Err(ViewerError::BadOffer(
            "the offer has no video section".into(),
        ));
    }
    Ok(())
}

impl Viewer {
    /// Where the viewer's media goes, as ICE selected it (`IP:PORT` of the browser, its NAT or
    /// its TURN relay); `None` before ICE has selected a pair.
    pub async fn remote_address(&self) -> Option<String> {
        let sender = self.pc.get_senders().await.into_iter().next()?;
        let dtls = sender.transport().await.ok()??;
        let pair = dtls
            .ice_transport()
            .get_selected_candidate_pair()
            .await
            .ok()??;
        let r = pair.remote();
        Some(if r.address.contains(':') {
            format!("[{}]:{}", r.address, r.port)
        } else {
            format!("{}:{}", r.address, r.port)
        })
    }

    /// Answers `offer_sdp`; returns the viewer and the answer with every local candidate.
    /// Nothing is sent until [`Viewer::start`].
    pub async fn create(
        id: String,
        control: bool,
        offer_sdp: String,
        settings: &PeerSettings,
        links: SessionLinks,
    ) -> Result<(Viewer, String), ViewerError> {
        check_offer(&offer_sdp)?;
        if codecs::offered_codecs(&offer_sdp).is_empty() {
            return Err(ViewerError::BadOffer(
                "the offer's video section lists no codec".into(),
            ));
        }
        let preference = if links.codecs.is_empty() {
            vec![Codec::H264]
        } else {
            links.codecs.clone()
        };
        let choice = codecs::choose(&offer_sdp, &preference).map_err(ViewerError::NoCommonCodec)?;
        let takes_opus = codecs::offers_opus(&offer_sdp);
        let offer = RTCSessionDescription::offer(offer_sdp)
            .map_err(|e| ViewerError::BadOffer(e.to_string()))?;

        // Only the chosen codec: the answer then holds exactly one.
        let (pt, rtx_pt) = codecs::payload_types(choice.codec);
        let mut media = MediaEngine::default();
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: codecs::rtp_codec(choice.codec, &choice.fmtp),
                payload_type: pt,
            },
            RtpCodecKind::Video,
        )?;
        // RFC 4588 retransmissions: NACKed packets are resent on their own SSRC, so the
        // receiver's loss statistics and jitter estimate stay clean.
        media.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: "video/rtx".to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: format!("apt={pt}"),
                    rtcp_feedback: vec![],
                },
                payload_type: rtx_pt,
            },
            RtpCodecKind::Video,
        )?;
        if settings.playout_delay.is_some() {
            media.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: PLAYOUT_DELAY_URI.to_owned(),
                },
                RtpCodecKind::Video,
                None,
            )?;
        }
        // Answered only when the viewer offers it (Chromium does when the page asks).
        media.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: ABS_CAPTURE_TIME_URI.to_owned(),
            },
            RtpCodecKind::Video,
            None,
        )?;
        // Sound: only when the session has it and the offer takes Opus (otherwise the answer
        // rejects the audio section).
        let audio_source = links
            .audio
            .as_ref()
            .filter(|w| w.strong_count() > 0 && takes_opus)
            .cloned();
        if audio_source.is_some() {
            media.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codecs::opus_codec(),
                    payload_type: codecs::OPUS_PAYLOAD_TYPE,
                },
                RtpCodecKind::Audio,
            )?;
        }
        let quality = Arc::new(LinkQuality::default());
        // NACK (answered from a short history, see NACK_HISTORY) and PLI offered for video.
        for parameter in ["", "pli"] {
            media.register_feedback(
                rtc::rtp_transceiver::rtp_sender::RTCPFeedback {
                    typ: "nack".to_owned(),
                    parameter: parameter.to_owned(),
                },
                RtpCodecKind::Video,
            );
        }
        let registry = configure_rtcp_reports(
            Registry::new().with(
                Slot::NackResponder,
                rtc::interceptor::NackResponderBuilder::new()
                    .with_size(NACK_HISTORY)
                    .build(),
            ),
        );
        let (registry, estimate) = match settings.congestion {
            Some(limits) => {
                let (r, e) = congestion::configure(registry, &mut media, limits)?;
                (r, Some(e))
            }
            None => (registry, None),
        };
        let registry = registry.with(
            Slot::from(14_000),
            KeyframeRequests {
                quality: quality.clone(),
                ..KeyframeRequests::default()
            },
        );
        let loopback = settings.udp_addrs.iter().any(|a| a.starts_with("127."));
        // One port for all: this viewer's end of the mux, under ICE credentials of its own.
        let mux_port = settings.mux.as_ref().map(udpmux::MuxPort::new);
        let mut setting_engine = SettingEngineBuilder::new();
        if let Some(port) = &mux_port {
            setting_engine =
                setting_engine.with_ice_credentials(port.ufrag.clone(), port.pwd.clone());
        } else if let Some(ip) = settings.public_ip {
            setting_engine = setting_engine.with_nat_1to1_ips(
                vec![ip.to_string()],
                rtc::peer_connection::transport::RTCIceCandidateType::Host,
            );
        }
        // mDNS off: no multicast socket per connection; Chromium's .local candidates are
        // reached through the peer-reflexive candidate its first STUN check creates.
        let setting_engine = setting_engine
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(loopback)
            // Notice a vanished client in seconds, not the default half minute.
            .with_ice_timeouts(
                Some(ICE_DISCONNECTED),
                Some(ICE_FAILED),
                Some(ICE_KEEPALIVE),
            )
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
            // DTLS server (a=setup:passive): the browser sends its ClientHello the moment its
            // own ICE connects, instead of waiting for ours to confirm the pair and start the
            // handshake (≈ 150 ms on loopback with the crate's defaults).
            .with_answering_dtls_role(rtc::peer_connection::transport::RTCDtlsRole::Server)
            .build();
        let (tx, mut events) = mpsc::unbounded_channel();
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(settings.ice_servers.clone())
            .build();
        let builder = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(media)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler { tx }));
        let pc = match &mux_port {
            // The connection's sockets are its end of the mux; what it binds (port 0 on the
            // mux's addresses) only labels its candidates and is closed at once.
            Some(port) => {
                builder
                    .with_runtime(port.runtime())
                    .with_udp_addrs(udpmux::label_addrs(&settings.udp_addrs))
                    .build()
                    .await?
            }
            None => {
                builder
                    .with_udp_addrs(settings.udp_addrs.clone())
                    .build()
                    .await?
            }
        };
        drop(mux_port);
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let ssrc: u32 = rand::random();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "edgedesk".to_owned(),
            "screen".to_owned(),
            "screen".to_owned(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    rtx: Some(RTCRtpRtxParameters {
                        ssrc: rand::random(),
                    }),
                    ..Default::default()
                },
                codec: codecs::rtp_codec(choice.codec, &choice.fmtp),
                ..Default::default()
            }],
        )));
        let audio_track = audio_source.as_ref().map(|_| audio::track());
        let result = async {
            let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            let audio_sender = match &audio_track {
                Some((t, _)) => Some(pc.add_track(t.clone() as Arc<dyn TrackLocal>).await?),
                None => None,
            };
            pc.set_remote_description(offer)
                .await
                .map_err(|e| ViewerError::BadOffer(e.to_string()))?;
            // The viewer's microphone is taken (a=sendrecv) only from a controlling viewer of
            // a session that wants it; everyone else is answered a=sendonly and sends none.
            if let Some(s) = &audio_sender {
                if !(control && links.microphone) {
                    for t in pc.get_transceivers().await {
                        if t.sender()
                            .await
                            .ok()
                            .flatten()
                            .is_some_and(|x| x.id() == s.id())
                        {
                            t.set_direction(
                                rtc::rtp_transceiver::RTCRtpTransceiverDirection::Sendonly,
                            )
                            .await?;
                        }
                    }
                }
            }
            let answer = pc.create_answer(None).await?;
            pc.set_local_description(answer).await?;
            let params = sender.get_parameters().await?.rtp_parameters;
            // The payload type negotiated for the chosen codec; none means the engine could
            // not match the offer's and nothing we send would be accepted.
            let payload_type = params
                .codecs
                .first()
                .map(|c| c.payload_type)
                .ok_or_else(|| {
                    ViewerError::BadOffer(format!(
                        "{} could not be negotiated with the offer's parameters",
                        choice.codec
                    ))
                })?;
            // Only with the id the answer holds: a packet with any other id is rejected.
            let negotiated = |uri: &str| {
                params
                    .header_extensions
                    .iter()
                    .find(|h| h.uri == uri)
                    .and_then(|h| u8::try_from(h.id).ok().filter(|id| (1..=14).contains(id)))
            };
            let playout_delay = settings
                .playout_delay
                .and_then(|delay| negotiated(PLAYOUT_DELAY_URI).map(|id| (id, delay)));
            let abs_capture_time = negotiated(ABS_CAPTURE_TIME_URI);
            // The audio payload type; none: the offer's Opus could not be matched, no sound.
            let audio_payload_type = match audio_sender {
                Some(s) => s
                    .get_parameters()
                    .await?
                    .rtp_parameters
                    .codecs
                    .first()
                    .map(|c| c.payload_type),
                None => None,
            };
            Ok::<_, ViewerError>((
                payload_type,
                playout_delay,
                abs_capture_time,
                audio_payload_type,
            ))
        }
        .await;
        let (payload_type, playout_delay, abs_capture_time, audio_payload_type) = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };

        // Non-trickle answer: wait for every local candidate (bounded).
        let deadline = tokio::time::Instant::now() + settings.gather_timeout;
        let mut early = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(PeerEvent::Gathered)) | Ok(None) | Err(_) => break,
                Ok(Some(other)) => early.push(other),
            }
        }
        let answer = match pc.local_description().await {
            Some(d) => match &settings.mux {
                Some(mux) => udpmux::advertise(&d.sdp, mux.local_addr().port(), settings.public_ip),
                None => d.sdp,
            },
            None => {
                let _ = pc.close().await;
                return Err(ViewerError::BadOffer("no local description".into()));
            }
        };

        let viewer = Viewer {
            id,
            control,
            codec: choice.codec,
            pc,
            counters: Arc::default(),
            quality,
            estimate: estimate.clone(),
            stop: Arc::new(Notify::new()),
            created: Instant::now(),
            task: std::sync::Mutex::new(Some(TaskParts {
                codec: choice.codec,
                track,
                ssrc,
                payload_type,
                playout_delay,
                abs_capture_time,
                events,
                early,
                links,
                estimate,
                audio: match (audio_track, audio_payload_type, audio_source) {
                    (Some((track, ssrc)), Some(payload_type), Some(source)) => Some(AudioParts {
                        track,
                        ssrc,
                        payload_type,
                        source,
                    }),
                    _ => None,
                },
            })),
        };
        Ok((viewer, answer))
    }

    /// Adds remote candidates trickled by the client.
    pub async fn add_candidate(
        &self,
        candidate: String,
        mid: Option<String>,
        ufrag: Option<String>,
    ) -> Result<(), ViewerError> {
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate,
                sdp_mid: mid,
                sdp_mline_index: None,
                username_fragment: ufrag,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Starts the viewer's task: it runs until the connection ends or [`Viewer::close`], then
    /// calls `on_end` once. A second call does nothing.
    pub fn start(&self, on_end: Box<dyn FnOnce(&str) + Send>) {
        let Some(parts) = self.task.lock().unwrap().take() else {
            return;
        };
        let (id, pc, counters, stop, control) = (
            self.id.clone(),
            self.pc.clone(),
            self.counters.clone(),
            self.stop.clone(),
            self.control,
        );
        tokio::spawn(async move {
            run_viewer(&id, control, pc, parts, counters, stop).await;
            on_end(&id);
        });
    }

    /// Ends the viewer; its task notices, cleans up and calls `on_end`. Safe before `start`.
    pub async fn close(&self) {
        self.stop.notify_one();
        let _ = self.pc.close().await;
    }
}

async fn run_viewer(
    id: &str,
    control: bool,
    pc: Arc<dyn PeerConnection>,
    parts: TaskParts,
    counters: Arc<ViewerCounters>,
    stop: Arc<Notify>,
) {
    let TaskParts {
        codec,
        track,
        ssrc,
        payload_type,
        playout_delay,
        abs_capture_time,
        mut events,
        early,
        links,
        estimate,
        mut audio,
    } = parts;
    let pipeline = links.pipeline.clone();
    let (early_tx, mut early_rx) = mpsc::unbounded_channel();
    for e in early {
        let _ = early_tx.send(e);
    }
    drop(early_tx);
    let mut frames: Option<broadcast::Receiver<Arc<codec::EncodedFrame>>> = None;
    let mut packetizer =
        RtpPacketizer::new(codec, ssrc, payload_type, rand::random(), rand::random());
    // RTP timestamps count from now; the input channel tells the client what that is in Unix
    // time, so the page can show glass-to-glass (`clock`).
    let epoch = Instant::now();
    let rtp_clock = {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3);
        (packetizer.set_epoch(epoch), unix_ms)
    };
    if let Some((ext_id, delay)) = playout_delay {
        tracing::debug!(
            viewer = control::log_tag(id),
            ext_id,
            ?delay,
            "playout delay negotiated"
        );
        packetizer.set_playout_delay(ext_id, delay);
    }
    if let Some(ext_id) = abs_capture_time {
        tracing::debug!(
            viewer = control::log_tag(id),
            ext_id,
            "abs-capture-time negotiated"
        );
        packetizer.set_abs_capture_time(ext_id, (Instant::now(), std::time::SystemTime::now()));
    }
    let mut waiting_for_keyframe = true;
    // Congestion control: this viewer's estimate goes to the session's rate controller; a
    // view-only viewer too slow for the session's rate gets keyframes only.
    let mut rate_tick = tokio::time::interval(RATE_TICK);
    rate_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slow = false;
    let mut slow_keyframe_asked = Instant::now();
    // What the pacer holds, as far as this task can tell (congestion control on).
    let mut backlog = SendBacklog::default();
    let mut backlog_keyframe_asked: Option<Instant> = None;
    let mut joined = false;
    // Dropped when this task ends: the audio task sees it and ends too.
    let (audio_alive, audio_stop) = tokio::sync::watch::channel(());
    let mut input_started = false;
    // One microphone per viewer: a second audio section gets no second player.
    let mut mic_started = false;
    let started = Instant::now();
    let connect_deadline = tokio::time::Instant::now() + CONNECT_DEADLINE;
    loop {
        tokio::select! {
            _ = stop.notified() => break,
            _ = tokio::time::sleep_until(connect_deadline), if !joined => {
                tracing::info!(viewer = control::log_tag(id), "viewer never connected; dropping it");
                break;
            }
            ev = async {
                match early_rx.recv().await {
                    Some(e) => Some(e),
                    None => events.recv().await,
                }
            } => {
                match ev {
                    Some(PeerEvent::State(state)) => {
                        tracing::debug!(viewer = control::log_tag(id), %state, "connection state");
                        match state {
                            RTCPeerConnectionState::Connected if !joined => {
                                let Some(p) = pipeline.upgrade() else { break };
                                frames = Some(p.subscribe());
                                p.viewer_joined(codec);
                                joined = true;
                                if let Some(a) = audio.take() {
                                    tokio::spawn(audio::send(Arc::from(id), a, epoch, audio_stop.clone()));
                                }
                                tracing::info!(viewer = control::log_tag(id), after_ms = started.elapsed().as_millis() as u64, "viewer connected");
                            }
                            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => break,
                            _ => {}
                        }
                    }
                    Some(PeerEvent::DataChannel(dc)) if input_started => {
                        // One input channel per peer: a second one would get its own rate window.
                        tracing::debug!(viewer = control::log_tag(id), "ignoring an extra data channel");
                        let _ = dc.close().await;
                    }
                    Some(PeerEvent::DataChannel(dc)) => {
                        input_started = true;
                        let ctx = InputContext {
                            viewer: Arc::from(id),
                            control,
                            links: links.clone(),
                            rtp_clock,
                            estimate: estimate.clone(),
                        };
                        let (counters, stop) = (counters.clone(), stop.clone());
                        tokio::spawn(async move { input_channel(dc, ctx, counters, stop).await });
                    }
                    Some(PeerEvent::Gathered) => {}
                    Some(PeerEvent::Track(track, kind)) => {
                        let source = links.audio.as_ref().and_then(Weak::upgrade);
                        match source {
                            Some(source) if kind == RtpCodecKind::Audio && control && links.microphone && !mic_started => {
                                mic_started = true;
                                audio::start_microphone(Arc::from(id), track, &source, audio_stop.clone()).await;
                            }
                            _ => tracing::debug!(viewer = control::log_tag(id), ?kind, "ignoring a track from the viewer"),
                        }
                    }
                    None => break,
                }
            }
            _ = rate_tick.tick(), if joined && links.rate.is_some() => {
                let rc = links.rate.as_ref().expect("guarded");
                let (decided, now_slow) = {
                    let mut r = rc.lock().unwrap_or_else(|e| e.into_inner());
                    r.update(id, control, estimate.as_ref().and_then(|e| e.target()));
                    (r.decide(Instant::now()), r.is_slow(id))
                };
                if let (Some(bps), Some(p)) = (decided, pipeline.upgrade()) {
                    tracing::debug!(viewer = control::log_tag(id), bps, "encoder bitrate follows the estimate");
                    p.send(codec::EncoderCommand::SetBitrate(bps));
                }
                if now_slow != slow {
                    slow = now_slow;
                    tracing::info!(viewer = control::log_tag(id), slow, "view-only viewer far slower than the session: keyframes only");
                    waiting_for_keyframe = true;
                    if !slow {
                        if let Some(p) = pipeline.upgrade() { p.request_keyframe(codec); }
                    }
                }
                if slow && slow_keyframe_asked.elapsed() >= SLOW_VIEWER_KEYFRAME_EVERY {
                    slow_keyframe_asked = Instant::now();
                    if let Some(p) = pipeline.upgrade() { p.request_keyframe(codec); }
                }
            }
            rtcp = track.poll(), if joined => {
                match rtcp {
                    Some(TrackLocalEvent::OnRtcpPacket(_)) => {
                        counters.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                        // The pipeline coalesces requests from every viewer of the session.
                        if let Some(p) = pipeline.upgrade() { p.request_keyframe(codec); }
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            frame = async { frames.as_mut().expect("guarded").recv().await }, if frames.is_some() => {
                match frame {
                    Ok(frame) if frame.codec != codec => {}
                    Ok(frame) => {
                        if waiting_for_keyframe && !frame.keyframe {
                            counters.frames_skipped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        // A link that cannot carry what was sent: the pacer would hold this
                        // frame for longer than it is worth. Skip to the next keyframe (the
                        // picture resumes whole), asked for at most once a second. The
                        // keyframe skipped to goes out whatever the backlog: skipping it too
                        // left the picture frozen until the next ask, a second later.
                        let resume = waiting_for_keyframe && frame.keyframe;
                        if let Some(rate) = estimate.as_ref().and_then(|e| e.target()) {
                            let pacing = rate as f64 * congestion::PACING_FACTOR;
                            if !resume && backlog.delay(Instant::now(), pacing) > MAX_SEND_BACKLOG {
                                counters.frames_skipped.fetch_add(1, Ordering::Relaxed);
                                counters.frames_backlogged.fetch_add(1, Ordering::Relaxed);
                                waiting_for_keyframe = true;
                                if backlog_keyframe_asked.is_none_or(|t| t.elapsed() >= BACKLOG_KEYFRAME_EVERY) {
                                    backlog_keyframe_asked = Some(Instant::now());
                                    if let Some(p) = pipeline.upgrade() { p.request_keyframe(codec); }
                                }
                                continue;
                            }
                            backlog.add(frame.data.len());
                        }
                        let info = FrameInfo {
                            keyframe: frame.keyframe,
                            width: frame.width,
                            height: frame.height,
                        };
                        let sent = match packetizer.packetize(&frame.data, info, frame.captured_at) {
                            Ok(packets) => {
                                let mut ok = true;
                                for p in packets {
                                    if let Err(e) = track.write_rtp(p).await {
                                        tracing::debug!(viewer = control::log_tag(id), error = %e, "rtp write failed");
                                        ok = false;
                                        break;
                                    }
                                }
                                ok
                            }
                            Err(e) => {
                                tracing::warn!(viewer = control::log_tag(id), error = %e, "packetize failed");
                                false
                            }
                        };
                        if sent {
                            // A slow view-only viewer waits for the next keyframe again.
                            waiting_for_keyframe = slow;
                            counters.frames_sent.fetch_add(1, Ordering::Relaxed);
                            if let Some(p) = pipeline.upgrade() {
                                p.timings().sent(frame.sequence, crate::timing::mono_ns());
                            }
                        } else {
                            // A partly sent frame breaks the picture until the next keyframe.
                            waiting_for_keyframe = true;
                            if let Some(p) = pipeline.upgrade() { p.request_keyframe(codec); }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        counters.frames_skipped.fetch_add(n, Ordering::Relaxed);
                        waiting_for_keyframe = true;
                        if let Some(p) = pipeline.upgrade() { p.request_keyframe(codec); }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
    if joined {
        if let Some(p) = pipeline.upgrade() {
            p.viewer_left(codec);
        }
    }
    if let Some(rc) = &links.rate {
        rc.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
    drop(audio_alive);
    let _ = pc.close().await;
    tracing::info!(viewer = control::log_tag(id), "viewer gone");
}
