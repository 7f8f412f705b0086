//! A local Mesos agent: an in-process object with its own HTTP listener that runs real
//! executor processes and command tasks, speaking the Mesos v1 executor API.
//!
//! The master drives an [`Agent`] through method calls (launch, kill, acknowledge, ...)
//! and hears back through [`AgentReport`]s on an unbounded channel. Executors reach the
//! agent at `MESOS_AGENT_ENDPOINT` (`POST /api/v1/executor`, with the token the agent gave
//! them); operators and schedulers read sandboxes through `/files/*` and the agent's
//! `/state` (HTTP Basic when the agent has credentials).
//!
//! Modules: [`sandbox`] (directory layout), [`fetcher`] (URIs into sandboxes),
//! [`env`] (executor environment), [`process`] (process groups, signals),
//! [`switch_user`] (command tasks as their user), [`auth`] (executor tokens, operator
//! credentials), [`status_updates`] (per-task ordering and retries), [`validation`]
//! (executor calls), [`files`] (`/files/*`), [`resources`] (topology → resources),
//! [`fuzzing`] (fuzz entry points), [`checkpoint`] (what survives a crash),
//! [`orphans`] (killing a lost executor's task cgroups), and the private runtime
//! (`core`, its `recovery`, `executor_api`, `http`, `state`).
//!
//! Behaviour worth knowing:
//! * an executor's life: fetch + spawn (covered by the registration timeout), then
//!   SUBSCRIBE; tasks sent before that are queued and delivered right after SUBSCRIBED;
//! * shutdown: SHUTDOWN event, then SIGTERM to the process group after the grace period
//!   (`ExecutorInfo.shutdown_grace_period`, else the agent's), SIGKILL after another;
//! * a broken subscription stream only detaches the stream: the executor may
//!   re-subscribe (tasks it does not list as known are sent again); if it exits, its
//!   tasks fail as for any executor exit;
//! * custom executors run as the agent's user; command tasks too when the agent is not
//!   root, else as `CommandInfo.user` or `FrameworkInfo.user` (never root: such a task
//!   ends TASK_ERROR), like a Mesos agent with `--switch_user`;
//! * recovery: executors of checkpointing frameworks are checkpointed under
//!   `<work_dir>/meta` and do not die with the agent's process; an agent started on the
//!   same work directory recovers them (they re-subscribe; the others, or those not back
//!   within `executor_reregistration_timeout`, have their task cgroups killed and their
//!   tasks reported lost). Call [`Agent::resume_recovery`] once the master knows the
//!   agent. Command tasks are not checkpointed: they die with the agent;
//! * every executor container gets its own token in `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`
//!   and the executor API answers only calls bearing it (401) for its own ids (403).
//!
//! Invariants: every executor or command runs in its own process group, which is killed
//! when the executor is shut down, when the agent stops or is killed, and when the last
//! [`Agent`] handle is dropped; a task's status updates reach the master one at a time,
//! in order, each after the previous one was acknowledged.

pub mod auth;
pub mod checkpoint;
mod core;
pub mod env;
mod executor_api;
pub mod fetcher;
pub mod files;
pub mod fuzzing;
mod http;
pub mod orphans;
pub mod process;
pub mod resources;
pub mod sandbox;
mod state;
pub mod status_updates;
pub mod switch_user;
pub mod validation;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use retz_proto::credentials::Credentials;
use retz_proto::mesos::{
    AgentId, AgentInfo, Attribute, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo,
    KillPolicy, Resource, TaskGroupInfo, TaskId, TaskInfo, TaskState,
};
use tokio::sync::mpsc::UnboundedSender;

pub use self::resources::{
    DEFAULT_PORTS, PortRangesError, agent_resources, agent_resources_with_gpus,
    agent_resources_with_ports, parse_port_ranges, spec_with_gpus,
};
pub use self::wire::ContentType;

