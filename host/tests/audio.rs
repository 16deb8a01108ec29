//! The session's sound, end to end with real parts: the session's own PulseAudio, `pacat`
//! playing a generated tone into its default sink as an app would, `parec` → Opus on the
//! host, WebRTC over loopback, and the headless client decoding the Opus it receives.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgedesk_host as host;
use host::audio::{AudioMode, AudioSettings, AudioSource, SoundServer};
use host::client::{ClientOptions, ViewerClient};

fn pactl(server: &SoundServer, args: &[&str]) -> String {
    let out = Command::new("pactl")
        .arg(format!("--server={}", server.pulse_server()))
        .args(args)
        .output()
        .expect("pactl (pulseaudio-utils; scripts/setup.sh installs it)");
    assert!(out.status.success(), "pactl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks the pid.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[test]
fn the_sound_server_is_the_sessions_own_and_leaves_nothing_behind() {
    let server = SoundServer::start().expect("pulseaudio (scripts/setup.sh installs it)");
    let (pid, dir) = (server.pid(), server.dir().to_owned());
    let info = pactl(&server, &["info"]);
    assert!(info.contains("Default Sink: desktop"), "{info}");
    assert!(info.contains("Default Source: microphone"), "{info}");
    // Only the private socket: no TCP listener, nothing loaded at run time.
    let modules = pactl(&server, &["list", "short", "modules"]);
    assert!(!modules.contains("protocol-tcp"), "{modules}");
    assert!(Command::new("pactl")
        .arg(format!("--server={}", server.pulse_server()))
        .args(["load-module", "module-native-protocol-tcp"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| !s.success()));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    // Two sessions, two servers.
    let other = SoundServer::start().unwrap();
    assert_ne!(other.socket(), server.socket());
    drop(other);
    drop(server);
    assert!(!alive(pid), "pulseaudio {pid} still runs");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// A headless viewer that offers to receive sound, and its offer.
async fn audio_client() -> (ViewerClient, String) {
    ViewerClient::with_options(
        vec!["127.0.0.1:0".into()],
        ClientOptions {
            audio: true,
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap()
}

/// Power of the left channel of interleaved stereo `pcm` at `hz` (Goertzel).
fn power_at(pcm: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for x in pcm.iter().step_by(2) {
        let s = f64::from(*x) + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tone_played_in_the_session_is_heard_by_the_viewer_and_silence_costs_almost_nothing() {
    let display = common::xvfb();
    let mut session = common::session(&display, "sound", 2);
    let server = SoundServer::start().expect("pulseaudio");
    let (server_pid, server_dir, pulse) =
        (server.pid(), server.dir().to_owned(), server.pulse_server());
    session.attach_audio(
        AudioSource::start(server, AudioSettings::default()).unwrap(),
        AudioMode::Out,
    );
    let counters = session.audio().unwrap().counters.clone();

    let (mut client, offer) = audio_client().await;
    assert!(offer.contains("m=audio"));
    let (_id, answer) = session.add_viewer(offer, true).await.expect("answer");
    let audio_section = answer.split("m=audio").nth(1).expect("an audio section");
    assert!(
        audio_section.to_lowercase().contains("opus/48000/2"),
        "{answer}"
    );
    assert!(audio_section.contains("a=sendonly"), "{answer}");
    client.accept_answer(answer).await.unwrap();

    // Silence (nothing plays): after DTX sets in, almost nothing is sent.
    let first = client
        .next_audio(Duration::from_secs(10))
        .await
        .expect("an audio packet arrives");
    let settle = Instant::now() + Duration::from_millis(800);
    while client
        .next_audio(Duration::from_millis(100))
        .await
        .is_some()
        && Instant::now() < settle
    {}
    let (mut packets, mut bytes) = (0usize, 0usize);
    let window = Instant::now() + Duration::from_secs(2);
    while Instant::now() < window {
        if let Some(a) = client.next_audio(window - Instant::now()).await {
            packets += 1;
            bytes += a.payload.len();
        }
    }
    let frames = counters
        .frames_encoded
        .load(std::sync::atomic::Ordering::Relaxed);
    let dtx = counters
        .frames_dtx
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "silence: {packets} packets, {bytes} bytes in 2 s ({:.1} kbit/s); {dtx} of {frames} frames left out",
        bytes as f64 * 8.0 / 2000.0
    );
    assert!(
        packets <= 20,
        "DTX: {packets} packets in 2 s of silence (200 without)"
    );
    assert!(dtx > frames / 2, "{dtx} of {frames} frames DTX");
    let mut metrics = host::metrics::Metrics::new();
    session.metrics(&mut metrics);
    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| l.starts_with("edgedesk_audio_frames_dtx_total{"))
        .expect("the DTX counter is exported");
    let exported: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(exported >= dtx, "{line} (counted {dtx})");

    // A 1 kHz tone, played by an app into the session's default sink.
    let mut player = Command::new("pacat")
        .arg(format!("--server={pulse}"))
        .args([
            "--playback",
            "--format=s16le",
            "--rate=48000",
            "--channels=2",
            "--latency-msec=10",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("pacat");
    let played = Instant::now();
    player
        .stdin
        .take()
        .unwrap()
        .write_all(&host::audio::sine_s16le(1000.0, 2.0))
        .unwrap();
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
    let mut pcm = vec![0i16; 5760 * 2];
    let mut heard: Option<Duration> = None;
    let mut tone: Vec<i16> = Vec::new();
    let mut timestamps = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tone.len() < 48_000 && Instant::now() < deadline {
        let Some(a) = client.next_audio(Duration::from_secs(2)).await else {
            break;
        };
        let n = decoder
            .decode(&a.payload, &mut pcm, false)
            .expect("valid Opus");
        let frame = &pcm[..n * 2];
        if host::audio::level_db(frame) > -20.0 {
            heard.get_or_insert(a.received_at.saturating_duration_since(played));
            tone.extend_from_slice(frame);
            timestamps.push(a.rtp_timestamp);
        }
    }
    let _ = player.wait();
    let heard = heard.expect("the tone is heard");
    eprintln!(
        "tone heard {:.1} ms after pacat started",
        heard.as_secs_f64() * 1e3
    );
    // Not a latency measurement (the bench tool makes those): only that the monitor does not
    // buffer seconds, as it does without a small latency setting.
    assert!(heard < Duration::from_millis(1000), "{heard:?}");
    assert!(
        tone.len() >= 24_000,
        "half a second of tone decoded ({} samples)",
        tone.len() / 2
    );
    let at = power_at(&tone, 1000.0);
    for other in [250.0, 500.0, 1500.0, 3000.0] {
        assert!(
            at > 100.0 * power_at(&tone, other),
            "1 kHz dominates {other} Hz"
        );
    }
    // 10 ms frames, continuous: timestamps advance 480 a packet.
    let steps: Vec<u32> = timestamps
        .windows(2)
        .map(|w| w[1].wrapping_sub(w[0]))
        .collect();
    let regular = steps.iter().filter(|&&s| s == 480).count();
    assert!(regular * 10 >= steps.len() * 9, "steps {steps:?}");
    assert!(first.payload.len() > 2);

    client.close().await;
    session.close().await;
    drop(session);
    assert!(!alive(server_pid), "the session's pulseaudio ended with it");
    assert!(!server_dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_sound_rejects_the_audio_section() {
    let display = common::xvfb();
    let session = common::session(&display, "mute", 2);
    let (mut client, offer) = audio_client().await;
    let (_id, answer) = session.add_viewer(offer, true).await.expect("answer");
    assert!(answer.contains("m=audio 0 "), "{answer}");
    client.accept_answer(answer).await.unwrap();
    assert!(client.next_frame(Duration::from_secs(10)).await.is_some());
    assert!(client
        .next_audio(Duration::from_millis(500))
        .await
        .is_none());
    client.close().await;
    session.close().await;
}
