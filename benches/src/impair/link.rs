//! One direction of an impaired link, sans-IO: packets in with the instant they arrived, out
//! at the instant the link lets them go. Time is passed in, so the tests run on virtual time.
//!
//! In order: random loss at the ingress (as an `nftables numgen random` rule would), then a
//! bottleneck of `rate` bit/s with a tail-drop queue of at most `queue` of waiting (as `tbf`
//! would), then one-way `delay` plus a uniform `jitter` draw. Packets never overtake each other
//! (jitter delays a packet and everything behind it, like a real queue, not like netem's
//! reordering).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What one direction does to packets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Direction {
    /// Fraction of packets dropped at random, 0..=1.
    pub loss: f64,
    /// One-way delay added to every packet.
    pub delay: Duration,
    /// Up to this much more delay, drawn uniformly per packet.
    pub jitter: Duration,
    /// Bottleneck rate in bit/s; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// The longest a packet may wait for the bottleneck before it is dropped (tail drop).
    pub queue: Duration,
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub forwarded: u64,
    pub bytes: u64,
    pub lost: u64,
    pub queue_drops: u64,
}

/// One direction of the link.
pub struct Link {
    dir: Direction,
    rng: u64,
    /// Packets on their way, in release order.
    flight: VecDeque<(Instant, Vec<u8>)>,
    /// When the bottleneck finishes sending what it holds.
    busy_until: Option<Instant>,
    pub counters: LinkCounters,
}

impl Link {
    pub fn new(dir: Direction, seed: u64) -> Self {
        Link {
            dir,
            rng: seed | 1,
            flight: VecDeque::new(),
            busy_until: None,
            counters: LinkCounters::default(),
        }
    }

    /// Changes what the link does from now on; packets already on their way keep their time.
    pub fn set(&mut self, dir: Direction) {
        self.dir = dir;
    }

    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// xorshift64*: uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A packet arrives at `now`; `false` when the link dropped it.
    pub fn push(&mut self, now: Instant, packet: Vec<u8>) -> bool {
        if self.dir.loss > 0.0 && self.uniform() < self.dir.loss {
            self.counters.lost += 1;
            return false;
        }
        let mut leaves = now;
        if let Some(rate) = self.dir.rate_bps.filter(|r| *r > 0) {
            let start = self.busy_until.filter(|b| *b > now).unwrap_or(now);
            if start - now > self.dir.queue {
                self.counters.queue_drops += 1;
                return false;
            }
            leaves = start + Duration::from_secs_f64(packet.len() as f64 * 8.0 / rate as f64);
            self.busy_until = Some(leaves);
        }
        let jitter = self.dir.jitter.mul_f64(self.uniform());
        let mut release = leaves + self.dir.delay + jitter;
        if let Some((last, _)) = self.flight.back() {
            release = release.max(*last);
        }
        self.counters.forwarded += 1;
        self.counters.bytes += packet.len() as u64;
        self.flight.push_back((release, packet));
        true
    }

    /// When the next packet leaves, if one is on its way.
    pub fn next_release(&self) -> Option<Instant> {
        self.flight.front().map(|(t, _)| *t)
    }

    /// The next packet whose time has come.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.flight.front()?.0 <= now {
            self.flight.pop_front().map(|(_, p)| p)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_clean_link_forwards_at_once() {
        let t0 = Instant::now();
        let mut l = Link::new(Direction::default(), 7);
        assert!(l.push(t0, vec![0; 100]));
        assert_eq!(l.next_release(), Some(t0));
        assert_eq!(l.pop_due(t0), Some(vec![0; 100]));
        assert_eq!(l.pop_due(t0), None);
    }

    #[test]
    fn delay_holds_packets_for_exactly_the_delay() {
        let t0 = Instant::now();
        let mut l = Link::new(
            Direction {
                delay: ms(10),
                ..Direction::default()
            },
            7,
        );
        l.push(t0, vec![1]);
        assert_eq!(l.pop_due(t0 + ms(9)), None);
        assert_eq!(l.pop_due(t0 + ms(10)), Some(vec![1]));
    }

    #[test]
    fn loss_drops_about_the_fraction_asked() {
        let t0 = Instant::now();
        let mut l = Link::new(
            Direction {
                loss: 0.05,
                ..Direction::default()
            },
            12345,
        );
        for _ in 0..20_000 {
            l.push(t0, vec![0; 10]);
        }
        let lost = l.counters.lost as f64 / 20_000.0;
        assert!((0.04..0.06).contains(&lost), "lost {lost}");
    }

    #[test]
    fn the_bottleneck_spaces_packets_at_its_rate_and_drops_past_its_queue() {
        let t0 = Instant::now();
        // 1 Mbit/s: a 1250-byte packet takes 10 ms; 50 ms of queue.
        let mut l = Link::new(
            Direction {
                rate_bps: Some(1_000_000),
                queue: ms(50),
                ..Direction::default()
            },
            7,
        );
        for _ in 0..10 {
            l.push(t0, vec![0; 1250]);
        }
        // Starts of 0, 10, … 50 ms wait at most 50 ms: six packets go, four are dropped.
        assert_eq!(l.counters.forwarded, 6);
        assert_eq!(l.counters.queue_drops, 4);
        let mut out = Vec::new();
        let mut t = t0;
        while let Some(next) = l.next_release() {
            t = t.max(next);
            l.pop_due(t).unwrap();
            out.push(t - t0);
        }
        assert_eq!(out, (1..=6).map(|k| ms(10 * k)).collect::<Vec<_>>());
        // Once the queue drains the link takes packets again.
        assert!(l.push(t0 + ms(200), vec![0; 1250]));
    }

    #[test]
    fn jitter_never_reorders() {
        let t0 = Instant::now();
        let mut l = Link::new(
            Direction {
                delay: ms(5),
                jitter: ms(20),
                ..Direction::default()
            },
            99,
        );
        for k in 0..200u64 {
            l.push(
                t0 + Duration::from_micros(k * 100),
                k.to_le_bytes().to_vec(),
            );
        }
        let mut last = None;
        let mut k = 0u64;
        while let Some(t) = l.next_release() {
            assert!(last.is_none_or(|l| t >= l));
            last = Some(t);
            assert_eq!(l.pop_due(t), Some(k.to_le_bytes().to_vec()));
            k += 1;
        }
        assert_eq!(k, 200);
        let spread = last.unwrap() - t0;
        // The last packet entered at 19.9 ms: 5 ms of delay and at most 20 ms of jitter later.
        assert!(spread >= ms(24) && spread <= ms(45), "{spread:?}");
    }

    #[test]
    fn a_new_setting_applies_to_later_packets_only() {
        let t0 = Instant::now();
        let mut l = Link::new(
            Direction {
                delay: ms(30),
                ..Direction::default()
            },
            7,
        );
        l.push(t0, vec![1]);
        l.set(Direction::default());
        l.push(t0, vec![2]);
        // The second waits behind the first: a link does not reorder.
        assert_eq!(l.pop_due(t0), None);
        assert_eq!(l.pop_due(t0 + ms(30)), Some(vec![1]));
        assert_eq!(l.pop_due(t0 + ms(30)), Some(vec![2]));
    }
}
