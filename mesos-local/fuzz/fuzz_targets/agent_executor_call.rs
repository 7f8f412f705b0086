//! Fuzz target: an executor API body (JSON and protobuf) through decoding and validation
//! (`retz_mesos_local::agent::fuzzing::fuzz_executor_call`). Run with `cargo fuzz run agent_executor_call`
//! from `mesos-local/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_mesos_local::agent::fuzzing::fuzz_executor_call(data);
});
