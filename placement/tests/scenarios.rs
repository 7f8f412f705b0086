//! Scenario tests on synthetic topologies: SMT handling, distance-aware spanning, strict
//! reasons, no head-of-line blocking, starvation protection, baselines.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use retz_placement::{
    AffinityPolicy, AgentState, Assignment, CoreSpec, CpuSet, JobRequest, NodeId, Packer,
    PendingReason, PolicyConfig, ResourceRange, SmtPolicy, Starvation, Topology, plan,
};

fn cfg() -> PolicyConfig {
    PolicyConfig::default()
}

fn one(agents: &[AgentState], queue: &[JobRequest], now: u64) -> retz_placement::Plan {
    let p = plan(agents, queue, now, &cfg());
    check_plan(agents, queue, &p, true);
    p
}

#[test]
fn six_cpu_job_takes_three_whole_cores_in_one_node() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![AgentState::idle("a", "a", topo.clone(), 0)];
    let p = one(&agents, &[JobRequest::new(1, 6, 1024)], 0);
    let a = p.assignment(1).unwrap();
    assert_eq!(a.cpus, cs("0-5"));
    assert_eq!(a.cpu_nodes.len(), 1);
    assert!(whole_cores(&topo, &a.cpus));
    assert_eq!(cores_of(&topo, &a.cpus).len(), 3);
    assert!(a.pinned);
    assert_eq!(a.memory_per_node.len(), 1);

    // Node 0 has broken cores; the job still gets three whole cores there (best fit).
    let agents = vec![agent_using("a", &topo, "0,3,5")];
    let p = one(&agents, &[JobRequest::new(1, 6, 1024)], 0);
    let a = p.assignment(1).unwrap();
    assert_eq!(a.cpus, cs("6-11"));
    assert!(whole_cores(&topo, &a.cpus));
}

#[test]
fn six_cpu_jobs_never_share_a_core() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![AgentState::idle("a", "a", topo.clone(), 0)];
    let queue: Vec<JobRequest> = (1..=10).map(|i| JobRequest::new(i, 6, 1024)).collect();
    let p = one(&agents, &queue, 0);
    assert_eq!(p.assignments.len(), 10);
    for (i, x) in p.assignments.iter().enumerate() {
        assert!(
            whole_cores(&topo, &x.cpus),
            "job {} got {}",
            x.job_id,
            x.cpus
        );
        for y in &p.assignments[i + 1..] {
            let (cx, cy) = (cores_of(&topo, &x.cpus), cores_of(&topo, &y.cpus));
            assert!(
                cx.is_disjoint(&cy),
                "jobs {} and {} share a core",
                x.job_id,
                y.job_id
            );
        }
    }
    // The first eight fit two per node.
    for x in &p.assignments[..8] {
        assert_eq!(x.cpu_nodes.len(), 1);
    }
}

#[test]
fn larger_than_a_node_takes_the_two_closest_nodes() {
    let topo = amd_8node();
    let agents = vec![AgentState::idle("a", "a", topo.clone(), 0)];
    let p = one(&agents, &[JobRequest::new(1, 12, 1024)], 0);
    let a = p.assignment(1).unwrap();
    let n: Vec<NodeId> = a.cpu_nodes.iter().collect();
    assert_eq!(n.len(), 2);
    assert_eq!(
        topo.distance(n[0], n[1]),
        12,
        "nodes {} are not the closest pair",
        a.cpu_nodes
    );

    // Node 0 (8 free) can pair with node 1 (4 free, same socket, distance 12) or node 4
    // (8 free, other socket, distance 32): the closer pair wins although node 4 is emptier.
    let agents = vec![agent_using("a", &topo, "8-11,16-31,40-63")];
    let p = one(&agents, &[JobRequest::new(1, 12, 1024)], 0);
    let a = p.assignment(1).unwrap();
    assert_eq!(a.cpu_nodes.to_string(), "0-1");
    assert_eq!(a.cpus, cs("0-7,12-15"));
}

