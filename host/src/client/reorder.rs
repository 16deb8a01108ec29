//! The client's reorder buffer, sans-IO: RTP packets in as they arrive (retransmissions late
//! and out of order among them), out in sequence order; a hole is waited for at most
//! `max_wait` (long enough for a NACK and its retransmission, a few round trips) and then
//! skipped, reported as a gap so the frame it broke is dropped.
//!
//! It also says what to NACK: a hole at once, then again after about one and a half round
//! trips (learnt from how long repairs take) while it is still waited for, at most
//! [`MAX_NACKS`] times. The crate's NACK generator cannot do this with RTX: repairs arrive on
//! the RTX SSRC and it never learns of them, so it NACKs each hole until its limit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What comes out, in sequence order.
#[derive(Debug, PartialEq)]
pub enum Out<P> {
    Packet(P),
    /// This many packets never arrived in time; the next packet follows the hole.
    Gap(u64),
}

/// Counters of what the buffer saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReorderCounters {
    /// Packets that filled a hole (arrived after a later one: retransmitted or reordered).
    pub repaired: u64,
    /// Packets that arrived after their hole was skipped, or twice.
    pub late: u64,
    /// Sequence numbers NACKed (each time counted).
    pub nacked: u64,
}

/// How often one hole is NACKed at most.
pub const MAX_NACKS: u8 = 5;
/// The first guess of the round trip, before a repair has been seen.
const INITIAL_RTT: Duration = Duration::from_millis(30);

pub struct Reorder<P> {
    /// Extended sequence number of the next packet to deliver.
    next: Option<u64>,
    /// Waiting packets by extended sequence number, with when each arrived.
    pending: BTreeMap<u64, (Instant, P)>,
    max_wait: Duration,
    /// Holes NACKed: when last (a repair's round trip counts from there), and how often.
    nacks: BTreeMap<u64, (Instant, u8)>,
    /// Holes not NACKed yet.
    fresh: BTreeSet<u64>,
    /// Smoothed time from a first NACK to its repair.
    rtt: Duration,
    pub counters: ReorderCounters,
}

impl<P> Reorder<P> {
    pub fn new(max_wait: Duration) -> Self {
        Reorder {
            next: None,
            pending: BTreeMap::new(),
            max_wait,
            nacks: BTreeMap::new(),
            fresh: BTreeSet::new(),
            rtt: INITIAL_RTT,
            counters: ReorderCounters::default(),
        }
    }

    /// `seq` extended to 64 bits next to `reference`.
    fn extend(reference: u64, seq: u16) -> u64 {
        let delta = seq.wrapping_sub(reference as u16) as i16 as i64;
        (reference as i64 + delta).max(0) as u64
    }

    /// A packet arrives; what can be delivered now.
    pub fn push(&mut self, now: Instant, seq: u16, packet: P) -> Vec<Out<P>> {
        let next = *self.next.get_or_insert(u64::from(seq) + (1 << 32));
        let ext = Self::extend(next, seq);
        if ext < next || self.pending.contains_key(&ext) {
            self.counters.late += 1;
            return Vec::new();
        }
        let newest = self
            .pending
            .keys()
            .next_back()
            .copied()
            .unwrap_or(next.saturating_sub(1));
        if ext < newest {
            self.counters.repaired += 1;
            self.fresh.remove(&ext);
            if let Some((last, _)) = self.nacks.remove(&ext) {
                let took = now.saturating_duration_since(last);
                self.rtt = (self.rtt * 7 + took) / 8;
            }
        } else {
            // Everything between the newest so far and this one is a new hole.
            self.fresh.extend((newest + 1).max(next)..ext);
        }
        self.pending.insert(ext, (now, packet));
        self.poll(now)
    }

