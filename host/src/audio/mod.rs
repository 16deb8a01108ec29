//! The session's sound: its own sound server ([`server`]), the desktop's sound captured from
//! the server's monitor and encoded to Opus once per session ([`AudioSource`]), sent to every
//! viewer as an audio track (see [`crate::rtp::opus`] and the viewer).
//!
//! Thread and timing: `parec` records the monitor (48 kHz, stereo, s16, a small latency:
//! without one the monitor buffers about 2 s) into a pipe; one thread (`edgedesk-audio`)
//! reads it a frame (10 or 20 ms) at a time, encodes it and broadcasts the packet. Nothing in
//! it waits on video. Each packet carries its first sample's index on the session's audio
//! timeline and the instant it was captured; the timeline follows the capture clock
//! ([`Instant`], the clock video frames are stamped with): it advances one frame per frame
//! and is re-anchored to the clock when it runs ahead of it ([`MAX_DRIFT`]) or lags so far
//! that samples must have been lost ([`MAX_LAG`]), and when the recorder restarts.
//!
//! It runs only while someone listens: `parec` starts with the first subscriber and stops
//! with the last (checked every [`IDLE_POLL`]).

pub mod mic;
pub mod server;

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::broadcast;

pub use server::{AudioServerError, SoundServer};

/// Which way sound flows in a session (`--audio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioMode {
    /// No sound server, no audio track.
    Off,
    /// The desktop's sound to viewers.
    #[default]
    Out,
    /// And controlling viewers' microphones into the session's default source.
    Both,
}

impl std::str::FromStr for AudioMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(AudioMode::Off),
            "out" | "" => Ok(AudioMode::Out),
            "both" => Ok(AudioMode::Both),
            other => Err(format!(
                "unknown audio mode {other:?} (one of: out, both, off)"
            )),
        }
    }
}

impl std::fmt::Display for AudioMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AudioMode::Off => "off",
            AudioMode::Out => "out",
            AudioMode::Both => "both",
        })
    }
}

/// The Opus encoder's application mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpusMode {
    /// General audio (default): music and speech; in-band FEC and DTX work (its SILK layer).
    #[default]
    Audio,
    /// Tuned for speech.
    Voip,
    /// Restricted low delay: CELT only, less look-ahead, but no SILK, so no in-band FEC.
    LowDelay,
}

impl std::str::FromStr for OpusMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "audio" => Ok(OpusMode::Audio),
            "voip" => Ok(OpusMode::Voip),
            "lowdelay" => Ok(OpusMode::LowDelay),
            other => Err(format!(
                "unknown Opus application {other:?} (audio, voip, lowdelay)"
            )),
        }
    }
}

/// How the desktop's sound is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSettings {
    /// Opus frame length: 10 (default, lowest delay) or 20 ms.
    pub frame_ms: u32,
    /// Opus target bitrate (VBR), bit/s.
    pub bitrate_bps: u32,
    pub mode: OpusMode,
}

impl Default for AudioSettings {
    fn default() -> Self {
        AudioSettings {
            frame_ms: 10,
            bitrate_bps: 96_000,
            mode: OpusMode::Audio,
        }
    }
}

/// The sample rate of the session's sound.
pub const RATE: u32 = server::RATE;
/// Channels captured and encoded.
pub const CHANNELS: usize = 2;
/// The timeline is re-anchored to the clock when it runs this far ahead of it (sound cannot
/// arrive before it is captured: the anchor was wrong)…
pub const MAX_DRIFT: Duration = Duration::from_millis(60);
/// …or lags it by this much: more than the recorder buffers, so samples were lost. A smaller
/// lag is sound that waited in the recorder's buffer: its timestamps stay continuous.
pub const MAX_LAG: Duration = Duration::from_millis(500);
/// How often an idle source checks for listeners.
pub const IDLE_POLL: Duration = Duration::from_millis(50);
/// Expected loss the encoder plans in-band FEC for (percent).
const FEC_LOSS_PERCENT: i32 = 5;

/// One encoded Opus frame.
#[derive(Debug, Clone)]
pub struct AudioPacket {
    pub data: Bytes,
    /// Its first sample's index on the session's audio timeline (the timeline follows the
    /// capture clock; see the module docs).
    pub sample: u64,
}

/// Counters of a session's audio.
#[derive(Debug, Default)]
pub struct AudioCounters {
    pub frames_encoded: AtomicU64,
    /// Frames the encoder left for DTX (not sent).
    pub frames_dtx: AtomicU64,
    pub bytes_encoded: AtomicU64,
    /// Recorder restarts after a failure.
    pub recorder_restarts: AtomicU64,
    /// Times the timeline was re-anchored to the clock.
    pub reanchors: AtomicU64,
}

