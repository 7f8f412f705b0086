//! The master's state machine: agents, frameworks, offers, tasks and executors, and what
//! each scheduler call, agent report and timer does to them. No I/O: time is passed in,
//! events go to [`EventSink`]s and agent commands to [`AgentLink`]s, both non-blocking.
//!
//! Invariants (checked by the tests and by `Core::check_invariants` in debug builds):
//! * per agent, `used + offered` is contained in `total`;
//! * `agent.used` is the sum of the resources of its non-released tasks and its executors;
//! * `agent.offered` is the sum of its outstanding offers, and every outstanding offer is
//!   listed by exactly one framework;
//! * a framework has a sink iff it is connected; a disconnected framework has no offers;
//! * a framework id is either active (in `frameworks`) or completed, never both.
//!
//! This file holds the entries (agents, frameworks, tasks, offers) and the timers; its
//! children `agents`, `frameworks` (SUBSCRIBE and removal) and `calls` (the dispatch of
//! scheduler calls) add to `Core`. The other `impl Core` blocks: [`super::accept`]
//! (ACCEPT/LAUNCH), [`super::allocation`]
//! (offers, filters), [`super::updates`] (agent reports, reconciliation),
//! [`super::state_json`] (the HTTP state endpoints).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use retz_proto::ContentType;
use retz_proto::mesos::{
    AgentId, AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, MasterInfo, OfferId,
    TaskId, TaskInfo, TaskState, TaskStatus, framework_info, task_status,
};
use retz_proto::scheduler::{Call, Event, call, event};
use tokio::sync::mpsc;

use super::agent_link::{AgentLink, AgentSnapshot};
use super::resources::Resources;
use super::stream::{EventSink, heartbeat_event};
use super::validation::{self, CallType, framework_roles, has_capability};

mod agents;
mod calls;
mod frameworks;

/// How many completed tasks a framework keeps for `/state`.
pub const MAX_COMPLETED_TASKS: usize = 1000;
/// How many completed frameworks the master keeps for `/state`.
pub const MAX_COMPLETED_FRAMEWORKS: usize = 50;
/// How many statuses a task keeps for `/state`.
pub const MAX_TASK_STATUSES: usize = 50;

/// Settings of the state machine.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The master id (prefix of framework, offer and agent ids).
    pub master_id: String,
    /// `MasterInfo` sent in SUBSCRIBED.
    pub master_info: MasterInfo,
    /// Sent as `heartbeat_interval_seconds`.
    pub heartbeat_interval: Duration,
    /// Outstanding offers are rescinded after this long (`None`: never, the Mesos default).
    pub offer_timeout: Option<Duration>,
}

/// An error reply to a non-SUBSCRIBE call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// 400.
    BadRequest(String),
    /// 403.
    Forbidden(String),
    /// 501.
    NotImplemented(String),
}

/// A successful reply to a non-SUBSCRIBE call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// 202.
    Accepted,
    /// 200 (UPDATE_FRAMEWORK).
    Ok,
}

/// The result of a SUBSCRIBE: the stream's id, the queue its body reads, and the
/// framework it belongs to (`None` when the stream only carries an ERROR).
#[derive(Debug)]
pub struct Subscription {
    /// `Mesos-Stream-Id`.
    pub stream_id: String,
    /// The records of the stream.
    pub rx: mpsc::UnboundedReceiver<bytes::Bytes>,
    /// The subscribed framework.
    pub framework_id: Option<String>,
}

/// A registered agent.
pub struct AgentEntry {
    pub(super) link: Arc<dyn AgentLink>,
    pub(super) info: AgentInfo,
    pub(super) total: Resources,
    pub(super) used: Resources,
    pub(super) offered: Resources,
    pub(super) registered_time: f64,
    pub(super) reregistered_time: Option<f64>,
}

/// A task the master knows.
#[derive(Debug, Clone)]
pub struct TaskEntry {
    pub(super) info: TaskInfo,
    pub(super) framework_id: String,
    pub(super) agent_id: String,
    pub(super) executor_id: Option<ExecutorId>,
    pub(super) role: String,
    pub(super) state: TaskState,
    pub(super) statuses: Vec<TaskStatus>,
    pub(super) resources: Resources,
    /// Whether its resources went back to the agent (terminal state seen).
    pub(super) released: bool,
    /// The uuid and state of the latest update forwarded with a uuid.
    pub(super) last_update: Option<(Vec<u8>, TaskState)>,
}

/// An executor the master knows to run on an agent.
#[derive(Debug, Clone)]
pub struct ExecutorEntry {
    pub(super) info: ExecutorInfo,
    pub(super) resources: Resources,
}

/// A declined offer's filter: resources of `agent_id` for `role`, contained in
/// `resources`, are not offered to the framework before `expires`.
#[derive(Debug, Clone)]
pub struct OfferFilter {
    pub(super) resources: Resources,
    pub(super) expires: Instant,
}

