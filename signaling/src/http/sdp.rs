//! Cheap, pure checks of what clients send: the SDP offer (syntax only; the backend parses it
//! for real) and RFC 8840 trickle-ICE fragments, parsed into [`TrickleFragment`].

use crate::backend::TrickleFragment;

/// Most candidates one `PATCH` may carry.
pub const MAX_CANDIDATES: usize = 64;

/// Why an offer failed the syntactic check. The client sees [`OfferError::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// Empty body.
    #[error("empty offer")]
    Empty,
    /// Not UTF-8, or holds NUL bytes.
    #[error("offer is not UTF-8 text")]
    NotText,
    /// Does not start with `v=0`.
    #[error("offer does not start with v=0")]
    NoVersion,
    /// No `m=` line.
    #[error("offer has no m= line")]
    NoMedia,
}

impl OfferError {
    /// The short text sent to the client.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Empty => "empty offer",
            Self::NotText => "offer is not UTF-8 text",
            Self::NoVersion => "offer does not start with v=0",
            Self::NoMedia => "offer has no m= line",
        }
    }
}

/// A quick look at an offer before the backend gets it: non-empty UTF-8 text without NUL
/// bytes, starting with a `v=0` line, with at least one `m=` line. The size cap is enforced
/// while reading the body. Returns the offer as text.
pub fn check_offer(body: &[u8]) -> Result<&str, OfferError> {
    if body.is_empty() {
        return Err(OfferError::Empty);
    }
    let text = std::str::from_utf8(body).map_err(|_| OfferError::NotText)?;
    if text.contains('\0') {
        return Err(OfferError::NotText);
    }
    let mut lines = text.lines();
    if lines.next().map(|l| l.trim_end_matches('\r')) != Some("v=0") {
        return Err(OfferError::NoVersion);
    }
    if !lines.any(|l| l.starts_with("m=")) {
        return Err(OfferError::NoMedia);
    }
    Ok(text)
}

/// Why a trickle-ICE fragment was refused. The client sees [`FragmentError::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// Not UTF-8 text.
    #[error("fragment is not UTF-8 text")]
    NotText,
    /// A line is not `<letter>=<value>` or holds control characters.
    #[error("malformed fragment line {0}")]
    Syntax(usize),
    /// An `a=candidate` line does not have the RFC 8839 shape.
    #[error("malformed candidate on line {0}")]
    BadCandidate(usize),
    /// `a=ice-ufrag`, `a=ice-pwd` or `a=mid` has a bad value.
    #[error("malformed ice-ufrag, ice-pwd or mid on line {0}")]
    BadAttribute(usize),
    /// The same attribute appears twice with different values.
    #[error("conflicting values for one attribute on line {0}")]
    Conflict(usize),
    /// More than [`MAX_CANDIDATES`] candidates.
    #[error("too many candidates")]
    TooManyCandidates,
    /// No credentials, candidates or end-of-candidates.
    #[error("empty fragment")]
    Empty,
}

impl FragmentError {
    /// The short text sent to the client.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotText => "fragment is not UTF-8 text",
            Self::Syntax(_) => "malformed fragment line",
            Self::BadCandidate(_) => "malformed candidate",
            Self::BadAttribute(_) => "malformed ice-ufrag, ice-pwd or mid",
            Self::Conflict(_) => "conflicting attribute values",
            Self::TooManyCandidates => "too many candidates",
            Self::Empty => "empty fragment",
        }
    }
}

