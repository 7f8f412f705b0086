//! The two encodings of the Mesos v1 HTTP APIs, chosen by `Content-Type`/`Accept`.
//!
//! Invariant: a header value is recognised only when it is exactly one of the two MIME
//! types (a master answers 415 to `application/json; charset=utf-8`).

use std::fmt;

use crate::json::{self, JsonError, MesosJson};

/// A Mesos v1 body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// `application/json`, in the Mesos (stout) dialect, see [`crate::json`].
    Json,
    /// `application/x-protobuf`.
    Protobuf,
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The JSON body is malformed or does not fit the message.
    #[error(transparent)]
    Json(#[from] JsonError),
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

    /// The MIME type, for `Content-Type` and `Accept` headers.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Json => Self::JSON_MIME,
            Self::Protobuf => Self::PROTOBUF_MIME,
        }
    }

    /// Encodes a message in this encoding.
    pub fn encode<M: MesosJson>(self, msg: &M) -> Vec<u8> {
        match self {
            Self::Json => json::to_vec(msg),
            Self::Protobuf => msg.encode_to_vec(),
        }
    }

    /// Decodes a message in this encoding.
    ///
    /// JSON input must carry every required field; protobuf input is decoded as prost
    /// does (a missing required field reads as its default value).
    pub fn decode<M: MesosJson>(self, bytes: &[u8]) -> Result<M, DecodeError> {
        match self {
            Self::Json => Ok(json::from_json(bytes)?),
            Self::Protobuf => Ok(M::decode(bytes)?),
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}
