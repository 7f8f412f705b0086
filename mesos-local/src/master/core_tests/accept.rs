//! ACCEPT: launching tasks books offered resources (cpus, cpuids, ports, executors) and
//! terminal updates release them; invalid offers and tasks get master-sourced updates;
//! LAUNCH_GROUP is validated as a whole.

use retz_proto::mesos::{
    AgentId, CommandInfo, ExecutorId, ExecutorInfo, FrameworkId, Offer, TaskGroupInfo, TaskInfo,
    TaskState, executor_info, framework_info, offer, task_status,
};

use crate::master::agent_link::AgentReport;

use super::support::*;

#[test]
fn accept_launches_and_books_resources_then_releases_on_terminal_update() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 4.0, 1024.0, (0, 7));
    c.add_agent(agent.clone(), now).unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let offer = s.offers().remove(0);
    let task = command_task(
        "t1",
        "M-S0",
        vec![
            scalar("cpus", 1.0),
            scalar("mem", 128.0),
            ranges("cpuids", 2, 3),
        ],
    );
    accept(
        &mut c,
        &s,
        launch(&[&offer.id.value], vec![task], Some(0.0)),
        now,
    );
    assert_eq!(agent.calls(), vec!["launch t1 -"]);
    c.check_invariants().unwrap();
    let a = &c.agents["M-S0"];
    assert_eq!(a.used.scalar("cpus"), Some(1.0));
    assert!(a.offered.is_empty());
    // With refuse_seconds 0 the rest is offered again at once, without cpus 2-3.
    c.allocate(now);
    let rest = s.offers();
    assert_eq!(rest.len(), 1);
    let cpuids = rest[0]
        .resources
        .iter()
        .find(|r| r.name == "cpuids")
        .unwrap();
    let runs: Vec<(u64, u64)> = cpuids
        .ranges
        .as_ref()
        .unwrap()
        .range
        .iter()
        .map(|r| (r.begin, r.end))
        .collect();
    assert_eq!(runs, vec![(0, 1), (4, 7)]);
    let cpus = rest[0].resources.iter().find(|r| r.name == "cpus").unwrap();
    assert_eq!(cpus.scalar.as_ref().unwrap().value, 3.0);
    // RUNNING, acknowledged; FINISHED releases, its ack completes the task.
    c.agent_report(agent_update(
        "M-S0",
        &s.fid,
        "t1",
        TaskState::TaskRunning,
        1,
    ));
    let u = s.updates();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].state, TaskState::TaskRunning as i32);
    assert_eq!(u[0].agent_id.as_ref().unwrap().value, "M-S0");
    run(&mut c, &s, ack(&s, "M-S0", "t1", 1), now).unwrap();
    c.agent_report(agent_update(
        "M-S0",
        &s.fid,
        "t1",
        TaskState::TaskFinished,
        2,
    ));
    assert_eq!(s.updates()[0].state, TaskState::TaskFinished as i32);
    assert!(c.agents["M-S0"].used.is_empty());
    assert!(c.frameworks[&s.fid].tasks.contains_key("t1"));
    run(&mut c, &s, ack(&s, "M-S0", "t1", 2), now).unwrap();
    assert!(!c.frameworks[&s.fid].tasks.contains_key("t1"));
    assert_eq!(c.frameworks[&s.fid].completed_tasks.len(), 1);
    assert_eq!(agent.calls()[1..], ["ack t1 16", "ack t1 16"]);
    assert_eq!(c.counters.acknowledgements, 2);
    c.check_invariants().unwrap();
}

/// The `ports` runs of the offers, merged over all of them.
fn offered_ports(offers: &[Offer]) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = offers
        .iter()
        .flat_map(|o| o.resources.iter())
        .filter(|r| r.name == "ports")
        .flat_map(|r| r.ranges.as_ref().unwrap().range.iter())
        .map(|r| (r.begin, r.end))
        .collect();
    runs.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (b, e) in runs {
        match merged.last_mut() {
            Some(last) if last.1 + 1 >= b => last.1 = last.1.max(e),
            _ => merged.push((b, e)),
        }
    }
    merged
}