#[test]
fn strict_job_that_cannot_fit_says_why() {
    let topo = dual_socket_2numa_smt2();
    // Every node has 10 free CPUs, except agent-7 node 1 with 12.
    let agents: Vec<AgentState> = (0..8)
        .map(|i| {
            let used = if i == 7 {
                "0-5,16-19,32-37,48-53"
            } else {
                "0-5,16-21,32-37,48-53"
            };
            agent_using(&format!("agent-{i}"), &topo, used)
        })
        .collect();
    let q = [job(1, 16, 0, AffinityPolicy::NumaStrict)];
    let p = one(&agents, &q, 0);
    assert_eq!(
        p.pending_reason(1).unwrap().to_string(),
        "needs 16 CPUs in one NUMA node; the largest free is 12, on agent-7 node 1"
    );

    // More memory than any node has: never fits, and says how to change the request.
    let p = one(&agents, &[job(2, 8, 40_000, AffinityPolicy::NumaStrict)], 0);
    let r = p.pending_reason(2).unwrap();
    assert!(matches!(r, PendingReason::NeverFits { .. }));
    assert!(r.to_string().contains("32768 MB"), "{r}");
    assert!(r.to_string().contains("numa-prefer"), "{r}");

    // Enough CPUs but not enough free memory in any one node.
    let agents: Vec<AgentState> = (0..4)
        .map(|i| {
            let mem = if i == 3 {
                vec![20_000, 20_000, 25_000, 20_000]
            } else {
                vec![20_000; 4]
            };
            AgentState::new(
                format!("agent-{i}"),
                "h",
                topo.clone(),
                topo.cpus().clone(),
                mem,
                0,
                true,
            )
            .unwrap()
        })
        .collect();
    let p = one(&agents, &[job(3, 4, 30_000, AffinityPolicy::NumaStrict)], 0);
    assert_eq!(
        p.pending_reason(3).unwrap().to_string(),
        "needs 4 CPUs and 30000 MB in one NUMA node; nodes with 4 free CPUs have at most 25000 MB free, on agent-3 node 2"
    );
    // numa-prefer can spread the memory over the closest node instead.
    let p = one(&agents, &[job(4, 4, 30_000, AffinityPolicy::NumaPrefer)], 0);
    let a = p.assignment(4).unwrap();
    assert_eq!(a.cpu_nodes.len(), 1);
    assert_eq!(a.nodes.len(), 2);
}

#[test]
fn small_jobs_flow_past_a_blocked_big_job() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![agent_using("a", &topo, "0-5,16-21,32-37,48-53")];
    let mut q = vec![job(1, 16, 0, AffinityPolicy::NumaStrict).with_priority(-10)];
    for i in 2..=9 {
        q.push(job(i, 2, 100, AffinityPolicy::NumaStrict).submitted(1));
    }
    let p = one(&agents, &q, 10);
    assert!(p.assignment(1).is_none());
    assert!(matches!(
        p.pending_reason(1),
        Some(PendingReason::OneNode { .. })
    ));
    for i in 2..=9 {
        assert!(p.assignment(i).is_some(), "small job {i} was blocked");
    }
    assert!(
        p.reservations.is_empty(),
        "no reservation before the threshold"
    );
}

/// A tiny event loop: every `step` seconds, finished jobs release their resources, new
/// jobs arrive, and the packer plans. Returns when each job was placed.
fn simulate(
    packer: &mut Packer,
    mut agents: Vec<AgentState>,
    arrivals: &BTreeMap<u64, Vec<(JobRequest, u64)>>,
    horizon: u64,
    step: u64,
) -> BTreeMap<u64, u64> {
    let mut queue: Vec<JobRequest> = Vec::new();
    let mut durations: BTreeMap<u64, u64> = BTreeMap::new();
    let mut running: Vec<(u64, Assignment)> = Vec::new();
    let mut started = BTreeMap::new();
    let mut t = 0;
    while t <= horizon {
        running.retain(|(end, a)| {
            if *end <= t {
                release(&mut agents, a);
                false
            } else {
                true
            }
        });
        if let Some(new) = arrivals.get(&t) {
            for (j, d) in new {
                durations.insert(j.job_id, *d);
                queue.push(j.clone());
            }
        }
        let p = packer.plan(&agents, &queue, t);
        check_plan(&agents, &queue, &p, true);
        for a in p.assignments {
            allocate(&mut agents, &a);
            started.insert(a.job_id, t);
            queue.retain(|j| j.job_id != a.job_id);
            running.push((t + durations[&a.job_id], a));
        }
        t += step;
    }
    started
}

