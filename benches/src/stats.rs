//! Statistics for the bench report: summaries of samples (latencies, decode times), histograms
//! and CDFs for charts, and frame rate and jitter from arrival times.
//!
//! Everything here is plain data in, plain data out: no clocks are read (pass [`Instant`]s or
//! seconds in), and every output type serialises with serde for `--json` and chart files.
//!
//! Definitions:
//!
//! - **Percentiles** are *nearest rank*: the p-th percentile is the smallest sample such that
//!   at least p% of the samples are at or below it, i.e. the sorted sample at rank
//!   `ceil(p / 100 * n)` (rank 1 for p = 0). Always an observed value: p50 of 1..=100 is 50,
//!   p99 is 99, p50 of [1, 2] is 1.
//! - **Jitter** is the plain mean of `|d(i) - d(i-1)|` over consecutive inter-arrival intervals
//!   `d(i) = t(i) - t(i-1)`, in milliseconds. Perfectly paced frames have 0; intervals
//!   alternating 10 ms / 20 ms have 10. Unlike RFC 3550's jitter it is not smoothed (RFC 3550
//!   runs `J += (|D| - J) / 16`, which weights recent frames and remembers the start), so it
//!   does not depend on where in the run a stall happened.
//! - **Frame rate** over a run is `(n - 1) / (last - first)`: the frame intervals seen over the
//!   time they span; over a window it is the arrivals in `[start, end)` divided by its length.
//!
//! Samples that are NaN or infinite are dropped on entry: one would poison every figure.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Count, extremes, mean, standard deviation and percentiles of some samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    /// Population standard deviation.
    pub stddev: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// The summary of `values` (any order; non-finite values ignored); `None` when none is left.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let sorted = sorted_finite(values.iter().copied());
        summarise(&sorted)
    }
}

/// One histogram bin: the samples in `[lo, hi)` (the last bin also holds `hi`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: u64,
}

/// One point of an empirical CDF: the fraction of samples at or below `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CdfPoint {
    pub value: f64,
    pub fraction: f64,
}

/// Everything a report shows about one quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub summary: Option<Summary>,
    pub histogram: Vec<Bin>,
    pub cdf: Vec<CdfPoint>,
}

/// A collection of samples of one quantity, in the caller's unit (the report uses ms).
/// Serialises as the plain list of values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Samples {
    values: Vec<f64>,
}

impl Samples {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample; NaN and infinities are ignored.
    pub fn push(&mut self, v: f64) {
        if v.is_finite() {
            self.values.push(v);
        }
    }

    /// Adds a duration in milliseconds.
    pub fn push_duration_ms(&mut self, d: Duration) {
        self.push(d.as_secs_f64() * 1e3);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The samples in the order they were added.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// See [`Summary`]; `None` when there are no samples.
    pub fn summary(&self) -> Option<Summary> {
        summarise(&self.sorted())
    }

    /// The nearest-rank `p`-th percentile (`p` clamped to 0..=100); `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        nearest_rank(&self.sorted(), p)
    }

    /// `bins` bins of equal width from the smallest to the largest sample. All samples equal
    /// give one bin `[v, v]`; no samples or `bins == 0` give none.
    pub fn histogram(&self, bins: usize) -> Vec<Bin> {
        let s = self.sorted();
        let (Some(&lo), Some(&hi)) = (s.first(), s.last()) else {
            return Vec::new();
        };
        if bins == 0 {
            return Vec::new();
        }
        if hi == lo {
            return vec![Bin {
                lo,
                hi,
                count: s.len() as u64,
            }];
        }
        fill_bins(&s, lo, (hi - lo) / bins as f64, bins)
    }

