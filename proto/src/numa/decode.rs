//! Mesos values → spec: an offer's resources and attributes back into the placement
//! topology and free resources (part of the NUMA convention, see the parent module).

use super::*;

/// Mesos RANGES for a CPU set.
pub fn cpuset_to_ranges(set: &CpuSet) -> value::Ranges {
    value::Ranges {
        range: set
            .ranges()
            .map(|(a, b)| value::Range {
                begin: u64::from(a),
                end: u64::from(b),
            })
            .collect(),
    }
}

/// A CPU set from Mesos RANGES; ids above [`MAX_SET_ID`] or reversed ranges are an error.
pub fn ranges_to_cpuset(ranges: &value::Ranges) -> Result<CpuSet, NumaError> {
    let mut set = CpuSet::new();
    for r in &ranges.range {
        if r.begin > r.end || r.end > u64::from(MAX_SET_ID) {
            return Err(NumaError::ResourceType {
                name: CPUIDS.to_string(),
                expected: "RANGES of CPU ids 0..=65535",
                found: format!("range {}-{}", r.begin, r.end),
            });
        }
        // both bounds fit in u32 (checked above)
        set.union_with(&CpuSet::from_range(r.begin as u32, r.end as u32));
    }
    Ok(set)
}

/// A GPU id set from Mesos RANGES; ids above [`MAX_SET_ID`] or reversed ranges are an error.
pub fn ranges_to_gpuset(ranges: &value::Ranges) -> Result<GpuSet, NumaError> {
    let mut set = GpuSet::new();
    for r in &ranges.range {
        if r.begin > r.end || r.end > u64::from(MAX_SET_ID) {
            return Err(NumaError::ResourceType {
                name: GPUIDS.to_string(),
                expected: "RANGES of GPU ids 0..=65535",
                found: format!("range {}-{}", r.begin, r.end),
            });
        }
        // both bounds fit in u32 (checked above)
        set.union_with(&GpuSet::from_range(r.begin as u32, r.end as u32));
    }
    Ok(set)
}

/// Mesos RANGES for a GPU id set.
pub fn gpuset_to_ranges(set: &GpuSet) -> value::Ranges {
    value::Ranges {
        range: set
            .ranges()
            .map(|(a, b)| value::Range {
                begin: u64::from(a),
                end: u64::from(b),
            })
            .collect(),
    }
}

/// Rebuilds the layout and the free resources from an offer (or from parsed agent flags).
/// Resources of every role are added up. With the `retz_numa` attribute the layout comes
/// from the NUMA attributes and must hold the offered `cpuids`; without it the offer is
/// not NUMA-aware: one node 0 whose cores are single CPUs, the `cpuids` if offered, else
/// placeholders `0..floor(cpus)`, with `mem` as its memory.
pub fn offer_topology(
    resources: &[Resource],
    attributes: &[Attribute],
) -> Result<OfferTopology, NumaError> {
    let (mut free, saw_cpuids) = free_resources(resources)?;
    let version = attributes.iter().find(|a| a.name == VERSION_ATTRIBUTE);
    let Some(version) = version else {
        let cpus = if saw_cpuids {
            free.cpuids.clone()
        } else {
            let count = free.cpus.floor().min(f64::from(MAX_SET_ID) + 1.0) as u32;
            if count == 0 {
                return Err(NumaError::NoCpus);
            }
            let placeholders = CpuSet::from_range(0, count - 1);
            free.cpuids = placeholders.clone();
            placeholders
        };
        if cpus.is_empty() {
            return Err(NumaError::NoCpus);
        }
        let spec = Topology::single_node(&cpus, free.mem_mb.floor() as u64)?
            .spec()
            .clone();
        return Ok(OfferTopology {
            spec,
            free,
            numa_aware: false,
        });
    };
    let found = text_of(version)?;
    if found != VERSION {
        return Err(NumaError::UnsupportedVersion {
            found: quote(found),
        });
    }
    let spec = decode_layout(attributes)?;
    let topology = Topology::new(spec)?;
    let stray = free.cpuids.difference(topology.cpus());
    if !stray.is_empty() {
        return Err(NumaError::CpusOutsideTopology { cpus: stray });
    }
    check_gpuids(&topology, &free.gpuids)?;
    Ok(OfferTopology {
        spec: topology.spec().clone(),
        free,
        numa_aware: true,
    })
}

