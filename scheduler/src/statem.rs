//! The job state machine: pure functions from a job and one event (a Mesos status update,
//! a user kill, a launch) to the job's next version. No I/O; the caller stores the result
//! with a compare-and-set on the old state ([`crate::store::Store::update_job`]).
//!
//! Invariants (property-tested below):
//! - FINISHED and KILLED are absorbing: nothing changes a terminal job;
//! - `retry` never exceeds the job's retry limit plus one;
//! - a QUEUED job holds no grant, task id, agent id or sandbox url;
//! - an update for a task id that is not the job's current one (an old attempt) changes
//!   nothing, so a late TASK_LOST of attempt 1 cannot requeue attempt 2.

use retz_proto::api::{Grant, Job, JobState, Sandbox};
use retz_proto::mesos::TaskState;

/// The server's default retry limit for lost tasks (the original's).
pub const DEFAULT_MAX_RETRIES: u32 = 5;

/// The `reason` of a job its user killed.
pub const CANCELED_BY_USER: &str = "Canceled by user";

/// How many times a job may be requeued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries allowed when the job names none (`max_retries` absent).
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

impl RetryPolicy {
    /// The retry limit of `job`: its own override, else the server default.
    pub fn max_for(&self, job: &Job) -> u32 {
        job.max_retries.unwrap_or(self.max_retries)
    }
}

/// One Mesos status update, as the state machine needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusInput {
    /// The task the update is about.
    pub task_id: String,
    /// The task's new state.
    pub state: TaskState,
    /// Mesos' message, if any.
    pub message: Option<String>,
    /// The command's exit code, when the executor reported one.
    pub exit_code: Option<i32>,
    /// The agent the task runs on.
    pub agent_id: Option<String>,
    /// For TASK_UNREACHABLE and TASK_UNKNOWN: the task is known to be gone for good (the
    /// partition timeout expired, or reconciliation found no trace of it). Without it
    /// those states change nothing, since the task may still be running.
    pub gone_for_good: bool,
}

impl StatusInput {
    /// An update of `task_id` to `state`, with no message, exit code or agent.
    pub fn new(task_id: impl Into<String>, state: TaskState) -> StatusInput {
        StatusInput {
            task_id: task_id.into(),
            state,
            message: None,
            exit_code: None,
            agent_id: None,
            gone_for_good: false,
        }
    }
}

/// Why an event left the job as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unchanged {
    /// The job already ended.
    Terminal,
    /// The update is about another task id (an old attempt, or a job not launched).
    OtherTask,
    /// The event does not move the job (TASK_STAGING, TASK_KILLING, a duplicate,
    /// TASK_UNREACHABLE before its timeout, ...).
    NoEffect,
}

/// The result of applying an event.
// Made once per status update and consumed at once by the caller; boxing would only add
// an allocation on the common (Changed) path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Nothing to store.
    Unchanged(Unchanged),
    /// The job's next version: store it with `expected` = the old state.
    Changed(Job),
}

