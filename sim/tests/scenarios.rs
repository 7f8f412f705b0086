//! Small scenarios whose waits, utilisation and NUMA figures are computed by hand here.

use retz_placement::AffinityPolicy;
use retz_sim::engine::{SimOptions, simulate};
use retz_sim::metrics::summarize;
use retz_sim::workload::{Format, Job, Workload};
use retz_sim::{ClusterOptions, load_cluster, load_policy};

fn workload(jobs: Vec<Job>) -> Workload {
    let mut jobs = jobs;
    jobs.sort_by_key(|j| (j.submit_s, j.id));
    Workload {
        source: "test".into(),
        format: Format::Jsonl,
        jobs,
        header: vec![],
        notes: vec![],
        skipped: Default::default(),
    }
}

fn run(spec: &str, w: &Workload, policy: &str, interval: u64) -> retz_sim::Summary {
    run_window(spec, w, policy, interval, None)
}

fn run_window(
    spec: &str,
    w: &Workload,
    policy: &str,
    interval: u64,
    window: Option<usize>,
) -> retz_sim::Summary {
    let c = load_cluster(spec, &ClusterOptions { node_mem_mb: 4096 }).unwrap();
    let p = load_policy(policy).unwrap();
    let r = simulate(
        &c,
        w,
        &p,
        &SimOptions {
            cycle_interval_s: interval,
            measure_latency: false,
            window,
            ..SimOptions::default()
        },
    )
    .unwrap();
    summarize(w, c.total_cpus(), &p, &r)
}

#[test]
fn three_full_host_jobs_queue_behind_each_other() {
    // One 4-CPU host, three 4-CPU jobs of 10 s submitted at 0: they run one after the
    // other, so they wait 0, 10 and 20 s; the host is busy the whole 30 s.
    let w = workload((1..=3).map(|i| Job::new(i, 0, 10, 4, 0)).collect());
    for policy in [
        "numa-prefer",
        "numa-strict",
        "spread",
        "none",
        "first-fit",
        "node-blind",
    ] {
        let s = run("1x@core:4", &w, policy, 0);
        assert_eq!((s.jobs, s.placed, s.unplaced), (3, 3, 0), "{policy}");
        assert_eq!(s.makespan_s, 30, "{policy}");
        assert_eq!(s.wait_p50_s, 10, "{policy}");
        assert_eq!(s.wait_p95_s, 20, "{policy}");
        assert_eq!(s.wait_p99_s, 20, "{policy}");
        assert_eq!(s.wait_mean_s, 10.0, "{policy}");
        // Slowdowns (wait + 10) / 10 = 1, 2, 3.
        assert_eq!(s.bounded_slowdown_mean, 2.0, "{policy}");
        assert_eq!(s.utilization_mean, 1.0, "{policy}");
        // One node fully used or fully free at every instant: nothing stranded.
        assert_eq!(s.fragmentation_mean, 0.0, "{policy}");
        assert_eq!(s.cycles, 3, "{policy}");
    }
}

#[test]
fn a_timer_driven_server_frees_cpus_at_its_next_tick() {
    // Same jobs, cycles every 7 s: starts at 0, 14 (first tick at or after 10), 28
    // (first tick at or after 24); the last ends at 38.
    let w = workload((1..=3).map(|i| Job::new(i, 0, 10, 4, 0)).collect());
    let s = run("1x@core:4", &w, "numa-prefer", 7);
    assert_eq!(s.makespan_s, 38);
    assert_eq!((s.wait_p50_s, s.wait_p99_s), (14, 28));
    assert_eq!(s.wait_mean_s, 14.0);
    // 3 jobs x 4 CPUs x 10 s over 4 CPUs x 38 s.
    assert_eq!(s.utilization_mean, ((120.0 / 152.0) * 1e6f64).round() / 1e6);
    // Slowdowns 1, 2.4, 3.8.
    assert_eq!(s.bounded_slowdown_mean, 2.4);
}

#[test]
fn small_jobs_share_a_host_and_short_runtimes_are_bounded() {
    // Two 2-CPU jobs fit side by side on one 4-CPU host; a third waits for the first
    // (runtime 4 s, so its slowdown is bounded by 10 s: (4+0)/10 -> 1).
    let w = workload(vec![
        Job::new(1, 0, 4, 2, 0),
        Job::new(2, 0, 20, 2, 0),
        Job::new(3, 1, 5, 2, 0),
    ]);
    let s = run("1x@core:4", &w, "numa-prefer", 0);
    // Job 3 arrives at 1, starts at 4 when job 1 ends: waits 0, 0, 3.
    assert_eq!(s.wait_p99_s, 3);
    assert_eq!(s.wait_mean_s, 1.0);
    // Slowdowns: 1, 1, max(1, (3+5)/10) = 1.
    assert_eq!(s.bounded_slowdown_mean, 1.0);
    assert_eq!(s.makespan_s, 20);
    // CPU-seconds 2*4 + 2*20 + 2*5 = 58 over 4 CPUs x 20 s.
    assert_eq!(s.utilization_mean, 0.725);
}

