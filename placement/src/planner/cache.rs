//! The last-level (L3) cache terms of node scoring: per cache domain free counts kept in
//! the planner's working state, and how many domains a job laid out in one node would
//! actually span there.
//!
//! The span is never estimated apart from the choice: either it is read off the same
//! rule [`crate::select::take_in_node`] follows ([`crate::select::tightest_domain`] over
//! the same usable counts: a job that fits a domain gets exactly that one), or the real
//! selection is run on the node's free CPUs and its domains counted. So the score cannot
//! disagree with the CPUs the job then gets.
//!
//! Rules (nodes with two or more domains only; a node sharing one cache scores nothing):
//! - [`CachePolicy::Pack`]: excess = domains spanned - 1; a job that fits one domain goes
//!   to the tightest such domain; when the job lands in one domain, the free PUs it leaves
//!   there over the domain's size count as per-L3 fragmentation (so a partly used domain
//!   is preferred to breaking a whole free one).
//! - [`CachePolicy::Spread`]: excess = the most domains the job could use
//!   (`min(cores needed, domains of the node)`) minus the domains it spans.
//!
//! "Usable" follows the job's SMT policy: free PUs in entirely free cores for
//! [`SmtPolicy::WholeCores`], free PUs for [`SmtPolicy::Pack`].
//!
//! Invariant: `counts[d]` is `(free PUs, free PUs in entirely free cores)` of the agent's
//! domain `d` (global domain index of its topology) for the free CPU set it was computed
//! from; the vector is empty for topologies without split caches.

use crate::request::{CachePolicy, SmtPolicy};
use crate::select::{take_in_node, tightest_domain};
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

/// How a job of `k` CPUs sits in the cache domains of one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct L3Fit {
    /// Domains beyond the ideal (pack: beyond one; spread: short of the most usable).
    pub(super) excess: u32,
    /// Free PUs left in the one domain a packed job lands in, over its size (0..1; 0 when
    /// it spans several).
    pub(super) leftover: f64,
}

/// What [`fit`] found for one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum L3Score {
    /// The node has fewer than two cache domains (or none are tracked): nothing to score.
    Flat,
    /// The layout the job would get there.
    Fit(L3Fit),
    /// Not the cheap case and `run_selection` was false: the layout is not known.
    Unknown,
}

/// The L3 layout of `k` CPUs in node position `node` of an agent whose free CPUs are
/// `free` (with `counts` from them). When the job fits no domain (or spreads), the real
/// selection is run to count its domains, unless `run_selection` is false, which gives
/// [`L3Score::Unknown`] instead.
#[allow(clippy::too_many_arguments)]
pub(super) fn fit(
    topo: &Topology,
    node: usize,
    free: &CpuSet,
    counts: &[(u32, u32)],
    k: u32,
    smt: SmtPolicy,
    cache: CachePolicy,
    run_selection: bool,
) -> L3Score {
    let n = &topo.nodes()[node];
    if counts.is_empty() || n.num_caches() < 2 || k == 0 {
        return L3Score::Flat;
    }
    let usable = |d: usize| match smt {
        SmtPolicy::WholeCores => counts[d].1,
        SmtPolicy::Pack => counts[d].0,
    };
    if cache == CachePolicy::Pack {
        let doms = n.cache_range().map(|d| (d, usable(d) as usize));
        if let Some(d) = tightest_domain(doms, k as usize) {
            return L3Score::Fit(L3Fit {
                excess: 0,
                leftover: leftover(topo, counts, d, k),
            });
        }
    }
    if !run_selection {
        return L3Score::Unknown;
    }
    let mut out = CpuSet::new();
    if !take_in_node(topo, node, free, k, smt, cache, &mut out) {
        return L3Score::Unknown;
    }
    let span = spanned(topo, &out);
    let mut left = 0.0;
    let excess = match cache {
        CachePolicy::Pack => {
            if span == 1
                && let Some(d) = out.iter().next().and_then(|c| topo.cache_of(c))
            {
                left = leftover(topo, counts, d, k);
            }
            span.saturating_sub(1)
        }
        CachePolicy::Spread => {
            let width = n.smt_width().max(1) as u32;
            let most = k.div_ceil(width).min(n.num_caches() as u32);
            most.saturating_sub(span)
        }
    };
    L3Score::Fit(L3Fit {
        excess,
        leftover: left,
    })
}

