//! A headless WebRTC viewer: the Rust counterpart of the browser client, used by end-to-end
//! tests and the bench tool. It offers to receive the codecs it is given (H.264 by default;
//! plus the `input` data channel, as the browser does), reassembles frames from RTP with the
//! negotiated codec's depacketizer as soon as a frame's marker packet is in (no waiting for
//! the next frame, unlike sample builders that hold a frame), and hands them out with their
//! arrival time for the caller to decode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use codec::Codec;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::mpsc;
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceConnectionState, RTCIceGatheringState, RTCIceServer,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

mod diagnose;
pub mod reorder;
mod whep;

pub use whep::{parse_ice_links, resolve_url, whep_delete, whep_options, whep_post, WhepAnswer};

/// One reassembled frame.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    pub codec: Codec,
    /// As [`codec::Decoder::decode`] takes it (Annex B for H.264/H.265, OBUs with sizes for
    /// AV1).
    pub data: Bytes,
    pub rtp_timestamp: u32,
    /// The RTP stream it came on (for [`ViewerClient::sender_report`]).
    pub ssrc: u32,
    /// When the marker packet arrived.
    pub received_at: Instant,
    pub packets: usize,
    pub bytes: usize,
}

/// One audio RTP packet as it arrived (Opus, one frame per packet).
#[derive(Debug, Clone)]
pub struct ReceivedAudio {
    pub payload: Bytes,
    pub rtp_timestamp: u32,
    pub ssrc: u32,
    pub sequence: u16,
    pub marker: bool,
    pub received_at: Instant,
}

/// A video frame or an audio packet, in arrival order ([`ViewerClient::next_media`]).
#[derive(Debug, Clone)]
pub enum Media {
    Frame(ReceivedFrame),
    Audio(ReceivedAudio),
}

/// The last RTCP sender report of an RTP stream: its wall clock (NTP, UQ32.32) and the RTP
/// timestamp of the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderClock {
    pub ntp: u64,
    pub rtp: u32,
}

impl SenderClock {
    /// The sender's wall-clock time of RTP timestamp `ts` at `clock_hz`, in seconds since
    /// 1900 (what a receiver synchronising streams computes).
    pub fn wall_seconds(&self, ts: u32, clock_hz: u32) -> f64 {
        let ntp = (self.ntp >> 32) as f64 + (self.ntp & 0xffff_ffff) as f64 / 4_294_967_296.0;
        ntp + f64::from(ts.wrapping_sub(self.rtp) as i32) / f64::from(clock_hz)
    }
}

type SenderClocks = Arc<std::sync::Mutex<std::collections::HashMap<u32, SenderClock>>>;

/// Interceptor that keeps the last sender report of every stream; passes everything through.
#[derive(Default)]
struct SenderReports {
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    clocks: SenderClocks,
}

impl rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()>
    for SenderReports
{
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;
    fn handle_read(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        if let rtc::interceptor::Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                if let Some(sr) = p
                    .as_any()
                    .downcast_ref::<rtc::rtcp::sender_report::SenderReport>()
                {
                    self.clocks.lock().unwrap().insert(
                        sr.ssrc,
                        SenderClock {
                            ntp: sr.ntp_time,
                            rtp: sr.rtp_time,
                        },
                    );
                }
            }
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<rtc::interceptor::TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<rtc::interceptor::TaggedPacket> {
        self.write.pop_front()
    }
}

impl rtc::interceptor::Interceptor for SenderReports {
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}

/// Errors of the headless client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error("{0}")]
    Protocol(String),
}

enum Event {
    State(RTCPeerConnectionState),
    Ice(RTCIceConnectionState),
    Gathered,
    Track(Arc<dyn TrackRemote>, RtpCodecKind),
}

struct Handler(mpsc::UnboundedSender<Event>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        if s == RTCIceGatheringState::Complete {
            let _ = self.0.send(Event::Gathered);
        }
    }
    async fn on_connection_state_change(&self, s: RTCPeerConnectionState) {
        let _ = self.0.send(Event::State(s));
    }
    async fn on_ice_connection_state_change(&self, s: RTCIceConnectionState) {
        let _ = self.0.send(Event::Ice(s));
    }
    async fn on_track(&self, t: Arc<dyn TrackRemote>) {
        let kind = t.kind().await;
        let _ = self.0.send(Event::Track(t, kind));
    }
}

