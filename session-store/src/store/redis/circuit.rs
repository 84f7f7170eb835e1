//! A circuit breaker: once Redis has failed several times in a row, calls fail at once
//! instead of each waiting out its timeout, and one probe at a time tests the way back.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Consecutive failures, and until when calls are refused.
pub(super) struct Circuit {
    threshold: u32,
    open_for_ms: u64,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the circuit is open (0: closed).
    open_until: AtomicU64,
    probing: AtomicBool,
}

/// What a caller may do now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Closed: call.
    Call,
    /// Open, and this caller is the one probe: call, then report.
    Probe,
    /// Open: fail without calling.
    Refuse,
}

impl Circuit {
    /// Opens after `threshold` consecutive failures (0 never opens), for `open_for`.
    pub(super) fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold,
            open_for_ms: open_for.as_millis().max(1) as u64,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a call may go to Redis now.
    pub(super) fn admit(&self) -> Admission {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Admission::Call;
        }
        if self.now_ms() < until {
            return Admission::Refuse;
        }
        // Past the open period: exactly one caller probes; the others keep failing fast.
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admission::Probe,
            Err(_) => Admission::Refuse,
        }
    }

    /// Reports how a call (admitted as `how`) went: `healthy` false for failures that say
    /// Redis is away (unreachable, timed out), not for errors in one command.
    pub(super) fn report(&self, how: Admission, healthy: bool) {
        if healthy {
            self.failures.store(0, Ordering::Release);
            if self.open_until.swap(0, Ordering::AcqRel) != 0 {
                tracing::info!("session store answers again: circuit closed");
            }
        } else {
            let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
            if how == Admission::Probe || (self.threshold > 0 && n >= self.threshold) {
                let until = self.now_ms() + self.open_for_ms;
                if self.open_until.swap(until, Ordering::AcqRel) == 0 {
                    tracing::warn!(
                        failures = n,
                        open_ms = self.open_for_ms,
                        "session store failing: circuit open, calls fail fast"
                    );
                }
            }
        }
        if how == Admission::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_lets_one_probe_through_later() {
        let c = Circuit::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert_eq!(c.admit(), Admission::Call);
            c.report(Admission::Call, false);
        }
        assert_eq!(c.admit(), Admission::Call, "two failures leave it closed");
        c.report(Admission::Call, false);
        assert_eq!(c.admit(), Admission::Refuse, "the third opens it");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.admit(), Admission::Probe);
        assert_eq!(c.admit(), Admission::Refuse, "one probe at a time");
        c.report(Admission::Probe, false);
        assert_eq!(c.admit(), Admission::Refuse, "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.admit(), Admission::Probe);
        c.report(Admission::Probe, true);
        assert_eq!(c.admit(), Admission::Call, "a good probe closes it");
        c.report(Admission::Call, false);
        assert_eq!(c.admit(), Admission::Call, "and the count started again");
    }

    #[test]
    fn a_success_resets_the_count() {
        let c = Circuit::new(2, Duration::from_secs(60));
        c.report(Admission::Call, false);
        c.report(Admission::Call, true);
        c.report(Admission::Call, false);
        assert_eq!(c.admit(), Admission::Call);
        let never = Circuit::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            never.report(Admission::Call, false);
        }
        assert_eq!(never.admit(), Admission::Call, "threshold 0 never opens");
    }
}
