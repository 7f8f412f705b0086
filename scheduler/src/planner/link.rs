//! [`PlannerLink`]: the planner as the HTTP API sees it (queue and kill signals to the
//! loop, pending reasons, status and metrics it publishes), and the loop's commands.

use std::collections::HashMap;
use std::sync::Mutex;

use retz_proto::api::Job;
use tokio::sync::mpsc;

use super::agents::AgentBook;
use super::metrics::PlannerMetrics;
use crate::http::{ClusterView, PlannerHandle, PlannerStatus};

pub(super) enum Command {
    Queued(Box<Job>),
    Kill(Box<Job>),
}

/// The planner as the HTTP API sees it: non-blocking signals plus shared read-only state.
#[derive(Debug)]
pub struct PlannerLink {
    pub(super) tx: mpsc::UnboundedSender<Command>,
    pub(super) pending: Mutex<HashMap<u64, String>>,
    pub(super) status: Mutex<PlannerStatus>,
    /// The loop's counters.
    pub metrics: PlannerMetrics,
    /// The agents seen and their layout.
    pub(super) agents: AgentBook,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Queued(j) => write!(f, "Queued({})", j.id),
            Command::Kill(j) => write!(f, "Kill({})", j.id),
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PlannerHandle for PlannerLink {
    fn job_queued(&self, job: &Job) {
        let _ = self.tx.send(Command::Queued(Box::new(job.clone())));
    }
    fn kill_requested(&self, job: &Job) {
        let _ = self.tx.send(Command::Kill(Box::new(job.clone())));
    }
    fn pending_reason(&self, job_id: u64) -> Option<String> {
        lock(&self.pending).get(&job_id).cloned()
    }
    fn status(&self) -> PlannerStatus {
        lock(&self.status).clone()
    }
    fn metrics_text(&self) -> String {
        self.metrics.render()
    }
    fn cluster(&self) -> ClusterView {
        self.agents.view()
    }
}
