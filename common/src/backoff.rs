//! The one backoff: exponential delays from an initial one to a cap, with jitter where many
//! agents could retry in step (reconnects to an engine), without where one caller paces its
//! own tries (an inspect, an action's retry). Used as a sequence ([`Backoff::next_delay`],
//! reset by the caller after a quiet spell, the kube-runtime way) or by attempt number
//! ([`Backoff::delay_of`]) by a state machine that keeps its own count.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct Backoff {
    /// Delay of the next failure before jitter.
    current: Duration,
    initial: Duration,
    max: Duration,
    factor: u32,
    jitter: bool,
}

impl Default for Backoff {
    /// 0.5 s → 30 s, doubling, ±20 % jitter: reconnects to the engine.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30)).with_jitter()
    }
}

impl Backoff {
    /// Doubling from `initial` up to `max`, no jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            current: initial,
            initial,
            max,
            factor: 2,
            jitter: false,
        }
    }

    /// Grows by `factor` per failure instead of 2.
    pub fn with_factor(mut self, factor: u32) -> Self {
        self.factor = factor.max(1);
        self
    }

    /// ±20 % jitter, so many agents don't retry in step.
    pub fn with_jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    /// The delay to wait now; grows the next one up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = self.current.saturating_mul(self.factor).min(self.max);
        if !self.jitter {
            return base;
        }
        // Cheap jitter source: the clock's nanoseconds; no RNG crate needed for this.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let factor = 0.8 + f64::from(nanos % 1000) / 2500.0; // 0.8 ..= 1.2
        base.mul_f64(factor).min(self.max)
    }

    /// The delay before try `n + 2` (`n` failures so far, counted from 0), without jitter.
    pub fn delay_of(&self, n: u32) -> Duration {
        let grown = self
            .factor
            .checked_pow(n.min(30))
            .map_or(self.max, |f| self.initial.saturating_mul(f));
        grown.min(self.max)
    }

    /// Back to the initial delay, after the connection proved healthy.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).with_jitter();
        let first = b.next_delay();
        assert!(
            first >= Duration::from_millis(80) && first <= Duration::from_millis(120),
            "{first:?}"
        );
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_secs(1));
        }
        assert!(b.next_delay() >= Duration::from_millis(800));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }

    #[test]
    fn by_attempt_and_by_factor() {
        let b = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let ms: Vec<u128> = (0..10).map(|n| b.delay_of(n).as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(b.delay_of(u32::MAX), Duration::from_secs(30));
        let mut tripling = Backoff::new(Duration::from_millis(10), Duration::from_secs(60)).with_factor(3);
        let seq: Vec<u128> = (0..4).map(|_| tripling.next_delay().as_millis()).collect();
        assert_eq!(seq, [10, 30, 90, 270]);
    }
}
