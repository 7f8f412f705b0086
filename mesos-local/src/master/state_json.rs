//! The JSON of the master's read-only endpoints: `/state` (and `/master/state`),
//! `/state-summary` and `/metrics/snapshot`, in the shapes a Mesos 1.11 master uses
//! (reference §5): resource summaries are flat objects, times are seconds since the epoch.

use std::collections::BTreeMap;

use retz_proto::json;
use retz_proto::mesos::{
    Attribute, ContainerInfo, DiscoveryInfo, TaskState, framework_info, value,
};
use serde_json::{Map, Value, json};

use super::core::{AgentEntry, Core, FrameworkEntry, TaskEntry};
use super::resources::{Resources, scalar_json};

/// The Mesos release whose API this master speaks.
pub const MESOS_VERSION: &str = "1.11.0";

/// Settings echoed under `flags`.
#[derive(Debug, Clone, Default)]
pub struct Flags(pub BTreeMap<String, String>);

/// The task states counted in `/state-summary`.
const SUMMARY_STATES: [TaskState; 10] = [
    TaskState::TaskStaging,
    TaskState::TaskStarting,
    TaskState::TaskRunning,
    TaskState::TaskKilling,
    TaskState::TaskFinished,
    TaskState::TaskKilled,
    TaskState::TaskFailed,
    TaskState::TaskLost,
    TaskState::TaskError,
    TaskState::TaskUnreachable,
];

/// Attributes as Mesos' state endpoints write them: `{name: value}`.
pub fn attributes_json(attrs: &[Attribute]) -> Value {
    let mut map = Map::new();
    for a in attrs {
        let v = match value::Type::try_from(a.r#type) {
            Ok(value::Type::Scalar) => a
                .scalar
                .as_ref()
                .map_or(Value::Null, |s| scalar_json(s.value)),
            Ok(value::Type::Ranges) => {
                let runs: Vec<String> = a
                    .ranges
                    .as_ref()
                    .map(|r| {
                        r.range
                            .iter()
                            .map(|r| format!("{}-{}", r.begin, r.end))
                            .collect()
                    })
                    .unwrap_or_default();
                Value::String(format!("[{}]", runs.join(", ")))
            }
            Ok(value::Type::Set) => {
                let items = a
                    .set
                    .as_ref()
                    .map(|s| s.item.join(", "))
                    .unwrap_or_default();
                Value::String(format!("{{{items}}}"))
            }
            Ok(value::Type::Text) => {
                Value::String(a.text.as_ref().map(|t| t.value.clone()).unwrap_or_default())
            }
            Err(_) => Value::Null,
        };
        map.insert(a.name.clone(), v);
    }
    Value::Object(map)
}

/// Mesos' metric name for a task state: `master/tasks_running` for TASK_RUNNING.
fn task_metric(s: TaskState) -> String {
    let name = s
        .as_str_name()
        .trim_start_matches("TASK_")
        .to_ascii_lowercase();
    format!("master/tasks_{name}")
}

fn state_name(s: TaskState) -> &'static str {
    s.as_str_name()
}

fn task_json(t: &TaskEntry) -> Value {
    let statuses: Vec<Value> = t
        .statuses
        .iter()
        .map(|s| {
            let mut o = Map::new();
            o.insert(
                "state".into(),
                json!(TaskState::try_from(s.state).map_or("TASK_UNKNOWN", state_name)),
            );
            o.insert("timestamp".into(), json!(s.timestamp.unwrap_or(0.0)));
            if let Some(cs) = &s.container_status {
                o.insert("container_status".into(), json::to_json(cs));
            }
            if let Some(h) = s.healthy {
                o.insert("healthy".into(), json!(h));
            }
            Value::Object(o)
        })
        .collect();
    let mut o = Map::new();
    o.insert("id".into(), json!(t.info.task_id.value));
    o.insert("name".into(), json!(t.info.name));
    o.insert("framework_id".into(), json!(t.framework_id));
    o.insert(
        "executor_id".into(),
        json!(t.executor_id.as_ref().map_or("", |e| e.value.as_str())),
    );
    o.insert("slave_id".into(), json!(t.agent_id));
    o.insert("state".into(), json!(state_name(t.state)));
    o.insert("resources".into(), t.resources.summary_json());
    o.insert("role".into(), json!(t.role));
    o.insert("statuses".into(), Value::Array(statuses));
    if let Some(l) = &t.info.labels {
        o.insert("labels".into(), json::to_json(l)["labels"].clone());
    }
    if let Some(d) = &t.info.discovery {
        o.insert("discovery".into(), json::to_json::<DiscoveryInfo>(d));
    }
    if let Some(c) = &t.info.container {
        o.insert("container".into(), json::to_json::<ContainerInfo>(c));
    }
    Value::Object(o)
}

