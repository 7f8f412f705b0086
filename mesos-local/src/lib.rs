//! The embedded local Mesos cluster: an in-process v1 master plus agents that launch real
//! executor processes over the executor API.

pub mod agent;
pub mod cluster;
pub mod master;
