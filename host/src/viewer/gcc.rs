//! A send-side bandwidth estimator in the manner of Google Congestion Control
//! (draft-ietf-rmcat-gcc, and libwebrtc's trendline variant), sans-IO: acknowledged packets in
//! with the instants they left and arrived, a target bitrate out; time is passed in.
//!
//! Why not the `rtc` crate's `Gcc`: measured on virtual time (the tests below), its Kalman
//! delay filter compared with a 12.5 ms threshold does not see a queue that grows by 7 % of the
//! rate, nor 200 ms of delay building over one second; only loss moves it, so on a bottleneck it
//! settles with the queue full. Its loss half and its acknowledged-rate window are sound and
//! are used here.
//!
//! - **Start**: at the operator's rate but at most 2.5 Mbit/s, doubling each second while the
//!   link keeps up, until the first delay- or loss-based decrease.
//! - **Delay**: packets sent within 5 ms form a group; each group's arrival spacing minus its
//!   send spacing is a delay variation; their running sum, smoothed, is fitted by least
//!   squares over the last 20 groups; the slope, scaled by the number of groups seen (up to 60)
//!   and a gain of 4, is the trend. Over an adaptive threshold (6–600, start 12.5) for 10 ms and
//!   growing: overuse; under its negative: underuse.
//! - **Rate**: overuse → 0.85 × the acknowledged rate over 500 ms of feedback (that rate is
//!   remembered as the link's capacity), once per episode (again only after the signal was
//!   normal, or after 1 s); underuse → hold; normal → grow, by 8 % a second up to 1.2 × the
//!   remembered capacity and 25 % a second beyond (past 1.5 × without congestion the memory
//!   goes: the link got faster). No growth while the sender uses less than half the target
//!   (an idle screen says nothing about the link).
//! - **Loss**, as a cap (draft-ietf-rmcat-gcc §5.5): over 10 % lost (or over 2 % while
//!   packets wait over 25 ms more than the least of the last 10 s: a tail-drop queue standing
//!   full, which no delay trend shows), back off by half the loss fraction but not under
//!   0.85 × what still arrives (with a standing queue: to that), at most every 600 ms (the
//!   crate's loss controller, used first, cut every 200 ms and collapsed to the floor when a
//!   start-up burst overflowed a thin link: 6 → 0.46 Mbit/s on 2 Mbit/s);
//!   under 2 %, grow 5 % per 200 ms; between, hold (a few per cent is normal on Wi-Fi).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, PacketReport, RateCalculator};

const GROUP_SPAN: Duration = Duration::from_millis(5);
const WINDOW: usize = 20;
const SMOOTHING: f64 = 0.9;
const GAIN: f64 = 4.0;
const OVERUSE_TIME_MS: f64 = 10.0;
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
const BETA: f64 = 0.85;
const GROWTH_NEAR: f64 = 1.08;
const GROWTH_FAR: f64 = 1.25;
/// Until the first sign of congestion the estimate starts at most here and doubles each
/// second (a slow start): a start at the operator's full rate on a thin link overflowed it
/// with the first keyframe (seconds without a picture at 6 Mbit/s into 2 Mbit/s).
const START_CAP: f64 = 2_500_000.0;
const GROWTH_START: f64 = 2.0;
/// Growth is slow below this multiple of the remembered capacity…
const NEAR_ABOVE: f64 = 1.2;
/// …and the memory goes once the target passes this multiple without congestion.
const FORGET_ABOVE: f64 = 1.5;
/// Loss-based decreases at most this often (losses of packets sent before a cut are still
/// being reported for a round trip and the queue's length after it).
const LOSS_DECREASE_INTERVAL: Duration = Duration::from_millis(600);
/// Queueing (ms) that makes loss over 2 % count as congestion: a tail-drop queue standing
/// full shows no growing delay, only this and its drops.
const STANDING_QUEUE_MS: f64 = 25.0;
/// The longest a congestion episode blocks a second delay-based decrease.
const EPISODE: Duration = Duration::from_secs(1);

/// What the delay signal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Normal,
    Over,
    Under,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_departure: Instant,
    last_departure: Instant,
    last_arrival: Duration,
}

/// The trendline detector: delay variations in, usage out.
#[derive(Debug)]
struct Trendline {
    current: Option<Group>,
    previous: Option<Group>,
    first_arrival: Option<Duration>,
    accumulated: f64,
    smoothed: f64,
    points: VecDeque<(f64, f64)>,
    deltas: u32,
    threshold: f64,
    last_threshold_ms: Option<f64>,
    over_ms: Option<f64>,
    over_count: u32,
    previous_trend: f64,
    last_arrival_ms: f64,
    usage: Usage,
    trend: f64,
    /// Overuse detections so far (the controller acts on any within a feedback batch).
    overuses: u64,
}