/// How long an executor may take to SUBSCRIBE after its launch began (fetching included).
pub const DEFAULT_EXECUTOR_REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a recovered executor may take to re-subscribe after an agent restart.
pub const DEFAULT_EXECUTOR_REREGISTRATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an executor gets between SHUTDOWN and SIGTERM, and between SIGTERM and
/// SIGKILL, unless its `ExecutorInfo.shutdown_grace_period` says otherwise.
pub const DEFAULT_EXECUTOR_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(5);
/// How long a command task gets between SIGTERM and SIGKILL when killed without a
/// `KillPolicy`.
pub const DEFAULT_KILL_GRACE_PERIOD: Duration = Duration::from_secs(3);
/// How often the agent sends HEARTBEAT events on an executor's subscription stream.
pub const EXECUTOR_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// How an agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `<master-id>-S<n>`, given by the master or the cluster.
    pub id: AgentId,
    /// The hostname in `AgentInfo` ("localhost" by default).
    pub hostname: String,
    /// Root of the sandboxes:
    /// `<work_dir>/slaves/<agent id>/frameworks/<fid>/executors/<eid>/runs/<container id>`
    /// (+ a `latest` symlink), and of the fetcher cache `<work_dir>/fetch/slaves/<agent id>`.
    pub work_dir: PathBuf,
    /// Total resources (cpus, mem, disk, cpuids, numanodes: the NUMA convention).
    pub resources: Vec<Resource>,
    /// Attributes (the NUMA layout).
    pub attributes: Vec<Attribute>,
    /// How long an executor may take to SUBSCRIBE (default 60 s).
    pub executor_registration_timeout: Duration,
    /// Default shutdown grace period of executors (default 5 s).
    pub executor_shutdown_grace_period: Duration,
    /// How long an executor recovered after an agent restart may take to re-subscribe
    /// before it is killed and its tasks are reported lost (default 10 s; Mesos'
    /// `--executor_reregistration_timeout`).
    pub executor_reregistration_timeout: Duration,
    /// Whether a framework's `FrameworkInfo.checkpoint` is honoured: when true and the
    /// framework checkpoints, executors get `MESOS_CHECKPOINT=1` (plus the recovery
    /// variables) and may re-subscribe after their stream breaks.
    pub checkpoint_env: bool,
    /// The credentials operators and schedulers present (HTTP Basic) to `/files/*` and
    /// `/state`; `None` leaves them open (tests and demos only).
    pub credentials: Option<Credentials>,
}

impl AgentConfig {
    /// A configuration with the defaults: hostname `localhost`, no resources or
    /// attributes, 60 s registration timeout, 5 s shutdown grace, checkpointing honoured,
    /// no credentials.
    pub fn new(id: AgentId, work_dir: PathBuf) -> Self {
        AgentConfig {
            id,
            hostname: "localhost".to_string(),
            work_dir,
            resources: Vec::new(),
            attributes: Vec::new(),
            executor_registration_timeout: DEFAULT_EXECUTOR_REGISTRATION_TIMEOUT,
            executor_shutdown_grace_period: DEFAULT_EXECUTOR_SHUTDOWN_GRACE_PERIOD,
            executor_reregistration_timeout: DEFAULT_EXECUTOR_REREGISTRATION_TIMEOUT,
            checkpoint_env: true,
            credentials: None,
        }
    }
}

/// What an agent tells the master, on the channel given to [`Agent::start`]: the
/// master's own [`AgentReport`] (one type from agent to master).
pub use crate::master::AgentReport;

/// A custom executor alive on an agent (see [`Agent::active_executors`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveExecutor {
    /// Its framework, as last given to `launch`.
    pub framework: FrameworkInfo,
    /// The executor, resources included.
    pub info: ExecutorInfo,
}

/// A non-terminal task on an agent (see [`Agent::active_tasks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveTask {
    /// Its framework, as last given to `launch` (`id` set).
    pub framework: FrameworkInfo,
    /// The task as launched.
    pub task: TaskInfo,
    /// Its executor; `None` for a command task.
    pub executor_id: Option<ExecutorId>,
    /// Its latest state (TASK_STAGING until the executor reports).
    pub state: TaskState,
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent id cannot name a directory.
    #[error(transparent)]
    InvalidId(#[from] sandbox::InvalidId),
    /// The work directory cannot be created.
    #[error("cannot create the agent work directory {path}: {source}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTP listener cannot be bound.
    #[error("cannot bind the agent listener on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Not called from within a tokio runtime.
    #[error("Agent::start must be called from within a tokio runtime")]
    NoRuntime,
}

