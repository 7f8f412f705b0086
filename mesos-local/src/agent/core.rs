//! The agent runtime: the shared state behind an [`Agent`](super::Agent) handle and the
//! life cycle of executors and command tasks (launch, fetch, spawn, supervise, kill,
//! shut down, exit), plus the status update forwarding loop.
//!
//! Layout, by phase: this file holds the records and state, the start, status update
//! forwarding and the resend loop; `launch` (LAUNCH / LAUNCH_GROUP, command tasks,
//! delivery to executors), `container` (an executor's record and run: sandbox, fetch,
//! spawn, registration timeout, exit, `finalize`), `kill` (kill, shutdown, queries and
//! fault injection), `subscribe` (the executor API: SUBSCRIBE, UPDATE, MESSAGE) and
//! `recovery` (checkpoints and recovery after a crash).
//!
//! Concurrency: one `std::sync::Mutex<State>`, never held across an `.await`. Background
//! tasks (process supervisors, timers, the HTTP server, the resend loop) hold only a
//! `Weak<Shared>`, so dropping the last `Agent` handle drops `Shared`, whose `Drop`
//! kills every process group and stops every background task.
//!
//! Invariants:
//! * an executor record is identified by (framework id, executor id) and its container
//!   id; a background task acting on a record first checks the container id, so it never
//!   touches a newer run of the same executor;
//! * a record leaves `executors` only through `finalize`, which ends its non-terminal
//!   tasks with agent-generated updates and then reports `ExecutorExited`;
//! * once the agent is dead (`kill_agent`, `stop`), no event is sent.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use nix::sys::signal::Signal;
use retz_proto::executor::{Event, event};
use retz_proto::mesos::framework_info::capability::Type as Capability;
use retz_proto::mesos::task_status::{Reason, Source};
use retz_proto::mesos::{
    AgentId, AgentInfo, CommandInfo, ContainerId, ContainerStatus, ExecutorId, ExecutorInfo,
    FrameworkId, FrameworkInfo, KillPolicy, TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus,
};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::AbortHandle;

use super::env::{EnvContext, executor_environment, format_duration};
use super::fetcher::Fetcher;
use super::status_updates::{StatusUpdateManager, UpdateOutcome};
use super::switch_user::{self, JobUser};
use super::wire::{ContentType, encode_record};
use super::{AgentConfig, AgentError, AgentReport, DEFAULT_KILL_GRACE_PERIOD, process, sandbox};

mod container;
mod kill;
mod launch;
mod recovery;
mod subscribe;

use self::launch::{deliver, send_launch};

/// How many finished executors a framework keeps for `/state`.
const COMPLETED_EXECUTORS_KEPT: usize = 100;
/// How many finished tasks the agent remembers (to ignore late kills of them).
const FINISHED_TASKS_KEPT: usize = 10_000;

pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Something sent to an executor as one LAUNCH or LAUNCH_GROUP event.
#[derive(Debug, Clone)]
pub(crate) enum Launchable {
    Task(Box<TaskInfo>),
    Group(TaskGroupInfo),
}

impl Launchable {
    pub(crate) fn tasks(&self) -> Vec<&TaskInfo> {
        match self {
            Launchable::Task(t) => vec![&**t],
            Launchable::Group(g) => g.tasks.iter().collect(),
        }
    }
}

/// A task the agent knows, with its latest state.
#[derive(Debug, Clone)]
pub(crate) struct TaskRec {
    pub(crate) info: TaskInfo,
    pub(crate) state: TaskState,
    pub(crate) statuses: Vec<(TaskState, f64)>,
    /// Tasks launched together in one LAUNCH_GROUP share a group number.
    pub(crate) group: Option<u64>,
}

impl TaskRec {
    fn new(info: TaskInfo, group: Option<u64>) -> Self {
        TaskRec {
            info,
            state: TaskState::TaskStaging,
            statuses: Vec::new(),
            group,
        }
    }
}

/// Where an executor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Sandbox, fetch, spawn.
    Launching,
    /// Process running, not subscribed yet (custom executors only).
    Registering,
    /// Subscribed (custom executors) or running (command tasks).
    Running,
}

/// What a new executor record runs: a custom executor with the items queued for it, or
/// a command task (its task) as a user (`None`: the agent's).
pub(crate) enum NewRun {
    Custom(Vec<Launchable>),
    Command(BTreeMap<String, TaskRec>, Option<JobUser>),
}

