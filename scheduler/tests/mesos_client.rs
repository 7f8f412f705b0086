//! The Mesos scheduler client against scripted masters: in-process HTTP servers on
//! 127.0.0.1 that play a Mesos master, answer each SUBSCRIBE as the test scripted it,
//! stream the events the test feeds them, and record every call they receive.
//!
//! No timing is asserted: intervals are short and `within` only guards against hangs.

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
use retz_proto::credentials::Credential;
use retz_proto::mesos::{
    AgentId, DurationInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, KillPolicy,
    MasterInfo, Offer, OfferId, TaskId, TaskInfo, TaskState, TaskStatus,
};
use retz_proto::recordio::encode_message;
use retz_proto::scheduler::{Call, Event, call, event};
use retz_scheduler::mesos::{
    CallError, ContentType, DisconnectReason, SchedulerConfig, SchedulerDriver, SchedulerEvent,
    calls, start,
};
use tokio::sync::mpsc;

const HANG_GUARD: Duration = Duration::from_secs(10);
const BOTH: [ContentType; 2] = [ContentType::Protobuf, ContentType::Json];

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(HANG_GUARD, f).await {
        Ok(v) => v,
        Err(_) => panic!("hang guard: no {what} within {HANG_GUARD:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The scripted master.

/// How the master answers one SUBSCRIBE.
enum SubscribeReply {
    /// 307 with this `Location`.
    Redirect(String),
    /// This status and body.
    Status(u16, &'static str),
    /// 200 and an event stream fed by the test through the returned [`StreamFeed`].
    Stream(&'static str, mpsc::UnboundedReceiver<Bytes>),
}

/// One request the master received.
#[derive(Debug, Clone)]
struct Received {
    call: Call,
    stream_id: Option<String>,
    content_type: Option<String>,
    accept: Option<String>,
    authorization: Option<String>,
}

impl Received {
    fn kind(&self) -> call::Type {
        call::Type::try_from(self.call.r#type.unwrap_or(0)).unwrap()
    }
}

struct Script {
    subscribes: VecDeque<SubscribeReply>,
    /// Answers to non-SUBSCRIBE calls, in order; 202 once empty.
    call_replies: VecDeque<(u16, &'static str)>,
    log: mpsc::UnboundedSender<Received>,
}

type Shared = Arc<Mutex<Script>>;

/// A scripted master listening on 127.0.0.1.
struct Master {
    addr: SocketAddr,
    script: Shared,
    received: mpsc::UnboundedReceiver<Received>,
}

/// Feeds a scripted event stream.
struct StreamFeed {
    tx: mpsc::UnboundedSender<Bytes>,
    content_type: ContentType,
}

impl StreamFeed {
    fn records(&self, events: &[Event]) -> Bytes {
        let mut buf = BytesMut::new();
        for e in events {
            encode_message(self.content_type, e, &mut buf);
        }
        buf.freeze()
    }

    /// Sends `events`, each as its own chunk.
    fn send(&self, events: &[Event]) {
        for e in events {
            self.raw(self.records(std::slice::from_ref(e)));
        }
    }

    /// Sends raw bytes as one chunk.
    fn raw(&self, bytes: Bytes) {
        // The master may already have dropped the stream (client reconnected).
        let _ = self.tx.send(bytes);
    }
}

async fn handle(State(script): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
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
    async fn start() -> Master {
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

    fn address(&self) -> String {
        self.addr.to_string()
    }

    fn push(&self, reply: SubscribeReply) {
        self.script.lock().unwrap().subscribes.push_back(reply);
    }

    /// Scripts a 200 stream with `stream_id`, fed through the returned feed.
    fn stream(&self, stream_id: &'static str, content_type: ContentType) -> StreamFeed {
        let (tx, rx) = mpsc::unbounded_channel();
        self.push(SubscribeReply::Stream(stream_id, rx));
        StreamFeed { tx, content_type }
    }

    fn reply_to_next_call(&self, status: u16, body: &'static str) {
        self.script
            .lock()
            .unwrap()
            .call_replies
            .push_back((status, body));
    }

    async fn next_call(&mut self) -> Received {
        within("call at the scripted master", self.received.recv())
            .await
            .expect("master log closed")
    }

    /// No request arrived beyond those already taken.
    fn no_more_calls(&mut self) {
        if let Ok(r) = self.received.try_recv() {
            panic!("unexpected call {:?}", r.call);
        }
    }
}

/// An address that refuses connections.
async fn refused_address() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

// ---------------------------------------------------------------------------------------
// Events and configs.

fn typed(ty: event::Type) -> Event {
    Event {
        r#type: Some(ty as i32),
        ..Event::default()
    }
}

fn subscribed(framework_id: &str, heartbeat_seconds: f64) -> Event {
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

fn heartbeat() -> Event {
    typed(event::Type::Heartbeat)
}

fn offer(id: &str) -> Offer {
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

fn offers(ids: &[&str]) -> Event {
    Event {
        offers: Some(event::Offers {
            offers: ids.iter().map(|i| offer(i)).collect(),
        }),
        ..typed(event::Type::Offers)
    }
}

fn status(task: &str, uuid: Option<Vec<u8>>) -> TaskStatus {
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

fn update(status: TaskStatus) -> Event {
    Event {
        update: Some(event::Update { status }),
        ..typed(event::Type::Update)
    }
}

fn error_event(message: &str) -> Event {
    Event {
        error: Some(event::Error {
            message: message.into(),
        }),
        ..typed(event::Type::Error)
    }
}

fn framework_info() -> FrameworkInfo {
    FrameworkInfo {
        user: "retz".into(),
        name: "Retz test".into(),
        failover_timeout: Some(604_800.0),
        checkpoint: Some(true),
        ..FrameworkInfo::default()
    }
}

fn config(masters: Vec<String>, content_type: ContentType) -> SchedulerConfig {
    let mut cfg = SchedulerConfig::new(masters, framework_info());
    cfg.content_type = content_type;
    cfg.backoff_initial = Duration::from_millis(10);
    cfg.backoff_max = Duration::from_millis(50);
    cfg.call_timeout = Duration::from_secs(5);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg
}

async fn next_event(rx: &mut mpsc::Receiver<SchedulerEvent>) -> SchedulerEvent {
    within("scheduler event", rx.recv())
        .await
        .expect("event channel closed")
}

async fn expect_subscribed(rx: &mut mpsc::Receiver<SchedulerEvent>, framework_id: &str) {
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

async fn expect_disconnected(
    rx: &mut mpsc::Receiver<SchedulerEvent>,
) -> (String, DisconnectReason) {
    match next_event(rx).await {
        SchedulerEvent::Disconnected { master, reason, .. } => (master, reason),
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

/// Starts a client on `master` with one scripted stream and waits until subscribed.
async fn subscribed_client(
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

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn subscribe_request_and_records_split_anywhere() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let feed = master.stream("stream-1", ct);
        let (driver, mut rx) = start(config(vec![master.address()], ct)).unwrap();

        let sub = master.next_call().await;
        assert_eq!(sub.kind(), call::Type::Subscribe);
        assert_eq!(sub.content_type.as_deref(), Some(ct.mime()));
        assert_eq!(sub.accept.as_deref(), Some(ct.mime()));
        assert_eq!(
            sub.stream_id, None,
            "SUBSCRIBE must not carry Mesos-Stream-Id"
        );
        assert_eq!(sub.call.framework_id, None);
        let info = sub.call.subscribe.unwrap().framework_info;
        assert_eq!(info.id, None);
        assert_eq!(info.name, "Retz test");
        assert_eq!(info.failover_timeout, Some(604_800.0));

        // Three records cut into chunks at every awkward place: inside the first length
        // prefix, right after a newline, inside the bodies, across record boundaries.
        let bytes = feed.records(&[
            subscribed("fw-1", 15.0),
            heartbeat(),
            offers(&["o-1", "o-2"]),
        ]);
        let cuts = [1, 2, 3, 7, bytes.len() / 2, bytes.len() - 1];
        let mut at = 0;
        for cut in cuts {
            feed.raw(bytes.slice(at..cut));
            at = cut;
        }
        feed.raw(bytes.slice(at..));

        expect_subscribed(&mut rx, "fw-1").await;
        match next_event(&mut rx).await {
            SchedulerEvent::Offers(got) => assert_eq!(got, vec![offer("o-1"), offer("o-2")]),
            other => panic!("{ct}: expected Offers, got {other:?}"),
        }
        assert_eq!(driver.framework_id().unwrap().value, "fw-1");
        assert!(driver.is_subscribed());

        // A record whose length prefix is split over two chunks, after the stream is up.
        let rescind = Event {
            rescind: Some(event::Rescind {
                offer_id: OfferId {
                    value: "o-1".into(),
                },
            }),
            ..typed(event::Type::Rescind)
        };
        let bytes = feed.records(&[rescind]);
        assert!(
            bytes.iter().position(|b| *b == b'\n').unwrap() >= 2,
            "prefix has two digits"
        );
        feed.raw(bytes.slice(..1));
        feed.raw(bytes.slice(1..));
        assert_eq!(
            next_event(&mut rx).await,
            SchedulerEvent::Rescind(OfferId {
                value: "o-1".into()
            })
        );
        driver.stop();
        assert!(within("end of events", rx.recv()).await.is_none());
    }
}

#[tokio::test]
async fn calls_carry_stream_id_framework_id_and_payloads() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let (driver, _rx, _feed) = subscribed_client(&mut master, ct).await;
        let agent = || AgentId {
            value: "agent-S1".into(),
        };
        let executor = || ExecutorId {
            value: "retz-executor".into(),
        };
        let task = |id: &str| TaskInfo {
            name: id.into(),
            task_id: TaskId { value: id.into() },
            agent_id: agent(),
            ..TaskInfo::default()
        };
        let o1 = || {
            vec![OfferId {
                value: "o-1".into(),
            }]
        };

        driver
            .launch(o1(), vec![task("t-1")], Some(calls::refuse_for(2.0)))
            .await
            .unwrap();
        let executor_info = ExecutorInfo {
            executor_id: executor(),
            ..ExecutorInfo::default()
        };
        driver
            .launch_group(
                o1(),
                executor_info.clone(),
                vec![task("t-2"), task("t-3")],
                None,
            )
            .await
            .unwrap();
        driver.decline(o1(), Some(30.0)).await.unwrap();
        driver.revive(vec!["batch".into()]).await.unwrap();
        driver.suppress(vec![]).await.unwrap();
        let policy = KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: 3_000_000_000,
            }),
        };
        driver
            .kill(
                TaskId {
                    value: "t-1".into(),
                },
                Some(agent()),
                Some(policy),
            )
            .await
            .unwrap();
        driver.shutdown(executor(), agent()).await.unwrap();
        driver
            .reconcile(vec![call::reconcile::Task {
                task_id: TaskId {
                    value: "t-1".into(),
                },
                agent_id: Some(agent()),
            }])
            .await
            .unwrap();
        driver
            .message(agent(), executor(), b"\x00\xffhello".to_vec())
            .await
            .unwrap();
        driver.teardown().await.unwrap();

        let mut got = Vec::new();
        for _ in 0..10 {
            let r = master.next_call().await;
            assert_eq!(
                r.stream_id.as_deref(),
                Some("stream-1"),
                "{ct}: {:?}",
                r.kind()
            );
            assert_eq!(r.content_type.as_deref(), Some(ct.mime()));
            assert_eq!(r.call.framework_id.as_ref().unwrap().value, "fw-1");
            got.push(r);
        }
        let kinds: Vec<_> = got.iter().map(Received::kind).collect();
        use call::Type as T;
        assert_eq!(
            kinds,
            [
                T::Accept,
                T::Accept,
                T::Decline,
                T::Revive,
                T::Suppress,
                T::Kill,
                T::Shutdown,
                T::Reconcile,
                T::Message,
                T::Teardown
            ]
        );
        let c = |i: usize| got[i].call.clone();
        let accept = c(0).accept.unwrap();
        assert_eq!(accept.offer_ids, o1());
        assert_eq!(accept.filters.unwrap().refuse_seconds, Some(2.0));
        assert_eq!(accept.operations, vec![calls::launch(vec![task("t-1")])]);
        let group = c(1)
            .accept
            .unwrap()
            .operations
            .remove(0)
            .launch_group
            .unwrap();
        assert_eq!(group.executor, executor_info);
        assert_eq!(group.task_group.tasks, vec![task("t-2"), task("t-3")]);
        assert_eq!(
            c(2).decline.unwrap().filters.unwrap().refuse_seconds,
            Some(30.0)
        );
        assert_eq!(c(3).revive.unwrap().roles, ["batch"]);
        assert!(c(4).suppress.unwrap().roles.is_empty());
        let kill = c(5).kill.unwrap();
        assert_eq!(
            (kill.task_id.value.as_str(), kill.kill_policy),
            ("t-1", Some(policy))
        );
        assert_eq!(c(6).shutdown.unwrap().executor_id, executor());
        assert_eq!(c(7).reconcile.unwrap().tasks[0].task_id.value, "t-1");
        assert_eq!(c(8).message.unwrap().data, b"\x00\xffhello");

        // TEARDOWN stops the client.
        within("stop after teardown", driver.stopped()).await;
        assert!(matches!(
            driver.decline(o1(), None).await,
            Err(CallError::Stopped { call: "DECLINE" })
        ));
    }
}

#[tokio::test]
async fn acknowledges_only_updates_with_a_uuid_and_echoes_its_bytes() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let (driver, mut rx, feed) = subscribed_client(&mut master, ct).await;
        // A reconciliation answer (no uuid), then an agent update with a 16-byte uuid
        // holding bytes that are not valid UTF-8.
        let uuid: Vec<u8> = vec![
            0xd4, 0x0f, 0x3f, 0x3e, 0xbb, 0xe3, 0x44, 0xaf, 0xa2, 0x30, 0x4c, 0xb1, 0xea, 0xe7,
            0x2f, 0x67,
        ];
        feed.send(&[
            update(status("t-0", None)),
            update(status("t-1", Some(uuid.clone()))),
        ]);
        for _ in 0..2 {
            let SchedulerEvent::Update(s) = next_event(&mut rx).await else {
                panic!("expected Update");
            };
            driver.acknowledge(&s).await.unwrap();
        }
        // A marker call: everything the master got before it is what acknowledge sent.
        driver.reconcile(vec![]).await.unwrap();

        let ack = master.next_call().await;
        assert_eq!(
            ack.kind(),
            call::Type::Acknowledge,
            "{ct}: the uuid-less update was acknowledged"
        );
        let a = ack.call.acknowledge.unwrap();
        assert_eq!(a.uuid, uuid);
        assert_eq!(a.task_id.value, "t-1");
        assert_eq!(a.agent_id.value, "agent-S1");
        assert_eq!(ack.stream_id.as_deref(), Some("stream-1"));
        assert_eq!(master.next_call().await.kind(), call::Type::Reconcile);
        master.no_more_calls();

        // A uuid without an agent id cannot be echoed: a clear error, nothing sent.
        let mut bad = status("t-2", Some(uuid.clone()));
        bad.agent_id = None;
        let err = driver.acknowledge(&bad).await.unwrap_err();
        assert!(matches!(err, CallError::InvalidAcknowledge(_)), "{err}");
        assert!(err.to_string().contains("t-2"), "{err}");
        driver.stop();
    }
}

#[tokio::test]
async fn follows_307_redirects_absolute_and_protocol_relative() {
    for (i, ct) in BOTH.into_iter().enumerate() {
        for protocol_relative in [true, false] {
            let mut follower = Master::start().await;
            let mut leader = Master::start().await;
            let location = if protocol_relative {
                format!("//{}/api/v1/scheduler", leader.address())
            } else {
                format!("http://{}/api/v1/scheduler", leader.address())
            };
            follower.push(SubscribeReply::Redirect(location));
            let feed = leader.stream("leader-stream", ct);
            let (driver, mut rx) = start(config(vec![follower.address()], ct)).unwrap();

            assert_eq!(follower.next_call().await.kind(), call::Type::Subscribe);
            assert_eq!(leader.next_call().await.kind(), call::Type::Subscribe);
            feed.send(&[subscribed(&format!("fw-{i}"), 15.0)]);
            expect_subscribed(&mut rx, &format!("fw-{i}")).await;

            // Calls go to the leader, on its stream.
            driver.revive(vec![]).await.unwrap();
            let r = leader.next_call().await;
            assert_eq!(r.kind(), call::Type::Revive);
            assert_eq!(r.stream_id.as_deref(), Some("leader-stream"));
            follower.no_more_calls();
            driver.stop();
        }
    }
}

#[tokio::test]
async fn retries_after_503_then_subscribes() {
    let mut master = Master::start().await;
    master.push(SubscribeReply::Status(
        503,
        "Master is not the leader and knows no leader",
    ));
    let feed = master.stream("stream-2", ContentType::Protobuf);
    let (driver, mut rx) = start(config(vec![master.address()], ContentType::Protobuf)).unwrap();

    let (_, reason) = expect_disconnected(&mut rx).await;
    match reason {
        DisconnectReason::Status { status, body } => {
            assert_eq!(status, 503);
            assert!(body.contains("knows no leader"), "{body}");
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    assert!(matches!(
        driver.kill(TaskId { value: "t".into() }, None, None).await,
        Err(CallError::NotSubscribed { call: "KILL" })
    ));
    assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
    assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
    feed.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    driver.stop();
}

#[tokio::test]
async fn error_event_is_surfaced_and_stops_the_client() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let (driver, mut rx, feed) = subscribed_client(&mut master, ct).await;
        feed.send(&[error_event("Framework has been removed")]);
        assert_eq!(
            next_event(&mut rx).await,
            SchedulerEvent::Error("Framework has been removed".into())
        );
        assert!(within("end of events", rx.recv()).await.is_none());
        assert!(driver.is_stopped());
        assert!(matches!(
            driver.revive(vec![]).await,
            Err(CallError::Stopped { .. })
        ));
        // No re-subscription after ERROR.
        master.no_more_calls();
    }
}

#[tokio::test]
async fn subscribe_rejected_with_403_is_an_error_not_a_retry_loop() {
    let mut master = Master::start().await;
    master.push(SubscribeReply::Status(403, "Not authorized to use roles"));
    let (driver, mut rx) = start(config(vec![master.address()], ContentType::Json)).unwrap();
    match next_event(&mut rx).await {
        SchedulerEvent::Error(msg) => assert!(
            msg.contains("403") && msg.contains("Not authorized"),
            "{msg}"
        ),
        other => panic!("expected Error, got {other:?}"),
    }
    assert!(within("end of events", rx.recv()).await.is_none());
    assert!(driver.is_stopped());
    assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
    master.no_more_calls();
}

#[tokio::test]
async fn missed_heartbeats_resubscribe_with_the_framework_id() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let first = master.stream("stream-1", ct);
        let second = master.stream("stream-2", ct);
        let mut cfg = config(vec![master.address()], ct);
        cfg.heartbeat_misses = 2;
        cfg.suppressed_roles = vec!["initially-suppressed".into()];
        let (driver, mut rx) = start(cfg).unwrap();

        let sub1 = master.next_call().await;
        assert_eq!(sub1.call.framework_id, None);
        assert_eq!(
            sub1.call.subscribe.unwrap().suppressed_roles,
            ["initially-suppressed"]
        );
        // A 50 ms heartbeat, then silence (the stream stays open).
        first.send(&[subscribed("fw-42", 0.05), heartbeat()]);
        expect_subscribed(&mut rx, "fw-42").await;

        let (_, reason) = expect_disconnected(&mut rx).await;
        assert!(
            matches!(reason, DisconnectReason::Silent(_)),
            "{ct}: {reason:?}"
        );
        assert!(!driver.is_subscribed());

        let sub2 = master.next_call().await;
        assert_eq!(sub2.kind(), call::Type::Subscribe);
        assert_eq!(sub2.stream_id, None);
        assert_eq!(sub2.call.framework_id.as_ref().unwrap().value, "fw-42");
        let subscribe = sub2.call.subscribe.unwrap();
        assert_eq!(subscribe.framework_info.id.unwrap().value, "fw-42");
        assert_eq!(subscribe.framework_info.failover_timeout, Some(604_800.0));
        assert_eq!(subscribe.suppressed_roles, ["initially-suppressed"]);

        second.send(&[subscribed("fw-42", 15.0)]);
        expect_subscribed(&mut rx, "fw-42").await;
        driver
            .decline(vec![OfferId { value: "o".into() }], None)
            .await
            .unwrap();
        let r = master.next_call().await;
        assert_eq!(r.kind(), call::Type::Decline);
        assert_eq!(r.stream_id.as_deref(), Some("stream-2"));
        drop(first);
        driver.stop();
    }
}

#[tokio::test]
async fn closed_stream_resubscribes_and_configured_id_is_reused() {
    let mut master = Master::start().await;
    let first = master.stream("stream-1", ContentType::Json);
    let second = master.stream("stream-2", ContentType::Json);
    let mut cfg = config(vec![master.address()], ContentType::Json);
    cfg.framework_info.id = Some(FrameworkId {
        value: "fw-from-store".into(),
    });
    let (driver, mut rx) = start(cfg).unwrap();
    let sub1 = master.next_call().await;
    assert_eq!(sub1.call.framework_id.unwrap().value, "fw-from-store");
    assert_eq!(
        sub1.call
            .subscribe
            .unwrap()
            .framework_info
            .id
            .unwrap()
            .value,
        "fw-from-store"
    );
    first.send(&[subscribed("fw-from-store", 15.0)]);
    expect_subscribed(&mut rx, "fw-from-store").await;
    // Suppression state is carried into the next SUBSCRIBE; a failed call changes nothing.
    driver
        .suppress(vec!["batch".into(), "adhoc".into()])
        .await
        .unwrap();
    driver.revive(vec!["adhoc".into()]).await.unwrap();
    master.reply_to_next_call(503, "Master is recovering");
    assert!(driver.suppress(vec!["never".into()]).await.is_err());
    for kind in [
        call::Type::Suppress,
        call::Type::Revive,
        call::Type::Suppress,
    ] {
        assert_eq!(master.next_call().await.kind(), kind);
    }
    drop(first); // The master closes the stream.
    let (_, reason) = expect_disconnected(&mut rx).await;
    assert_eq!(reason, DisconnectReason::StreamEnded);
    let sub2 = master.next_call().await;
    assert_eq!(sub2.call.framework_id.unwrap().value, "fw-from-store");
    assert_eq!(sub2.call.subscribe.unwrap().suppressed_roles, ["batch"]);
    second.send(&[subscribed("fw-from-store", 15.0)]);
    expect_subscribed(&mut rx, "fw-from-store").await;
    driver.stop();
}

#[tokio::test]
async fn call_rejections_are_typed_errors() {
    let mut master = Master::start().await;
    let (driver, _rx, _feed) = subscribed_client(&mut master, ContentType::Protobuf).await;
    let o = || {
        vec![OfferId {
            value: "o-9".into(),
        }]
    };

    master.reply_to_next_call(400, "Framework cannot be found");
    match driver.decline(o(), None).await {
        Err(CallError::BadRequest {
            call, status, body, ..
        }) => {
            assert_eq!(
                (call, status, body.as_str()),
                ("DECLINE", 400, "Framework cannot be found")
            );
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
    master.reply_to_next_call(403, "Framework is not subscribed");
    match driver.accept(o(), vec![], None).await {
        Err(CallError::Forbidden { call, body, .. }) => {
            assert_eq!(
                (call, body.as_str()),
                ("ACCEPT", "Framework is not subscribed")
            );
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    master.reply_to_next_call(503, "Master is recovering");
    assert!(matches!(
        driver.revive(vec![]).await,
        Err(CallError::Unavailable { call: "REVIVE", .. })
    ));
    // The client is still usable.
    driver.reconcile(vec![]).await.unwrap();
    for _ in 0..4 {
        master.next_call().await;
    }
    master.no_more_calls();
    driver.stop();
}

#[tokio::test]
async fn rotates_past_a_master_that_refuses_connections() {
    let refused = refused_address().await;
    let mut good = Master::start().await;
    let feed = good.stream("stream-1", ContentType::Json);
    let (driver, mut rx) = start(config(
        vec![refused.clone(), good.address()],
        ContentType::Json,
    ))
    .unwrap();

    let (master, reason) = expect_disconnected(&mut rx).await;
    assert!(master.contains(&refused), "{master}");
    assert!(matches!(reason, DisconnectReason::Connect(_)), "{reason:?}");
    assert!(matches!(
        driver.decline(vec![], None).await,
        Err(CallError::NotSubscribed { .. })
    ));

    assert_eq!(good.next_call().await.kind(), call::Type::Subscribe);
    feed.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    driver.stop();
}

#[tokio::test]
async fn undecodable_stream_reconnects() {
    let mut master = Master::start().await;
    let (driver, mut rx, feed) = subscribed_client(&mut master, ContentType::Protobuf).await;
    let second = master.stream("stream-2", ContentType::Protobuf);
    feed.raw(Bytes::from_static(b"12x\n"));
    let (_, reason) = expect_disconnected(&mut rx).await;
    assert!(matches!(reason, DisconnectReason::Decode(_)), "{reason:?}");
    assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
    second.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    driver.stop();
}

#[tokio::test]
async fn bad_configs_are_refused_before_starting() {
    let mut cfg = config(vec![], ContentType::Json);
    assert!(start(cfg.clone()).is_err());
    cfg.masters = vec!["https://m:5050".into()];
    let err = start(cfg).unwrap_err().to_string();
    assert!(err.contains("https") && err.contains("plain http"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Framework authentication (HTTP Basic, as masters with --authenticate_http_frameworks).

fn credential() -> Credential {
    Credential::new("retz", "s3cret").unwrap()
}

fn authenticated(masters: Vec<String>, ct: ContentType) -> SchedulerConfig {
    let mut cfg = config(masters, ct);
    cfg.credential = Some(credential());
    cfg
}

#[tokio::test]
async fn every_request_carries_the_basic_credential_subscribe_included() {
    for ct in BOTH {
        let mut master = Master::start().await;
        let feed = master.stream("stream-1", ct);
        let (driver, mut rx) = start(authenticated(vec![master.address()], ct)).unwrap();
        let sub = master.next_call().await;
        assert_eq!(sub.kind(), call::Type::Subscribe);
        assert_eq!(sub.authorization, Some(credential().basic_header()));
        let info = sub.call.subscribe.unwrap().framework_info;
        assert_eq!(
            info.principal.as_deref(),
            Some("retz"),
            "the principal is the credential's"
        );
        feed.send(&[subscribed("fw-1", 15.0)]);
        expect_subscribed(&mut rx, "fw-1").await;
        let o = || {
            vec![OfferId {
                value: "o-1".into(),
            }]
        };
        driver.decline(o(), Some(1.0)).await.unwrap();
        driver.accept(o(), vec![], None).await.unwrap();
        driver.revive(vec![]).await.unwrap();
        driver.suppress(vec![]).await.unwrap();
        driver
            .kill(TaskId { value: "t".into() }, None, None)
            .await
            .unwrap();
        driver
            .acknowledge(&status("t", Some(vec![7; 16])))
            .await
            .unwrap();
        driver.reconcile(vec![]).await.unwrap();
        driver
            .message(
                AgentId { value: "a".into() },
                ExecutorId { value: "e".into() },
                b"hi".to_vec(),
            )
            .await
            .unwrap();
        driver.teardown().await.unwrap();
        for _ in 0..9 {
            let c = master.next_call().await;
            assert_eq!(
                c.authorization,
                Some(credential().basic_header()),
                "{:?}",
                c.kind()
            );
        }
        master.no_more_calls();
    }
}

#[tokio::test]
async fn without_a_credential_no_authorization_is_sent() {
    let mut master = Master::start().await;
    let feed = master.stream("stream-1", ContentType::Json);
    let (driver, mut rx) = start(config(vec![master.address()], ContentType::Json)).unwrap();
    let sub = master.next_call().await;
    assert_eq!(sub.authorization, None);
    assert_eq!(sub.call.subscribe.unwrap().framework_info.principal, None);
    feed.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    driver.reconcile(vec![]).await.unwrap();
    assert_eq!(master.next_call().await.authorization, None);
}

#[tokio::test]
async fn a_subscribe_refused_with_401_names_the_principal_and_is_not_retried() {
    for with_credential in [true, false] {
        let mut master = Master::start().await;
        master.push(SubscribeReply::Status(401, ""));
        let cfg = if with_credential {
            authenticated(vec![master.address()], ContentType::Protobuf)
        } else {
            config(vec![master.address()], ContentType::Protobuf)
        };
        let (driver, mut rx) = start(cfg).unwrap();
        match next_event(&mut rx).await {
            SchedulerEvent::Error(msg) => {
                let want = if with_credential {
                    "the master refused the framework's credentials (principal retz)"
                } else {
                    "requires framework authentication and the client sent no credentials"
                };
                assert!(msg.contains(want) && msg.contains("401"), "{msg}");
                assert!(!msg.contains("s3cret"), "{msg}");
            }
            other => panic!("expected Error, got {other:?}"),
        }
        assert!(within("end of events", rx.recv()).await.is_none());
        assert!(driver.is_stopped());
        assert_eq!(master.next_call().await.kind(), call::Type::Subscribe);
        master.no_more_calls();
    }
}

#[tokio::test]
async fn a_call_refused_with_401_is_typed_and_the_client_subscribes_again() {
    let mut master = Master::start().await;
    let feed = master.stream("stream-1", ContentType::Protobuf);
    let (driver, mut rx) =
        start(authenticated(vec![master.address()], ContentType::Protobuf)).unwrap();
    master.next_call().await;
    feed.send(&[subscribed("fw-1", 15.0)]);
    expect_subscribed(&mut rx, "fw-1").await;
    // The master stops accepting the credential: the call is refused...
    master.reply_to_next_call(401, "");
    master.push(SubscribeReply::Status(401, ""));
    let e = driver
        .decline(
            vec![OfferId {
                value: "o-1".into(),
            }],
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CallError::Unauthorized { call: "DECLINE", principal: Some(p), .. } if p == "retz"),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert!(
        e.to_string()
            .contains("refused the framework's credentials (principal retz)"),
        "{e}"
    );
    // ... the subscription is dropped, and the new SUBSCRIBE, refused too, ends the client.
    let (_, reason) = expect_disconnected(&mut rx).await;
    assert_eq!(reason, DisconnectReason::Unauthorized);
    match next_event(&mut rx).await {
        SchedulerEvent::Error(msg) => assert!(
            msg.contains("refused the framework's credentials (principal retz)"),
            "{msg}"
        ),
        other => panic!("expected Error, got {other:?}"),
    }
    assert!(within("end of events", rx.recv()).await.is_none());
    assert!(driver.is_stopped());
    assert_eq!(master.next_call().await.kind(), call::Type::Decline);
    let again = master.next_call().await;
    assert_eq!(again.kind(), call::Type::Subscribe);
    assert_eq!(again.authorization, Some(credential().basic_header()));
    master.no_more_calls();
}

#[tokio::test]
async fn a_principal_other_than_the_credentials_is_refused_before_anything_is_sent() {
    let mut cfg = authenticated(vec!["127.0.0.1:5050".into()], ContentType::Json);
    cfg.framework_info.principal = Some("someone-else".into());
    let e = start(cfg).unwrap_err();
    assert!(e.to_string().contains("someone-else"), "{e}");
}
