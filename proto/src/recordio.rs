//! RecordIO, the framing of the Mesos v1 event streams (`docs/recordio.md`).
//!
//! A stream is a sequence of records `<decimal length>\n<length bytes>`, with no
//! separator after the bytes; HTTP chunk boundaries are unrelated to record boundaries.
//!
//! Invariants of [`RecordDecoder`]:
//! * it yields the same records whatever the chunking of the input;
//! * a length prefix is 1 to 20 ASCII digits then `\n`, non-zero and at most the
//!   decoder's maximum; anything else is an error as soon as it is visible;
//! * it never allocates for a length it has not received (an announced length is only
//!   compared with the maximum), and buffers at most what it was given;
//! * after an error it stays failed and returns the same error again.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

use crate::codec::ContentType;
use crate::json::MesosJson;

/// The default maximum record size of [`RecordDecoder`]: 16 MiB.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 16 * 1024 * 1024;

/// The longest length prefix accepted, in digits (`u64::MAX` has 20).
pub const MAX_PREFIX_DIGITS: usize = 20;

/// How many bytes of a bad prefix an error message shows.
const SHOWN_PREFIX_BYTES: usize = 32;

/// A malformed RecordIO stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    /// The length prefix holds something other than decimal digits before its `\n`.
    #[error(
        "bad RecordIO length prefix \"{shown}\" at stream offset {offset}: expected decimal digits followed by '\\n'"
    )]
    BadPrefix {
        /// The prefix up to and including the first offending byte, escaped (`\x00`, ...).
        shown: String,
        /// Stream offset of the prefix.
        offset: u64,
    },
    /// The length prefix has more than 20 digits.
    #[error(
        "RecordIO length prefix \"{shown}\" at stream offset {offset} is longer than {MAX_PREFIX_DIGITS} digits"
    )]
    PrefixTooLong {
        /// The first bytes of the prefix, escaped.
        shown: String,
        /// Stream offset of the prefix.
        offset: u64,
    },
    /// The length prefix is zero: RecordIO has no empty records.
    #[error("zero-length RecordIO record at stream offset {offset}")]
    ZeroLength {
        /// Stream offset of the prefix.
        offset: u64,
    },
    /// The announced length is above the decoder's maximum.
    #[error("record of {len} bytes exceeds the maximum {max}")]
    TooLarge {
        /// The announced length (a 20-digit prefix can exceed `u64`).
        len: u128,
        /// The decoder's maximum.
        max: usize,
    },
    /// The stream ended inside a record (see [`RecordDecoder::finish`]).
    #[error("RecordIO stream ends inside a record: {buffered} byte(s) of an unfinished {what}")]
    Truncated {
        /// Bytes buffered for the unfinished prefix or record.
        buffered: usize,
        /// `"length prefix"` or `"record of N bytes"`.
        what: String,
    },
}

/// Appends one record holding `data` to `dst`.
///
/// RecordIO cannot carry an empty record (a zero length is invalid), so an empty `data`
/// writes nothing.
pub fn encode_record(data: &[u8], dst: &mut BytesMut) {
    if data.is_empty() {
        return;
    }
    let digits = data.len().to_string();
    dst.reserve(digits.len() + 1 + data.len());
    dst.put_slice(digits.as_bytes());
    dst.put_u8(b'\n');
    dst.put_slice(data);
}

/// Appends one record holding `msg` encoded as `content_type` to `dst`.
pub fn encode_message<M: MesosJson>(content_type: ContentType, msg: &M, dst: &mut BytesMut) {
    encode_record(&content_type.encode(msg), dst);
}

fn escape(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(SHOWN_PREFIX_BYTES)];
    let mut out: String = shown.escape_ascii().to_string();
    if bytes.len() > shown.len() {
        out.push_str("...");
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a length prefix.
    Prefix,
    /// Reading the body of a record of this many bytes.
    Body(usize),
}

/// A streaming RecordIO decoder: [`push`](Self::push) bytes as they arrive, then call
/// [`next_record`](Self::next_record) until it returns `Ok(None)`.
#[derive(Debug)]
pub struct RecordDecoder {
    buf: BytesMut,
    max: usize,
    state: State,
    /// Stream offset of `buf[0]`.
    offset: u64,
    failed: Option<RecordIoError>,
}

impl Default for RecordDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RECORD_SIZE)
    }
}

