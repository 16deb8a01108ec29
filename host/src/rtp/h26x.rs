//! H.264 (RFC 6184) and H.265 (RFC 7798) payloads, packetization mode 1 / no DONL.
//!
//! Sending H.264 uses the WebRTC crate's payloader (single NAL units, STAP-A for SPS+PPS,
//! FU-A for large slices; measured with Chromium). H.265 is written here: single NAL units,
//! aggregation packets (type 48) for runs of small NAL units (VPS+SPS+PPS), fragmentation
//! units (type 49) for large ones. Both depacketizers are written here and turn every form
//! back into Annex B with 4-byte start codes; a fragment that does not continue a started
//! unit, or a frame that ends inside one, is [`PayloadError::Broken`].

use bytes::{BufMut, Bytes, BytesMut};
use codec::bitstream::nal_units;
use codec::Codec;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader as _;

use super::payload::{Depacketizer, FrameInfo, PayloadError, Payloader};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// H.264 payloader (the crate's, behind this module's trait).
#[derive(Debug, Default)]
pub struct H264 {
    inner: H264Payloader,
}

impl Payloader for H264 {
    fn payload(
        &mut self,
        mtu: usize,
        frame: &Bytes,
        _info: FrameInfo,
    ) -> Result<Vec<Bytes>, PayloadError> {
        if mtu < 3 {
            return Err(PayloadError::MtuTooSmall(mtu));
        }
        self.inner
            .payload(mtu, frame)
            .map_err(|e| PayloadError::MalformedFrame {
                codec: Codec::H264,
                why: e.to_string(),
            })
    }
}

/// H.265 payloader (RFC 7798 without DONL).
#[derive(Debug, Default)]
pub struct H265;

/// H.265 payload header types.
const H265_AP: u8 = 48;
const H265_FU: u8 = 49;

fn h265_type(nal: &[u8]) -> u8 {
    (nal[0] >> 1) & 0x3f
}

impl Payloader for H265 {
    fn payload(
        &mut self,
        mtu: usize,
        frame: &Bytes,
        _info: FrameInfo,
    ) -> Result<Vec<Bytes>, PayloadError> {
        if mtu < 4 {
            return Err(PayloadError::MtuTooSmall(mtu));
        }
        let mut out = Vec::new();
        // Small NAL units waiting to go out together in one aggregation packet.
        let mut run: Vec<&[u8]> = Vec::new();
        let flush = |run: &mut Vec<&[u8]>, out: &mut Vec<Bytes>| {
            match run.len() {
                0 => {}
                1 => out.push(Bytes::copy_from_slice(run[0])),
                _ => {
                    // Payload header: F of any, type 48, lowest layer id and TID (§4.4.2).
                    let f = run.iter().any(|n| n[0] & 0x80 != 0);
                    let layer = run
                        .iter()
                        .map(|n| (u16::from(n[0] & 1) << 5) | u16::from(n[1] >> 3))
                        .min()
                        .unwrap_or(0);
                    let tid = run.iter().map(|n| n[1] & 7).min().unwrap_or(1);
                    let mut b = BytesMut::new();
                    b.put_u8(u8::from(f) << 7 | H265_AP << 1 | (layer >> 5) as u8);
                    b.put_u8(((layer as u8 & 0x1f) << 3) | tid);
                    for n in run.iter() {
                        b.put_u16(n.len() as u16);
                        b.put_slice(n);
                    }
                    out.push(b.freeze());
                }
            }
            run.clear();
        };
        let mut run_len = 2;
        for nal in nal_units(frame) {
            if nal.len() < 3 {
                return Err(PayloadError::MalformedFrame {
                    codec: Codec::Hevc,
                    why: format!("a NAL unit of {} bytes", nal.len()),
                });
            }
            if run_len + 2 + nal.len() <= mtu {
                run.push(nal);
                run_len += 2 + nal.len();
                continue;
            }
            flush(&mut run, &mut out);
            run_len = 2;
            if 2 + 2 + nal.len() <= mtu {
                run.push(nal);
                run_len += 2 + nal.len();
                continue;
            }
            if nal.len() <= mtu {
                out.push(Bytes::copy_from_slice(nal));
                continue;
            }
            // Fragmentation units: the NAL header's type moves to the FU header.
            let (h0, h1, body) = (nal[0], nal[1], &nal[2..]);
            let chunk = mtu - 3;
            let n = body.len().div_ceil(chunk);
            for (i, part) in body.chunks(chunk).enumerate() {
                let mut b = BytesMut::with_capacity(3 + part.len());
                b.put_u8((h0 & 0x81) | H265_FU << 1);
                b.put_u8(h1);
                let s = if i == 0 { 0x80 } else { 0 };
                let e = if i + 1 == n { 0x40 } else { 0 };
                b.put_u8(s | e | h265_type(nal));
                b.put_slice(part);
                out.push(b.freeze());
            }
        }
        flush(&mut run, &mut out);
        if out.is_empty() {
            return Err(PayloadError::MalformedFrame {
                codec: Codec::Hevc,
                why: "no NAL units".into(),
            });
        }
        Ok(out)
    }
}

