//! Reservations for starving jobs: choosing the target (the node or agent closest to
//! fitting), holding it (its nodes leave every index, its GPUs are set aside), lifting it
//! for the holder's own turn, and describing it.
//!
//! Invariants: a node is reserved by at most one job; `reserved_gpus` of an agent is the sum
//! of its holders' held GPUs; every change goes through `reindex`.

use std::collections::BTreeSet;

use super::Planner;
use super::candidates::frac;
use crate::plan::Reservation;
use crate::reason::PendingReason;
use crate::request::{AffinityPolicy, JobRequest};
use crate::sets::NodeSet;

/// How many open nodes the reservation search scores before settling.
const RESERVE_SCAN: usize = 64;

#[derive(Clone, Debug)]
pub(super) struct Held {
    agent: u32,
    nodes: Vec<usize>,
    /// GPUs actually held now.
    gpus: u32,
    /// GPUs the holder needs (re-captured as they come free, each cycle).
    want_gpus: u32,
}

impl Planner<'_> {
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
}