/// How the tasks left on an executor end when it goes away.
#[derive(Debug, Clone)]
pub(crate) struct TaskEnd {
    pub(crate) state: TaskState,
    pub(crate) reason: Reason,
    pub(crate) message: String,
}

impl TaskEnd {
    /// A launch refused as invalid (TASK_ERROR, REASON_TASK_INVALID) with `message`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        TaskEnd {
            state: TaskState::TaskError,
            reason: Reason::TaskInvalid,
            message: message.into(),
        }
    }

    fn executor_terminated() -> Self {
        TaskEnd {
            state: TaskState::TaskFailed,
            reason: Reason::ExecutorTerminated,
            message: "Executor terminated".into(),
        }
    }
}

/// The open subscription stream of an executor.
#[derive(Debug)]
pub(crate) struct StreamTx {
    pub(crate) tx: UnboundedSender<Bytes>,
    pub(crate) content_type: ContentType,
    pub(crate) generation: u64,
}

impl StreamTx {
    pub(crate) fn send(&self, ev: &Event) -> bool {
        let mut buf = BytesMut::new();
        encode_record(&self.content_type.encode(ev), &mut buf);
        self.tx.send(buf.freeze()).is_ok()
    }
}

/// One executor (or command task) on this agent.
#[derive(Debug)]
pub(crate) struct ExecRec {
    pub(crate) info: ExecutorInfo,
    pub(crate) command_task: bool,
    pub(crate) container_id: String,
    pub(crate) directory: PathBuf,
    pub(crate) phase: Phase,
    pub(crate) pid: Option<u32>,
    pub(crate) stream: Option<StreamTx>,
    pub(crate) queued: Vec<Launchable>,
    pub(crate) tasks: BTreeMap<String, TaskRec>,
    pub(crate) completed_tasks: Vec<TaskRec>,
    /// Tasks the executor showed it knows (sent an update about, or listed as
    /// unacknowledged when re-subscribing).
    pub(crate) known: HashSet<String>,
    pub(crate) checkpoint: bool,
    pub(crate) grace: Duration,
    pub(crate) end: Option<TaskEnd>,
    /// Command task: a kill was requested (its exit is TASK_KILLED).
    pub(crate) killing: bool,
    pub(crate) shutting_down: bool,
    pub(crate) run_task: Option<AbortHandle>,
    pub(crate) started: f64,
    /// Its executor API token (see `auth`).
    pub(crate) token: super::auth::Token,
    /// The user a command task runs as (`None`: the agent's user).
    pub(crate) run_as: Option<JobUser>,
    /// Recovered from a checkpoint after an agent restart: not this agent's child (it
    /// is watched through `/proc`), and its first SUBSCRIBE is a re-subscription.
    pub(crate) recovered: bool,
    /// The start time of `pid` (see `checkpoint::pid_start_time`).
    pub(crate) pid_start: Option<u64>,
}

impl ExecRec {
    pub(crate) fn send(&self, ev: &Event) -> bool {
        self.stream.as_ref().is_some_and(|s| s.send(ev))
    }

    fn holds(&self, task_id: &str) -> bool {
        self.tasks.contains_key(task_id)
            || self
                .queued
                .iter()
                .any(|q| q.tasks().iter().any(|t| t.task_id.value == task_id))
    }

    fn pending_kill_grace(&self, policy: Option<&KillPolicy>, task_id: &str) -> Duration {
        let from_policy = |p: &KillPolicy| {
            p.grace_period
                .as_ref()
                .map(|d| Duration::from_nanos(u64::try_from(d.nanoseconds).unwrap_or(0)))
        };
        policy
            .and_then(from_policy)
            .or_else(|| {
                self.tasks
                    .get(task_id)
                    .and_then(|t| t.info.kill_policy.as_ref())
                    .and_then(from_policy)
            })
            .unwrap_or(DEFAULT_KILL_GRACE_PERIOD)
    }
}

/// A framework with executors on this agent.
#[derive(Debug)]
pub(crate) struct FrameworkRec {
    pub(crate) info: FrameworkInfo,
    pub(crate) executors: BTreeMap<String, ExecRec>,
    pub(crate) completed: VecDeque<serde_json::Value>,
}

impl FrameworkRec {
    fn has_capability(&self, cap: Capability) -> bool {
        self.info.capabilities.iter().any(|c| c.r#type() == cap)
    }
}

/// Everything mutable of an agent.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) frameworks: BTreeMap<String, FrameworkRec>,
    pub(crate) sum: StatusUpdateManager,
    pub(crate) removed: HashSet<String>,
    pub(crate) dead: bool,
    pub(crate) next_number: u64,
    finished: HashSet<(String, String)>,
    finished_order: VecDeque<(String, String)>,
}

