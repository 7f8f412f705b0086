//! Checkpointing and recovery of executors of checkpointing frameworks, as a Mesos agent
//! with `--recover=reconnect` does.
//!
//! * While running, the agent writes an executor's checkpoint
//!   ([`super::super::checkpoint`]) when its process started, when tasks are given to it,
//!   when it subscribes, before it acknowledges an UPDATE to the executor (so an update
//!   the executor stops resending is on disk), and when a terminal update is acknowledged
//!   by the master; the checkpoint is removed when the executor is finalized.
//! * At start ([`Shared::recover`]) every checkpoint becomes an executor record again,
//!   in phase `Registering`, with its tasks, their states, its token, and the pending
//!   status updates back in the status update manager. Its process is not this agent's
//!   child: it is watched through `/proc` (pid and start time).
//! * [`Shared::resume_recovery`] (after the master knows the agent again): an executor
//!   whose process is gone, or that does not re-subscribe within
//!   `executor_reregistration_timeout`, has its process group and its task cgroups killed
//!   ([`super::super::orphans`]) *before* its non-terminal tasks are reported TASK_GONE
//!   (partition-aware frameworks) or TASK_LOST, so a retry never runs beside an orphan.
//!   A live executor that re-subscribes gets LAUNCH again for tasks it does not know and
//!   resends its unacknowledged updates; reconciliation answers its tasks' real states.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use retz_proto::mesos::TaskState;
use retz_proto::mesos::framework_info::capability::Type as Capability;
use retz_proto::mesos::task_status::Reason;

use super::super::checkpoint::{self, ExecutorCheckpoint, TaskCheckpoint};
use super::super::{auth, orphans, process, sandbox};
use super::{ExecRec, FrameworkRec, Launchable, Phase, Shared, State, TaskEnd, TaskRec};
use crate::agent::env::format_duration;

/// A recovered executor to watch: framework, executor, container ids, pid, start time.
type Watched = (String, String, String, Option<u32>, Option<u64>);

/// How often a recovered executor's process is looked at.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// How long the task cgroups of a lost executor get to empty after SIGKILL.
const ORPHAN_KILL_LIMIT: Duration = Duration::from_secs(10);

impl Shared {
    /// Writes the checkpoint of an executor of a checkpointing framework (a no-op for
    /// others, command tasks, and executors without a process yet).
    pub(crate) fn checkpoint(&self, st: &State, fid: &str, eid: &str) {
        let Some(fw) = st.frameworks.get(fid) else {
            return;
        };
        let Some(rec) = fw.executors.get(eid) else {
            return;
        };
        if !rec.checkpoint || rec.command_task || rec.pid.is_none() {
            return;
        }
        let mut tasks: Vec<TaskCheckpoint> = rec
            .tasks
            .iter()
            .map(|(tid, t)| TaskCheckpoint {
                info: t.info.clone(),
                state: t.state as i32,
                group: t.group,
                pending: st.sum.pending_updates(fid, tid),
                known: rec.known.contains(tid),
            })
            .collect();
        for (i, item) in rec.queued.iter().enumerate() {
            let group = matches!(item, Launchable::Group(_)).then_some(u64::MAX - i as u64);
            tasks.extend(item.tasks().into_iter().map(|t| TaskCheckpoint {
                info: t.clone(),
                state: TaskState::TaskStaging as i32,
                group,
                pending: Vec::new(),
                known: false,
            }));
        }
        let cp = ExecutorCheckpoint {
            framework: fw.info.clone(),
            info: rec.info.clone(),
            container_id: rec.container_id.clone(),
            directory: rec.directory.clone(),
            pid: rec.pid,
            pid_start: rec.pid_start,
            token: rec.token.as_str().to_owned(),
            tasks,
        };
        if let Err(e) = checkpoint::write_executor(&self.cfg.work_dir, &cp) {
            tracing::error!(
                framework = fid,
                executor = eid,
                "cannot checkpoint the executor: {e}"
            );
        }
    }

    /// Rebuilds the records of checkpointed executors (see the module doc). Called once,
    /// before the agent is registered with a master.
    pub(crate) fn recover(&self) {
        let checkpoints = checkpoint::read_executors(&self.cfg.work_dir);
        if checkpoints.is_empty() {
            return;
        }
        let mut st = self.lock();
        let now = Instant::now();
        for cp in checkpoints {
            let Some(fid) = cp.framework.id.as_ref().map(|f| f.value.clone()) else {
                continue;
            };
            let eid = cp.info.executor_id.value.clone();
            let valid = sandbox::validate_id("framework", &fid)
                .and_then(|()| sandbox::validate_id("executor", &eid));
            if valid.is_err() || st.exec_mut(&fid, &eid).is_some() {
                checkpoint::remove_executor(&self.cfg.work_dir, &fid, &eid);
                continue;
            }
            let alive = cp
                .pid
                .is_some_and(|p| checkpoint::same_process_alive(p, cp.pid_start));
            let mut tasks = BTreeMap::new();
            let mut known = HashSet::new();
            for t in cp.tasks {
                let tid = t.info.task_id.value.clone();
                let mut rec = TaskRec::new(t.info, t.group);
                rec.state = TaskState::try_from(t.state).unwrap_or(TaskState::TaskStaging);
                if t.known {
                    known.insert(tid.clone());
                }
                for status in t.pending {
                    if let Err(e) = st.sum.update(&fid, status, now) {
                        tracing::warn!(framework = %fid, task = %tid, "checkpointed update dropped: {e}");
                    }
                }
                tasks.insert(tid, rec);
            }
            let grace = cp
                .info
                .shutdown_grace_period
                .as_ref()
                .and_then(|d| u64::try_from(d.nanoseconds).ok())
                .map_or(
                    self.cfg.executor_shutdown_grace_period,
                    Duration::from_nanos,
                );
            let fw = st
                .frameworks
                .entry(fid.clone())
                .or_insert_with(|| FrameworkRec {
                    info: cp.framework.clone(),
                    executors: BTreeMap::new(),
                    completed: VecDeque::new(),
                });
            tracing::info!(
                framework = %fid,
                executor = %eid,
                pid = ?cp.pid,
                alive,
                tasks = tasks.len(),
                "recovering a checkpointed executor"
            );
            fw.executors.insert(
                eid,
                ExecRec {
                    info: cp.info,
                    command_task: false,
                    container_id: cp.container_id,
                    directory: cp.directory,
                    phase: Phase::Registering,
                    pid: cp.pid.filter(|_| alive),
                    stream: None,
                    queued: Vec::new(),
                    tasks,
                    completed_tasks: Vec::new(),
                    known,
                    checkpoint: true,
                    grace,
                    end: None,
                    killing: false,
                    shutting_down: false,
                    run_task: None,
                    started: super::now_secs(),
                    token: auth::Token::restore(cp.token),
                    run_as: None,
                    recovered: true,
                    pid_start: cp.pid_start,
                },
            );
        }
    }

