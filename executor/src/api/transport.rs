//! HTTP/1.1 to the agent's executor API: `POST http://<endpoint>/api/v1/executor`.
//!
//! Bodies are `application/x-protobuf` or `application/json` (Mesos dialect), chosen at
//! start; `Accept` asks for the same on SUBSCRIBE, whose answer is a chunked RecordIO
//! stream of `Event`s read with [`EventStream::next`] (records may span chunks). Other
//! calls expect `202 Accepted`. With an authentication token every call carries
//! `Authorization: Bearer <token>`.

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use retz_proto::ContentType;
use retz_proto::executor::{Call, Event, call};
use retz_proto::recordio::{RecordDecoder, RecordIoError};

/// Largest error body quoted in messages.
const SHOWN_BODY: usize = 512;

/// A failed exchange with the agent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `MESOS_AGENT_ENDPOINT` does not make a URI.
    #[error("agent endpoint {0:?} does not form a valid URI")]
    Endpoint(String),
    /// Connecting or sending failed.
    #[error("cannot reach the agent at {uri}: {source}")]
    Connect {
        uri: String,
        source: hyper_util::client::legacy::Error,
    },
    /// The agent answered with an unexpected status.
    #[error("the agent answered {status} to {call}: {body}")]
    Status {
        call: &'static str,
        status: StatusCode,
        body: String,
    },
    /// The SUBSCRIBE answer is not in the requested encoding.
    #[error("the agent's event stream has Content-Type {0:?}, expected {1}")]
    ContentType(String, ContentType),
    /// Reading the stream failed.
    #[error("reading the agent's event stream: {0}")]
    Stream(#[from] hyper::Error),
    /// The stream is not valid RecordIO.
    #[error("the agent's event stream: {0}")]
    RecordIo(#[from] RecordIoError),
    /// A record is not an `Event`.
    #[error("undecodable event from the agent: {0}")]
    Decode(#[from] retz_proto::DecodeError),
}

/// The HTTP side of the executor API.
#[derive(Clone)]
pub struct Transport {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    content_type: ContentType,
    token: Option<String>,
}

/// The SUBSCRIBE response body as a stream of events.
pub struct EventStream {
    body: Incoming,
    decoder: RecordDecoder,
    content_type: ContentType,
}

fn call_name(call: &Call) -> &'static str {
    match call.r#type.and_then(|t| call::Type::try_from(t).ok()) {
        Some(call::Type::Subscribe) => "SUBSCRIBE",
        Some(call::Type::Update) => "UPDATE",
        Some(call::Type::Message) => "MESSAGE",
        Some(call::Type::Heartbeat) => "HEARTBEAT",
        _ => "a call",
    }
}

impl Transport {
    /// A transport to the agent at `endpoint` (`host:port`).
    pub fn new(
        endpoint: &str,
        content_type: ContentType,
        token: Option<String>,
    ) -> Result<Self, ApiError> {
        let uri: Uri = format!("http://{endpoint}/api/v1/executor")
            .parse()
            .map_err(|_| ApiError::Endpoint(endpoint.to_owned()))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            client,
            uri,
            content_type,
            token,
        })
    }

    /// The encoding in use.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }

    async fn post(&self, call: &Call) -> Result<hyper::Response<Incoming>, ApiError> {
        let mut req = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, self.content_type.mime())
            .header(header::ACCEPT, self.content_type.mime());
        if let Some(token) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = Full::new(Bytes::from(self.content_type.encode(call)));
        let req = req
            .body(body)
            .map_err(|_| ApiError::Endpoint(self.uri.to_string()))?;
        self.client
            .request(req)
            .await
            .map_err(|source| ApiError::Connect {
                uri: self.uri.to_string(),
                source,
            })
    }

    async fn error(call: &Call, resp: hyper::Response<Incoming>) -> ApiError {
        let status = resp.status();
        let body = match resp.into_body().collect().await {
            Ok(b) => {
                let bytes = b.to_bytes();
                String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN_BODY)]).into_owned()
            }
            Err(e) => format!("(body unreadable: {e})"),
        };
        ApiError::Status {
            call: call_name(call),
            status,
            body,
        }
    }

    /// Sends SUBSCRIBE and returns the event stream.
    pub async fn subscribe(&self, call: &Call) -> Result<EventStream, ApiError> {
        let resp = self.post(call).await?;
        if resp.status() != StatusCode::OK {
            return Err(Self::error(call, resp).await);
        }
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if ContentType::from_header(&ct) != Some(self.content_type) {
            return Err(ApiError::ContentType(ct, self.content_type));
        }
        Ok(EventStream {
            body: resp.into_body(),
            decoder: RecordDecoder::default(),
            content_type: self.content_type,
        })
    }

    /// Sends a call other than SUBSCRIBE; the agent must answer 202 (or 200).
    pub async fn send(&self, call: &Call) -> Result<(), ApiError> {
        let resp = self.post(call).await?;
        if matches!(resp.status(), StatusCode::ACCEPTED | StatusCode::OK) {
            // Drain the (empty) body so the connection goes back to the pool.
            let _ = resp.into_body().collect().await;
            Ok(())
        } else {
            Err(Self::error(call, resp).await)
        }
    }
}

impl EventStream {
    /// The next event; `Ok(None)` when the agent closed the stream cleanly.
    pub async fn next(&mut self) -> Result<Option<Event>, ApiError> {
        loop {
            if let Some(record) = self.decoder.next_record()? {
                return Ok(Some(self.content_type.decode(&record)?));
            }
            match self.body.frame().await {
                Some(frame) => {
                    if let Some(data) = frame?.data_ref() {
                        self.decoder.push(data);
                    }
                }
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}
