//! Shared helpers of the agent integration tests: an agent with its event receiver, task
//! and framework builders, and a small HTTP client for the executor API and `/files`.
//!
//! Waits are bounded by a generous hang guard ([`GUARD`]) so that a broken agent fails a
//! test instead of hanging it; no test asserts on how long anything takes.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message as _;
use retz_mesos_local::agent::{Agent, AgentConfig, AgentEvent};
use retz_proto::executor::{Call, Event, call};
use retz_proto::mesos::task_status::Source;
use retz_proto::mesos::{
    AgentId, CommandInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, TaskId, TaskInfo,
    TaskState, TaskStatus,
};
use tokio::sync::mpsc::UnboundedReceiver;

/// Upper bound of any single wait in these tests (a hang guard, not a timing assertion).
pub const GUARD: Duration = Duration::from_secs(60);

pub const FID: &str = "M-0000";

pub struct Harness {
    pub agent: Agent,
    pub rx: UnboundedReceiver<AgentEvent>,
    pub dir: tempfile::TempDir,
}

pub fn framework() -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: "agent-test".into(),
        id: Some(FrameworkId { value: FID.into() }),
        ..Default::default()
    }
}

pub fn fid() -> FrameworkId {
    FrameworkId { value: FID.into() }
}

pub fn tid(s: &str) -> TaskId {
    TaskId { value: s.into() }
}

pub fn eid(s: &str) -> ExecutorId {
    ExecutorId { value: s.into() }
}

pub fn shell(cmd: &str) -> CommandInfo {
    CommandInfo {
        value: Some(cmd.into()),
        ..Default::default()
    }
}

pub fn command_task(id: &str, command: CommandInfo) -> TaskInfo {
    TaskInfo {
        name: format!("task {id}"),
        task_id: tid(id),
        agent_id: AgentId {
            value: "M-S0".into(),
        },
        command: Some(command),
        ..Default::default()
    }
}

pub fn executor_task(id: &str) -> TaskInfo {
    TaskInfo {
        name: format!("task {id}"),
        task_id: tid(id),
        agent_id: AgentId {
            value: "M-S0".into(),
        },
        data: Some(id.as_bytes().to_vec()),
        ..Default::default()
    }
}

pub fn executor_info(id: &str, command: CommandInfo) -> ExecutorInfo {
    ExecutorInfo {
        executor_id: eid(id),
        framework_id: Some(fid()),
        command: Some(command),
        name: Some(format!("executor {id}")),
        ..Default::default()
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut AgentConfig)) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = AgentConfig::new(
            AgentId {
                value: "M-S0".into(),
            },
            dir.path().join("work"),
        );
        let topology =
            retz_placement::topology::Topology::from_synthetic("pack:1 numa:1 core:2 pu:1", 1024)
                .expect("synthetic topology");
        (cfg.resources, cfg.attributes) =
            retz_mesos_local::agent::agent_resources(topology.spec(), 1000);
        f(&mut cfg);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let agent = Agent::start(cfg, tx).await.expect("agent starts");
        Harness { agent, rx, dir }
    }

    pub async fn next_event(&mut self) -> AgentEvent {
        match tokio::time::timeout(GUARD, self.rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("agent event channel closed"),
            Err(_) => panic!("no agent event within {GUARD:?}"),
        }
    }

    pub async fn next_update(&mut self) -> TaskStatus {
        match self.next_event().await {
            AgentEvent::StatusUpdate {
                status,
                framework_id,
                agent_id,
            } => {
                assert_eq!(framework_id.value, FID);
                assert_eq!(agent_id.value, "M-S0");
                assert_eq!(status.uuid.as_ref().map(Vec::len), Some(16), "{status:?}");
                status
            }
            other => panic!("expected a status update, got {other:?}"),
        }
    }

    /// Acknowledges an update as the master would.
    pub fn ack(&self, status: &TaskStatus) {
        self.agent.acknowledge(
            &fid(),
            &status.task_id,
            status.uuid.as_deref().unwrap_or_default(),
        );
    }

    /// The next update, which must be `state` for `task`; acknowledged.
    pub async fn expect_update(&mut self, task: &str, state: TaskState) -> TaskStatus {
        let s = self.next_update().await;
        assert_eq!(s.task_id.value, task, "{s:?}");
        assert_eq!(s.state(), state, "{s:?}");
        self.ack(&s);
        s
    }

    pub async fn expect_exited(&mut self, executor: &str) -> i32 {
        match self.next_event().await {
            AgentEvent::ExecutorExited {
                executor_id,
                wait_status,
                framework_id,
                ..
            } => {
                assert_eq!(framework_id.value, FID);
                assert_eq!(executor_id.value, executor);
                wait_status
            }
            other => panic!("expected ExecutorExited of {executor}, got {other:?}"),
        }
    }

    pub fn sandbox(&self, executor: &str) -> PathBuf {
        self.agent
            .sandbox_dir(&fid(), &eid(executor))
            .expect("sandbox of a launched executor")
    }

    /// Waits until the executor's process is started; returns its pid.
    pub async fn wait_pid(&self, executor: &str) -> u32 {
        wait_for(|| self.agent.executor_pid(&fid(), &eid(executor))).await
    }

    pub fn http(&self) -> HttpClient {
        HttpClient::new(self.agent.endpoint())
    }
}

