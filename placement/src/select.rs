//! Choosing exact CPU ids inside a NUMA node, and splitting a memory grant over nodes.
//!
//! Owns the node-level rules:
//! - [`SmtPolicy::WholeCores`]: take entirely free cores (all their usable PUs) in core
//!   order while at least a core's worth is still needed; the remainder comes from another
//!   entirely free core if there is one (the job then shares that core with nobody), and
//!   only then from cores partly used by other jobs (fewest free PUs first);
//! - [`SmtPolicy::Pack`]: take from partly used cores first (fewest free PUs first), then
//!   from free cores, so whole cores stay whole for others;
//! - cache domains: in a node with two or more last-level (L3) cache domains, both
//!   policies visit the cores domain by domain ([`core_order`]): a job that fits in one
//!   domain takes the tightest one that holds it (so domains fill one by one and whole
//!   domains stay whole for jobs that need them), a larger job takes entirely free domains
//!   before partly used ones;
//! - memory: each CPU node gets a share proportional to the CPUs taken there (capped by
//!   what is free), the rest goes to the CPU nodes with room, then (when allowed) to the
//!   other nodes closest to the CPU nodes.
//!
//! Invariants: every CPU returned is free and in the node; the functions take exactly the
//! amount asked for when the node (or nodes) hold it, and otherwise report failure without
//! side effects.

use crate::request::{CachePolicy, SmtPolicy};
use crate::sets::CpuSet;
use crate::topology::Topology;

/// `(free CPUs, free PUs in entirely free cores)` of `node`.
pub(crate) fn node_counts(topo: &Topology, node: usize, free: &CpuSet) -> (u32, u32) {
    // A node's usable CPUs are its cores' PUs: an entirely free node (an idle agent's)
    // or an entirely busy one needs no count per core.
    let cpus = topo.nodes()[node].cpus();
    if cpus.is_disjoint(free) {
        debug_assert_eq!(count_cores(topo, node, free), (0, 0));
        return (0, 0);
    }
    if cpus.is_subset(free) {
        let n = cpus.len() as u32;
        debug_assert_eq!(count_cores(topo, node, free), (n, n));
        return (n, n);
    }
    count_cores(topo, node, free)
}

fn count_cores(topo: &Topology, node: usize, free: &CpuSet) -> (u32, u32) {
    let cores = topo.cores();
    let mut f = 0;
    let mut w = 0;
    for ci in topo.nodes()[node].core_range() {
        let n = cores[ci].intersection_len(free) as u32;
        f += n;
        if n as usize == cores[ci].len() {
            w += n;
        }
    }
    (f, w)
}

/// Free CPUs of `node`.
pub(crate) fn node_free_count(topo: &Topology, node: usize, free: &CpuSet) -> u32 {
    topo.nodes()[node].cpus().intersection_len(free) as u32
}

fn take_from_core(core: &CpuSet, free: &CpuSet, n: usize, out: &mut CpuSet) -> usize {
    let mut taken = 0;
    for cpu in core.iter() {
        if taken == n {
            break;
        }
        if free.contains(cpu) {
            out.insert(cpu);
            taken += 1;
        }
    }
    taken
}

/// Adds `k` free CPUs of node position `node` to `out`, following `smt`. Returns false
/// (and leaves `out` unchanged) when the node has fewer than `k` free CPUs. `out` must not
/// already hold CPUs of this node.
pub(crate) fn take_in_node(
    topo: &Topology,
    node: usize,
    free: &CpuSet,
    k: u32,
    smt: SmtPolicy,
    cache: CachePolicy,
    out: &mut CpuSet,
) -> bool {
    take_in_node_with(topo, node, free, None, k, smt, cache, out)
}

