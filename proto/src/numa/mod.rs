//! The Retz NUMA resource convention: how an agent advertises its NUMA layout and exact CPU
//! ids with plain Mesos resources and attributes, and how a scheduler reads it back from an
//! offer. Pure: text and protobuf values in, text and protobuf values out, no I/O.
//!
//! Owns:
//! - spec → agent flags (`encode`): [`agent_flags`] ([`resources_text`], [`attributes_text`])
//!   writes `--resources` (`cpus`, `mem`, `disk`, `gpus`, `cpuids:[a-b,...]`,
//!   `gpuids:[a-b,...]`, `numanodes`) and `--attributes` (`retz_numa:v1`, one `numa_n<ID>`
//!   per node, `numa_offline`, and — additions that older decoders ignore — one
//!   `numa_l3_n<ID>` per node with several L3 cache domains, `numa_gpus`, `numa_remote`);
//! - agent flags → Mesos values (`flags`): [`parse_agent_flags`], [`parse_resources`],
//!   [`parse_attributes`] read the agent flag syntax (scalars, `[ranges]`, `{sets}`,
//!   `name(role)`, text attributes) like a Mesos agent, with one clear error per bad input;
//! - offer → spec (`decode`): [`offer_topology`] rebuilds the [`TopologySpec`] and the free resources
//!   from an offer's resources and attributes; an offer without the NUMA attributes yields a
//!   one-node topology with `numa_aware == false`.
//!
//! The encoding is specified in `docs/numa-convention.md`. Invariants:
//! - every attribute value written here uses only `[A-Za-z0-9._/-]` and starts with a
//!   letter, so Mesos reads it back as the same TEXT value (never as a scalar);
//! - for every valid spec, `offer_topology(parse(agent_flags(spec, free)))` gives back
//!   exactly `spec` and `free` (scalars at Mesos' 3-decimal precision);
//! - decoding never allocates more than the ids it returns (every CPU id is checked against
//!   [`MAX_SET_ID`] and for duplicates as soon as it is produced);
//! - backward compatible both ways: flags without the cache, GPU and remote-CPU attributes
//!   decode as before (no cache domains, no GPU locality), and the added attribute names do
//!   not start with `numa_n` or equal `numa_offline`, so a decoder that predates them
//!   ignores them like any other attribute.

mod decode;
mod encode;
mod flags;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cache;

pub use decode::*;
pub use encode::*;
pub use flags::*;

use std::collections::BTreeMap;
use std::fmt;

use retz_placement::sets::{CpuId, CpuSet, GpuId, GpuSet, MAX_SET_ID, NodeId, NodeSet};
use retz_placement::topology::{
    CacheSpec, CoreSpec, GpuSpec, NodeSpec, Topology, TopologyError, TopologySpec,
};

use crate::mesos::resource::{ReservationInfo, reservation_info};
use crate::mesos::{Attribute, Resource, value};

/// Attribute holding the convention's version ([`VERSION`]).
pub const VERSION_ATTRIBUTE: &str = "retz_numa";
/// The version written by this module.
pub const VERSION: &str = "v1";
/// Prefix of the per-node attributes: `numa_n0`, `numa_n1`, ...
pub const NODE_ATTRIBUTE_PREFIX: &str = "numa_n";
/// Attribute listing the offline or disallowed CPUs (absent when there are none).
pub const OFFLINE_ATTRIBUTE: &str = "numa_offline";
/// Prefix of the per-node L3 cache domain attributes: `numa_l3_n0`, ... (only for nodes
/// with two or more domains).
pub const CACHE_ATTRIBUTE_PREFIX: &str = "numa_l3_n";
/// Attribute listing the GPUs and the NUMA nodes each is attached to (absent without GPUs).
pub const GPU_ATTRIBUTE: &str = "numa_gpus";
/// Attribute listing the usable CPUs whose own node is not usable, so their memory is
/// remote (absent when there are none).
pub const REMOTE_ATTRIBUTE: &str = "numa_remote";
/// Scalar resource: CPUs.
pub const CPUS: &str = "cpus";
/// Scalar resource: memory, MB.
pub const MEM: &str = "mem";
/// Scalar resource: disk, MB.
pub const DISK: &str = "disk";
/// Scalar resource: GPUs.
pub const GPUS: &str = "gpus";
/// Ranges resource: the free logical CPU ids.
pub const CPUIDS: &str = "cpuids";
/// Ranges resource: the free GPU device ids.
pub const GPUIDS: &str = "gpuids";
/// Scalar resource: the number of whole NUMA nodes free.
pub const NUMANODES: &str = "numanodes";

