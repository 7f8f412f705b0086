//! The last-level (L3) cache terms of node scoring: per cache domain free counts kept in
//! the planner's working state, and how many domains a job laid out in one node would
//! actually span there.
//!
//! The span is never estimated apart from the choice: either it is read off the same
//! rules [`crate::select::take_in_node`] follows, applied to the per-domain counts
//! ([`crate::select::tightest_domain`] for a job that fits a domain; [`packed_span`]
//! for a packed job that does not, checked against the real selection by a property
//! test and, in debug builds, on every call), or the real selection is run on the node's
//! free CPUs and its domains counted (spread jobs; whole-core jobs on nodes whose cores
//! differ in size). So the score cannot disagree with the CPUs the job then gets.
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
//! from; the vector is empty for topologies without split caches. The planner keeps, with
//! them, each node's [`best_domain`] and its domains in packing order ([`Orders`]); debug
//! builds check all three against a recount after every change.

use crate::request::{CachePolicy, SmtPolicy};
use crate::select::{domain_counts, domain_use, pack_key, take_in_node_with, tightest_domain};
use crate::sets::CpuSet;
use crate::topology::Topology;

/// Per domain `(free PUs, free PUs in entirely free cores)` of node position `node`.
pub(super) fn refresh_node(topo: &Topology, node: usize, free: &CpuSet, counts: &mut [(u32, u32)]) {
    if counts.is_empty() {
        return;
    }
    for d in topo.nodes()[node].cache_range() {
        counts[d] = domain_counts(topo, d, free);
    }
}

/// The most free PUs and the most free PUs in entirely free cores of any one domain of
/// node position `node` (`(0, 0)` when no counts are kept or the node has fewer than two
/// domains).
pub(super) fn best_domain(topo: &Topology, node: usize, counts: &[(u32, u32)]) -> (u32, u32) {
    let n = &topo.nodes()[node];
    if counts.is_empty() || n.num_caches() < 2 {
        return (0, 0);
    }
    n.cache_range()
        .fold((0, 0), |(f, w), d| (f.max(counts[d].0), w.max(counts[d].1)))
}

/// A node's cache-domain counts as the planner keeps them: `counts[d]` for every domain
/// of the agent, and the node's [`best_domain`].
#[derive(Clone, Copy, Debug)]
pub(super) struct NodeDomains<'a> {
    pub(super) counts: &'a [(u32, u32)],
    pub(super) best: (u32, u32),
    /// The agent's [`Orders`] (indexed by global domain, like `counts`).
    pub(super) orders: &'a Orders,
}

impl<'a> NodeDomains<'a> {
    /// The counts and orders of node position `node`, with its best domain computed.
    #[cfg(test)]
    pub(super) fn of(
        topo: &Topology,
        node: usize,
        counts: &'a [(u32, u32)],
        orders: &'a Orders,
    ) -> Self {
        NodeDomains {
            counts,
            best: best_domain(topo, node, counts),
            orders,
        }
    }

    /// The node's domains in the packing order when none holds the job, for `smt`.
    fn order(&self, topo: &Topology, node: usize, smt: SmtPolicy) -> &'a [u32] {
        let range = topo.nodes()[node].cache_range();
        match smt {
            SmtPolicy::WholeCores => &self.orders.whole_cores[range],
            SmtPolicy::Pack => &self.orders.pack[range],
        }
    }
}

/// Per SMT policy, every split node's domains (global indexes) in [`crate::select::pack_order`] when no
/// domain holds the job: entirely free domains, then the most usable first. Slot `d` of
/// a node's [`crate::topology::NumaNode::cache_range`] holds its `d`-th domain in that
/// order. Kept with the counts so a decision does not sort the domains of every node it
/// scores.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Orders {
    whole_cores: Vec<u32>,
    pack: Vec<u32>,
}

impl Orders {
    /// The orders of every split node of `topo` for `counts` (empty without counts).
    pub(super) fn new(topo: &Topology, counts: &[(u32, u32)]) -> Orders {
        let mut o = Orders::default();
        if counts.is_empty() {
            return o;
        }
        o.whole_cores = (0..counts.len() as u32).collect();
        o.pack = o.whole_cores.clone();
        // From domain order, each node sorted once.
        for i in 0..topo.num_nodes() {
            o.sort_node(topo, i, counts);
        }
        o
    }

