//! Per-frame timings of the host's frame path, on the machine's monotonic clock
//! (`CLOCK_MONOTONIC`, nanoseconds), so that another process on the same machine — the bench
//! tool with its stimulus — can line them up with its own timestamps.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// Frames kept (about 34 s at 60 fps).
pub const FRAME_HISTORY: usize = 2048;

/// Now on `CLOCK_MONOTONIC`, in nanoseconds (the same clock in every process of this machine).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer; CLOCK_MONOTONIC
    // always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An [`Instant`] (a past one) on the [`mono_ns`] clock.
pub fn instant_ns(at: Instant) -> u64 {
    let (now, now_ns) = (Instant::now(), mono_ns());
    now_ns.saturating_sub(now.saturating_duration_since(at).as_nanos() as u64)
}

/// Where one frame's time went on the host. Times are [`mono_ns`] values; 0 means "not yet".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameTiming {
    /// The capture's frame sequence number.
    pub sequence: u64,
    /// The grab request went to the X server (the picture is the screen at about this moment).
    pub grab_start_ns: u64,
    /// The image was in hand.
    pub captured_ns: u64,
    /// The encode thread took the frame from the slot.
    pub encode_start_ns: u64,
    /// Conversion to the encoder's pixel format, microseconds.
    pub convert_us: u32,
    /// The encoder was done.
    pub encoded_ns: u64,
    /// The first viewer had every packet of the frame written to its socket.
    pub sent_ns: u64,
    pub bytes: u32,
    pub keyframe: bool,
}

/// The last [`FRAME_HISTORY`] frames' timings.
#[derive(Debug, Default)]
pub struct FrameTimings {
    frames: Mutex<VecDeque<FrameTiming>>,
}

impl FrameTimings {
    /// A frame was encoded.
    pub fn push(&self, t: FrameTiming) {
        let mut f = self.frames.lock().unwrap();
        if f.len() >= FRAME_HISTORY {
            f.pop_front();
        }
        f.push_back(t);
    }

    /// A viewer finished sending frame `sequence`; the first viewer's time is kept.
    pub fn sent(&self, sequence: u64, at_ns: u64) {
        let mut f = self.frames.lock().unwrap();
        if let Some(t) = f.iter_mut().rev().find(|t| t.sequence == sequence) {
            if t.sent_ns == 0 {
                t.sent_ns = at_ns;
            }
        }
    }

    /// The frames kept, oldest first.
    pub fn snapshot(&self) -> Vec<FrameTiming> {
        self.frames.lock().unwrap().iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_agree() {
        let a = mono_ns();
        let i = Instant::now();
        let b = mono_ns();
        let at = instant_ns(i);
        assert!(a <= at + 50_000 && at <= b + 50_000, "{a} {at} {b}");
        let earlier = instant_ns(i - std::time::Duration::from_millis(5));
        assert!((at - earlier).abs_diff(5_000_000) < 100_000);
    }

    #[test]
    fn history_is_bounded_and_sent_keeps_the_first_viewer() {
        let t = FrameTimings::default();
        for s in 0..(FRAME_HISTORY as u64 + 10) {
            t.push(FrameTiming {
                sequence: s,
                ..FrameTiming::default()
            });
        }
        t.sent(20, 100);
        t.sent(20, 200);
        t.sent(3, 100); // gone from the history: ignored
        let snap = t.snapshot();
        assert_eq!(snap.len(), FRAME_HISTORY);
        assert_eq!(snap[0].sequence, 10);
        assert_eq!(snap.iter().find(|f| f.sequence == 20).unwrap().sent_ns, 100);
    }
}