/// Reassembles NAL-unit payloads into Annex B; shared by H.264 and H.265.
#[derive(Debug, Default)]
struct NalAssembler {
    out: BytesMut,
    /// A fragmented unit is open (its start was seen, its end not yet).
    in_fragment: bool,
}

impl NalAssembler {
    fn broken(&mut self, codec: Codec, why: &str) -> PayloadError {
        self.reset();
        PayloadError::Broken {
            codec,
            why: why.into(),
        }
    }

    fn nal(&mut self, nal: &[u8]) {
        self.out.put_slice(&START_CODE);
        self.out.put_slice(nal);
    }

    /// An aggregation packet's body: 16-bit sizes and units.
    fn aggregate(&mut self, codec: Codec, mut body: &[u8]) -> Result<(), PayloadError> {
        if body.is_empty() {
            return Err(self.broken(codec, "empty aggregation packet"));
        }
        while !body.is_empty() {
            if body.len() < 2 {
                return Err(self.broken(codec, "aggregation packet ends inside a size"));
            }
            let n = usize::from(u16::from_be_bytes([body[0], body[1]]));
            if n == 0 || body.len() < 2 + n {
                return Err(self.broken(codec, "aggregated unit runs past the packet"));
            }
            self.nal(&body[2..2 + n]);
            body = &body[2 + n..];
        }
        Ok(())
    }

    /// One fragment: `header` is the rebuilt NAL header, written on the start fragment.
    fn fragment(
        &mut self,
        codec: Codec,
        start: bool,
        end: bool,
        header: &[u8],
        body: &[u8],
    ) -> Result<(), PayloadError> {
        match (start, self.in_fragment) {
            (true, true) => return Err(self.broken(codec, "a fragment starts inside another")),
            (false, false) => return Err(self.broken(codec, "a fragment without its start")),
            (true, false) => {
                self.nal(header);
                self.in_fragment = true;
            }
            (false, true) => {}
        }
        self.out.put_slice(body);
        if end {
            self.in_fragment = false;
        }
        Ok(())
    }

    fn finish(&mut self, codec: Codec, marker: bool) -> Result<Option<Bytes>, PayloadError> {
        if !marker {
            return Ok(None);
        }
        if self.in_fragment {
            return Err(self.broken(codec, "the frame ends inside a fragmented unit"));
        }
        if self.out.is_empty() {
            return Err(self.broken(codec, "an empty frame"));
        }
        Ok(Some(std::mem::take(&mut self.out).freeze()))
    }

    fn reset(&mut self) {
        self.out.clear();
        self.in_fragment = false;
    }
}

/// H.264 depacketizer: single NAL units, STAP-A (24), FU-A (28).
#[derive(Debug, Default)]
pub struct H264Depacketizer {
    nals: NalAssembler,
}

impl Depacketizer for H264Depacketizer {
    fn push(&mut self, p: &[u8], marker: bool) -> Result<Option<Bytes>, PayloadError> {
        const C: Codec = Codec::H264;
        let Some(&h) = p.first() else {
            return Err(self.nals.broken(C, "an empty payload"));
        };
        let a = &mut self.nals;
        match h & 0x1f {
            0 | 25..=27 | 29..=31 => return Err(a.broken(C, "an unsupported packet type")),
            24 => a.aggregate(C, &p[1..])?,
            28 => {
                let Some(&fu) = p.get(1) else {
                    return Err(a.broken(C, "an FU-A without its header"));
                };
                let header = [(h & 0xe0) | (fu & 0x1f)];
                a.fragment(C, fu & 0x80 != 0, fu & 0x40 != 0, &header, &p[2..])?;
            }
            _ if a.in_fragment => return Err(a.broken(C, "a NAL unit inside a fragment")),
            _ => a.nal(p),
        }
        a.finish(C, marker)
    }

    fn reset(&mut self) {
        self.nals.reset();
    }
}

/// H.265 depacketizer: single NAL units, aggregation packets (48), fragmentation units (49).
#[derive(Debug, Default)]
pub struct H265Depacketizer {
    nals: NalAssembler,
}

impl Depacketizer for H265Depacketizer {
    fn push(&mut self, p: &[u8], marker: bool) -> Result<Option<Bytes>, PayloadError> {
        const C: Codec = Codec::Hevc;
        let a = &mut self.nals;
        if p.len() < 3 {
            return Err(a.broken(C, "a payload shorter than its headers"));
        }
        match h265_type(p) {
            H265_AP => a.aggregate(C, &p[2..])?,
            H265_FU => {
                let fu = p[2];
                let header = [(p[0] & 0x81) | (fu & 0x3f) << 1, p[1]];
                a.fragment(C, fu & 0x80 != 0, fu & 0x40 != 0, &header, &p[3..])?;
            }
            50.. => return Err(a.broken(C, "an unsupported packet type")),
            _ if a.in_fragment => return Err(a.broken(C, "a NAL unit inside a fragment")),
            _ => a.nal(p),
        }
        a.finish(C, marker)
    }

