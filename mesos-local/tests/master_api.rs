//! The scheduler API end to end over HTTP (JSON and protobuf) with simulated agents:
//! subscription, heartbeats, offers, filters, launches, acknowledgements, invalid
//! ACCEPTs, and the state endpoints.

mod master_support;

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use master_support::*;
use retz_mesos_local::master::SimBehaviour;
use retz_proto::ContentType;
use retz_proto::mesos::{TaskState, framework_info, task_status};
use retz_proto::scheduler::{call, event};

#[tokio::test]
async fn subscribe_json_gets_chunked_stream_subscribed_then_heartbeats() {
    let m = master(Duration::from_millis(200)).await;
    let http = Http::new(m.addr());
    let mut s = http.subscribe(ContentType::Json, framework("hb")).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.headers["transfer-encoding"], "chunked");
    assert!(!s.stream_id.is_empty() && s.stream_id.len() <= 128);
    let first = s.next().await.unwrap();
    assert_eq!(first.r#type, Some(event::Type::Subscribed as i32));
    let sub = first.subscribed.as_ref().unwrap();
    assert_eq!(sub.framework_id.value, format!("{}-0000", m.id()));
    assert_eq!(sub.heartbeat_interval_seconds, Some(0.2));
    let mi = sub.master_info.as_ref().unwrap();
    assert_eq!(mi.id, m.id());
    assert_eq!(mi.port, u32::from(m.addr().port()));
    // A heartbeat right after SUBSCRIBED, then periodic ones.
    assert_eq!(
        s.next().await.unwrap().r#type,
        Some(event::Type::Heartbeat as i32)
    );
    let start = Instant::now();
    s.next_of(event::Type::Heartbeat).await;
    s.next_of(event::Type::Heartbeat).await;
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "two intervals"
    );
    m.shutdown().await;
}

