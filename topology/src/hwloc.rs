//! hwloc → [`TopologySpec`]: reads this machine, an hwloc XML export or an hwloc synthetic
//! description with `hwlocality` and maps it to the placement engine's plain data form.
//!
//! Mapping (the contract other parts rely on):
//! - usable CPUs = the topology's `cpuset ∩ allowed_cpuset`; every other PU of the
//!   `complete_cpuset` (offline, or disallowed by the cgroup the probe runs in) goes to
//!   `offline_cpus` and never into a core;
//! - a core is an hwloc `Core` with its usable PUs (a PU without a `Core` ancestor is its own
//!   core); cores with no usable PU are dropped; cores inside a node are ordered by their
//!   lowest PU;
//! - each core belongs to the NUMA node with the lowest os index whose cpuset holds the
//!   core's PUs, so a node that shares its locality with another one (HBM, NVDIMM, CXL, the
//!   second `[numa]` of a package) is a memory-only node (no cores);
//! - `memory_mb` = the node's local memory in MiB, rounded down (0 when unknown);
//! - `package` = os index of the node's `Package` ancestor, else of the package holding the
//!   node's first usable PU, else 0 (a node above several packages reports the first one);
//! - distances = the NUMA-node latency matrix (`NUMALatency` when present, else the first
//!   latency matrix between NUMA nodes); left empty when there is none, or when it does not
//!   cover every node with positive values that fit in 32 bits.
//!
//! - the topology is built with disallowed resources included, so the agent's restriction
//!   is read from hwloc's allowed sets rather than guessed: a NUMA node outside
//!   `allowed_nodeset` is not usable; usable CPUs whose local node is not usable (or that
//!   no node holds) are attached to the nearest usable node (by the latency matrix, else
//!   a usable node of their package, else the first usable node with CPUs, else the first)
//!   and listed in `remote_cpus`;
//! - cache domains = the node's cores grouped by their `L3Cache` ancestor, in the order
//!   of their lowest CPU; a node with no L3 cache above any core (or above only some of
//!   them) has none;
//! - GPUs = PCI devices carrying a compute OS device (`cuda*`, `nvml*`, `rsmi*`,
//!   `opencl*`, `ze*`; display-only devices such as a BMC's VGA are not GPUs), numbered
//!   0.. in the order of those devices' indexes (PCI bus order, as NVML numbers them);
//!   a GPU's nodes are the usable nodes of its first non-I/O ancestor.
//!
//! I/O lives only in [`load`] (reading the XML file, probing this machine); the mapping in
//! [`spec_from_hwloc`] reads an already built topology.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hwlocality::Topology as HwlocTopology;
use hwlocality::cpu::cpuset::CpuSet as HwlocCpuSet;
use hwlocality::object::TopologyObject;
use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::distance::DistancesKind;
use hwlocality::object::types::ObjectType;
use hwlocality::topology::builder::{BuildFlags, TopologyBuilder, TypeFilter};
use retz_placement::sets::{CpuId, CpuSet, GpuId, MAX_SET_ID, NodeId, NodeSet};
use retz_placement::topology::{CacheSpec, CoreSpec, GpuSpec, NodeSpec, Topology, TopologySpec};

/// Where a topology comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologySource {
    /// The machine this process runs on (restricted to the CPUs it is allowed to use).
    ThisMachine,
    /// An hwloc XML export (`lstopo file.xml`), format 2.x.
    XmlFile(PathBuf),
    /// An hwloc XML document held in memory.
    XmlText(String),
    /// An hwloc synthetic description such as `pack:2 numa:2 core:8 pu:2`.
    Synthetic(String),
}

impl std::fmt::Display for TopologySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopologySource::ThisMachine => write!(f, "this machine"),
            TopologySource::XmlFile(path) => write!(f, "hwloc XML file {}", path.display()),
            TopologySource::XmlText(_) => write!(f, "hwloc XML text"),
            TopologySource::Synthetic(desc) => write!(f, "hwloc synthetic topology {desc:?}"),
        }
    }
}

