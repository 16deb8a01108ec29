//! Small, allocation-free readers for Annex B H.264/HEVC access units: NAL unit splitting,
//! NAL types, keyframe detection and the H.264 `profile-level-id` an SDP offer must carry.

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

/// True when the access unit holds an IDR picture preceded by the parameter sets a decoder
/// needs to start from it (SPS+PPS for H.264, VPS+SPS+PPS for HEVC).
pub fn is_decodable_keyframe(codec: Codec, annexb: &[u8]) -> bool {
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
