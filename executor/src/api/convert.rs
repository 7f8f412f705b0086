//! Pure translations between Mesos messages and the runtime's types.
//!
//! - [`task_launch`]: a `TaskInfo` becomes a [`TaskLaunch`]: `data` holds the Retz task
//!   spec (JSON, with its `user`); without `data`, the task's `CommandInfo` (its `user`
//!   included) and scalar resources become a spec that runs unpinned. `KillPolicy.grace_period` becomes the kill grace.
//! - [`artifacts`]: the executor's `CommandInfo.uris` become the file names the agent's
//!   fetcher left in the sandbox (`output_file`, else the URI's last path segment).
//! - [`status`]: a [`TaskUpdate`] becomes a `TaskStatus` from `SOURCE_EXECUTOR` with a
//!   fresh v4 UUID, the state, reason, message and, in `data`, the serialised
//!   [`TaskReport`] (`retz_proto::task`): the task's `work_dir` and verified `pinning`
//!   (`TASK_RUNNING`), or its `exit_code`/`signal`, `leftovers` and `pinning` (terminal
//!   states).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use retz_proto::mesos::{
    self, ExecutorId, ExecutorInfo, TaskId, TaskInfo, TaskState, TaskStatus, task_status,
};

use retz_proto::task::TaskReport;

use crate::runtime::{FailReason, TaskLaunch, TaskUpdate};
use crate::spec::{PlainCommand, SpecError, TaskSpec, from_plain_command};

/// A task whose description cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum TaskInfoError {
    /// `data` is not a Retz task spec.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Neither `data` nor a command.
    #[error("task has neither Retz task data nor a CommandInfo with a value")]
    NoCommand,
}

/// The runtime launch for a `TaskInfo`.
pub fn task_launch(task: &TaskInfo) -> Result<TaskLaunch, TaskInfoError> {
    let spec = match task.data.as_deref().filter(|d| !d.is_empty()) {
        Some(data) => TaskSpec::from_slice(data)?,
        None => {
            let command = task
                .command
                .as_ref()
                .filter(|c| c.value.as_deref().is_some_and(|v| !v.is_empty()))
                .ok_or(TaskInfoError::NoCommand)?;
            let scalar = |name: &str| -> f64 {
                task.resources
                    .iter()
                    .filter(|r| r.name == name)
                    .filter_map(|r| r.scalar.as_ref().map(|s| s.value))
                    .sum()
            };
            let env: BTreeMap<String, String> = command
                .environment
                .iter()
                .flat_map(|e| &e.variables)
                .filter_map(|v| Some((v.name.clone(), v.value.clone()?)))
                .collect();
            let mut spec = from_plain_command(&PlainCommand {
                value: command.value.clone().unwrap_or_default(),
                shell: command.shell.unwrap_or(true),
                arguments: command.arguments.clone(),
                env,
                cpus: scalar("cpus"),
                mem_mb: scalar("mem"),
                gpus: scalar("gpus"),
            });
            spec.user = command.user.clone().filter(|u| !u.is_empty());
            spec
        }
    };
    Ok(TaskLaunch {
        task_id: task.task_id.value.clone(),
        spec,
        kill_grace: task
            .kill_policy
            .as_ref()
            .and_then(|k| k.grace_period.as_ref())
            .map(duration),
    })
}

/// A `DurationInfo` as a `Duration` (negative counts as zero).
pub fn duration(d: &mesos::DurationInfo) -> Duration {
    Duration::from_nanos(u64::try_from(d.nanoseconds).unwrap_or(0))
}

/// Sandbox file names of the executor's fetched URIs.
pub fn artifacts(info: &ExecutorInfo) -> Vec<PathBuf> {
    info.command
        .iter()
        .flat_map(|c| &c.uris)
        .filter_map(|uri| {
            let name = match uri.output_file.as_deref().filter(|f| !f.is_empty()) {
                Some(file) => file.to_owned(),
                None => {
                    let path = uri.value.split(['?', '#']).next().unwrap_or("");
                    path.rsplit('/').next().unwrap_or("").to_owned()
                }
            };
            let path = PathBuf::from(name);
            let plain = path.components().count() > 0
                && path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            plain.then_some(path)
        })
        .collect()
}