/// The free resources an offer's `resources` state (every role added up), and whether
/// they named `cpuids`.
fn free_resources(resources: &[Resource]) -> Result<(FreeResources, bool), NumaError> {
    let mut free = FreeResources {
        cpuids: CpuSet::new(),
        cpus: 0.0,
        mem_mb: 0.0,
        disk_mb: 0.0,
        gpus: 0.0,
        gpuids: GpuSet::new(),
        numanodes: 0.0,
    };
    let mut saw_cpuids = false;
    for resource in resources {
        let slot = match resource.name.as_str() {
            CPUS => &mut free.cpus,
            MEM => &mut free.mem_mb,
            DISK => &mut free.disk_mb,
            GPUS => &mut free.gpus,
            NUMANODES => &mut free.numanodes,
            CPUIDS => {
                let ranges = match (&resource.ranges, resource.r#type) {
                    (Some(ranges), t) if t == value::Type::Ranges as i32 => ranges,
                    _ => return Err(resource_type(resource, "RANGES")),
                };
                free.cpuids.union_with(&ranges_to_cpuset(ranges)?);
                saw_cpuids = true;
                continue;
            }
            GPUIDS => {
                let ranges = match (&resource.ranges, resource.r#type) {
                    (Some(ranges), t) if t == value::Type::Ranges as i32 => ranges,
                    _ => return Err(resource_type(resource, "RANGES")),
                };
                free.gpuids.union_with(&ranges_to_gpuset(ranges)?);
                continue;
            }
            _ => continue,
        };
        let value = match (&resource.scalar, resource.r#type) {
            (Some(s), t) if t == value::Type::Scalar as i32 => s.value,
            _ => return Err(resource_type(resource, "SCALAR")),
        };
        let sum = round3(*slot + value);
        if !value.is_finite() || value < 0.0 || !(0.0..=MAX_SCALAR).contains(&sum) {
            return Err(NumaError::ResourceType {
                name: resource.name.clone(),
                expected: "a SCALAR between 0 and 1e12 (summed over roles)",
                found: value.to_string(),
            });
        }
        *slot = sum;
    }

    Ok((free, saw_cpuids))
}

/// As [`offer_topology`] for an offer whose attributes are those `topology` was rebuilt
/// from (a NUMA-aware offer of an agent with a layout already seen): the free resources,
/// checked against the layout the same way, without decoding the layout again.
pub fn offer_free_on(
    resources: &[Resource],
    topology: &Topology,
) -> Result<FreeResources, NumaError> {
    let (free, _) = free_resources(resources)?;
    let stray = free.cpuids.difference(topology.cpus());
    if !stray.is_empty() {
        return Err(NumaError::CpusOutsideTopology { cpus: stray });
    }
    check_gpuids(topology, &free.gpuids)?;
    Ok(free)
}

