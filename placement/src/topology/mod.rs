//! The machine topology model: packages, NUMA nodes, last-level (L3) cache domains, physical
//! cores and SMT siblings, GPUs with their PCI locality, and CPUs whose memory is remote.
//!
//! Owns the plain data form [`TopologySpec`] (what the hwloc probe and the agent attributes
//! produce, serde-friendly) and the validated, indexed [`Topology`] that the packer reads.
//! [`Topology::from_synthetic`] (in `synthetic.rs`) builds one from an hwloc synthetic
//! description without any system library. Validation and index building live in
//! `build.rs`.
//!
//! Invariants of a [`Topology`] (checked by [`Topology::new`]):
//! - at least one NUMA node, at most [`MAX_NODES`]; node ids strictly ascending;
//! - every core holds at least one CPU; a CPU belongs to at most one core (hence to at most
//!   one node); no usable CPU is also listed as offline;
//! - at least one usable CPU in the whole machine (memory-only nodes are fine);
//! - distance rows are either all empty (unknown: 10 local, 20 remote) or all of length
//!   `nodes.len()` with every value non-zero;
//! - a node's cache domains ([`NodeSpec::caches`]) are either absent (the whole node shares
//!   one last-level cache, or it is unknown) or partition the node's cores: every domain is
//!   a non-empty union of whole cores of that node, no two overlap, together they hold all
//!   its cores; every node with CPUs then has at least one domain ([`CacheDomain`]), an
//!   implicit one holding all its cores when the spec lists none;
//! - `remote_cpus` are usable CPUs; GPU ids are strictly ascending and at most
//!   [`MAX_SET_ID`], and the nodes a GPU is local to are nodes of the topology.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::sets::{CpuId, CpuSet, GpuId, GpuSet, MAX_SET_ID, NodeId, NodeSet};

mod build;
#[cfg(test)]
mod tests;

/// Linux's `MAX_NUMNODES` with `NODES_SHIFT = 10`; more nodes are rejected.
pub const MAX_NODES: usize = 1024;
/// SLIT distance of a node to itself when the distance matrix is unknown.
pub const DEFAULT_LOCAL_DISTANCE: u32 = 10;
/// SLIT distance between two different nodes when the distance matrix is unknown.
pub const DEFAULT_REMOTE_DISTANCE: u32 = 20;

/// The plain data form of a machine topology (see the crate docs for the JSON shape).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologySpec {
    /// NUMA nodes, sorted by id.
    pub nodes: Vec<NodeSpec>,
    /// PUs present but offline or disallowed (not usable).
    #[serde(default)]
    pub offline_cpus: CpuSet,
    /// Usable CPUs whose own NUMA node is not usable (disallowed by the agent's cpuset or
    /// missing): each is attached to the nearest usable node and listed there, but its
    /// memory accesses are remote. Empty on ordinary machines.
    #[serde(default, skip_serializing_if = "CpuSet::is_empty")]
    pub remote_cpus: CpuSet,
    /// GPUs (compute devices) with their PCI locality, in id order. Empty when the machine
    /// has none or they were not probed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuSpec>,
}

/// One NUMA node of a [`TopologySpec`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// The kernel's node id.
    pub id: NodeId,
    /// The os index of the package (socket) holding this node.
    pub package: u32,
    /// Local memory of this node, MiB.
    pub memory_mb: u64,
    /// Physical cores with usable PUs; empty = memory-only node.
    #[serde(default)]
    pub cores: Vec<CoreSpec>,
    /// SLIT row indexed like `nodes` (by position, not id); empty = unknown.
    #[serde(default)]
    pub distances: Vec<u32>,
    /// The node's last-level (L3) cache domains: each lists the usable PUs of the cores
    /// sharing one L3 cache, whole cores only; together they hold every core of the node.
    /// Empty = the node's cores share one last-level cache (or it is unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<CacheSpec>,
}

/// One physical core: its usable SMT sibling PUs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreSpec {
    /// The SMT siblings (usable PUs) of one physical core.
    pub cpus: CpuSet,
}