fn starvation_workload() -> BTreeMap<u64, Vec<(JobRequest, u64)>> {
    let mut arrivals: BTreeMap<u64, Vec<(JobRequest, u64)>> = BTreeMap::new();
    let mut id = 100;
    // Fill the machine with staggered 4-CPU jobs, then keep more arriving than it serves.
    for k in 0..16u64 {
        arrivals
            .entry(0)
            .or_default()
            .push((job(id, 4, 100, AffinityPolicy::NumaStrict), 600 + 37 * k));
        id += 1;
    }
    arrivals.entry(60).or_default().push((
        job(1, 16, 100, AffinityPolicy::NumaStrict).submitted(60),
        100,
    ));
    for t in (60..6000).step_by(60) {
        for _ in 0..4 {
            arrivals.entry(t).or_default().push((
                job(id, 4, 100, AffinityPolicy::NumaStrict).submitted(t),
                600,
            ));
            id += 1;
        }
    }
    arrivals
}

#[test]
fn big_job_is_not_starved_by_a_stream_of_small_ones() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![AgentState::idle("a", "a", topo, 0)];
    let arrivals = starvation_workload();

    // Without reservations the stream keeps every node from ever being entirely free.
    let mut no_res = PolicyConfig::default();
    no_res.starvation.max_reservations = 0;
    let started = simulate(
        &mut Packer::new(no_res),
        agents.clone(),
        &arrivals,
        5400,
        60,
    );
    assert!(
        !started.contains_key(&1),
        "expected starvation without reservations"
    );

    let with_res = PolicyConfig {
        starvation: Starvation {
            reserve_after_s: 300,
            ..Starvation::default()
        },
        ..PolicyConfig::default()
    };
    let started = simulate(&mut Packer::new(with_res), agents, &arrivals, 5400, 60);
    let at = *started
        .get(&1)
        .expect("big job starved despite the reservation");
    // Reserved at 360 s; the reserved node drains within the small jobs' 600 s runtime.
    assert!(at <= 360 + 600 + 60, "big job started only at {at}");
    // Small jobs kept running meanwhile.
    assert!(started.keys().filter(|&&j| j >= 100).count() > 100);
}

#[test]
fn reservation_is_reported_and_blocks_only_its_target() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![agent_using("a", &topo, "0-3,16-31,32-47,48-63")];
    let q = vec![
        job(1, 16, 0, AffinityPolicy::NumaStrict),
        job(2, 8, 0, AffinityPolicy::NumaStrict).submitted(990),
    ];
    let mut packer = Packer::new(cfg());
    let p = packer.plan(&agents, &q, 1000);
    check_plan(&agents, &q, &p, true);
    assert_eq!(p.reservations.len(), 1);
    assert_eq!(p.reservations[0].nodes.to_string(), "0");
    let r1 = p.pending_reason(1).unwrap().to_string();
    assert_eq!(
        r1,
        "needs 16 CPUs; reserved a node 0 (12 CPUs free now), starts when the jobs running there end"
    );
    let r2 = p.pending_reason(2).unwrap();
    assert!(
        matches!(
            r2,
            PendingReason::BehindReservation {
                holder_job_id: 1,
                ..
            }
        ),
        "{r2}"
    );
    // The reservation persists: next cycle, with node 0 drained, job 1 gets it.
    let agents = vec![agent_using("a", &topo, "16-31,32-47,48-63")];
    let p = packer.plan(&agents, &q, 1060);
    check_plan(&agents, &q, &p, true);
    assert_eq!(p.assignment(1).unwrap().cpus, cs("0-15"));
    assert!(p.reservations.is_empty());
    assert!(packer.reservations().is_empty());
}

#[test]
fn smt4_whole_cores_and_packing() {
    let topo = Arc::new(Topology::from_synthetic("pack:1 numa:2 core:4 pu:4", 8192).unwrap());
    let idle = vec![AgentState::idle("a", "a", topo.clone(), 0)];
    let p = one(&idle, &[JobRequest::new(1, 4, 0)], 0);
    assert_eq!(p.assignment(1).unwrap().cpus, cs("0-3"));
    let p = one(&idle, &[JobRequest::new(1, 6, 0)], 0);
    // One whole core plus two PUs of a core nobody else uses.
    assert_eq!(p.assignment(1).unwrap().cpus, cs("0-5"));

    let used = vec![agent_using("a", &topo, "0-1,16-31")];
    let mut packed = JobRequest::new(1, 2, 0);
    packed.smt = SmtPolicy::Pack;
    let p = one(&used, &[packed], 0);
    assert_eq!(
        p.assignment(1).unwrap().cpus,
        cs("2-3"),
        "pack fills the shared core"
    );
    let p = one(&used, &[JobRequest::new(1, 2, 0)], 0);
    assert_eq!(
        p.assignment(1).unwrap().cpus,
        cs("4-5"),
        "whole-cores avoids it"
    );
}