    /// Bins of `width` aligned to multiples of it (`[k * width, (k + 1) * width)`), from the
    /// one holding the smallest sample to the one holding the largest; empty bins in between
    /// are kept. Empty when there are no samples or `width` is not positive.
    pub fn histogram_width(&self, width: f64) -> Vec<Bin> {
        let s = self.sorted();
        let (Some(&lo), Some(&hi)) = (s.first(), s.last()) else {
            return Vec::new();
        };
        if !(width > 0.0 && width.is_finite()) {
            return Vec::new();
        }
        let first = (lo / width).floor();
        let bins = ((hi / width).floor() - first) as usize + 1;
        fill_bins(&s, first * width, width, bins)
    }

    /// The empirical CDF as at most `max_points` points (all distinct values when there are
    /// fewer): the values at evenly spaced ranks, each with the fraction of samples at or below
    /// it. The last point is always (max, 1.0). Empty when there are no samples.
    pub fn cdf(&self, max_points: usize) -> Vec<CdfPoint> {
        let s = self.sorted();
        let n = s.len();
        let m = n.min(max_points);
        let mut out: Vec<CdfPoint> = Vec::with_capacity(m);
        for j in 1..=m {
            let rank = (j * n).div_ceil(m);
            let point = CdfPoint {
                value: s[rank - 1],
                fraction: rank as f64 / n as f64,
            };
            match out.last_mut() {
                Some(last) if last.value == point.value => *last = point,
                _ => out.push(point),
            }
        }
        out
    }

    /// Summary, a `bins`-bin histogram and a CDF of at most `cdf_points` points.
    pub fn distribution(&self, bins: usize, cdf_points: usize) -> Distribution {
        Distribution {
            summary: self.summary(),
            histogram: self.histogram(bins),
            cdf: self.cdf(cdf_points),
        }
    }
}

impl Extend<f64> for Samples {
    fn extend<I: IntoIterator<Item = f64>>(&mut self, iter: I) {
        for v in iter {
            self.push(v);
        }
    }
}

impl FromIterator<f64> for Samples {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        let mut s = Samples::new();
        s.extend(iter);
        s
    }
}

fn sorted_finite(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let p = if p.is_nan() {
        50.0
    } else {
        p.clamp(0.0, 100.0)
    };
    // p * n first keeps whole ranks exact (90 * 100 / 100, not 0.9 * 100); the small slack
    // absorbs rounding in fractional p such as 99.9.
    let rank = ((p * n as f64 / 100.0) - 1e-9).ceil().max(1.0) as usize;
    Some(sorted[rank.min(n) - 1])
}

fn summarise(sorted: &[f64]) -> Option<Summary> {
    let n = sorted.len();
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let var = sorted.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
    let p = |q| nearest_rank(sorted, q).expect("not empty");
    Some(Summary {
        count: n as u64,
        min,
        mean,
        stddev: var.sqrt(),
        p50: p(50.0),
        p90: p(90.0),
        p95: p(95.0),
        p99: p(99.0),
        max,
    })
}

/// Counts sorted values into `bins` bins of `width` from `lo`; values past the last bin's end
/// (only the maximum, by rounding) go into the last bin.
fn fill_bins(sorted: &[f64], lo: f64, width: f64, bins: usize) -> Vec<Bin> {
    let mut out: Vec<Bin> = (0..bins)
        .map(|i| Bin {
            lo: lo + i as f64 * width,
            hi: lo + (i + 1) as f64 * width,
            count: 0,
        })
        .collect();
    for &v in sorted {
        let i = (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1);
        out[i].count += 1;
    }
    out
}

/// Frame rate over one window of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FpsPoint {
    /// Window start, in seconds from the series' start.
    pub t: f64,
    /// Window length in seconds (the window length, or less for a final partial window).
    pub seconds: f64,
    pub frames: u64,
    pub fps: f64,
}

