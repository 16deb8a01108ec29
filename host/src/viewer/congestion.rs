//! Send-side congestion control of one viewer: transport-wide CC feedback from the browser
//! drives our GCC estimator ([`super::gcc`]: delay-based, capped by loss), wrapped so the
//! application can read the estimate, and a pacer that releases packets at a multiple of it.
//!
//! The pacer runs at [`PACING_FACTOR`] times the estimate (libwebrtc paces at 2.5x): it spreads
//! a keyframe's burst over a few frame times on a thin link without ever becoming a queue of
//! its own, because the encoder is kept below the estimate (see [`crate::ratecontrol`]). The
//! crate's own helper paces at exactly the estimate and starts its pacer at 1 Mbit/s whatever
//! the estimator says, which measured 12 fps and seconds of latency here; so the chain is put
//! together by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{
    BandwidthEstimator, CongestionControlBuilder, EstimatorStats, PacerBuilder, PacketReport,
    Registry, Slot, TwccSenderBuilder,
};

use super::gcc::Gcc;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};

/// The pacer's rate as a multiple of the estimate.
pub const PACING_FACTOR: f64 = 2.0;
/// Packets the pacer may hold before it drops (a full 1080p keyframe is ~200).
const PACER_QUEUE: usize = 1024;
const TRANSPORT_CC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// The bounds congestion control keeps a session's rate in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Where the estimate starts (the operator's `--bitrate`).
    pub start_bps: u64,
    pub min_bps: u64,
    pub max_bps: u64,
}

/// What the estimator last said, readable from anywhere.
#[derive(Debug, Default)]
pub struct Estimate {
    /// The combined target (bit/s); 0 until the first feedback.
    pub target_bps: AtomicU64,
    pub delay_based_bps: AtomicU64,
    pub loss_based_bps: AtomicU64,
    /// Loss the feedback reported, per mille.
    pub loss_permille: AtomicU64,
    /// Feedback batches seen.
    pub updates: AtomicU64,
}

impl Estimate {
    /// The target, or `None` before any feedback.
    pub fn target(&self) -> Option<u64> {
        (self.updates.load(Ordering::Relaxed) > 0).then(|| self.target_bps.load(Ordering::Relaxed))
    }
}

/// GCC, publishing every estimate; it tells the chain (the pacer) the estimate times
/// [`PACING_FACTOR`].
pub struct Publishing {
    gcc: Gcc,
    shared: Arc<Estimate>,
}

impl Publishing {
    pub fn new(limits: RateLimits, shared: Arc<Estimate>) -> Self {
        Publishing {
            gcc: Gcc::new(
                limits.start_bps as f64,
                limits.min_bps as f64,
                limits.max_bps as f64,
            ),
            shared,
        }
    }

    fn publish(&self) {
        let s = &self.shared;
        let stats = self.gcc.stats();
        s.target_bps
            .store(self.gcc.target_bitrate() as u64, Ordering::Relaxed);
        s.delay_based_bps.store(
            stats.delay_based_bitrate.unwrap_or(0.0) as u64,
            Ordering::Relaxed,
        );
        s.loss_based_bps.store(
            stats.loss_based_bitrate.unwrap_or(0.0) as u64,
            Ordering::Relaxed,
        );
        s.loss_permille.store(
            (stats.packet_loss.unwrap_or(0.0) * 1000.0) as u64,
            Ordering::Relaxed,
        );
        s.updates.fetch_add(1, Ordering::Relaxed);
    }
}

impl BandwidthEstimator for Publishing {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        self.gcc.on_reports(now, reports);
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.gcc.target_bitrate() * PACING_FACTOR
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.gcc.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.gcc.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.gcc.stats()
    }
}

/// Adds congestion control to `registry`: transport-cc offered for video, sequence numbers on
/// what leaves, feedback into [`Publishing`], and the pacer. Returns where the estimate shows.
pub fn configure(
    registry: Registry,
    media: &mut MediaEngine,
    limits: RateLimits,
) -> Result<(Registry, Arc<Estimate>), rtc::shared::error::Error> {
    media.register_feedback(
        RTCPFeedback {
            typ: "transport-cc".to_owned(),
            parameter: String::new(),
        },
        RtpCodecKind::Video,
    );
    media.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: TRANSPORT_CC_URI.to_owned(),
        },
        RtpCodecKind::Video,
        None,
    )?;
    let shared = Arc::new(Estimate::default());
    let estimator = Publishing::new(limits, shared.clone());
    let registry = registry
        .with(
            Slot::CongestionControl,
            CongestionControlBuilder::new(estimator).build(),
        )
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(
            Slot::Pacer,
            PacerBuilder::new()
                .with_target_bitrate(limits.start_bps as f64 * PACING_FACTOR)
                .with_queue_limit(PACER_QUEUE)
                .build(),
        );
    Ok((registry, shared))
}

#[cfg(test)]
mod tests {
    //! GCC on virtual time through the wrapper: what the application reads and what the
    //! pacer is told. Feedback is synthesised as a link of a given capacity would produce it.
    use super::*;
    use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;
    use std::time::Duration;