pub(super) fn resource_type(resource: &Resource, expected: &'static str) -> NumaError {
    NumaError::ResourceType {
        name: resource.name.clone(),
        expected,
        found: type_name(resource.r#type),
    }
}

pub(super) fn text_of(attribute: &Attribute) -> Result<&str, NumaError> {
    match (&attribute.text, attribute.r#type) {
        (Some(text), t) if t == value::Type::Text as i32 => Ok(&text.value),
        _ => Err(NumaError::Attribute {
            name: attribute.name.clone(),
            value: String::new(),
            message: format!(
                "it is {}; the convention writes TEXT",
                type_name(attribute.r#type)
            ),
        }),
    }
}

/// Builds the spec from the `numa_n*`, `numa_offline`, `numa_l3_n*`, `numa_gpus` and
/// `numa_remote` attributes (not yet validated as a topology).
pub(super) fn decode_layout(attributes: &[Attribute]) -> Result<TopologySpec, NumaError> {
    let mut nodes: BTreeMap<u32, NodeSpec> = BTreeMap::new();
    let mut offline: Option<CpuSet> = None;
    let mut remote: Option<CpuSet> = None;
    let mut gpus: Option<Vec<GpuSpec>> = None;
    let mut caches: BTreeMap<u32, (&str, &str)> = BTreeMap::new();
    let mut seen = CpuSet::new();
    for attribute in attributes {
        let name = attribute.name.as_str();
        if name == OFFLINE_ATTRIBUTE || name == REMOTE_ATTRIBUTE {
            let text = text_of(attribute)?;
            let err = attribute_error(name, text);
            let list = text
                .strip_prefix("cpus.")
                .ok_or_else(|| err("expected cpus.<list>, e.g. cpus.2.5-7".to_string()))?;
            if name == OFFLINE_ATTRIBUTE {
                if offline.is_some() {
                    return Err(err("given twice".to_string()));
                }
                offline = Some(decode_list(list, &mut seen).map_err(&err)?);
            } else {
                if remote.is_some() {
                    return Err(err("given twice".to_string()));
                }
                remote = Some(decode_list(list, &mut CpuSet::new()).map_err(&err)?);
            }
            continue;
        }
        if name == GPU_ATTRIBUTE {
            let text = text_of(attribute)?;
            let err = attribute_error(name, text);
            if gpus.is_some() {
                return Err(err("given twice".to_string()));
            }
            gpus = Some(decode_gpus(text).map_err(&err)?);
            continue;
        }
        if let Some(id) = name.strip_prefix(CACHE_ATTRIBUTE_PREFIX) {
            let text = text_of(attribute)?;
            let err = attribute_error(name, text);
            let id: u32 = parse_uint(id)
                .ok()
                .filter(|&i| i <= MAX_SET_ID)
                .ok_or_else(|| {
                    err(format!(
                        "cache attribute names are {CACHE_ATTRIBUTE_PREFIX}<id> with id 0..={MAX_SET_ID}"
                    ))
                })?;
            if caches.insert(id, (name, text)).is_some() {
                return Err(err("given twice".to_string()));
            }
            continue;
        }
        let Some(id) = name.strip_prefix(NODE_ATTRIBUTE_PREFIX) else {
            continue;
        };
        let text = text_of(attribute)?;
        let err = attribute_error(name, text);
        let id: u32 = parse_uint(id)
            .ok()
            .filter(|&i| i <= MAX_SET_ID)
            .ok_or_else(|| {
                err(format!(
                    "node attribute names are {NODE_ATTRIBUTE_PREFIX}<id> with id 0..={MAX_SET_ID}"
                ))
            })?;
        if nodes.contains_key(&id) {
            return Err(err("given twice".to_string()));
        }
        let node = decode_node(NodeId(id), text, &mut seen).map_err(&err)?;
        nodes.insert(id, node);
    }
    if nodes.is_empty() {
        return Err(NumaError::Attribute {
            name: VERSION_ATTRIBUTE.to_string(),
            value: VERSION.to_string(),
            message: format!("no {NODE_ATTRIBUTE_PREFIX}<id> attribute describes a node"),
        });
    }
    for (id, (name, text)) in caches {
        let err = attribute_error(name, text);
        let node = nodes.get_mut(&id).ok_or_else(|| {
            err(format!(
                "there is no {NODE_ATTRIBUTE_PREFIX}{id} attribute for these cache domains"
            ))
        })?;
        node.caches = decode_caches(&node.cores, text).map_err(&err)?;
    }
    Ok(TopologySpec {
        nodes: nodes.into_values().collect(),
        offline_cpus: offline.unwrap_or_default(),
        remote_cpus: remote.unwrap_or_default(),
        gpus: gpus.unwrap_or_default(),
    })
}

/// Decodes a node's cache domains: `n<sizes>` (consecutive runs of its cores) or
/// `c<firsts>/...` (each domain lists the lowest CPU of each of its cores).
pub(super) fn decode_caches(cores: &[CoreSpec], text: &str) -> Result<Vec<CacheSpec>, String> {
    if let Some(sizes) = text.strip_prefix('n') {
        let mut out = Vec::new();
        let mut next = 0usize;
        for item in sizes.split('.') {
            let (size, count) = match item.split_once('x') {
                Some((s, r)) => (parse_uint::<usize>(s)?, parse_uint::<usize>(r)?),
                None => (parse_uint::<usize>(item)?, 1),
            };
            if size == 0 || count == 0 {
                return Err(format!(
                    "cache size item {:?} has a zero; write SIZE or SIZExCOUNT with both at least 1",
                    quote(item)
                ));
            }
            for _ in 0..count {
                let end = next.saturating_add(size);
                if end > cores.len() {
                    return Err(format!(
                        "the cache domain sizes add up to more than the node's {} cores",
                        cores.len()
                    ));
                }
                let cpus = cores[next..end]
                    .iter()
                    .fold(CpuSet::new(), |acc, c| acc.union(&c.cpus));
                out.push(CacheSpec { cpus });
                next = end;
            }
        }
        if next != cores.len() {
            return Err(format!(
                "the cache domain sizes add up to {next} cores; the node has {}",
                cores.len()
            ));
        }
        return Ok(out);
    }
    let mut by_first: Vec<(u32, usize)> = cores
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.cpus.first().map(|f| (f.0, i)))
        .collect();
    by_first.sort_unstable();
    let mut out = Vec::new();
    for item in text.split('/') {
        let list = item.strip_prefix('c').ok_or_else(|| {
            format!(
                "cache domain {:?} does not start with c; expected n<sizes> or c<lowest CPU of each core>/...",
                quote(item)
            )
        })?;
        let firsts = decode_strided(list)?;
        let mut cpus = CpuSet::new();
        for first in firsts.iter() {
            let core = by_first
                .binary_search_by_key(&first.0, |e| e.0)
                .map_err(|_| format!("CPU {first} is not the lowest CPU of a core of this node"))?;
            cpus.union_with(&cores[by_first[core].1].cpus);
        }
        out.push(CacheSpec { cpus });
    }
    Ok(out)
}

/// Decodes `a.b-c.d-esK` (the cache domains' lists, see `encode_strided`) into a set.
pub(super) fn decode_strided(list: &str) -> Result<CpuSet, String> {
    let mut set = CpuSet::new();
    for item in list.split('.') {
        let bad = || {
            format!(
                "item {:?} is not N, A-B or A-BsK with A <= B, K > 0, B = A + a multiple of K and ids up to {MAX_SET_ID}",
                quote(item)
            )
        };
        let (a, b, k) = match item.split_once('-') {
            None => {
                let a = parse_uint::<u32>(item)?;
                (a, a, 1)
            }
            Some((a, rest)) => {
                let (b, k) = match rest.split_once('s') {
                    Some((b, k)) => (b, parse_uint::<u32>(k)?),
                    None => (rest, 1),
                };
                (parse_uint::<u32>(a)?, parse_uint::<u32>(b)?, k)
            }
        };
        if k == 0 || a > b || b > MAX_SET_ID || !(b - a).is_multiple_of(k) {
            return Err(bad());
        }
        let mut id = a;
        loop {
            if !set.insert(CpuId(id)) {
                return Err(format!("CPU {id} is listed twice"));
            }
            if id == b {
                break;
            }
            id += k;
        }
    }
    Ok(set)
}

/// Decodes `g<ids>[n<nodes>]/...` into GPUs in id order.
pub(super) fn decode_gpus(text: &str) -> Result<Vec<GpuSpec>, String> {
    let mut out: BTreeMap<u32, NodeSet> = BTreeMap::new();
    for item in text.split('/') {
        let body = item.strip_prefix('g').ok_or_else(|| {
            format!(
                "GPU item {:?} does not start with g; expected g<ids>[n<nodes>], e.g. g0-7n0",
                quote(item)
            )
        })?;
        let (ids, nodes) = match body.split_once('n') {
            Some((ids, nodes)) => (ids, Some(nodes)),
            None => (body, None),
        };
        let ids = decode_list(ids, &mut CpuSet::new())?;
        let nodes: NodeSet = match nodes {
            Some(list) => decode_list(list, &mut CpuSet::new())?
                .iter()
                .map(|c| NodeId(c.0))
                .collect(),
            None => NodeSet::new(),
        };
        for id in ids.iter() {
            if out.insert(id.0, nodes.clone()).is_some() {
                return Err(format!("GPU {id} is listed twice"));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(id, nodes)| GpuSpec {
            id: GpuId(id),
            nodes,
        })
        .collect())
}

pub(super) fn attribute_error<'a>(
    name: &'a str,
    text: &'a str,
) -> impl Fn(String) -> NumaError + 'a {
    move |message| NumaError::Attribute {
        name: name.to_string(),
        value: quote(text),
        message,
    }
}