impl Trendline {
    fn new() -> Self {
        Trendline {
            current: None,
            previous: None,
            first_arrival: None,
            accumulated: 0.0,
            smoothed: 0.0,
            points: VecDeque::with_capacity(WINDOW + 1),
            deltas: 0,
            threshold: 12.5,
            last_threshold_ms: None,
            over_ms: None,
            over_count: 0,
            previous_trend: 0.0,
            last_arrival_ms: 0.0,
            usage: Usage::Normal,
            trend: 0.0,
            overuses: 0,
        }
    }

    /// One packet that arrived (in send order).
    fn packet(&mut self, departure: Instant, arrival: Duration) {
        match &mut self.current {
            Some(g) if departure.saturating_duration_since(g.first_departure) <= GROUP_SPAN => {
                g.last_departure = g.last_departure.max(departure);
                g.last_arrival = g.last_arrival.max(arrival);
            }
            _ => {
                if let Some(done) = self.current.take() {
                    if let Some(prev) = self.previous {
                        let send = done
                            .last_departure
                            .saturating_duration_since(prev.last_departure)
                            .as_secs_f64()
                            * 1e3;
                        let recv = (done.last_arrival.as_secs_f64()
                            - prev.last_arrival.as_secs_f64())
                            * 1e3;
                        self.variation(recv - send, done.last_arrival);
                    }
                    self.previous = Some(done);
                }
                self.current = Some(Group {
                    first_departure: departure,
                    last_departure: departure,
                    last_arrival: arrival,
                });
            }
        }
    }

    fn variation(&mut self, delta_ms: f64, arrival: Duration) {
        let first = *self.first_arrival.get_or_insert(arrival);
        let x = (arrival.as_secs_f64() - first.as_secs_f64()) * 1e3;
        self.accumulated += delta_ms;
        self.smoothed = SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * self.accumulated;
        self.points.push_back((x, self.smoothed));
        if self.points.len() > WINDOW {
            self.points.pop_front();
        }
        self.deltas = (self.deltas + 1).min(1000);
        if self.points.len() == WINDOW {
            if let Some(slope) = fit(&self.points) {
                self.trend = slope;
            }
        }
        let modified = f64::from(self.deltas.min(60)) * self.trend * GAIN;
        self.detect(modified, x);
    }

    fn detect(&mut self, trend: f64, now_ms: f64) {
        let dt = (now_ms - self.last_arrival_ms).max(0.0);
        self.last_arrival_ms = now_ms;
        if trend > self.threshold {
            let over = match self.over_ms {
                None => dt / 2.0,
                Some(t) => t + dt,
            };
            self.over_ms = Some(over);
            self.over_count += 1;
            if over > OVERUSE_TIME_MS && self.over_count > 1 && trend >= self.previous_trend {
                self.over_ms = Some(0.0);
                self.over_count = 0;
                self.usage = Usage::Over;
                self.overuses += 1;
            }
        } else if trend < -self.threshold {
            self.over_ms = None;
            self.usage = Usage::Under;
        } else {
            self.over_ms = None;
            self.usage = Usage::Normal;
        }
        self.previous_trend = trend;
        // The threshold follows the trend: slowly up, faster down; outliers leave it alone.
        let last = self.last_threshold_ms.replace(now_ms).unwrap_or(now_ms);
        if trend.abs() <= self.threshold + 15.0 {
            let k = if trend.abs() < self.threshold {
                K_DOWN
            } else {
                K_UP
            };
            let dt = (now_ms - last).clamp(0.0, 100.0);
            self.threshold =
                (self.threshold + k * (trend.abs() - self.threshold) * dt).clamp(6.0, 600.0);
        }
    }
}

/// Least-squares slope of `points`.
fn fit(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den)
}

/// The loss-based half.
#[derive(Debug)]
struct Loss {
    target: f64,
    average: Option<f64>,
    last_change: Option<Instant>,
    last_decrease: Option<Instant>,
    /// A decrease happened since the estimator last looked.
    decreased: bool,
}

