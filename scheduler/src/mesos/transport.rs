//! HTTP transport to the masters: SUBSCRIBE on a dedicated connection, calls on a
//! keep-alive connection pool, both with a connect timeout.
//!
//! Invariants: the SUBSCRIBE connection is never shared with calls (its response body
//! is the event stream and stays open); every call carries `Mesos-Stream-Id`; every
//! request carries exactly the configured `Content-Type`, and SUBSCRIBE an `Accept` of
//! the same type; with a credential, every request (SUBSCRIBE and calls) carries its
//! `Authorization: Basic` header (marked sensitive); error bodies are read only up to
//! [`MAX_ERROR_BODY`] bytes; an https master is spoken to over TLS with the shared
//! client config (see `tls`): its certificate is verified, on SUBSCRIBE and calls alike,
//! and a failed verification is a [`DisconnectReason::Tls`] naming the reason.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use retz_proto::ContentType;
use retz_proto::credentials::Credential;
use retz_proto::scheduler::Call;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracing::debug;

use super::calls;
use super::endpoint::Endpoint;
use super::error::CallError;
use super::events::DisconnectReason;
use super::tls::handshake_error;

/// TLS to https masters: the client config, and whether it trusts `mesos.ca_cert`
/// (for messages).
#[derive(Debug, Clone)]
pub(crate) struct MasterTls {
    pub config: Arc<ClientConfig>,
    pub custom_ca: bool,
}

/// The stream id header of the scheduler API.
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";

/// The most of an error response body kept for messages.
pub const MAX_ERROR_BODY: usize = 4096;

/// Shown characters of an error body.
const SHOWN_BODY_CHARS: usize = 512;

/// Reads up to [`MAX_ERROR_BODY`] bytes of `body` as trimmed text.
async fn error_text(body: Incoming) -> String {
    match Limited::new(body, MAX_ERROR_BODY).collect().await {
        Ok(c) => shown(&c.to_bytes()),
        Err(e) => format!("(body unreadable: {e})"),
    }
}

fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut out: String = text.chars().take(SHOWN_BODY_CHARS).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

/// The `Authorization` header of a framework credential, and its principal (for
/// messages; the secret is never kept elsewhere).
#[derive(Clone)]
pub(crate) struct Auth {
    header: HeaderValue,
    pub principal: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// `None` if the credential cannot be a header value (a checked [`Credential`]
    /// always can).
    pub(crate) fn new(credential: &Credential) -> Option<Auth> {
        let mut header = HeaderValue::from_str(&credential.basic_header()).ok()?;
        header.set_sensitive(true);
        Some(Auth {
            header,
            principal: credential.principal.clone(),
        })
    }
}

/// Sends calls to the master holding the subscription, over pooled keep-alive
/// connections.
#[derive(Debug, Clone)]
pub(crate) struct CallClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    content_type: ContentType,
    timeout: Duration,
    auth: Option<Auth>,
}

impl CallClient {
    pub(crate) fn new(
        content_type: ContentType,
        connect_timeout: Duration,
        call_timeout: Duration,
        auth: Option<Auth>,
        tls: &MasterTls,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        // The endpoint's scheme decides: https is verified TLS, http stays plain. The
        // builder sets ALPN itself (and refuses a config that has it).
        let mut config = (*tls.config).clone();
        config.alpn_protocols.clear();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        CallClient {
            client,
            content_type,
            timeout: call_timeout,
            auth,
        }
    }

    /// POSTs `call` on the subscription `stream_id` at `endpoint`; `Ok` on 202 (or 200).
    pub(crate) async fn post(
        &self,
        endpoint: &Endpoint,
        stream_id: &str,
        call: &Call,
    ) -> Result<(), CallError> {
        let name = calls::type_name(call);
        let master = endpoint.to_string();
        let transport = |source: Box<dyn std::error::Error + Send + Sync>| CallError::Transport {
            call: name,
            master: master.clone(),
            source,
        };
        let stream_id = HeaderValue::from_str(stream_id).map_err(|e| transport(Box::new(e)))?;
        let mut request = Request::post(endpoint.uri().clone())
            .header(CONTENT_TYPE, self.content_type.mime())
            .header(ACCEPT, self.content_type.mime())
            .header(STREAM_ID_HEADER, stream_id);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.header.clone());
        }
        let request = request
            .body(Full::new(Bytes::from(self.content_type.encode(call))))
            .map_err(|e| transport(Box::new(e)))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| transport(Box::new(e)))?;
            let status = response.status();
            let location = header_text(&response, LOCATION);
            let body = error_text(response.into_body()).await;
            Ok::<_, CallError>((status, location, body))
        };
        let (status, location, body) = match timeout(self.timeout, exchange).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(CallError::Timeout {
                    call: name,
                    master,
                    after: self.timeout,
                });
            }
        };
        debug!(call = name, %master, %status, "call answered");
        let principal = self.auth.as_ref().map(|a| a.principal.as_str());
        call_result(name, master, status, location, body, principal)
    }
}

