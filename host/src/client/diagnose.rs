//! Why a headless viewer shows no video, in one line: what the connection went through (ICE,
//! DTLS, the track) and the candidates each side put forward.

use std::sync::Mutex;
use std::time::Instant;

use codec::Codec;
use webrtc::peer_connection::{RTCIceConnectionState, RTCPeerConnectionState};

use super::{ClientCounters, ClientError};

/// The milestones of one connection.
pub(super) struct Progress {
    inner: Mutex<Inner>,
}

struct Inner {
    created: Instant,
    offered: Vec<Codec>,
    local_candidates: Vec<String>,
    remote_candidates: Option<Vec<String>>,
    ice: RTCIceConnectionState,
    ice_connected: bool,
    connected: bool,
    track: bool,
}

impl Progress {
    pub(super) fn new(offer: &str, offered: Vec<Codec>) -> Progress {
        Progress {
            inner: Mutex::new(Inner {
                created: Instant::now(),
                offered,
                local_candidates: candidates(offer),
                remote_candidates: None,
                ice: RTCIceConnectionState::New,
                ice_connected: false,
                connected: false,
                track: false,
            }),
        }
    }

    /// Notes the answer's candidates and returns the codec it chose: the first of its video
    /// section that this client offered, or an error naming what it chose instead.
    pub(super) fn answer(&self, sdp: &str) -> Result<Codec, ClientError> {
        let mut p = self.inner.lock().unwrap();
        p.remote_candidates = Some(candidates(sdp));
        let video = video_section(sdp).ok_or_else(|| {
            ClientError::Protocol(
                "the answer has no video section (the server sends no video)".into(),
            )
        })?;
        if video.starts_with("m=video 0 ") || video.lines().any(|l| l.trim() == "a=inactive") {
            return Err(ClientError::Protocol(
                "the answer rejects the video section (port 0 or inactive): the server has no \
                 video for this client"
                    .into(),
            ));
        }
        let names: Vec<String> = crate::viewer::codecs::offered_codecs(sdp)
            .into_iter()
            .map(|o| o.name)
            .collect();
        names
            .iter()
            .filter_map(|n| Codec::from_encoding_name(n))
            .find(|c| p.offered.contains(c))
            .ok_or_else(|| {
                let offered: Vec<&str> = p.offered.iter().map(|c| c.name()).collect();
                ClientError::Protocol(format!(
                    "the server answered with {} video, which this client cannot decode (it \
                     offered {})",
                    if names.is_empty() {
                        "no codec for".to_owned()
                    } else {
                        names.join("/")
                    },
                    offered.join(", ")
                ))
            })
    }

    pub(super) fn ice_state(&self, s: RTCIceConnectionState) {
        let mut p = self.inner.lock().unwrap();
        p.ice = s;
        if matches!(
            s,
            RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
        ) {
            p.ice_connected = true;
        }
    }

    pub(super) fn peer_state(&self, s: RTCPeerConnectionState) {
        if s == RTCPeerConnectionState::Connected {
            self.inner.lock().unwrap().connected = true;
        }
    }

    pub(super) fn track(&self) {
        self.inner.lock().unwrap().track = true;
    }

    /// One line: the first milestone not reached, and what was seen of it.
    pub(super) fn explain(&self, state: RTCPeerConnectionState, c: ClientCounters) -> String {
        let p = self.inner.lock().unwrap();
        let secs = p.created.elapsed().as_secs_f64();
        if !p.ice_connected {
            let remote = match &p.remote_candidates {
                None => "no answer applied".to_owned(),
                Some(r) if r.is_empty() => {
                    "none in the answer (only peer-reflexive ones could work)".to_owned()
                }
                Some(r) => r.join(", "),
            };
            let how = if p.ice == RTCIceConnectionState::Failed {
                "ICE failed".to_owned()
            } else {
                format!("ICE did not connect in {secs:.0} s (state {})", p.ice)
            };
            return format!(
                "{how}: no candidate pair worked; this client's candidates: {}; the server's: \
                 {remote}",
                if p.local_candidates.is_empty() {
                    "none".to_owned()
                } else {
                    p.local_candidates.join(", ")
                }
            );
        }
        if !p.connected {
            return format!(
                "ICE connected but DTLS did not complete (connection {state} after {secs:.0} s)"
            );
        }
        if !p.track {
            return format!(
                "connected, but the server sent no video track in {secs:.0} s (connection {state})"
            );
        }
        if c.packets == 0 {
            return format!("the video track carried no RTP packet in {secs:.0} s");
        }
        format!(
            "the video track carried {} RTP packets but no decodable frame in {secs:.0} s ({} \
             frames dropped waiting for a whole keyframe, {} broken)",
            c.packets, c.frames_dropped, c.broken_frames
        )
    }
}