impl Loss {
    /// `standing`: a queue stands on the path (the loss is congestion, not noise).
    fn update(
        &mut self,
        now: Instant,
        (lost, total): (usize, usize),
        acked: Option<f64>,
        standing: bool,
    ) -> f64 {
        if total == 0 {
            return self.target;
        }
        let sample = lost as f64 / total as f64;
        let average = self.average.map_or(sample, |a| 0.8 * a + 0.2 * sample);
        self.average = Some(average);
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        if average.max(sample) < 0.02 {
            if since(self.last_change).is_none_or(|d| d >= Duration::from_millis(200)) {
                self.target *= 1.05;
                self.last_change = Some(now);
            }
        } else if (average.min(sample) > 0.10 || (standing && average > 0.02))
            && since(self.last_decrease).is_none_or(|d| d >= LOSS_DECREASE_INTERVAL)
        {
            let floor = acked.map_or(0.0, |a| BETA * a);
            self.target = if average.min(sample) > 0.10 {
                // Back off by half the loss, but not under 0.85 × what still arrives: during
                // a burst of loss the sender also skips frames (a backlog), and cutting to
                // what arrives then collapsed a 2 Mbit/s link's start to 0.3 Mbit/s.
                (self.target * (1.0 - 0.5 * average)).max(floor.min(self.target))
            } else {
                // A standing queue drops a few per cent: the link is busy, so what arrives is
                // its capacity.
                floor.min(self.target).max(0.5 * self.target)
            };
            tracing::debug!(average, target = self.target, "congestion: loss-based cut");
            self.last_change = Some(now);
            self.last_decrease = Some(now);
            self.decreased = true;
        }
        self.target
    }
}

/// How long packets now wait in queues: the latest packet's one-way time (arrival on the
/// receiver's clock minus departure on ours, the clocks' offset included) above the smallest
/// of the last 10 s.
#[derive(Debug, Default)]
struct QueueDelay {
    epoch: Option<Instant>,
    latest: f64,
    /// (departure, smallest one-way time) per second, seconds since `epoch`.
    smallest: VecDeque<(f64, f64)>,
}

impl QueueDelay {
    fn add(&mut self, departure: Instant, arrival: Duration) {
        let epoch = *self.epoch.get_or_insert(departure);
        let sent = departure.saturating_duration_since(epoch).as_secs_f64();
        let one_way = arrival.as_secs_f64() - sent;
        self.latest = one_way;
        match self.smallest.back_mut() {
            Some((t, m)) if sent - *t < 1.0 => *m = m.min(one_way),
            _ => {
                self.smallest.push_back((sent, one_way));
                if self.smallest.len() > 10 {
                    self.smallest.pop_front();
                }
            }
        }
    }

    fn ms(&self) -> f64 {
        let least = self
            .smallest
            .iter()
            .map(|(_, m)| *m)
            .fold(f64::MAX, f64::min);
        ((self.latest - least) * 1e3).max(0.0)
    }
}

/// The estimator.
pub struct Gcc {
    trend: Trendline,
    acked: RateCalculator,
    queue: QueueDelay,
    loss: Loss,
    delay_target: f64,
    target: f64,
    min: f64,
    max: f64,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    /// A delay-based decrease may follow (the last episode has ended).
    armed: bool,
    capacity: Option<f64>,
    /// No congestion seen yet: the slow start.
    starting: bool,
}

impl Gcc {
    pub fn new(initial: f64, min: f64, max: f64) -> Self {
        let initial = initial.min(START_CAP).clamp(min, max);
        Gcc {
            trend: Trendline::new(),
            acked: RateCalculator::new(Duration::from_millis(500)),
            queue: QueueDelay::default(),
            loss: Loss {
                target: initial,
                average: None,
                last_change: None,
                last_decrease: None,
                decreased: false,
            },
            delay_target: initial,
            target: initial,
            min,
            max,
            last_update: None,
            last_decrease: None,
            armed: true,
            starting: true,
            capacity: None,
        }
    }

    pub fn usage(&self) -> Usage {
        self.trend.usage
    }

    pub fn delay_based_bitrate(&self) -> f64 {
        self.delay_target
    }

    pub fn loss_based_bitrate(&self) -> f64 {
        self.loss.target
    }