fn header_text<B>(response: &Response<B>, name: http::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Maps a call's answer to its outcome (`principal`: the credential sent, if any).
fn call_result(
    call: &'static str,
    master: String,
    status: StatusCode,
    location: Option<String>,
    body: String,
    principal: Option<&str>,
) -> Result<(), CallError> {
    match status {
        StatusCode::ACCEPTED | StatusCode::OK => Ok(()),
        StatusCode::UNAUTHORIZED => Err(CallError::Unauthorized {
            call,
            master,
            principal: principal.map(str::to_owned),
            body,
        }),
        StatusCode::FORBIDDEN => Err(CallError::Forbidden { call, master, body }),
        StatusCode::SERVICE_UNAVAILABLE => Err(CallError::Unavailable { call, master, body }),
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => {
            Err(CallError::NotLeader {
                call,
                master,
                location,
            })
        }
        s if s.is_client_error() => Err(CallError::BadRequest {
            call,
            master,
            status: s.as_u16(),
            body,
        }),
        s => Err(CallError::UnexpectedStatus {
            call,
            master,
            status: s.as_u16(),
            body,
        }),
    }
}

/// Aborts the connection task when the subscription is dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An accepted SUBSCRIBE: the open event stream.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// The response body: RecordIO-framed events.
    pub body: Incoming,
    /// The `Mesos-Stream-Id` to send on calls.
    pub stream_id: String,
    /// The encoding of the events.
    pub content_type: ContentType,
    _connection: AbortOnDrop,
}

/// What a SUBSCRIBE attempt gave.
#[derive(Debug)]
pub(crate) enum SubscribeOutcome {
    /// 200: the event stream is open.
    Stream(Subscription),
    /// 307 (or 301/302/308): the leader is elsewhere.
    Redirect(Option<String>),
    /// The master refused the subscription for good (400, 401, 403).
    Rejected {
        /// HTTP status.
        status: u16,
        /// The master's explanation.
        body: String,
    },
    /// The attempt failed; try again later (or elsewhere).
    Failed(DisconnectReason),
}

/// The HTTP/1.1 sender of a dedicated connection, and the task driving it.
type Opened = (
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    AbortOnDrop,
);

/// HTTP/1.1 handshake on `io` within `limit`.
async fn handshake<S>(io: S, limit: Duration) -> Result<Opened, DisconnectReason>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = match timeout(
        limit,
        hyper::client::conn::http1::handshake(TokioIo::new(io)),
    )
    .await
    {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(DisconnectReason::Transport(e.to_string())),
        Err(_) => {
            return Err(DisconnectReason::Connect(format!(
                "HTTP handshake timed out after {limit:?}"
            )));
        }
    };
    let connection = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "subscription connection ended");
        }
    }));
    Ok((sender, connection))
}

/// Opens the dedicated connection of a subscription: TCP, TLS for an https endpoint
/// (its certificate verified with `tls`), then HTTP/1.1.
async fn open(
    endpoint: &Endpoint,
    connect_timeout: Duration,
    tls: &MasterTls,
) -> Result<Opened, DisconnectReason> {
    let authority = endpoint.authority().as_str();
    let tcp = match timeout(connect_timeout, TcpStream::connect(authority)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(DisconnectReason::Connect(e.to_string())),
        Err(_) => {
            return Err(DisconnectReason::Connect(format!(
                "timed out after {connect_timeout:?}"
            )));
        }
    };
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(error = %e, "cannot set TCP_NODELAY on the subscription");
    }
    if !endpoint.is_https() {
        return handshake(tcp, connect_timeout).await;
    }
    let host = endpoint.host();
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| DisconnectReason::Tls(format!("{host:?} is not a TLS server name: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
    let stream = match timeout(connect_timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(DisconnectReason::Tls(handshake_error(
                &e,
                host,
                tls.custom_ca,
            )));
        }
        Err(_) => {
            return Err(DisconnectReason::Tls(format!(
                "no TLS handshake within {connect_timeout:?}"
            )));
        }
    };
    handshake(stream, connect_timeout).await
}

