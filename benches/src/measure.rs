//! The headless measuring client: connects to a WHEP endpoint, decodes every frame, reads its
//! frame code and the click area's colour, and (against edgedesk, whose `input` data channel
//! it speaks) clicks the click area now and then. Everything is timestamped on the machine's
//! monotonic clock; [`crate::report`] turns the samples into figures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::BytesMut;
use codec::decoder::Decoder;
use codec::VideoFrame;
use host::client::{ClientCounters, ViewerClient};
use host::input::protocol::{Button, ClientMessage};
use host::timing::{instant_ns, mono_ns};

use crate::connect::{self, Target};
use crate::framecode::{self, Rect};
use crate::stimulus::{Layout, Record};

/// A click is sent this long after the previous one was seen (or given up on).
const CLICK_GAP: Duration = Duration::from_millis(350);
/// A click not seen within this long is counted as lost.
const CLICK_TIMEOUT: Duration = Duration::from_secs(2);
/// The code must be readable within this long of the first frame.
const FIRST_CODE_TIMEOUT: Duration = Duration::from_secs(5);

/// What to measure.
pub struct Config {
    /// The server, and how to reach it.
    pub target: Target,
    /// How long to measure after the first frame.
    pub seconds: f64,
    /// The stimulus on the streamed display (same machine), if any: frame codes are read and
    /// glass-to-glass measured only with it.
    pub stimulus: Option<(Layout, Arc<Mutex<Record>>)>,
    /// How to click the click area, if at all.
    pub clicks: Clicks,
    /// Print a line a second on stderr.
    pub progress: bool,
}

/// How clicks reach the stimulus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clicks {
    /// Not measured.
    Off,
    /// Through edgedesk's `input` data channel, as a user's click travels (needs a
    /// controlling token).
    Channel,
    /// Injected with XTest on the stimulus display (this machine): for servers without
    /// edgedesk's input channel. Click-to-photon then leaves out the client → server input
    /// path, which every target skips alike.
    Xtest(String),
}

/// One decoded frame.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct FrameSample {
    /// The frame's last packet arrived.
    pub received_ns: u64,
    /// The decoder gave the picture.
    pub decoded_ns: u64,
    pub bytes: u32,
    /// The frame's RTP timestamp (edgedesk stamps capture time, 90 kHz).
    pub rtp_timestamp: u32,
    /// The frame code read, `None` when unreadable (or no stimulus).
    pub code: Option<u32>,
    /// The click area's colour: `Some(true)` white, `Some(false)` black, `None` unclear.
    pub click_white: Option<bool>,
}

/// One click sent.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ClickSample {
    pub sent_ns: u64,
    /// The colour the area should turn.
    pub white: bool,
    /// The first decoded frame that showed it, if any did in time.
    pub seen_ns: Option<u64>,
}

/// Everything measured, raw.
#[derive(Debug, serde::Serialize)]
pub struct Measurement {
    pub whep: String,
    /// The video codec the server chose.
    pub codec: String,
    /// POST of the offer → first decoded frame.
    pub first_frame_ms: f64,
    pub width: u32,
    pub height: u32,
    pub frames: Vec<FrameSample>,
    pub clicks: Vec<ClickSample>,
    /// Why clicks were not measured, if they were not.
    pub clicks_skipped: Option<String>,
    /// How clicks were sent, if they were.
    pub clicks_via: Option<String>,
    /// Packets never received in time (holes given up on).
    pub lost_packets: u64,
    /// Packets that came after their hole was given up on, or twice.
    pub late_packets: u64,
    /// Holes filled in time (retransmissions), and NACKs sent.
    #[serde(default)]
    pub repaired_packets: u64,
    #[serde(default)]
    pub nacked_packets: u64,
    pub client_frames_dropped: u64,
    /// Mean decode time (ms per frame).
    pub decode_ms_mean: f64,
    /// Start and end of the measured window (ns, monotonic).
    pub start_ns: u64,
    pub end_ns: u64,
    /// What connecting involved beyond a plain POST (redirects, ICE servers, a second offer).
    pub connect_notes: Vec<String>,
}

