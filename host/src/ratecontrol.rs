//! The session's encoder bitrate from its viewers' bandwidth estimates, sans-IO (time passed
//! in). One encoder serves every viewer of a codec, so one rate must suit them:
//!
//! - The rate follows the **slowest controlling viewer** (the one whose input matters), at
//!   [`ENCODER_SHARE`] of its estimate (room for retransmissions, audio and the encoder's
//!   overshoot on a keyframe), within the operator's minimum and maximum. With no controlling
//!   viewer, the slowest viewer of any role.
//! - A **view-only viewer far slower** than that (its estimate under [`SLOW_VIEWER`] of the
//!   controlling one's) does not pull the rate down: it is served keyframes only (its task
//!   skips the rest and asks for a keyframe at most every few seconds), so it sees a slower
//!   picture and nobody else pays for its link.
//! - Down at once (a congested link queues within a second), up at most every
//!   [`UP_INTERVAL`] and only by a step worth a change (the estimator already paces growth).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use crate::viewer::congestion::RateLimits;

/// The encoder's share of the estimate.
pub const ENCODER_SHARE: f64 = 0.85;
/// A view-only viewer under this fraction of the controlling viewers' estimate is "slow".
pub const SLOW_VIEWER: f64 = 0.5;
/// The shortest time between two increases.
pub const UP_INTERVAL: Duration = Duration::from_millis(500);
/// Changes smaller than this fraction of the current rate are not made.
const MIN_CHANGE: f64 = 0.05;

#[derive(Debug, Clone, Copy)]
struct ViewerRate {
    control: bool,
    estimate: Option<u64>,
}

/// The rate controller of one session.
#[derive(Debug)]
pub struct RateController {
    limits: RateLimits,
    current: u64,
    last_up: Option<Instant>,
    viewers: BTreeMap<String, ViewerRate>,
}

impl RateController {
    pub fn new(limits: RateLimits) -> Self {
        RateController {
            limits,
            current: limits.start_bps.clamp(limits.min_bps, limits.max_bps),
            last_up: None,
            viewers: BTreeMap::new(),
        }
    }

    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// The rate the encoder was last told.
    pub fn current(&self) -> u64 {
        self.current
    }

    /// A viewer's latest estimate (`None` before its first feedback).
    pub fn update(&mut self, id: &str, control: bool, estimate: Option<u64>) {
        self.viewers
            .insert(id.to_owned(), ViewerRate { control, estimate });
    }

    pub fn remove(&mut self, id: &str) {
        self.viewers.remove(id);
    }

    /// The slowest estimate of the controlling viewers (of all, if none controls).
    fn controlling_min(&self) -> Option<u64> {
        let of = |control: Option<bool>| {
            self.viewers
                .values()
                .filter(|v| control.is_none_or(|c| v.control == c))
                .filter_map(|v| v.estimate)
                .min()
        };
        of(Some(true)).or_else(|| of(None))
    }

    /// Whether `id` is a view-only viewer too slow to pull the rate (served keyframes only).
    pub fn is_slow(&self, id: &str) -> bool {
        let Some(v) = self.viewers.get(id) else {
            return false;
        };
        if v.control || !self.viewers.values().any(|o| o.control) {
            return false;
        }
        match (v.estimate, self.controlling_min()) {
            (Some(mine), Some(theirs)) => (mine as f64) < SLOW_VIEWER * theirs as f64,
            _ => false,
        }
    }

    /// The rate to set now, when it should change.
    pub fn decide(&mut self, now: Instant) -> Option<u64> {
        let ctl = self.controlling_min()?;
        // View-only viewers pull the rate too, unless they are slow.
        let slowest = self
            .viewers
            .values()
            .filter_map(|v| v.estimate)
            .filter(|e| (*e as f64) >= SLOW_VIEWER * ctl as f64)
            .min()
            .unwrap_or(ctl)
            .min(ctl);
        let want = ((slowest as f64 * ENCODER_SHARE) as u64)
            .clamp(self.limits.min_bps, self.limits.max_bps);
        let current = self.current as f64;
        let change = if (want as f64) < current * (1.0 - MIN_CHANGE) {
            true
        } else if (want as f64) > current * (1.0 + MIN_CHANGE)
            || (want == self.limits.max_bps && want > self.current)
        {
            let ok = self
                .last_up
                .is_none_or(|t| now.saturating_duration_since(t) >= UP_INTERVAL);
            if ok {
                self.last_up = Some(now);
            }
            ok
        } else {
            false
        };
        if change {
            self.current = want;
            Some(want)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RateLimits {
        RateLimits {
            start_bps: 8_000_000,
            min_bps: 300_000,
            max_bps: 8_000_000,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_changes_before_feedback() {
        let mut r = RateController::new(limits());
        r.update("a", true, None);
        assert_eq!(r.decide(Instant::now()), None);
        assert_eq!(r.current(), 8_000_000);
    }

    #[test]
    fn down_at_once_up_in_steps_within_the_limits() {
        let t = Instant::now();
        let mut r = RateController::new(limits());
        r.update("a", true, Some(2_000_000));
        assert_eq!(r.decide(t), Some(1_700_000));
        // A small wobble is no change.
        r.update("a", true, Some(2_050_000));
        assert_eq!(r.decide(t + ms(100)), None);
        r.update("a", true, Some(3_000_000));
        assert_eq!(r.decide(t + ms(200)), Some(2_550_000));
        r.update("a", true, Some(4_000_000));
        assert_eq!(
            r.decide(t + ms(300)),
            None,
            "not twice up within UP_INTERVAL"
        );
        assert_eq!(r.decide(t + ms(700)), Some(3_400_000));
        r.update("a", true, Some(100_000_000));
        assert_eq!(r.decide(t + ms(1300)), Some(8_000_000), "the max");
        r.update("a", true, Some(1_000));
        assert_eq!(r.decide(t + ms(1301)), Some(300_000), "the min");
    }

    #[test]
    fn the_slowest_controlling_viewer_sets_the_rate() {
        let t = Instant::now();
        let mut r = RateController::new(limits());
        r.update("fast", true, Some(6_000_000));
        r.update("slow", true, Some(2_000_000));
        assert_eq!(r.decide(t), Some(1_700_000));
        assert!(!r.is_slow("slow"));
        r.remove("slow");
        assert_eq!(r.decide(t + ms(600)), Some(5_100_000));
    }

    #[test]
    fn a_far_slower_view_only_viewer_does_not_pull_the_rate_and_gets_keyframes_only() {
        let t = Instant::now();
        let mut r = RateController::new(limits());
        r.update("ctl", true, Some(6_000_000));
        r.update("watcher", false, Some(1_000_000));
        assert_eq!(r.decide(t), Some(5_100_000));
        assert!(r.is_slow("watcher"));
        assert!(!r.is_slow("ctl"));
        // A view-only viewer only a little slower pulls the rate down.
        r.update("watcher", false, Some(4_000_000));
        assert!(!r.is_slow("watcher"));
        assert_eq!(r.decide(t + ms(10)), Some(3_400_000));
        // With nobody controlling, the slowest viewer decides and nobody is "slow".
        r.remove("ctl");
        r.update("watcher", false, Some(1_000_000));
        assert!(!r.is_slow("watcher"));
        assert_eq!(r.decide(t + ms(20)), Some(850_000));
    }
}
