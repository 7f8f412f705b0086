//! An executor's container: its record, the run task (sandbox, fetch, spawn, wait),
//! the registration timeout, its exit and `finalize`.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Shared {
    pub(super) fn create_executor(
        &self,
        st: &mut State,
        fid: &str,
        info: ExecutorInfo,
        run: NewRun,
    ) {
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
            token: crate::agent::auth::Token::new(),
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

    pub(super) fn registration_timeout(&self, fid: &str, eid: &str, cid: &str, timeout: Duration) {
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
    pub(super) fn started(&self, fid: &str, eid: &str, cid: &str, pid: u32) -> bool {
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
        rec.pid_start = crate::agent::checkpoint::pid_start_time(pid);
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
    pub(super) fn launch_failed(&self, fid: &str, eid: &str, cid: &str, message: String) {
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
    pub(super) fn exited(&self, fid: &str, eid: &str, cid: &str, status: std::process::ExitStatus) {
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
    pub(super) fn finalize(&self, st: &mut State, fid: &str, eid: &str, wait_status: i32) {
        let Some(fw) = st.frameworks.get_mut(fid) else {
            return;
        };
        let Some(mut rec) = fw.executors.remove(eid) else {
            return;
        };
        if rec.checkpoint {
            crate::agent::checkpoint::remove_executor(&self.cfg.work_dir, fid, eid);
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
            if !t.state.is_terminal() {
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
        let summary = crate::agent::state::executor_json(&self.cfg.id.value, fid, &rec, true);
        fw.completed.push_back(summary);
        while fw.completed.len() > COMPLETED_EXECUTORS_KEPT {
            fw.completed.pop_front();
        }
        for s in updates {
            self.sum_forward(st, fid, s);
        }
        self.emit(
            st,
            AgentReport::ExecutorExited {
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
}

/// What the run task needs to start a container, read under the lock.
pub(super) struct Prepared {
    command: CommandInfo,
    env: Vec<(String, String)>,
    directory: PathBuf,
    fetcher: Fetcher,
    user: Option<JobUser>,
    checkpoint: bool,
}

pub(super) fn prepare(
    shared: &Shared,
    fid: &str,
    eid: &str,
    cid: &str,
) -> Option<Result<Prepared, String>> {
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
pub(super) async fn run_container(me: Weak<Shared>, fid: String, eid: String, cid: String) {
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
