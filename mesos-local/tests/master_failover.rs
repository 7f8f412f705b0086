//! Framework failover, TEARDOWN, dropped streams, client disconnects, master restarts and
//! agent deaths, over HTTP with simulated agents.

mod master_support;

use std::time::{Duration, Instant};

use hyper::StatusCode;
use master_support::*;
use retz_mesos_local::master::SimBehaviour;
use retz_proto::ContentType;
use retz_proto::mesos::{TaskState, task_status};
use retz_proto::scheduler::{call, event};

async fn wait_for(
    http: &Http,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = http.get_json("/state").await;
        if pred(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn resubscribe_fails_the_old_stream_over_and_keeps_the_id() {
    let m = master(Duration::from_secs(15)).await;
    sim_agents(&m, 1, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut old = http.subscribe(ContentType::Json, framework("fo")).await;
    let fid = subscribed_id(&old.next().await.unwrap());
    old.offers().await;
    let mut info = framework("fo");
    info.id = Some(fid.clone());
    let mut new = http.subscribe(ContentType::Json, info).await;
    assert_ne!(new.stream_id, old.stream_id);
    assert_eq!(subscribed_id(&new.next().await.unwrap()), fid);
    let rest = old.rest().await;
    let last = rest.last().expect("an ERROR before the end");
    assert_eq!(
        last.error.as_ref().unwrap().message,
        "Framework failed over"
    );
    // The discarded offer's resources come to the new stream.
    assert_eq!(new.offers().await.len(), 1);
    // The old stream id is stale.
    let r = http
        .call(
            ContentType::Json,
            &old.stream_id,
            &call_of(&fid, call::Type::Revive),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = http
        .call(
            ContentType::Json,
            &new.stream_id,
            &call_of(&fid, call::Type::Revive),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    m.shutdown().await;
}

#[tokio::test]
async fn teardown_then_resubscribe_is_refused() {
    let m = master(Duration::from_secs(15)).await;
    let agents = sim_agents(&m, 1, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut s = http.subscribe(ContentType::Json, framework("td")).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let o = s.offers().await.remove(0);
    let t = command_task("t", &o.agent_id, vec![scalar("cpus", 1.0)]);
    http.call(
        ContentType::Json,
        &s.stream_id,
        &accept_call(&fid, &[&o.id], vec![t], None),
    )
    .await;
    s.update().await;
    assert_eq!(agents[0].task_count(), 1);
    let r = http
        .call(
            ContentType::Json,
            &s.stream_id,
            &call_of(&fid, call::Type::Teardown),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    s.rest().await;
    assert_eq!(
        agents[0].task_count(),
        0,
        "the agent shut the framework down"
    );
    let state = http.get_json("/state").await;
    assert_eq!(state["frameworks"].as_array().unwrap().len(), 0);
    assert_eq!(state["completed_frameworks"][0]["id"], fid.value.as_str());
    assert_eq!(state["slaves"][0]["used_resources"]["cpus"], 0);
    let mut info = framework("td");
    info.id = Some(fid.clone());
    let mut again = http.subscribe(ContentType::Json, info).await;
    assert_eq!(again.status, StatusCode::OK);
    let events = again.rest().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].error.as_ref().unwrap().message,
        "Framework has been removed"
    );
    // Calls for a removed framework: it cannot be found.
    let r = http
        .call(
            ContentType::Json,
            &s.stream_id,
            &call_of(&fid, call::Type::Revive),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    m.shutdown().await;
}

#[tokio::test]
async fn dropped_stream_disconnects_and_failover_timeout_removes() {
    let m = master(Duration::from_secs(15)).await;
    sim_agents(&m, 1, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut info = framework("drop");
    info.failover_timeout = Some(0.3);
    let mut s = http.subscribe(ContentType::Json, info.clone()).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    assert!(m.drop_framework_stream(&fid).await.unwrap());
    s.rest().await;
    let state = http.get_json("/state").await;
    let fw = &state["frameworks"][0];
    assert_eq!(fw["connected"], false);
    assert_eq!(fw["active"], false);
    assert!(fw["offers"].as_array().unwrap().is_empty());
    // After its failover timeout the framework is removed for good.
    wait_for(&http, "framework removed", |s| {
        s["completed_frameworks"].as_array().unwrap().len() == 1
    })
    .await;
    info.id = Some(fid);
    let events = http.subscribe(ContentType::Json, info).await.rest().await;
    assert_eq!(
        events[0].error.as_ref().unwrap().message,
        "Framework has been removed"
    );
    m.shutdown().await;
}

#[tokio::test]
async fn client_going_away_disconnects_and_it_can_come_back() {
    let m = master(Duration::from_millis(100)).await;
    sim_agents(&m, 1, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut s = http.subscribe(ContentType::Json, framework("away")).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    s.offers().await;
    s.disconnect();
    wait_for(&http, "framework disconnected", |st| {
        st["frameworks"][0]["connected"] == false
    })
    .await;
    let mut info = framework("away");
    info.id = Some(fid.clone());
    let mut back = http.subscribe(ContentType::Json, info).await;
    assert_eq!(subscribed_id(&back.next().await.unwrap()), fid);
    assert_eq!(back.offers().await.len(), 1);
    m.shutdown().await;
}

#[tokio::test]
async fn master_restart_forgets_then_recovers_frameworks_that_resubscribe() {
    let m = master(Duration::from_secs(15)).await;
    let agents = sim_agents(&m, 1, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut s = http
        .subscribe(ContentType::Json, framework("restart"))
        .await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let o = s.offers().await.remove(0);
    let t = command_task("survivor", &o.agent_id, vec![scalar("cpus", 2.0)]);
    http.call(
        ContentType::Json,
        &s.stream_id,
        &accept_call(&fid, &[&o.id], vec![t], Some(0.0)),
    )
    .await;
    let running = s.update().await;
    http.call(ContentType::Json, &s.stream_id, &ack_call(&fid, &running))
        .await;
    let old_id = m.id();
    m.restart().await.unwrap();
    assert_ne!(m.id(), old_id);
    // The stream died with the old master.
    s.rest().await;
    let state = http.get_json("/state").await;
    assert_eq!(state["id"], m.id());
    // The agent re-registered with its running task; the framework is known only from it.
    assert_eq!(state["slaves"][0]["used_resources"]["cpus"], 2);
    assert_eq!(state["frameworks"][0]["recovered"], true);
    assert_eq!(state["frameworks"][0]["tasks"][0]["state"], "TASK_RUNNING");
    let mut info = framework("restart");
    info.id = Some(fid.clone());
    let mut back = http.subscribe(ContentType::Json, info).await;
    assert_eq!(subscribed_id(&back.next().await.unwrap()), fid);
    let offers = back.offers().await;
    assert_eq!(
        resource(&offers[0], "cpus").scalar.as_ref().unwrap().value,
        2.0
    );
    // The recovered task can be killed through the new master.
    let mut k = call_of(&fid, call::Type::Kill);
    k.kill = Some(call::Kill {
        task_id: running.task_id.clone(),
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
    // A framework id this master never saw is accepted too.
    let mut stranger = framework("stranger");
    stranger.id = Some(retz_proto::mesos::FrameworkId {
        value: format!("{old_id}-0042"),
    });
    let mut st = http.subscribe(ContentType::Json, stranger).await;
    assert_eq!(
        subscribed_id(&st.next().await.unwrap()).value,
        format!("{old_id}-0042")
    );
    let deadline = Instant::now() + PATIENCE;
    while agents[0].task_count() != 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    m.shutdown().await;
}

#[tokio::test]
async fn killed_agent_rescinds_offers_and_loses_tasks() {
    let m = master(Duration::from_secs(15)).await;
    let agents = sim_agents(&m, 2, SimBehaviour::default()).await;
    let http = Http::new(m.addr());
    let mut s = http
        .subscribe(ContentType::Json, framework("agent-death"))
        .await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let mut offers = Vec::new();
    while offers.len() < 2 {
        offers.extend(s.offers().await);
    }
    let doomed = agents[0].id().clone();
    let (on_doomed, other): (Vec<_>, Vec<_>) =
        offers.into_iter().partition(|o| o.agent_id == doomed);
    let t = command_task("t", &doomed, vec![scalar("cpus", 1.0)]);
    http.call(
        ContentType::Json,
        &s.stream_id,
        &accept_call(&fid, &[&on_doomed[0].id], vec![t], Some(100.0)),
    )
    .await;
    s.update().await;
    // Keep an offer of the doomed agent outstanding: revive to get the rest re-offered.
    http.call(
        ContentType::Json,
        &s.stream_id,
        &call_of(&fid, call::Type::Revive),
    )
    .await;
    let again = s.offers().await;
    let outstanding = again
        .iter()
        .find(|o| o.agent_id == doomed)
        .expect("doomed agent re-offered");
    assert!(m.remove_agent(&doomed).await.unwrap());
    let rescind = s.next_of(event::Type::Rescind).await;
    assert_eq!(rescind.rescind.unwrap().offer_id, outstanding.id);
    let lost = s.update().await;
    assert_eq!(lost.state, TaskState::TaskLost as i32);
    assert_eq!(lost.reason, Some(task_status::Reason::AgentRemoved as i32));
    assert!(lost.uuid.is_none());
    let f = s.next_of(event::Type::Failure).await.failure.unwrap();
    assert_eq!(f.agent_id.unwrap(), doomed);
    assert!(f.executor_id.is_none());
    let state = http.get_json("/state").await;
    assert_eq!(state["slaves"].as_array().unwrap().len(), 1);
    assert_ne!(other[0].agent_id, doomed);
    m.shutdown().await;
}
