#![no_main]
//! Fuzz target: see `retz_executor::fuzzing::procfs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| retz_executor::fuzzing::procfs(data));
