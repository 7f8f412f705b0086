//! Shared helpers for the placement integration tests: synthetic topologies with distance
//! matrices, agents with some CPUs already used, and the plan invariant checker.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use retz_placement::{
    AffinityPolicy, AgentState, Assignment, CpuId, CpuSet, GpuSet, JobRequest, NodeId, Plan,
    Topology,
};

/// A synthetic topology with a distance matrix: `local` on the diagonal, `same` between
/// nodes of one package, `cross` otherwise.
pub fn with_distances(desc: &str, mem: u64, local: u32, same: u32, cross: u32) -> Arc<Topology> {
    let base = Topology::from_synthetic(desc, mem).unwrap();
    let mut spec = base.spec().clone();
    let packages: Vec<u32> = spec.nodes.iter().map(|n| n.package).collect();
    for (i, n) in spec.nodes.iter_mut().enumerate() {
        n.distances = packages
            .iter()
            .enumerate()
            .map(|(j, p)| {
                if i == j {
                    local
                } else if *p == packages[i] {
                    same
                } else {
                    cross
                }
            })
            .collect();
    }
    Arc::new(Topology::new(spec).unwrap())
}

/// 2 sockets x 2 NUMA nodes, 8 cores x SMT-2 per node (64 PUs), SLIT 10/12/21.
pub fn dual_socket_2numa_smt2() -> Arc<Topology> {
    with_distances("pack:2 numa:2 core:8 pu:2", 32_768, 10, 12, 21)
}

/// AMD-like: 2 sockets x 4 NUMA nodes (NPS4), 4 cores x SMT-2 per node, SLIT 10/12/32.
pub fn amd_8node() -> Arc<Topology> {
    with_distances("pack:2 numa:4 core:4 pu:2", 16_384, 10, 12, 32)
}

pub fn cs(s: &str) -> CpuSet {
    s.parse().unwrap()
}

/// An agent whose `used` CPUs are taken (memory untouched).
pub fn agent_using(id: &str, topo: &Arc<Topology>, used: &str) -> AgentState {
    let free = topo.cpus().difference(&cs(used));
    let mem = topo.nodes().iter().map(|n| n.memory_mb()).collect();
    AgentState::new(
        id,
        format!("{id}.example"),
        topo.clone(),
        free,
        mem,
        0,
        true,
    )
    .unwrap()
}

pub fn job(id: u64, cpus: u32, mem: u64, policy: AffinityPolicy) -> JobRequest {
    JobRequest::new(id, cpus, mem).with_policy(policy)
}

/// Whether every CPU of the assignment comes with all its SMT siblings.
pub fn whole_cores(topo: &Topology, cpus: &CpuSet) -> bool {
    cpus.iter()
        .all(|c| topo.siblings(c).unwrap().is_subset(cpus))
}

/// The physical cores (by first sibling) an assignment touches.
pub fn cores_of(topo: &Topology, cpus: &CpuSet) -> BTreeSet<CpuId> {
    cpus.iter()
        .map(|c| topo.siblings(c).unwrap().first().unwrap())
        .collect()
}