/// Parse an `application/trickle-ice-sdpfrag` body (RFC 8840 §9).
///
/// Takes `a=ice-ufrag`, `a=ice-pwd` (session level or first media section), `a=mid`,
/// `a=candidate:…` and `a=end-of-candidates` of the first media section (or session level).
/// Later media sections are skipped: edgedesk answers with BUNDLE, so every media shares the
/// first section's transport, and browsers only trickle candidates for it. Other lines and
/// attributes (`m=`, `a=ice-options`, `a=group`, …) are accepted and ignored, as the RFC asks.
/// Lines end in CRLF or LF; line numbers in errors count from 1.
pub fn parse_trickle_fragment(body: &[u8]) -> Result<TrickleFragment, FragmentError> {
    let text = std::str::from_utf8(body).map_err(|_| FragmentError::NotText)?;
    let mut frag = TrickleFragment::default();
    // 0: session level, 1: first media section, 2+: later sections (skipped).
    let mut section = 0usize;
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let bytes = line.as_bytes();
        let well_formed = bytes.len() >= 2
            && bytes[0].is_ascii_lowercase()
            && bytes[1] == b'='
            && !line.chars().any(|c| c.is_control() && c != '\t');
        if !well_formed {
            return Err(FragmentError::Syntax(n));
        }
        let value = &line[2..];
        match bytes[0] {
            b'm' => section += 1,
            b'a' if section <= 1 => {
                let (name, arg) = match value.split_once(':') {
                    Some((name, arg)) => (name, Some(arg)),
                    None => (value, None),
                };
                match (name, arg) {
                    ("ice-ufrag", Some(v)) => {
                        set_once(&mut frag.ice_ufrag, ice_chars(v, 4, n)?, n)?;
                    }
                    ("ice-pwd", Some(v)) => {
                        set_once(&mut frag.ice_pwd, ice_chars(v, 22, n)?, n)?;
                    }
                    ("mid", Some(v)) if section == 1 => {
                        let ok = !v.is_empty()
                            && v.len() <= 64
                            && v.bytes().all(|b| b.is_ascii_graphic());
                        if !ok {
                            return Err(FragmentError::BadAttribute(n));
                        }
                        set_once(&mut frag.mid, v, n)?;
                    }
                    ("candidate", Some(_)) => {
                        check_candidate(value, n)?;
                        if frag.candidates.len() == MAX_CANDIDATES {
                            return Err(FragmentError::TooManyCandidates);
                        }
                        frag.candidates.push(value.to_owned());
                    }
                    ("end-of-candidates", None) => frag.end_of_candidates = true,
                    _ => {}
                }
            }
            // v=, o=, s=, t=, c=, and attributes of later sections carry nothing we use.
            _ => {}
        }
    }
    if frag.ice_ufrag.is_none()
        && frag.ice_pwd.is_none()
        && frag.candidates.is_empty()
        && !frag.end_of_candidates
    {
        return Err(FragmentError::Empty);
    }
    Ok(frag)
}

/// Set `slot` to `value` unless it already holds a different value.
fn set_once(slot: &mut Option<String>, value: &str, line: usize) -> Result<(), FragmentError> {
    match slot {
        Some(old) if old != value => Err(FragmentError::Conflict(line)),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value.to_owned());
            Ok(())
        }
    }
}

/// RFC 8839 `ice-char` (ALPHA / DIGIT / `+` / `/`), `min..=256` of them.
fn ice_chars(v: &str, min: usize, line: usize) -> Result<&str, FragmentError> {
    let ok = (min..=256).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    ok.then_some(v).ok_or(FragmentError::BadAttribute(line))
}

