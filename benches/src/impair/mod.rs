//! Impaired networks for tests and for `edgedesk-bench local --impair PROFILE`.
//!
//! This kernel has no `netem`, so delay, jitter, loss and a bottleneck come from a user-space
//! hop: a router network namespace between the client (this namespace) and the server (a
//! namespace of its own), whose kernel routes every forwarded packet through a TUN device per
//! direction; `edgedesk-bench impair-hop` reads them there, holds or drops them as the profile
//! says ([`link::Link`]) and writes them back, and the kernel forwards them on. See
//! [`topology`] for the wiring and [`hop`] for the forwarder.
//!
//! A profile is a preset name or `key=value` pairs separated by commas; a schedule is profiles
//! separated by `;`, each after the first with `@SECONDS` (when it starts, from the hop's start):
//!
//! | key | meaning | direction |
//! |---|---|---|
//! | `loss=5%` | random loss | server → client |
//! | `up-loss=1%` | random loss | client → server |
//! | `delay=10ms` | one-way delay (RTT is twice this) | both |
//! | `jitter=5ms` | up to this much more delay, uniform, no reordering | both |
//! | `rate=2M` | bottleneck in bit/s | server → client |
//! | `up-rate=1M` | bottleneck in bit/s | client → server |
//! | `queue=50ms` | the bottleneck's queue (tail drop past it; default 50 ms) | both |
//!
//! Presets: `clean`; `loss5` (5 % loss, 20 ms RTT); `cap2m` (2 Mbit/s, 50 ms queue); `step`
//! (20 → 2 → 20 Mbit/s at 10 s and 20 s); `wifi` (30 Mbit/s, 100 ms queue, 10 ms RTT, 10 ms
//! jitter, 1 % loss); `cellular` (8 Mbit/s down, 2 Mbit/s up, 200 ms queue, 80 ms RTT, 20 ms
//! jitter, 1 % loss).

pub mod hop;
pub mod link;
pub mod topology;

use link::Direction;
use std::time::Duration;

/// What the link does in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Profile {
    /// Server → client (the media).
    pub down: Direction,
    /// Client → server (feedback, input).
    pub up: Direction,
}

/// Profiles over time: each entry starts at its offset from the hop's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule(pub Vec<(Duration, Profile)>);

const PRESETS: &[(&str, &str)] = &[
    ("clean", ""),
    ("loss5", "loss=5%,delay=10ms"),
    ("cap2m", "rate=2M,queue=50ms"),
    (
        "step",
        "rate=20M,queue=50ms;rate=2M,queue=50ms@10;rate=20M,queue=50ms@20",
    ),
    ("wifi", "rate=30M,queue=100ms,delay=5ms,jitter=10ms,loss=1%"),
    (
        "cellular",
        "rate=8M,up-rate=2M,queue=200ms,delay=40ms,jitter=20ms,loss=1%",
    ),
];

/// The preset names, for help and errors.
pub fn presets() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

fn parse_percent(v: &str) -> Result<f64, String> {
    let n: f64 = v
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("bad percentage {v:?}"))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("{v} is not between 0 and 100 %"));
    }
    Ok(n / 100.0)
}

fn parse_ms(v: &str) -> Result<Duration, String> {
    let (n, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("bad duration {v:?} (write 10ms or 1s)"));
    };
    let n: f64 = n.parse().map_err(|_| format!("bad duration {v:?}"))?;
    if !(0.0..=60.0).contains(&(n * scale)) {
        return Err(format!("duration {v} is outside 0 ..= 60 s"));
    }
    Ok(Duration::from_secs_f64(n * scale))
}

