//! The master's HTTP surface (axum): `POST /api/v1/scheduler` with Mesos' exact status
//! codes, plus `/version`, `/state`, `/master/state`, `/state-summary`,
//! `/metrics/snapshot`, `/health` and `/redirect`.
//!
//! Order of checks on `/api/v1/scheduler`, as a Mesos master applies them: authentication
//! when the master has credentials (401 with `WWW-Authenticate: Basic realm="mesos"`,
//! before anything else, as libprocess authenticates before the handler runs), leadership
//! (307 to the leader, 503 without one), method (405), `Content-Type` (400 missing, 415
//! not exactly JSON or protobuf), body size (413), decoding (400), call validation (400);
//! then SUBSCRIBE checks `Accept` (406), the absence of `Mesos-Stream-Id` (400) and its
//! principal (403, see `auth`), and other calls go to the state machine, which checks the
//! framework (400), its principal (403), then the call (400/403/202/200). Every error
//! reply is one `text/plain` line saying what is wrong.
//!
//! Read-only endpoints (`/state`, `/state.json`, `/state-summary`, `/metrics/snapshot`
//! and their `/master/...` forms) need the same authentication; `/health`, `/version`
//! and `/redirect` stay open.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use retz_proto::ContentType;
use retz_proto::credentials::Credentials;
use retz_proto::scheduler::{Call, call};
use tokio::sync::{mpsc, oneshot};

use super::actor::Command;
use super::core::{CallError, CallOutcome};
use super::state_json::MESOS_VERSION;
use super::stream::EventStream;
use super::validation;

/// The header naming a SUBSCRIBE stream.
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";

/// Whether this master answers as the leader (fault injection for clients' redirects).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Leadership {
    /// Serve the scheduler API (the default).
    #[default]
    Leader,
    /// Answer scheduler calls with 307 to `//<leader>/api/v1/scheduler` (`leader` is
    /// `host:port`), or with 503 when no leader is known.
    NotLeader {
        /// The leading master, `host:port`.
        leader: Option<String>,
    },
}

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) leadership: Arc<RwLock<Leadership>>,
    pub(super) heartbeat_interval: Duration,
    pub(super) max_body_size: usize,
    /// `host:port` of this master, for `/redirect` when it leads.
    pub(super) self_address: String,
    /// Who may call (HTTP Basic); `None`: open.
    pub(super) credentials: Option<Arc<Credentials>>,
}

