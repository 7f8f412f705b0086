//! The executor API spoken over protobuf by the test itself on behalf of a real executor
//! process (`sleep`), so every step can be checked: SUBSCRIBE, queued LAUNCH, UPDATE
//! validation and ACKNOWLEDGED, MESSAGE both ways, KILL, SHUTDOWN, executor death,
//! stream loss and re-subscription.

mod agent_support;

use std::time::Duration;

use agent_support::*;
use retz_mesos_local::agent::{AgentReport, process};
use retz_proto::executor::{call, event};
use retz_proto::mesos::task_status::{Reason, Source};
use retz_proto::mesos::{TaskGroupInfo, TaskState};

/// An executor whose process only sleeps; the test speaks the protocol for it.
fn sleeper(id: &str) -> retz_proto::mesos::ExecutorInfo {
    executor_info(id, shell("env > env.txt; exec sleep 1000"))
}

#[tokio::test]
async fn subscribe_launch_update_ack_and_reuse() {
    let mut h = Harness::start().await;
    h.agent
        .launch(&framework(), Some(sleeper("e1")), vec![executor_task("t1")]);
    let pid = h.wait_pid("e1").await;
    assert!(h.agent.is_executor_running(&fid(), &eid("e1")));
    assert_eq!(h.agent.executor_ids(&fid()), vec![eid("e1")]);
    let http = h.http();

    // before SUBSCRIBE: 403 for UPDATE and MESSAGE, 202 for HEARTBEAT
    let r = http
        .call(&update_call(
            "e1",
            executor_status("t1", TaskState::TaskRunning),
        ))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("not subscribed"));
    let mut msg = base_call("e1", call::Type::Message);
    msg.message = Some(call::Message {
        data: b"x".to_vec(),
    });
    assert_eq!(http.call(&msg).await.status, 403);
    assert_eq!(
        http.call(&base_call("e1", call::Type::Heartbeat))
            .await
            .status,
        202
    );

    // SUBSCRIBE: SUBSCRIBED then the queued task
    let mut events = http.subscribe(&subscribe_call("e1")).await;
    let sub = events.expect(event::Type::Subscribed).await;
    let sub = sub.subscribed.unwrap();
    assert_eq!(sub.executor_info.executor_id.value, "e1");
    assert_eq!(sub.framework_info.id.unwrap().value, FID);
    assert_eq!(sub.agent_info.id.unwrap().value, "M-S0");
    assert_eq!(
        sub.agent_info.port,
        Some(i32::from(h.agent.endpoint().port()))
    );
    assert!(!sub.agent_info.resources.is_empty());
    let container = sub.container_id.unwrap().value;
    assert!(h.sandbox("e1").ends_with(&container));
    let launch = events.expect(event::Type::Launch).await;
    assert_eq!(launch.launch.unwrap().task.task_id.value, "t1");

    // UPDATE RUNNING: 202, ACKNOWLEDGED to the executor, forwarded to the master
    let running = executor_status("t1", TaskState::TaskRunning);
    let r = http.call(&update_call("e1", running.clone())).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let ack = events
        .expect(event::Type::Acknowledged)
        .await
        .acknowledged
        .unwrap();
    assert_eq!(ack.task_id.value, "t1");
    assert_eq!(Some(ack.uuid), running.uuid);
    let fwd = h.next_update().await;
    assert_eq!(fwd.state(), TaskState::TaskRunning);
    assert_eq!(fwd.source(), Source::Executor);
    assert_eq!(fwd.uuid, running.uuid);
    assert_eq!(fwd.agent_id.as_ref().unwrap().value, "M-S0");
    assert_eq!(fwd.executor_id.as_ref().unwrap().value, "e1");
    assert_eq!(
        fwd.container_status.as_ref().unwrap().executor_pid,
        Some(pid)
    );

    // FINISHED is acknowledged to the executor at once but reaches the master only
    // after the master acknowledged RUNNING.
    let finished = executor_status("t1", TaskState::TaskFinished);
    assert_eq!(
        http.call(&update_call("e1", finished.clone())).await.status,
        202
    );
    events.expect(event::Type::Acknowledged).await;
    // a duplicate (same uuid) is acknowledged again but not forwarded twice
    assert_eq!(
        http.call(&update_call("e1", finished.clone())).await.status,
        202
    );
    events.expect(event::Type::Acknowledged).await;
    // executor -> framework MESSAGE
    let mut msg = base_call("e1", call::Type::Message);
    msg.message = Some(call::Message {
        data: b"hi framework".to_vec(),
    });
    assert_eq!(http.call(&msg).await.status, 202);
    match h.next_event().await {
        AgentReport::FrameworkMessage {
            executor_id, data, ..
        } => {
            assert_eq!(executor_id.value, "e1");
            assert_eq!(data, b"hi framework");
        }
        other => panic!("expected the message first (FINISHED waits), got {other:?}"),
    }
    h.ack(&fwd);
    let fin = h.next_update().await;
    assert_eq!(fin.uuid, finished.uuid);
    h.ack(&fin);

    // framework -> executor MESSAGE
    h.agent
        .send_message(&fid(), &eid("e1"), b"hi executor".to_vec());
    let m = events.expect(event::Type::Message).await;
    assert_eq!(m.message.unwrap().data, b"hi executor");

    // reuse: a second task goes to the same process, on the same stream
    h.agent
        .launch(&framework(), Some(sleeper("e1")), vec![executor_task("t2")]);
    let launch = events.expect(event::Type::Launch).await;
    assert_eq!(launch.launch.unwrap().task.task_id.value, "t2");
    assert_eq!(h.agent.executor_pid(&fid(), &eid("e1")), Some(pid));

    // a task group goes as one LAUNCH_GROUP
    let group = TaskGroupInfo {
        tasks: vec![executor_task("g1"), executor_task("g2")],
    };
    h.agent.launch_group(&framework(), sleeper("e1"), group);
    let lg = events.expect(event::Type::LaunchGroup).await;
    let ids: Vec<String> = lg
        .launch_group
        .unwrap()
        .task_group
        .tasks
        .into_iter()
        .map(|t| t.task_id.value)
        .collect();
    assert_eq!(ids, vec!["g1", "g2"]);

    // KILL of a delivered task goes to the executor
    h.agent.kill_task(&fid(), &tid("t2"), None);
    let kill = events.expect(event::Type::Kill).await;
    assert_eq!(kill.kill.unwrap().task_id.value, "t2");

    // the environment of the executor
    let env = read_when_contains(&h.sandbox("e1").join("env.txt"), "LIBPROCESS_PORT").await;
    for needle in [
        "MESOS_FRAMEWORK_ID=M-0000\n",
        "MESOS_EXECUTOR_ID=e1\n",
        "MESOS_SLAVE_ID=M-S0\n",
        "MESOS_HTTP_COMMAND_EXECUTOR=0\n",
        "LIBPROCESS_PORT=0\n",
        &format!("MESOS_AGENT_ENDPOINT={}\n", h.agent.endpoint()),
        &format!("MESOS_SANDBOX={}\n", h.sandbox("e1").display()),
    ] {
        assert!(env.contains(needle), "{needle:?} not in\n{env}");
    }

    // /state lists the executor with its tasks and directory
    let state = h.agent.state_json();
    let ex = &state["frameworks"][0]["executors"][0];
    assert_eq!(ex["id"], "e1");
    assert_eq!(ex["container"], container.as_str());
    assert_eq!(ex["directory"], h.sandbox("e1").to_string_lossy().as_ref());
    let task_ids: Vec<&str> = ex["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(task_ids, vec!["g1", "g2", "t2"]);
    assert_eq!(ex["completed_tasks"][0]["id"], "t1");
    assert_eq!(ex["completed_tasks"][0]["state"], "TASK_FINISHED");
}