/// Why a topology could not be loaded or converted.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The XML file could not be read.
    #[error("cannot read hwloc XML file {}: {source}; give the path of an `lstopo file.xml` export", path.display())]
    ReadXml {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// hwloc rejected the XML document.
    #[error(
        "hwloc rejected the XML topology {what}; give an hwloc XML export (`lstopo file.xml`, format 1.x or 2.x), and run with HWLOC_XML_VERBOSE=1 to see hwloc's reason"
    )]
    InvalidXml {
        /// Which document (file path or "text").
        what: String,
    },
    /// hwloc rejected the synthetic description.
    #[error(
        "hwloc rejected the synthetic topology {desc:?}; write levels like \"pack:2 numa:2 core:8 pu:2\""
    )]
    InvalidSynthetic {
        /// The description as given.
        desc: String,
    },
    /// The input contains a NUL character, which hwloc cannot take.
    #[error("{what} contains a NUL character; remove it")]
    ContainsNul {
        /// Which input.
        what: String,
    },
    /// hwloc failed to build the topology of this machine.
    #[error("hwloc could not probe this machine: {0}; check that /sys and /proc are mounted")]
    Probe(#[from] hwlocality::errors::RawHwlocError),
    /// The hwloc topology has a shape the placement model cannot express.
    #[error("unsupported hwloc topology from {source_desc}: {message}")]
    Unsupported {
        /// Where the topology came from.
        source_desc: String,
        /// What is wrong.
        message: String,
    },
    /// The converted topology failed placement validation.
    #[error("topology from {source_desc} is not a valid placement topology: {error}")]
    Invalid {
        /// Where the topology came from.
        source_desc: String,
        /// The validation error.
        error: retz_placement::topology::TopologyError,
    },
    /// The topology could not be written as Mesos agent flags.
    #[error("cannot write Mesos agent flags: {0}")]
    AgentFlags(#[from] retz_proto::numa::NumaError),
    /// The topology could not be serialised as JSON.
    #[error("cannot write the topology as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A topology converted from hwloc, with the facts the plain spec does not keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedTopology {
    /// The placement topology (validated).
    pub spec: TopologySpec,
    /// Os indexes of the packages (sockets) that hold at least one usable PU, ascending.
    pub packages: Vec<u32>,
    /// Where it came from, for messages.
    pub source: String,
}

/// Loads a topology from `source` and converts it (the only function here doing I/O).
pub fn load(source: &TopologySource) -> Result<LoadedTopology, TopologyError> {
    let desc = source.to_string();
    let topology = match source {
        TopologySource::ThisMachine => whole(HwlocTopology::builder())?.build()?,
        TopologySource::XmlFile(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| TopologyError::ReadXml {
                path: path.clone(),
                source: e,
            })?;
            build_from_xml(&text, &path.display().to_string())?
        }
        TopologySource::XmlText(text) => build_from_xml(text, "text")?,
        TopologySource::Synthetic(text) => build_from_synthetic(text)?,
    };
    convert(&topology, desc)
}

/// Convenience: loads an hwloc XML file.
pub fn load_xml_file(path: &Path) -> Result<LoadedTopology, TopologyError> {
    load(&TopologySource::XmlFile(path.to_path_buf()))
}

/// Convenience: loads an hwloc synthetic description.
pub fn load_synthetic(desc: &str) -> Result<LoadedTopology, TopologyError> {
    load(&TopologySource::Synthetic(desc.to_string()))
}

/// A builder that keeps disallowed resources (read back through the allowed sets) and
/// the important I/O devices (GPUs).
fn whole(builder: TopologyBuilder) -> Result<TopologyBuilder, TopologyError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| TopologyError::Unsupported {
        source_desc: "hwloc".to_string(),
        message: format!("cannot set {what}: {e}"),
    };
    builder
        .with_flags(BuildFlags::INCLUDE_DISALLOWED)
        .map_err(|e| failed("INCLUDE_DISALLOWED", &e))?
        .with_io_type_filter(TypeFilter::KeepImportant)
        .map_err(|e| failed("the I/O filter", &e))
}