#[test]
fn offline_cpus_are_never_given() {
    let base = Topology::from_synthetic("pack:1 numa:2 core:4 pu:2", 4096).unwrap();
    let mut spec = base.spec().clone();
    spec.offline_cpus = cs("1,9");
    for n in &mut spec.nodes {
        for c in &mut n.cores {
            c.cpus.difference_with(&cs("1,9"));
        }
        n.cores.retain(|c: &CoreSpec| !c.cpus.is_empty());
    }
    let topo = Arc::new(Topology::new(spec).unwrap());
    assert_eq!(topo.cpus().len(), 14);
    let agents = vec![AgentState::idle("a", "a", topo.clone(), 0)];
    let q: Vec<JobRequest> = (1..=7).map(|i| JobRequest::new(i, 2, 0)).collect();
    let p = one(&agents, &q, 0);
    assert_eq!(p.assignments.len(), 7);
    let all = p
        .assignments
        .iter()
        .fold(CpuSet::new(), |acc, a| acc.union(&a.cpus));
    assert_eq!(all, topo.cpus().clone());
    let p = one(&agents, &[job(9, 8, 0, AffinityPolicy::NumaStrict)], 0);
    let r = p.pending_reason(9).unwrap().to_string();
    assert!(
        r.contains("the largest NUMA node in the cluster has 7 CPUs"),
        "{r}"
    );
    let p = one(&agents, &[job(9, 7, 0, AffinityPolicy::NumaStrict)], 0);
    assert_eq!(p.assignment(9).unwrap().cpus, cs("0,2-7"));
}

#[test]
fn whole_numa_nodes_exclusive() {
    let topo = amd_8node();
    let mut j = JobRequest::new(1, 8, 1000);
    j.numanodes = Some(2);
    j.mem_mb = ResourceRange::at_least(1000);
    // Node 1 has one used CPU, so it is not entirely free.
    let agents = vec![agent_using("a", &topo, "8")];
    let p = one(&agents, std::slice::from_ref(&j), 0);
    let a = p.assignment(1).unwrap();
    assert_eq!(a.cpu_nodes.to_string(), "0,2");
    assert_eq!(a.cpus, cs("0-7,16-23"));
    assert_eq!(a.whole_nodes, 2);
    assert_eq!(a.granted_mem_mb, 2 * 16_384);
    // Best fit on agents: the one with fewer entirely free nodes is used first.
    let agents = vec![
        AgentState::idle("idle", "h", topo.clone(), 0),
        agent_using("busy", &topo, "16-63"),
    ];
    let p = one(&agents, std::slice::from_ref(&j), 0);
    assert_eq!(p.assignment(1).unwrap().agent_id, "busy");
    // Not enough entirely free nodes anywhere.
    let agents = vec![agent_using("a", &topo, "0,8,16,24,32,40,48")];
    let p = one(&agents, std::slice::from_ref(&j), 0);
    assert_eq!(
        p.pending_reason(1).unwrap().to_string(),
        "needs 2 entirely free NUMA nodes with 8 CPUs and 1000 MB on one agent; the most free nodes is 1, on a"
    );
}

