//! The planner's counters and its placement-latency histogram, rendered in the
//! Prometheus text format. Lock-free: the loop updates atomics, `/metrics` reads them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (µs) of the placement-latency histogram buckets.
const BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

/// Counters of the planner loop.
#[derive(Debug, Default)]
pub struct PlannerMetrics {
    /// Offers received.
    pub offers_received: AtomicU64,
    /// Offers declined.
    pub offers_declined: AtomicU64,
    /// Tasks launched.
    pub tasks_launched: AtomicU64,
    /// Tasks launched with all CPUs on one NUMA node.
    pub tasks_numa_local: AtomicU64,
    /// Jobs requeued after a lost task.
    pub retries: AtomicU64,
    /// Status updates handled.
    pub status_updates: AtomicU64,
    /// Jobs in the planner's queue (gauge).
    pub planner_queue: AtomicU64,
    /// Queued jobs whose full record the planner holds (the window; gauge).
    pub window_cached: AtomicU64,
    buckets: [AtomicU64; BUCKETS_US.len()],
    cycles: AtomicU64,
    cycle_us_sum: AtomicU64,
}

impl PlannerMetrics {
    /// Records one planning cycle's duration.
    pub fn observe_cycle(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            if us <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.cycles.fetch_add(1, Ordering::Relaxed);
        self.cycle_us_sum.fetch_add(us, Ordering::Relaxed);
    }

    /// Share of launched tasks that are NUMA-local (1 when none launched yet).
    pub fn numa_local_ratio(&self) -> f64 {
        let n = self.tasks_launched.load(Ordering::Relaxed);
        if n == 0 {
            return 1.0;
        }
        self.tasks_numa_local.load(Ordering::Relaxed) as f64 / n as f64
    }

    /// The Prometheus text of every metric (complete `# TYPE` blocks).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "retz_offers_received_total",
            "Mesos offers received.",
            get(&self.offers_received),
        );
        counter(
            "retz_offers_declined_total",
            "Mesos offers declined.",
            get(&self.offers_declined),
        );
        counter(
            "retz_tasks_launched_total",
            "Tasks launched.",
            get(&self.tasks_launched),
        );
        counter(
            "retz_tasks_numa_local_total",
            "Tasks launched with every CPU on one NUMA node.",
            get(&self.tasks_numa_local),
        );
        counter(
            "retz_job_retries_total",
            "Jobs requeued after a lost task.",
            get(&self.retries),
        );
        counter(
            "retz_status_updates_total",
            "Mesos task status updates handled.",
            get(&self.status_updates),
        );
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "retz_planner_queue_jobs",
            "QUEUED jobs the planner orders (keys only).",
            get(&self.planner_queue),
        );
        gauge(
            "retz_planner_window_jobs",
            "Queued jobs whose full record the planner holds for the next cycle.",
            get(&self.window_cached),
        );
        let _ = writeln!(
            s,
            "# HELP retz_numa_local_ratio Share of launched tasks that are NUMA-local.\n\
             # TYPE retz_numa_local_ratio gauge\nretz_numa_local_ratio {}",
            self.numa_local_ratio()
        );
        let _ = writeln!(
            s,
            "# HELP retz_placement_cycle_seconds Time of one planning cycle (offer conversion, \
             placement, task building).\n# TYPE retz_placement_cycle_seconds histogram"
        );
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            let _ = writeln!(
                s,
                "retz_placement_cycle_seconds_bucket{{le=\"{}\"}} {}",
                *bound as f64 / 1e6,
                get(&self.buckets[i])
            );
        }
        let n = get(&self.cycles);
        let _ = writeln!(s, "retz_placement_cycle_seconds_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            s,
            "retz_placement_cycle_seconds_sum {}\nretz_placement_cycle_seconds_count {n}",
            get(&self.cycle_us_sum) as f64 / 1e6
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = PlannerMetrics::default();
        m.observe_cycle(Duration::from_micros(80));
        m.observe_cycle(Duration::from_millis(3));
        m.observe_cycle(Duration::from_secs(1));
        let text = m.render();
        assert!(
            text.contains("retz_placement_cycle_seconds_bucket{le=\"0.0001\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("retz_placement_cycle_seconds_bucket{le=\"0.005\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("retz_placement_cycle_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("retz_placement_cycle_seconds_count 3"));
        m.planner_queue.store(1_000_000, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains(
                "# TYPE retz_planner_queue_jobs gauge\nretz_planner_queue_jobs 1000000\n"
            ),
            "{text}"
        );
        assert_eq!(m.numa_local_ratio(), 1.0);
        m.tasks_launched.store(4, Ordering::Relaxed);
        m.tasks_numa_local.store(3, Ordering::Relaxed);
        assert_eq!(m.numa_local_ratio(), 0.75);
    }
}