fn capability_names(fw: &FrameworkEntry) -> Vec<&'static str> {
    fw.info
        .capabilities
        .iter()
        .filter_map(|c| c.r#type)
        .filter_map(|t| framework_info::capability::Type::try_from(t).ok())
        .map(|t| t.as_str_name())
        .collect()
}

impl Core {
    fn framework_used(&self, fw: &FrameworkEntry) -> Resources {
        let mut used = Resources::new();
        for t in fw.tasks.values().filter(|t| !t.released) {
            used.add(&t.resources);
        }
        for ex in fw.executors.values() {
            used.add(&ex.resources);
        }
        used
    }

    fn framework_offered(&self, fw: &FrameworkEntry) -> Resources {
        let mut offered = Resources::new();
        for o in &fw.offers {
            if let Some(offer) = self.offers.get(o) {
                offered.add(&offer.resources);
            }
        }
        offered
    }

    fn agent_fields(&self, id: &str, a: &AgentEntry) -> Map<String, Value> {
        let port = a.info.port.unwrap_or(5051);
        let mut o = Map::new();
        o.insert("id".into(), json!(id));
        o.insert("hostname".into(), json!(a.info.hostname));
        o.insert("port".into(), json!(port));
        o.insert("pid".into(), json!(format!("slave(1)@127.0.0.1:{port}")));
        o.insert("attributes".into(), attributes_json(&a.info.attributes));
        o.insert("registered_time".into(), json!(a.registered_time));
        if let Some(t) = a.reregistered_time {
            o.insert("reregistered_time".into(), json!(t));
        }
        o.insert("resources".into(), a.total.summary_json());
        o.insert("used_resources".into(), a.used.summary_json());
        o.insert("offered_resources".into(), a.offered.summary_json());
        let reserved: Map<String, Value> = a
            .total
            .reserved_by_role()
            .into_iter()
            .map(|(role, r)| (role, r.summary_json()))
            .collect();
        o.insert("reserved_resources".into(), Value::Object(reserved));
        o.insert(
            "unreserved_resources".into(),
            a.total.unreserved().summary_json(),
        );
        o.insert("active".into(), json!(true));
        o.insert("version".into(), json!(MESOS_VERSION));
        o.insert(
            "capabilities".into(),
            json!(["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"]),
        );
        o
    }

    fn framework_fields(&self, fw: &FrameworkEntry) -> Map<String, Value> {
        let used = self.framework_used(fw);
        let offered = self.framework_offered(fw);
        let mut o = Map::new();
        o.insert("id".into(), json!(fw.id.value));
        o.insert("name".into(), json!(fw.info.name));
        o.insert("used_resources".into(), used.summary_json());
        o.insert("offered_resources".into(), offered.summary_json());
        o.insert("resources".into(), used.plus(&offered).summary_json());
        o.insert("capabilities".into(), json!(capability_names(fw)));
        o.insert(
            "hostname".into(),
            json!(fw.info.hostname.clone().unwrap_or_default()),
        );
        o.insert(
            "webui_url".into(),
            json!(fw.info.webui_url.clone().unwrap_or_default()),
        );
        let active = fw.connected() && !self.completed_ids.contains(&fw.id.value);
        o.insert("active".into(), json!(active));
        o.insert("connected".into(), json!(fw.connected()));
        o.insert("recovered".into(), json!(fw.recovered));
        o
    }