impl State {
    pub(crate) fn number(&mut self) -> u64 {
        self.next_number += 1;
        self.next_number
    }

    pub(crate) fn exec_mut(&mut self, fid: &str, eid: &str) -> Option<&mut ExecRec> {
        self.frameworks.get_mut(fid)?.executors.get_mut(eid)
    }

    fn exec_run_token(&self, fid: &str, eid: &str) -> Option<String> {
        let rec = self.frameworks.get(fid)?.executors.get(eid)?;
        Some(rec.token.as_str().to_owned())
    }

    fn exec_run_mut(&mut self, fid: &str, eid: &str, cid: &str) -> Option<&mut ExecRec> {
        self.exec_mut(fid, eid).filter(|r| r.container_id == cid)
    }

    fn remember_finished(&mut self, fid: &str, tid: &str) {
        let key = (fid.to_string(), tid.to_string());
        if self.finished.insert(key.clone()) {
            self.finished_order.push_back(key);
            while self.finished_order.len() > FINISHED_TASKS_KEPT {
                if let Some(old) = self.finished_order.pop_front() {
                    self.finished.remove(&old);
                }
            }
        }
    }
}

/// The agent behind the handles.
pub(crate) struct Shared {
    pub(crate) cfg: AgentConfig,
    pub(crate) endpoint: SocketAddr,
    pub(crate) start_time: f64,
    events: UnboundedSender<AgentReport>,
    fetcher: Fetcher,
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    sum_wake: Arc<Notify>,
    background: Mutex<Vec<AbortHandle>>,
    me: Weak<Shared>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let st = match self.state.get_mut() {
            Ok(st) => st,
            Err(poisoned) => poisoned.into_inner(),
        };
        st.dead = true;
        for fw in st.frameworks.values() {
            for rec in fw.executors.values() {
                if let Some(pid) = rec.pid {
                    process::signal_group(pid, Signal::SIGKILL);
                }
                if let Some(h) = &rec.run_task {
                    h.abort();
                }
            }
        }
        let bg = match self.background.get_mut() {
            Ok(bg) => bg,
            Err(poisoned) => poisoned.into_inner(),
        };
        for h in bg.drain(..) {
            h.abort();
        }
    }
}

fn status_base(task_id: &str, state: TaskState, source: Source) -> TaskStatus {
    TaskStatus {
        task_id: TaskId {
            value: task_id.to_string(),
        },
        state: state as i32,
        source: Some(source as i32),
        timestamp: Some(now_secs()),
        uuid: Some(uuid::Uuid::new_v4().as_bytes().to_vec()),
        ..Default::default()
    }
}

fn container_status(rec: &ExecRec) -> ContainerStatus {
    ContainerStatus {
        container_id: Some(ContainerId {
            value: rec.container_id.clone(),
            parent: None,
        }),
        executor_pid: rec.pid,
        ..Default::default()
    }
}

