//! Gives the memory of a burst of connections back to the operating system.
//!
//! Every connection owns read and write buffers, a task and, while it sends one, a request
//! body (bounded by the API's body budget). When thousands of them close, the allocator
//! (glibc malloc, with one arena per worker thread) keeps the freed pages for later, so
//! the server's resident set stays at its peak long after a flood is gone. [`Trimmer`]
//! decides, from the number of open connections alone, when a burst has passed: the
//! connections went above [`BURST`] and fell to a quarter of their peak. Then
//! [`release_free_memory`] asks the allocator to return its free pages (`malloc_trim`),
//! off the async workers. The decision is pure and tested; the call is one libc function,
//! for which no maintained crate exists beyond `libc` itself.

use std::time::{Duration, Instant};

use tracing::debug;

/// Open connections that make a burst worth trimming after.
pub(crate) const BURST: usize = 64;
/// Least time between two trims (each walks every arena).
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// When to trim, from the open connection counts seen by the accept loop.
#[derive(Debug)]
pub(crate) struct Trimmer {
    /// Connections open now.
    open: usize,
    /// Most connections open at once since the last trim.
    peak: usize,
    last: Option<Instant>,
}

impl Trimmer {
    pub(crate) fn new() -> Trimmer {
        Trimmer {
            open: 0,
            peak: 0,
            last: None,
        }
    }

    /// `open` connections are open now (after one opened or closed, at `now`): whether
    /// a burst has passed and memory should be given back now.
    pub(crate) fn observe(&mut self, open: usize, now: Instant) -> bool {
        self.open = open;
        self.peak = self.peak.max(open);
        self.due(now)
    }

    /// Whether memory should be given back at `now` (a burst has passed and the last
    /// trim is at least [`MIN_INTERVAL`] old); if so, a new burst starts being counted.
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if self.passed() && self.wake_at().is_none_or(|at| now >= at) {
            self.peak = self.open;
            self.last = Some(now);
            true
        } else {
            false
        }
    }

    /// When a burst has passed but the last trim was too recent: when to look again.
    pub(crate) fn pending(&self) -> Option<Instant> {
        self.wake_at().filter(|_| self.passed())
    }

    fn passed(&self) -> bool {
        self.peak >= BURST && self.open <= self.peak / 4
    }

    fn wake_at(&self) -> Option<Instant> {
        self.last.map(|t| t + MIN_INTERVAL)
    }
}

/// Returns the allocator's free pages to the system, on a blocking thread; logs the
/// resident set before and after at debug level.
pub(crate) fn release_free_memory() {
    tokio::task::spawn_blocking(|| {
        let before = resident_kib();
        trim();
        debug!(
            rss_before_kib = before,
            rss_after_kib = resident_kib(),
            "connection burst over; free memory returned to the system"
        );
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists under its locks; it
    // takes no pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// The process's resident set in KiB (`VmRSS`), if readable.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_trimmed_once_it_has_passed() {
        let t0 = Instant::now();
        let mut t = Trimmer::new();
        for open in 1..=400 {
            assert!(!t.observe(open, t0), "still rising at {open}");
        }
        // Falling, but not yet to a quarter of the peak.
        assert!(!t.observe(101, t0));
        assert!(t.observe(100, t0));
        // The peak is now what is open: closing the rest is a smaller burst, given back
        // once the interval is over.
        for open in (0..100).rev() {
            assert!(!t.observe(open, t0));
        }
        assert_eq!(t.pending(), Some(t0 + MIN_INTERVAL));
        assert!(t.due(t0 + MIN_INTERVAL));
        assert_eq!(t.pending(), None);
    }

    #[test]
    fn small_traffic_never_trims() {
        let t0 = Instant::now();
        let mut t = Trimmer::new();
        for round in 0..100u32 {
            let now = t0 + MIN_INTERVAL * round;
            for open in (0..BURST).chain((0..BURST).rev()) {
                assert!(!t.observe(open, now));
            }
        }
        assert_eq!(t.pending(), None);
    }

    #[test]
    fn a_burst_right_after_a_trim_is_trimmed_when_the_interval_is_over() {
        let t0 = Instant::now();
        let mut t = Trimmer::new();
        t.observe(1000, t0);
        assert!(t.observe(0, t0));
        t.observe(1000, t0);
        // Over too soon after the last trim: nothing now, but a time to look again.
        assert!(!t.observe(0, t0 + MIN_INTERVAL / 2));
        assert_eq!(t.pending(), Some(t0 + MIN_INTERVAL));
        assert!(!t.due(t0 + MIN_INTERVAL / 2));
        assert!(t.due(t0 + MIN_INTERVAL));
        assert_eq!(t.pending(), None);
    }
}
