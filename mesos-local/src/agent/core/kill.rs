//! Kill and shutdown (tasks, executors, frameworks, the whole agent) and fault
//! injection (killed executors, dropped streams, a crashed agent).

#[allow(clippy::wildcard_imports)]
use super::*;

impl Shared {
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
    pub(super) fn escalate(
        &self,
        fid: &str,
        eid: &str,
        cid: &str,
        after: Duration,
        signal: Signal,
    ) {
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

    pub(super) fn shutdown_locked(&self, st: &mut State, fid: &str, eid: &str) {
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
                        AgentReport::StatusUpdate {
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
        crate::agent::state::state_json(self, &st)
    }

    pub(crate) fn resend_unacknowledged(&self) {
        let mut st = self.lock();
        for (fid, status) in st.sum.heads(Instant::now()) {
            self.emit(
                &st,
                AgentReport::StatusUpdate {
                    agent_id: self.agent_id(),
                    framework_id: FrameworkId { value: fid },
                    status,
                },
            );
        }
        self.sum_wake.notify_one();
    }

    pub(crate) fn active_executors(&self) -> Vec<crate::agent::ActiveExecutor> {
        let st = self.lock();
        st.frameworks
            .values()
            .flat_map(|fw| {
                fw.executors.values().filter(|r| !r.command_task).map(|r| {
                    crate::agent::ActiveExecutor {
                        framework: fw.info.clone(),
                        info: r.info.clone(),
                    }
                })
            })
            .collect()
    }

    pub(crate) fn active_tasks(&self) -> Vec<crate::agent::ActiveTask> {
        let st = self.lock();
        let mut out = Vec::new();
        for fw in st.frameworks.values() {
            for rec in fw.executors.values() {
                let executor_id = (!rec.command_task).then(|| rec.info.executor_id.clone());
                for t in rec.tasks.values().filter(|t| !t.state.is_terminal()) {
                    out.push(crate::agent::ActiveTask {
                        framework: fw.info.clone(),
                        task: t.info.clone(),
                        executor_id: executor_id.clone(),
                        state: t.state,
                    });
                }
                for t in rec.queued.iter().flat_map(Launchable::tasks) {
                    out.push(crate::agent::ActiveTask {
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
    pub(super) fn all_pids(st: &State) -> Vec<u32> {
        st.frameworks
            .values()
            .flat_map(|f| f.executors.values())
            .filter_map(|r| r.pid)
            .collect()
    }

    pub(super) fn stop_background(&self) {
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
}

/// Waits until none of `pgids` has a live process, at most `limit`.
pub(super) async fn wait_groups_gone(pgids: &[u32], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while pgids.iter().any(|&p| process::group_alive(p)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