#[tokio::test]
async fn update_validation_and_status_codes() {
    let mut h = Harness::start().await;
    h.agent
        .launch(&framework(), Some(sleeper("v")), vec![executor_task("t")]);
    h.wait_pid("v").await;
    let http = h.http();
    let mut events = http.subscribe(&subscribe_call("v")).await;
    events.expect(event::Type::Subscribed).await;
    events.expect(event::Type::Launch).await;

    let bad = |mutate: &dyn Fn(&mut retz_proto::mesos::TaskStatus)| {
        let mut s = executor_status("t", TaskState::TaskRunning);
        mutate(&mut s);
        update_call("v", s)
    };
    let cases: Vec<(&str, retz_proto::executor::Call, u16, &str)> = vec![
        (
            "uuid as text",
            bad(&|s| s.uuid = Some(uuid::Uuid::new_v4().to_string().into_bytes())),
            400,
            "Invalid UUID",
        ),
        (
            "uuid version 0",
            bad(&|s| s.uuid = Some(vec![0; 16])),
            400,
            "Invalid UUID",
        ),
        ("no uuid", bad(&|s| s.uuid = None), 400, "uuid"),
        (
            "agent source",
            bad(&|s| s.source = Some(Source::Agent as i32)),
            400,
            "source",
        ),
        (
            "staging",
            bad(&|s| s.state = TaskState::TaskStaging as i32),
            400,
            "TASK_STAGING",
        ),
        (
            "executor id mismatch",
            bad(&|s| s.executor_id = Some(eid("other"))),
            400,
            "does not match",
        ),
        (
            "another executor (v's token)",
            update_call("nope", executor_status("t", TaskState::TaskRunning)),
            403,
            "This token authenticates executor 'v'",
        ),
        (
            "another framework (v's token)",
            {
                let mut c = update_call("v", executor_status("t", TaskState::TaskRunning));
                c.framework_id.value = "other".into();
                c
            },
            403,
            "not executor 'v' of framework 'other'",
        ),
        (
            "no update payload",
            base_call("v", call::Type::Update),
            400,
            "update",
        ),
    ];
    let bearer = format!("Bearer {}", h.token("v").await);
    for (what, c, code, needle) in cases {
        let r = http.call_as(&c, Some(&bearer)).await;
        assert_eq!(r.status.as_u16(), code, "{what}: {}", r.text());
        assert!(r.text().contains(needle), "{what}: {}", r.text());
    }
    // HEARTBEAT is 202 with the executor's token
    assert_eq!(
        http.call(&base_call("v", call::Type::Heartbeat))
            .await
            .status,
        202
    );
    // wire-level errors (authenticated: they come after the token check)
    let body = base_call("v", call::Type::Heartbeat);
    let post = |headers: Vec<(&'static str, &'static str)>, body: Vec<u8>| {
        let http = &http;
        let bearer = bearer.clone();
        async move {
            let mut headers: Vec<(&str, &str)> = headers;
            headers.push(("authorization", &bearer));
            http.send(http::Method::POST, "/api/v1/executor", &headers, body)
                .await
        }
    };
    use prost::Message as _;
    assert_eq!(post(vec![], body.encode_to_vec()).await.status, 400);
    assert_eq!(
        post(
            vec![("content-type", "application/json; charset=utf-8")],
            body.encode_to_vec()
        )
        .await
        .status,
        415
    );
    assert_eq!(
        post(
            vec![("content-type", "application/x-protobuf")],
            vec![0xff, 0xff, 0xff]
        )
        .await
        .status,
        400
    );
    assert_eq!(
        post(
            vec![("content-type", "application/json")],
            b"{not json".to_vec()
        )
        .await
        .status,
        400
    );
    assert_eq!(
        post(
            vec![
                ("content-type", "application/x-protobuf"),
                ("accept", "text/html")
            ],
            subscribe_call("v").encode_to_vec()
        )
        .await
        .status,
        406
    );
    assert_eq!(http.get("/api/v1/executor").await.status, 405);
    // JSON calls are understood too
    let json_hb = format!(
        r#"{{"executor_id":{{"value":"v"}},"framework_id":{{"value":"{FID}"}},"type":"HEARTBEAT"}}"#
    );
    assert_eq!(
        post(
            vec![("content-type", "application/json")],
            json_hb.into_bytes()
        )
        .await
        .status,
        202
    );
    // no status update reached the master through all of that
    assert!(h.rx.try_recv().is_err());
}

