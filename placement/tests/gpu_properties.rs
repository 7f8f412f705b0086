//! GPU device ids end to end in the placement engine: over random machines with GPUs
//! attached to their NUMA nodes and random GPU jobs that start and finish over many
//! cycles, an id is never granted twice, every id comes back when its job ends, a GPU
//! job's CPUs sit on its GPUs' node whenever a node holds both, and agents that state a
//! GPU count only (no locality, no NUMA) still get ids `0..n`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use retz_placement::gpus::all_node_local;
use retz_placement::{
    AffinityPolicy, AgentState, Assignment, GpuId, GpuSet, GpuSpec, JobRequest, NodeSet, Packer,
    PolicyConfig, Topology,
};

/// `packs` × `numa` nodes of `cores` single-PU cores, `per_node` GPUs behind each node
/// (ids in node order).
fn gpu_machine(packs: u32, numa: u32, cores: u32, per_node: u32) -> Arc<Topology> {
    let base =
        Topology::from_synthetic(&format!("pack:{packs} numa:{numa} core:{cores} pu:1"), 4096)
            .unwrap();
    let mut spec = base.spec().clone();
    let mut id = 0;
    for n in &base.spec().nodes {
        for _ in 0..per_node {
            spec.gpus.push(GpuSpec {
                id: GpuId(id),
                nodes: std::iter::once(n.id).collect(),
            });
            id += 1;
        }
    }
    Arc::new(Topology::new(spec).unwrap())
}

fn gpu_job(id: u64, cpus: u32, gpus: u32, policy: AffinityPolicy) -> JobRequest {
    let mut j = JobRequest::new(id, cpus, 64).with_policy(policy);
    j.gpus = gpus;
    j
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gpu_ids_are_never_granted_twice_and_all_come_back(
        packs in 1u32..=2,
        numa in 1u32..=2,
        cores in 2u32..=6,
        per_node in 1u32..=3,
        agents_n in 1usize..=2,
        jobs in vec((1u32..=4, 0u32..=3, 0usize..4, 1u64..=3, 0u64..=5), 1..=30),
    ) {
        let topo = gpu_machine(packs, numa, cores, per_node);
        let total = topo.gpu_ids().len() as u32;
        let idle: Vec<AgentState> = (0..agents_n)
            .map(|i| AgentState::idle(format!("a{i}"), "h", topo.clone(), total))
            .collect();
        let mut agents = idle.clone();
        let policies = [
            AffinityPolicy::NumaPrefer,
            AffinityPolicy::NumaStrict,
            AffinityPolicy::Spread,
            AffinityPolicy::None,
        ];
        let mut queue: Vec<JobRequest> = Vec::new();
        let mut arrivals: Vec<(u64, JobRequest, u64)> = jobs
            .iter()
            .enumerate()
            .map(|(i, &(c, g, p, d, at))| (at, gpu_job(i as u64 + 1, c, g.min(total), policies[p]), d))
            .collect();
        arrivals.sort_by_key(|a| a.0);
        let durations: BTreeMap<u64, u64> = arrivals.iter().map(|a| (a.1.job_id, a.2)).collect();
        let mut packer = Packer::new(PolicyConfig::default());
        let mut running: Vec<(u64, Assignment)> = Vec::new();
        for t in 0..40u64 {
            running.retain(|(end, a)| {
                if *end <= t {
                    release(&mut agents, a);
                    false
                } else {
                    true
                }
            });
            queue.extend(arrivals.iter().filter(|a| a.0 == t).map(|a| a.1.clone()));
            let p = packer.plan(&agents, &queue, t);
            check_plan(&agents, &queue, &p, true);
            for a in p.assignments {
                // Held ids of that agent: never overlap a new grant.
                let held: GpuSet = running
                    .iter()
                    .filter(|(_, r)| r.agent_id == a.agent_id)
                    .fold(GpuSet::new(), |acc, (_, r)| acc.union(&r.gpu_ids));
                prop_assert!(held.is_disjoint(&a.gpu_ids), "{} granted while held {}", a.gpu_ids, held);
                prop_assert!(a.gpu_ids.is_subset(topo.gpu_ids()));
                prop_assert!(a.gpus_named);
                allocate(&mut agents, &a);
                queue.retain(|j| j.job_id != a.job_id);
                running.push((t + durations[&a.job_id], a));
            }
        }
        for (_, a) in running.drain(..) {
            release(&mut agents, &a);
        }
        prop_assert_eq!(agents, idle, "every CPU, MB and GPU id came back");
    }

    #[test]
    fn a_gpu_job_gets_cpus_on_its_gpus_node_when_one_holds_both(
        packs in 1u32..=2,
        numa in 1u32..=2,
        cores in 2u32..=6,
        used_gpus in vec(any::<bool>(), 12),
        used_cpus in vec(prop::bool::weighted(0.3), 24),
        cpus in 1u32..=3,
        policy in 0usize..2,
    ) {
        let topo = gpu_machine(packs, numa, cores, 2);
        let free_gpus: GpuSet = topo
            .gpu_ids()
            .iter()
            .filter(|g| !used_gpus[g.0 as usize % 12])
            .collect();
        let free_cpus = topo
            .cpus()
            .iter()
            .filter(|c| !used_cpus[c.0 as usize % 24])
            .collect();
        let mem = topo.nodes().iter().map(|n| n.memory_mb()).collect();
        let agent = AgentState::new("a", "h", topo.clone(), free_cpus, mem, 0, true)
            .unwrap()
            .with_gpu_ids(free_gpus.clone())
            .unwrap();
        let policy = [AffinityPolicy::NumaPrefer, AffinityPolicy::NumaStrict][policy];
        let job = gpu_job(1, cpus, 1, policy);
        let both = topo.nodes().iter().any(|n| {
            n.cpus().intersection_len(agent.free_cpus()) >= cpus as usize
                && topo.gpus().iter().any(|g| free_gpus.contains(g.id) && g.nodes.contains(n.id()))
        });
        let p = Packer::new(PolicyConfig::default()).plan(std::slice::from_ref(&agent), std::slice::from_ref(&job), 0);
        check_plan(std::slice::from_ref(&agent), &[job], &p, true);
        if both {
            let a = p.assignment(1).expect("fits");
            prop_assert_eq!(a.cpu_nodes.len(), 1);
            prop_assert!(
                all_node_local(&topo, &a.gpu_ids, &a.cpu_nodes),
                "GPU {} not on CPU node {}", a.gpu_ids, a.cpu_nodes
            );
        }
    }
}

