#![no_main]
//! Fuzz target: the swf workload importer must never panic on any input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_sim::fuzzing::swf(data);
});