#[tokio::test]
async fn subscribe_protobuf_and_offers_carry_agent_resources() {
    let m = master(Duration::from_secs(15)).await;
    let agents = sim_agents(&m, 2, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut s = http.subscribe(ContentType::Protobuf, framework("pb")).await;
    assert_eq!(s.headers["content-type"], "application/x-protobuf");
    let fid = subscribed_id(&s.next().await.unwrap());
    assert_eq!(
        s.next().await.unwrap().r#type,
        Some(event::Type::Heartbeat as i32)
    );
    let mut offers = s.offers().await;
    offers.sort_by(|a, b| a.agent_id.value.cmp(&b.agent_id.value));
    assert_eq!(offers.len(), 2);
    for (o, a) in offers.iter().zip(&agents) {
        assert_eq!(&o.agent_id, a.id());
        assert_eq!(o.framework_id, fid);
        assert!(o.id.value.starts_with(&format!("{}-O", m.id())));
        assert_eq!(resource(o, "cpus").scalar.as_ref().unwrap().value, 4.0);
        assert_eq!(resource(o, "mem").scalar.as_ref().unwrap().value, 4096.0);
        let r = &resource(o, "cpuids").ranges.as_ref().unwrap().range;
        assert_eq!((r[0].begin, r[0].end), (0, 3));
        assert_eq!(resource(o, "numanodes").scalar.as_ref().unwrap().value, 1.0);
    }
    // Protobuf calls work on the same framework.
    let r = http
        .call(
            ContentType::Protobuf,
            &s.stream_id,
            &decline_call(&fid, &[&offers[0].id], 0.0),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    m.shutdown().await;
}

#[tokio::test]
async fn decline_refuse_seconds_keeps_the_agent_away_until_it_passes() {
    let m = master(Duration::from_secs(15)).await;
    sim_agents(&m, 2, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut s = http
        .subscribe(ContentType::Json, framework("decline"))
        .await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let mut offers = Vec::new();
    while offers.len() < 2 {
        offers.extend(s.offers().await);
    }
    let (a, b) = (&offers[0], &offers[1]);
    let declined_at = Instant::now();
    let r = http
        .call(
            ContentType::Json,
            &s.stream_id,
            &decline_call(&fid, &[&a.id], 1.5),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // Agent B is declined with no filter over and over; agent A comes back only after
    // its 1.5 s filter.
    let mut b_offers = 0;
    let mut pending_b = b.id.clone();
    loop {
        let r = http
            .call(
                ContentType::Json,
                &s.stream_id,
                &decline_call(&fid, &[&pending_b], 0.0),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let next = s.offers().await;
        if let Some(back) = next.iter().find(|o| o.agent_id == a.agent_id) {
            assert!(declined_at.elapsed() >= Duration::from_millis(1500));
            assert!(b_offers >= 1, "B was re-offered meanwhile");
            assert_ne!(back.id, a.id);
            break;
        }
        pending_b = next[0].id.clone();
        b_offers += 1;
    }
    m.shutdown().await;
}

#[tokio::test]
async fn command_task_runs_finishes_and_acknowledgements_flow() {
    let m = master(Duration::from_secs(15)).await;
    let agents = sim_agents(
        &m,
        1,
        SimBehaviour {
            run_for: Some(Duration::ZERO),
        },
    )
    .await;
    let http = Http::new(m.addr());
    let mut s = http.subscribe(ContentType::Json, framework("run")).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let offer = s.offers().await.remove(0);
    let task = command_task(
        "t1",
        &offer.agent_id,
        vec![scalar("cpus", 1.0), ranges("cpuids", 2, 2)],
    );
    let r = http
        .call(
            ContentType::Json,
            &s.stream_id,
            &accept_call(&fid, &[&offer.id], vec![task], Some(0.0)),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let running = s.update().await;
    assert_eq!(running.state, TaskState::TaskRunning as i32);
    assert_eq!(running.uuid.as_ref().unwrap().len(), 16);
    // The agent holds TASK_FINISHED until RUNNING is acknowledged; meanwhile the rest of
    // the agent is offered without cpu 2.
    let rest = s.offers().await.remove(0);
    assert_eq!(resource(&rest, "cpus").scalar.as_ref().unwrap().value, 3.0);
    let runs = &resource(&rest, "cpuids").ranges.as_ref().unwrap().range;
    assert_eq!(
        runs.iter().map(|r| (r.begin, r.end)).collect::<Vec<_>>(),
        vec![(0, 1), (3, 3)]
    );
    let state = http.get_json("/state").await;
    let used = &state["slaves"][0]["used_resources"];
    assert_eq!(used["cpus"], 1);
    assert_eq!(used["cpuids"], "[2-2]");
    assert_eq!(state["frameworks"][0]["tasks"][0]["state"], "TASK_RUNNING");
    let r = http
        .call(ContentType::Json, &s.stream_id, &ack_call(&fid, &running))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let finished = s.update().await;
    assert_eq!(finished.state, TaskState::TaskFinished as i32);
    let r = http
        .call(ContentType::Json, &s.stream_id, &ack_call(&fid, &finished))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // The task completes on the master; the agent forgets it.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = http.get_json("/state").await;
        let fw = &state["frameworks"][0];
        if fw["completed_tasks"].as_array().unwrap().len() == 1 {
            assert_eq!(fw["tasks"].as_array().unwrap().len(), 0);
            assert_eq!(fw["completed_tasks"][0]["state"], "TASK_FINISHED");
            assert_eq!(state["slaves"][0]["used_resources"]["cpus"], 0);
            break;
        }
        assert!(Instant::now() < deadline, "task never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = http.get_json("/metrics/snapshot").await;
    assert_eq!(metrics["master/messages_status_update_acknowledgement"], 2);
    assert_eq!(metrics["master/tasks_finished"], 1);
    assert_eq!(agents[0].task_count(), 0);
    assert_eq!(m.check_invariants().await.unwrap(), Ok(()));
    m.shutdown().await;
}

#[tokio::test]
async fn invalid_accepts_get_master_updates_without_uuid() {
    let m = master(Duration::from_secs(15)).await;
    sim_agents(&m, 2, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut s = http
        .subscribe(ContentType::Json, framework("bad-accept"))
        .await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let mut offers = Vec::new();
    while offers.len() < 2 {
        offers.extend(s.offers().await);
    }
    let agent = offers[0].agent_id.clone();
    let b_offer = offers.iter().find(|o| o.agent_id != agent).unwrap().clone();
    // Resources not in the offer: TASK_ERROR.
    let t = command_task("big", &agent, vec![scalar("cpus", 5.0)]);
    let r = http
        .call(
            ContentType::Json,
            &s.stream_id,
            &accept_call(&fid, &[&offers[0].id], vec![t], Some(0.0)),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let u = s.update().await;
    assert_eq!(u.state, TaskState::TaskError as i32);
    assert_eq!(u.reason, Some(task_status::Reason::TaskInvalid as i32));
    assert_eq!(u.source, Some(task_status::Source::Master as i32));
    assert!(u.uuid.is_none());
    assert!(u.message.unwrap().contains("more resources"));
    // A RANGES sub-range outside the offer too (the unused offer came back unfiltered).
    let o = s.offers().await.remove(0);
    assert_eq!(o.agent_id, agent);
    let t = command_task("range", &agent, vec![ranges("cpuids", 3, 4)]);
    http.call(
        ContentType::Json,
        &s.stream_id,
        &accept_call(&fid, &[&o.id], vec![t], Some(0.0)),
    )
    .await;
    let u = s.update().await;
    assert_eq!(u.state, TaskState::TaskError as i32);
    assert!(u.uuid.is_none());
    // Offers of two agents in one ACCEPT: TASK_LOST (not PARTITION_AWARE).
    let a_offer = s.offers().await.remove(0);
    let t = command_task("two", &agent, vec![scalar("cpus", 1.0)]);
    http.call(
        ContentType::Json,
        &s.stream_id,
        &accept_call(&fid, &[&a_offer.id, &b_offer.id], vec![t.clone()], None),
    )
    .await;
    let u = s.update().await;
    assert_eq!(u.state, TaskState::TaskLost as i32);
    assert_eq!(u.reason, Some(task_status::Reason::InvalidOffers as i32));
    assert!(u.uuid.is_none());
    assert!(u.message.unwrap().contains("one single agent"));
    let both = [a_offer, b_offer];
    // A reused offer id.
    http.call(
        ContentType::Json,
        &s.stream_id,
        &accept_call(&fid, &[&both[0].id], vec![t], None),
    )
    .await;
    let u = s.update().await;
    assert_eq!(u.state, TaskState::TaskLost as i32);
    assert!(u.message.unwrap().contains("no longer valid"));
    assert_eq!(m.check_invariants().await.unwrap(), Ok(()));
    m.shutdown().await;
}

#[tokio::test]
async fn partition_aware_frameworks_get_task_dropped() {
    let m = master(Duration::from_secs(15)).await;
    sim_agents(&m, 1, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let info = with_caps(
        framework("pa"),
        &[framework_info::capability::Type::PartitionAware],
    );
    let mut s = http.subscribe(ContentType::Json, info).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let o = s.offers().await.remove(0);
    let decline = decline_call(&fid, &[&o.id], 100.0);
    http.call(ContentType::Json, &s.stream_id, &decline).await;
    let t = command_task("late", &o.agent_id, vec![scalar("cpus", 1.0)]);
    http.call(
        ContentType::Json,
        &s.stream_id,
        &accept_call(&fid, &[&o.id], vec![t], None),
    )
    .await;
    let u = s.update().await;
    assert_eq!(u.state, TaskState::TaskDropped as i32);
    assert!(u.uuid.is_none());
    m.shutdown().await;
}

#[tokio::test]
async fn reconcile_kill_message_and_executor_failure_over_http() {
    let m = master(Duration::from_secs(15)).await;
    let agents = sim_agents(&m, 1, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut s = http.subscribe(ContentType::Json, framework("misc")).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let o = s.offers().await.remove(0);
    let mut t = command_task("svc", &o.agent_id, vec![scalar("cpus", 1.0)]);
    t.command = None;
    t.executor = Some(retz_proto::mesos::ExecutorInfo {
        executor_id: retz_proto::mesos::ExecutorId { value: "ex".into() },
        command: Some(retz_proto::mesos::CommandInfo {
            value: Some("./ex".into()),
            ..Default::default()
        }),
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        ..Default::default()
    });
    http.call(
        ContentType::Json,
        &s.stream_id,
        &accept_call(&fid, &[&o.id], vec![t], None),
    )
    .await;
    let running = s.update().await;
    http.call(ContentType::Json, &s.stream_id, &ack_call(&fid, &running))
        .await;
    // Implicit reconciliation: the latest state from the master, no uuid.
    let mut r = call_of(&fid, call::Type::Reconcile);
    r.reconcile = Some(call::Reconcile::default());
    assert_eq!(
        http.call(ContentType::Json, &s.stream_id, &r).await.status,
        StatusCode::ACCEPTED
    );
    let u = s.update().await;
    assert_eq!(u.state, TaskState::TaskRunning as i32);
    assert_eq!(u.reason, Some(task_status::Reason::Reconciliation as i32));
    assert!(u.uuid.is_none());
    // MESSAGE to the executor; the simulated executor echoes it.
    let mut msg = call_of(&fid, call::Type::Message);
    msg.message = Some(call::Message {
        agent_id: o.agent_id.clone(),
        executor_id: retz_proto::mesos::ExecutorId { value: "ex".into() },
        data: b"ping".to_vec(),
    });
    http.call(ContentType::Json, &s.stream_id, &msg).await;
    let e = s.next_of(event::Type::Message).await;
    assert_eq!(e.message.unwrap().data, b"ping");
    // The executor dies: TASK_FAILED from the agent (with uuid), then FAILURE.
    assert!(agents[0].kill_executor(&fid, &retz_proto::mesos::ExecutorId { value: "ex".into() }));
    let u = s.update().await;
    assert_eq!(u.state, TaskState::TaskFailed as i32);
    assert_eq!(
        u.reason,
        Some(task_status::Reason::ExecutorTerminated as i32)
    );
    assert!(u.uuid.is_some());
    let f = s.next_of(event::Type::Failure).await.failure.unwrap();
    assert_eq!(f.executor_id.unwrap().value, "ex");
    // KILL of an unknown task: reconciliation says TASK_LOST.
    let mut k = call_of(&fid, call::Type::Kill);
    k.kill = Some(call::Kill {
        task_id: retz_proto::mesos::TaskId {
            value: "ghost".into(),
        },
        ..Default::default()
    });
    http.call(ContentType::Json, &s.stream_id, &k).await;
    let u = s.update().await;
    assert_eq!(u.task_id.value, "ghost");
    assert_eq!(u.state, TaskState::TaskLost as i32);
    m.shutdown().await;
}

#[tokio::test]
async fn version_state_and_summary_shapes() {
    let m = master(Duration::from_secs(15)).await;
    sim_agents(&m, 2, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut s = http.subscribe(ContentType::Json, framework("shapes")).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let v = http.get_json("/version").await;
    assert_eq!(v["version"], "1.11.0");
    let state = http.get_json("/state").await;
    assert_eq!(http.get_json("/master/state").await["id"], state["id"]);
    for key in [
        "version",
        "git_sha",
        "build_date",
        "build_time",
        "build_user",
        "start_time",
        "elected_time",
        "id",
        "pid",
        "hostname",
        "capabilities",
        "activated_slaves",
        "deactivated_slaves",
        "unreachable_slaves",
        "leader",
        "leader_info",
        "flags",
        "slaves",
        "recovered_slaves",
        "frameworks",
        "completed_frameworks",
        "orphan_tasks",
        "unregistered_frameworks",
    ] {
        assert!(state.get(key).is_some(), "/state lacks {key}");
    }
    assert_eq!(state["id"], m.id());
    assert_eq!(state["activated_slaves"], 2);
    let slave = &state["slaves"][0];
    for key in [
        "id",
        "hostname",
        "port",
        "attributes",
        "pid",
        "registered_time",
        "resources",
        "used_resources",
        "offered_resources",
        "reserved_resources",
        "unreserved_resources",
        "active",
        "version",
        "capabilities",
    ] {
        assert!(slave.get(key).is_some(), "slave lacks {key}");
    }
    assert_eq!(slave["resources"]["cpus"], 4);
    assert_eq!(slave["resources"]["gpus"], 0);
    assert_eq!(slave["resources"]["cpuids"], "[0-3]");
    let fw = &state["frameworks"][0];
    for key in [
        "id",
        "name",
        "used_resources",
        "offered_resources",
        "capabilities",
        "hostname",
        "webui_url",
        "active",
        "connected",
        "recovered",
        "user",
        "failover_timeout",
        "checkpoint",
        "registered_time",
        "resources",
        "role",
        "tasks",
        "unreachable_tasks",
        "completed_tasks",
        "offers",
        "executors",
        "offer_constraints",
    ] {
        assert!(fw.get(key).is_some(), "framework lacks {key}");
    }
    assert_eq!(fw["id"], fid.value.as_str());
    assert_eq!(fw["active"], true);
    assert_eq!(fw["role"], "*");
    // Offers are outstanding, listed with the framework.
    s.offers().await;
    let state = http.get_json("/state").await;
    assert!(
        !state["frameworks"][0]["offers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let summary = http.get_json("/state-summary").await;
    assert_eq!(summary["cluster"], "retz-mesos-local");
    assert_eq!(summary["slaves"].as_array().unwrap().len(), 2);
    assert!(summary["slaves"][0].get("TASK_RUNNING").is_some());
    assert!(summary["frameworks"][0].get("slave_ids").is_some());
    let r = http.request(Method::GET, "/health", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::OK);
    m.shutdown().await;
}
