//! Placement features of one grant: how a job's CPUs and memory lie over the agent's
//! NUMA nodes, L3 cache domains and SMT siblings, and how crowded those nodes were when
//! it was granted. The server records them with the job's grant; the job history
//! (`retz-admin export-history`) exports them so that `retz-sim fit` can learn what a
//! placement costs each application.
//!
//! [`placement_features`] is pure: it reads the agent's [`Topology`], the
//! [`Assignment`], the agent's state *before* the grant and the CPU sets of the other
//! jobs running there. Definitions:
//! - `nodes_spanned`: NUMA nodes holding granted CPUs;
//! - `l3_spanned`: L3 cache domains holding granted CPUs (a node without cache-domain
//!   information is one domain);
//! - `smt_shared`: some granted CPU has an SMT sibling that is neither granted nor free
//!   in the agent's state before the grant (another job holds it);
//! - `remote_mem_share`: the share of the granted memory taken from nodes holding none
//!   of the job's CPUs (0 when no memory was taken per node);
//! - `co_runners`: other running jobs with a CPU on a node the job spans.
//!
//! Invariants of a `Some` result: `1 <= nodes_spanned <= l3_spanned <= granted CPUs`
//! (every cache domain lies inside one node), `remote_mem_share` is finite and in
//! `[0, 1]`, `co_runners <= running.len()`; on an idle agent with nothing running,
//! `smt_shared` is false and `co_runners` is 0. A job that runs unpinned (policy `none`,
//! or an agent without the NUMA attributes) has no features: its CPUs are counts only.

use serde::{Deserialize, Serialize};

use crate::agent::AgentState;
use crate::plan::Assignment;
use crate::sets::{CpuSet, NodeSet};

/// What [`placement_features`] computes for one grant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementFeatures {
    /// NUMA nodes holding the granted CPUs.
    pub nodes_spanned: u32,
    /// L3 cache domains holding the granted CPUs.
    pub l3_spanned: u32,
    /// Whether a granted CPU shares its core with a CPU another job held at grant time.
    pub smt_shared: bool,
    /// Share of the granted memory on nodes holding none of the job's CPUs, 0..=1.
    pub remote_mem_share: f64,
    /// Other jobs running on the spanned nodes at grant time.
    pub co_runners: u32,
}

// `remote_mem_share` is never NaN: it is made finite here, and JSON has no NaN. So the
// float's partial equality is an equivalence, and records holding features stay `Eq`.
impl Eq for PlacementFeatures {}

