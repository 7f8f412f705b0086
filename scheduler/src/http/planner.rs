//! [`PlannerHandle`]: what the HTTP API needs from the planner loop (implemented by the
//! planner; tests use a recording fake). Calls must not block: they only signal.

use retz_proto::api::{Application, Job, PlanResponse};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// The planner's view of the cluster, for `/status`, `/metrics` and the web page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlannerStatus {
    /// Agents connected: known from their offers until the master reports them lost.
    pub agents: u64,
    /// Offers in the known agents' latest batches (each answered at once).
    pub offers: u64,
    /// CPUs free on the known agents (latest offers, less launches, plus ends since).
    pub offered_cpus: f64,
    /// Memory free on the known agents, MB (the same way).
    pub offered_mem_mb: u64,
    /// GPUs free on the known agents (the same way).
    pub offered_gpus: u64,
    /// Ports in the known agents' latest offers.
    pub offered_ports: u64,
    /// Disk in the known agents' latest offers, MB.
    pub offered_disk_mb: u64,
    /// The Mesos master in use (`local` for the embedded cluster), empty if none yet.
    pub master: String,
    /// Mesos events waiting for the planner loop.
    pub events_waiting: u64,
}

/// The planner loop as the HTTP API sees it.
pub trait PlannerHandle: Send + Sync + 'static {
    /// A job was committed as QUEUED (new, or requeued): wake the planner (REVIVE).
    fn job_queued(&self, job: &Job);
    /// The user asked to kill a STARTING/STARTED job (stored with `kill_requested`):
    /// send KILL for its current task.
    fn kill_requested(&self, job: &Job);
    /// Why the QUEUED job `job_id` still waits, if the planner knows.
    fn pending_reason(&self, job_id: u64) -> Option<String>;
    /// The planner's current status.
    fn status(&self) -> PlannerStatus;
    /// Where `job` (of `app`, already validated) would run now, or why it would wait
    /// (`POST /job/plan`). The planner loop answers on the channel; it is closed without
    /// an answer if the loop has stopped.
    fn plan(&self, job: Job, app: Application) -> oneshot::Receiver<PlanResponse>;
    /// The server's metrics (the planner updates its own series in them).
    fn metrics(&self) -> &Metrics;
    /// The agents and their NUMA layout as the planner knows them (for the web page). A
    /// planner that tracks no agents (test doubles, benches) shows none.
    fn cluster(&self) -> ClusterView {
        ClusterView::default()
    }
    /// A user's share or quota changed (stored already): apply it from the next cycle
    /// on. A planner without a fair queue (test doubles, benches) ignores it.
    fn user_limits_changed(&self, _limits: &retz_proto::api::UserLimits) {}
}

/// The agents as the planner knows them, for the web page's CPU map: a cheap snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Every agent the planner has had an offer from and not seen removed, by id.
    pub agents: Vec<AgentView>,
}

/// One agent and its NUMA layout (from the NUMA resource convention of its offers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentView {
    /// The Mesos agent id.
    pub id: String,
    /// Its hostname.
    pub hostname: String,
    /// Whether it advertised the NUMA convention; without it the layout is one node of
    /// placeholder CPU ids (as many as it ever offered) with no pinning meaning.
    pub numa_aware: bool,
    /// Its NUMA nodes, by id.
    pub nodes: Vec<NodeView>,
}

/// One NUMA node of an [`AgentView`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// The kernel's node id.
    pub id: u32,
    /// Local memory, MiB (0: unknown).
    pub memory_mb: u64,
    /// Its usable logical CPU ids, ascending.
    pub cpus: Vec<u32>,
    /// Its last-level (L3) cache domains when it has two or more, each its CPU ids
    /// ascending, in the order of their lowest CPU; empty otherwise.
    pub caches: Vec<Vec<u32>>,
}
