//! Why a job is still pending: [`PendingReason`], structured for programs and printed
//! (`Display`) in words a user understands, e.g.
//! "needs 16 CPUs in one NUMA node; the largest free is 12, on agent-7 node 1".
//!
//! Invariant: every variant's `Display` names what the job needs and, when the cluster has
//! any candidate, the closest thing it found, so the user can tell "wait" from "change the
//! request".

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::sets::{NodeId, NodeSet};

/// The closest free capacity found for a pending job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closest {
    /// The agent.
    pub agent_id: String,
    /// The node, for node-level shapes.
    pub node: Option<NodeId>,
    /// Free CPUs there.
    pub free_cpus: u32,
    /// Free memory there, MB.
    pub free_mem_mb: u64,
}

/// Why a job was left unplaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PendingReason {
    /// The request itself is invalid (bad ranges, priority, ...).
    InvalidRequest { message: String },
    /// An earlier entry of the same queue has the same id; only the first is planned.
    DuplicateJobId,
    /// No agent is offering resources.
    NoAgents,
    /// No agent in the cluster could hold the job even when idle.
    NeverFits { message: String },
    /// A NUMA-placed job (numa-strict or numanodes) but no agent advertises its layout.
    NoNumaLayout { policy: String },
    /// numa-strict: no single node has the CPUs and memory free.
    OneNode {
        cpus: u32,
        mem_mb: u64,
        /// Node with the most free CPUs.
        largest: Option<Closest>,
        /// When some node has enough CPUs, the one of those with the most free memory.
        cpu_fit_most_mem: Option<Closest>,
    },
    /// No single agent has the CPUs and memory free.
    OneAgent {
        cpus: u32,
        mem_mb: u64,
        largest: Option<Closest>,
        cpu_fit_most_mem: Option<Closest>,
    },
    /// No agent has enough entirely free NUMA nodes (numanodes).
    WholeNodes {
        nodes: u32,
        cpus: u32,
        mem_mb: u64,
        /// (agent, entirely free nodes) of the agent with the most.
        most: Option<(String, u32)>,
    },
    /// No agent offers enough free GPUs together with the CPUs and memory.
    Gpus {
        gpus: u32,
        /// (agent, free GPUs) of the agent with the most.
        most: Option<(String, u32)>,
    },
    /// The job holds a reservation and waits for the jobs running there to end.
    Reserved {
        agent_id: String,
        nodes: NodeSet,
        free_cpus: u32,
        cpus: u32,
    },
    /// The job would fit, but only on resources reserved for an older job.
    BehindReservation {
        holder_job_id: u64,
        agent_id: String,
    },
    /// Baseline node-blind: the agent chosen by totals has no NUMA placement for the job
    /// (Kubernetes' TopologyAffinityError).
    TopologyAffinity { agent_id: String, cpus: u32 },
}

fn mem(mb: u64) -> String {
    if mb == 0 {
        String::new()
    } else {
        format!(" and {mb} MB")
    }
}

fn closest(c: &Closest) -> String {
    match c.node {
        Some(n) => format!("on {} node {}", c.agent_id, n),
        None => format!("on {}", c.agent_id),
    }
}

