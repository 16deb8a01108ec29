//! Opus over RTP (RFC 7587) for one viewer: one Opus packet per RTP packet, 48 kHz timestamps.
//!
//! Timestamps come from the session's audio timeline (the sample index of each packet's first
//! sample, see [`crate::audio::AudioPacket`]) placed on the viewer's capture clock: the same
//! `epoch` [`super::RtpPacketizer::set_epoch`] anchors the video's 90 kHz timestamps at, so a
//! sound and a picture captured at the same instant carry timestamps that the RTCP sender
//! reports map to the same wall-clock time (lip sync).
//!
//! DTX: packets of at most two bytes are the encoder's "nothing to send" and are not sent
//! (as libwebrtc does); the first packet after such a gap carries the marker bit (the start
//! of a talkspurt, RFC 3551 §4.1). Pure logic, no I/O.

use std::time::Instant;

use bytes::Bytes;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;

/// Opus's RTP clock.
pub const OPUS_CLOCK_HZ: u64 = 48_000;
/// An Opus packet this small carries no audio (DTX): not sent.
pub const DTX_MAX_BYTES: usize = 2;

/// Packetizes one viewer's Opus stream.
pub struct OpusPacketizer {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    /// The RTP timestamp of the epoch instant.
    base: u32,
    /// The session's sample index at the viewer's epoch (may be negative: audio started
    /// after the epoch).
    epoch_sample: i64,
    /// A DTX gap (or nothing yet) before the next packet sent.
    gap: bool,
}

impl OpusPacketizer {
    /// `epoch`: the viewer's capture-clock anchor (as given to the video packetizer);
    /// `audio_start`: the instant the session's sample index 0 was captured.
    pub fn new(
        ssrc: u32,
        payload_type: u8,
        sequence: u16,
        base: u32,
        epoch: Instant,
        audio_start: Instant,
    ) -> Self {
        let epoch_sample = if epoch >= audio_start {
            samples(epoch - audio_start) as i64
        } else {
            -(samples(audio_start - epoch) as i64)
        };
        OpusPacketizer {
            ssrc,
            payload_type,
            sequence,
            base,
            epoch_sample,
            gap: true,
        }
    }

    /// The RTP timestamp of session sample `sample`.
    pub fn timestamp(&self, sample: u64) -> u32 {
        self.base
            .wrapping_add((sample as i64).wrapping_sub(self.epoch_sample) as u32)
    }

    /// The RTP packet for an Opus packet whose first sample is `sample`; `None` for a DTX
    /// packet (not sent).
    pub fn packetize(&mut self, opus: &Bytes, sample: u64) -> Option<Packet> {
        if opus.len() <= DTX_MAX_BYTES {
            self.gap = true;
            return None;
        }
        let sequence_number = self.sequence;
        self.sequence = self.sequence.wrapping_add(1);
        let header = Header {
            version: 2,
            marker: std::mem::take(&mut self.gap),
            payload_type: self.payload_type,
            sequence_number,
            timestamp: self.timestamp(sample),
            ssrc: self.ssrc,
            ..Default::default()
        };
        Some(Packet {
            header,
            payload: opus.clone(),
        })
    }
}

/// 48 kHz samples in `d` (rounded down).
fn samples(d: std::time::Duration) -> u64 {
    (d.as_nanos() * u128::from(OPUS_CLOCK_HZ) / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_count_samples_from_the_epoch() {
        let start = Instant::now();
        let epoch = start + Duration::from_millis(100);
        let mut p = OpusPacketizer::new(7, 111, 65535, 1000, epoch, start);
        // Sample 4800 (100 ms after audio start) was captured at the epoch.
        let a = p.packetize(&Bytes::from_static(&[1, 2, 3]), 4800).unwrap();
        assert_eq!(a.header.timestamp, 1000);
        assert_eq!(a.header.sequence_number, 65535);
        assert!(a.header.marker, "the first packet starts a talkspurt");
        assert_eq!((a.header.ssrc, a.header.payload_type), (7, 111));
        let b = p
            .packetize(&Bytes::from_static(&[1, 2, 3]), 4800 + 480)
            .unwrap();
        assert_eq!(b.header.timestamp, 1480);
        assert_eq!(b.header.sequence_number, 0, "sequence numbers wrap");
        assert!(!b.header.marker);
    }

    #[test]
    fn audio_that_started_after_the_epoch_is_placed_later() {
        let epoch = Instant::now();
        let start = epoch + Duration::from_millis(50);
        let p = OpusPacketizer::new(1, 111, 0, u32::MAX, epoch, start);
        // 50 ms after the epoch: 2400 ticks, wrapping past u32::MAX.
        assert_eq!(p.timestamp(0), 2399);
    }

    #[test]
    fn dtx_packets_are_not_sent_and_the_next_one_is_marked() {
        let start = Instant::now();
        let mut p = OpusPacketizer::new(1, 111, 10, 0, start, start);
        assert!(p.packetize(&Bytes::from_static(&[1, 2, 3]), 0).is_some());
        assert!(p.packetize(&Bytes::from_static(&[8]), 480).is_none());
        assert!(p.packetize(&Bytes::from_static(&[8, 0]), 960).is_none());
        let next = p.packetize(&Bytes::from_static(&[1, 2, 3]), 1440).unwrap();
        assert!(next.header.marker);
        // Sequence numbers stay contiguous across the gap; timestamps keep time.
        assert_eq!(next.header.sequence_number, 11);
        assert_eq!(next.header.timestamp, 1440);
    }
}
