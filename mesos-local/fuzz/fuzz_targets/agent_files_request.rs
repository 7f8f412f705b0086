//! Fuzz target: a /files path with offset and length through path resolution and the read window
//! (`retz_mesos_local::agent::fuzzing::fuzz_files_request`). Run with `cargo fuzz run agent_files_request`
//! from `mesos-local/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_mesos_local::agent::fuzzing::fuzz_files_request(data);
});
