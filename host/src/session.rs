//! Sessions and the host that owns them.
//!
//! A [`Session`] is one desktop: a display, one [`Pipeline`] (one encoder, whatever the
//! number of viewers) and its viewers. The [`Host`] maps session names to sessions and is
//! what the HTTP front door calls.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use codec::registry::EncoderRegistry;
use codec::Codec;

use crate::audio::{AudioMode, AudioSource};
use crate::clipboard::{Clipboard, ClipboardConfig, ClipboardPolicy};
use crate::input::dispatch::InputDispatcher;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineConfig, PipelineError, PipelineStats};
use crate::ratecontrol::RateController;
use crate::viewer::{PeerSettings, SessionLinks, Viewer, ViewerCounters, ViewerError};

/// Errors the host reports to the front door.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error("unknown session")]
    UnknownSession,
    #[error("unknown viewer")]
    UnknownViewer,
    #[error("session already exists")]
    SessionExists,
    #[error("session is full ({0} viewers)")]
    Full(usize),
    #[error("malformed offer: {0}")]
    BadOffer(String),
    /// The offer has none of the session's codecs.
    #[error("{0}")]
    NoCommonCodec(String),
    #[error("{0}")]
    NoEncoder(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("webrtc: {0}")]
    WebRtc(String),
}

impl From<ViewerError> for HostError {
    fn from(e: ViewerError) -> Self {
        match e {
            ViewerError::BadOffer(m) => HostError::BadOffer(m),
            ViewerError::NoCommonCodec(e) => HostError::NoCommonCodec(e.to_string()),
            other => HostError::WebRtc(other.to_string()),
        }
    }
}

/// How a session is set up.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub name: String,
    pub pipeline: PipelineConfig,
    pub peer: PeerSettings,
    pub max_viewers: usize,
    /// The display can change size at run time (Xorg + dummy driver): viewers' resize
    /// requests are applied. Otherwise they are answered `scaledByClient`.
    pub resizable: bool,
    /// Which way clipboard text may flow, and its size cap.
    pub clipboard: ClipboardConfig,
    /// Video codecs in preference order (empty: [`Codec::ALL`]); those without an encoder
    /// on this host are left out at start.
    pub codecs: Vec<Codec>,
}

/// One desktop and its viewers.
pub struct Session {
    pub config: SessionConfig,
    /// The codecs this session sends: its list, limited to the encoders this host has.
    codecs: Vec<Codec>,
    pipeline: Arc<Pipeline>,
    /// XTest injection for controlling viewers; `None` if the display has no XTEST.
    input: Option<Arc<InputDispatcher>>,
    /// The desktop's CLIPBOARD; `None` when the policy is off or X refused it.
    clipboard: Option<Arc<Clipboard>>,
    /// `None` while a viewer's offer is being answered (the slot is reserved).
    viewers: Arc<Mutex<HashMap<String, Option<Arc<Viewer>>>>>,
    /// The counters of viewers that left (metrics stay monotonic).
    departed: Arc<ViewerCounters>,
    started: std::time::Instant,
    /// The encoder's bitrate from the viewers' estimates (congestion control on).
    rate: Option<Arc<Mutex<RateController>>>,
    /// The session's sound (its server and encoder), when it has any.
    audio: Option<Arc<AudioSource>>,
    /// Controlling viewers' microphones are played into the session.
    microphone: bool,
}

/// `wanted` (or every codec, in the default order, when empty) limited to the codecs an
/// available encoder backend emits; an error naming both lists when none is left.
pub fn sendable_codecs(
    wanted: &[Codec],
    registry: &EncoderRegistry,
) -> Result<Vec<Codec>, HostError> {
    let wanted = if wanted.is_empty() {
        &Codec::ALL[..]
    } else {
        wanted
    };
    let have: Vec<Codec> = registry
        .available()
        .iter()
        .flat_map(|b| b.capabilities.codecs.iter().copied())
        .collect();
    let out: Vec<Codec> = wanted
        .iter()
        .copied()
        .filter(|c| have.contains(c))
        .collect();
    if out.is_empty() {
        return Err(HostError::NoEncoder(format!(
            "none of the session's codecs ({}) has an encoder on this host (available: {})",
            join(wanted),
            join(&have)
        )));
    }
    Ok(out)
}

