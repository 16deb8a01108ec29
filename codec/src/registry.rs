//! The encoder registry: every backend is probed once at start (hardware first, software
//! last), absent ones are logged with their reason, and [`EncoderRegistry::open`] picks the
//! first available backend that matches the codec, size and the caller's
//! [`EncoderPreference`], falling back to software with a warning.
//!
//! ```no_run
//! use edgedesk_codec::registry::{EncoderPreference, EncoderRegistry};
//! use edgedesk_codec::EncoderSettings;
//!
//! let registry = EncoderRegistry::probe();
//! for b in registry.backends() {
//!     println!("{}: {:?}", b.name, b.status);
//! }
//! let encoder = registry.open(&EncoderSettings::default(), &EncoderPreference::Auto)?;
//! println!("encoding with {}", encoder.name());
//! # Ok::<(), edgedesk_codec::EncoderError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::encoder::{Encoder, EncoderError, EncoderSettings};
use crate::ffmpeg_backend::{Capabilities, FfmpegBackend};
use crate::vpx_backend::VpxBackend;

/// Which backend the caller would like.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EncoderPreference {
    /// The first available backend in probe order (hardware before software).
    #[default]
    Auto,
    /// Software backends only.
    Software,
    /// Hardware backends first; falls back to software with a warning.
    Hardware,
    /// One backend by name (`ffmpeg:h264_nvenc`, or `h264_nvenc`); falls back to software
    /// with a warning.
    Named(String),
}

impl FromStr for EncoderPreference {
    type Err = std::convert::Infallible;

    /// `auto`, `software`, `hardware`, or a backend name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => EncoderPreference::Auto,
            "software" | "sw" => EncoderPreference::Software,
            "hardware" | "hw" => EncoderPreference::Hardware,
            _ => EncoderPreference::Named(s.trim().to_string()),
        })
    }
}

impl fmt::Display for EncoderPreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncoderPreference::Auto => f.write_str("auto"),
            EncoderPreference::Software => f.write_str("software"),
            EncoderPreference::Hardware => f.write_str("hardware"),
            EncoderPreference::Named(n) => f.write_str(n),
        }
    }
}

/// A backend the registry can probe and open. [`FfmpegBackend`] is the real one; tests can
/// supply their own.
pub trait Backend: Send + Sync {
    /// Name as in [`Encoder::name`], e.g. `ffmpeg:libx264`.
    fn name(&self) -> &str;
    /// What the backend supports when present.
    fn capabilities(&self) -> Capabilities;
    /// Checks the backend works on this machine; [`EncoderError::Unavailable`] says why not.
    fn probe(&self) -> Result<(), EncoderError>;
    /// Opens an encoder.
    fn open(&self, settings: &EncoderSettings) -> Result<Box<dyn Encoder>, EncoderError>;
}

impl Backend for FfmpegBackend {
    fn name(&self) -> &str {
        FfmpegBackend::name(*self)
    }

    fn capabilities(&self) -> Capabilities {
        FfmpegBackend::capabilities(*self)
    }

    fn probe(&self) -> Result<(), EncoderError> {
        FfmpegBackend::probe(*self)
    }

    fn open(&self, settings: &EncoderSettings) -> Result<Box<dyn Encoder>, EncoderError> {
        Ok(Box::new(FfmpegBackend::open(*self, settings)?))
    }
}

/// Whether a probed backend can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendStatus {
    Available,
    Unavailable { reason: String },
}

impl Backend for VpxBackend {
    fn name(&self) -> &str {
        VpxBackend::name(*self)
    }

    fn capabilities(&self) -> Capabilities {
        VpxBackend::capabilities(*self)
    }

    fn probe(&self) -> Result<(), EncoderError> {
        VpxBackend::probe(*self)
    }

    fn open(&self, settings: &EncoderSettings) -> Result<Box<dyn Encoder>, EncoderError> {
        Ok(Box::new(VpxBackend::open(*self, settings)?))
    }
}

/// One probed backend, as [`EncoderRegistry::backends`] lists it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackendInfo {
    pub name: String,
    pub capabilities: Capabilities,
    pub status: BackendStatus,
}

impl BackendInfo {
    /// True when the probe succeeded.
    pub fn is_available(&self) -> bool {
        self.status == BackendStatus::Available
    }
}

struct Entry {
    backend: Box<dyn Backend>,
    info: BackendInfo,
}

/// The probed backends, in probe order. Probe once at start and share it (it is `Sync`).
pub struct EncoderRegistry {
    entries: Vec<Entry>,
}

impl fmt::Debug for EncoderRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.info))
            .finish()
    }
}

