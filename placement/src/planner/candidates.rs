//! Candidate placements and their cost: one function per policy shape scores a node or an
//! agent for a job (see the parent module for the rules), and [`pick`] keeps the cheapest
//! of the first [`crate::PolicyConfig::candidates`] feasible candidates that `search`
//! offers.
//!
//! Invariant: evaluation never mutates the planner; a candidate only lists node positions
//! that are not reserved, with counts no larger than their free CPUs and memory.

use std::sync::Arc;

use super::cache::{self, L3Score};
use super::memo::Found;
use super::{AgentWork, Planner};
use crate::request::{JobRequest, SmtPolicy};
use crate::select::split_memory;
use crate::sets::NodeSet;
use crate::topology::Topology;

/// How many times [`crate::PolicyConfig::candidates`] feasible nodes are scored at most
/// when none of the first ones can hold a job in its ideal L3 layout.
pub(super) const CACHE_SCAN: usize = 8;

/// A candidate before its CPU ids are chosen.
#[derive(Clone, Debug)]
pub(super) struct Cand {
    pub(super) agent: u32,
    pub(super) takes: Vec<(usize, u32)>,
    pub(super) mem: Vec<(usize, u64)>,
    pub(super) whole_nodes: bool,
    pub(super) pinned: bool,
    pub(super) cost: f64,
}

