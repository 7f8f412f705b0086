//! The loop's side of the fair queue ([`super::fairq`]): loading it from the store,
//! adding and removing jobs as they are submitted, killed, launched or requeued, and the
//! window of one cycle ([`Planner::window`]) with the full records it needs.
//!
//! The queue itself sits in the [`PlannerLink`](super::PlannerLink) behind a mutex, so
//! the HTTP API can answer why any queued job waits; only this loop changes it, in short
//! critical sections (never across an `.await`).

use std::collections::HashSet;

use retz_proto::api::{Job, JobState};
use rustc_hash::FxHashSet;
use tracing::debug;

use super::fairq::FairQueue;
use super::link::lock;
use super::service::{Planner, PlannerError};

impl Planner {
    /// Loads every QUEUED job into the queue, and the running jobs' usage.
    pub(super) async fn load_queue(&mut self) -> Result<(), PlannerError> {
        let now = Self::now_unix();
        let mut q = FairQueue::default();
        self.store
            .for_each_queued(|owner, job| {
                q.insert(owner, job, now);
            })
            .await?;
        for (owner, job) in self.store.active_jobs_owned().await? {
            self.usage.started(&owner, &job);
        }
        let stored = self.store.list_user_limits().await?;
        {
            let mut shared = lock(&self.link.queue);
            // Weights set before the load stay; the stored ones and the defaults apply.
            q.copy_weights(&shared);
            q.book_mut().set_defaults(self.opts.quota);
            for limits in stored {
                q.book_mut().set(limits);
            }
            *shared = q;
        }
        self.publish_queue();
        Ok(())
    }

    /// Queued jobs.
    pub(super) fn queued(&self) -> usize {
        lock(&self.link.queue).len()
    }

    /// The ids of the jobs this cycle considers, in planning order: the fair queue's
    /// selection. Their full records are then in `hot` (those not held are read from the
    /// store), where the cycle borrows them. A selected job no longer QUEUED in the store
    /// (killed or ended through another path) leaves the queue.
    pub(super) async fn window(&mut self) -> Result<Vec<u64>, PlannerError> {
        let total = self.agents.totals();
        let selection = {
            let mut q = lock(&self.link.queue);
            let selection = q.select(
                Self::now_unix(),
                self.opts.window,
                &self.opts.policy.starvation,
                self.usage.by_user(),
                &total,
            );
            q.set_held(&selection.held);
            selection
        };
        let missing: Vec<u64> = selection
            .ids
            .iter()
            .copied()
            .filter(|id| !self.hot.contains_key(id))
            .collect();
        if !missing.is_empty() {
            let mut found = HashSet::new();
            for job in self.store.jobs_by_ids(&missing).await? {
                found.insert(job.id);
                if job.state == JobState::Queued {
                    self.hot.insert(job.id, job);
                } else {
                    debug!(job = job.id, state = %job.state, "left the queue meanwhile");
                    self.dequeue(job.id);
                }
            }
            for id in missing.iter().filter(|id| !found.contains(id)) {
                debug!(job = id, "no longer stored; dropped from the queue");
                self.dequeue(*id);
            }
        }
        let wanted: FxHashSet<u64> = selection.ids.iter().copied().collect();
        self.hot.retain(|id, _| wanted.contains(id));
        let window = selection
            .ids
            .into_iter()
            .filter(|id| self.hot.contains_key(id))
            .collect();
        self.publish_queue();
        Ok(window)
    }

    /// Records the cycle's waiting jobs per class (for the reasons of the jobs behind).
    pub(super) fn record_outcome(
        &self,
        window: &[u64],
        pending: &[(u64, String)],
        never: &std::collections::BTreeSet<u64>,
    ) {
        lock(&self.link.queue).record_cycle(window, pending, never);
    }

    /// Adds a job that is QUEUED in the store (read again there, with its owner: a job
    /// killed meanwhile is not added).
    pub(super) async fn enqueue_stored(&mut self, id: u64) -> Result<(), PlannerError> {
        if let Some((owner, job)) = self.store.get_job(id).await?
            && job.state == JobState::Queued
        {
            self.enqueue(&owner, job);
        }
        Ok(())
    }

    /// Adds QUEUED `job` of `owner`; its record is kept while the window has room.
    pub(super) fn enqueue(&mut self, owner: &str, job: Job) {
        lock(&self.link.queue).insert(owner, &job, Self::now_unix());
        if self.hot.len() < self.opts.window {
            self.hot.insert(job.id, job);
        }
        self.publish_queue();
    }

    /// Removes a job from the queue (launched, killed, ended), and its reason.
    pub(super) fn dequeue(&mut self, id: u64) {
        lock(&self.link.queue).remove(id);
        lock(&self.link.pending).remove(&id);
        self.hot.remove(&id);
    }

    pub(super) fn publish_queue(&self) {
        let m = &self.link.metrics;
        m.planner_queue
            .set(i64::try_from(self.queued()).unwrap_or(i64::MAX));
        m.window_cached
            .set(i64::try_from(self.hot.len()).unwrap_or(i64::MAX));
    }
}
