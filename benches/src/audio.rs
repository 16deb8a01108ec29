//! `edgedesk-bench audio`: what the session's sound costs and how late it is, measured with
//! the real parts in this process: a session on a small Xvfb with its own PulseAudio and Opus
//! encoder (the host library), an app playing into the session (`pacat`, fed by this program
//! so it knows when each sound was played), and the headless WebRTC client decoding the Opus
//! it receives over loopback.
//!
//! * **Latency** (app → decoded at the client): a 1 kHz burst is written to the player after
//!   silence; the time until the client decodes a frame louder than -30 dBFS. It includes the
//!   player's own buffer (10 ms), the monitor's, the Opus frame and look-ahead, the network and
//!   decoding; not a browser's jitter buffer (Chromium adds its own, shown in its stats).
//! * **Bitrate** of silence (DTX) and of speech-like sound (band-limited noise in syllables,
//!   half of the time silent), Opus payload only.
//! * **CPU** of the session's sound while speech-like sound plays: the encoding thread, the
//!   recorder (`parec`) and the session's PulseAudio, in percent of one core.
//! * **A/V offset**: the screen flashes white (drawn by this program) as a beep is played;
//!   the client finds the first white frame and the first loud audio frame and places both on
//!   the sender's wall clock with the streams' RTCP sender reports, as a browser does to
//!   lip-sync. Positive: the sound is stamped later than the picture.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use codec::registry::{EncoderPreference, EncoderRegistry};
use codec::EncoderSettings;
use host::audio::{level_db, sine_s16le, AudioMode, AudioSettings, AudioSource, SoundServer};
use host::client::{ClientOptions, ViewerClient};
use host::display::{DisplayKind, DisplayOptions, VirtualDisplay};
use host::pipeline::PipelineConfig;
use host::session::{Session, SessionConfig};

/// What `audio` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AudioReport {
    pub frame_ms: u32,
    pub bitrate_bps: u32,
    /// App → decoded latency of each burst, ms.
    pub latencies_ms: Vec<f64>,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub silence_kbps: f64,
    pub silence_packets_per_s: f64,
    pub speech_kbps: f64,
    pub speech_packets_per_s: f64,
    /// Encoding thread + recorder + sound server, % of one core, while speech plays.
    pub cpu_percent: f64,
    /// The same, by part: encoding thread, recorder (`parec`), sound server.
    pub cpu_encoder_percent: f64,
    pub cpu_recorder_percent: f64,
    pub cpu_server_percent: f64,
    /// Sound minus picture of each flash-and-beep, on the sender's clock, ms.
    pub av_offsets_ms: Vec<f64>,
    pub av_offset_p50_ms: Option<f64>,
}

