//! What agents report (status updates, executor exits, executor messages), scheduler
//! acknowledgements, and reconciliation.
//!
//! Rules:
//! * a status update is recorded on its task and forwarded to the framework if it is
//!   connected (a disconnected framework misses it; the agent resends unacknowledged
//!   updates); a terminal state gives the task's resources back to the agent at once;
//! * a task leaves the active list when the framework acknowledges the terminal update
//!   the master last forwarded for it;
//! * an executor exit frees the executor's resources and sends FAILURE;
//! * reconciliation answers come from the master, with REASON_RECONCILIATION and no uuid;
//!   explicitly named unknown tasks are TASK_LOST (TASK_GONE / TASK_UNKNOWN for
//!   PARTITION_AWARE frameworks).

use retz_proto::mesos::{AgentId, FrameworkId, TaskState, TaskStatus, framework_info, task_status};
use retz_proto::scheduler::{Event, call, event};

use super::agent_link::AgentReport;
use super::core::{
    Core, MAX_TASK_STATUSES, failure_event, master_status, push_completed, update_event,
};

impl Core {
    /// Applies an agent's report.
    pub fn agent_report(&mut self, report: AgentReport) {
        match report {
            AgentReport::StatusUpdate {
                agent_id,
                framework_id,
                status,
            } => self.status_update(&agent_id, &framework_id, status),
            AgentReport::ExecutorExited {
                agent_id,
                framework_id,
                executor_id,
                wait_status,
            } => {
                let Some(fw) = self.frameworks.get_mut(&framework_id.value) else {
                    return;
                };
                let key = (agent_id.value.clone(), executor_id.value.clone());
                if let Some(ex) = fw.executors.remove(&key)
                    && let Some(agent) = self.agents.get_mut(&agent_id.value)
                {
                    agent.used.subtract(&ex.resources);
                    self.allocation_wanted = true;
                }
                fw.send(&failure_event(
                    &agent_id.value,
                    Some(executor_id),
                    Some(wait_status),
                ));
            }
            AgentReport::FrameworkMessage {
                agent_id,
                framework_id,
                executor_id,
                data,
            } => {
                if let Some(fw) = self.frameworks.get(&framework_id.value) {
                    fw.send(&Event {
                        r#type: Some(event::Type::Message as i32),
                        message: Some(event::Message {
                            agent_id,
                            executor_id,
                            data,
                        }),
                        ..Default::default()
                    });
                }
            }
        }
    }

    fn status_update(
        &mut self,
        agent_id: &AgentId,
        framework_id: &FrameworkId,
        mut status: TaskStatus,
    ) {
        self.counters.status_updates += 1;
        if status.agent_id.is_none() {
            status.agent_id = Some(agent_id.clone());
        }
        let Some(fw) = self.frameworks.get_mut(&framework_id.value) else {
            // Unknown or removed framework: nobody to forward to.
            self.counters.invalid_status_updates += 1;
            return;
        };
        let state = TaskState::try_from(status.state).unwrap_or(TaskState::TaskUnknown);
        match fw.tasks.get_mut(&status.task_id.value) {
            Some(task) if task.agent_id == agent_id.value => {
                if !task.state.is_terminal() {
                    task.state = state;
                }
                if let Some(uuid) = &status.uuid {
                    task.last_update = Some((uuid.clone(), state));
                }
                task.statuses.push(status.clone());
                if task.statuses.len() > MAX_TASK_STATUSES {
                    task.statuses.remove(0);
                }
                if state.is_terminal() && !task.released {
                    task.released = true;
                    if let Some(agent) = self.agents.get_mut(&agent_id.value) {
                        agent.used.subtract(&task.resources);
                    }
                    self.allocation_wanted = true;
                    *self
                        .counters
                        .terminal_tasks
                        .entry(state.as_str_name())
                        .or_insert(0) += 1;
                }
            }
            _ => self.counters.invalid_status_updates += 1,
        }
        fw.send(&update_event(status));
    }

    /// ACKNOWLEDGE (uuid already validated): passed to the agent; a task whose terminal
    /// update is acknowledged is completed.
    pub(super) fn acknowledge(&mut self, fid: &str, ack: &call::Acknowledge) {
        let Some(agent) = self.agents.get(&ack.agent_id.value) else {
            self.counters.invalid_acknowledgements += 1;
            return;
        };
        let link = agent.link.clone();
        self.counters.acknowledgements += 1;
        let Some(fw) = self.frameworks.get_mut(fid) else {
            return;
        };
        let done = fw.tasks.get(&ack.task_id.value).is_some_and(|t| {
            t.agent_id == ack.agent_id.value
                && t.last_update
                    .as_ref()
                    .is_some_and(|(uuid, state)| *uuid == ack.uuid && (*state).is_terminal())
        });
        if done && let Some(task) = fw.tasks.remove(&ack.task_id.value) {
            push_completed(&mut fw.completed_tasks, task);
        }
        link.acknowledge(&fw.id, &ack.task_id, &ack.uuid);
    }

    /// RECONCILE: implicit (empty list: every known task) or explicit.
    pub(super) fn reconcile(&mut self, fid: &str, tasks: &[call::reconcile::Task]) {
        let Some(fw) = self.frameworks.get(fid) else {
            return;
        };
        let pa = fw.capability(framework_info::capability::Type::PartitionAware);
        let latest = |t: &super::core::TaskEntry| {
            let mut s = master_status(
                &t.info.task_id,
                Some(&t.agent_id),
                t.state,
                task_status::Reason::Reconciliation,
                "Reconciliation: Latest task state",
            );
            s.executor_id = t.executor_id.clone();
            if let Some(last) = t.statuses.last() {
                s.healthy = last.healthy;
                s.labels = last.labels.clone();
                s.container_status = last.container_status.clone();
            }
            s
        };
        let mut out = Vec::new();
        if tasks.is_empty() {
            out.extend(fw.tasks.values().map(latest));
        } else {
            for t in tasks {
                if let Some(task) = fw.tasks.get(&t.task_id.value) {
                    out.push(latest(task));
                    continue;
                }
                let agent = t.agent_id.as_ref().map(|a| a.value.as_str());
                let registered = agent.is_some_and(|a| self.agents.contains_key(a));
                let (state, message) = match (pa, registered) {
                    (false, true) => (
                        TaskState::TaskLost,
                        "Reconciliation: Task is unknown to the agent",
                    ),
                    (false, false) => (TaskState::TaskLost, "Reconciliation: Task is unknown"),
                    (true, true) => (
                        TaskState::TaskGone,
                        "Reconciliation: Task is unknown to the agent",
                    ),
                    (true, false) => (TaskState::TaskUnknown, "Reconciliation: Task is unknown"),
                };
                out.push(master_status(
                    &t.task_id,
                    agent,
                    state,
                    task_status::Reason::Reconciliation,
                    message,
                ));
            }
        }
        for s in out {
            fw.send(&update_event(s));
        }
    }
}