#[test]
fn numa_locality_first_fit_splits_a_job_across_nodes() {
    // Host: 2 NUMA nodes of 2 CPUs (0-1 and 2-3). Job 1 takes 1 CPU, job 2 wants 2.
    // first-fit gives job 2 the lowest free ids, 1-2: two nodes, not local.
    // numa-prefer puts job 2 on the empty node: local. Both jobs fit one node.
    let w = workload(vec![Job::new(1, 0, 100, 1, 0), Job::new(2, 0, 100, 2, 0)]);
    let spec = "1x@pack:1 numa:2 core:2 pu:1";
    let ff = run(spec, &w, "first-fit", 0);
    assert_eq!((ff.numa_fit_jobs, ff.numa_local_jobs), (2, 1));
    assert_eq!(ff.numa_local_ratio, Some(0.5));
    assert_eq!(ff.cross_node_jobs, 1);
    let np = run(spec, &w, "numa-prefer", 0);
    assert_eq!((np.numa_fit_jobs, np.numa_local_jobs), (2, 2));
    assert_eq!(np.numa_local_ratio, Some(1.0));
    assert_eq!(np.cross_node_jobs, 0);
    // Fragmentation with numa-prefer: node 0 has 1 of 2 CPUs free (partly used), node 1
    // is full: the only free CPU is stranded for the whole run -> 1.0, one partial node.
    assert_eq!(np.fragmentation_mean, 1.0);
    assert_eq!(np.partial_nodes_mean, 1.0);
    // A 4-CPU job never fits one node: it is not counted in the ratio.
    let w = workload(vec![Job::new(1, 0, 10, 4, 0)]);
    let s = run(spec, &w, "numa-prefer", 0);
    assert_eq!(
        (s.placed, s.numa_fit_jobs, s.numa_local_ratio),
        (1, 0, None)
    );
}

#[test]
fn jobs_that_never_fit_are_reported_with_the_packers_reason() {
    let mut strict = Job::new(3, 0, 10, 3, 0);
    strict.policy = AffinityPolicy::NumaStrict;
    let w = workload(vec![
        Job::new(1, 0, 10, 8, 0),
        Job::new(2, 0, 10, 2, 0),
        strict,
        Job::new(4, 0, 10, 1, 1_000_000),
    ]);
    let spec = "1x@pack:1 numa:2 core:2 pu:1";
    let s = run(spec, &w, "retz", 0);
    assert_eq!((s.placed, s.unplaced), (1, 3));
    let reasons: Vec<&String> = s.unplaced_reasons.keys().collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("needs 8 CPUs") && r.contains("largest agent has 4 CPUs")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("in one NUMA node")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("1000000 MB")),
        "{reasons:?}"
    );
    // first-fit counts only: the numa-strict 3-CPU job fits by counts there.
    let s = run(spec, &w, "first-fit", 0);
    assert_eq!((s.placed, s.unplaced), (2, 2));
    assert_eq!(s.unplaced_reasons.values().sum::<u64>(), 2);
}

#[test]
fn zero_runtime_jobs_and_gaps() {
    let w = workload(vec![
        Job::new(1, 5, 0, 4, 0),
        Job::new(2, 5, 10, 4, 0),
        Job::new(3, 100, 10, 4, 0),
    ]);
    let s = run("1x@core:4", &w, "numa-prefer", 0);
    assert_eq!(s.placed, 3);
    // Job 1 runs 0 s at 5, job 2 starts at 5 too (same instant, freed in the next batch).
    assert_eq!(s.wait_max_s, 0);
    assert_eq!(s.makespan_s, 105);
    // 4*10 + 4*10 CPU-seconds over 4 CPUs x 105 s.
    assert_eq!(s.utilization_mean, ((80.0 / 420.0) * 1e6f64).round() / 1e6);
}

