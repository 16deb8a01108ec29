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

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use codec::registry::{EncoderPreference, EncoderRegistry};
use codec::EncoderSettings;
use host::audio::{level_db, AudioMode, AudioSettings, AudioSource, SoundServer};
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
}

/// Runs the measurement: `bursts` latency probes, and `seconds` each of silence and speech.
pub async fn measure(bursts: usize, seconds: f64, settings: AudioSettings) -> Result<AudioReport> {
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
                    fps: 15,
                    bitrate_bps: 500_000,
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
    if client.next_audio(Duration::from_secs(10)).await.is_none() {
        bail!("no audio arrived: {}", client.why_no_video());
    }
    let mut player = Player::start(&pulse)?;
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo)?;
    let mut pcm = vec![0i16; 5760 * 2];

    // Silence: DTX.
    drain(&mut client, Duration::from_millis(800)).await;
    let (silence_bytes, silence_packets) = count(&mut client, seconds).await;

    // Latency: bursts after silence.
    let mut latencies = Vec::with_capacity(bursts);
    let burst = tone(1000.0, 0.1);
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
    let cpu =
        (audio_cpu_seconds(server_pid) - cpu_before) / started.elapsed().as_secs_f64() * 100.0;
    drop(feeder.join());

    client.close().await;
    session.close().await;
    drop(session);
    drop(display);
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
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
        cpu_percent: cpu,
    })
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

/// `secs` of a stereo sine at `hz`, half scale, s16le 48 kHz.
pub fn tone(hz: f64, secs: f64) -> Vec<u8> {
    let n = (48_000.0 * secs) as usize;
    let mut out = Vec::with_capacity(n * 4);
    for i in 0..n {
        let v =
            (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 48_000.0).sin()) as i16;
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
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
fn audio_cpu_seconds(server_pid: u32) -> f64 {
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let stat_ticks = |path: String| -> Option<(String, f64)> {
        let stat = std::fs::read_to_string(path).ok()?;
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let t = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some((stat[open + 1..close].to_owned(), t))
    };
    let mut total = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Some((name, v)) = stat_ticks(format!("{}/stat", t.path().display())) {
                if name == "edgedesk-audio" {
                    total += v;
                }
            }
        }
    }
    for p in crate::proc::tree(std::process::id()) {
        if p.name == "parec" || p.pid == server_pid {
            total += p.own_ticks;
        }
    }
    total / ticks
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
