//! AV1 payloads (the AV1 RTP payload specification, aomediacodec.github.io/av1-rtp-spec).
//!
//! Sent: the temporal unit's OBUs without temporal delimiters, tile lists and padding, each
//! without its size field (obu_has_size_field cleared, as §4.4 recommends), packed in order
//! into payloads of one aggregation header `Z|Y|W|W|N|0|0|0` and OBU elements. W=0 always:
//! every element is preceded by its leb128 length (the simplest form the spec allows; it
//! costs a byte or two per element). Z: the first element continues an OBU; Y: the last one
//! continues in the next packet; N: the first packet of a key frame carrying a sequence
//! header (a new coded video sequence). No dependency descriptor.
//!
//! Received: W=0 and W=1..3 (the last element running to the end of the payload); fragments
//! are joined by Z/Y, and the temporal unit comes out in the low-overhead format FFmpeg's
//! decoders take: a temporal delimiter, then every OBU with its size field restored.

use bytes::{BufMut, Bytes, BytesMut};
use codec::bitstream::{av1, read_leb128};
use codec::Codec;

use super::payload::{Depacketizer, FrameInfo, PayloadError, Payloader};

/// Appends `v` as leb128.
pub fn put_leb128(out: &mut BytesMut, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.put_u8(b);
            return;
        }
        out.put_u8(b | 0x80);
    }
}

fn leb128_len(v: u64) -> usize {
    (1..).find(|n| v >> (7 * n) == 0).unwrap_or(10)
}

/// AV1 payloader.
#[derive(Debug, Default)]
pub struct Av1Payloader;

/// One OBU to send: its header byte(s) with the size flag cleared, and its payload.
struct Element<'a> {
    header: [u8; 2],
    header_len: usize,
    payload: &'a [u8],
}

fn malformed(why: &str) -> PayloadError {
    PayloadError::MalformedFrame {
        codec: Codec::Av1,
        why: why.into(),
    }
}

/// The OBUs of a low-overhead temporal unit that go on the wire.
fn elements(tu: &[u8]) -> Result<Vec<Element<'_>>, PayloadError> {
    let mut out = Vec::new();
    let mut rest = tu;
    while let Some(&h) = rest.first() {
        if h & 0x80 != 0 {
            return Err(malformed("an OBU with the forbidden bit set"));
        }
        if h & 0x02 == 0 {
            return Err(malformed("an OBU without its size field"));
        }
        let ext = h & 0x04 != 0;
        let header_len = 1 + usize::from(ext);
        let ext_byte = if ext {
            *rest
                .get(1)
                .ok_or_else(|| malformed("a truncated OBU header"))?
        } else {
            0
        };
        let (size, n) = read_leb128(rest.get(header_len..).unwrap_or_default())
            .ok_or_else(|| malformed("a truncated OBU size"))?;
        let start = header_len + n;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .filter(|&e| e <= rest.len())
            .ok_or_else(|| malformed("an OBU that runs past the temporal unit"))?;
        let obu_type = (h >> 3) & 0x0f;
        if ![av1::TEMPORAL_DELIMITER, av1::TILE_LIST, av1::PADDING].contains(&obu_type) {
            out.push(Element {
                header: [h & !0x02, ext_byte],
                header_len,
                payload: &rest[start..end],
            });
        }
        rest = &rest[end..];
    }
    Ok(out)
}

impl Payloader for Av1Payloader {
    fn payload(
        &mut self,
        mtu: usize,
        frame: &Bytes,
        info: FrameInfo,
    ) -> Result<Vec<Bytes>, PayloadError> {
        // Room for the aggregation header, a length and one byte of OBU.
        if mtu < 1 + 3 + 1 {
            return Err(PayloadError::MtuTooSmall(mtu));
        }
        let elements = elements(frame)?;
        if elements.is_empty() {
            return Err(malformed("no OBUs to send"));
        }
        let new_sequence = info.keyframe
            && elements
                .iter()
                .any(|e| (e.header[0] >> 3) & 0x0f == av1::SEQUENCE_HEADER);
        let mut out: Vec<Bytes> = Vec::new();
        let mut packet = BytesMut::with_capacity(mtu);
        packet.put_u8(0);
        // Z for the packet being filled.
        let mut continues = false;
        for e in &elements {
            let mut obu = BytesMut::with_capacity(e.header_len + e.payload.len());
            obu.put_slice(&e.header[..e.header_len]);
            obu.put_slice(e.payload);
            let mut left = &obu[..];
            while !left.is_empty() {
                let room = mtu - packet.len();
                // The largest piece whose length prefix and bytes fit.
                let mut take = left.len().min(room.saturating_sub(1));
                while take > 0 && leb128_len(take as u64) + take > room {
                    take -= 1;
                }
                if take == 0 {
                    // No room: close this packet (its last element is whole) and start one.
                    finish(&mut out, &mut packet, continues, false);
                    continues = false;
                    continue;
                }
                put_leb128(&mut packet, take as u64);
                packet.put_slice(&left[..take]);
                left = &left[take..];
                if !left.is_empty() {
                    // The OBU goes on in the next packet.
                    finish(&mut out, &mut packet, continues, true);
                    continues = true;
                }
            }
        }
        if packet.len() > 1 {
            finish(&mut out, &mut packet, continues, false);
        }
        if new_sequence {
            let mut first = BytesMut::from(&out[0][..]);
            first[0] |= 0x08;
            out[0] = first.freeze();
        }
        Ok(out)
    }
}

