//! Body encodings and RecordIO framing of the executor API, as used by the agent.
//!
//! Mirrors the shape of `retz_proto::{ContentType, recordio}` (protobuf only until the
//! JSON dialect is merged into `retz-proto`; then this module re-exports it).

use bytes::{BufMut as _, BytesMut};

/// A Mesos v1 body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// `application/json`.
    Json,
    /// `application/x-protobuf`.
    Protobuf,
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The JSON dialect is not available in this build.
    #[error("JSON bodies are not supported yet; use application/x-protobuf")]
    Json,
    /// The protobuf body is malformed.
    #[error("invalid protobuf body: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

impl ContentType {
    /// The MIME type for `json`.
    pub const JSON_MIME: &'static str = "application/json";
    /// The MIME type for `protobuf`.
    pub const PROTOBUF_MIME: &'static str = "application/x-protobuf";

    /// Recognises a `Content-Type` (or single `Accept`) value; exact match only.
    pub fn from_header(value: &str) -> Option<Self> {
        match value {
            Self::JSON_MIME => Some(Self::Json),
            Self::PROTOBUF_MIME => Some(Self::Protobuf),
            _ => None,
        }
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Json => Self::JSON_MIME,
            Self::Protobuf => Self::PROTOBUF_MIME,
        }
    }

    /// Encodes a message.
    pub fn encode<M: prost::Message>(self, msg: &M) -> Vec<u8> {
        msg.encode_to_vec()
    }

    /// Decodes a message.
    pub fn decode<M: prost::Message + Default>(self, bytes: &[u8]) -> Result<M, DecodeError> {
        match self {
            Self::Json => Err(DecodeError::Json),
            Self::Protobuf => Ok(M::decode(bytes)?),
        }
    }
}

/// Appends one RecordIO record holding `data` to `dst`.
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