    use crate::ratecontrol::ENCODER_SHARE;

    const START: u64 = 4_000_000;

    fn limits() -> RateLimits {
        RateLimits {
            start_bps: START,
            min_bps: 300_000,
            max_bps: 20_000_000,
        }
    }

    /// A sender at `send_bps` through a bottleneck of `capacity_bps` (a FIFO queue that
    /// drops past `queue`), feedback every 100 ms, plus a fixed 10 ms of path delay. Returns
    /// the published targets, one per feedback.
    struct Path {
        t0: Instant,
        now: Duration,
        busy_until: Duration,
        id: u64,
        /// The longest a packet of the last batch waited in the bottleneck's queue.
        queued: Duration,
        /// Sent, not reported yet (feedback reports what has arrived by then).
        flight: std::collections::VecDeque<PacketReport>,
        /// The bottleneck's queue drops what would wait longer.
        queue_limit: Duration,
    }

    impl Path {
        fn new() -> Self {
            Path {
                t0: Instant::now(),
                now: Duration::ZERO,
                busy_until: Duration::ZERO,
                id: 0,
                queued: Duration::ZERO,
                flight: Default::default(),
                queue_limit: Duration::from_millis(300),
            }
        }

        /// 100 ms of 1200-byte packets at `send_bps`, through `capacity_bps`, `loss` of them
        /// lost (every 1/loss-th), with an added delay growing from `extra.0` to `extra.1`
        /// over the batch.
        fn feedback(
            &mut self,
            send_bps: f64,
            capacity_bps: f64,
            loss: f64,
            extra: (Duration, Duration),
        ) -> Vec<PacketReport> {
            self.queued = Duration::ZERO;
            let batch_start = self.now;
            let size = 1200usize;
            let gap = Duration::from_secs_f64(size as f64 * 8.0 / send_bps);
            let end = self.now + Duration::from_millis(100);
            let every = if loss > 0.0 {
                (1.0 / loss) as u64
            } else {
                u64::MAX
            };
            while self.now < end {
                let depart = self.now;
                let start = self.busy_until.max(depart);
                let queue = start - depart;
                self.queued = self.queued.max(queue);
                let frac = (depart - batch_start).as_secs_f64() / 0.1;
                let extra_delay = extra.0 + (extra.1.saturating_sub(extra.0)).mul_f64(frac);
                let dropped = queue > self.queue_limit || (self.id % every == every - 1);
                let arrival = if dropped {
                    None
                } else {
                    self.busy_until =
                        start + Duration::from_secs_f64(size as f64 * 8.0 / capacity_bps);
                    Some(self.busy_until + Duration::from_millis(10) + extra_delay)
                };
                self.flight.push_back(PacketReport {
                    ssrc: 1,
                    id: self.id,
                    rtp_sequence_number: self.id as u16,
                    is_twcc: true,
                    twcc_sequence_number: self.id as u16,
                    size,
                    arrived: arrival.is_some(),
                    departure: self.t0 + depart,
                    arrival,
                    ecn: Ecn::default(),
                });
                self.id += 1;
                self.now += gap;
            }
            let mut out = Vec::new();
            while let Some(p) = self.flight.front() {
                if p.arrival.is_some_and(|a| a > end) {
                    break;
                }
                out.push(self.flight.pop_front().expect("front"));
            }
            out
        }
    }

    /// Feedback batches of 100 ms for `secs`; returns (target, worst queueing) per batch.
    fn run(
        est: &mut Publishing,
        shared: &Estimate,
        path: &mut Path,
        secs: u64,
        capacity: f64,
        loss: f64,
    ) -> Vec<(u64, Duration)> {
        let mut out = Vec::new();
        for _ in 0..secs * 10 {
            // The encoder follows the estimate, as the rate controller makes it.
            let send = shared.target().unwrap_or(START) as f64 * ENCODER_SHARE;
            let reports = path.feedback(send, capacity, loss, (Duration::ZERO, Duration::ZERO));
            est.on_reports(path.t0 + path.now + Duration::from_millis(20), &reports);
            out.push((shared.target().unwrap(), path.queued));
        }
        out
    }

    fn targets(run: &[(u64, Duration)]) -> Vec<u64> {
        run.iter().map(|(t, _)| *t).collect()
    }

    #[test]
    fn a_clean_fast_link_keeps_the_start_rate_or_more_and_the_pacer_gets_twice_it() {
        let shared = Arc::new(Estimate::default());
        let mut est = Publishing::new(limits(), shared.clone());
        assert_eq!(shared.target(), None);
        let mut path = Path::new();
        let t = targets(&run(&mut est, &shared, &mut path, 10, 100e6, 0.0));
        assert!(*t.last().unwrap() >= START, "{t:?}");
        let published = shared.target_bps.load(Ordering::Relaxed) as f64;
        assert!((est.target_bitrate() - published * PACING_FACTOR).abs() < PACING_FACTOR);
    }

