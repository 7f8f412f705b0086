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
//! - GPUs: candidates are the agents with at least `g` free GPUs (few, in practice).
//!
//! Invariants: every index entry mirrors the working state of its agent (see
//! `reindex`, called after every mutation); nodes reserved for a job
//! appear in no index, so only their holder (after `unreserve`) can use them; results
//! depend only on the inputs and their order (B-tree orders, explicit tie-breaks).

use std::collections::{BTreeMap, BTreeSet};

use crate::agent::AgentState;
use crate::config::PolicyConfig;
use crate::index::CapIndex;
use crate::plan::{Assignment, NodeMemory, Reservation};
use crate::reason::{Closest, PendingReason};
use crate::request::{AffinityPolicy, JobRequest, SmtPolicy};
use crate::select::{node_counts, split_memory, take_in_node};
use crate::sets::{CpuSet, NodeSet};
use crate::topology::Topology;

/// How many open nodes the reservation search scores before settling.
const RESERVE_SCAN: usize = 64;

/// Agent-level keys under which an agent is currently indexed (to remove exactly those).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Indexed {
    agent: Option<(u32, u64)>,
    whole: u32,
    gpus: u32,
}

/// Working state of one NUMA node of an agent.
#[derive(Clone, Copy, Debug, Default)]
struct NodeWork {
    /// Free CPUs.
    free: u32,
    /// Usable CPUs.
    total: u32,
    /// Free PUs in entirely free cores.
    whole: u32,
    /// Free memory, MB.
    mem: u64,
    /// The job holding a reservation on this node.
    reserved: Option<u64>,
    /// The key under which the node is in the node index: (free CPUs, free MB).
    indexed: Option<(u32, u64)>,
}

#[derive(Clone, Debug)]
struct AgentWork {
    free_cpus: CpuSet,
    nodes: Vec<NodeWork>,
    free_gpus: u32,
    reserved_gpus: u32,
    indexed: Indexed,
}

impl AgentWork {
    fn avail_gpus(&self) -> u32 {
        self.free_gpus.saturating_sub(self.reserved_gpus)
    }
    /// (free CPUs, usable CPUs, free MB) over unreserved nodes.
    fn open_totals(&self) -> (u32, u32, u64) {
        let mut f = 0;
        let mut t = 0;
        let mut m = 0u64;
        for x in &self.nodes {
            if x.reserved.is_none() {
                f += x.free;
                t += x.total;
                m = m.saturating_add(x.mem);
            }
        }
        (f, t, m)
    }
    /// The node-index key node `i` should have now.
    fn node_key(&self, i: usize, aware: bool) -> Option<(u32, u64)> {
        let x = &self.nodes[i];
        (aware && x.reserved.is_none() && x.free > 0).then_some((x.free, x.mem))
    }
    /// The agent-level keys it should have now.
    fn agent_keys(&self, aware: bool) -> Indexed {
        let whole = if aware {
            self.nodes
                .iter()
                .filter(|x| x.reserved.is_none() && x.total > 0 && x.free == x.total)
                .count() as u32
        } else {
            0
        };
        let (f, _, m) = self.open_totals();
        Indexed {
            agent: (f > 0).then_some((f, m)),
            whole,
            gpus: self.avail_gpus(),
        }
    }
}

#[derive(Clone, Debug)]
struct Held {
    agent: u32,
    nodes: Vec<usize>,
    /// GPUs actually held now.
    gpus: u32,
    /// GPUs the holder needs (re-captured as they come free, each cycle).
    want_gpus: u32,
}

/// A candidate before its CPU ids are chosen.
#[derive(Clone, Debug)]
struct Cand {
    agent: u32,
    takes: Vec<(usize, u32)>,
    mem: Vec<(usize, u64)>,
    whole_nodes: bool,
    pinned: bool,
    cost: f64,
}

/// A decision for one job: where it goes and which CPUs it gets. Apply it with
/// [`Planner::commit`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    agent: u32,
    cpus: CpuSet,
    mem: Vec<(usize, u64)>,
    gpus: u32,
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
}

fn frac(num: f64, den: f64) -> f64 {
    if den <= 0.0 { 0.0 } else { num / den }
}

/// Σ_i Σ_j f_i f_j (d_ij / d_ii - 1) over the CPU shares.
fn cross_term(topo: &Topology, takes: &[(usize, u32)]) -> f64 {
    let total: f64 = takes.iter().map(|t| f64::from(t.1)).sum();
    if takes.len() < 2 || total <= 0.0 {
        return 0.0;
    }
    let mut x = 0.0;
    for &(i, ti) in takes {
        let local = f64::from(topo.distance_by_index(i, i).max(1));
        for &(j, tj) in takes {
            if i != j {
                let rel = (f64::from(topo.distance_by_index(i, j)) / local - 1.0).max(0.0);
                x += f64::from(ti) / total * f64::from(tj) / total * rel;
            }
        }
    }
    x
}

