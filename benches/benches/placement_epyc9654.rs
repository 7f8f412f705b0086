//! Placement on 1,000 AMD EPYC 9654 agents, issue #18's goals. Every agent is the shared
//! hwloc export `384amd64-2p12l3-epyc9654.xml` (2 sockets, 384 PUs, 24 L3 domains of 8
//! cores) loaded by `retz_topology`, the probe's mapping; the export has no memory sizes,
//! so the machine is given 1.5 TiB.
//!
//! 1. `placement_epyc9654/decide/{4,16,64}cpus`: one decision (agent and CPU ids) for a
//!    numa-prefer job of 4 CPUs, one L3 domain's 16 and four L3 domains' 64, against the
//!    1,000 agents with about 55 % of their cores used (goal: < 5 µs); also printed as the
//!    wall and on-CPU time of 10,000 decisions, since a shared machine inflates wall time.
//! 2. `placement_epyc9654/plan_cycle_10k`: one planning cycle (`retz_placement::plan`),
//!    10,000 queued jobs of mixed sizes and policies against the 1,000 agents with about
//!    40 % used, index build included (goal: < 100 ms).
//!
//! Run: `cargo bench -p retz-benches --bench placement_epyc9654 -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group};
use retz_placement::{AffinityPolicy, JobRequest, Planner, PolicyConfig, Topology, plan};

mod common;
use common::{Lcg, cluster, cycle_times, queue};

const AGENTS: usize = 1_000;

fn epyc9654() -> Arc<Topology> {
    let shared = std::env::var_os("RETZ_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        PathBuf::from,
    );
    let path = shared.join("topologies/384amd64-2p12l3-epyc9654.xml");
    let loaded = retz_topology::hwloc::load_xml_file(&path)
        .unwrap_or_else(|e| panic!("{e} (set RETZ_SHARED_DIR to the shared/ directory)"));
    // The export records no memory sizes: give the machine 1.5 TiB, spread over its nodes.
    let mut spec = loaded.spec;
    let nodes = spec.nodes.len() as u64;
    for node in spec.nodes.iter_mut().filter(|n| n.memory_mb == 0) {
        node.memory_mb = 1_536 * 1024 / nodes;
    }
    let topology = Topology::new(spec).unwrap();
    let caches: usize = topology.nodes().iter().map(|n| n.num_caches()).sum();
    assert_eq!(
        (topology.cpus().len(), caches),
        (384, 24),
        "{}",
        path.display()
    );
    Arc::new(topology)
}

fn bench_decide(c: &mut Criterion) {
    let topo = epyc9654();
    let agents = cluster(&topo, AGENTS, 55, &mut Lcg(7));
    let cfg = PolicyConfig::default();
    let planner = Planner::new(&agents, &cfg);
    let mut g = c.benchmark_group("placement_epyc9654/decide");
    g.throughput(criterion::Throughput::Elements(1));
    for cpus in [4u32, 16, 64] {
        let job = JobRequest::new(1, cpus, 1024 * u64::from(cpus))
            .with_policy(AffinityPolicy::NumaPrefer);
        let d = planner.decide(&job).expect("the job fits the cluster");
        assert_eq!(d.cpus().len(), cpus as usize);
        eprintln!(
            "placement_epyc9654/decide/{cpus}cpus, 10,000 decisions: {}",
            cycle_times(5, || (0..10_000)
                .filter(|_| planner.decide(black_box(&job)).is_ok())
                .count())
        );
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{cpus}cpus")),
            &job,
            |b, job| b.iter(|| black_box(planner.decide(black_box(job)))),
        );
    }
    g.finish();
}

fn bench_cycle(c: &mut Criterion) {
    let topo = epyc9654();
    let mut rng = Lcg(11);
    let agents = cluster(&topo, AGENTS, 40, &mut rng);
    let jobs = queue(10_000, &mut rng);
    let cfg = PolicyConfig::default();
    let p = plan(&agents, &jobs, 3600, &cfg);
    eprintln!(
        "placement_epyc9654/plan_cycle_10k: {} placed, {} pending, {} reservations; {}",
        p.assignments.len(),
        p.pending.len(),
        p.reservations.len(),
        cycle_times(5, || plan(&agents, &jobs, 3600, &cfg)),
    );
    let mut g = c.benchmark_group("placement_epyc9654");
    g.sample_size(10);
    g.bench_function("plan_cycle_10k", |b| {
        b.iter(|| black_box(plan(black_box(&agents), black_box(&jobs), 3600, &cfg)))
    });
    g.finish();
}

criterion_group!(benches, bench_decide, bench_cycle);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