fn build_from_xml(text: &str, what: &str) -> Result<HwlocTopology, TopologyError> {
    use hwlocality::topology::builder::StringInputError;
    let builder = whole(HwlocTopology::builder())?
        .from_xml(text)
        .map_err(|e| match e {
            StringInputError::ContainsNul => TopologyError::ContainsNul {
                what: format!("hwloc XML {what}"),
            },
            StringInputError::Invalid => TopologyError::InvalidXml {
                what: what.to_string(),
            },
        })?;
    builder.build().map_err(|_| TopologyError::InvalidXml {
        what: what.to_string(),
    })
}

fn build_from_synthetic(desc: &str) -> Result<HwlocTopology, TopologyError> {
    use hwlocality::topology::builder::StringInputError;
    let trimmed = desc.trim();
    let invalid = || TopologyError::InvalidSynthetic {
        desc: desc.to_string(),
    };
    if trimmed.is_empty() {
        return Err(invalid());
    }
    let builder = whole(HwlocTopology::builder())?
        .from_synthetic(trimmed)
        .map_err(|e| match e {
            StringInputError::ContainsNul => TopologyError::ContainsNul {
                what: "synthetic topology description".to_string(),
            },
            StringInputError::Invalid => invalid(),
        })?;
    builder.build().map_err(|_| invalid())
}

/// Converts a built hwloc topology (see the module docs for the mapping) and validates it.
pub fn spec_from_hwloc(topology: &HwlocTopology) -> Result<TopologySpec, TopologyError> {
    convert(topology, "hwloc".to_string()).map(|l| l.spec)
}

