//! The memo of multi-node evaluations within one planner: what `eval_multi` found for an
//! agent, keyed by everything it reads, so that agents in the same state (a fleet of
//! identical machines filled by the same jobs) and the same agent asked again by a job of
//! the same shape cost one hash lookup instead of growing node sets from every seed.
//!
//! The key is the topology (by address: agents of one shape share it), the job's shape
//! (CPU range, memory, SMT policy) and per node its free CPUs, free PUs in whole cores
//! (only for `whole-cores` jobs, the only ones that read them), free memory and whether
//! it is reserved. Jobs with GPUs are not memoized (their cost reads the free device
//! ids). The planner's configuration is fixed for its lifetime, so it is not in the key.
//! Debug builds evaluate again on every hit and check the memo returned the same
//! candidate, so every test that plans multi-node jobs checks the key is complete.

use std::cell::RefCell;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::NodeWork;
use super::candidates::Cand;
use crate::request::{JobRequest, SmtPolicy};
use crate::topology::Topology;

/// At most this many evaluations are kept per planner (one cycle); past it, evaluations
/// are no longer stored (a bound on memory, not a change of result).
const CAPACITY: usize = 1 << 14;

/// A memoized evaluation of one agent state: the candidate's node takes, memory split
/// and cost (the agent is the caller's).
#[derive(Debug)]
pub(super) struct Found {
    takes: Vec<(usize, u32)>,
    mem: Vec<(usize, u64)>,
    cost: f64,
}

impl Found {
    fn of(c: Cand) -> Found {
        Found {
            takes: c.takes,
            mem: c.mem,
            cost: c.cost,
        }
    }

    pub(super) fn cost(&self) -> f64 {
        self.cost
    }

    /// The candidate on agent `a`.
    pub(super) fn cand(&self, a: u32) -> Cand {
        Cand {
            agent: a,
            takes: self.takes.clone(),
            mem: self.mem.clone(),
            whole_nodes: false,
            pinned: true,
            cost: self.cost,
        }
    }
}

#[derive(Default)]
struct Inner {
    map: FxHashMap<Box<[u64]>, Option<Arc<Found>>>,
    /// The key being looked up (kept to avoid an allocation per lookup).
    key: Vec<u64>,
    hits: u64,
}

/// See the module doc.
#[derive(Default)]
pub(super) struct MultiMemo {
    inner: RefCell<Inner>,
}

impl MultiMemo {
    /// What `eval()` finds for an agent with this topology and these node states (a
    /// multi-node candidate, never a whole-node one), from the memo when the same key was
    /// evaluated before. Shared, so that scoring an agent allocates nothing; the caller
    /// makes a [`Cand`] of the one it keeps.
    pub(super) fn get_or_eval(
        &self,
        topo: &Topology,
        nodes: &[NodeWork],
        job: &JobRequest,
        eval: impl FnOnce() -> Option<Cand>,
    ) -> Option<Arc<Found>> {
        let found = {
            let mut inner = self.inner.borrow_mut();
            let Inner { map, key, hits } = &mut *inner;
            fill_key(key, topo, nodes, job);
            let found = map.get(&key[..]).cloned();
            if found.is_some() {
                *hits += 1;
            }
            found
        };
        if let Some(found) = found {
            #[cfg(debug_assertions)]
            {
                let fresh = eval();
                debug_assert_eq!(
                    fresh.as_ref().map(|c| (&c.takes, &c.mem, c.cost.to_bits())),
                    found.as_ref().map(|f| (&f.takes, &f.mem, f.cost.to_bits())),
                    "the multi-node memo must return what a fresh evaluation finds"
                );
                debug_assert!(fresh.is_none_or(|c| c.pinned && !c.whole_nodes));
            }
            return found;
        }
        let found = eval().map(|c| Arc::new(Found::of(c)));
        let mut inner = self.inner.borrow_mut();
        if inner.map.len() < CAPACITY {
            let key: Box<[u64]> = inner.key.as_slice().into();
            inner.map.insert(key, found.clone());
        }
        found
    }

    /// How many evaluations were answered from the memo.
    #[cfg(test)]
    pub(super) fn hits(&self) -> u64 {
        self.inner.borrow().hits
    }
}