    #[test]
    fn the_start_is_at_most_two_and_a_half_megabits_and_doubles_while_the_link_keeps_up() {
        let shared = Arc::new(Estimate::default());
        let mut est = Publishing::new(limits(), shared.clone());
        let mut path = Path::new();
        let t = targets(&run(&mut est, &shared, &mut path, 3, 100e6, 0.0));
        assert!(t[0] <= 2_600_000, "a start at {} ({t:?})", t[0]);
        // Three seconds later: about 2^3 × the start (the sender follows at 85 %).
        assert!(t[29] > 12_000_000, "{t:?}");
    }

    #[test]
    fn a_bottleneck_below_the_rate_brings_the_estimate_under_it_within_three_seconds() {
        let shared = Arc::new(Estimate::default());
        let mut est = Publishing::new(limits(), shared.clone());
        let mut path = Path::new();
        let r = run(&mut est, &shared, &mut path, 30, 2e6, 0.0);
        let t = targets(&r);
        // What the encoder sends (its share of the estimate) is under the bottleneck by 3 s,
        // and the queue does not creep for the rest of the run.
        let at_3s = t[29] as f64 * ENCODER_SHARE;
        assert!(at_3s < 2e6, "after 3 s: {at_3s} ({t:?})");
        let worst = r[30..].iter().map(|(_, q)| *q).max().unwrap();
        assert!(
            worst < Duration::from_millis(150),
            "queue {worst:?} ({t:?})"
        );
        let mean = t[30..].iter().sum::<u64>() as f64 / t[30..].len() as f64;
        assert!(
            mean * ENCODER_SHARE > 1.2e6,
            "the link is used: {mean} ({t:?})"
        );
    }

    #[test]
    fn the_estimate_climbs_back_when_the_bottleneck_lifts() {
        let shared = Arc::new(Estimate::default());
        let mut est = Publishing::new(limits(), shared.clone());
        let mut path = Path::new();
        run(&mut est, &shared, &mut path, 5, 2e6, 0.0);
        let low = shared.target().unwrap();
        let t = targets(&run(&mut est, &shared, &mut path, 10, 20e6, 0.0));
        assert!(
            *t.last().unwrap() > 4 * low,
            "from {low} only to {:?}",
            t.last()
        );
    }

    #[test]
    fn a_link_that_narrows_tenfold_is_followed_within_five_seconds() {
        let shared = Arc::new(Estimate::default());
        let mut est = Publishing::new(limits(), shared.clone());
        let mut path = Path::new();
        path.queue_limit = Duration::from_millis(50);
        run(&mut est, &shared, &mut path, 3, 20e6, 0.0);
        let before = shared.target().unwrap() as f64 * ENCODER_SHARE;
        assert!(before > 3e6, "{before}");
        // 20 → 2 Mbit/s with a 50 ms tail-drop queue: the queue stands full at once, so the
        // delay signal sees only its first 50 ms (one cut, on a rate measured half before the
        // link narrowed); the loss tells the rest.
        let t = targets(&run(&mut est, &shared, &mut path, 5, 2e6, 0.0));
        let sent = t[49] as f64 * ENCODER_SHARE;
        assert!(sent < 2e6, "{sent} after five seconds ({t:?})");
    }

    #[test]
    fn heavy_loss_caps_the_estimate() {
        let shared = Arc::new(Estimate::default());
        let mut est = Publishing::new(limits(), shared.clone());
        let mut path = Path::new();
        let t = targets(&run(&mut est, &shared, &mut path, 10, 100e6, 0.2));
        assert!(*t.last().unwrap() < START, "{t:?}");
        assert!(shared.loss_permille.load(Ordering::Relaxed) > 100);
    }

    #[test]
    fn a_delay_spike_lowers_the_estimate_and_it_recovers() {
        let shared = Arc::new(Estimate::default());
        let mut est = Publishing::new(limits(), shared.clone());
        let mut path = Path::new();
        run(&mut est, &shared, &mut path, 3, 100e6, 0.0);
        let before = shared.target().unwrap();
        // 1 s of delay growing by 200 ms: a queue building somewhere else.
        for k in 0..10u64 {
            let send = shared.target().unwrap() as f64 * ENCODER_SHARE;
            let extra = (
                Duration::from_millis(20 * k),
                Duration::from_millis(20 * (k + 1)),
            );
            let reports = path.feedback(send, 100e6, 0.0, extra);
            est.on_reports(path.t0 + path.now + Duration::from_millis(20), &reports);
        }
        let during = shared.target().unwrap();
        assert!(during < before, "{during} vs {before}");
        // The delay stays (a standing queue elsewhere) but stops growing.
        let t: Vec<u64> = (0..150)
            .map(|_| {
                let send = shared.target().unwrap() as f64 * ENCODER_SHARE;
                let extra = (Duration::from_millis(200), Duration::from_millis(200));
                let reports = path.feedback(send, 100e6, 0.0, extra);
                est.on_reports(path.t0 + path.now + Duration::from_millis(20), &reports);
                shared.target().unwrap()
            })
            .collect();
        assert!(*t.last().unwrap() > during, "{t:?}");
    }
}
