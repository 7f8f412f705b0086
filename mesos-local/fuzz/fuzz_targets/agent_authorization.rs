//! Fuzz target: an `Authorization` header through HTTP Basic against a credentials set and
//! bearer-token extraction (`retz_mesos_local::agent::fuzzing::fuzz_authorization`). Run
//! with `cargo fuzz run agent_authorization` from `mesos-local/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_mesos_local::agent::fuzzing::fuzz_authorization(data);
});
