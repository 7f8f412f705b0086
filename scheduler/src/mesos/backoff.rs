//! Capped exponential backoff between reconnect attempts.
//!
//! Invariants: every delay is at least `initial` (or zero if `initial` is zero) and at
//! most `max`; consecutive delays double until they reach `max`; [`Backoff::reset`]
//! starts over from `initial`.

use std::time::Duration;

/// Capped exponential backoff (no jitter: one scheduler talks to one master).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays start at `initial` and double up to `max` (`max` below `initial` is
    /// raised to `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.max);
        delay
    }

    /// Starts over (after a successful subscription).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubles_up_to_the_cap_then_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        let got: Vec<_> = (0..7).map(|_| b.next_delay()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000, 1000].map(ms));
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
    }

    #[test]
    fn cap_below_initial_and_zero_initial() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(5));
        assert_eq!(b.next_delay(), Duration::from_secs(5));
        let mut z = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(z.next_delay(), Duration::ZERO);
        assert_eq!(z.next_delay(), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn delays_stay_within_bounds(initial in 0u64..10_000, max in 0u64..100_000, n in 1usize..80) {
            let (i, m) = (Duration::from_millis(initial), Duration::from_millis(max));
            let mut b = Backoff::new(i, m);
            let mut prev = Duration::ZERO;
            for _ in 0..n {
                let d = b.next_delay();
                prop_assert!(d >= i && d <= m.max(i));
                prop_assert!(d >= prev);
                prev = d;
            }
        }
    }
}
