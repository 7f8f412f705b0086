//! The embedded local Mesos cluster: an in-process v1 master plus agents that launch real
//! executor processes over the executor API.
//!
//! Authentication: given credentials, the master's scheduler API and read-only endpoints
//! and the agents' `/files` and `/state` need HTTP Basic ([`http_auth`]); without, they
//! are open (tests and demos). Every executor always gets its own token for the agent's
//! executor API.
//!
//! TLS: with [`master::MasterConfig::tls`] the master serves its scheduler API (and
//! `/state`, `/metrics`) over TLS ([`tls`], shared with `retz-server`'s HTTPS API).

pub mod agent;
pub mod cluster;
pub mod http_auth;
pub mod master;
pub mod tls;
pub mod zk;