/// One last-level (L3) cache domain of a node: the usable PUs of the cores sharing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSpec {
    /// Usable PUs sharing the cache (a union of whole cores of the node).
    pub cpus: CpuSet,
}

/// One GPU (compute device) and its PCI locality.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuSpec {
    /// The device id a job names in `CUDA_VISIBLE_DEVICES`.
    pub id: GpuId,
    /// The NUMA nodes the device is attached to (its PCI host bridge's node, or every node
    /// of its package when it hangs off the package); empty = unknown.
    #[serde(default)]
    pub nodes: NodeSet,
}

/// Why a [`TopologySpec`] (or a synthetic description) is not a valid topology.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("topology has no NUMA node; a machine has at least one")]
    NoNodes,
    #[error("topology has {count} NUMA nodes; at most {MAX_NODES} are supported")]
    TooManyNodes { count: usize },
    #[error("NUMA node id {id} is larger than the maximum {MAX_SET_ID}")]
    NodeIdTooLarge { id: NodeId },
    #[error(
        "NUMA node ids must be strictly ascending: node {id} at position {position} follows node {previous}"
    )]
    NodesNotAscending {
        position: usize,
        id: NodeId,
        previous: NodeId,
    },
    #[error("core {core} of NUMA node {node} has no CPU; drop the core or list its PUs")]
    EmptyCore { node: NodeId, core: usize },
    #[error("CPU {cpu} is listed in two cores (or two NUMA nodes); each PU belongs to one core")]
    CpuInTwoCores { cpu: CpuId },
    #[error("CPU {cpu} is listed both as usable (in a core) and as offline")]
    CpuBothOnlineAndOffline { cpu: CpuId },
    #[error("topology has no usable CPU")]
    NoCpus,
    #[error(
        "distance row of NUMA node {node} has {len} entries; expected {expected} (one per node) or all rows empty"
    )]
    DistanceRow {
        node: NodeId,
        len: usize,
        expected: usize,
    },
    #[error("distance from NUMA node {from} to node {to} is 0; SLIT distances are positive")]
    ZeroDistance { from: NodeId, to: NodeId },
    #[error(
        "cache domain {cache} of NUMA node {node} holds CPUs {cpus} that are not usable CPUs of that node"
    )]
    CacheOutsideNode {
        node: NodeId,
        cache: usize,
        cpus: CpuSet,
    },
    #[error(
        "cache domain {cache} of NUMA node {node} splits the core of CPU {cpu}; a domain holds whole cores"
    )]
    CacheSplitsCore {
        node: NodeId,
        cache: usize,
        cpu: CpuId,
    },
    #[error("CPUs {cpus} of NUMA node {node} are in two cache domains")]
    CacheOverlap { node: NodeId, cpus: CpuSet },
    #[error(
        "the cache domains of NUMA node {node} leave CPUs {cpus} out; list every core in one domain or give none"
    )]
    CachesIncomplete { node: NodeId, cpus: CpuSet },
    #[error("remote CPUs {cpus} are not usable CPUs of the topology")]
    RemoteCpusNotUsable { cpus: CpuSet },
    #[error("GPU {id} is listed twice")]
    GpuTwice { id: GpuId },
    #[error("GPU ids must be strictly ascending: GPU {id} follows GPU {previous}")]
    GpusNotAscending { id: GpuId, previous: GpuId },
    #[error("GPU id {id} is larger than the maximum {MAX_SET_ID}")]
    GpuIdTooLarge { id: GpuId },
    #[error("GPU {id} is local to NUMA nodes {nodes}, which are not nodes of the topology")]
    GpuUnknownNode { id: GpuId, nodes: NodeSet },
    #[error("invalid synthetic topology {input:?} at byte {pos}: {message}")]
    Synthetic {
        input: String,
        pos: usize,
        message: String,
    },
}

