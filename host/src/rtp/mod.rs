//! Turns encoded frames into RTP packets for one viewer: the codec's payloads
//! ([`payload`]) under headers, timestamps and extensions common to every codec.
//!
//! The crate's `TrackLocalStaticSample` advances the RTP timestamp by the *previous* sample's
//! duration, which is unknown in advance on a damage-driven stream (frames come when the
//! screen changes, not on a tick). Here the RTP timestamp is derived from the frame's capture
//! instant instead (90 kHz since the viewer's first frame), so the browser's jitter buffer sees
//! true capture spacing. Pure logic, no I/O: unit-tested below.
//!
//! Header extensions: the packetizer puts the playout-delay extension on every packet when the
//! viewer's answer negotiated it ([`RtpPacketizer::set_playout_delay`], with the negotiated
//! id). The stack rejects a packet carrying an id that was not negotiated, so nothing is added
//! unless asked. Likewise abs-capture-time ([`RtpPacketizer::set_abs_capture_time`]) on the
//! first packet of every frame: the frame's capture instant on the sender's NTP clock, so a
//! browser can report `captureTime` (requestVideoFrameCallback) for a glass-to-glass estimate.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use codec::Codec;
use rtc::rtp::extension::playout_delay_extension::PlayoutDelayExtension;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::Marshal;

pub mod av1;
pub mod h26x;
pub mod opus;
pub mod payload;
pub mod vp8;
pub mod vp9;

pub use payload::{
    depacketizer_for, payloader_for, Depacketizer, FrameInfo, PayloadError, Payloader,
};

/// The playout-delay RTP header extension (Chromium offers it for video).
pub const PLAYOUT_DELAY_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
/// The absolute capture time RTP header extension (Chromium offers it when the page asks, with
/// `RTCRtpTransceiver.setHeaderExtensionsToNegotiate`).
pub const ABS_CAPTURE_TIME_URI: &str =
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// A wall-clock instant as a 64-bit NTP timestamp (UQ32.32 seconds since 1900).
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET_S;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The abs-capture-time payload: the capture NTP timestamp and an estimated capture clock
/// offset of 0 (Q32.32; the capturer is the sender, so their clocks are one), 16 bytes.
pub fn abs_capture_time_bytes(capture_ntp: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&capture_ntp.to_be_bytes());
    out
}

/// RTP payload budget per packet: 1200 bytes minus the 12-byte fixed header (as browsers do).
pub const RTP_MTU: usize = 1200;
const VIDEO_CLOCK_HZ: u64 = 90_000;

/// A playout-delay request: the receiver should hold frames between `min_ms` and `max_ms`
/// before showing them (both rounded down to the extension's 10 ms units). 0/0 asks a browser
/// to render each frame as soon as it is decoded, with no jitter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlayoutDelay {
    pub min_ms: u32,
    pub max_ms: u32,
}

impl PlayoutDelay {
    /// The 3 extension bytes: 12-bit min then 12-bit max, in 10 ms units (saturating at the
    /// largest value, ≈ 41 s).
    pub fn to_bytes(self) -> [u8; 3] {
        let unit = |ms: u32| (ms / 10).min(0x0FFF) as u16;
        let mut out = [0u8; 3];
        PlayoutDelayExtension::new(unit(self.min_ms), unit(self.max_ms))
            .marshal_to(&mut out)
            .expect("3 bytes, 12-bit values");
        out
    }

    /// Parses `off` (none), `MS` (min = max) or `MIN-MAX` in milliseconds; `None` for `off`.
    pub fn parse(text: &str) -> Result<Option<PlayoutDelay>, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("playout delay {text:?}: want off, MS or MIN-MAX (ms)"))
        };
        let (min_ms, max_ms) = match t.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(t)?, num(t)?),
        };
        if min_ms > max_ms {
            return Err(format!("playout delay {text:?}: min is above max"));
        }
        Ok(Some(PlayoutDelay { min_ms, max_ms }))
    }
}

/// Why a frame could not be turned into packets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PacketizeError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("rtp header: {0}")]
    Header(#[from] rtc::shared::error::Error),
}

