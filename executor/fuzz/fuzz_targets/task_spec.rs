#![no_main]
//! Fuzz target: see `retz_executor::fuzzing::task_spec`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| retz_executor::fuzzing::task_spec(data));
