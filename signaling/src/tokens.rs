//! Join tokens: signed, expiring, scoped to one session and one [`Role`].
//!
//! # Format
//!
//! ```text
//! v1.<base64url(json claims)>.<base64url(HMAC-SHA256(key, "v1.<base64url(json claims)>"))>
//! ```
//!
//! The claims are `{"sid": session, "role": "control"|"view", "exp": unix_secs, "jti": random}`.
//! base64url is unpadded and canonical (RFC 4648 §5). The MAC covers the version prefix and the
//! encoded payload exactly as sent, so no re-encoding can change what was signed. Any replica
//! that holds the key can verify a token on its own ("verified at the edge, no call home").
//!
//! Verification checks, in order: size cap, shape and version, signature (constant time,
//! before any JSON is parsed), claims, session, expiry. `now` is passed in; nothing here
//! reads the clock except the convenience [`Tokens::issue`].
//!
//! An operator may also configure one fixed token ([`Tokens::with_static`], the `--token`
//! flag): it is accepted for every session with the role it was configured with, and compared
//! in constant time (both sides hashed with SHA-256 first, so the length leaks nothing).
//!
//! Tokens are secrets: nothing in this module logs them, and [`Tokens`]' `Debug` output shows
//! neither the key nor the static token.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::backend::Role;

type HmacSha256 = Hmac<Sha256>;

/// Version prefix of the signed token format.
const VERSION: &str = "v1";

/// Longest token [`Tokens::verify`] looks at; anything longer is rejected as malformed before
/// any decoding. A real token is well under 300 bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Shortest key accepted by [`Tokens::from_secret`] (bytes).
pub const MIN_KEY_LEN: usize = 32;

/// Why a token was refused. The HTTP layer answers all of them with one short 401; the
/// variants exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of a known shape (wrong version, wrong number of parts, bad base64, bad
    /// claims JSON, too long, empty).
    #[error("malformed token")]
    Malformed,
    /// The signature does not match the payload under our key.
    #[error("bad token signature")]
    BadSignature,
    /// The token is valid but past its `exp`.
    #[error("token expired")]
    Expired,
    /// The token is valid but for another session.
    #[error("token is for another session")]
    WrongSession,
    /// The token was revoked.
    #[error("token revoked")]
    Revoked,
}

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    /// The token's id (`jti`; `None` for the static token), for revocation.
    pub token_id: Option<String>,
}

/// Invalid token configuration, reported at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenConfigError {
    /// The signing key is shorter than [`MIN_KEY_LEN`] bytes.
    #[error("token signing key must be at least {MIN_KEY_LEN} bytes, got {0}")]
    KeyTooShort(usize),
    /// The static token is empty, longer than [`MAX_TOKEN_LEN`], or holds characters that
    /// cannot travel in an `Authorization: Bearer` header (only visible ASCII is allowed).
    #[error("static token must be 1..={MAX_TOKEN_LEN} visible ASCII characters without spaces")]
    BadStaticToken,
}

/// The signed claims of a v1 token.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claims {
    /// Session the token admits to.
    sid: String,
    /// What the holder may do.
    role: Role,
    /// Expiry, seconds since the Unix epoch; the token is refused from this second on.
    exp: u64,
    /// Random token id (for revocation lists and audit later; not checked yet).
    jti: String,
}

/// The operator's fixed token, stored only as its SHA-256 digest.
struct StaticToken {
    digest: [u8; 32],
    role: Role,
}

/// Issues and verifies join tokens with one HMAC-SHA256 key, and optionally accepts one fixed
/// operator token. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Tokens {
    mac: HmacSha256,
    static_token: Option<StaticToken>,
    /// Revoked token ids (serialisable, for a shared store later).
    revoked: std::sync::RwLock<std::collections::HashSet<String>>,
    /// Where revocations are also appended (one id a line), to outlive this process.
    revocation_log: Option<std::path::PathBuf>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("key", &"<redacted>")
            .field("static_token", &self.static_token.as_ref().map(|s| s.role))
            .finish()
    }
}