/// Largest picture H.264 is offered for: level 5.2's 36 864 macroblocks (4096x2304). Above
/// it the stream needs level 6.x, which Chromium here does not decode (measured at 7680x4320:
/// libx264 streams, Chromium shows 0 frames in 30 s; VP9 and AV1 play).
pub const H264_MAX_MACROBLOCKS: u32 = 36_864;

/// `codecs` without H.264 when the screen is larger than [`H264_MAX_MACROBLOCKS`] (unless
/// nothing else is left).
pub fn codecs_for_size(codecs: &[Codec], size: Option<(u32, u32)>) -> Vec<Codec> {
    let Some((w, h)) = size else {
        return codecs.to_vec();
    };
    if w.div_ceil(16) * h.div_ceil(16) <= H264_MAX_MACROBLOCKS {
        return codecs.to_vec();
    }
    let rest: Vec<Codec> = codecs
        .iter()
        .copied()
        .filter(|&c| c != Codec::H264)
        .collect();
    if rest.is_empty() {
        codecs.to_vec()
    } else {
        rest
    }
}

fn join(codecs: &[Codec]) -> String {
    codecs
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// A snapshot of a session for stats and listings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionStats {
    pub name: String,
    pub viewers: usize,
    pub pipeline: PipelineStats,
    /// The last frames' host timings (see [`crate::timing`]).
    pub frames: Vec<crate::timing::FrameTiming>,
}

