//! Fuzz target: `.properties` text through the one reader (`retz_proto::properties`),
//! shared by the server's and the client's config loaders. Run with
//! `cargo fuzz run properties` from `proto/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| retz_proto::fuzzing::properties(data));