/// Frame counts, rate and pacing of a run of arrivals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrivalSummary {
    pub frames: u64,
    /// From the first arrival to the last.
    pub seconds: f64,
    /// `(frames - 1) / seconds`; `None` with fewer than two arrivals or none apart.
    pub fps: Option<f64>,
    /// Inter-arrival intervals in ms.
    pub interval_ms: Option<Summary>,
    /// See the module docs; `None` with fewer than three arrivals.
    pub jitter_ms: Option<f64>,
}

/// Arrival times of frames, in seconds from an origin the caller picks, kept in order.
/// Serialises as the plain list of times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Arrivals {
    secs: Vec<f64>,
}

impl Arrivals {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arrivals at `secs` (any order; non-finite values ignored).
    pub fn from_secs(secs: impl IntoIterator<Item = f64>) -> Self {
        Arrivals {
            secs: sorted_finite(secs.into_iter()),
        }
    }

    /// Arrivals at `instants`, measured from `origin` (instants before it count as negative).
    pub fn from_instants(origin: Instant, instants: impl IntoIterator<Item = Instant>) -> Self {
        Self::from_secs(instants.into_iter().map(|t| secs_since(origin, t)))
    }

    /// Records an arrival `secs` after the origin; kept in order even if it comes out of order.
    pub fn push(&mut self, secs: f64) {
        if secs.is_finite() {
            let at = self.secs.partition_point(|&t| t <= secs);
            self.secs.insert(at, secs);
        }
    }

    /// Records an arrival at `at`, measured from `origin`.
    pub fn push_instant(&mut self, origin: Instant, at: Instant) {
        self.push(secs_since(origin, at));
    }

    pub fn len(&self) -> usize {
        self.secs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secs.is_empty()
    }

    /// The arrival times in seconds, in order.
    pub fn secs(&self) -> &[f64] {
        &self.secs
    }

    /// Seconds from the first arrival to the last (0 with fewer than two).
    pub fn span(&self) -> f64 {
        match (self.secs.first(), self.secs.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        }
    }

    /// `(n - 1) / span`: the run's frame rate; `None` with fewer than two arrivals or a zero
    /// span.
    pub fn fps(&self) -> Option<f64> {
        let span = self.span();
        (self.secs.len() >= 2 && span > 0.0).then(|| (self.secs.len() - 1) as f64 / span)
    }

    /// Arrivals in `[start, end)`.
    pub fn count_between(&self, start: f64, end: f64) -> u64 {
        let a = self.secs.partition_point(|&t| t < start);
        let b = self.secs.partition_point(|&t| t < end);
        b.saturating_sub(a) as u64
    }

    /// Arrivals in `[start, end)` per second; `None` when `end <= start`.
    pub fn fps_between(&self, start: f64, end: f64) -> Option<f64> {
        (end > start).then(|| self.count_between(start, end) as f64 / (end - start))
    }

    /// The frame rate over consecutive windows of `window` seconds from `start` to `end` (for
    /// an "fps over time" chart; `t` counts from `start`). A final partial window is kept when
    /// it is at least half a window long (its rate over its own length), dropped otherwise.
    /// Empty when `window` is not positive or `end <= start`.
    pub fn fps_series(&self, start: f64, end: f64, window: f64) -> Vec<FpsPoint> {
        let mut out = Vec::new();
        if !(window > 0.0 && window.is_finite()) || end <= start {
            return out;
        }
        for k in 0.. {
            let a = start + k as f64 * window;
            let b = (start + (k + 1) as f64 * window).min(end);
            if b - a < window / 2.0 {
                break;
            }
            let frames = self.count_between(a, b);
            out.push(FpsPoint {
                t: a - start,
                seconds: b - a,
                frames,
                fps: frames as f64 / (b - a),
            });
        }
        out
    }

    /// The intervals between consecutive arrivals, in ms.
    pub fn intervals_ms(&self) -> Samples {
        self.secs.windows(2).map(|w| (w[1] - w[0]) * 1e3).collect()
    }

