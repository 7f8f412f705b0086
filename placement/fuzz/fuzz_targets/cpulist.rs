//! Fuzz target: the Linux list parser of `CpuSet`/`NodeSet` (`0-3,8,10-11`) must never
//! panic, and whatever it accepts must print and parse back to the same set.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_placement::fuzz::cpulist(data);
});