/// Receive-side counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientCounters {
    pub packets: u64,
    pub bytes: u64,
    pub frames: u64,
    /// Sequence-number gaps seen (each may be several packets).
    pub gaps: u64,
    pub lost_packets: u64,
    /// Packets that arrived after their hole was given up on, or twice; ignored.
    pub late_packets: u64,
    /// Packets that filled a hole in time (NACKed and retransmitted, or reordered).
    pub repaired_packets: u64,
    /// NACKs sent, one per sequence number and time.
    pub nacked_packets: u64,
    pub frames_dropped: u64,
    /// Frames the depacketizer found broken (a fragment without its start, a frame that
    /// ends inside a unit).
    pub broken_frames: u64,
    /// Packets carrying the negotiated playout-delay extension, and the last value seen
    /// (min, max in 10 ms units).
    pub playout_delay_packets: u64,
    pub playout_delay: Option<(u16, u16)>,
}

/// What the headless client offers.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Offer the playout-delay header extension for video, as Chromium does.
    pub playout_delay: bool,
    /// Video codecs offered, in this order (each with our payload type and fmtp).
    pub codecs: Vec<Codec>,
    /// STUN/TURN servers to gather server-reflexive and relay candidates from.
    pub ice_servers: Vec<RTCIceServer>,
    /// Offer to receive sound (Opus), as the browser does.
    pub audio: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            playout_delay: true,
            codecs: vec![Codec::H264],
            ice_servers: Vec::new(),
            audio: false,
        }
    }
}

/// A headless viewer.
pub struct ViewerClient {
    pc: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<Event>,
    frames: Option<mpsc::Receiver<ReceivedFrame>>,
    audio: Option<mpsc::Receiver<ReceivedAudio>>,
    clocks: SenderClocks,
    counters: Arc<std::sync::Mutex<ClientCounters>>,
    pub input: Arc<dyn DataChannel>,
    state: RTCPeerConnectionState,
    /// The playout-delay extension id the answer negotiated (0: none).
    playout_delay_id: Arc<AtomicU8>,
    /// The codec of the answer (H.264 until one is accepted).
    codec: Arc<std::sync::Mutex<Codec>>,
    /// What the connection went through, for [`ViewerClient::why_no_video`].
    progress: diagnose::Progress,
}

impl ViewerClient {
    /// Builds the peer connection and returns the client with its complete (non-trickle)
    /// offer.
    pub async fn new(udp_addrs: Vec<String>) -> Result<(ViewerClient, String), ClientError> {
        Self::with_options(udp_addrs, ClientOptions::default()).await
    }

