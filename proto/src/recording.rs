//! One line of an event recording (`retz-server --record-events FILE`, read by
//! `retz-sim`): `{"ts": <f64 seconds since the Unix epoch>, "event": <Event in Mesos JSON>}`.
//!
//! The writer (the server) and the reader (the simulator) share [`RecordLine`] and
//! [`encode_line`] so the format has one definition; `retz_sim::recording` documents
//! what the simulator takes from it.

use serde::{Deserialize, Serialize};

use crate::scheduler::Event;

/// One line of a recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLine {
    /// Seconds since the Unix epoch when the event arrived.
    pub ts: f64,
    /// The Mesos scheduler event, in Mesos JSON.
    pub event: serde_json::Value,
}

/// Writes one recording line (no trailing newline) for `event` received at `ts`; a
/// negative or non-finite `ts` is written as 0.
pub fn encode_line(ts: f64, event: &Event) -> String {
    let line = RecordLine {
        ts: if ts.is_finite() && ts >= 0.0 { ts } else { 0.0 },
        event: crate::json::to_json(event),
    };
    // A struct of a finite f64 and a JSON value always serialises.
    serde_json::to_string(&line).unwrap_or_default()
}