/// [`take_in_node`] for a caller that keeps the per-domain counts of `free`
/// (`counts[d]` as [`domain_counts`] gives them, for every domain of this node), so the
/// domains are not recounted; `None` counts them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn take_in_node_with(
    topo: &Topology,
    node: usize,
    free: &CpuSet,
    counts: Option<&[(u32, u32)]>,
    k: u32,
    smt: SmtPolicy,
    cache: CachePolicy,
    out: &mut CpuSet,
) -> bool {
    let k = k as usize;
    if k == 0 {
        return true;
    }
    let cores = topo.cores();
    let range = topo.nodes()[node].core_range();
    if topo.nodes()[node].cpus().intersection_len(free) < k {
        return false;
    }
    let mut need = k;
    let order = core_order(topo, node, free, counts, k, smt, cache);
    if smt == SmtPolicy::WholeCores {
        // Entirely free cores, in visiting order, while at least a core's worth is needed.
        for &ci in &order {
            if need == 0 {
                break;
            }
            let c = &cores[ci];
            if need >= c.len() && c.is_subset(free) {
                out.union_with(c);
                need -= c.len();
            }
        }
        if need == 0 {
            return true;
        }
    }
    // rank[ci - range.start]: the core's position in `order`.
    let mut rank = vec![0usize; range.len()];
    for (r, &ci) in order.iter().enumerate() {
        rank[ci - range.start] = r;
    }
    let rank_of = |ci: usize| rank[ci - range.start];
    // group[ci - range.start]: when packing into cache domains, the position of the
    // core's domain in the visiting order (so every choice below stays in the earliest
    // domain that can supply it); 0 for every core otherwise.
    let mut group = vec![0usize; range.len()];
    if cache == CachePolicy::Pack && topo.nodes()[node].num_caches() > 1 {
        let mut g = 0;
        let mut last = None;
        for &ci in &order {
            let d = topo.cache_of_core(ci);
            if last.is_some_and(|l| l != d) {
                g += 1;
            }
            last = Some(d);
            group[ci - range.start] = g;
        }
    }
    let group_of = |ci: usize| group[ci - range.start];
    // Partly free cores by domain group, fewest free PUs first (then visiting order).
    let partial = || {
        let mut p: Vec<(usize, usize, usize, usize)> = order
            .iter()
            .filter_map(|&ci| {
                let f = cores[ci].intersection_len(free);
                (f > 0 && f < cores[ci].len()).then_some((group_of(ci), f, rank_of(ci), ci))
            })
            .collect();
        p.sort_unstable();
        p.into_iter()
            .map(|(_, f, _, ci)| (f, ci))
            .collect::<Vec<_>>()
    };
    match smt {
        SmtPolicy::WholeCores => {
            // Every untouched free core is now larger than the remainder: take it from the
            // smallest one, so the job shares that core with nobody ...
            let cover = range
                .clone()
                .filter(|&ci| cores[ci].is_subset(free) && cores[ci].is_disjoint(out))
                .min_by_key(|&ci| (group_of(ci), cores[ci].len(), rank_of(ci)));
            match cover {
                Some(ci) => need -= take_from_core(&cores[ci], free, need, out),
                // ... else from cores partly used by others.
                None => {
                    for (_, ci) in partial() {
                        if need == 0 {
                            break;
                        }
                        need -= take_from_core(&cores[ci], free, need, out);
                    }
                }
            }
        }
        SmtPolicy::Pack => {
            // Domain group by domain group: its partly used cores, then its free ones.
            let partial = partial();
            let mut p = 0;
            let mut o = 0;
            while need > 0 && (p < partial.len() || o < order.len()) {
                let g = match (partial.get(p), order.get(o)) {
                    (Some(&(_, a)), Some(&b)) => group_of(a).min(group_of(b)),
                    (Some(&(_, a)), None) => group_of(a),
                    (None, Some(&b)) => group_of(b),
                    (None, None) => break,
                };
                while need > 0 && p < partial.len() && group_of(partial[p].1) == g {
                    need -= take_from_core(&cores[partial[p].1], free, need, out);
                    p += 1;
                }
                while need > 0 && o < order.len() && group_of(order[o]) == g {
                    let ci = order[o];
                    if cores[ci].is_subset(free) {
                        need -= take_from_core(&cores[ci], free, need, out);
                    }
                    o += 1;
                }
            }
        }
    }
    debug_assert_eq!(need, 0);
    true
}