    /// [`ViewerClient::new`] with a choice of what is offered.
    pub async fn with_options(
        udp_addrs: Vec<String>,
        options: ClientOptions,
    ) -> Result<(ViewerClient, String), ClientError> {
        let mut media = MediaEngine::default();
        for &c in &options.codecs {
            let mut rtp_codec =
                crate::viewer::codecs::rtp_codec(c, crate::viewer::codecs::default_fmtp(c));
            // NACK, PLI and transport-cc come from the interceptors below.
            rtp_codec.rtcp_feedback.clear();
            let (pt, rtx_pt) = crate::viewer::codecs::payload_types(c);
            media.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec,
                    payload_type: pt,
                },
                RtpCodecKind::Video,
            )?;
            // Retransmissions (RFC 4588) arrive on their own SSRC; the stack puts them back
            // into the media stream with their original sequence numbers.
            media.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
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
        }
        if options.audio {
            media.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: crate::viewer::codecs::opus_codec(),
                    payload_type: crate::viewer::codecs::OPUS_PAYLOAD_TYPE,
                },
                RtpCodecKind::Audio,
            )?;
        }
        if options.playout_delay {
            media.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: crate::rtp::PLAYOUT_DELAY_URI.into(),
                },
                RtpCodecKind::Video,
                None,
            )?;
        }
        let clocks = SenderClocks::default();
        let registry = client_interceptors(&mut media)?.with(
            rtc::interceptor::Slot::from(14_500),
            SenderReports {
                clocks: clocks.clone(),
                ..SenderReports::default()
            },
        );
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(options.ice_servers.clone())
            .build();
        let loopback = udp_addrs.iter().any(|a| a.starts_with("127."));
        let (tx, mut events) = mpsc::unbounded_channel();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                    .with_include_loopback_candidate(loopback)
                    .build(),
            )
            .with_handler(Arc::new(Handler(tx)))
            .with_udp_addrs(udp_addrs)
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        pc.add_transceiver_from_kind(
            RtpCodecKind::Video,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await?;
        if options.audio {
            pc.add_transceiver_from_kind(
                RtpCodecKind::Audio,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await?;
        }
        let input = pc.create_data_channel("input", None).await?;
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
            if matches!(ev, Event::Gathered) {
                break;
            }
        }
        let sdp = pc
            .local_description()
            .await
            .ok_or_else(|| ClientError::Protocol("no local description".into()))?
            .sdp;
        Ok((
            ViewerClient {
                pc,
                events,
                frames: None,
                audio: None,
                clocks,
                counters: Arc::default(),
                input,
                state: RTCPeerConnectionState::New,
                playout_delay_id: Arc::default(),
                codec: Arc::new(std::sync::Mutex::new(Codec::H264)),
                progress: diagnose::Progress::new(&sdp, options.codecs),
            },
            sdp,
        ))
    }

    /// Applies the server's answer.
    pub async fn accept_answer(&self, sdp: String) -> Result<(), ClientError> {
        let id = extmap_id(&sdp, crate::rtp::PLAYOUT_DELAY_URI).unwrap_or(0);
        self.playout_delay_id.store(id, Ordering::Relaxed);
        let codec = self.progress.answer(&sdp)?;
        *self.codec.lock().unwrap() = codec;
        let answer = RTCSessionDescription::answer(sdp)?;
        self.pc.set_remote_description(answer).await?;
        Ok(())
    }

    pub fn counters(&self) -> ClientCounters {
        *self.counters.lock().unwrap()
    }

    pub fn state(&self) -> RTCPeerConnectionState {
        self.state
    }

    /// The video codec of the accepted answer.
    pub fn codec(&self) -> Codec {
        *self.codec.lock().unwrap()
    }

    /// Why no frame came (yet), in one line: ICE (with the candidates of both sides), DTLS,
    /// no video track, or a track with nothing decodable. For a caller whose
    /// [`ViewerClient::next_frame`] gave `None` before any frame.
    pub fn why_no_video(&self) -> String {
        self.progress.explain(self.state, self.counters())
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::State(s) => {
                self.state = s;
                self.progress.peer_state(s);
            }
            Event::Ice(s) => self.progress.ice_state(s),
            Event::Gathered => {}
            Event::Track(track, RtpCodecKind::Audio) => {
                let (tx, rx) = mpsc::channel(256);
                self.audio = Some(rx);
                tokio::spawn(receive_audio(track, tx));
            }
            Event::Track(track, _) => {
                self.progress.track();
                let (tx, rx) = mpsc::channel(64);
                self.frames = Some(rx);
                let counters = self.counters.clone();
                let ext = self.playout_delay_id.load(Ordering::Relaxed);
                tokio::spawn(receive_track(track, tx, counters, ext, self.codec()));
            }
        }
    }

    /// The next complete access unit, or `None` after `timeout` or when the connection ends.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<ReceivedFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(rx) = self.frames.as_mut() {
                tokio::select! {
                    f = rx.recv() => return f,
                    ev = self.events.recv() => match ev { Some(ev) => self.handle(ev), None => return None },
                    _ = tokio::time::sleep_until(deadline) => return None,
                }
            } else {
                match tokio::time::timeout_at(deadline, self.events.recv()).await {
                    Ok(Some(ev)) => self.handle(ev),
                    _ => return None,
                }
            }
            if matches!(
                self.state,
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
            ) && self.frames.is_none()
            {
                return None;
            }
        }
    }

    /// The last sender report of RTP stream `ssrc`, once one has arrived.
    pub fn sender_report(&self, ssrc: u32) -> Option<SenderClock> {
        self.clocks.lock().unwrap().get(&ssrc).copied()
    }

    /// The next video frame or audio packet, whichever comes first; `None` after `timeout`
    /// or when the connection ends.
    pub async fn next_media(&mut self, timeout: Duration) -> Option<Media> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ev = tokio::select! {
                f = async { self.frames.as_mut().expect("guarded").recv().await }, if self.frames.is_some() => {
                    return f.map(Media::Frame);
                }
                a = async { self.audio.as_mut().expect("guarded").recv().await }, if self.audio.is_some() => {
                    return a.map(Media::Audio);
                }
                ev = self.events.recv() => ev,
                _ = tokio::time::sleep_until(deadline) => return None,
            };
            match ev {
                Some(ev) => self.handle(ev),
                None => return None,
            }
        }
    }

    /// The next audio packet, or `None` after `timeout` or when the connection ends. Video
    /// frames that arrive meanwhile are dropped (a caller reads one or the other).
    pub async fn next_audio(&mut self, timeout: Duration) -> Option<ReceivedAudio> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_media(left).await? {
                Media::Audio(a) => return Some(a),
                Media::Frame(_) => {}
            }
        }
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