fn convert(topology: &HwlocTopology, source: String) -> Result<LoadedTopology, TopologyError> {
    let unsupported = |message: String| TopologyError::Unsupported {
        source_desc: source.clone(),
        message,
    };

    let online = to_cpuset(&topology.cpuset(), "CPU set").map_err(&unsupported)?;
    let allowed = to_cpuset(&topology.allowed_cpuset(), "allowed CPU set").map_err(&unsupported)?;
    let usable = online.intersection(&allowed);
    let complete =
        to_cpuset(&topology.complete_cpuset(), "complete CPU set").map_err(&unsupported)?;
    let offline_cpus = complete.difference(&usable);
    let allowed_nodes = topology.allowed_nodeset();

    // NUMA nodes, ascending os index.
    let mut nodes: Vec<RawNode<'_>> = Vec::new();
    for obj in topology.objects_with_type(ObjectType::NUMANode) {
        let index = obj
            .os_index()
            .ok_or_else(|| unsupported("a NUMA node has no os index".to_string()))?;
        let id = u32::try_from(index)
            .ok()
            .filter(|&i| i <= MAX_SET_ID)
            .ok_or_else(|| unsupported(format!("NUMA node os index {index} is too large")))?;
        let cpus = match obj.cpuset() {
            Some(set) => to_cpuset(&set, "NUMA node cpuset").map_err(&unsupported)?,
            None => CpuSet::new(),
        };
        let memory_bytes = match obj.attributes() {
            Some(ObjectAttributes::NUMANode(attrs)) => attrs.local_memory().map_or(0, |m| m.get()),
            _ => 0,
        };
        nodes.push(RawNode {
            obj,
            id: NodeId(id),
            usable: allowed_nodes.is_set(index),
            cpus,
            memory_mb: memory_bytes / (1024 * 1024),
            cores: Vec::new(),
        });
    }
    nodes.sort_by_key(|n| n.id);
    if let Some(w) = nodes.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(unsupported(format!(
            "two NUMA nodes share os index {}",
            w[0].id
        )));
    }
    if !nodes.iter().any(|n| n.usable) {
        return Err(unsupported(
            "no usable NUMA node (none in the allowed node set)".to_string(),
        ));
    }

    // Cores: group usable PUs by their Core ancestor (or themselves).
    let mut cores: BTreeMap<u64, RawCore> = BTreeMap::new();
    let mut packages = std::collections::BTreeSet::new();
    for pu in topology.objects_with_type(ObjectType::PU) {
        let index = pu
            .os_index()
            .ok_or_else(|| unsupported("a PU has no os index".to_string()))?;
        let cpu = u32::try_from(index)
            .ok()
            .filter(|&i| i <= MAX_SET_ID)
            .ok_or_else(|| unsupported(format!("PU os index {index} is too large")))?;
        if !usable.contains(CpuId(cpu)) {
            continue;
        }
        let key = pu
            .first_ancestor_with_type(ObjectType::Core)
            .unwrap_or(pu)
            .global_persistent_index();
        let package = package_index(pu);
        if let Some(p) = package {
            packages.insert(p);
        }
        let l3 = pu
            .first_ancestor_with_type(ObjectType::L3Cache)
            .map(TopologyObject::global_persistent_index);
        let entry = cores.entry(key).or_insert_with(|| RawCore {
            cpus: CpuSet::new(),
            package,
            l3,
        });
        entry.cpus.insert(CpuId(cpu));
    }

    let distances = numa_distances(topology, &nodes);
    let mut package_of_first_cpu: BTreeMap<u32, u32> = BTreeMap::new();
    let mut remote_cpus = CpuSet::new();
    for core in cores.into_values() {
        let first = core.cpus.first().map_or(0, |c| c.0);
        let local = nodes.iter().position(|n| core.cpus.is_subset(&n.cpus));
        let home = match local.filter(|&i| nodes[i].usable) {
            Some(i) => i,
            None => {
                remote_cpus = remote_cpus.union(&core.cpus);
                nearest_usable(&nodes, local, core.package, distances.as_deref())
            }
        };
        if let Some(p) = core.package {
            package_of_first_cpu.insert(first, p);
        }
        nodes[home].cores.push(core);
    }

    let mut specs = Vec::new();
    let mut positions = Vec::new();
    for (position, mut raw) in nodes.into_iter().enumerate() {
        if !raw.usable {
            continue;
        }
        raw.cores.sort_by_key(|c| c.cpus.first());
        let package = package_index(raw.obj)
            .or_else(|| {
                raw.cores
                    .first()
                    .and_then(|c| c.cpus.first())
                    .and_then(|c| package_of_first_cpu.get(&c.0).copied())
            })
            .unwrap_or(0);
        positions.push(position);
        specs.push(NodeSpec {
            id: raw.id,
            package,
            memory_mb: raw.memory_mb,
            caches: l3_domains(&raw.cores),
            cores: raw
                .cores
                .into_iter()
                .map(|c| CoreSpec { cpus: c.cpus })
                .collect(),
            distances: Vec::new(),
        });
    }
    if let Some(rows) = distances {
        for (spec, &row) in specs.iter_mut().zip(&positions) {
            spec.distances = positions.iter().map(|&col| rows[row][col]).collect();
        }
    }
    let usable_nodes: NodeSet = specs.iter().map(|n| n.id).collect();
    let spec = TopologySpec {
        nodes: specs,
        offline_cpus,
        remote_cpus,
        gpus: gpus(topology, &usable_nodes),
    };
    Topology::new(spec.clone()).map_err(|error| TopologyError::Invalid {
        source_desc: source.clone(),
        error,
    })?;
    Ok(LoadedTopology {
        spec,
        packages: packages.into_iter().collect(),
        source,
    })
}

struct RawNode<'t> {
    obj: &'t TopologyObject,
    id: NodeId,
    /// In the allowed node set.
    usable: bool,
    cpus: CpuSet,
    memory_mb: u64,
    cores: Vec<RawCore>,
}