/// A framework the master knows (active or completed).
pub struct FrameworkEntry {
    pub(super) id: FrameworkId,
    pub(super) info: FrameworkInfo,
    pub(super) sink: Option<EventSink>,
    /// Known only from agents after a master restart, not re-subscribed yet.
    pub(super) recovered: bool,
    pub(super) registered_time: f64,
    pub(super) reregistered_time: Option<f64>,
    pub(super) unregistered_time: Option<f64>,
    pub(super) suppressed: BTreeSet<String>,
    /// Keyed by (agent id, role).
    pub(super) filters: HashMap<(String, String), Vec<OfferFilter>>,
    pub(super) offers: BTreeSet<String>,
    pub(super) tasks: BTreeMap<String, TaskEntry>,
    pub(super) completed_tasks: VecDeque<TaskEntry>,
    /// Keyed by (agent id, executor id).
    pub(super) executors: BTreeMap<(String, String), ExecutorEntry>,
    pub(super) failover_deadline: Option<Instant>,
}

impl FrameworkEntry {
    pub(super) fn connected(&self) -> bool {
        self.sink.is_some()
    }

    pub(super) fn roles(&self) -> Vec<String> {
        framework_roles(&self.info)
    }

    pub(super) fn capability(&self, cap: framework_info::capability::Type) -> bool {
        has_capability(&self.info, cap)
    }

    /// Sends an event if connected.
    pub(super) fn send(&self, event: &Event) {
        if let Some(sink) = &self.sink {
            sink.send(event);
        }
    }
}

/// An outstanding offer.
#[derive(Debug, Clone)]
pub struct OfferEntry {
    pub(super) offer: retz_proto::mesos::Offer,
    pub(super) resources: Resources,
    pub(super) framework_id: String,
    pub(super) agent_id: String,
    pub(super) role: String,
    pub(super) expires: Option<Instant>,
}

/// Counters exported on `/metrics/snapshot`.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub(super) offers_sent: u64,
    pub(super) offers_declined: u64,
    pub(super) offers_accepted: u64,
    pub(super) offers_rescinded: u64,
    pub(super) tasks_launched: u64,
    pub(super) status_updates: u64,
    pub(super) invalid_status_updates: u64,
    pub(super) acknowledgements: u64,
    pub(super) invalid_acknowledgements: u64,
    pub(super) calls: BTreeMap<&'static str, u64>,
    pub(super) terminal_tasks: BTreeMap<&'static str, u64>,
}

/// The master's state machine (see the module doc).
pub struct Core {
    pub(super) config: CoreConfig,
    pub(super) agents: BTreeMap<String, AgentEntry>,
    pub(super) frameworks: BTreeMap<String, FrameworkEntry>,
    pub(super) completed_frameworks: VecDeque<FrameworkEntry>,
    pub(super) completed_ids: BTreeSet<String>,
    pub(super) offers: BTreeMap<String, OfferEntry>,
    pub(super) next_framework: u64,
    pub(super) next_offer: u64,
    pub(super) start_time: f64,
    pub(super) started: Instant,
    pub(super) counters: Counters,
    /// Resources were freed (or a framework or filter changed) since the last round:
    /// allocate now rather than at the next interval (see `allocation`).
    pub(super) allocation_wanted: bool,
}

/// Seconds since the epoch, as Mesos writes times in `/state`.
pub fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A status update generated by the master: no uuid, never to be acknowledged.
pub fn master_status(
    task_id: &TaskId,
    agent_id: Option<&str>,
    state: TaskState,
    reason: task_status::Reason,
    message: impl Into<String>,
) -> TaskStatus {
    TaskStatus {
        task_id: task_id.clone(),
        state: state as i32,
        message: Some(message.into()),
        source: Some(task_status::Source::Master as i32),
        reason: Some(reason as i32),
        agent_id: agent_id.map(|a| AgentId { value: a.into() }),
        timestamp: Some(wall_clock()),
        ..Default::default()
    }
}

/// An UPDATE event.
pub fn update_event(status: TaskStatus) -> Event {
    Event {
        r#type: Some(event::Type::Update as i32),
        update: Some(event::Update { status }),
        ..Default::default()
    }
}

/// An ERROR event.
pub fn error_event(message: impl Into<String>) -> Event {
    Event {
        r#type: Some(event::Type::Error as i32),
        error: Some(event::Error {
            message: message.into(),
        }),
        ..Default::default()
    }
}

/// A RESCIND event.
pub fn rescind_event(offer_id: &str) -> Event {
    Event {
        r#type: Some(event::Type::Rescind as i32),
        rescind: Some(event::Rescind {
            offer_id: OfferId {
                value: offer_id.into(),
            },
        }),
        ..Default::default()
    }
}

