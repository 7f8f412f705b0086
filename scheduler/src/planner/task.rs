//! What the planner launches: the `ExecutorInfo` of an application and the `TaskInfo` of
//! one attempt of a job, with the Retz task spec in `TaskInfo.data`.
//!
//! One executor per application and agent: its id is `retz-<app>-<digest>`, the digest
//! covering everything in the `ExecutorInfo`, so reloading an application with other
//! files starts a fresh executor instead of tripping Mesos' "ExecutorInfo is not
//! compatible" check. The application's `files` are fetched uncached, `large_files`
//! through the agent's cache (as the original Retz did). A job's granted ports (taken by
//! the cycle from the agent's `ports` offer) are in the grant, the task spec
//! (`$PORT0`..) and the task's `ports` RANGES resource alike.

use std::collections::BTreeMap;

use retz_executor::spec::{Affinity, TaskSpec};
use retz_placement::{AffinityPolicy, Assignment};
use retz_proto::api::{Application, Grant, Job};
use retz_proto::mesos::{
    CommandInfo, ExecutorId, ExecutorInfo, FrameworkId, KillPolicy, Offer, TaskId, TaskInfo,
    command_info, executor_info,
};
use sha2::{Digest, Sha256};

use crate::offers::task_resources;

/// Where the agents find `retz-executor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecutorLocation {
    /// An absolute path on every agent.
    Path(String),
    /// A URI the Mesos fetcher downloads into the sandbox (made executable).
    Uri(String),
}

impl ExecutorLocation {
    /// `http://...`, `https://...`, `hdfs://...`, `file://...` are URIs; anything else a
    /// path.
    pub fn parse(s: &str) -> ExecutorLocation {
        if s.contains("://") {
            ExecutorLocation::Uri(s.to_owned())
        } else {
            ExecutorLocation::Path(s.to_owned())
        }
    }
}

/// The `ExecutorInfo` for `app`'s jobs.
pub fn executor_info(
    app: &Application,
    location: &ExecutorLocation,
    framework_id: &FrameworkId,
) -> ExecutorInfo {
    let uri = |value: &str, cache: bool, executable: bool| command_info::Uri {
        value: value.to_owned(),
        executable: Some(executable),
        extract: Some(!executable),
        cache: Some(cache),
        output_file: None,
    };
    let mut uris = Vec::new();
    let value = match location {
        ExecutorLocation::Path(p) => p.clone(),
        ExecutorLocation::Uri(u) => {
            uris.push(uri(u, true, true));
            let name = u.rsplit('/').next().unwrap_or("retz-executor");
            format!("./{name}")
        }
    };
    uris.extend(app.files.iter().map(|f| uri(f, false, false)));
    uris.extend(app.large_files.iter().map(|f| uri(f, true, false)));
    let command = CommandInfo {
        value: Some(value),
        shell: Some(false),
        uris,
        user: app.user.clone(),
        ..CommandInfo::default()
    };
    let mut info = ExecutorInfo {
        r#type: Some(executor_info::Type::Custom as i32),
        executor_id: ExecutorId {
            value: String::new(),
        },
        framework_id: Some(framework_id.clone()),
        name: Some(format!("retz-executor for {}", app.appid)),
        source: Some("retz".to_owned()),
        command: Some(command),
        ..ExecutorInfo::default()
    };
    let digest = Sha256::digest(prost::Message::encode_to_vec(&info));
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    info.executor_id.value = format!("retz-{}-{short}", app.appid);
    info
}

fn spec_affinity(p: AffinityPolicy) -> Affinity {
    match p {
        AffinityPolicy::NumaStrict => Affinity::NumaStrict,
        AffinityPolicy::NumaPrefer => Affinity::NumaPrefer,
        AffinityPolicy::Spread => Affinity::Spread,
        AffinityPolicy::None => Affinity::None,
    }
}