pub(super) fn decode_node(id: NodeId, text: &str, seen: &mut CpuSet) -> Result<NodeSpec, String> {
    let mut package = None;
    let mut memory_mb = None;
    let mut cores = None;
    let mut distances = None;
    for field in text.split('/') {
        let Some((key, payload)) = field.split_once('.') else {
            return Err(format!(
                "field {:?} is not key.value; expected pkg., mem., cores. or dist.",
                quote(field)
            ));
        };
        let twice = || format!("field {key} is given twice");
        match key {
            "pkg" => {
                if package.replace(parse_uint(payload)?).is_some() {
                    return Err(twice());
                }
            }
            "mem" => {
                let mem: u64 = parse_uint(payload)?;
                if memory_mb.replace(mem).is_some() {
                    return Err(twice());
                }
            }
            "cores" => {
                if cores.replace(decode_cores(payload, seen)?).is_some() {
                    return Err(twice());
                }
            }
            "dist" => {
                let row = payload
                    .split('.')
                    .map(parse_uint::<u32>)
                    .collect::<Result<Vec<_>, _>>()?;
                if distances.replace(row).is_some() {
                    return Err(twice());
                }
            }
            other => {
                return Err(format!(
                    "unknown field {:?}; expected pkg., mem., cores. or dist.",
                    quote(other)
                ));
            }
        }
    }
    Ok(NodeSpec {
        id,
        package: package.ok_or("missing pkg.<package> field")?,
        memory_mb: memory_mb.ok_or("missing mem.<MiB> field")?,
        cores: cores.unwrap_or_default(),
        distances: distances.unwrap_or_default(),
        caches: Vec::new(),
    })
}

