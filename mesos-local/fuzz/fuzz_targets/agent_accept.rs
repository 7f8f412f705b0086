//! Fuzz target: an Accept header through the executor API's content negotiation
//! (`retz_mesos_local::agent::fuzzing::fuzz_accept`). Run with `cargo fuzz run agent_accept`
//! from `mesos-local/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_mesos_local::agent::fuzzing::fuzz_accept(data);
});
