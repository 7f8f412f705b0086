//! What the placement benches share: a reproducible random source, a partly used cluster
//! of identical agents, a mixed queue of jobs, and timing of whole cycles in wall and
//! on-CPU time (to tell work from waiting on a loaded machine). Included with `mod common;` by `placement.rs` and
//! `placement_epyc9654.rs`.

use std::sync::Arc;

use retz_placement::{
    AffinityPolicy, AgentState, CpuSet, JobRequest, ResourceRange, SmtPolicy, Topology,
};

/// Deterministic pseudo-random numbers (benches must be reproducible).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// `n` agents on `topo`, each with about `busy_pct` % of its cores (or single PUs) used and
/// memory used in proportion.
pub fn cluster(topo: &Arc<Topology>, n: usize, busy_pct: u64, rng: &mut Lcg) -> Vec<AgentState> {
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

pub fn queue(n: usize, rng: &mut Lcg) -> Vec<JobRequest> {
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

/// Time this thread has spent on a CPU (Linux `schedstat`), to tell work from waiting on a
/// loaded machine.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `cycle` `runs` times and describes the median wall time and on-CPU time (on a
/// loaded machine wall time includes waiting for a CPU).
pub fn cycle_times<T>(runs: usize, mut cycle: impl FnMut() -> T) -> String {
    let mut on_cpu = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..runs {
        let cpu0 = thread_cpu_ns();
        let t0 = std::time::Instant::now();
        std::hint::black_box(cycle());
        wall.push(t0.elapsed().as_secs_f64() * 1e3);
        if let Some(ns) = thread_cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a)) {
            on_cpu.push(ns as f64 / 1e6);
        }
    }
    on_cpu.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    let ms = |v: Option<&f64>| v.map_or("unknown".to_string(), |v| format!("{v:.1} ms"));
    format!(
        "{runs} cycles: wall median {}, on-CPU median {} (min {})",
        ms(wall.get(runs / 2)),
        ms(on_cpu.get(runs / 2)),
        ms(on_cpu.first()),
    )
}