impl Session {
    pub fn start(config: SessionConfig, registry: Arc<EncoderRegistry>) -> Result<Self, HostError> {
        let codecs = sendable_codecs(&config.codecs, &registry)?;
        let mut pipeline_config = config.pipeline.clone();
        pipeline_config.encoder.codec = codecs[0];
        let pipeline = Arc::new(Pipeline::start(pipeline_config, registry)?);
        let input = match InputDispatcher::start(&config.pipeline.display) {
            Ok(i) => Some(Arc::new(i)),
            Err(e) => {
                tracing::warn!(error = %e, "no input injection: viewers can only watch");
                None
            }
        };
        let clipboard = if config.clipboard.policy == ClipboardPolicy::Off {
            None
        } else {
            match Clipboard::start(&config.pipeline.display, config.clipboard.max_bytes) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::warn!(error = %e, "no clipboard sharing");
                    None
                }
            }
        };
        tracing::info!(codecs = %join(&codecs), "session codecs");
        let rate = config
            .peer
            .congestion
            .map(|limits| Arc::new(Mutex::new(RateController::new(limits))));
        Ok(Session {
            config,
            codecs,
            pipeline,
            input,
            clipboard,
            viewers: Arc::default(),
            departed: Arc::default(),
            started: std::time::Instant::now(),
            rate,
            audio: None,
            microphone: false,
        })
    }

    /// Gives the session its sound: viewers that join from now on hear it, and with
    /// [`AudioMode::Both`] controlling viewers' microphones are played into it.
    pub fn attach_audio(&mut self, audio: AudioSource, mode: AudioMode) {
        self.audio = Some(Arc::new(audio));
        self.microphone = mode == AudioMode::Both;
    }

    /// The session's sound, when it has any.
    pub fn audio(&self) -> Option<&Arc<AudioSource>> {
        self.audio.as_ref()
    }

    /// How many viewers the session has (connecting ones included).
    pub fn viewer_count(&self) -> usize {
        self.viewers.lock().unwrap().len()
    }

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            name: self.config.name.clone(),
            viewers: self.viewers.lock().unwrap().len(),
            pipeline: self.pipeline.stats(),
            frames: self.pipeline.timings().snapshot(),
        }
    }

    /// What the session does now: rates over the last second, its viewers and their links.
    pub async fn live(&self) -> control::LiveStats {
        let now = crate::timing::mono_ns();
        let frames = self.pipeline.timings().snapshot();
        let recent: Vec<_> = frames
            .iter()
            .filter(|f| f.encoded_ns != 0 && now.saturating_sub(f.encoded_ns) <= 1_000_000_000)
            .collect();
        let p = self.pipeline.stats();
        let viewers = self.connected();
        let mut addresses = Vec::with_capacity(viewers.len());
        for v in &viewers {
            addresses.push(v.remote_address().await);
        }
        control::LiveStats {
            uptime_secs: self.started.elapsed().as_secs(),
            fps: recent.len() as f64,
            bitrate_bps: recent.iter().map(|f| u64::from(f.bytes) * 8).sum(),
            encode_ms: p.last_encode_us as f64 / 1000.0,
            encoder: p.encoder,
            target_bitrate_bps: self
                .rate
                .as_ref()
                .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).current()),
            viewers: viewers
                .iter()
                .zip(addresses)
                .map(|(v, address)| {
                    let q = v.quality.snapshot();
                    control::LiveViewer {
                        id: v.id.clone(),
                        role: if v.control {
                            control::Role::Control
                        } else {
                            control::Role::View
                        },
                        address,
                        connected_secs: v.created.elapsed().as_secs(),
                        loss: q.loss,
                        rtt_ms: q.rtt_ms,
                        estimate_bps: v.estimate.as_ref().and_then(|e| e.target()),
                        frames_sent: v.counters.frames_sent.load(Ordering::Relaxed),
                    }
                })
                .collect(),
        }
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The session's clipboard bridge, if clipboard sharing is on.
    pub fn clipboard(&self) -> Option<&Arc<Clipboard>> {
        self.clipboard.as_ref()
    }

    /// The session's input thread, if the display supports injection.
    pub fn input(&self) -> Option<&Arc<InputDispatcher>> {
        self.input.as_ref()
    }

    /// Answers a viewer's offer. The slot is reserved before any waiting, so concurrent
    /// offers cannot overfill the session; the peer connection is built in its own task, so
    /// a caller that gives up (a dropped HTTP request) cannot leave a half-built connection.
    pub async fn add_viewer(
        &self,
        offer_sdp: String,
        control: bool,
    ) -> Result<(String, String), HostError> {
        let id = random_id();
        {
            let mut viewers = self.viewers.lock().unwrap();
            if viewers.len() >= self.config.max_viewers {
                return Err(HostError::Full(viewers.len()));
            }
            viewers.insert(id.clone(), None);
        }
        let viewers = self.viewers.clone();
        let departed = self.departed.clone();
        let peer = self.config.peer.clone();
        let links = SessionLinks {
            pipeline: Arc::downgrade(&self.pipeline),
            input: self.input.clone(),
            resize: self
                .config
                .resizable
                .then(|| self.config.pipeline.display.clone()),
            clipboard: self.clipboard.clone(),
            clipboard_config: self.config.clipboard,
            codecs: codecs_for_size(&self.codecs, self.pipeline.screen_size()),
            rate: self.rate.clone(),
            audio: self.audio.as_ref().map(Arc::downgrade),
            microphone: self.microphone,
        };
        let task_id = id.clone();
        let created = tokio::spawn(async move {
            let id = task_id;
            match Viewer::create(id.clone(), control, offer_sdp, &peer, links).await {
                Ok((viewer, answer)) => {
                    let viewer = Arc::new(viewer);
                    viewers
                        .lock()
                        .unwrap()
                        .insert(id.clone(), Some(viewer.clone()));
                    let weak = Arc::downgrade(&viewers);
                    viewer.start(Box::new(move |id: &str| {
                        if let Some(v) = weak.upgrade() {
                            if let Some(Some(gone)) = v.lock().unwrap().remove(id) {
                                departed.absorb(&gone.counters);
                            }
                        }
                    }));
                    Ok(answer)
                }
                Err(e) => {
                    viewers.lock().unwrap().remove(&id);
                    Err(HostError::from(e))
                }
            }
        });
        match created.await {
            Ok(r) => r.map(|answer| (id, answer)),
            Err(e) => {
                self.viewers.lock().unwrap().remove(&id);
                Err(HostError::WebRtc(format!("viewer task failed: {e}")))
            }
        }
    }

    /// The viewers past their offer (the slots of offers being answered left out).
    fn connected(&self) -> Vec<Arc<Viewer>> {
        self.viewers
            .lock()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    /// Adds this session's samples to `m` (labelled `session`).
    pub fn metrics(&self, m: &mut Metrics) {
        let name = self.config.name.as_str();
        let l = [("session", name)];
        let live = self.connected();
        m.gauge(
            "edgedesk_viewers",
            "Viewers connected or connecting.",
            &l,
            live.len() as f64,
        );
        let control = live.iter().filter(|v| v.control).count();
        m.gauge(
            "edgedesk_viewers_control",
            "Viewers allowed to send input.",
            &l,
            control as f64,
        );
        for (role, n) in [("control", control), ("view", live.len() - control)] {
            m.gauge(
                "edgedesk_viewers_by_role",
                "Connected viewers by the role of their join token.",
                &[("session", name), ("role", role)],
                n as f64,
            );
        }
        let quality: Vec<_> = live.iter().map(|v| v.quality.snapshot()).collect();
        if let Some(rtt) = quality.iter().filter_map(|q| q.rtt_ms).reduce(f64::max) {
            m.gauge(
                "edgedesk_rtt_seconds",
                "Round-trip time of the session's slowest viewer, from RTCP receiver reports.",
                &l,
                rtt / 1000.0,
            );
        }
        m.gauge(
            "edgedesk_loss_ratio",
            "Fraction of packets lost by the session's worst viewer in its last receiver report.",
            &l,
            quality.iter().map(|q| q.loss).fold(0.0, f64::max),
        );
        // Per viewer: its link as RTCP and congestion control see it.
        for (v, q) in live.iter().zip(&quality) {
            let vl = [("session", name), ("viewer", v.id.as_str())];
            if let Some(rtt) = q.rtt_ms {
                m.gauge(
                    "edgedesk_viewer_rtt_seconds",
                    "Round-trip time of a viewer's link, from its RTCP receiver reports.",
                    &vl,
                    rtt / 1000.0,
                );
            }
            m.gauge(
                "edgedesk_viewer_loss_ratio",
                "Fraction of packets a viewer lost in its last receiver report.",
                &vl,
                q.loss,
            );
            if let Some(e) = v.estimate.as_ref().and_then(|e| e.target()) {
                m.gauge(
                    "edgedesk_viewer_estimate_bps",
                    "A viewer's bandwidth estimate (congestion control), bit/s.",
                    &vl,
                    e as f64,
                );
            }
        }
        if let Some(rate) = &self.rate {
            m.gauge(
                "edgedesk_target_bitrate_bps",
                "The encoder bitrate congestion control set for the session, bit/s.",
                &l,
                rate.lock().unwrap_or_else(|e| e.into_inner()).current() as f64,
            );
        }
        if let Some(a) = &self.audio {
            a.metrics(m, &l);
        }
        for (i, (metric, help, departed)) in self.departed.fields().into_iter().enumerate() {
            let total = departed.load(Ordering::Relaxed)
                + live
                    .iter()
                    .map(|v| v.counters.fields()[i].2.load(Ordering::Relaxed))
                    .sum::<u64>();
            m.counter(metric, help, &l, total);
        }
        let p = self.pipeline.stats();
        for (metric, help, v) in [
            (
                "edgedesk_frames_captured_total",
                "Screen frames captured.",
                p.frames_captured,
            ),
            (
                "edgedesk_frames_encoded_total",
                "Frames encoded (once for all viewers).",
                p.frames_encoded,
            ),
            (
                "edgedesk_frames_dropped_total",
                "Captured frames replaced by a newer one before encoding.",
                p.frames_dropped,
            ),
            (
                "edgedesk_encoded_bytes_total",
                "Bytes of encoded video.",
                p.bytes_encoded,
            ),
            (
                "edgedesk_keyframes_total",
                "Keyframes encoded.",
                p.keyframes,
            ),
        ] {
            m.counter(metric, help, &l, v);
        }
        for (metric, help, us) in [
            (
                "edgedesk_encode_seconds",
                "Encode time of the last frame.",
                p.last_encode_us,
            ),
            (
                "edgedesk_convert_seconds",
                "Colour conversion time of the last frame.",
                p.last_convert_us,
            ),
        ] {
            m.gauge(metric, help, &l, us as f64 / 1e6);
        }
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        if let Some(input) = &self.input {
            let s = &input.stats;
            for (metric, help, v) in [
                (
                    "edgedesk_input_injected_total",
                    "Input events injected through XTest.",
                    load(&s.injected),
                ),
                (
                    "edgedesk_input_failed_total",
                    "Input injections that failed.",
                    load(&s.failed),
                ),
                (
                    "edgedesk_input_dropped_total",
                    "Input messages dropped because the input queue was full.",
                    load(&s.dropped),
                ),
                (
                    "edgedesk_input_releases_total",
                    "Keys and buttons released for a viewer that left or went silent.",
                    load(&s.releases),
                ),
            ] {
                m.counter(metric, help, &l, v);
            }
            if let Some((p50, p99)) = s.latency_percentiles() {
                for (q, v) in [("0.5", p50), ("0.99", p99)] {
                    m.gauge(
                        "edgedesk_input_latency_seconds",
                        "Input message receipt to XTest request, over the last 4096 messages.",
                        &[("session", name), ("quantile", q)],
                        f64::from(v) / 1e6,
                    );
                }
            }
        }
        if let Some(c) = &self.clipboard {
            let s = &c.stats;
            for (metric, help, v) in [
                (
                    "edgedesk_clipboard_desktop_copies_total",
                    "Desktop clipboard texts read and published to viewers.",
                    load(&s.from_desktop),
                ),
                (
                    "edgedesk_clipboard_too_large_total",
                    "Desktop clipboard texts over the cap, not sent.",
                    load(&s.too_large),
                ),
                (
                    "edgedesk_clipboard_read_failed_total",
                    "Desktop clipboard texts that could not be read.",
                    load(&s.failed),
                ),
            ] {
                m.counter(metric, help, &l, v);
            }
        }
    }

    /// A fully created viewer.
    pub fn viewer(&self, id: &str) -> Option<Arc<Viewer>> {
        self.viewers.lock().unwrap().get(id).cloned().flatten()
    }

    pub async fn remove_viewer(&self, id: &str) -> Result<(), HostError> {
        let v = {
            let mut viewers = self.viewers.lock().unwrap();
            match viewers.get(id) {
                Some(Some(_)) => viewers.remove(id).flatten(),
                _ => None,
            }
        }
        .ok_or(HostError::UnknownViewer)?;
        self.departed.absorb(&v.counters);
        v.close().await;
        Ok(())
    }

    /// Closes every viewer.
    pub async fn close(&self) {
        let all: Vec<_> = self
            .viewers
            .lock()
            .unwrap()
            .drain()
            .filter_map(|(_, v)| v)
            .collect();
        for v in all {
            self.departed.absorb(&v.counters);
            v.close().await;
        }
    }
}

