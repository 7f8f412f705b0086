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
use retz_placement::sets::{CpuId, CpuSet, MAX_SET_ID, NodeId};
use retz_placement::topology::{CoreSpec, NodeSpec, Topology, TopologySpec};

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
        "hwloc rejected the XML topology {what}; it must be an hwloc 2.x XML export (`lstopo file.xml`)"
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
        TopologySource::ThisMachine => HwlocTopology::new()?,
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

fn build_from_xml(text: &str, what: &str) -> Result<HwlocTopology, TopologyError> {
    use hwlocality::topology::builder::StringInputError;
    let builder = HwlocTopology::builder()
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
    let builder = HwlocTopology::builder()
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

    // NUMA nodes, ascending os index.
    let mut nodes: Vec<RawNode<'_>> = Vec::new();
    for obj in topology.objects_with_type(ObjectType::NUMANode) {
        let id = obj
            .os_index()
            .ok_or_else(|| unsupported("a NUMA node has no os index".to_string()))?;
        let id = u32::try_from(id)
            .ok()
            .filter(|&i| i <= MAX_SET_ID)
            .ok_or_else(|| unsupported(format!("NUMA node os index {id} is too large")))?;
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
    if nodes.is_empty() {
        return Err(unsupported("no NUMA node".to_string()));
    }

    // Cores: group usable PUs by their Core ancestor (or themselves).
    let mut cores: BTreeMap<u64, (CpuSet, Option<u32>)> = BTreeMap::new();
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
        let entry = cores.entry(key).or_insert_with(|| (CpuSet::new(), package));
        entry.0.insert(CpuId(cpu));
    }
    let mut package_of_first_cpu: BTreeMap<u32, u32> = BTreeMap::new();
    for (cpus, package) in cores.into_values() {
        let first = cpus.first().map_or(0, |c| c.0);
        let Some(node) = nodes.iter_mut().find(|n| cpus.is_subset(&n.cpus)) else {
            return Err(unsupported(format!(
                "core with PUs {cpus} is not local to any single NUMA node"
            )));
        };
        if let Some(p) = package {
            package_of_first_cpu.insert(first, p);
        }
        node.cores.push(CoreSpec { cpus });
    }

    let distances = numa_distances(topology, &nodes);
    let specs = nodes
        .into_iter()
        .enumerate()
        .map(|(position, mut raw)| {
            raw.cores.sort_by_key(|c| c.cpus.first());
            let package = package_index(raw.obj)
                .or_else(|| {
                    raw.cores
                        .first()
                        .and_then(|c| c.cpus.first())
                        .and_then(|c| package_of_first_cpu.get(&c.0).copied())
                })
                .unwrap_or(0);
            NodeSpec {
                id: raw.id,
                package,
                memory_mb: raw.memory_mb,
                cores: raw.cores,
                distances: distances
                    .as_ref()
                    .map(|rows| rows[position].clone())
                    .unwrap_or_default(),
                caches: Vec::new(),
            }
        })
        .collect();
    let spec = TopologySpec {
        nodes: specs,
        offline_cpus,
        ..TopologySpec::default()
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
    cpus: CpuSet,
    memory_mb: u64,
    cores: Vec<CoreSpec>,
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