async fn receive_audio(track: Arc<dyn TrackRemote>, tx: mpsc::Sender<ReceivedAudio>) {
    loop {
        match track.poll().await {
            None | Some(TrackRemoteEvent::OnEnded | TrackRemoteEvent::OnError) => break,
            Some(TrackRemoteEvent::OnRtpPacket(pkt)) => {
                let a = ReceivedAudio {
                    payload: pkt.payload,
                    rtp_timestamp: pkt.header.timestamp,
                    ssrc: pkt.header.ssrc,
                    sequence: pkt.header.sequence_number,
                    marker: pkt.header.marker,
                    received_at: Instant::now(),
                };
                // A reader that is not reading audio: drop, never block the track.
                let _ = tx.try_send(a);
            }
            Some(_) => {}
        }
    }
}

/// How long the client waits for a missing packet (its NACK and the retransmission) before it
/// gives the frame up and asks for a keyframe: a few round trips of an impaired link.
pub const REORDER_WAIT: Duration = Duration::from_millis(200);

/// The receive side's interceptors: transport-wide CC feedback for the sender's estimator and
/// receiver reports. NACKs come from the reorder buffer ([`reorder::Reorder::nacks`]), which
/// knows what is still missing; `nack` and `nack pli` are offered for them.
fn client_interceptors(media: &mut MediaEngine) -> Result<Registry, ClientError> {
    use rtc::peer_connection::configuration::interceptor_registry::{
        configure_rtcp_reports, configure_twcc_receiver_only,
    };
    for parameter in ["", "pli"] {
        media.register_feedback(
            rtc::rtp_transceiver::rtp_sender::RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    let registry = configure_twcc_receiver_only(Registry::new(), media)
        .map_err(|e| ClientError::Protocol(format!("transport-cc: {e}")))?;
    Ok(configure_rtcp_reports(registry))
}

/// Access units from packets in sequence order (after the reorder buffer).
struct Assembler {
    codec: Codec,
    depack: Box<dyn crate::rtp::Depacketizer + Send>,
    au: Bytes,
    au_ts: Option<u32>,
    au_packets: usize,
    au_bytes: usize,
    /// After a hole the picture is broken until a keyframe received whole. It starts broken.
    broken: bool,
    /// A hole was seen inside the access unit being assembled.
    au_gap: bool,
    /// A hole right before the next packet.
    gap_pending: bool,
}

enum Assembled {
    Frame(ReceivedFrame),
    /// A frame dropped because the picture is broken: ask for a keyframe.
    Dropped,
    Nothing,
}

impl Assembler {
    fn packet(
        &mut self,
        pkt: rtc::rtp::packet::Packet,
        counters: &std::sync::Mutex<ClientCounters>,
    ) -> Assembled {
        let gap_here = std::mem::take(&mut self.gap_pending);
        if self.au_ts != Some(pkt.header.timestamp) || gap_here {
            self.depack.reset();
        }
        if self.au_ts != Some(pkt.header.timestamp) {
            self.au_packets = 0;
            self.au_bytes = 0;
            self.au_ts = Some(pkt.header.timestamp);
            self.au_gap = false;
        }
        self.au_gap |= gap_here;
        self.au_packets += 1;
        self.au_bytes += pkt.payload.len();
        match self.depack.push(&pkt.payload, pkt.header.marker) {
            Ok(Some(frame)) => self.au = frame,
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "broken frame");
                counters.lock().unwrap().broken_frames += 1;
                self.au_gap = true;
                self.depack.reset();
            }
        }
        if !pkt.header.marker {
            return Assembled::Nothing;
        }
        let frame = ReceivedFrame {
            codec: self.codec,
            data: std::mem::take(&mut self.au),
            rtp_timestamp: pkt.header.timestamp,
            ssrc: pkt.header.ssrc,
            received_at: Instant::now(),
            packets: self.au_packets,
            bytes: self.au_bytes,
        };
        self.au_ts = None;
        if self.au_gap {
            self.broken = true;
        }
        if self.broken {
            // Only a keyframe received whole repairs the picture.
            if !self.au_gap && codec::bitstream::is_decodable_keyframe(self.codec, &frame.data) {
                self.broken = false;
            } else {
                counters.lock().unwrap().frames_dropped += 1;
                return Assembled::Dropped;
            }
        }
        counters.lock().unwrap().frames += 1;
        Assembled::Frame(frame)
    }
}

