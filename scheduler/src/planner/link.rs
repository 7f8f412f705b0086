//! [`PlannerLink`]: the planner as the HTTP API sees it (queue and kill signals to the
//! loop, pending reasons, status and metrics it publishes), and the loop's commands.

use std::sync::Mutex;

use retz_proto::api::{Application, Job, PlanResponse};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};

use super::cluster_map::ClusterMap;
use super::fairq::FairQueue;
use crate::http::{ClusterView, PlannerHandle, PlannerStatus};
use crate::metrics::Metrics;

pub(super) enum Command {
    Queued(Box<Job>),
    Kill(Box<Job>),
    /// `plan`: the job, its application, where to answer.
    Plan(Box<(Job, Application)>, oneshot::Sender<PlanResponse>),
}

/// The planner as the HTTP API sees it: non-blocking signals plus shared read-only state.
#[derive(Debug)]
pub struct PlannerLink {
    pub(super) tx: mpsc::UnboundedSender<Command>,
    pub(super) pending: Mutex<FxHashMap<u64, String>>,
    /// The queue (only the loop changes it; the API reads reasons from it).
    pub(super) queue: Mutex<FairQueue>,
    pub(super) status: Mutex<PlannerStatus>,
    /// Every series of `/metrics` (the loop updates its own).
    pub metrics: Metrics,
    /// The agents seen and their layout.
    pub(super) cluster: ClusterMap,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Queued(j) => write!(f, "Queued({})", j.id),
            Command::Kill(j) => write!(f, "Kill({})", j.id),
            Command::Plan(ja, _) => write!(f, "Plan({})", ja.0.appid),
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
        // Planned in the latest cycle: its own reason; else its class's.
        if let Some(r) = lock(&self.pending).get(&job_id) {
            return Some(r.clone());
        }
        lock(&self.queue).waiting_reason(job_id)
    }
    fn status(&self) -> PlannerStatus {
        lock(&self.status).clone()
    }
    fn plan(&self, job: Job, app: Application) -> oneshot::Receiver<PlanResponse> {
        let (tx, rx) = oneshot::channel();
        // A stopped loop drops the sender: the caller sees the channel closed.
        let _ = self.tx.send(Command::Plan(Box::new((job, app)), tx));
        rx
    }
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    fn cluster(&self) -> ClusterView {
        self.cluster.view()
    }
    fn user_limits_changed(&self, limits: &retz_proto::api::UserLimits) {
        // The one change to the queue not made by the loop: a user's weight and quota,
        // read by the next selection.
        lock(&self.queue).book_mut().set(limits.clone());
    }
}
