//! What one agent offers: [`AgentState`] (its topology, free CPU ids, free memory per NUMA
//! node, free GPU device ids) and the bookkeeping to take and give back an [`Assignment`].
//!
//! Invariants (checked by [`AgentState::new`] and kept by [`AgentState::allocate`] /
//! [`AgentState::release`]):
//! - `free_cpus ⊆ topology.cpus()`;
//! - `free_mem_mb` has one entry per node (by node position) and each entry is at most the
//!   node's memory;
//! - an agent with `numa_aware == false` has a one-node topology (an offer without the NUMA
//!   attributes): the packer treats its CPU ids as counts only and never pins there;
//! - free GPUs are device ids: the agent's advertised `gpuids` ([`AgentState::with_gpu_ids`],
//!   `gpus_named`), or for an agent stating a GPU count only the ids
//!   [`crate::gpus::default_ids`] gives (`0..n` when its topology lists no GPUs); an id
//!   is never free twice and every granted id comes back on release.
//!
//! The sum of `free_mem_mb` must not exceed the offer's `mem` scalar; the server, which
//! knows both, scales per-node values down when the offer holds back memory.

use std::sync::Arc;

use crate::plan::Assignment;
use crate::sets::{CpuId, CpuSet, GpuSet, NodeId};
use crate::topology::{Topology, TopologyError};

/// An agent as offered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentState {
    agent_id: String,
    hostname: String,
    topology: Arc<Topology>,
    free_cpus: CpuSet,
    free_mem_mb: Vec<u64>,
    free_gpus: GpuSet,
    gpus_named: bool,
    numa_aware: bool,
}

/// An inconsistent agent state or bookkeeping request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    #[error("agent {agent}: free CPUs {cpus} are not CPUs of its topology")]
    UnknownCpus { agent: String, cpus: CpuSet },
    #[error("agent {agent}: {got} free-memory entries for {nodes} NUMA nodes; give one per node")]
    MemoryEntries {
        agent: String,
        got: usize,
        nodes: usize,
    },
    #[error("agent {agent}: node {node} has {free} MB free but only {size} MB of memory")]
    MemoryOverflow {
        agent: String,
        node: NodeId,
        free: u64,
        size: u64,
    },
    #[error(
        "agent {agent}: an agent without NUMA attributes must have a one-node topology, got {nodes} nodes"
    )]
    NotSingleNode { agent: String, nodes: usize },
    #[error("agent {agent}: CPUs {cpus} are not free")]
    CpusNotFree { agent: String, cpus: CpuSet },
    #[error("agent {agent}: CPUs {cpus} are already free (released twice?)")]
    CpusAlreadyFree { agent: String, cpus: CpuSet },
    #[error("agent {agent}: node {node} is not in its topology")]
    UnknownNode { agent: String, node: NodeId },
    #[error("agent {agent}: node {node} has {free} MB free, {want} MB were to be taken")]
    MemoryNotFree {
        agent: String,
        node: NodeId,
        free: u64,
        want: u64,
    },
    #[error("agent {agent}: GPUs {gpus} are not free")]
    GpusNotFree { agent: String, gpus: GpuSet },
    #[error("agent {agent}: GPUs {gpus} are already free (released twice?)")]
    GpusAlreadyFree { agent: String, gpus: GpuSet },
    #[error("agent {agent}: an assignment of {granted} GPUs names {named} device ids")]
    GpuIdsMismatch {
        agent: String,
        granted: u32,
        named: usize,
    },
    #[error("agent {agent}: GPU ids {gpus} are not GPUs of its topology (numa_gpus lists {known})")]
    UnknownGpus {
        agent: String,
        gpus: GpuSet,
        known: GpuSet,
    },
    #[error("agent {agent}: {source}")]
    Topology {
        agent: String,
        #[source]
        source: TopologyError,
    },
}

