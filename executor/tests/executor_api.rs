//! The executor API client against a scripted in-process agent (a hyper server), with the
//! task runtime on the fake kernel: no root, no Mesos.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode, header};
use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use retz_executor::api::{AgentEnv, ExecutorConfig, Exit, run};
use retz_executor::cgroup::CgroupConfig;
use retz_executor::spec::TaskSpec;
use retz_executor::sys::ExitStatus;
use retz_executor::sys::fake::{FakeBehavior, FakeLayout, FakeSys};
use retz_placement::{AffinityPolicy, CpuId, CpuSet};
use retz_proto::ContentType;
use retz_proto::executor::{Call, Event, call, event};
use retz_proto::mesos::{
    self, AgentInfo, CommandInfo, ExecutorId, ExecutorInfo, FrameworkInfo, TaskId, TaskInfo,
    TaskState, TaskStatus, command_info, task_status,
};
use retz_proto::recordio::encode_message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

type Body = Either<Full<Bytes>, Channel<Bytes>>;

/// A SUBSCRIBE connection held open by the agent.
struct Stream {
    call: Call,
    tx: Sender<Bytes>,
    ct: ContentType,
}

impl Stream {
    /// Sends an event, split across two chunks to exercise RecordIO reassembly.
    async fn send(&mut self, event: Event) {
        let mut buf = BytesMut::new();
        encode_message(self.ct, &event, &mut buf);
        let mut bytes = buf.freeze();
        let head = bytes.split_to(bytes.len() / 2);
        self.tx
            .send_data(head)
            .await
            .expect("executor reads the stream");
        self.tx
            .send_data(bytes)
            .await
            .expect("executor reads the stream");
    }
}

struct Agent {
    addr: SocketAddr,
    calls: mpsc::UnboundedReceiver<(Call, Option<String>)>,
    streams: mpsc::UnboundedReceiver<Stream>,
}