/// Runs the measurement: `bursts` latency probes, and `seconds` each of silence and speech.
pub async fn measure(
    bursts: usize,
    flashes: usize,
    seconds: f64,
    settings: AudioSettings,
) -> Result<AudioReport> {
    let display = VirtualDisplay::start(DisplayOptions {
        width: 320,
        height: 240,
        kind: DisplayKind::Xvfb,
        ..DisplayOptions::default()
    })
    .context("starting Xvfb (scripts/setup.sh installs it)")?;
    let mut session = Session::start(
        SessionConfig {
            name: "audio-bench".into(),
            pipeline: PipelineConfig {
                display: display.name(),
                encoder: EncoderSettings {
                    fps: 60,
                    bitrate_bps: 1_000_000,
                    ..EncoderSettings::default()
                },
                preference: EncoderPreference::Software,
            },
            peer: Default::default(),
            max_viewers: 2,
            resizable: false,
            clipboard: Default::default(),
            codecs: vec![],
        },
        Arc::new(EncoderRegistry::probe()),
    )?;
    let server = SoundServer::start().context("the session's sound server")?;
    let (pulse, server_pid) = (server.pulse_server(), server.pid());
    session.attach_audio(AudioSource::start(server, settings)?, AudioMode::Out);
    let (mut client, offer) = ViewerClient::with_options(
        vec!["127.0.0.1:0".into()],
        ClientOptions {
            audio: true,
            ..ClientOptions::default()
        },
    )
    .await?;
    let (_id, answer) = session.add_viewer(offer, false).await?;
    client.accept_answer(answer).await?;
    // The first picture (a keyframe: the video decoder starts there) and sound.
    let mut video = codec::decoder::Decoder::new(codec::Codec::H264)?;
    let (mut pictures, mut sounds) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (pictures == 0 || sounds == 0) && Instant::now() < deadline {
        match client.next_media(Duration::from_secs(1)).await {
            Some(host::client::Media::Frame(f)) => {
                pictures += video.decode(&f.data).map_or(0, |p| p.len())
            }
            Some(host::client::Media::Audio(_)) => sounds += 1,
            None => {}
        }
    }
    if pictures == 0 || sounds == 0 {
        bail!("no picture or no sound arrived: {}", client.why_no_video());
    }
    let mut player = Player::start(&pulse)?;
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo)?;
    let mut pcm = vec![0i16; 5760 * 2];

    // A/V first, while the video decoder follows the stream: a flash and a beep together.
    let flasher = Flasher::new(&display.name())?;
    let av_offsets = av_offsets(&mut client, &mut video, &flasher, &mut player, flashes).await?;

    // Silence: DTX.
    drain(&mut client, Duration::from_millis(800)).await;
    let (silence_bytes, silence_packets) = count(&mut client, seconds).await;

    // Latency: bursts after silence.
    let mut latencies = Vec::with_capacity(bursts);
    let burst = sine_s16le(1000.0, 0.1);
    for _ in 0..bursts {
        drain(&mut client, Duration::from_millis(400)).await;
        let played = Instant::now();
        player.write(&burst)?;
        let deadline = played + Duration::from_secs(2);
        while Instant::now() < deadline {
            let Some(a) = client.next_audio(Duration::from_millis(500)).await else {
                continue;
            };
            let n = decoder.decode(&a.payload, &mut pcm, false).unwrap_or(0);
            if level_db(&pcm[..n * 2]) > -30.0 {
                latencies.push(
                    a.received_at
                        .saturating_duration_since(played)
                        .as_secs_f64()
                        * 1e3,
                );
                break;
            }
        }
    }
    if latencies.is_empty() {
        bail!("no burst was heard");
    }

    // Speech-like sound, with the CPU it costs.
    drain(&mut client, Duration::from_millis(300)).await;
    let speech = speech_like(seconds + 1.0);
    let feeder = {
        let mut p = Player::start(&pulse)?;
        std::thread::spawn(move || {
            let _ = p.write(&speech);
            p
        })
    };
    drain(&mut client, Duration::from_millis(500)).await;
    let cpu_before = audio_cpu_seconds(server_pid);
    let started = Instant::now();
    let (speech_bytes, speech_packets) = count(&mut client, seconds).await;
    let wall = started.elapsed().as_secs_f64();
    let after = audio_cpu_seconds(server_pid);
    let cpu: [f64; 3] = std::array::from_fn(|i| (after[i] - cpu_before[i]) / wall * 100.0);
    drop(feeder.join());

    client.close().await;
    session.close().await;
    drop(session);
    drop(display);
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let mut av_sorted = av_offsets.clone();
    av_sorted.sort_by(f64::total_cmp);
    Ok(AudioReport {
        frame_ms: settings.frame_ms,
        bitrate_bps: settings.bitrate_bps,
        latency_p50_ms: percentile(&sorted, 0.5),
        latency_p99_ms: percentile(&sorted, 0.99),
        latencies_ms: latencies,
        silence_kbps: silence_bytes as f64 * 8.0 / seconds / 1000.0,
        silence_packets_per_s: silence_packets as f64 / seconds,
        speech_kbps: speech_bytes as f64 * 8.0 / seconds / 1000.0,
        speech_packets_per_s: speech_packets as f64 / seconds,
        cpu_percent: cpu.iter().sum(),
        cpu_encoder_percent: cpu[0],
        cpu_recorder_percent: cpu[1],
        cpu_server_percent: cpu[2],
        av_offset_p50_ms: (!av_sorted.is_empty()).then(|| percentile(&av_sorted, 0.5)),
        av_offsets_ms: av_offsets,
    })
}

