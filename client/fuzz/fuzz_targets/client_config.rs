#![no_main]
//! Client config files (TOML or retz.properties) from arbitrary bytes.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    retz_client::fuzzing::client_config(data);
});