impl Measurement {
    /// Nothing measured yet, of `target`.
    pub fn empty(target: String) -> Measurement {
        Measurement {
            whep: target,
            codec: String::new(),
            first_frame_ms: 0.0,
            width: 0,
            height: 0,
            frames: Vec::new(),
            clicks: Vec::new(),
            clicks_skipped: None,
            clicks_via: None,
            lost_packets: 0,
            late_packets: 0,
            repaired_packets: 0,
            nacked_packets: 0,
            client_frames_dropped: 0,
            decode_ms_mean: 0.0,
            start_ns: 0,
            end_ns: 0,
            connect_notes: Vec::new(),
        }
    }
}

/// After a run: why clicks were not measured, or how they were sent.
pub fn note_clicks(m: &mut Measurement, clicks: &Clicks, stimulus: bool) {
    match clicks {
        Clicks::Off => {
            m.clicks_skipped = Some(if stimulus {
                "not measured: --no-clicks".into()
            } else {
                "not measured: no stimulus on the streamed display".into()
            })
        }
        _ if m.clicks.is_empty() && m.clicks_skipped.is_none() => {
            m.clicks_skipped = Some("no click could be sent".into());
        }
        Clicks::Xtest(display) if m.clicks_skipped.is_none() => {
            m.clicks_via = Some(format!(
                "XTest on {display} (same machine; the client → server input path is not \
                 included)"
            ));
        }
        Clicks::Channel if m.clicks_skipped.is_none() => {
            m.clicks_via = Some("edgedesk's input data channel".into());
        }
        _ => {}
    }
}

/// Connects, measures for `config.seconds`, disconnects.
pub async fn measure(config: Config) -> Result<Measurement> {
    let mut conn = connect::connect(&config.target).await?;
    let result = receive(&mut conn.client, &config, conn.posted).await;
    let notes = std::mem::take(&mut conn.notes);
    conn.close(&config.target.token).await;
    result.map(|mut m| {
        m.connect_notes = notes;
        m
    })
}

async fn receive(
    client: &mut ViewerClient,
    config: &Config,
    posted: Instant,
) -> Result<Measurement> {
    let codec = client.codec();
    let mut decoder = Decoder::new(codec)?;
    let mut m = Measurement::empty(config.target.whep.clone());
    m.codec = codec.name().to_owned();
    let mut decode_time = Duration::ZERO;
    let mut first: Option<Instant> = None;
    let mut clicker = Clicker::default();
    let mut last_progress = Instant::now();
    let watch = Duration::from_secs_f64(config.seconds);
    loop {
        let limit = match first {
            None => Duration::from_secs(10),
            Some(f) => match watch.checked_sub(f.elapsed()) {
                Some(left) => left,
                None => break,
            },
        };
        let Some(frame) = client.next_frame(limit).await else {
            if first.is_none() {
                bail!("no video frame in 10 s: {}", client.why_no_video());
            }
            break;
        };
        let received_ns = instant_ns(frame.received_at);
        let started = Instant::now();
        let pictures = match decoder.decode(&frame.data) {
            Ok(p) => p,
            Err(e) => {
                // A damaged frame (loss): the next keyframe repairs the picture.
                eprintln!("decode error: {e}");
                continue;
            }
        };
        decode_time += started.elapsed();
        for picture in pictures {
            let decoded_ns = mono_ns();
            if first.is_none() {
                first = Some(Instant::now());
                m.first_frame_ms = posted.elapsed().as_secs_f64() * 1e3;
                m.start_ns = decoded_ns;
                (m.width, m.height) = (picture.width, picture.height);
            }
            let layout = config.stimulus.as_ref().map(|(l, _)| *l);
            let sample = FrameSample {
                received_ns,
                decoded_ns,
                bytes: frame.bytes as u32,
                rtp_timestamp: frame.rtp_timestamp,
                code: layout.and_then(|l| read_code(&picture, &l)),
                click_white: layout.and_then(|l| click_colour(&picture, &l)),
            };
            m.frames.push(sample);
            if let (Some(l), false) = (layout, config.clicks == Clicks::Off) {
                clicker
                    .frame(Some(client), &config.clicks, &l, &sample, &mut m)
                    .await;
            }
        }
        if let (Some(f), Some(_)) = (first, &config.stimulus) {
            if f.elapsed() > FIRST_CODE_TIMEOUT && !m.frames.iter().any(|s| s.code.is_some()) {
                bail!(
                    "no frame code could be read in {} s of video: is the stimulus on the \
                     streamed display, unscaled and uncovered?",
                    FIRST_CODE_TIMEOUT.as_secs()
                );
            }
        }
        if config.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            progress(&m, config);
        }
    }
    m.end_ns = mono_ns();
    clicker.finish(&mut m);
    note_clicks(&mut m, &config.clicks, config.stimulus.is_some());
    let ClientCounters {
        lost_packets,
        late_packets,
        repaired_packets,
        nacked_packets,
        frames_dropped,
        ..
    } = client.counters();
    (m.lost_packets, m.late_packets, m.client_frames_dropped) =
        (lost_packets, late_packets, frames_dropped);
    (m.repaired_packets, m.nacked_packets) = (repaired_packets, nacked_packets);
    m.decode_ms_mean = decode_time.as_secs_f64() * 1e3 / m.frames.len().max(1) as f64;
    Ok(m)
}

