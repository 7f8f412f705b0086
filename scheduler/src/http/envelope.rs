//! The original Retz's wire envelope (reference §2): requests of its client carry
//! `"command"` and `"version"` (`{"command":"list","version":"0.2.1",...}`), and its
//! answers carry `"command"` and `"status":"ok"`. Requests may carry both fields (they
//! must be strings; they are not needed, so their values are not checked further), and
//! the answers of the original's endpoints get them, so a 0.4 Java client works. Errors
//! already have the original's form, `{"command":"error","status":MSG}`.

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The fields of the original envelope.
const ENVELOPE: [&str; 2] = ["command", "version"];

/// `body` without the original envelope's top-level `command` and `version` fields (as
/// is when it has none); a 400 if one of them is not a string.
pub(super) fn strip_request(body: &[u8]) -> Result<Option<Vec<u8>>, ApiError> {
    // Cheap test first: most requests (this server's own client) carry neither.
    let text = String::from_utf8_lossy(body);
    if !ENVELOPE.iter().any(|f| text.contains(&format!("\"{f}\""))) {
        return Ok(None);
    }
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(body) else {
        // Not an object: the typed parse says what is wrong.
        return Ok(None);
    };
    let mut stripped = false;
    for field in ENVELOPE {
        match map.remove(field) {
            None => {}
            Some(serde_json::Value::String(_)) => stripped = true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid request body: {field} must be a string (as in \
                     {{\"command\":\"list\",\"version\":\"0.2.1\"}}), not {other}"
                )));
            }
        }
    }
    if !stripped {
        return Ok(None);
    }
    serde_json::to_vec(&map)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("re-encoding a request body: {e}")))
}

/// The original's `command` of an endpoint, for its answers.
fn command(method: &Method, path: &str) -> Option<&'static str> {
    Some(match (method.as_str(), path) {
        ("GET", "/status") => "status",
        ("POST", "/jobs") => "list",
        ("POST", "/job") => "schedule",
        ("GET", "/job/{id}") => "get-job",
        ("DELETE", "/job/{id}") => "kill",
        ("GET", "/job/{id}/file") => "get-file",
        ("GET", "/job/{id}/dir") => "list-files",
        ("GET", "/apps") => "list-app",
        ("GET", "/app/{name}") => "get-app",
        ("PUT", "/app/{name}") => "load-app",
        ("DELETE", "/app/{name}") => "unload-app",
        _ => return None,
    })
}

/// Middleware: a successful JSON answer of one of the original's endpoints gets
/// `"command":NAME,"status":"ok"` first in its object.
pub(super) async fn respond(req: Request, next: Next) -> Response {
    let name = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| command(req.method(), p.as_str()));
    let res = next.run(req).await;
    let Some(name) = name else {
        return res;
    };
    let json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !res.status().is_success() || !json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return ApiError::internal(format!("reading an answer: {e}")).into_response(),
    };
    let Some(rest) = bytes.strip_prefix(b"{") else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let mut out = Vec::with_capacity(bytes.len() + 48);
    out.extend_from_slice(format!("{{\"command\":\"{name}\",\"status\":\"ok\"").as_bytes());
    if !rest.starts_with(b"}") {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(body: &str) -> Result<Option<String>, ApiError> {
        strip_request(body.as_bytes()).map(|o| o.map(|b| String::from_utf8(b).unwrap()))
    }

    #[test]
    fn the_envelope_fields_are_taken_off_requests() {
        assert_eq!(strip(r#"{"state":"QUEUED"}"#).unwrap(), None);
        assert_eq!(
            strip(r#"{"command":"list","version":"0.2.1","state":"QUEUED"}"#).unwrap(),
            Some(r#"{"state":"QUEUED"}"#.into())
        );
        // A job whose command text holds "command" is not touched below the top level.
        assert_eq!(
            strip(r#"{"job":{"cmd":"echo \"command\""}}"#).unwrap(),
            None
        );
        let e = strip(r#"{"command":7,"state":"QUEUED"}"#).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("command must be a string"),
            "{}",
            e.message
        );
        assert_eq!(strip("[1]").unwrap(), None);
    }

    #[test]
    fn the_originals_endpoints_have_their_command_names() {
        assert_eq!(command(&Method::POST, "/jobs"), Some("list"));
        assert_eq!(command(&Method::DELETE, "/job/{id}"), Some("kill"));
        assert_eq!(command(&Method::PUT, "/app/{name}"), Some("load-app"));
        assert_eq!(command(&Method::POST, "/admin/gc"), None);
        assert_eq!(command(&Method::POST, "/job/plan"), None);
    }
}
