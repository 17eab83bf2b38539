//! The time a check may take.

use std::time::{Duration, Instant};

/// The time budget of one check: the host's `budget-ms` and when the check started.
///
/// The host ends the probe at the deadline whatever it is doing, so a probe
/// should bound its waits by [`Budget::remaining`] to report a useful timeout
/// message instead of being cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    total: Duration,
    start: Instant,
}

impl Budget {
    /// A budget of `budget_ms` milliseconds starting now.
    pub fn new(budget_ms: u64) -> Self {
        Self::from_duration(Duration::from_millis(budget_ms))
    }

    /// A budget of `total` starting now.
    pub fn from_duration(total: Duration) -> Self {
        Budget {
            total,
            start: Instant::now(),
        }
    }

    /// The whole budget as given by the host.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// When the check started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Time since the check started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Time left before the deadline (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.total.saturating_sub(self.elapsed())
    }

    /// Whether the deadline has passed.
    pub fn is_exhausted(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The smaller of `limit` and the time left: a timeout for one step of the check.
    pub fn cap(&self, limit: Duration) -> Duration {
        limit.min(self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_shrinks_and_saturates() {
        let b = Budget::new(10_000);
        assert!(b.remaining() <= Duration::from_secs(10));
        assert!(b.remaining() > Duration::from_secs(9));
        assert!(!b.is_exhausted());
        let zero = Budget::new(0);
        assert!(zero.is_exhausted());
        assert_eq!(zero.remaining(), Duration::ZERO);
        assert_eq!(b.cap(Duration::from_millis(5)), Duration::from_millis(5));
    }
}
