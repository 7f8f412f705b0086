//! Launching: LAUNCH and LAUNCH_GROUP from the master, command tasks, tasks for a
//! custom executor (queued until it subscribes, delivered once it has).

#[allow(clippy::wildcard_imports)]
use super::*;

impl Shared {
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
    pub(super) fn admit_framework(
        &self,
        st: &mut State,
        framework: &FrameworkInfo,
    ) -> Option<String> {
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
    pub(super) fn refuse(
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

    pub(super) fn lost_state(st: &State, fid: &str) -> TaskState {
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

    pub(super) fn launch_command_task(&self, st: &mut State, fid: &str, task: TaskInfo) {
        let tid = task.task_id.value.clone();
        let ids = sandbox::validate_id("framework", fid)
            .and_then(|()| sandbox::validate_id("task", &tid));
        if let Err(e) = ids {
            self.refuse(st, fid, None, &[&task], &TaskEnd::invalid(e.to_string()));
            return;
        }
        let Some(command) = task.command.clone() else {
            self.refuse(
                st,
                fid,
                None,
                &[&task],
                &TaskEnd::invalid("Task has neither a command nor an executor"),
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
                &TaskEnd::invalid(
                    "A task or executor with this id is already running on this agent",
                ),
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

    pub(super) fn launch_on_executor(
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
            self.refuse(st, fid, None, &refs, &TaskEnd::invalid(e.to_string()));
            return;
        }
        if ei.command.is_none() {
            self.refuse(
                st,
                fid,
                Some(&eid),
                &refs,
                &TaskEnd::invalid("ExecutorInfo has no command"),
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
                    &TaskEnd::invalid("The executor id names a command task running on this agent"),
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
}

/// Sends a LAUNCH or LAUNCH_GROUP for `item` and tracks its tasks as launched.
pub(super) fn deliver(rec: &mut ExecRec, item: &Launchable, group_no: u64) {
    let group = matches!(item, Launchable::Group(_)).then_some(group_no);
    for t in item.tasks() {
        rec.tasks
            .insert(t.task_id.value.clone(), TaskRec::new(t.clone(), group));
    }
    send_launch(rec, item);
}

pub(super) fn send_launch(rec: &ExecRec, item: &Launchable) {
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