impl AgentState {
    /// An agent offering `free_cpus`, `free_mem_mb[i]` MB on node position `i`, and
    /// `free_gpus` GPUs (ids from [`crate::gpus::default_ids`]; name them with
    /// [`AgentState::with_gpu_ids`]).
    pub fn new(
        agent_id: impl Into<String>,
        hostname: impl Into<String>,
        topology: Arc<Topology>,
        free_cpus: CpuSet,
        free_mem_mb: Vec<u64>,
        free_gpus: u32,
        numa_aware: bool,
    ) -> Result<AgentState, AgentError> {
        let agent = agent_id.into();
        let unknown = free_cpus.difference(topology.cpus());
        if !unknown.is_empty() {
            return Err(AgentError::UnknownCpus {
                agent,
                cpus: unknown,
            });
        }
        if free_mem_mb.len() != topology.num_nodes() {
            return Err(AgentError::MemoryEntries {
                agent,
                got: free_mem_mb.len(),
                nodes: topology.num_nodes(),
            });
        }
        for (n, &free) in topology.nodes().iter().zip(&free_mem_mb) {
            if free > n.memory_mb() {
                return Err(AgentError::MemoryOverflow {
                    agent,
                    node: n.id(),
                    free,
                    size: n.memory_mb(),
                });
            }
        }
        if !numa_aware && topology.num_nodes() != 1 {
            return Err(AgentError::NotSingleNode {
                agent,
                nodes: topology.num_nodes(),
            });
        }
        let gpus_named = free_gpus > 0 && topology.gpu_ids().len() as u64 >= u64::from(free_gpus);
        Ok(AgentState {
            agent_id: agent,
            hostname: hostname.into(),
            free_gpus: crate::gpus::default_ids(&topology, free_gpus),
            gpus_named,
            topology,
            free_cpus,
            free_mem_mb,
            numa_aware,
        })
    }

    /// An idle NUMA-aware agent: every CPU and all memory free.
    pub fn idle(
        agent_id: impl Into<String>,
        hostname: impl Into<String>,
        topology: Arc<Topology>,
        gpus: u32,
    ) -> AgentState {
        let free_mem_mb = topology.nodes().iter().map(|n| n.memory_mb()).collect();
        AgentState {
            agent_id: agent_id.into(),
            hostname: hostname.into(),
            free_cpus: topology.cpus().clone(),
            free_gpus: crate::gpus::default_ids(&topology, gpus),
            gpus_named: gpus > 0 && topology.gpu_ids().len() as u64 >= u64::from(gpus),
            topology,
            free_mem_mb,
            numa_aware: true,
        }
    }

    /// An offer without NUMA attributes: `cpus` CPUs (ids `0..cpus`, counts only) and
    /// `mem_mb` MB in one node, no SMT knowledge, no pinning guarantees.
    pub fn without_numa(
        agent_id: impl Into<String>,
        hostname: impl Into<String>,
        cpus: u32,
        mem_mb: u64,
        gpus: u32,
    ) -> Result<AgentState, AgentError> {
        let agent = agent_id.into();
        let set = if cpus == 0 {
            CpuSet::new()
        } else {
            let last = cpus - 1;
            if last > crate::sets::MAX_SET_ID {
                return Err(AgentError::Topology {
                    agent,
                    source: TopologyError::Synthetic {
                        input: format!("{cpus} cpus"),
                        pos: 0,
                        message: "too many CPUs".into(),
                    },
                });
            }
            CpuSet::from_range(0, last)
        };
        let topology =
            Topology::single_node(&set, mem_mb).map_err(|source| AgentError::Topology {
                agent: agent.clone(),
                source,
            })?;
        AgentState::new(
            agent,
            hostname,
            Arc::new(topology),
            set,
            vec![mem_mb],
            gpus,
            false,
        )
    }

    /// The same agent with exactly `ids` free (its advertised `gpuids`). When the
    /// topology lists GPUs (`numa_gpus`), every id must be one of them.
    pub fn with_gpu_ids(mut self, ids: GpuSet) -> Result<AgentState, AgentError> {
        let known = self.topology.gpu_ids();
        if !known.is_empty() {
            let stray = ids.difference(known);
            if !stray.is_empty() {
                return Err(AgentError::UnknownGpus {
                    agent: self.agent_id,
                    gpus: stray,
                    known: known.clone(),
                });
            }
        }
        self.free_gpus = ids;
        self.gpus_named = true;
        Ok(self)
    }

    /// The Mesos agent id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }
    /// The hostname.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }
    /// The topology.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }
    /// Free CPU ids.
    pub fn free_cpus(&self) -> &CpuSet {
        &self.free_cpus
    }
    /// Free memory per node position, MB.
    pub fn free_mem_mb(&self) -> &[u64] {
        &self.free_mem_mb
    }
    /// Free memory on all nodes, MB.
    pub fn free_mem_total_mb(&self) -> u64 {
        self.free_mem_mb
            .iter()
            .fold(0u64, |a, &b| a.saturating_add(b))
    }
    /// Number of free GPUs.
    pub fn free_gpus(&self) -> u32 {
        self.free_gpus.len() as u32
    }
    /// Free GPU device ids.
    pub fn free_gpu_ids(&self) -> &GpuSet {
        &self.free_gpus
    }
    /// Whether the GPU ids are the agent's own (advertised `gpuids` or listed in its
    /// topology) rather than placeholders of a count.
    pub fn gpus_named(&self) -> bool {
        self.gpus_named
    }
    /// Whether the offer carried the NUMA attributes.
    pub fn numa_aware(&self) -> bool {
        self.numa_aware
    }