/// Polls `f` until it yields a value (hang guard [`GUARD`]).
pub async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {GUARD:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Waits until the file at `path` holds `needle` (it is being written by a process).
pub async fn read_when_contains(path: &Path, needle: &str) -> String {
    wait_for(|| {
        std::fs::read_to_string(path)
            .ok()
            .filter(|s| s.contains(needle))
    })
    .await
}

pub fn is_pid_alive(pid: u32) -> bool {
    retz_mesos_local::agent::process::pid_alive(pid)
}

// ---------------------------------------------------------------------- HTTP

pub struct HttpClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl HttpClient {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        HttpClient {
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn request(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> hyper::Response<hyper::body::Incoming> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        tokio::time::timeout(GUARD, self.client.request(req))
            .await
            .expect("hang guard")
            .expect("HTTP request")
    }

    pub async fn send(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let resp = self.request(method, path_and_query, headers, body).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = tokio::time::timeout(GUARD, resp.into_body().collect())
            .await
            .expect("hang guard")
            .expect("body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path_and_query: &str) -> Reply {
        self.send(http::Method::GET, path_and_query, &[], Vec::new())
            .await
    }

    /// POSTs an executor call as protobuf.
    pub async fn call(&self, call: &Call) -> Reply {
        self.send(
            http::Method::POST,
            "/api/v1/executor",
            &[("content-type", "application/x-protobuf")],
            call.encode_to_vec(),
        )
        .await
    }

    /// SUBSCRIBEs (protobuf both ways) and returns the event stream.
    pub async fn subscribe(&self, call: &Call) -> EventReader {
        let resp = self
            .request(
                http::Method::POST,
                "/api/v1/executor",
                &[
                    ("content-type", "application/x-protobuf"),
                    ("accept", "application/x-protobuf"),
                ],
                call.encode_to_vec(),
            )
            .await;
        assert_eq!(resp.status(), http::StatusCode::OK);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/x-protobuf"
        );
        assert!(resp.headers().get("mesos-stream-id").is_none());
        EventReader {
            body: resp.into_body(),
            buf: BytesMut::new(),
        }
    }
}

/// Reads RecordIO-framed protobuf events from a SUBSCRIBE response.
pub struct EventReader {
    body: hyper::body::Incoming,
    buf: BytesMut,
}

impl EventReader {
    fn take_record(&mut self) -> Option<Bytes> {
        let nl = self.buf.iter().position(|&b| b == b'\n')?;
        let len: usize = std::str::from_utf8(&self.buf[..nl])
            .expect("ascii length")
            .parse()
            .expect("decimal length");
        if self.buf.len() < nl + 1 + len {
            return None;
        }
        self.buf.advance(nl + 1);
        Some(self.buf.split_to(len).freeze())
    }

    /// The next event, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(rec) = self.take_record() {
                return Some(Event::decode(rec).expect("protobuf event"));
            }
            let frame = tokio::time::timeout(GUARD, self.body.frame())
                .await
                .expect("no event within the hang guard");
            match frame {
                None => return None,
                Some(Err(e)) => panic!("stream error: {e}"),
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
            }
        }
    }

    pub async fn expect(&mut self, ty: retz_proto::executor::event::Type) -> Event {
        let ev = self.next().await.expect("stream ended");
        assert_eq!(ev.r#type(), ty, "{ev:?}");
        ev
    }
}

// ---------------------------------------------------------------------- executor calls

pub fn base_call(executor: &str, ty: call::Type) -> Call {
    Call {
        executor_id: eid(executor),
        framework_id: fid(),
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

pub fn subscribe_call(executor: &str) -> Call {
    Call {
        subscribe: Some(call::Subscribe::default()),
        ..base_call(executor, call::Type::Subscribe)
    }
}

pub fn new_uuid() -> Vec<u8> {
    uuid::Uuid::new_v4().as_bytes().to_vec()
}

pub fn executor_status(task: &str, state: TaskState) -> TaskStatus {
    TaskStatus {
        task_id: tid(task),
        state: state as i32,
        source: Some(Source::Executor as i32),
        uuid: Some(new_uuid()),
        timestamp: Some(1.7e9),
        ..Default::default()
    }
}

pub fn update_call(executor: &str, status: TaskStatus) -> Call {
    Call {
        update: Some(call::Update { status }),
        ..base_call(executor, call::Type::Update)
    }
}
