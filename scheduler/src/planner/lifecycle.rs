//! The planner's side of executor lifecycle: it feeds the
//! [`ExecutorBook`](super::executors::ExecutorBook) from launches
//! and status updates and, at each tick, shuts down (v1 SHUTDOWN) the executors the book
//! names: those of unloaded or replaced applications once their tasks ended, and those
//! idle for `planner.executor_idle_timeout_s`; executors unknown to it (an earlier
//! server's, idle since) are learnt from the offers' `executor_ids`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use retz_proto::mesos::{TaskInfo, TaskStatus};
use tracing::{info, warn};

use super::executors::appid_of;
use super::service::{Planner, PlannerError};
use super::task::executor_info;

impl Planner {
    /// A task of `appid` was launched on its executor.
    pub(super) fn executor_launched(&mut self, task: &TaskInfo, appid: &str) {
        if let Some(e) = &task.executor {
            self.executors.task_running(
                (task.agent_id.value.clone(), e.executor_id.value.clone()),
                appid,
                &task.task_id.value,
                Instant::now(),
            );
        }
    }

    /// A status update: a terminal one ends the task on its executor; any other names
    /// the executor it runs on (which rebuilds the book after a restart).
    pub(super) fn executor_status(&mut self, status: &TaskStatus) {
        let now = Instant::now();
        if status.state().is_terminal() {
            self.executors.task_ended(&status.task_id.value, now);
            return;
        }
        if let (Some(agent), Some(exec)) = (&status.agent_id, &status.executor_id)
            && let Some(appid) = appid_of(&exec.value)
        {
            self.executors.task_running(
                (agent.value.clone(), exec.value.clone()),
                appid,
                &status.task_id.value,
                now,
            );
        }
    }

    /// Offers name this framework's executors on their agents: learn those unknown to
    /// this server (started before a restart, no task since) as idle from now.
    pub(super) fn executors_offered(&mut self, offers: &[retz_proto::mesos::Offer]) {
        let now = Instant::now();
        for o in offers {
            let ids = o.executor_ids.iter().map(|e| e.value.as_str());
            let new = self.executors.offered(&o.agent_id.value, ids, now);
            if new > 0 {
                info!(agent = %o.agent_id.value, executors = new, "learnt idle executors from an offer");
            }
        }
    }

    /// Shuts down the executors that should go now.
    pub(super) async fn reap_executors(&mut self) -> Result<(), PlannerError> {
        let Some(fid) = self.framework_id.clone() else {
            return Ok(());
        };
        let mut current = HashMap::new();
        for appid in self.executors.idle_apps() {
            let id = self.store.get_app(&appid).await?.map(|app| {
                executor_info(&app, &self.opts.executor, &fid, &self.opts.users)
                    .executor_id
                    .value
            });
            current.insert(appid, id);
        }
        let timeout = Duration::from_secs(self.opts.cfg.executor_idle_timeout_s);
        let gone = self.executors.reap(Instant::now(), timeout, |app| {
            current.get(app).cloned().flatten()
        });
        for ((agent, exec), why) in gone {
            info!(%agent, executor = %exec, reason = %why, "shutting the executor down");
            let result = self
                .driver
                .shutdown(
                    retz_proto::mesos::ExecutorId {
                        value: exec.clone(),
                    },
                    retz_proto::mesos::AgentId { value: agent },
                )
                .await;
            if let Err(e) = result {
                warn!(executor = %exec, error = %e, "SHUTDOWN failed; the agent ends it with the framework");
            }
        }
        Ok(())
    }
}