    fn node_pos(&self, node: NodeId) -> Result<usize, AgentError> {
        self.topology
            .node_index(node)
            .ok_or_else(|| AgentError::UnknownNode {
                agent: self.agent_id.clone(),
                node,
            })
    }

    /// Takes an assignment's CPUs, memory and GPUs (e.g. to replay a plan, or in the
    /// simulator). Nothing changes on error.
    pub fn allocate(&mut self, a: &Assignment) -> Result<(), AgentError> {
        let missing = a.cpus.difference(&self.free_cpus);
        if !missing.is_empty() {
            return Err(AgentError::CpusNotFree {
                agent: self.agent_id.clone(),
                cpus: missing,
            });
        }
        let mut mem = self.free_mem_mb.clone();
        for m in &a.memory_per_node {
            let i = self.node_pos(m.node)?;
            mem[i] = mem[i]
                .checked_sub(m.mb)
                .ok_or_else(|| AgentError::MemoryNotFree {
                    agent: self.agent_id.clone(),
                    node: m.node,
                    free: mem[i],
                    want: m.mb,
                })?;
        }
        self.check_gpu_ids(a)?;
        let missing = a.gpu_ids.difference(&self.free_gpus);
        if !missing.is_empty() {
            return Err(AgentError::GpusNotFree {
                agent: self.agent_id.clone(),
                gpus: missing,
            });
        }
        self.free_cpus.difference_with(&a.cpus);
        self.free_mem_mb = mem;
        self.free_gpus.difference_with(&a.gpu_ids);
        Ok(())
    }

    /// Gives back an assignment's CPUs, memory and GPUs when its job ends. Nothing changes
    /// on error.
    pub fn release(&mut self, a: &Assignment) -> Result<(), AgentError> {
        let unknown = a.cpus.difference(self.topology.cpus());
        if !unknown.is_empty() {
            return Err(AgentError::UnknownCpus {
                agent: self.agent_id.clone(),
                cpus: unknown,
            });
        }
        let twice = a.cpus.intersection(&self.free_cpus);
        if !twice.is_empty() {
            return Err(AgentError::CpusAlreadyFree {
                agent: self.agent_id.clone(),
                cpus: twice,
            });
        }
        let mut mem = self.free_mem_mb.clone();
        for m in &a.memory_per_node {
            let i = self.node_pos(m.node)?;
            let size = self.topology.nodes()[i].memory_mb();
            let free = mem[i].saturating_add(m.mb);
            if free > size {
                return Err(AgentError::MemoryOverflow {
                    agent: self.agent_id.clone(),
                    node: m.node,
                    free,
                    size,
                });
            }
            mem[i] = free;
        }
        self.check_gpu_ids(a)?;
        let twice = a.gpu_ids.intersection(&self.free_gpus);
        if !twice.is_empty() {
            return Err(AgentError::GpusAlreadyFree {
                agent: self.agent_id.clone(),
                gpus: twice,
            });
        }
        self.free_cpus.union_with(&a.cpus);
        self.free_mem_mb = mem;
        self.free_gpus.union_with(&a.gpu_ids);
        Ok(())
    }

    fn check_gpu_ids(&self, a: &Assignment) -> Result<(), AgentError> {
        if a.gpu_ids.len() as u64 != u64::from(a.granted_gpus) {
            return Err(AgentError::GpuIdsMismatch {
                agent: self.agent_id.clone(),
                granted: a.granted_gpus,
                named: a.gpu_ids.len(),
            });
        }
        Ok(())
    }

    /// Marks specific CPUs used (e.g. by tasks the server knows are running).
    pub fn take_cpus(&mut self, cpus: &CpuSet) -> Result<(), AgentError> {
        let missing = cpus.difference(&self.free_cpus);
        if !missing.is_empty() {
            return Err(AgentError::CpusNotFree {
                agent: self.agent_id.clone(),
                cpus: missing,
            });
        }
        self.free_cpus.difference_with(cpus);
        Ok(())
    }

    /// Whether a CPU is free.
    pub fn is_free(&self, cpu: CpuId) -> bool {
        self.free_cpus.contains(cpu)
    }