/// Fills the screen white or black: a window over all of it, as an app would draw.
struct Flasher {
    conn: x11rb::rust_connection::RustConnection,
    window: u32,
    gc: u32,
    size: (u16, u16),
    colours: (u32, u32),
}

impl Flasher {
    fn new(display: &str) -> Result<Flasher> {
        use x11rb::connection::Connection as _;
        use x11rb::protocol::xproto::{
            ConnectionExt as _, CreateGCAux, CreateWindowAux, WindowClass,
        };
        let (conn, screen) = x11rb::rust_connection::RustConnection::connect(Some(display))
            .with_context(|| format!("cannot open X display {display}"))?;
        let s = &conn.setup().roots[screen];
        let (root, size, colours) = (
            s.root,
            (s.width_in_pixels, s.height_in_pixels),
            (s.white_pixel, s.black_pixel),
        );
        let window = conn.generate_id()?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            size.0,
            size.1,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new()
                .override_redirect(1)
                .background_pixel(colours.1),
        )?
        .check()?;
        conn.map_window(window)?.check()?;
        let gc = conn.generate_id()?;
        conn.create_gc(gc, window, &CreateGCAux::new())?.check()?;
        let f = Flasher {
            conn,
            window,
            gc,
            size,
            colours,
        };
        f.fill(false)?;
        Ok(f)
    }

    /// Fills the screen and waits until the X server has done it.
    fn fill(&self, white: bool) -> Result<()> {
        use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt as _, Rectangle};
        let colour = if white {
            self.colours.0
        } else {
            self.colours.1
        };
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(colour))?;
        self.conn.poly_fill_rectangle(
            self.window,
            self.gc,
            &[Rectangle {
                x: 0,
                y: 0,
                width: self.size.0,
                height: self.size.1,
            }],
        )?;
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }
}

/// Flashes the screen white while a beep plays, `n` times; the sound-minus-picture offsets on
/// the sender's clock (ms).
async fn av_offsets(
    client: &mut ViewerClient,
    decoder: &mut codec::decoder::Decoder,
    flasher: &Flasher,
    player: &mut Player,
    n: usize,
) -> Result<Vec<f64>> {
    use host::client::Media;
    let mut opus = opus::Decoder::new(48_000, opus::Channels::Stereo)?;
    let mut pcm = vec![0i16; 5760 * 2];
    let beep = sine_s16le(1000.0, 0.1);
    let mut out = Vec::new();
    for _ in 0..n {
        // Black and quiet for a while, everything of it read.
        flasher.fill(false)?;
        let end = Instant::now() + Duration::from_millis(500);
        while let Some(m) = client
            .next_media(end.saturating_duration_since(Instant::now()))
            .await
        {
            if let Media::Frame(f) = m {
                let _ = decoder.decode(&f.data);
            }
        }
        flasher.fill(true)?;
        player.write(&beep)?;
        let (mut picture, mut sound) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(2);
        while (picture.is_none() || sound.is_none()) && Instant::now() < deadline {
            let Some(m) = client.next_media(Duration::from_millis(500)).await else {
                continue;
            };
            match m {
                Media::Frame(f) => {
                    let white = decoder.decode(&f.data).unwrap_or_default().iter().any(|p| {
                        // A quarter in from the corner: the pointer sits at the centre.
                        let (x, y) = (p.width as usize / 4, p.height as usize / 4);
                        p.planes
                            .first()
                            .and_then(|l| l.get(y * p.strides[0] + x))
                            .is_some_and(|&luma| luma > 128)
                    });
                    if white && picture.is_none() {
                        picture = Some((f.ssrc, f.rtp_timestamp));
                    }
                }
                Media::Audio(a) => {
                    let n = opus.decode(&a.payload, &mut pcm, false).unwrap_or(0);
                    if sound.is_none() && level_db(&pcm[..n * 2]) > -30.0 {
                        sound = Some((a.ssrc, a.rtp_timestamp));
                    }
                }
            }
        }
        let (Some((vs, vts)), Some((aus, ats))) = (picture, sound) else {
            continue;
        };
        let (Some(v), Some(a)) = (client.sender_report(vs), client.sender_report(aus)) else {
            continue;
        };
        out.push((a.wall_seconds(ats, 48_000) - v.wall_seconds(vts, 90_000)) * 1e3);
    }
    Ok(out)
}

