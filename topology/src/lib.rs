//! `retz-topology`: the topology probe — what `retz-executor topology` shows and what an
//! agent advertises. The only crate of the workspace that links hwloc (hwlocality).
//!
//! Owns the conversion of an hwloc topology (this machine, an XML export or a synthetic
//! description) into the placement engine's plain [`TopologySpec`]
//! ([`hwloc`]), and the `topology` subcommand that prints it as a summary, as JSON or as
//! ready-to-paste Mesos agent flags ([`cli`]). The agent-flag text itself comes from the
//! pure NUMA resource convention in `retz_proto::numa`.
//!
//! Invariant: every [`TopologySpec`] this module returns has passed
//! `retz_placement::topology::Topology::new` (it is a valid placement topology).
//!
//! [`TopologySpec`]: retz_placement::topology::TopologySpec

pub mod cli;
pub mod hwloc;

pub use cli::{OutputFormat, TopologyArgs, run};
pub use hwloc::{TopologyError, TopologySource, load};