/// The `TaskStatus` for an update of task `task_id`.
pub fn status(task_id: &str, executor_id: &str, update: &TaskUpdate) -> TaskStatus {
    use task_status::Reason;
    let (state, reason, message, data) = match update {
        TaskUpdate::Running {
            pinning, work_dir, ..
        } => (
            TaskState::TaskRunning,
            None,
            pinning.summary(),
            TaskReport {
                work_dir: Some(work_dir.display().to_string()),
                pinning: Some(pinning.verified()),
                ..TaskReport::default()
            },
        ),
        TaskUpdate::Finished {
            message,
            leftovers,
            pinning,
        } => (
            TaskState::TaskFinished,
            None,
            message.clone(),
            TaskReport {
                exit_code: Some(0),
                leftovers: *leftovers,
                pinning: pinning.as_deref().cloned(),
                ..TaskReport::default()
            },
        ),
        TaskUpdate::Failed {
            reason,
            message,
            exit_code,
            signal,
            leftovers,
            pinning,
        } => {
            let reason = match reason {
                FailReason::InvalidTask => Some(Reason::TaskInvalid),
                FailReason::PinningImpossible | FailReason::LaunchFailed => {
                    Some(Reason::ContainerLaunchFailed)
                }
                FailReason::UserRefused => Some(Reason::TaskUnauthorized),
                FailReason::CommandFailed => None,
            };
            (
                TaskState::TaskFailed,
                reason,
                message.clone(),
                TaskReport {
                    exit_code: *exit_code,
                    signal: *signal,
                    leftovers: *leftovers,
                    pinning: pinning.as_deref().cloned(),
                    ..TaskReport::default()
                },
            )
        }
        TaskUpdate::Killed {
            during_launch,
            message,
            leftovers,
            pinning,
        } => (
            TaskState::TaskKilled,
            during_launch.then_some(Reason::TaskKilledDuringLaunch),
            message.clone(),
            TaskReport {
                leftovers: *leftovers,
                pinning: pinning.as_deref().cloned(),
                ..TaskReport::default()
            },
        ),
    };
    let data = (!data.is_empty()).then(|| data.to_vec());
    new_status(task_id, executor_id, state, reason, message, data)
}