/// Share of an open CPU range a placement with `avail` free CPUs can grant.
fn grant_term(job: &JobRequest, avail: u32) -> f64 {
    let min = job.cpus.min;
    match job.cpus.max {
        Some(max) if max > min => {
            f64::from(avail.min(max).saturating_sub(min)) / f64::from(max - min)
        }
        Some(_) => 0.0,
        None => frac(f64::from(avail.saturating_sub(min)), f64::from(avail)),
    }
}

fn better(a: &Cand, b: &Cand) -> bool {
    a.cost.total_cmp(&b.cost).is_lt()
}

/// Keeps the lowest-cost candidate among the first `k` (ties: the earlier one).
fn pick(k: usize, it: impl Iterator<Item = Cand>) -> Option<Cand> {
    let mut best: Option<Cand> = None;
    for c in it.take(k.max(1)) {
        if best.as_ref().is_none_or(|b| better(&c, b)) {
            best = Some(c);
        }
    }
    best
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
                        }
                    })
                    .collect(),
                free_gpus: a.free_gpus(),
                reserved_gpus: 0,
                indexed: Indexed::default(),
            };
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

    // ----- candidate evaluation -------------------------------------------------------

    /// Cost of placing `job` entirely in node `i` of agent `a`, if it fits there.
    fn node_cost(&self, a: u32, i: usize, job: &JobRequest) -> Option<f64> {
        let w = &self.work[a as usize];
        let x = &w.nodes[i];
        let c = job.cpus.min;
        if x.reserved.is_some() || x.free < c || x.mem < job.mem_mb.min {
            return None;
        }
        if job.gpus > w.avail_gpus() {
            return None;
        }
        let wt = &self.cfg.weights;
        let fragment = frac(f64::from(x.free - c), f64::from(x.total));
        let smt = match job.smt {
            SmtPolicy::WholeCores => frac(f64::from(c.saturating_sub(x.whole)), f64::from(c)),
            SmtPolicy::Pack => 0.0,
        };
        Some(wt.fragmentation * fragment + wt.smt_shared * smt - wt.grant * grant_term(job, x.free))
    }

    fn node_cand(a: u32, i: usize, job: &JobRequest, cost: f64) -> Cand {
        let m = job.mem_mb.min;
        Cand {
            agent: a,
            takes: vec![(i, job.cpus.min)],
            mem: if m > 0 { vec![(i, m)] } else { Vec::new() },
            whole_nodes: false,
            pinned: true,
            cost,
        }
    }

    /// The lowest-cost node among the first `k` feasible `(agent, node)` pairs (ties: the
    /// earlier one); candidates are only materialized for the winner.
    fn pick_node(
        &self,
        k: usize,
        it: impl Iterator<Item = (u32, usize)>,
        job: &JobRequest,
    ) -> Option<Cand> {
        let mut best: Option<(f64, u32, usize)> = None;
        let mut seen = 0;
        for (a, i) in it {
            let Some(cost) = self.node_cost(a, i, job) else {
                continue;
            };
            if best.is_none_or(|b| cost.total_cmp(&b.0).is_lt()) {
                best = Some((cost, a, i));
            }
            seen += 1;
            if seen >= k.max(1) {
                break;
            }
        }
        best.map(|(cost, a, i)| Self::node_cand(a, i, job, cost))
    }

    /// The nodes of agent `a` (GPU path: all of them are scored).
    fn agent_nodes(&self, a: u32) -> impl Iterator<Item = (u32, usize)> + '_ {
        let n = if self.agents[a as usize].numa_aware() {
            self.work[a as usize].nodes.len()
        } else {
            0
        };
        (0..n).map(move |i| (a, i))
    }

    fn smt_estimate(&self, w: &AgentWork, job: &JobRequest, takes: &[(usize, u32)]) -> f64 {
        if job.smt == SmtPolicy::Pack {
            return 0.0;
        }
        let total: u32 = takes.iter().map(|t| t.1).sum();
        let shared: u32 = takes
            .iter()
            .map(|&(i, t)| t.saturating_sub(w.nodes[i].whole))
            .sum();
        frac(f64::from(shared), f64::from(total))
    }

    /// numa-prefer across several nodes of one NUMA-aware agent.
    fn eval_multi(&self, a: u32, job: &JobRequest) -> Option<Cand> {
        let agent = &self.agents[a as usize];
        if !agent.numa_aware() {
            return None;
        }
        let topo = agent.topology();
        let w = &self.work[a as usize];
        let c = job.cpus.min;
        if job.gpus > w.avail_gpus() {
            return None;
        }
        let open: Vec<usize> = (0..w.nodes.len())
            .filter(|&i| w.nodes[i].reserved.is_none() && w.nodes[i].free > 0)
            .collect();
        let sum: u32 = open.iter().map(|&i| w.nodes[i].free).sum();
        if sum < c {
            return None;
        }
        let mut seeds = open;
        seeds.sort_by(|&x, &y| w.nodes[y].free.cmp(&w.nodes[x].free).then(x.cmp(&y)));
        seeds.truncate(self.cfg.max_seeds.max(1));
        let wt = &self.cfg.weights;
        let mut best: Option<Cand> = None;
        let mut group: Vec<usize> = Vec::new();
        let mut takes: Vec<(usize, u32)> = Vec::new();
        for &s in &seeds {
            // Grow from the seed by distance; among equally distant nodes, most free first.
            takes.clear();
            let mut need = c;
            let mut avail = 0;
            let mut total = 0;
            let order = topo.nodes_by_distance(s);
            let mut k = 0;
            while need > 0 && k < order.len() {
                let d = topo.distance_by_index(s, order[k] as usize);
                group.clear();
                while k < order.len() && topo.distance_by_index(s, order[k] as usize) == d {
                    let j = order[k] as usize;
                    if w.nodes[j].reserved.is_none() && w.nodes[j].free > 0 {
                        group.push(j);
                    }
                    k += 1;
                }
                group.sort_by(|&x, &y| {
                    (x != s)
                        .cmp(&(y != s))
                        .then(w.nodes[y].free.cmp(&w.nodes[x].free))
                        .then(x.cmp(&y))
                });
                for &j in &group {
                    if need == 0 {
                        break;
                    }
                    let t = w.nodes[j].free.min(need);
                    takes.push((j, t));
                    need -= t;
                    avail += w.nodes[j].free;
                    total += w.nodes[j].total;
                }
            }
            if need > 0 {
                continue;
            }
            // Every term but the (non-negative) spill: a lower bound to prune with.
            let bound = wt.extra_node * (takes.len() as f64 - 1.0)
                + wt.cross_node * cross_term(topo, &takes)
                + wt.fragmentation * frac(f64::from(avail - c), f64::from(total))
                + wt.smt_shared * self.smt_estimate(w, job, &takes)
                - wt.grant * grant_term(job, avail);
            if best
                .as_ref()
                .is_some_and(|b| b.cost.total_cmp(&bound).is_le())
            {
                continue;
            }
            let Some((mem, spill)) = split_memory(
                topo,
                |i| w.nodes[i].mem,
                |i| w.nodes[i].reserved.is_some(),
                &takes,
                job.mem_mb.min,
                true,
            ) else {
                continue;
            };
            let cand = Cand {
                agent: a,
                takes: takes.clone(),
                mem,
                whole_nodes: false,
                pinned: true,
                cost: bound + wt.memory_spill * spill,
            };
            if best.as_ref().is_none_or(|b| better(&cand, b)) {
                best = Some(cand);
            }
        }
        best
    }

    /// spread: even split over the nodes with the most free CPUs.
    fn eval_spread(&self, a: u32, job: &JobRequest) -> Option<Cand> {
        let agent = &self.agents[a as usize];
        if !agent.numa_aware() {
            return None;
        }
        let topo = agent.topology();
        let w = &self.work[a as usize];
        let c = job.cpus.min;
        if job.gpus > w.avail_gpus() {
            return None;
        }
        let mut open: Vec<usize> = (0..w.nodes.len())
            .filter(|&i| w.nodes[i].reserved.is_none() && w.nodes[i].free > 0)
            .collect();
        let (agent_free, agent_total, _) = w.open_totals();
        if agent_free < c {
            return None;
        }
        open.sort_by(|&x, &y| w.nodes[y].free.cmp(&w.nodes[x].free).then(x.cmp(&y)));
        open.truncate(c as usize);
        // Water-fill, smallest first, so capped nodes pass their share on.
        let mut order = open.clone();
        order.sort_by(|&x, &y| w.nodes[x].free.cmp(&w.nodes[y].free).then(x.cmp(&y)));
        let mut left = c;
        let mut takes = Vec::with_capacity(order.len());
        for (k, &i) in order.iter().enumerate() {
            let nodes_left = (order.len() - k) as u32;
            let share = left.div_ceil(nodes_left);
            let t = w.nodes[i].free.min(share);
            if t > 0 {
                takes.push((i, t));
            }
            left -= t;
        }
        if left > 0 {
            return None;
        }
        takes.sort_unstable();
        let (mem, spill) = split_memory(
            topo,
            |i| w.nodes[i].mem,
            |i| w.nodes[i].reserved.is_some(),
            &takes,
            job.mem_mb.min,
            true,
        )?;
        // Balance: std-dev of the free fraction of the agent's open CPU nodes afterwards.
        let mut fr = Vec::new();
        for i in 0..w.nodes.len() {
            if w.nodes[i].reserved.is_none() && w.nodes[i].total > 0 {
                let took = takes.iter().find(|t| t.0 == i).map_or(0, |t| t.1);
                fr.push(f64::from(w.nodes[i].free - took) / f64::from(w.nodes[i].total));
            }
        }
        let mean = fr.iter().sum::<f64>() / fr.len().max(1) as f64;
        let sd = (fr.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / fr.len().max(1) as f64)
            .sqrt();
        let wt = &self.cfg.weights;
        let cost = wt.balance * sd
            + wt.fragmentation * frac(f64::from(agent_free - c), f64::from(agent_total))
            + wt.smt_shared * self.smt_estimate(w, job, &takes)
            + wt.memory_spill * spill
            - wt.grant * grant_term(job, agent_free);
        Some(Cand {
            agent: a,
            takes,
            mem,
            whole_nodes: false,
            pinned: true,
            cost,
        })
    }

    /// Counts only: fullest nodes first, unpinned.
    fn eval_counts(&self, a: u32, job: &JobRequest) -> Option<Cand> {
        let topo = self.topo(a);
        let w = &self.work[a as usize];
        let c = job.cpus.min;
        if job.gpus > w.avail_gpus() {
            return None;
        }
        let (agent_free, agent_total, agent_mem) = w.open_totals();
        if agent_free < c || agent_mem < job.mem_mb.min {
            return None;
        }
        let mut open: Vec<usize> = (0..w.nodes.len())
            .filter(|&i| w.nodes[i].reserved.is_none() && w.nodes[i].free > 0)
            .collect();
        open.sort_by(|&x, &y| w.nodes[x].free.cmp(&w.nodes[y].free).then(x.cmp(&y)));
        let mut need = c;
        let mut takes = Vec::new();
        for i in open {
            if need == 0 {
                break;
            }
            let t = w.nodes[i].free.min(need);
            takes.push((i, t));
            need -= t;
        }
        takes.sort_unstable();
        let (mem, _) = split_memory(
            topo,
            |i| w.nodes[i].mem,
            |i| w.nodes[i].reserved.is_some(),
            &takes,
            job.mem_mb.min,
            true,
        )?;
        Some(Cand {
            agent: a,
            takes,
            mem,
            whole_nodes: false,
            pinned: false,
            cost: self.cfg.weights.fragmentation
                * frac(f64::from(agent_free - c), f64::from(agent_total)),
        })
    }

    /// numanodes: N entirely free nodes, closest together.
    fn eval_whole(&self, a: u32, job: &JobRequest, n: u32) -> Option<Cand> {
        let agent = &self.agents[a as usize];
        if !agent.numa_aware() {
            return None;
        }
        let topo = agent.topology();
        let w = &self.work[a as usize];
        if job.gpus > w.avail_gpus() {
            return None;
        }
        let full: Vec<usize> = (0..w.nodes.len())
            .filter(|&i| {
                w.nodes[i].reserved.is_none()
                    && w.nodes[i].total > 0
                    && w.nodes[i].free == w.nodes[i].total
            })
            .collect();
        let n = n as usize;
        if full.len() < n {
            return None;
        }
        let cpu_nodes = w.nodes.iter().filter(|x| x.total > 0).count();
        let wt = &self.cfg.weights;
        let mut best: Option<Cand> = None;
        for &s in full.iter().take(self.cfg.max_seeds.max(1)) {
            let mut others: Vec<usize> = full.iter().copied().filter(|&j| j != s).collect();
            others.sort_by(|&x, &y| {
                topo.distance_by_index(s, x)
                    .cmp(&topo.distance_by_index(s, y))
                    .then(x.cmp(&y))
            });
            let mut chosen: Vec<usize> = std::iter::once(s).chain(others).take(n).collect();
            chosen.sort_unstable();
            let cpus: u32 = chosen.iter().map(|&i| w.nodes[i].total).sum();
            if cpus < job.cpus.min {
                continue;
            }
            let free_mem: u64 = chosen.iter().map(|&i| w.nodes[i].mem).sum();
            let grant_mem = job.mem_mb.max.map_or(free_mem, |mx| mx.min(free_mem));
            if grant_mem < job.mem_mb.min {
                continue;
            }
            let takes: Vec<(usize, u32)> = chosen.iter().map(|&i| (i, w.nodes[i].total)).collect();
            let Some((mem, _)) = split_memory(
                topo,
                |i| w.nodes[i].mem,
                |i| w.nodes[i].reserved.is_some(),
                &takes,
                grant_mem,
                false,
            ) else {
                continue;
            };
            let cost = wt.cross_node * cross_term(topo, &takes)
                + wt.fragmentation * frac((full.len() - n) as f64, cpu_nodes as f64);
            let cand = Cand {
                agent: a,
                takes,
                mem,
                whole_nodes: true,
                pinned: true,
                cost,
            };
            if best.as_ref().is_none_or(|b| better(&cand, b)) {
                best = Some(cand);
            }
        }
        best
    }

    // ----- search ---------------------------------------------------------------------

    fn gpu_agents(&self, g: u32) -> impl Iterator<Item = u32> + '_ {
        self.gpu_ix.range((g, 0)..).map(|&(_, a)| a)
    }

    fn counts_from<'s>(
        &'s self,
        ix: &'s CapIndex,
        job: &'s JobRequest,
    ) -> impl Iterator<Item = Cand> + 's {
        ix.fitting(job.cpus.min, job.mem_mb.min)
            .filter_map(move |(_, (_, a, _))| self.eval_counts(a, job))
    }

    fn search(&self, job: &JobRequest) -> Option<Cand> {
        let k = self.cfg.candidates.max(1);
        let c = job.cpus.min;
        let m = job.mem_mb.min;
        let g = job.gpus;
        if let Some(n) = job.numanodes {
            return if g > 0 {
                pick(
                    k,
                    self.gpu_agents(g)
                        .filter_map(|a| self.eval_whole(a, job, n)),
                )
            } else {
                let it = self
                    .whole_ix
                    .range(n..)
                    .flat_map(|(_, s)| s.iter().copied())
                    .filter_map(|a| self.eval_whole(a, job, n));
                pick(k, it)
            };
        }
        let counts = |ix| self.counts_from(ix, job);
        match self.policy_of(job) {
            AffinityPolicy::NumaStrict => {
                if g > 0 {
                    self.pick_node(
                        k,
                        self.gpu_agents(g).flat_map(|a| self.agent_nodes(a)),
                        job,
                    )
                } else {
                    self.pick_node(
                        k,
                        self.nodes_ix
                            .fitting(c, m)
                            .map(|(_, (_, a, i))| (a, i as usize)),
                        job,
                    )
                }
            }
            AffinityPolicy::NumaPrefer => {
                if g > 0 {
                    self.pick_node(
                        k,
                        self.gpu_agents(g).flat_map(|a| self.agent_nodes(a)),
                        job,
                    )
                    .or_else(|| {
                        pick(
                            k,
                            self.gpu_agents(g).filter_map(|a| self.eval_multi(a, job)),
                        )
                    })
                    .or_else(|| {
                        pick(
                            k,
                            self.gpu_agents(g)
                                .filter(|&a| !self.agents[a as usize].numa_aware())
                                .filter_map(|a| self.eval_counts(a, job)),
                        )
                    })
                } else {
                    self.pick_node(
                        k,
                        self.nodes_ix
                            .fitting(c, m)
                            .map(|(_, (_, a, i))| (a, i as usize)),
                        job,
                    )
                    .or_else(|| {
                        pick(
                            k,
                            self.agents_ix
                                .fitting(c, m)
                                .filter_map(|(_, (_, a, _))| self.eval_multi(a, job)),
                        )
                    })
                    .or_else(|| pick(k, counts(&self.plain_ix)))
                }
            }
            AffinityPolicy::Spread => {
                if g > 0 {
                    pick(
                        k,
                        self.gpu_agents(g).filter_map(|a| self.eval_spread(a, job)),
                    )
                    .or_else(|| {
                        pick(
                            k,
                            self.gpu_agents(g)
                                .filter(|&a| !self.agents[a as usize].numa_aware())
                                .filter_map(|a| self.eval_counts(a, job)),
                        )
                    })
                } else {
                    pick(
                        k,
                        self.agents_ix
                            .fitting(c, m)
                            .filter_map(|(_, (_, a, _))| self.eval_spread(a, job)),
                    )
                    .or_else(|| pick(k, counts(&self.plain_ix)))
                }
            }
            AffinityPolicy::None => {
                if g > 0 {
                    pick(
                        k,
                        self.gpu_agents(g).filter_map(|a| self.eval_counts(a, job)),
                    )
                } else {
                    let a = pick(k, counts(&self.agents_ix));
                    let b = pick(k, counts(&self.plain_ix));
                    match (a, b) {
                        (Some(x), Some(y)) => Some(if better(&y, &x) { y } else { x }),
                        (x, y) => x.or(y),
                    }
                }
            }
        }
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
                let ok = take_in_node(topo, i, &w.free_cpus, t, job.smt, &mut cpus);
                debug_assert!(ok, "candidate counted more free CPUs than the node has");
            }
        }
        Decision {
            agent: a,
            cpus,
            mem: cand.mem,
            gpus: job.gpus,
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

    fn apply(&mut self, a: u32, cpus: &CpuSet, mem: &[(usize, u64)], gpus: u32) {
        let topo = self.agents[a as usize].topology();
        let w = &mut self.work[a as usize];
        w.free_cpus.difference_with(cpus);
        for &(i, mb) in mem {
            w.nodes[i].mem -= mb;
        }
        w.free_gpus -= gpus;
        let mut touched: Vec<usize> = cpus
            .iter()
            .filter_map(|c| topo.core_of(c))
            .map(|ci| topo.node_index_of_core(ci))
            .collect();
        touched.sort_unstable();
        touched.dedup();
        for i in touched {
            (w.nodes[i].free, w.nodes[i].whole) = node_counts(topo, i, &w.free_cpus);
        }
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
        if !a.cpus.is_subset(topo.cpus()) || !a.cpus.is_disjoint(&w.free_cpus) {
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
        w.free_cpus.union_with(&a.cpus);
        for (i, mb) in mem {
            w.nodes[i].mem += mb;
        }
        w.free_gpus = w.free_gpus.saturating_add(a.granted_gpus);
        for i in 0..w.nodes.len() {
            if topo.nodes()[i].cpus().intersection_len(&a.cpus) > 0 {
                (w.nodes[i].free, w.nodes[i].whole) = node_counts(topo, i, &w.free_cpus);
            }
        }
        self.reindex(ai);
        true
    }

    /// Applies a decision and returns the job's assignment.
    pub fn commit(&mut self, job: &JobRequest, d: Decision) -> Assignment {
        self.apply(d.agent, &d.cpus, &d.mem, d.gpus);
        let agent = &self.agents[d.agent as usize];
        let topo = agent.topology();
        let cpu_nodes: NodeSet = d.cpus.iter().filter_map(|c| topo.node_of(c)).collect();
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
            granted_mem_mb: memory_per_node.iter().map(|m| m.mb).sum(),
            granted_gpus: d.gpus,
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
            if t > 0 && take_in_node(topo, i, &w.free_cpus, t, job.smt, &mut extra) {
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
                    share += (u128::from(node.memory_mb()) * on / tot) as u64;
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
        self.apply(a, &extra, &mem_add, 0);
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
        asg.granted_mem_mb = asg.memory_per_node.iter().map(|m| m.mb).sum();
    }

    // ----- reasons --------------------------------------------------------------------

    fn closest(&self, e: Option<(u32, (u64, u32, u32))>, node: bool) -> Option<Closest> {
        e.map(|(c, (m, a, i))| Closest {
            agent_id: self.agents[a as usize].agent_id().to_string(),
            node: node.then(|| self.topo(a).nodes()[i as usize].id()),
            free_cpus: c,
            free_mem_mb: m,
        })
    }

    /// Why `job` does not fit right now (assuming [`Planner::decide`] failed).
    pub fn reason(&self, job: &JobRequest) -> PendingReason {
        if self.agents.is_empty() {
            return PendingReason::NoAgents;
        }
        let policy = self.policy_of(job);
        let numa_needed = job.numanodes.is_some() || policy == AffinityPolicy::NumaStrict;
        if numa_needed && !self.any_aware {
            return PendingReason::NoNumaLayout {
                policy: if job.numanodes.is_some() {
                    "numanodes".to_string()
                } else {
                    policy.to_string()
                },
            };
        }
        if job.gpus > 0 {
            let mut without = job.clone();
            without.gpus = 0;
            if self.search(&without).is_some() {
                let most = self
                    .gpu_ix
                    .iter()
                    .next_back()
                    .map(|&(g, a)| (self.agents[a as usize].agent_id().to_string(), g));
                return PendingReason::Gpus {
                    gpus: job.gpus,
                    most,
                };
            }
        }
        let c = job.cpus.min;
        let m = job.mem_mb.min;
        if let Some(n) = job.numanodes {
            let most = self.whole_ix.iter().next_back().and_then(|(&cnt, s)| {
                s.iter()
                    .next()
                    .map(|&a| (self.agents[a as usize].agent_id().to_string(), cnt))
            });
            return PendingReason::WholeNodes {
                nodes: n,
                cpus: c,
                mem_mb: m,
                most,
            };
        }
        if policy == AffinityPolicy::NumaStrict {
            let largest = self.nodes_ix.largest();
            let fit = largest
                .filter(|l| l.0 >= c)
                .and_then(|_| self.nodes_ix.most_memory_with(c));
            return PendingReason::OneNode {
                cpus: c,
                mem_mb: m,
                largest: self.closest(largest, true),
                cpu_fit_most_mem: self.closest(fit, true),
            };
        }
        let (ix_a, ix_b) = (&self.agents_ix, &self.plain_ix);
        let largest = match (ix_a.largest(), ix_b.largest()) {
            (Some(x), Some(y)) => Some(if (y.0, y.1.0) > (x.0, x.1.0) { y } else { x }),
            (x, y) => x.or(y),
        };
        let fit = if largest.is_some_and(|l| l.0 >= c) {
            match (ix_a.most_memory_with(c), ix_b.most_memory_with(c)) {
                (Some(x), Some(y)) => Some(if y.1.0 > x.1.0 { y } else { x }),
                (x, y) => x.or(y),
            }
        } else {
            None
        };
        PendingReason::OneAgent {
            cpus: c,
            mem_mb: m,
            largest: self.closest(largest, false),
            cpu_fit_most_mem: self.closest(fit, false),
        }
    }

    // ----- reservations ---------------------------------------------------------------

    /// Whether `job_id` holds a reservation.
    pub fn is_holder(&self, job_id: u64) -> bool {
        self.held.contains_key(&job_id)
    }

    /// Number of reservations in force.
    pub fn reservation_count(&self) -> usize {
        self.held.len()
    }

    /// Holders in job-id order.
    pub fn holders(&self) -> Vec<u64> {
        self.held.keys().copied().collect()
    }

    /// Reserves `nodes` (positions) and up to `gpus` GPUs of agent `a` for `job_id`.
    /// Nodes already reserved by another job are skipped; returns false if none is left.
    fn reserve_at(&mut self, job_id: u64, a: u32, nodes: &[usize], gpus: u32) -> bool {
        let w = &self.work[a as usize];
        let nodes: Vec<usize> = nodes
            .iter()
            .copied()
            .filter(|&i| i < w.nodes.len() && w.nodes[i].reserved.is_none())
            .collect();
        if nodes.is_empty() {
            return false;
        }
        let w = &mut self.work[a as usize];
        for &i in &nodes {
            w.nodes[i].reserved = Some(job_id);
        }
        let g = gpus.min(w.avail_gpus());
        w.reserved_gpus += g;
        self.held.insert(
            job_id,
            Held {
                agent: a,
                nodes,
                gpus: g,
                want_gpus: gpus,
            },
        );
        self.reindex(a);
        true
    }

    /// Restores a reservation made in an earlier cycle (by agent id and node ids);
    /// returns false when the agent or all its nodes are gone.
    pub fn restore(&mut self, r: &Reservation) -> bool {
        let Some(&a) = self.by_id.get(r.agent_id.as_str()) else {
            return false;
        };
        let a = a as usize;
        let topo = self.agents[a].topology();
        let nodes: Vec<usize> = r.nodes.iter().filter_map(|n| topo.node_index(n)).collect();
        self.reserve_at(r.job_id, a as u32, &nodes, r.gpus)
    }

    /// Lifts `job_id`'s reservation (so the holder can use it, or because it was placed);
    /// returns it so it can be put back with [`Planner::restore`].
    pub fn unreserve(&mut self, job_id: u64) -> Option<Reservation> {
        let h = self.held.remove(&job_id)?;
        let r = self.describe(job_id, &h);
        let w = &mut self.work[h.agent as usize];
        for &i in &h.nodes {
            w.nodes[i].reserved = None;
        }
        w.reserved_gpus -= h.gpus;
        self.reindex(h.agent);
        Some(r)
    }

    fn describe(&self, job_id: u64, h: &Held) -> Reservation {
        let topo = self.topo(h.agent);
        Reservation {
            job_id,
            agent_id: self.agents[h.agent as usize].agent_id().to_string(),
            nodes: h.nodes.iter().map(|&i| topo.nodes()[i].id()).collect(),
            gpus: h.want_gpus,
        }
    }

    /// The reservations in force, in job-id order.
    pub fn reservations(&self) -> Vec<Reservation> {
        self.held
            .iter()
            .map(|(&j, h)| self.describe(j, h))
            .collect()
    }

    /// The pending reason of a holder: what it waits for.
    pub fn reserved_reason(&self, job: &JobRequest) -> Option<PendingReason> {
        let h = self.held.get(&job.job_id)?;
        let w = &self.work[h.agent as usize];
        let topo = self.topo(h.agent);
        let nodes: NodeSet = h.nodes.iter().map(|&i| topo.nodes()[i].id()).collect();
        Some(PendingReason::Reserved {
            agent_id: self.agents[h.agent as usize].agent_id().to_string(),
            nodes,
            free_cpus: h.nodes.iter().map(|&i| w.nodes[i].free).sum(),
            cpus: job.cpus.min,
        })
    }

    /// Picks and makes a reservation for a job that does not fit: the node (for shapes a
    /// node can hold) or the agent closest to fitting it when idle-able, i.e. with the
    /// smallest relative shortfall of free CPUs, memory and GPUs among targets whose
    /// capacity is large enough. Nodes held by a job for which `preemptible` is true (a job
    /// later in this cycle's order) count as available; the chosen target's such holders
    /// lose their whole reservation. Returns false if no target qualifies.
    pub fn reserve_for(&mut self, job: &JobRequest, preemptible: &dyn Fn(u64) -> bool) -> bool {
        let taken = |r: &Option<u64>| r.is_some_and(|h| !preemptible(h));
        let c = job.cpus.min;
        let m = job.mem_mb.min;
        let g = job.gpus;
        let policy = self.policy_of(job);
        let shortfall = |free_c: u32, free_m: u64, free_g: u32| -> f64 {
            frac(f64::from(c.saturating_sub(free_c)), f64::from(c))
                + frac(m.saturating_sub(free_m) as f64, m as f64)
                + frac(f64::from(g.saturating_sub(free_g)), f64::from(g))
        };
        let node_level = job.numanodes.is_none()
            && matches!(
                policy,
                AffinityPolicy::NumaStrict | AffinityPolicy::NumaPrefer
            )
            && self.agents.iter().any(|ag| {
                ag.numa_aware()
                    && ag
                        .topology()
                        .nodes()
                        .iter()
                        .any(|n| n.cpus().len() as u32 >= c && n.memory_mb() >= m)
            });
        let mut best: Option<(f64, u32, Vec<usize>)> = None;
        if node_level {
            // Most free nodes first, from the index: a bounded look at the front runners.
            let mut seen = 0;
            for (free_c, (free_m, a, i)) in self.nodes_ix.largest_first() {
                let node = &self.topo(a).nodes()[i as usize];
                if (node.cpus().len() as u32) < c || node.memory_mb() < m {
                    continue;
                }
                let s = shortfall(free_c, free_m, self.work[a as usize].avail_gpus());
                if best.as_ref().is_none_or(|b| s < b.0) {
                    best = Some((s, a, vec![i as usize]));
                }
                seen += 1;
                if seen == RESERVE_SCAN {
                    break;
                }
            }
        }
        for (ai, ag) in self.agents.iter().enumerate() {
            if best.is_some() && node_level {
                // The index had open candidates; full scans are for when it has none.
                break;
            }
            let w = &self.work[ai];
            let topo = ag.topology();
            let gfree = w.avail_gpus();
            if node_level {
                if !ag.numa_aware() {
                    continue;
                }
                for (i, n) in topo.nodes().iter().enumerate() {
                    if taken(&w.nodes[i].reserved)
                        || (n.cpus().len() as u32) < c
                        || n.memory_mb() < m
                    {
                        continue;
                    }
                    let s = shortfall(w.nodes[i].free, w.nodes[i].mem, gfree);
                    if best.as_ref().is_none_or(|b| s < b.0) {
                        best = Some((s, ai as u32, vec![i]));
                    }
                }
            } else {
                if w.nodes.iter().any(|x| taken(&x.reserved)) {
                    continue;
                }
                let needs_numa = job.numanodes.is_some() || policy == AffinityPolicy::NumaStrict;
                if needs_numa && !ag.numa_aware() {
                    continue;
                }
                let cap_c = topo.cpus().len() as u32;
                if cap_c < c || topo.total_memory_mb() < m {
                    continue;
                }
                if let Some(n) = job.numanodes
                    && topo.nodes().iter().filter(|x| !x.is_memory_only()).count() < n as usize
                {
                    continue;
                }
                let f = w.nodes.iter().map(|x| x.free).sum();
                let fm = w.nodes.iter().fold(0u64, |a, x| a.saturating_add(x.mem));
                let s = shortfall(f, fm, gfree);
                if best.as_ref().is_none_or(|b| s < b.0) {
                    best = Some((s, ai as u32, (0..topo.num_nodes()).collect()));
                }
            }
        }
        let Some((_, a, nodes)) = best else {
            return false;
        };
        let victims: BTreeSet<u64> = nodes
            .iter()
            .filter_map(|&i| self.work[a as usize].nodes[i].reserved)
            .collect();
        for v in victims {
            self.unreserve(v);
        }
        self.reserve_at(job.job_id, a, &nodes, g)
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
            })
            .sum();
        work + self.nodes_ix.heap_bytes() + self.agents_ix.heap_bytes() + self.plain_ix.heap_bytes()
    }
}
