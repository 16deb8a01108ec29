//! Turns encoded access units into RTP packets for one viewer.
//!
//! The crate's `TrackLocalStaticSample` advances the RTP timestamp by the *previous* sample's
//! duration, which is unknown in advance on a damage-driven stream (frames come when the
//! screen changes, not on a tick). Here the RTP timestamp is derived from the frame's capture
//! instant instead (90 kHz since the viewer's first frame), so the browser's jitter buffer sees
//! true capture spacing. Pure logic, no I/O: unit-tested below.

use std::time::Instant;

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp::packetizer::Payloader;

/// What the host offers for H.264: constrained baseline, packetization mode 1. Chromium
/// decodes higher levels than the one announced, so 3.1 is announced for every size.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// RTP payload budget per packet: 1200 bytes minus the 12-byte fixed header (as browsers do).
pub const RTP_MTU: usize = 1200;
const VIDEO_CLOCK_HZ: u64 = 90_000;

/// Packetizes H.264 access units (Annex B) for one RTP stream.
#[derive(Debug)]
pub struct H264Packetizer {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp_base: u32,
    epoch: Option<Instant>,
    payloader: H264Payloader,
}

impl H264Packetizer {
    /// `first_sequence` and `timestamp_base` should be random (RFC 3550 §5.1).
    pub fn new(ssrc: u32, payload_type: u8, first_sequence: u16, timestamp_base: u32) -> Self {
        H264Packetizer {
            ssrc,
            payload_type,
            sequence: first_sequence,
            timestamp_base,
            epoch: None,
            payloader: H264Payloader::default(),
        }
    }

    /// RTP timestamp of a frame captured at `captured_at`.
    pub fn timestamp_for(&mut self, captured_at: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(captured_at);
        let ticks = captured_at.saturating_duration_since(epoch).as_micros() as u64
            * VIDEO_CLOCK_HZ
            / 1_000_000;
        self.timestamp_base.wrapping_add(ticks as u32)
    }

    /// Splits one access unit into RTP packets; the last one carries the marker bit.
    pub fn packetize(
        &mut self,
        access_unit: &Bytes,
        captured_at: Instant,
    ) -> Result<Vec<Packet>, rtc::shared::error::Error> {
        let timestamp = self.timestamp_for(captured_at);
        let payloads = self.payloader.payload(RTP_MTU - 12, access_unit)?;
        let n = payloads.len();
        Ok(payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let sequence_number = self.sequence;
                self.sequence = self.sequence.wrapping_add(1);
                Packet {
                    header: Header {
                        version: 2,
                        marker: i + 1 == n,
                        payload_type: self.payload_type,
                        sequence_number,
                        timestamp,
                        ssrc: self.ssrc,
                        ..Default::default()
                    },
                    payload,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let mut p = H264Packetizer::new(7, 102, 65534, 1000);
        let t0 = Instant::now();
        let pkts = p.packetize(&au(&[5000]), t0).unwrap();
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
    fn timestamps_follow_capture_time_at_90khz() {
        let mut p = H264Packetizer::new(1, 96, 0, u32::MAX - 100);
        let t0 = Instant::now();
        let a = p.packetize(&au(&[10]), t0).unwrap();
        let b = p
            .packetize(&au(&[10]), t0 + Duration::from_millis(50))
            .unwrap();
        let c = p
            .packetize(&au(&[10]), t0 + Duration::from_millis(51))
            .unwrap();
        let ts = |v: &Vec<Packet>| v[0].header.timestamp;
        assert_eq!(ts(&b).wrapping_sub(ts(&a)), 4500);
        assert_eq!(ts(&c).wrapping_sub(ts(&b)), 90);
    }
}
