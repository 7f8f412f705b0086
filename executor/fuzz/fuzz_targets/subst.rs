#![no_main]
//! Fuzz target: see `retz_executor::fuzzing::subst`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| retz_executor::fuzzing::subst(data));
