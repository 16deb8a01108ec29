//! A controlling viewer's microphone into the session: its Opus RTP is decoded and played
//! into the session's `mic-in` sink, whose monitor is the session's default source
//! (`microphone`), so an app recording from the default source hears the viewer.
//!
//! One `pacat` per microphone (several viewers' microphones are mixed by the server). The
//! network task only forwards packets into a bounded queue; decoding and the (blocking) pipe
//! writes run on their own thread. A lost packet is rebuilt from the next one's in-band FEC
//! (longer gaps: Opus PLC, up to [`MAX_CONCEALED`] frames). The delay stays bounded: packets
//! are dropped (and counted) while more than [`MAX_QUEUED`] wait, and a stream whose sequence
//! numbers jumped back is followed after [`RESYNC_AFTER`] such packets.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use bytes::Bytes;

use super::{server, RATE};

/// At most this many lost frames are concealed in a row (longer gaps are skipped).
pub const MAX_CONCEALED: u16 = 5;
/// Packets the queue holds.
const QUEUE: usize = 64;
/// More waiting than this (≈ 80 ms of 10 ms frames): the player is behind; drop to catch up.
pub const MAX_QUEUED: usize = 8;
/// Packets older than the last one, in a row, after which the stream is taken to have
/// restarted its sequence numbers.
pub const RESYNC_AFTER: u32 = 3;

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
    queued: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
    player: Child,
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
        let decoder = opus::Decoder::new(RATE, opus::Channels::Stereo)
            .map_err(|e| std::io::Error::other(format!("opus decoder: {e}")))?;
        let mut player = control::process::spawn_tied(&mut cmd)?;
        let Some(pipe) = player.stdin.take() else {
            let _ = player.kill();
            let _ = player.wait();
            return Err(std::io::Error::other("pacat has no stdin"));
        };
        let (tx, rx) = sync_channel::<(u16, Bytes)>(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let (c, q) = (counters.clone(), queued.clone());
        let thread = std::thread::Builder::new()
            .name("edgedesk-mic".into())
            .spawn(move || play(pipe, decoder, rx, &q, &c));
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                let _ = player.kill();
                let _ = player.wait();
                return Err(e);
            }
        };
        Ok(Microphone {
            tx: Some(tx),
            queued,
            thread: Some(thread),
            player,
            counters,
        })
    }

    /// Queues one RTP packet's Opus payload (never blocks; a full queue drops it). `false`
    /// when the player has ended (the sound server went away): the caller may stop.
    pub fn push(&self, sequence: u16, payload: Bytes) -> bool {
        self.counters.packets.fetch_add(1, Ordering::Relaxed);
        let Some(tx) = &self.tx else { return false };
        self.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send((sequence, payload)) {
            Ok(()) => true,
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                self.counters
                    .dropped_packets
                    .fetch_add(1, Ordering::Relaxed);
                matches!(e, TrySendError::Full(_))
            }
        }
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        self.tx.take();
        // Killed first: a thread blocked writing to a player that stopped reading wakes up.
        let _ = self.player.kill();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.player.wait();
    }
}

fn play(
    mut pipe: std::process::ChildStdin,
    mut decoder: opus::Decoder,
    rx: std::sync::mpsc::Receiver<(u16, Bytes)>,
    queued: &AtomicUsize,
    counters: &MicCounters,
) {
    let mut pcm = vec![0i16; 5760 * 2];
    let mut bytes = Vec::with_capacity(pcm.len() * 2);
    let mut frame = 480usize;
    let mut order = Sequencer::default();
    for (sequence, payload) in rx {
        let behind = queued.fetch_sub(1, Ordering::Relaxed) > MAX_QUEUED;
        let Step::Play { conceal } = order.step(sequence, behind) else {
            if behind {
                counters.dropped_packets.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        };
        for i in 0..conceal {
            // The frame right before this packet comes from its in-band FEC; earlier ones
            // from loss concealment (an empty packet).
            let decoded = if i + 1 == conceal {
                decoder.decode(&payload, &mut pcm[..frame * 2], true)
            } else {
                decoder.decode(&[], &mut pcm[..frame * 2], false)
            };
            if let Ok(n) = decoded {
                counters.concealed_frames.fetch_add(1, Ordering::Relaxed);
                if write_pcm(&mut pipe, &pcm[..n * 2], &mut bytes).is_err() {
                    return;
                }
            }
        }
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

/// What to do with the next packet of a microphone stream.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Drop it (late, repeated, or the player is behind).
    Skip,
    /// Play it, after filling in `conceal` lost frames.
    Play { conceal: u16 },
}

/// Follows a stream's sequence numbers (pure; see the module docs for the rules).
#[derive(Debug, Default)]
struct Sequencer {
    next: Option<u16>,
    late: u32,
}

impl Sequencer {
    /// `behind`: more than [`MAX_QUEUED`] packets wait for the player.
    fn step(&mut self, sequence: u16, behind: bool) -> Step {
        if behind {
            // Nothing is concealed in place of what is dropped: the delay shrinks.
            self.next = None;
            return Step::Skip;
        }
        let missing = self.next.map_or(0, |n| sequence.wrapping_sub(n));
        if missing >= 0x8000 {
            // Late or repeated; several in a row: the sender restarted its numbering.
            self.late += 1;
            if self.late < RESYNC_AFTER {
                return Step::Skip;
            }
        }
        self.late = 0;
        self.next = Some(sequence.wrapping_add(1));
        Step::Play {
            conceal: if (1..=MAX_CONCEALED).contains(&missing) {
                missing
            } else {
                0
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_filled_in_up_to_a_bound_and_late_packets_dropped() {
        let mut s = Sequencer::default();
        assert_eq!(s.step(65534, false), Step::Play { conceal: 0 });
        assert_eq!(s.step(65535, false), Step::Play { conceal: 0 });
        // Two lost across the wrap: filled in (the last from the next packet's FEC).
        assert_eq!(s.step(2, false), Step::Play { conceal: 2 });
        // A late one and a repeat: dropped.
        assert_eq!(s.step(1, false), Step::Skip);
        assert_eq!(s.step(2, false), Step::Skip);
        // A long gap is not filled in (it would only add delay).
        assert_eq!(s.step(50, false), Step::Play { conceal: 0 });
    }

    #[test]
    fn a_restarted_stream_is_followed_and_a_backlog_drained() {
        let mut s = Sequencer::default();
        s.step(1000, false);
        assert_eq!(s.step(10, false), Step::Skip);
        assert_eq!(s.step(11, false), Step::Skip);
        assert_eq!(s.step(12, false), Step::Play { conceal: 0 });
        assert_eq!(s.step(13, false), Step::Play { conceal: 0 });
        // Behind: dropped, and what follows the drop is not concealed.
        assert_eq!(s.step(14, true), Step::Skip);
        assert_eq!(s.step(15, false), Step::Play { conceal: 0 });
    }
}
