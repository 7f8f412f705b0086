//! Invariants of the engine over random inputs (proptest) and byte-identical outputs.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use retz_placement::{AffinityPolicy, PolicyConfig, ResourceRange};
use retz_sim::engine::{SimOptions, SimResult, simulate};
use retz_sim::policy::NamedPolicy;
use retz_sim::report::write_run;
use retz_sim::workload::{Format, Job, Workload};
use retz_sim::{Cluster, ClusterOptions, load_cluster, load_policy, run_policies};

/// Checks conservation: every job placed or unplaced with a reason; no CPU of a host is
/// held by two jobs at once; busy CPUs never exceed the capacity.
fn check_conservation(c: &Cluster, w: &Workload, r: &SimResult) {
    assert_eq!(r.outcomes.len(), w.jobs.len());
    // (host, cpu) -> (start, end, job id) of every job that held it.
    type Holds = BTreeMap<(u32, u32), Vec<(u64, u64, u64)>>;
    let mut per_cpu: Holds = BTreeMap::new();
    let mut sweep: Vec<(u64, i64)> = Vec::new();
    for o in &r.outcomes {
        let j = &w.jobs[o.job as usize];
        match (&o.placed, &o.unplaced) {
            (Some(p), None) => {
                assert!(p.start_s >= j.submit_s, "job {} starts before submit", j.id);
                let n = p.cpuset.len() as u32;
                assert!(n >= j.cpus.min, "job {} got {n} CPUs", j.id);
                let topo = &c.hosts[p.host as usize].topology;
                assert!(p.cpuset.is_subset(topo.cpus()));
                let end = p.start_s + j.runtime_s;
                if end > p.start_s {
                    for cpu in p.cpuset.iter() {
                        per_cpu
                            .entry((p.host, cpu.0))
                            .or_default()
                            .push((p.start_s, end, j.id));
                    }
                    sweep.push((p.start_s, i64::from(n)));
                    sweep.push((end, -i64::from(n)));
                }
            }
            (None, Some(why)) => assert!(!why.is_empty()),
            other => panic!("job {}: placed and reason {:?}", j.id, other),
        }
    }
    for ((h, cpu), mut v) in per_cpu {
        v.sort_unstable();
        for p in v.windows(2) {
            assert!(
                p[0].1 <= p[1].0,
                "host {h} CPU {cpu}: jobs {} and {} overlap",
                p[0].2,
                p[1].2
            );
        }
    }
    // Ends before starts at the same instant.
    sweep.sort_unstable_by_key(|&(t, d)| (t, d));
    let cap = c.total_cpus() as i64;
    let mut busy = 0i64;
    for (_, d) in sweep {
        busy += d;
        assert!((0..=cap).contains(&busy), "busy {busy} of {cap}");
    }
    for s in &r.samples {
        assert_eq!(s.held_cpus + s.free_cpus, c.total_cpus());
        assert!(s.free_on_partial <= s.free_cpus);
    }
    assert!(r.samples.windows(2).all(|p| p[0].t <= p[1].t));
}

fn job_strategy() -> impl Strategy<Value = Job> {
    (
        0u64..60,
        0u64..40,
        1u32..12,
        0u32..4,
        0u64..3000,
        0usize..4,
        -3i32..4,
    )
        .prop_map(|(submit, run, cpus, extra, mem, pol, prio)| {
            let mut j = Job::new(0, submit, run, cpus, mem);
            if extra > 0 {
                j.cpus = ResourceRange::between(cpus, cpus + extra);
            }
            j.policy = AffinityPolicy::ALL[pol];
            j.priority = prio;
            j
        })
}