    /// Approximate bytes this state holds on the heap, not counting the shared topology.
    pub fn heap_bytes(&self) -> usize {
        self.agent_id.capacity()
            + self.hostname.capacity()
            + self.free_cpus.heap_bytes()
            + self.free_mem_mb.capacity() * std::mem::size_of::<u64>()
            + self.free_gpus.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::NodeMemory;
    use crate::request::AffinityPolicy;
    use crate::sets::NodeSet;

    fn topo() -> Arc<Topology> {
        Arc::new(Topology::from_synthetic("pack:1 numa:2 core:2 pu:2", 1000).unwrap())
    }

    fn assignment(cpus: &str, mem: &[(u32, u64)], gpus: u32) -> Assignment {
        Assignment {
            job_id: 1,
            agent_id: "a".into(),
            hostname: "h".into(),
            cpus: cpus.parse().unwrap(),
            cpu_nodes: NodeSet::new(),
            nodes: NodeSet::new(),
            memory_per_node: mem
                .iter()
                .map(|&(n, mb)| NodeMemory {
                    node: NodeId(n),
                    mb,
                })
                .collect(),
            granted_cpus: 0,
            granted_mem_mb: 0,
            granted_gpus: gpus,
            gpu_ids: if gpus == 0 {
                GpuSet::new()
            } else {
                GpuSet::from_range(0, gpus - 1)
            },
            gpus_named: false,
            policy: AffinityPolicy::NumaPrefer,
            whole_nodes: 0,
            pinned: true,
            cost: 0.0,
        }
    }

    #[test]
    fn validates_offers() {
        let t = topo();
        let ok = AgentState::new(
            "a",
            "h",
            t.clone(),
            "0-3".parse().unwrap(),
            vec![1000, 5],
            0,
            true,
        );
        assert!(ok.is_ok());
        let e = AgentState::new(
            "a",
            "h",
            t.clone(),
            "0-9".parse().unwrap(),
            vec![0, 0],
            0,
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("8-9"), "{e}");
        assert!(matches!(
            AgentState::new("a", "h", t.clone(), CpuSet::new(), vec![0], 0, true),
            Err(AgentError::MemoryEntries { .. })
        ));
        assert!(matches!(
            AgentState::new("a", "h", t.clone(), CpuSet::new(), vec![0, 1001], 0, true),
            Err(AgentError::MemoryOverflow { .. })
        ));
        assert!(matches!(
            AgentState::new("a", "h", t, CpuSet::new(), vec![0, 0], 0, false),
            Err(AgentError::NotSingleNode { .. })
        ));
        let plain = AgentState::without_numa("p", "h", 4, 2048, 1).unwrap();
        assert_eq!(plain.free_cpus().len(), 4);
        assert!(!plain.numa_aware());
        assert!(AgentState::without_numa("p", "h", 0, 2048, 1).is_err());
        assert!(AgentState::without_numa("p", "h", u32::MAX, 2048, 1).is_err());
    }

    #[test]
    fn allocate_and_release_are_exact() {
        let mut a = AgentState::idle("a", "h", topo(), 2);
        let x = assignment("0-1", &[(0, 600)], 1);
        a.allocate(&x).unwrap();
        assert_eq!(a.free_cpus().to_string(), "2-7");
        assert_eq!(a.free_mem_mb(), &[400, 1000]);
        assert_eq!(a.free_gpus(), 1);
        // Taking the same CPUs again fails and changes nothing.
        assert!(matches!(
            a.allocate(&x),
            Err(AgentError::CpusNotFree { .. })
        ));
        assert!(matches!(
            a.allocate(&assignment("2", &[(0, 600)], 0)),
            Err(AgentError::MemoryNotFree { .. })
        ));
        assert!(matches!(
            a.allocate(&assignment("2", &[(5, 1)], 0)),
            Err(AgentError::UnknownNode { .. })
        ));
        assert!(matches!(
            a.allocate(&assignment("2", &[], 2)),
            Err(AgentError::GpusNotFree { .. })
        ));
        assert_eq!(a.free_cpus().to_string(), "2-7");
        a.release(&x).unwrap();
        assert_eq!(a, AgentState::idle("a", "h", topo(), 2));
        assert!(matches!(
            a.release(&x),
            Err(AgentError::CpusAlreadyFree { .. })
        ));
        assert!(matches!(
            a.release(&assignment("9", &[], 0)),
            Err(AgentError::UnknownCpus { .. })
        ));
        a.take_cpus(&"0".parse().unwrap()).unwrap();
        assert!(!a.is_free(CpuId(0)));
        assert!(a.take_cpus(&"0".parse().unwrap()).is_err());
        assert!(matches!(
            a.release(&assignment("0", &[(1, 1)], 0)),
            Err(AgentError::MemoryOverflow { .. })
        ));
    }
}