    /// Re-sorts node position `node`'s domains after its counts changed. The slots hold
    /// the previous order, which a commit or release changes in a few domains only, so an
    /// insertion sort from it is close to linear.
    pub(super) fn sort_node(&mut self, topo: &Topology, node: usize, counts: &[(u32, u32)]) {
        let n = &topo.nodes()[node];
        if counts.is_empty() || n.num_caches() < 2 {
            return;
        }
        let range = n.cache_range();
        for (smt, slots) in [
            (SmtPolicy::WholeCores, &mut self.whole_cores),
            (SmtPolicy::Pack, &mut self.pack),
        ] {
            let key = |d: u32| {
                let u = domain_use(topo, d as usize, counts[d as usize], smt);
                pack_key(&u, None)
            };
            let slots = &mut slots[range.clone()];
            for i in 1..slots.len() {
                let mut j = i;
                while j > 0 && key(slots[j - 1]) > key(slots[j]) {
                    slots.swap(j - 1, j);
                    j -= 1;
                }
            }
        }
    }

    /// Heap bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        (self.whole_cores.capacity() + self.pack.capacity()) * std::mem::size_of::<u32>()
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
    domains: NodeDomains<'_>,
    k: u32,
    smt: SmtPolicy,
    cache: CachePolicy,
    run_selection: bool,
) -> L3Score {
    let n = &topo.nodes()[node];
    let counts = domains.counts;
    if counts.is_empty() || n.num_caches() < 2 || k == 0 {
        return L3Score::Flat;
    }
    let usable = |(f, w): (u32, u32)| match smt {
        SmtPolicy::WholeCores => w,
        SmtPolicy::Pack => f,
    };
    // No domain holds `k`: skip the search for the tightest one.
    if cache == CachePolicy::Pack && usable(domains.best) >= k {
        let doms = n.cache_range().map(|d| (d, usable(counts[d]) as usize));
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
    if cache == CachePolicy::Pack
        && let Some((span, first)) = packed_span(topo, node, domains, k, smt)
    {
        #[cfg(debug_assertions)]
        {
            let mut out = CpuSet::new();
            let took = take_in_node_with(topo, node, free, Some(counts), k, smt, cache, &mut out);
            debug_assert!(took && spanned(topo, &out) == span, "{out} vs {span}");
        }
        return L3Score::Fit(L3Fit {
            excess: span.saturating_sub(1),
            leftover: if span == 1 {
                leftover(topo, counts, first, k)
            } else {
                0.0
            },
        });
    }
    let mut out = CpuSet::new();
    if !take_in_node_with(topo, node, free, Some(counts), k, smt, cache, &mut out) {
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

/// The cache domains [`crate::select::take_in_node`] spans when it packs `k` CPUs into
/// node position `node` ([`CachePolicy::Pack`]), read off the per-domain `counts` alone
/// instead of choosing the CPUs: `(domains spanned, the first domain used)`. It follows
/// the selection's rules step by step, at the level of domains:
/// - domains are visited in [`crate::select::pack_order`];
/// - [`SmtPolicy::Pack`] takes each domain's free PUs (partly used cores, then free ones)
///   before the next domain's;
/// - [`SmtPolicy::WholeCores`] takes whole free cores domain by domain while a core's
///   worth is needed; a remainder goes to the first domain in that order with a whole
///   free core left, else to partly used cores, domain by domain.
///
/// `None` when the counts do not determine the span: whole cores of different sizes in
/// the node (the selection then has to run), or fewer than `k` free CPUs.
pub(super) fn packed_span(
    topo: &Topology,
    node: usize,
    domains: NodeDomains<'_>,
    k: u32,
    smt: SmtPolicy,
) -> Option<(u32, usize)> {
    let n = &topo.nodes()[node];
    let counts = domains.counts;
    if counts.is_empty() || n.num_caches() < 2 || k == 0 {
        return None;
    }
    let width = n.smt_width() as u32;
    if smt == SmtPolicy::WholeCores && (!n.has_uniform_cores() || width == 0) {
        return None;
    }
    let usable = |(f, w): (u32, u32)| match smt {
        SmtPolicy::WholeCores => w,
        SmtPolicy::Pack => f,
    };
    if usable(domains.best) >= k {
        // One domain holds the job: the tightest one.
        let doms = n.cache_range().map(|d| (d, usable(counts[d]) as usize));
        return tightest_domain(doms, k as usize).map(|d| (1, d));
    }
    let order = domains.order(topo, node, smt);
    if order.len() > 64 {
        return None;
    }
    let mut need = k;
    // Bit p: the domain at position p of `order` is used.
    let mut used = 0u64;
    let mut first = None;
    let mut touch = |p: usize| {
        used |= 1 << p;
        first.get_or_insert(order[p] as usize);
    };
    let free = |p: usize| counts[order[p] as usize].0;
    let whole = |p: usize| counts[order[p] as usize].1;
    match smt {
        SmtPolicy::Pack => {
            for p in 0..order.len() {
                if need == 0 {
                    break;
                }
                let t = need.min(free(p));
                if t > 0 {
                    touch(p);
                    need -= t;
                }
            }
        }
        SmtPolicy::WholeCores => {
            // The first position with a whole free core left after this pass.
            let mut cover = None;
            for p in 0..order.len() {
                let cores = whole(p) / width;
                let t = cores.min(need / width);
                if t > 0 {
                    touch(p);
                    need -= t * width;
                }
                if cores > t && cover.is_none() {
                    cover = Some(p);
                }
                if need == 0 || (need < width && cover.is_some()) {
                    break;
                }
            }
            if need > 0 {
                if let Some(p) = cover {
                    touch(p);
                    need = 0;
                } else {
                    // Free PUs of the partly used cores, domain by domain.
                    for p in 0..order.len() {
                        if need == 0 {
                            break;
                        }
                        let t = need.min(free(p) - whole(p));
                        if t > 0 {
                            touch(p);
                            need -= t;
                        }
                    }
                }
            }
        }
    }
    let span = used.count_ones();
    (need == 0).then_some((span, first?))
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
    use crate::select::take_in_node;

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
                NodeDomains::of(&t, 0, &c, &Orders::new(&t, &c)),
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
            NodeDomains::of(&t, 0, &c, &Orders::new(&t, &c)),
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
            NodeDomains::of(&t, 0, &c2, &Orders::new(&t, &c2)),
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
            NodeDomains::of(&flat, 0, &[], &Orders::default()),
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
            NodeDomains::of(&t, 0, &c, &Orders::new(&t, &c)),
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

    /// Topologies with split caches: SMT 1, 2 and 4, several nodes, and one restricted
    /// copy whose cores have different sizes (a PU of every other core taken out).
    fn split_topologies() -> Vec<Topology> {
        let mut out: Vec<Topology> = [
            "pack:1 numa:1 l3:4 core:4 pu:2",
            "pack:2 numa:2 l3:3 core:3 pu:1",
            "pack:1 numa:1 l3:6 core:2 pu:4",
        ]
        .iter()
        .map(|d| Topology::from_synthetic(d, 100).unwrap())
        .collect();
        let mut spec = out[0].spec().clone();
        let node = &mut spec.nodes[0];
        for (i, core) in node.cores.iter_mut().enumerate() {
            if i % 2 == 1 {
                let last = core.cpus.iter().last().unwrap();
                core.cpus.remove(last);
                spec.offline_cpus.insert(last);
                for cache in &mut node.caches {
                    cache.cpus.remove(last);
                }
            }
        }
        out.push(Topology::new(spec).unwrap());
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The span read off the counts is the span of the CPUs the selection takes,
        /// whenever the counts determine it (always, but for whole-core jobs on nodes
        /// with cores of different sizes).
        #[test]
        fn the_counted_span_is_the_selected_span(
            which in 0usize..4,
            bits in proptest::collection::vec(proptest::bool::weighted(0.6), 64),
            k in 1u32..40,
            whole_cores in proptest::bool::ANY,
        ) {
            let topos = split_topologies();
            let t = &topos[which];
            let free: CpuSet = t.cpus().iter().filter(|c| bits[c.0 as usize % 64]).collect();
            let counts = all_counts(t, &free);
            let smt = if whole_cores { SmtPolicy::WholeCores } else { SmtPolicy::Pack };
            for node in 0..t.num_nodes() {
                let mut out = CpuSet::new();
                let took = take_in_node(t, node, &free, k, smt, CachePolicy::Pack, &mut out);
                let orders = Orders::new(t, &counts);
                let got = packed_span(t, node, NodeDomains::of(t, node, &counts, &orders), k, smt);
                let uniform = t.nodes()[node].has_uniform_cores();
                match got {
                    Some((span, first)) => {
                        proptest::prop_assert!(took);
                        proptest::prop_assert_eq!(span, spanned(t, &out), "{} of {}", out, free);
                        let lowest = out.iter().filter_map(|c| t.cache_of(c)).min();
                        if span == 1 {
                            proptest::prop_assert_eq!(Some(first), lowest);
                        }
                    }
                    None => proptest::prop_assert!(!took || (whole_cores && !uniform)),
                }
            }
        }
    }
}