/// Errors of starting the audio source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    #[error("{0}")]
    Server(#[from] AudioServerError),
    #[error("unsupported Opus frame length {0} ms (10 or 20)")]
    FrameLength(u32),
    #[error("opus encoder: {0}")]
    Opus(String),
    #[error("cannot start the audio thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A session's sound: its server, and the capture → Opus thread feeding subscribers.
pub struct AudioSource {
    tx: broadcast::Sender<Arc<AudioPacket>>,
    start: Instant,
    stop: Arc<AtomicBool>,
    recorder: Arc<Mutex<Option<Child>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub counters: Arc<AudioCounters>,
    /// Viewers' microphones played into the session (`--audio both`).
    pub mic: Arc<mic::MicCounters>,
    pub settings: AudioSettings,
    /// Dropped last: the thread and recorder stop first.
    server: SoundServer,
}

impl AudioSource {
    /// Starts encoding `server`'s desktop sound (whenever someone subscribes).
    pub fn start(server: SoundServer, settings: AudioSettings) -> Result<AudioSource, AudioError> {
        if !matches!(settings.frame_ms, 10 | 20) {
            return Err(AudioError::FrameLength(settings.frame_ms));
        }
        let encoder = new_encoder(settings)?;
        let (tx, _) = broadcast::channel(64);
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let recorder = Arc::new(Mutex::new(None));
        let counters = Arc::new(AudioCounters::default());
        let worker = Worker {
            tx: tx.clone(),
            start,
            stop: stop.clone(),
            recorder: recorder.clone(),
            counters: counters.clone(),
            settings,
            pulse_server: server.pulse_server(),
            encoder,
        };
        let thread = std::thread::Builder::new()
            .name("edgedesk-audio".into())
            .spawn(move || worker.run())
            .map_err(AudioError::Thread)?;
        Ok(AudioSource {
            tx,
            start,
            stop,
            recorder,
            thread: Some(thread),
            counters,
            mic: Arc::default(),
            settings,
            server,
        })
    }

    /// Encoded packets from now on (the source records while anyone subscribes).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AudioPacket>> {
        self.tx.subscribe()
    }

    /// The instant sample 0 of the timeline was captured.
    pub fn start_instant(&self) -> Instant {
        self.start
    }

    /// The session's sound server.
    pub fn server(&self) -> &SoundServer {
        &self.server
    }

    /// Adds the session's audio counters to `m` (labelled with `labels`).
    pub fn metrics(&self, m: &mut crate::metrics::Metrics, labels: &[(&'static str, &str)]) {
        let c = &self.counters;
        let mic = &self.mic;
        for (name, help, v) in [
            (
                "edgedesk_audio_frames_encoded_total",
                "Opus frames encoded from the session's sound.",
                &c.frames_encoded,
            ),
            (
                "edgedesk_audio_frames_dtx_total",
                "Opus frames of silence left out (DTX).",
                &c.frames_dtx,
            ),
            (
                "edgedesk_audio_bytes_encoded_total",
                "Opus bytes encoded.",
                &c.bytes_encoded,
            ),
            (
                "edgedesk_audio_recorder_restarts_total",
                "Restarts of the sound recorder after a failure.",
                &c.recorder_restarts,
            ),
            (
                "edgedesk_audio_reanchors_total",
                "Times the audio timeline was re-anchored to the capture clock.",
                &c.reanchors,
            ),
            (
                "edgedesk_mic_packets_total",
                "Microphone packets received from controlling viewers.",
                &mic.packets,
            ),
            (
                "edgedesk_mic_concealed_frames_total",
                "Lost microphone frames concealed.",
                &mic.concealed_frames,
            ),
            (
                "edgedesk_mic_dropped_packets_total",
                "Microphone packets dropped (the player was behind).",
                &mic.dropped_packets,
            ),
            (
                "edgedesk_mic_undecodable_packets_total",
                "Microphone packets that were not valid Opus.",
                &mic.undecodable_packets,
            ),
        ] {
            m.counter(name, help, labels, v.load(Ordering::Relaxed));
        }
    }
}

impl Drop for AudioSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Killing the recorder ends the thread's blocking read.
        if let Some(c) = self
            .recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            let _ = c.kill();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn new_encoder(settings: AudioSettings) -> Result<opus::Encoder, AudioError> {
    let e = |e: opus::Error| AudioError::Opus(e.to_string());
    // The general-audio application by default (see OpusMode and the bench's figures).
    let application = match settings.mode {
        OpusMode::Audio => opus::Application::Audio,
        OpusMode::Voip => opus::Application::Voip,
        OpusMode::LowDelay => opus::Application::LowDelay,
    };
    let mut enc = opus::Encoder::new(RATE, opus::Channels::Stereo, application).map_err(e)?;
    enc.set_bitrate(opus::Bitrate::Bits(settings.bitrate_bps as i32))
        .map_err(e)?;
    enc.set_inband_fec(true).map_err(e)?;
    enc.set_packet_loss_perc(FEC_LOSS_PERCENT).map_err(e)?;
    enc.set_dtx(true).map_err(e)?;
    Ok(enc)
}

/// `secs` of a stereo sine at `hz` and half of full scale, s16le at 48 kHz: a test tone.
pub fn sine_s16le(hz: f64, secs: f64) -> Vec<u8> {
    let n = (f64::from(RATE) * secs) as usize;
    let mut out = Vec::with_capacity(n * 4);
    for i in 0..n {
        let phase = 2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(RATE);
        let v = (0.5 * 32767.0 * phase.sin()) as i16;
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// RMS level of interleaved s16 samples, dBFS.
pub fn level_db(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return -100.0;
    }
    let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / pcm.len() as f64).sqrt() / 32768.0;
    if rms <= 1e-5 {
        -100.0
    } else {
        (20.0 * rms.log10()) as f32
    }
}

/// The audio timeline: sample indices that advance a frame per frame and follow the clock.
#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    /// The next frame's first sample and capture instant, once anchored.
    next: Option<(u64, Instant)>,
}

impl Timeline {
    pub fn new(start: Instant) -> Self {
        Timeline { start, next: None }
    }

    /// Forgets the anchor (the recorder restarted).
    pub fn reset(&mut self) {
        self.next = None;
    }

    /// The sample index and capture instant of a frame of `samples` read at `now`, and
    /// whether the timeline was (re-)anchored for it.
    pub fn place(&mut self, now: Instant, samples: u32) -> (u64, Instant, bool) {
        let duration = Duration::from_nanos(u64::from(samples) * 1_000_000_000 / u64::from(RATE));
        let by_clock = now.checked_sub(duration).unwrap_or(now).max(self.start);
        let (sample, at, anchored) = match self.next {
            Some((sample, at))
                if at <= by_clock + MAX_DRIFT
                    && by_clock.saturating_duration_since(at) <= MAX_LAG =>
            {
                (sample, at, false)
            }
            _ => {
                let s =
                    ((by_clock - self.start).as_nanos() * u128::from(RATE) / 1_000_000_000) as u64;
                // Never backwards: a timestamp already used stays used. The instant follows
                // the sample index, so the two never part.
                let s = self.next.map_or(s, |(n, _)| s.max(n));
                let at = self.start + Duration::from_nanos(s * 1_000_000_000 / u64::from(RATE));
                (s, at, true)
            }
        };
        self.next = Some((sample + u64::from(samples), at + duration));
        (sample, at, anchored)
    }
}

struct Worker {
    tx: broadcast::Sender<Arc<AudioPacket>>,
    start: Instant,
    stop: Arc<AtomicBool>,
    recorder: Arc<Mutex<Option<Child>>>,
    counters: Arc<AudioCounters>,
    settings: AudioSettings,
    pulse_server: String,
    encoder: opus::Encoder,
}

impl Worker {
    fn run(mut self) {
        let samples = RATE * self.settings.frame_ms / 1000;
        let mut raw = vec![0u8; samples as usize * CHANNELS * 2];
        let mut pcm = vec![0i16; samples as usize * CHANNELS];
        let mut out = vec![0u8; 4000];
        let mut timeline = Timeline::new(self.start);
        let mut pipe: Option<std::process::ChildStdout> = None;
        // Recorder failures in a row: each waits twice as long as the one before (the sound
        // server may be gone for good), and only the first of a run is a warning.
        let mut failures: u32 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            if self.tx.receiver_count() == 0 {
                if pipe.take().is_some() {
                    self.stop_recorder();
                    tracing::debug!("no listener: audio capture paused");
                }
                std::thread::sleep(IDLE_POLL);
                continue;
            }
            let reader = match &mut pipe {
                Some(p) => p,
                None => match self.start_recorder() {
                    Ok(p) => {
                        timeline.reset();
                        let _ = self.encoder.reset_state();
                        pipe.insert(p)
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::warn!(error = %e, "cannot start the audio recorder (parec); retrying");
                        }
                        self.backoff(failures);
                        continue;
                    }
                },
            };
            if let Err(e) = reader.read_exact(&mut raw) {
                pipe = None;
                self.stop_recorder();
                if !self.stop.load(Ordering::Relaxed) {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(error = %e, "the audio recorder stopped; restarting it");
                    } else {
                        tracing::debug!(error = %e, failures, "the audio recorder stopped again");
                    }
                    self.counters
                        .recorder_restarts
                        .fetch_add(1, Ordering::Relaxed);
                    self.backoff(failures);
                }
                continue;
            }
            failures = 0;
            let now = Instant::now();
            for (s, b) in pcm.iter_mut().zip(raw.chunks_exact(2)) {
                *s = i16::from_le_bytes([b[0], b[1]]);
            }
            let (sample, _, anchored) = timeline.place(now, samples);
            if anchored {
                self.counters.reanchors.fetch_add(1, Ordering::Relaxed);
            }
            let n = match self.encoder.encode(&pcm, &mut out) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "opus encode failed; frame dropped");
                    continue;
                }
            };
            self.counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
            self.counters
                .bytes_encoded
                .fetch_add(n as u64, Ordering::Relaxed);
            if n <= crate::rtp::opus::DTX_MAX_BYTES {
                self.counters.frames_dtx.fetch_add(1, Ordering::Relaxed);
            }
            let _ = self.tx.send(Arc::new(AudioPacket {
                data: Bytes::copy_from_slice(&out[..n]),
                sample,
            }));
        }
        self.stop_recorder();
    }

    fn start_recorder(&self) -> std::io::Result<std::process::ChildStdout> {
        let mut cmd = Command::new("parec");
        cmd.arg(format!("--server={}", self.pulse_server))
            .arg(format!("--device={}", server::MONITOR))
            .args([
                "--format=s16le",
                "--channels=2",
                "--raw",
                "--client-name=edgedesk",
                "--stream-name=desktop-capture",
            ])
            .arg(format!("--rate={RATE}"))
            .arg(format!("--latency-msec={}", self.settings.frame_ms))
            .arg(format!("--process-time-msec={}", self.settings.frame_ms))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = control::process::spawn_tied(&mut cmd)?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("parec has no stdout"))?;
        let mut slot = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
        if self.stop.load(Ordering::Relaxed) {
            // The source is being dropped and found no recorder to kill: do it here.
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("stopping"));
        }
        *slot = Some(child);
        Ok(out)
    }

    /// Waits 200 ms after the first failure, doubling up to 6.4 s; returns early on stop.
    fn backoff(&self, failures: u32) {
        let wait = Duration::from_millis(200) * (1 << failures.clamp(1, 6).saturating_sub(1));
        let until = Instant::now() + wait;
        while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(IDLE_POLL);
        }
    }

    fn stop_recorder(&self) {
        if let Some(mut c) = self
            .recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [AudioMode::Off, AudioMode::Out, AudioMode::Both] {
            assert_eq!(m.to_string().parse::<AudioMode>(), Ok(m));
        }
        assert!("loud"
            .parse::<AudioMode>()
            .unwrap_err()
            .contains("out, both, off"));
    }

    #[test]
    fn the_timeline_advances_a_frame_per_frame_despite_read_jitter() {
        let t0 = Instant::now();
        let mut t = Timeline::new(t0);
        let (s0, at0, anchored) = t.place(t0 + Duration::from_millis(30), 480);
        assert!(anchored);
        assert_eq!(s0, 20 * 48, "20 ms after the start (read time minus 10 ms)");
        assert_eq!(at0, t0 + Duration::from_millis(20));
        // Read 3 ms late, then 4 ms early: the timeline does not wobble.
        let (s1, at1, a1) = t.place(t0 + Duration::from_millis(43), 480);
        let (s2, _, a2) = t.place(t0 + Duration::from_millis(46), 480);
        assert_eq!((s1, s2), (s0 + 480, s0 + 960));
        assert_eq!(at1, at0 + Duration::from_millis(10));
        assert!(!a1 && !a2);
    }

    #[test]
    fn buffered_sound_keeps_its_timestamps_and_lost_sound_reanchors() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Timeline::new(t0);
        t.place(t0 + ms(10), 480);
        // A 300 ms stall, then the buffered frames at once: continuous, not re-anchored.
        for i in 1..=30u64 {
            let (s, at, anchored) = t.place(t0 + ms(310), 480);
            assert!(!anchored);
            assert_eq!(s, i * 480);
            assert_eq!(at, t0 + ms(10 * i));
        }
        // A 700 ms gap: more than the recorder buffers, so the frame is placed by the clock,
        // its instant matching its sample index.
        let (s, at, anchored) = t.place(t0 + ms(1020), 480);
        assert!(anchored);
        assert_eq!(s, 1010 * 48);
        assert_eq!(at, t0 + ms(1010));
        // A timeline ahead of the clock (impossible for captured sound) re-anchors too, but
        // never backwards: a timestamp already used stays used.
        let (s, _, anchored) = t.place(t0 + ms(900), 480);
        assert!(anchored);
        assert_eq!(s, 1020 * 48);
    }

    #[test]
    fn levels() {
        assert_eq!(level_db(&[0; 960]), -100.0);
        let full: Vec<i16> = (0..960)
            .map(|i| if i % 2 == 0 { 32767 } else { -32767 })
            .collect();
        assert!(level_db(&full) > -0.1);
    }
}