/// `ADDRESS:PORT TYPE/PROTOCOL` of every `a=candidate` line, in order, without repeats.
pub(crate) fn candidates(sdp: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in sdp.lines() {
        let Some(rest) = line.trim().strip_prefix("a=candidate:") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // foundation component transport priority address port "typ" type ...
        if f.len() < 8 || !f[6].eq_ignore_ascii_case("typ") {
            continue;
        }
        let addr = if f[4].contains(':') {
            format!("[{}]", f[4])
        } else {
            f[4].to_owned()
        };
        let c = format!("{addr}:{} {}/{}", f[5], f[7], f[2].to_ascii_lowercase());
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The first `m=video` section of `sdp`.
fn video_section(sdp: &str) -> Option<&str> {
    let start = sdp.find("m=video ")?;
    let rest = &sdp[start..];
    let end = rest[1..].find("\nm=").map(|i| i + 2).unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n\
        a=candidate:1 1 UDP 2015363327 10.0.0.2 41000 typ host\r\n\
        a=candidate:2 1 udp 1679819007 198.51.100.7 41001 typ srflx raddr 10.0.0.2 rport 41000\r\n\
        a=candidate:1 1 UDP 2015363327 10.0.0.2 41000 typ host\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";

    #[test]
    fn lists_candidates_once() {
        assert_eq!(
            candidates(ANSWER),
            ["10.0.0.2:41000 host/udp", "198.51.100.7:41001 srflx/udp"]
        );
    }

    #[test]
    fn an_answer_we_cannot_decode_is_named() {
        let p = Progress::new("", vec![Codec::H264]);
        let e = p.answer(ANSWER).unwrap_err().to_string();
        assert!(e.contains("VP8") && e.contains("offered h264"), "{e}");
        let p = Progress::new("", vec![Codec::H264, Codec::Vp8]);
        assert_eq!(p.answer(ANSWER).unwrap(), Codec::Vp8);
        let rejected = ANSWER.replace("m=video 9 ", "m=video 0 ");
        let e = p.answer(&rejected).unwrap_err().to_string();
        assert!(e.contains("rejects the video"), "{e}");
    }

    #[test]
    fn explains_ice_first() {
        let p = Progress::new("a=candidate:1 1 udp 1 192.0.2.9 5000 typ host\r\n", vec![]);
        let _ = p.answer(ANSWER);
        p.ice_state(RTCIceConnectionState::Failed);
        let line = p.explain(RTCPeerConnectionState::Failed, ClientCounters::default());
        assert!(line.starts_with("ICE failed"), "{line}");
        assert!(line.contains("192.0.2.9:5000 host/udp"), "{line}");
        assert!(line.contains("10.0.0.2:41000 host/udp"), "{line}");
        p.ice_state(RTCIceConnectionState::Connected);
        let line = p.explain(
            RTCPeerConnectionState::Connecting,
            ClientCounters::default(),
        );
        assert!(line.contains("DTLS"), "{line}");
        p.peer_state(RTCPeerConnectionState::Connected);
        let line = p.explain(RTCPeerConnectionState::Connected, ClientCounters::default());
        assert!(line.contains("no video track"), "{line}");
    }
}
