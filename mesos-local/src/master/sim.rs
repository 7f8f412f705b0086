//! A simulated agent: an [`AgentLink`] that runs no process. Tasks go TASK_RUNNING and,
//! after a configurable time, TASK_FINISHED; kills, executor shutdowns and executor
//! crashes produce the updates a real agent would. Used by tests, by benches with
//! thousands of agents, and by anyone who needs offers without executors.
//!
//! Invariants (the agent's status update manager, as in Mesos): per task, updates are
//! reported one at a time, the next only after the scheduler acknowledged the previous
//! one's uuid; every update carries a fresh 16-byte uuid; a task is forgotten once its
//! terminal update is acknowledged. Unlike a real agent it never resends an update.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use retz_proto::mesos::{
    AgentId, AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, KillPolicy,
    TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus, task_status,
};

use super::AgentReporter;
use super::agent_link::{AgentLink, AgentReport, AgentSnapshot, RunningExecutor, RunningTask};
use super::core::wall_clock;

/// How simulated tasks behave.
#[derive(Debug, Clone, Default)]
pub struct SimBehaviour {
    /// How long a task runs before TASK_FINISHED; `None`: until killed.
    pub run_for: Option<Duration>,
}

struct SimTask {
    framework: FrameworkInfo,
    info: TaskInfo,
    executor_id: Option<ExecutorId>,
    /// Latest state (what the executor said last).
    state: TaskState,
    /// Updates not yet reported; the head is in flight when `inflight` is set.
    queue: VecDeque<TaskStatus>,
    inflight: Option<Vec<u8>>,
}

#[derive(Default)]
struct SimState {
    /// Keyed by (framework id, task id).
    tasks: BTreeMap<(String, String), SimTask>,
    /// Keyed by (framework id, executor id).
    executors: BTreeMap<(String, String), (FrameworkInfo, ExecutorInfo)>,
}

struct SimInner {
    info: AgentInfo,
    agent_id: AgentId,
    reporter: AgentReporter,
    behaviour: SimBehaviour,
    state: Mutex<SimState>,
}

/// A simulated agent (cheap to clone: a handle).
#[derive(Clone)]
pub struct SimAgent {
    inner: Arc<SimInner>,
}

