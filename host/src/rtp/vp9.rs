//! VP9 payloads (RFC 9628).
//!
//! Sent in flexible mode (F=1) with a 15-bit picture ID (I=1, M=1) and no layer indices: a
//! key frame has P=0 and, on its first packet, a scalability structure (V=1) giving one
//! spatial layer and its size; every other frame has P=1 and one reference, P_DIFF=1 (the
//! previous picture), which is all libvpx's single-layer real-time stream needs for a
//! receiver to know when a frame is decodable. B marks a frame's first packet, E its last.
//!
//! Received: any descriptor the RFC allows (flexible or not, layer indices, up to three
//! P_DIFFs, a scalability structure with sizes and a picture group); a frame must start with
//! B=1, keep its picture ID and end with E=1 on the marker packet.

use bytes::{BufMut, Bytes, BytesMut};
use codec::Codec;

use super::payload::{Depacketizer, FrameInfo, PayloadError, Payloader};

/// VP9 payloader (flexible mode).
#[derive(Debug)]
pub struct Vp9Payloader {
    picture_id: u16,
}

impl Vp9Payloader {
    pub fn new(first_picture_id: u16) -> Self {
        Vp9Payloader {
            picture_id: first_picture_id & 0x7fff,
        }
    }
}

const I: u8 = 0x80;
const P: u8 = 0x40;
const L: u8 = 0x20;
const F: u8 = 0x10;
const B: u8 = 0x08;
const E: u8 = 0x04;
const V: u8 = 0x02;

impl Payloader for Vp9Payloader {
    fn payload(
        &mut self,
        mtu: usize,
        frame: &Bytes,
        info: FrameInfo,
    ) -> Result<Vec<Bytes>, PayloadError> {
        if frame.is_empty() {
            return Err(PayloadError::MalformedFrame {
                codec: Codec::Vp9,
                why: "an empty frame".into(),
            });
        }
        let id = self.picture_id;
        self.picture_id = (id + 1) & 0x7fff;
        // Descriptor: flags, picture ID (2), then P_DIFF (1) or, on a key frame's first
        // packet, the SS: N_S|Y|G byte and one WIDTH/HEIGHT pair (5).
        let first_len = if info.keyframe { 3 + 5 } else { 4 };
        let rest_len = if info.keyframe { 3 } else { 4 };
        if mtu <= first_len {
            return Err(PayloadError::MtuTooSmall(mtu));
        }
        let mut out = Vec::new();
        let mut at = 0;
        while at < frame.len() {
            let first = at == 0;
            let room = mtu - if first { first_len } else { rest_len };
            let part = &frame[at..(at + room).min(frame.len())];
            at += part.len();
            let mut flags = I | F;
            if !info.keyframe {
                flags |= P;
            }
            if first {
                flags |= B;
            }
            if at == frame.len() {
                flags |= E;
            }
            if first && info.keyframe {
                flags |= V;
            }
            let mut b = BytesMut::with_capacity(mtu);
            b.put_u8(flags);
            b.put_u16(0x8000 | id);
            if !info.keyframe {
                b.put_u8(1 << 1); // P_DIFF = 1, N = 0
            }
            if first && info.keyframe {
                // N_S = 0 (one spatial layer), Y = 1 (sizes follow), G = 0.
                b.put_u8(0x10);
                b.put_u16(info.width.min(0xffff) as u16);
                b.put_u16(info.height.min(0xffff) as u16);
            }
            b.put_slice(part);
            out.push(b.freeze());
        }
        Ok(out)
    }
}

/// The parts of a descriptor the depacketizer checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Descriptor {
    begin: bool,
    end: bool,
    picture_id: Option<u16>,
    len: usize,
}

fn descriptor(p: &[u8]) -> Option<Descriptor> {
    let flags = *p.first()?;
    let mut at = 1;
    let byte = |at: &mut usize| -> Option<u8> {
        let b = *p.get(*at)?;
        *at += 1;
        Some(b)
    };
    let mut picture_id = None;
    if flags & I != 0 {
        let m = byte(&mut at)?;
        picture_id = Some(if m & 0x80 != 0 {
            u16::from(m & 0x7f) << 8 | u16::from(byte(&mut at)?)
        } else {
            u16::from(m)
        });
    }
    if flags & L != 0 {
        byte(&mut at)?; // TID|U|SID|D
        if flags & F == 0 {
            byte(&mut at)?; // TL0PICIDX
        }
    }
    if flags & F != 0 && flags & P != 0 {
        // Up to three P_DIFF bytes, N = 1 saying another follows.
        for n in 0.. {
            if n == 3 {
                return None;
            }
            if byte(&mut at)? & 1 == 0 {
                break;
            }
        }
    }
    if flags & V != 0 {
        let ss = byte(&mut at)?;
        let (spatial, y, g) = (usize::from(ss >> 5) + 1, ss & 0x10 != 0, ss & 0x08 != 0);
        if y {
            at += 4 * spatial;
        }
        if g {
            let groups = byte(&mut at)?;
            for _ in 0..groups {
                let r = (byte(&mut at)? >> 2) & 3; // TID(3)|U|R(2)|RES(2)
                at += usize::from(r);
            }
        }
    }
    (at <= p.len()).then_some(Descriptor {
        begin: flags & B != 0,
        end: flags & E != 0,
        picture_id,
        len: at,
    })
}

