//! [`CallError`]: why a call to the master did not get its 202.
//!
//! Invariant: each HTTP status the master uses for calls maps to one variant (400 and
//! other 4xx → `BadRequest`, 401 → `Unauthorized`, 403 → `Forbidden`, 503 →
//! `Unavailable`, 307 → `NotLeader`), so the planner can match on the cause without
//! parsing text.

use std::time::Duration;

use super::calls::AcknowledgeError;

/// A call that did not get its 202 Accepted.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No subscription is up (connecting, or reconnecting after a disconnection); retry
    /// after the next `SchedulerEvent::Subscribed`.
    #[error("{call}: not subscribed to a Mesos master (the client is connecting or reconnecting)")]
    NotSubscribed {
        /// The call type (`"ACCEPT"`, ...).
        call: &'static str,
    },
    /// The client has stopped (after an ERROR event, `stop`, `teardown`, or when the
    /// event receiver was dropped).
    #[error("{call}: the Mesos scheduler client has stopped")]
    Stopped {
        /// The call type.
        call: &'static str,
    },
    /// The master rejected the call as malformed or invalid (400, or another 4xx such as
    /// 401, 405, 415): fix the call, do not retry it as is.
    #[error("{call} rejected by {master} with {status}: {body}")]
    BadRequest {
        /// The call type.
        call: &'static str,
        /// The master.
        master: String,
        /// HTTP status.
        status: u16,
        /// The master's explanation (start of the body).
        body: String,
    },
    /// 401: the master refused the framework's credentials (or wants some and none were
    /// sent). Not retryable as is; the client re-subscribes, and stops with an ERROR if
    /// the master refuses the SUBSCRIBE too.
    #[error("{call}: the master {} ({master} answered 401: {body})", refusal(.principal.as_deref()))]
    Unauthorized {
        /// The call type.
        call: &'static str,
        /// The master.
        master: String,
        /// The principal sent, if any.
        principal: Option<String>,
        /// The master's explanation.
        body: String,
    },
    /// 403: the master does not consider the framework subscribed (the stream is down);
    /// the client reconnects on its own.
    #[error("{call} forbidden by {master}: {body}")]
    Forbidden {
        /// The call type.
        call: &'static str,
        /// The master.
        master: String,
        /// The master's explanation.
        body: String,
    },
    /// 503: the master is recovering or has no leader; retry later.
    #[error("{call}: master {master} unavailable (503): {body}")]
    Unavailable {
        /// The call type.
        call: &'static str,
        /// The master.
        master: String,
        /// The master's explanation.
        body: String,
    },
    /// 307: the master is no longer the leader; the subscription will move.
    #[error("{call}: master {master} is not the leader (307, Location {location:?})")]
    NotLeader {
        /// The call type.
        call: &'static str,
        /// The master.
        master: String,
        /// Its `Location` header, if any.
        location: Option<String>,
    },
    /// Any other status.
    #[error("{call}: unexpected status {status} from {master}: {body}")]
    UnexpectedStatus {
        /// The call type.
        call: &'static str,
        /// The master.
        master: String,
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// No complete answer within the call timeout.
    #[error("{call}: no answer from {master} within {after:?}")]
    Timeout {
        /// The call type.
        call: &'static str,
        /// The master.
        master: String,
        /// The call timeout.
        after: Duration,
    },
    /// Connecting, sending or receiving failed.
    #[error("{call}: cannot reach {master}: {source}")]
    Transport {
        /// The call type.
        call: &'static str,
        /// The master.
        master: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The call cannot be built from what was given.
    #[error(transparent)]
    InvalidAcknowledge(#[from] AcknowledgeError),
}

/// How a 401 reads: with or without credentials sent.
pub(crate) fn refusal(principal: Option<&str>) -> String {
    match principal {
        Some(p) => format!("refused the framework's credentials (principal {p})"),
        None => "requires framework authentication and the client sent no credentials \
                 (set mesos.principal and mesos.secret_file)"
            .to_owned(),
    }
}

impl CallError {
    /// Whether the same call may succeed later without change (not subscribed yet,
    /// master unavailable or not leader, timeout, transport).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::NotSubscribed { .. }
                | CallError::Forbidden { .. }
                | CallError::Unavailable { .. }
                | CallError::NotLeader { .. }
                | CallError::Timeout { .. }
                | CallError::Transport { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_call_and_master() {
        let e = CallError::BadRequest {
            call: "ACCEPT",
            master: "http://m:5050/api/v1/scheduler".into(),
            status: 400,
            body: "Framework cannot be found".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("ACCEPT") && text.contains("400") && text.contains("cannot be found"),
            "{text}"
        );
        assert!(!e.is_retryable());
        assert!(CallError::NotSubscribed { call: "KILL" }.is_retryable());
        assert!(!CallError::Stopped { call: "KILL" }.is_retryable());
    }
}