impl HttpState {
    /// The authenticated principal (`None` when the master is open), or the 401.
    fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<String>, crate::http_auth::Refusal> {
        crate::http_auth::basic(
            self.credentials.as_deref(),
            headers,
            crate::http_auth::MASTER_REALM,
        )
    }
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (status, message.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_response(value: &serde_json::Value) -> Response {
    let mut r = (StatusCode::OK, value.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn stopped() -> Response {
    text(StatusCode::SERVICE_UNAVAILABLE, "Master is shutting down")
}

/// The router of the master's endpoints.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/api/v1/scheduler", any(scheduler))
        .route("/master/api/v1/scheduler", any(scheduler))
        .route("/version", get(version))
        .route("/state", get(state_endpoint))
        .route("/master/state", get(state_endpoint))
        .route("/state.json", get(state_endpoint))
        .route("/master/state.json", get(state_endpoint))
        .route("/state-summary", get(state_summary))
        .route("/master/state-summary", get(state_summary))
        .route("/metrics/snapshot", get(metrics))
        .route("/master/metrics/snapshot", get(metrics))
        .route("/health", get(health))
        .route("/master/health", get(health))
        .route("/redirect", get(redirect))
        .route("/master/redirect", get(redirect))
        .with_state(state)
}

async fn version() -> Response {
    json_response(&serde_json::json!({
        "version": MESOS_VERSION,
        "git_tag": MESOS_VERSION,
        "build_date": "",
        "build_time": 0,
        "build_user": "retz-mesos-local",
    }))
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn redirect(State(st): State<HttpState>) -> Response {
    let leader = match &*st.leadership.read().unwrap_or_else(|e| e.into_inner()) {
        Leadership::Leader => Some(st.self_address.clone()),
        Leadership::NotLeader { leader } => leader.clone(),
    };
    match leader {
        Some(l) => redirect_to(&format!("//{l}")),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected"),
    }
}

fn redirect_to(location: &str) -> Response {
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn ask<T>(st: &HttpState, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    st.commands.send(make(tx)).ok()?;
    rx.await.ok()
}

async fn state_endpoint(State(st): State<HttpState>, headers: HeaderMap) -> Response {
    if let Err(r) = st.authenticate(&headers) {
        return r.into_response();
    }
    match ask(&st, |reply| Command::State { reply }).await {
        Some(v) => json_response(&v),
        None => stopped(),
    }
}

async fn state_summary(State(st): State<HttpState>, headers: HeaderMap) -> Response {
    if let Err(r) = st.authenticate(&headers) {
        return r.into_response();
    }
    match ask(&st, |reply| Command::StateSummary { reply }).await {
        Some(v) => json_response(&v),
        None => stopped(),
    }
}

async fn metrics(State(st): State<HttpState>, headers: HeaderMap) -> Response {
    if let Err(r) = st.authenticate(&headers) {
        return r.into_response();
    }
    match ask(&st, |reply| Command::Metrics { reply }).await {
        Some(v) => json_response(&v),
        None => stopped(),
    }
}

/// Whether the `Accept` header allows `mime` (no header allows everything); the most
/// specific matching media range decides, and `q=0` refuses.
pub fn accepts(headers: &HeaderMap, mime: &str) -> bool {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return true;
    }
    let (ty, _) = mime.split_once('/').unwrap_or((mime, ""));
    let mut best: Option<(u8, f64)> = None;
    for range in values.iter().flat_map(|v| v.split(',')) {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse::<f64>().unwrap_or(0.0);
            }
        }
        let specificity = if media == mime {
            3
        } else if media == format!("{ty}/*") {
            2
        } else if media == "*/*" {
            1
        } else {
            continue;
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.is_some_and(|(_, q)| q > 0.0)
}

fn decode_call(ct: ContentType, body: &[u8]) -> Result<Call, String> {
    match ct {
        ContentType::Json => {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(body) {
                return Err(format!("Failed to parse body into JSON: {e}"));
            }
            retz_proto::json::from_json::<Call>(body)
                .map_err(|e| format!("Failed to convert JSON into Call protobuf: {e}"))
        }
        ContentType::Protobuf => ct
            .decode::<Call>(body)
            .map_err(|e| format!("Failed to parse body into Call protobuf: {e}")),
    }
}

async fn scheduler(State(st): State<HttpState>, req: Request) -> Response {
    let principal = match st.authenticate(req.headers()) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let leadership = st
        .leadership
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Leadership::NotLeader { leader } = leadership {
        return match leader {
            Some(l) => redirect_to(&format!("//{l}/api/v1/scheduler")),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "No leader elected"),
        };
    }
    if req.method() != Method::POST {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "Expecting one of {{ 'POST' }}, but received '{}'",
                req.method()
            ),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let headers = req.headers().clone();
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return text(
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present",
        );
    };
    let Some(ct) = content_type
        .to_str()
        .ok()
        .and_then(ContentType::from_header)
    else {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expecting 'Content-Type' of application/json or application/x-protobuf",
        );
    };
    let body = match axum::body::to_bytes(req.into_body(), st.max_body_size).await {
        Ok(b) => b,
        Err(e) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Failed to read the request body (at most {} bytes are accepted): {e}",
                    st.max_body_size
                ),
            );
        }
    };
    let c = match decode_call(ct, &body) {
        Ok(c) => c,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let ty = match validation::validate_call(&c) {
        Ok(t) => t,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to validate scheduler::Call: {e}"),
            );
        }
    };
    if ty == call::Type::Subscribe {
        return subscribe(&st, &headers, c, principal).await;
    }
    let stream_id = headers
        .get(STREAM_ID_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let outcome = ask(&st, |reply| Command::Call {
        ty,
        call: c,
        stream_id,
        principal,
        reply,
    })
    .await;
    match outcome {
        None => stopped(),
        Some(Ok(CallOutcome::Accepted)) => StatusCode::ACCEPTED.into_response(),
        Some(Ok(CallOutcome::Ok)) => StatusCode::OK.into_response(),
        Some(Err(CallError::BadRequest(m))) => text(StatusCode::BAD_REQUEST, m),
        Some(Err(CallError::Forbidden(m))) => text(StatusCode::FORBIDDEN, m),
        Some(Err(CallError::NotImplemented(m))) => text(StatusCode::NOT_IMPLEMENTED, m),
    }
}

