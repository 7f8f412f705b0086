//! What the planner launches: the `ExecutorInfo` of an application and the `TaskInfo` of
//! one attempt of a job, with the Retz task spec in `TaskInfo.data`.
//!
//! One executor per application load and agent: its id is `retz-<app>-<digest>`, the
//! digest covering everything in the `ExecutorInfo` plus the application's owner, its
//! `generation` (fresh at every load-app) and the jobs' Unix user. So another owner's
//! application of the same name, a reload, or a change of the job user never shares an
//! executor, a sandbox or a run directory with what ran before, and Mesos' "ExecutorInfo
//! is not compatible" check is never tripped. The application's `files` are fetched
//! uncached, `large_files` through the agent's cache (as the original Retz did). A job's
//! granted ports (taken by the cycle from the agent's `ports` offer) are in the grant, the
//! task spec (`$PORT0`..) and the task's `ports` RANGES resource alike.
//!
//! Users ([`LaunchUsers`]): the executor is started as `mesos.executor_user`
//! (`ExecutorInfo.command.user`), never as the application's user; the job's Unix user
//! (the application's allowed `user`, else the default job user) travels in the task
//! spec (`TaskSpec.user`) and is recorded in the grant.

use retz_placement::Assignment;
use retz_proto::api::{Application, Grant, Job};
use retz_proto::mesos::{
    CommandInfo, ExecutorId, ExecutorInfo, FrameworkId, KillPolicy, Offer, TaskId, TaskInfo,
    command_info, executor_info,
};
use retz_proto::task::TaskSpec;
use sha2::{Digest, Sha256};

use crate::identity::LaunchUsers;
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
    users: &LaunchUsers,
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
        user: Some(users.executor_user.clone()),
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
    let mut hasher = Sha256::new();
    hasher.update(prost::Message::encode_to_vec(&info));
    // Length-prefixed, so that no two (owner, generation, user) triples hash alike.
    for part in [
        app.owner.as_str(),
        app.generation.as_str(),
        users.job_user(app),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    info.executor_id.value = format!("retz-{}-{short}", app.appid);
    info
}

/// The grant recorded on the job for `asg`, with the `ports` the cycle gave it and the
/// Unix `user` it runs as.
pub fn grant(asg: &Assignment, ports: &[u16], user: &str) -> Grant {
    Grant {
        cpu: asg.granted_cpus,
        mem_mb: asg.granted_mem_mb,
        gpu: asg.granted_gpus,
        gpu_ids: (asg.gpus_named && !asg.gpu_ids.is_empty()).then(|| asg.gpu_ids.to_string()),
        cpuset: (asg.pinned && !asg.cpus.is_empty()).then(|| asg.cpus.to_string()),
        numa_nodes: (asg.pinned && !asg.nodes.is_empty()).then(|| asg.nodes.to_string()),
        pinned: asg.pinned,
        ports: ports.to_vec(),
        user: Some(user.to_owned()),
        // Needs the agent's running jobs: the planner loop sets it at launch.
        features: None,
    }
}

