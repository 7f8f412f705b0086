//! Shared helpers of the agent integration tests: an agent with its event receiver, task
//! and framework builders, and a small HTTP client for the executor API (which presents
//! the executor's own token, as a real executor does) and `/files`.
//!
//! The framework's user is `nobody` when the tests run as root (the agent then runs
//! command tasks as that user, never as root), else the current user.
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
use retz_mesos_local::agent::{Agent, AgentConfig, AgentReport};
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
    pub rx: UnboundedReceiver<AgentReport>,
    pub dir: tempfile::TempDir,
}

/// Whether the tests run as root (the agent then switches users for command tasks).
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The user command tasks run as: `nobody` under root, else this user.
pub fn job_user() -> String {
    if running_as_root() {
        "nobody".into()
    } else {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map_or_else(|| "nobody".into(), |u| u.name)
    }
}

pub fn framework() -> FrameworkInfo {
    FrameworkInfo {
        user: job_user(),
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
        // Traversable, as an operator's work dir must be for the users tasks run as.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod the tempdir");
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

    pub async fn next_event(&mut self) -> AgentReport {
        match tokio::time::timeout(GUARD, self.rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("agent event channel closed"),
            Err(_) => panic!("no agent event within {GUARD:?}"),
        }
    }

    pub async fn next_update(&mut self) -> TaskStatus {
        match self.next_event().await {
            AgentReport::StatusUpdate {
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
            AgentReport::ExecutorExited {
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

    /// A client of the agent that presents each executor's own token on executor calls.
    pub fn http(&self) -> HttpClient {
        let mut c = HttpClient::new(self.agent.endpoint());
        c.agent = Some(self.agent.clone());
        c
    }

    /// The executor's token (waits until the executor exists).
    pub async fn token(&self, executor: &str) -> String {
        wait_for(|| self.agent.executor_token(&fid(), &eid(executor))).await
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
    /// When set, executor calls carry the token of the executor they name.
    pub agent: Option<Agent>,
    /// When set, GETs carry this `Authorization` value (HTTP Basic for `/files`, `/state`).
    pub basic: Option<String>,
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
            agent: None,
            basic: None,
        }
    }

    /// The same client, sending `credential` (HTTP Basic) with its GETs.
    pub fn with_basic(mut self, credential: &retz_proto::credentials::Credential) -> Self {
        self.basic = Some(credential.basic_header());
        self
    }

    /// `Authorization: Bearer <token of the executor the call names>`, when known.
    fn bearer(&self, call: &Call) -> Option<String> {
        let agent = self.agent.as_ref()?;
        let token = agent.executor_token(&call.framework_id, &call.executor_id)?;
        Some(format!("Bearer {token}"))
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
        let mut headers = Vec::new();
        if let Some(b) = &self.basic {
            headers.push(("authorization", b.as_str()));
        }
        self.send(http::Method::GET, path_and_query, &headers, Vec::new())
            .await
    }

    /// POSTs an executor call as protobuf, with the named executor's token.
    pub async fn call(&self, call: &Call) -> Reply {
        let bearer = self.bearer(call);
        self.call_as(call, bearer.as_deref()).await
    }

    /// POSTs an executor call as protobuf with the given `Authorization` value (or none).
    pub async fn call_as(&self, call: &Call, authorization: Option<&str>) -> Reply {
        let mut headers = vec![("content-type", "application/x-protobuf")];
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        self.send(
            http::Method::POST,
            "/api/v1/executor",
            &headers,
            call.encode_to_vec(),
        )
        .await
    }

    /// SUBSCRIBEs (protobuf both ways, with the executor's token) and returns the event
    /// stream.
    pub async fn subscribe(&self, call: &Call) -> EventReader {
        let bearer = self.bearer(call);
        let mut headers = vec![
            ("content-type", "application/x-protobuf"),
            ("accept", "application/x-protobuf"),
        ];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        let resp = self
            .request(
                http::Method::POST,
                "/api/v1/executor",
                &headers,
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

/// Whether a test that needs root can run: true under root; otherwise it fails under
/// `CI=true` and is skipped (with a message) elsewhere.
pub fn need_root(test: &str) -> bool {
    if running_as_root() {
        return true;
    }
    retz_testkit::require(false, &format!("{test} needs root"))
}

/// The uid and gid of a user of this machine.
pub fn ids_of(user: &str) -> (u32, u32) {
    let u = nix::unistd::User::from_name(user)
        .expect("user database")
        .unwrap_or_else(|| panic!("no user {user} on this machine"));
    (u.uid.as_raw(), u.gid.as_raw())
}
