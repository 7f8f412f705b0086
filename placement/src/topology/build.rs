//! [`Topology::new`]: validates a [`TopologySpec`] (see the parent module for the
//! invariants) and builds the indexes the packer reads: CPU → core → node, cache domains
//! with their cores, the distance matrix with defaults, nodes by distance, GPU ids.

use super::*;

/// A cache domain being built: its CPUs and its core indexes.
type Domain = (CpuSet, Vec<u32>);

/// Checks node `ns`'s cache domains against its cores and returns them as
/// `(cpus, core indexes in node core order)` plus whether they were listed; a node with
/// CPUs but no listed domain gets one implicit domain of all its cores. `core_of` maps a
/// usable CPU to its global core index; the node's cores are `cores`.
fn node_caches(
    ns: &NodeSpec,
    cores: std::ops::Range<usize>,
    node_cpus: &CpuSet,
    core_of: impl Fn(CpuId) -> Option<usize>,
    all_cores: &[CpuSet],
) -> Result<(Vec<Domain>, bool), TopologyError> {
    if ns.caches.is_empty() {
        if cores.is_empty() {
            return Ok((Vec::new(), false));
        }
        let list = cores.map(|c| c as u32).collect();
        return Ok((vec![(node_cpus.clone(), list)], false));
    }
    let mut seen = CpuSet::new();
    let mut out = Vec::with_capacity(ns.caches.len());
    for (d, cache) in ns.caches.iter().enumerate() {
        let outside = cache.cpus.difference(node_cpus);
        if cache.cpus.is_empty() || !outside.is_empty() {
            return Err(TopologyError::CacheOutsideNode {
                node: ns.id,
                cache: d,
                cpus: outside,
            });
        }
        let overlap = cache.cpus.intersection(&seen);
        if !overlap.is_empty() {
            return Err(TopologyError::CacheOverlap {
                node: ns.id,
                cpus: overlap,
            });
        }
        seen.union_with(&cache.cpus);
        let mut list: Vec<u32> = Vec::new();
        for cpu in cache.cpus.iter() {
            let Some(ci) = core_of(cpu) else {
                continue;
            };
            if !all_cores[ci].is_subset(&cache.cpus) {
                return Err(TopologyError::CacheSplitsCore {
                    node: ns.id,
                    cache: d,
                    cpu,
                });
            }
            if all_cores[ci].first() == Some(cpu) {
                list.push(ci as u32);
            }
        }
        list.sort_unstable();
        out.push((cache.cpus.clone(), list));
    }
    let missing = node_cpus.difference(&seen);
    if !missing.is_empty() {
        return Err(TopologyError::CachesIncomplete {
            node: ns.id,
            cpus: missing,
        });
    }
    Ok((out, true))
}