/// Packetizes one codec's encoded frames for one RTP stream.
#[derive(Debug)]
pub struct RtpPacketizer {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp_base: u32,
    epoch: Option<Instant>,
    payloader: Box<dyn Payloader>,
    /// Negotiated extension id and payload of the playout-delay extension, if any.
    playout_delay: Option<(u8, Bytes)>,
    /// Negotiated abs-capture-time id, and one instant on both clocks to map capture
    /// instants onto the wall clock without following later wall-clock steps.
    abs_capture_time: Option<(u8, Instant, SystemTime)>,
}

impl RtpPacketizer {
    /// `first_sequence` and `timestamp_base` should be random (RFC 3550 §5.1).
    pub fn new(
        codec: Codec,
        ssrc: u32,
        payload_type: u8,
        first_sequence: u16,
        timestamp_base: u32,
    ) -> Self {
        RtpPacketizer {
            ssrc,
            payload_type,
            sequence: first_sequence,
            timestamp_base,
            epoch: None,
            payloader: payloader_for(codec),
            playout_delay: None,
            abs_capture_time: None,
        }
    }

    /// Puts abs-capture-time, with the negotiated id (1–14), on the first packet of every
    /// frame from now on; `anchor` is one moment read on both clocks (`Instant::now()`,
    /// `SystemTime::now()`).
    pub fn set_abs_capture_time(&mut self, id: u8, anchor: (Instant, SystemTime)) {
        self.abs_capture_time = Some((id, anchor.0, anchor.1));
    }

    /// The wall-clock time of `captured_at`, by the anchor of [`Self::set_abs_capture_time`].
    fn wall_time(anchor: (Instant, SystemTime), captured_at: Instant) -> SystemTime {
        let (i, w) = anchor;
        if captured_at >= i {
            w + (captured_at - i)
        } else {
            w - (i - captured_at)
        }
    }

    /// Puts the playout-delay extension, with the id the answer negotiated (1–14, one-byte
    /// form), on every packet from now on. Every packet, not just keyframes: the value is
    /// sticky in the receiver, but a lost packet must not leave it at the default.
    pub fn set_playout_delay(&mut self, id: u8, delay: PlayoutDelay) {
        self.playout_delay = Some((id, Bytes::copy_from_slice(&delay.to_bytes())));
    }

    /// Fixes the instant RTP timestamps count from (else the first frame's capture) and
    /// returns its timestamp: with the wall-clock time of `at`, a receiver can turn any
    /// frame's RTP timestamp into its capture time (the `clock` input message).
    pub fn set_epoch(&mut self, at: Instant) -> u32 {
        self.epoch = Some(at);
        self.timestamp_base
    }

    /// RTP timestamp of a frame captured at `captured_at`.
    pub fn timestamp_for(&mut self, captured_at: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(captured_at);
        let ticks = captured_at.saturating_duration_since(epoch).as_micros() as u64
            * VIDEO_CLOCK_HZ
            / 1_000_000;
        self.timestamp_base.wrapping_add(ticks as u32)
    }

