//! Shared by the Mesos client tests: scripted masters, in-process HTTP servers on
//! 127.0.0.1 that play a Mesos master, answer each SUBSCRIBE as the test scripted it,
//! stream the events the test feeds them, and record every call they receive; plus event
//! and config builders.
//!
//! No timing is asserted: intervals are short and `within` only guards against hangs.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::BytesMut;
use retz_proto::mesos::{
    AgentId, FrameworkId, FrameworkInfo, MasterInfo, Offer, OfferId, TaskId, TaskState, TaskStatus,
};
use retz_proto::recordio::encode_message;
use retz_proto::scheduler::{Call, Event, call, event};
use retz_scheduler::mesos::{
    ContentType, DisconnectReason, SchedulerConfig, SchedulerDriver, SchedulerEvent, start,
};
use tokio::sync::mpsc;

pub const HANG_GUARD: Duration = Duration::from_secs(10);
pub const BOTH: [ContentType; 2] = [ContentType::Protobuf, ContentType::Json];

pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(HANG_GUARD, f).await {
        Ok(v) => v,
        Err(_) => panic!("hang guard: no {what} within {HANG_GUARD:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The scripted master.

/// How the master answers one SUBSCRIBE.
pub enum SubscribeReply {
    /// 307 with this `Location`.
    Redirect(String),
    /// This status and body.
    Status(u16, &'static str),
    /// 200 and an event stream fed by the test through the returned [`StreamFeed`].
    Stream(&'static str, mpsc::UnboundedReceiver<Bytes>),
}

/// One request the master received.
#[derive(Debug, Clone)]
pub struct Received {
    pub call: Call,
    pub stream_id: Option<String>,
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub authorization: Option<String>,
}

impl Received {
    pub fn kind(&self) -> call::Type {
        call::Type::try_from(self.call.r#type.unwrap_or(0)).unwrap()
    }
}

pub struct Script {
    pub subscribes: VecDeque<SubscribeReply>,
    /// Answers to non-SUBSCRIBE calls, in order; 202 once empty.
    pub call_replies: VecDeque<(u16, &'static str)>,
    pub log: mpsc::UnboundedSender<Received>,
}

pub type Shared = Arc<Mutex<Script>>;

/// A scripted master listening on 127.0.0.1.
pub struct Master {
    pub addr: SocketAddr,
    pub script: Shared,
    pub received: mpsc::UnboundedReceiver<Received>,
}

/// Feeds a scripted event stream.
pub struct StreamFeed {
    pub tx: mpsc::UnboundedSender<Bytes>,
    pub content_type: ContentType,
}

impl StreamFeed {
    pub fn records(&self, events: &[Event]) -> Bytes {
        let mut buf = BytesMut::new();
        for e in events {
            encode_message(self.content_type, e, &mut buf);
        }
        buf.freeze()
    }

    /// Sends `events`, each as its own chunk.
    pub fn send(&self, events: &[Event]) {
        for e in events {
            self.raw(self.records(std::slice::from_ref(e)));
        }
    }

    /// Sends raw bytes as one chunk.
    pub fn raw(&self, bytes: Bytes) {
        // The master may already have dropped the stream (client reconnected).
        let _ = self.tx.send(bytes);
    }
}

pub async fn handle(State(script): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let text = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let content_type = text(header::CONTENT_TYPE);
    let Some(ct) = content_type.as_deref().and_then(ContentType::from_header) else {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad Content-Type").into_response();
    };
    let call: Call = match ct.decode(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body: {e}"),
            )
                .into_response();
        }
    };
    let received = Received {
        call,
        stream_id: headers
            .get("Mesos-Stream-Id")
            .map(|v| v.to_str().unwrap().to_owned()),
        content_type,
        accept: text(header::ACCEPT),
        authorization: text(header::AUTHORIZATION),
    };
    let is_subscribe = received.kind() == call::Type::Subscribe;
    let mut script = script.lock().unwrap();
    script.log.send(received).unwrap();
    if !is_subscribe {
        let (status, body) = script.call_replies.pop_front().unwrap_or((202, ""));
        return (StatusCode::from_u16(status).unwrap(), body).into_response();
    }
    match script.subscribes.pop_front() {
        None => (StatusCode::SERVICE_UNAVAILABLE, "script exhausted").into_response(),
        Some(SubscribeReply::Redirect(location)) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Some(SubscribeReply::Status(status, body)) => {
            (StatusCode::from_u16(status).unwrap(), body).into_response()
        }
        Some(SubscribeReply::Stream(stream_id, rx)) => {
            let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, ct.mime())
                .header("Mesos-Stream-Id", stream_id)
                .body(Body::from_stream(chunks))
                .unwrap()
        }
    }
}

impl Master {
    pub async fn start() -> Master {
        // Client logs, shown for failing tests (filter with RUST_LOG).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (log, received) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(Script {
            subscribes: VecDeque::new(),
            call_replies: VecDeque::new(),
            log,
        }));
        let app = Router::new()
            .route("/api/v1/scheduler", post(handle))
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Master {
            addr,
            script,
            received,
        }
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn push(&self, reply: SubscribeReply) {
        self.script.lock().unwrap().subscribes.push_back(reply);
    }

    /// Scripts a 200 stream with `stream_id`, fed through the returned feed.
    pub fn stream(&self, stream_id: &'static str, content_type: ContentType) -> StreamFeed {
        let (tx, rx) = mpsc::unbounded_channel();
        self.push(SubscribeReply::Stream(stream_id, rx));
        StreamFeed { tx, content_type }
    }

    pub fn reply_to_next_call(&self, status: u16, body: &'static str) {
        self.script
            .lock()
            .unwrap()
            .call_replies
            .push_back((status, body));
    }

    pub async fn next_call(&mut self) -> Received {
        within("call at the scripted master", self.received.recv())
            .await
            .expect("master log closed")
    }

    /// No request arrived beyond those already taken.
    pub fn no_more_calls(&mut self) {
        if let Ok(r) = self.received.try_recv() {
            panic!("unexpected call {:?}", r.call);
        }
    }
}

/// An address that refuses connections.
pub async fn refused_address() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

// ---------------------------------------------------------------------------------------
// Events and configs.

pub fn typed(ty: event::Type) -> Event {
    Event {
        r#type: Some(ty as i32),
        ..Event::default()
    }
}

pub fn subscribed(framework_id: &str, heartbeat_seconds: f64) -> Event {
    Event {
        subscribed: Some(event::Subscribed {
            framework_id: FrameworkId {
                value: framework_id.into(),
            },
            heartbeat_interval_seconds: Some(heartbeat_seconds),
            master_info: Some(MasterInfo {
                id: "master-1".into(),
                ip: 0x7f00_0001,
                port: 5050,
                hostname: Some("localhost".into()),
                ..MasterInfo::default()
            }),
        }),
        ..typed(event::Type::Subscribed)
    }
}

pub fn heartbeat() -> Event {
    typed(event::Type::Heartbeat)
}

pub fn offer(id: &str) -> Offer {
    Offer {
        id: OfferId { value: id.into() },
        framework_id: FrameworkId { value: "fw".into() },
        agent_id: AgentId {
            value: "agent-S1".into(),
        },
        hostname: "agent.host".into(),
        ..Offer::default()
    }
}

pub fn offers(ids: &[&str]) -> Event {
    Event {
        offers: Some(event::Offers {
            offers: ids.iter().map(|i| offer(i)).collect(),
        }),
        ..typed(event::Type::Offers)
    }
}

pub fn status(task: &str, uuid: Option<Vec<u8>>) -> TaskStatus {
    TaskStatus {
        task_id: TaskId { value: task.into() },
        state: TaskState::TaskRunning as i32,
        agent_id: Some(AgentId {
            value: "agent-S1".into(),
        }),
        uuid,
        ..TaskStatus::default()
    }
}

pub fn update(status: TaskStatus) -> Event {
    Event {
        update: Some(event::Update { status }),
        ..typed(event::Type::Update)
    }
}

pub fn error_event(message: &str) -> Event {
    Event {
        error: Some(event::Error {
            message: message.into(),
        }),
        ..typed(event::Type::Error)
    }
}

pub fn framework_info() -> FrameworkInfo {
    FrameworkInfo {
        user: "retz".into(),
        name: "Retz test".into(),
        failover_timeout: Some(604_800.0),
        checkpoint: Some(true),
        ..FrameworkInfo::default()
    }
}

pub fn config(masters: Vec<String>, content_type: ContentType) -> SchedulerConfig {
    let mut cfg = SchedulerConfig::new(masters, framework_info());
    cfg.content_type = content_type;
    cfg.backoff_initial = Duration::from_millis(10);
    cfg.backoff_max = Duration::from_millis(50);
    cfg.call_timeout = Duration::from_secs(5);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg
}

pub async fn next_event(rx: &mut mpsc::Receiver<SchedulerEvent>) -> SchedulerEvent {
    within("scheduler event", rx.recv())
        .await
        .expect("event channel closed")
}

pub async fn expect_subscribed(rx: &mut mpsc::Receiver<SchedulerEvent>, framework_id: &str) {
    match next_event(rx).await {
        SchedulerEvent::Subscribed {
            framework_id: f,
            master_info,
            ..
        } => {
            assert_eq!(f.value, framework_id);
            assert_eq!(master_info.map(|m| m.id), Some("master-1".to_owned()));
        }
        other => panic!("expected Subscribed, got {other:?}"),
    }
}

pub async fn expect_disconnected(
    rx: &mut mpsc::Receiver<SchedulerEvent>,
) -> (String, DisconnectReason) {
    match next_event(rx).await {
        SchedulerEvent::Disconnected { master, reason, .. } => (master, reason),
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

/// Starts a client on `master` with one scripted stream and waits until subscribed.
pub async fn subscribed_client(
    master: &mut Master,
    content_type: ContentType,
) -> (SchedulerDriver, mpsc::Receiver<SchedulerEvent>, StreamFeed) {
    let feed = master.stream("stream-1", content_type);
    let (driver, mut rx) = start(config(vec![master.address()], content_type)).unwrap();
    let sub = master.next_call().await;
    assert_eq!(sub.kind(), call::Type::Subscribe);
    feed.send(&[subscribed("fw-1", 15.0), heartbeat()]);
    expect_subscribed(&mut rx, "fw-1").await;
    (driver, rx, feed)
}
