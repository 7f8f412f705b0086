//! Entry points of the fuzz targets in `proto/fuzz` (and of the unit tests that feed them
//! nasty inputs). Each function takes arbitrary bytes, must never panic on any input,
//! and asserts the codec's invariants (a failed assertion is a bug in this crate).

use bytes::BytesMut;

use crate::json::{self, MesosJson};
use crate::recordio::{RecordDecoder, RecordIoError, encode_record};
use crate::{executor, scheduler};

/// RecordIO: decodes `data` in one piece and in chunks chosen by `data` itself, checks
/// that both give the same records and the same error, and that re-encoding the records
/// decodes to the same records.
///
/// The first byte picks the maximum record size (so that the size limit is exercised).
pub fn recordio(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let max = usize::from(first) * 16 + 1;

    let whole = decode(stream, max, &[stream.len()]);
    // Chunk sizes 1..=8 derived from the bytes themselves.
    let sizes: Vec<usize> = stream.iter().map(|b| usize::from(b % 8) + 1).collect();
    let chunked = decode(stream, max, &sizes);
    assert_eq!(whole, chunked, "chunking changed the RecordIO result");

    let (records, _) = whole;
    let mut buf = BytesMut::new();
    for r in &records {
        encode_record(r, &mut buf);
    }
    let (again, err) = decode(&buf, max, &[buf.len()]);
    assert_eq!(err, None, "re-encoded records do not decode");
    assert_eq!(again, records, "encode -> decode is not the identity");
}