#[tokio::test]
async fn executor_death_fails_its_tasks() {
    let mut h = Harness::start().await;
    h.agent.launch(
        &framework(),
        Some(sleeper("d")),
        vec![executor_task("r"), executor_task("s")],
    );
    let pid = h.wait_pid("d").await;
    let http = h.http();
    let mut events = http.subscribe(&subscribe_call("d")).await;
    events.expect(event::Type::Subscribed).await;
    events.expect(event::Type::Launch).await;
    events.expect(event::Type::Launch).await;
    let running = executor_status("r", TaskState::TaskRunning);
    assert_eq!(http.call(&update_call("d", running)).await.status, 202);
    events.expect(event::Type::Acknowledged).await;
    h.expect_update("r", TaskState::TaskRunning).await;

    h.agent.kill_executor(&fid(), &eid("d"));
    let mut failed = Vec::new();
    for _ in 0..2 {
        let s = h.next_update().await;
        assert_eq!(s.state(), TaskState::TaskFailed);
        assert_eq!(s.source(), Source::Agent);
        assert_eq!(s.reason(), Reason::ExecutorTerminated);
        assert_eq!(s.message.as_deref(), Some("Executor terminated"));
        assert_eq!(s.executor_id.as_ref().unwrap().value, "d");
        h.ack(&s);
        failed.push(s.task_id.value);
    }
    failed.sort();
    assert_eq!(failed, vec!["r", "s"]);
    let ws = h.expect_exited("d").await;
    assert_eq!(ws & 0x7f, 9, "killed by SIGKILL");
    assert!(!process::group_alive(pid));
    assert!(!h.agent.is_executor_running(&fid(), &eid("d")));
    // the stream ended with the process
    if let Some(ev) = events.next().await {
        panic!("unexpected event after death: {ev:?}");
    }
    // the finished run stays in /state
    let state = h.agent.state_json();
    assert_eq!(state["frameworks"][0]["completed_executors"][0]["id"], "d");
}

