//! The frame path of one session: a capture thread and an encode thread, joined by a
//! newest-wins slot, publishing encoded frames to every viewer.
//!
//! ```text
//! capture thread ──(slot: newest frame wins)──► encode thread ──broadcast──► viewers (tokio)
//!   X11 MIT-SHM,                                 BGRA→I420, Encoder,           one RTP stream each
//!   damage-driven, ≤ fps                         commands between frames
//! ```
//!
//! * No queues: if the encoder is still busy when a new picture arrives, the older unencoded
//!   picture is dropped (latency beats completeness). Three frame buffers circulate.
//! * Capture runs only while at least one viewer is connected, and only when the screen (or
//!   the cursor) changed; a static screen costs a damage wait, nothing else.
//! * Only what changed is handled: the capturer fetches the damaged rectangles into the pooled
//!   buffer, the encode thread converts only the rectangles changed since the frame its YUV
//!   buffer holds ([`DamageLog`]), and the encoder copies only those into its picture. A
//!   frame replaced in the slot passes its damage on to the one replacing it.
//! * Control is typed: [`EncoderCommand`] values travel on a channel to the encode thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use codec::registry::{EncoderPreference, EncoderRegistry};
use codec::{
    Codec, Damage, DamageLog, EncodedFrame, Encoder, EncoderCommand, EncoderSettings, PixelFormat,
    RectSet, VideoFrame,
};
use tokio::sync::broadcast;

use crate::capture::{CaptureStatus, X11Capturer};
use crate::timing::{instant_ns, mono_ns, FrameTiming, FrameTimings};

/// How the pipeline is built.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// X display to capture, e.g. `:99`.
    pub display: String,
    /// Encoder settings; width and height follow the captured screen. Its codec is the one
    /// opened ahead of the first viewer; others open when a viewer wants them.
    pub encoder: EncoderSettings,
    pub preference: EncoderPreference,
}

/// Counters a session exposes (read with [`Pipeline::stats`]).
#[derive(Debug, Default)]
pub struct PipelineCounters {
    pub frames_captured: AtomicU64,
    pub frames_encoded: AtomicU64,
    /// Captured frames replaced in the slot before the encoder took them.
    pub frames_dropped: AtomicU64,
    pub bytes_encoded: AtomicU64,
    pub keyframes: AtomicU64,
    /// Last frame's timings, in microseconds.
    pub last_capture_us: AtomicU64,
    pub last_convert_us: AtomicU64,
    pub last_encode_us: AtomicU64,
}

/// A snapshot of [`PipelineCounters`] plus the encoder in use.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PipelineStats {
    pub frames_captured: u64,
    pub frames_encoded: u64,
    pub frames_dropped: u64,
    pub bytes_encoded: u64,
    pub keyframes: u64,
    pub last_capture_us: u64,
    pub last_convert_us: u64,
    pub last_encode_us: u64,
    pub encoder: String,
}

struct Shared {
    stop: AtomicBool,
    /// Number of viewers that want frames; capture idles at zero.
    active: Mutex<usize>,
    /// Viewers per codec: one encoder runs for each codec with viewers.
    codecs: Mutex<BTreeMap<Codec, usize>>,
    /// Codecs whose next frame must be a keyframe (a viewer joined or lost packets).
    keyframes_wanted: Mutex<BTreeSet<Codec>>,
    active_cv: Condvar,
    /// Capture a frame now even without damage (new viewer, keyframe request, resize).
    force_capture: AtomicBool,
    slot: Mutex<Slot>,
    slot_cv: Condvar,
    counters: PipelineCounters,
    encoder_name: Mutex<String>,
    /// Last captured screen size, `width << 32 | height` (the display's at start before the
    /// first frame).
    screen_size: AtomicU64,
    /// When a keyframe was last forced on request (PLI, loss), per codec, for coalescing.
    last_keyframe_request: Mutex<BTreeMap<Codec, Instant>>,
    timings: FrameTimings,
}

/// Keyframe requests (PLI/FIR, a lagging viewer) closer together than this are coalesced
/// into one, so one viewer's losses cannot flood every viewer with keyframes.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(300);

