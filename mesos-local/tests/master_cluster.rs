//! The LocalCluster end to end: real agents on synthetic topologies running real command
//! tasks, driven over the scheduler HTTP API, plus the fault injections that go through
//! the agents (agent death, executor death, master restart with running tasks).

mod master_support;

use std::time::{Duration, Instant};

use hyper::StatusCode;
use master_support::*;
use retz_mesos_local::cluster::{AgentSpec, ClusterConfig, LocalCluster};
use retz_mesos_local::master::MasterConfig;
use retz_proto::ContentType;
use retz_proto::mesos::{CommandInfo, ExecutorId, Offer, TaskInfo, TaskState, task_status};
use retz_proto::scheduler::{call, event};
use retz_topology::TopologySource;

async fn cluster(agents: usize, dir: &std::path::Path) -> LocalCluster {
    let mut config = ClusterConfig::new(dir);
    config.master = MasterConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        allocation_interval: Duration::from_millis(50),
        ..MasterConfig::default()
    };
    config.agents = (0..agents)
        .map(|_| AgentSpec {
            disk_mb: Some(2048),
            ..AgentSpec::new(TopologySource::Synthetic(
                "pack:2 numa:2 core:4 pu:2".into(),
            ))
        })
        .collect();
    LocalCluster::start(config).await.expect("cluster starts")
}

fn shell_task(id: &str, offer: &Offer, cmd: &str, cpus: (u64, u64)) -> TaskInfo {
    let mut t = command_task(
        id,
        &offer.agent_id,
        vec![
            scalar("cpus", (cpus.1 - cpus.0 + 1) as f64),
            scalar("mem", 32.0),
            ranges("cpuids", cpus.0, cpus.1),
        ],
    );
    t.command = Some(CommandInfo {
        value: Some(cmd.into()),
        ..Default::default()
    });
    t
}