#[tokio::test]
async fn shutdown_sends_shutdown_then_terminates() {
    let mut h = Harness::start_with(|c| {
        // long enough for the test to answer SHUTDOWN before SIGTERM comes
        c.executor_shutdown_grace_period = Duration::from_secs(3);
    })
    .await;
    h.agent
        .launch(&framework(), Some(sleeper("sd")), vec![executor_task("t")]);
    let pid = h.wait_pid("sd").await;
    let http = h.http();
    let mut events = http.subscribe(&subscribe_call("sd")).await;
    events.expect(event::Type::Subscribed).await;
    events.expect(event::Type::Launch).await;
    let killed = executor_status("t", TaskState::TaskKilled);
    h.agent.shutdown_executor(&fid(), &eid("sd"));
    events.expect(event::Type::Shutdown).await;
    // the executor reports its task killed, then ignores SHUTDOWN (it only sleeps):
    // SIGTERM after the grace period ends it
    assert_eq!(http.call(&update_call("sd", killed)).await.status, 202);
    h.expect_update("t", TaskState::TaskKilled).await;
    let ws = h.expect_exited("sd").await;
    assert_eq!(ws & 0x7f, 15, "ended by SIGTERM");
    assert!(!process::group_alive(pid));
    // a launch for a framework that was shut down is ignored
    h.agent.shutdown_framework(&fid());
    h.agent.launch(
        &framework(),
        Some(sleeper("sd")),
        vec![executor_task("late")],
    );
    assert!(h.agent.executor_pid(&fid(), &eid("sd")).is_none());
}

#[tokio::test]
async fn queued_task_killed_before_subscription() {
    let mut h = Harness::start_with(|c| {
        c.executor_shutdown_grace_period = Duration::from_millis(200);
    })
    .await;
    // a queued task killed before the executor subscribed: TASK_KILLED from the agent,
    // and the idle executor is shut down
    h.agent.launch(
        &framework(),
        Some(sleeper("q")),
        vec![executor_task("queued")],
    );
    let pid = h.wait_pid("q").await;
    h.agent.kill_task(&fid(), &tid("queued"), None);
    let killed = h.expect_update("queued", TaskState::TaskKilled).await;
    assert_eq!(killed.source(), Source::Agent);
    assert_eq!(killed.reason(), Reason::TaskKilledDuringLaunch);
    h.expect_exited("q").await;
    assert!(!process::group_alive(pid));
}

#[tokio::test]
async fn registration_timeout_kills_a_silent_executor() {
    let mut h = Harness::start_with(|c| {
        c.executor_registration_timeout = Duration::from_millis(300);
    })
    .await;
    h.agent.launch(
        &framework(),
        Some(sleeper("silent")),
        vec![executor_task("w")],
    );
    let failed = h.expect_update("w", TaskState::TaskFailed).await;
    assert_eq!(failed.reason(), Reason::ExecutorRegistrationTimeout);
    assert_eq!(failed.source(), Source::Agent);
    assert_eq!(
        failed.message.as_deref(),
        Some("Executor did not register within 300ms")
    );
    assert_eq!(h.expect_exited("silent").await & 0x7f, 9);
}