#[test]
fn ports_are_booked_like_cpuids_never_twice_and_come_back_when_tasks_end() {
    let (mut c, now) = core();
    let agent = FakeAgent::with_ports("M-S0", 4.0, &[(31000, 32000)]);
    c.add_agent(agent.clone(), now).unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let offers = s.offers();
    assert_eq!(offered_ports(&offers), vec![(31000, 32000)]);
    let port_task = |id: &str, b: u64, e: u64| {
        command_task(id, "M-S0", vec![scalar("cpus", 1.0), ranges("ports", b, e)])
    };
    let tasks = vec![
        port_task("a", 31000, 31001),
        // 31001 went to "a" in this very ACCEPT
        port_task("b", 31001, 31001),
        // never offered
        port_task("c", 40000, 40000),
        port_task("d", 31999, 32001),
        port_task("e", 31002, 31002),
    ];
    accept(
        &mut c,
        &s,
        launch(&[&offers[0].id.value], tasks, Some(0.0)),
        now,
    );
    let u = s.updates();
    let refused: Vec<&str> = u.iter().map(|u| u.task_id.value.as_str()).collect();
    assert_eq!(refused, vec!["b", "c", "d"], "{u:#?}");
    for status in &u {
        expect_master_update(
            status,
            TaskState::TaskError,
            task_status::Reason::TaskInvalid,
            "more resources",
        );
    }
    assert_eq!(agent.calls(), vec!["launch a -", "launch e -"]);
    c.check_invariants().unwrap();
    // What is left is offered again, without the booked ports.
    c.allocate(now);
    let rest = s.offers();
    assert_eq!(offered_ports(&rest), vec![(31003, 32000)]);
    // A later attempt at a booked port is refused too.
    accept(
        &mut c,
        &s,
        launch(
            &[&rest[0].id.value],
            vec![port_task("f", 31000, 31000)],
            Some(0.0),
        ),
        now,
    );
    expect_master_update(
        &s.updates()[0],
        TaskState::TaskError,
        task_status::Reason::TaskInvalid,
        "more resources",
    );
    // "a" ends: its ports come back.
    c.agent_report(agent_update(
        "M-S0",
        &s.fid,
        "a",
        TaskState::TaskFinished,
        1,
    ));
    run(&mut c, &s, ack(&s, "M-S0", "a", 1), now).unwrap();
    c.allocate(now);
    let offers = s.offers();
    assert_eq!(offered_ports(&offers), vec![(31000, 31001), (31003, 32000)]);
    c.check_invariants().unwrap();
}

#[test]
fn invalid_accepts_answer_lost_or_dropped_without_uuid() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    c.add_agent(FakeAgent::new("M-S1", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let offers = s.offers();
    let t = || command_task("t", "M-S0", vec![scalar("cpus", 1.0)]);
    // Two agents in one ACCEPT.
    accept(
        &mut c,
        &s,
        launch(&[&offers[0].id.value, &offers[1].id.value], vec![t()], None),
        now,
    );
    let u = s.updates();
    expect_master_update(
        &u[0],
        TaskState::TaskLost,
        task_status::Reason::InvalidOffers,
        "one single agent",
    );
    // The valid offers went back (no filter): offered again.
    c.allocate(now);
    let offers = s.offers();
    assert_eq!(offers.len(), 2);
    // Duplicate offer id.
    accept(
        &mut c,
        &s,
        launch(&[&offers[0].id.value, &offers[0].id.value], vec![t()], None),
        now,
    );
    expect_master_update(
        &s.updates()[0],
        TaskState::TaskLost,
        task_status::Reason::InvalidOffers,
        "Duplicate offer",
    );
    // Unknown (already used) offer id.
    accept(&mut c, &s, launch(&["M-O999"], vec![t()], None), now);
    expect_master_update(
        &s.updates()[0],
        TaskState::TaskLost,
        task_status::Reason::InvalidOffers,
        "no longer valid",
    );
    c.check_invariants().unwrap();

    // PARTITION_AWARE frameworks get TASK_DROPPED.
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s = subscribe(
        &mut c,
        framework_info(&[framework_info::capability::Type::PartitionAware]),
        now,
    );
    let o = s.offers().remove(0);
    accept(&mut c, &s, launch(&[&o.id.value], vec![t()], None), now);
    assert!(s.updates().is_empty());
    accept(
        &mut c,
        &s,
        launch(
            &[&o.id.value],
            vec![command_task("t2", "M-S0", vec![scalar("cpus", 1.0)])],
            None,
        ),
        now,
    );
    expect_master_update(
        &s.updates()[0],
        TaskState::TaskDropped,
        task_status::Reason::InvalidOffers,
        "no longer valid",
    );
}

#[test]
fn invalid_tasks_answer_task_error() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3));
    c.add_agent(agent.clone(), now).unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let o = s.offers().remove(0);
    let mut both = command_task("both", "M-S0", vec![scalar("cpus", 0.5)]);
    both.executor = Some(ExecutorInfo {
        executor_id: ExecutorId { value: "e".into() },
        command: Some(CommandInfo::default()),
        ..Default::default()
    });
    let tasks = vec![
        command_task(
            "ok",
            "M-S0",
            vec![scalar("cpus", 1.0), ranges("cpuids", 0, 0)],
        ),
        command_task("too-big", "M-S0", vec![scalar("cpus", 8.0)]),
        command_task("outside", "M-S0", vec![ranges("cpuids", 3, 4)]),
        command_task("taken", "M-S0", vec![ranges("cpuids", 0, 1)]),
        command_task("ok", "M-S0", vec![scalar("cpus", 1.0)]),
        command_task("wrong-agent", "M-S1", vec![scalar("cpus", 1.0)]),
        command_task("bad/id", "M-S0", vec![scalar("cpus", 1.0)]),
        command_task("no-resources", "M-S0", vec![]),
        command_task("negative", "M-S0", vec![scalar("cpus", -1.0)]),
        both,
    ];
    accept(&mut c, &s, launch(&[&o.id.value], tasks, None), now);
    let u = s.updates();
    let expected = [
        ("too-big", "more resources"),
        ("outside", "more resources"),
        ("taken", "more resources"),
        ("ok", "duplicate ID"),
        ("wrong-agent", "invalid agent"),
        ("bad/id", "invalid characters"),
        ("no-resources", "no resources"),
        ("negative", "invalid resources"),
        ("both", "not both"),
    ];
    assert_eq!(u.len(), expected.len(), "{u:#?}");
    for (status, (id, msg)) in u.iter().zip(expected) {
        assert_eq!(status.task_id.value, id);
        expect_master_update(
            status,
            TaskState::TaskError,
            task_status::Reason::TaskInvalid,
            msg,
        );
    }
    assert_eq!(agent.calls(), vec!["launch ok -"]);
    c.check_invariants().unwrap();
}