async fn start_agent() -> Agent {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let (streams_tx, streams) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let calls_tx = calls_tx.clone();
            let streams_tx = streams_tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let calls_tx = calls_tx.clone();
                    let streams_tx = streams_tx.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(handle(req, calls_tx, streams_tx).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Agent {
        addr,
        calls,
        streams,
    }
}

async fn handle(
    req: Request<Incoming>,
    calls: mpsc::UnboundedSender<(Call, Option<String>)>,
    streams: mpsc::UnboundedSender<Stream>,
) -> Response<Body> {
    let plain = |status: StatusCode, text: &str| {
        Response::builder()
            .status(status)
            .body(Either::Left(Full::new(Bytes::from(text.to_owned()))))
            .unwrap()
    };
    if req.method() != http::Method::POST || req.uri().path() != "/api/v1/executor" {
        return plain(StatusCode::NOT_FOUND, "wrong endpoint");
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(ContentType::from_header);
    let Some(ct) = ct else {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad content type");
    };
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let call: Call = match ct.decode(&body) {
        Ok(c) => c,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if call.r#type == Some(call::Type::Update as i32) {
        let status = &call.update.as_ref().unwrap().status;
        let uuid = status.uuid.as_deref().unwrap_or_default();
        if uuid::Uuid::from_slice(uuid).map(|u| u.get_version_num()) != Ok(4)
            || status.source() != task_status::Source::Executor
        {
            return plain(StatusCode::BAD_REQUEST, "bad update");
        }
    }
    let subscribe = call.r#type == Some(call::Type::Subscribe as i32);
    let _ = calls.send((call.clone(), auth));
    if subscribe {
        let (tx, body) = Channel::new(64);
        let _ = streams.send(Stream { call, tx, ct });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, ct.mime())
            .body(Either::Right(body))
            .unwrap()
    } else {
        plain(StatusCode::ACCEPTED, "")
    }
}

impl Agent {
    async fn stream(&mut self) -> Stream {
        tokio::time::timeout(Duration::from_secs(30), self.streams.recv())
            .await
            .expect("a SUBSCRIBE within 30 s")
            .unwrap()
    }

    /// The next UPDATE's status (skipping the SUBSCRIBE calls).
    async fn update(&mut self) -> TaskStatus {
        loop {
            let (call, _) = tokio::time::timeout(Duration::from_secs(30), self.calls.recv())
                .await
                .expect("a call within 30 s")
                .unwrap();
            if let Some(update) = call.update {
                return update.status;
            }
        }
    }
}

fn event(kind: event::Type) -> Event {
    Event {
        r#type: Some(kind as i32),
        ..Event::default()
    }
}

fn subscribed() -> Event {
    Event {
        subscribed: Some(event::Subscribed {
            executor_info: ExecutorInfo {
                executor_id: ExecutorId {
                    value: "exec".into(),
                },
                command: Some(CommandInfo {
                    uris: vec![command_info::Uri {
                        value: "http://repo/app.tgz".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
            framework_info: FrameworkInfo {
                user: "batch".into(),
                name: "retz".into(),
                ..Default::default()
            },
            agent_info: AgentInfo {
                hostname: "localhost".into(),
                ..Default::default()
            },
            container_id: None,
        }),
        ..event(event::Type::Subscribed)
    }
}

fn launch(id: &str, data: Option<Vec<u8>>) -> Event {
    Event {
        launch: Some(event::Launch {
            task: TaskInfo {
                name: id.into(),
                task_id: TaskId { value: id.into() },
                data,
                command: Some(CommandInfo {
                    value: Some("echo plain".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        }),
        ..event(event::Type::Launch)
    }
}

fn kill(id: &str) -> Event {
    Event {
        kill: Some(event::Kill {
            task_id: TaskId { value: id.into() },
            kill_policy: Some(mesos::KillPolicy {
                grace_period: Some(mesos::DurationInfo {
                    nanoseconds: 10_000_000,
                }),
            }),
        }),
        ..event(event::Type::Kill)
    }
}

fn ack(status: &TaskStatus) -> Event {
    Event {
        acknowledged: Some(event::Acknowledged {
            task_id: status.task_id.clone(),
            uuid: status.uuid.clone().unwrap(),
        }),
        ..event(event::Type::Acknowledged)
    }
}

fn spec_json(cpuset: &str) -> Vec<u8> {
    TaskSpec {
        command: "run".into(),
        env: BTreeMap::new(),
        cpus: 1,
        mem_mb: 32,
        gpus: 0,
        gpu_ids: None,
        cpuset: Some(cpuset.parse().unwrap()),
        mem_nodes: Some("0".parse().unwrap()),
        affinity: AffinityPolicy::NumaStrict,
        mem_policy: None,
        pin_required: true,
        job_id: Some(1),
        app: Some("app".into()),
        ports: Vec::new(),
        user: None,
    }
    .to_vec()
}

struct Rig {
    _tmp: tempfile::TempDir,
    fake: FakeSys,
    agent: Agent,
    stop: Option<oneshot::Sender<()>>,
    executor: JoinHandle<Result<Exit, String>>,
}

async fn rig(ct: ContentType, checkpoint: bool, resend_after: Duration) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeSys::new(tmp.path(), FakeLayout::Hybrid).unwrap();
    let sandbox = tmp.path().join("sandbox");
    std::fs::create_dir(&sandbox).unwrap();
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(enc);
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "lib/x", &b"hi"[..]).unwrap();
    std::fs::write(
        sandbox.join("app.tgz"),
        tar.into_inner().unwrap().finish().unwrap(),
    )
    .unwrap();

    let agent = start_agent().await;
    let env = AgentEnv {
        endpoint: agent.addr.to_string(),
        framework_id: "fw-0001".into(),
        executor_id: "exec".into(),
        sandbox,
        checkpoint,
        shutdown_grace: Duration::from_secs(3),
        recovery_timeout: Duration::from_secs(30),
        backoff_max: Duration::from_millis(100),
        auth_token: Some("sekrit".into()),
    };
    let mut config = ExecutorConfig::new(env);
    config.content_type = ct;
    config.resend_after = resend_after;
    config.backoff_min = Duration::from_millis(10);
    config.runtime.cgroups = CgroupConfig {
        root: fake.cgroup_root().to_path_buf(),
        scope: "exec".into(),
        ..CgroupConfig::default()
    };
    config.runtime.proc_root = fake.proc_root().to_path_buf();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let sys = Arc::new(fake.clone());
    let executor = tokio::spawn(async move {
        run(sys, config, async move {
            let _ = stop_rx.await;
        })
        .await
        .map_err(|e| e.to_string())
    });
    Rig {
        _tmp: tmp,
        fake,
        agent,
        stop: Some(stop_tx),
        executor,
    }
}

async fn finished(rig: Rig) -> Result<Exit, String> {
    tokio::time::timeout(Duration::from_secs(30), rig.executor)
        .await
        .expect("the executor ends within 30 s")
        .unwrap()
}

#[tokio::test]
async fn launch_run_finish_then_shutdown_protobuf() {
    let mut rig = rig(ContentType::Protobuf, false, Duration::from_secs(60)).await;
    let mut s = rig.agent.stream().await;
    let first = s.call.clone();
    assert_eq!(first.executor_id.value, "exec");
    assert_eq!(first.framework_id.value, "fw-0001");
    assert!(
        first
            .subscribe
            .as_ref()
            .unwrap()
            .unacknowledged_updates
            .is_empty()
    );
    s.send(subscribed()).await;
    s.send(launch("t1", Some(spec_json("1")))).await;

    let starting = rig.agent.update().await;
    assert_eq!(starting.state(), TaskState::TaskStarting);
    assert_eq!(starting.executor_id.as_ref().unwrap().value, "exec");
    s.send(ack(&starting)).await;
    let running = rig.agent.update().await;
    assert_eq!(running.state(), TaskState::TaskRunning);
    let message = running.message.clone().unwrap();
    assert!(
        message.contains("pinned to CPUs 1") && message.contains("cgroup v1"),
        "{message}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(running.data.as_deref().unwrap()).unwrap();
    assert_eq!(report["pinning"]["cpus_seen"], "1", "{report}");
    assert_eq!(report["pinning"]["outcome"], "verified", "{report}");
    assert_eq!(report["pinning"]["mechanism"], "cgroup-v1", "{report}");
    s.send(ack(&running)).await;

    let pids = rig.fake.alive_pids();
    assert_eq!(pids.len(), 1);
    rig.fake.exit(pids[0], ExitStatus::Code(0));
    let done = rig.agent.update().await;
    assert_eq!(done.state(), TaskState::TaskFinished);
    s.send(ack(&done)).await;

    s.send(event(event::Type::Shutdown)).await;
    assert_eq!(finished(rig).await, Ok(Exit::Shutdown));
}

#[tokio::test]
async fn kill_invalid_unknown_and_shutdown_json() {
    let mut rig = rig(ContentType::Json, false, Duration::from_secs(60)).await;
    rig.fake.set_behavior(|_| FakeBehavior {
        ignore_term: true,
        ..Default::default()
    });
    let mut s = rig.agent.stream().await;
    s.send(subscribed()).await;
    s.send(launch("a", Some(spec_json("0")))).await;
    s.send(launch("b", Some(spec_json("1")))).await;
    s.send(launch("bad", Some(b"{not json".to_vec()))).await;
    s.send(launch("plain", None)).await;
    let mut states: BTreeMap<(String, i32), TaskStatus> = BTreeMap::new();
    while states.len() < 7 {
        let st = rig.agent.update().await;
        s.send(ack(&st)).await;
        states.insert((st.task_id.value.clone(), st.state), st);
    }
    let get = |id: &str, state: TaskState| states.get(&(id.to_owned(), state as i32)).cloned();
    let bad = get("bad", TaskState::TaskFailed).expect("bad task failed");
    assert_eq!(bad.reason(), task_status::Reason::TaskInvalid);
    assert!(bad.message.unwrap().contains("not a Retz task spec"));
    assert!(
        get("a", TaskState::TaskRunning).is_some() && get("b", TaskState::TaskRunning).is_some()
    );
    let plain = get("plain", TaskState::TaskRunning).expect("plain command runs");
    assert!(plain.message.unwrap().contains("not pinned"));

    s.send(kill("a")).await;
    let killed = rig.agent.update().await;
    assert_eq!(
        (killed.task_id.value.as_str(), killed.state()),
        ("a", TaskState::TaskKilled)
    );
    assert!(
        killed.message.as_deref().unwrap().contains("SIGKILL"),
        "{killed:?}"
    );
    s.send(ack(&killed)).await;

    s.send(kill("ghost")).await;
    let lost = rig.agent.update().await;
    assert_eq!(
        (lost.task_id.value.as_str(), lost.state()),
        ("ghost", TaskState::TaskLost)
    );
    s.send(ack(&lost)).await;

    s.send(event(event::Type::Shutdown)).await;
    let mut ended = Vec::new();
    while ended.len() < 2 {
        let st = rig.agent.update().await;
        assert_eq!(st.state(), TaskState::TaskKilled, "{st:?}");
        ended.push(st.task_id.value.clone());
        s.send(ack(&st)).await;
    }
    ended.sort();
    assert_eq!(ended, vec!["b", "plain"]);
    let fake = rig.fake.clone();
    assert_eq!(finished(rig).await, Ok(Exit::Shutdown));
    assert!(fake.alive_pids().is_empty());
    assert!(!fake.cgroup_root().join("cpuset/retz/exec").exists());
}

#[tokio::test]
async fn checkpointing_executor_resubscribes_with_what_is_unacknowledged() {
    let mut rig = rig(ContentType::Protobuf, true, Duration::from_secs(60)).await;
    let mut s = rig.agent.stream().await;
    s.send(subscribed()).await;
    s.send(launch("t", Some(spec_json("1")))).await;
    let starting = rig.agent.update().await;
    let running = rig.agent.update().await;
    assert_eq!(running.state(), TaskState::TaskRunning);
    // The agent restarts: the stream breaks with nothing acknowledged.
    drop(s);
    let mut s = rig.agent.stream().await;
    let sub = s.call.subscribe.clone().unwrap();
    let uuids: Vec<_> = sub
        .unacknowledged_updates
        .iter()
        .map(|u| u.status.uuid.clone())
        .collect();
    assert_eq!(uuids, vec![starting.uuid.clone(), running.uuid.clone()]);
    assert_eq!(sub.unacknowledged_tasks.len(), 1);
    assert_eq!(sub.unacknowledged_tasks[0].task_id.value, "t");
    s.send(subscribed()).await;
    s.send(ack(&starting)).await;
    s.send(ack(&running)).await;
    // The task kept running across the reconnection.
    let pids = rig.fake.alive_pids();
    assert_eq!(pids.len(), 1);
    rig.fake.exit(pids[0], ExitStatus::Code(0));
    let done = rig.agent.update().await;
    assert_eq!(done.state(), TaskState::TaskFinished);
    s.send(ack(&done)).await;
    rig.stop.take().unwrap().send(()).unwrap();
    assert_eq!(finished(rig).await, Ok(Exit::Stopped));
}

#[tokio::test]
async fn without_checkpointing_losing_the_agent_kills_the_tasks() {
    let mut rig = rig(ContentType::Protobuf, false, Duration::from_secs(60)).await;
    let mut s = rig.agent.stream().await;
    s.send(subscribed()).await;
    s.send(launch("t", Some(spec_json("0")))).await;
    rig.agent.update().await;
    assert_eq!(rig.agent.update().await.state(), TaskState::TaskRunning);
    drop(s);
    let fake = rig.fake.clone();
    assert!(matches!(finished(rig).await, Ok(Exit::AgentGone(_))));
    assert!(fake.alive_pids().is_empty());
}

#[tokio::test]
async fn unacknowledged_updates_are_sent_again() {
    let mut rig = rig(ContentType::Json, false, Duration::from_millis(50)).await;
    let mut s = rig.agent.stream().await;
    s.send(subscribed()).await;
    s.send(launch("t", Some(spec_json("0")))).await;
    let starting = rig.agent.update().await;
    s.send(ack(&starting)).await;
    let running = rig.agent.update().await;
    // Not acknowledged: it comes again, same uuid.
    loop {
        let again = rig.agent.update().await;
        if again.uuid == starting.uuid {
            continue; // a resend raced with the acknowledgement
        }
        assert_eq!(again.uuid, running.uuid);
        break;
    }
    s.send(ack(&running)).await;
    rig.stop.take().unwrap().send(()).unwrap();
    let killed = loop {
        let st = rig.agent.update().await;
        if st.state() == TaskState::TaskKilled {
            break st;
        }
    };
    s.send(ack(&killed)).await;
    assert_eq!(finished(rig).await, Ok(Exit::Stopped));
}

#[tokio::test]
async fn calls_carry_the_bearer_token_and_unreachable_agents_are_reported() {
    let mut rig = rig(ContentType::Protobuf, false, Duration::from_secs(60)).await;
    let (call, auth) = rig.agent.calls.recv().await.unwrap();
    assert_eq!(call.r#type, Some(call::Type::Subscribe as i32));
    assert_eq!(auth.as_deref(), Some("Bearer sekrit"));
    rig.stop.take().unwrap().send(()).unwrap();
    assert_eq!(finished(rig).await, Ok(Exit::Stopped));

    // Nobody listens on this port.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeSys::new(tmp.path(), FakeLayout::V1).unwrap();
    let mut config = ExecutorConfig::new(AgentEnv {
        endpoint: addr.to_string(),
        framework_id: "f".into(),
        executor_id: "e".into(),
        sandbox: tmp.path().into(),
        checkpoint: false,
        shutdown_grace: Duration::from_secs(1),
        recovery_timeout: Duration::from_secs(1),
        backoff_max: Duration::from_millis(20),
        auth_token: None,
    });
    config.backoff_min = Duration::from_millis(1);
    let err = run(Arc::new(fake), config, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&addr.to_string()), "{err}");
}

/// Skips (or fails under CI) when `ok` is false.
fn require(ok: bool, what: &str) -> bool {
    retz_testkit::require(ok, what)
}

/// The real binary, started as an agent would (no arguments, MESOS_* environment), runs a
/// task pinned to one CPU with the real kernel, then shuts down leaving no cgroup.
#[tokio::test]
async fn the_binary_as_started_by_an_agent() {
    if !require(nix::unistd::geteuid().is_root(), "not root") {
        return;
    }
    if !require(
        std::path::Path::new("/sys/fs/cgroup/cpuset/cpuset.cpus").exists()
            || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
                .is_ok_and(|c| c.contains("cpuset")),
        "no cpuset cgroup controller",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sandbox = tmp.path().join("sandbox");
    std::fs::create_dir(&sandbox).unwrap();
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(enc);
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "lib/x", &b"hi\n"[..]).unwrap();
    std::fs::write(
        sandbox.join("app.tgz"),
        tar.into_inner().unwrap().finish().unwrap(),
    )
    .unwrap();

    let mut agent = start_agent().await;
    let executor_id = format!("e2e-{}", std::process::id());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_retz-executor"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MESOS_AGENT_ENDPOINT", agent.addr.to_string())
        .env("MESOS_FRAMEWORK_ID", "fw-e2e")
        .env("MESOS_EXECUTOR_ID", &executor_id)
        .env("MESOS_SANDBOX", &sandbox)
        .env("MESOS_DIRECTORY", &sandbox)
        .env("MESOS_CHECKPOINT", "0")
        .env("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "3secs")
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let mut s = agent.stream().await;
    s.send(subscribed()).await;
    let allowed = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|l| l.parse::<CpuSet>().unwrap())
        .unwrap();
    let cpu = if allowed.contains(CpuId(1)) { "1" } else { "0" };
    let mut spec = TaskSpec::from_slice(&spec_json(cpu)).unwrap();
    spec.command = "grep Cpus_allowed_list /proc/self/status; cat \"$RETZ_PVNAME/lib/x\"".into();
    s.send(launch("job-1", Some(spec.to_vec()))).await;
    let mut states = Vec::new();
    let mut running_message = String::new();
    while !states.contains(&TaskState::TaskFinished) {
        let st = agent.update().await;
        s.send(ack(&st)).await;
        assert!(
            !matches!(st.state(), TaskState::TaskFailed | TaskState::TaskKilled),
            "{st:?}"
        );
        if st.state() == TaskState::TaskRunning {
            running_message = st.message.clone().unwrap_or_default();
        }
        states.push(st.state());
    }
    assert_eq!(
        states,
        vec![
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskFinished
        ]
    );
    assert!(
        running_message.contains(&format!("pinned to CPUs {cpu}")),
        "{running_message}"
    );
    let out = std::fs::read_to_string(sandbox.join("tasks/job-1/stdout")).unwrap();
    assert_eq!(out, format!("Cpus_allowed_list:\t{cpu}\nhi\n"));

    s.send(event(event::Type::Shutdown)).await;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the executor exits after SHUTDOWN")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let scope = retz_executor::sandbox::task_key(&format!("fw-e2e_{executor_id}")).unwrap();
    assert!(
        !std::path::Path::new("/sys/fs/cgroup/cpuset/retz")
            .join(&scope)
            .exists()
    );
}