fn workload(jobs: Vec<Job>) -> Workload {
    let mut jobs: Vec<Job> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, mut j)| {
            j.id = i as u64 + 1;
            j
        })
        .collect();
    jobs.sort_by_key(|j| (j.submit_s, j.id));
    Workload {
        source: "prop".into(),
        format: Format::Jsonl,
        jobs,
        header: vec![],
        notes: vec![],
        skipped: Default::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn every_job_is_accounted_for_and_no_cpu_is_double_booked(
        jobs in proptest::collection::vec(job_strategy(), 1..40),
        policy in 0usize..PolicyConfig::BUILTIN_NAMES.len(),
        interval in prop_oneof![Just(0u64), 1u64..9],
        starve in prop_oneof![Just(300u64), Just(0u64), Just(5u64)],
    ) {
        let c = load_cluster(
            "1x@pack:1 numa:2 core:2 pu:2,2x@core:4",
            &ClusterOptions { node_mem_mb: 1024 },
        ).unwrap();
        let w = workload(jobs);
        let mut p = load_policy(PolicyConfig::BUILTIN_NAMES[policy]).unwrap();
        p.config.starvation.reserve_after_s = starve;
        let opts = SimOptions { cycle_interval_s: interval, measure_latency: false, window: None, ..SimOptions::default() };
        let r = simulate(&c, &w, &p, &opts).unwrap();
        check_conservation(&c, &w, &r);
        // Deterministic.
        prop_assert_eq!(&simulate(&c, &w, &p, &opts).unwrap(), &r);
        let s = retz_sim::metrics::summarize(&w, c.total_cpus(), &p, &r);
        prop_assert!(s.utilization_mean <= 1.0 + 1e-9);
        prop_assert_eq!(s.placed + s.unplaced, s.jobs);
        prop_assert_eq!(s.unplaced_reasons.values().sum::<u64>(), s.unplaced);
    }
}

fn all_policies() -> Vec<NamedPolicy> {
    PolicyConfig::BUILTIN_NAMES
        .iter()
        .map(|n| load_policy(n).unwrap())
        .collect()
}

#[test]
fn outputs_are_byte_identical_across_runs_and_thread_counts() {
    let Some(trace) = common::hpc2n() else { return };
    let c = load_cluster("30x@pack:2 numa:2 core:2 pu:2", &ClusterOptions::default()).unwrap();
    let w = retz_sim::load_workload(&trace, None, &Default::default()).unwrap();
    let policies = all_policies();
    let opts = SimOptions::default();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for (k, d) in dirs.iter().enumerate() {
        let done = run_policies(&c, &w, &policies, &opts, k + 1).unwrap();
        for (r, _) in &done {
            check_conservation(&c, &w, r);
        }
        let results: Vec<SimResult> = done.into_iter().map(|x| x.0).collect();
        write_run(d.path(), &c, &w, &policies, &results, &opts, 400, None).unwrap();
    }
    let a = common::dir_bytes(dirs[0].path());
    let b = common::dir_bytes(dirs[1].path());
    let names: Vec<&str> = a.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names.len(), 4 + 2 + 7, "{names:?}");
    assert!(names.contains(&"summary.json") && names.contains(&"jobs-first-fit.csv"));
    common::assert_same_files(&a, &b);
    let summary: serde_json::Value =
        serde_json::from_slice(&a.iter().find(|f| f.0 == "summary.json").unwrap().1).unwrap();
    let rows = summary.as_array().unwrap();
    assert_eq!(rows.len(), 7);
    for key in [
        "policy",
        "jobs",
        "placed",
        "makespan_s",
        "wait_p50_s",
        "wait_p95_s",
        "wait_p99_s",
        "bounded_slowdown_mean",
        "utilization_mean",
        "numa_local_ratio",
        "decision_latency_p99_us",
    ] {
        assert!(rows.iter().all(|r| r.get(key).is_some()), "{key}");
    }
    assert!(rows.iter().all(|r| r["decision_latency_p99_us"].is_null()));
    let run: serde_json::Value =
        serde_json::from_slice(&a.iter().find(|f| f.0 == "run.json").unwrap().1).unwrap();
    assert_eq!(run["workload"]["header"][3], "Acknowledge: Ake Sandgren");
}

#[test]
fn measured_latency_fills_the_figure() {
    let c = load_cluster("2x@pack:1 numa:2 core:2 pu:2", &ClusterOptions::default()).unwrap();
    let w = workload((0..20).map(|i| Job::new(0, i, 5, 2, 0)).collect());
    let p = load_policy("numa-prefer").unwrap();
    let opts = SimOptions {
        cycle_interval_s: 0,
        measure_latency: true,
        window: None,
        ..SimOptions::default()
    };
    let r = simulate(&c, &w, &p, &opts).unwrap();
    assert_eq!(
        r.cycle_latency_ns.as_ref().map(Vec::len),
        Some(r.cycles as usize)
    );
    let s = retz_sim::metrics::summarize(&w, c.total_cpus(), &p, &r);
    assert!(s.decision_latency_p99_us.is_some_and(|v| v >= 0.0));
}