#[tokio::test]
async fn command_tasks_run_on_real_agents_with_numa_resources() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(2, dir.path()).await;
    assert_eq!(c.agents().len(), 2);
    let http = Http::new(c.master_addr());
    let mut s = http.subscribe(ContentType::Json, framework("real")).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let mut offers = Vec::new();
    while offers.len() < 2 {
        offers.extend(s.offers().await);
    }
    for o in &offers {
        assert_eq!(resource(o, "cpus").scalar.as_ref().unwrap().value, 32.0);
        assert_eq!(resource(o, "numanodes").scalar.as_ref().unwrap().value, 4.0);
        let r = &resource(o, "cpuids").ranges.as_ref().unwrap().range;
        assert_eq!((r[0].begin, r[0].end), (0, 31));
        assert!(
            o.attributes.iter().any(|a| a.name == "retz_numa"),
            "NUMA attributes"
        );
        assert!(o.url.as_ref().unwrap().address.port > 0);
    }
    // One task per agent, pinned to cpus of node 1.
    for (i, o) in offers.iter().enumerate() {
        let t = shell_task(
            &format!("echo-{i}"),
            o,
            "echo hello from $MESOS_EXECUTOR_ID",
            (8, 11),
        );
        let r = http
            .call(
                ContentType::Json,
                &s.stream_id,
                &accept_call(&fid, &[&o.id], vec![t], Some(0.0)),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    let mut finished = 0;
    while finished < 2 {
        let u = s.update().await;
        assert!(u.uuid.is_some());
        let state = TaskState::try_from(u.state).unwrap();
        assert!(
            matches!(
                state,
                TaskState::TaskStarting | TaskState::TaskRunning | TaskState::TaskFinished
            ),
            "{u:?}"
        );
        if state == TaskState::TaskFinished {
            finished += 1;
        }
        let r = http
            .call(ContentType::Json, &s.stream_id, &ack_call(&fid, &u))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    // The tasks' sandboxes hold their output.
    for (i, o) in offers.iter().enumerate() {
        let agent = c.agent(&o.agent_id).unwrap();
        let eid = ExecutorId {
            value: format!("echo-{i}"),
        };
        let dir = agent.sandbox_dir(&fid, &eid).expect("sandbox");
        let out = std::fs::read_to_string(dir.join("stdout")).unwrap();
        assert!(out.contains(&format!("hello from echo-{i}")), "{out}");
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = http.get_json("/state").await;
        let done = state["frameworks"][0]["completed_tasks"]
            .as_array()
            .unwrap()
            .len();
        if done == 2 {
            assert_eq!(state["slaves"][0]["used_resources"]["cpus"], 0);
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.master().check_invariants().await.unwrap(), Ok(()));
    c.shutdown().await;
}

#[tokio::test]
async fn killed_executor_and_killed_agent() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(2, dir.path()).await;
    let http = Http::new(c.master_addr());
    let mut s = http.subscribe(ContentType::Json, framework("faults")).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let mut offers = Vec::new();
    while offers.len() < 2 {
        offers.extend(s.offers().await);
    }
    for (i, o) in offers.iter().enumerate() {
        let t = shell_task(&format!("sleep-{i}"), o, "sleep 600", (0, 0));
        http.call(
            ContentType::Json,
            &s.stream_id,
            &accept_call(&fid, &[&o.id], vec![t], Some(0.0)),
        )
        .await;
    }
    let mut running = Vec::new();
    while running.len() < 2 {
        let u = s.update().await;
        http.call(ContentType::Json, &s.stream_id, &ack_call(&fid, &u))
            .await;
        if u.state == TaskState::TaskRunning as i32 {
            running.push(u);
        }
    }
    // Executor death (a command task's executor id is its task id).
    let victim = &running[0];
    let agent_id = victim.agent_id.clone().unwrap();
    assert!(c.kill_executor(
        &agent_id,
        &fid,
        &ExecutorId {
            value: victim.task_id.value.clone()
        }
    ));
    let failed = s.update().await;
    assert_eq!(failed.task_id, victim.task_id);
    assert_eq!(failed.state, TaskState::TaskFailed as i32);
    assert!(failed.uuid.is_some());
    http.call(ContentType::Json, &s.stream_id, &ack_call(&fid, &failed))
        .await;
    let f = s.next_of(event::Type::Failure).await.failure.unwrap();
    assert_eq!(f.executor_id.unwrap().value, victim.task_id.value);
    // Agent death: the other task is lost, the agent leaves the cluster.
    let other = &running[1];
    let doomed = other.agent_id.clone().unwrap();
    assert!(c.kill_agent(&doomed).await.unwrap());
    assert!(!c.kill_agent(&doomed).await.unwrap());
    let lost = s.update().await;
    assert_eq!(lost.task_id, other.task_id);
    assert_eq!(lost.state, TaskState::TaskLost as i32);
    assert_eq!(lost.reason, Some(task_status::Reason::AgentRemoved as i32));
    assert!(lost.uuid.is_none());
    assert_eq!(c.agents().len(), 1);
    let state = http.get_json("/state").await;
    assert_eq!(state["slaves"].as_array().unwrap().len(), 1);
    c.shutdown().await;
}

#[tokio::test]
async fn master_restart_keeps_running_tasks_and_accepts_the_old_framework_id() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(1, dir.path()).await;
    let http = Http::new(c.master_addr());
    let mut s = http
        .subscribe(ContentType::Json, framework("restart"))
        .await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let o = s.offers().await.remove(0);
    let t = shell_task("long", &o, "sleep 600", (4, 7));
    http.call(
        ContentType::Json,
        &s.stream_id,
        &accept_call(&fid, &[&o.id], vec![t], Some(0.0)),
    )
    .await;
    loop {
        let u = s.update().await;
        http.call(ContentType::Json, &s.stream_id, &ack_call(&fid, &u))
            .await;
        if u.state == TaskState::TaskRunning as i32 {
            break;
        }
    }
    let old = c.master().id();
    c.restart_master().await.unwrap();
    assert_ne!(c.master().id(), old);
    s.rest().await;
    let state = http.get_json("/state").await;
    assert_eq!(state["slaves"][0]["used_resources"]["cpus"], 4);
    assert_eq!(state["slaves"][0]["used_resources"]["cpuids"], "[4-7]");
    let mut info = framework("restart");
    info.id = Some(fid.clone());
    let mut back = http.subscribe(ContentType::Json, info).await;
    assert_eq!(subscribed_id(&back.next().await.unwrap()), fid);
    let offer = back.offers().await.remove(0);
    assert_eq!(
        resource(&offer, "cpus").scalar.as_ref().unwrap().value,
        28.0
    );
    let mut k = call_of(&fid, call::Type::Kill);
    k.kill = Some(call::Kill {
        task_id: retz_proto::mesos::TaskId {
            value: "long".into(),
        },
        ..Default::default()
    });
    assert_eq!(
        http.call(ContentType::Json, &back.stream_id, &k)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let killed = back.update().await;
    assert_eq!(killed.state, TaskState::TaskKilled as i32);
    http.call(ContentType::Json, &back.stream_id, &ack_call(&fid, &killed))
        .await;
    c.shutdown().await;
}
