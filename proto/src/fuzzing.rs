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