impl Topology {
    /// Validates `spec` and builds the indexes.
    pub fn new(spec: TopologySpec) -> Result<Topology, TopologyError> {
        let n = spec.nodes.len();
        if n == 0 {
            return Err(TopologyError::NoNodes);
        }
        if n > MAX_NODES {
            return Err(TopologyError::TooManyNodes { count: n });
        }
        let with_rows = spec
            .nodes
            .iter()
            .filter(|s| !s.distances.is_empty())
            .count();
        let distances_known = with_rows > 0;
        let mut node_ids = NodeSet::new();
        let mut nodes = Vec::with_capacity(n);
        let mut cores = Vec::new();
        let mut core_node = Vec::new();
        let mut cpus = CpuSet::new();
        let mut total_memory_mb = 0u64;
        let mut caches = Vec::new();
        let mut cache_cores: Vec<u32> = Vec::new();
        let mut largest_split_cache = 0u32;
        for (position, ns) in spec.nodes.iter().enumerate() {
            if ns.id.0 > MAX_SET_ID {
                return Err(TopologyError::NodeIdTooLarge { id: ns.id });
            }
            if position > 0 {
                let previous = spec.nodes[position - 1].id;
                if ns.id <= previous {
                    return Err(TopologyError::NodesNotAscending {
                        position,
                        id: ns.id,
                        previous,
                    });
                }
            }
            node_ids.insert(ns.id);
            if distances_known && ns.distances.len() != n {
                return Err(TopologyError::DistanceRow {
                    node: ns.id,
                    len: ns.distances.len(),
                    expected: n,
                });
            }
            if let Some(to) = ns.distances.iter().position(|&d| d == 0) {
                return Err(TopologyError::ZeroDistance {
                    from: ns.id,
                    to: spec.nodes[to].id,
                });
            }
            let core_start = cores.len();
            let mut node_cpus = CpuSet::new();
            let mut smt_width = 0;
            let mut uniform_cores = true;
            for (ci, core) in ns.cores.iter().enumerate() {
                if core.cpus.is_empty() {
                    return Err(TopologyError::EmptyCore {
                        node: ns.id,
                        core: ci,
                    });
                }
                if let Some(cpu) = core.cpus.intersection(&cpus).first() {
                    return Err(TopologyError::CpuInTwoCores { cpu });
                }
                if let Some(cpu) = core.cpus.intersection(&spec.offline_cpus).first() {
                    return Err(TopologyError::CpuBothOnlineAndOffline { cpu });
                }
                cpus.union_with(&core.cpus);
                node_cpus.union_with(&core.cpus);
                uniform_cores &= ci == 0 || core.cpus.len() == smt_width;
                smt_width = smt_width.max(core.cpus.len());
                cores.push(core.cpus.clone());
                core_node.push(position as u32);
            }
            total_memory_mb = total_memory_mb.saturating_add(ns.memory_mb);
            nodes.push(NumaNode {
                id: ns.id,
                index: position,
                package: ns.package,
                memory_mb: ns.memory_mb,
                cpus: node_cpus,
                core_start,
                core_end: cores.len(),
                cache_start: 0,
                cache_end: 0,
                smt_width,
                uniform_cores,
            });
        }
        if cpus.is_empty() {
            return Err(TopologyError::NoCpus);
        }
        let stray = spec.remote_cpus.difference(&cpus);
        if !stray.is_empty() {
            return Err(TopologyError::RemoteCpusNotUsable { cpus: stray });
        }
        let mut gpu_ids = GpuSet::new();
        for (k, g) in spec.gpus.iter().enumerate() {
            if g.id.0 > MAX_SET_ID {
                return Err(TopologyError::GpuIdTooLarge { id: g.id });
            }
            if !gpu_ids.insert(g.id) {
                return Err(TopologyError::GpuTwice { id: g.id });
            }
            if k > 0 && spec.gpus[k - 1].id > g.id {
                return Err(TopologyError::GpusNotAscending {
                    id: g.id,
                    previous: spec.gpus[k - 1].id,
                });
            }
            let unknown = g.nodes.difference(&node_ids);
            if !unknown.is_empty() {
                return Err(TopologyError::GpuUnknownNode {
                    id: g.id,
                    nodes: unknown,
                });
            }
        }
        let max_cpu = cpus.last().map_or(0, |c| c.0 as usize);
        let mut cpu_core = vec![u32::MAX; max_cpu + 1];
        for (ci, core) in cores.iter().enumerate() {
            for cpu in core.iter() {
                cpu_core[cpu.0 as usize] = ci as u32;
            }
        }
        let core_of = |cpu: CpuId| match cpu_core.get(cpu.0 as usize) {
            Some(&c) if c != u32::MAX => Some(c as usize),
            _ => None,
        };
        for (position, ns) in spec.nodes.iter().enumerate() {
            let range = nodes[position].core_start..nodes[position].core_end;
            let (domains, explicit) =
                node_caches(ns, range, &nodes[position].cpus, core_of, &cores)?;
            nodes[position].cache_start = caches.len();
            if domains.len() > 1 {
                for (c, _) in &domains {
                    largest_split_cache = largest_split_cache.max(c.len() as u32);
                }
            }
            for (dcpus, dcores) in domains {
                let start = cache_cores.len();
                cache_cores.extend_from_slice(&dcores);
                caches.push(CacheDomain {
                    node: position,
                    remote: dcpus.intersection_len(&spec.remote_cpus) as u32,
                    cpus: dcpus,
                    core_start: start,
                    core_end: cache_cores.len(),
                    explicit,
                });
            }
            nodes[position].cache_end = caches.len();
        }
        let mut core_cache = vec![0u32; cores.len()];
        for (d, c) in caches.iter().enumerate() {
            for &ci in &cache_cores[c.core_start..c.core_end] {
                core_cache[ci as usize] = d as u32;
            }
        }
        let mut distances = Vec::with_capacity(n * n);
        for (i, ns) in spec.nodes.iter().enumerate() {
            for j in 0..n {
                distances.push(if distances_known {
                    ns.distances[j]
                } else if i == j {
                    DEFAULT_LOCAL_DISTANCE
                } else {
                    DEFAULT_REMOTE_DISTANCE
                });
            }
        }
        let mut by_distance = Vec::with_capacity(n * n);
        for i in 0..n {
            let mut row: Vec<u32> = (0..n as u32).filter(|&j| j as usize != i).collect();
            row.sort_by_key(|&j| (distances[i * n + j as usize], j));
            by_distance.push(i as u32);
            by_distance.extend(row);
        }
        Ok(Topology {
            spec,
            cpus,
            node_ids,
            nodes,
            cores,
            cpu_core,
            core_node,
            caches,
            cache_cores,
            core_cache,
            largest_split_cache,
            distances,
            by_distance,
            distances_known,
            total_memory_mb,
            gpu_ids,
        })
    }
}
