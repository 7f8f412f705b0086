//! [`Backoff`]: a delay that starts at `initial`, doubles on every [`Backoff::next_delay`]
//! up to `max`, and goes back to `initial` on [`Backoff::reset`].
//!
//! Invariant: `initial <= delay <= max` at all times (when `initial <= max`; otherwise
//! every delay is `max`). Used by request retries and by `get-file --poll` / `run`
//! ([`Backoff::poll`]: 4 ms doubling to 32 s, reset when there is progress). The first
//! delays are short so that a job that starts and ends within milliseconds is followed
//! within milliseconds; the doubling keeps a quiet job at one request every 32 s (13
//! requests in the first 30 s).

use std::time::Duration;

/// A doubling delay with a ceiling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// First delay of the polling backoff (the original client waited 512 ms).
    pub const POLL_INITIAL: Duration = Duration::from_millis(4);
    /// Ceiling of the polling backoff.
    pub const POLL_MAX: Duration = Duration::from_millis(32_768);

    /// A backoff from `initial` doubling to `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The polling backoff (4 ms to 32 s).
    pub fn poll() -> Backoff {
        Backoff::new(Self::POLL_INITIAL, Self::POLL_MAX)
    }

    /// The delay to wait now; the next call returns twice as much (up to the ceiling).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        d
    }

    /// Back to the initial delay (call when progress was made).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn poll_backoff_starts_fast_doubles_to_32_s_and_resets() {
        let mut b = Backoff::poll();
        let got: Vec<u64> = (0..16).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            got,
            [
                4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 32768, 32768
            ]
        );
        // A quiet job costs few requests: 13 in its first 30 s.
        let mut b = Backoff::poll();
        let mut t = Duration::ZERO;
        let mut requests = 0;
        while t < Duration::from_secs(30) {
            t += b.next_delay();
            requests += 1;
        }
        assert_eq!(requests, 13);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(4));
    }

    proptest! {
        #[test]
        fn delays_stay_within_bounds(init in 0u64..10_000, max in 0u64..100_000, n in 0usize..80) {
            let mut b = Backoff::new(Duration::from_millis(init), Duration::from_millis(max));
            let mut last = Duration::ZERO;
            for _ in 0..n {
                let d = b.next_delay();
                prop_assert!(d <= Duration::from_millis(max));
                prop_assert!(d >= Duration::from_millis(init.min(max)));
                prop_assert!(d >= last);
                last = d;
            }
        }
    }
}