/// Longest piece of outside input quoted in an error message.
const QUOTE_MAX: usize = 80;

/// What the agent has free besides the (static) layout: the resource half of the flags.
///
/// Scalars follow Mesos: non-negative, kept to 3 decimals; a zero scalar is not written
/// (and an absent one reads back as zero).
#[derive(Clone, Debug, PartialEq)]
pub struct FreeResources {
    /// Free logical CPU ids (`cpuids`). For an offer without NUMA attributes and without
    /// `cpuids`, placeholders `0..cpus` with no pinning meaning.
    pub cpuids: CpuSet,
    /// `cpus`.
    pub cpus: f64,
    /// `mem`, MB.
    pub mem_mb: f64,
    /// `disk`, MB.
    pub disk_mb: f64,
    /// `gpus`.
    pub gpus: f64,
    /// Free GPU device ids (`gpuids`); empty when the agent does not name its GPUs.
    pub gpuids: GpuSet,
    /// `numanodes`: whole NUMA nodes free.
    pub numanodes: f64,
}

impl FreeResources {
    /// Everything of `spec` free: all usable CPUs, the memory of all nodes, every node;
    /// no disk and no GPUs (a Mesos agent offers GPUs only with its GPU isolator, so they
    /// are advertised only when asked for: see [`FreeResources::with_gpus`]).
    pub fn whole_machine(spec: &TopologySpec) -> FreeResources {
        let mut cpuids = CpuSet::new();
        for core in spec.nodes.iter().flat_map(|n| &n.cores) {
            cpuids.union_with(&core.cpus);
        }
        FreeResources {
            cpus: cpuids.len() as f64,
            cpuids,
            mem_mb: spec
                .nodes
                .iter()
                .fold(0u64, |acc, n| acc.saturating_add(n.memory_mb)) as f64,
            disk_mb: 0.0,
            gpus: 0.0,
            gpuids: GpuSet::new(),
            numanodes: spec.nodes.len() as f64,
        }
    }

    /// Advertises `n` GPUs: `gpus:n` and, when `spec` lists GPUs, `gpuids` naming the `n`
    /// lowest of them (all of them if there are fewer).
    pub fn with_gpus(mut self, spec: &TopologySpec, n: u32) -> FreeResources {
        self.gpus = f64::from(n);
        self.gpuids = spec.gpus.iter().take(n as usize).map(|g| g.id).collect();
        self
    }
}

/// The two agent flag values (without the `--resources=` / `--attributes=` prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentFlags {
    /// Value of `--resources`, e.g. `cpus:32;mem:65507;cpuids:[0-31];numanodes:2`.
    pub resources: String,
    /// Value of `--attributes`, e.g. `retz_numa:v1;numa_n0:pkg.0/mem.32739/...`.
    pub attributes: String,
}

impl AgentFlags {
    /// Two lines ready to paste into a mesos-agent command line or flags file:
    /// `--resources='...'` and `--attributes='...'` (no trailing newline).
    pub fn to_flag_lines(&self) -> String {
        format!(
            "--resources='{}'\n--attributes='{}'",
            self.resources, self.attributes
        )
    }
}

impl fmt::Display for AgentFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_flag_lines())
    }
}

/// Resources and attributes as a Mesos agent would parse them from its flags.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ParsedAgentFlags {
    /// From `--resources` (merged per name and role, empty ones dropped).
    pub resources: Vec<Resource>,
    /// From `--attributes`, in the order given.
    pub attributes: Vec<Attribute>,
}

/// What a scheduler learns from one offer.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferTopology {
    /// The agent's layout (from the NUMA attributes, or a single node without them).
    pub spec: TopologySpec,
    /// The offered resources.
    pub free: FreeResources,
    /// Whether the offer carried the NUMA attributes. When `false` the spec is one node with
    /// one CPU per core and the CPU ids carry no pinning guarantee.
    pub numa_aware: bool,
}