    /// How the tasks of an executor lost in a restart end.
    fn lost_end(st: &State, fid: &str, reason: Reason, message: String) -> TaskEnd {
        let partition_aware = st
            .frameworks
            .get(fid)
            .is_some_and(|f| f.has_capability(Capability::PartitionAware));
        TaskEnd {
            state: if partition_aware {
                TaskState::TaskGone
            } else {
                TaskState::TaskLost
            },
            reason,
            message,
        }
    }

    /// Starts supervising the recovered executors (the master knows this agent now) and
    /// resends the pending status updates.
    pub(crate) fn resume_recovery(&self) {
        let recovered: Vec<Watched> = {
            let st = self.lock();
            st.frameworks
                .iter()
                .flat_map(|(fid, fw)| {
                    fw.executors
                        .iter()
                        .filter(|(_, r)| r.recovered)
                        .map(move |(eid, r)| {
                            (
                                fid.clone(),
                                eid.clone(),
                                r.container_id.clone(),
                                r.pid,
                                r.pid_start,
                            )
                        })
                })
                .collect()
        };
        self.resend_unacknowledged();
        let timeout = self.cfg.executor_reregistration_timeout;
        for (fid, eid, cid, pid, start) in recovered {
            let me = self.me.clone();
            self.spawn(async move {
                if let Some(pid) = pid {
                    let deadline = tokio::time::Instant::now() + timeout;
                    loop {
                        tokio::time::sleep(WATCH_INTERVAL).await;
                        let Some(shared) = me.upgrade() else {
                            return;
                        };
                        if !shared.watch_recovered(&fid, &eid, &cid, pid, start, deadline) {
                            break;
                        }
                    }
                }
                let Some(shared) = me.upgrade() else {
                    return;
                };
                shared.lost_recovered(fid, eid, cid, pid).await;
            });
        }
    }

    /// One look at a recovered executor: false when it is gone (or must go).
    fn watch_recovered(
        &self,
        fid: &str,
        eid: &str,
        cid: &str,
        pid: u32,
        start: Option<u64>,
        deadline: tokio::time::Instant,
    ) -> bool {
        let mut st = self.lock();
        if st.dead || st.exec_run_mut(fid, eid, cid).is_none() {
            return false;
        }
        if !checkpoint::same_process_alive(pid, start) {
            return false;
        }
        let timeout = self.cfg.executor_reregistration_timeout;
        let end = Self::lost_end(
            &st,
            fid,
            Reason::ExecutorReregistrationTimeout,
            format!(
                "Executor did not re-register within {} after the agent restarted",
                format_duration(timeout)
            ),
        );
        let Some(rec) = st.exec_run_mut(fid, eid, cid) else {
            return true;
        };
        if rec.phase == Phase::Registering && tokio::time::Instant::now() >= deadline {
            tracing::warn!(framework = fid, executor = eid, "{}", end.message);
            rec.end.get_or_insert(end);
            return false;
        }
        true
    }

    /// A recovered executor is gone or must go: its process group and task cgroups are
    /// killed, then it is finalized (its tasks end as lost unless something else ended
    /// it first).
    async fn lost_recovered(&self, fid: String, eid: String, cid: String, pid: Option<u32>) {
        {
            let st = self.lock();
            let exists = st
                .frameworks
                .get(&fid)
                .and_then(|f| f.executors.get(&eid))
                .is_some_and(|r| r.container_id == cid);
            if st.dead || !exists {
                return;
            }
        }
        if let Some(pid) = pid {
            process::signal_group(pid, Signal::SIGKILL);
        }
        let (f, e) = (fid.clone(), eid.clone());
        let root = std::path::PathBuf::from("/sys/fs/cgroup");
        let _ = tokio::task::spawn_blocking(move || {
            orphans::kill_scopes(&root, &f, &e, ORPHAN_KILL_LIMIT)
        })
        .await;
        let mut st = self.lock();
        if st.dead {
            return;
        }
        let default_end = Self::lost_end(
            &st,
            &fid,
            Reason::ExecutorTerminated,
            "Executor did not survive the agent restart; its tasks were killed".into(),
        );
        let Some(rec) = st.exec_run_mut(&fid, &eid, &cid) else {
            return;
        };
        if rec.phase == Phase::Registering {
            rec.end.get_or_insert(default_end);
        }
        tracing::info!(framework = %fid, executor = %eid, "recovered executor gone");
        self.finalize(&mut st, &fid, &eid, -1);
    }
}