#[test]
fn spread_balances_across_nodes() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![AgentState::idle("a", "a", topo.clone(), 0)];
    let p = one(&agents, &[job(1, 8, 4000, AffinityPolicy::Spread)], 0);
    let a = p.assignment(1).unwrap();
    assert_eq!(a.cpu_nodes.len(), 4);
    for n in a.cpu_nodes.iter() {
        assert_eq!(topo.node(n).unwrap().cpus().intersection_len(&a.cpus), 2);
    }
    assert_eq!(
        a.memory_per_node.iter().map(|m| m.mb).collect::<Vec<_>>(),
        vec![1000; 4]
    );
    // Uneven free capacity: the emptier nodes give more.
    let agents = vec![agent_using("a", &topo, "0-13,16-29")];
    let p = one(&agents, &[job(1, 8, 0, AffinityPolicy::Spread)], 0);
    let a = p.assignment(1).unwrap();
    let per: Vec<usize> = a
        .cpu_nodes
        .iter()
        .map(|n| topo.node(n).unwrap().cpus().intersection_len(&a.cpus))
        .collect();
    assert_eq!(per, vec![2, 2, 2, 2]);
    let p = one(&agents, &[job(1, 12, 0, AffinityPolicy::Spread)], 0);
    let a = p.assignment(1).unwrap();
    let per: Vec<usize> = a
        .cpu_nodes
        .iter()
        .map(|n| topo.node(n).unwrap().cpus().intersection_len(&a.cpus))
        .collect();
    assert_eq!(per, vec![2, 2, 4, 4]);
}

#[test]
fn policy_none_and_agents_without_numa_attributes() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![agent_using("a", &topo, "0-11")];
    let p = one(&agents, &[job(1, 4, 0, AffinityPolicy::None)], 0);
    let a = p.assignment(1).unwrap();
    assert!(!a.pinned);
    assert_eq!(
        a.cpus,
        cs("12-15"),
        "counts only, packed into the fullest node"
    );

    let plain = vec![AgentState::without_numa("plain", "p", 8, 8192, 0).unwrap()];
    let p = one(&plain, &[job(1, 4, 1000, AffinityPolicy::NumaStrict)], 0);
    assert_eq!(
        p.pending_reason(1).unwrap().to_string(),
        "needs NUMA placement (numa-strict), but no agent advertises its NUMA layout"
    );
    let p = one(&plain, &[job(2, 4, 1000, AffinityPolicy::NumaPrefer)], 0);
    let a = p.assignment(2).unwrap();
    assert!(!a.pinned);
    assert_eq!(a.granted_cpus, 4);
    // A NUMA-aware agent is preferred to a plain one by numa-prefer.
    let mixed = vec![plain[0].clone(), AgentState::idle("numa", "n", topo, 0)];
    let p = one(&mixed, &[job(3, 4, 1000, AffinityPolicy::NumaPrefer)], 0);
    assert_eq!(p.assignment(3).unwrap().agent_id, "numa");
}

#[test]
fn memory_spills_to_a_memory_only_node_under_prefer_only() {
    let topo = Arc::new(
        Topology::from_synthetic(
            "package:1 group:2 [numa(memory=8GB)] [numa(memory=4GB)] core:4 pu:2",
            1,
        )
        .unwrap(),
    );
    let agents = vec![AgentState::idle("knl", "k", topo, 0)];
    let p = one(&agents, &[job(1, 4, 10_000, AffinityPolicy::NumaPrefer)], 0);
    let a = p.assignment(1).unwrap();
    assert_eq!(a.cpu_nodes.to_string(), "0");
    assert_eq!(a.nodes.to_string(), "0-1");
    assert_eq!(a.memory_per_node[0].mb, 8192);
    assert_eq!(a.memory_per_node[1].mb, 10_000 - 8192);
    let p = one(&agents, &[job(2, 4, 10_000, AffinityPolicy::NumaStrict)], 0);
    assert!(matches!(
        p.pending_reason(2),
        Some(PendingReason::NeverFits { .. })
    ));
}

#[test]
fn gpus_pick_the_gpu_agent() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![
        AgentState::idle("cpu-only", "c", topo.clone(), 0),
        AgentState::idle("gpu-agent", "g", topo, 2),
    ];
    let mut j = JobRequest::new(1, 4, 0);
    j.gpus = 1;
    let p = one(&agents, std::slice::from_ref(&j), 0);
    assert_eq!(p.assignment(1).unwrap().agent_id, "gpu-agent");
    assert_eq!(p.assignment(1).unwrap().granted_gpus, 1);
    j.gpus = 3;
    let p = one(&agents, &[j], 0);
    assert_eq!(
        p.pending_reason(1).unwrap().to_string(),
        "needs 3 GPUs with its CPUs and memory on one agent; the most free GPUs is 2, on gpu-agent"
    );
}

