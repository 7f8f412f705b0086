//! Agents joining and leaving: a removed agent rescinds its offers and loses its tasks;
//! a restarted master recovers frameworks, executors and tasks from the agents.

use retz_proto::mesos::{ExecutorId, FrameworkId, TaskState, TaskStatus, task_status};

use crate::master::agent_link::{AgentSnapshot, RunningExecutor, RunningTask};

use super::support::*;

#[test]
fn removed_agent_rescinds_offers_and_loses_tasks() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    c.add_agent(FakeAgent::new("M-S1", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let offers = s.offers();
    accept(
        &mut c,
        &s,
        launch(
            &[&offers[0].id.value],
            vec![command_task("t", "M-S0", vec![scalar("cpus", 1.0)])],
            None,
        ),
        now,
    );
    assert!(c.remove_agent("M-S1"));
    assert!(c.remove_agent("M-S0"));
    let ev = s.events();
    assert_eq!(ev[0].rescind.as_ref().unwrap().offer_id, offers[1].id);
    let lost: Vec<&TaskStatus> = ev
        .iter()
        .filter_map(|e| e.update.as_ref())
        .map(|u| &u.status)
        .collect();
    assert_eq!(lost.len(), 1);
    expect_master_update(
        lost[0],
        TaskState::TaskLost,
        task_status::Reason::AgentRemoved,
        "removed",
    );
    assert_eq!(ev.iter().filter(|e| e.failure.is_some()).count(), 2);
    c.check_invariants().unwrap();
}

#[test]
fn master_restart_recovers_from_agents_and_accepts_old_ids() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3));
    let mut info = framework_info(&[]);
    info.id = Some(FrameworkId {
        value: "old-0000".into(),
    });
    let task = command_task(
        "t",
        "M-S0",
        vec![scalar("cpus", 1.0), ranges("cpuids", 0, 0)],
    );
    *agent.snapshot.lock().unwrap() = AgentSnapshot {
        executors: vec![RunningExecutor {
            framework: info.clone(),
            info: custom_executor("e", 0.5),
        }],
        tasks: vec![RunningTask {
            framework: info.clone(),
            task,
            executor_id: Some(ExecutorId { value: "e".into() }),
            state: TaskState::TaskRunning,
        }],
    };
    c.add_agent(agent, now).unwrap();
    assert_eq!(c.agents["M-S0"].used.scalar("cpus"), Some(1.5));
    assert!(c.frameworks["old-0000"].recovered);
    c.check_invariants().unwrap();
    let mut s = subscribe(&mut c, info, now);
    assert_eq!(s.fid, "old-0000");
    let offers = s.offers();
    let cpus = offers[0]
        .resources
        .iter()
        .find(|r| r.name == "cpus")
        .unwrap();
    assert_eq!(cpus.scalar.as_ref().unwrap().value, 2.5);
    assert!(!c.frameworks["old-0000"].recovered);
    // A never-seen id is accepted too (the master may have failed over).
    let mut other = framework_info(&[]);
    other.id = Some(FrameworkId {
        value: "elsewhere-0007".into(),
    });
    let s2 = subscribe(&mut c, other, now);
    assert_eq!(s2.fid, "elsewhere-0007");
}
