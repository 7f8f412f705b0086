//! Body encodings and RecordIO framing of the executor API, as the agent uses them: thin
//! re-exports of `retz_proto` so the agent has one place naming its wire layer.

pub use retz_proto::ContentType;
pub use retz_proto::recordio::encode_record;