impl RecordDecoder {
    /// A decoder that rejects records longer than `max_record_size` bytes.
    pub fn new(max_record_size: usize) -> Self {
        RecordDecoder {
            buf: BytesMut::new(),
            max: max_record_size,
            state: State::Prefix,
            offset: 0,
            failed: None,
        }
    }

    /// The maximum record size.
    pub fn max_record_size(&self) -> usize {
        self.max
    }

    /// Appends received bytes (any chunking). Ignored once the decoder has failed.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Bytes received but not yet returned as records.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete record, `Ok(None)` if more input is needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.step() {
            Ok(r) => Ok(r),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = BytesMut::new();
                Err(e)
            }
        }
    }

    /// Checks that the stream ended on a record boundary (call at end of input).
    pub fn finish(&self) -> Result<(), RecordIoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.state {
            State::Prefix if self.buf.is_empty() => Ok(()),
            State::Prefix => Err(RecordIoError::Truncated {
                buffered: self.buf.len(),
                what: "length prefix".into(),
            }),
            State::Body(n) => Err(RecordIoError::Truncated {
                buffered: self.buf.len(),
                what: format!("record of {n} bytes"),
            }),
        }
    }

    fn step(&mut self) -> Result<Option<Bytes>, RecordIoError> {
        if self.state == State::Prefix {
            let Some(len) = self.parse_prefix()? else {
                return Ok(None);
            };
            self.state = State::Body(len);
        }
        let State::Body(len) = self.state else {
            return Ok(None);
        };
        if self.buf.len() < len {
            return Ok(None);
        }
        let record = self.buf.split_to(len).freeze();
        self.offset += len as u64;
        self.state = State::Prefix;
        Ok(Some(record))
    }

    /// Parses and consumes a complete prefix; `Ok(None)` if it is not complete yet.
    fn parse_prefix(&mut self) -> Result<Option<usize>, RecordIoError> {
        let window = &self.buf[..self.buf.len().min(MAX_PREFIX_DIGITS + 1)];
        let newline = window.iter().position(|b| *b == b'\n');
        let digits = &window[..newline.unwrap_or(window.len())];
        if let Some(bad) = digits.iter().position(|b| !b.is_ascii_digit()) {
            // Shown up to the first bad byte: the same whatever the chunking.
            return Err(RecordIoError::BadPrefix {
                shown: escape(&digits[..=bad]),
                offset: self.offset,
            });
        }
        if digits.len() > MAX_PREFIX_DIGITS {
            return Err(RecordIoError::PrefixTooLong {
                shown: escape(digits),
                offset: self.offset,
            });
        }
        let Some(newline) = newline else {
            return Ok(None);
        };
        if digits.is_empty() {
            return Err(RecordIoError::BadPrefix {
                shown: escape(&self.buf[..=newline]),
                offset: self.offset,
            });
        }
        // At most 20 digits: fits in u128.
        let len = digits
            .iter()
            .fold(0u128, |acc, d| acc * 10 + u128::from(d - b'0'));
        if len == 0 {
            return Err(RecordIoError::ZeroLength {
                offset: self.offset,
            });
        }
        let len = match usize::try_from(len) {
            Ok(n) if n <= self.max => n,
            _ => {
                return Err(RecordIoError::TooLarge { len, max: self.max });
            }
        };
        self.buf.advance(newline + 1);
        self.offset += (newline + 1) as u64;
        Ok(Some(len))
    }
}

