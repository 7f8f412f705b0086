//! The planner's counters and its placement-latency histogram, rendered in the
//! Prometheus text format. Lock-free: the loop updates atomics, `/metrics` reads them.
//!
//! The pinning counters (`retz_tasks_pinning_*_total`) count the verified pinnings
//! retz-executor reported, one per task attempt: they start from the stored jobs' at
//! planner start (so a restart does not reset them to zero) and grow with each new
//! report.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use retz_proto::task::Verification;

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
    /// Task pinnings the executor verified (seen as applied).
    pub pinning_verified: AtomicU64,
    /// Task pinnings whose verification showed drift (with evidence).
    pub pinning_drift: AtomicU64,
    /// Task pinnings not observed: the task exited before, or `/proc` was unreadable.
    pub pinning_unobserved: AtomicU64,
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

    /// Counts one reported pinning.
    pub fn count_pinning(&self, outcome: Verification) {
        let counter = match outcome {
            Verification::Verified => &self.pinning_verified,
            Verification::Drift => &self.pinning_drift,
            Verification::Exited | Verification::Unverifiable => &self.pinning_unobserved,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the stored jobs' pinning outcomes (by wire name, as
    /// `Store::pinning_counts` gives them) to the counters.
    pub fn start_pinning(&self, counts: &BTreeMap<String, u64>) {
        for (name, n) in counts {
            let counter = match name.as_str() {
                "verified" => &self.pinning_verified,
                "drift" => &self.pinning_drift,
                _ => &self.pinning_unobserved,
            };
            counter.fetch_add(*n, Ordering::Relaxed);
        }
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
        counter(
            "retz_tasks_pinning_verified_total",
            "Task pinnings retz-executor read back from the kernel as applied.",
            get(&self.pinning_verified),
        );
        counter(
            "retz_tasks_pinning_drift_total",
            "Task pinnings whose verification showed drift (a running task seen with other CPUs, nodes or cgroups).",
            get(&self.pinning_drift),
        );
        counter(
            "retz_tasks_pinning_unobserved_total",
            "Task pinnings not verified: the task exited first, or /proc could not be read.",
            get(&self.pinning_unobserved),
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

    #[test]
    fn pinning_counters_start_from_the_store_and_count_reports() {
        let m = PlannerMetrics::default();
        m.start_pinning(&BTreeMap::from([
            ("verified".to_owned(), 5),
            ("drift".to_owned(), 1),
            ("exited".to_owned(), 2),
            ("unverifiable".to_owned(), 1),
        ]));
        m.count_pinning(Verification::Verified);
        m.count_pinning(Verification::Drift);
        m.count_pinning(Verification::Exited);
        let text = m.render();
        for line in [
            "retz_tasks_pinning_verified_total 6\n",
            "retz_tasks_pinning_drift_total 2\n",
            "retz_tasks_pinning_unobserved_total 4\n",
            "# TYPE retz_tasks_pinning_drift_total counter\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
