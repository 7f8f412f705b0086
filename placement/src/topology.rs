//! The machine topology model: packages, NUMA nodes, physical cores and SMT siblings.
//!
//! Owns the plain data form [`TopologySpec`] (what the executor's hwloc probe and the agent
//! attributes produce, serde-friendly) and the validated, indexed [`Topology`] that the
//! packer reads. [`Topology::from_synthetic`] (in `synthetic.rs`) builds one from an hwloc
//! synthetic description without any system library.
//!
//! Invariants of a [`Topology`] (checked by [`Topology::new`]):
//! - at least one NUMA node, at most [`MAX_NODES`]; node ids strictly ascending;
//! - every core holds at least one CPU; a CPU belongs to at most one core (hence to at most
//!   one node); no usable CPU is also listed as offline;
//! - at least one usable CPU in the whole machine (memory-only nodes are fine);
//! - distance rows are either all empty (unknown: 10 local, 20 remote) or all of length
//!   `nodes.len()` with every value non-zero.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::sets::{CpuId, CpuSet, MAX_SET_ID, NodeId, NodeSet};

/// Linux's `MAX_NUMNODES` with `NODES_SHIFT = 10`; more nodes are rejected.
pub const MAX_NODES: usize = 1024;
/// SLIT distance of a node to itself when the distance matrix is unknown.
pub const DEFAULT_LOCAL_DISTANCE: u32 = 10;
/// SLIT distance between two different nodes when the distance matrix is unknown.
pub const DEFAULT_REMOTE_DISTANCE: u32 = 20;

/// The plain data form of a machine topology (see the crate docs for the JSON shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologySpec {
    /// NUMA nodes, sorted by id.
    pub nodes: Vec<NodeSpec>,
    /// PUs present but offline or disallowed (not usable).
    #[serde(default)]
    pub offline_cpus: CpuSet,
}