impl EncoderRegistry {
    /// Probes every backend: the FFmpeg ones ([`FfmpegBackend::ALL`]: NVENC, VAAPI, then
    /// libx264, libx265, libvpx VP8/VP9 and libaom AV1) with the direct libvpx ones
    /// ([`VpxBackend`], which follow the damage) just before FFmpeg's libvpx; logs one line
    /// per backend (info level; absent ones with the reason).
    pub fn probe() -> Self {
        let mut backends: Vec<Box<dyn Backend>> = Vec::new();
        for b in FfmpegBackend::ALL {
            if b == FfmpegBackend::Libvpx {
                backends.extend(VpxBackend::ALL.map(|v| Box::new(v) as Box<dyn Backend>));
            }
            backends.push(Box::new(b));
        }
        Self::probe_backends(backends)
    }

    /// Probes the given backends in the order given (put software last).
    pub fn probe_backends(backends: Vec<Box<dyn Backend>>) -> Self {
        let entries = backends
            .into_iter()
            .map(|backend| {
                let name = backend.name().to_string();
                let status = match backend.probe() {
                    Ok(()) => {
                        tracing::info!(backend = name, "encoder backend available");
                        BackendStatus::Available
                    }
                    Err(e) => {
                        let reason = match e {
                            EncoderError::Unavailable { reason, .. } => reason,
                            other => other.to_string(),
                        };
                        tracing::info!(backend = name, %reason, "encoder backend unavailable");
                        BackendStatus::Unavailable { reason }
                    }
                };
                let info = BackendInfo {
                    name,
                    capabilities: backend.capabilities(),
                    status,
                };
                Entry { backend, info }
            })
            .collect();
        EncoderRegistry { entries }
    }

    /// Every probed backend, available or not, in probe order.
    pub fn backends(&self) -> Vec<&BackendInfo> {
        self.entries.iter().map(|e| &e.info).collect()
    }

    /// The available backends, in probe order.
    pub fn available(&self) -> Vec<&BackendInfo> {
        self.entries
            .iter()
            .map(|e| &e.info)
            .filter(|i| i.is_available())
            .collect()
    }

    /// Opens an encoder for `settings` on the first available backend that encodes its codec
    /// at its size and matches `preference`. If the preferred backends are absent or fail to
    /// open, falls back to software (with a warning); [`EncoderPreference::Software`] never
    /// uses hardware. Invalid settings fail at once with [`EncoderError::InvalidSettings`].
    pub fn open(
        &self,
        settings: &EncoderSettings,
        preference: &EncoderPreference,
    ) -> Result<Box<dyn Encoder>, EncoderError> {
        settings.validate()?;
        let fits = |e: &&Entry| {
            let c = &e.info.capabilities;
            c.codecs.contains(&settings.codec)
                && settings.width <= c.max_width
                && settings.height <= c.max_height
        };
        let preferred = |e: &&Entry| match preference {
            EncoderPreference::Auto => true,
            EncoderPreference::Software => !e.info.capabilities.hardware,
            EncoderPreference::Hardware => e.info.capabilities.hardware,
            EncoderPreference::Named(n) => {
                let bare = |s: &str| s.strip_prefix("ffmpeg:").unwrap_or(s).to_string();
                e.info.name == *n || bare(&e.info.name) == bare(n)
            }
        };
        let mut failures = Vec::new();
        let mut tried = Vec::new();
        let first_pass: Vec<&Entry> = self.entries.iter().filter(fits).filter(preferred).collect();
        for entry in &first_pass {
            if let Some(enc) = try_open(entry, settings, &mut failures) {
                return Ok(enc);
            }
            tried.push(entry.info.name.as_str());
        }
        if !matches!(
            preference,
            EncoderPreference::Auto | EncoderPreference::Software
        ) {
            for entry in
                self.entries.iter().filter(fits).filter(|e| {
                    !e.info.capabilities.hardware && !tried.contains(&e.info.name.as_str())
                })
            {
                if let Some(enc) = try_open(entry, settings, &mut failures) {
                    tracing::warn!(
                        preference = %preference,
                        backend = entry.info.name,
                        why = failures.join("; "),
                        "preferred encoder backend unavailable, falling back to software"
                    );
                    return Ok(enc);
                }
            }
        }
        Err(EncoderError::Unavailable {
            backend: preference.to_string(),
            reason: if failures.is_empty() {
                format!(
                    "no available backend encodes {:?} at {}x{}",
                    settings.codec, settings.width, settings.height
                )
            } else {
                failures.join("; ")
            },
        })
    }
}

/// Opens `entry` if its probe succeeded; records why not otherwise.
fn try_open(
    entry: &Entry,
    settings: &EncoderSettings,
    failures: &mut Vec<String>,
) -> Option<Box<dyn Encoder>> {
    if let BackendStatus::Unavailable { reason } = &entry.info.status {
        failures.push(format!("{}: {reason}", entry.info.name));
        return None;
    }
    match entry.backend.open(settings) {
        Ok(enc) => Some(enc),
        Err(e) => {
            tracing::warn!(backend = entry.info.name, error = %e, "encoder backend failed to open");
            failures.push(format!("{}: {e}", entry.info.name));
            None
        }
    }
}