/// Splits a complete RecordIO byte stream into its records.
pub fn decode_all(stream: &[u8], max_record_size: usize) -> Result<Vec<Bytes>, RecordIoError> {
    let mut dec = RecordDecoder::new(max_record_size);
    dec.push(stream);
    let mut out = Vec::new();
    while let Some(r) = dec.next_record()? {
        out.push(r);
    }
    dec.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(dec: &mut RecordDecoder) -> Result<Vec<Bytes>, RecordIoError> {
        let mut out = Vec::new();
        while let Some(r) = dec.next_record()? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn encodes_length_newline_bytes() {
        let mut buf = BytesMut::new();
        encode_record(b"{\"type\":\"HEARTBEAT\"}", &mut buf);
        encode_record(b"", &mut buf);
        encode_record(b"x", &mut buf);
        assert_eq!(&buf[..], b"20\n{\"type\":\"HEARTBEAT\"}1\nx");
    }

    #[test]
    fn decodes_byte_by_byte() {
        let stream = b"3\nabc10\n0123456789";
        let mut dec = RecordDecoder::default();
        let mut got = Vec::new();
        for b in stream {
            dec.push(std::slice::from_ref(b));
            got.extend(records(&mut dec).unwrap());
        }
        assert_eq!(
            got,
            vec![
                Bytes::from_static(b"abc"),
                Bytes::from_static(b"0123456789")
            ]
        );
        dec.finish().unwrap();
    }

    #[test]
    fn bad_prefix_is_shown_escaped_and_sticks() {
        let mut dec = RecordDecoder::default();
        dec.push(b"1a\x00\n");
        let err = dec.next_record().unwrap_err();
        assert_eq!(
            err,
            RecordIoError::BadPrefix {
                shown: "1a".into(),
                offset: 0
            }
        );
        assert!(
            err.to_string()
                .contains(r#"prefix "1a" at stream offset 0"#),
            "{err}"
        );
        dec.push(b"1\nx");
        assert_eq!(dec.next_record().unwrap_err(), err);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn control_bytes_are_escaped() {
        let mut dec = RecordDecoder::default();
        dec.push(b"\x01\xff");
        let err = dec.next_record().unwrap_err();
        assert!(err.to_string().contains(r"\x01"), "{err}");
    }

    #[test]
    fn bad_prefix_detected_before_newline() {
        let mut dec = RecordDecoder::default();
        dec.push(b"12 ");
        assert!(matches!(
            dec.next_record(),
            Err(RecordIoError::BadPrefix { .. })
        ));
    }

    #[test]
    fn empty_prefix_rejected() {
        let mut dec = RecordDecoder::default();
        dec.push(b"\nabc");
        let err = dec.next_record().unwrap_err();
        assert_eq!(
            err,
            RecordIoError::BadPrefix {
                shown: "\\n".into(),
                offset: 0
            }
        );
    }

    #[test]
    fn zero_length_rejected() {
        let mut dec = RecordDecoder::default();
        dec.push(b"1\nx00\n");
        assert_eq!(dec.next_record().unwrap(), Some(Bytes::from_static(b"x")));
        assert_eq!(
            dec.next_record().unwrap_err(),
            RecordIoError::ZeroLength { offset: 3 }
        );
    }

    #[test]
    fn too_large_is_rejected_without_waiting_for_the_body() {
        let mut dec = RecordDecoder::new(10);
        dec.push(b"11\n");
        let err = dec.next_record().unwrap_err();
        assert_eq!(err.to_string(), "record of 11 bytes exceeds the maximum 10");
        // A huge announced length: no allocation, immediate error.
        let mut dec = RecordDecoder::default();
        dec.push(b"99999999999999999999\n");
        let err = dec.next_record().unwrap_err();
        assert_eq!(
            err.to_string(),
            "record of 99999999999999999999 bytes exceeds the maximum 16777216"
        );
    }

    #[test]
    fn prefix_longer_than_twenty_digits_rejected() {
        let mut dec = RecordDecoder::default();
        dec.push(b"000000000000000000001");
        assert!(matches!(
            dec.next_record(),
            Err(RecordIoError::PrefixTooLong { .. })
        ));
        // Twenty digits are fine.
        let mut dec = RecordDecoder::default();
        dec.push(b"00000000000000000001\nz");
        assert_eq!(dec.next_record().unwrap(), Some(Bytes::from_static(b"z")));
    }

    #[test]
    fn finish_reports_truncation() {
        let mut dec = RecordDecoder::default();
        dec.push(b"5\nab");
        assert_eq!(dec.next_record().unwrap(), None);
        assert!(matches!(
            dec.finish(),
            Err(RecordIoError::Truncated { buffered: 2, .. })
        ));
        let mut dec = RecordDecoder::default();
        dec.push(b"12");
        assert_eq!(dec.next_record().unwrap(), None);
        assert!(matches!(dec.finish(), Err(RecordIoError::Truncated { .. })));
    }

    #[test]
    fn decode_all_splits_a_stream() {
        let mut buf = BytesMut::new();
        for r in [&b"a"[..], b"bc", b"\n\n\n"] {
            encode_record(r, &mut buf);
        }
        let got = decode_all(&buf, 16).unwrap();
        assert_eq!(got, vec![&b"a"[..], b"bc", b"\n\n\n"]);
    }
}
