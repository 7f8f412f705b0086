//! The single-decision engine: working copies of the agents' free resources, the capacity
//! indexes over them, candidate generation per policy, the cost model, and committing a
//! decision. [`crate::Packer`] drives it over a whole queue.
//!
//! How a decision is made (`c` CPUs, `m` MB, `g` GPUs, all at the request's minimum):
//! - `numa-strict`: candidate nodes come from the node index (NUMA-aware agents only),
//!   best fit first; the first [`PolicyConfig::candidates`] feasible ones are scored with
//!   fragmentation, SMT sharing and grant terms; memory must fit in the node.
//! - `numa-prefer`: as strict; if no single node fits, agents from the agent index (best
//!   fit on free CPUs) are tried with node sets grown greedily from up to
//!   [`PolicyConfig::max_seeds`] seed nodes by SLIT distance, scored with the extra-node,
//!   cross-node, fragmentation, SMT, memory-spill and grant terms; last, agents without
//!   NUMA attributes (counts only, unpinned).
//! - `spread`: agents from the agent index; the CPUs are split as evenly as possible over
//!   the `min(c, nodes)` nodes with the most free CPUs; scored with balance,
//!   fragmentation, SMT, spill and grant; then agents without NUMA attributes.
//! - `none`: best fit by counts over all agents, CPU ids packed into the fullest nodes
//!   (accounting only), unpinned.
//! - `numanodes: N`: agents with at least N entirely free nodes (fewest first); the N
//!   closest such nodes whose CPUs reach `c`.
//! - GPUs: candidates are the nodes (or agents) of the agents with at least `g` free GPUs
//!   (few, in practice), fewest free GPUs first; each candidate also pays the GPU
//!   locality term ([`crate::gpus::locality_cost`]), so a GPU job's CPUs go to the node
//!   (else the socket) of free GPUs when they fit there, and the job gets the free device
//!   ids closest to its CPUs ([`crate::gpus::choose`]).
//!
//! Submodules: `candidates` (scoring), `search` (which index each policy walks),
//! `memo` (multi-node evaluations shared between jobs of one shape), `cache` (L3
//! scoring), `reasons` (pending reasons), `reserve` (reservations for starving jobs),
//! `work` (the working state of an agent).
//!
//! Invariants: every index entry mirrors the working state of its agent (see
//! `reindex`, called after every mutation); nodes reserved for a job
//! appear in no index, so only their holder (after `unreserve`) can use them; results
//! depend only on the inputs and their order (B-tree orders, explicit tie-breaks).

use std::collections::{BTreeMap, BTreeSet};

use crate::agent::AgentState;
use crate::config::PolicyConfig;
use crate::index::CapIndex;
use crate::plan::{Assignment, NodeMemory};
use crate::reason::PendingReason;
use crate::request::{AffinityPolicy, CachePolicy, JobRequest};
use crate::select::{node_counts, take_in_node_with};
use crate::sets::{CpuSet, GpuSet, NodeSet};
use crate::topology::Topology;

use candidates::Cand;
use reserve::Held;

mod cache;
mod candidates;
mod memo;
mod reasons;
mod reserve;
mod search;
mod work;

use work::{AgentWork, Indexed, NodeWork};

/// A decision for one job: where it goes and which CPUs it gets. Apply it with
/// [`Planner::commit`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    agent: u32,
    cpus: CpuSet,
    /// The nodes of `cpus`.
    cpu_nodes: NodeSet,
    mem: Vec<(usize, u64)>,
    gpus: GpuSet,
    whole_nodes: u32,
    pinned: bool,
    policy: AffinityPolicy,
    cost: f64,
}

impl Decision {
    /// Index of the chosen agent in the planner's agent slice.
    pub fn agent_index(&self) -> usize {
        self.agent as usize
    }
    /// The chosen CPU ids.
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }
    /// The cost-model score.
    pub fn cost(&self) -> f64 {
        self.cost
    }
    /// The chosen GPU device ids.
    pub fn gpu_ids(&self) -> &GpuSet {
        &self.gpus
    }
}