#[test]
fn open_ranges_grow_after_everyone_had_a_turn() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![AgentState::idle("a", "a", topo, 0)];
    let mut open = job(1, 2, 1024, AffinityPolicy::NumaStrict);
    open.cpus = ResourceRange::at_least(2);
    open.mem_mb = ResourceRange::at_least(1024);
    let p = one(&agents, std::slice::from_ref(&open), 0);
    let a = p.assignment(1).unwrap();
    assert_eq!(a.granted_cpus, 16);
    assert_eq!(a.granted_mem_mb, 32_768);

    let mut bounded = open.clone();
    bounded.cpus = ResourceRange::between(2, 4);
    bounded.mem_mb = ResourceRange::between(1024, 2048);
    let p = one(&agents, &[bounded], 0);
    let a = p.assignment(1).unwrap();
    assert_eq!((a.granted_cpus, a.granted_mem_mb), (4, 2048));

    // The open job takes only what the exact job next to it left.
    let q = vec![open, job(2, 8, 0, AffinityPolicy::NumaStrict).submitted(1)];
    let p = one(&agents, &q, 5);
    let (a, b) = (p.assignment(1).unwrap(), p.assignment(2).unwrap());
    assert_eq!(a.cpu_nodes, b.cpu_nodes);
    assert_eq!((a.granted_cpus, b.granted_cpus), (8, 8));
}

#[test]
fn lower_priority_value_runs_first_then_fifo() {
    let topo = Arc::new(Topology::from_synthetic("core:4", 1024).unwrap());
    let agents = vec![AgentState::idle("a", "a", topo, 0)];
    let q = vec![
        JobRequest::new(1, 4, 0).submitted(0),
        JobRequest::new(2, 4, 0).with_priority(-5).submitted(10),
        JobRequest::new(3, 4, 0).with_priority(-5).submitted(5),
    ];
    let p = one(&agents, &q, 20);
    assert_eq!(p.assignments.len(), 1);
    assert_eq!(p.assignments[0].job_id, 3);
    let order: Vec<u64> = p.pending.iter().map(|x| x.job_id).collect();
    assert_eq!(order, vec![2, 1]);
}

#[test]
fn baselines_behave_like_their_models() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![agent_using("a", &topo, "0-11")];
    let q = [job(1, 6, 1000, AffinityPolicy::NumaPrefer)];
    let ff = PolicyConfig::builtin("first-fit").unwrap();
    let mut packer = Packer::new(ff);
    let p = packer.plan(&agents, &q, 0);
    check_plan(&agents, &q, &p, false);
    assert_eq!(
        p.assignment(1).unwrap().cpus,
        cs("12-17"),
        "lowest free ids"
    );
    assert_eq!(p.assignment(1).unwrap().cpu_nodes.len(), 2);
    let p = one(&agents, &q, 0);
    assert_eq!(
        p.assignment(1).unwrap().cpus,
        cs("16-21"),
        "retz keeps it in one node"
    );

    let wide = Arc::new(Topology::from_synthetic("pack:1 numa:4 core:2 pu:1", 4096).unwrap());
    let deep = Arc::new(Topology::from_synthetic("pack:1 numa:1 core:8 pu:1", 4096).unwrap());
    let agents = vec![
        AgentState::idle("wide", "w", wide, 0),
        agent_using("deep", &deep, "0-1"),
    ];
    let q = [job(1, 4, 100, AffinityPolicy::NumaStrict)];
    let nb = PolicyConfig::builtin("node-blind").unwrap();
    let p = Packer::new(nb).plan(&agents, &q, 0);
    check_plan(&agents, &q, &p, true);
    assert_eq!(
        p.pending_reason(1).unwrap().to_string(),
        "wide was chosen by free totals but has no NUMA node with 4 free CPUs (topology affinity error)"
    );
    let p = one(&agents, &q, 0);
    assert_eq!(p.assignment(1).unwrap().agent_id, "deep");
    // Node-blind on a numa-prefer job: best fit by NUMA on the chosen agent.
    let q = [job(2, 3, 100, AffinityPolicy::NumaPrefer)];
    let p = Packer::new(PolicyConfig::builtin("node-blind").unwrap()).plan(&agents, &q, 0);
    check_plan(&agents, &q, &p, true);
    let a = p.assignment(2).unwrap();
    assert_eq!(a.agent_id, "wide");
    assert_eq!(a.cpu_nodes.len(), 2);
}