/// Why agent flags or an offer could not be converted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NumaError {
    /// A `--resources` or `--attributes` entry does not follow the agent flag syntax.
    #[error("invalid {flag} entry {entry:?}: {message}")]
    Syntax {
        /// `--resources` or `--attributes`.
        flag: &'static str,
        /// The offending `name:value` entry (truncated).
        entry: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The agent flags text as a whole is unusable.
    #[error("invalid agent flags: {message}")]
    Flags {
        /// What is wrong and what is expected.
        message: String,
    },
    /// A Retz NUMA attribute has a bad value.
    #[error("invalid NUMA attribute {name}={value:?}: {message}")]
    Attribute {
        /// Attribute name.
        name: String,
        /// Its value (truncated).
        value: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The convention's version is not one this code understands.
    #[error(
        "attribute {VERSION_ATTRIBUTE} is {found:?}; this Retz understands only {VERSION:?}: upgrade Retz or regenerate the agent flags"
    )]
    UnsupportedVersion {
        /// The version found.
        found: String,
    },
    /// A resource the convention uses has the wrong Mesos type.
    #[error("resource {name} is {found}; the Retz NUMA convention expects {expected}")]
    ResourceType {
        /// Resource name.
        name: String,
        /// Expected Mesos value type.
        expected: &'static str,
        /// Found Mesos value type.
        found: String,
    },
    /// A free resource amount given to [`agent_flags`] is not a valid Mesos scalar.
    #[error("free {name} is {value}; Mesos scalars are between 0 and {MAX_SCALAR}")]
    BadScalar {
        /// Resource name.
        name: &'static str,
        /// The value.
        value: f64,
    },
    /// GPU ids offered or advertised as free are not GPUs of the layout.
    #[error(
        "gpuids {gpus} are not GPUs of the advertised layout (numa_gpus); regenerate the agent flags with `retz-executor topology --agent-flags`"
    )]
    GpusOutsideTopology {
        /// The stray ids.
        gpus: GpuSet,
    },
    /// CPU ids offered or advertised as free are not usable CPUs of the layout.
    #[error(
        "cpuids {cpus} are not usable CPUs of the advertised NUMA layout; regenerate the agent flags with `retz-executor topology --agent-flags`"
    )]
    CpusOutsideTopology {
        /// The stray ids.
        cpus: CpuSet,
    },
    /// An offer without NUMA attributes has neither `cpus` nor `cpuids`.
    #[error("offer has no CPUs (no cpus >= 1 and no cpuids); it cannot run a Retz job")]
    NoCpus,
    /// The layout is not a valid topology.
    #[error("invalid NUMA layout: {0}")]
    Topology(#[from] TopologyError),
}

// ---------------------------------------------------------------------------------------
// fuzzing

/// Fuzzing entry point (used by `proto/fuzz/fuzz_targets/agent_flags.rs` and the unit
/// tests): feeds `text` to every parser here and, when it makes a usable offer, checks that
/// re-encoding and decoding it again gives the same layout and resources. Errors are fine;
/// it panics only when an invariant of this module is broken.
#[doc(hidden)]
pub fn fuzz_agent_flags(text: &str) {
    let _ = parse_resources(text);
    let _ = parse_attributes(text);
    let Ok(parsed) = parse_agent_flags(text) else {
        return;
    };
    let Ok(offer) = offer_topology(&parsed.resources, &parsed.attributes) else {
        return;
    };
    let flags = match agent_flags(&offer.spec, &offer.free) {
        Ok(flags) => flags,
        Err(e) => panic!("a decoded offer must re-encode: {e}"),
    };
    for (_, value) in topology_attributes(&offer.spec).unwrap_or_default() {
        assert!(
            value.starts_with(|c: char| c.is_ascii_alphabetic()) && value.chars().all(is_text_char),
            "attribute value {value:?} is not Mesos text"
        );
    }
    let again = match parse_agent_flags(&flags.to_flag_lines()) {
        Ok(again) => again,
        Err(e) => panic!("encoded flags must parse: {e}\n{flags}"),
    };
    let back = match offer_topology(&again.resources, &again.attributes) {
        Ok(back) => back,
        Err(e) => panic!("encoded flags must decode: {e}\n{flags}"),
    };
    assert_eq!(back.spec, offer.spec, "layout changed in the round trip");
    assert_eq!(back.free, offer.free, "resources changed in the round trip");
    assert!(back.numa_aware);
}
