//! The server's metrics: one `prometheus-client` [`Registry`] and every metric family in
//! it, served by `GET /metrics` as OpenMetrics text ([`CONTENT_TYPE`]).
//!
//! Two kinds of series:
//! - kept by the planner loop as things happen (counters, the placement-latency
//!   histogram, the queue gauges): it updates them directly through [`Metrics`];
//! - read at scrape time from the store and the planner's status (jobs per state, CPUs
//!   in use per user, agents, offers): [`Metrics::render`] sets them, then encodes.
//!
//! The pinning counters (`retz_tasks_pinning_*_total{mechanism}`) count the pinnings
//! retz-executor verified, one per task attempt, by how they were enforced: they start
//! from the stored jobs' (so a restart does not reset them) and grow with each report.
//!
//! Names: counters carry `_total` (OpenMetrics); the sum of stored retry counts is
//! `retz_stored_job_retries`, apart from the planner's `retz_job_retries_total`.
//!
//! Formats: OpenMetrics by default; a client that asks for `text/plain` and not for
//! OpenMetrics in its `Accept` header (`promtool check metrics`, older scrapers) gets the
//! same series in the Prometheus text format 0.0.4 ([`to_prometheus_text`]: counter
//! families named with their `_total`, no `# UNIT`, no `# EOF`).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use retz_proto::api::JobState;
use retz_proto::task::{PinMechanism, Verification};

use crate::http::PlannerStatus;
use crate::store::JobCounts;

/// The `Content-Type` of `/metrics` (OpenMetrics).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of `/metrics` in the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` header asks for the Prometheus text format: it names
/// `text/plain` and not OpenMetrics. Anything else (none, `*/*`, a browser's) gets
/// OpenMetrics.
pub fn wants_prometheus_text(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        let a = a.to_ascii_lowercase();
        a.contains("text/plain") && !a.contains("application/openmetrics-text")
    })
}

/// OpenMetrics text as the Prometheus text format 0.0.4: a counter family `x` (samples
/// `x_total`) is announced as `x_total`; `# UNIT` and `# EOF` lines are dropped.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Upper bounds (seconds) of the placement-latency histogram buckets.
const CYCLE_BUCKETS_S: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];

/// A gauge of a float value.
type FloatGauge = Gauge<f64, AtomicU64>;

/// `{state="QUEUED"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// `{user="..."}`: the Retz user (key) owning the jobs.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabel {
    user: String,
}

/// `{mechanism="cgroup-v1"}`: how a task's CPUs were enforced.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MechanismLabel {
    mechanism: String,
}

/// The pinning counters, one per outcome, by mechanism.
#[derive(Clone, Debug, Default)]
struct Pinning {
    verified: Family<MechanismLabel, Counter>,
    drift: Family<MechanismLabel, Counter>,
    unobserved: Family<MechanismLabel, Counter>,
}

impl Pinning {
    fn of(&self, outcome: Verification) -> &Family<MechanismLabel, Counter> {
        match outcome {
            Verification::Verified => &self.verified,
            Verification::Drift => &self.drift,
            Verification::Exited | Verification::Unverifiable => &self.unobserved,
        }
    }
}