async fn receive_track(
    track: Arc<dyn TrackRemote>,
    tx: mpsc::Sender<ReceivedFrame>,
    counters: Arc<std::sync::Mutex<ClientCounters>>,
    playout_delay_id: u8,
    codec: Codec,
) {
    let media_ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let mut asm = Assembler {
        codec,
        depack: crate::rtp::depacketizer_for(codec),
        au: Bytes::new(),
        au_ts: None,
        au_packets: 0,
        au_bytes: 0,
        broken: true,
        au_gap: false,
        gap_pending: false,
    };
    let mut reorder = reorder::Reorder::new(REORDER_WAIT);
    let mut last_pli = Instant::now() - Duration::from_secs(1);
    loop {
        let deadline = match (reorder.deadline(), reorder.nack_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let ev = tokio::select! {
            ev = track.poll() => ev,
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            } => None.or(Some(TrackRemoteEvent::OnMute)),
        };
        let out = match ev {
            None | Some(TrackRemoteEvent::OnEnded | TrackRemoteEvent::OnError) => break,
            Some(TrackRemoteEvent::OnRtpPacket(pkt)) => {
                let mut c = counters.lock().unwrap();
                c.packets += 1;
                c.bytes += pkt.payload.len() as u64;
                if playout_delay_id != 0 {
                    if let Some(b) = pkt.header.get_extension(playout_delay_id) {
                        if b.len() == 3 {
                            c.playout_delay_packets += 1;
                            c.playout_delay = Some((
                                u16::from(b[0]) << 4 | u16::from(b[1]) >> 4,
                                u16::from(b[1] & 0x0f) << 8 | u16::from(b[2]),
                            ));
                        }
                    }
                }
                drop(c);
                let seq = pkt.header.sequence_number;
                reorder.push(Instant::now(), seq, pkt)
            }
            Some(_) => reorder.poll(Instant::now()),
        };
        let nacks = reorder.nacks(Instant::now());
        if !nacks.is_empty() {
            let nack = TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc,
                nacks: nack_pairs_from_sequence_numbers(&nacks),
            };
            let _ = track.write_rtcp(vec![Box::new(nack)]).await;
        }
        {
            let mut c = counters.lock().unwrap();
            (c.late_packets, c.repaired_packets, c.nacked_packets) = (
                reorder.counters.late,
                reorder.counters.repaired,
                reorder.counters.nacked,
            );
        }
        let mut want_keyframe = false;
        for o in out {
            match o {
                reorder::Out::Gap(n) => {
                    let mut c = counters.lock().unwrap();
                    c.gaps += 1;
                    c.lost_packets += n;
                    asm.gap_pending = true;
                }
                reorder::Out::Packet(pkt) => match asm.packet(pkt, &counters) {
                    Assembled::Frame(f) => {
                        if tx.send(f).await.is_err() {
                            return;
                        }
                    }
                    Assembled::Dropped => want_keyframe = true,
                    Assembled::Nothing => {}
                },
            }
        }
        if want_keyframe && last_pli.elapsed() > Duration::from_millis(200) {
            last_pli = Instant::now();
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            let _ = track.write_rtcp(vec![Box::new(pli)]).await;
        }
    }
}

/// The id of the `a=extmap` line for `uri` in `sdp` (the first one), if any.
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("a=extmap:")?;
        let (id, tail) = rest.split_once(' ')?;
        let id = id.split('/').next()?.parse().ok()?;
        (tail.split_whitespace().next()? == uri).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::SenderClock;

    #[test]
    fn sender_clocks_place_timestamps_on_the_wall_clock() {
        // 100 s + 0.5 s since 1900 at RTP 1000.
        let c = SenderClock {
            ntp: (100u64 << 32) | (1u64 << 31),
            rtp: 1000,
        };
        assert!((c.wall_seconds(1000 + 48_000, 48_000) - 101.5).abs() < 1e-9);
        assert!((c.wall_seconds(1000u32.wrapping_sub(9_000), 90_000) - 100.4).abs() < 1e-9);
        // Across the 32-bit wrap.
        let w = SenderClock {
            ntp: 100u64 << 32,
            rtp: u32::MAX - 99,
        };
        assert!((w.wall_seconds(380, 48_000) - 100.01).abs() < 1e-9);
    }
    use super::extmap_id;

    #[test]
    fn finds_extmap_ids() {
        let sdp = "v=0\r\na=extmap:3 urn:x\r\na=extmap:12/sendonly http://y z\r\n";
        assert_eq!(extmap_id(sdp, "urn:x"), Some(3));
        assert_eq!(extmap_id(sdp, "http://y"), Some(12));
        assert_eq!(extmap_id(sdp, "urn:none"), None);
    }
}