/// A running agent. Cheap to clone; the agent (and every process it started) goes away
/// when the last handle is dropped, or earlier with [`stop`](Self::stop) or
/// [`kill_agent`](Self::kill_agent).
#[derive(Clone)]
pub struct Agent {
    inner: Arc<core::Shared>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.inner.cfg.id.value)
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts an agent listening on `127.0.0.1:<free port>`.
    pub async fn start(
        cfg: AgentConfig,
        events: UnboundedSender<AgentReport>,
    ) -> Result<Agent, AgentError> {
        Self::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0)), events).await
    }

    /// Starts an agent listening on `addr` (port 0 picks a free port).
    pub async fn start_on(
        cfg: AgentConfig,
        addr: SocketAddr,
        events: UnboundedSender<AgentReport>,
    ) -> Result<Agent, AgentError> {
        let inner = core::Shared::start(cfg, addr, events).await?;
        Ok(Agent { inner })
    }

    /// The agent's id.
    pub fn id(&self) -> &AgentId {
        &self.inner.cfg.id
    }

    /// The agent's HTTP listener (`MESOS_AGENT_ENDPOINT`).
    pub fn endpoint(&self) -> SocketAddr {
        self.inner.endpoint
    }

    /// The agent's configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.inner.cfg
    }

    /// hostname, port, id, resources and attributes.
    pub fn info(&self) -> AgentInfo {
        self.inner.agent_info()
    }

    /// Launches tasks. With `executor: None` each task must carry a `command` and runs as
    /// a command task (its executor id is the task id): TASK_RUNNING once started, then
    /// TASK_FINISHED on exit 0 or TASK_FAILED "Command exited with status N". With an
    /// executor, the tasks go to that executor (started if not running, reused if it is).
    pub fn launch(
        &self,
        framework: &FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    ) {
        self.inner.launch(framework, executor, tasks);
    }

    /// Launches a task group on an executor (LAUNCH_GROUP).
    pub fn launch_group(
        &self,
        framework: &FrameworkInfo,
        executor: ExecutorInfo,
        group: TaskGroupInfo,
    ) {
        self.inner.launch_group(framework, executor, group);
    }

    /// Kills a task: KILL to its executor, or for a command task SIGTERM then SIGKILL
    /// after the kill policy's grace period (default 3 s) and TASK_KILLED. A task not yet
    /// delivered to its executor gets TASK_KILLED from the agent.
    pub fn kill_task(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        kill_policy: Option<KillPolicy>,
    ) {
        self.inner.kill_task(framework_id, task_id, kill_policy);
    }

    /// Shuts an executor down: SHUTDOWN event, SIGTERM to its process group after the
    /// grace period, SIGKILL after another.
    pub fn shutdown_executor(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        self.inner.shutdown_executor(framework_id, executor_id);
    }

    /// Shuts down every executor of a framework and forgets its pending status updates
    /// (TEARDOWN or failover timeout); later updates of that framework are dropped.
    pub fn shutdown_framework(&self, framework_id: &FrameworkId) {
        self.inner.shutdown_framework(framework_id);
    }

    /// The master's acknowledgement of a status update; releases the task's next update.
    pub fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &[u8]) {
        self.inner.acknowledge(framework_id, task_id, uuid);
    }

    /// Framework → executor MESSAGE (dropped if the executor is not subscribed).
    pub fn send_message(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        data: Vec<u8>,
    ) {
        self.inner.send_message(framework_id, executor_id, data);
    }

    /// The custom executors of a framework that are alive on this agent (for
    /// `Offer.executor_ids`); command tasks are not listed.
    pub fn executor_ids(&self, framework_id: &FrameworkId) -> Vec<ExecutorId> {
        self.inner.executor_ids(framework_id)
    }

    /// Whether a custom executor is alive (launching, registering, running or
    /// shutting down) on this agent.
    pub fn is_executor_running(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> bool {
        self.inner.is_executor_running(framework_id, executor_id)
    }

    /// The custom executors alive on this agent with their frameworks (for the agent's
    /// re-registration with a restarted master).
    pub fn active_executors(&self) -> Vec<ActiveExecutor> {
        self.inner.active_executors()
    }

    /// The non-terminal tasks of live executors and command tasks, queued ones included
    /// (for the agent's re-registration with a restarted master).
    pub fn active_tasks(&self) -> Vec<ActiveTask> {
        self.inner.active_tasks()
    }

    /// Call once the master knows this agent (after [`start`](Self::start) on a work
    /// directory holding checkpoints): supervises the executors recovered from the
    /// checkpoints (those gone, or not re-subscribing in time, have their task cgroups
    /// killed and their tasks reported lost) and resends the pending status updates.
    pub fn resume_recovery(&self) {
        self.inner.resume_recovery();
    }

    /// Sends every unacknowledged status update in flight again now, as an agent does
    /// when it re-registers with a (new) master; the resend intervals start over.
    pub fn resend_unacknowledged(&self) {
        self.inner.resend_unacknowledged();
    }

    /// The agent's `/state` document.
    pub fn state_json(&self) -> serde_json::Value {
        self.inner.state_json()
    }

    /// The sandbox (run directory) of the newest run of an executor (or command task), if
    /// it was ever launched here.
    pub fn sandbox_dir(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<PathBuf> {
        self.inner.sandbox_dir(framework_id, executor_id)
    }

    /// The executor API token of a live executor (or command task), as given to it in
    /// `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`. For in-process callers that speak the
    /// executor API on an executor's behalf (tests); never exposed over HTTP.
    pub fn executor_token(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<String> {
        self.inner.executor_token(framework_id, executor_id)
    }

    /// The process group (= pid of the executor or command) of a live executor.
    pub fn executor_pid(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<u32> {
        self.inner.executor_pid(framework_id, executor_id)
    }

    /// Fault injection: kills every executor with SIGKILL and stops the listener, like a
    /// crashed agent: no further events are sent.
    pub async fn kill_agent(&self) {
        self.inner.kill_agent().await;
    }

    /// Fault injection: SIGKILL to an executor's process group (the agent then reports
    /// TASK_FAILED / REASON_EXECUTOR_TERMINATED and `ExecutorExited`).
    pub fn kill_executor(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        self.inner.kill_executor(framework_id, executor_id);
    }

    /// Fault injection: closes an executor's subscription stream (the executor sees its
    /// connection end; it may re-subscribe).
    pub fn drop_executor_stream(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        self.inner.drop_executor_stream(framework_id, executor_id);
    }

    /// Graceful stop: shuts every executor down (SHUTDOWN, grace, SIGTERM, grace,
    /// SIGKILL), waits for them to exit, then stops the listener.
    pub async fn stop(&self) {
        self.inner.stop().await;
    }
}
