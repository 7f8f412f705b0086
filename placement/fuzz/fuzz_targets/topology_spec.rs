//! Fuzz target: a `TopologySpec` from JSON fed to `Topology::new`, and the same bytes as a
//! hwloc synthetic description fed to `Topology::from_synthetic`, must never panic; what
//! they accept must keep the topology invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_placement::fuzz::topology_spec(data);
});
