//! Fuzzes the Mesos JSON and protobuf decoders of scheduler and executor events.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    retz_proto::fuzzing::json_event(data);
});