/// Checks every invariant a plan must keep against the agents it was made for, and that
/// the assignments can be applied to the agent states. `strict_one_node` is false for the
/// first-fit baseline (counts only).
pub fn check_plan(agents: &[AgentState], queue: &[JobRequest], plan: &Plan, strict_one_node: bool) {
    let by_id: BTreeMap<&str, usize> = agents
        .iter()
        .enumerate()
        .rev()
        .map(|(i, a)| (a.agent_id(), i))
        .collect();
    let jobs: BTreeMap<u64, &JobRequest> = queue.iter().rev().map(|j| (j.job_id, j)).collect();
    let mut states = agents.to_vec();
    let mut given: BTreeMap<usize, CpuSet> = BTreeMap::new();
    let mut given_gpus: BTreeMap<usize, GpuSet> = BTreeMap::new();
    // Every queued job id is accounted for exactly once (duplicates appear as pending).
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    for a in &plan.assignments {
        *count.entry(a.job_id).or_default() += 1;
    }
    for p in &plan.pending {
        *count.entry(p.job_id).or_default() += 1;
    }
    let mut expect: BTreeMap<u64, usize> = BTreeMap::new();
    for j in queue {
        *expect.entry(j.job_id).or_default() += 1;
    }
    assert_eq!(count, expect, "every queued job is placed or pending, once");
    let placed: BTreeSet<u64> = plan.assignments.iter().map(|a| a.job_id).collect();
    assert_eq!(placed.len(), plan.assignments.len(), "a job placed twice");
    for a in &plan.assignments {
        let ai = by_id[a.agent_id.as_str()];
        let agent = &agents[ai];
        let topo = agent.topology();
        let job = jobs[&a.job_id];
        // CPUs: offered, free, never given twice.
        assert!(
            a.cpus.is_subset(agent.free_cpus()),
            "job {} got CPUs {} not free",
            a.job_id,
            a.cpus
        );
        let g = given.entry(ai).or_default();
        assert!(
            g.is_disjoint(&a.cpus),
            "CPU given twice: {} and {}",
            g,
            a.cpus
        );
        g.union_with(&a.cpus);
        assert!(a.cpus.is_disjoint(topo.offline_cpus()));
        assert_eq!(a.granted_cpus as usize, a.cpus.len());
        // Grants in the requested ranges.
        if let Some(n) = job.numanodes
            && a.whole_nodes > 0
        {
            assert!(a.granted_cpus >= job.cpus.min);
            assert_eq!(a.whole_nodes, n);
            for n in a.cpu_nodes.iter() {
                assert!(
                    topo.node(n).unwrap().cpus().is_subset(&a.cpus),
                    "whole node {n} not whole"
                );
            }
        } else {
            assert!(
                job.cpus.contains(a.granted_cpus),
                "job {} cpus {} not in {}",
                a.job_id,
                a.granted_cpus,
                job.cpus
            );
        }
        assert!(
            job.mem_mb.contains(a.granted_mem_mb),
            "job {} mem {} not in {}",
            a.job_id,
            a.granted_mem_mb,
            job.mem_mb
        );
        assert_eq!(a.granted_gpus, job.gpus);
        // GPU ids: as many as granted, free on the agent, never given twice.
        assert_eq!(a.gpu_ids.len(), a.granted_gpus as usize, "job {}", a.job_id);
        assert!(
            a.gpu_ids.is_subset(agent.free_gpu_ids()),
            "job {} got GPUs {} not free",
            a.job_id,
            a.gpu_ids
        );
        let gg = given_gpus.entry(ai).or_default();
        assert!(
            gg.is_disjoint(&a.gpu_ids),
            "GPU given twice: {} and {}",
            gg,
            a.gpu_ids
        );
        gg.union_with(&a.gpu_ids);
        assert_eq!(a.gpus_named, agent.gpus_named());
        // Memory bookkeeping.
        assert_eq!(
            a.granted_mem_mb,
            a.memory_per_node.iter().map(|m| m.mb).sum::<u64>()
        );
        let cpu_nodes: BTreeSet<NodeId> = a.cpus.iter().map(|c| topo.node_of(c).unwrap()).collect();
        assert_eq!(cpu_nodes, a.cpu_nodes.iter().collect());
        assert!(a.cpu_nodes.is_subset(&a.nodes));
        for m in &a.memory_per_node {
            assert!(a.nodes.contains(m.node));
            assert!(m.mb > 0);
        }
        // Policy.
        if a.policy == AffinityPolicy::NumaStrict && strict_one_node && a.whole_nodes == 0 {
            assert_eq!(
                a.cpu_nodes.len(),
                1,
                "strict job {} spans {}",
                a.job_id,
                a.cpu_nodes
            );
            assert_eq!(
                a.nodes.len(),
                1,
                "strict job {} memory spans {}",
                a.job_id,
                a.nodes
            );
        }
        if !agent.numa_aware() {
            assert!(!a.pinned);
        }
        if a.policy == AffinityPolicy::None && a.whole_nodes == 0 {
            assert!(!a.pinned);
        }
        // Applying it to the agent works (memory per node fits, GPUs fit).
        states[ai]
            .allocate(a)
            .unwrap_or_else(|e| panic!("job {}: {e}", a.job_id));
    }
}

/// Releases an assignment back into the agent list.
pub fn release(agents: &mut [AgentState], a: &Assignment) {
    let s = agents
        .iter_mut()
        .find(|s| s.agent_id() == a.agent_id)
        .unwrap();
    s.release(a).unwrap();
}

/// Applies an assignment to the agent list.
pub fn allocate(agents: &mut [AgentState], a: &Assignment) {
    let s = agents
        .iter_mut()
        .find(|s| s.agent_id() == a.agent_id)
        .unwrap();
    s.allocate(a).unwrap();
}
