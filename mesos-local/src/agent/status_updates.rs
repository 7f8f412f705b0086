//! The status update manager: per task, status updates reach the master one at a time.
//!
//! Pure state machine (time is passed in). For every (framework, task) there is a
//! stream of pending updates; only its head is "in flight" (sent to the master). The
//! next update of that task is released only when the head is acknowledged with its
//! uuid. An unacknowledged head is resent after [`RETRY_INITIAL`], then after doubling
//! intervals capped at [`RETRY_MAX`].
//!
//! Invariants:
//! * per task, updates are forwarded in the order they were accepted, each one only
//!   after every earlier one was acknowledged;
//! * an update whose uuid is already pending or was acknowledged is a duplicate and is
//!   not queued again;
//! * after a terminal update has been accepted, later updates for that task are refused
//!   while its stream lives; a stream disappears once its terminal update is
//!   acknowledged.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use retz_proto::mesos::TaskStatus;

/// First resend interval of an unacknowledged update.
pub const RETRY_INITIAL: Duration = Duration::from_secs(10);
/// Longest resend interval.
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// What became of an update handed to [`StatusUpdateManager::update`].
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// It is the head of its stream now: send it to the master.
    Forward(Box<TaskStatus>),
    /// Queued behind an unacknowledged update.
    Queued,
    /// Same uuid as an update already pending or acknowledged; nothing to do.
    Duplicate,
}

/// What an acknowledgement did.
#[derive(Debug, Clone, PartialEq)]
pub struct AckOutcome {
    /// The next update of the task, now in flight: send it to the master.
    pub next: Option<TaskStatus>,
    /// The acknowledged update was terminal: the task is done on this agent.
    pub terminal: bool,
}

/// An update or acknowledgement the manager refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusUpdateError {
    /// The update has no uuid (every agent-side update must have one).
    #[error("status update for task {task_id} has no uuid")]
    MissingUuid {
        /// The task.
        task_id: String,
    },
    /// A terminal update was already accepted for this task.
    #[error("status update {state} for task {task_id} after its terminal update; dropped")]
    AfterTerminal {
        /// The task.
        task_id: String,
        /// The refused update's state.
        state: String,
    },
    /// No pending update for that task.
    #[error(
        "acknowledgement for task {task_id} of framework {framework_id}, which has no pending status update"
    )]
    UnknownStream {
        /// The framework.
        framework_id: String,
        /// The task.
        task_id: String,
    },
    /// The uuid is not that of the update in flight.
    #[error(
        "acknowledgement for task {task_id} does not match the update in flight (expected uuid {expected}, got {got})"
    )]
    UnexpectedUuid {
        /// The task.
        task_id: String,
        /// Hex of the head's uuid.
        expected: String,
        /// Hex of the acknowledged uuid.
        got: String,
    },
}

#[derive(Debug)]
struct Stream {
    pending: VecDeque<TaskStatus>,
    acked: HashSet<Vec<u8>>,
    terminal_accepted: bool,
    retry_at: Instant,
    backoff: Duration,
}

/// Per-task status update streams of one agent.
#[derive(Debug, Default)]
pub struct StatusUpdateManager {
    streams: BTreeMap<(String, String), Stream>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl StatusUpdateManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts an update of `framework_id` (its `uuid` must be set).
    pub fn update(
        &mut self,
        framework_id: &str,
        status: TaskStatus,
        now: Instant,
    ) -> Result<UpdateOutcome, StatusUpdateError> {
        let task_id = status.task_id.value.clone();
        let Some(uuid) = status.uuid.clone() else {
            return Err(StatusUpdateError::MissingUuid { task_id });
        };
        let key = (framework_id.to_string(), task_id.clone());
        let stream = self.streams.entry(key).or_insert_with(|| Stream {
            pending: VecDeque::new(),
            acked: HashSet::new(),
            terminal_accepted: false,
            retry_at: now,
            backoff: RETRY_INITIAL,
        });
        if stream.acked.contains(&uuid)
            || stream
                .pending
                .iter()
                .any(|s| s.uuid.as_deref() == Some(&uuid))
        {
            return Ok(UpdateOutcome::Duplicate);
        }
        if stream.terminal_accepted {
            return Err(StatusUpdateError::AfterTerminal {
                task_id,
                state: status.state().as_str_name().to_string(),
            });
        }
        stream.terminal_accepted = status.state().is_terminal();
        stream.pending.push_back(status);
        if stream.pending.len() == 1 {
            stream.backoff = RETRY_INITIAL;
            stream.retry_at = now + RETRY_INITIAL;
            Ok(UpdateOutcome::Forward(Box::new(stream.pending[0].clone())))
        } else {
            Ok(UpdateOutcome::Queued)
        }
    }

