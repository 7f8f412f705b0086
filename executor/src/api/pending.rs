//! Bookkeeping of what the agent has not acknowledged yet (pure).
//!
//! An update stays pending from the moment it is produced until the agent's
//! `ACKNOWLEDGED{task_id, uuid}`; a task stays unacknowledged until one of its updates is
//! acknowledged. Both lists go into every re-SUBSCRIBE, and pending updates are re-sent
//! while connected when unacknowledged for a while (the agent drops duplicates by uuid).
//! Order is kept: updates are returned in the order they were produced.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use retz_proto::executor::call;
use retz_proto::mesos::{TaskInfo, TaskStatus};

#[derive(Debug, Clone)]
struct PendingUpdate {
    update: call::Update,
    last_sent: Option<Instant>,
}

/// Unacknowledged updates and tasks.
#[derive(Debug, Default, Clone)]
pub struct Pending {
    updates: Vec<PendingUpdate>,
    tasks: BTreeMap<String, TaskInfo>,
    terminal: BTreeSet<String>,
}

impl Pending {
    /// Records a task handed to the runtime.
    pub fn task_launched(&mut self, task: TaskInfo) {
        self.tasks.insert(task.task_id.value.clone(), task);
    }

    /// Records a produced status; returns the update to send.
    pub fn push(&mut self, status: TaskStatus, terminal: bool) -> call::Update {
        if terminal {
            self.terminal.insert(status.task_id.value.clone());
        }
        let update = call::Update { status };
        self.updates.push(PendingUpdate {
            update: update.clone(),
            last_sent: None,
        });
        update
    }

    /// Notes that `update` was just posted.
    pub fn mark_sent(&mut self, uuid: &[u8], now: Instant) {
        if let Some(p) = self
            .updates
            .iter_mut()
            .find(|p| p.update.status.uuid.as_deref() == Some(uuid))
        {
            p.last_sent = Some(now);
        }
    }

    /// Notes that every pending update was just sent (inside a SUBSCRIBE).
    pub fn mark_all_sent(&mut self, now: Instant) {
        for p in &mut self.updates {
            p.last_sent = Some(now);
        }
    }

    /// Handles `ACKNOWLEDGED`; false when nothing matched.
    pub fn acknowledged(&mut self, task_id: &str, uuid: &[u8]) -> bool {
        let before = self.updates.len();
        self.updates.retain(|p| {
            !(p.update.status.task_id.value == task_id
                && p.update.status.uuid.as_deref() == Some(uuid))
        });
        let matched = self.updates.len() != before;
        if matched {
            self.tasks.remove(task_id);
        }
        matched
    }

    /// Updates not (re)sent within `after`, oldest first; marks them sent at `now`.
    pub fn due(&mut self, now: Instant, after: Duration) -> Vec<call::Update> {
        self.updates
            .iter_mut()
            .filter(|p| p.last_sent.is_none_or(|t| now.duration_since(t) >= after))
            .map(|p| {
                p.last_sent = Some(now);
                p.update.clone()
            })
            .collect()
    }

    /// The `Subscribe` payload for (re)subscribing.
    pub fn subscribe(&self) -> call::Subscribe {
        call::Subscribe {
            unacknowledged_tasks: self.tasks.values().cloned().collect(),
            unacknowledged_updates: self.updates.iter().map(|p| p.update.clone()).collect(),
        }
    }

    /// Whether every update was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }

    /// Number of pending updates.
    pub fn len(&self) -> usize {
        self.updates.len()
    }

    /// Whether a terminal update was produced for `task_id`.
    pub fn ended(&self, task_id: &str) -> bool {
        self.terminal.contains(task_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::TaskId;

    fn status(task: &str, uuid: u8) -> TaskStatus {
        TaskStatus {
            task_id: TaskId { value: task.into() },
            uuid: Some(vec![uuid; 16]),
            ..Default::default()
        }
    }

    fn info(task: &str) -> TaskInfo {
        TaskInfo {
            task_id: TaskId { value: task.into() },
            ..Default::default()
        }
    }

    #[test]
    fn updates_and_tasks_until_acknowledged() {
        let mut p = Pending::default();
        p.task_launched(info("a"));
        p.task_launched(info("b"));
        p.push(status("a", 1), false);
        p.push(status("a", 2), true);
        p.push(status("b", 3), false);
        assert!(p.ended("a") && !p.ended("b"));
        let sub = p.subscribe();
        assert_eq!(sub.unacknowledged_tasks.len(), 2);
        assert_eq!(sub.unacknowledged_updates.len(), 3);
        assert!(!p.acknowledged("a", &[9; 16]));
        assert!(!p.acknowledged("b", &[1; 16]), "uuid of another task");
        assert!(p.acknowledged("a", &[1; 16]));
        let sub = p.subscribe();
        assert_eq!(
            sub.unacknowledged_tasks.len(),
            1,
            "a has an acknowledged update"
        );
        assert_eq!(sub.unacknowledged_updates[0].status.uuid, Some(vec![2; 16]));
        assert!(p.acknowledged("a", &[2; 16]));
        assert!(p.acknowledged("b", &[3; 16]));
        assert!(p.is_empty());
        assert!(p.subscribe().unacknowledged_tasks.is_empty());
    }

    #[test]
    fn resend_schedule_keeps_order() {
        let mut p = Pending::default();
        let t0 = Instant::now();
        p.push(status("a", 1), false);
        p.push(status("a", 2), false);
        p.mark_sent(&[1; 16], t0);
        let due = p.due(t0, Duration::from_secs(10));
        assert_eq!(due.len(), 1, "only the never-sent one");
        assert_eq!(due[0].status.uuid, Some(vec![2; 16]));
        assert!(
            p.due(t0 + Duration::from_secs(5), Duration::from_secs(10))
                .is_empty()
        );
        let due = p.due(t0 + Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].status.uuid, Some(vec![1; 16]));
        assert_eq!(p.len(), 2);
    }
}
