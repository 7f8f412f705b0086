//! The Kubernetes CPU manager's uncore-cache assignment cases (`cpu_assignment_test.go`:
//! the free-uncore-cache accounting and the iterative takes on an EPYC 7502P and on
//! two-cache Xeon Gold parts), re-created as facts on Retz's own model: the topology shape,
//! the request sequence and which cache domains the CPUs must come from. CPU numbering
//! follows our synthetic topologies (SMT siblings adjacent), not the kubelet's.

use std::collections::BTreeSet;
use std::sync::Arc;

use retz_placement::{AgentState, CpuSet, JobRequest, Planner, PolicyConfig, Topology};

fn topo(desc: &str) -> Arc<Topology> {
    Arc::new(Topology::from_synthetic(desc, 65_536).unwrap())
}

fn agent(t: &Arc<Topology>, free: &CpuSet) -> AgentState {
    let mem = t.nodes().iter().map(|n| n.memory_mb()).collect();
    AgentState::new("a", "h", Arc::clone(t), free.clone(), mem, 0, true).unwrap()
}

fn domains(t: &Topology, cpus: &CpuSet) -> Vec<usize> {
    let d: BTreeSet<usize> = cpus.iter().filter_map(|c| t.cache_of(c)).collect();
    d.into_iter().collect()
}

/// Places `sizes` one after the other on one agent; returns each job's domains.
fn take_iteratively(t: &Arc<Topology>, sizes: &[u32]) -> Vec<Vec<usize>> {
    let agents = [AgentState::idle("a", "h", Arc::clone(t), 0)];
    let cfg = PolicyConfig::default();
    let mut p = Planner::new(&agents, &cfg);
    sizes
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            let j = JobRequest::new(i as u64, k, 0);
            let d = p.decide(&j).unwrap();
            let doms = domains(t, d.cpus());
            p.commit(&j, d);
            doms
        })
        .collect()
}

#[test]
fn free_uncore_caches_of_a_dual_cache_socket() {
    // One socket, two uncore caches of 4 cores x 2 threads: cache 0 = CPUs 0-7,
    // cache 1 = CPUs 8-15. The kubelet counts a cache free only when all its CPUs are.
    // Here: a job of a whole cache (8 CPUs) gets exactly the free cache, and when no
    // cache is free it cannot stay in one.
    let t = topo("pack:1 numa:1 l3:2 core:4 pu:2");
    let whole_cache = |free: &str| {
        let free: CpuSet = free.parse().unwrap();
        let agents = [agent(&t, &free)];
        let cfg = PolicyConfig::default();
        let d = Planner::new(&agents, &cfg)
            .decide(&JobRequest::new(1, 8, 0))
            .map(|d| domains(&t, d.cpus()));
        d.ok()
    };
    // (free CPUs, free caches in the kubelet's case) -> the domains an 8-CPU job gets.
    assert_eq!(whole_cache("1-15"), Some(vec![1])); // caches free: [1]
    assert_eq!(whole_cache("0-15"), Some(vec![0])); // caches free: [0, 1]; lowest first
    assert_eq!(whole_cache("0-14"), Some(vec![0])); // caches free: [0]
    assert_eq!(whole_cache("1-14"), Some(vec![0, 1])); // caches free: none
}

#[test]
fn epyc_7502p_takes_of_almost_a_cache_each_use_one_cache_each() {
    // One NUMA node, eight uncore caches of 4 cores x 2 threads (64 CPUs). Eight takes of
    // 7 CPUs: each stays in one cache, and each uses a cache of its own (the first in
    // cache 0, the second in cache 1, ...), as the kubelet's iterative take does.
    let t = topo("pack:1 numa:1 l3:8 core:4 pu:2");
    let got = take_iteratively(&t, &[7; 8]);
    let want: Vec<Vec<usize>> = (0..8).map(|d| vec![d]).collect();
    assert_eq!(got, want);
}

#[test]
fn xeon_gold_two_caches_one_per_socket_each_take_stays_in_one_cache() {
    // Xeon Gold 5120: two sockets, one uncore cache each (14 cores x 2 threads). Takes of
    // 4, 5, 6, 7 and 8 CPUs each come from a single cache.
    let t = topo("pack:2 numa:1 l3:1 core:14 pu:2");
    for doms in take_iteratively(&t, &[4, 5, 6, 7, 8]) {
        assert_eq!(doms.len(), 1, "{doms:?}");
    }
    // Xeon Gold 5218: two sockets of 16 cores x 2 threads, one cache each; takes of 1..6
    // and of 4..7 stay in one cache each.
    let t = topo("pack:2 numa:1 l3:1 core:16 pu:2");
    for sizes in [&[1, 2, 3, 4, 5, 6][..], &[4, 5, 6, 7][..]] {
        for doms in take_iteratively(&t, sizes) {
            assert_eq!(doms.len(), 1, "{sizes:?}: {doms:?}");
        }
    }
}

#[test]
fn legacy_single_cache_cases_are_unchanged() {
    // The kubelet's "legacy" cases have one cache per socket: nothing about caches changes
    // the choice. Single socket with 4 cores x 2 threads: one CPU from an idle socket, two
    // CPUs as one whole core, and with only one whole core free (CPUs 0-3 and 6 free in
    // the kubelet's numbering: here cores {0,1}, {2,3} free and CPU 6 of core {6,7})
    // two CPUs come from a whole free core.
    let t = topo("pack:1 numa:1 core:4 pu:2");
    let pick = |free: &str, k: u32| {
        let free: CpuSet = free.parse().unwrap();
        let agents = [agent(&t, &free)];
        let cfg = PolicyConfig::default();
        let d = Planner::new(&agents, &cfg)
            .decide(&JobRequest::new(1, k, 0))
            .unwrap();
        d.cpus().to_string()
    };
    assert_eq!(pick("0-7", 1), "0");
    assert_eq!(pick("0-7", 2), "0-1");
    assert_eq!(pick("0-7", 8), "0-7");
    assert_eq!(pick("2-3,6", 2), "2-3");
}