/// `candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> …`
/// (RFC 8839 §5.1), checked for shape only.
fn check_candidate(value: &str, line: usize) -> Result<(), FragmentError> {
    let bad = FragmentError::BadCandidate(line);
    let rest = value.strip_prefix("candidate:").ok_or(bad)?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let ok = value.len() <= 1024
        && f.len() >= 8
        && (1..=32).contains(&f[0].len())
        && f[1].parse::<u16>().is_ok()
        && f[3].parse::<u32>().is_ok()
        && f[5].parse::<u16>().is_ok()
        && f[6] == "typ";
    ok.then_some(()).ok_or(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAND: &str =
        "candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw";

    #[test]
    fn offer_check() {
        let ok = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
        assert!(check_offer(ok).is_ok());
        assert!(check_offer(b"v=0\nm=audio 9 RTP/AVP 0\n").is_ok());
        assert_eq!(check_offer(b""), Err(OfferError::Empty));
        assert_eq!(check_offer(b"\xff\xfe"), Err(OfferError::NotText));
        assert_eq!(check_offer(b"v=0\n\0m=x\n"), Err(OfferError::NotText));
        assert_eq!(check_offer(b"hello"), Err(OfferError::NoVersion));
        assert_eq!(check_offer(b"v=1\nm=x\n"), Err(OfferError::NoVersion));
        assert_eq!(check_offer(b"v=0x\nm=x\n"), Err(OfferError::NoVersion));
        assert_eq!(check_offer(b"v=0\r\ns=-\r\n"), Err(OfferError::NoMedia));
    }

    #[test]
    fn browser_style_fragment() {
        let body = format!(
            "a=ice-ufrag:EsAw\r\na=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na={CAND}\r\na=end-of-candidates\r\n"
        );
        let f = parse_trickle_fragment(body.as_bytes()).unwrap();
        assert_eq!(
            f,
            TrickleFragment {
                ice_ufrag: Some("EsAw".into()),
                ice_pwd: Some("bP+XJMM09aR8AiX1jdukzR6Y".into()),
                mid: Some("0".into()),
                candidates: vec![CAND.into()],
                end_of_candidates: true,
            }
        );
    }

    #[test]
    fn lf_lines_and_media_level_credentials() {
        let body = format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\na=mid:v\na=ice-ufrag:abcd\na=ice-pwd:0123456789012345678901\na={CAND}\na={CAND}\n"
        );
        let f = parse_trickle_fragment(body.as_bytes()).unwrap();
        assert_eq!(f.mid.as_deref(), Some("v"));
        assert_eq!(f.ice_ufrag.as_deref(), Some("abcd"));
        assert_eq!(f.candidates.len(), 2);
        assert!(!f.end_of_candidates);
    }

    #[test]
    fn end_of_candidates_only() {
        let f = parse_trickle_fragment(b"a=end-of-candidates").unwrap();
        assert!(f.end_of_candidates);
        assert!(f.candidates.is_empty());
    }

    #[test]
    fn later_sections_are_skipped() {
        let other = CAND.replace("192.0.2.1", "192.0.2.2");
        let body = format!(
            "m=audio 9 RTP/AVP 0\na=mid:0\na={CAND}\nm=video 9 RTP/AVP 0\na=mid:1\na={other}\na=ice-ufrag:zzzz\n"
        );
        let f = parse_trickle_fragment(body.as_bytes()).unwrap();
        assert_eq!(f.mid.as_deref(), Some("0"));
        assert_eq!(f.candidates, vec![CAND.to_owned()]);
        assert_eq!(f.ice_ufrag, None);
    }

    #[test]
    fn unknown_lines_are_ignored() {
        let body =
            format!("v=0\nc=IN IP4 0.0.0.0\na=ice-options:trickle\na=group:BUNDLE 0\na={CAND}\n");
        assert_eq!(
            parse_trickle_fragment(body.as_bytes())
                .unwrap()
                .candidates
                .len(),
            1
        );
    }

    #[test]
    fn errors() {
        use FragmentError::*;
        let p = |s: &str| parse_trickle_fragment(s.as_bytes());
        assert_eq!(parse_trickle_fragment(b"\xff"), Err(NotText));
        assert_eq!(p(""), Err(Empty));
        assert_eq!(p("\r\n\r\n"), Err(Empty));
        assert_eq!(p("a=ice-options:trickle"), Err(Empty));
        assert_eq!(p("hello world"), Err(Syntax(1)));
        assert_eq!(p("a=end-of-candidates\nA=x"), Err(Syntax(2)));
        assert_eq!(
            p("a=candidate:1 1 udp 1 \u{7}1.2.3.4 1 typ host"),
            Err(Syntax(1))
        );
        assert_eq!(p("a=candidate:"), Err(BadCandidate(1)));
        assert_eq!(
            p("a=candidate:1 1 udp 1 1.2.3.4 99999 typ host"),
            Err(BadCandidate(1))
        );
        assert_eq!(
            p("a=candidate:1 1 udp 1 1.2.3.4 9 type host"),
            Err(BadCandidate(1))
        );
        assert_eq!(p("a=ice-ufrag:ab"), Err(BadAttribute(1)));
        assert_eq!(p("a=ice-ufrag:ab cd"), Err(BadAttribute(1)));
        assert_eq!(p("a=ice-pwd:short"), Err(BadAttribute(1)));
        assert_eq!(p("m=a\na=mid:"), Err(BadAttribute(2)));
        assert_eq!(
            p("a=ice-ufrag:abcd\nm=a\na=ice-ufrag:efgh"),
            Err(Conflict(3))
        );
        let many = format!("a={CAND}\n").repeat(MAX_CANDIDATES + 1);
        assert_eq!(p(&many), Err(TooManyCandidates));
        let exactly = format!("a={CAND}\n").repeat(MAX_CANDIDATES);
        assert_eq!(p(&exactly).unwrap().candidates.len(), MAX_CANDIDATES);
    }

    #[test]
    fn garbage_never_panics() {
        let inputs: Vec<Vec<u8>> = vec![
            vec![0; 1000],
            b"=".to_vec(),
            b"a=".to_vec(),
            b"a=:".to_vec(),
            b"a=candidate".to_vec(),
            "a=candidate:\u{1F600} 1 udp 1 x 1 typ host"
                .as_bytes()
                .to_vec(),
            "a=mid:\u{e9}".as_bytes().to_vec(),
            b"\n\n\r\r\n".to_vec(),
            b"m=".repeat(10_000),
        ];
        for input in inputs {
            let _ = parse_trickle_fragment(&input);
            let _ = check_offer(&input);
        }
    }
}