/// The grant recorded on the job for `asg`, with the `ports` the cycle gave it.
pub fn grant(asg: &Assignment, ports: &[u16]) -> Grant {
    Grant {
        cpu: asg.granted_cpus,
        mem_mb: asg.granted_mem_mb,
        gpu: asg.granted_gpus,
        cpuset: (asg.pinned && !asg.cpus.is_empty()).then(|| asg.cpus.to_string()),
        numa_nodes: (asg.pinned && !asg.nodes.is_empty()).then(|| asg.nodes.to_string()),
        pinned: asg.pinned,
        ports: ports.to_vec(),
    }
}

/// The `TaskInfo` of attempt `attempt` of `job`, placed by `asg` on `offer`'s agent and
/// given `ports` from the offer's `ports` ranges.
pub fn task_info(
    job: &Job,
    attempt: u32,
    app: &Application,
    asg: &Assignment,
    ports: &[u16],
    offer: &Offer,
    executor: &ExecutorInfo,
) -> TaskInfo {
    let g = grant(asg, ports);
    let spec = TaskSpec {
        command: job.cmd.clone(),
        env: job.props.clone().into_iter().collect::<BTreeMap<_, _>>(),
        cpus: g.cpu,
        mem_mb: g.mem_mb,
        gpus: g.gpu,
        cpuset: g.cpuset.clone(),
        mem_nodes: g.numa_nodes.clone(),
        affinity: spec_affinity(asg.policy),
        mem_policy: None,
        pin_required: g.pinned,
        job_id: Some(job.id),
        app: Some(app.appid.clone()),
        ports: g.ports.clone(),
        user: None,
    };
    let name = if job.name.is_empty() {
        format!("retz job {}", job.id)
    } else {
        job.name.clone()
    };
    TaskInfo {
        name,
        task_id: TaskId {
            value: job.task_id_for(attempt),
        },
        agent_id: offer.agent_id.clone(),
        resources: task_resources(offer, asg, g.pinned, &g.ports),
        executor: Some(executor.clone()),
        // A TaskSpec is strings, numbers and maps of strings: it always serialises.
        data: Some(serde_json::to_vec(&spec).unwrap_or_default()),
        kill_policy: (app.grace_period > 0).then(|| KillPolicy {
            grace_period: Some(retz_proto::mesos::DurationInfo {
                nanoseconds: i64::from(app.grace_period) * 1_000_000_000,
            }),
        }),
        ..TaskInfo::default()
    }
}

/// The agent's HTTP base (`http://IP:PORT`) from an offer's `url`, for `/files`.
pub fn agent_base(offer: &Offer) -> Option<String> {
    let url = offer.url.as_ref()?;
    let host = url
        .address
        .ip
        .clone()
        .or_else(|| url.address.hostname.clone())?;
    Some(format!("{}://{}:{}", url.scheme, host, url.address.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executor_ids_follow_the_app_contents() {
        let fid = FrameworkId { value: "f".into() };
        let loc = ExecutorLocation::parse("/usr/local/bin/retz-executor");
        let mut app = Application::new("asakusa", "k");
        let a = executor_info(&app, &loc, &fid);
        assert!(a.executor_id.value.starts_with("retz-asakusa-"));
        assert_eq!(a, executor_info(&app, &loc, &fid), "deterministic");
        app.files.push("http://h/app.tar.gz".into());
        let b = executor_info(&app, &loc, &fid);
        assert_ne!(a.executor_id, b.executor_id);
        let cmd = b.command.unwrap();
        assert_eq!(cmd.value.as_deref(), Some("/usr/local/bin/retz-executor"));
        assert_eq!(cmd.uris.len(), 1);
        assert_eq!(cmd.uris[0].cache, Some(false));
        let fetched = executor_info(
            &app,
            &ExecutorLocation::parse("http://files/bin/retz-executor"),
            &fid,
        );
        let cmd = fetched.command.unwrap();
        assert_eq!(cmd.value.as_deref(), Some("./retz-executor"));
        assert_eq!(cmd.uris[0].executable, Some(true));
    }
}
