//! A controlling viewer's microphone into the session: its Opus RTP is decoded and played
//! into the session's `mic-in` sink, whose monitor is the session's default source
//! (`microphone`), so an app recording from the default source hears the viewer.
//!
//! One `pacat` per microphone (several viewers' microphones are mixed by the server). The
//! network task only forwards packets into a bounded queue; decoding and the (blocking) pipe
//! writes run on their own thread. A lost packet is concealed (Opus PLC, up to
//! [`MAX_CONCEALED`] frames); a full queue drops packets and counts them.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use bytes::Bytes;

use super::{server, RATE};

/// At most this many lost frames are concealed in a row (longer gaps are skipped).
pub const MAX_CONCEALED: u16 = 5;
/// Packets waiting for the decoder (≈ 0.6 s of 10 ms frames).
const QUEUE: usize = 64;

/// Counters of one session's microphones.
#[derive(Debug, Default)]
pub struct MicCounters {
    pub packets: AtomicU64,
    pub concealed_frames: AtomicU64,
    pub dropped_packets: AtomicU64,
    pub undecodable_packets: AtomicU64,
}

/// One viewer's microphone, playing into the session. Dropping it stops the player.
pub struct Microphone {
    tx: Option<SyncSender<(u16, Bytes)>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<MicCounters>,
}

impl Microphone {
    /// Starts a player into `pulse_server`'s microphone sink.
    pub fn start(pulse_server: &str, counters: Arc<MicCounters>) -> std::io::Result<Microphone> {
        let mut cmd = Command::new("pacat");
        cmd.arg(format!("--server={pulse_server}"))
            .arg(format!("--device={}", server::MIC_SINK))
            .args([
                "--playback",
                "--format=s16le",
                "--channels=2",
                "--raw",
                "--latency-msec=30",
                "--client-name=edgedesk",
                "--stream-name=viewer-microphone",
            ])
            .arg(format!("--rate={RATE}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = control::process::spawn_tied(&mut cmd)?;
        let decoder = opus::Decoder::new(RATE, opus::Channels::Stereo)
            .map_err(|e| std::io::Error::other(format!("opus decoder: {e}")))?;
        let (tx, rx) = sync_channel::<(u16, Bytes)>(QUEUE);
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("edgedesk-mic".into())
            .spawn(move || {
                play(&mut child, decoder, rx, &c);
                let _ = child.kill();
                let _ = child.wait();
            })?;
        Ok(Microphone {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    /// Queues one RTP packet's Opus payload (never blocks; a full queue drops it).
    pub fn push(&self, sequence: u16, payload: Bytes) {
        self.counters.packets.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send((sequence, payload)) {
                self.counters
                    .dropped_packets
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn play(
    child: &mut Child,
    mut decoder: opus::Decoder,
    rx: std::sync::mpsc::Receiver<(u16, Bytes)>,
    counters: &MicCounters,
) {
    let Some(mut pipe) = child.stdin.take() else {
        return;
    };
    let mut pcm = vec![0i16; 5760 * 2];
    let mut bytes = Vec::with_capacity(pcm.len() * 2);
    let mut next: Option<u16> = None;
    let mut frame = 480usize;
    for (sequence, payload) in rx {
        let missing = next.map_or(0, |n| sequence.wrapping_sub(n));
        if missing >= 0x8000 {
            continue; // late or repeated
        }
        if (1..=MAX_CONCEALED).contains(&missing) {
            for _ in 0..missing {
                // Packet loss concealment: an empty packet asks the decoder to fill in.
                if let Ok(n) = decoder.decode(&[], &mut pcm[..frame * 2], false) {
                    counters.concealed_frames.fetch_add(1, Ordering::Relaxed);
                    if write_pcm(&mut pipe, &pcm[..n * 2], &mut bytes).is_err() {
                        return;
                    }
                }
            }
        }
        next = Some(sequence.wrapping_add(1));
        match decoder.decode(&payload, &mut pcm, false) {
            Ok(n) => {
                frame = n.max(1);
                if write_pcm(&mut pipe, &pcm[..n * 2], &mut bytes).is_err() {
                    return;
                }
            }
            Err(_) => {
                counters.undecodable_packets.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn write_pcm(
    pipe: &mut std::process::ChildStdin,
    pcm: &[i16],
    bytes: &mut Vec<u8>,
) -> std::io::Result<()> {
    bytes.clear();
    for s in pcm {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    pipe.write_all(bytes)
}