    fn reset(&mut self) {
        self.nals.reset();
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

    fn annex_b(nals: &[Vec<u8>]) -> Bytes {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&START_CODE);
            v.extend_from_slice(n);
        }
        Bytes::from(v)
    }

    fn hevc_nal(t: u8, len: usize) -> Vec<u8> {
        let mut n = vec![t << 1, 1];
        n.extend((0..len - 2).map(|i| (i % 251) as u8 + 1));
        n
    }

    fn round_trip(
        p: &mut dyn Payloader,
        d: &mut dyn Depacketizer,
        frame: &Bytes,
        mtu: usize,
    ) -> Bytes {
        let payloads = p.payload(mtu, frame, INFO).unwrap();
        assert!(payloads.iter().all(|x| x.len() <= mtu));
        let n = payloads.len();
        let mut out = None;
        for (i, x) in payloads.iter().enumerate() {
            let r = d.push(x, i + 1 == n).unwrap();
            assert_eq!(r.is_some(), i + 1 == n);
            out = r;
        }
        out.unwrap()
    }

    #[test]
    fn h265_aggregates_parameter_sets_and_fragments_big_slices() {
        let nals = vec![
            hevc_nal(32, 24),
            hevc_nal(33, 40),
            hevc_nal(34, 8),
            hevc_nal(19, 5000),
        ];
        let frame = annex_b(&nals);
        let payloads = H265.payload(1200, &frame, INFO).unwrap();
        // VPS+SPS+PPS in one AP (type 48, layer 0, TID 1): 0x60 0x01.
        assert_eq!(&payloads[0][..2], &[0x60, 0x01]);
        assert_eq!(&payloads[0][2..4], &[0, 24]);
        // Then FUs (type 49 → 0x62 0x01), FU header S + type 19 first, E + 19 last.
        assert_eq!(&payloads[1][..3], &[0x62, 0x01, 0x80 | 19]);
        assert_eq!(payloads.last().unwrap()[2], 0x40 | 19);
        let back = round_trip(&mut H265, &mut H265Depacketizer::default(), &frame, 1200);
        assert_eq!(back, frame);
        // 3-byte start codes come back as 4-byte ones, otherwise unchanged.
        let mut three = Vec::new();
        for n in &nals {
            three.extend_from_slice(&[0, 0, 1]);
            three.extend_from_slice(n);
        }
        let back = round_trip(
            &mut H265,
            &mut H265Depacketizer::default(),
            &Bytes::from(three),
            1200,
        );
        assert_eq!(back, frame);
    }

    #[test]
    fn h264_round_trips_through_the_crate_payloader() {
        let frame = annex_b(&[
            vec![0x67, 0x42, 0xc0, 0x1f, 1, 2],
            vec![0x68, 0xce, 3],
            [vec![0x65], vec![7; 3000]].concat(),
        ]);
        let back = round_trip(
            &mut H264::default(),
            &mut H264Depacketizer::default(),
            &frame,
            1188,
        );
        assert_eq!(back, frame);
        // More than a megabyte in one slice.
        let big = annex_b(&[[vec![0x65], vec![9; 1_200_000]].concat()]);
        let back = round_trip(
            &mut H264::default(),
            &mut H264Depacketizer::default(),
            &big,
            1188,
        );
        assert_eq!(back, big);
    }

    #[test]
    fn a_lost_fragment_breaks_the_frame_instead_of_emitting_it() {
        let frame = annex_b(&[[vec![0x65], vec![7; 5000]].concat()]);
        let payloads = H264::default().payload(1188, &frame, INFO).unwrap();
        let mut d = H264Depacketizer::default();
        // Lose the first fragment: the next is a continuation without a start.
        assert!(matches!(
            d.push(&payloads[1], false),
            Err(PayloadError::Broken { .. })
        ));
        d.reset();
        // Lose the last fragment: the marker arrives inside the unit (here: a new start).
        for p in &payloads[..payloads.len() - 1] {
            d.push(p, false).unwrap();
        }
        assert!(d.push(&payloads[0], true).is_err());
        // Garbage never panics.
        let mut h5 = H265Depacketizer::default();
        for junk in [
            &[][..],
            &[0x60],
            &[0x60, 1, 0, 9, 1],
            &[0x62, 1],
            &[0x7f; 9],
        ] {
            let _ = h5.push(junk, true);
            let _ = d.push(junk, true);
        }
    }
}