/// Applies a status update to `job` at time `now` ([`retz_proto::api::TIME_FORMAT`]).
pub fn on_status(job: &Job, update: &StatusInput, policy: &RetryPolicy, now: &str) -> Transition {
    if job.state.is_terminal() {
        return Transition::Unchanged(Unchanged::Terminal);
    }
    if !job.state.is_active() || job.task_id.as_deref() != Some(update.task_id.as_str()) {
        return Transition::Unchanged(Unchanged::OtherTask);
    }
    let message = || {
        update
            .message
            .clone()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| update.state.as_str_name().to_owned())
    };
    match update.state {
        TaskState::TaskStaging | TaskState::TaskStarting | TaskState::TaskKilling => {
            Transition::Unchanged(Unchanged::NoEffect)
        }
        TaskState::TaskRunning => {
            if job.state != JobState::Starting {
                return Transition::Unchanged(Unchanged::NoEffect);
            }
            let mut next = job.clone();
            next.state = JobState::Started;
            next.started = Some(now.to_owned());
            if update.agent_id.is_some() {
                next.slave_id.clone_from(&update.agent_id);
            }
            Transition::Changed(next)
        }
        TaskState::TaskFinished => {
            let mut next = job.clone();
            next.state = JobState::Finished;
            next.finished = Some(now.to_owned());
            next.result = update.exit_code.unwrap_or(0);
            next.pending = None;
            // What the executor says about the end (for example the leftover processes
            // it killed) stays readable in get-job.
            next.reason = update.message.clone().filter(|m| !m.trim().is_empty());
            Transition::Changed(next)
        }
        TaskState::TaskFailed => {
            if job.kill_requested {
                return Transition::Changed(killed(job, CANCELED_BY_USER.to_owned(), now));
            }
            let mut next = if job.retry_on_failure {
                requeue_or_give_up(job, policy, &message(), now)
            } else {
                killed(job, message(), now)
            };
            if let (JobState::Killed, Some(code)) = (next.state, update.exit_code) {
                next.result = code;
            }
            Transition::Changed(next)
        }
        TaskState::TaskError => Transition::Changed(killed(job, message(), now)),
        TaskState::TaskKilled => {
            let reason = if job.kill_requested {
                CANCELED_BY_USER.to_owned()
            } else {
                message()
            };
            Transition::Changed(killed(job, reason, now))
        }
        TaskState::TaskLost
        | TaskState::TaskDropped
        | TaskState::TaskGone
        | TaskState::TaskGoneByOperator => Transition::Changed(lost(job, policy, &message(), now)),
        TaskState::TaskUnreachable | TaskState::TaskUnknown => {
            if update.gone_for_good {
                Transition::Changed(lost(job, policy, &message(), now))
            } else {
                Transition::Unchanged(Unchanged::NoEffect)
            }
        }
    }
}

fn lost(job: &Job, policy: &RetryPolicy, message: &str, now: &str) -> Job {
    if job.kill_requested {
        killed(job, CANCELED_BY_USER.to_owned(), now)
    } else {
        requeue_or_give_up(job, policy, message, now)
    }
}

/// QUEUED with `retry + 1` and the attempt's placement cleared, or KILLED once the retry
/// limit is passed.
fn requeue_or_give_up(job: &Job, policy: &RetryPolicy, message: &str, now: &str) -> Job {
    let max = policy.max_for(job);
    let retry = job.retry.saturating_add(1);
    if retry > max {
        let mut next = killed(job, format!("{message}; gave up after {max} retries"), now);
        next.retry = retry;
        return next;
    }
    let mut next = job.clone();
    next.state = JobState::Queued;
    next.retry = retry;
    next.reason = Some(format!("{message}; retry {retry} of {max}"));
    next.granted = None;
    next.task_id = None;
    next.slave_id = None;
    next.sandbox = None;
    next.started = None;
    next.pending = None;
    next
}

fn killed(job: &Job, reason: String, now: &str) -> Job {
    let mut next = job.clone();
    next.state = JobState::Killed;
    next.reason = Some(reason);
    next.finished = Some(now.to_owned());
    next.pending = None;
    next
}

/// The result of a user's kill request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KillOutcome {
    /// The job was waiting: it is KILLED now (store it, expected = the old state).
    Killed(Job),
    /// The job runs: store this version (it carries `kill_requested`) and have the
    /// planner send KILL; TASK_KILLED then ends it.
    Requested(Job),
    /// The job was already killed; nothing to do (a second kill succeeds).
    AlreadyKilled,
    /// The job already finished; it cannot be killed.
    AlreadyFinished,
}

/// Applies a user's kill request to `job` at time `now`.
pub fn on_kill(job: &Job, now: &str) -> KillOutcome {
    match job.state {
        JobState::Created | JobState::Queued => {
            let mut next = killed(job, CANCELED_BY_USER.to_owned(), now);
            next.granted = None;
            KillOutcome::Killed(next)
        }
        JobState::Starting | JobState::Started => {
            let mut next = job.clone();
            next.kill_requested = true;
            KillOutcome::Requested(next)
        }
        JobState::Killed => KillOutcome::AlreadyKilled,
        JobState::Finished => KillOutcome::AlreadyFinished,
    }
}