struct RawCore {
    cpus: CpuSet,
    package: Option<u32>,
    /// The L3 cache above the core, if any.
    l3: Option<u64>,
}

/// The usable node a core goes to when its own node (at `local`, if any) is not usable:
/// the nearest by latency, else one of its package, else the first with cores, else the
/// first usable node. Ties go to the lowest id.
fn nearest_usable(
    nodes: &[RawNode<'_>],
    local: Option<usize>,
    package: Option<u32>,
    distances: Option<&[Vec<u32>]>,
) -> usize {
    let usable = || (0..nodes.len()).filter(|&i| nodes[i].usable);
    if let (Some(from), Some(rows)) = (local, distances)
        && let Some(best) = usable().min_by_key(|&i| rows[from][i])
    {
        return best;
    }
    let in_package =
        usable().find(|&i| package.is_some() && package_index(nodes[i].obj) == package);
    in_package
        .or_else(|| usable().find(|&i| !nodes[i].cpus.is_empty()))
        .or_else(|| usable().next())
        .unwrap_or(0)
}

/// A node's L3 domains: its cores grouped by their L3 cache, ordered by lowest CPU; none
/// unless every core has one.
fn l3_domains(cores: &[RawCore]) -> Vec<CacheSpec> {
    let mut groups: Vec<(u64, CpuSet)> = Vec::new();
    for core in cores {
        let Some(l3) = core.l3 else {
            return Vec::new();
        };
        match groups.iter_mut().find(|(k, _)| *k == l3) {
            Some((_, cpus)) => *cpus = cpus.union(&core.cpus),
            None => groups.push((l3, core.cpus.clone())),
        }
    }
    groups.sort_by_key(|(_, cpus)| cpus.first());
    groups
        .into_iter()
        .map(|(_, cpus)| CacheSpec { cpus })
        .collect()
}

/// OS device name prefixes of compute devices (CUDA, NVML, ROCm SMI, OpenCL, oneAPI L0).
const COMPUTE_DEVICES: [&str; 5] = ["cuda", "nvml", "rsmi", "opencl", "ze"];

/// The GPUs: PCI devices with a compute OS device, numbered in their devices' order.
fn gpus(topology: &HwlocTopology, usable_nodes: &NodeSet) -> Vec<GpuSpec> {
    use hwlocality::object::types::OSDeviceType;
    // PCI device (persistent index) -> (lowest device index, nodes)
    let mut devices: BTreeMap<u64, (u64, NodeSet)> = BTreeMap::new();
    for osdev in topology.objects_with_type(ObjectType::OSDevice) {
        let Some(ObjectAttributes::OSDevice(attrs)) = osdev.attributes() else {
            continue;
        };
        if !matches!(
            attrs.device_type(),
            OSDeviceType::GPU | OSDeviceType::CoProcessor
        ) {
            continue;
        }
        let Some(name) = osdev.name().and_then(|n| n.to_str().ok()) else {
            continue;
        };
        let Some(index) = COMPUTE_DEVICES.iter().find_map(|prefix| {
            name.strip_prefix(prefix).and_then(|rest| {
                rest.trim_start_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
        }) else {
            continue;
        };
        let pci = osdev
            .parent()
            .filter(|p| p.object_type() == ObjectType::PCIDevice)
            .unwrap_or(osdev);
        let nodes: NodeSet = osdev
            .first_non_io_ancestor()
            .and_then(|a| a.nodeset())
            .map(|set| {
                set.iter_set()
                    .filter_map(|i| u32::try_from(usize::from(i)).ok())
                    .map(NodeId)
                    .filter(|n| usable_nodes.contains(*n))
                    .collect()
            })
            .unwrap_or_default();
        let entry = devices
            .entry(pci.global_persistent_index())
            .or_insert((index, nodes));
        entry.0 = entry.0.min(index);
    }
    let mut ordered: Vec<(u64, u64, NodeSet)> = devices
        .into_iter()
        .map(|(pci, (index, nodes))| (index, pci, nodes))
        .collect();
    ordered.sort_by_key(|(index, pci, _)| (*index, *pci));
    ordered
        .into_iter()
        .zip(0u32..)
        .map(|((_, _, nodes), id)| GpuSpec {
            id: GpuId(id),
            nodes,
        })
        .collect()
}

/// The os index (else logical index) of the package above `obj`, if any.
fn package_index(obj: &TopologyObject) -> Option<u32> {
    let package = obj.first_ancestor_with_type(ObjectType::Package)?;
    let index = package
        .os_index()
        .unwrap_or_else(|| package.logical_index());
    u32::try_from(index).ok()
}

/// The NUMA latency matrix as rows indexed by node position, or `None` when unusable.
fn numa_distances(topology: &HwlocTopology, nodes: &[RawNode<'_>]) -> Option<Vec<Vec<u32>>> {
    let matrices = topology
        .distances_with_type(Some(DistancesKind::MEANS_LATENCY), ObjectType::NUMANode)
        .ok()?;
    let named = matrices
        .iter()
        .position(|m| m.name().is_some_and(|n| n.to_bytes() == b"NUMALatency"));
    let candidates = named
        .into_iter()
        .chain(0..matrices.len())
        .map(|i| &matrices[i]);
    let n = nodes.len();
    'matrix: for matrix in candidates {
        if matrix.num_objects() != n {
            continue;
        }
        // matrix index -> node position
        let mut position_of = Vec::with_capacity(n);
        for obj in matrix.objects() {
            let Some(obj) = obj else { continue 'matrix };
            let Some(pos) = nodes.iter().position(|node| std::ptr::eq(node.obj, obj)) else {
                continue 'matrix;
            };
            position_of.push(pos);
        }
        let mut seen = vec![false; n];
        for &p in &position_of {
            if std::mem::replace(&mut seen[p], true) {
                continue 'matrix;
            }
        }
        let mut rows = vec![vec![0u32; n]; n];
        for ((i, j), value) in matrix.enumerate_distances() {
            match u32::try_from(value) {
                Ok(v) if v > 0 => rows[position_of[i]][position_of[j]] = v,
                _ => continue 'matrix,
            }
        }
        return Some(rows);
    }
    None
}

/// Converts a finite hwloc bitmap into a [`CpuSet`].
fn to_cpuset(bitmap: &HwlocCpuSet, what: &str) -> Result<CpuSet, String> {
    if bitmap.weight().is_none() {
        return Err(format!("the {what} is infinite"));
    }
    let mut set = CpuSet::new();
    for index in bitmap.iter_set() {
        let id = u32::try_from(usize::from(index))
            .ok()
            .filter(|&i| i <= MAX_SET_ID)
            .ok_or_else(|| {
                format!("the {what} holds PU {index}, above the maximum {MAX_SET_ID}")
            })?;
        set.insert(CpuId(id));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document hwloc refuses (cut short, or of a format it does not know) is one line
    /// that names it, says which formats work and how to see hwloc's own reason.
    #[test]
    fn a_refused_xml_document_is_one_line_naming_the_way_out() {
        let whole = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<topology version=\"2.0\">\n<object type=\"Machine\" os_index=\"0\" cpuset=\"0x1\">\n";
        for text in [whole, "<topology version=\"3.0\"></topology>"] {
            let e = load(&TopologySource::XmlText(text.to_string())).unwrap_err();
            assert!(matches!(e, TopologyError::InvalidXml { .. }), "{e:?}");
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line}");
            assert!(line.contains("XML topology text"), "{line}");
            assert!(line.contains("1.x or 2.x"), "{line}");
            assert!(line.contains("HWLOC_XML_VERBOSE=1"), "{line}");
        }
    }
}
