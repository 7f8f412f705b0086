//! The planner's working state of one agent: its free CPU ids, per-node counts (free
//! CPUs, whole-core PUs, memory, reservation, index key), free GPUs and per-L3-domain
//! counts, and how a change of free CPUs updates them from the touched cores alone.
//! The planner owns one [`AgentWork`] per agent and keeps its indexes in line with it.

use super::cache;
#[cfg(debug_assertions)]
use crate::select::node_counts;
use crate::sets::{CpuSet, GpuSet};
use crate::topology::Topology;

/// Agent-level keys under which an agent is currently indexed (to remove exactly those).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Indexed {
    pub(super) agent: Option<(u32, u64)>,
    pub(super) whole: u32,
    pub(super) gpus: u32,
}

/// Working state of one NUMA node of an agent.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NodeWork {
    /// Free CPUs.
    pub(super) free: u32,
    /// Usable CPUs.
    pub(super) total: u32,
    /// Free PUs in entirely free cores.
    pub(super) whole: u32,
    /// Free memory, MB.
    pub(super) mem: u64,
    /// The job holding a reservation on this node.
    pub(super) reserved: Option<u64>,
    /// The key under which the node is in the node index: (free CPUs, free MB).
    pub(super) indexed: Option<(u32, u64)>,
    /// The most free PUs, and free PUs in entirely free cores, of any one of the node's
    /// cache domains (kept for nodes with 2+ domains; see [`cache::best_domain`]).
    pub(super) best_domain: (u32, u32),
}

#[derive(Clone, Debug)]
pub(super) struct AgentWork {
    pub(super) free_cpus: CpuSet,
    pub(super) nodes: Vec<NodeWork>,
    pub(super) free_gpus: GpuSet,
    pub(super) reserved_gpus: u32,
    pub(super) indexed: Indexed,
    /// Per L3 cache domain (global index) `(free PUs, free PUs in entirely free cores)`;
    /// empty when the topology has no node with several domains.
    pub(super) caches: Vec<(u32, u32)>,
    /// The split nodes' domains in packing order, kept with `caches`.
    pub(super) cache_orders: cache::Orders,
}

impl AgentWork {
    /// Takes `cpus` out of the free CPUs (`take`) or gives them back, and updates the node
    /// counts (`free`, `whole`) and the cache-domain counts from the cores of `cpus` alone
    /// (a job's few cores instead of every core of its nodes). Nodes with one cache domain
    /// get their domain recounted, as before. In debug builds the result is checked
    /// against a full recount.
    pub(super) fn change_free(&mut self, topo: &Topology, cpus: &CpuSet, take: bool) {
        let cores = topo.cores();
        // The cores of `cpus` (siblings are mostly adjacent ids: skip repeats early).
        let mut touched: Vec<(usize, u32)> = Vec::with_capacity(cpus.len());
        for ci in cpus.iter().filter_map(|c| topo.core_of(c)) {
            if touched.last().is_none_or(|&(last, _)| last != ci) {
                touched.push((ci, 0));
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for t in &mut touched {
            t.1 = cores[t.0].intersection_len(&self.free_cpus) as u32;
        }
        if take {
            self.free_cpus.difference_with(cpus);
        } else {
            self.free_cpus.union_with(cpus);
        }
        let mut flat: Vec<usize> = Vec::new();
        for &(ci, before) in &touched {
            let core = &cores[ci];
            let len = core.len() as u32;
            let after = core.intersection_len(&self.free_cpus) as u32;
            let whole = |n: u32| if n == len { n } else { 0 };
            let i = topo.node_index_of_core(ci);
            let nw = &mut self.nodes[i];
            nw.free = nw.free - before + after;
            nw.whole = nw.whole - whole(before) + whole(after);
            if self.caches.is_empty() {
                continue;
            }
            let node = &topo.nodes()[i];
            if node.num_caches() > 1 {
                let d = topo.cache_of_core(ci);
                if node.cache_range().contains(&d) && topo.cache_cores(d).contains(&(ci as u32)) {
                    let c = &mut self.caches[d];
                    c.0 = c.0 - before + after;
                    c.1 = c.1 - whole(before) + whole(after);
                }
            } else {
                flat.push(i);
            }
        }
        flat.dedup();
        for i in flat {
            cache::refresh_node(topo, i, &self.free_cpus, &mut self.caches);
        }
        if !self.caches.is_empty() {
            let mut last = None;
            for &(ci, _) in &touched {
                let i = topo.node_index_of_core(ci);
                if last != Some(i) {
                    last = Some(i);
                    self.nodes[i].best_domain = cache::best_domain(topo, i, &self.caches);
                    self.cache_orders.sort_node(topo, i, &self.caches);
                }
            }
        }
        #[cfg(debug_assertions)]
        for &(ci, _) in &touched {
            let i = topo.node_index_of_core(ci);
            let nw = &self.nodes[i];
            debug_assert_eq!((nw.free, nw.whole), node_counts(topo, i, &self.free_cpus));
            if !self.caches.is_empty() {
                let mut fresh = self.caches.clone();
                cache::refresh_node(topo, i, &self.free_cpus, &mut fresh);
                debug_assert_eq!(fresh, self.caches);
                debug_assert_eq!(nw.best_domain, cache::best_domain(topo, i, &fresh));
                debug_assert_eq!(self.cache_orders, cache::Orders::new(topo, &fresh));
            }
        }
    }

    /// The per-domain counts for the CPU selection, when they are kept.
    pub(super) fn domain_counts(&self) -> Option<&[(u32, u32)]> {
        (!self.caches.is_empty()).then_some(&self.caches[..])
    }

    pub(super) fn avail_gpus(&self) -> u32 {
        (self.free_gpus.len() as u32).saturating_sub(self.reserved_gpus)
    }
    /// (free CPUs, usable CPUs, free MB) over unreserved nodes.
    pub(super) fn open_totals(&self) -> (u32, u32, u64) {
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
    pub(super) fn node_key(&self, i: usize, aware: bool) -> Option<(u32, u64)> {
        let x = &self.nodes[i];
        (aware && x.reserved.is_none() && x.free > 0).then_some((x.free, x.mem))
    }
    /// The agent-level keys it should have now.
    pub(super) fn agent_keys(&self, aware: bool) -> Indexed {
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
