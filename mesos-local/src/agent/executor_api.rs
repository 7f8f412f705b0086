//! `POST /api/v1/executor`: the executor HTTP API of the agent (reference §2 and §3).
//!
//! Status codes, in the order they are checked: 401 (with `WWW-Authenticate: Bearer`)
//! without `Authorization: Bearer <token>` or with a token no live executor holds (see
//! [`super::auth`]); 400 for a missing `Content-Type`, an undecodable body or a call
//! failing validation; 415 for another `Content-Type`; 403 when the call's framework or
//! executor id is not the token's; 400 for an unknown framework/executor; 406 when
//! SUBSCRIBE accepts neither encoding; 403 "Executor is not subscribed" for UPDATE and
//! MESSAGE before SUBSCRIBE; 202 for accepted UPDATE, MESSAGE and (always) HEARTBEAT.
//! SUBSCRIBE answers 200 with a chunked RecordIO stream of events (no `Mesos-Stream-Id`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use retz_proto::executor::{Call, call};
use tokio::sync::mpsc::UnboundedReceiver;

use super::auth;
use super::core::{Phase, Shared};
use super::validation::validate_call;
use super::wire::ContentType;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// The encoding of the event stream: JSON when acceptable (also with no `Accept` or
/// `*/*`), else protobuf when acceptable, else `None` (406).
pub fn negotiate(headers: &HeaderMap) -> Option<ContentType> {
    let mut ranges = Vec::new();
    for v in headers.get_all(header::ACCEPT) {
        let Ok(s) = v.to_str() else {
            continue;
        };
        for part in s.split(',') {
            let media = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !media.is_empty() {
                ranges.push(media);
            }
        }
    }
    if ranges.is_empty() {
        return Some(ContentType::Json);
    }
    let accepts = |m: &str| ranges.iter().any(|r| r == m);
    if accepts(ContentType::JSON_MIME) || accepts("*/*") || accepts("application/*") {
        Some(ContentType::Json)
    } else if accepts(ContentType::PROTOBUF_MIME) {
        Some(ContentType::Protobuf)
    } else {
        None
    }
}

/// The handler of `POST /api/v1/executor`.
pub(crate) async fn handle(
    State(agent): State<Weak<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(shared) = agent.upgrade() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "Agent is stopped");
    };
    let who = match auth::authenticate_executor(&shared, &headers) {
        Ok(who) => who,
        Err(r) => return r.into_response(),
    };
    let Some(ct_header) = headers.get(header::CONTENT_TYPE) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present",
        );
    };
    let Some(content_type) = ct_header.to_str().ok().and_then(ContentType::from_header) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Expecting 'Content-Type' of {} or {}, got {:?}",
                ContentType::JSON_MIME,
                ContentType::PROTOBUF_MIME,
                ct_header
            ),
        );
    };
    let call: Call = match content_type.decode(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body into Call: {e}"),
            );
        }
    };
    let ty = match validate_call(&call) {
        Ok(ty) => ty,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let fid = call.framework_id.value.clone();
    let eid = call.executor_id.value.clone();
    if let Err(r) = auth::authorize_executor_call(&who, &fid, &eid) {
        return r.into_response();
    }
    match ty {
        call::Type::Heartbeat => StatusCode::ACCEPTED.into_response(),
        call::Type::Subscribe => {
            let Some(accept) = negotiate(&headers) else {
                return error(
                    StatusCode::NOT_ACCEPTABLE,
                    format!(
                        "Expecting 'Accept' to allow {} or {}",
                        ContentType::JSON_MIME,
                        ContentType::PROTOBUF_MIME
                    ),
                );
            };
            match shared.subscribe(call, accept) {
                Ok((rx, generation)) => {
                    let stream = EventStream {
                        rx,
                        _guard: CloseGuard {
                            agent,
                            fid,
                            eid,
                            generation,
                        },
                    };
                    let mut resp = Response::new(Body::from_stream(stream));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(accept.mime()),
                    );
                    resp
                }
                Err((status, m)) => error(status, m),
            }
        }
        call::Type::Update | call::Type::Message => {
            let mut st = shared.lock();
            let rec = match Shared::lookup(&mut st, &fid, &eid) {
                Ok(r) => r,
                Err((status, m)) => return error(status, m),
            };
            if matches!(rec.phase, Phase::Launching | Phase::Registering) {
                return error(StatusCode::FORBIDDEN, "Executor is not subscribed");
            }
            if ty == call::Type::Update {
                if let Some(update) = call.update {
                    shared.executor_update(&mut st, &fid, &eid, update.status);
                }
            } else if let Some(message) = call.message {
                shared.executor_message(&st, &fid, &eid, message.data);
            }
            StatusCode::ACCEPTED.into_response()
        }
        call::Type::Unknown => error(StatusCode::BAD_REQUEST, "Expecting 'type' to be known"),
    }
}

/// The body of a SUBSCRIBE response: the events sent to the executor, RecordIO-framed.
struct EventStream {
    rx: UnboundedReceiver<Bytes>,
    _guard: CloseGuard,
}

impl futures_util::Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// Tells the agent when the HTTP layer drops a subscription stream (peer gone).
struct CloseGuard {
    agent: Weak<Shared>,
    fid: String,
    eid: String,
    generation: u64,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.agent.upgrade() {
            shared.stream_closed(&self.fid, &self.eid, self.generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for x in v {
            h.append(header::ACCEPT, HeaderValue::from_str(x).unwrap());
        }
        h
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(&accept(&[])), Some(ContentType::Json));
        assert_eq!(negotiate(&accept(&["*/*"])), Some(ContentType::Json));
        assert_eq!(
            negotiate(&accept(&["application/json"])),
            Some(ContentType::Json)
        );
        assert_eq!(
            negotiate(&accept(&["application/x-protobuf"])),
            Some(ContentType::Protobuf)
        );
        assert_eq!(
            negotiate(&accept(&[
                "application/x-protobuf;q=1",
                "application/json;q=0.5"
            ])),
            Some(ContentType::Json)
        );
        assert_eq!(negotiate(&accept(&["text/html"])), None);
    }
}
