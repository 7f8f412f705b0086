//! Spec → agent flags: the `--resources` and `--attributes` texts an agent advertises
//! (part of the NUMA convention, see the parent module).

use super::*;

/// Writes both agent flags for `spec` with `free` resources. `spec` must be a valid
/// topology and `free.cpuids` a subset of its usable CPUs.
pub fn agent_flags(spec: &TopologySpec, free: &FreeResources) -> Result<AgentFlags, NumaError> {
    Ok(AgentFlags {
        resources: resources_text(spec, free)?,
        attributes: attributes_text(spec)?,
    })
}

/// The `--resources` value:
/// `cpus:N;mem:M;disk:D;gpus:G;cpuids:[a-b,...];gpuids:[a-b,...];numanodes:K`, each zero
/// scalar and an empty `cpuids`/`gpuids` left out.
pub fn resources_text(spec: &TopologySpec, free: &FreeResources) -> Result<String, NumaError> {
    let topology = Topology::new(spec.clone())?;
    let stray = free.cpuids.difference(topology.cpus());
    if !stray.is_empty() {
        return Err(NumaError::CpusOutsideTopology { cpus: stray });
    }
    check_gpuids(&topology, &free.gpuids)?;
    let mut parts = Vec::new();
    for (name, value) in [
        (CPUS, free.cpus),
        (MEM, free.mem_mb),
        (DISK, free.disk_mb),
        (GPUS, free.gpus),
    ] {
        push_scalar(&mut parts, name, value)?;
    }
    if !free.cpuids.is_empty() {
        let ranges: Vec<String> = free
            .cpuids
            .ranges()
            .map(|(a, b)| format!("{a}-{b}"))
            .collect();
        parts.push(format!("{CPUIDS}:[{}]", ranges.join(",")));
    }
    if !free.gpuids.is_empty() {
        let ranges: Vec<String> = free
            .gpuids
            .ranges()
            .map(|(a, b)| format!("{a}-{b}"))
            .collect();
        parts.push(format!("{GPUIDS}:[{}]", ranges.join(",")));
    }
    push_scalar(&mut parts, NUMANODES, free.numanodes)?;
    Ok(parts.join(";"))
}

pub(super) fn push_scalar(
    parts: &mut Vec<String>,
    name: &'static str,
    value: f64,
) -> Result<(), NumaError> {
    if !value.is_finite() || !(0.0..=MAX_SCALAR).contains(&value) {
        return Err(NumaError::BadScalar { name, value });
    }
    let value = round3(value);
    if value > 0.0 {
        parts.push(format!("{name}:{}", format_scalar(value)));
    }
    Ok(())
}

/// Mesos keeps scalars to 3 decimals (as fixed-point integers); values above
/// [`MAX_SCALAR`] are rejected before they get here, so this is exact and idempotent.
pub(super) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The largest scalar accepted anywhere (a trillion CPUs or MB): keeps `value * 1000` far
/// inside the integers an `f64` holds exactly, so 3-decimal rounding is lossless.
pub const MAX_SCALAR: f64 = 1e12;

/// `32`, `0.5`, `1.125`: at most 3 decimals, no trailing zeros.
pub(super) fn format_scalar(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0');
    text.trim_end_matches('.').to_string()
}

/// GPU ids named free must be GPUs of the layout, when the layout lists GPUs.
pub(super) fn check_gpuids(topology: &Topology, gpuids: &GpuSet) -> Result<(), NumaError> {
    if topology.gpus().is_empty() {
        return Ok(());
    }
    let stray = gpuids.difference(topology.gpu_ids());
    if stray.is_empty() {
        Ok(())
    } else {
        Err(NumaError::GpusOutsideTopology { gpus: stray })
    }
}

/// The `--attributes` value:
/// `retz_numa:v1;numa_n<ID>:<node>;...;numa_offline:cpus.<list>` followed by the cache, GPU
/// and remote-CPU attributes when the layout has them.
pub fn attributes_text(spec: &TopologySpec) -> Result<String, NumaError> {
    let pairs = topology_attributes(spec)?;
    Ok(pairs
        .iter()
        .map(|(name, value)| format!("{name}:{value}"))
        .collect::<Vec<_>>()
        .join(";"))
}

/// The NUMA attributes of `spec` as `(name, text value)` pairs, in flag order.
pub fn topology_attributes(spec: &TopologySpec) -> Result<Vec<(String, String)>, NumaError> {
    Topology::new(spec.clone())?;
    let mut pairs = vec![(VERSION_ATTRIBUTE.to_string(), VERSION.to_string())];
    for node in &spec.nodes {
        pairs.push((
            format!("{NODE_ATTRIBUTE_PREFIX}{}", node.id),
            encode_node(node),
        ));
    }
    if !spec.offline_cpus.is_empty() {
        pairs.push((
            OFFLINE_ATTRIBUTE.to_string(),
            format!("cpus.{}", encode_list(&spec.offline_cpus)),
        ));
    }
    for node in &spec.nodes {
        if !node.caches.is_empty() {
            pairs.push((
                format!("{CACHE_ATTRIBUTE_PREFIX}{}", node.id),
                encode_caches(node),
            ));
        }
    }
    if !spec.gpus.is_empty() {
        pairs.push((GPU_ATTRIBUTE.to_string(), encode_gpus(&spec.gpus)));
    }
    if !spec.remote_cpus.is_empty() {
        pairs.push((
            REMOTE_ATTRIBUTE.to_string(),
            format!("cpus.{}", encode_list(&spec.remote_cpus)),
        ));
    }
    Ok(pairs)
}