    fn framework_json(&self, fw: &FrameworkEntry) -> Value {
        let mut o = self.framework_fields(fw);
        o.insert("user".into(), json!(fw.info.user));
        o.insert(
            "failover_timeout".into(),
            json!(fw.info.failover_timeout.unwrap_or(0.0)),
        );
        o.insert(
            "checkpoint".into(),
            json!(fw.info.checkpoint.unwrap_or(false)),
        );
        o.insert("registered_time".into(), json!(fw.registered_time));
        if let Some(t) = fw.reregistered_time {
            o.insert("reregistered_time".into(), json!(t));
        }
        if let Some(t) = fw.unregistered_time {
            o.insert("unregistered_time".into(), json!(t));
        }
        if let Some(p) = &fw.info.principal {
            o.insert("principal".into(), json!(p));
        }
        if fw.capability(framework_info::capability::Type::MultiRole) {
            o.insert("roles".into(), json!(fw.info.roles));
        } else {
            o.insert(
                "role".into(),
                json!(fw.info.role.clone().unwrap_or_else(|| "*".into())),
            );
        }
        o.insert(
            "suppressed_roles".into(),
            json!(fw.suppressed.iter().collect::<Vec<_>>()),
        );
        o.insert(
            "tasks".into(),
            Value::Array(fw.tasks.values().map(task_json).collect()),
        );
        o.insert("unreachable_tasks".into(), json!([]));
        o.insert(
            "completed_tasks".into(),
            Value::Array(fw.completed_tasks.iter().map(task_json).collect()),
        );
        let offers: Vec<Value> = fw
            .offers
            .iter()
            .filter_map(|id| self.offers.get(id))
            .map(|offer| {
                let mut o = Map::new();
                o.insert("id".into(), json!(offer.offer.id.value));
                o.insert("framework_id".into(), json!(offer.framework_id));
                o.insert("slave_id".into(), json!(offer.agent_id));
                o.insert("resources".into(), offer.resources.summary_json());
                if let Some(ai) = &offer.offer.allocation_info {
                    o.insert("allocation_info".into(), json::to_json(ai));
                }
                Value::Object(o)
            })
            .collect();
        o.insert("offers".into(), Value::Array(offers));
        let executors: Vec<Value> = fw
            .executors
            .iter()
            .map(|((agent, _), ex)| {
                let mut v = json::to_json(&ex.info);
                if let Value::Object(m) = &mut v {
                    m.insert("resources".into(), ex.resources.summary_json());
                    m.insert("slave_id".into(), json!(agent));
                }
                v
            })
            .collect();
        o.insert("executors".into(), Value::Array(executors));
        o.insert("offer_constraints".into(), json!({}));
        Value::Object(o)
    }

    /// `/state` (`/master/state`).
    pub fn state_json(&self, flags: &Flags) -> Value {
        let info = &self.config.master_info;
        let pid = info.pid.clone().unwrap_or_default();
        let slaves: Vec<Value> = self
            .agents
            .iter()
            .map(|(id, a)| Value::Object(self.agent_fields(id, a)))
            .collect();
        let frameworks: Vec<Value> = self
            .frameworks
            .values()
            .map(|fw| self.framework_json(fw))
            .collect();
        let completed: Vec<Value> = self
            .completed_frameworks
            .iter()
            .map(|fw| self.framework_json(fw))
            .collect();
        json!({
            "version": MESOS_VERSION,
            "git_sha": "",
            "git_tag": MESOS_VERSION,
            "build_date": "",
            "build_time": 0,
            "build_user": "retz-mesos-local",
            "start_time": self.start_time,
            "elected_time": self.start_time,
            "id": self.config.master_id,
            "pid": pid,
            "hostname": info.hostname.clone().unwrap_or_default(),
            "capabilities": ["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"],
            "activated_slaves": self.agents.len(),
            "deactivated_slaves": 0,
            "unreachable_slaves": 0,
            "leader": pid,
            "leader_info": json::to_json(info),
            "flags": flags.0,
            "slaves": slaves,
            "recovered_slaves": [],
            "frameworks": frameworks,
            "completed_frameworks": completed,
            "orphan_tasks": [],
            "unregistered_frameworks": [],
        })
    }

