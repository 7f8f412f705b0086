//! The Retz placement engine: topology model, CPU and NUMA node sets, requests, the cost
//! model, policies and the packer. Pure: no I/O, no async runtime, no system libraries.
//!
//! Modules:
//! - [`sets`]: [`CpuId`], [`NodeId`], [`CpuSet`], [`NodeSet`] and the Linux list format;
//! - [`topology`]: [`TopologySpec`] (plain data) and the validated [`Topology`];
//! - [`synthetic`]: the hwloc synthetic-description parser behind
//!   [`Topology::from_synthetic`].

pub mod sets;
pub mod synthetic;
pub mod topology;

pub use sets::{CpuId, CpuSet, MAX_SET_ID, NodeId, NodeSet, SetParseError, SetParseErrorKind};
pub use topology::{CoreSpec, NodeSpec, NumaNode, Topology, TopologyError, TopologySpec};
