//! Placement engine benches.
//!
//! 1. `placement/decide`: one decision (a 4-CPU numa-prefer job) against 1,000 agents with
//!    4 NUMA nodes x 32 PUs each, partially used (goal: ≥ 200,000 decisions/s on one core);
//!    `placement/decide_commit_release` adds taking and giving back the CPUs.
//! 2. `placement/plan_cycle_10k`: one planning cycle, 10,000 queued jobs against 10,000
//!    agents with 8 NUMA nodes each (goal: < 100 ms), index build included.
//! 3. Memory per agent state and per queued job, printed before the benches run.
//!
//! Run: `cargo bench -p retz-benches --bench placement -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group};
use retz_placement::{
    AffinityPolicy, AgentState, JobRequest, Planner, PolicyConfig, Topology, plan,
};

mod common;
use common::{Lcg, cluster, cycle_times, queue};

fn bench_decide(c: &mut Criterion) {
    let topo = Arc::new(Topology::from_synthetic("pack:2 numa:2 core:16 pu:2", 65_536).unwrap());
    let mut rng = Lcg(7);
    let agents = cluster(&topo, 1000, 55, &mut rng);
    let cfg = PolicyConfig::default();
    let mut planner = Planner::new(&agents, &cfg);
    let job = JobRequest::new(1, 4, 4096).with_policy(AffinityPolicy::NumaPrefer);
    assert!(planner.decide(&job).is_ok());
    let mut g = c.benchmark_group("placement");
    g.throughput(criterion::Throughput::Elements(1));
    g.bench_function("decide", |b| {
        b.iter(|| black_box(planner.decide(black_box(&job))))
    });
    g.bench_function("decide_commit_release", |b| {
        b.iter(|| {
            let d = planner.decide(&job).unwrap();
            let agent = d.agent_index();
            let a = planner.commit(&job, d);
            assert!(planner.release(agent, &a));
            black_box(a)
        })
    });
    g.finish();
}

fn bench_cycle(c: &mut Criterion) {
    let topo = Arc::new(Topology::from_synthetic("pack:2 numa:4 core:8 pu:2", 32_768).unwrap());
    let mut rng = Lcg(11);
    let agents = cluster(&topo, 10_000, 40, &mut rng);
    let jobs = queue(10_000, &mut rng);
    let cfg = PolicyConfig::default();
    let p = plan(&agents, &jobs, 3600, &cfg);
    eprintln!(
        "plan_cycle_10k: {} placed, {} pending, {} reservations; {}",
        p.assignments.len(),
        p.pending.len(),
        p.reservations.len(),
        cycle_times(5, || plan(&agents, &jobs, 3600, &cfg)),
    );
    let mut g = c.benchmark_group("placement");
    g.sample_size(10);
    g.bench_function("plan_cycle_10k", |b| {
        b.iter(|| black_box(plan(black_box(&agents), black_box(&jobs), 3600, &cfg)))
    });
    g.finish();
}

/// Prints memory per agent state and per queued job (size_of + heap estimate).
fn memory_report() {
    let topo = Arc::new(Topology::from_synthetic("pack:2 numa:4 core:8 pu:2", 32_768).unwrap());
    let mut rng = Lcg(3);
    let agents = cluster(&topo, 1000, 40, &mut rng);
    let per_agent_state: usize = agents
        .iter()
        .map(|a| std::mem::size_of::<AgentState>() + a.heap_bytes())
        .sum::<usize>()
        / agents.len();
    let cfg = PolicyConfig::default();
    let planner = Planner::new(&agents, &cfg);
    let per_agent_planner = planner.heap_bytes() / agents.len();
    let topo_bytes = std::mem::size_of::<Topology>() + topo.heap_bytes();
    let jobs = queue(1000, &mut rng);
    let per_job = std::mem::size_of::<JobRequest>()
        + jobs.iter().map(JobRequest::heap_bytes).sum::<usize>() / jobs.len();
    eprintln!("memory (8 NUMA nodes x 16 PUs per agent):");
    eprintln!("  AgentState: {per_agent_state} B per agent (topology shared via Arc)");
    eprintln!("  Topology:   {topo_bytes} B per distinct machine type");
    eprintln!("  Planner working state + indexes: {per_agent_planner} B per agent per cycle");
    eprintln!("  JobRequest: {per_job} B per queued job");
}

criterion_group!(benches, bench_decide, bench_cycle);

fn main() {
    memory_report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