impl Shared {
    pub(crate) async fn start(
        cfg: AgentConfig,
        addr: SocketAddr,
        events: UnboundedSender<AgentReport>,
    ) -> Result<Arc<Shared>, AgentError> {
        sandbox::validate_id("agent", &cfg.id.value)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AgentError::NoRuntime)?;
        let agent_dir = sandbox::agent_dir(&cfg.work_dir, &cfg.id.value);
        sandbox::create_dirs(&agent_dir).map_err(|source| AgentError::WorkDir {
            path: agent_dir.clone(),
            source,
        })?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Bind { addr, source })?;
        let endpoint = listener
            .local_addr()
            .map_err(|source| AgentError::Bind { addr, source })?;
        let meta = super::checkpoint::AgentMeta {
            id: cfg.id.value.clone(),
            port: endpoint.port(),
        };
        super::checkpoint::write_agent_meta(&cfg.work_dir, &meta).map_err(|source| {
            AgentError::WorkDir {
                path: cfg.work_dir.join("meta"),
                source,
            }
        })?;
        let fetcher = Fetcher::new(sandbox::fetch_cache_dir(&cfg.work_dir, &cfg.id.value));
        let shared = Arc::new_cyclic(|me| Shared {
            cfg,
            endpoint,
            start_time: now_secs(),
            events,
            fetcher,
            runtime: runtime.clone(),
            state: Mutex::new(State::default()),
            sum_wake: Arc::new(Notify::new()),
            background: Mutex::new(Vec::new()),
            me: me.clone(),
        });
        let server = runtime.spawn(super::http::serve(listener, Arc::downgrade(&shared)));
        let resend = runtime.spawn(resend_loop(
            Arc::downgrade(&shared),
            Arc::clone(&shared.sum_wake),
        ));
        shared
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([server.abort_handle(), resend.abort_handle()]);
        shared.recover();
        tracing::info!(agent = %shared.cfg.id.value, %endpoint, "agent started");
        Ok(shared)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn agent_id(&self) -> AgentId {
        self.cfg.id.clone()
    }

    pub(crate) fn agent_info(&self) -> AgentInfo {
        AgentInfo {
            hostname: self.cfg.hostname.clone(),
            port: Some(i32::from(self.endpoint.port())),
            resources: self.cfg.resources.clone(),
            attributes: self.cfg.attributes.clone(),
            id: Some(self.cfg.id.clone()),
            ..Default::default()
        }
    }

    fn emit(&self, st: &State, ev: AgentReport) {
        if st.dead {
            return;
        }
        if self.events.send(ev).is_err() {
            tracing::debug!("agent event dropped: the master's receiver is gone");
        }
    }

    /// A status update generated by the agent (or on behalf of a command task).
    fn new_status(
        &self,
        task_id: &str,
        executor_id: Option<&str>,
        state: TaskState,
        source: Source,
        reason: Option<Reason>,
        message: impl Into<String>,
    ) -> TaskStatus {
        let mut s = status_base(task_id, state, source);
        s.agent_id = Some(self.agent_id());
        s.executor_id = executor_id.map(|e| ExecutorId {
            value: e.to_string(),
        });
        s.reason = reason.map(|r| r as i32);
        let message = message.into();
        if !message.is_empty() {
            s.message = Some(message);
        }
        s
    }

    /// Records the update on its task (if the agent knows it) and hands it to the status
    /// update manager.
    pub(crate) fn forward_update(&self, st: &mut State, fid: &str, status: TaskStatus) {
        let tid = status.task_id.value.clone();
        let state = status.state();
        let ts = status.timestamp.unwrap_or_else(now_secs);
        if self.sum_forward(st, fid, status)
            && let Some(fw) = st.frameworks.get_mut(fid)
            && let Some(t) = fw
                .executors
                .values_mut()
                .find_map(|r| r.tasks.get_mut(&tid))
        {
            t.state = state;
            t.statuses.push((state, ts));
        }
    }

    /// Hands an update to the status update manager; true if it was accepted (new).
    fn sum_forward(&self, st: &mut State, fid: &str, status: TaskStatus) -> bool {
        if st.dead || st.removed.contains(fid) {
            tracing::debug!(
                framework = fid,
                "status update of a removed framework dropped"
            );
            return false;
        }
        let tid = status.task_id.value.clone();
        match st.sum.update(fid, status, Instant::now()) {
            Ok(UpdateOutcome::Forward(status)) => {
                self.emit(
                    st,
                    AgentReport::StatusUpdate {
                        agent_id: self.agent_id(),
                        framework_id: FrameworkId {
                            value: fid.to_string(),
                        },
                        status: *status,
                    },
                );
                self.sum_wake.notify_one();
                true
            }
            Ok(UpdateOutcome::Queued) => true,
            Ok(UpdateOutcome::Duplicate) => false,
            Err(e) => {
                tracing::warn!(framework = fid, task = %tid, "{e}");
                false
            }
        }
    }

    fn spawn<F>(&self, fut: F) -> AbortHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(fut).abort_handle()
    }
}

/// Resends unacknowledged status updates when their time comes.
async fn resend_loop(me: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        let deadline = {
            let Some(shared) = me.upgrade() else {
                return;
            };
            let st = shared.lock();
            if st.dead {
                return;
            }
            st.sum.next_deadline()
        };
        match deadline {
            Some(d) => {
                tokio::select! {
                    () = tokio::time::sleep_until(tokio::time::Instant::from_std(d)) => {}
                    () = notified => {}
                }
            }
            None => notified.await,
        }
        let Some(shared) = me.upgrade() else {
            return;
        };
        let mut st = shared.lock();
        for (fid, status) in st.sum.due(Instant::now()) {
            tracing::info!(framework = %fid, task = %status.task_id.value, "resending unacknowledged status update");
            shared.emit(
                &st,
                AgentReport::StatusUpdate {
                    agent_id: shared.agent_id(),
                    framework_id: FrameworkId { value: fid },
                    status,
                },
            );
        }
    }
}