fn progress(m: &Measurement, config: &Config) {
    let secs = (mono_ns() - m.start_ns) as f64 / 1e9;
    let recent: Vec<_> = m
        .frames
        .iter()
        .filter(|f| f.decoded_ns + 1_000_000_000 >= mono_ns())
        .collect();
    let mut line = format!(
        "{secs:5.1} s  {:6} frames  {:5.1} fps",
        m.frames.len(),
        recent.len()
    );
    if let Some((_, record)) = &config.stimulus {
        let r = record.lock().unwrap();
        let mut g2g: Vec<f64> = recent
            .iter()
            .filter_map(|f| {
                let drawn = r.drawn.get(&f.code?)?;
                Some((f.decoded_ns.saturating_sub(*drawn)) as f64 / 1e6)
            })
            .collect();
        g2g.sort_by(f64::total_cmp);
        if let Some(p50) = g2g.get(g2g.len() / 2) {
            line.push_str(&format!("  glass-to-glass p50 {p50:5.1} ms"));
        }
    }
    let seen: Vec<f64> = m
        .clicks
        .iter()
        .filter_map(|c| Some((c.seen_ns? - c.sent_ns) as f64 / 1e6))
        .collect();
    if let Some(last) = seen.last() {
        line.push_str(&format!("  click-to-photon (last) {last:5.1} ms"));
    }
    eprintln!("{line}");
}

/// The frame code of a decoded picture (its luma plane).
pub fn read_code(picture: &VideoFrame, layout: &Layout) -> Option<u32> {
    if picture.width != layout.width || picture.height != layout.height {
        // The stream is scaled: scale the code's place with it.
        let (sx, sy) = (
            f64::from(picture.width) / f64::from(layout.width),
            f64::from(picture.height) / f64::from(layout.height),
        );
        let r = layout.code.scaled(sx, sy);
        return framecode::read_luma(&picture.planes[0], picture.strides[0], r).ok();
    }
    framecode::read_luma(&picture.planes[0], picture.strides[0], layout.code).ok()
}

/// The click area's colour: mean luma of a 16x16 patch at [`Layout::colour_point`].
pub fn click_colour(picture: &VideoFrame, layout: &Layout) -> Option<bool> {
    let (cx, cy) = layout.colour_point();
    let (sx, sy) = (
        f64::from(picture.width) / f64::from(layout.width),
        f64::from(picture.height) / f64::from(layout.height),
    );
    let patch = Rect::new(
        ((f64::from(cx) * sx) as u32).saturating_sub(8),
        ((f64::from(cy) * sy) as u32).saturating_sub(8),
        16,
        16,
    );
    let (plane, stride) = (&picture.planes[0], picture.strides[0]);
    let mut sum = 0u64;
    for y in patch.y..patch.y + patch.h {
        let row = plane.get(y as usize * stride..)?;
        for x in patch.x..patch.x + patch.w {
            sum += u64::from(*row.get(x as usize)?);
        }
    }
    colour_of_luma(sum as f64 / f64::from(patch.w * patch.h))
}

/// White (`true`), black (`false`) or unclear, from a patch's mean luma.
pub fn colour_of_luma(mean: f64) -> Option<bool> {
    if mean > 170.0 {
        Some(true)
    } else if mean < 80.0 {
        Some(false)
    } else {
        None
    }
}

/// Sends a click whenever the last one has been seen (or given up on) and waits for the
/// colour it should bring.
#[derive(Default)]
pub struct Clicker {
    pending: Option<ClickSample>,
    last_done: Option<Instant>,
    channel_open: bool,
    started: Option<Instant>,
    xtest: Option<x11rb::rust_connection::RustConnection>,
}

