//! The agent's `/state` document (the shape of a Mesos agent's, reduced to what this
//! agent knows): agent identity and resources, then `frameworks[].executors[]` with
//! `id`, `name`, `source`, `container`, `directory`, `resources`, `tasks`,
//! `queued_tasks`, `completed_tasks`, and `completed_executors`.
//!
//! Pure: renders the state it is given.

use retz_proto::mesos::{Attribute, Resource, TaskInfo, TaskState, value};
use serde_json::{Map, Value, json};

use super::core::{ExecRec, Shared, State, TaskRec};

fn ranges_text(r: &value::Ranges) -> String {
    let parts: Vec<String> = r
        .range
        .iter()
        .map(|x| format!("{}-{}", x.begin, x.end))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn set_text(s: &value::Set) -> String {
    format!("{{{}}}", s.item.join(", "))
}

/// A flat resource summary, e.g. `{"cpus":2,"mem":1024,"disk":0,"gpus":0,"cpuids":"[0-3]"}`:
/// scalars are added up, ranges and sets printed as Mesos prints them.
pub fn resources_json(resources: &[Resource]) -> Value {
    let mut out = Map::new();
    for name in ["cpus", "gpus", "mem", "disk"] {
        out.insert(name.to_string(), json!(0.0));
    }
    for r in resources {
        let v = match value::Type::try_from(r.r#type) {
            Ok(value::Type::Scalar) => {
                let add = r.scalar.map_or(0.0, |s| s.value);
                let old = out.get(&r.name).and_then(Value::as_f64).unwrap_or(0.0);
                json!(old + add)
            }
            Ok(value::Type::Ranges) => {
                json!(r.ranges.as_ref().map(ranges_text).unwrap_or_default())
            }
            Ok(value::Type::Set) => json!(r.set.as_ref().map(set_text).unwrap_or_default()),
            _ => continue,
        };
        out.insert(r.name.clone(), v);
    }
    Value::Object(out)
}

/// Attributes as `{name: value}`.
pub fn attributes_json(attributes: &[Attribute]) -> Value {
    let mut out = Map::new();
    for a in attributes {
        let v = match value::Type::try_from(a.r#type) {
            Ok(value::Type::Scalar) => json!(a.scalar.map_or(0.0, |s| s.value)),
            Ok(value::Type::Ranges) => {
                json!(a.ranges.as_ref().map(ranges_text).unwrap_or_default())
            }
            Ok(value::Type::Set) => json!(a.set.as_ref().map(set_text).unwrap_or_default()),
            Ok(value::Type::Text) => {
                json!(a.text.as_ref().map(|t| t.value.clone()).unwrap_or_default())
            }
            Err(_) => continue,
        };
        out.insert(a.name.clone(), v);
    }
    Value::Object(out)
}

fn task_json(
    agent_id: &str,
    fid: &str,
    eid: &str,
    info: &TaskInfo,
    state: TaskState,
    statuses: &[(TaskState, f64)],
) -> Value {
    json!({
        "id": info.task_id.value,
        "name": info.name,
        "framework_id": fid,
        "executor_id": eid,
        "slave_id": agent_id,
        "state": state.as_str_name(),
        "resources": resources_json(&info.resources),
        "statuses": statuses.iter().map(|(s, t)| json!({"state": s.as_str_name(), "timestamp": t})).collect::<Vec<_>>(),
    })
}

fn task_rec_json(agent_id: &str, fid: &str, eid: &str, t: &TaskRec) -> Value {
    task_json(agent_id, fid, eid, &t.info, t.state, &t.statuses)
}

/// One executor entry of `/state`.
pub(crate) fn executor_json(agent_id: &str, fid: &str, rec: &ExecRec, completed: bool) -> Value {
    let eid = rec.info.executor_id.value.as_str();
    let (live, done): (Vec<&TaskRec>, Vec<&TaskRec>) = if completed {
        (
            Vec::new(),
            rec.tasks
                .values()
                .chain(rec.completed_tasks.iter())
                .collect(),
        )
    } else {
        (
            rec.tasks.values().collect(),
            rec.completed_tasks.iter().collect(),
        )
    };
    let queued: Vec<Value> = rec
        .queued
        .iter()
        .flat_map(|q| q.tasks())
        .map(|t| task_json(agent_id, fid, eid, t, TaskState::TaskStaging, &[]))
        .collect();
    json!({
        "id": eid,
        "name": rec.info.name.clone().unwrap_or_default(),
        "source": rec.info.source.clone().unwrap_or_default(),
        "container": rec.container_id,
        "directory": rec.directory.to_string_lossy(),
        "virtual_directory": super::sandbox::virtual_run_path(fid, eid),
        "resources": resources_json(&rec.info.resources),
        "type": if rec.command_task { "COMMAND" } else { "CUSTOM" },
        "pid": rec.pid,
        "subscribed": rec.stream.is_some(),
        "tasks": live.iter().map(|t| task_rec_json(agent_id, fid, eid, t)).collect::<Vec<_>>(),
        "queued_tasks": if completed { Vec::new() } else { queued },
        "completed_tasks": done.iter().map(|t| task_rec_json(agent_id, fid, eid, t)).collect::<Vec<_>>(),
        "registered_time": rec.started,
    })
}

/// The whole `/state` document.
pub(crate) fn state_json(shared: &Shared, st: &State) -> Value {
    let aid = shared.cfg.id.value.as_str();
    let frameworks: Vec<Value> = st
        .frameworks
        .iter()
        .map(|(fid, fw)| {
            json!({
                "id": fid,
                "name": fw.info.name,
                "user": fw.info.user,
                "hostname": fw.info.hostname.clone().unwrap_or_default(),
                "role": fw.info.role.clone().unwrap_or_else(|| "*".into()),
                "roles": fw.info.roles,
                "checkpoint": fw.info.checkpoint(),
                "failover_timeout": fw.info.failover_timeout(),
                "executors": fw.executors.values().map(|r| executor_json(aid, fid, r, false)).collect::<Vec<_>>(),
                "completed_executors": fw.completed.iter().cloned().collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "version": "1.11.0",
        "id": aid,
        "pid": format!("slave(1)@{}", shared.endpoint),
        "hostname": shared.cfg.hostname,
        "port": shared.endpoint.port(),
        "start_time": shared.start_time,
        "resources": resources_json(&shared.cfg.resources),
        "attributes": attributes_json(&shared.cfg.attributes),
        "flags": {
            "work_dir": shared.cfg.work_dir.to_string_lossy(),
            "executor_registration_timeout": super::env::format_duration(shared.cfg.executor_registration_timeout),
            "executor_shutdown_grace_period": super::env::format_duration(shared.cfg.executor_shutdown_grace_period),
        },
        "frameworks": frameworks,
        "completed_frameworks": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::resources::{ranges, scalar};

    #[test]
    fn resource_summary() {
        let rs = vec![
            scalar("cpus", 2.0),
            scalar("cpus", 0.5),
            scalar("mem", 1024.0),
            ranges("cpuids", [(0, 3), (8, 9)]),
        ];
        let v = resources_json(&rs);
        assert_eq!(v["cpus"], json!(2.5));
        assert_eq!(v["mem"], json!(1024.0));
        assert_eq!(v["disk"], json!(0.0));
        assert_eq!(v["gpus"], json!(0.0));
        assert_eq!(v["cpuids"], json!("[0-3, 8-9]"));
    }
}