    /// Handles the master's acknowledgement of the update in flight for a task.
    pub fn acknowledge(
        &mut self,
        framework_id: &str,
        task_id: &str,
        uuid: &[u8],
        now: Instant,
    ) -> Result<AckOutcome, StatusUpdateError> {
        let key = (framework_id.to_string(), task_id.to_string());
        let Some(stream) = self.streams.get_mut(&key) else {
            return Err(StatusUpdateError::UnknownStream {
                framework_id: framework_id.to_string(),
                task_id: task_id.to_string(),
            });
        };
        let Some(head) = stream.pending.front() else {
            return Err(StatusUpdateError::UnknownStream {
                framework_id: framework_id.to_string(),
                task_id: task_id.to_string(),
            });
        };
        let head_uuid = head.uuid.clone().unwrap_or_default();
        if head_uuid != uuid {
            return Err(StatusUpdateError::UnexpectedUuid {
                task_id: task_id.to_string(),
                expected: hex(&head_uuid),
                got: hex(uuid),
            });
        }
        let head = stream.pending.pop_front().unwrap_or_default();
        stream.acked.insert(head_uuid);
        let terminal = head.state().is_terminal();
        if terminal {
            self.streams.remove(&key);
            return Ok(AckOutcome {
                next: None,
                terminal: true,
            });
        }
        stream.backoff = RETRY_INITIAL;
        stream.retry_at = now + RETRY_INITIAL;
        Ok(AckOutcome {
            next: stream.pending.front().cloned(),
            terminal: false,
        })
    }

    /// The updates in flight whose resend time has come, each rescheduled with a doubled
    /// interval (capped at [`RETRY_MAX`]).
    pub fn due(&mut self, now: Instant) -> Vec<(String, TaskStatus)> {
        let mut out = Vec::new();
        for ((framework_id, _), stream) in &mut self.streams {
            let Some(head) = stream.pending.front() else {
                continue;
            };
            if stream.retry_at <= now {
                stream.backoff = (stream.backoff * 2).min(RETRY_MAX);
                stream.retry_at = now + stream.backoff;
                out.push((framework_id.clone(), head.clone()));
            }
        }
        out
    }

    /// Every update in flight, to resend at once (the agent re-registered with a master);
    /// their resend intervals start over at [`RETRY_INITIAL`].
    pub fn heads(&mut self, now: Instant) -> Vec<(String, TaskStatus)> {
        let mut out = Vec::new();
        for ((framework_id, _), stream) in &mut self.streams {
            if let Some(head) = stream.pending.front() {
                stream.backoff = RETRY_INITIAL;
                stream.retry_at = now + RETRY_INITIAL;
                out.push((framework_id.clone(), head.clone()));
            }
        }
        out
    }

