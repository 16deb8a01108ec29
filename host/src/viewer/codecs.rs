//! The RTP codec table and the choice of a viewer's codec.
//!
//! Each codec edgedesk sends has one row: mime type, clock rate, our payload type and its RTX
//! payload type, the fmtp we answer with and the RTCP feedback we ask for. A viewer's codec is
//! the first one in the session's preference list (the operator's `--codecs`, limited to the
//! encoders this host has) that the offer accepts with parameters we can send; the WebRTC
//! engine is then given that row only, so the answer holds exactly one video codec.
//!
//! Offers are read here only as far as codecs go (rtpmap and fmtp lines of the first video
//! section); everything else is left to the WebRTC stack.

use codec::Codec;
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec};

/// What the host answers for H.264: constrained baseline, packetization mode 1. Chromium
/// decodes higher levels than the one announced, so 3.1 is announced for every size.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// Our payload types (the answer uses the offer's numbers; these are for our own offers).
pub fn payload_types(codec: Codec) -> (u8, u8) {
    match codec {
        Codec::H264 => (102, 103),
        Codec::Vp8 => (96, 97),
        Codec::Vp9 => (98, 99),
        Codec::Av1 => (45, 46),
        Codec::Hevc => (49, 50),
    }
}

/// The fmtp we offer (headless client) for `codec`.
pub fn default_fmtp(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => H264_FMTP,
        Codec::Vp9 => "profile-id=0",
        Codec::Av1 => "level-idx=5;profile=0;tier=0",
        Codec::Hevc => "level-id=180;profile-id=1;tier-flag=0;tx-mode=SRST",
        Codec::Vp8 => "",
    }
}

/// The RTCP feedback every video codec asks for: NACK, PLI and FIR.
pub fn feedback() -> Vec<RTCPFeedback> {
    [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback {
            typ: typ.into(),
            parameter: parameter.into(),
        })
        .collect()
}

/// The engine's row for `codec` with `fmtp`.
pub fn rtp_codec(codec: Codec, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: codec.mime_type().to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: feedback(),
    }
}

/// One video codec of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub payload_type: u8,
    /// The encoding name as written (`H264`, `VP9`, `rtx`, ...).
    pub name: String,
    pub fmtp: String,
}

impl Offered {
    fn param(&self, key: &str) -> Option<&str> {
        self.fmtp.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then_some(v.trim())
        })
    }

    /// The codec, when it is one we send and its parameters fit what we send: H.264 with
    /// packetization mode 1 and a baseline-compatible profile (our stream is constrained
    /// baseline), VP9 profile 0, AV1 profile 0, HEVC Main (profile-id 1) or unstated.
    pub fn sendable(&self) -> Option<Codec> {
        let codec = Codec::from_encoding_name(&self.name)?;
        let ok = match codec {
            Codec::H264 => {
                let pm1 = self.param("packetization-mode") == Some("1");
                // profile_idc 0x42 (baseline) or constrained baseline in another form
                // (0x4d/0x58/0x64 with constraint_set1 = 1, RFC 6184 §8.1 / Table 5).
                let profile = self.param("profile-level-id").unwrap_or("42e01f");
                let (idc, iop) = (
                    u8::from_str_radix(profile.get(0..2).unwrap_or(""), 16).ok(),
                    u8::from_str_radix(profile.get(2..4).unwrap_or(""), 16).ok(),
                );
                let baseline = match (idc, iop) {
                    (Some(0x42), Some(_)) => true,
                    (Some(0x4d | 0x58 | 0x64), Some(iop)) => iop & 0x40 != 0,
                    _ => false,
                };
                pm1 && baseline
            }
            Codec::Vp9 => matches!(self.param("profile-id"), None | Some("0")),
            Codec::Av1 => matches!(self.param("profile"), None | Some("0")),
            Codec::Hevc => matches!(self.param("profile-id"), None | Some("1")),
            Codec::Vp8 => true,
        };
        ok.then_some(codec)
    }
}

/// The video codecs of the offer's first video section, in the offer's order.
pub fn offered_codecs(sdp: &str) -> Vec<Offered> {
    let mut out: Vec<Offered> = Vec::new();
    let mut in_video = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_video {
                break;
            }
            in_video = m.starts_with("video");
            continue;
        }
        if !in_video {
            continue;
        }
        if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let Some((pt, enc)) = rest.split_once(' ') else {
                continue;
            };
            let (Ok(pt), Some(name)) = (pt.parse::<u8>(), enc.split('/').next()) else {
                continue;
            };
            out.push(Offered {
                payload_type: pt,
                name: name.to_owned(),
                fmtp: String::new(),
            });
        } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
            let Some((pt, params)) = rest.split_once(' ') else {
                continue;
            };
            if let Some(o) = out
                .iter_mut()
                .find(|o| pt.parse::<u8>().ok() == Some(o.payload_type))
            {
                o.fmtp = params.trim().to_owned();
            }
        }
    }
    out
}

/// The codec chosen for a viewer and the offer's fmtp for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub codec: Codec,
    /// The fmtp to register (ours for H.264, the offer's for the rest, so the engine matches
    /// it exactly).
    pub fmtp: String,
}

/// Why no codec could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCommonCodec {
    /// What the offer had (encoding names, RTX and FEC left out).
    pub offered: Vec<String>,
    /// What this session sends, in preference order.
    pub supported: Vec<Codec>,
}