/// Where and with what the planner launched a job's next attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The agent.
    pub agent_id: String,
    /// The agent's sandbox location, when the offer named the agent's URL.
    pub sandbox: Option<Sandbox>,
    /// What was granted.
    pub grant: Grant,
}

/// A QUEUED job launched: STARTING, next attempt number, that attempt's task id
/// ([`Job::task_id_for`]), the grant and the agent. `None` for a job that is not QUEUED.
pub fn on_launch(job: &Job, launch: Launch) -> Option<Job> {
    if job.state != JobState::Queued {
        return None;
    }
    let mut next = job.clone();
    next.attempt = job.attempt.saturating_add(1);
    next.task_id = Some(job.task_id_for(next.attempt));
    next.state = JobState::Starting;
    next.slave_id = Some(launch.agent_id);
    next.sandbox = launch.sandbox;
    next.granted = Some(launch.grant);
    next.pending = None;
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: &str = "2026-01-02T03:04:05.678+00:00";

    fn grant() -> Grant {
        Grant {
            cpu: 2,
            mem_mb: 64,
            gpu: 0,
            gpu_ids: None,
            cpuset: Some("0-1".into()),
            numa_nodes: Some("0".into()),
            pinned: true,
            ports: Vec::new(),
            user: None,
            features: None,
        }
    }

    fn queued() -> Job {
        let mut j = Job::new("app", "true");
        j.id = 7;
        j.state = JobState::Queued;
        j
    }

    fn launched() -> Job {
        on_launch(
            &queued(),
            Launch {
                agent_id: "agent-1".into(),
                sandbox: Some(Sandbox {
                    agent: "http://a:5051".into(),
                    directory: Some("/s".into()),
                }),
                grant: grant(),
            },
        )
        .unwrap()
    }

    fn update(job: &Job, state: TaskState) -> StatusInput {
        StatusInput::new(job.task_id.clone().unwrap(), state)
    }

    fn apply(job: &Job, up: &StatusInput) -> Job {
        match on_status(job, up, &RetryPolicy::default(), NOW) {
            Transition::Changed(j) => j,
            Transition::Unchanged(u) => panic!("unchanged: {u:?}"),
        }
    }

    #[test]
    fn launch_sets_attempt_task_id_and_grant() {
        let j = launched();
        assert_eq!(j.state, JobState::Starting);
        assert_eq!(j.attempt, 1);
        assert_eq!(j.task_id.as_deref(), Some("retz-app-id-7-1"));
        assert_eq!(j.granted, Some(grant()));
        assert!(
            on_launch(
                &j,
                Launch {
                    agent_id: "x".into(),
                    sandbox: None,
                    grant: grant()
                }
            )
            .is_none()
        );
    }

    #[test]
    fn running_then_finished_records_agent_time_and_exit_code() {
        let mut up = update(&launched(), TaskState::TaskRunning);
        up.agent_id = Some("agent-2".into());
        let started = apply(&launched(), &up);
        assert_eq!(started.state, JobState::Started);
        assert_eq!(started.started.as_deref(), Some(NOW));
        assert_eq!(started.slave_id.as_deref(), Some("agent-2"));
        let mut fin = update(&started, TaskState::TaskFinished);
        let done = apply(&started, &fin);
        assert_eq!((done.state, done.result), (JobState::Finished, 0));
        fin.exit_code = Some(3);
        assert_eq!(apply(&started, &fin).result, 3);
        assert_eq!(done.reason, None, "no message, no reason");
        fin.message = Some("command exited with code 0; 1 leftover process killed".into());
        assert_eq!(
            apply(&started, &fin).reason.as_deref(),
            Some("command exited with code 0; 1 leftover process killed"),
            "what the executor says about the end is kept"
        );
    }

    #[test]
    fn starting_and_duplicate_running_change_nothing() {
        let j = launched();
        assert_eq!(
            on_status(
                &j,
                &update(&j, TaskState::TaskStarting),
                &RetryPolicy::default(),
                NOW
            ),
            Transition::Unchanged(Unchanged::NoEffect)
        );
        let s = apply(&j, &update(&j, TaskState::TaskRunning));
        assert_eq!(
            on_status(
                &s,
                &update(&s, TaskState::TaskRunning),
                &RetryPolicy::default(),
                NOW
            ),
            Transition::Unchanged(Unchanged::NoEffect)
        );
    }

    #[test]
    fn failed_kills_unless_the_job_asks_for_retries() {
        let j = launched();
        let mut up = update(&j, TaskState::TaskFailed);
        up.message = Some("exit 1".into());
        up.exit_code = Some(1);
        let k = apply(&j, &up);
        assert_eq!(k.state, JobState::Killed);
        assert_eq!(k.reason.as_deref(), Some("exit 1"));
        assert_eq!(k.result, 1);
        let mut r = launched();
        r.retry_on_failure = true;
        let q = apply(&r, &up);
        assert_eq!(q.state, JobState::Queued);
        assert_eq!(q.retry, 1);
        assert!(q.granted.is_none() && q.task_id.is_none() && q.sandbox.is_none());
    }

    #[test]
    fn error_and_killed_end_the_job_with_the_message() {
        let j = launched();
        let mut up = update(&j, TaskState::TaskError);
        up.message = Some("bad task".into());
        assert_eq!(apply(&j, &up).reason.as_deref(), Some("bad task"));
        let k = apply(&j, &update(&j, TaskState::TaskKilled));
        assert_eq!(k.state, JobState::Killed);
        assert_eq!(k.reason.as_deref(), Some("TASK_KILLED"));
    }

    #[test]
    fn lost_requeues_until_the_limit_then_kills() {
        let mut j = launched();
        j.max_retries = Some(2);
        for expected_retry in 1..=2 {
            let q = apply(&j, &update(&j, TaskState::TaskLost));
            assert_eq!((q.state, q.retry), (JobState::Queued, expected_retry));
            j = on_launch(
                &q,
                Launch {
                    agent_id: "a".into(),
                    sandbox: None,
                    grant: grant(),
                },
            )
            .unwrap();
        }
        let k = apply(&j, &update(&j, TaskState::TaskGone));
        assert_eq!((k.state, k.retry), (JobState::Killed, 3));
        assert!(k.reason.unwrap().contains("gave up after 2 retries"));
    }

    #[test]
    fn unreachable_requeues_only_when_gone_for_good() {
        let j = launched();
        let mut up = update(&j, TaskState::TaskUnreachable);
        assert_eq!(
            on_status(&j, &up, &RetryPolicy::default(), NOW),
            Transition::Unchanged(Unchanged::NoEffect)
        );
        up.gone_for_good = true;
        assert_eq!(apply(&j, &up).state, JobState::Queued);
    }

    #[test]
    fn updates_of_old_attempts_and_terminal_jobs_change_nothing() {
        let j = launched();
        let old = StatusInput::new(j.task_id_for(0), TaskState::TaskLost);
        assert_eq!(
            on_status(&j, &old, &RetryPolicy::default(), NOW),
            Transition::Unchanged(Unchanged::OtherTask)
        );
        let done = apply(&j, &update(&j, TaskState::TaskFinished));
        assert_eq!(
            on_status(
                &done,
                &update(&j, TaskState::TaskLost),
                &RetryPolicy::default(),
                NOW
            ),
            Transition::Unchanged(Unchanged::Terminal)
        );
    }

    #[test]
    fn user_kill_of_queued_is_immediate_of_running_is_requested() {
        let KillOutcome::Killed(k) = on_kill(&queued(), NOW) else {
            panic!("queued job not killed")
        };
        assert_eq!(k.reason.as_deref(), Some(CANCELED_BY_USER));
        assert_eq!(on_kill(&k, NOW), KillOutcome::AlreadyKilled);
        let KillOutcome::Requested(r) = on_kill(&launched(), NOW) else {
            panic!("running job not requested")
        };
        assert_eq!(r.state, JobState::Starting);
        assert!(r.kill_requested);
        let mut up = update(&r, TaskState::TaskKilled);
        up.message = Some("killed by executor".into());
        assert_eq!(apply(&r, &up).reason.as_deref(), Some(CANCELED_BY_USER));
        // A requested kill is not undone by a lost task: no requeue.
        assert_eq!(
            apply(&r, &update(&r, TaskState::TaskLost)).state,
            JobState::Killed
        );
        let fin = apply(&r, &update(&r, TaskState::TaskFinished));
        assert_eq!(on_kill(&fin, NOW), KillOutcome::AlreadyFinished);
    }

    #[derive(Clone, Debug)]
    enum Event {
        Status {
            state: usize,
            current: bool,
            gone: bool,
            exit: Option<i32>,
        },
        Kill,
        Launch,
    }

    const STATES: [TaskState; 14] = [
        TaskState::TaskStaging,
        TaskState::TaskStarting,
        TaskState::TaskRunning,
        TaskState::TaskKilling,
        TaskState::TaskFinished,
        TaskState::TaskFailed,
        TaskState::TaskKilled,
        TaskState::TaskError,
        TaskState::TaskLost,
        TaskState::TaskDropped,
        TaskState::TaskUnreachable,
        TaskState::TaskGone,
        TaskState::TaskGoneByOperator,
        TaskState::TaskUnknown,
    ];

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            6 => (0..STATES.len(), any::<bool>(), any::<bool>(), proptest::option::of(-2..3i32))
                .prop_map(|(state, current, gone, exit)| Event::Status { state, current, gone, exit }),
            1 => Just(Event::Kill),
            3 => Just(Event::Launch),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_over_any_event_sequence(
            events in proptest::collection::vec(event(), 0..60),
            max in proptest::option::of(0u32..4),
            default_max in 0u32..6,
            retry_on_failure in any::<bool>(),
        ) {
            let policy = RetryPolicy { max_retries: default_max };
            let mut job = queued();
            job.max_retries = max;
            job.retry_on_failure = retry_on_failure;
            let limit = policy.max_for(&job);
            for ev in events {
                let before = job.clone();
                let next = match ev {
                    Event::Status { state, current, gone, exit } => {
                        let task = if current {
                            job.task_id.clone().unwrap_or_else(|| job.task_id_for(job.attempt))
                        } else {
                            job.task_id_for(job.attempt + 7)
                        };
                        let mut up = StatusInput::new(task, STATES[state]);
                        up.gone_for_good = gone;
                        up.exit_code = exit;
                        match on_status(&job, &up, &policy, NOW) {
                            Transition::Changed(j) => Some(j),
                            Transition::Unchanged(_) => None,
                        }
                    }
                    Event::Kill => match on_kill(&job, NOW) {
                        KillOutcome::Killed(j) | KillOutcome::Requested(j) => Some(j),
                        _ => None,
                    },
                    Event::Launch => on_launch(
                        &job,
                        Launch { agent_id: "a".into(), sandbox: None, grant: grant() },
                    ),
                };
                if let Some(n) = next {
                    job = n;
                }
                if before.state.is_terminal() {
                    prop_assert_eq!(&job, &before, "terminal state changed");
                }
                prop_assert!(job.retry <= limit + 1, "retry {} > {}", job.retry, limit + 1);
                if job.state == JobState::Queued {
                    prop_assert!(job.granted.is_none() && job.task_id.is_none()
                        && job.slave_id.is_none() && job.sandbox.is_none());
                }
                if job.state.is_active() {
                    prop_assert!(job.task_id.is_some());
                }
            }
        }
    }
}
