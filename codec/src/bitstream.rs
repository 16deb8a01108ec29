//! Small, allocation-free readers of encoded frames: Annex B NAL unit splitting and types
//! (H.264/HEVC), AV1 OBUs, keyframe detection for every codec, and the H.264
//! `profile-level-id` an SDP offer must carry.

use crate::encoder::Codec;

/// Iterates over the NAL units of an Annex B byte stream (payloads without start codes).
pub fn nal_units(annexb: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = annexb;
    std::iter::from_fn(move || {
        let start = find_start_code(rest)?;
        let body = &rest[start..];
        let (nal, next) = match find_start_code(body) {
            Some(n) => {
                // Trim the start code (3 bytes) and a leading zero of a 4-byte one.
                let mut end = n - 3;
                while end > 0 && body[end - 1] == 0 {
                    end -= 1;
                }
                (&body[..end], &body[n - 3..])
            }
            None => (body, &body[body.len()..]),
        };
        rest = next;
        Some(nal)
    })
    .filter(|nal| !nal.is_empty())
}

/// Index just past the first `00 00 01` in `data`.
fn find_start_code(data: &[u8]) -> Option<usize> {
    data.windows(3).position(|w| w == [0, 0, 1]).map(|p| p + 3)
}

/// NAL unit types of an access unit, in order (H.264: 5 bits; HEVC: 6 bits).
pub fn nal_types(codec: Codec, annexb: &[u8]) -> Vec<u8> {
    nal_units(annexb)
        .map(|nal| match codec {
            Codec::Hevc => (nal[0] >> 1) & 0x3f,
            _ => nal[0] & 0x1f,
        })
        .collect()
}

/// H.264 NAL types.
pub mod h264 {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
}

/// HEVC NAL types.
pub mod hevc {
    /// First IDR type (IDR_W_RADL).
    pub const IDR_W_RADL: u8 = 19;
    /// Second IDR type (IDR_N_LP).
    pub const IDR_N_LP: u8 = 20;
    /// Clean random access picture.
    pub const CRA: u8 = 21;
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
}

/// True when a decoder can start from this frame: for H.264/HEVC an IDR picture preceded by
/// its parameter sets (SPS+PPS, VPS+SPS+PPS); a VP8 or VP9 key frame; for AV1 a temporal
/// unit with a sequence header and a key frame.
pub fn is_decodable_keyframe(codec: Codec, frame: &[u8]) -> bool {
    match codec {
        Codec::H264 | Codec::Hevc => annex_b_keyframe(codec, frame),
        Codec::Vp8 => vp8_keyframe(frame),
        Codec::Vp9 => vp9_keyframe(frame),
        Codec::Av1 => av1_keyframe(frame),
    }
}

/// VP8 (RFC 6386 §9.1): frame tag bit 0 is 0 on key frames, which carry the start code
/// `9d 01 2a` after the 3-byte tag.
fn vp8_keyframe(frame: &[u8]) -> bool {
    frame.len() >= 10 && frame[0] & 1 == 0 && frame[3..6] == [0x9d, 0x01, 0x2a]
}

/// Reads bits most significant first.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos / 8)? >> (7 - self.pos % 8) & 1;
        self.pos += 1;
        Some(b)
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |v, _| Some(v << 1 | u32::from(self.bit()?)))
    }
}

/// VP9 uncompressed header (VP9 bitstream spec §6.2): frame_marker, profile, then
/// show_existing_frame and frame_type (0 = key frame).
fn vp9_keyframe(frame: &[u8]) -> bool {
    let mut r = Bits {
        data: frame,
        pos: 0,
    };
    let parse = |r: &mut Bits| -> Option<bool> {
        if r.bits(2)? != 2 {
            return Some(false);
        }
        let profile = r.bit()? | r.bit()? << 1;
        if profile == 3 {
            r.bit()?;
        }
        if r.bit()? == 1 {
            return Some(false); // show_existing_frame
        }
        Some(r.bit()? == 0)
    };
    parse(&mut r).unwrap_or(false)
}

/// AV1 OBU types (AV1 spec §6.2.2).
pub mod av1 {
    pub const SEQUENCE_HEADER: u8 = 1;
    pub const TEMPORAL_DELIMITER: u8 = 2;
    pub const FRAME_HEADER: u8 = 3;
    pub const TILE_GROUP: u8 = 4;
    pub const METADATA: u8 = 5;
    pub const FRAME: u8 = 6;
    pub const TILE_LIST: u8 = 8;
    pub const PADDING: u8 = 15;
}

/// One OBU of a low-overhead AV1 stream: its type and its payload (after the header, the
/// optional extension byte and the size field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    pub obu_type: u8,
    pub payload: &'a [u8],
}