/// A validated NUMA node with its derived indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumaNode {
    id: NodeId,
    index: usize,
    package: u32,
    memory_mb: u64,
    cpus: CpuSet,
    /// Range into `Topology::cores`.
    core_start: usize,
    core_end: usize,
    /// Range into `Topology::caches`.
    cache_start: usize,
    cache_end: usize,
    smt_width: usize,
    uniform_cores: bool,
}

impl NumaNode {
    /// The kernel's node id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Position of this node in [`Topology::nodes`] (and in distance rows).
    pub fn index(&self) -> usize {
        self.index
    }
    /// Package (socket) os index.
    pub fn package(&self) -> u32 {
        self.package
    }
    /// Local memory, MiB.
    pub fn memory_mb(&self) -> u64 {
        self.memory_mb
    }
    /// Usable CPUs of the node.
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }
    /// Range of core indexes (into [`Topology::cores`]) of this node.
    pub fn core_range(&self) -> std::ops::Range<usize> {
        self.core_start..self.core_end
    }
    /// Range of cache domain indexes (into [`Topology::caches`]) of this node; empty for a
    /// memory-only node.
    pub fn cache_range(&self) -> std::ops::Range<usize> {
        self.cache_start..self.cache_end
    }
    /// Number of last-level cache domains (1 when the node shares one cache or it is
    /// unknown, 0 for a memory-only node).
    pub fn num_caches(&self) -> usize {
        self.cache_end - self.cache_start
    }
    /// The most usable PUs any core of this node has (0 for a memory-only node).
    pub fn smt_width(&self) -> usize {
        self.smt_width
    }
    /// Whether every core of the node has the same number of usable PUs
    /// ([`NumaNode::smt_width`]); true for a memory-only node.
    pub fn has_uniform_cores(&self) -> bool {
        self.uniform_cores
    }
    /// Whether the node has no usable CPU.
    pub fn is_memory_only(&self) -> bool {
        self.cpus.is_empty()
    }
}

/// A validated last-level cache domain: some whole cores of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheDomain {
    node: usize,
    cpus: CpuSet,
    /// Range into `Topology::cache_cores`.
    core_start: usize,
    core_end: usize,
    explicit: bool,
    remote: u32,
}

impl CacheDomain {
    /// Position of the node holding the domain.
    pub fn node_index(&self) -> usize {
        self.node
    }
    /// Usable CPUs of the domain.
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }
    /// Whether the spec listed the domain (false: the implicit domain of a node without
    /// cache information, holding all its cores).
    pub fn is_explicit(&self) -> bool {
        self.explicit
    }
    /// How many of its CPUs are remote CPUs ([`TopologySpec::remote_cpus`]).
    pub fn remote_cpus(&self) -> u32 {
        self.remote
    }
}

/// A validated, indexed topology. Cheap to share: agents hold it in an [`Arc`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    spec: TopologySpec,
    cpus: CpuSet,
    node_ids: NodeSet,
    nodes: Vec<NumaNode>,
    /// All cores, grouped by node in node order.
    cores: Vec<CpuSet>,
    /// CPU id -> core index, `u32::MAX` for ids that are not usable CPUs.
    cpu_core: Vec<u32>,
    /// Core index -> node index.
    core_node: Vec<u32>,
    /// Cache domains, grouped by node in node order.
    caches: Vec<CacheDomain>,
    /// The core indexes of each domain (in node core order), domain after domain.
    cache_cores: Vec<u32>,
    /// Core index -> cache domain index.
    core_cache: Vec<u32>,
    /// The most CPUs of any cache domain of a node with two or more domains (0: none).
    largest_split_cache: u32,
    /// Flattened `n x n` distance matrix (defaults filled in).
    distances: Vec<u32>,
    /// Flattened `n x n`: row `i` lists node positions by (distance from `i`, position),
    /// `i` itself first.
    by_distance: Vec<u32>,
    distances_known: bool,
    total_memory_mb: u64,
    gpu_ids: GpuSet,
}

