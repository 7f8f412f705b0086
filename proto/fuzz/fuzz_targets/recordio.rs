//! Fuzzes the RecordIO decoder: chunking independence and encode/decode identity.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_proto::fuzzing::recordio(data);
});