/// All sessions of this process.
#[derive(Default)]
pub struct Host {
    sessions: RwLock<HashMap<String, Arc<Session>>>,
}

impl Host {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, session: Session) -> Result<Arc<Session>, HostError> {
        let mut map = self.sessions.write().unwrap();
        if map.contains_key(&session.config.name) {
            return Err(HostError::SessionExists);
        }
        let s = Arc::new(session);
        map.insert(s.config.name.clone(), s.clone());
        Ok(s)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Session>> {
        self.sessions.read().unwrap().get(name).cloned()
    }

    /// Every session's metrics, in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut m = Metrics::new();
        let sessions = self.list();
        m.gauge(
            "edgedesk_sessions",
            "Sessions on this host.",
            &[],
            sessions.len() as f64,
        );
        for s in sessions {
            s.metrics(&mut m);
        }
        m.render()
    }

    pub fn list(&self) -> Vec<Arc<Session>> {
        self.sessions.read().unwrap().values().cloned().collect()
    }

    pub async fn remove(&self, name: &str) -> Result<(), HostError> {
        let s = self
            .sessions
            .write()
            .unwrap()
            .remove(name)
            .ok_or(HostError::UnknownSession)?;
        s.close().await;
        // Dropping the last reference joins the capture and encode threads: not on a runtime
        // worker.
        let _ = tokio::task::spawn_blocking(move || drop(s)).await;
        Ok(())
    }
}

/// 128 random bits, hex.
pub fn random_id() -> String {
    let v: u128 = rand::random();
    format!("{v:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_is_left_out_above_level_5_2_sizes() {
        let all = [Codec::H264, Codec::Vp9, Codec::Av1];
        assert_eq!(codecs_for_size(&all, Some((4096, 2304))), all);
        assert_eq!(codecs_for_size(&all, None), all);
        assert_eq!(
            codecs_for_size(&all, Some((7680, 4320))),
            [Codec::Vp9, Codec::Av1]
        );
        // Nothing else to send: H.264 it is.
        assert_eq!(
            codecs_for_size(&[Codec::H264], Some((7680, 4320))),
            [Codec::H264]
        );
    }
}