impl SimAgent {
    /// A simulated agent registering as `info` (whose `id` must be set) and reporting to
    /// `reporter`.
    pub fn new(info: AgentInfo, reporter: AgentReporter, behaviour: SimBehaviour) -> SimAgent {
        let agent_id = info.id.clone().unwrap_or_default();
        SimAgent {
            inner: Arc::new(SimInner {
                info,
                agent_id,
                reporter,
                behaviour,
                state: Mutex::new(SimState::default()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The agent id.
    pub fn id(&self) -> &AgentId {
        &self.inner.agent_id
    }

    /// Fault injection: the executor dies; its live tasks get TASK_FAILED
    /// (REASON_EXECUTOR_TERMINATED, from the agent) and the master hears of the exit.
    pub fn kill_executor(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) -> bool {
        let existed = {
            let mut st = self.lock();
            let existed = st
                .executors
                .remove(&(framework_id.value.clone(), executor_id.value.clone()))
                .is_some();
            let keys: Vec<(String, String)> = st
                .tasks
                .iter()
                .filter(|((f, _), t)| {
                    *f == framework_id.value
                        && t.executor_id.as_ref() == Some(executor_id)
                        && !t.state.is_terminal()
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                let mut s = self.status(&k.1, Some(executor_id), TaskState::TaskFailed);
                s.source = Some(task_status::Source::Agent as i32);
                s.reason = Some(task_status::Reason::ExecutorTerminated as i32);
                s.message = Some("Executor terminated".into());
                self.enqueue(&mut st, &k, s);
            }
            existed
        };
        if existed {
            self.inner.reporter.report(AgentReport::ExecutorExited {
                agent_id: self.inner.agent_id.clone(),
                framework_id: framework_id.clone(),
                executor_id: executor_id.clone(),
                wait_status: 9,
            });
        }
        existed
    }

    /// How many tasks the agent still tracks (unacknowledged or running).
    pub fn task_count(&self) -> usize {
        self.lock().tasks.len()
    }

    fn status(
        &self,
        task_id: &str,
        executor_id: Option<&ExecutorId>,
        state: TaskState,
    ) -> TaskStatus {
        TaskStatus {
            task_id: TaskId {
                value: task_id.to_string(),
            },
            state: state as i32,
            source: Some(task_status::Source::Executor as i32),
            agent_id: Some(self.inner.agent_id.clone()),
            executor_id: executor_id.cloned(),
            timestamp: Some(wall_clock()),
            uuid: Some(uuid::Uuid::new_v4().as_bytes().to_vec()),
            ..Default::default()
        }
    }

    /// Queues an update and reports it if nothing is in flight for the task.
    fn enqueue(&self, st: &mut SimState, key: &(String, String), status: TaskStatus) {
        let Some(task) = st.tasks.get_mut(key) else {
            return;
        };
        if let Ok(s) = TaskState::try_from(status.state) {
            task.state = s;
        }
        task.queue.push_back(status);
        self.pump(task, &key.0);
    }

    fn pump(&self, task: &mut SimTask, fid: &str) {
        if task.inflight.is_some() {
            return;
        }
        if let Some(head) = task.queue.front() {
            task.inflight = head.uuid.clone();
            self.inner.reporter.report(AgentReport::StatusUpdate {
                agent_id: self.inner.agent_id.clone(),
                framework_id: FrameworkId {
                    value: fid.to_string(),
                },
                status: head.clone(),
            });
        }
    }

    fn start_task(
        &self,
        framework: &FrameworkInfo,
        executor_id: Option<ExecutorId>,
        task: TaskInfo,
    ) {
        let fid = framework.id.clone().unwrap_or_default().value;
        let key = (fid, task.task_id.value.clone());
        let running = self.status(&key.1, executor_id.as_ref(), TaskState::TaskRunning);
        {
            let mut st = self.lock();
            st.tasks.insert(
                key.clone(),
                SimTask {
                    framework: framework.clone(),
                    info: task,
                    executor_id: executor_id.clone(),
                    state: TaskState::TaskStaging,
                    queue: VecDeque::new(),
                    inflight: None,
                },
            );
            self.enqueue(&mut st, &key, running);
        }
        match self.inner.behaviour.run_for {
            None => {}
            Some(d) if d.is_zero() => {
                self.finish(&key, executor_id.as_ref(), TaskState::TaskFinished)
            }
            Some(d) => {
                let me = self.clone();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        tokio::time::sleep(d).await;
                        me.finish(&key, executor_id.as_ref(), TaskState::TaskFinished);
                    });
                } else {
                    self.finish(&key, executor_id.as_ref(), TaskState::TaskFinished);
                }
            }
        }
    }

    /// Moves a live task to a terminal state.
    fn finish(&self, key: &(String, String), executor_id: Option<&ExecutorId>, state: TaskState) {
        let mut st = self.lock();
        let live = st.tasks.get(key).is_some_and(|t| !t.state.is_terminal());
        if live {
            let s = self.status(&key.1, executor_id, state);
            self.enqueue(&mut st, key, s);
        }
    }
}

impl AgentLink for SimAgent {
    fn info(&self) -> AgentInfo {
        self.inner.info.clone()
    }

    fn launch(
        &self,
        framework: &FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    ) {
        let fid = framework.id.clone().unwrap_or_default().value;
        let executor_id = executor.as_ref().map(|e| e.executor_id.clone());
        if let Some(ex) = executor {
            self.lock()
                .executors
                .entry((fid, ex.executor_id.value.clone()))
                .or_insert_with(|| (framework.clone(), ex));
        }
        for t in tasks {
            self.start_task(framework, executor_id.clone(), t);
        }
    }

    fn launch_group(
        &self,
        framework: &FrameworkInfo,
        executor: ExecutorInfo,
        group: TaskGroupInfo,
    ) {
        self.launch(framework, Some(executor), group.tasks);
    }

    fn kill_task(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        _kill_policy: Option<KillPolicy>,
    ) {
        let key = (framework_id.value.clone(), task_id.value.clone());
        let executor_id = self
            .lock()
            .tasks
            .get(&key)
            .and_then(|t| t.executor_id.clone());
        self.finish(&key, executor_id.as_ref(), TaskState::TaskKilled);
    }

    fn shutdown_executor(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        let existed = {
            let mut st = self.lock();
            let existed = st
                .executors
                .remove(&(framework_id.value.clone(), executor_id.value.clone()))
                .is_some();
            let keys: Vec<(String, String)> = st
                .tasks
                .iter()
                .filter(|((f, _), t)| {
                    *f == framework_id.value
                        && t.executor_id.as_ref() == Some(executor_id)
                        && !t.state.is_terminal()
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                let s = self.status(&k.1, Some(executor_id), TaskState::TaskKilled);
                self.enqueue(&mut st, &k, s);
            }
            existed
        };
        if existed {
            self.inner.reporter.report(AgentReport::ExecutorExited {
                agent_id: self.inner.agent_id.clone(),
                framework_id: framework_id.clone(),
                executor_id: executor_id.clone(),
                wait_status: 0,
            });
        }
    }

    fn shutdown_framework(&self, framework_id: &FrameworkId) {
        let mut st = self.lock();
        st.tasks.retain(|(f, _), _| *f != framework_id.value);
        st.executors.retain(|(f, _), _| *f != framework_id.value);
    }

    fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &[u8]) {
        let key = (framework_id.value.clone(), task_id.value.clone());
        let mut st = self.lock();
        let Some(task) = st.tasks.get_mut(&key) else {
            return;
        };
        if task.inflight.as_deref() != Some(uuid) {
            return;
        }
        task.inflight = None;
        task.queue.pop_front();
        if task.queue.is_empty() && task.state.is_terminal() {
            st.tasks.remove(&key);
            return;
        }
        self.pump(task, &key.0);
    }

    fn send_message(&self, framework_id: &FrameworkId, executor_id: &ExecutorId, data: Vec<u8>) {
        let known = self
            .lock()
            .executors
            .contains_key(&(framework_id.value.clone(), executor_id.value.clone()));
        if known {
            // The simulated executor echoes what it receives.
            self.inner.reporter.report(AgentReport::FrameworkMessage {
                agent_id: self.inner.agent_id.clone(),
                framework_id: framework_id.clone(),
                executor_id: executor_id.clone(),
                data,
            });
        }
    }

    fn snapshot(&self) -> AgentSnapshot {
        let st = self.lock();
        AgentSnapshot {
            executors: st
                .executors
                .values()
                .map(|(framework, info)| RunningExecutor {
                    framework: framework.clone(),
                    info: info.clone(),
                })
                .collect(),
            tasks: st
                .tasks
                .values()
                .filter(|t| !t.state.is_terminal())
                .map(|t| RunningTask {
                    framework: t.framework.clone(),
                    task: t.info.clone(),
                    executor_id: t.executor_id.clone(),
                    state: t.state,
                })
                .collect(),
        }
    }
}