/// Decodes runs `a[-b[sK]](tO)*` separated by `.`; every CPU is new in `seen`.
pub(super) fn decode_cores(payload: &str, seen: &mut CpuSet) -> Result<Vec<CoreSpec>, String> {
    let mut cores = Vec::new();
    for run in payload.split('.') {
        let bad = |why: &str| {
            format!(
                "core run {:?} {why}; expected FIRST[-LAST[sSTRIDE]](tOFFSET)*",
                quote(run)
            )
        };
        let (head, offsets) = match run.find('t') {
            Some(pos) => (&run[..pos], &run[pos + 1..]),
            None => (run, ""),
        };
        let mut offset_list: Vec<u32> = Vec::new();
        if run.contains('t') {
            for o in offsets.split('t') {
                let o: u32 = parse_uint(o).map_err(|e| bad(&e))?;
                if o == 0 || offset_list.last().is_some_and(|&last| o <= last) {
                    return Err(bad(
                        "has sibling offsets that are not positive and ascending",
                    ));
                }
                offset_list.push(o);
            }
        }
        let (first, last, stride) = match head.split_once('-') {
            None => {
                let first: u32 = parse_uint(head).map_err(|e| bad(&e))?;
                (first, first, 1)
            }
            Some((a, rest)) => {
                let (b, stride) = match rest.split_once('s') {
                    Some((b, k)) => (b, parse_uint::<u32>(k).map_err(|e| bad(&e))?),
                    None => (rest, 1),
                };
                let a: u32 = parse_uint(a).map_err(|e| bad(&e))?;
                let b: u32 = parse_uint(b).map_err(|e| bad(&e))?;
                if stride == 0 || b < a || !(b - a).is_multiple_of(stride) {
                    return Err(bad(
                        "has LAST below FIRST, a zero stride, or LAST not FIRST plus a multiple of STRIDE",
                    ));
                }
                (a, b, stride)
            }
        };
        let mut f = first;
        loop {
            let mut core = CpuSet::new();
            for cpu in std::iter::once(Some(f)).chain(offset_list.iter().map(|&o| f.checked_add(o)))
            {
                let cpu = cpu
                    .filter(|&c| c <= MAX_SET_ID)
                    .ok_or_else(|| bad(&format!("reaches a CPU id above {MAX_SET_ID}")))?;
                if !seen.insert(CpuId(cpu)) {
                    return Err(bad(&format!("lists CPU {cpu}, which is already listed")));
                }
                core.insert(CpuId(cpu));
            }
            cores.push(CoreSpec { cpus: core });
            if f == last {
                break;
            }
            f += stride;
        }
    }
    Ok(cores)
}

/// Decodes `a.b-c.d` into a set; every CPU is new in `seen`.
pub(super) fn decode_list(list: &str, seen: &mut CpuSet) -> Result<CpuSet, String> {
    let mut set = CpuSet::new();
    for item in list.split('.') {
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (parse_uint::<u32>(a)?, parse_uint::<u32>(b)?),
            None => {
                let a = parse_uint::<u32>(item)?;
                (a, a)
            }
        };
        if a > b || b > MAX_SET_ID {
            return Err(format!(
                "CPU range {:?} is backwards or above {MAX_SET_ID}",
                quote(item)
            ));
        }
        let run = CpuSet::from_range(a, b);
        if let Some(cpu) = run.intersection(seen).first() {
            return Err(format!("CPU {cpu} is listed twice"));
        }
        seen.union_with(&run);
        set.union_with(&run);
    }
    Ok(set)
}

/// An unsigned decimal integer (ASCII digits only).
pub(super) fn parse_uint<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{:?} is not an unsigned integer", quote(text)));
    }
    text.parse()
        .map_err(|_| format!("{:?} is too large", quote(text)))
}