/// VP9 depacketizer.
#[derive(Debug, Default)]
pub struct Vp9Depacketizer {
    out: BytesMut,
    /// A frame is being assembled, with this picture ID (if numbered).
    current: Option<Option<u16>>,
}

impl Vp9Depacketizer {
    fn broken(&mut self, why: &str) -> PayloadError {
        self.reset();
        PayloadError::Broken {
            codec: Codec::Vp9,
            why: why.into(),
        }
    }
}

impl Depacketizer for Vp9Depacketizer {
    fn push(&mut self, p: &[u8], marker: bool) -> Result<Option<Bytes>, PayloadError> {
        let Some(d) = descriptor(p) else {
            return Err(self.broken("a truncated payload descriptor"));
        };
        match self.current {
            None if !d.begin => return Err(self.broken("a frame without its first packet")),
            None => self.current = Some(d.picture_id),
            Some(_) if d.begin => return Err(self.broken("a new frame inside a frame")),
            Some(id) if id != d.picture_id => {
                return Err(self.broken("the picture ID changed inside a frame"))
            }
            Some(_) => {}
        }
        self.out.put_slice(&p[d.len..]);
        if d.end != marker {
            return Err(self.broken("the frame's end and the RTP marker disagree"));
        }
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

    fn info(keyframe: bool) -> FrameInfo {
        FrameInfo {
            keyframe,
            width: 1920,
            height: 1080,
        }
    }

    #[test]
    fn descriptors_follow_rfc_9628() {
        let frame = Bytes::from(vec![9u8; 30]);
        let mut p = Vp9Payloader::new(0x0102);
        let key = p.payload(20, &frame, info(true)).unwrap();
        // I F B V; M + ID 0x0102; SS: N_S=0 Y=1 G=0; 1920 (0x0780) x 1080 (0x0438).
        assert_eq!(
            &key[0][..8],
            &[0x9a, 0x81, 0x02, 0x10, 0x07, 0x80, 0x04, 0x38]
        );
        // Then I F, and E on the last packet.
        assert_eq!(&key[1][..3], &[0x90, 0x81, 0x02]);
        assert_eq!(key.last().unwrap()[0], 0x94);
        let inter = p.payload(20, &frame, info(false)).unwrap();
        // I P F B; ID 0x0103; P_DIFF=1, N=0.
        assert_eq!(&inter[0][..4], &[0xd8, 0x81, 0x03, 0x02]);
        assert!(key.iter().chain(&inter).all(|b| b.len() <= 20));
        // A non-flexible descriptor with layer indices and TL0PICIDX, and an SS with two
        // layers and a picture group of one entry with one reference.
        let d = descriptor(&[
            0xaa, 0x05, 0x20, 0x07, 0x38, 0, 1, 0, 2, 0, 3, 0, 4, 1, 0x04, 1,
        ])
        .unwrap();
        assert_eq!((d.picture_id, d.len, d.begin), (Some(5), 16, true));
        // A truncated SS is an error, not a panic.
        assert_eq!(descriptor(&[0x9a, 0x81, 0x02, 0x10, 0x07]), None);
    }

    #[test]
    fn round_trips_and_refuses_broken_frames() {
        let frame: Bytes = (0..1_200_000u32).map(|i| (i % 241) as u8).collect();
        let mut p = Vp9Payloader::new(1);
        let mut d = Vp9Depacketizer::default();
        for key in [true, false] {
            let out = p.payload(1188, &frame, info(key)).unwrap();
            let n = out.len();
            let mut got = None;
            for (i, x) in out.iter().enumerate() {
                got = d.push(x, i + 1 == n).unwrap();
            }
            assert_eq!(got.unwrap(), frame);
        }
        let out = p.payload(1188, &frame, info(false)).unwrap();
        assert!(d.push(&out[1], false).is_err(), "no B");
        d.push(&out[0], false).unwrap();
        assert!(d.push(&out[0], false).is_err(), "B inside a frame");
        d.push(&out[0], false).unwrap();
        assert!(d.push(&out[1], true).is_err(), "marker without E");
        for junk in [
            &[][..],
            &[0xff],
            &[0xd0, 0x81, 0x02, 0x03, 0x03, 0x03, 0x03],
        ] {
            assert!(d.push(junk, true).is_err());
        }
    }
}