    /// Splits one encoded frame into RTP packets; the last one carries the marker bit.
    pub fn packetize(
        &mut self,
        frame: &Bytes,
        info: FrameInfo,
        captured_at: Instant,
    ) -> Result<Vec<Packet>, PacketizeError> {
        let timestamp = self.timestamp_for(captured_at);
        // An extension block costs 4 bytes plus its elements padded to 4 (8 for playout-delay,
        // 20 more for abs-capture-time).
        let overhead = 12
            + match (
                self.playout_delay.is_some(),
                self.abs_capture_time.is_some(),
            ) {
                (false, false) => 0,
                (true, false) => 8,
                (false, true) => 20,
                (true, true) => 28,
            };
        let capture = self.abs_capture_time.map(|(id, i, w)| {
            let ntp = ntp_timestamp(Self::wall_time((i, w), captured_at));
            (id, Bytes::copy_from_slice(&abs_capture_time_bytes(ntp)))
        });
        let payloads = self.payloader.payload(RTP_MTU - overhead, frame, info)?;
        let n = payloads.len();
        let mut packets = Vec::with_capacity(n);
        for (i, payload) in payloads.into_iter().enumerate() {
            let sequence_number = self.sequence;
            self.sequence = self.sequence.wrapping_add(1);
            let mut header = Header {
                version: 2,
                marker: i + 1 == n,
                payload_type: self.payload_type,
                sequence_number,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            };
            if let Some((id, data)) = &self.playout_delay {
                header.set_extension(*id, data.clone())?;
            }
            if let (0, Some((id, data))) = (i, &capture) {
                header.set_extension(*id, data.clone())?;
            }
            packets.push(Packet { header, payload });
        }
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl RtpPacketizer {
        fn packetize_h264(
            &mut self,
            au: &Bytes,
            at: Instant,
        ) -> Result<Vec<Packet>, PacketizeError> {
            let info = FrameInfo {
                keyframe: true,
                width: 64,
                height: 64,
            };
            self.packetize(au, info, at)
        }
    }

    fn au(nal_sizes: &[usize]) -> Bytes {
        let mut v = Vec::new();
        for (i, &n) in nal_sizes.iter().enumerate() {
            v.extend_from_slice(&[0, 0, 0, 1]);
            // IDR slice header byte, then filler
            v.push(if i == 0 { 0x65 } else { 0x41 });
            v.extend(std::iter::repeat_n(0xAB, n - 1));
        }
        Bytes::from(v)
    }

    #[test]
    fn big_frames_fragment_and_mark_the_last_packet() {
        let mut p = RtpPacketizer::new(Codec::H264, 7, 102, 65534, 1000);
        let t0 = Instant::now();
        let pkts = p.packetize_h264(&au(&[5000]), t0).unwrap();
        assert!(pkts.len() >= 5);
        assert!(pkts.iter().all(|p| p.payload.len() <= RTP_MTU - 12));
        assert_eq!(pkts.iter().filter(|p| p.header.marker).count(), 1);
        assert!(pkts.last().unwrap().header.marker);
        // sequence numbers are consecutive and wrap
        assert_eq!(pkts[0].header.sequence_number, 65534);
        assert_eq!(pkts[2].header.sequence_number, 0);
        assert!(pkts
            .iter()
            .all(|p| p.header.timestamp == 1000 && p.header.ssrc == 7));
    }

    #[test]
    fn playout_delay_bytes_are_two_12_bit_values_in_10ms_units() {
        let d = |min_ms, max_ms| PlayoutDelay { min_ms, max_ms }.to_bytes();
        assert_eq!(d(0, 0), [0, 0, 0]);
        // min 100 ms = 10 units (0x00A), max 1 s = 100 units (0x064)
        assert_eq!(d(100, 1000), [0x00, 0xA0, 0x64]);
        // 12 bits each: 0xABC / 0x123 units
        assert_eq!(d(0xABC * 10, 0x123 * 10), [0xAB, 0xC1, 0x23]);
        // too large saturates at 0xFFF units; sub-unit values round down
        assert_eq!(d(100_000, 9), [0xFF, 0xF0, 0x00]);
        assert_eq!(PlayoutDelay::parse("off"), Ok(None));
        assert_eq!(PlayoutDelay::parse("0"), Ok(Some(PlayoutDelay::default())));
        assert_eq!(
            PlayoutDelay::parse("0-100"),
            Ok(Some(PlayoutDelay {
                min_ms: 0,
                max_ms: 100
            }))
        );
        assert!(PlayoutDelay::parse("50-10").is_err());
        assert!(PlayoutDelay::parse("soon").is_err());
    }

    #[test]
    fn playout_delay_rides_on_every_packet_and_survives_marshalling() {
        use rtc::shared::marshal::{Marshal, Unmarshal};
        let mut p = RtpPacketizer::new(Codec::H264, 7, 102, 0, 0);
        let plain = p.packetize_h264(&au(&[3000]), Instant::now()).unwrap();
        assert!(plain.iter().all(|p| !p.header.extension));
        p.set_playout_delay(
            5,
            PlayoutDelay {
                min_ms: 0,
                max_ms: 0,
            },
        );
        let pkts = p.packetize_h264(&au(&[5000]), Instant::now()).unwrap();
        assert!(pkts.len() >= 5);
        for pkt in &pkts {
            let wire = pkt.marshal().unwrap();
            assert!(wire.len() <= RTP_MTU, "{} bytes on the wire", wire.len());
            // one-byte form: 0xBEDE, length 1 word, then id 5 / len-1 = 2, 3 bytes of zeros
            assert_eq!(&wire[12..20], &[0xBE, 0xDE, 0, 1, 0x52, 0, 0, 0]);
            let back = Packet::unmarshal(&mut wire.clone()).unwrap();
            assert_eq!(
                back.header.get_extension(5).as_deref(),
                Some(&[0u8, 0, 0][..])
            );
            assert_eq!(back.payload, pkt.payload);
        }
    }

    #[test]
    fn ntp_timestamps_count_from_1900_in_32_32() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH), NTP_UNIX_OFFSET_S << 32);
        let t = UNIX_EPOCH + Duration::from_millis(1500);
        assert_eq!(
            ntp_timestamp(t),
            ((NTP_UNIX_OFFSET_S + 1) << 32) | 0x8000_0000
        );
        let b = abs_capture_time_bytes(0x0102_0304_0506_0708);
        assert_eq!(&b[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[8..], &[0; 8]);
    }

    #[test]
    fn abs_capture_time_rides_on_the_first_packet_of_each_frame() {
        use rtc::shared::marshal::{Marshal, Unmarshal};
        let mut p = RtpPacketizer::new(Codec::H264, 7, 102, 0, 0);
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        p.set_playout_delay(3, PlayoutDelay::default());
        p.set_abs_capture_time(9, (t0, wall));
        let pkts = p
            .packetize_h264(&au(&[5000]), t0 + Duration::from_millis(250))
            .unwrap();
        for (i, pkt) in pkts.iter().enumerate() {
            let wire = pkt.marshal().unwrap();
            assert!(wire.len() <= RTP_MTU, "{} bytes on the wire", wire.len());
            let back = Packet::unmarshal(&mut wire.clone()).unwrap();
            assert_eq!(
                back.header.get_extension(3).as_deref(),
                Some(&[0u8, 0, 0][..])
            );
            let abs = back.header.get_extension(9);
            if i == 0 {
                let want = ntp_timestamp(wall + Duration::from_millis(250));
                assert_eq!(abs.as_deref(), Some(&abs_capture_time_bytes(want)[..]));
            } else {
                assert_eq!(abs, None);
            }
            assert_eq!(back.payload, pkt.payload);
        }
    }

    #[test]
    fn a_set_epoch_anchors_timestamps() {
        let mut p = RtpPacketizer::new(Codec::H264, 1, 96, 0, 4_000_000_000);
        let t0 = Instant::now();
        assert_eq!(p.set_epoch(t0), 4_000_000_000);
        assert_eq!(
            p.timestamp_for(t0 + Duration::from_millis(1000)),
            4_000_000_000u32.wrapping_add(90_000)
        );
        // A frame captured before the epoch cannot go back in time.
        assert_eq!(
            p.timestamp_for(t0 - Duration::from_millis(5)),
            4_000_000_000
        );
    }

    #[test]
    fn timestamps_follow_capture_time_at_90khz() {
        let mut p = RtpPacketizer::new(Codec::H264, 1, 96, 0, u32::MAX - 100);
        let t0 = Instant::now();
        let a = p.packetize_h264(&au(&[10]), t0).unwrap();
        let b = p
            .packetize_h264(&au(&[10]), t0 + Duration::from_millis(50))
            .unwrap();
        let c = p
            .packetize_h264(&au(&[10]), t0 + Duration::from_millis(51))
            .unwrap();
        let ts = |v: &Vec<Packet>| v[0].header.timestamp;
        assert_eq!(ts(&b).wrapping_sub(ts(&a)), 4500);
        assert_eq!(ts(&c).wrapping_sub(ts(&b)), 90);
    }
}