/// Writes the aggregation header (Z, Y, W=0) and moves the packet to `out`.
fn finish(out: &mut Vec<Bytes>, packet: &mut BytesMut, z: bool, y: bool) {
    packet[0] = u8::from(z) << 7 | u8::from(y) << 6;
    out.push(std::mem::replace(packet, BytesMut::from(&[0u8][..])).freeze());
}

/// AV1 depacketizer.
#[derive(Debug, Default)]
pub struct Av1Depacketizer {
    out: BytesMut,
    /// The OBU continued from the previous packet (Y=1 there), header included.
    partial: Option<BytesMut>,
    /// A temporal unit is being assembled.
    started: bool,
}

impl Av1Depacketizer {
    fn broken(&mut self, why: &str) -> PayloadError {
        self.reset();
        PayloadError::Broken {
            codec: Codec::Av1,
            why: why.into(),
        }
    }

    /// Appends one whole OBU (header, then payload, no size field) with its size restored.
    fn put_obu(&mut self, obu: &[u8]) -> Result<(), PayloadError> {
        let Some(&h) = obu.first() else {
            return Err(self.broken("an empty OBU element"));
        };
        let header_len = 1 + usize::from(h & 0x04 != 0);
        if obu.len() < header_len {
            return Err(self.broken("an OBU element shorter than its header"));
        }
        let obu_type = (h >> 3) & 0x0f;
        if obu_type == av1::TEMPORAL_DELIMITER {
            return Ok(()); // ignored on receipt (§4.4); one is written first anyway
        }
        let (header, payload) = obu.split_at(header_len);
        let (size, n) = if h & 0x02 != 0 {
            // A sender that kept the size field: use it, bounded by the element.
            let (s, n) = read_leb128(payload)
                .ok_or_else(|| self.broken("a truncated OBU size in an element"))?;
            (s as usize, n)
        } else {
            (payload.len(), 0)
        };
        let body = payload
            .get(n..n.saturating_add(size))
            .ok_or_else(|| self.broken("an OBU size past its element"))?;
        self.out.put_u8(header[0] | 0x02);
        self.out.put_slice(&header[1..]);
        put_leb128(&mut self.out, body.len() as u64);
        self.out.put_slice(body);
        Ok(())
    }
}

impl Depacketizer for Av1Depacketizer {
    fn push(&mut self, p: &[u8], marker: bool) -> Result<Option<Bytes>, PayloadError> {
        let Some((&agg, mut rest)) = p.split_first() else {
            return Err(self.broken("an empty payload"));
        };
        let (z, y, w) = (agg & 0x80 != 0, agg & 0x40 != 0, (agg >> 4) & 3);
        if z != self.partial.is_some() {
            return Err(self.broken(if z {
                "a continued OBU without its start"
            } else {
                "an OBU left unfinished by the previous packet"
            }));
        }
        if !self.started {
            self.started = true;
            self.out.put_slice(&[0x12, 0x00]); // temporal delimiter
        }
        let mut elements: Vec<&[u8]> = Vec::new();
        let mut index = 0;
        while !rest.is_empty() {
            index += 1;
            let last_by_count = w != 0 && index == usize::from(w);
            let element = if last_by_count {
                std::mem::take(&mut rest)
            } else {
                let Some((len, n)) = read_leb128(rest) else {
                    return Err(self.broken("a truncated element length"));
                };
                let Some(e) = usize::try_from(len)
                    .ok()
                    .and_then(|l| rest.get(n..n.checked_add(l)?))
                else {
                    return Err(self.broken("an element that runs past the payload"));
                };
                rest = &rest[n + e.len()..];
                e
            };
            elements.push(element);
        }
        if elements.is_empty() || (w != 0 && elements.len() != usize::from(w)) {
            return Err(self.broken("the element count disagrees with W"));
        }
        let count = elements.len();
        for (i, e) in elements.into_iter().enumerate() {
            let mut obu = if i == 0 {
                self.partial.take().unwrap_or_default()
            } else {
                BytesMut::new()
            };
            obu.put_slice(e);
            if i + 1 == count && y {
                self.partial = Some(obu);
            } else {
                self.put_obu(&obu)?;
            }
        }
        if !marker {
            return Ok(None);
        }
        if self.partial.is_some() {
            return Err(self.broken("the temporal unit ends inside an OBU"));
        }
        self.started = false;
        Ok(Some(std::mem::take(&mut self.out).freeze()))
    }