impl Profile {
    /// One profile (no `;`), preset or pairs.
    pub fn parse(spec: &str) -> Result<Profile, String> {
        let spec = spec.trim();
        if let Some((_, p)) = PRESETS.iter().find(|(n, _)| *n == spec) {
            if p.contains(';') {
                return Err(format!("{spec} is a schedule, not one profile"));
            }
            return Profile::parse(p);
        }
        let mut p = Profile::default();
        let mut queue = Duration::from_millis(50);
        for pair in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                format!(
                    "bad impairment {pair:?}: want key=value or a preset ({})",
                    presets().join(", ")
                )
            })?;
            let (k, v) = (k.trim(), v.trim());
            match k {
                "loss" => p.down.loss = parse_percent(v)?,
                "up-loss" => p.up.loss = parse_percent(v)?,
                "delay" => (p.down.delay, p.up.delay) = (parse_ms(v)?, parse_ms(v)?),
                "jitter" => (p.down.jitter, p.up.jitter) = (parse_ms(v)?, parse_ms(v)?),
                "rate" => p.down.rate_bps = Some(signaling::config::parse_bitrate(v)?),
                "up-rate" => p.up.rate_bps = Some(signaling::config::parse_bitrate(v)?),
                "queue" => queue = parse_ms(v)?,
                _ => {
                    return Err(format!(
                    "unknown impairment {k:?} (loss, up-loss, delay, jitter, rate, up-rate, queue)"
                ))
                }
            }
        }
        p.down.queue = queue;
        p.up.queue = queue;
        Ok(p)
    }
}

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let spec = spec.trim();
        let spec = PRESETS
            .iter()
            .find(|(n, _)| *n == spec)
            .map_or(spec, |(_, p)| *p);
        let mut out: Vec<(Duration, Profile)> = Vec::new();
        for (i, part) in spec.split(';').enumerate() {
            let (profile, at) = match part.rsplit_once('@') {
                Some((p, at)) => {
                    let secs: f64 = at
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad start {at:?} in {part:?} (seconds)"))?;
                    (p, Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)))
                }
                None if i == 0 => (part, Duration::ZERO),
                None => return Err(format!("{part:?} needs @SECONDS (when it starts)")),
            };
            if out.last().is_some_and(|(t, _)| *t >= at) {
                return Err(format!("{part:?} starts before the profile before it"));
            }
            out.push((at, Profile::parse(profile)?));
        }
        if out[0].0 != Duration::ZERO {
            out.insert(0, (Duration::ZERO, Profile::default()));
        }
        Ok(Schedule(out))
    }

    /// The profile in force `elapsed` after the start.
    pub fn at(&self, elapsed: Duration) -> Profile {
        self.0
            .iter()
            .rev()
            .find(|(t, _)| *t <= elapsed)
            .map_or_else(Profile::default, |(_, p)| *p)
    }

    /// When the profile next changes after `elapsed`.
    pub fn next_change(&self, elapsed: Duration) -> Option<Duration> {
        self.0.iter().map(|(t, _)| *t).find(|t| *t > elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_presets_parse() {
        let p = Profile::parse("loss=5%, delay=10ms ,rate=2M,queue=50ms").unwrap();
        assert_eq!(p.down.loss, 0.05);
        assert_eq!(p.up.loss, 0.0);
        assert_eq!(p.down.delay, Duration::from_millis(10));
        assert_eq!(p.up.delay, Duration::from_millis(10));
        assert_eq!(p.down.rate_bps, Some(2_000_000));
        assert_eq!(p.up.rate_bps, None);
        assert_eq!(p.down.queue, Duration::from_millis(50));
        assert_eq!(
            Profile::parse("loss5").unwrap(),
            Profile::parse("loss=5%,delay=10ms").unwrap()
        );
        for name in presets() {
            assert!(Schedule::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn bad_profiles_say_what_is_wrong() {
        assert!(Profile::parse("loss=105%").unwrap_err().contains("100"));
        assert!(Profile::parse("delay=10").unwrap_err().contains("10ms"));
        assert!(Profile::parse("speed=1M").unwrap_err().contains("unknown"));
        assert!(Profile::parse("lossy").unwrap_err().contains("preset"));
        assert!(Schedule::parse("rate=2M;rate=20M")
            .unwrap_err()
            .contains("@SECONDS"));
        assert!(Schedule::parse("rate=2M@5;rate=20M@3")
            .unwrap_err()
            .contains("before"));
    }

    #[test]
    fn a_schedule_says_what_holds_when() {
        let s = Schedule::parse("step").unwrap();
        let rate = |secs: u64| s.at(Duration::from_secs(secs)).down.rate_bps;
        assert_eq!(rate(0), Some(20_000_000));
        assert_eq!(rate(10), Some(2_000_000));
        assert_eq!(rate(19), Some(2_000_000));
        assert_eq!(rate(25), Some(20_000_000));
        assert_eq!(
            s.next_change(Duration::from_secs(3)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(s.next_change(Duration::from_secs(21)), None);
        // A schedule starting later is clean until then.
        let late = Schedule::parse("rate=1M@2").unwrap();
        assert_eq!(late.at(Duration::ZERO), Profile::default());
    }
}