#[test]
fn bad_queue_entries_get_reasons() {
    let topo = dual_socket_2numa_smt2();
    let agents = vec![AgentState::idle("a", "a", topo, 0)];
    let q = vec![
        JobRequest::new(1, 2, 0),
        JobRequest::new(1, 2, 0),
        JobRequest::new(2, 0, 0),
        JobRequest::new(3, 2, 0).with_priority(42),
    ];
    let p = one(&agents, &q, 0);
    assert_eq!(p.assignments.len(), 1);
    assert_eq!(p.pending_reason(1), Some(&PendingReason::DuplicateJobId));
    assert!(
        p.pending_reason(2)
            .unwrap()
            .to_string()
            .starts_with("invalid request: job 2: needs at least 1 CPU")
    );
    assert!(
        p.pending_reason(3)
            .unwrap()
            .to_string()
            .contains("outside -20..19")
    );
    let p = one(&[], &[JobRequest::new(5, 1, 0)], 0);
    assert_eq!(
        p.pending_reason(5).unwrap().to_string(),
        "no agent is offering resources"
    );
    let p = plan(
        &[],
        &[JobRequest::new(5, 1, 0)],
        0,
        &PolicyConfig::builtin("first-fit").unwrap(),
    );
    assert_eq!(p.pending_reason(5), Some(&PendingReason::NoAgents));
}

#[test]
fn planner_commit_and_release_round_trip() {
    use retz_placement::Planner;
    let topo = dual_socket_2numa_smt2();
    let agents = vec![agent_using("a", &topo, "0-3")];
    let cfg = cfg();
    let mut planner = Planner::new(&agents, &cfg);
    let j = JobRequest::new(1, 16, 1000);
    let d = planner.decide(&j).unwrap();
    let first = d.cpus().clone();
    let a = planner.commit(&j, d);
    // Taken: the same decision is not available twice.
    let d2 = planner.decide(&j).unwrap();
    assert!(d2.cpus().is_disjoint(&first));
    assert!(planner.release(0, &a));
    assert!(!planner.release(0, &a), "released twice");
    assert_eq!(planner.decide(&j).unwrap().cpus(), &first);
    assert!(!planner.release(7, &a));
}

#[test]
fn extreme_requests_and_capacities_do_not_panic() {
    let base = Topology::from_synthetic("pack:2 numa:2 core:2 pu:2", u64::MAX).unwrap();
    let topo = Arc::new(base);
    assert_eq!(topo.total_memory_mb(), u64::MAX);
    let agents = vec![
        AgentState::idle("huge", "h", topo, u32::MAX),
        AgentState::without_numa("plain", "p", 4, u64::MAX, 0).unwrap(),
    ];
    let mut queue = Vec::new();
    let mut id = 0;
    for policy in AffinityPolicy::ALL {
        for (cpus, mem) in [
            (ResourceRange::at_least(1), ResourceRange::at_least(1)),
            (ResourceRange::exactly(u32::MAX), ResourceRange::exactly(1)),
            (
                ResourceRange::between(1, u32::MAX),
                ResourceRange::between(u64::MAX, u64::MAX),
            ),
            (
                ResourceRange::exactly(2),
                ResourceRange::at_least(u64::MAX / 2),
            ),
        ] {
            for numanodes in [None, Some(1), Some(u32::MAX)] {
                let mut j = JobRequest::new(id, 1, 0).with_policy(policy);
                j.cpus = cpus;
                j.mem_mb = mem;
                j.numanodes = numanodes;
                j.gpus = if id % 3 == 0 { u32::MAX } else { 0 };
                j.submitted_at = if id % 2 == 0 { u64::MAX } else { 0 };
                j.priority = -20;
                queue.push(j);
                id += 1;
            }
        }
    }
    for name in PolicyConfig::BUILTIN_NAMES {
        let mut cfg = PolicyConfig::builtin(name).unwrap();
        cfg.starvation.reserve_after_s = 0;
        cfg.starvation.aging_step_s = 1;
        let p = plan(&agents, &queue, u64::MAX, &cfg);
        check_plan(
            &agents,
            &queue,
            &p,
            cfg.packer != retz_placement::PackerKind::FirstFit,
        );
    }
}