/// The features of granting `asg` on `agent`, whose state is the one before the grant
/// (the granted CPUs still free), while the jobs holding `running` run there (one CPU
/// set per job; give a job that runs unpinned all the agent's CPUs, it may be anywhere).
///
/// `None` when the job runs unpinned (`asg.pinned` false, an agent without the NUMA
/// attributes, no CPUs) or when the granted CPUs are not all CPUs of the agent's
/// topology (not a placement on this agent).
pub fn placement_features(
    agent: &AgentState,
    asg: &Assignment,
    running: &[CpuSet],
) -> Option<PlacementFeatures> {
    let topo = agent.topology();
    if !asg.pinned || !agent.numa_aware() || asg.cpus.is_empty() {
        return None;
    }
    if !asg.cpus.is_subset(topo.cpus()) {
        return None;
    }
    let mut nodes = NodeSet::new();
    let mut caches = std::collections::BTreeSet::new();
    let mut smt_shared = false;
    for cpu in asg.cpus.iter() {
        nodes.insert(topo.node_of(cpu)?);
        caches.insert(topo.cache_of(cpu)?);
        if !smt_shared {
            smt_shared = topo.siblings(cpu).is_some_and(|sib| {
                sib.iter()
                    .any(|s| !asg.cpus.contains(s) && !agent.is_free(s))
            });
        }
    }
    let node_cpus: CpuSet = nodes.iter().fold(CpuSet::new(), |mut acc, n| {
        if let Some(node) = topo.node(n) {
            acc.union_with(node.cpus());
        }
        acc
    });
    let co_runners = running
        .iter()
        .filter(|r| !r.is_disjoint(&node_cpus))
        .count();
    let (mut total, mut remote) = (0u64, 0u64);
    for m in &asg.memory_per_node {
        total = total.saturating_add(m.mb);
        if !nodes.contains(m.node) {
            remote = remote.saturating_add(m.mb);
        }
    }
    let remote_mem_share = if total == 0 {
        0.0
    } else {
        (remote as f64 / total as f64).clamp(0.0, 1.0)
    };
    Some(PlacementFeatures {
        nodes_spanned: u32::try_from(nodes.len()).unwrap_or(u32::MAX),
        l3_spanned: u32::try_from(caches.len()).unwrap_or(u32::MAX),
        smt_shared,
        remote_mem_share,
        co_runners: u32::try_from(co_runners).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::plan::NodeMemory;
    use crate::request::AffinityPolicy;
    use crate::sets::{CpuId, NodeId};
    use crate::topology::Topology;

    fn topo(desc: &str) -> Arc<Topology> {
        Arc::new(Topology::from_synthetic(desc, 4096).unwrap())
    }

    fn asg(cpus: &str, mem: &[(u32, u64)]) -> Assignment {
        let cpus: CpuSet = cpus.parse().unwrap();
        Assignment {
            job_id: 1,
            agent_id: "a".into(),
            hostname: "h".into(),
            granted_cpus: cpus.len() as u32,
            cpus,
            cpu_nodes: NodeSet::new(),
            nodes: NodeSet::new(),
            memory_per_node: mem
                .iter()
                .map(|&(n, mb)| NodeMemory {
                    node: NodeId(n),
                    mb,
                })
                .collect(),
            granted_mem_mb: mem.iter().map(|m| m.1).sum(),
            granted_gpus: 0,
            gpu_ids: crate::sets::GpuSet::new(),
            gpus_named: false,
            policy: AffinityPolicy::NumaPrefer,
            whole_nodes: 0,
            pinned: true,
            cost: 0.0,
        }
    }

    /// `pack:2 numa:1 l3:4 core:4 pu:2`: 2 nodes of 4 L3 domains of 4 cores of 2 PUs;
    /// PUs are numbered depth first, so CPUs 0-7 are the first domain, 0-1 one core.
    const EPYC_LIKE: &str = "pack:2 numa:1 l3:4 core:4 pu:2";

    #[test]
    fn one_domain_of_an_idle_agent() {
        let agent = AgentState::idle("a", "h", topo(EPYC_LIKE), 0);
        let f = placement_features(&agent, &asg("0-7", &[(0, 1024)]), &[]).unwrap();
        assert_eq!(
            f,
            PlacementFeatures {
                nodes_spanned: 1,
                l3_spanned: 1,
                smt_shared: false,
                remote_mem_share: 0.0,
                co_runners: 0,
            }
        );
    }

    #[test]
    fn spanning_domains_and_nodes_with_remote_memory() {
        let agent = AgentState::idle("a", "h", topo(EPYC_LIKE), 0);
        // CPUs 6-9: the last core of domain 0 and the first of domain 1, node 0.
        let f = placement_features(&agent, &asg("6-9", &[(0, 100)]), &[]).unwrap();
        assert_eq!((f.nodes_spanned, f.l3_spanned), (1, 2));
        // Node 0's last domain and node 1's first: 2 nodes, 2 domains; memory on both
        // nodes is local, memory on a third party node would not exist here.
        let f = placement_features(&agent, &asg("30-33", &[(0, 100), (1, 300)]), &[]).unwrap();
        assert_eq!((f.nodes_spanned, f.l3_spanned), (2, 2));
        assert_eq!(f.remote_mem_share, 0.0);
        // CPUs on node 0 only, a quarter of the memory spilled to node 1.
        let f = placement_features(&agent, &asg("0-3", &[(0, 300), (1, 100)]), &[]).unwrap();
        assert_eq!(f.remote_mem_share, 0.25);
        // All of it remote.
        let f = placement_features(&agent, &asg("0-3", &[(1, 100)]), &[]).unwrap();
        assert_eq!(f.remote_mem_share, 1.0);
    }

    #[test]
    fn a_node_without_cache_information_is_one_domain() {
        let agent = AgentState::idle("a", "h", topo("pack:2 numa:2 core:4 pu:2"), 0);
        let f = placement_features(&agent, &asg("0-7", &[]), &[]).unwrap();
        assert_eq!((f.nodes_spanned, f.l3_spanned), (1, 1));
        let f = placement_features(&agent, &asg("4-11", &[]), &[]).unwrap();
        assert_eq!((f.nodes_spanned, f.l3_spanned), (2, 2));
        assert_eq!(f.remote_mem_share, 0.0, "no memory taken: nothing remote");
    }

    #[test]
    fn a_sibling_held_by_another_job_is_shared_smt() {
        let t = topo(EPYC_LIKE);
        let mut agent = AgentState::idle("a", "h", t, 0);
        // Another job holds CPU 1, the sibling of CPU 0, and CPUs 8-9 of domain 1.
        agent
            .allocate(&asg("1,8-9", &[(0, 100)]))
            .expect("free on an idle agent");
        let other: CpuSet = "1,8-9".parse().unwrap();
        let f = placement_features(&agent, &asg("0", &[(0, 10)]), std::slice::from_ref(&other))
            .unwrap();
        assert!(f.smt_shared);
        assert_eq!(f.co_runners, 1);
        // Whole cores next to it share nothing, whatever runs on the node.
        let f = placement_features(
            &agent,
            &asg("2-7", &[(0, 10)]),
            std::slice::from_ref(&other),
        )
        .unwrap();
        assert!(!f.smt_shared);
        assert_eq!(f.co_runners, 1);
        // A job on the other node has no co-runner: the other job is on node 0 only.
        let f = placement_features(&agent, &asg("32-39", &[(1, 10)]), &[other]).unwrap();
        assert_eq!((f.smt_shared, f.co_runners), (false, 0));
        // An unpinned job (given all the agent's CPUs) co-runs everywhere.
        let all = agent.topology().cpus().clone();
        let f = placement_features(&agent, &asg("32-39", &[(1, 10)]), &[all]).unwrap();
        assert_eq!(f.co_runners, 1);
    }

    #[test]
    fn unpinned_jobs_have_no_features() {
        let agent = AgentState::idle("a", "h", topo(EPYC_LIKE), 0);
        let mut a = asg("0-3", &[(0, 1)]);
        a.pinned = false;
        assert_eq!(placement_features(&agent, &a, &[]), None);
        let plain = AgentState::without_numa("p", "h", 8, 1024, 0).unwrap();
        assert_eq!(placement_features(&plain, &asg("0-3", &[]), &[]), None);
        assert_eq!(placement_features(&agent, &asg("", &[]), &[]), None);
        // CPUs that are not the agent's: not a placement there.
        assert_eq!(placement_features(&agent, &asg("60-70", &[]), &[]), None);
    }

    #[test]
    fn the_features_serialize_in_camel_case() {
        let f = PlacementFeatures {
            nodes_spanned: 2,
            l3_spanned: 3,
            smt_shared: true,
            remote_mem_share: 0.5,
            co_runners: 4,
        };
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(
            json,
            r#"{"nodesSpanned":2,"l3Spanned":3,"smtShared":true,"remoteMemShare":0.5,"coRunners":4}"#
        );
        assert_eq!(serde_json::from_str::<PlacementFeatures>(&json).unwrap(), f);
    }

    const TOPOLOGIES: [&str; 5] = [
        EPYC_LIKE,
        "pack:2 numa:2 core:4 pu:2",
        "pack:1 numa:4 l3:2 core:2 pu:1",
        "pack:1 core:6 pu:2",
        "pack:2 numa:1 core:3 pu:4",
    ];

    /// An agent (some CPUs taken by up to three other jobs), a grant among its free CPUs
    /// with memory on random nodes, and the other jobs' CPU sets.
    fn scenario() -> impl Strategy<Value = (AgentState, Assignment, Vec<CpuSet>)> {
        (
            0..TOPOLOGIES.len(),
            proptest::collection::vec(0u8..5, 128),
            proptest::collection::vec((0u32..4, 0u64..2000), 0..4),
        )
            .prop_map(|(t, owner, mem)| {
                let topo = topo(TOPOLOGIES[t]);
                // owner[cpu]: 0 free, 1 granted, 2.. held by other job owner-2.
                let mut running = vec![CpuSet::new(); 3];
                let mut granted = CpuSet::new();
                for (i, cpu) in topo.cpus().iter().enumerate() {
                    match owner[i % owner.len()] {
                        0 => {}
                        1 => {
                            granted.insert(cpu);
                        }
                        o => {
                            running[usize::from(o) - 2].insert(cpu);
                        }
                    }
                }
                running.retain(|r| !r.is_empty());
                let mut agent = AgentState::idle("a", "h", Arc::clone(&topo), 0);
                for r in &running {
                    agent.take_cpus(r).unwrap();
                }
                let n = topo.num_nodes() as u32;
                let mut per_node = std::collections::BTreeMap::new();
                for (node, mb) in mem {
                    *per_node.entry(node % n).or_insert(0) += mb;
                }
                let mem: Vec<(u32, u64)> = per_node.into_iter().collect();
                let text = granted.to_string();
                (agent, asg(&text, &mem), running)
            })
    }

    proptest! {
        #[test]
        fn invariants_hold((agent, a, running) in scenario()) {
            let f = placement_features(&agent, &a, &running);
            prop_assert_eq!(f.is_some(), !a.cpus.is_empty());
            let Some(f) = f else { return Ok(()) };
            let topo = agent.topology();
            prop_assert!(f.nodes_spanned >= 1);
            prop_assert!(f.nodes_spanned as usize <= topo.num_nodes());
            prop_assert!(f.nodes_spanned <= f.l3_spanned);
            prop_assert!(f.l3_spanned as usize <= a.cpus.len());
            prop_assert!(f.remote_mem_share.is_finite());
            prop_assert!((0.0..=1.0).contains(&f.remote_mem_share));
            prop_assert!(f.co_runners as usize <= running.len());
            // Memory only on the job's own nodes is never remote.
            let own: Vec<NodeId> = a.cpus.iter().filter_map(|c| topo.node_of(c)).collect();
            if a.memory_per_node.iter().all(|m| own.contains(&m.node)) {
                prop_assert_eq!(f.remote_mem_share, 0.0);
            }
            // Whole cores granted or free around the job share no sibling.
            let held = a.cpus.iter().any(|c| {
                topo.siblings(c).unwrap().iter().any(|s| running.iter().any(|r| r.contains(s)))
            });
            prop_assert_eq!(f.smt_shared, held);
            // The same grant on an idle agent, nothing running.
            let idle = AgentState::idle("a", "h", Arc::clone(topo), 0);
            let g = placement_features(&idle, &a, &[]).unwrap();
            prop_assert!(!g.smt_shared);
            prop_assert_eq!(g.co_runners, 0);
            prop_assert_eq!(
                (g.nodes_spanned, g.l3_spanned, g.remote_mem_share),
                (f.nodes_spanned, f.l3_spanned, f.remote_mem_share)
            );
        }
    }

    #[test]
    fn cpu_ids_are_those_of_the_topology() {
        // Guards the numbering the tests above rely on.
        let t = topo(EPYC_LIKE);
        assert_eq!(t.cache_of(CpuId(7)), Some(0));
        assert_eq!(t.cache_of(CpuId(8)), Some(1));
        assert_eq!(t.node_of(CpuId(32)), Some(NodeId(1)));
        assert_eq!(t.siblings(CpuId(0)).unwrap().to_string(), "0-1");
    }
}
