//! What the planner takes from a task status: retz-executor's typed
//! [`TaskReport`](retz_proto::task::TaskReport) in `TaskStatus.data`, read once.
//!
//! The exit code feeds the job state machine; the task's directory (TASK_RUNNING)
//! completes the job's sandbox URL; the verified pinning is stored on the job
//! ([`record_pinning`]) and counted in `/metrics`. Data that is not a report (an older or
//! foreign executor, a command task) yields nothing, never an error: the update is still
//! applied.

use retz_proto::api::Job;
use retz_proto::mesos::{TaskState, TaskStatus};
use retz_proto::task::{TaskReport, VerifiedPinning};

/// The parts of a status's report the planner uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusReport {
    /// The command's exit code (terminal states).
    pub exit_code: Option<i32>,
    /// The task's directory on the agent (TASK_RUNNING; absolute paths only).
    pub work_dir: Option<String>,
    /// The pinning the executor applied and verified.
    pub pinning: Option<VerifiedPinning>,
}

/// Reads `status.data` as a [`TaskReport`].
pub fn read(status: &TaskStatus) -> StatusReport {
    let Some(report) = status
        .data
        .as_deref()
        .and_then(|d| TaskReport::from_slice(d).ok())
    else {
        return StatusReport::default();
    };
    let work_dir = report
        .work_dir
        .filter(|d| status.state() == TaskState::TaskRunning && d.starts_with('/'));
    StatusReport {
        exit_code: report.exit_code,
        work_dir,
        pinning: report.pinning,
    }
}

/// Puts the reported pinning on `next`, the job's new record; returns the pinning when
/// it is news (not the one `prev` already holds), to be counted once stored.
pub fn record_pinning<'a>(
    prev: &Job,
    next: &mut Job,
    pinning: Option<&'a VerifiedPinning>,
) -> Option<&'a VerifiedPinning> {
    let p = pinning?;
    next.pinning = Some(p.clone());
    (prev.pinning.as_ref() != Some(p)).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::task::Verification;

    fn status(state: TaskState, data: &[u8]) -> TaskStatus {
        let mut s = TaskStatus {
            data: Some(data.to_vec()),
            ..TaskStatus::default()
        };
        s.set_state(state);
        s
    }

    const PINNING: &str = r#"{"affinity":"numa-strict","mechanism":"cgroup-v1",
        "outcome":"verified","cpus":"1","cpus_seen":"1"}"#;

    #[test]
    fn exit_codes_work_dirs_and_pinning_come_from_the_report() {
        let r = read(&status(TaskState::TaskFailed, br#"{"exit_code":3}"#));
        assert_eq!((r.exit_code, r.work_dir, r.pinning), (Some(3), None, None));
        let r = read(&status(TaskState::TaskFailed, b"not json"));
        assert_eq!(r, StatusReport::default());
        let running = format!(r#"{{"work_dir":"/sb/tasks/t1","pinning":{PINNING}}}"#);
        let r = read(&status(TaskState::TaskRunning, running.as_bytes()));
        assert_eq!(r.work_dir.as_deref(), Some("/sb/tasks/t1"));
        let p = r.pinning.unwrap();
        assert_eq!(p.outcome, Verification::Verified);
        assert_eq!(p.cpus_seen, Some("1".parse().unwrap()));
        // Only TASK_RUNNING names the directory, and only an absolute one.
        let r = read(&status(TaskState::TaskFinished, running.as_bytes()));
        assert_eq!(r.work_dir, None);
        let r = read(&status(
            TaskState::TaskRunning,
            br#"{"work_dir":"relative"}"#,
        ));
        assert_eq!(r.work_dir, None);
        // The running data of earlier executors (flat pinning report) still gives the dir.
        let r = read(&status(
            TaskState::TaskRunning,
            br#"{"work_dir":"/w","drift":[],"observed_cpus":"1"}"#,
        ));
        assert_eq!((r.work_dir.as_deref(), r.pinning), (Some("/w"), None));
    }

    #[test]
    fn a_pinning_is_news_once() {
        let p: VerifiedPinning = serde_json::from_str(PINNING).unwrap();
        let prev = Job::new("a", "true");
        let mut next = prev.clone();
        assert_eq!(record_pinning(&prev, &mut next, Some(&p)), Some(&p));
        assert_eq!(next.pinning.as_ref(), Some(&p));
        let again = next.clone();
        let mut next2 = again.clone();
        assert_eq!(record_pinning(&again, &mut next2, Some(&p)), None);
        let mut next3 = again.clone();
        assert_eq!(record_pinning(&again, &mut next3, None), None);
        assert_eq!(
            next3.pinning.as_ref(),
            Some(&p),
            "kept without a new report"
        );
    }
}
