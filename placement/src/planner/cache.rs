//! The last-level (L3) cache terms of node scoring: per cache domain free counts kept in
//! the planner's working state, and how well a job laid out in one node would sit in that
//! node's cache domains.
//!
//! Rules (nodes with two or more domains only; a node sharing one cache scores 0):
//! - [`CachePolicy::Pack`]: the number of domains the job would span, predicted exactly as
//!   [`crate::select::take_in_node`] lays it out: one when a domain has room (the
//!   tightest such domain, whose left-over free CPUs count as per-L3 fragmentation, so a
//!   partly used domain that fits is preferred to breaking a whole free one), else entirely
//!   free domains first (most usable first), then partly used ones by usable CPUs.
//!   Penalty: `cache_split * (domains - 1) + fragmentation * leftover / domain size`.
//! - [`CachePolicy::Spread`]: the number of domains with a usable core, against the most
//!   the job could use (`min(cores needed, domains of the node)`). Penalty:
//!   `cache_split * (that most - domains available)`.
//!
//! "Usable" follows the job's SMT policy: free PUs in entirely free cores for
//! [`SmtPolicy::WholeCores`], free PUs for [`SmtPolicy::Pack`].
//!
//! Invariant: `counts[d]` is `(free PUs, free PUs in entirely free cores)` of the agent's
//! domain `d` (global domain index of its topology) for the free CPU set it was computed
//! from; the vector is empty for topologies without split caches.

use crate::request::{CachePolicy, SmtPolicy};
use crate::sets::CpuSet;
use crate::topology::Topology;

/// Per domain `(free PUs, free PUs in entirely free cores)` of node position `node`.
pub(super) fn refresh_node(topo: &Topology, node: usize, free: &CpuSet, counts: &mut [(u32, u32)]) {
    if counts.is_empty() {
        return;
    }
    let cores = topo.cores();
    for d in topo.nodes()[node].cache_range() {
        let mut f = 0;
        let mut w = 0;
        for &ci in topo.cache_cores(d) {
            let c = &cores[ci as usize];
            let n = c.intersection_len(free) as u32;
            f += n;
            if n as usize == c.len() {
                w += n;
            }
        }
        counts[d] = (f, w);
    }
}

/// The counts of every domain of `topo` for `free` (empty without split caches).
pub(super) fn all_counts(topo: &Topology, free: &CpuSet) -> Vec<(u32, u32)> {
    if !topo.has_split_caches() {
        return Vec::new();
    }
    let mut counts = vec![(0, 0); topo.caches().len()];
    for i in 0..topo.num_nodes() {
        if topo.nodes()[i].num_caches() > 1 {
            refresh_node(topo, i, free, &mut counts);
        }
    }
    counts
}

/// How a job of `k` CPUs would sit in the cache domains of one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct L3Fit {
    /// Domains beyond the ideal (pack: beyond one; spread: short of the most usable).
    pub(super) excess: u32,
    /// Left-over free CPUs of the domain a packed job fits in, over its size (0..1).
    pub(super) leftover: f64,
}

/// The L3 fit of `k` CPUs in node position `node`; `None` when the node has fewer than
/// two cache domains (nothing to choose) or `counts` is empty.
pub(super) fn fit(
    topo: &Topology,
    node: usize,
    counts: &[(u32, u32)],
    k: u32,
    smt: SmtPolicy,
    cache: CachePolicy,
) -> Option<L3Fit> {
    let n = &topo.nodes()[node];
    if counts.is_empty() || n.num_caches() < 2 || k == 0 {
        return None;
    }
    let usable = |d: usize| match smt {
        SmtPolicy::WholeCores => counts[d].1,
        SmtPolicy::Pack => counts[d].0,
    };
    let size = |d: usize| topo.caches()[d].cpus().len() as u32;
    match cache {
        CachePolicy::Pack => {
            let tightest = n
                .cache_range()
                .filter(|&d| usable(d) >= k)
                .min_by_key(|&d| (usable(d), d));
            if let Some(d) = tightest {
                return Some(L3Fit {
                    excess: 0,
                    leftover: f64::from(usable(d) - k) / f64::from(size(d).max(1)),
                });
            }
            // Whole free domains first, then the most usable.
            let mut doms: Vec<(bool, u32)> = n
                .cache_range()
                .filter(|&d| usable(d) > 0)
                .map(|d| (counts[d].0 != size(d), usable(d)))
                .collect();
            doms.sort_unstable_by_key(|&(partly, u)| (partly, std::cmp::Reverse(u)));
            let mut need = k;
            let mut span: u32 = 0;
            for (_, u) in &doms {
                if need == 0 {
                    break;
                }
                need = need.saturating_sub(*u);
                span += 1;
            }
            if need > 0 {
                // The rest comes from partly used cores elsewhere: count those domains.
                span = n
                    .cache_range()
                    .filter(|&d| counts[d].0 > 0)
                    .count()
                    .max(span as usize + 1) as u32;
            }
            Some(L3Fit {
                excess: span.saturating_sub(1),
                leftover: 0.0,
            })
        }
        CachePolicy::Spread => {
            let width = n.smt_width().max(1) as u32;
            let cores = k.div_ceil(width);
            let unit = match smt {
                SmtPolicy::WholeCores => |c: (u32, u32)| c.1,
                SmtPolicy::Pack => |c: (u32, u32)| c.0,
            };
            let avail = n.cache_range().filter(|&d| unit(counts[d]) > 0).count() as u32;
            let most = cores.min(n.num_caches() as u32);
            Some(L3Fit {
                excess: most.saturating_sub(avail.min(most)),
                leftover: 0.0,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_prefers_the_tightest_domain_and_counts_spans() {
        // One node, four domains of four 2-PU cores: domain d = CPUs 8d..8d+7.
        let t = Topology::from_synthetic("pack:1 numa:1 l3:4 core:4 pu:2", 100).unwrap();
        let free: CpuSet = "2-31".parse().unwrap();
        let c = all_counts(&t, &free);
        assert_eq!(c[0], (6, 6));
        let p = |k| fit(&t, 0, &c, k, SmtPolicy::WholeCores, CachePolicy::Pack).unwrap();
        // 6 CPUs fit exactly in what is left of domain 0.
        assert_eq!(
            p(6),
            L3Fit {
                excess: 0,
                leftover: 0.0
            }
        );
        // 4 CPUs: domain 0 is the tightest (2 left over of 8).
        assert_eq!(
            p(4),
            L3Fit {
                excess: 0,
                leftover: 0.25
            }
        );
        // 16 CPUs: two whole domains.
        assert_eq!(p(16).excess, 1);
        // 20 CPUs: two whole domains and part of a third.
        assert_eq!(p(20).excess, 2);
        let s = fit(&t, 0, &c, 8, SmtPolicy::WholeCores, CachePolicy::Spread).unwrap();
        assert_eq!(s.excess, 0);
        let c2 = all_counts(&t, &"8-15".parse().unwrap());
        // Only domain 1 is free: a spread job of four cores gets one domain, three short.
        let s = fit(&t, 0, &c2, 8, SmtPolicy::WholeCores, CachePolicy::Spread).unwrap();
        assert_eq!(s.excess, 3);
        let flat = Topology::from_synthetic("pack:1 numa:1 core:4 pu:2", 100).unwrap();
        assert!(all_counts(&flat, flat.cpus()).is_empty());
        assert_eq!(
            fit(&flat, 0, &[], 2, SmtPolicy::Pack, CachePolicy::Pack),
            None
        );
    }
}