    /// Mean absolute difference of consecutive inter-arrival intervals, in ms (see the module
    /// docs); `None` with fewer than three arrivals.
    pub fn jitter_ms(&self) -> Option<f64> {
        let d = self.intervals_ms();
        let d = d.values();
        (d.len() >= 2)
            .then(|| d.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (d.len() - 1) as f64)
    }

    /// Frames, span, fps, interval summary and jitter.
    pub fn summary(&self) -> ArrivalSummary {
        ArrivalSummary {
            frames: self.secs.len() as u64,
            seconds: self.span(),
            fps: self.fps(),
            interval_ms: self.intervals_ms().summary(),
            jitter_ms: self.jitter_ms(),
        }
    }
}

/// Seconds from `origin` to `t`, negative when `t` is earlier.
fn secs_since(origin: Instant, t: Instant) -> f64 {
    match t.checked_duration_since(origin) {
        Some(d) => d.as_secs_f64(),
        None => -origin.duration_since(t).as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn one_to_hundred() -> Samples {
        (1..=100).map(f64::from).collect()
    }

    #[test]
    fn one_to_hundred_has_nearest_rank_percentiles() {
        let s = one_to_hundred().summary().unwrap();
        assert_eq!(s.count, 100);
        assert_eq!((s.min, s.max, s.mean), (1.0, 100.0, 50.5));
        assert_eq!((s.p50, s.p90, s.p95, s.p99), (50.0, 90.0, 95.0, 99.0));
        // Population standard deviation of 1..=100: sqrt((100^2 - 1) / 12).
        assert!(close(s.stddev, (9999.0f64 / 12.0).sqrt()));
    }

    #[test]
    fn percentile_edges_and_small_sets() {
        let s = one_to_hundred();
        assert_eq!(s.percentile(0.0), Some(1.0));
        assert_eq!(s.percentile(100.0), Some(100.0));
        assert_eq!(s.percentile(150.0), Some(100.0));
        assert_eq!(s.percentile(99.5), Some(100.0));
        assert_eq!(s.percentile(0.5), Some(1.0));
        let ten: Samples = (1..=10).map(f64::from).collect();
        assert_eq!(ten.percentile(25.0), Some(3.0));
        assert_eq!(ten.percentile(99.9), Some(10.0));
        let two: Samples = [2.0, 1.0].into_iter().collect();
        assert_eq!(two.percentile(50.0), Some(1.0));
        assert_eq!(two.percentile(51.0), Some(2.0));
        let thousand: Samples = (1..=1000).map(f64::from).collect();
        assert_eq!(thousand.percentile(99.9), Some(999.0));
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        v.reverse();
        v.swap(3, 70);
        assert_eq!(Summary::of(&v), one_to_hundred().summary());
    }

    #[test]
    fn empty_input_has_no_figures() {
        let s = Samples::new();
        assert!(s.is_empty());
        assert_eq!(s.summary(), None);
        assert_eq!(s.percentile(50.0), None);
        assert!(s.histogram(10).is_empty());
        assert!(s.histogram_width(1.0).is_empty());
        assert!(s.cdf(100).is_empty());
        assert_eq!(Summary::of(&[]), None);
        let json = serde_json::to_value(s.distribution(10, 10)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"summary": null, "histogram": [], "cdf": []})
        );
    }

    #[test]
    fn a_single_sample_is_every_figure() {
        let s: Samples = [7.5].into_iter().collect();
        let sum = s.summary().unwrap();
        assert_eq!(sum.count, 1);
        for v in [
            sum.min, sum.mean, sum.p50, sum.p90, sum.p95, sum.p99, sum.max,
        ] {
            assert_eq!(v, 7.5);
        }
        assert_eq!(sum.stddev, 0.0);
        assert_eq!(
            s.histogram(5),
            [Bin {
                lo: 7.5,
                hi: 7.5,
                count: 1
            }]
        );
        assert_eq!(
            s.cdf(10),
            [CdfPoint {
                value: 7.5,
                fraction: 1.0
            }]
        );
    }

    #[test]
    fn non_finite_samples_are_dropped() {
        let mut s: Samples = [1.0, f64::NAN, 3.0, f64::INFINITY].into_iter().collect();
        s.push(f64::NEG_INFINITY);
        s.push_duration_ms(Duration::from_micros(2500));
        assert_eq!(s.values(), [1.0, 3.0, 2.5]);
        assert_eq!(s.summary().unwrap().mean, 6.5 / 3.0);
    }

    #[test]
    fn histogram_of_one_to_hundred_has_ten_per_bin() {
        let h = one_to_hundred().histogram(10);
        assert_eq!(h.len(), 10);
        assert!(h.iter().all(|b| b.count == 10), "{h:?}");
        assert_eq!(h[0].lo, 1.0);
        assert!(close(h[9].hi, 100.0));
        assert!(one_to_hundred().histogram(0).is_empty());
    }

    #[test]
    fn histogram_width_aligns_bins_and_keeps_empty_ones() {
        let s: Samples = [0.5, 1.2, 1.9, 3.0].into_iter().collect();
        let counts: Vec<(f64, u64)> = s
            .histogram_width(1.0)
            .iter()
            .map(|b| (b.lo, b.count))
            .collect();
        assert_eq!(counts, [(0.0, 1), (1.0, 2), (2.0, 0), (3.0, 1)]);
        assert!(s.histogram_width(0.0).is_empty());
        let neg: Samples = [-2.5, -0.1].into_iter().collect();
        let h = neg.histogram_width(1.0);
        assert_eq!((h[0].lo, h.len()), (-3.0, 3));
    }

    #[test]
    fn cdf_points() {
        let s: Samples = [3.0, 1.0, 4.0, 2.0].into_iter().collect();
        let pts: Vec<(f64, f64)> = s.cdf(100).iter().map(|p| (p.value, p.fraction)).collect();
        assert_eq!(pts, [(1.0, 0.25), (2.0, 0.5), (3.0, 0.75), (4.0, 1.0)]);
        let dup: Samples = [1.0, 1.0, 2.0].into_iter().collect();
        let pts: Vec<(f64, f64)> = dup.cdf(100).iter().map(|p| (p.value, p.fraction)).collect();
        assert_eq!(pts, [(1.0, 2.0 / 3.0), (2.0, 1.0)]);
        let big: Samples = (1..=1000).map(f64::from).collect();
        let pts = big.cdf(10);
        assert_eq!(pts.len(), 10);
        for (i, p) in pts.iter().enumerate() {
            assert_eq!(p.value, 100.0 * (i + 1) as f64);
            assert!(close(p.fraction, 0.1 * (i + 1) as f64));
        }
    }

    #[test]
    fn sixty_even_arrivals_in_one_second_are_60_fps() {
        let a = Arrivals::from_secs((0..60).map(|i| i as f64 / 60.0));
        assert!(close(a.fps().unwrap(), 60.0));
        assert!(close(a.fps_between(0.0, 1.0).unwrap(), 60.0));
        let series = a.fps_series(0.0, 1.0, 1.0);
        assert_eq!(series.len(), 1);
        assert_eq!((series[0].frames, series[0].seconds), (60, 1.0));
        assert!(close(series[0].fps, 60.0));
        assert!(close(a.jitter_ms().unwrap(), 0.0));
        let s = a.summary();
        assert_eq!(s.frames, 60);
        assert!(close(s.interval_ms.unwrap().mean, 1000.0 / 60.0));
    }

    #[test]
    fn fps_series_follows_rate_changes() {
        // 2 s at 30 fps, then 1 s at 60 fps, then 0.7 s at 10 fps.
        let mut times: Vec<f64> = (0..60).map(|i| i as f64 / 30.0).collect();
        times.extend((0..60).map(|i| 2.0 + i as f64 / 60.0));
        times.extend((0..7).map(|i| 3.0 + i as f64 / 10.0));
        let a = Arrivals::from_secs(times);
        let series = a.fps_series(0.0, 3.7, 1.0);
        let fps: Vec<f64> = series.iter().map(|p| p.fps).collect();
        assert_eq!(series.len(), 4, "{series:?}");
        assert!(close(fps[0], 30.0) && close(fps[1], 30.0) && close(fps[2], 60.0));
        assert!(close(series[3].seconds, 0.7) && close(fps[3], 10.0));
        // A final window shorter than half is dropped.
        assert_eq!(a.fps_series(0.0, 3.4, 1.0).len(), 3);
        // Series start where the caller says; `t` counts from there.
        let shifted = a.fps_series(1.0, 3.0, 0.5);
        let t: Vec<f64> = shifted.iter().map(|p| p.t).collect();
        assert_eq!(t, [0.0, 0.5, 1.0, 1.5]);
        assert!(a.fps_series(0.0, 1.0, 0.0).is_empty());
        assert!(a.fps_series(1.0, 1.0, 1.0).is_empty());
    }

    #[test]
    fn jitter_of_alternating_intervals() {
        let mut t = 0.0;
        let mut a = Arrivals::new();
        for i in 0..11 {
            a.push(t);
            t += if i % 2 == 0 { 0.010 } else { 0.020 };
        }
        assert!(close(a.jitter_ms().unwrap(), 10.0));
        assert!(close(a.fps().unwrap(), 10.0 / 0.15));
        let iv = a.intervals_ms().summary().unwrap();
        assert!(close(iv.min, 10.0) && close(iv.max, 20.0));
    }

    #[test]
    fn few_arrivals_have_no_rate_or_jitter() {
        let none = Arrivals::new();
        assert_eq!(
            (none.fps(), none.jitter_ms(), none.span()),
            (None, None, 0.0)
        );
        let one = Arrivals::from_secs([1.0]);
        assert_eq!((one.fps(), one.jitter_ms()), (None, None));
        let same = Arrivals::from_secs([1.0, 1.0]);
        assert_eq!(same.fps(), None);
        let two = Arrivals::from_secs([1.0, 1.5]);
        assert_eq!((two.fps(), two.jitter_ms()), (Some(2.0), None));
        let s = none.summary();
        assert_eq!((s.frames, s.fps, s.interval_ms), (0, None, None));
    }

    #[test]
    fn arrivals_from_instants_stay_in_order() {
        let origin = Instant::now();
        let at = |ms| origin + Duration::from_millis(ms);
        let mut a = Arrivals::from_instants(origin, [at(20), at(0), at(10)]);
        a.push_instant(origin, at(15));
        a.push(f64::NAN);
        let ms: Vec<f64> = a.secs().iter().map(|s| (s * 1e3).round()).collect();
        assert_eq!(ms, [0.0, 10.0, 15.0, 20.0]);
        let later = origin + Duration::from_millis(5);
        let b = Arrivals::from_instants(later, [origin]);
        assert!(close(b.secs()[0], -0.005));
    }

    #[test]
    fn serialises_for_the_report() {
        let s: Samples = [1.0, 2.0].into_iter().collect();
        assert_eq!(serde_json::to_string(&s).unwrap(), "[1.0,2.0]");
        let json = serde_json::to_value(s.summary()).unwrap();
        for key in [
            "count", "min", "mean", "stddev", "p50", "p90", "p95", "p99", "max",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        let a = Arrivals::from_secs([0.0, 0.5]);
        let json = serde_json::to_value(a.summary()).unwrap();
        assert_eq!(json["jitter_ms"], serde_json::Value::Null);
        assert_eq!(json["fps"], 2.0);
        let back: Summary = serde_json::from_value(
            serde_json::to_value(one_to_hundred().summary().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(Some(back), one_to_hundred().summary());
    }
}