fn fill_key(key: &mut Vec<u64>, topo: &Topology, nodes: &[NodeWork], job: &JobRequest) {
    key.clear();
    key.push(std::ptr::from_ref(topo) as usize as u64);
    key.push(u64::from(job.cpus.min));
    key.push(job.cpus.max.map_or(u64::MAX, u64::from));
    key.push(job.mem_mb.min);
    let whole_cores = job.smt == SmtPolicy::WholeCores;
    key.push(u64::from(whole_cores));
    for n in nodes {
        let whole = if whole_cores { n.whole } else { 0 };
        key.push(u64::from(n.free) | (u64::from(whole) << 32));
        key.push(n.mem);
        key.push(u64::from(n.reserved.is_some()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::request::{JobRequest, ResourceRange, SmtPolicy};
    use crate::sets::CpuSet;
    use crate::topology::Topology;
    use crate::{AgentState, PolicyConfig};

    use super::super::Planner;
    use super::super::candidates::Cand;

    /// What a candidate says, with its cost's bits.
    type Seen = (u32, Vec<(usize, u32)>, Vec<(usize, u64)>, u64);

    fn seen(c: Option<Cand>) -> Option<Seen> {
        c.map(|c| (c.agent, c.takes, c.mem, c.cost.to_bits()))
    }

    /// `n` agents sharing one topology of 8 nodes of 16 PUs; `packages` > 0 gives it SLIT
    /// distances (12 within a package of that many nodes, 20 across), 0 leaves them unknown.
    fn agents(packages: usize, n: usize, first: usize) -> Vec<AgentState> {
        let mut spec = crate::synthetic::parse("pack:2 numa:4 core:8 pu:2", 4096).unwrap();
        if packages > 0 {
            for (i, node) in spec.nodes.iter_mut().enumerate() {
                node.distances = (0..8)
                    .map(|j| match (i == j, i / packages == j / packages) {
                        (true, _) => 10,
                        (false, true) => 12,
                        (false, false) => 20,
                    })
                    .collect();
            }
        }
        let t = Arc::new(Topology::new(spec).unwrap());
        // Node 0 has 8 free PUs: 4 whole cores (even agents) or one PU of each of its
        // 8 cores (odd agents), so the same counts differ in whole cores.
        (first..first + n)
            .map(|i| {
                let taken: CpuSet = if i % 2 == 0 {
                    "8-15"
                } else {
                    "1,3,5,7,9,11,13,15"
                }
                .parse()
                .unwrap();
                let free: CpuSet = t.cpus().difference(&taken);
                let mem = vec![4096; t.num_nodes()];
                AgentState::new(format!("a{i}"), "h", t.clone(), free, mem, 0, true).unwrap()
            })
            .collect()
    }

    /// Identical agents filled by a mix of multi-node jobs: every evaluation from the memo
    /// equals a fresh one, including on agents of other topologies with the same node
    /// counts (8 nodes of 16 PUs: packages of four nodes, of two, distances unknown).
    #[test]
    fn memoized_multi_node_evaluations_equal_fresh_ones() {
        let mut all = agents(4, 4, 0);
        all.extend(agents(2, 2, 4));
        all.extend(agents(0, 2, 6));
        let cfg = PolicyConfig::default();
        let mut p = Planner::new(&all, &cfg);
        let sizes = [20, 35, 50, 17, 64, 90, 33, 20, 50];
        let mut placed = 0;
        for (n, &c) in sizes.iter().cycle().take(60).enumerate() {
            let mut job = JobRequest::new(n as u64 + 1, c, 256 * (1 + n as u64 % 5));
            if n % 3 == 1 {
                job.smt = SmtPolicy::Pack;
            }
            if n % 4 == 2 {
                job.cpus = ResourceRange {
                    min: c,
                    max: Some(c + 8),
                };
            }
            for a in 0..all.len() as u32 {
                assert_eq!(
                    seen(p.eval_multi(a, &job)),
                    seen(p.grow_multi(a, &job)),
                    "job {n} ({c} CPUs) on agent {a}"
                );
            }
            if let Ok(d) = p.decide(&job) {
                p.commit(&job, d);
                placed += 1;
            }
        }
        assert!(placed > 10, "the jobs fill the agents ({placed} placed)");
        assert!(p.multi_memo.hits() > 0, "identical agents hit the memo");
    }
}