impl Topology {
    /// A topology for an offer without NUMA attributes: one node 0 holding `cpus`, each CPU
    /// its own core (no SMT knowledge), `memory_mb` of memory.
    pub fn single_node(cpus: &CpuSet, memory_mb: u64) -> Result<Topology, TopologyError> {
        Topology::new(TopologySpec {
            nodes: vec![NodeSpec {
                id: NodeId(0),
                package: 0,
                memory_mb,
                cores: cpus
                    .iter()
                    .map(|c| CoreSpec {
                        cpus: std::iter::once(c).collect(),
                    })
                    .collect(),
                distances: Vec::new(),
                caches: Vec::new(),
            }],
            offline_cpus: CpuSet::new(),
            remote_cpus: CpuSet::new(),
            gpus: Vec::new(),
        })
    }

    /// Parses the hwloc synthetic subset, e.g. `"pack:2 numa:2 core:4 pu:2"`; see
    /// [`crate::synthetic`] for the accepted grammar.
    pub fn from_synthetic(desc: &str, memory_mb_per_node: u64) -> Result<Topology, TopologyError> {
        Topology::new(crate::synthetic::parse(desc, memory_mb_per_node)?)
    }

    /// The plain data this topology was built from.
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }

    /// All usable CPUs.
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }

    /// Offline or disallowed PUs.
    pub fn offline_cpus(&self) -> &CpuSet {
        &self.spec.offline_cpus
    }

    /// Usable CPUs whose memory is remote (their own node is not usable).
    pub fn remote_cpus(&self) -> &CpuSet {
        &self.spec.remote_cpus
    }

    /// The NUMA node ids.
    pub fn node_ids(&self) -> &NodeSet {
        &self.node_ids
    }

    /// The nodes, in id order (the position is [`NumaNode::index`]).
    pub fn nodes(&self) -> &[NumaNode] {
        &self.nodes
    }

    /// Number of NUMA nodes.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> Option<&NumaNode> {
        self.node_index(id).map(|i| &self.nodes[i])
    }

    /// Position of the node with this id.
    pub fn node_index(&self, id: NodeId) -> Option<usize> {
        self.nodes.binary_search_by_key(&id, |n| n.id).ok()
    }

    /// The node holding a usable CPU.
    pub fn node_of(&self, cpu: CpuId) -> Option<NodeId> {
        self.core_of(cpu)
            .map(|c| self.nodes[self.core_node[c] as usize].id)
    }

    /// Index (into [`Topology::cores`]) of the core holding a usable CPU.
    pub fn core_of(&self, cpu: CpuId) -> Option<usize> {
        match self.cpu_core.get(cpu.0 as usize) {
            Some(&c) if c != u32::MAX => Some(c as usize),
            _ => None,
        }
    }

    /// Node index of a core index.
    pub fn node_index_of_core(&self, core: usize) -> usize {
        self.core_node[core] as usize
    }

    /// The SMT siblings of a usable CPU (including itself).
    pub fn siblings(&self, cpu: CpuId) -> Option<&CpuSet> {
        self.core_of(cpu).map(|c| &self.cores[c])
    }

    /// All cores (their usable PUs), grouped by node in node order.
    pub fn cores(&self) -> &[CpuSet] {
        &self.cores
    }

    /// All last-level cache domains, grouped by node in node order (see
    /// [`NumaNode::cache_range`]).
    pub fn caches(&self) -> &[CacheDomain] {
        &self.caches
    }

    /// The core indexes (into [`Topology::cores`]) of cache domain `d`, in node core order.
    pub fn cache_cores(&self, d: usize) -> &[u32] {
        let c = &self.caches[d];
        &self.cache_cores[c.core_start..c.core_end]
    }

    /// The cache domain index of a core index.
    pub fn cache_of_core(&self, core: usize) -> usize {
        self.core_cache[core] as usize
    }

    /// The cache domain holding a usable CPU.
    pub fn cache_of(&self, cpu: CpuId) -> Option<usize> {
        self.core_of(cpu).map(|c| self.cache_of_core(c))
    }

    /// Whether some node has two or more last-level cache domains (so that where a job
    /// goes inside a node matters for its cache).
    pub fn has_split_caches(&self) -> bool {
        self.largest_split_cache > 0
    }

    /// The most CPUs one cache domain has among nodes with two or more domains (0 when
    /// every node shares one cache).
    pub fn largest_split_cache(&self) -> u32 {
        self.largest_split_cache
    }

    /// The GPUs and their locality, in id order.
    pub fn gpus(&self) -> &[GpuSpec] {
        &self.spec.gpus
    }

    /// The ids of [`Topology::gpus`].
    pub fn gpu_ids(&self) -> &GpuSet {
        &self.gpu_ids
    }

    /// A GPU by id.
    pub fn gpu(&self, id: GpuId) -> Option<&GpuSpec> {
        self.spec
            .gpus
            .binary_search_by_key(&id, |g| g.id)
            .ok()
            .map(|i| &self.spec.gpus[i])
    }

    /// SLIT distance between two nodes. With an unknown matrix, or for ids not in this
    /// topology: 10 when equal, else 20.
    pub fn distance(&self, a: NodeId, b: NodeId) -> u32 {
        match (self.node_index(a), self.node_index(b)) {
            (Some(i), Some(j)) => self.distance_by_index(i, j),
            _ if a == b => DEFAULT_LOCAL_DISTANCE,
            _ => DEFAULT_REMOTE_DISTANCE,
        }
    }

    /// SLIT distance between node positions `i` and `j` (both `< num_nodes()`).
    pub fn distance_by_index(&self, i: usize, j: usize) -> u32 {
        self.distances[i * self.nodes.len() + j]
    }

    /// Node positions ordered by distance from position `i` (then by position), starting
    /// with `i` itself.
    pub fn nodes_by_distance(&self, i: usize) -> &[u32] {
        let n = self.nodes.len();
        &self.by_distance[i * n..(i + 1) * n]
    }

    /// Whether the spec carried a distance matrix.
    pub fn distances_known(&self) -> bool {
        self.distances_known
    }

    /// Sum of all nodes' memory, MiB (saturating).
    pub fn total_memory_mb(&self) -> u64 {
        self.total_memory_mb
    }

    /// The most PUs any core has.
    pub fn smt_width(&self) -> usize {
        self.nodes.iter().map(|n| n.smt_width).max().unwrap_or(0)
    }

    /// Bytes held on the heap by this topology (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        let spec_bytes: usize = self
            .spec
            .nodes
            .iter()
            .map(|n| {
                std::mem::size_of::<NodeSpec>()
                    + n.cores.capacity() * std::mem::size_of::<CoreSpec>()
                    + n.cores.iter().map(|c| c.cpus.heap_bytes()).sum::<usize>()
                    + n.distances.capacity() * 4
                    + n.caches.capacity() * std::mem::size_of::<CacheSpec>()
                    + n.caches.iter().map(|c| c.cpus.heap_bytes()).sum::<usize>()
            })
            .sum();
        spec_bytes
            + self.spec.gpus.capacity() * std::mem::size_of::<GpuSpec>()
            + self.cpus.heap_bytes()
            + self.node_ids.heap_bytes()
            + self.nodes.capacity() * std::mem::size_of::<NumaNode>()
            + self
                .nodes
                .iter()
                .map(|n| n.cpus.heap_bytes())
                .sum::<usize>()
            + self.cores.capacity() * std::mem::size_of::<CpuSet>()
            + self.cores.iter().map(CpuSet::heap_bytes).sum::<usize>()
            + self.caches.capacity() * std::mem::size_of::<CacheDomain>()
            + self
                .caches
                .iter()
                .map(|c| c.cpus.heap_bytes())
                .sum::<usize>()
            + (self.cache_cores.capacity() + self.core_cache.capacity()) * 4
            + self.cpu_core.capacity() * 4
            + self.core_node.capacity() * 4
            + self.distances.capacity() * 4
            + self.by_distance.capacity() * 4
    }

    /// Convenience: wrap in an [`Arc`] for sharing among agent states.
    pub fn into_arc(self) -> Arc<Topology> {
        Arc::new(self)
    }
}
