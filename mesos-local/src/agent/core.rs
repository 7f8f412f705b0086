//! The agent runtime: the shared state behind an [`Agent`](super::Agent) handle and the
//! life cycle of executors and command tasks (launch, fetch, spawn, supervise, kill,
//! shut down, exit), plus the status update forwarding loop.
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
use super::status_updates::{StatusUpdateManager, UpdateOutcome, is_terminal};
use super::switch_user::{self, JobUser};
use super::wire::{ContentType, encode_record};
use super::{AgentConfig, AgentError, AgentEvent, DEFAULT_KILL_GRACE_PERIOD, process, sandbox};

mod recovery;

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
    events: UnboundedSender<AgentEvent>,
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
        events: UnboundedSender<AgentEvent>,
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

    fn emit(&self, st: &State, ev: AgentEvent) {
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
                    AgentEvent::StatusUpdate {
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

    // ------------------------------------------------------------------ launching

    pub(crate) fn launch(
        &self,
        framework: &FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    ) {
        let mut st = self.lock();
        let Some(fid) = self.admit_framework(&mut st, framework) else {
            return;
        };
        match executor {
            None => {
                for task in tasks {
                    self.launch_command_task(&mut st, &fid, task);
                }
            }
            Some(ei) => {
                let items = tasks
                    .into_iter()
                    .map(|t| Launchable::Task(Box::new(t)))
                    .collect();
                self.launch_on_executor(&mut st, &fid, ei, items);
            }
        }
    }

    pub(crate) fn launch_group(
        &self,
        framework: &FrameworkInfo,
        executor: ExecutorInfo,
        group: TaskGroupInfo,
    ) {
        let mut st = self.lock();
        let Some(fid) = self.admit_framework(&mut st, framework) else {
            return;
        };
        self.launch_on_executor(&mut st, &fid, executor, vec![Launchable::Group(group)]);
    }

    /// The framework id if tasks of this framework may launch; records its info.
    fn admit_framework(&self, st: &mut State, framework: &FrameworkInfo) -> Option<String> {
        let Some(fid) = framework.id.as_ref().map(|f| f.value.clone()) else {
            tracing::error!(framework = %framework.name, "launch for a FrameworkInfo without id ignored");
            return None;
        };
        if st.dead {
            tracing::warn!(framework = %fid, "launch on a stopped agent ignored");
            return None;
        }
        if st.removed.contains(&fid) {
            tracing::warn!(framework = %fid, "launch for a shut down framework ignored");
            return None;
        }
        st.frameworks
            .entry(fid.clone())
            .and_modify(|f| f.info = framework.clone())
            .or_insert_with(|| FrameworkRec {
                info: framework.clone(),
                executors: BTreeMap::new(),
                completed: VecDeque::new(),
            });
        Some(fid)
    }

    /// Ends tasks that cannot launch with an agent-generated update.
    fn refuse(
        &self,
        st: &mut State,
        fid: &str,
        executor_id: Option<&str>,
        tasks: &[&TaskInfo],
        end: &TaskEnd,
    ) {
        tracing::warn!(
            framework = fid,
            "refusing {} task(s): {}",
            tasks.len(),
            end.message
        );
        for t in tasks {
            let s = self.new_status(
                &t.task_id.value,
                executor_id,
                end.state,
                Source::Agent,
                Some(end.reason),
                end.message.clone(),
            );
            self.sum_forward(st, fid, s);
        }
    }

    fn lost_state(st: &State, fid: &str) -> TaskState {
        let partition_aware = st
            .frameworks
            .get(fid)
            .is_some_and(|f| f.has_capability(Capability::PartitionAware));
        if partition_aware {
            TaskState::TaskDropped
        } else {
            TaskState::TaskLost
        }
    }

    fn launch_command_task(&self, st: &mut State, fid: &str, task: TaskInfo) {
        let tid = task.task_id.value.clone();
        let ids = sandbox::validate_id("framework", fid)
            .and_then(|()| sandbox::validate_id("task", &tid));
        if let Err(e) = ids {
            self.refuse(
                st,
                fid,
                None,
                &[&task],
                &TaskEnd {
                    state: TaskState::TaskError,
                    reason: Reason::TaskInvalid,
                    message: e.to_string(),
                },
            );
            return;
        }
        let Some(command) = task.command.clone() else {
            self.refuse(
                st,
                fid,
                None,
                &[&task],
                &TaskEnd {
                    state: TaskState::TaskError,
                    reason: Reason::TaskInvalid,
                    message: "Task has neither a command nor an executor".into(),
                },
            );
            return;
        };
        let exists = st
            .frameworks
            .get(fid)
            .is_some_and(|f| f.executors.contains_key(&tid));
        if exists {
            self.refuse(
                st,
                fid,
                Some(&tid),
                &[&task],
                &TaskEnd {
                    state: TaskState::TaskError,
                    reason: Reason::TaskInvalid,
                    message: "A task or executor with this id is already running on this agent"
                        .into(),
                },
            );
            return;
        }
        let framework = st.frameworks.get(fid).map(|f| &f.info);
        let run_as = match switch_user::command_user(framework, &command) {
            Ok(u) => u,
            Err(e) => {
                let end = TaskEnd {
                    state: TaskState::TaskError,
                    reason: e.reason(),
                    message: e.to_string(),
                };
                self.refuse(st, fid, Some(&tid), &[&task], &end);
                return;
            }
        };
        let shown = command.value.clone().unwrap_or_default();
        let info = ExecutorInfo {
            executor_id: ExecutorId { value: tid.clone() },
            framework_id: Some(FrameworkId {
                value: fid.to_string(),
            }),
            command: Some(command),
            name: Some(format!(
                "Command Executor (Task: {tid}) (Command: sh -c '{shown}')"
            )),
            source: Some(tid.clone()),
            resources: task.resources.clone(),
            ..Default::default()
        };
        let mut tasks = BTreeMap::new();
        tasks.insert(tid.clone(), TaskRec::new(task, None));
        self.create_executor(st, fid, info, NewRun::Command(tasks, run_as));
    }

    fn launch_on_executor(
        &self,
        st: &mut State,
        fid: &str,
        mut ei: ExecutorInfo,
        items: Vec<Launchable>,
    ) {
        let eid = ei.executor_id.value.clone();
        let all: Vec<TaskInfo> = items.iter().flat_map(|i| i.tasks()).cloned().collect();
        let refs: Vec<&TaskInfo> = all.iter().collect();
        let ids = sandbox::validate_id("framework", fid)
            .and_then(|()| sandbox::validate_id("executor", &eid))
            .and_then(|()| {
                all.iter()
                    .try_for_each(|t| sandbox::validate_id("task", &t.task_id.value))
            });
        if let Err(e) = ids {
            self.refuse(
                st,
                fid,
                None,
                &refs,
                &TaskEnd {
                    state: TaskState::TaskError,
                    reason: Reason::TaskInvalid,
                    message: e.to_string(),
                },
            );
            return;
        }
        if ei.command.is_none() {
            self.refuse(
                st,
                fid,
                Some(&eid),
                &refs,
                &TaskEnd {
                    state: TaskState::TaskError,
                    reason: Reason::TaskInvalid,
                    message: "ExecutorInfo has no command".into(),
                },
            );
            return;
        }
        let lost = Self::lost_state(st, fid);
        let group_no = st.number();
        let Some(fw) = st.frameworks.get_mut(fid) else {
            return;
        };
        match fw.executors.get_mut(&eid) {
            Some(rec) if rec.command_task => {
                self.refuse(
                    st,
                    fid,
                    Some(&eid),
                    &refs,
                    &TaskEnd {
                        state: TaskState::TaskError,
                        reason: Reason::TaskInvalid,
                        message: "The executor id names a command task running on this agent"
                            .into(),
                    },
                );
            }
            Some(rec) if rec.shutting_down => {
                self.refuse(
                    st,
                    fid,
                    Some(&eid),
                    &refs,
                    &TaskEnd {
                        state: lost,
                        reason: Reason::ExecutorTerminated,
                        message: "Executor terminating".into(),
                    },
                );
            }
            Some(rec) => {
                if rec.phase == Phase::Running && rec.stream.is_some() {
                    for item in &items {
                        deliver(rec, item, group_no);
                    }
                } else {
                    rec.queued.extend(items);
                }
                self.checkpoint(st, fid, &eid);
            }
            None => {
                if ei.framework_id.is_none() {
                    ei.framework_id = Some(FrameworkId {
                        value: fid.to_string(),
                    });
                }
                self.create_executor(st, fid, ei, NewRun::Custom(items));
            }
        }
    }

    fn create_executor(&self, st: &mut State, fid: &str, info: ExecutorInfo, run: NewRun) {
        let (command_task, tasks, queued, run_as) = match run {
            NewRun::Custom(queued) => (false, BTreeMap::new(), queued, None),
            NewRun::Command(tasks, run_as) => (true, tasks, Vec::new(), run_as),
        };
        let eid = info.executor_id.value.clone();
        let container_id = uuid::Uuid::new_v4().to_string();
        let directory = sandbox::run_dir(
            &self.cfg.work_dir,
            &self.cfg.id.value,
            fid,
            &eid,
            &container_id,
        );
        let Some(fw) = st.frameworks.get_mut(fid) else {
            return;
        };
        let checkpoint = self.cfg.checkpoint_env && fw.info.checkpoint();
        let grace = info
            .shutdown_grace_period
            .as_ref()
            .and_then(|d| u64::try_from(d.nanoseconds).ok())
            .map_or(
                self.cfg.executor_shutdown_grace_period,
                Duration::from_nanos,
            );
        let rec = ExecRec {
            info,
            command_task,
            container_id: container_id.clone(),
            directory,
            phase: Phase::Launching,
            pid: None,
            stream: None,
            queued,
            tasks,
            completed_tasks: Vec::new(),
            known: HashSet::new(),
            checkpoint,
            grace,
            end: None,
            killing: false,
            shutting_down: false,
            run_task: None,
            started: now_secs(),
            token: super::auth::Token::new(),
            run_as,
            recovered: false,
            pid_start: None,
        };
        fw.executors.insert(eid.clone(), rec);
        let run = self.spawn(run_container(
            self.me.clone(),
            fid.to_string(),
            eid.clone(),
            container_id.clone(),
        ));
        if let Some(rec) = st.exec_mut(fid, &eid) {
            rec.run_task = Some(run);
        }
        let timeout = self.cfg.executor_registration_timeout;
        let me = self.me.clone();
        let (f, e, c) = (fid.to_string(), eid, container_id);
        self.spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(shared) = me.upgrade() {
                shared.registration_timeout(&f, &e, &c, timeout);
            }
        });
    }

    fn registration_timeout(&self, fid: &str, eid: &str, cid: &str, timeout: Duration) {
        let mut st = self.lock();
        let Some(rec) = st.exec_run_mut(fid, eid, cid) else {
            return;
        };
        let end = TaskEnd {
            state: TaskState::TaskFailed,
            reason: Reason::ExecutorRegistrationTimeout,
            message: format!(
                "Executor did not register within {}",
                format_duration(timeout)
            ),
        };
        match rec.phase {
            Phase::Launching => {
                tracing::warn!(framework = fid, executor = eid, "{}", end.message);
                rec.end = Some(end);
                self.finalize(&mut st, fid, eid, -1);
            }
            Phase::Registering => {
                tracing::warn!(framework = fid, executor = eid, "{}", end.message);
                rec.end = Some(end);
                if let Some(pid) = rec.pid {
                    process::signal_group(pid, Signal::SIGKILL);
                }
            }
            Phase::Running => {}
        }
    }

    /// Called by the run task once the process is started.
    fn started(&self, fid: &str, eid: &str, cid: &str, pid: u32) -> bool {
        let mut st = self.lock();
        if st.dead {
            return false;
        }
        let Some(rec) = st.exec_run_mut(fid, eid, cid) else {
            return false;
        };
        if rec.phase != Phase::Launching {
            return false;
        }
        rec.pid = Some(pid);
        rec.pid_start = super::checkpoint::pid_start_time(pid);
        if rec.command_task {
            rec.phase = Phase::Running;
            let cs = container_status(rec);
            let mut s = self.new_status(
                eid,
                Some(eid),
                TaskState::TaskRunning,
                Source::Executor,
                None,
                "",
            );
            s.container_status = Some(cs);
            self.forward_update(&mut st, fid, s);
        } else {
            rec.phase = Phase::Registering;
            self.checkpoint(&st, fid, eid);
        }
        tracing::info!(
            framework = fid,
            executor = eid,
            pid,
            "executor process started"
        );
        true
    }

    /// The launch failed before a process ran.
    fn launch_failed(&self, fid: &str, eid: &str, cid: &str, message: String) {
        let mut st = self.lock();
        let Some(rec) = st.exec_run_mut(fid, eid, cid) else {
            return;
        };
        tracing::warn!(framework = fid, executor = eid, "{message}");
        rec.end = Some(TaskEnd {
            state: TaskState::TaskFailed,
            reason: Reason::ContainerLaunchFailed,
            message,
        });
        self.finalize(&mut st, fid, eid, -1);
    }

    /// The process of a run exited.
    fn exited(&self, fid: &str, eid: &str, cid: &str, status: std::process::ExitStatus) {
        let mut st = self.lock();
        if st.dead {
            return;
        }
        let Some(rec) = st.exec_run_mut(fid, eid, cid) else {
            return;
        };
        let how = process::describe_exit(status);
        tracing::info!(framework = fid, executor = eid, "executor {how}");
        if rec.command_task {
            let (state, message) = if rec.killing {
                (TaskState::TaskKilled, format!("Command {how}"))
            } else if status.success() {
                (TaskState::TaskFinished, format!("Command {how}"))
            } else {
                (TaskState::TaskFailed, format!("Command {how}"))
            };
            let cs = container_status(rec);
            let mut s = self.new_status(eid, Some(eid), state, Source::Executor, None, message);
            s.container_status = Some(cs);
            self.forward_update(&mut st, fid, s);
        }
        self.finalize(&mut st, fid, eid, process::wait_status(status));
    }

    /// Removes an executor: kills what is left of its process group, ends its
    /// non-terminal tasks, keeps a summary for `/state`, reports `ExecutorExited`.
    fn finalize(&self, st: &mut State, fid: &str, eid: &str, wait_status: i32) {
        let Some(fw) = st.frameworks.get_mut(fid) else {
            return;
        };
        let Some(mut rec) = fw.executors.remove(eid) else {
            return;
        };
        if rec.checkpoint {
            super::checkpoint::remove_executor(&self.cfg.work_dir, fid, eid);
        }
        if let Some(pid) = rec.pid {
            process::signal_group(pid, Signal::SIGKILL);
        }
        if rec.phase == Phase::Launching
            && let Some(h) = &rec.run_task
        {
            h.abort();
        }
        let end = rec.end.clone().unwrap_or_else(TaskEnd::executor_terminated);
        let status_eid = Some(eid);
        let mut updates = Vec::new();
        for item in std::mem::take(&mut rec.queued) {
            for t in item.tasks() {
                updates.push(self.new_status(
                    &t.task_id.value,
                    status_eid,
                    end.state,
                    Source::Agent,
                    Some(end.reason),
                    end.message.clone(),
                ));
                let mut tr = TaskRec::new(t.clone(), None);
                tr.state = end.state;
                tr.statuses.push((end.state, now_secs()));
                rec.completed_tasks.push(tr);
            }
        }
        for t in rec.tasks.values_mut() {
            if !is_terminal(t.state) {
                updates.push(self.new_status(
                    &t.info.task_id.value,
                    status_eid,
                    end.state,
                    Source::Agent,
                    Some(end.reason),
                    end.message.clone(),
                ));
                t.state = end.state;
                t.statuses.push((end.state, now_secs()));
            }
        }
        let summary = super::state::executor_json(&self.cfg.id.value, fid, &rec, true);
        fw.completed.push_back(summary);
        while fw.completed.len() > COMPLETED_EXECUTORS_KEPT {
            fw.completed.pop_front();
        }
        for s in updates {
            self.sum_forward(st, fid, s);
        }
        self.emit(
            st,
            AgentEvent::ExecutorExited {
                agent_id: self.agent_id(),
                framework_id: FrameworkId {
                    value: fid.to_string(),
                },
                executor_id: ExecutorId {
                    value: eid.to_string(),
                },
                wait_status,
            },
        );
    }

    // ------------------------------------------------------------------ kill / shutdown

    pub(crate) fn kill_task(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        policy: Option<KillPolicy>,
    ) {
        let fid = framework_id.value.as_str();
        let tid = task_id.value.as_str();
        let mut st = self.lock();
        if st.dead {
            return;
        }
        let eid = st.frameworks.get(fid).and_then(|f| {
            f.executors
                .iter()
                .find(|(_, r)| r.holds(tid))
                .map(|(e, _)| e.clone())
        });
        let Some(eid) = eid else {
            if st.finished.contains(&(fid.to_string(), tid.to_string()))
                || st.sum.pending(fid, tid) > 0
            {
                tracing::debug!(
                    framework = fid,
                    task = tid,
                    "kill of a finished task ignored"
                );
                return;
            }
            let lost = Self::lost_state(&st, fid);
            let s = self.new_status(
                tid,
                None,
                lost,
                Source::Agent,
                None,
                "Cannot find task on this agent",
            );
            self.sum_forward(&mut st, fid, s);
            return;
        };
        let killing_state = st
            .frameworks
            .get(fid)
            .is_some_and(|f| f.has_capability(Capability::TaskKillingState));
        let Some(rec) = st.exec_mut(fid, &eid) else {
            return;
        };
        if rec.command_task {
            if rec.phase == Phase::Launching {
                rec.end = Some(TaskEnd {
                    state: TaskState::TaskKilled,
                    reason: Reason::TaskKilledDuringLaunch,
                    message: "Task killed before it was launched".into(),
                });
                self.finalize(&mut st, fid, &eid, -1);
                return;
            }
            if rec.killing {
                return;
            }
            let grace = rec.pending_kill_grace(policy.as_ref(), tid);
            rec.killing = true;
            let (pid, cid) = (rec.pid, rec.container_id.clone());
            if killing_state {
                let cs = container_status(rec);
                let mut s = self.new_status(
                    tid,
                    Some(tid),
                    TaskState::TaskKilling,
                    Source::Executor,
                    None,
                    "",
                );
                s.container_status = Some(cs);
                self.forward_update(&mut st, fid, s);
            }
            if let Some(pid) = pid {
                process::signal_group(pid, Signal::SIGTERM);
            }
            self.escalate(fid, &eid, &cid, grace, Signal::SIGKILL);
            return;
        }
        // custom executor: a task not yet delivered is killed by the agent
        if let Some(pos) = rec
            .queued
            .iter()
            .position(|q| q.tasks().iter().any(|t| t.task_id.value == tid))
        {
            let item = rec.queued.remove(pos);
            let idle = rec.phase != Phase::Running && rec.queued.is_empty() && rec.tasks.is_empty();
            for t in item.tasks() {
                let s = self.new_status(
                    &t.task_id.value,
                    Some(&eid),
                    TaskState::TaskKilled,
                    Source::Agent,
                    Some(Reason::TaskKilledDuringLaunch),
                    "Task killed before it was delivered to the executor",
                );
                self.sum_forward(&mut st, fid, s);
            }
            if idle {
                self.shutdown_locked(&mut st, fid, &eid);
            }
            return;
        }
        let ev = Event {
            r#type: Some(event::Type::Kill as i32),
            kill: Some(event::Kill {
                task_id: task_id.clone(),
                kill_policy: policy,
            }),
            ..Default::default()
        };
        if !rec.send(&ev) {
            tracing::warn!(framework = fid, executor = %eid, task = tid, "KILL not delivered: the executor has no subscription stream");
        }
    }

    /// After `after`, sends `signal` to the run's process group if it is still there.
    fn escalate(&self, fid: &str, eid: &str, cid: &str, after: Duration, signal: Signal) {
        let me = self.me.clone();
        let (f, e, c) = (fid.to_string(), eid.to_string(), cid.to_string());
        self.spawn(async move {
            tokio::time::sleep(after).await;
            let Some(shared) = me.upgrade() else {
                return;
            };
            let mut st = shared.lock();
            if let Some(rec) = st.exec_run_mut(&f, &e, &c)
                && let Some(pid) = rec.pid
            {
                tracing::info!(framework = %f, executor = %e, "grace period over: {signal}");
                process::signal_group(pid, signal);
            }
        });
    }

    pub(crate) fn shutdown_executor(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        let mut st = self.lock();
        self.shutdown_locked(&mut st, &framework_id.value, &executor_id.value);
    }

    fn shutdown_locked(&self, st: &mut State, fid: &str, eid: &str) {
        if st.dead {
            return;
        }
        let Some(rec) = st.exec_mut(fid, eid) else {
            return;
        };
        if rec.shutting_down {
            return;
        }
        rec.shutting_down = true;
        let (pid, cid, grace) = (rec.pid, rec.container_id.clone(), rec.grace);
        match rec.phase {
            Phase::Launching => self.finalize(st, fid, eid, -1),
            _ if rec.command_task => {
                rec.killing = true;
                if let Some(pid) = pid {
                    process::signal_group(pid, Signal::SIGTERM);
                }
                self.escalate(fid, eid, &cid, grace, Signal::SIGKILL);
            }
            Phase::Registering => {
                if let Some(pid) = pid {
                    process::signal_group(pid, Signal::SIGTERM);
                }
                self.escalate(fid, eid, &cid, grace, Signal::SIGKILL);
            }
            Phase::Running => {
                let ev = Event {
                    r#type: Some(event::Type::Shutdown as i32),
                    ..Default::default()
                };
                rec.send(&ev);
                self.escalate(fid, eid, &cid, grace, Signal::SIGTERM);
                self.escalate(fid, eid, &cid, grace * 2, Signal::SIGKILL);
            }
        }
    }

    pub(crate) fn shutdown_framework(&self, framework_id: &FrameworkId) {
        let fid = framework_id.value.as_str();
        let mut st = self.lock();
        let eids: Vec<String> = st
            .frameworks
            .get(fid)
            .map(|f| f.executors.keys().cloned().collect())
            .unwrap_or_default();
        for eid in eids {
            self.shutdown_locked(&mut st, fid, &eid);
        }
        st.sum.remove_framework(fid);
        st.removed.insert(fid.to_string());
        tracing::info!(framework = fid, "framework shut down on this agent");
    }

    pub(crate) fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &[u8]) {
        let fid = framework_id.value.as_str();
        let tid = task_id.value.as_str();
        let mut st = self.lock();
        match st.sum.acknowledge(fid, tid, uuid, Instant::now()) {
            Ok(out) => {
                if let Some(next) = out.next {
                    self.emit(
                        &st,
                        AgentEvent::StatusUpdate {
                            agent_id: self.agent_id(),
                            framework_id: framework_id.clone(),
                            status: next,
                        },
                    );
                    self.sum_wake.notify_one();
                }
                if out.terminal {
                    st.remember_finished(fid, tid);
                    let mut holder = None;
                    if let Some(fw) = st.frameworks.get_mut(fid) {
                        for (eid, rec) in &mut fw.executors {
                            if let Some(t) = rec.tasks.remove(tid) {
                                rec.completed_tasks.push(t);
                                holder = Some(eid.clone());
                                break;
                            }
                        }
                    }
                    if let Some(eid) = holder {
                        self.checkpoint(&st, fid, &eid);
                    }
                }
            }
            Err(e) => tracing::warn!(framework = fid, task = tid, "{e}"),
        }
    }

    pub(crate) fn send_message(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        data: Vec<u8>,
    ) {
        let mut st = self.lock();
        let Some(rec) = st.exec_mut(&framework_id.value, &executor_id.value) else {
            tracing::warn!(framework = %framework_id.value, executor = %executor_id.value, "message for an unknown executor dropped");
            return;
        };
        let ev = Event {
            r#type: Some(event::Type::Message as i32),
            message: Some(event::Message { data }),
            ..Default::default()
        };
        if !rec.send(&ev) {
            tracing::warn!(framework = %framework_id.value, executor = %executor_id.value, "message dropped: the executor is not subscribed");
        }
    }

    pub(crate) fn executor_ids(&self, framework_id: &FrameworkId) -> Vec<ExecutorId> {
        let st = self.lock();
        st.frameworks
            .get(&framework_id.value)
            .map(|f| {
                f.executors
                    .iter()
                    .filter(|(_, r)| !r.command_task)
                    .map(|(e, _)| ExecutorId { value: e.clone() })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn is_executor_running(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> bool {
        let st = self.lock();
        st.frameworks
            .get(&framework_id.value)
            .and_then(|f| f.executors.get(&executor_id.value))
            .is_some_and(|r| !r.command_task)
    }

    pub(crate) fn sandbox_dir(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<PathBuf> {
        let st = self.lock();
        if let Some(rec) = st
            .frameworks
            .get(&framework_id.value)
            .and_then(|f| f.executors.get(&executor_id.value))
        {
            return Some(rec.directory.clone());
        }
        drop(st);
        let latest = sandbox::runs_dir(
            &self.cfg.work_dir,
            &self.cfg.id.value,
            &framework_id.value,
            &executor_id.value,
        )
        .join(sandbox::LATEST);
        std::fs::canonicalize(latest).ok()
    }

    pub(crate) fn executor_token(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<String> {
        let st = self.lock();
        st.exec_run_token(&framework_id.value, &executor_id.value)
    }

    pub(crate) fn executor_pid(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<u32> {
        let st = self.lock();
        st.frameworks
            .get(&framework_id.value)
            .and_then(|f| f.executors.get(&executor_id.value))
            .and_then(|r| r.pid)
    }

    pub(crate) fn state_json(&self) -> serde_json::Value {
        let st = self.lock();
        super::state::state_json(self, &st)
    }

    pub(crate) fn resend_unacknowledged(&self) {
        let mut st = self.lock();
        for (fid, status) in st.sum.heads(Instant::now()) {
            self.emit(
                &st,
                AgentEvent::StatusUpdate {
                    agent_id: self.agent_id(),
                    framework_id: FrameworkId { value: fid },
                    status,
                },
            );
        }
        self.sum_wake.notify_one();
    }

    pub(crate) fn active_executors(&self) -> Vec<super::ActiveExecutor> {
        let st = self.lock();
        st.frameworks
            .values()
            .flat_map(|fw| {
                fw.executors
                    .values()
                    .filter(|r| !r.command_task)
                    .map(|r| super::ActiveExecutor {
                        framework: fw.info.clone(),
                        info: r.info.clone(),
                    })
            })
            .collect()
    }

    pub(crate) fn active_tasks(&self) -> Vec<super::ActiveTask> {
        let st = self.lock();
        let mut out = Vec::new();
        for fw in st.frameworks.values() {
            for rec in fw.executors.values() {
                let executor_id = (!rec.command_task).then(|| rec.info.executor_id.clone());
                for t in rec.tasks.values().filter(|t| !is_terminal(t.state)) {
                    out.push(super::ActiveTask {
                        framework: fw.info.clone(),
                        task: t.info.clone(),
                        executor_id: executor_id.clone(),
                        state: t.state,
                    });
                }
                for t in rec.queued.iter().flat_map(Launchable::tasks) {
                    out.push(super::ActiveTask {
                        framework: fw.info.clone(),
                        task: t.clone(),
                        executor_id: executor_id.clone(),
                        state: TaskState::TaskStaging,
                    });
                }
            }
        }
        out
    }

    // ------------------------------------------------------------------ fault injection

    pub(crate) fn kill_executor(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        let mut st = self.lock();
        let (fid, eid) = (framework_id.value.as_str(), executor_id.value.as_str());
        let Some(rec) = st.exec_mut(fid, eid) else {
            return;
        };
        match rec.pid {
            Some(pid) => {
                tracing::info!(
                    framework = fid,
                    executor = eid,
                    pid,
                    "fault injection: SIGKILL executor"
                );
                process::signal_group(pid, Signal::SIGKILL);
            }
            None => self.finalize(&mut st, fid, eid, -1),
        }
    }

    pub(crate) fn drop_executor_stream(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) {
        let mut st = self.lock();
        if let Some(rec) = st.exec_mut(&framework_id.value, &executor_id.value)
            && rec.stream.take().is_some()
        {
            tracing::info!(framework = %framework_id.value, executor = %executor_id.value, "fault injection: executor stream dropped");
        }
    }

    /// Process groups of every live executor.
    fn all_pids(st: &State) -> Vec<u32> {
        st.frameworks
            .values()
            .flat_map(|f| f.executors.values())
            .filter_map(|r| r.pid)
            .collect()
    }

    fn stop_background(&self) {
        let mut bg = self.background.lock().unwrap_or_else(|p| p.into_inner());
        for h in bg.drain(..) {
            h.abort();
        }
    }

    pub(crate) async fn kill_agent(&self) {
        let pids = {
            let mut st = self.lock();
            st.dead = true;
            let pids = Self::all_pids(&st);
            for fw in st.frameworks.values_mut() {
                for rec in fw.executors.values_mut() {
                    if let Some(h) = &rec.run_task
                        && rec.phase == Phase::Launching
                    {
                        h.abort();
                    }
                    rec.stream = None;
                }
            }
            pids
        };
        for &pid in &pids {
            process::signal_group(pid, Signal::SIGKILL);
        }
        self.stop_background();
        wait_groups_gone(&pids, Duration::from_secs(10)).await;
        self.lock().frameworks.clear();
        tracing::info!(agent = %self.cfg.id.value, "agent killed");
    }

    pub(crate) async fn stop(&self) {
        let mut longest = Duration::ZERO;
        {
            let mut st = self.lock();
            let keys: Vec<(String, String)> = st
                .frameworks
                .iter()
                .flat_map(|(f, fw)| fw.executors.keys().map(move |e| (f.clone(), e.clone())))
                .collect();
            for (f, e) in keys {
                if let Some(rec) = st.exec_mut(&f, &e) {
                    longest = longest.max(rec.grace);
                }
                self.shutdown_locked(&mut st, &f, &e);
            }
        }
        // SHUTDOWN, grace, SIGTERM, grace, SIGKILL: all gone after two grace periods.
        let deadline = tokio::time::Instant::now() + longest * 2 + Duration::from_secs(5);
        loop {
            let left = {
                let st = self.lock();
                st.frameworks
                    .values()
                    .map(|f| f.executors.len())
                    .sum::<usize>()
            };
            if left == 0 || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pids = {
            let mut st = self.lock();
            st.dead = true;
            Self::all_pids(&st)
        };
        for &pid in &pids {
            process::signal_group(pid, Signal::SIGKILL);
        }
        self.stop_background();
        wait_groups_gone(&pids, Duration::from_secs(10)).await;
        tracing::info!(agent = %self.cfg.id.value, "agent stopped");
    }

    // ------------------------------------------------------------------ executor API

    /// The executor record a call names, or the 400 of Mesos.
    pub(crate) fn lookup<'a>(
        st: &'a mut State,
        fid: &str,
        eid: &str,
    ) -> Result<&'a mut ExecRec, (http::StatusCode, String)> {
        let Some(fw) = st.frameworks.get_mut(fid) else {
            return Err((
                http::StatusCode::BAD_REQUEST,
                format!("Framework cannot be found: {fid}"),
            ));
        };
        match fw.executors.get_mut(eid) {
            Some(rec) if !rec.command_task => Ok(rec),
            _ => Err((
                http::StatusCode::BAD_REQUEST,
                format!("Executor cannot be found: {eid} of framework {fid}"),
            )),
        }
    }

    /// Opens the subscription stream of an executor: SUBSCRIBED, then the tasks it is
    /// owed. Returns the receiving end and the stream's generation.
    pub(crate) fn subscribe(
        &self,
        call: retz_proto::executor::Call,
        content_type: ContentType,
    ) -> Result<(tokio::sync::mpsc::UnboundedReceiver<Bytes>, u64), (http::StatusCode, String)>
    {
        let fid = call.framework_id.value.clone();
        let eid = call.executor_id.value.clone();
        let subscribe = call.subscribe.unwrap_or_default();
        let mut st = self.lock();
        if st.dead {
            return Err((
                http::StatusCode::SERVICE_UNAVAILABLE,
                "Agent is stopped".into(),
            ));
        }
        let generation = st.number();
        let group_base = st.number();
        let framework_info = st
            .frameworks
            .get(&fid)
            .map(|f| f.info.clone())
            .unwrap_or_default();
        let rec = Self::lookup(&mut st, &fid, &eid)?;
        if rec.phase == Phase::Launching {
            return Err((
                http::StatusCode::FORBIDDEN,
                "Executor is still being launched".into(),
            ));
        }
        let (tx, rx) = unbounded_channel();
        let weak_tx = tx.downgrade();
        rec.stream = Some(StreamTx {
            tx,
            content_type,
            generation,
        });
        let first = rec.phase == Phase::Registering && !rec.recovered;
        rec.recovered = false;
        rec.phase = Phase::Running;
        for t in &subscribe.unacknowledged_tasks {
            rec.known.insert(t.task_id.value.clone());
        }
        for u in &subscribe.unacknowledged_updates {
            rec.known.insert(u.status.task_id.value.clone());
        }
        let subscribed = Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                executor_info: rec.info.clone(),
                framework_info,
                agent_info: self.agent_info(),
                container_id: Some(ContainerId {
                    value: rec.container_id.clone(),
                    parent: None,
                }),
            }),
            ..Default::default()
        };
        rec.send(&subscribed);
        if !first {
            // Tasks sent before the stream broke that the executor does not know of.
            let mut lost: BTreeMap<Option<u64>, Vec<TaskInfo>> = BTreeMap::new();
            for (tid, t) in &rec.tasks {
                if !is_terminal(t.state) && !rec.known.contains(tid) {
                    lost.entry(t.group).or_default().push(t.info.clone());
                }
            }
            for (group, tasks) in lost {
                let items = match group {
                    Some(_) => vec![Launchable::Group(TaskGroupInfo { tasks })],
                    None => tasks
                        .into_iter()
                        .map(|t| Launchable::Task(Box::new(t)))
                        .collect(),
                };
                for item in items {
                    send_launch(rec, &item);
                }
            }
        }
        for (i, item) in std::mem::take(&mut rec.queued).into_iter().enumerate() {
            deliver(rec, &item, group_base * 1_000_000 + i as u64);
        }
        let shutting_down = rec.shutting_down;
        let container = rec.container_id.clone();
        // Updates the executor did not see acknowledged before it re-subscribed.
        for u in subscribe.unacknowledged_updates {
            let check = retz_proto::executor::Call {
                executor_id: call.executor_id.clone(),
                framework_id: call.framework_id.clone(),
                r#type: Some(retz_proto::executor::call::Type::Update as i32),
                update: Some(u),
                ..Default::default()
            };
            if let Err(e) = super::validation::validate_call(&check) {
                tracing::warn!(framework = %fid, executor = %eid, "unacknowledged update ignored: {e}");
                continue;
            }
            if let Some(u) = check.update {
                self.executor_update(&mut st, &fid, &eid, u.status);
            }
        }
        self.checkpoint(&st, &fid, &eid);
        if shutting_down && let Some(rec) = st.exec_mut(&fid, &eid) {
            rec.send(&Event {
                r#type: Some(event::Type::Shutdown as i32),
                ..Default::default()
            });
        }
        tracing::info!(framework = %fid, executor = %eid, container = %container, first, "executor subscribed");
        drop(st);
        // Heartbeats, while the stream lives (a weak sender does not keep it open).
        self.spawn(async move {
            let heartbeat = {
                let mut buf = BytesMut::new();
                let ev = Event {
                    r#type: Some(event::Type::Heartbeat as i32),
                    ..Default::default()
                };
                encode_record(&content_type.encode(&ev), &mut buf);
                buf.freeze()
            };
            loop {
                tokio::time::sleep(super::EXECUTOR_HEARTBEAT_INTERVAL).await;
                let Some(tx) = weak_tx.upgrade() else {
                    return;
                };
                if tx.send(heartbeat.clone()).is_err() {
                    return;
                }
            }
        });
        Ok((rx, generation))
    }

    /// An accepted UPDATE (validated): recorded, forwarded through the status update
    /// manager, acknowledged to the executor.
    pub(crate) fn executor_update(
        &self,
        st: &mut State,
        fid: &str,
        eid: &str,
        mut status: TaskStatus,
    ) {
        let Some(rec) = st.exec_mut(fid, eid) else {
            return;
        };
        let tid = status.task_id.clone();
        let uuid = status.uuid.clone().unwrap_or_default();
        rec.known.insert(tid.value.clone());
        if status.agent_id.is_none() {
            status.agent_id = Some(self.agent_id());
        }
        if status.executor_id.is_none() {
            status.executor_id = Some(ExecutorId {
                value: eid.to_string(),
            });
        }
        if status.container_status.is_none() {
            status.container_status = Some(container_status(rec));
        }
        self.forward_update(st, fid, status);
        // Durable before the executor hears it was received.
        self.checkpoint(st, fid, eid);
        if let Some(rec) = st.exec_mut(fid, eid) {
            rec.send(&Event {
                r#type: Some(event::Type::Acknowledged as i32),
                acknowledged: Some(event::Acknowledged { task_id: tid, uuid }),
                ..Default::default()
            });
        }
    }

    pub(crate) fn executor_message(&self, st: &State, fid: &str, eid: &str, data: Vec<u8>) {
        self.emit(
            st,
            AgentEvent::FrameworkMessage {
                agent_id: self.agent_id(),
                framework_id: FrameworkId {
                    value: fid.to_string(),
                },
                executor_id: ExecutorId {
                    value: eid.to_string(),
                },
                data,
            },
        );
    }

    /// The subscription stream `generation` of an executor was closed by the peer.
    pub(crate) fn stream_closed(&self, fid: &str, eid: &str, generation: u64) {
        let mut st = self.lock();
        if let Some(rec) = st.exec_mut(fid, eid)
            && rec
                .stream
                .as_ref()
                .is_some_and(|s| s.generation == generation)
        {
            rec.stream = None;
            tracing::info!(framework = fid, executor = eid, "executor stream closed");
        }
    }
}

/// Sends a LAUNCH or LAUNCH_GROUP for `item` and tracks its tasks as launched.
fn deliver(rec: &mut ExecRec, item: &Launchable, group_no: u64) {
    let group = matches!(item, Launchable::Group(_)).then_some(group_no);
    for t in item.tasks() {
        rec.tasks
            .insert(t.task_id.value.clone(), TaskRec::new(t.clone(), group));
    }
    send_launch(rec, item);
}

fn send_launch(rec: &ExecRec, item: &Launchable) {
    let ev = match item {
        Launchable::Task(task) => Event {
            r#type: Some(event::Type::Launch as i32),
            launch: Some(event::Launch {
                task: (**task).clone(),
            }),
            ..Default::default()
        },
        Launchable::Group(group) => Event {
            r#type: Some(event::Type::LaunchGroup as i32),
            launch_group: Some(event::LaunchGroup {
                task_group: group.clone(),
            }),
            ..Default::default()
        },
    };
    rec.send(&ev);
}

/// Waits until none of `pgids` has a live process, at most `limit`.
async fn wait_groups_gone(pgids: &[u32], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while pgids.iter().any(|&p| process::group_alive(p)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the run task needs to start a container, read under the lock.
struct Prepared {
    command: CommandInfo,
    env: Vec<(String, String)>,
    directory: PathBuf,
    fetcher: Fetcher,
    user: Option<JobUser>,
    checkpoint: bool,
}

fn prepare(shared: &Shared, fid: &str, eid: &str, cid: &str) -> Option<Result<Prepared, String>> {
    let mut st = shared.lock();
    let rec = st.exec_run_mut(fid, eid, cid)?;
    let command = if rec.command_task {
        rec.tasks
            .values()
            .next()
            .and_then(|t| t.info.command.clone())
    } else {
        rec.info.command.clone()
    }
    .unwrap_or_default();
    let ctx = EnvContext {
        framework_id: fid,
        executor_id: eid,
        directory: &rec.directory,
        agent_endpoint: shared.endpoint,
        agent_id: &shared.cfg.id.value,
        checkpoint: rec.checkpoint,
        shutdown_grace_period: rec.grace,
        command_environment: command.environment.as_ref(),
        authentication_token: Some(rec.token.as_str()),
        user: rec.run_as.as_ref(),
    };
    let env = match executor_environment(&ctx) {
        Ok(env) => env,
        Err(e) => return Some(Err(format!("Failed to launch container: {e}"))),
    };
    Some(Ok(Prepared {
        env,
        directory: rec.directory.clone(),
        command,
        fetcher: shared.fetcher.clone(),
        user: rec.run_as.clone(),
        checkpoint: rec.checkpoint && !rec.command_task,
    }))
}

/// Sandbox, fetch, spawn, wait: one container run from launch to exit.
async fn run_container(me: Weak<Shared>, fid: String, eid: String, cid: String) {
    let prepared = {
        let Some(shared) = me.upgrade() else {
            return;
        };
        match prepare(&shared, &fid, &eid, &cid) {
            None => return,
            Some(Ok(p)) => p,
            Some(Err(message)) => {
                shared.launch_failed(&fid, &eid, &cid, message);
                return;
            }
        }
    };
    let fail = |message: String| {
        if let Some(shared) = me.upgrade() {
            shared.launch_failed(&fid, &eid, &cid, message);
        }
    };
    let (work_dir, agent_id) = match me.upgrade() {
        Some(s) => (s.cfg.work_dir.clone(), s.cfg.id.value.clone()),
        None => return,
    };
    if let Err(e) = sandbox::create_run_dir(&work_dir, &agent_id, &fid, &eid, &cid) {
        fail(format!(
            "Failed to launch container: cannot create the sandbox {}: {e}",
            prepared.directory.display()
        ));
        return;
    }
    if let Err(e) = prepared
        .fetcher
        .fetch_all(&prepared.command.uris, &prepared.directory)
        .await
    {
        fail(format!("Failed to launch container: {e}"));
        return;
    }
    if let Some(user) = &prepared.user
        && let Err(e) = switch_user::prepare_sandbox(&prepared.directory, user)
    {
        fail(format!(
            "Failed to launch container: cannot give the sandbox {} to user {}: {e}",
            prepared.directory.display(),
            user.name
        ));
        return;
    }
    let argv = match process::command_argv(&prepared.command, &prepared.directory) {
        Ok(a) => a,
        Err(e) => {
            fail(format!("Failed to launch container: {e}"));
            return;
        }
    };
    let spec = process::Spawn {
        argv,
        env: prepared.env,
        sandbox: prepared.directory.clone(),
        user: prepared.user.clone(),
        die_with_agent: !prepared.checkpoint,
    };
    let mut child = match process::spawn(&spec) {
        Ok(c) => c,
        Err(e) => {
            fail(format!(
                "Failed to launch container: cannot execute {:?}: {e}",
                spec.argv.program
            ));
            return;
        }
    };
    let Some(pid) = child.id() else {
        fail("Failed to launch container: the process exited at once".into());
        return;
    };
    let keep = me
        .upgrade()
        .is_some_and(|s| s.started(&fid, &eid, &cid, pid));
    if !keep {
        process::signal_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
        return;
    }
    let status = child.wait().await;
    process::signal_group(pid, Signal::SIGKILL);
    let Some(shared) = me.upgrade() else {
        return;
    };
    match status {
        Ok(status) => shared.exited(&fid, &eid, &cid, status),
        Err(e) => {
            tracing::error!(framework = %fid, executor = %eid, "cannot wait for the executor: {e}");
            let mut st = shared.lock();
            if st.exec_run_mut(&fid, &eid, &cid).is_some() {
                shared.finalize(&mut st, &fid, &eid, -1);
            }
        }
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
                AgentEvent::StatusUpdate {
                    agent_id: shared.agent_id(),
                    framework_id: FrameworkId { value: fid },
                    status,
                },
            );
        }
    }
}