/// The `TaskInfo` of attempt `attempt` of `job`, placed by `asg` on `offer`'s agent with
/// `g`, its [`grant`] (the ports taken from the offer's `ports` ranges, the Unix user it
/// runs as), launched by `executor`.
pub fn task_info(
    job: &Job,
    attempt: u32,
    app: &Application,
    asg: &Assignment,
    g: &Grant,
    offer: &Offer,
    executor: ExecutorInfo,
) -> TaskInfo {
    let spec = TaskSpec {
        command: job.cmd.clone(),
        env: job.props.clone(),
        cpus: g.cpu,
        mem_mb: g.mem_mb,
        gpus: g.gpu,
        gpu_ids: asg.gpus_named.then(|| asg.gpu_ids.clone()),
        cpuset: (asg.pinned && !asg.cpus.is_empty()).then(|| asg.cpus.clone()),
        mem_nodes: (asg.pinned && !asg.nodes.is_empty()).then(|| asg.nodes.clone()),
        affinity: asg.policy,
        mem_policy: None,
        pin_required: g.pinned,
        job_id: Some(job.id),
        app: Some(app.appid.clone()),
        ports: g.ports.clone(),
        user: g.user.clone(),
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
        executor: Some(executor),
        data: Some(spec.to_vec()),
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
    use retz_placement::{AffinityPolicy, CpuSet, NodeSet};

    fn users() -> LaunchUsers {
        LaunchUsers {
            allowed_users: ["alice".to_owned()].into_iter().collect(),
            ..LaunchUsers::default()
        }
    }

    #[test]
    fn executor_ids_follow_the_app_contents() {
        let fid = FrameworkId { value: "f".into() };
        let loc = ExecutorLocation::parse("/usr/local/bin/retz-executor");
        let u = users();
        let mut app = Application::new("asakusa", "k");
        let a = executor_info(&app, &loc, &fid, &u);
        assert!(a.executor_id.value.starts_with("retz-asakusa-"));
        assert_eq!(a, executor_info(&app, &loc, &fid, &u), "deterministic");
        app.files.push("http://h/app.tar.gz".into());
        let b = executor_info(&app, &loc, &fid, &u);
        assert_ne!(a.executor_id, b.executor_id);
        let cmd = b.command.unwrap();
        assert_eq!(cmd.value.as_deref(), Some("/usr/local/bin/retz-executor"));
        assert_eq!(cmd.uris.len(), 1);
        assert_eq!(cmd.uris[0].cache, Some(false));
        let fetched = executor_info(
            &app,
            &ExecutorLocation::parse("http://files/bin/retz-executor"),
            &fid,
            &u,
        );
        let cmd = fetched.command.unwrap();
        assert_eq!(cmd.value.as_deref(), Some("./retz-executor"));
        assert_eq!(cmd.uris[0].executable, Some(true));
    }

    #[test]
    fn executor_ids_differ_by_owner_generation_and_job_user() {
        let fid = FrameworkId { value: "f".into() };
        let loc = ExecutorLocation::parse("/usr/local/bin/retz-executor");
        let u = users();
        let mut a = Application::new("shared", "owner-a");
        a.generation = "g1".into();
        let id = |app: &Application, u: &LaunchUsers| {
            executor_info(app, &loc, &fid, u).executor_id.value
        };
        let first = id(&a, &u);
        // Same name, same files, another owner: another executor.
        let mut b = a.clone();
        b.owner = "owner-b".into();
        assert_ne!(id(&b, &u), first);
        // The same owner reloading the same application: another executor.
        let mut reloaded = a.clone();
        reloaded.generation = "g2".into();
        assert_ne!(id(&reloaded, &u), first);
        // Another job user (the app names an allowed one, or the default changed).
        let mut as_alice = a.clone();
        as_alice.user = Some("alice".into());
        assert_ne!(id(&as_alice, &u), first);
        let other_default = LaunchUsers {
            default_user: "batch".into(),
            ..users()
        };
        assert_ne!(id(&a, &other_default), first);
        // Parts cannot be shifted from one field into the next.
        let mut x = a.clone();
        x.owner = "ab".into();
        x.generation = "c".into();
        assert!(first.starts_with("retz-shared-"), "{first}");
        let mut y = a;
        y.owner = "a".into();
        y.generation = "bc".into();
        assert_ne!(id(&x, &u), id(&y, &u));
    }

    #[test]
    fn the_executor_runs_as_the_executor_user_and_the_job_as_its_user() {
        let fid = FrameworkId { value: "f".into() };
        let loc = ExecutorLocation::parse("/usr/local/bin/retz-executor");
        let u = users();
        let mut app = Application::new("a", "k");
        app.user = Some("alice".into());
        let exec = executor_info(&app, &loc, &fid, &u);
        assert_eq!(exec.command.as_ref().unwrap().user.as_deref(), Some("root"));
        let asg = Assignment {
            job_id: 1,
            agent_id: "a1".into(),
            hostname: "h".into(),
            cpus: "0".parse::<CpuSet>().unwrap(),
            cpu_nodes: "0".parse::<NodeSet>().unwrap(),
            nodes: "0".parse::<NodeSet>().unwrap(),
            memory_per_node: Vec::new(),
            granted_cpus: 1,
            granted_mem_mb: 32,
            granted_gpus: 0,
            gpu_ids: Default::default(),
            gpus_named: false,
            policy: AffinityPolicy::NumaPrefer,
            whole_nodes: 0,
            pinned: true,
            cost: 0.0,
        };
        let spec_user = |app: &Application, u: &LaunchUsers| {
            let mut job = Job::new(&app.appid, "id -u");
            job.id = 1;
            let g = grant(&asg, &[], u.job_user(app));
            let t = task_info(&job, 1, app, &asg, &g, &Offer::default(), exec.clone());
            let spec = TaskSpec::from_slice(t.data.as_ref().unwrap()).unwrap();
            spec.user
        };
        // Allowed: the app's user.
        assert_eq!(spec_user(&app, &u).as_deref(), Some("alice"));
        assert_eq!(
            grant(&asg, &[], u.job_user(&app)).user.as_deref(),
            Some("alice")
        );
        // Not (or no longer) allowed: the default job user.
        let strict = LaunchUsers::default();
        assert_eq!(spec_user(&app, &strict).as_deref(), Some("nobody"));
        // No user named: the default job user; never root.
        app.user = None;
        assert_eq!(spec_user(&app, &u).as_deref(), Some("nobody"));
        app.user = Some("root".into());
        assert_eq!(spec_user(&app, &u).as_deref(), Some("nobody"));
        let custom = LaunchUsers {
            executor_user: "retz-exec".into(),
            ..users()
        };
        let exec = executor_info(&app, &loc, &fid, &custom);
        assert_eq!(
            exec.command.unwrap().user.as_deref(),
            Some("retz-exec"),
            "never the app's user"
        );
    }
}