impl std::fmt::Display for NoCommonCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "the offer has no video codec this session sends: offered {}; this session sends {}",
            list(self.offered.clone()),
            list(self.supported.iter().map(|c| c.to_string()).collect())
        )
    }
}

/// Picks the first of `preference` that the offer accepts.
pub fn choose(sdp: &str, preference: &[Codec]) -> Result<Choice, NoCommonCodec> {
    let offered = offered_codecs(sdp);
    for &want in preference {
        if let Some(o) = offered.iter().find(|o| o.sendable() == Some(want)) {
            let fmtp = if want == Codec::H264 {
                H264_FMTP.to_owned()
            } else {
                o.fmtp.clone()
            };
            return Ok(Choice { codec: want, fmtp });
        }
    }
    let mut names: Vec<String> = Vec::new();
    for o in &offered {
        let n = o.name.to_ascii_lowercase();
        let aux = ["rtx", "red", "ulpfec", "flexfec-03"].contains(&n.as_str());
        let shown = match o.sendable() {
            Some(c) => c.to_string(),
            None if Codec::from_encoding_name(&o.name).is_some() => {
                format!("{n} ({})", o.fmtp)
            }
            None => n,
        };
        if !aux && !names.contains(&shown) {
            names.push(shown);
        }
    }
    Err(NoCommonCodec {
        offered: names,
        supported: preference.to_vec(),
    })
}

/// The payload type offered for Opus when the host registers it (an offer's own is used).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// Opus as the host sends it: 48 kHz stereo, in-band FEC, 10 ms frames allowed (RFC 7587).
pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Whether the offer has an audio section (not rejected) that takes Opus at 48 kHz.
pub fn offers_opus(sdp: &str) -> bool {
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut words = m.split_whitespace();
            in_audio = words.next() == Some("audio") && words.next() != Some("0");
            continue;
        }
        if in_audio {
            if let Some((_, enc)) = line
                .strip_prefix("a=rtpmap:")
                .and_then(|r| r.split_once(' '))
            {
                if enc.to_ascii_lowercase().starts_with("opus/48000") {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The video section of a Chromium 120 offer (trimmed).
    const CHROMIUM: &str =
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 45 46 102 103 127 125\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n\
        a=rtpmap:100 VP9/90000\r\na=fmtp:100 profile-id=2\r\n\
        a=rtpmap:45 AV1/90000\r\na=fmtp:45 level-idx=5;profile=0;tier=0\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:127 H264/90000\r\n\
        a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
        a=rtpmap:125 H264/90000\r\n\
        a=fmtp:125 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n";

    #[test]
    fn reads_the_video_codecs_of_a_chromium_offer() {
        let o = offered_codecs(CHROMIUM);
        assert_eq!(o.len(), 8);
        assert_eq!(o[0].name, "VP8");
        assert_eq!(o[2].fmtp, "profile-id=0");
        let sendable: Vec<_> = o.iter().filter_map(|o| o.sendable()).collect();
        // VP9 profile 2 and packetization-mode 0 are not; 640c1f is constrained high.
        assert_eq!(sendable, [Codec::Vp8, Codec::Vp9, Codec::Av1, Codec::H264]);
    }

    #[test]
    fn the_host_order_decides() {
        let c = choose(CHROMIUM, &[Codec::Av1, Codec::H264]).unwrap();
        assert_eq!(c.codec, Codec::Av1);
        assert_eq!(c.fmtp, "level-idx=5;profile=0;tier=0");
        let c = choose(CHROMIUM, &[Codec::Hevc, Codec::H264, Codec::Vp8]).unwrap();
        assert_eq!((c.codec, c.fmtp.as_str()), (Codec::H264, H264_FMTP));
        assert_eq!(
            choose(CHROMIUM, &[Codec::Vp9]).unwrap().fmtp,
            "profile-id=0"
        );
    }

    #[test]
    fn nothing_in_common_names_both_sides() {
        let only_vp8 = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 VP8/90000\r\n\
            a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n";
        let e = choose(only_vp8, &[Codec::H264, Codec::Av1]).unwrap_err();
        assert_eq!(e.offered, ["vp8"]);
        assert_eq!(
            e.to_string(),
            "the offer has no video codec this session sends: offered vp8; \
             this session sends h264, av1"
        );
        let pm0 = "m=video 9 X 127\r\na=rtpmap:127 H264/90000\r\n\
            a=fmtp:127 packetization-mode=0;profile-level-id=42001f\r\n";
        let e = choose(pm0, &[Codec::H264]).unwrap_err();
        assert_eq!(
            e.offered,
            ["h264 (packetization-mode=0;profile-level-id=42001f)"]
        );
        assert!(choose("v=0\r\n", &[Codec::H264])
            .unwrap_err()
            .offered
            .is_empty());
    }

    #[test]
    fn opus_is_found_only_in_a_live_audio_section() {
        let with = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert!(offers_opus(with));
        assert!(!offers_opus(&with.replace("m=audio 9", "m=audio 0")));
        assert!(!offers_opus(&with.replace("opus/48000/2", "PCMU/8000")));
        // Opus named under video does not count.
        assert!(!offers_opus(
            "m=video 9 RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
        ));
    }
}