/// The value below which a fraction `q` of `sorted` lies (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Reads and drops audio for `d`.
async fn drain(client: &mut ViewerClient, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        client.next_audio(end - Instant::now()).await;
    }
}

/// Opus payload bytes and packets received in `seconds`.
async fn count(client: &mut ViewerClient, seconds: f64) -> (usize, usize) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut bytes, mut packets) = (0, 0);
    while Instant::now() < end {
        if let Some(a) = client.next_audio(end - Instant::now()).await {
            bytes += a.payload.len();
            packets += 1;
        }
    }
    (bytes, packets)
}

/// An app playing into the session: `pacat` reading raw PCM from our pipe.
struct Player {
    child: Child,
}

impl Player {
    fn start(pulse: &str) -> Result<Player> {
        let child = Command::new("pacat")
            .arg(format!("--server={pulse}"))
            .args([
                "--playback",
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=2",
                "--latency-msec=10",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("pacat (pulseaudio-utils; scripts/setup.sh installs it)")?;
        Ok(Player { child })
    }

    fn write(&mut self, pcm: &[u8]) -> Result<()> {
        self.child
            .stdin
            .as_mut()
            .context("pacat's stdin")?
            .write_all(pcm)
            .context("writing to pacat")
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Speech-like sound: noise band-limited to roughly 300–3400 Hz, in syllables of about
/// 200 ms at four per second with pauses, half of every second silent.
pub fn speech_like(secs: f64) -> Vec<u8> {
    let n = (48_000.0 * secs) as usize;
    let mut out = Vec::with_capacity(n * 4);
    let mut seed: u32 = 0x1234_5678;
    let (mut lp, mut hp_prev_in, mut hp) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let white = f64::from(seed) / f64::from(u32::MAX) * 2.0 - 1.0;
        // One-pole low-pass near 3.4 kHz, then high-pass near 300 Hz.
        lp += 0.36 * (white - lp);
        hp = 0.96 * (hp + lp - hp_prev_in);
        hp_prev_in = lp;
        let t = i as f64 / 48_000.0;
        let within = t.fract();
        // Two syllables in the first half of each second, silence in the second.
        let envelope = if within < 0.5 {
            (std::f64::consts::PI * (within * 4.0).fract())
                .sin()
                .powi(2)
        } else {
            0.0
        };
        let v = (hp * envelope * 0.6 * 32767.0).clamp(-32767.0, 32767.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// CPU seconds of the session's sound: this process's `edgedesk-audio` thread, the recorder
/// and the sound server.
/// CPU seconds of the encoding thread, the recorder and the sound server.
fn audio_cpu_seconds(server_pid: u32) -> [f64; 3] {
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let stat_ticks = |path: String| -> Option<(String, f64)> {
        let stat = std::fs::read_to_string(path).ok()?;
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let t = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some((stat[open + 1..close].to_owned(), t))
    };
    let mut parts = [0.0; 3];
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Some((name, v)) = stat_ticks(format!("{}/stat", t.path().display())) {
                if name == "edgedesk-audio" {
                    parts[0] += v;
                }
            }
        }
    }
    for p in crate::proc::tree(std::process::id()) {
        if p.name == "parec" {
            parts[1] += p.own_ticks;
        } else if p.pid == server_pid {
            parts[2] += p.own_ticks;
        }
    }
    parts.map(|t| t / ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_like_sound_is_half_silent_and_never_clips() {
        let pcm = speech_like(2.0);
        let samples: Vec<i16> = pcm
            .chunks_exact(4)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let second_half = &samples[24_000..48_000];
        assert!(second_half.iter().all(|&s| s == 0));
        assert!(level_db(&samples[..24_000]) > -40.0);
        assert!(samples.iter().all(|&s| s > i16::MIN));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
    }
}
