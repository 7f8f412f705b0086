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
    AffinityPolicy, AgentState, CpuSet, JobRequest, Planner, PolicyConfig, ResourceRange,
    SmtPolicy, Topology, plan,
};

/// Deterministic pseudo-random numbers (benches must be reproducible).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// `n` agents on `topo`, each with about `busy_pct` % of its cores (or single PUs) used and
/// memory used in proportion.
fn cluster(topo: &Arc<Topology>, n: usize, busy_pct: u64, rng: &mut Lcg) -> Vec<AgentState> {
    (0..n)
        .map(|i| {
            let mut used = CpuSet::new();
            for core in topo.cores() {
                let r = rng.next(100);
                if r < busy_pct {
                    used.union_with(core);
                } else if r < busy_pct + 10 {
                    // A half-used core: one sibling busy.
                    used.insert(core.first().unwrap());
                }
            }
            let free = topo.cpus().difference(&used);
            let mem = topo
                .nodes()
                .iter()
                .map(|nd| {
                    let free_frac = nd.cpus().intersection_len(&free) as u64 * 100
                        / nd.cpus().len().max(1) as u64;
                    nd.memory_mb() * free_frac / 100
                })
                .collect();
            AgentState::new(
                format!("agent-{i}"),
                format!("host-{i}.example"),
                topo.clone(),
                free,
                mem,
                0,
                true,
            )
            .unwrap()
        })
        .collect()
}

fn queue(n: usize, rng: &mut Lcg) -> Vec<JobRequest> {
    (0..n)
        .map(|i| {
            let cpus = [1u32, 2, 4, 4, 8, 8, 12, 16, 24, 32][rng.next(10) as usize];
            let policy = match rng.next(10) {
                0..=4 => AffinityPolicy::NumaPrefer,
                5..=7 => AffinityPolicy::NumaStrict,
                8 => AffinityPolicy::Spread,
                _ => AffinityPolicy::None,
            };
            let mut j = JobRequest::new(i as u64, cpus, 512 * u64::from(cpus))
                .with_policy(policy)
                .with_priority(rng.next(5) as i32 - 2)
                .submitted(rng.next(3600));
            if rng.next(10) == 0 {
                j.cpus = ResourceRange::between(cpus, cpus * 2);
            }
            if rng.next(20) == 0 {
                j.smt = SmtPolicy::Pack;
            }
            if rng.next(100) == 0 {
                j.numanodes = Some(1);
            }
            j
        })
        .collect()
}

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
    // On a loaded machine wall time includes waiting for a CPU; report on-CPU time too.
    let mut on_cpu = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..5 {
        let cpu0 = thread_cpu_ns();
        let t0 = std::time::Instant::now();
        black_box(plan(&agents, &jobs, 3600, &cfg));
        wall.push(t0.elapsed().as_secs_f64() * 1e3);
        if let Some(ns) = thread_cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a)) {
            on_cpu.push(ns as f64 / 1e6);
        }
    }
    on_cpu.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    eprintln!(
        "plan_cycle_10k: {} placed, {} pending, {} reservations; 5 cycles: wall median {:.1} ms, on-CPU median {} (min {})",
        p.assignments.len(),
        p.pending.len(),
        p.reservations.len(),
        wall[2],
        on_cpu
            .get(2)
            .map_or("unknown".to_string(), |v| format!("{v:.1} ms")),
        on_cpu
            .first()
            .map_or("unknown".to_string(), |v| format!("{v:.1} ms")),
    );
    let mut g = c.benchmark_group("placement");
    g.sample_size(10);
    g.bench_function("plan_cycle_10k", |b| {
        b.iter(|| black_box(plan(black_box(&agents), black_box(&jobs), 3600, &cfg)))
    });
    g.finish();
}

/// Time this thread has spent on a CPU (Linux `schedstat`), to tell work from waiting on a
/// loaded machine.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
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
