//! The output of a planning cycle: [`Plan`] with its [`Assignment`]s, [`Pending`] jobs and
//! [`Reservation`]s.
//!
//! Invariants of an [`Assignment`] made by this crate: `granted_cpus == cpus.len()`,
//! `granted_mem_mb == Σ memory_per_node`, `granted_gpus == gpu_ids.len()`,
//! `cpu_nodes ⊆ nodes`, every node of `memory_per_node` is in `nodes`, and
//! `memory_per_node` is sorted by node id.

use serde::{Deserialize, Serialize};

use crate::reason::PendingReason;
use crate::request::AffinityPolicy;
use crate::sets::{CpuSet, GpuSet, NodeId, NodeSet};

/// Memory taken from one NUMA node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMemory {
    /// The node.
    pub node: NodeId,
    /// MB taken there.
    pub mb: u64,
}

/// A job placed on an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The job.
    pub job_id: u64,
    /// The agent (Mesos agent id).
    pub agent_id: String,
    /// The agent's hostname.
    pub hostname: String,
    /// The exact CPU ids consumed (`cpuids` RANGES; the executor pins to them when
    /// `pinned`).
    pub cpus: CpuSet,
    /// The nodes holding `cpus`.
    pub cpu_nodes: NodeSet,
    /// The memory nodes (`cpuset.mems`): `cpu_nodes` plus nodes memory spilled to.
    pub nodes: NodeSet,
    /// Memory taken per node, sorted by node id (what to give back when the job ends).
    pub memory_per_node: Vec<NodeMemory>,
    /// CPUs granted (`$RETZ_CPU`), equal to `cpus.len()`.
    pub granted_cpus: u32,
    /// Memory granted, MB (`$RETZ_MEM`).
    pub granted_mem_mb: u64,
    /// GPUs granted (`$RETZ_GPU`).
    pub granted_gpus: u32,
    /// The GPU device ids granted, `granted_gpus` of them (`CUDA_VISIBLE_DEVICES`); chosen
    /// on the CPUs' NUMA node or socket when the agent states GPU locality.
    #[serde(default, skip_serializing_if = "GpuSet::is_empty")]
    pub gpu_ids: GpuSet,
    /// Whether `gpu_ids` are the agent's real device ids (it advertised `gpuids` or lists
    /// its GPUs); false: placeholders `0..n` of an agent that states a GPU count only.
    #[serde(default)]
    pub gpus_named: bool,
    /// The affinity policy the job was planned with (after any cluster override).
    pub policy: AffinityPolicy,
    /// Whole NUMA nodes consumed exclusively (`numanodes`), 0 if none.
    pub whole_nodes: u32,
    /// Whether the executor should pin (false for policy `none` and for agents that do
    /// not advertise their NUMA layout: counts only, no pinning guarantees).
    pub pinned: bool,
    /// The cost-model score of the chosen placement (lower is better; 0 for baselines).
    pub cost: f64,
}

/// A job left unplaced, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The job.
    pub job_id: u64,
    /// Why, in words a user understands (`Display`).
    pub reason: PendingReason,
}

/// Resources held for a starving job; kept across cycles by [`crate::Packer`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The job holding it.
    pub job_id: u64,
    /// The agent.
    pub agent_id: String,
    /// The reserved nodes (all nodes of the agent for agent-level reservations).
    pub nodes: NodeSet,
    /// GPUs the holder needs on the agent; each cycle, as many of them as are free are
    /// held before any job is planned.
    pub gpus: u32,
}

/// The result of one planning cycle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Placed jobs, in the order they were decided (queue order).
    pub assignments: Vec<Assignment>,
    /// Unplaced jobs, in queue order.
    pub pending: Vec<Pending>,
    /// Reservations in force after this cycle.
    pub reservations: Vec<Reservation>,
}

impl Plan {
    /// The assignment of a job, if it was placed.
    pub fn assignment(&self, job_id: u64) -> Option<&Assignment> {
        self.assignments.iter().find(|a| a.job_id == job_id)
    }

    /// Why a job was left unplaced, if it was.
    pub fn pending_reason(&self, job_id: u64) -> Option<&PendingReason> {
        self.pending
            .iter()
            .find(|p| p.job_id == job_id)
            .map(|p| &p.reason)
    }
}
