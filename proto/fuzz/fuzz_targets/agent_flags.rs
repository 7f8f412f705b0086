//! Fuzz target: Mesos agent flag text (`--resources`, `--attributes`) through the Retz NUMA
//! convention parser, offer decoder and encoder (`retz_proto::numa::fuzz_agent_flags`).
//! Run with `cargo fuzz run agent_flags` from `proto/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        retz_proto::numa::fuzz_agent_flags(text);
    }
});
