//! The heartbeat watchdog: how long the event stream may stay silent before the master
//! is considered lost and the client reconnects.
//!
//! Invariants: the silence allowed is `misses × interval` once SUBSCRIBED has given the
//! interval, and a fixed grace before that; the interval comes from outside input, so any
//! value (missing, NaN, negative, huge) maps to a usable duration without panicking.

use std::time::Duration;

/// The interval Mesos masters use (hard-coded there), assumed when SUBSCRIBED has none.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// The shortest interval believed.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1);

/// The longest interval believed (one day).
pub const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// `heartbeat_interval_seconds` from SUBSCRIBED as a duration: missing, non-finite or
/// non-positive values give [`DEFAULT_HEARTBEAT_INTERVAL`]; others are clamped to
/// [`MIN_HEARTBEAT_INTERVAL`]..=[`MAX_HEARTBEAT_INTERVAL`].
pub fn heartbeat_interval(seconds: Option<f64>) -> Duration {
    match seconds {
        Some(s) if s.is_finite() && s > 0.0 => Duration::try_from_secs_f64(s)
            .unwrap_or(MAX_HEARTBEAT_INTERVAL)
            .clamp(MIN_HEARTBEAT_INTERVAL, MAX_HEARTBEAT_INTERVAL),
        _ => DEFAULT_HEARTBEAT_INTERVAL,
    }
}

/// Tracks the allowed silence on one subscription.
#[derive(Debug, Clone)]
pub struct Watchdog {
    misses: u32,
    before_subscribed: Duration,
    interval: Option<Duration>,
}

impl Watchdog {
    /// A watchdog that allows `misses` missed heartbeats (at least one) once
    /// subscribed, and `before_subscribed` of silence until SUBSCRIBED arrives.
    pub fn new(misses: u32, before_subscribed: Duration) -> Self {
        Watchdog {
            misses: misses.max(1),
            before_subscribed,
            interval: None,
        }
    }

    /// Records SUBSCRIBED's `heartbeat_interval_seconds`; returns the interval used.
    pub fn subscribed(&mut self, interval_seconds: Option<f64>) -> Duration {
        let interval = heartbeat_interval(interval_seconds);
        self.interval = Some(interval);
        interval
    }

    /// How long the stream may now stay silent.
    pub fn allowed_silence(&self) -> Duration {
        match self.interval {
            Some(i) => i.saturating_mul(self.misses),
            None => self.before_subscribed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn interval_from_outside_input() {
        assert_eq!(heartbeat_interval(Some(15.0)), Duration::from_secs(15));
        assert_eq!(heartbeat_interval(Some(0.25)), Duration::from_millis(250));
        for bad in [
            None,
            Some(0.0),
            Some(-1.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
        ] {
            assert_eq!(
                heartbeat_interval(bad),
                DEFAULT_HEARTBEAT_INTERVAL,
                "{bad:?}"
            );
        }
        assert_eq!(heartbeat_interval(Some(1e300)), MAX_HEARTBEAT_INTERVAL);
        assert_eq!(heartbeat_interval(Some(1e-12)), MIN_HEARTBEAT_INTERVAL);
    }

    #[test]
    fn silence_is_misses_times_interval_after_subscribed() {
        let mut w = Watchdog::new(5, Duration::from_secs(3));
        assert_eq!(w.allowed_silence(), Duration::from_secs(3));
        assert_eq!(w.subscribed(Some(15.0)), Duration::from_secs(15));
        assert_eq!(w.allowed_silence(), Duration::from_secs(75));
        let mut one = Watchdog::new(0, Duration::ZERO);
        one.subscribed(Some(2.0));
        assert_eq!(one.allowed_silence(), Duration::from_secs(2));
    }

    proptest! {
        #[test]
        fn any_interval_is_usable(s in proptest::num::f64::ANY, misses in 0u32..100) {
            let mut w = Watchdog::new(misses, Duration::from_secs(1));
            let i = w.subscribed(Some(s));
            prop_assert!((MIN_HEARTBEAT_INTERVAL..=MAX_HEARTBEAT_INTERVAL).contains(&i));
            prop_assert!(w.allowed_silence() >= i);
        }
    }
}