#[tokio::test]
async fn dropped_stream_and_resubscription() {
    let mut fw = framework();
    fw.checkpoint = Some(true);
    let mut h = Harness::start_with(|c| {
        c.executor_shutdown_grace_period = Duration::from_millis(300);
    })
    .await;
    h.agent
        .launch(&fw, Some(sleeper("re")), vec![executor_task("a")]);
    h.wait_pid("re").await;
    let http = h.http();
    let mut events = http.subscribe(&subscribe_call("re")).await;
    events.expect(event::Type::Subscribed).await;
    events.expect(event::Type::Launch).await;
    let env = read_when_contains(&h.sandbox("re").join("env.txt"), "LIBPROCESS_PORT").await;
    assert!(env.contains("MESOS_CHECKPOINT=1\n"), "{env}");

    h.agent.drop_executor_stream(&fid(), &eid("re"));
    assert!(events.next().await.is_none(), "the stream ends");
    // while disconnected, a new task is queued and a message is dropped
    h.agent
        .launch(&fw, Some(sleeper("re")), vec![executor_task("b")]);
    h.agent.send_message(&fid(), &eid("re"), b"lost".to_vec());
    // an UPDATE still works without a stream (the executor is subscribed)
    let running_b = executor_status("b", TaskState::TaskRunning);
    let unacked = executor_status("a", TaskState::TaskRunning);

    // re-subscribe with an unacknowledged update of `a`: the agent takes the update,
    // does not re-send `a` (the executor knows it) and delivers the queued `b`
    let mut sub = subscribe_call("re");
    sub.subscribe = Some(call::Subscribe {
        unacknowledged_tasks: vec![],
        unacknowledged_updates: vec![call::Update {
            status: unacked.clone(),
        }],
    });
    let mut events = http.subscribe(&sub).await;
    events.expect(event::Type::Subscribed).await;
    let l = events.expect(event::Type::Launch).await;
    assert_eq!(l.launch.unwrap().task.task_id.value, "b");
    let ack = events.expect(event::Type::Acknowledged).await;
    assert_eq!(Some(ack.acknowledged.unwrap().uuid), unacked.uuid);
    let fwd = h.expect_update("a", TaskState::TaskRunning).await;
    assert_eq!(fwd.uuid, unacked.uuid);
    assert_eq!(http.call(&update_call("re", running_b)).await.status, 202);
    events.expect(event::Type::Acknowledged).await;
    h.expect_update("b", TaskState::TaskRunning).await;

    // a task the executor never heard of is launched again after a re-subscription
    h.agent.drop_executor_stream(&fid(), &eid("re"));
    assert!(events.next().await.is_none());
    h.agent
        .launch(&fw, Some(sleeper("re")), vec![executor_task("c")]);
    let mut events = http.subscribe(&subscribe_call("re")).await;
    events.expect(event::Type::Subscribed).await;
    let l = events.expect(event::Type::Launch).await;
    assert_eq!(l.launch.unwrap().task.task_id.value, "c");
    h.agent.drop_executor_stream(&fid(), &eid("re"));
    assert!(events.next().await.is_none());
    let mut events = http.subscribe(&subscribe_call("re")).await;
    events.expect(event::Type::Subscribed).await;
    let l = events.expect(event::Type::Launch).await;
    assert_eq!(
        l.launch.unwrap().task.task_id.value,
        "c",
        "c is re-sent: the executor never acknowledged knowing it"
    );
    h.agent.stop().await;
    assert!(!h.agent.is_executor_running(&fid(), &eid("re")));
}

#[tokio::test]
async fn snapshot_of_what_runs_and_resend_on_reregistration() {
    let mut h = Harness::start().await;
    h.agent.launch(
        &framework(),
        Some(sleeper("snap")),
        vec![executor_task("queued")],
    );
    h.wait_pid("snap").await;
    let execs = h.agent.active_executors();
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].info.executor_id.value, "snap");
    assert_eq!(execs[0].framework.id.as_ref().unwrap().value, FID);
    let tasks = h.agent.active_tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].task.task_id.value, "queued");
    assert_eq!(tasks[0].state, TaskState::TaskStaging);
    assert_eq!(tasks[0].executor_id, Some(eid("snap")));

    let http = h.http();
    let mut events = http.subscribe(&subscribe_call("snap")).await;
    events.expect(event::Type::Subscribed).await;
    events.expect(event::Type::Launch).await;
    let running = executor_status("queued", TaskState::TaskRunning);
    assert_eq!(
        http.call(&update_call("snap", running.clone()))
            .await
            .status,
        202
    );
    let first = h.next_update().await;
    assert_eq!(first.uuid, running.uuid);
    assert_eq!(h.agent.active_tasks()[0].state, TaskState::TaskRunning);

    // a command task is listed without an executor
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("cmd", shell("exec sleep 1000"))],
    );
    let cmd_running = h.next_update().await;
    assert_eq!(cmd_running.task_id.value, "cmd");
    let tasks = h.agent.active_tasks();
    let cmd = tasks
        .iter()
        .find(|t| t.task.task_id.value == "cmd")
        .unwrap();
    assert_eq!(cmd.executor_id, None);
    assert_eq!(cmd.state, TaskState::TaskRunning);
    assert_eq!(
        h.agent.active_executors().len(),
        1,
        "command tasks are not executors"
    );

    // re-registration: both unacknowledged updates are sent again, same uuids
    h.agent.resend_unacknowledged();
    let mut again = [h.next_update().await, h.next_update().await];
    again.sort_by(|a, b| a.task_id.value.cmp(&b.task_id.value));
    assert_eq!(again[0].uuid, cmd_running.uuid);
    assert_eq!(again[1].uuid, first.uuid);
    h.agent.kill_agent().await;
}