/// A `TaskStatus` with the executor's fixed fields filled in.
pub fn new_status(
    task_id: &str,
    executor_id: &str,
    state: TaskState,
    reason: Option<task_status::Reason>,
    message: String,
    data: Option<Vec<u8>>,
) -> TaskStatus {
    let mut status = TaskStatus {
        task_id: TaskId {
            value: task_id.to_owned(),
        },
        message: Some(message),
        data,
        executor_id: Some(ExecutorId {
            value: executor_id.to_owned(),
        }),
        timestamp: Some(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        ),
        uuid: Some(uuid::Uuid::new_v4().as_bytes().to_vec()),
        ..TaskStatus::default()
    };
    status.set_state(state);
    status.set_source(task_status::Source::Executor);
    if let Some(reason) = reason {
        status.set_reason(reason);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pinning::PinningReport;
    use retz_proto::mesos::{CommandInfo, DurationInfo, KillPolicy, Resource, command_info, value};

    fn task(data: Option<&[u8]>, command: Option<CommandInfo>) -> TaskInfo {
        TaskInfo {
            name: "t".into(),
            task_id: TaskId { value: "t1".into() },
            data: data.map(<[u8]>::to_vec),
            command,
            kill_policy: Some(KillPolicy {
                grace_period: Some(DurationInfo {
                    nanoseconds: 1_500_000_000,
                }),
            }),
            resources: vec![
                Resource {
                    name: "cpus".into(),
                    scalar: Some(value::Scalar { value: 1.5 }),
                    ..Default::default()
                },
                Resource {
                    name: "mem".into(),
                    scalar: Some(value::Scalar { value: 128.0 }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn retz_data_wins() {
        let spec = br#"{"command":"x","cpus":2,"mem_mb":9,"affinity":"spread","cpuset":"0-1"}"#;
        let l = task_launch(&task(Some(spec), None)).unwrap();
        assert_eq!(l.task_id, "t1");
        assert_eq!(l.spec.cpuset, Some("0-1".parse().unwrap()));
        assert_eq!(l.kill_grace, Some(Duration::from_millis(1500)));
        let err = task_launch(&task(Some(b"{oops"), None)).unwrap_err();
        assert!(err.to_string().contains("not a Retz task spec"), "{err}");
    }

    #[test]
    fn plain_command_tasks() {
        let cmd = CommandInfo {
            value: Some("echo $X".into()),
            environment: Some(mesos::Environment {
                variables: vec![mesos::environment::Variable {
                    name: "X".into(),
                    value: Some("1".into()),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let l = task_launch(&task(None, Some(cmd))).unwrap();
        assert_eq!(l.spec.command, "echo $X");
        assert_eq!(l.spec.cpus, 2);
        assert_eq!(l.spec.mem_mb, 128);
        assert_eq!(l.spec.env["X"], "1");
        assert_eq!(l.spec.user, None, "the executor's default user");
        let cmd = CommandInfo {
            value: Some("id".into()),
            user: Some("alice".into()),
            ..Default::default()
        };
        let l = task_launch(&task(None, Some(cmd))).unwrap();
        assert_eq!(l.spec.user.as_deref(), Some("alice"));
        assert!(matches!(
            task_launch(&task(None, None)),
            Err(TaskInfoError::NoCommand)
        ));
    }

    #[test]
    fn artifact_names() {
        let uri = |value: &str, out: Option<&str>| command_info::Uri {
            value: value.into(),
            output_file: out.map(Into::into),
            ..Default::default()
        };
        let info = ExecutorInfo {
            command: Some(CommandInfo {
                uris: vec![
                    uri("http://h/x/app.tar.gz?sig=1", None),
                    uri("hdfs://n/apps/run.sh", None),
                    uri("http://h/blob", Some("lib.tgz")),
                    uri("http://h/dir/", None),
                    uri("http://h/x", Some("../evil")),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let names: Vec<PathBuf> = artifacts(&info);
        assert_eq!(
            names,
            vec![
                PathBuf::from("app.tar.gz"),
                PathBuf::from("run.sh"),
                PathBuf::from("lib.tgz"),
            ]
        );
    }

    #[test]
    fn statuses() {
        let running = TaskUpdate::Running {
            pid: 1,
            work_dir: "/w".into(),
            pinning: Box::new(PinningReport::default()),
        };
        let s = status("t", "e", &running);
        assert_eq!(s.state(), TaskState::TaskRunning);
        assert_eq!(s.source(), task_status::Source::Executor);
        assert_eq!(s.uuid.as_ref().unwrap().len(), 16);
        assert_eq!(
            uuid::Uuid::from_slice(s.uuid.as_ref().unwrap())
                .unwrap()
                .get_version_num(),
            4
        );
        let data: serde_json::Value = serde_json::from_slice(s.data.as_ref().unwrap()).unwrap();
        assert!(
            data.get("work_dir").is_some_and(|w| w.is_string()),
            "{data}"
        );
        assert_eq!(data["pinning"]["outcome"], "unverifiable", "{data}");
        assert_eq!(data["pinning"]["mechanism"], "none", "{data}");
        assert_eq!(s.executor_id.as_ref().unwrap().value, "e");
        let s = status(
            "t",
            "e",
            &TaskUpdate::Failed {
                reason: FailReason::InvalidTask,
                message: "bad".into(),
                exit_code: None,
                signal: None,
                leftovers: 0,
                pinning: None,
            },
        );
        assert_eq!(s.state(), TaskState::TaskFailed);
        assert_eq!(s.reason(), task_status::Reason::TaskInvalid);
        assert_eq!(s.data, None);
        let s = status(
            "t",
            "e",
            &TaskUpdate::Failed {
                reason: FailReason::CommandFailed,
                message: "command exited with code 3".into(),
                exit_code: Some(3),
                signal: None,
                leftovers: 0,
                pinning: None,
            },
        );
        assert_eq!(s.data.as_deref(), Some(&b"{\"exit_code\":3}"[..]));
        assert_eq!(s.reason, None);
        let s = status(
            "t",
            "e",
            &TaskUpdate::Failed {
                reason: FailReason::UserRefused,
                message: "job user \"root\" has uid 0".into(),
                exit_code: None,
                signal: None,
                leftovers: 0,
                pinning: None,
            },
        );
        assert_eq!(s.reason(), task_status::Reason::TaskUnauthorized);
        let s = status(
            "t",
            "e",
            &TaskUpdate::Killed {
                during_launch: true,
                message: "k".into(),
                leftovers: 0,
                pinning: None,
            },
        );
        assert_eq!(s.state(), TaskState::TaskKilled);
        assert_eq!(s.reason(), task_status::Reason::TaskKilledDuringLaunch);
        assert_eq!(s.data, None);
        let s = status(
            "t",
            "e",
            &TaskUpdate::Killed {
                during_launch: false,
                message: "killed; 1 leftover process killed".into(),
                leftovers: 1,
                pinning: None,
            },
        );
        assert_eq!(s.data.as_deref(), Some(&b"{\"leftovers\":1}"[..]));
        let s = status(
            "t",
            "e",
            &TaskUpdate::Finished {
                message: "ok".into(),
                leftovers: 0,
                pinning: None,
            },
        );
        assert_eq!(s.state(), TaskState::TaskFinished);
        assert_eq!(s.reason, None);
        assert_eq!(s.data.as_deref(), Some(&b"{\"exit_code\":0}"[..]));
        let s = status(
            "t",
            "e",
            &TaskUpdate::Finished {
                message: "command exited with code 0; 2 leftover processes killed".into(),
                leftovers: 2,
                pinning: Some(Box::new(PinningReport::default().verified())),
            },
        );
        let report = TaskReport::from_slice(s.data.as_ref().unwrap()).unwrap();
        assert_eq!((report.exit_code, report.leftovers), (Some(0), 2));
        assert_eq!(
            report.pinning.map(|p| p.outcome),
            Some(retz_proto::task::Verification::Unverifiable)
        );
        let s = status(
            "t",
            "e",
            &TaskUpdate::Failed {
                reason: FailReason::CommandFailed,
                message: "command killed by signal 9 (SIGKILL)".into(),
                exit_code: None,
                signal: Some(9),
                leftovers: 0,
                pinning: None,
            },
        );
        assert_eq!(s.data.as_deref(), Some(&b"{\"signal\":9}"[..]));
    }
}
