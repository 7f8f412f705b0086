//! The other scheduler calls: status codes of calls on unknown or stale streams, and
//! RECONCILE, KILL, SHUTDOWN and MESSAGE (plus executor messages back).

use retz_proto::mesos::{AgentId, ExecutorId, FrameworkId, TaskId, TaskState, task_status};
use retz_proto::scheduler::call;

use crate::master::agent_link::AgentReport;
use crate::master::core::CallError;

use super::support::*;

#[test]
fn status_codes_of_calls() {
    let (mut c, now) = core();
    let s = subscribe(&mut c, framework_info(&[]), now);
    let mut unknown = s.call(call::Type::Revive);
    unknown.framework_id = Some(FrameworkId {
        value: "nope".into(),
    });
    assert_eq!(
        c.handle_call(call::Type::Revive, unknown, Some(&s.stream_id), now),
        Err(CallError::BadRequest("Framework cannot be found".into()))
    );
    let r = c.handle_call(
        call::Type::Revive,
        s.call(call::Type::Revive),
        Some("stale"),
        now,
    );
    assert!(matches!(r, Err(CallError::BadRequest(m)) if m.contains("didn't match")));
    let r = c.handle_call(call::Type::Revive, s.call(call::Type::Revive), None, now);
    assert!(matches!(r, Err(CallError::BadRequest(m)) if m.contains("Mesos-Stream-Id")));
    assert!(c.drop_stream(&s.fid, now));
    let r = c.handle_call(
        call::Type::Revive,
        s.call(call::Type::Revive),
        Some(&s.stream_id),
        now,
    );
    assert_eq!(
        r,
        Err(CallError::Forbidden("Framework is not subscribed".into()))
    );
}

#[test]
fn reconcile_kill_shutdown_message() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3));
    c.add_agent(agent.clone(), now).unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let o = s.offers().remove(0);
    accept(
        &mut c,
        &s,
        launch(
            &[&o.id.value],
            vec![command_task("t", "M-S0", vec![scalar("cpus", 1.0)])],
            None,
        ),
        now,
    );
    c.agent_report(agent_update("M-S0", &s.fid, "t", TaskState::TaskRunning, 1));
    s.updates();
    let mut r = s.call(call::Type::Reconcile);
    r.reconcile = Some(call::Reconcile::default());
    run(&mut c, &s, r, now).unwrap();
    let u = s.updates();
    assert_eq!(u.len(), 1);
    expect_master_update(
        &u[0],
        TaskState::TaskRunning,
        task_status::Reason::Reconciliation,
        "Latest task state",
    );
    let mut r = s.call(call::Type::Reconcile);
    r.reconcile = Some(call::Reconcile {
        tasks: vec![
            call::reconcile::Task {
                task_id: TaskId { value: "t".into() },
                agent_id: None,
            },
            call::reconcile::Task {
                task_id: TaskId {
                    value: "ghost".into(),
                },
                agent_id: Some(AgentId {
                    value: "M-S0".into(),
                }),
            },
        ],
    });
    run(&mut c, &s, r, now).unwrap();
    let u = s.updates();
    assert_eq!(u.len(), 2);
    assert_eq!(u[0].state, TaskState::TaskRunning as i32);
    expect_master_update(
        &u[1],
        TaskState::TaskLost,
        task_status::Reason::Reconciliation,
        "unknown",
    );
    let mut k = s.call(call::Type::Kill);
    k.kill = Some(call::Kill {
        task_id: TaskId { value: "t".into() },
        ..Default::default()
    });
    run(&mut c, &s, k, now).unwrap();
    let mut k = s.call(call::Type::Kill);
    k.kill = Some(call::Kill {
        task_id: TaskId {
            value: "ghost".into(),
        },
        ..Default::default()
    });
    run(&mut c, &s, k, now).unwrap();
    expect_master_update(
        &s.updates()[0],
        TaskState::TaskLost,
        task_status::Reason::Reconciliation,
        "unknown",
    );
    let mut sh = s.call(call::Type::Shutdown);
    sh.shutdown = Some(call::Shutdown {
        executor_id: ExecutorId { value: "e".into() },
        agent_id: AgentId {
            value: "M-S0".into(),
        },
    });
    run(&mut c, &s, sh, now).unwrap();
    let mut m = s.call(call::Type::Message);
    m.message = Some(call::Message {
        agent_id: AgentId {
            value: "M-S0".into(),
        },
        executor_id: ExecutorId { value: "e".into() },
        data: b"hi".to_vec(),
    });
    run(&mut c, &s, m, now).unwrap();
    assert_eq!(
        agent.calls(),
        vec!["launch t -", "kill t", "shutdown e", "message e hi"]
    );
    c.agent_report(AgentReport::FrameworkMessage {
        agent_id: AgentId {
            value: "M-S0".into(),
        },
        framework_id: FrameworkId {
            value: s.fid.clone(),
        },
        executor_id: ExecutorId { value: "e".into() },
        data: b"yo".to_vec(),
    });
    assert_eq!(s.events()[0].message.as_ref().unwrap().data, b"yo");
}