/// A node's cache domains: `n<sizes>` when the domains are consecutive runs of the node's
/// cores in their listed order (sizes in cores, `SxR` = R domains of S cores, e.g. `n8x24`),
/// else `c<firsts>/c<firsts>/...`, each domain as the lowest CPUs of its cores.
pub(super) fn encode_caches(node: &NodeSpec) -> String {
    let members: Vec<Vec<usize>> = node
        .caches
        .iter()
        .map(|cache| {
            (0..node.cores.len())
                .filter(|&i| node.cores[i].cpus.is_subset(&cache.cpus))
                .collect()
        })
        .collect();
    let consecutive = members.iter().flatten().copied().eq(0..node.cores.len());
    if consecutive {
        let mut items: Vec<(usize, usize)> = Vec::new();
        for m in &members {
            match items.last_mut() {
                Some((size, count)) if *size == m.len() => *count += 1,
                _ => items.push((m.len(), 1)),
            }
        }
        let sizes: Vec<String> = items
            .iter()
            .map(|&(size, count)| {
                if count == 1 {
                    size.to_string()
                } else {
                    format!("{size}x{count}")
                }
            })
            .collect();
        return format!("n{}", sizes.join("."));
    }
    members
        .iter()
        .map(|m| {
            let firsts: CpuSet = m
                .iter()
                .filter_map(|&i| node.cores[i].cpus.first())
                .collect();
            format!("c{}", encode_strided(&firsts))
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `g<ids>[n<nodes>]/...`: runs of GPUs (in id order) attached to the same nodes.
pub(super) fn encode_gpus(gpus: &[GpuSpec]) -> String {
    let mut items: Vec<(GpuSet, &NodeSet)> = Vec::new();
    for g in gpus {
        match items.last_mut() {
            Some((ids, nodes)) if *nodes == &g.nodes => {
                ids.insert(g.id);
            }
            _ => items.push((std::iter::once(g.id).collect(), &g.nodes)),
        }
    }
    items
        .iter()
        .map(|(ids, nodes)| {
            let mut item = format!("g{}", encode_ranges(ids.ranges()));
            if !nodes.is_empty() {
                item.push('n');
                item.push_str(&encode_ranges(nodes.ranges()));
            }
            item
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `pkg.P/mem.M[/cores.RUN.RUN...][/dist.D.D...]`.
pub(super) fn encode_node(node: &NodeSpec) -> String {
    let mut text = format!("pkg.{}/mem.{}", node.package, node.memory_mb);
    if !node.cores.is_empty() {
        text.push_str("/cores.");
        text.push_str(&encode_cores(&node.cores));
    }
    if !node.distances.is_empty() {
        let row: Vec<String> = node.distances.iter().map(u32::to_string).collect();
        text.push_str("/dist.");
        text.push_str(&row.join("."));
    }
    text
}

/// A CPU list with `.` between items and `-` in runs: `0-3.8.10-11`.
pub(super) fn encode_list(set: &CpuSet) -> String {
    encode_ranges(set.ranges())
}

/// Ids as arithmetic runs with `.` between items: `a`, `a-b` (step 1) or `a-bsK` (step K),
/// e.g. `0-14s2.32-39`; runs of three or more ids become `a-b[sK]`.
pub(super) fn encode_strided(set: &CpuSet) -> String {
    let ids: Vec<u32> = set.iter().map(|c| c.0).collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut end = i;
        if i + 2 < ids.len() {
            let stride = ids[i + 1] - ids[i];
            while end + 1 < ids.len() && ids[end + 1] - ids[end] == stride {
                end += 1;
            }
            if end - i < 2 && stride != 1 {
                end = i;
            }
            if end > i {
                items.push(if stride == 1 {
                    format!("{}-{}", ids[i], ids[end])
                } else {
                    format!("{}-{}s{stride}", ids[i], ids[end])
                });
                i = end + 1;
                continue;
            }
        } else if i + 1 < ids.len() && ids[i + 1] == ids[i] + 1 {
            items.push(format!("{}-{}", ids[i], ids[i + 1]));
            i += 2;
            continue;
        }
        items.push(ids[i].to_string());
        i += 1;
    }
    items.join(".")
}

/// Inclusive runs with `.` between items and `-` in runs: `0-3.8.10-11`.
pub(super) fn encode_ranges(ranges: impl Iterator<Item = (u32, u32)>) -> String {
    ranges
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Cores as runs, in the given order. A core is its lowest CPU `f` plus sibling offsets
/// `o1 < o2 < ...` (the core is `{f, f+o1, f+o2, ...}`); consecutive cores with the same
/// offsets whose lowest CPUs step by the same stride form one run `a-b[sK]tO1tO2...`.
pub(super) fn encode_cores(cores: &[CoreSpec]) -> String {
    let shapes: Vec<(u32, Vec<u32>)> = cores
        .iter()
        .map(|core| {
            let first = core.cpus.first().map_or(0, |c| c.0);
            let offsets = core.cpus.iter().skip(1).map(|c| c.0 - first).collect();
            (first, offsets)
        })
        .collect();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < shapes.len() {
        let (first, offsets) = &shapes[i];
        let mut end = i;
        let mut stride = 0;
        if let Some((next, next_offsets)) = shapes.get(i + 1)
            && next > first
            && next_offsets == offsets
        {
            stride = next - first;
            end = i + 1;
            while let Some((after, after_offsets)) = shapes.get(end + 1) {
                if after_offsets != offsets || after.checked_sub(shapes[end].0) != Some(stride) {
                    break;
                }
                end += 1;
            }
        }
        let mut run = first.to_string();
        if end > i {
            run.push_str(&format!("-{}", shapes[end].0));
            if stride != 1 {
                run.push_str(&format!("s{stride}"));
            }
        }
        for offset in offsets {
            run.push_str(&format!("t{offset}"));
        }
        runs.push(run);
        i = end + 1;
    }
    runs.join(".")
}
