//! VP8 payloads (RFC 7741).
//!
//! Sent: the payload descriptor with X=1 and I=1 and a 15-bit picture ID (M=1), no L/T/K;
//! S=1 and PID=0 on the first packet of each frame, which is one partition stream as libvpx
//! writes it. Received: any descriptor the RFC allows; a frame must start with S=1, PID=0 and
//! keep one picture ID throughout, else it is [`PayloadError::Broken`].

use bytes::{BufMut, Bytes, BytesMut};
use codec::Codec;

use super::payload::{Depacketizer, FrameInfo, PayloadError, Payloader};

const DESCRIPTOR: usize = 4;

/// VP8 payloader.
#[derive(Debug)]
pub struct Vp8Payloader {
    picture_id: u16,
}

impl Vp8Payloader {
    pub fn new(first_picture_id: u16) -> Self {
        Vp8Payloader {
            picture_id: first_picture_id & 0x7fff,
        }
    }
}

impl Payloader for Vp8Payloader {
    fn payload(
        &mut self,
        mtu: usize,
        frame: &Bytes,
        _info: FrameInfo,
    ) -> Result<Vec<Bytes>, PayloadError> {
        if mtu <= DESCRIPTOR {
            return Err(PayloadError::MtuTooSmall(mtu));
        }
        if frame.is_empty() {
            return Err(PayloadError::MalformedFrame {
                codec: Codec::Vp8,
                why: "an empty frame".into(),
            });
        }
        let id = self.picture_id;
        self.picture_id = (id + 1) & 0x7fff;
        Ok(frame
            .chunks(mtu - DESCRIPTOR)
            .enumerate()
            .map(|(i, part)| {
                let mut b = BytesMut::with_capacity(DESCRIPTOR + part.len());
                // X | S (first packet) ; I ; M + 15-bit picture ID.
                b.put_u8(0x80 | if i == 0 { 0x10 } else { 0 });
                b.put_u8(0x80);
                b.put_u16(0x8000 | id);
                b.put_slice(part);
                b.freeze()
            })
            .collect())
    }
}

/// The parsed descriptor of one VP8 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Descriptor {
    start: bool,
    partition: u8,
    picture_id: Option<u16>,
    len: usize,
}

fn descriptor(p: &[u8]) -> Option<Descriptor> {
    let b0 = *p.first()?;
    let mut at = 1;
    let mut picture_id = None;
    if b0 & 0x80 != 0 {
        let x = *p.get(at)?;
        at += 1;
        if x & 0x80 != 0 {
            let m = *p.get(at)?;
            if m & 0x80 != 0 {
                picture_id = Some(u16::from(m & 0x7f) << 8 | u16::from(*p.get(at + 1)?));
                at += 2;
            } else {
                picture_id = Some(u16::from(m));
                at += 1;
            }
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID/Y/KEYIDX
        }
    }
    (at <= p.len()).then_some(Descriptor {
        start: b0 & 0x10 != 0,
        partition: b0 & 0x0f,
        picture_id,
        len: at,
    })
}

/// VP8 depacketizer.
#[derive(Debug, Default)]
pub struct Vp8Depacketizer {
    out: BytesMut,
    /// A frame is being assembled, with this picture ID (if the sender numbers them).
    current: Option<Option<u16>>,
}

impl Vp8Depacketizer {
    fn broken(&mut self, why: &str) -> PayloadError {
        self.reset();
        PayloadError::Broken {
            codec: Codec::Vp8,
            why: why.into(),
        }
    }
}

impl Depacketizer for Vp8Depacketizer {
    fn push(&mut self, p: &[u8], marker: bool) -> Result<Option<Bytes>, PayloadError> {
        let Some(d) = descriptor(p) else {
            return Err(self.broken("a truncated payload descriptor"));
        };
        match self.current {
            None if !(d.start && d.partition == 0) => {
                return Err(self.broken("a frame that does not start at partition 0"))
            }
            None => self.current = Some(d.picture_id),
            Some(_) if d.start && d.partition == 0 => {
                return Err(self.broken("a new frame inside a frame"))
            }
            Some(id) if id != d.picture_id => {
                return Err(self.broken("the picture ID changed inside a frame"))
            }
            Some(_) => {}
        }
        self.out.put_slice(&p[d.len..]);
        if !marker {
            return Ok(None);
        }
        self.current = None;
        if self.out.is_empty() {
            return Err(self.broken("an empty frame"));
        }
        Ok(Some(std::mem::take(&mut self.out).freeze()))
    }

    fn reset(&mut self) {
        self.out.clear();
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: FrameInfo = FrameInfo {
        keyframe: true,
        width: 64,
        height: 64,
    };

    #[test]
    fn descriptors_follow_rfc_7741() {
        let mut p = Vp8Payloader::new(0x1234);
        let frame = Bytes::from(vec![7u8; 25]);
        let out = p.payload(14, &frame, INFO).unwrap();
        assert_eq!(out.len(), 3);
        // X=1 S=1 PID=0; I=1; M=1 and picture ID 0x1234.
        assert_eq!(&out[0][..4], &[0x90, 0x80, 0x92, 0x34]);
        assert_eq!(&out[1][..4], &[0x80, 0x80, 0x92, 0x34]);
        assert!(out.iter().all(|b| b.len() <= 14));
        // The next frame has the next ID; 0x7fff wraps to 0.
        assert_eq!(
            &p.payload(14, &frame, INFO).unwrap()[0][2..4],
            &[0x92, 0x35]
        );
        let mut w = Vp8Payloader::new(0x7fff);
        w.payload(100, &frame, INFO).unwrap();
        assert_eq!(
            &w.payload(100, &frame, INFO).unwrap()[0][2..4],
            &[0x80, 0x00]
        );
        // RFC 7741 §4.2: a 7-bit picture ID, TL0PICIDX and TID/KEYIDX are read too.
        let d = descriptor(&[0x90, 0xf0, 0x11, 0x22, 0x33, 0xaa]).unwrap();
        assert_eq!((d.picture_id, d.len, d.start), (Some(0x11), 5, true));
        assert_eq!(descriptor(&[0x80, 0x80, 0x92]), None);
    }

    #[test]
    fn round_trips_big_frames_and_refuses_broken_ones() {
        let frame: Bytes = (0..1_100_000u32).map(|i| (i % 253) as u8).collect();
        let out = Vp8Payloader::new(5).payload(1188, &frame, INFO).unwrap();
        let mut d = Vp8Depacketizer::default();
        let n = out.len();
        let mut got = None;
        for (i, p) in out.iter().enumerate() {
            got = d.push(p, i + 1 == n).unwrap();
        }
        assert_eq!(got.unwrap(), frame);
        // The first packet lost: a continuation cannot start a frame.
        assert!(d.push(&out[1], false).is_err());
        // A new frame's start inside a frame (its marker packet lost).
        d.push(&out[0], false).unwrap();
        assert!(d.push(&out[0], false).is_err());
        for junk in [&[][..], &[0x80], &[0x90, 0x80, 0x80]] {
            assert!(d.push(junk, true).is_err());
        }
    }
}