/// A FAILURE event (executor exit, or agent lost when `executor_id` is `None`).
pub fn failure_event(
    agent_id: &str,
    executor_id: Option<ExecutorId>,
    status: Option<i32>,
) -> Event {
    Event {
        r#type: Some(event::Type::Failure as i32),
        failure: Some(event::Failure {
            agent_id: Some(AgentId {
                value: agent_id.into(),
            }),
            executor_id,
            status,
        }),
        ..Default::default()
    }
}

fn deadline(now: Instant, secs: f64) -> Option<Instant> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    now.checked_add(Duration::try_from_secs_f64(secs).ok()?)
}

impl Core {
    /// An empty master.
    pub fn new(config: CoreConfig, now: Instant) -> Core {
        Core {
            config,
            agents: BTreeMap::new(),
            frameworks: BTreeMap::new(),
            completed_frameworks: VecDeque::new(),
            completed_ids: BTreeSet::new(),
            offers: BTreeMap::new(),
            next_framework: 0,
            next_offer: 0,
            start_time: wall_clock(),
            started: now,
            counters: Counters::default(),
            allocation_wanted: false,
        }
    }

    // ----- timers -------------------------------------------------------------------

    /// Fires what is due at `now`: failover timeouts, offer timeouts, and expired offer
    /// filters (whose resources are then offered at once).
    pub fn on_timers(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .frameworks
            .iter()
            .filter(|(_, fw)| !fw.connected() && fw.failover_deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for fid in expired {
            self.remove_framework(&fid);
        }
        let timed_out: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.expires.is_some_and(|e| e <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in timed_out {
            self.remove_offer(&id, true);
        }
        if self.next_filter_expiry().is_some_and(|e| e <= now) {
            self.allocation_wanted = true;
        }
    }

    /// The earliest instant `on_timers` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let fw = self
            .frameworks
            .values()
            .filter(|fw| !fw.connected())
            .filter_map(|fw| fw.failover_deadline);
        let offers = self.offers.values().filter_map(|o| o.expires);
        fw.chain(offers).chain(self.next_filter_expiry()).min()
    }

    // ----- helpers ------------------------------------------------------------------

    /// Removes an outstanding offer, giving its resources back to the agent (no filter);
    /// `rescind` tells the framework.
    pub(super) fn remove_offer(&mut self, offer_id: &str, rescind: bool) -> Option<OfferEntry> {
        let offer = self.offers.remove(offer_id)?;
        if let Some(agent) = self.agents.get_mut(&offer.agent_id) {
            agent.offered.subtract(&offer.resources);
        }
        if let Some(fw) = self.frameworks.get_mut(&offer.framework_id) {
            fw.offers.remove(offer_id);
            if rescind {
                self.counters.offers_rescinded += 1;
                fw.send(&rescind_event(offer_id));
            }
        }
        Some(offer)
    }

    /// Checks the module invariants (tests and debug builds).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut used: BTreeMap<&str, Resources> = BTreeMap::new();
        let mut offered: BTreeMap<&str, Resources> = BTreeMap::new();
        for (id, fw) in &self.frameworks {
            if self.completed_ids.contains(id) {
                return Err(format!("framework {id} is both active and completed"));
            }
            if !fw.connected() && !fw.offers.is_empty() {
                return Err(format!("disconnected framework {id} holds offers"));
            }
            for t in fw.tasks.values().filter(|t| !t.released) {
                used.entry(&t.agent_id).or_default().add(&t.resources);
            }
            for ((a, _), ex) in &fw.executors {
                used.entry(a).or_default().add(&ex.resources);
            }
            for o in &fw.offers {
                let Some(offer) = self.offers.get(o) else {
                    return Err(format!("framework {id} lists unknown offer {o}"));
                };
                if offer.framework_id != *id {
                    return Err(format!("offer {o} listed by the wrong framework"));
                }
            }
        }
        for (oid, o) in &self.offers {
            offered.entry(&o.agent_id).or_default().add(&o.resources);
            let listed = self
                .frameworks
                .get(&o.framework_id)
                .is_some_and(|fw| fw.offers.contains(oid));
            if !listed {
                return Err(format!("offer {oid} is not listed by its framework"));
            }
        }
        for (id, a) in &self.agents {
            let u = used.remove(id.as_str()).unwrap_or_default();
            let o = offered.remove(id.as_str()).unwrap_or_default();
            if u != a.used {
                return Err(format!(
                    "agent {id}: used {} but tasks/executors hold {u}",
                    a.used
                ));
            }
            if o != a.offered {
                return Err(format!(
                    "agent {id}: offered {} but offers hold {o}",
                    a.offered
                ));
            }
            if !a.total.contains(&a.used.plus(&a.offered)) {
                return Err(format!(
                    "agent {id}: used {} + offered {} exceed total {}",
                    a.used, a.offered, a.total
                ));
            }
        }
        Ok(())
    }
}

/// Appends to a bounded completed-task list.
pub(super) fn push_completed(list: &mut VecDeque<TaskEntry>, task: TaskEntry) {
    list.push_back(task);
    while list.len() > MAX_COMPLETED_TASKS {
        list.pop_front();
    }
}