    fn reset(&mut self) {
        self.out.clear();
        self.partial = None;
        self.started = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obu(obu_type: u8, len: usize) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u8(obu_type << 3 | 0x02);
        put_leb128(&mut b, len as u64);
        b.extend((0..len).map(|i| (i % 239) as u8));
        b.to_vec()
    }

    fn info(keyframe: bool) -> FrameInfo {
        FrameInfo {
            keyframe,
            width: 64,
            height: 64,
        }
    }

    fn send(tu: &[u8], mtu: usize, key: bool) -> (Vec<Bytes>, Bytes) {
        let out = Av1Payloader
            .payload(mtu, &Bytes::copy_from_slice(tu), info(key))
            .unwrap();
        assert!(out.iter().all(|p| p.len() <= mtu), "a payload over {mtu}");
        let mut d = Av1Depacketizer::default();
        let n = out.len();
        let mut got = None;
        for (i, p) in out.iter().enumerate() {
            got = d.push(p, i + 1 == n).unwrap();
        }
        (out, got.unwrap())
    }

    #[test]
    fn leb128_matches_the_spec() {
        for (v, bytes) in [
            (0u64, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16383, &[0xff, 0x7f]),
            (16384, &[0x80, 0x80, 0x01]),
        ] {
            let mut b = BytesMut::new();
            put_leb128(&mut b, v);
            assert_eq!(&b[..], bytes);
            assert_eq!(leb128_len(v), bytes.len());
            assert_eq!(read_leb128(bytes), Some((v, bytes.len())));
        }
    }

    #[test]
    fn aggregates_small_obus_and_sets_n_on_a_new_sequence() {
        let td = obu(av1::TEMPORAL_DELIMITER, 0);
        let tu = [
            td.clone(),
            obu(av1::SEQUENCE_HEADER, 10),
            obu(av1::FRAME, 50),
        ]
        .concat();
        let (out, back) = send(&tu, 1188, true);
        assert_eq!(out.len(), 1);
        // Z=0 Y=0 W=0 N=1; then 11 bytes of sequence header (no size field: 0x08).
        assert_eq!(&out[0][..3], &[0x08, 11, 0x08]);
        assert_eq!(back, Bytes::from(tu.clone()));
        // Not a key frame: no N.
        assert_eq!(send(&tu, 1188, false).0[0][0], 0x00);
        // Padding is dropped; the TD comes back even when the sender had none.
        let (_, back) = send(
            &[obu(av1::FRAME, 5), obu(av1::PADDING, 3)].concat(),
            100,
            false,
        );
        assert_eq!(back, Bytes::from([td, obu(av1::FRAME, 5)].concat()));
    }

    #[test]
    fn big_obus_fragment_with_z_and_y() {
        let tu = [obu(av1::SEQUENCE_HEADER, 12), obu(av1::FRAME, 1_300_000)].concat();
        let (out, back) = send(&tu, 1188, true);
        assert!(out.len() > 1000);
        assert_eq!(out[0][0] & 0xc0, 0x40, "first: Y");
        assert_eq!(out[1][0] & 0xc0, 0xc0, "middle: Z and Y");
        assert_eq!(out.last().unwrap()[0] & 0xc0, 0x80, "last: Z");
        assert_eq!(&back[2..], &tu[..]);
        // Tiny MTUs still make progress.
        let small = [obu(av1::SEQUENCE_HEADER, 12), obu(av1::FRAME, 30)].concat();
        let (_, back) = send(&small, 5, false);
        assert_eq!(&back[2..], &small[..]);
    }

    #[test]
    fn losses_and_garbage_are_broken_frames() {
        let tu = [obu(av1::FRAME, 5000)].concat();
        let out = Av1Payloader
            .payload(1188, &Bytes::from(tu), info(false))
            .unwrap();
        let mut d = Av1Depacketizer::default();
        assert!(d.push(&out[1], false).is_err(), "Z without a start");
        d.push(&out[0], false).unwrap();
        assert!(d.push(&out[0], false).is_err(), "Y then no Z");
        d.push(&out[0], false).unwrap();
        assert!(d.push(&out[1], true).is_err(), "ends inside an OBU");
        for junk in [&[][..], &[0x00], &[0x00, 0x05, 1], &[0x10], &[0x00, 0xff]] {
            assert!(d.push(junk, true).is_err(), "{junk:?}");
        }
        assert!(Av1Payloader
            .payload(1188, &Bytes::from_static(&[0x32, 0x05, 1]), info(false))
            .is_err());
    }
}