impl fmt::Display for PendingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PendingReason::InvalidRequest { message } => write!(f, "invalid request: {message}"),
            PendingReason::DuplicateJobId => {
                write!(
                    f,
                    "another queued job has the same id; only the first is planned"
                )
            }
            PendingReason::NoAgents => write!(f, "no agent is offering resources"),
            PendingReason::NeverFits { message } => write!(f, "{message}"),
            PendingReason::NoNumaLayout { policy } => write!(
                f,
                "needs NUMA placement ({policy}), but no agent advertises its NUMA layout"
            ),
            PendingReason::OneNode {
                cpus,
                mem_mb,
                largest,
                cpu_fit_most_mem,
            } => {
                write!(f, "needs {cpus} CPUs{} in one NUMA node; ", mem(*mem_mb))?;
                match (cpu_fit_most_mem, largest) {
                    (Some(c), _) => write!(
                        f,
                        "nodes with {cpus} free CPUs have at most {} MB free, {}",
                        c.free_mem_mb,
                        closest(c)
                    ),
                    (None, Some(l)) => {
                        write!(f, "the largest free is {}, {}", l.free_cpus, closest(l))
                    }
                    (None, None) => write!(f, "no NUMA node has a free CPU"),
                }
            }
            PendingReason::OneAgent {
                cpus,
                mem_mb,
                largest,
                cpu_fit_most_mem,
            } => {
                write!(f, "needs {cpus} CPUs{} on one agent; ", mem(*mem_mb))?;
                match (cpu_fit_most_mem, largest) {
                    (Some(c), _) => write!(
                        f,
                        "agents with {cpus} free CPUs have at most {} MB free, {}",
                        c.free_mem_mb,
                        closest(c)
                    ),
                    (None, Some(l)) => {
                        write!(f, "the largest free is {}, {}", l.free_cpus, closest(l))
                    }
                    (None, None) => write!(f, "no agent has a free CPU"),
                }
            }
            PendingReason::WholeNodes {
                nodes,
                cpus,
                mem_mb,
                most,
            } => {
                write!(
                    f,
                    "needs {nodes} entirely free NUMA nodes with {cpus} CPUs{} on one agent; ",
                    mem(*mem_mb)
                )?;
                match most {
                    Some((a, n)) => write!(f, "the most free nodes is {n}, on {a}"),
                    None => write!(f, "no agent has an entirely free NUMA node"),
                }
            }
            PendingReason::Gpus { gpus, most } => {
                write!(
                    f,
                    "needs {gpus} GPUs with its CPUs and memory on one agent; "
                )?;
                match most {
                    Some((a, n)) => write!(f, "the most free GPUs is {n}, on {a}"),
                    None => write!(f, "no agent offers a free GPU"),
                }
            }
            PendingReason::Reserved {
                agent_id,
                nodes,
                free_cpus,
                cpus,
            } => write!(
                f,
                "needs {cpus} CPUs; reserved {agent_id} node {nodes} ({free_cpus} CPUs free now), starts when the jobs running there end"
            ),
            PendingReason::BehindReservation {
                holder_job_id,
                agent_id,
            } => write!(
                f,
                "fits only on {agent_id}, reserved for job {holder_job_id} which has waited longer; runs after it"
            ),
            PendingReason::TopologyAffinity { agent_id, cpus } => write!(
                f,
                "{agent_id} was chosen by free totals but has no NUMA node with {cpus} free CPUs (topology affinity error)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well() {
        let r = PendingReason::OneNode {
            cpus: 16,
            mem_mb: 0,
            largest: Some(Closest {
                agent_id: "agent-7".into(),
                node: Some(NodeId(1)),
                free_cpus: 12,
                free_mem_mb: 1000,
            }),
            cpu_fit_most_mem: None,
        };
        assert_eq!(
            r.to_string(),
            "needs 16 CPUs in one NUMA node; the largest free is 12, on agent-7 node 1"
        );
        let j = serde_json::to_string(&r).unwrap();
        assert!(j.contains("\"kind\":\"one-node\""), "{j}");
        assert_eq!(serde_json::from_str::<PendingReason>(&j).unwrap(), r);
        let r = PendingReason::OneAgent {
            cpus: 40,
            mem_mb: 4096,
            largest: None,
            cpu_fit_most_mem: Some(Closest {
                agent_id: "a".into(),
                node: None,
                free_cpus: 48,
                free_mem_mb: 100,
            }),
        };
        assert_eq!(
            r.to_string(),
            "needs 40 CPUs and 4096 MB on one agent; agents with 40 free CPUs have at most 100 MB free, on a"
        );
    }
}