/// One NUMA node of a [`TopologySpec`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// One physical core: its usable SMT sibling PUs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreSpec {
    /// The SMT siblings (usable PUs) of one physical core.
    pub cpus: CpuSet,
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
    smt_width: usize,
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
    /// The most usable PUs any core of this node has (0 for a memory-only node).
    pub fn smt_width(&self) -> usize {
        self.smt_width
    }
    /// Whether the node has no usable CPU.
    pub fn is_memory_only(&self) -> bool {
        self.cpus.is_empty()
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
    /// Flattened `n x n` distance matrix (defaults filled in).
    distances: Vec<u32>,
    /// Flattened `n x n`: row `i` lists node positions by (distance from `i`, position),
    /// `i` itself first.
    by_distance: Vec<u32>,
    distances_known: bool,
    total_memory_mb: u64,
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
                smt_width,
            });
        }
        if cpus.is_empty() {
            return Err(TopologyError::NoCpus);
        }
        let max_cpu = cpus.last().map_or(0, |c| c.0 as usize);
        let mut cpu_core = vec![u32::MAX; max_cpu + 1];
        for (ci, core) in cores.iter().enumerate() {
            for cpu in core.iter() {
                cpu_core[cpu.0 as usize] = ci as u32;
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
            distances,
            by_distance,
            distances_known,
            total_memory_mb,
        })
    }

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
            }],
            offline_cpus: CpuSet::new(),
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
            })
            .sum();
        spec_bytes
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(s: &str) -> CpuSet {
        s.parse().unwrap()
    }

    fn node(id: u32, package: u32, cores: &[&str], distances: Vec<u32>) -> NodeSpec {
        NodeSpec {
            id: NodeId(id),
            package,
            memory_mb: 1024,
            cores: cores.iter().map(|c| CoreSpec { cpus: cs(c) }).collect(),
            distances,
        }
    }

    #[test]
    fn builds_indexes() {
        let t = Topology::new(TopologySpec {
            nodes: vec![
                node(0, 0, &["0,4", "1,5"], vec![10, 21, 31]),
                node(1, 0, &["2,6", "3,7"], vec![21, 10, 31]),
                node(3, 1, &[], vec![31, 31, 10]),
            ],
            offline_cpus: cs("8-9"),
        })
        .unwrap();
        assert_eq!(t.cpus(), &cs("0-7"));
        assert_eq!(t.node_of(CpuId(6)), Some(NodeId(1)));
        assert_eq!(t.node_of(CpuId(8)), None);
        assert_eq!(t.node_of(CpuId(100_000)), None);
        assert_eq!(t.siblings(CpuId(5)), Some(&cs("1,5")));
        assert_eq!(t.distance(NodeId(0), NodeId(3)), 31);
        assert_eq!(t.distance(NodeId(1), NodeId(0)), 21);
        assert_eq!(t.nodes_by_distance(2), &[2, 0, 1]);
        assert_eq!(t.nodes_by_distance(0), &[0, 1, 2]);
        assert_eq!(t.distance(NodeId(7), NodeId(7)), 10);
        assert!(t.node(NodeId(3)).unwrap().is_memory_only());
        assert_eq!(t.node(NodeId(1)).unwrap().index(), 1);
        assert_eq!(t.smt_width(), 2);
        assert_eq!(t.total_memory_mb(), 3072);
        assert_eq!(t.node_ids().to_string(), "0-1,3");
    }

    #[test]
    fn unknown_distances_default() {
        let t = Topology::new(TopologySpec {
            nodes: vec![node(0, 0, &["0"], vec![]), node(1, 0, &["1"], vec![])],
            offline_cpus: CpuSet::new(),
        })
        .unwrap();
        assert!(!t.distances_known());
        assert_eq!(t.distance(NodeId(0), NodeId(0)), 10);
        assert_eq!(t.distance(NodeId(0), NodeId(1)), 20);
    }

    #[test]
    fn rejects_invalid_specs() {
        let bad = |nodes: Vec<NodeSpec>, offline: &str| {
            Topology::new(TopologySpec {
                nodes,
                offline_cpus: cs(offline),
            })
            .unwrap_err()
        };
        assert_eq!(bad(vec![], ""), TopologyError::NoNodes);
        assert!(matches!(
            bad(
                vec![node(1, 0, &["0"], vec![]), node(0, 0, &["1"], vec![])],
                ""
            ),
            TopologyError::NodesNotAscending { position: 1, .. }
        ));
        assert!(matches!(
            bad(
                vec![node(0, 0, &["0"], vec![]), node(0, 0, &["1"], vec![])],
                ""
            ),
            TopologyError::NodesNotAscending { .. }
        ));
        assert_eq!(
            bad(vec![node(0, 0, &["0-1", "1"], vec![])], ""),
            TopologyError::CpuInTwoCores { cpu: CpuId(1) }
        );
        assert_eq!(
            bad(
                vec![node(0, 0, &["0"], vec![]), node(1, 0, &["0"], vec![])],
                ""
            ),
            TopologyError::CpuInTwoCores { cpu: CpuId(0) }
        );
        assert_eq!(
            bad(vec![node(0, 0, &["0-1"], vec![])], "1"),
            TopologyError::CpuBothOnlineAndOffline { cpu: CpuId(1) }
        );
        assert!(matches!(
            bad(vec![node(0, 0, &[""], vec![])], ""),
            TopologyError::EmptyCore { core: 0, .. }
        ));
        assert_eq!(
            bad(vec![node(0, 0, &[], vec![])], ""),
            TopologyError::NoCpus
        );
        assert!(matches!(
            bad(
                vec![node(0, 0, &["0"], vec![10, 20]), node(1, 0, &["1"], vec![])],
                ""
            ),
            TopologyError::DistanceRow { len: 0, .. }
        ));
        assert!(matches!(
            bad(vec![node(0, 0, &["0"], vec![0])], ""),
            TopologyError::ZeroDistance { .. }
        ));
        assert!(matches!(
            bad(vec![node(70_000, 0, &["0"], vec![])], ""),
            TopologyError::NodeIdTooLarge { .. }
        ));
        let many: Vec<NodeSpec> = (0..=MAX_NODES as u32)
            .map(|i| node(i, 0, &[], vec![]))
            .collect();
        assert!(matches!(bad(many, ""), TopologyError::TooManyNodes { .. }));
    }

    #[test]
    fn spec_json_roundtrip() {
        let t = Topology::from_synthetic("pack:2 numa:2 core:2 pu:2", 4096).unwrap();
        let json = serde_json::to_string(t.spec()).unwrap();
        assert!(json.contains("\"cpus\":\"0-1\""), "{json}");
        let back: TopologySpec = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, t.spec());
        assert_eq!(Topology::new(back).unwrap(), t);
    }

    #[test]
    fn single_node_for_plain_offers() {
        let t = Topology::single_node(&cs("0-3"), 8192).unwrap();
        assert_eq!(t.num_nodes(), 1);
        assert_eq!(t.cores().len(), 4);
        assert_eq!(t.smt_width(), 1);
        assert!(Topology::single_node(&CpuSet::new(), 1).is_err());
    }
}