#[test]
fn two_one_gpu_jobs_get_different_ids_and_release_returns_them() {
    let topo = gpu_machine(1, 1, 4, 2);
    let mut agents = vec![AgentState::idle("a", "h", topo, 2)];
    let queue = vec![
        gpu_job(1, 1, 1, AffinityPolicy::NumaPrefer),
        gpu_job(2, 1, 1, AffinityPolicy::NumaPrefer),
        gpu_job(3, 1, 1, AffinityPolicy::NumaPrefer),
    ];
    let p = Packer::new(PolicyConfig::default()).plan(&agents, &queue, 0);
    check_plan(&agents, &queue, &p, true);
    let a = p.assignment(1).unwrap();
    let b = p.assignment(2).unwrap();
    assert_eq!(a.gpu_ids.len(), 1);
    assert_eq!(b.gpu_ids.len(), 1);
    assert_ne!(a.gpu_ids, b.gpu_ids);
    assert!(p.assignment(3).is_none(), "only two GPUs");
    allocate(&mut agents, a);
    allocate(&mut agents, b);
    assert_eq!(agents[0].free_gpus(), 0);
    // Job 1 ends: job 3 gets exactly its GPU.
    release(&mut agents, a);
    let p = Packer::new(PolicyConfig::default()).plan(&agents, &queue[2..], 60);
    assert_eq!(p.assignment(3).unwrap().gpu_ids, a.gpu_ids);
    // Releasing twice is refused.
    assert!(agents[0].release(a).is_err());
}

#[test]
fn count_only_and_plain_agents_use_ids_zero_to_n() {
    let plain = AgentState::without_numa("p", "h", 4, 4096, 2).unwrap();
    assert_eq!(plain.free_gpu_ids().to_string(), "0-1");
    assert!(!plain.gpus_named());
    let queue = vec![
        gpu_job(1, 1, 1, AffinityPolicy::NumaPrefer),
        gpu_job(2, 1, 1, AffinityPolicy::None),
    ];
    let p = Packer::new(PolicyConfig::default()).plan(std::slice::from_ref(&plain), &queue, 0);
    check_plan(std::slice::from_ref(&plain), &queue, &p, true);
    let ids: GpuSet = p
        .assignments
        .iter()
        .fold(GpuSet::new(), |acc, a| acc.union(&a.gpu_ids));
    assert_eq!(ids.to_string(), "0-1");
    assert!(p.assignments.iter().all(|a| !a.gpus_named));
    // A NUMA agent without GPU locality: ids 0..n too, CPUs placed as before.
    let topo = Arc::new(Topology::from_synthetic("pack:2 numa:1 core:2 pu:1", 1024).unwrap());
    let counted = AgentState::idle("c", "h", topo, 3);
    assert_eq!(counted.free_gpu_ids().to_string(), "0-2");
    let p = Packer::new(PolicyConfig::default()).plan(
        std::slice::from_ref(&counted),
        &[gpu_job(1, 2, 2, AffinityPolicy::NumaStrict)],
        0,
    );
    let a = p.assignment(1).unwrap();
    assert_eq!(a.gpu_ids.to_string(), "0-1");
    assert_eq!(a.cpus.to_string(), "0-1");
    let none: NodeSet = NodeSet::new();
    assert!(all_node_local(
        counted.topology(),
        &"0-2".parse().unwrap(),
        &none
    ));
}