    fn control(&mut self, now: Instant, acked: Option<f64>, overused: bool) {
        let dt = self
            .last_update
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64())
            .min(1.0);
        self.last_update = Some(now);
        // Well past the remembered capacity without congestion: the link got faster.
        if self
            .capacity
            .is_some_and(|c| self.delay_target > FORGET_ABOVE * c)
        {
            self.capacity = None;
        }
        let usage = if overused {
            Usage::Over
        } else {
            self.trend.usage
        };
        match usage {
            Usage::Over => {
                // One decrease per congestion episode: not again until the delay signal has
                // been normal once (the queue drained) or a second has passed. While the
                // queue drains, what arrives reflects the cut already made (and the frames
                // skipped meanwhile), not the link: cutting again on it spirals down.
                let recent = self
                    .last_decrease
                    .is_some_and(|t| now.saturating_duration_since(t) < EPISODE);
                if self.armed || !recent {
                    self.armed = false;
                    self.starting = false;
                    let basis = acked.unwrap_or(self.delay_target);
                    let cut = (BETA * basis).min(self.delay_target);
                    self.capacity = Some(match self.capacity {
                        Some(c) => 0.7 * c + 0.3 * basis,
                        None => basis,
                    });
                    tracing::debug!(basis, cut, "congestion: delay-based cut");
                    self.delay_target = cut;
                    self.last_decrease = Some(now);
                }
            }
            Usage::Under => self.armed = true,
            Usage::Normal => {
                self.armed = true;
                // App-limited (an idle screen): the link was not tried, so say nothing new.
                let using = acked.is_some_and(|a| a >= 0.5 * self.delay_target);
                if using {
                    let near = self.capacity.is_some_and(|c| {
                        self.delay_target < NEAR_ABOVE * c && self.delay_target > 0.5 * c
                    });
                    let growth = if self.starting {
                        GROWTH_START
                    } else if near {
                        GROWTH_NEAR
                    } else {
                        GROWTH_FAR
                    };
                    self.delay_target *= growth.powf(dt);
                }
            }
        }
        self.delay_target = self.delay_target.clamp(self.min, self.max);
    }
}

impl BandwidthEstimator for Gcc {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        let overuses = self.trend.overuses;
        for r in reports {
            if let (true, Some(arrival)) = (r.arrived, r.arrival) {
                self.acked.add(now, r.size);
                self.queue.add(r.departure, arrival);
                self.trend.packet(r.departure, arrival);
            }
        }
        let acked = self.acked.rate_bits_per_second(now);
        self.control(now, acked, self.trend.overuses > overuses);
        let lost = reports.iter().filter(|r| !r.arrived).count();
        let standing = self.queue.ms() > STANDING_QUEUE_MS;
        let loss_target = self
            .loss
            .update(now, (lost, reports.len()), acked, standing);
        if self.starting && !self.loss.decreased {
            // Loss caps nothing before it is seen.
            self.loss.target = self.loss.target.max(self.delay_target);
        }
        if std::mem::take(&mut self.loss.decreased) {
            self.starting = false;
            // A loss-based cut tells of the capacity as much as a delay-based one.
            if let Some(a) = acked {
                self.capacity = Some(self.capacity.map_or(a, |c| 0.7 * c + 0.3 * a));
            }
        }
        self.loss.target = self.loss.target.clamp(self.min, self.max);
        self.target = self.delay_target.min(loss_target).clamp(self.min, self.max);
    }

    fn target_bitrate(&self) -> f64 {
        self.target
    }

    fn stats(&self) -> EstimatorStats {
        let mut s = EstimatorStats::default();
        s.delay_based_bitrate = Some(self.delay_target);
        s.loss_based_bitrate = Some(self.loss.target);
        s.packet_loss = self.loss.average;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_queue_is_overuse_and_a_steady_one_is_not() {
        let t0 = Instant::now();
        let mut t = Trendline::new();
        // Steady: one packet every 5.5 ms (a group each), arriving 10 ms later.
        for k in 0..100u64 {
            let sent = Duration::from_micros(k * 5500);
            t.packet(t0 + sent, sent + Duration::from_millis(10));
        }
        assert_eq!(t.usage, Usage::Normal);
        // Each group arrives 1 ms later than the last: a queue growing by 18 % of the rate.
        for k in 100..160u64 {
            let sent = Duration::from_micros(k * 5500);
            t.packet(t0 + sent, sent + Duration::from_millis(10 + (k - 100)));
        }
        assert_eq!(t.usage, Usage::Over);
    }

    #[test]
    fn a_draining_queue_is_underuse() {
        let t0 = Instant::now();
        let mut t = Trendline::new();
        for k in 0..60u64 {
            let sent = Duration::from_micros(k * 5500);
            // Starts 100 ms late and catches up 1 ms per group.
            let late = 100u64.saturating_sub(k);
            t.packet(t0 + sent, sent + Duration::from_millis(10 + late));
        }
        assert_eq!(t.usage, Usage::Under);
    }
}