#[tokio::test]
async fn executor_api_needs_the_executors_own_token() {
    let mut h = Harness::start().await;
    h.agent
        .launch(&framework(), Some(sleeper("e1")), vec![executor_task("t1")]);
    h.agent
        .launch(&framework(), Some(sleeper("e2")), vec![executor_task("t2")]);
    h.wait_pid("e1").await;
    h.wait_pid("e2").await;
    let t1 = h.token("e1").await;
    let t2 = h.token("e2").await;
    assert_ne!(t1, t2);
    assert!(t1.len() >= 32, "at least 128 bits: {t1}");
    // the executor got its token in its environment
    let env = read_when_contains(&h.sandbox("e1").join("env.txt"), "LIBPROCESS_PORT").await;
    assert!(
        env.contains(&format!("MESOS_EXECUTOR_AUTHENTICATION_TOKEN={t1}\n")),
        "{env}"
    );
    let http = h.http();
    let hb = base_call("e1", call::Type::Heartbeat);
    let sub = subscribe_call("e1");

    // no token, a wrong one, another scheme: 401 with the challenge, for every call type
    for auth in [
        None,
        Some("Bearer not-a-token".to_string()),
        Some(format!("Bearer {t1}x")),
        Some(format!("Basic {t1}")),
    ] {
        for c in [&hb, &sub] {
            let r = http.call_as(c, auth.as_deref()).await;
            assert_eq!(r.status, 401, "{auth:?}: {}", r.text());
            assert_eq!(
                r.headers.get("www-authenticate").unwrap(),
                "Bearer realm=\"mesos-agent-executor\""
            );
            assert_eq!(r.text().lines().count(), 1);
        }
    }
    // e2's token cannot act as e1: 403, nothing forwarded
    let e2 = format!("Bearer {t2}");
    let r = http.call_as(&sub, Some(&e2)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let upd = update_call("e1", executor_status("t1", TaskState::TaskRunning));
    let r = http.call_as(&upd, Some(&e2)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("not executor 'e1'"), "{}", r.text());
    assert!(
        h.rx.try_recv().is_err(),
        "a refused call reached the master"
    );

    // the right token works
    assert_eq!(http.call(&hb).await.status, 202);
    let mut events = http.subscribe(&sub).await;
    events.expect(event::Type::Subscribed).await;
    events.expect(event::Type::Launch).await;
    assert_eq!(http.call(&upd).await.status, 202);
    h.expect_update("t1", TaskState::TaskRunning).await;

    // a token dies with its executor
    h.agent.kill_executor(&fid(), &eid("e2"));
    wait_for(|| {
        h.agent
            .executor_token(&fid(), &eid("e2"))
            .is_none()
            .then_some(())
    })
    .await;
    let r = http
        .call_as(&base_call("e2", call::Type::Heartbeat), Some(&e2))
        .await;
    assert_eq!(r.status, 401, "{}", r.text());

    // a command task gets a token too, which opens no executor API for it
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("cmd", shell("env; exec sleep 1000"))],
    );
    let tc = h.token("cmd").await;
    let out = read_when_contains(&h.sandbox("cmd").join("stdout"), "LIBPROCESS_PORT").await;
    assert!(
        out.contains(&format!("MESOS_EXECUTOR_AUTHENTICATION_TOKEN={tc}\n")),
        "{out}"
    );
    let r = http
        .call_as(&subscribe_call("cmd"), Some(&format!("Bearer {tc}")))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("Executor cannot be found"),
        "{}",
        r.text()
    );
}