    /// What can be delivered at `now`: packets in order, holes older than `max_wait` skipped.
    pub fn poll(&mut self, now: Instant) -> Vec<Out<P>> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else {
            return out;
        };
        while let Some((&first, (arrived, _))) = self.pending.iter().next() {
            if first != next {
                // A hole before `first`: wait for it while the packet after it is young.
                if now.saturating_duration_since(*arrived) < self.max_wait {
                    break;
                }
                out.push(Out::Gap(first - next));
                next = first;
            }
            let (_, p) = self.pending.remove(&first).expect("present");
            out.push(Out::Packet(p));
            next += 1;
        }
        self.next = Some(next);
        self.fresh = self.fresh.split_off(&next);
        self.nacks = self.nacks.split_off(&next);
        out
    }

    /// The wait before a hole is NACKed again.
    fn retry(&self) -> Duration {
        (self.rtt * 3 / 2).clamp(Duration::from_millis(5), Duration::from_millis(150))
    }

    /// The sequence numbers to NACK now: new holes, and holes whose last NACK is a retry old.
    pub fn nacks(&mut self, now: Instant) -> Vec<u16> {
        let retry = self.retry();
        let mut out = Vec::new();
        for ext in std::mem::take(&mut self.fresh) {
            self.nacks.insert(ext, (now, 1));
            out.push(ext as u16);
        }
        for (ext, (last, count)) in self.nacks.iter_mut() {
            if *count < MAX_NACKS
                && now.saturating_duration_since(*last) >= retry
                && !out.contains(&(*ext as u16))
            {
                *last = now;
                *count += 1;
                out.push(*ext as u16);
            }
        }
        self.counters.nacked += out.len() as u64;
        out
    }

    /// When [`Reorder::nacks`] next has something to say.
    pub fn nack_deadline(&self) -> Option<Instant> {
        let retry = self.retry();
        self.nacks
            .values()
            .filter(|(_, count)| *count < MAX_NACKS)
            .map(|(last, _)| *last + retry)
            .min()
    }

    /// When a waited-for hole is given up, if one is open.
    pub fn deadline(&self) -> Option<Instant> {
        let (&first, (arrived, _)) = self.pending.iter().next()?;
        (Some(first) != self.next).then_some(*arrived + self.max_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn packets(out: Vec<Out<u16>>) -> Vec<String> {
        out.into_iter()
            .map(|o| match o {
                Out::Packet(p) => p.to_string(),
                Out::Gap(n) => format!("gap{n}"),
            })
            .collect()
    }

    #[test]
    fn in_order_packets_pass_at_once() {
        let t = Instant::now();
        let mut r = Reorder::new(ms(100));
        assert_eq!(packets(r.push(t, 10, 10)), ["10"]);
        assert_eq!(packets(r.push(t, 11, 11)), ["11"]);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn a_retransmission_in_time_fills_the_hole() {
        let t = Instant::now();
        let mut r = Reorder::new(ms(100));
        r.push(t, 10, 10);
        assert!(r.push(t, 12, 12).is_empty());
        assert!(r.push(t + ms(5), 13, 13).is_empty());
        assert_eq!(r.deadline(), Some(t + ms(100)));
        assert_eq!(packets(r.push(t + ms(30), 11, 11)), ["11", "12", "13"]);
        assert_eq!(r.counters.repaired, 1);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn a_hole_is_skipped_after_the_wait_and_a_late_packet_is_counted() {
        let t = Instant::now();
        let mut r = Reorder::new(ms(100));
        r.push(t, 10, 10);
        r.push(t, 13, 13);
        assert!(r.poll(t + ms(99)).is_empty());
        assert_eq!(packets(r.poll(t + ms(100))), ["gap2", "13"]);
        assert!(r.push(t + ms(120), 11, 11).is_empty());
        assert_eq!(r.counters.late, 1);
        assert_eq!(packets(r.push(t + ms(120), 14, 14)), ["14"]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t = Instant::now();
        let mut r = Reorder::new(ms(100));
        r.push(t, 65_534, 65_534);
        assert!(r.push(t, 0, 0).is_empty());
        assert_eq!(packets(r.push(t, 65_535, 65_535)), ["65535", "0"]);
        assert_eq!(packets(r.push(t, 1, 1)), ["1"]);
    }

    #[test]
    fn holes_are_nacked_at_once_then_after_a_round_trip_and_learn_it() {
        let t = Instant::now();
        let mut r = Reorder::new(ms(500));
        r.push(t, 10, 10);
        r.push(t, 13, 13);
        assert_eq!(r.nacks(t), [11, 12]);
        assert!(r.nacks(t + ms(10)).is_empty());
        // Initial guess 30 ms: NACKed again after 45.
        assert_eq!(r.nack_deadline(), Some(t + ms(45)));
        assert_eq!(r.nacks(t + ms(45)), [11, 12]);
        // 12 is repaired 10 ms after its last NACK: the round trip estimate drops.
        r.push(t + ms(55), 12, 12);
        assert!(r.rtt < ms(30));
        assert_eq!(packets(r.push(t + ms(56), 11, 11)), ["11", "12", "13"]);
        assert_eq!(r.nack_deadline(), None);
        // A hole is NACKed MAX_NACKS times at most.
        r.push(t + ms(60), 15, 15);
        let mut sent = 0;
        for k in 0..100 {
            sent += r.nacks(t + ms(60 + k * 10)).len();
        }
        assert_eq!(sent, usize::from(MAX_NACKS));
    }

    #[test]
    fn duplicates_are_late() {
        let t = Instant::now();
        let mut r = Reorder::new(ms(100));
        r.push(t, 5, 5);
        r.push(t, 7, 7);
        assert!(r.push(t, 7, 7).is_empty());
        assert!(r.push(t, 5, 5).is_empty());
        assert_eq!(r.counters.late, 2);
    }
}