/// Working state of one planning cycle over a slice of agents.
pub struct Planner<'a> {
    agents: &'a [AgentState],
    cfg: &'a PolicyConfig,
    work: Vec<AgentWork>,
    nodes_ix: CapIndex,
    agents_ix: CapIndex,
    plain_ix: CapIndex,
    whole_ix: BTreeMap<u32, BTreeSet<u32>>,
    gpu_ix: BTreeSet<(u32, u32)>,
    held: BTreeMap<u64, Held>,
    by_id: BTreeMap<&'a str, u32>,
    any_aware: bool,
    /// `Some(the most PUs of any cache domain)` when every node of every NUMA-aware agent
    /// has 2+ counted domains, else `None`. A larger (or spread) job can have an ideal L3
    /// layout nowhere, so the scan for one stops after the usual candidates.
    split_only: Option<u32>,
    /// Multi-node evaluations by agent state and job shape (see `memo.rs`).
    multi_memo: memo::MultiMemo,
}

/// Total MB of a memory split (saturating; each part is bounded by its node's size).
fn sum_mb(parts: &[NodeMemory]) -> u64 {
    parts.iter().fold(0u64, |s, m| s.saturating_add(m.mb))
}

impl<'a> Planner<'a> {
    /// Builds the working state and the indexes (`O(agents · nodes · cores)`).
    pub fn new(agents: &'a [AgentState], cfg: &'a PolicyConfig) -> Planner<'a> {
        let mut p = Planner {
            agents,
            cfg,
            work: Vec::with_capacity(agents.len()),
            nodes_ix: CapIndex::default(),
            agents_ix: CapIndex::default(),
            plain_ix: CapIndex::default(),
            whole_ix: BTreeMap::new(),
            gpu_ix: BTreeSet::new(),
            held: BTreeMap::new(),
            by_id: BTreeMap::new(),
            any_aware: agents.iter().any(AgentState::numa_aware),
            split_only: Some(0),
            multi_memo: memo::MultiMemo::default(),
        };
        let mut node_entries = Vec::new();
        let mut agent_entries = Vec::new();
        let mut plain_entries = Vec::new();
        for (ai, a) in agents.iter().enumerate() {
            let topo = a.topology();
            let free = a.free_cpus();
            let aware = a.numa_aware();
            let mut w = AgentWork {
                free_cpus: free.clone(),
                nodes: topo
                    .nodes()
                    .iter()
                    .zip(a.free_mem_mb())
                    .enumerate()
                    .map(|(i, (nd, &mem))| {
                        let (f, whole) = node_counts(topo, i, free);
                        NodeWork {
                            free: f,
                            total: nd.cpus().len() as u32,
                            whole,
                            mem,
                            reserved: None,
                            indexed: None,
                            best_domain: (0, 0),
                        }
                    })
                    .collect(),
                free_gpus: a.free_gpu_ids().clone(),
                reserved_gpus: 0,
                indexed: Indexed::default(),
                caches: if aware {
                    cache::all_counts(topo, free)
                } else {
                    Vec::new()
                },
                cache_orders: cache::Orders::default(),
            };
            w.cache_orders = cache::Orders::new(topo, &w.caches);
            if aware {
                let split =
                    !w.caches.is_empty() && topo.nodes().iter().all(|n| n.num_caches() >= 2);
                p.split_only = match p.split_only {
                    Some(m) if split => Some(m.max(topo.largest_split_cache())),
                    _ => None,
                };
            }
            for i in 0..w.nodes.len() {
                w.nodes[i].best_domain = cache::best_domain(topo, i, &w.caches);
            }
            let ai = ai as u32;
            for i in 0..w.nodes.len() {
                let key = w.node_key(i, aware);
                if let Some((c, m)) = key {
                    node_entries.push((c, (m, ai, i as u32)));
                }
                w.nodes[i].indexed = key;
            }
            let keys = w.agent_keys(aware);
            if let Some((c, m)) = keys.agent {
                if aware {
                    agent_entries.push((c, (m, ai, 0)));
                } else {
                    plain_entries.push((c, (m, ai, 0)));
                }
            }
            if keys.whole > 0 {
                p.whole_ix.entry(keys.whole).or_default().insert(ai);
            }
            if keys.gpus > 0 {
                p.gpu_ix.insert((keys.gpus, ai));
            }
            w.indexed = keys;
            p.work.push(w);
        }
        p.nodes_ix = CapIndex::bulk(node_entries);
        p.agents_ix = CapIndex::bulk(agent_entries);
        p.plain_ix = CapIndex::bulk(plain_entries);
        for (ai, a) in agents.iter().enumerate().rev() {
            p.by_id.insert(a.agent_id(), ai as u32);
        }
        p
    }

    /// The agents this planner works on.
    pub fn agents(&self) -> &'a [AgentState] {
        self.agents
    }

    fn topo(&self, a: u32) -> &'a Topology {
        self.agents[a as usize].topology()
    }

    /// Brings agent `a`'s index entries in line with its working state, touching only the
    /// entries whose keys changed (a commit changes one or two nodes and the agent totals).
    fn reindex(&mut self, a: u32) {
        let aware = self.agents[a as usize].numa_aware();
        let ai = a as usize;
        for i in 0..self.work[ai].nodes.len() {
            let after = self.work[ai].node_key(i, aware);
            let before = self.work[ai].nodes[i].indexed;
            if before != after {
                if let Some((c, m)) = before {
                    self.nodes_ix.remove(c, (m, a, i as u32));
                }
                if let Some((c, m)) = after {
                    self.nodes_ix.insert(c, (m, a, i as u32));
                }
                self.work[ai].nodes[i].indexed = after;
            }
        }
        let ix = self.work[ai].agent_keys(aware);
        let old = self.work[ai].indexed;
        if old.agent != ix.agent {
            let agents_ix = if aware {
                &mut self.agents_ix
            } else {
                &mut self.plain_ix
            };
            if let Some((c, m)) = old.agent {
                agents_ix.remove(c, (m, a, 0));
            }
            if let Some((c, m)) = ix.agent {
                agents_ix.insert(c, (m, a, 0));
            }
        }
        if old.whole != ix.whole {
            if old.whole > 0
                && let Some(s) = self.whole_ix.get_mut(&old.whole)
            {
                s.remove(&a);
                if s.is_empty() {
                    self.whole_ix.remove(&old.whole);
                }
            }
            if ix.whole > 0 {
                self.whole_ix.entry(ix.whole).or_default().insert(a);
            }
        }
        if old.gpus != ix.gpus {
            if old.gpus > 0 {
                self.gpu_ix.remove(&(old.gpus, a));
            }
            if ix.gpus > 0 {
                self.gpu_ix.insert((ix.gpus, a));
            }
        }
        self.work[ai].indexed = ix;
    }

    /// The affinity policy a job is planned with (cluster override first).
    pub fn policy_of(&self, job: &JobRequest) -> AffinityPolicy {
        self.cfg.affinity.unwrap_or(job.policy)
    }

    /// The cache policy a job is laid out with (cluster override first).
    pub fn cache_of(&self, job: &JobRequest) -> CachePolicy {
        self.cfg.cache.unwrap_or(job.cache)
    }

    fn materialize(&self, cand: Cand, job: &JobRequest) -> Decision {
        let a = cand.agent;
        let topo = self.topo(a);
        let w = &self.work[a as usize];
        let mut cpus = CpuSet::new();
        if cand.whole_nodes {
            for &(i, _) in &cand.takes {
                cpus.union_with(topo.nodes()[i].cpus());
            }
        } else {
            for &(i, t) in &cand.takes {
                let ok = take_in_node_with(
                    topo,
                    i,
                    &w.free_cpus,
                    w.domain_counts(),
                    t,
                    job.smt,
                    self.cache_of(job),
                    &mut cpus,
                );
                debug_assert!(ok, "candidate counted more free CPUs than the node has");
            }
        }
        // The nodes of the chosen CPUs: each take's CPUs come from its own node.
        let cpu_nodes: NodeSet = cand
            .takes
            .iter()
            .filter(|&&(i, t)| t > 0 && !topo.nodes()[i].cpus().is_disjoint(&cpus))
            .map(|&(i, _)| topo.nodes()[i].id())
            .collect();
        debug_assert_eq!(
            cpu_nodes,
            cpus.iter()
                .filter_map(|c| topo.node_of(c))
                .collect::<NodeSet>()
        );
        let gpus =
            crate::gpus::choose(topo, &w.free_gpus, job.gpus, &cpu_nodes).unwrap_or_default();
        debug_assert_eq!(gpus.len(), job.gpus as usize, "candidate without free GPUs");
        Decision {
            agent: a,
            cpus,
            cpu_nodes,
            mem: cand.mem,
            gpus,
            whole_nodes: if cand.whole_nodes {
                cand.takes.len() as u32
            } else {
                0
            },
            pinned: cand.pinned && self.agents[a as usize].numa_aware(),
            policy: self.policy_of(job),
            cost: cand.cost,
        }
    }

    /// Decides where `job` goes at its minimum request, without changing anything.
    /// The request must be valid ([`JobRequest::validate`]).
    pub fn decide(&self, job: &JobRequest) -> Result<Decision, PendingReason> {
        match self.search(job) {
            Some(c) => Ok(self.materialize(c, job)),
            None => Err(self.reason(job)),
        }
    }

    fn apply(&mut self, a: u32, cpus: &CpuSet, mem: &[(usize, u64)], gpus: &GpuSet) {
        let topo = self.agents[a as usize].topology();
        let w = &mut self.work[a as usize];
        w.change_free(topo, cpus, true);
        for &(i, mb) in mem {
            w.nodes[i].mem -= mb;
        }
        w.free_gpus.difference_with(gpus);
        self.reindex(a);
    }

    /// Gives an assignment's CPUs, memory and GPUs back to agent `agent` (index into
    /// [`Planner::agents`]), e.g. when a simulator keeps one planner across events.
    /// Returns false, changing nothing, when the assignment does not match the agent's
    /// working state (CPUs already free or unknown, nodes unknown, memory above capacity).
    pub fn release(&mut self, agent: usize, a: &Assignment) -> bool {
        let Some(ag) = self.agents.get(agent) else {
            return false;
        };
        let topo = ag.topology();
        let w = &self.work[agent];
        if !a.cpus.is_subset(topo.cpus())
            || !a.cpus.is_disjoint(&w.free_cpus)
            || !a.gpu_ids.is_disjoint(&w.free_gpus)
        {
            return false;
        }
        let mut mem = Vec::with_capacity(a.memory_per_node.len());
        for m in &a.memory_per_node {
            let Some(i) = topo.node_index(m.node) else {
                return false;
            };
            if w.nodes[i].mem.saturating_add(m.mb) > topo.nodes()[i].memory_mb() {
                return false;
            }
            mem.push((i, m.mb));
        }
        let ai = agent as u32;
        let w = &mut self.work[agent];
        w.change_free(topo, &a.cpus, false);
        for (i, mb) in mem {
            w.nodes[i].mem += mb;
        }
        w.free_gpus.union_with(&a.gpu_ids);
        self.reindex(ai);
        true
    }

    /// Applies a decision and returns the job's assignment.
    pub fn commit(&mut self, job: &JobRequest, d: Decision) -> Assignment {
        self.apply(d.agent, &d.cpus, &d.mem, &d.gpus);
        let agent = &self.agents[d.agent as usize];
        let topo = agent.topology();
        let cpu_nodes = d.cpu_nodes;
        let memory_per_node: Vec<NodeMemory> = d
            .mem
            .iter()
            .map(|&(i, mb)| NodeMemory {
                node: topo.nodes()[i].id(),
                mb,
            })
            .collect();
        let nodes = cpu_nodes.union(&memory_per_node.iter().map(|m| m.node).collect());
        Assignment {
            job_id: job.job_id,
            agent_id: agent.agent_id().to_string(),
            hostname: agent.hostname().to_string(),
            granted_cpus: d.cpus.len() as u32,
            granted_mem_mb: sum_mb(&memory_per_node),
            granted_gpus: d.gpus.len() as u32,
            gpu_ids: d.gpus,
            gpus_named: agent.gpus_named(),
            cpus: d.cpus,
            cpu_nodes,
            nodes,
            memory_per_node,
            policy: d.policy,
            whole_nodes: d.whole_nodes,
            pinned: d.pinned,
            cost: d.cost,
        }
    }

    /// Grows an assignment of an open range with what is free on its nodes (not reserved
    /// ones): CPUs up to `cpus.max` (unbounded: all free CPUs of its CPU nodes), memory up
    /// to `mem_mb.max` (unbounded: the nodes' memory in proportion to the CPUs held there).
    /// `agent` is the index of the assignment's agent in [`Planner::agents`].
    pub fn grow(&mut self, job: &JobRequest, agent: usize, asg: &mut Assignment) {
        if asg.whole_nodes > 0 || agent >= self.agents.len() {
            return;
        }
        let a = agent as u32;
        let topo = self.topo(a);
        let w = &self.work[a as usize];
        let node_pos: Vec<usize> = asg
            .cpu_nodes
            .iter()
            .filter_map(|n| topo.node_index(n))
            .collect();
        // CPUs.
        let mut extra = CpuSet::new();
        let want = job
            .cpus
            .max
            .map_or(u32::MAX, |mx| mx.saturating_sub(asg.granted_cpus));
        let mut left = want;
        for &i in &node_pos {
            if left == 0 || w.nodes[i].reserved.is_some() {
                continue;
            }
            let t = w.nodes[i].free.min(left);
            if t > 0
                && take_in_node_with(
                    topo,
                    i,
                    &w.free_cpus,
                    w.domain_counts(),
                    t,
                    job.smt,
                    self.cache_of(job),
                    &mut extra,
                )
            {
                left -= t;
            }
        }
        // Memory.
        let held: u64 = asg.granted_mem_mb;
        let mem_nodes: Vec<usize> = asg
            .nodes
            .iter()
            .filter_map(|n| topo.node_index(n))
            .collect();
        let target = match job.mem_mb.max {
            Some(mx) => mx,
            None => {
                let cpus_after = asg.cpus.union(&extra);
                let mut share = 0u64;
                for &i in &node_pos {
                    let node = &topo.nodes()[i];
                    let on = node.cpus().intersection_len(&cpus_after) as u128;
                    let tot = (node.cpus().len() as u128).max(1);
                    share = share.saturating_add((u128::from(node.memory_mb()) * on / tot) as u64);
                }
                share.max(job.mem_mb.min)
            }
        };
        let mut more = target.saturating_sub(held);
        let mut mem_add: Vec<(usize, u64)> = Vec::new();
        for &i in &mem_nodes {
            if more == 0 || w.nodes[i].reserved.is_some() {
                continue;
            }
            let give = w.nodes[i].mem.min(more);
            if give > 0 {
                mem_add.push((i, give));
                more -= give;
            }
        }
        if extra.is_empty() && mem_add.is_empty() {
            return;
        }
        self.apply(a, &extra, &mem_add, &GpuSet::new());
        asg.cpus.union_with(&extra);
        asg.granted_cpus = asg.cpus.len() as u32;
        for (i, mb) in mem_add {
            let node = topo.nodes()[i].id();
            match asg.memory_per_node.iter_mut().find(|m| m.node == node) {
                Some(m) => m.mb += mb,
                None => asg.memory_per_node.push(NodeMemory { node, mb }),
            }
        }
        asg.memory_per_node.sort_by_key(|m| m.node);
        asg.granted_mem_mb = sum_mb(&asg.memory_per_node);
    }

    /// Approximate heap bytes of the working state and indexes.
    pub fn heap_bytes(&self) -> usize {
        let work: usize = self
            .work
            .iter()
            .map(|w| {
                std::mem::size_of::<AgentWork>()
                    + w.free_cpus.heap_bytes()
                    + w.nodes.capacity() * std::mem::size_of::<NodeWork>()
                    + w.caches.capacity() * std::mem::size_of::<(u32, u32)>()
                    + w.cache_orders.heap_bytes()
                    + w.free_gpus.heap_bytes()
            })
            .sum();
        work + self.nodes_ix.heap_bytes() + self.agents_ix.heap_bytes() + self.plain_ix.heap_bytes()
    }
}
