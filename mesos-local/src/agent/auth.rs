//! Who may use an agent's HTTP endpoints.
//!
//! * Executor API (`POST /api/v1/executor`), as Mesos' executor secrets: every executor
//!   container (custom executors and command tasks alike) gets its own random token of
//!   256 bits (two UUID v4s, 244 random bits) in `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`;
//!   calls must carry `Authorization: Bearer <token>` (401 without one or with a token no
//!   live executor holds) and name the framework and executor the token was made for (403
//!   otherwise). A token dies with its container: a new run of the same executor gets a
//!   new one.
//! * `/files/*` and `/state`: HTTP Basic of the cluster's credentials when the agent has
//!   some ([`AgentConfig::credentials`](super::AgentConfig::credentials)), else open.
//!
//! Invariant: tokens are compared in constant time against every live executor's, and
//! are never logged or shown in `/state`.

use axum::http::HeaderMap;
use retz_proto::credentials::constant_time_eq;

use super::core::{Shared, State};
use crate::http_auth::{self, Refusal};

/// An executor's token (`Debug` never shows it).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A fresh token: 64 hex digits from two UUID v4s (OS randomness).
    pub fn new() -> Token {
        Token(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// A token given to an executor by an earlier run of this agent (recovery).
    pub(crate) fn restore(token: String) -> Token {
        Token(token)
    }

    /// The token, as given to the executor.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token (constant time).
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

impl Default for Token {
    fn default() -> Self {
        Token::new()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The executor a token was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecutorIdentity {
    pub(crate) framework_id: String,
    pub(crate) executor_id: String,
}

fn executor_unauthorized(message: &str) -> Refusal {
    http_auth::unauthorized("Bearer", http_auth::AGENT_EXECUTOR_REALM, message)
}

/// The live executor whose token `token` is, looked at in constant time per executor.
fn holder(st: &State, token: &str) -> Option<ExecutorIdentity> {
    let mut found = None;
    for (fid, fw) in &st.frameworks {
        for (eid, rec) in &fw.executors {
            if rec.token.matches(token) && found.is_none() {
                found = Some(ExecutorIdentity {
                    framework_id: fid.clone(),
                    executor_id: eid.clone(),
                });
            }
        }
    }
    found
}

/// Authenticates an executor API request: the executor its bearer token belongs to, or
/// the 401.
pub(crate) fn authenticate_executor(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<ExecutorIdentity, Refusal> {
    let Some(token) = http_auth::bearer(headers) else {
        return Err(executor_unauthorized(
            "Executor authentication required: send 'Authorization: Bearer <MESOS_EXECUTOR_AUTHENTICATION_TOKEN>'",
        ));
    };
    holder(&shared.lock(), token).ok_or_else(|| {
        executor_unauthorized(
            "Executor authentication failed: the token belongs to no executor running on this agent",
        )
    })
}

/// Checks that a call names the executor its token was made for (403 otherwise).
pub(crate) fn authorize_executor_call(
    who: &ExecutorIdentity,
    framework_id: &str,
    executor_id: &str,
) -> Result<(), Refusal> {
    if who.framework_id == framework_id && who.executor_id == executor_id {
        return Ok(());
    }
    Err(http_auth::forbidden(format!(
        "This token authenticates executor '{}' of framework '{}', not executor '{executor_id}' of framework '{framework_id}'",
        who.executor_id, who.framework_id
    )))
}

/// `/files/*` and `/state`: HTTP Basic of the agent's credentials, when it has some.
pub(crate) fn authenticate_operator(shared: &Shared, headers: &HeaderMap) -> Result<(), Refusal> {
    http_auth::basic(
        shared.cfg.credentials.as_ref(),
        headers,
        http_auth::AGENT_READONLY_REALM,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn tokens_are_long_distinct_and_hidden() {
        let a = Token::new();
        let b = Token::new();
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(a.matches(a.as_str()) && !a.matches(b.as_str()) && !a.matches(""));
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn calls_must_name_the_tokens_executor() {
        let who = ExecutorIdentity {
            framework_id: "F".into(),
            executor_id: "E".into(),
        };
        assert!(authorize_executor_call(&who, "F", "E").is_ok());
        assert_eq!(
            authorize_executor_call(&who, "F", "X").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            authorize_executor_call(&who, "G", "E").unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }
}
