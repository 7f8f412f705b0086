#![no_main]
//! Option values (ranges, -E pairs, states, Docker volumes) and argv rewriting.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    retz_client::fuzzing::option_values(data);
});