/// Opens a dedicated connection to `endpoint` and sends SUBSCRIBE (`body`, already
/// encoded as `content_type`), authenticated with `auth` if given.
pub(crate) async fn subscribe(
    endpoint: &Endpoint,
    body: Bytes,
    content_type: ContentType,
    connect_timeout: Duration,
    response_timeout: Duration,
    auth: Option<&Auth>,
    tls: &MasterTls,
) -> SubscribeOutcome {
    let authority = endpoint.authority().as_str();
    let (mut sender, connection) = match open(endpoint, connect_timeout, tls).await {
        Ok(opened) => opened,
        Err(reason) => return SubscribeOutcome::Failed(reason),
    };
    let mut request = Request::post(endpoint.path())
        .header(HOST, authority)
        .header(CONTENT_TYPE, content_type.mime())
        .header(ACCEPT, content_type.mime());
    if let Some(auth) = auth {
        request = request.header(AUTHORIZATION, auth.header.clone());
    }
    let request = request.body(Full::new(body));
    let request = match request {
        Ok(r) => r,
        Err(e) => return SubscribeOutcome::Failed(DisconnectReason::Transport(e.to_string())),
    };
    let response = match timeout(response_timeout, sender.send_request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return SubscribeOutcome::Failed(DisconnectReason::Transport(e.to_string())),
        Err(_) => return SubscribeOutcome::Failed(DisconnectReason::Silent(response_timeout)),
    };
    let status = response.status();
    match status {
        StatusCode::OK => {}
        StatusCode::TEMPORARY_REDIRECT
        | StatusCode::PERMANENT_REDIRECT
        | StatusCode::MOVED_PERMANENTLY
        | StatusCode::FOUND => {
            return SubscribeOutcome::Redirect(header_text(&response, LOCATION));
        }
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            let body = bounded_error_text(response, response_timeout).await;
            return SubscribeOutcome::Rejected {
                status: status.as_u16(),
                body,
            };
        }
        _ => {
            let body = bounded_error_text(response, response_timeout).await;
            return SubscribeOutcome::Failed(DisconnectReason::Status {
                status: status.as_u16(),
                body,
            });
        }
    }
    let Some(stream_id) = response
        .headers()
        .get(STREAM_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
    else {
        return SubscribeOutcome::Failed(DisconnectReason::MissingStreamId);
    };
    // Decode with the type the master says it chose; masters honour `Accept`.
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(ContentType::from_header)
        .unwrap_or(content_type);
    SubscribeOutcome::Stream(Subscription {
        body: response.into_body(),
        stream_id,
        content_type,
        _connection: connection,
    })
}

async fn bounded_error_text(response: Response<Incoming>, limit: Duration) -> String {
    timeout(limit, error_text(response.into_body()))
        .await
        .unwrap_or_else(|_| "(body not received in time)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: u16) -> Result<(), CallError> {
        call_result(
            "KILL",
            "m".into(),
            StatusCode::from_u16(status).unwrap(),
            Some("//l:1/api/v1/scheduler".into()),
            "why".into(),
            Some("retz"),
        )
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(result(202).is_ok());
        assert!(result(200).is_ok());
        assert!(matches!(
            result(400),
            Err(CallError::BadRequest { status: 400, .. })
        ));
        assert!(matches!(
            result(415),
            Err(CallError::BadRequest { status: 415, .. })
        ));
        assert!(matches!(result(403), Err(CallError::Forbidden { .. })));
        let e = result(401).unwrap_err();
        assert!(
            matches!(&e, CallError::Unauthorized { principal: Some(p), .. } if p == "retz"),
            "{e:?}"
        );
        assert!(!e.is_retryable());
        assert!(
            e.to_string()
                .contains("refused the framework's credentials (principal retz)"),
            "{e}"
        );
        assert!(matches!(result(503), Err(CallError::Unavailable { .. })));
        assert!(matches!(
            result(307),
            Err(CallError::NotLeader {
                location: Some(_),
                ..
            })
        ));
        assert!(matches!(
            result(500),
            Err(CallError::UnexpectedStatus { status: 500, .. })
        ));
    }

    #[test]
    fn error_bodies_are_trimmed_and_cut() {
        assert_eq!(
            shown(b"  Framework is not subscribed\n"),
            "Framework is not subscribed"
        );
        assert_eq!(shown(b""), "(empty body)");
        let long = "x".repeat(2000);
        let s = shown(long.as_bytes());
        assert!(s.ends_with("...") && s.len() == SHOWN_BODY_CHARS + 3);
        assert_eq!(shown(&[0xff, b'a']), "\u{fffd}a");
    }
}