#[test]
fn the_planner_window_limits_each_cycle_to_the_most_urgent_jobs() {
    // One 2-CPU host, three 1-CPU jobs of 10 s at 0. The whole queue: two start at 0,
    // the third at 10 (waits 0, 0, 10). A window of one job, as a server with
    // planner.window = 1 plans: one start per cycle, and cycles come with events, so
    // they start at 0, 10, 20 (waits 0, 10, 20).
    let w = workload((1..=3).map(|i| Job::new(i, 0, 10, 1, 0)).collect());
    let whole = run_window("1x@core:2", &w, "numa-prefer", 0, None);
    assert_eq!(
        (whole.wait_mean_s, whole.wait_p99_s, whole.makespan_s),
        // summary figures are rounded to 6 decimals
        (3.333333, 10, 20)
    );
    let one = run_window("1x@core:2", &w, "numa-prefer", 0, Some(1));
    assert_eq!(
        (one.wait_mean_s, one.wait_p99_s, one.makespan_s),
        (10.0, 20, 30)
    );
    // A window as large as the queue changes nothing.
    assert_eq!(
        run_window("1x@core:2", &w, "numa-prefer", 0, Some(3)),
        whole
    );
    // The window takes the most urgent job, not the oldest: job 3 (priority -5) runs
    // first, then 1 and 2 in arrival order.
    let mut jobs: Vec<Job> = (1..=3).map(|i| Job::new(i, 0, 10, 1, 0)).collect();
    jobs[2].priority = -5;
    let w = workload(jobs);
    let c = load_cluster("1x@core:2", &ClusterOptions { node_mem_mb: 4096 }).unwrap();
    let p = load_policy("numa-prefer").unwrap();
    let opts = SimOptions {
        cycle_interval_s: 0,
        measure_latency: false,
        window: Some(1),
        ..SimOptions::default()
    };
    let r = simulate(&c, &w, &p, &opts).unwrap();
    let starts: Vec<(u64, u64)> = r
        .outcomes
        .iter()
        .map(|o| {
            (
                w.jobs[o.job as usize].id,
                o.placed.as_ref().unwrap().start_s,
            )
        })
        .collect();
    assert_eq!(starts, [(1, 10), (2, 20), (3, 0)]);
}

#[test]
fn l3_local_ratio_counts_jobs_kept_inside_one_cache_domain() {
    // One node with two L3 domains of 4 CPUs. Two 3-CPU jobs at once: packing by cache
    // puts each in its own domain; first-fit gives the second CPUs 3-5, across both.
    let w = workload((1..=2).map(|i| Job::new(i, 0, 100, 3, 0)).collect());
    let spec = "1x@pack:1 numa:1 l3:2 core:4 pu:1";
    let retz = run(spec, &w, "numa-prefer", 0);
    assert_eq!(retz.placed, 2);
    assert_eq!(retz.l3_fit_jobs, Some(2));
    assert_eq!(retz.l3_local_jobs, Some(2));
    assert_eq!(retz.l3_local_ratio, Some(1.0));
    let ff = run(spec, &w, "first-fit", 0);
    assert_eq!(ff.l3_fit_jobs, Some(2));
    assert!(ff.l3_local_ratio.unwrap() < 1.0, "{ff:?}");
    assert!(retz_sim::report::table(&[retz, ff]).contains("l3_local_ratio"));

    // Without split caches the figures are absent, in the summary and in its JSON.
    let flat = run("1x@core:8", &w, "numa-prefer", 0);
    assert_eq!(flat.l3_local_ratio, None);
    let json = serde_json::to_value(&flat).unwrap();
    assert!(json.get("l3_local_ratio").is_none(), "{json}");
    assert!(json.get("l3_fit_jobs").is_none(), "{json}");
    assert!(!retz_sim::report::table(&[flat]).contains("l3_local_ratio"));
}

#[test]
#[cfg(feature = "hwloc")]
fn gpu_local_ratio_counts_gpu_jobs_whose_cpus_are_on_their_gpus_node() {
    // The DGX-2 export: node 0 holds CPUs 0-1 and GPUs 0-7, node 1 CPUs 24-25 and GPUs
    // 8-15. Job 1 (2 CPUs, no GPU) fills one node; job 2 (1 CPU, 1 GPU) follows. Retz
    // puts job 2's CPU and GPU on one node; first-fit takes CPU 24 and GPU 0.
    let topo = format!(
        "{}/../../shared/topologies/4intel64-2p-16gpu-dgx2.xml",
        env!("CARGO_MANIFEST_DIR")
    );
    let spec = format!("1x@{topo};gpus=16");
    let mut gpu = Job::new(2, 1, 100, 1, 0);
    gpu.gpus = 1;
    let w = workload(vec![Job::new(1, 0, 100, 2, 0), gpu]);
    let retz = run(&spec, &w, "numa-prefer", 0);
    assert_eq!(retz.placed, 2);
    assert_eq!(retz.gpu_jobs, Some(1));
    assert_eq!(retz.gpu_local_jobs, Some(1));
    assert_eq!(retz.gpu_local_ratio, Some(1.0));
    let ff = run(&spec, &w, "first-fit", 0);
    assert_eq!(ff.gpu_jobs, Some(1));
    assert_eq!(ff.gpu_local_ratio, Some(0.0), "{ff:?}");
    assert!(retz_sim::report::table(&[retz, ff]).contains("gpu_local_ratio"));

    // Without GPU jobs the figures are absent, in the summary and in its JSON.
    let plain = workload(vec![Job::new(1, 0, 100, 2, 0)]);
    let none = run(&spec, &plain, "numa-prefer", 0);
    assert_eq!(none.gpu_local_ratio, None);
    let json = serde_json::to_value(&none).unwrap();
    for key in ["gpu_jobs", "gpu_local_jobs", "gpu_local_ratio"] {
        assert!(json.get(key).is_none(), "{json}");
    }
    assert!(!retz_sim::report::table(&[none]).contains("gpu_local_ratio"));
}