/// Decodes `stream` pushed in chunks of the given sizes (cycled), pulling records after
/// every push; returns the records and the first error.
fn decode(stream: &[u8], max: usize, sizes: &[usize]) -> (Vec<Vec<u8>>, Option<RecordIoError>) {
    let mut dec = RecordDecoder::new(max);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    loop {
        loop {
            match dec.next_record() {
                Ok(Some(r)) => {
                    assert!(!r.is_empty() && r.len() <= max, "record size out of bounds");
                    out.push(r.to_vec());
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        if rest.is_empty() {
            return (out, None);
        }
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        dec.push(&rest[..n]);
        rest = &rest[n..];
    }
}

/// Mesos JSON and protobuf: reads `data` as a scheduler and an executor `Event`, in both
/// encodings; whatever decodes must survive a JSON round trip unchanged.
pub fn json_event(data: &[u8]) {
    roundtrip::<scheduler::Event>(data);
    roundtrip::<executor::Event>(data);
    roundtrip::<scheduler::Call>(data);
}

fn roundtrip<M: MesosJson>(data: &[u8]) {
    if let Ok(msg) = json::from_json::<M>(data) {
        let text = json::to_vec(&msg);
        let back = match json::from_json::<M>(&text) {
            Ok(m) => m,
            Err(e) => panic!("own JSON output does not decode: {e}"),
        };
        assert_eq!(
            json::to_json(&back),
            json::to_json(&msg),
            "JSON round trip changed"
        );
        let proto = M::decode(msg.encode_to_vec().as_slice());
        match proto {
            Ok(p) => assert_eq!(
                json::to_json(&p),
                json::to_json(&msg),
                "protobuf round trip"
            ),
            Err(e) => panic!("own protobuf output does not decode: {e}"),
        }
    }
    if let Ok(msg) = M::decode(data) {
        let value = json::to_json(&msg);
        match json::from_value::<M>(&value) {
            Ok(back) => assert_eq!(json::to_json(&back), value, "protobuf -> JSON round trip"),
            Err(e) => panic!("JSON of a protobuf-decoded message does not decode: {e}"),
        }
    }
}

/// `.properties` text through [`crate::properties::parse`]: never panics; entries come
/// in file order, each on a line of the text.
pub fn properties(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = 1 + text.matches(['\n', '\r']).count();
    match crate::properties::parse(&text) {
        Ok(entries) => {
            for pair in entries.windows(2) {
                assert!(pair[0].line < pair[1].line, "entries out of order");
            }
            assert!(entries.iter().all(|e| (1..=lines).contains(&e.line)));
        }
        Err(e) => assert!((1..=lines).contains(&e.line()), "error off the text: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs chosen to hit edge cases of both parsers.
    fn nasty_inputs() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![255],
            b"0\n".to_vec(),
            b"\x001\nx".to_vec(),
            b"\x0199999999999999999999\n".to_vec(),
            b"\x01999999999999999999999\n".to_vec(),
            b"\x0118446744073709551616\nx".to_vec(),
            b"\x02-1\nx".to_vec(),
            b"\x02 1\nx".to_vec(),
            b"\x021\r\nx".to_vec(),
            b"\x023\nab".to_vec(),
            b"\x0a5\nhello5\nworld1\n!".to_vec(),
            b"{}".to_vec(),
            b"null".to_vec(),
            b"[]".to_vec(),
            b"{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},\"state\":\"TASK_RUNNING\",\"uuid\":\"====\"}}}".to_vec(),
            b"{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"f\"},\"heartbeat_interval_seconds\":\"NaN\"}}".to_vec(),
            b"{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"f\"},\"heartbeat_interval_seconds\":1e400}}".to_vec(),
            b"{\"type\":\"OFFERS\",\"offers\":{\"offers\":[{\"id\":{\"value\":\"o\"},\"framework_id\":{\"value\":\"f\"},\"agent_id\":{\"value\":\"a\"},\"hostname\":\"h\",\"resources\":[{\"name\":\"r\",\"type\":\"RANGES\",\"ranges\":{\"range\":[{\"begin\":\"-0\",\"end\":\"1e3\"}]}}]}]}}".to_vec(),
            b"{\"type\":\"OFFERS\",\"offers\":{\"offers\":[null,{}]}}".to_vec(),
            b"{\"type\":7.5}".to_vec(),
            b"{\"type\":-2147483649}".to_vec(),
            b"{\"type\":2147483647}".to_vec(),
            b"{\"subscribed\":{\"framework_id\":{\"value\":\"\\ud800\"}}}".to_vec(),
            b"{\"launch\":{\"task\":{\"name\":\"n\",\"task_id\":{\"value\":\"t\"},\"agent_id\":{\"value\":\"a\"},\"limits\":{\"\":null,\"x\":{\"value\":\"-Infinity\"}}}}}".to_vec(),
            // Protobuf: a varint that never ends, a huge length, a group tag.
            vec![0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f],
            vec![0x0b, 0x0c],
            // Protobuf: Event{type: 99} (unknown enum value) and an update with state 99.
            vec![0x08, 99],
            vec![0x2a, 0x08, 0x0a, 0x06, 0x0a, 0x02, 0x0a, 0x00, 0x10, 0x63],
        ];
        // Deep nesting in both encodings.
        v.push(
            "{\"subscribed\":{\"container_id\":"
                .repeat(200)
                .into_bytes(),
        );
        let mut deep = Vec::new();
        for _ in 0..150 {
            let mut outer = vec![0x12, u8::try_from(deep.len().min(127)).unwrap_or(127)];
            outer.extend_from_slice(&deep);
            deep = outer;
        }
        v.push(deep);
        v
    }

    #[test]
    fn fuzz_entry_points_survive_nasty_inputs() {
        for input in nasty_inputs() {
            recordio(&input);
            json_event(&input);
            properties(&input);
        }
        for text in [
            "a=\\",
            "\\u",
            "\\u00",
            "k\\\r\n\\",
            "\u{feff}\\\n",
            "x=\\ud83d\\ude00",
        ] {
            properties(text.as_bytes());
        }
    }

    #[test]
    fn fuzz_entry_points_survive_every_prefix_of_valid_streams() {
        let mut stream = b"\x40".to_vec();
        let event = br#"{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"1A8/PrvjRK+iMEyx6ucvZw=="}}}"#;
        let mut framed = BytesMut::new();
        encode_record(event, &mut framed);
        encode_record(b"{\"type\":\"HEARTBEAT\"}", &mut framed);
        stream.extend_from_slice(&framed);
        for end in 0..stream.len() {
            recordio(&stream[..end]);
            json_event(&event[..end.min(event.len())]);
        }
    }
}
