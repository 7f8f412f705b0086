//! The Retz placement engine: topology model, CPU and NUMA node sets, requests, the cost
//! model, the packer and baselines. Pure: no I/O, no async runtime, no system libraries.
//!
//! Modules (each documents what it owns and its invariants):
//! - [`sets`]: [`CpuId`], [`NodeId`], [`GpuId`], [`CpuSet`], [`NodeSet`], [`GpuSet`] and the
//!   Linux list format;
//! - [`topology`]: [`TopologySpec`] (plain data: nodes, L3 cache domains, cores, GPUs) and
//!   the validated [`Topology`];
//! - [`synthetic`]: the hwloc synthetic-description parser behind
//!   [`Topology::from_synthetic`];
//! - [`request`]: [`JobRequest`], [`AffinityPolicy`], [`SmtPolicy`], [`CachePolicy`],
//!   [`ResourceRange`];
//! - [`agent`]: [`AgentState`], what one agent offers, with allocate/release bookkeeping;
//! - [`gpus`]: GPU locality: which free device ids a GPU job gets, and the locality cost
//!   that keeps its CPUs on its GPUs' node or socket;
//! - [`config`]: [`PolicyConfig`], [`Weights`], [`Starvation`] (serde, for TOML/JSON);
//! - [`features`]: [`PlacementFeatures`] of a grant (nodes and L3 domains spanned, SMT
//!   sharing, remote memory, co-runners) for the job history;
//! - [`plan`]: the cycle's output: [`Plan`], [`Assignment`], [`Pending`], [`Reservation`];
//! - [`reason`]: [`PendingReason`], why a job waits, in words;
//! - [`planner`]: [`Planner`], the single-decision engine over capacity indexes;
//! - [`packer`]: [`Packer`] and [`plan()`], the planning cycle with starvation protection;
//! - [`baseline`]: the first-fit and node-blind comparison packers;
//! - [`fuzz`]: the bodies of the cargo-fuzz targets in `placement/fuzz/`.
//!
//! Typical use, once per cycle:
//! ```
//! use std::sync::Arc;
//! use retz_placement::{AgentState, JobRequest, Packer, PolicyConfig, Topology};
//! let topo = Arc::new(Topology::from_synthetic("pack:2 numa:2 core:4 pu:2", 16_384).unwrap());
//! let agents = vec![AgentState::idle("agent-1", "host1", topo, 0)];
//! let queue = vec![JobRequest::new(1, 6, 1024)];
//! let mut packer = Packer::new(PolicyConfig::default());
//! let plan = packer.plan(&agents, &queue, 0);
//! assert_eq!(plan.assignments[0].cpus.to_string(), "0-5");
//! ```

pub mod agent;
pub mod baseline;
pub mod config;
pub mod features;
pub mod fuzz;
pub mod gpus;
mod index;
pub mod packer;
pub mod plan;
pub mod planner;
pub mod reason;
pub mod request;
mod select;
pub mod sets;
pub mod synthetic;
pub mod topology;

pub use agent::{AgentError, AgentState};
pub use config::{PackerKind, PolicyConfig, Starvation, Weights};
pub use features::{PlacementFeatures, placement_features};
pub use packer::{Packer, effective_priority, plan, queue_order};
pub use plan::{Assignment, NodeMemory, Pending, Plan, Reservation};
pub use planner::{Decision, Planner};
pub use reason::{Closest, PendingReason};
pub use request::{
    AffinityPolicy, CachePolicy, JobRequest, PRIORITY_MAX, PRIORITY_MIN, RangeParseError,
    RequestError, ResourceRange, SmtPolicy, UnknownName,
};
pub use sets::{
    CpuId, CpuSet, GpuId, GpuSet, MAX_SET_ID, NodeId, NodeSet, SetParseError, SetParseErrorKind,
};
pub use topology::{
    CacheDomain, CacheSpec, CoreSpec, GpuSpec, NodeSpec, NumaNode, Topology, TopologyError,
    TopologySpec,
};
