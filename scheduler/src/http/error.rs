//! [`ApiError`]: every failure of the HTTP API, answered as a JSON
//! [`ErrorBody`] with a 4xx/5xx status. Internal errors are logged and answered with
//! `internal error` only (500), so no database detail leaks to clients; the log line
//! keeps the error's whole source chain (`a: b: c`), inside the request's span (its
//! request id). A 502 says which agent did not answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use retz_proto::api::ErrorBody;

use crate::store::StoreError;

/// An API error: a status and a one-line message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message (for 5xx: logged, not sent).
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }
    /// 502: an agent did not answer as expected.
    pub fn bad_gateway(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, message)
    }
    /// 500: logged; the client sees `internal error`.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::internal(chain(&e))
    }
}

/// `e` and its sources, `outer: inner: ...`; a source whose text the outer message
/// already holds is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.message, "request failed");
            "internal error".to_owned()
        } else {
            if self.status.is_server_error() {
                tracing::warn!(status = %self.status, error = %self.message, "request failed");
            }
            self.message
        };
        (self.status, Json(ErrorBody::new(message))).into_response()
    }
}

/// Parses a JSON request body, refusing it with a 400 that says where it is wrong
/// (unknown fields at any depth included, named by their path).
/// The original envelope's `command` and `version` fields are taken off first
/// ([`super::envelope`]).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let stripped = super::envelope::strip_request(body)?;
    retz_proto::api::strict::from_json(stripped.as_deref().unwrap_or(body))
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("store failed")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("pool timed out")]
    struct Middle(#[source] std::io::Error);

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_500_logs_its_source_chain_and_answers_without_it() {
        let e = Outer(Middle(std::io::Error::other(
            "connection refused by 10.0.0.7",
        )));
        let buf = Buf::default();
        let writer = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let res = tracing::subscriber::with_default(sub, || {
            tracing::info_span!("request", request_id = "rid-42")
                .in_scope(|| ApiError::internal(chain(&e)).into_response())
        });
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            log.contains("store failed: pool timed out: connection refused by 10.0.0.7"),
            "{log}"
        );
        assert!(
            log.contains("rid-42"),
            "the request's span is on the line: {log}"
        );
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap();
        let body = String::from_utf8(body.to_bytes().to_vec()).unwrap();
        assert_eq!(body, r#"{"command":"error","status":"internal error"}"#);
    }

    #[test]
    fn a_chain_does_not_repeat_what_the_outer_message_says() {
        let inner = std::io::Error::other("disk full");
        let e = StoreError::Files(format!("cannot write: {inner}"));
        assert_eq!(chain(&e), "store files: cannot write: disk full");
    }
}
