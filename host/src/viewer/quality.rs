//! A viewer's link as its RTCP receiver reports tell it (RFC 3550 §6.4.1): the fraction of
//! our packets it lost since its last report, and the round-trip time from the report's
//! LSR/DLSR fields.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;

/// The latest figures of one viewer's link (all zero until its first report).
#[derive(Debug, Default)]
pub struct LinkQuality {
    /// Fraction lost in the last report, in 1/256.
    fraction_lost: AtomicU64,
    /// Cumulative packets lost, as the viewer counts them.
    packets_lost: AtomicU64,
    /// Round-trip time from the last report that had one, in µs (0: none yet).
    rtt_us: AtomicU64,
    reports: AtomicU64,
}

/// A snapshot of [`LinkQuality`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Quality {
    /// 0.0 ..= 1.0.
    pub loss: f64,
    pub packets_lost: u64,
    /// `None` until a report carries the timing fields.
    pub rtt_ms: Option<f64>,
    pub reports: u64,
}

/// The middle 32 bits of the NTP timestamp of `t` (the unit of LSR and DLSR: 1/65536 s).
fn ntp_middle(t: SystemTime) -> u32 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800; // 1900 → 1970
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ((secs << 16) as u32) | (frac >> 16) as u32
}

impl LinkQuality {
    /// Takes what RTCP `packets` (one compound packet from the viewer) report about our
    /// stream `ssrc` (`None`: any).
    pub fn on_rtcp(&self, packets: &[Box<dyn rtc::rtcp::Packet>], now: SystemTime) {
        for p in packets {
            let any = p.as_any();
            let reports = if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                &rr.reports
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                &sr.reports
            } else {
                continue;
            };
            for r in reports {
                self.on_report(
                    r.fraction_lost,
                    r.total_lost,
                    r.last_sender_report,
                    r.delay,
                    now,
                );
            }
        }
    }

    fn on_report(&self, fraction_lost: u8, total_lost: u32, lsr: u32, dlsr: u32, now: SystemTime) {
        self.fraction_lost
            .store(u64::from(fraction_lost), Ordering::Relaxed);
        self.packets_lost
            .store(u64::from(total_lost), Ordering::Relaxed);
        self.reports.fetch_add(1, Ordering::Relaxed);
        if lsr == 0 {
            return; // no sender report received yet
        }
        // RTT = A - LSR - DLSR (RFC 3550 §6.4.1), in 1/65536 s, wrapping.
        let rtt = ntp_middle(now).wrapping_sub(lsr).wrapping_sub(dlsr);
        // Our SR clock and this one may differ by a little: keep what is plausible (< 60 s).
        if rtt < 60 << 16 {
            let us = (u64::from(rtt) * 1_000_000) >> 16;
            self.rtt_us.store(us.max(1), Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> Quality {
        let rtt = self.rtt_us.load(Ordering::Relaxed);
        Quality {
            loss: self.fraction_lost.load(Ordering::Relaxed) as f64 / 256.0,
            packets_lost: self.packets_lost.load(Ordering::Relaxed),
            rtt_ms: (rtt > 0).then(|| rtt as f64 / 1000.0),
            reports: self.reports.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rtt_and_loss_from_a_report() {
        let q = LinkQuality::default();
        assert_eq!(q.snapshot().rtt_ms, None);
        let sent = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let lsr = ntp_middle(sent);
        // The viewer held our SR 10 ms; it arrives back 50 ms after we sent the SR.
        let dlsr = (65536 * 10) / 1000;
        q.on_report(64, 12, lsr, dlsr, sent + Duration::from_millis(50));
        let s = q.snapshot();
        assert_eq!((s.loss, s.packets_lost, s.reports), (0.25, 12, 1));
        let rtt = s.rtt_ms.unwrap();
        assert!((rtt - 40.0).abs() < 0.1, "{rtt}");
    }

    #[test]
    fn reports_without_timing_or_from_a_skewed_clock_keep_no_rtt() {
        let q = LinkQuality::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        q.on_report(0, 0, 0, 0, now);
        assert_eq!(q.snapshot().rtt_ms, None);
        // LSR "in the future": negative RTT wraps to a huge value and is dropped.
        q.on_report(0, 0, ntp_middle(now + Duration::from_secs(1)), 0, now);
        assert_eq!(q.snapshot().rtt_ms, None);
        assert_eq!(q.snapshot().reports, 2);
    }
}