pub(super) fn frac(num: f64, den: f64) -> f64 {
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

pub(super) fn better(a: &Cand, b: &Cand) -> bool {
    a.cost.total_cmp(&b.cost).is_lt()
}

/// Keeps the lowest-cost candidate among the first `k` (ties: the earlier one).
pub(super) fn pick(k: usize, it: impl Iterator<Item = Cand>) -> Option<Cand> {
    let mut best: Option<Cand> = None;
    for c in it.take(k.max(1)) {
        if best.as_ref().is_none_or(|b| better(&c, b)) {
            best = Some(c);
        }
    }
    best
}

impl<'a> Planner<'a> {
    // ----- candidate evaluation -------------------------------------------------------

    /// Cost of placing `job` entirely in node `i` of agent `a`, if it fits there, and
    /// whether its L3 layout there is ideal (see `cache.rs`; true when L3 does not count).
    /// Without `run_selection`, a node whose L3 layout is only known by running the CPU
    /// selection is left out (`None`).
    fn node_cost(
        &self,
        a: u32,
        i: usize,
        job: &JobRequest,
        run_selection: bool,
    ) -> Option<(f64, bool)> {
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
        // The L3 term first: a node left out for it costs nothing more.
        let l3 = if wt.cache_split <= 0.0 {
            L3Score::Flat
        } else {
            cache::fit(
                self.topo(a),
                i,
                &w.free_cpus,
                cache::NodeDomains {
                    counts: &w.caches,
                    best: x.best_domain,
                    orders: &w.cache_orders,
                },
                c,
                job.smt,
                self.cache_of(job),
                run_selection,
            )
        };
        let fit = match l3 {
            L3Score::Flat => None,
            L3Score::Unknown => return None,
            L3Score::Fit(f) => Some(f),
        };
        let fragment = frac(f64::from(x.free - c), f64::from(x.total));
        let gpu = self.gpu_term(a, &[(i, c)], job);
        let smt = match job.smt {
            SmtPolicy::WholeCores => frac(f64::from(c.saturating_sub(x.whole)), f64::from(c)),
            SmtPolicy::Pack => 0.0,
        };
        let base = wt.fragmentation * fragment + wt.smt_shared * smt
            - wt.grant * grant_term(job, x.free)
            + gpu;
        Some(match fit {
            None => (base, true),
            Some(f) => (
                base + wt.cache_split * f64::from(f.excess) + wt.cache_fragmentation * f.leftover,
                f.excess == 0,
            ),
        })
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
    /// earlier one). While none of them has an ideal L3 layout, up to
    /// [`CACHE_SCAN`]` * k` feasible pairs are looked at, the ones past the first `k` only
    /// when their layout is known without running the CPU selection (a packed job that
    /// fits a domain). The first `k` are always scored as without L3 terms plus their
    /// exact L3 term, so with a `cache_split` larger than the spread of the other terms the
    /// winner never spans more L3 domains than the node-only winner. Candidates are only
    /// materialized for the winner.
    pub(super) fn pick_node(
        &self,
        k: usize,
        it: impl Iterator<Item = (u32, usize)>,
        job: &JobRequest,
    ) -> Option<Cand> {
        let k = k.max(1);
        // Past the first `k`, only a node with an ideal L3 layout known without the
        // selection is scored; when no node can have one, there is nothing to look for.
        let hopeless = self.cfg.weights.cache_split > 0.0
            && self.split_only.is_some_and(|largest| {
                self.cache_of(job) == crate::request::CachePolicy::Spread || job.cpus.min > largest
            });
        let scan = if hopeless { k } else { k * CACHE_SCAN };
        let mut best: Option<(f64, bool, u32, usize)> = None;
        let mut seen = 0;
        for (a, i) in it {
            if !self.fits_node(a, i, job) {
                continue;
            }
            seen += 1;
            if let Some((cost, ideal)) = self.node_cost(a, i, job, seen <= k)
                && best.is_none_or(|b| cost.total_cmp(&b.0).is_lt())
            {
                best = Some((cost, ideal, a, i));
            }
            if seen >= k && (best.is_some_and(|b| b.1) || seen >= scan) {
                break;
            }
        }
        best.map(|(cost, _, a, i)| Self::node_cand(a, i, job, cost))
    }

    /// Whether `job` fits entirely in node `i` of agent `a` (the feasibility part of
    /// [`Self::node_cost`]).
    fn fits_node(&self, a: u32, i: usize, job: &JobRequest) -> bool {
        let w = &self.work[a as usize];
        let x = &w.nodes[i];
        x.reserved.is_none()
            && x.free >= job.cpus.min
            && x.mem >= job.mem_mb.min
            && job.gpus <= w.avail_gpus()
    }

    /// The GPU locality term of a candidate taking CPUs on node positions `takes` of
    /// agent `a` (0 for jobs without GPUs; see [`crate::gpus::locality_cost`]).
    fn gpu_term(&self, a: u32, takes: &[(usize, u32)], job: &JobRequest) -> f64 {
        if job.gpus == 0 {
            return 0.0;
        }
        let topo = self.topo(a);
        let nodes: NodeSet = takes.iter().map(|&(i, _)| topo.nodes()[i].id()).collect();
        crate::gpus::locality_cost(topo, &self.work[a as usize].free_gpus, job.gpus, &nodes)
    }

    /// The nodes of agent `a` (GPU path: all of them are scored).
    pub(super) fn agent_nodes(&self, a: u32) -> impl Iterator<Item = (u32, usize)> + '_ {
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

    /// numa-prefer across several nodes of one NUMA-aware agent (from the planner's memo
    /// when an agent in the same state was evaluated for the same job shape).
    pub(super) fn eval_multi(&self, a: u32, job: &JobRequest) -> Option<Cand> {
        if job.gpus > 0 {
            return self.grow_multi(a, job);
        }
        self.multi_found(a, job).map(|f| f.cand(a))
    }

    /// [`Self::eval_multi`] for a job without GPUs, shared from the memo.
    fn multi_found(&self, a: u32, job: &JobRequest) -> Option<Arc<Found>> {
        debug_assert_eq!(job.gpus, 0, "GPU jobs are not memoized");
        if !self.agents[a as usize].numa_aware() {
            return None;
        }
        let nodes = &self.work[a as usize].nodes;
        self.multi_memo
            .get_or_eval(self.topo(a), nodes, job, || self.grow_multi(a, job))
    }

    /// [`pick`] over [`Self::eval_multi`] of `agents` for a job without GPUs, making a
    /// candidate of the winner only.
    pub(super) fn pick_multi(
        &self,
        k: usize,
        agents: impl Iterator<Item = u32>,
        job: &JobRequest,
    ) -> Option<Cand> {
        let mut best: Option<(u32, Arc<Found>)> = None;
        let found = agents.filter_map(|a| self.multi_found(a, job).map(|f| (a, f)));
        for (a, f) in found.take(k.max(1)) {
            if best
                .as_ref()
                .is_none_or(|b| f.cost().total_cmp(&b.1.cost()).is_lt())
            {
                best = Some((a, f));
            }
        }
        best.map(|(a, f)| f.cand(a))
    }

    /// [`Self::eval_multi`] without the memo: grows node sets from each seed.
    pub(super) fn grow_multi(&self, a: u32, job: &JobRequest) -> Option<Cand> {
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
            let extra = wt.extra_node * (takes.len() as f64 - 1.0);
            let fragment = wt.fragmentation * frac(f64::from(avail - c), f64::from(total));
            let smt = wt.smt_shared * self.smt_estimate(w, job, &takes);
            let grant = wt.grant * grant_term(job, avail);
            let gpu = self.gpu_term(a, &takes, job);
            // The same sum without the (non-negative) cross-node term is no larger (adding
            // the same terms in the same order keeps `<=` in floating point): a seed it
            // already rules out needs no cross term.
            if wt.cross_node >= 0.0
                && best.as_ref().is_some_and(|b| {
                    b.cost
                        .total_cmp(&(extra + fragment + smt - grant + gpu))
                        .is_le()
                })
            {
                continue;
            }
            // Every term but the (non-negative) spill: a lower bound to prune with.
            let bound =
                extra + wt.cross_node * cross_term(topo, &takes) + fragment + smt - grant + gpu;
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
    pub(super) fn eval_spread(&self, a: u32, job: &JobRequest) -> Option<Cand> {
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
            - wt.grant * grant_term(job, agent_free)
            + self.gpu_term(a, &takes, job);
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
    pub(super) fn eval_counts(&self, a: u32, job: &JobRequest) -> Option<Cand> {
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
    pub(super) fn eval_whole(&self, a: u32, job: &JobRequest, n: u32) -> Option<Cand> {
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
            let free_mem = chosen
                .iter()
                .fold(0u64, |s, &i| s.saturating_add(w.nodes[i].mem));
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
}