/// `(free PUs, free PUs in entirely free cores)` of cache domain `d` for `free`.
pub(crate) fn domain_counts(topo: &Topology, d: usize, free: &CpuSet) -> (u32, u32) {
    let cores = topo.cores();
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
    (f, w)
}

/// One cache domain of a node as the cache rules rank it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DomainUse {
    /// Global domain index.
    pub(crate) d: usize,
    /// Usable CPUs: free PUs of entirely free cores for [`SmtPolicy::WholeCores`], free
    /// PUs for [`SmtPolicy::Pack`].
    pub(crate) usable: u32,
    /// Whether every core of the domain is entirely free.
    pub(crate) whole: bool,
}

/// The use of cache domain `d` whose counts are `(free PUs, free PUs in entirely free
/// cores)`.
pub(crate) fn domain_use(
    topo: &Topology,
    d: usize,
    (f, w): (u32, u32),
    smt: SmtPolicy,
) -> DomainUse {
    DomainUse {
        d,
        usable: match smt {
            SmtPolicy::WholeCores => w,
            SmtPolicy::Pack => f,
        },
        whole: w as usize == topo.caches()[d].cpus().len(),
    }
}

/// The domains of node position `node` with their use, from `counts` when the caller
/// keeps them (`counts[d]` as [`domain_counts`] gives them) or counted from `free`.
pub(crate) fn domain_uses(
    topo: &Topology,
    node: usize,
    free: &CpuSet,
    counts: Option<&[(u32, u32)]>,
    smt: SmtPolicy,
) -> Vec<DomainUse> {
    topo.nodes()[node]
        .cache_range()
        .map(|d| {
            let c = match counts {
                Some(c) => c[d],
                None => domain_counts(topo, d, free),
            };
            domain_use(topo, d, c, smt)
        })
        .collect()
}

/// The sort key of [`pack_order`] (unique: it ends with the domain).
pub(crate) fn pack_key(
    u: &DomainUse,
    fits: Option<usize>,
) -> (bool, bool, std::cmp::Reverse<u32>, usize) {
    (
        Some(u.d) != fits,
        !u.whole,
        std::cmp::Reverse(u.usable),
        u.d,
    )
}

/// Sorts a node's domains into the order [`CachePolicy::Pack`] visits them for `k`
/// CPUs: the tightest domain that holds `k` first ([`tightest_domain`]), then entirely
/// free domains, then the others with the most usable CPUs first (ties to the lower
/// domain). Returns the tightest domain, if one holds `k`.
pub(crate) fn pack_order(domains: &mut [DomainUse], k: usize) -> Option<usize> {
    let fits = tightest_domain(domains.iter().map(|u| (u.d, u.usable as usize)), k);
    domains.sort_unstable_by_key(|u| pack_key(u, fits));
    fits
}

/// The order in which [`take_in_node`] visits the cores of node position `node` for `k`
/// CPUs: core order when the node has one cache domain. With [`CachePolicy::Spread`], one
/// core of each domain in turn (domains with the most usable CPUs first, each domain's
/// usable cores before its others). With [`CachePolicy::Pack`], domain by domain in
/// [`pack_order`], each domain's cores in core order. `counts` as in
/// [`take_in_node_with`].
pub(crate) fn core_order(
    topo: &Topology,
    node: usize,
    free: &CpuSet,
    counts: Option<&[(u32, u32)]>,
    k: usize,
    smt: SmtPolicy,
    cache: CachePolicy,
) -> Vec<usize> {
    let n = &topo.nodes()[node];
    if n.num_caches() < 2 {
        return n.core_range().collect();
    }
    let cores = topo.cores();
    let mut domains = domain_uses(topo, node, free, counts, smt);
    if cache == CachePolicy::Spread {
        domains.sort_unstable_by_key(|u| (std::cmp::Reverse(u.usable), u.d));
        // Each domain's usable cores first (in core order), so every turn of the round
        // reaches a new domain while one still has a usable core.
        let usable_core = |ci: usize| {
            let c = &cores[ci];
            let f = c.intersection_len(free);
            match smt {
                SmtPolicy::WholeCores => f == c.len(),
                SmtPolicy::Pack => f > 0,
            }
        };
        let lists: Vec<Vec<u32>> = domains
            .iter()
            .map(|u| {
                let mut l = topo.cache_cores(u.d).to_vec();
                l.sort_by_key(|&ci| (!usable_core(ci as usize), ci));
                l
            })
            .collect();
        let longest = lists.iter().map(|l| l.len()).max().unwrap_or(0);
        return (0..longest)
            .flat_map(|i| lists.iter().filter_map(move |l| l.get(i)))
            .map(|&ci| ci as usize)
            .collect();
    }
    pack_order(&mut domains, k);
    let mut order = Vec::with_capacity(n.core_range().len());
    for u in &domains {
        order.extend(topo.cache_cores(u.d).iter().map(|&ci| ci as usize));
    }
    order
}