/// A fresh id from the OS CSPRNG: 16 bytes, base64url (22 characters, URL-safe).
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

impl Default for Tokens {
    /// Same as [`Tokens::random`].
    fn default() -> Self {
        Self::random()
    }
}

impl Tokens {
    /// Tokens signed with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self::from_key_unchecked(&key)
    }

    /// Tokens signed with a fresh random 32-byte key. Tokens issued by this instance stop
    /// working when the process exits, which is what a single-machine `edgedesk up` wants.
    pub fn random() -> Self {
        Self::new(rand::random::<[u8; 32]>())
    }

    /// Tokens signed with an operator-provided secret (shared by replicas), at least
    /// [`MIN_KEY_LEN`] bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, TokenConfigError> {
        if secret.len() < MIN_KEY_LEN {
            return Err(TokenConfigError::KeyTooShort(secret.len()));
        }
        Ok(Self::from_key_unchecked(secret))
    }

    fn from_key_unchecked(key: &[u8]) -> Self {
        let mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
        Self {
            mac,
            static_token: None,
            revoked: Default::default(),
            revocation_log: None,
        }
    }

    /// Also accept `token` for every session, with `role` (normally [`Role::Control`]).
    pub fn with_static(
        mut self,
        token: impl AsRef<str>,
        role: Role,
    ) -> Result<Self, TokenConfigError> {
        let token = token.as_ref();
        let ok = !token.is_empty()
            && token.len() <= MAX_TOKEN_LEN
            && token.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(TokenConfigError::BadStaticToken);
        }
        self.static_token = Some(StaticToken {
            digest: Sha256::digest(token.as_bytes()).into(),
            role,
        });
        Ok(self)
    }

    /// Issue a token for `session` and `role`, valid for `ttl` from the current time.
    pub fn issue(&self, session: &str, role: Role, ttl: Duration) -> String {
        self.issue_at(session, role, ttl, SystemTime::now())
    }

    /// [`issue`](Self::issue), also returning the token's id (for revocation).
    pub fn issue_with_id(&self, session: &str, role: Role, ttl: Duration) -> (String, String) {
        let jti = random_id();
        let token = self.issue_claims(session, role, ttl, SystemTime::now(), jti.clone());
        (token, jti)
    }

    /// Revoke the token with id `token_id`: [`verify`](Self::verify) refuses it from now on
    /// (and after a restart, with a [revocation log](Self::with_revocation_log)).
    pub fn revoke(&self, token_id: &str) {
        let new = self
            .revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token_id.to_owned());
        if let (true, Some(path)) = (new, &self.revocation_log) {
            // Ids are base64url; anything else cannot match an issued token anyway.
            if !token_id.is_empty() && token_id.bytes().all(|b| b.is_ascii_graphic()) {
                use std::io::Write as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)
                    .and_then(|mut f| writeln!(f, "{token_id}"));
                if let Err(e) = written {
                    tracing::error!(path = %path.display(), error = %e, "cannot record a revocation");
                }
            }
        }
    }

    /// Revocations are also kept in file `path` (one token id a line), and those already
    /// there are revoked now: a restarted control plane still refuses revoked tokens.
    pub fn with_revocation_log(mut self, path: std::path::PathBuf) -> std::io::Result<Self> {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut r = self.revoked.write().unwrap_or_else(|p| p.into_inner());
                r.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.revocation_log = Some(path);
        Ok(self)
    }

    /// The revoked token ids, sorted.
    pub fn revoked(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Issue a token for `session` and `role`, valid for `ttl` (whole seconds) from `now`.
    pub fn issue_at(&self, session: &str, role: Role, ttl: Duration, now: SystemTime) -> String {
        self.issue_claims(session, role, ttl, now, random_id())
    }

    fn issue_claims(
        &self,
        session: &str,
        role: Role,
        ttl: Duration,
        now: SystemTime,
        jti: String,
    ) -> String {
        let claims = Claims {
            sid: session.to_owned(),
            role,
            exp: unix_secs(now).saturating_add(ttl.as_secs()),
            jti,
        };
        // Serialising a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let signing_input = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(json));
        let sig = self.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Check `token` for `session` at time `now`; on success, the role it grants.
    ///
    /// Never panics, whatever the input.
    pub fn verify(&self, token: &str, session: &str, now: SystemTime) -> Result<Role, TokenError> {
        self.verify_grant(token, session, now).map(|g| g.role)
    }

    /// [`verify`](Self::verify), with the token's id.
    pub fn verify_grant(
        &self,
        token: &str,
        session: &str,
        now: SystemTime,
    ) -> Result<Grant, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        if let Some(role) = self.check_static(token) {
            return Ok(Grant {
                role,
                token_id: None,
            });
        }

        let (signing_input, sig_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (version, payload_b64) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
        if version != VERSION || payload_b64.contains('.') {
            return Err(TokenError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| TokenError::Malformed)?;
        self.mac
            .clone()
            .chain_update(signing_input.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;

        // Only signed bytes get this far.
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.sid != session {
            return Err(TokenError::WrongSession);
        }
        if unix_secs(now) >= claims.exp {
            return Err(TokenError::Expired);
        }
        if self
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&claims.jti)
        {
            return Err(TokenError::Revoked);
        }
        Ok(Grant {
            role: claims.role,
            token_id: Some(claims.jti),
        })
    }

    /// The static token's role when `token` is the configured static token.
    fn check_static(&self, token: &str) -> Option<Role> {
        let st = self.static_token.as_ref()?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(digest.ct_eq(&st.digest)).then_some(st.role)
    }

    fn sign(&self, data: &[u8]) -> [u8; 32] {
        self.mac
            .clone()
            .chain_update(data)
            .finalize()
            .into_bytes()
            .into()
    }
}

/// Seconds since the Unix epoch; times before it count as 0.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_outlive_the_process_with_a_log() {
        let path =
            std::env::temp_dir().join(format!("edgedesk-revoked-{:016x}", rand::random::<u64>()));
        let key = [9u8; 32];
        let a = Tokens::new(key).with_revocation_log(path.clone()).unwrap();
        let (token, id) = a.issue_with_id("s", Role::Control, Duration::from_secs(60));
        a.revoke(&id);
        a.revoke(&id);
        a.revoke("bad\nid");
        let b = Tokens::new(key).with_revocation_log(path.clone()).unwrap();
        assert_eq!(
            b.verify(&token, "s", SystemTime::now()),
            Err(TokenError::Revoked)
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{id}\n"));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn revoked_tokens_are_refused_and_listed() {
        let t = Tokens::random();
        let (a, a_id) = t.issue_with_id("s1", Role::View, Duration::from_secs(60));
        let (b, _) = t.issue_with_id("s1", Role::Control, Duration::from_secs(60));
        let g = t.verify_grant(&a, "s1", SystemTime::now()).unwrap();
        assert_eq!(
            g,
            Grant {
                role: Role::View,
                token_id: Some(a_id.clone())
            }
        );
        t.revoke(&a_id);
        assert_eq!(
            t.verify(&a, "s1", SystemTime::now()),
            Err(TokenError::Revoked)
        );
        assert_eq!(t.verify(&b, "s1", SystemTime::now()), Ok(Role::Control));
        assert_eq!(t.revoked(), vec![a_id]);
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn tokens() -> Tokens {
        Tokens::new([7; 32])
    }

    /// Split a token into its three parts.
    fn parts(token: &str) -> (String, String, String) {
        let v: Vec<&str> = token.split('.').collect();
        assert_eq!(v.len(), 3, "{token}");
        (v[0].into(), v[1].into(), v[2].into())
    }

    #[test]
    fn round_trip_both_roles() {
        let tk = tokens();
        let now = t(1_700_000_000);
        for role in [Role::Control, Role::View] {
            let token = tk.issue_at("s1", role, HOUR, now);
            assert!(token.starts_with("v1."));
            assert_eq!(tk.verify(&token, "s1", now), Ok(role));
            assert_eq!(
                tk.verify(&token, "s1", now + HOUR - Duration::from_secs(1)),
                Ok(role)
            );
        }
    }

    #[test]
    fn issue_uses_the_clock() {
        let tk = tokens();
        let token = tk.issue("s1", Role::View, HOUR);
        assert_eq!(tk.verify(&token, "s1", SystemTime::now()), Ok(Role::View));
    }

    #[test]
    fn tokens_are_unique() {
        let tk = tokens();
        let a = tk.issue_at("s1", Role::View, HOUR, t(10));
        let b = tk.issue_at("s1", Role::View, HOUR, t(10));
        assert_ne!(a, b, "jti makes every token distinct");
    }

    #[test]
    fn expired() {
        let tk = tokens();
        let token = tk.issue_at("s1", Role::Control, HOUR, t(1000));
        assert_eq!(
            tk.verify(&token, "s1", t(1000 + 3600)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            tk.verify(&token, "s1", t(u64::MAX / 2)),
            Err(TokenError::Expired)
        );
        let zero = tk.issue_at("s1", Role::Control, Duration::ZERO, t(1000));
        assert_eq!(tk.verify(&zero, "s1", t(1000)), Err(TokenError::Expired));
    }

    #[test]
    fn wrong_session() {
        let tk = tokens();
        let token = tk.issue_at("s1", Role::Control, HOUR, t(0));
        assert_eq!(tk.verify(&token, "s2", t(0)), Err(TokenError::WrongSession));
        assert_eq!(tk.verify(&token, "", t(0)), Err(TokenError::WrongSession));
    }

    #[test]
    fn other_key_is_bad_signature() {
        let token = tokens().issue_at("s1", Role::Control, HOUR, t(0));
        let other = Tokens::new([8; 32]);
        assert_eq!(
            other.verify(&token, "s1", t(0)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload() {
        let tk = tokens();
        let token = tk.issue_at("s1", Role::View, HOUR, t(0));
        let (v, _, sig) = parts(&token);
        // A payload that claims control, re-encoded, with the old signature.
        let forged =
            URL_SAFE_NO_PAD.encode(br#"{"sid":"s1","role":"control","exp":99999999999,"jti":"x"}"#);
        assert_eq!(
            tk.verify(&format!("{v}.{forged}.{sig}"), "s1", t(0)),
            Err(TokenError::BadSignature)
        );
        // Flip one character of the payload.
        let (_, payload, _) = parts(&token);
        let mut bytes = payload.into_bytes();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert_eq!(
            tk.verify(&format!("{v}.{flipped}.{sig}"), "s1", t(0)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_signature() {
        let tk = tokens();
        let token = tk.issue_at("s1", Role::View, HOUR, t(0));
        let (v, payload, sig) = parts(&token);
        let mut raw = URL_SAFE_NO_PAD.decode(&sig).unwrap();
        raw[0] ^= 1;
        let bad = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(
            tk.verify(&format!("{v}.{payload}.{bad}"), "s1", t(0)),
            Err(TokenError::BadSignature)
        );
        // Truncated and empty signatures.
        let short = URL_SAFE_NO_PAD.encode(&raw[..16]);
        assert_eq!(
            tk.verify(&format!("{v}.{payload}.{short}"), "s1", t(0)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            tk.verify(&format!("{v}.{payload}."), "s1", t(0)),
            Err(TokenError::BadSignature)
        );
        // Non-canonical encoding of the same signature bytes (padding) is not accepted.
        let padded = format!("{sig}=");
        assert_eq!(
            tk.verify(&format!("{v}.{payload}.{padded}"), "s1", t(0)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn signed_but_bad_claims_is_malformed() {
        let tk = tokens();
        for payload in [
            &b"not json"[..],
            br#"{"sid":"s1"}"#,
            br#"{"sid":"s1","role":"admin","exp":1,"jti":""}"#,
        ] {
            let input = format!("v1.{}", URL_SAFE_NO_PAD.encode(payload));
            let sig = URL_SAFE_NO_PAD.encode(tk.sign(input.as_bytes()));
            assert_eq!(
                tk.verify(&format!("{input}.{sig}"), "s1", t(0)),
                Err(TokenError::Malformed)
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let tk = tokens();
        let huge = "a".repeat(1 << 20);
        let huge_dots = "v1.".repeat(400_000);
        let cases: Vec<&str> = vec![
            "",
            ".",
            "..",
            "...",
            "v1",
            "v1.",
            "v1..",
            "v2.e30.AAAA",
            "v1.!!!!.????",
            "v1.e30.AAAA.AAAA",
            "Bearer xyz",
            "\u{0}\u{1}\u{2}",
            "v1.\u{1F600}.\u{1F600}",
            &huge,
            &huge_dots,
        ];
        for c in cases {
            assert!(
                tk.verify(c, "s1", t(0)).is_err(),
                "{:?}",
                &c[..c.len().min(20)]
            );
        }
        assert_eq!(tk.verify("", "s1", t(0)), Err(TokenError::Malformed));
        assert_eq!(tk.verify(&huge, "s1", t(0)), Err(TokenError::Malformed));
        assert_eq!(
            tk.verify("v1.!!!!.????", "s1", t(0)),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            tk.verify("v2.e30.AAAA", "s1", t(0)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn static_token() {
        let tk = tokens()
            .with_static("operator-secret", Role::Control)
            .unwrap();
        assert_eq!(tk.verify("operator-secret", "any", t(0)), Ok(Role::Control));
        assert_eq!(
            tk.verify("operator-secret", "other", t(u64::MAX / 4)),
            Ok(Role::Control)
        );
        assert_eq!(
            tk.verify("operator-secreT", "any", t(0)),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            tk.verify("operator-secret ", "any", t(0)),
            Err(TokenError::Malformed)
        );
        // Signed tokens still work next to it.
        let token = tk.issue_at("s1", Role::View, HOUR, t(0));
        assert_eq!(tk.verify(&token, "s1", t(0)), Ok(Role::View));

        let view = tokens().with_static("v-token", Role::View).unwrap();
        assert_eq!(view.verify("v-token", "s", t(0)), Ok(Role::View));
    }

    #[test]
    fn static_token_config_is_checked() {
        for bad in ["", "has space", "tab\t", "caf\u{e9}"] {
            assert_eq!(
                tokens().with_static(bad, Role::Control).unwrap_err(),
                TokenConfigError::BadStaticToken
            );
        }
        assert!(tokens()
            .with_static("x".repeat(MAX_TOKEN_LEN + 1), Role::Control)
            .is_err());
    }

    #[test]
    fn secret_length_is_checked() {
        assert_eq!(
            Tokens::from_secret(&[1; 31]).unwrap_err(),
            TokenConfigError::KeyTooShort(31)
        );
        let a = Tokens::from_secret(&[1; 48]).unwrap();
        let b = Tokens::from_secret(&[1; 48]).unwrap();
        let token = a.issue_at("s", Role::View, HOUR, t(0));
        assert_eq!(
            b.verify(&token, "s", t(0)),
            Ok(Role::View),
            "replicas share keys"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let tk = tokens()
            .with_static("operator-secret", Role::Control)
            .unwrap();
        let dbg = format!("{tk:?}");
        assert!(!dbg.contains("operator-secret"));
        assert!(dbg.contains("redacted"));
    }
}