/// Every metric of the server, and the registry they are encoded from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    // --- kept by the planner loop
    /// Mesos offers received.
    pub offers_received: Counter,
    /// Mesos offers declined.
    pub offers_declined: Counter,
    /// Tasks launched.
    pub tasks_launched: Counter,
    /// Tasks launched with every CPU on one NUMA node.
    pub tasks_numa_local: Counter,
    /// Jobs requeued after a lost task.
    pub retries: Counter,
    /// Mesos task status updates handled.
    pub status_updates: Counter,
    /// QUEUED jobs the planner orders.
    pub planner_queue: Gauge,
    /// Queued jobs whose full record the planner holds (the window).
    pub window_cached: Gauge,
    pinning: Pinning,
    cycle: Histogram,
    numa_local_ratio: FloatGauge,
    // --- read at scrape time
    queue_length: Gauge,
    running_jobs: Gauge,
    jobs: Family<StateLabel, Gauge>,
    stored_retries: Gauge,
    cpus_used: Gauge,
    user_cpus: Family<UserLabel, Gauge>,
    agents: Gauge,
    offers_held: Gauge,
    offered_cpus: FloatGauge,
    events_waiting: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn gauge_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Every family registered, all at zero.
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let offers_received = counter(&mut r, "retz_offers_received", "Mesos offers received");
        let offers_declined = counter(&mut r, "retz_offers_declined", "Mesos offers declined");
        let tasks_launched = counter(&mut r, "retz_tasks_launched", "Tasks launched");
        let tasks_numa_local = counter(
            &mut r,
            "retz_tasks_numa_local",
            "Tasks launched with every CPU on one NUMA node",
        );
        let retries = counter(
            &mut r,
            "retz_job_retries",
            "Jobs requeued after a lost task",
        );
        let status_updates = counter(
            &mut r,
            "retz_status_updates",
            "Mesos task status updates handled",
        );
        let pinning = Pinning::default();
        r.register(
            "retz_tasks_pinning_verified",
            "Task pinnings retz-executor read back from the kernel as applied, by mechanism",
            pinning.verified.clone(),
        );
        r.register(
            "retz_tasks_pinning_drift",
            "Task pinnings whose verification showed drift (a running task seen with other \
             CPUs, nodes or cgroups), by mechanism",
            pinning.drift.clone(),
        );
        r.register(
            "retz_tasks_pinning_unobserved",
            "Task pinnings not verified: the task exited first, or /proc could not be read",
            pinning.unobserved.clone(),
        );
        let planner_queue = gauge(
            &mut r,
            "retz_planner_queue_jobs",
            "QUEUED jobs the planner orders (keys only)",
        );
        let window_cached = gauge(
            &mut r,
            "retz_planner_window_jobs",
            "Queued jobs whose full record the planner holds for the next cycle",
        );
        let numa_local_ratio = FloatGauge::default();
        r.register(
            "retz_numa_local_ratio",
            "Share of launched tasks that are NUMA-local (1 when none launched yet)",
            numa_local_ratio.clone(),
        );
        let cycle = Histogram::new(CYCLE_BUCKETS_S);
        r.register_with_unit(
            "retz_placement_cycle",
            "Time of one planning cycle (offer conversion, placement, task building)",
            Unit::Seconds,
            cycle.clone(),
        );
        let queue_length = gauge(&mut r, "retz_queue_length", "Jobs waiting (QUEUED)");
        let running_jobs = gauge(&mut r, "retz_running_jobs", "Jobs STARTING or STARTED");
        let jobs = Family::<StateLabel, Gauge>::default();
        r.register("retz_jobs", "Stored jobs per state", jobs.clone());
        let stored_retries = gauge(
            &mut r,
            "retz_stored_job_retries",
            "Sum of retry counts over stored jobs (drops when gc deletes jobs)",
        );
        let cpus_used = gauge(&mut r, "retz_cpus_used", "CPUs granted to running jobs");
        let user_cpus = Family::<UserLabel, Gauge>::default();
        r.register(
            "retz_user_running_cpus",
            "CPUs granted to each user's STARTING and STARTED jobs (users with none are absent)",
            user_cpus.clone(),
        );
        let agents = gauge(
            &mut r,
            "retz_agents",
            "Agents connected: known from their offers, until the master reports them lost",
        );
        let offers_held = gauge(
            &mut r,
            "retz_offers_held",
            "Offers of the known agents' latest offer batches",
        );
        let offered_cpus = FloatGauge::default();
        r.register(
            "retz_offered_cpus",
            "CPUs free on the known agents, by their latest offers and the launches and ends since",
            offered_cpus.clone(),
        );
        let events_waiting = gauge(
            &mut r,
            "retz_events_waiting",
            "Mesos events waiting for the planner loop",
        );
        Metrics {
            registry: r,
            offers_received,
            offers_declined,
            tasks_launched,
            tasks_numa_local,
            retries,
            status_updates,
            planner_queue,
            window_cached,
            pinning,
            cycle,
            numa_local_ratio,
            queue_length,
            running_jobs,
            jobs,
            stored_retries,
            cpus_used,
            user_cpus,
            agents,
            offers_held,
            offered_cpus,
            events_waiting,
        }
    }

    /// Records one planning cycle's duration.
    pub fn observe_cycle(&self, d: Duration) {
        self.cycle.observe(d.as_secs_f64());
    }

    /// Counts one reported pinning.
    pub fn count_pinning(&self, outcome: Verification, mechanism: PinMechanism) {
        self.pinning
            .of(outcome)
            .get_or_create(&MechanismLabel {
                mechanism: mechanism.as_str().to_owned(),
            })
            .inc();
    }

    /// Adds the stored jobs' pinning outcomes (by wire names `(outcome, mechanism)`, as
    /// `Store::pinning_counts` gives them) to the counters.
    pub fn start_pinning(&self, counts: &BTreeMap<(String, String), u64>) {
        for ((outcome, mechanism), n) in counts {
            let family = match outcome.as_str() {
                "verified" => &self.pinning.verified,
                "drift" => &self.pinning.drift,
                _ => &self.pinning.unobserved,
            };
            family
                .get_or_create(&MechanismLabel {
                    mechanism: mechanism.clone(),
                })
                .inc_by(*n);
        }
    }

    /// Share of launched tasks that are NUMA-local (1 when none launched yet).
    pub fn numa_local_ratio(&self) -> f64 {
        let n = self.tasks_launched.get();
        if n == 0 {
            return 1.0;
        }
        self.tasks_numa_local.get() as f64 / n as f64
    }

    /// Sets the scrape-time series from the store's `counts` and the planner's `status`,
    /// then encodes every family as OpenMetrics text (ending in `# EOF`).
    pub fn render(&self, counts: &JobCounts, status: &PlannerStatus) -> String {
        self.queue_length
            .set(gauge_of(counts.get(JobState::Queued)));
        self.running_jobs.set(gauge_of(counts.running()));
        for st in &JobState::ALL[1..] {
            self.jobs
                .get_or_create(&StateLabel {
                    state: st.to_string(),
                })
                .set(gauge_of(counts.get(*st)));
        }
        self.stored_retries.set(gauge_of(counts.retries));
        self.cpus_used.set(gauge_of(counts.cpus_used));
        self.user_cpus.clear();
        for (user, cpus) in &counts.cpus_by_user {
            self.user_cpus
                .get_or_create(&UserLabel { user: user.clone() })
                .set(gauge_of(*cpus));
        }
        self.agents.set(gauge_of(status.agents));
        self.offers_held.set(gauge_of(status.offers));
        self.offered_cpus.set(status.offered_cpus);
        self.events_waiting.set(gauge_of(status.events_waiting));
        self.numa_local_ratio.set(self.numa_local_ratio());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &Metrics) -> String {
        m.render(&JobCounts::default(), &PlannerStatus::default())
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_in_seconds() {
        let m = Metrics::new();
        m.observe_cycle(Duration::from_micros(80));
        m.observe_cycle(Duration::from_millis(3));
        m.observe_cycle(Duration::from_secs(1));
        let text = render(&m);
        for line in [
            "# TYPE retz_placement_cycle_seconds histogram\n",
            "# UNIT retz_placement_cycle_seconds seconds\n",
            "retz_placement_cycle_seconds_bucket{le=\"0.0001\"} 1\n",
            "retz_placement_cycle_seconds_bucket{le=\"0.005\"} 2\n",
            "retz_placement_cycle_seconds_bucket{le=\"+Inf\"} 3\n",
            "retz_placement_cycle_seconds_count 3\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn counters_carry_total_and_gauges_the_planners_values() {
        let m = Metrics::new();
        m.planner_queue.set(1_000_000);
        m.tasks_launched.inc_by(4);
        m.tasks_numa_local.inc_by(3);
        m.retries.inc();
        let text = render(&m);
        for line in [
            "# TYPE retz_planner_queue_jobs gauge\n",
            "retz_planner_queue_jobs 1000000\n",
            "# TYPE retz_tasks_launched counter\n",
            "retz_tasks_launched_total 4\n",
            "retz_job_retries_total 1\n",
            "retz_numa_local_ratio 0.75\n",
            "retz_offers_received_total 0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert_eq!(Metrics::new().numa_local_ratio(), 1.0);
    }

    #[test]
    fn pinning_counters_start_from_the_store_and_count_reports_by_mechanism() {
        let m = Metrics::new();
        let key = |o: &str, mech: &str| (o.to_owned(), mech.to_owned());
        m.start_pinning(&BTreeMap::from([
            (key("verified", "cgroup-v1"), 5),
            (key("drift", "cgroup-v1"), 1),
            (key("exited", "affinity-only"), 2),
            (key("unverifiable", "affinity-only"), 1),
        ]));
        m.count_pinning(Verification::Verified, PinMechanism::CgroupV1);
        m.count_pinning(Verification::Verified, PinMechanism::CgroupV2);
        m.count_pinning(Verification::Drift, PinMechanism::CgroupV1);
        m.count_pinning(Verification::Exited, PinMechanism::AffinityOnly);
        let text = render(&m);
        for line in [
            "retz_tasks_pinning_verified_total{mechanism=\"cgroup-v1\"} 6\n",
            "retz_tasks_pinning_verified_total{mechanism=\"cgroup-v2\"} 1\n",
            "retz_tasks_pinning_drift_total{mechanism=\"cgroup-v1\"} 2\n",
            "retz_tasks_pinning_unobserved_total{mechanism=\"affinity-only\"} 4\n",
            "# TYPE retz_tasks_pinning_drift counter\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn the_text_format_names_counters_with_total_and_drops_openmetrics_lines() {
        let m = Metrics::new();
        m.tasks_launched.inc();
        m.observe_cycle(Duration::from_millis(1));
        let text = to_prometheus_text(&render(&m));
        for line in [
            "# HELP retz_tasks_launched_total Tasks launched.\n",
            "# TYPE retz_tasks_launched_total counter\nretz_tasks_launched_total 1\n",
            "# TYPE retz_placement_cycle_seconds histogram\n",
            "# TYPE retz_queue_length gauge\nretz_queue_length 0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            !text.contains("# UNIT") && !text.contains("# EOF"),
            "{text}"
        );
        assert!(
            !text.contains("# TYPE retz_tasks_launched counter"),
            "{text}"
        );
        assert!(wants_prometheus_text(Some("text/plain;version=0.0.4")));
        assert!(!wants_prometheus_text(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(!wants_prometheus_text(Some("*/*")));
        assert!(!wants_prometheus_text(None));
    }

    #[test]
    fn scrape_series_list_every_state_the_users_and_the_agents() {
        let m = Metrics::new();
        let mut counts = JobCounts::default();
        counts.by_state.insert(JobState::Queued, 3);
        counts.by_state.insert(JobState::Started, 2);
        counts.retries = 2;
        counts.cpus_used = 6;
        counts.cpus_by_user = BTreeMap::from([("alice".into(), 4), ("bob".into(), 2)]);
        let status = PlannerStatus {
            agents: 1,
            offers: 2,
            offered_cpus: 8.0,
            master: "local".into(),
            events_waiting: 0,
            ..PlannerStatus::default()
        };
        let text = m.render(&counts, &status);
        for line in [
            "retz_queue_length 3\n",
            "retz_running_jobs 2\n",
            "retz_jobs{state=\"QUEUED\"} 3\n",
            "retz_jobs{state=\"KILLED\"} 0\n",
            "retz_stored_job_retries 2\n",
            "retz_cpus_used 6\n",
            "retz_user_running_cpus{user=\"alice\"} 4\n",
            "retz_user_running_cpus{user=\"bob\"} 2\n",
            "retz_agents 1\n",
            "retz_offers_held 2\n",
            "retz_offered_cpus 8.0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("CREATED"), "{text}");
        // A user whose jobs ended is no longer listed.
        counts.cpus_by_user.remove("bob");
        let text = m.render(&counts, &status);
        assert!(!text.contains("user=\"bob\""), "{text}");
    }
}