/// The domain a job of `k` CPUs is packed into when one has room: among `(domain,
/// usable CPUs)` with at least `k` usable, the fewest usable (ties to the lower domain).
/// [`core_order`] visits this domain first, so the job gets CPUs of it alone; the
/// planner's L3 score (`planner/cache.rs`) uses the same function, so its prediction and
/// this choice cannot disagree.
pub(crate) fn tightest_domain(
    usable: impl Iterator<Item = (usize, usize)>,
    k: usize,
) -> Option<usize> {
    usable
        .filter(|&(_, u)| u >= k)
        .min_by_key(|&(d, u)| (u, d))
        .map(|(d, _)| d)
}

/// CPUs of `picked` that lie on cores where some other PU is not free (used by another
/// job) — the SMT sharing with other jobs.
#[cfg(test)]
pub(crate) fn shared_core_cpus(topo: &Topology, picked: &CpuSet, free_before: &CpuSet) -> u32 {
    let mut shared = 0;
    for cpu in picked.iter() {
        if let Some(core) = topo.siblings(cpu)
            && !core.is_subset(free_before)
        {
            shared += 1;
        }
    }
    shared
}

/// Splits `mem` MB for CPUs taken `takes = [(node position, cpus)]`.
///
/// Returns `(mb per node position, spill)` where `spill` is
/// `Σ (MB outside the CPU nodes)/mem * (distance/local - 1)`, or `None` when the memory
/// does not fit (in the CPU nodes alone when `allow_spill` is false). `free_mem(i)` is
/// node position `i`'s free MB; `blocked(i)` marks nodes that must not be used for spill
/// (reserved for a job).
pub(crate) fn split_memory(
    topo: &Topology,
    free_mem: impl Fn(usize) -> u64,
    blocked: impl Fn(usize) -> bool,
    takes: &[(usize, u32)],
    mem: u64,
    allow_spill: bool,
) -> Option<(Vec<(usize, u64)>, f64)> {
    let mut out: Vec<(usize, u64)> = Vec::with_capacity(takes.len());
    if mem == 0 {
        return Some((out, 0.0));
    }
    let cpus: u64 = takes.iter().map(|t| u64::from(t.1)).sum::<u64>().max(1);
    let mut left = mem;
    for &(i, t) in takes {
        let share = (u128::from(mem) * u128::from(t) / u128::from(cpus)) as u64;
        let give = share.min(free_mem(i)).min(left);
        out.push((i, give));
        left -= give;
    }
    for (slot, &(i, _)) in out.iter_mut().zip(takes) {
        if left == 0 {
            break;
        }
        let extra = (free_mem(i) - slot.1).min(left);
        slot.1 += extra;
        left -= extra;
    }
    let mut spill = 0.0;
    if left > 0 {
        if !allow_spill {
            return None;
        }
        // Other nodes, closest to any CPU node first.
        let mut others: Vec<(u32, f64, usize)> = (0..topo.num_nodes())
            .filter(|j| !takes.iter().any(|t| t.0 == *j) && !blocked(*j) && free_mem(*j) > 0)
            .map(|j| {
                let (d, rel) = takes
                    .iter()
                    .map(|&(i, _)| {
                        let d = topo.distance_by_index(i, j);
                        let local = topo.distance_by_index(i, i).max(1);
                        (d, f64::from(d) / f64::from(local) - 1.0)
                    })
                    .min_by(|a, b| a.0.cmp(&b.0))
                    .unwrap_or((u32::MAX, 1.0));
                (d, rel, j)
            })
            .collect();
        others.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
        for (_, rel, j) in others {
            if left == 0 {
                break;
            }
            let give = free_mem(j).min(left);
            out.push((j, give));
            left -= give;
            spill += give as f64 / mem as f64 * rel.max(0.0);
        }
        if left > 0 {
            return None;
        }
    }
    out.retain(|e| e.1 > 0);
    out.sort_unstable();
    Some((out, spill))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sets::CpuId;

    fn cs(s: &str) -> CpuSet {
        s.parse().unwrap()
    }

    fn take(t: &Topology, node: usize, free: &str, k: u32, smt: SmtPolicy) -> Option<String> {
        let mut out = CpuSet::new();
        take_in_node(t, node, &cs(free), k, smt, CachePolicy::Pack, &mut out)
            .then(|| out.to_string())
    }

    #[test]
    fn jobs_that_fit_one_l3_domain_get_one_and_domains_fill_one_by_one() {
        // One node, four L3 domains of four cores {2c, 2c+1}: domain d = CPUs 8d..8d+7.
        let t = Topology::from_synthetic("pack:1 numa:1 l3:4 core:4 pu:2", 100).unwrap();
        let domain = |cpus: &str| {
            let set = cs(cpus);
            let d: std::collections::BTreeSet<_> =
                set.iter().filter_map(|c| t.cache_of(c)).collect();
            d.into_iter().collect::<Vec<_>>()
        };
        // Idle: every size up to a domain stays in one.
        for k in 1..=8 {
            for smt in [SmtPolicy::WholeCores, SmtPolicy::Pack] {
                let got = take(&t, 0, "0-31", k, smt).unwrap();
                assert_eq!(domain(&got).len(), 1, "{k} CPUs {smt:?}: {got}");
            }
        }
        // A sequence of 4-CPU jobs fills domain 0, then 1, ...
        let mut free = cs("0-31");
        for (i, want) in [0, 0, 1, 1, 2, 2, 3, 3].into_iter().enumerate() {
            let mut out = CpuSet::new();
            assert!(take_in_node(
                &t,
                0,
                &free,
                4,
                SmtPolicy::WholeCores,
                CachePolicy::Pack,
                &mut out
            ));
            assert_eq!(domain(&out.to_string()), vec![want], "job {i}: {out}");
            free = free.difference(&out);
        }
        // Domain 0 has a core in use: a job of a whole domain takes domain 1, and a small
        // one the tightest fit (what is left of domain 0).
        assert_eq!(
            take(&t, 0, "2-31", 8, SmtPolicy::WholeCores).unwrap(),
            "8-15"
        );
        assert_eq!(
            take(&t, 0, "2-31", 6, SmtPolicy::WholeCores).unwrap(),
            "2-7"
        );
        // Larger than a domain: entirely free domains before the partly used one.
        assert_eq!(
            take(&t, 0, "2-31", 16, SmtPolicy::WholeCores).unwrap(),
            "8-23"
        );
        assert_eq!(
            take(&t, 0, "2-31", 20, SmtPolicy::WholeCores).unwrap(),
            "8-27"
        );
    }

    #[test]
    fn spread_takes_one_core_of_each_l3_domain_in_turn() {
        let t = Topology::from_synthetic("pack:1 numa:1 l3:4 core:4 pu:2", 100).unwrap();
        let spread = |free: &str, k: u32| {
            let mut out = CpuSet::new();
            assert!(take_in_node(
                &t,
                0,
                &cs(free),
                k,
                SmtPolicy::WholeCores,
                CachePolicy::Spread,
                &mut out
            ));
            out.to_string()
        };
        // Four whole cores: the first core of each domain.
        assert_eq!(spread("0-31", 8), "0-1,8-9,16-17,24-25");
        // Domain 0 is partly used: the freer domains come first.
        assert_eq!(spread("2-31", 6), "8-9,16-17,24-25");
        // Eight cores: two of each domain.
        assert_eq!(spread("0-31", 16), "0-3,8-11,16-19,24-27");
        // Without cache domains, spread is core order.
        let flat = Topology::from_synthetic("pack:1 numa:1 core:4 pu:2", 100).unwrap();
        let mut out = CpuSet::new();
        assert!(take_in_node(
            &flat,
            0,
            &cs("0-7"),
            4,
            SmtPolicy::WholeCores,
            CachePolicy::Spread,
            &mut out
        ));
        assert_eq!(out.to_string(), "0-3");
    }

    #[test]
    fn whole_cores_first() {
        // Node 0: cores {0,1} {2,3} {4,5} {6,7}.
        let t = Topology::from_synthetic("pack:1 numa:2 core:4 pu:2", 100).unwrap();
        assert_eq!(take(&t, 0, "0-7", 6, SmtPolicy::WholeCores).unwrap(), "0-5");
        // Core {0,1} is half used: whole cores 1..3 are taken first.
        assert_eq!(take(&t, 0, "1-7", 6, SmtPolicy::WholeCores).unwrap(), "2-7");
        // Odd remainder goes to another whole core, not to the shared one.
        assert_eq!(take(&t, 0, "1-7", 3, SmtPolicy::WholeCores).unwrap(), "2-4");
        // No whole core left for the remainder: the shared core supplies it.
        assert_eq!(take(&t, 0, "1-5", 5, SmtPolicy::WholeCores).unwrap(), "1-5");
        // Pack: partly used core first.
        assert_eq!(take(&t, 0, "1-7", 3, SmtPolicy::Pack).unwrap(), "1-3");
        assert_eq!(take(&t, 0, "1-7", 8, SmtPolicy::Pack), None);
        assert_eq!(take(&t, 1, "0-7", 1, SmtPolicy::Pack), None);
        assert_eq!(take(&t, 0, "0-7", 0, SmtPolicy::Pack).unwrap(), "");
        assert_eq!(node_free_count(&t, 0, &cs("1-9")), 7);
        assert_eq!(node_counts(&t, 0, &cs("1-7")), (7, 6));
        assert_eq!(shared_core_cpus(&t, &cs("1-2"), &cs("1-7")), 1);
        let _ = CpuId(0);
    }

    #[test]
    fn memory_split_and_spill() {
        let mut spec = Topology::from_synthetic("pack:2 numa:2 core:1 pu:1", 100)
            .unwrap()
            .spec()
            .clone();
        let d = [
            [10, 12, 32, 32],
            [12, 10, 32, 32],
            [32, 32, 10, 12],
            [32, 32, 12, 10],
        ];
        for (i, n) in spec.nodes.iter_mut().enumerate() {
            n.distances = d[i].to_vec();
        }
        let t = Topology::new(spec).unwrap();
        let free = |i: usize| [100, 100, 100, 100][i];
        let none = |_: usize| false;
        let (m, spill) = split_memory(&t, free, none, &[(0, 1), (2, 1)], 150, false).unwrap();
        assert_eq!(m, vec![(0, 75), (2, 75)]);
        assert_eq!(spill, 0.0);
        assert!(split_memory(&t, free, none, &[(0, 1)], 150, false).is_none());
        let (m, spill) = split_memory(&t, free, none, &[(0, 1)], 150, true).unwrap();
        assert_eq!(m, vec![(0, 100), (1, 50)]);
        assert!((spill - 50.0 / 150.0 * 0.2).abs() < 1e-9);
        // Node 1 blocked: spill goes across the socket.
        let blocked = |i: usize| i == 1;
        let (m, _) = split_memory(&t, free, blocked, &[(0, 1)], 150, true).unwrap();
        assert_eq!(m, vec![(0, 100), (2, 50)]);
        assert!(split_memory(&t, free, none, &[(0, 1)], 401, true).is_none());
        let (m, _) = split_memory(
            &t,
            |i| [10, 100, 0, 0][i],
            none,
            &[(0, 3), (1, 1)],
            40,
            false,
        )
        .unwrap();
        assert_eq!(m, vec![(0, 10), (1, 30)]);
    }
}