impl Clicker {
    /// Judges `frame` for the pending click, or sends the next one (through `client`'s input
    /// channel, or XTest).
    pub async fn frame(
        &mut self,
        client: Option<&ViewerClient>,
        via: &Clicks,
        layout: &Layout,
        frame: &FrameSample,
        m: &mut Measurement,
    ) {
        let started = *self.started.get_or_insert_with(Instant::now);
        if let Some(p) = &mut self.pending {
            if frame.click_white == Some(p.white) {
                p.seen_ns = Some(frame.decoded_ns);
            }
            let timed_out = mono_ns().saturating_sub(p.sent_ns) > CLICK_TIMEOUT.as_nanos() as u64;
            if p.seen_ns.is_some() || timed_out {
                m.clicks.push(*p);
                self.pending = None;
                self.last_done = Some(Instant::now());
            }
            return;
        }
        if self.last_done.is_some_and(|t| t.elapsed() < CLICK_GAP) {
            return;
        }
        let Some(current) = frame.click_white else {
            return; // wait for a clear picture of the area first
        };
        if let Clicks::Xtest(display) = via {
            let sent_ns = mono_ns();
            if let Err(e) = self.xtest_click(display, layout) {
                m.clicks_skipped = Some(format!("XTest click on {display} failed: {e}"));
                return;
            }
            self.pending = Some(ClickSample {
                sent_ns,
                white: !current,
                seen_ns: None,
            });
            return;
        }
        let Some(client) = client else {
            m.clicks_skipped = Some("no input channel: clicks need XTest here".into());
            return;
        };
        if !self.channel_open {
            self.channel_open = matches!(
                client
                    .input
                    .ready_state()
                    .await
                    .map(|s| s.to_string())
                    .as_deref(),
                Ok("open")
            );
            if !self.channel_open {
                if started.elapsed() > Duration::from_secs(5) && m.clicks_skipped.is_none() {
                    m.clicks_skipped =
                        Some("the server opened no input data channel (not edgedesk?)".into());
                }
                return;
            }
        }
        let (x, y) = layout.click_point();
        let (w, h) = (layout.width as u16, layout.height as u16);
        let msgs = [
            ClientMessage::PointerAbs {
                x: x as u16,
                y: y as u16,
                width: w,
                height: h,
            },
            ClientMessage::ButtonDown {
                button: Button::Left,
            },
            ClientMessage::ButtonUp {
                button: Button::Left,
            },
        ];
        let sent_ns = mono_ns();
        for msg in msgs {
            let bytes = msg.encode().expect("valid message");
            if let Err(e) = client.input.send(BytesMut::from(&bytes[..])).await {
                m.clicks_skipped = Some(format!("the input channel refused a message: {e}"));
                return;
            }
        }
        self.pending = Some(ClickSample {
            sent_ns,
            white: !current,
            seen_ns: None,
        });
    }

    /// Moves the pointer to the click point and clicks, with XTest on `display`.
    fn xtest_click(&mut self, display: &str, layout: &Layout) -> Result<()> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{
            BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, MOTION_NOTIFY_EVENT,
        };
        use x11rb::protocol::xtest::ConnectionExt as _;
        if self.xtest.is_none() {
            let (conn, _) = x11rb::connect(Some(display))?;
            conn.xtest_get_version(2, 2)?.reply()?;
            self.xtest = Some(conn);
        }
        let conn = self.xtest.as_ref().expect("connected above");
        let root = conn.setup().roots[0].root;
        let (x, y) = layout.click_point();
        conn.xtest_fake_input(MOTION_NOTIFY_EVENT, 0, 0, root, x as i16, y as i16, 0)?;
        conn.xtest_fake_input(BUTTON_PRESS_EVENT, 1, 0, root, 0, 0, 0)?;
        conn.xtest_fake_input(BUTTON_RELEASE_EVENT, 1, 0, root, 0, 0, 0)?;
        conn.flush()?;
        Ok(())
    }

    /// Keeps the pending click if it was judged (seen or timed out).
    pub fn finish(&mut self, m: &mut Measurement) {
        if let Some(p) = self.pending.take() {
            // Sent too close to the end to be judged: not counted.
            if mono_ns().saturating_sub(p.sent_ns) > CLICK_TIMEOUT.as_nanos() as u64 {
                m.clicks.push(p);
            }
        }
    }
}