#[test]
fn executor_resources_count_once_and_executor_info_must_match() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3));
    c.add_agent(agent.clone(), now).unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let o = s.offers().remove(0);
    let with_ex = |id: &str, ex: ExecutorInfo| {
        let mut t = command_task(id, "M-S0", vec![scalar("cpus", 1.0)]);
        t.command = None;
        t.executor = Some(ex);
        t
    };
    let tasks = vec![
        with_ex("a", custom_executor("e", 0.5)),
        with_ex("b", custom_executor("e", 0.5)),
        with_ex("c", custom_executor("e", 0.7)),
    ];
    accept(&mut c, &s, launch(&[&o.id.value], tasks, Some(0.0)), now);
    let u = s.updates();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].task_id.value, "c");
    expect_master_update(
        &u[0],
        TaskState::TaskError,
        task_status::Reason::TaskInvalid,
        "not compatible",
    );
    assert_eq!(agent.calls(), vec!["launch a e", "launch b e"]);
    assert_eq!(c.agents["M-S0"].used.scalar("cpus"), Some(2.5));
    // The next offer lists the running executor.
    c.allocate(now);
    let o = s.offers().remove(0);
    assert_eq!(o.executor_ids, vec![ExecutorId { value: "e".into() }]);
    // The executor's framework id is filled in.
    let fw = &c.frameworks[&s.fid];
    let ex = &fw.executors[&("M-S0".to_string(), "e".to_string())];
    assert_eq!(ex.info.framework_id.as_ref().unwrap().value, s.fid);
    // Executor exit frees its resources and sends FAILURE.
    c.agent_report(AgentReport::ExecutorExited {
        agent_id: AgentId {
            value: "M-S0".into(),
        },
        framework_id: FrameworkId {
            value: s.fid.clone(),
        },
        executor_id: ExecutorId { value: "e".into() },
        wait_status: 9,
    });
    let ev = s.events();
    let f = ev[0].failure.as_ref().unwrap();
    assert_eq!(f.executor_id.as_ref().unwrap().value, "e");
    assert_eq!(f.status, Some(9));
    assert_eq!(c.agents["M-S0"].used.scalar("cpus"), Some(2.0));
    c.check_invariants().unwrap();
}

#[test]
fn launch_group_validates_the_whole_group() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3));
    c.add_agent(agent.clone(), now).unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let o = s.offers().remove(0);
    let group_op = |ex: ExecutorInfo, tasks: Vec<TaskInfo>| offer::Operation {
        r#type: Some(offer::operation::Type::LaunchGroup as i32),
        launch_group: Some(offer::operation::LaunchGroup {
            executor: ex,
            task_group: TaskGroupInfo { tasks },
        }),
        ..Default::default()
    };
    let mut ex = custom_executor("g", 0.1);
    ex.r#type = Some(executor_info::Type::Custom as i32);
    // No disk: the whole group fails.
    let tasks = vec![
        command_task("g1", "M-S0", vec![scalar("cpus", 1.0)]),
        command_task("g2", "M-S0", vec![scalar("cpus", 1.0)]),
    ];
    let mut a = launch(&[&o.id.value], vec![], Some(0.0));
    a.operations = vec![group_op(ex.clone(), tasks.clone())];
    accept(&mut c, &s, a, now);
    let u = s.updates();
    assert_eq!(u.len(), 2);
    for st in &u {
        expect_master_update(
            st,
            TaskState::TaskError,
            task_status::Reason::TaskGroupInvalid,
            "disk",
        );
    }
    ex.resources.push(scalar("disk", 10.0));
    c.allocate(now);
    let o = s.offers().remove(0);
    let mut a = launch(&[&o.id.value], vec![], Some(0.0));
    a.operations = vec![group_op(ex, tasks)];
    accept(&mut c, &s, a, now);
    assert!(s.updates().is_empty());
    assert_eq!(agent.calls(), vec!["group g g1,g2"]);
    assert_eq!(c.agents["M-S0"].used.scalar("cpus"), Some(2.1));
    c.check_invariants().unwrap();
}