    /// `/state-summary`.
    pub fn state_summary_json(&self) -> Value {
        let all_frameworks = || {
            self.frameworks
                .values()
                .chain(self.completed_frameworks.iter())
        };
        let count_states = |tasks: &mut dyn Iterator<Item = &TaskEntry>| {
            let mut counts: BTreeMap<&'static str, u64> = SUMMARY_STATES
                .iter()
                .map(|s| (s.as_str_name(), 0))
                .collect();
            for t in tasks {
                if let Some(c) = counts.get_mut(t.state.as_str_name()) {
                    *c += 1;
                }
            }
            counts
        };
        let slaves: Vec<Value> = self
            .agents
            .iter()
            .map(|(id, a)| {
                let mut o = self.agent_fields(id, a);
                let mut tasks = all_frameworks()
                    .flat_map(|fw| fw.tasks.values().chain(fw.completed_tasks.iter()))
                    .filter(|t| t.agent_id == *id);
                for (k, v) in count_states(&mut tasks) {
                    o.insert(k.into(), json!(v));
                }
                let fids: Vec<&str> = self
                    .frameworks
                    .values()
                    .filter(|fw| {
                        fw.tasks.values().any(|t| t.agent_id == *id)
                            || fw.executors.keys().any(|(a, _)| a == id)
                    })
                    .map(|fw| fw.id.value.as_str())
                    .collect();
                o.insert("framework_ids".into(), json!(fids));
                Value::Object(o)
            })
            .collect();
        let frameworks: Vec<Value> = self
            .frameworks
            .values()
            .map(|fw| {
                let mut o = self.framework_fields(fw);
                let mut tasks = fw.tasks.values().chain(fw.completed_tasks.iter());
                for (k, v) in count_states(&mut tasks) {
                    o.insert(k.into(), json!(v));
                }
                let mut agents: Vec<&str> =
                    fw.tasks.values().map(|t| t.agent_id.as_str()).collect();
                agents.extend(fw.executors.keys().map(|(a, _)| a.as_str()));
                agents.sort_unstable();
                agents.dedup();
                o.insert("slave_ids".into(), json!(agents));
                Value::Object(o)
            })
            .collect();
        json!({
            "hostname": self.config.master_info.hostname.clone().unwrap_or_default(),
            "cluster": "retz-mesos-local",
            "slaves": slaves,
            "frameworks": frameworks,
        })
    }

    /// `/metrics/snapshot`: Mesos metric names for what this master counts.
    pub fn metrics_json(&self, now: std::time::Instant) -> Value {
        let c = &self.counters;
        let mut m: BTreeMap<String, Value> = BTreeMap::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put("master/elected", json!(1));
        put(
            "master/uptime_secs",
            json!(now.saturating_duration_since(self.started).as_secs_f64()),
        );
        put("master/slaves_active", json!(self.agents.len()));
        put("master/slaves_connected", json!(self.agents.len()));
        let connected = self.frameworks.values().filter(|f| f.connected()).count();
        put("master/frameworks_active", json!(connected));
        put("master/frameworks_connected", json!(connected));
        put(
            "master/frameworks_disconnected",
            json!(self.frameworks.len() - connected),
        );
        put(
            "master/frameworks_inactive",
            json!(self.frameworks.len() - connected),
        );
        put("master/outstanding_offers", json!(self.offers.len()));
        put("master/offers_sent", json!(c.offers_sent));
        put("master/offers_declined", json!(c.offers_declined));
        put("master/offers_accepted", json!(c.offers_accepted));
        put("master/offers_rescinded", json!(c.offers_rescinded));
        put("master/messages_launch_tasks", json!(c.tasks_launched));
        put("master/messages_status_update", json!(c.status_updates));
        put(
            "master/invalid_status_updates",
            json!(c.invalid_status_updates),
        );
        put(
            "master/messages_status_update_acknowledgement",
            json!(c.acknowledgements),
        );
        put(
            "master/invalid_status_update_acknowledgements",
            json!(c.invalid_acknowledgements),
        );
        for (call, n) in &c.calls {
            put(
                &format!("master/messages_{}", call.to_ascii_lowercase()),
                json!(n),
            );
        }
        let mut live: BTreeMap<&'static str, u64> = BTreeMap::new();
        for fw in self.frameworks.values() {
            for t in fw.tasks.values().filter(|t| !t.state.is_terminal()) {
                *live.entry(t.state.as_str_name()).or_insert(0) += 1;
            }
        }
        for s in [
            TaskState::TaskStaging,
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskKilling,
        ] {
            let n = live.get(s.as_str_name()).copied().unwrap_or(0);
            put(&task_metric(s), json!(n));
        }
        for s in [
            TaskState::TaskFinished,
            TaskState::TaskFailed,
            TaskState::TaskKilled,
            TaskState::TaskLost,
            TaskState::TaskError,
            TaskState::TaskDropped,
            TaskState::TaskGone,
        ] {
            let n = c.terminal_tasks.get(s.as_str_name()).copied().unwrap_or(0);
            put(&task_metric(s), json!(n));
        }
        json!(m)
    }
}