/// Free PUs domain `d` keeps after a job of `k` CPUs lands in it, over its size.
fn leftover(topo: &Topology, counts: &[(u32, u32)], d: usize, k: u32) -> f64 {
    let size = topo.caches()[d].cpus().len().max(1) as f64;
    f64::from(counts[d].0.saturating_sub(k)) / size
}

/// The number of cache domains `cpus` touch.
pub(super) fn spanned(topo: &Topology, cpus: &CpuSet) -> u32 {
    let mut doms: Vec<usize> = cpus.iter().filter_map(|c| topo.cache_of(c)).collect();
    doms.sort_unstable();
    doms.dedup();
    doms.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit_of(s: L3Score) -> L3Fit {
        match s {
            L3Score::Fit(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pack_prefers_the_tightest_domain_and_counts_real_spans() {
        // One node, four domains of four 2-PU cores {2c, 2c+1}: domain d = CPUs 8d..8d+7.
        let t = Topology::from_synthetic("pack:1 numa:1 l3:4 core:4 pu:2", 100).unwrap();
        let free: CpuSet = "2-31".parse().unwrap();
        let c = all_counts(&t, &free);
        assert_eq!(c[0], (6, 6));
        let p = |k, run| {
            fit(
                &t,
                0,
                &free,
                &c,
                k,
                SmtPolicy::WholeCores,
                CachePolicy::Pack,
                run,
            )
        };
        // 6 CPUs fit exactly in what is left of domain 0.
        let exact = L3Fit {
            excess: 0,
            leftover: 0.0,
        };
        assert_eq!(p(6, false), L3Score::Fit(exact));
        // 4 CPUs: domain 0 is the tightest (2 left over of 8).
        assert_eq!(fit_of(p(4, false)).leftover, 0.25);
        // 16 CPUs fit no domain: only known by running the selection (two whole domains).
        assert_eq!(p(16, false), L3Score::Unknown);
        assert_eq!(fit_of(p(16, true)).excess, 1);
        // 20 CPUs: two whole domains and part of a third.
        assert_eq!(fit_of(p(20, true)).excess, 2);
        let s = fit(
            &t,
            0,
            &free,
            &c,
            8,
            SmtPolicy::WholeCores,
            CachePolicy::Spread,
            true,
        );
        assert_eq!(fit_of(s).excess, 0);
        let only1: CpuSet = "8-15".parse().unwrap();
        let c2 = all_counts(&t, &only1);
        // Only domain 1 is free: a spread job of four cores gets one domain, three short.
        let s = fit(
            &t,
            0,
            &only1,
            &c2,
            8,
            SmtPolicy::WholeCores,
            CachePolicy::Spread,
            true,
        );
        assert_eq!(fit_of(s).excess, 3);
        let flat = Topology::from_synthetic("pack:1 numa:1 core:4 pu:2", 100).unwrap();
        assert!(all_counts(&flat, flat.cpus()).is_empty());
        let f = fit(
            &flat,
            0,
            flat.cpus(),
            &[],
            2,
            SmtPolicy::Pack,
            CachePolicy::Pack,
            true,
        );
        assert_eq!(f, L3Score::Flat);
    }

    #[test]
    fn whole_core_jobs_that_fit_only_with_partly_used_cores_score_their_real_span() {
        // Domain 0 (CPUs 0-7) has one whole free core {0,1} and two half-free cores;
        // domain 1 has one whole core {8,9}, domain 2 one whole core {16,17}. A 3-CPU
        // whole-core job fits no domain by whole cores, but the selection takes {0,1} and a
        // half-free core of domain 0: one domain, which the score must say (the estimate
        // that counted every domain with free CPUs said three).
        let t = Topology::from_synthetic("pack:1 numa:1 l3:4 core:4 pu:2", 100).unwrap();
        let free: CpuSet = "0-2,4,8-9,16-17".parse().unwrap();
        let c = all_counts(&t, &free);
        let s = fit(
            &t,
            0,
            &free,
            &c,
            3,
            SmtPolicy::WholeCores,
            CachePolicy::Pack,
            true,
        );
        let mut out = CpuSet::new();
        assert!(take_in_node(
            &t,
            0,
            &free,
            3,
            SmtPolicy::WholeCores,
            CachePolicy::Pack,
            &mut out
        ));
        assert_eq!(fit_of(s).excess + 1, spanned(&t, &out), "{out}");
    }
}
