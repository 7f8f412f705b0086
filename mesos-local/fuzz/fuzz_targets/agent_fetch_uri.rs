//! Fuzz target: a CommandInfo.URI value and output_file through the fetcher's URI handling
//! (`retz_mesos_local::agent::fuzzing::fuzz_fetch_uri`). Run with `cargo fuzz run agent_fetch_uri`
//! from `mesos-local/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_mesos_local::agent::fuzzing::fuzz_fetch_uri(data);
});