async fn subscribe(
    st: &HttpState,
    headers: &HeaderMap,
    c: Call,
    principal: Option<String>,
) -> Response {
    let accept = if accepts(headers, ContentType::JSON_MIME) {
        ContentType::Json
    } else if accepts(headers, ContentType::PROTOBUF_MIME) {
        ContentType::Protobuf
    } else {
        return text(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Accept' to allow 'application/json' or 'application/x-protobuf'",
        );
    };
    if headers.contains_key(STREAM_ID_HEADER) {
        return text(
            StatusCode::BAD_REQUEST,
            "Subscribe calls should not include the 'Mesos-Stream-Id' header",
        );
    }
    let sub = match ask(st, |reply| Command::Subscribe {
        call: c,
        content_type: accept,
        principal,
        reply,
    })
    .await
    {
        None => return stopped(),
        Some(Err(m)) => return text(StatusCode::FORBIDDEN, m),
        Some(Ok(sub)) => sub,
    };
    tracing::info!(
        framework = ?sub.framework_id,
        content_type = accept.mime(),
        "framework subscribed"
    );
    let on_close: Option<Box<dyn FnOnce() + Send + Sync>> = sub.framework_id.clone().map(|fid| {
        let commands = st.commands.clone();
        let stream_id = sub.stream_id.clone();
        Box::new(move || {
            let _ = commands.send(Command::StreamClosed {
                framework_id: fid,
                stream_id,
            });
        }) as Box<dyn FnOnce() + Send + Sync>
    });
    let heartbeat = sub
        .framework_id
        .is_some()
        .then_some((st.heartbeat_interval, accept));
    let stream = EventStream::new(sub.rx, heartbeat, on_close);
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(accept.mime()),
    );
    if let Ok(v) = HeaderValue::from_str(&sub.stream_id) {
        h.insert(STREAM_ID_HEADER, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(accept: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        if let Some(a) = accept {
            m.insert(header::ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        m
    }

    #[test]
    fn accept_negotiation() {
        assert!(accepts(&h(None), "application/json"));
        assert!(accepts(&h(Some("*/*")), "application/json"));
        assert!(accepts(&h(Some("application/*")), "application/x-protobuf"));
        assert!(!accepts(&h(Some("text/plain")), "application/json"));
        assert!(accepts(
            &h(Some("text/plain, application/x-protobuf;q=0.5")),
            "application/x-protobuf"
        ));
        assert!(!accepts(
            &h(Some("application/json;q=0, */*")),
            "application/json"
        ));
        assert!(accepts(
            &h(Some("application/json;q=0, */*")),
            "application/x-protobuf"
        ));
    }

    #[test]
    fn decode_errors_say_what_failed() {
        let e = decode_call(ContentType::Json, b"{nope").unwrap_err();
        assert!(e.starts_with("Failed to parse body into JSON"), "{e}");
        let e =
            decode_call(ContentType::Json, br#"{"type":"SUBSCRIBE","subscribe":{}}"#).unwrap_err();
        assert!(
            e.starts_with("Failed to convert JSON into Call protobuf"),
            "{e}"
        );
        let e = decode_call(ContentType::Protobuf, &[0xff, 0xff, 0xff]).unwrap_err();
        assert!(
            e.starts_with("Failed to parse body into Call protobuf"),
            "{e}"
        );
        let ok = decode_call(
            ContentType::Json,
            br#"{"type":"TEARDOWN","framework_id":{"value":"x"}}"#,
        )
        .unwrap();
        assert_eq!(ok.r#type, Some(call::Type::Teardown as i32));
    }
}
