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
//! The other `impl Core` blocks: [`super::accept`] (ACCEPT/LAUNCH), [`super::allocation`]
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

/// Whether `state` is terminal.
pub fn is_terminal(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::TaskFinished
            | TaskState::TaskFailed
            | TaskState::TaskKilled
            | TaskState::TaskError
            | TaskState::TaskLost
            | TaskState::TaskDropped
            | TaskState::TaskGone
            | TaskState::TaskGoneByOperator
    )
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

    // ----- agents -------------------------------------------------------------------

    /// Registers an agent (or re-registers it after a master restart, with what runs on
    /// it). Frameworks known only from the agent are recovered, inactive.
    pub fn add_agent(&mut self, link: Arc<dyn AgentLink>, now: Instant) -> Result<AgentId, String> {
        let info = link.info();
        let Some(agent_id) = info.id.clone() else {
            return Err(format!("agent on {} has no id", info.hostname));
        };
        if self.agents.contains_key(&agent_id.value) {
            return Err(format!("agent {} is already registered", agent_id.value));
        }
        let total = Resources::from_protos(&info.resources)
            .map_err(|e| format!("agent {}: {e}", agent_id.value))?;
        let snapshot = link.snapshot();
        let reregistered = !snapshot.tasks.is_empty() || !snapshot.executors.is_empty();
        self.agents.insert(
            agent_id.value.clone(),
            AgentEntry {
                link,
                info,
                total,
                used: Resources::new(),
                offered: Resources::new(),
                registered_time: wall_clock(),
                reregistered_time: reregistered.then(wall_clock),
            },
        );
        self.recover_from_agent(&agent_id.value, snapshot, now);
        Ok(agent_id)
    }

    fn recover_from_agent(&mut self, agent_id: &str, snapshot: AgentSnapshot, now: Instant) {
        for ex in snapshot.executors {
            let Some(fid) = ex.framework.id.clone() else {
                continue;
            };
            if self.completed_ids.contains(&fid.value) {
                continue;
            }
            let resources = Resources::from_protos(&ex.info.resources).unwrap_or_default();
            self.ensure_recovered_framework(&ex.framework, now);
            if let Some(agent) = self.agents.get_mut(agent_id) {
                agent.used.add(&resources);
            }
            if let Some(fw) = self.frameworks.get_mut(&fid.value) {
                fw.executors.insert(
                    (agent_id.to_string(), ex.info.executor_id.value.clone()),
                    ExecutorEntry {
                        info: ex.info,
                        resources,
                    },
                );
            }
        }
        for t in snapshot.tasks {
            let Some(fid) = t.framework.id.clone() else {
                continue;
            };
            if self.completed_ids.contains(&fid.value) || is_terminal(t.state) {
                continue;
            }
            let resources = Resources::from_protos(&t.task.resources).unwrap_or_default();
            self.ensure_recovered_framework(&t.framework, now);
            if let Some(agent) = self.agents.get_mut(agent_id) {
                agent.used.add(&resources);
            }
            if let Some(fw) = self.frameworks.get_mut(&fid.value) {
                let role = fw.roles().into_iter().next().unwrap_or_else(|| "*".into());
                fw.tasks.insert(
                    t.task.task_id.value.clone(),
                    TaskEntry {
                        framework_id: fid.value.clone(),
                        agent_id: agent_id.to_string(),
                        executor_id: t.executor_id,
                        role,
                        state: t.state,
                        statuses: Vec::new(),
                        resources,
                        released: false,
                        last_update: None,
                        info: t.task,
                    },
                );
            }
        }
    }

    fn ensure_recovered_framework(&mut self, info: &FrameworkInfo, now: Instant) {
        let Some(fid) = info.id.clone() else { return };
        if self.frameworks.contains_key(&fid.value) {
            return;
        }
        let failover_deadline = deadline(now, info.failover_timeout.unwrap_or(0.0));
        let mut entry = self.new_framework_entry(fid.clone(), info.clone());
        entry.recovered = true;
        entry.unregistered_time = Some(wall_clock());
        entry.failover_deadline = failover_deadline;
        self.frameworks.insert(fid.value, entry);
    }

    fn new_framework_entry(&self, id: FrameworkId, mut info: FrameworkInfo) -> FrameworkEntry {
        info.id = Some(id.clone());
        FrameworkEntry {
            id,
            info,
            sink: None,
            recovered: false,
            registered_time: wall_clock(),
            reregistered_time: None,
            unregistered_time: None,
            suppressed: BTreeSet::new(),
            filters: HashMap::new(),
            offers: BTreeSet::new(),
            tasks: BTreeMap::new(),
            completed_tasks: VecDeque::new(),
            executors: BTreeMap::new(),
            failover_deadline: None,
        }
    }

    /// Removes a dead agent: its offers are rescinded, its tasks become TASK_LOST
    /// (TASK_GONE for PARTITION_AWARE frameworks, reason REASON_AGENT_REMOVED, no uuid),
    /// its executors vanish and every connected framework gets a FAILURE event naming
    /// the agent.
    pub fn remove_agent(&mut self, agent_id: &str) -> bool {
        let Some(agent) = self.agents.remove(agent_id) else {
            return false;
        };
        let offer_ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.agent_id == agent_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in offer_ids {
            self.remove_offer(&id, true);
        }
        let message = format!("Agent {} removed: agent is gone", agent.info.hostname);
        for fw in self.frameworks.values_mut() {
            let partition_aware = fw.capability(framework_info::capability::Type::PartitionAware);
            let state = if partition_aware {
                TaskState::TaskGone
            } else {
                TaskState::TaskLost
            };
            let lost: Vec<String> = fw
                .tasks
                .iter()
                .filter(|(_, t)| t.agent_id == agent_id)
                .map(|(id, _)| id.clone())
                .collect();
            for tid in lost {
                if let Some(mut task) = fw.tasks.remove(&tid) {
                    if !is_terminal(task.state) {
                        let status = master_status(
                            &task.info.task_id,
                            Some(agent_id),
                            state,
                            task_status::Reason::AgentRemoved,
                            message.clone(),
                        );
                        task.state = state;
                        task.statuses.push(status.clone());
                        fw.send(&update_event(status));
                    }
                    task.released = true;
                    push_completed(&mut fw.completed_tasks, task);
                }
            }
            fw.executors.retain(|(a, _), _| a != agent_id);
            fw.filters.retain(|(a, _), _| a != agent_id);
            fw.send(&failure_event(agent_id, None, None));
        }
        true
    }

    // ----- subscribe ----------------------------------------------------------------

    /// Handles a validated SUBSCRIBE call: SUBSCRIBED then HEARTBEAT on a new stream, or a
    /// stream holding one ERROR when the framework cannot subscribe.
    pub fn subscribe(&mut self, c: Call, content_type: ContentType, now: Instant) -> Subscription {
        let stream_id = uuid::Uuid::new_v4().to_string();
        let (sink, rx) = EventSink::channel(stream_id.clone(), content_type);
        let sub = c.subscribe.unwrap_or_default();
        let info = sub.framework_info;
        let refuse = |sink: EventSink, rx, message: String| {
            sink.send(&error_event(message));
            Subscription {
                stream_id: stream_id.clone(),
                rx,
                framework_id: None,
            }
        };
        if let Err(e) = validation::validate_framework_info(&info, &sub.suppressed_roles) {
            return refuse(sink, rx, e);
        }
        let fid = match info.id.clone() {
            None => {
                let id = FrameworkId {
                    value: format!("{}-{:04}", self.config.master_id, self.next_framework),
                };
                self.next_framework += 1;
                let entry = self.new_framework_entry(id.clone(), info);
                self.frameworks.insert(id.value.clone(), entry);
                id
            }
            Some(id) => {
                if self.completed_ids.contains(&id.value) {
                    return refuse(sink, rx, "Framework has been removed".into());
                }
                if self.frameworks.contains_key(&id.value) {
                    self.failover(&id.value, info);
                } else {
                    // After a master failover an unknown id is accepted: the framework
                    // is recovered with the id it had.
                    let entry = self.new_framework_entry(id.clone(), info);
                    self.frameworks.insert(id.value.clone(), entry);
                }
                id
            }
        };
        let heartbeat_secs = self.config.heartbeat_interval.as_secs_f64();
        let master_info = self.config.master_info.clone();
        let Some(fw) = self.frameworks.get_mut(&fid.value) else {
            return Subscription {
                stream_id,
                rx,
                framework_id: None,
            };
        };
        fw.suppressed = sub.suppressed_roles.into_iter().collect();
        fw.failover_deadline = None;
        fw.unregistered_time = None;
        if fw.recovered {
            fw.recovered = false;
            fw.reregistered_time = Some(wall_clock());
        }
        sink.send(&Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                framework_id: fid.clone(),
                heartbeat_interval_seconds: Some(heartbeat_secs),
                master_info: Some(master_info),
            }),
            ..Default::default()
        });
        sink.send(&heartbeat_event());
        fw.sink = Some(sink);
        self.allocate(now);
        Subscription {
            stream_id,
            rx,
            framework_id: Some(fid.value),
        }
    }

    /// Re-subscription of a known framework: the old stream gets ERROR "Framework failed
    /// over", outstanding offers are dropped, `user` and `checkpoint` keep their values.
    fn failover(&mut self, fid: &str, mut info: FrameworkInfo) {
        let offers: Vec<String> = self
            .frameworks
            .get(fid)
            .map(|fw| fw.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in offers {
            self.remove_offer(&id, false);
        }
        let Some(fw) = self.frameworks.get_mut(fid) else {
            return;
        };
        if let Some(old) = fw.sink.take() {
            old.send(&error_event("Framework failed over"));
        }
        info.user = fw.info.user.clone();
        info.checkpoint = fw.info.checkpoint;
        info.id = Some(fw.id.clone());
        let old_roles = fw.roles();
        fw.info = info;
        let new_roles = fw.roles();
        if old_roles != new_roles {
            fw.filters.retain(|(_, role), _| new_roles.contains(role));
        }
        if !fw.recovered {
            fw.reregistered_time = Some(wall_clock());
        }
    }

    /// The SUBSCRIBE stream `stream_id` of `fid` ended (client gone, or replaced).
    pub fn stream_closed(&mut self, fid: &str, stream_id: &str, now: Instant) {
        let current = self
            .frameworks
            .get(fid)
            .and_then(|fw| fw.sink.as_ref())
            .is_some_and(|s| s.stream_id() == stream_id);
        if current {
            self.disconnect(fid, now);
        }
    }

    /// Fault injection: closes the framework's stream as if the connection broke.
    pub fn drop_stream(&mut self, fid: &str, now: Instant) -> bool {
        let connected = self
            .frameworks
            .get(fid)
            .is_some_and(FrameworkEntry::connected);
        if connected {
            self.disconnect(fid, now);
        }
        connected
    }

    /// The framework lost its stream: inactive, offers recovered, failover timer started.
    fn disconnect(&mut self, fid: &str, now: Instant) {
        let offers: Vec<String> = self
            .frameworks
            .get(fid)
            .map(|fw| fw.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in offers {
            self.remove_offer(&id, false);
        }
        if let Some(fw) = self.frameworks.get_mut(fid) {
            fw.sink = None;
            fw.unregistered_time = Some(wall_clock());
            fw.failover_deadline = deadline(now, fw.info.failover_timeout.unwrap_or(0.0));
        }
    }

    /// Removes a framework for good (TEARDOWN or failover timeout): its stream closes,
    /// offers go back, agents shut its executors down, tasks become TASK_KILLED, and its
    /// id can no longer subscribe.
    pub fn remove_framework(&mut self, fid: &str) {
        let offers: Vec<String> = self
            .frameworks
            .get(fid)
            .map(|fw| fw.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in offers {
            self.remove_offer(&id, false);
        }
        let Some(mut fw) = self.frameworks.remove(fid) else {
            return;
        };
        fw.sink = None;
        let mut on_agents: BTreeSet<String> = BTreeSet::new();
        let tasks = std::mem::take(&mut fw.tasks);
        for (_, mut task) in tasks {
            on_agents.insert(task.agent_id.clone());
            if !task.released {
                if let Some(agent) = self.agents.get_mut(&task.agent_id) {
                    agent.used.subtract(&task.resources);
                }
                task.released = true;
                self.allocation_wanted = true;
            }
            if !is_terminal(task.state) {
                let status = master_status(
                    &task.info.task_id,
                    Some(&task.agent_id),
                    TaskState::TaskKilled,
                    task_status::Reason::FrameworkRemoved,
                    format!("Framework {fid} removed"),
                );
                task.state = TaskState::TaskKilled;
                task.statuses.push(status);
            }
            push_completed(&mut fw.completed_tasks, task);
        }
        for ((agent_id, _), ex) in std::mem::take(&mut fw.executors) {
            if let Some(agent) = self.agents.get_mut(&agent_id) {
                agent.used.subtract(&ex.resources);
            }
            self.allocation_wanted = true;
            on_agents.insert(agent_id);
        }
        for agent_id in on_agents {
            if let Some(agent) = self.agents.get(&agent_id) {
                agent.link.shutdown_framework(&fw.id);
            }
        }
        fw.filters.clear();
        fw.failover_deadline = None;
        fw.unregistered_time = Some(wall_clock());
        self.completed_ids.insert(fid.to_string());
        self.completed_frameworks.push_back(fw);
        while self.completed_frameworks.len() > MAX_COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
    }

    // ----- calls --------------------------------------------------------------------

    /// Handles a validated non-SUBSCRIBE call of type `ty` on behalf of the connection
    /// that sent `stream_id`.
    pub fn handle_call(
        &mut self,
        ty: CallType,
        c: Call,
        stream_id: Option<&str>,
        now: Instant,
    ) -> Result<CallOutcome, CallError> {
        let fid = c.framework_id.clone().unwrap_or_default().value;
        let Some(fw) = self.frameworks.get(&fid) else {
            return Err(CallError::BadRequest("Framework cannot be found".into()));
        };
        let Some(sink) = &fw.sink else {
            return Err(CallError::Forbidden("Framework is not subscribed".into()));
        };
        match stream_id {
            None => {
                return Err(CallError::BadRequest(
                    "All non-subscribe calls should include the 'Mesos-Stream-Id' header".into(),
                ));
            }
            Some(s) if s != sink.stream_id() => {
                return Err(CallError::BadRequest(format!(
                    "The stream ID '{s}' included in this request didn't match the stream ID currently associated with framework ID {fid}"
                )));
            }
            Some(_) => {}
        }
        *self.counters.calls.entry(ty.as_str_name()).or_insert(0) += 1;
        match ty {
            call::Type::Teardown => {
                self.remove_framework(&fid);
            }
            call::Type::Accept => self.accept(&fid, c.accept.unwrap_or_default(), now),
            call::Type::Decline => {
                let d = c.decline.unwrap_or_default();
                self.decline(&fid, &d.offer_ids, d.filters.as_ref(), now);
            }
            call::Type::Revive => self.revive(&fid, &c.revive.unwrap_or_default().roles, now),
            call::Type::Suppress => self.suppress(&fid, &c.suppress.unwrap_or_default().roles),
            call::Type::Kill => self.kill(&fid, c.kill.unwrap_or_default()),
            call::Type::Shutdown => {
                let s = c.shutdown.unwrap_or_default();
                if let Some(agent) = self.agents.get(&s.agent_id.value) {
                    agent
                        .link
                        .shutdown_executor(&FrameworkId { value: fid }, &s.executor_id);
                }
            }
            call::Type::Acknowledge => self.acknowledge(&fid, &c.acknowledge.unwrap_or_default()),
            call::Type::Reconcile => self.reconcile(&fid, &c.reconcile.unwrap_or_default().tasks),
            call::Type::Message => {
                let m = c.message.unwrap_or_default();
                if let Some(agent) = self.agents.get(&m.agent_id.value) {
                    agent
                        .link
                        .send_message(&FrameworkId { value: fid }, &m.executor_id, m.data);
                }
            }
            call::Type::UpdateFramework => {
                self.update_framework(&fid, c.update_framework.unwrap_or_default())?;
                return Ok(CallOutcome::Ok);
            }
            // No inverse offers, operations or requests exist in this master: these calls
            // are valid and have nothing to act on (the built-in allocator also ignores
            // REQUEST).
            call::Type::AcceptInverseOffers
            | call::Type::DeclineInverseOffers
            | call::Type::AcknowledgeOperationStatus
            | call::Type::Request => {}
            call::Type::ReconcileOperations => {
                return Err(CallError::NotImplemented(
                    "RECONCILE_OPERATIONS is not supported by retz-mesos-local (it has no offer operations to reconcile)"
                        .into(),
                ));
            }
            call::Type::Unknown | call::Type::Subscribe => {
                return Err(CallError::NotImplemented(format!(
                    "Received an unexpected '{}' call",
                    ty.as_str_name()
                )));
            }
        }
        Ok(CallOutcome::Accepted)
    }

    fn update_framework(&mut self, fid: &str, u: call::UpdateFramework) -> Result<(), CallError> {
        let mut info = u.framework_info;
        if info.id.as_ref().map(|i| i.value.as_str()) != Some(fid) {
            return Err(CallError::BadRequest(
                "'UpdateFramework.framework_info.id' is not equal to 'Call.framework_id'".into(),
            ));
        }
        validation::validate_framework_info(&info, &u.suppressed_roles)
            .map_err(CallError::BadRequest)?;
        let Some(fw) = self.frameworks.get(fid) else {
            return Err(CallError::BadRequest("Framework cannot be found".into()));
        };
        if info.user != fw.info.user {
            return Err(CallError::BadRequest(
                "Updating 'FrameworkInfo.user' is unsupported".into(),
            ));
        }
        if info.checkpoint.unwrap_or(false) != fw.info.checkpoint.unwrap_or(false) {
            return Err(CallError::BadRequest(
                "Updating 'FrameworkInfo.checkpoint' is unsupported".into(),
            ));
        }
        if info.principal != fw.info.principal {
            return Err(CallError::BadRequest(
                "Updating 'FrameworkInfo.principal' is unsupported".into(),
            ));
        }
        info.id = Some(fw.id.clone());
        let new_roles = framework_roles(&info);
        let stale: Vec<String> = fw
            .offers
            .iter()
            .filter(|o| {
                self.offers
                    .get(*o)
                    .is_some_and(|offer| !new_roles.contains(&offer.role))
            })
            .cloned()
            .collect();
        for id in stale {
            self.remove_offer(&id, true);
        }
        if let Some(fw) = self.frameworks.get_mut(fid) {
            fw.info = info;
            fw.suppressed = u.suppressed_roles.into_iter().collect();
            fw.filters.retain(|(_, role), _| new_roles.contains(role));
        }
        Ok(())
    }

    fn kill(&mut self, fid: &str, k: call::Kill) {
        let Some(fw) = self.frameworks.get(fid) else {
            return;
        };
        match fw.tasks.get(&k.task_id.value) {
            Some(task) => {
                if is_terminal(task.state) {
                    return;
                }
                let policy = k.kill_policy.or(task.info.kill_policy);
                if let Some(agent) = self.agents.get(&task.agent_id) {
                    agent.link.kill_task(&fw.id, &k.task_id, policy);
                }
            }
            None => {
                // Mesos answers a kill of an unknown task with its reconciliation.
                self.reconcile(
                    fid,
                    &[call::reconcile::Task {
                        task_id: k.task_id,
                        agent_id: k.agent_id,
                    }],
                );
            }
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
