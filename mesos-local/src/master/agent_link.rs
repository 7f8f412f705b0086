//! The seam between the master and the agents it drives: [`AgentLink`] (master -> agent
//! commands, implemented by the real `agent::Agent` and by simulated agents in tests and
//! benches) and [`AgentReport`] (agent -> master events).
//!
//! Invariants: every method of [`AgentLink`] is non-blocking (the master calls them from
//! its actor task); an agent reports a status update of a task only after the previous
//! one was acknowledged, and every update it reports carries a 16-byte uuid.

use retz_proto::mesos::{
    AgentId, AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, KillPolicy,
    TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus,
};

/// What the master asks of an agent. All calls are fire-and-forget; results come back as
/// [`AgentReport`]s.
pub trait AgentLink: Send + Sync + 'static {
    /// The agent's registration: id, hostname, port, total resources, attributes.
    fn info(&self) -> AgentInfo;
    /// Launches tasks; `executor` is `None` for command tasks.
    fn launch(
        &self,
        framework: &FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    );
    /// Launches a task group on `executor`.
    fn launch_group(&self, framework: &FrameworkInfo, executor: ExecutorInfo, group: TaskGroupInfo);
    /// Kills a task (the agent answers with a terminal status update).
    fn kill_task(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        kill_policy: Option<KillPolicy>,
    );
    /// Shuts an executor down (the scheduler's SHUTDOWN call).
    fn shutdown_executor(&self, framework_id: &FrameworkId, executor_id: &ExecutorId);
    /// Shuts down everything of a removed framework (TEARDOWN or failover timeout).
    fn shutdown_framework(&self, framework_id: &FrameworkId);
    /// Passes a scheduler's acknowledgement of the update `uuid` on.
    fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &[u8]);
    /// Framework -> executor message.
    fn send_message(&self, framework_id: &FrameworkId, executor_id: &ExecutorId, data: Vec<u8>);
    /// What runs on the agent, for its re-registration with a restarted master.
    fn snapshot(&self) -> AgentSnapshot;
    /// The agent has re-registered with a restarted master: a real agent resends its
    /// unacknowledged status updates now.
    fn reregistered(&self) {}
}

/// An agent -> master event: what the real `agent::Agent` sends on its channel and what
/// simulated agents report, with no conversion between the two.
// Status updates are by far the most frequent reports: boxing them would cost an
// allocation each for the benefit of the rare small variants.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AgentReport {
    /// A task status update carrying a 16-byte uuid (SOURCE_EXECUTOR or SOURCE_AGENT), to
    /// forward to the framework. Per task, the next one comes only after the agent is
    /// told of the acknowledgement of this one ([`AgentLink::acknowledge`]); a real agent
    /// sends an unacknowledged one again after 10 s, then after doubling intervals up to
    /// 10 min.
    StatusUpdate {
        /// The reporting agent.
        agent_id: AgentId,
        /// The task's framework.
        framework_id: FrameworkId,
        /// The update.
        status: TaskStatus,
    },
    /// An executor (or a command task's process) ended. The agent has already generated
    /// TASK_FAILED updates (REASON_EXECUTOR_TERMINATED, or the launch failure or
    /// registration timeout reason) for its non-terminal tasks; they come separately.
    ExecutorExited {
        /// The reporting agent.
        agent_id: AgentId,
        /// The executor's framework.
        framework_id: FrameworkId,
        /// The executor (the task id for a command task).
        executor_id: ExecutorId,
        /// Raw `wait(2)` status, or -1 when no process was ever started (launch failure).
        wait_status: i32,
    },
    /// Executor -> framework message.
    FrameworkMessage {
        /// The reporting agent.
        agent_id: AgentId,
        /// The target framework.
        framework_id: FrameworkId,
        /// The sending executor.
        executor_id: ExecutorId,
        /// The payload.
        data: Vec<u8>,
    },
}

/// An executor running on an agent, as the agent reports it when it re-registers.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningExecutor {
    /// The framework (its info when the agent knows it).
    pub framework: FrameworkInfo,
    /// The executor (resources included).
    pub info: ExecutorInfo,
}

/// A non-terminal task on an agent, as the agent reports it when it re-registers.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningTask {
    /// The framework (its info when the agent knows it; `id` is always set).
    pub framework: FrameworkInfo,
    /// The task as launched (resources included).
    pub task: TaskInfo,
    /// The executor running it, `None` for a command task.
    pub executor_id: Option<ExecutorId>,
    /// Its latest state.
    pub state: TaskState,
}

/// Everything running on an agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentSnapshot {
    /// Running executors.
    pub executors: Vec<RunningExecutor>,
    /// Non-terminal tasks.
    pub tasks: Vec<RunningTask>,
}