    /// When [`due`](Self::due) next has something to resend.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .values()
            .filter(|s| !s.pending.is_empty())
            .map(|s| s.retry_at)
            .min()
    }

    /// Drops every stream of a framework (it was shut down).
    pub fn remove_framework(&mut self, framework_id: &str) {
        self.streams.retain(|(f, _), _| f != framework_id);
    }

    /// How many updates are pending (in flight or queued) for a task.
    pub fn pending(&self, framework_id: &str, task_id: &str) -> usize {
        self.streams
            .get(&(framework_id.to_string(), task_id.to_string()))
            .map_or(0, |s| s.pending.len())
    }

    /// The pending updates of a task, head first.
    pub fn pending_updates(&self, framework_id: &str, task_id: &str) -> Vec<TaskStatus> {
        self.streams
            .get(&(framework_id.to_string(), task_id.to_string()))
            .map(|s| s.pending.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use retz_proto::mesos::{TaskId, TaskState};

    fn status(task: &str, state: TaskState, n: u8) -> TaskStatus {
        TaskStatus {
            task_id: TaskId { value: task.into() },
            state: state as i32,
            uuid: Some(vec![n; 16]),
            ..Default::default()
        }
    }

    #[test]
    fn one_in_flight_per_task_and_order_kept() {
        let t0 = Instant::now();
        let mut m = StatusUpdateManager::new();
        let r = m
            .update("F", status("t", TaskState::TaskRunning, 1), t0)
            .unwrap();
        assert!(matches!(r, UpdateOutcome::Forward(s) if s.uuid == Some(vec![1; 16])));
        let r = m
            .update("F", status("t", TaskState::TaskFinished, 2), t0)
            .unwrap();
        assert_eq!(r, UpdateOutcome::Queued);
        // another task is independent
        let r = m
            .update("F", status("u", TaskState::TaskRunning, 3), t0)
            .unwrap();
        assert!(matches!(r, UpdateOutcome::Forward(_)));
        // wrong uuid
        let e = m.acknowledge("F", "t", &[2; 16], t0).unwrap_err();
        assert!(matches!(e, StatusUpdateError::UnexpectedUuid { .. }));
        let a = m.acknowledge("F", "t", &[1; 16], t0).unwrap();
        assert_eq!(a.next.unwrap().uuid, Some(vec![2; 16]));
        assert!(!a.terminal);
        let a = m.acknowledge("F", "t", &[2; 16], t0).unwrap();
        assert!(a.terminal && a.next.is_none());
        assert_eq!(m.pending("F", "t"), 0);
        assert!(m.acknowledge("F", "t", &[2; 16], t0).is_err());
    }

    #[test]
    fn duplicates_and_updates_after_terminal() {
        let t0 = Instant::now();
        let mut m = StatusUpdateManager::new();
        m.update("F", status("t", TaskState::TaskRunning, 1), t0)
            .unwrap();
        let r = m
            .update("F", status("t", TaskState::TaskRunning, 1), t0)
            .unwrap();
        assert_eq!(r, UpdateOutcome::Duplicate);
        m.acknowledge("F", "t", &[1; 16], t0).unwrap();
        let r = m
            .update("F", status("t", TaskState::TaskRunning, 1), t0)
            .unwrap();
        assert_eq!(r, UpdateOutcome::Duplicate);
        m.update("F", status("t", TaskState::TaskFailed, 2), t0)
            .unwrap();
        let e = m
            .update("F", status("t", TaskState::TaskRunning, 3), t0)
            .unwrap_err();
        assert!(matches!(e, StatusUpdateError::AfterTerminal { .. }));
        let mut no_uuid = status("t", TaskState::TaskRunning, 4);
        no_uuid.uuid = None;
        assert!(matches!(
            m.update("F", no_uuid, t0),
            Err(StatusUpdateError::MissingUuid { .. })
        ));
    }

    #[test]
    fn retries_double_up_to_ten_minutes() {
        let t0 = Instant::now();
        let mut m = StatusUpdateManager::new();
        m.update("F", status("t", TaskState::TaskRunning, 1), t0)
            .unwrap();
        assert_eq!(m.next_deadline(), Some(t0 + RETRY_INITIAL));
        assert!(m.due(t0 + Duration::from_secs(9)).is_empty());
        let mut now = t0 + RETRY_INITIAL;
        let mut intervals = Vec::new();
        for _ in 0..8 {
            let due = m.due(now);
            assert_eq!(due.len(), 1);
            assert_eq!(due[0].0, "F");
            let next = m.next_deadline().unwrap();
            intervals.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(intervals, vec![20, 40, 80, 160, 320, 600, 600, 600]);
        // an explicit resend of every head restarts the interval
        let heads = m.heads(now);
        assert_eq!(heads.len(), 1);
        assert_eq!(m.next_deadline(), Some(now + RETRY_INITIAL));
        // an acknowledgement resets the interval for the next update
        m.update("F", status("t", TaskState::TaskFinished, 2), now)
            .unwrap();
        let a = m.acknowledge("F", "t", &[1; 16], now).unwrap();
        assert!(a.next.is_some());
        assert_eq!(m.next_deadline(), Some(now + RETRY_INITIAL));
        m.remove_framework("F");
        assert_eq!(m.next_deadline(), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Update(u8, bool),
        AckHead(u8),
        AckWrong(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..3, proptest::bool::weighted(0.2)).prop_map(|(t, term)| Op::Update(t, term)),
            (0u8..3).prop_map(Op::AckHead),
            (0u8..3).prop_map(Op::AckWrong),
        ]
    }

    proptest! {
        /// Whatever the interleaving, each task's updates reach the master in acceptance
        /// order, one at a time, each after the previous one was acknowledged.
        #[test]
        fn forwarding_is_ordered_and_gated(ops in proptest::collection::vec(op(), 0..60)) {
            let t0 = Instant::now();
            let mut m = StatusUpdateManager::new();
            let mut next_uuid: u8 = 0;
            let mut accepted: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
            let mut forwarded: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
            let mut in_flight: BTreeMap<u8, u8> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Update(t, terminal) => {
                        next_uuid = next_uuid.wrapping_add(1);
                        let state = if terminal { TaskState::TaskFinished } else { TaskState::TaskRunning };
                        match m.update("F", status(&t.to_string(), state, next_uuid), t0) {
                            Ok(UpdateOutcome::Forward(s)) => {
                                prop_assert!(!in_flight.contains_key(&t));
                                let u = s.uuid.unwrap()[0];
                                in_flight.insert(t, u);
                                forwarded.entry(t).or_default().push(u);
                                accepted.entry(t).or_default().push(next_uuid);
                            }
                            Ok(UpdateOutcome::Queued) => {
                                prop_assert!(in_flight.contains_key(&t));
                                accepted.entry(t).or_default().push(next_uuid);
                            }
                            Ok(UpdateOutcome::Duplicate) => prop_assert!(false, "fresh uuid seen as duplicate"),
                            Err(StatusUpdateError::AfterTerminal { .. }) => {}
                            Err(e) => prop_assert!(false, "unexpected {e}"),
                        }
                    }
                    Op::AckHead(t) => {
                        if let Some(u) = in_flight.remove(&t) {
                            let a = m.acknowledge("F", &t.to_string(), &[u; 16], t0).unwrap();
                            if let Some(s) = a.next {
                                let u = s.uuid.unwrap()[0];
                                in_flight.insert(t, u);
                                forwarded.entry(t).or_default().push(u);
                            }
                        } else {
                            prop_assert!(m.acknowledge("F", &t.to_string(), &[0; 16], t0).is_err());
                        }
                    }
                    Op::AckWrong(t) => {
                        prop_assert!(m.acknowledge("F", &t.to_string(), &[0xEE; 16], t0).is_err());
                    }
                }
            }
            for (t, fw) in &forwarded {
                let acc = &accepted[t];
                prop_assert_eq!(&acc[..fw.len()], &fw[..]);
                prop_assert_eq!(m.pending("F", &t.to_string()), acc.len() - fw.len() + usize::from(in_flight.contains_key(t)));
            }
        }
    }
}