/// While viewers watch, the whole screen is grabbed (and converted) this often, and on a
/// screen that reports no damage one frame is captured and encoded this often anyway. XDamage
/// can fall silent: on Xvfb, with openbox and xterm starting while the capturer is already
/// connected, no DamageNotify arrived for seconds although the screen changed (reproduced;
/// cause not found yet). A static-screen P-frame costs ~4 ms of CPU and ~100 bytes, a whole
/// 1080p grab and conversion ~1.5 ms, so this bounds staleness at one second for ~0.5 % of a
/// core.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Slot {
    newest: Option<VideoFrame>,
    /// When `newest`'s grab started.
    newest_grab: Option<Instant>,
    free: Vec<VideoFrame>,
}

/// A running capture + encode pipeline. Dropping it stops both threads.
pub struct Pipeline {
    shared: Arc<Shared>,
    commands: Mutex<mpsc::Sender<EncoderCommand>>,
    frames: broadcast::Sender<Arc<EncodedFrame>>,
    threads: Vec<JoinHandle<()>>,
}

/// Errors starting a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error("capture: {0}")]
    Capture(#[from] crate::capture::CaptureError),
    #[error("cannot start thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl Pipeline {
    /// Connects to the display (so a bad display fails here, clearly) and starts both threads.
    /// Nothing is captured until [`Pipeline::viewer_joined`].
    pub fn start(
        config: PipelineConfig,
        registry: Arc<EncoderRegistry>,
    ) -> Result<Pipeline, PipelineError> {
        let capturer = X11Capturer::connect(&config.display)?;
        let screen = capturer.size();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            active: Mutex::new(0),
            codecs: Mutex::default(),
            keyframes_wanted: Mutex::default(),
            active_cv: Condvar::new(),
            force_capture: AtomicBool::new(true),
            slot: Mutex::new(Slot::default()),
            slot_cv: Condvar::new(),
            counters: PipelineCounters::default(),
            encoder_name: Mutex::new(String::new()),
            screen_size: AtomicU64::new(u64::from(screen.0) << 32 | u64::from(screen.1)),
            last_keyframe_request: Mutex::default(),
            timings: FrameTimings::default(),
        });
        // Room for a few frames of each codec in use before a slow viewer lags.
        let (frames, _) = broadcast::channel(16);
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let fps = config.encoder.fps.max(1);
        let capture = {
            let shared = shared.clone();
            let display = config.display.clone();
            std::thread::Builder::new()
                .name(format!("capture{}", config.display))
                .spawn(move || capture_loop(capturer, display, fps, &shared))?
        };
        let encode = {
            let shared = shared.clone();
            let frames = frames.clone();
            std::thread::Builder::new()
                .name(format!("encode{}", config.display))
                .spawn(move || encode_loop(config, screen, registry, cmd_rx, frames, &shared))?
        };
        Ok(Pipeline {
            shared,
            commands: Mutex::new(cmd_tx),
            frames,
            threads: vec![capture, encode],
        })
    }

    /// Subscribe to encoded frames. A receiver that lags loses frames and must ask for a
    /// keyframe.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EncodedFrame>> {
        self.frames.subscribe()
    }

    /// A viewer of `codec` starts watching: capture runs, that codec's encoder runs, and its
    /// next frame is a keyframe (always: the viewer waits for one).
    pub fn viewer_joined(&self, codec: Codec) {
        *self.shared.codecs.lock().unwrap().entry(codec).or_default() += 1;
        *self.shared.active.lock().unwrap() += 1;
        self.force_keyframe(codec);
    }

    /// A viewer of `codec` stopped watching.
    pub fn viewer_left(&self, codec: Codec) {
        {
            let mut codecs = self.shared.codecs.lock().unwrap();
            if let Some(n) = codecs.get_mut(&codec) {
                *n -= 1;
                if *n == 0 {
                    codecs.remove(&codec);
                }
            }
        }
        let mut n = self.shared.active.lock().unwrap();
        *n = n.saturating_sub(1);
    }

    /// Ask for a keyframe of `codec` because a viewer lost packets (PLI/FIR, lag). Requests
    /// within [`KEYFRAME_REQUEST_GAP`] of the last one for that codec are coalesced.
    pub fn request_keyframe(&self, codec: Codec) {
        {
            let mut last = self.shared.last_keyframe_request.lock().unwrap();
            if last
                .get(&codec)
                .is_some_and(|t| t.elapsed() < KEYFRAME_REQUEST_GAP)
            {
                return;
            }
            last.insert(codec, Instant::now());
        }
        self.force_keyframe(codec);
    }

    /// A keyframe of `codec` on the next frame, captured now even if nothing changed.
    fn force_keyframe(&self, codec: Codec) {
        self.shared.keyframes_wanted.lock().unwrap().insert(codec);
        self.shared.force_capture.store(true, Ordering::Release);
        self.shared.active_cv.notify_all();
    }

    /// The codecs being encoded now (those with viewers), in codec order.
    pub fn codecs_in_use(&self) -> Vec<Codec> {
        self.shared.codecs.lock().unwrap().keys().copied().collect()
    }

    /// Send a typed command to the encode thread.
    pub fn send(&self, command: EncoderCommand) {
        // The encode thread only goes away on drop, so a failed send means shutdown.
        let _ = self.commands.lock().unwrap().send(command);
    }

    /// Per-frame timings of the last frames (for the bench tool's stage breakdown).
    pub fn timings(&self) -> &FrameTimings {
        &self.shared.timings
    }

    /// The screen size of the last captured frame (before the first: the display's size at
    /// start).
    pub fn screen_size(&self) -> Option<(u32, u32)> {
        let v = self.shared.screen_size.load(Ordering::Relaxed);
        (v != 0).then_some(((v >> 32) as u32, v as u32))
    }

    pub fn stats(&self) -> PipelineStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PipelineStats {
            frames_captured: l(&c.frames_captured),
            frames_encoded: l(&c.frames_encoded),
            frames_dropped: l(&c.frames_dropped),
            bytes_encoded: l(&c.bytes_encoded),
            keyframes: l(&c.keyframes),
            last_capture_us: l(&c.last_capture_us),
            last_convert_us: l(&c.last_convert_us),
            last_encode_us: l(&c.last_encode_us),
            encoder: self.shared.encoder_name.lock().unwrap().clone(),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.active_cv.notify_all();
        self.shared.slot_cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Frames a capture may run ahead of the frame rate (see [`Pacer`]).
const PACER_BURST: f64 = 2.0;
/// The pacer's budget over the frame rate (see [`Pacer`]).
const PACER_SLACK: f64 = 1.1;

/// Frame pacing as a token bucket: a frame may come sooner than one interval after the
/// previous one while the budget allows. A fixed minimum interval would make a source that
/// draws at the frame rate drift against the capture (each capture lands a little later than
/// the last, until a frame is skipped), so the picture would wait half an interval on
/// average; with the bucket each draw is captured as soon as its damage arrives.
///
/// The bucket refills at [`PACER_SLACK`] × fps: at exactly the frame rate, one extra frame (a
/// click's feedback on top of an animation, a cursor move) would leave the bucket empty for
/// good, every later frame would wait for its token at a fixed phase, and an extra update
/// could never get through. With 10% slack the bucket refills within a fraction of a second,
/// so a source at the frame rate is captured at once and an occasional extra update goes out
/// immediately; a source faster than the frame rate gets at most 1.1 × fps.
struct Pacer {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Pacer {
    fn new(fps: u32, now: Instant) -> Self {
        Pacer {
            rate: f64::from(fps.max(1)) * PACER_SLACK,
            tokens: PACER_BURST,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(PACER_BURST);
        self.at = self.at.max(now);
    }

    /// How long from `now` until the next frame is allowed.
    fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    /// A frame was captured at `now`.
    fn spend(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }
}

fn capture_loop(mut capturer: X11Capturer, display_name: String, fps: u32, shared: &Shared) {
    let (w, h) = capturer.size();
    let mut buf = VideoFrame::new(PixelFormat::Bgra, w, h);
    let mut pacer = Pacer::new(fps, Instant::now());
    let mut sequence = 0u64;
    let mut errors = 0u32;
    let mut last_frame_at = Instant::now();
    let mut last_full_at = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        // Idle while nobody watches.
        {
            let mut active = shared.active.lock().unwrap();
            while *active == 0 && !shared.stop.load(Ordering::Acquire) {
                active = shared
                    .active_cv
                    .wait_timeout(active, Duration::from_millis(200))
                    .unwrap()
                    .0;
            }
        }
        // Never faster than the frame rate on average: a burst of damage is coalesced into
        // one frame.
        let wait = pacer.wait(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let mut force = shared.force_capture.swap(false, Ordering::AcqRel)
            || last_frame_at.elapsed() >= REFRESH_INTERVAL;
        if last_full_at.elapsed() >= REFRESH_INTERVAL {
            capturer.invalidate();
            last_full_at = Instant::now();
            force = true;
        }
        let started = Instant::now();
        // A short damage wait, so a keyframe request on a static screen is served within
        // ~25 ms; each wake-up costs one poll of the X connection.
        match capturer.capture(&mut buf, Duration::from_millis(25), force) {
            Ok(CaptureStatus::Frame) => {
                errors = 0;
                let c = &shared.counters;
                c.last_capture_us.store(
                    buf.captured_at
                        .saturating_duration_since(started)
                        .as_micros() as u64,
                    Ordering::Relaxed,
                );
                c.frames_captured.fetch_add(1, Ordering::Relaxed);
                sequence += 1;
                buf.sequence = sequence;
                shared.screen_size.store(
                    u64::from(buf.width) << 32 | u64::from(buf.height),
                    Ordering::Relaxed,
                );
                pacer.spend(buf.captured_at);
                last_frame_at = buf.captured_at;
                let mut slot = shared.slot.lock().unwrap();
                slot.newest_grab = Some(capturer.grab_started());
                let spare = slot.free.pop();
                if let Some(old) = &slot.newest {
                    // The encoder never sees `old`: the new frame carries its changes too.
                    buf.damage = merge_damage(old, &buf);
                }
                if let Some(old) = slot.newest.replace(buf) {
                    c.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    buf = old;
                    if let Some(s) = spare {
                        slot.free.push(s);
                    }
                } else {
                    buf = spare.unwrap_or_else(|| VideoFrame::new(PixelFormat::Bgra, w, h));
                }
                drop(slot);
                shared.slot_cv.notify_one();
            }
            Ok(CaptureStatus::Unchanged) => {}
            Ok(CaptureStatus::Resized { width, height }) => {
                tracing::info!(width, height, "display resized");
                shared.force_capture.store(true, Ordering::Release);
            }
            Err(e) => {
                // A broken X connection does not heal: after a few failures, reconnect (once a
                // second, logging every tenth try) until the display is back or the session ends.
                errors += 1;
                if errors <= 3 || errors.is_multiple_of(10) {
                    tracing::error!(error = %e, errors, "capture failed");
                }
                std::thread::sleep(Duration::from_millis(if errors < 3 { 50 } else { 1000 }));
                if errors >= 3 {
                    match X11Capturer::connect(&display_name) {
                        Ok(c) => {
                            tracing::info!(display = %display_name, "capture reconnected");
                            capturer = c;
                            shared.force_capture.store(true, Ordering::Release);
                        }
                        Err(e) if errors.is_multiple_of(10) => {
                            tracing::warn!(error = %e, "capture reconnect failed")
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

/// The damage of `new` relative to the frame before `old` (which `new` replaces unseen).
fn merge_damage(old: &VideoFrame, new: &VideoFrame) -> Option<Damage> {
    match (&old.damage, &new.damage) {
        (Some(o), Some(n)) if n.since == old.sequence => {
            let mut rects = RectSet::new();
            rects.extend(&o.rects);
            rects.extend(&n.rects);
            Some(Damage {
                since: o.since,
                rects: rects.into_vec(),
            })
        }
        _ => None,
    }
}

fn encode_loop(
    config: PipelineConfig,
    screen: (u32, u32),
    registry: Arc<EncoderRegistry>,
    commands: mpsc::Receiver<EncoderCommand>,
    frames: broadcast::Sender<Arc<EncodedFrame>>,
    shared: &Shared,
) {
    let mut encoders = Encoders {
        settings: config.encoder.clone(),
        preference: config.preference.clone(),
        registry,
        open: BTreeMap::new(),
        converted: HashMap::new(),
        log: DamageLog::default(),
    };
    // Opened now, for the screen's size, so the first viewer's first frame does not wait for
    // the encoder to start (tens of ms for libx264 at 1080p); a later size reopens it.
    encoders.settings.width = screen.0 & !1;
    encoders.settings.height = screen.1 & !1;
    let primary = config.encoder.codec;
    if let Err(e) = encoders.ensure(primary, shared) {
        tracing::warn!(error = %e, "opening the encoder ahead of the first frame failed; retrying with it");
    }
    loop {
        let (mut frame, grab_started) = {
            let mut slot = shared.slot.lock().unwrap();
            loop {
                if shared.stop.load(Ordering::Acquire) {
                    return;
                }
                if let Some(f) = slot.newest.take() {
                    break (f, slot.newest_grab.take());
                }
                slot = shared
                    .slot_cv
                    .wait_timeout(slot, Duration::from_millis(200))
                    .unwrap()
                    .0;
            }
        };
        for command in commands.try_iter() {
            encoders.apply(command, shared);
        }
        // Every codec with a viewer; the primary one when none is counted yet.
        let mut wanted: Vec<Codec> = shared.codecs.lock().unwrap().keys().copied().collect();
        if wanted.is_empty() {
            wanted.push(primary);
        }
        encoders.close_unused(&wanted, primary, shared);
        // Take only the requests of codecs encoded now: one for a codec whose viewer joined
        // after `wanted` was read stays for the next frame.
        let keyframes: BTreeSet<Codec> = {
            let mut pending = shared.keyframes_wanted.lock().unwrap();
            let now: BTreeSet<Codec> = pending
                .iter()
                .copied()
                .filter(|c| wanted.contains(c))
                .collect();
            pending.retain(|c| !now.contains(c));
            now
        };
        encoders.log.push(frame.sequence, frame.damage.clone());
        let (width, height) = (frame.width, frame.height);
        // 4:2:0 encoders need even sizes: encode the even part of an odd-sized screen (the
        // rows keep their stride, so narrowing the frame is enough).
        frame.width &= !1;
        frame.height &= !1;
        shared.counters.last_convert_us.store(0, Ordering::Relaxed);
        for (n, &codec) in wanted.iter().enumerate() {
            let encode_start_ns = mono_ns();
            match encoders.encode(codec, &frame, keyframes.contains(&codec), shared) {
                Ok(Some(out)) => {
                    let c = &shared.counters;
                    c.frames_encoded.fetch_add(1, Ordering::Relaxed);
                    c.bytes_encoded
                        .fetch_add(out.data.len() as u64, Ordering::Relaxed);
                    if out.keyframe {
                        c.keyframes.fetch_add(1, Ordering::Relaxed);
                    }
                    c.last_encode_us
                        .store(out.encode_time.as_micros() as u64, Ordering::Relaxed);
                    // Stage timings follow the first codec only (one entry per frame).
                    if n == 0 {
                        shared.timings.push(FrameTiming {
                            sequence: out.sequence,
                            grab_start_ns: grab_started.map_or(0, instant_ns),
                            captured_ns: instant_ns(out.captured_at),
                            encode_start_ns,
                            convert_us: c.last_convert_us.load(Ordering::Relaxed) as u32,
                            encoded_ns: mono_ns(),
                            sent_ns: 0,
                            bytes: out.data.len() as u32,
                            keyframe: out.keyframe,
                        });
                    }
                    // No receivers is fine: viewers come and go.
                    let _ = frames.send(Arc::new(out));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(%codec, error = %e, "encode failed; rebuilding the encoder");
                    encoders.open.remove(&codec);
                    shared.keyframes_wanted.lock().unwrap().insert(codec);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        // Give the buffer back at its real size so capture reuses it instead of reallocating.
        (frame.width, frame.height) = (width, height);
        shared.slot.lock().unwrap().free.push(frame);
    }
}

/// The encode thread's encoders: one per codec in use, all at the captured size, sharing one
/// conversion of each frame per input format.
struct Encoders {
    settings: EncoderSettings,
    preference: EncoderPreference,
    registry: Arc<EncoderRegistry>,
    open: BTreeMap<Codec, Box<dyn Encoder>>,
    /// The current frame converted to each input format asked for, and the sequence it holds.
    converted: HashMap<PixelFormat, (u64, VideoFrame)>,
    /// What the frames seen here changed, to convert only that.
    log: DamageLog,
}

impl Encoders {
    fn apply(&mut self, command: EncoderCommand, shared: &Shared) {
        match command {
            EncoderCommand::ForceKeyframe => {
                shared
                    .keyframes_wanted
                    .lock()
                    .unwrap()
                    .extend(self.open.keys().copied());
            }
            EncoderCommand::SetBitrate(bps) => {
                self.settings.bitrate_bps = bps;
                for e in self.open.values_mut() {
                    log_err(e.set_bitrate(bps), "set bitrate");
                }
            }
            EncoderCommand::SetFps(fps) => {
                self.settings.fps = fps;
                for e in self.open.values_mut() {
                    log_err(e.set_fps(fps), "set fps");
                }
            }
            // The encoders follow the captured size.
            _ => {}
        }
    }

    /// Closes encoders no viewer uses (the primary one stays open for the next viewer).
    fn close_unused(&mut self, wanted: &[Codec], primary: Codec, shared: &Shared) {
        let before = self.open.len();
        self.open.retain(|codec, e| {
            let keep = *codec == primary || wanted.contains(codec);
            if !keep {
                tracing::info!(%codec, encoder = e.name(), "no viewer left for this codec; encoder closed");
            }
            keep
        });
        if self.open.len() != before {
            self.publish_names(shared);
        }
    }

    /// The encoders in use, for stats: `ffmpeg:libx264+ffmpeg:libvpx-vp9`.
    fn publish_names(&self, shared: &Shared) {
        let names: Vec<&str> = self.open.values().map(|e| e.name()).collect();
        *shared.encoder_name.lock().unwrap() = names.join("+");
    }

    /// Opens `codec`'s encoder at the current size if it is not open at that size. Returns
    /// whether it was (re)opened (its next frame must then be a keyframe).
    fn ensure(&mut self, codec: Codec, shared: &Shared) -> Result<bool, codec::EncoderError> {
        let (w, h) = (self.settings.width, self.settings.height);
        if self
            .open
            .get(&codec)
            .is_some_and(|e| e.settings().width == w && e.settings().height == h)
        {
            return Ok(false);
        }
        let settings = EncoderSettings {
            codec,
            ..self.settings.clone()
        };
        let e = self.registry.open(&settings, &self.preference)?;
        tracing::info!(
            encoder = e.name(),
            %codec,
            width = w,
            height = h,
            fps = settings.fps,
            bitrate = settings.bitrate_bps,
            "encoder ready"
        );
        self.open.insert(codec, e);
        self.publish_names(shared);
        Ok(true)
    }

    fn encode(
        &mut self,
        codec: Codec,
        frame: &VideoFrame,
        force_keyframe: bool,
        shared: &Shared,
    ) -> Result<Option<EncodedFrame>, codec::EncoderError> {
        self.settings.width = frame.width;
        self.settings.height = frame.height;
        let reopened = self.ensure(codec, shared)?;
        let enc = self.open.get_mut(&codec).expect("ensured above");
        let format = enc.input_format();
        let input = if format == frame.format {
            frame
        } else {
            let (seq, converted) = self
                .converted
                .entry(format)
                .or_insert_with(|| (u64::MAX, VideoFrame::new(format, 2, 2)));
            if *seq != frame.sequence
                || (converted.width, converted.height) != (frame.width, frame.height)
            {
                let t = Instant::now();
                // Only what changed since the frame the buffer holds (all of it after a
                // resize: the conversion reallocates and converts whole).
                // (`u64::MAX`, nothing converted yet, is newer than any frame: unknown.)
                let changed = self.log.since(*seq);
                let rects = changed.as_ref().map(RectSet::rects);
                codec::convert::bgra_to_yuv_rects(frame, converted, format, rects)
                    .map_err(|e| codec::EncoderError::BadFrame(e.to_string()))?;
                converted.damage = changed.map(|r| Damage {
                    since: *seq,
                    rects: r.into_vec(),
                });
                *seq = frame.sequence;
                shared
                    .counters
                    .last_convert_us
                    .store(t.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            &*converted
        };
        enc.encode(input, force_keyframe || reopened)
    }
}

fn log_err(r: Result<(), codec::EncoderError>, what: &str) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "{what} failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame replaced in the slot before the encoder saw it passes its damage on: the new
    /// frame's damage then reaches back to the frame before the dropped one; anything unknown
    /// stays unknown.
    #[test]
    fn dropped_frames_pass_their_damage_on() {
        use codec::Rect;
        let frame = |sequence, damage: Option<(u64, Rect)>| {
            let mut f = VideoFrame::new(PixelFormat::Bgra, 2, 2);
            f.sequence = sequence;
            f.damage = damage.map(|(since, r)| Damage {
                since,
                rects: vec![r],
            });
            f
        };
        let (a, b) = (Rect::new(0, 0, 4, 4), Rect::new(10, 10, 4, 4));
        let merged = merge_damage(&frame(5, Some((4, a))), &frame(6, Some((5, b)))).unwrap();
        assert_eq!(merged.since, 4);
        assert_eq!(merged.rects, vec![a, b]);
        assert!(merge_damage(&frame(5, None), &frame(6, Some((5, b)))).is_none());
        assert!(merge_damage(&frame(5, Some((4, a))), &frame(6, None)).is_none());
        // Not the frame it replaces: no chain.
        assert!(merge_damage(&frame(5, Some((4, a))), &frame(7, Some((6, b)))).is_none());
    }

    /// A source drawing at exactly the frame rate, each draw seen 0.3 ms late and captured at
    /// once when allowed: no draw ever waits for the pacer (a fixed minimum interval would
    /// drift and make draws wait up to a whole interval).
    #[test]
    fn pacer_captures_a_source_at_the_frame_rate_without_waiting() {
        let t0 = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / 60.0);
        let mut p = Pacer::new(60, t0);
        let mut grab_cost = Duration::from_micros(900);
        for k in 1..600u32 {
            let seen = t0 + interval * k + Duration::from_micros(300);
            assert_eq!(p.wait(seen), Duration::ZERO, "draw {k} waited");
            p.spend(seen + grab_cost);
            grab_cost = Duration::from_micros(u64::from(400 + (k % 7) * 200)); // varying grab times
        }
    }

    /// A source much faster than the frame rate gets the frame rate (plus the slack) on
    /// average, after a burst of at most PACER_BURST at the start.
    #[test]
    fn pacer_holds_the_average_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(30, t0);
        let mut now = t0;
        let mut frames = 0;
        while now < t0 + Duration::from_secs(10) {
            now += p.wait(now);
            p.spend(now);
            frames += 1;
            now += Duration::from_micros(100);
        }
        assert!(
            (330..=330 + PACER_BURST as u32).contains(&frames),
            "{frames}"
        );
    }

    /// A source at exactly the frame rate plus a few extra updates a second (clicks): every
    /// update is captured at once, also long after an extra one emptied part of the bucket.
    #[test]
    fn pacer_lets_occasional_extra_updates_through() {
        let t0 = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / 60.0);
        let mut p = Pacer::new(60, t0);
        let mut waited = 0;
        for k in 1..1200u32 {
            let draw = t0 + interval * k + Duration::from_micros(200);
            waited += usize::from(!p.wait(draw).is_zero());
            p.spend(draw + Duration::from_micros(800));
            if k % 20 == 0 {
                // A click's redraw 6 ms after the frame.
                let click = draw + Duration::from_millis(6);
                waited += usize::from(!p.wait(click).is_zero());
                p.spend(click + Duration::from_micros(800));
            }
        }
        assert_eq!(waited, 0);
    }
}
