//! When to try a branch op again. A `retry` from the guest (DTM's ONGOING)
//! keeps the base interval; anything else that is not a result (trap,
//! deadline, database unavailable) doubles it, up to a cap.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// First interval, and the interval after a guest `retry`.
    pub base_ms: u64,
    /// Backoff never waits longer than this.
    pub cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base_ms: 1_000, cap_ms: 60_000 }
    }
}

impl RetryPolicy {
    /// The policy for one transaction: its `retry_interval` (seconds) replaces the base.
    pub fn with_interval_secs(self, secs: Option<u64>) -> Self {
        match secs {
            Some(s) => Self { base_ms: s.saturating_mul(1000).max(1), cap_ms: self.cap_ms.max(s.saturating_mul(1000)) },
            None => self,
        }
    }

    /// The same with the backoff capped at `secs` seconds, if given (the
    /// base interval still wins over a smaller cap).
    pub fn with_cap_secs(self, secs: Option<u64>) -> Self {
        match secs {
            Some(s) => Self { cap_ms: s.saturating_mul(1000).max(self.base_ms), ..self },
            None => self,
        }
    }

    /// Delay after the `failures`-th consecutive error (1-based): base · 2^(failures-1), capped.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let exp = failures.saturating_sub(1).min(32);
        self.base_ms.saturating_mul(1u64 << exp).min(self.cap_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_stops_at_the_cap() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 1_000 };
        let delays: Vec<u64> = (1..=6).map(|n| p.backoff_ms(n)).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(p.backoff_ms(u32::MAX), 1_000);
    }

    #[test]
    fn a_transaction_cap_bounds_the_backoff_but_not_below_the_base() {
        let p = RetryPolicy { base_ms: 1_000, cap_ms: 60_000 }.with_interval_secs(Some(2)).with_cap_secs(Some(5));
        let delays: Vec<u64> = (1..=4).map(|n| p.backoff_ms(n)).collect();
        assert_eq!(delays, vec![2_000, 4_000, 5_000, 5_000]);
        let p = RetryPolicy { base_ms: 1_000, cap_ms: 60_000 }.with_interval_secs(Some(3)).with_cap_secs(Some(1));
        assert_eq!(p.backoff_ms(5), 3_000);
        let p = RetryPolicy { base_ms: 1_000, cap_ms: 60_000 }.with_cap_secs(Some(120));
        assert_eq!(p.backoff_ms(10), 120_000, "a transaction may also wait longer than the server's cap");
    }

    #[test]
    fn a_transaction_interval_replaces_the_base() {
        let p = RetryPolicy { base_ms: 100, cap_ms: 1_000 }.with_interval_secs(Some(2));
        assert_eq!(p.backoff_ms(1), 2_000);
        assert_eq!(p.backoff_ms(3), 2_000, "cap is raised to at least the interval");
    }
}