/// Reads a leb128 value (AV1 spec §4.10.5): the value and the bytes it took; `None` if it
/// runs past the data or beyond 8 bytes.
pub fn read_leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in data.iter().take(8).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The OBUs of a temporal unit in the low-overhead format (every OBU with a size field, as
/// encoders write it); `None` if an OBU lacks its size field or runs past the end.
pub fn av1_obus(data: &[u8]) -> Option<Vec<Obu<'_>>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(&header) = rest.first() {
        let ext = header & 0x04 != 0;
        if header & 0x80 != 0 || header & 0x02 == 0 {
            return None; // forbidden bit, or no size field
        }
        let at = 1 + usize::from(ext);
        let (size, n) = read_leb128(rest.get(at..)?)?;
        let start = at + n;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        out.push(Obu {
            obu_type: (header >> 3) & 0x0f,
            payload: rest.get(start..end)?,
        });
        rest = &rest[end..];
    }
    Some(out)
}

/// AV1: a sequence header, then a frame (or frame header) OBU whose uncompressed header says
/// KEY_FRAME (§5.9.2: show_existing_frame = 0, frame_type = 0), or any frame when the
/// sequence header sets reduced_still_picture_header.
fn av1_keyframe(data: &[u8]) -> bool {
    let Some(obus) = av1_obus(data) else {
        return false;
    };
    let Some(seq) = obus.iter().find(|o| o.obu_type == av1::SEQUENCE_HEADER) else {
        return false;
    };
    // seq_profile (3), still_picture (1), reduced_still_picture_header (1).
    let Some(&b) = seq.payload.first() else {
        return false;
    };
    let reduced = b & 0x08 != 0;
    let Some(frame) = obus
        .iter()
        .find(|o| o.obu_type == av1::FRAME || o.obu_type == av1::FRAME_HEADER)
    else {
        return false;
    };
    if reduced {
        return true;
    }
    let mut r = Bits {
        data: frame.payload,
        pos: 0,
    };
    matches!((r.bit(), r.bits(2)), (Some(0), Some(0)))
}

fn annex_b_keyframe(codec: Codec, annexb: &[u8]) -> bool {
    let types = nal_types(codec, annexb);
    let first_idr = match codec {
        Codec::Hevc => types
            .iter()
            .position(|&t| t == hevc::IDR_W_RADL || t == hevc::IDR_N_LP),
        _ => types.iter().position(|&t| t == h264::IDR),
    };
    let Some(idr) = first_idr else { return false };
    let before = &types[..idr];
    match codec {
        Codec::Hevc => [hevc::VPS, hevc::SPS, hevc::PPS]
            .iter()
            .all(|t| before.contains(t)),
        _ => before.contains(&h264::SPS) && before.contains(&h264::PPS),
    }
}

/// The H.264 `profile-level-id` (six lowercase hex digits: profile_idc, constraint flags,
/// level_idc) of the first SPS in an Annex B access unit, e.g. `"42c01f"` for constrained
/// baseline level 3.1. `None` when the unit carries no SPS.
pub fn h264_profile_level_id(annexb: &[u8]) -> Option<String> {
    let sps = nal_units(annexb).find(|nal| nal[0] & 0x1f == h264::SPS)?;
    // The three bytes after the NAL header can hold no emulation-prevention byte:
    // profile_idc is never zero.
    let b = sps.get(1..4)?;
    Some(format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88, 0x00,
        ];
        let nals: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(
            nals,
            vec![
                &[0x67, 0x42, 0xc0, 0x1f][..],
                &[0x68, 0xce],
                &[0x65, 0x88, 0x00]
            ]
        );
        assert_eq!(nal_types(Codec::H264, &au), vec![7, 8, 5]);
        assert!(is_decodable_keyframe(Codec::H264, &au));
        assert_eq!(h264_profile_level_id(&au).as_deref(), Some("42c01f"));
    }

    #[test]
    fn p_frames_and_garbage_are_not_keyframes() {
        assert!(!is_decodable_keyframe(Codec::H264, &[0, 0, 1, 0x41, 1]));
        assert!(!is_decodable_keyframe(Codec::H264, &[1, 2, 3]));
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(h264_profile_level_id(&[0, 0, 1, 0x67]), None);
        // IDR without parameter sets before it.
        assert!(!is_decodable_keyframe(
            Codec::H264,
            &[0, 0, 1, 0x65, 1, 0, 0, 1, 0x67, 1]
        ));
    }

    #[test]
    fn hevc_types() {
        let au = [
            0, 0, 1, 0x40, 1, 0, 0, 1, 0x42, 1, 0, 0, 1, 0x44, 1, 0, 0, 1, 0x26, 1,
        ];
        assert_eq!(nal_types(Codec::Hevc, &au), vec![32, 33, 34, 19]);
        assert!(is_decodable_keyframe(Codec::Hevc, &au));
    }
}
