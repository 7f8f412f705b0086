//! Unit tests of the state machine with simulated agents and virtual time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use retz_proto::ContentType;
use retz_proto::mesos::{
    AgentId, AgentInfo, CommandInfo, ExecutorId, ExecutorInfo, Filters, FrameworkId, FrameworkInfo,
    KillPolicy, MasterInfo, Offer, OfferId, Resource, TaskGroupInfo, TaskId, TaskInfo, TaskState,
    TaskStatus, executor_info, framework_info, offer, task_status, value,
};
use retz_proto::recordio::RecordDecoder;
use retz_proto::scheduler::{Call, Event, call, event};
use tokio::sync::mpsc;

use super::agent_link::{AgentLink, AgentReport, AgentSnapshot, RunningExecutor, RunningTask};
use super::core::{CallError, CallOutcome, Core, CoreConfig};
use super::validation::validate_call;

#[derive(Default)]
struct FakeAgent {
    info: AgentInfo,
    calls: Mutex<Vec<String>>,
    snapshot: Mutex<AgentSnapshot>,
}

impl FakeAgent {
    fn new(id: &str, cpus: f64, mem: f64, cpuids: (u64, u64)) -> Arc<FakeAgent> {
        Arc::new(FakeAgent {
            info: AgentInfo {
                hostname: format!("host-{id}"),
                port: Some(5051),
                id: Some(AgentId { value: id.into() }),
                resources: vec![
                    scalar("cpus", cpus),
                    scalar("mem", mem),
                    scalar("disk", 1000.0),
                    ranges("cpuids", cpuids.0, cpuids.1),
                ],
                ..Default::default()
            },
            ..Default::default()
        })
    }

    /// An agent that also offers `ports`.
    fn with_ports(id: &str, cpus: f64, ports: &[(u64, u64)]) -> Arc<FakeAgent> {
        let mut info = FakeAgent::new(id, cpus, 1024.0, (0, 3)).info.clone();
        info.resources.push(Resource {
            name: "ports".into(),
            r#type: value::Type::Ranges as i32,
            ranges: Some(value::Ranges {
                range: ports
                    .iter()
                    .map(|&(begin, end)| value::Range { begin, end })
                    .collect(),
            }),
            role: Some("*".into()),
            ..Default::default()
        });
        Arc::new(FakeAgent {
            info,
            ..Default::default()
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
}

impl AgentLink for FakeAgent {
    fn info(&self) -> AgentInfo {
        self.info.clone()
    }
    fn launch(&self, _fw: &FrameworkInfo, executor: Option<ExecutorInfo>, tasks: Vec<TaskInfo>) {
        for t in tasks {
            let ex = executor
                .as_ref()
                .map_or("-".to_string(), |e| e.executor_id.value.clone());
            self.log(format!("launch {} {}", t.task_id.value, ex));
        }
    }
    fn launch_group(&self, _fw: &FrameworkInfo, executor: ExecutorInfo, group: TaskGroupInfo) {
        let ids: Vec<String> = group
            .tasks
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect();
        self.log(format!(
            "group {} {}",
            executor.executor_id.value,
            ids.join(",")
        ));
    }
    fn kill_task(&self, _f: &FrameworkId, task_id: &TaskId, _k: Option<KillPolicy>) {
        self.log(format!("kill {}", task_id.value));
    }
    fn shutdown_executor(&self, _f: &FrameworkId, executor_id: &ExecutorId) {
        self.log(format!("shutdown {}", executor_id.value));
    }
    fn shutdown_framework(&self, framework_id: &FrameworkId) {
        self.log(format!("teardown {}", framework_id.value));
    }
    fn acknowledge(&self, _f: &FrameworkId, task_id: &TaskId, uuid: &[u8]) {
        self.log(format!("ack {} {}", task_id.value, uuid.len()));
    }
    fn send_message(&self, _f: &FrameworkId, executor_id: &ExecutorId, data: Vec<u8>) {
        self.log(format!(
            "message {} {}",
            executor_id.value,
            String::from_utf8_lossy(&data)
        ));
    }
    fn snapshot(&self) -> AgentSnapshot {
        self.snapshot.lock().unwrap().clone()
    }
}

fn scalar(name: &str, v: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: v }),
        ..Default::default()
    }
}

fn ranges(name: &str, b: u64, e: u64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: vec![value::Range { begin: b, end: e }],
        }),
        ..Default::default()
    }
}

fn core() -> (Core, Instant) {
    let now = Instant::now();
    let config = CoreConfig {
        master_id: "M".into(),
        master_info: MasterInfo {
            id: "M".into(),
            port: 5050,
            ..Default::default()
        },
        heartbeat_interval: Duration::from_secs(15),
        offer_timeout: None,
    };
    (Core::new(config, now), now)
}

struct Sched {
    fid: String,
    stream_id: String,
    rx: mpsc::UnboundedReceiver<bytes::Bytes>,
    decoder: RecordDecoder,
}

impl Sched {
    fn events(&mut self) -> Vec<Event> {
        while let Ok(b) = self.rx.try_recv() {
            self.decoder.push(&b);
        }
        let mut out = Vec::new();
        while let Some(r) = self.decoder.next_record().unwrap() {
            out.push(ContentType::Json.decode::<Event>(&r).unwrap());
        }
        out
    }

    fn offers(&mut self) -> Vec<Offer> {
        self.events()
            .into_iter()
            .filter_map(|e| e.offers)
            .flat_map(|o| o.offers)
            .collect()
    }

    fn updates(&mut self) -> Vec<TaskStatus> {
        self.events()
            .into_iter()
            .filter_map(|e| e.update)
            .map(|u| u.status)
            .collect()
    }

    fn call(&self, ty: call::Type) -> Call {
        Call {
            r#type: Some(ty as i32),
            framework_id: Some(FrameworkId {
                value: self.fid.clone(),
            }),
            ..Default::default()
        }
    }
}

fn framework_info(caps: &[framework_info::capability::Type]) -> FrameworkInfo {
    FrameworkInfo {
        user: "u".into(),
        name: "test".into(),
        failover_timeout: Some(60.0),
        capabilities: caps
            .iter()
            .map(|c| framework_info::Capability {
                r#type: Some(*c as i32),
            })
            .collect(),
        ..Default::default()
    }
}

fn subscribe_call(info: FrameworkInfo) -> Call {
    Call {
        r#type: Some(call::Type::Subscribe as i32),
        framework_id: info.id.clone(),
        subscribe: Some(call::Subscribe {
            framework_info: info,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn subscribe(c: &mut Core, info: FrameworkInfo, now: Instant) -> Sched {
    let call = subscribe_call(info);
    assert!(validate_call(&call).is_ok());
    let sub = c.subscribe(call, ContentType::Json, now);
    let mut s = Sched {
        fid: sub.framework_id.clone().unwrap_or_default(),
        stream_id: sub.stream_id,
        rx: sub.rx,
        decoder: RecordDecoder::default(),
    };
    if sub.framework_id.is_none() {
        s.fid.clear();
    }
    s
}

fn run(c: &mut Core, s: &Sched, call: Call, now: Instant) -> Result<CallOutcome, CallError> {
    let ty = validate_call(&call).map_err(CallError::BadRequest)?;
    c.handle_call(ty, call, Some(&s.stream_id), now)
}

fn command_task(id: &str, agent: &str, res: Vec<Resource>) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: AgentId {
            value: agent.into(),
        },
        resources: res,
        command: Some(CommandInfo {
            value: Some("true".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn launch(offer_ids: &[&str], tasks: Vec<TaskInfo>, refuse: Option<f64>) -> call::Accept {
    call::Accept {
        offer_ids: offer_ids
            .iter()
            .map(|o| OfferId {
                value: o.to_string(),
            })
            .collect(),
        operations: vec![offer::Operation {
            r#type: Some(offer::operation::Type::Launch as i32),
            launch: Some(offer::operation::Launch { task_infos: tasks }),
            ..Default::default()
        }],
        filters: refuse.map(|r| Filters {
            refuse_seconds: Some(r),
        }),
    }
}

fn accept(c: &mut Core, s: &Sched, a: call::Accept, now: Instant) {
    let mut call = s.call(call::Type::Accept);
    call.accept = Some(a);
    assert_eq!(run(c, s, call, now), Ok(CallOutcome::Accepted));
}

fn agent_update(agent: &str, fid: &str, task: &str, state: TaskState, uuid: u8) -> AgentReport {
    AgentReport::StatusUpdate {
        agent_id: AgentId {
            value: agent.into(),
        },
        framework_id: FrameworkId { value: fid.into() },
        status: TaskStatus {
            task_id: TaskId { value: task.into() },
            state: state as i32,
            source: Some(task_status::Source::Executor as i32),
            uuid: Some(vec![uuid; 16]),
            ..Default::default()
        },
    }
}

fn ack(s: &Sched, agent: &str, task: &str, uuid: u8) -> Call {
    let mut c = s.call(call::Type::Acknowledge);
    c.acknowledge = Some(call::Acknowledge {
        agent_id: AgentId {
            value: agent.into(),
        },
        task_id: TaskId { value: task.into() },
        uuid: vec![uuid; 16],
    });
    c
}

#[test]
fn subscribe_sends_subscribed_heartbeat_and_offers() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    assert_eq!(s.fid, "M-0000");
    let ev = s.events();
    assert_eq!(ev[0].r#type, Some(event::Type::Subscribed as i32));
    let sub = ev[0].subscribed.as_ref().unwrap();
    assert_eq!(sub.framework_id.value, "M-0000");
    assert_eq!(sub.heartbeat_interval_seconds, Some(15.0));
    assert_eq!(sub.master_info.as_ref().unwrap().id, "M");
    assert_eq!(ev[1].r#type, Some(event::Type::Heartbeat as i32));
    let offers = ev[2].offers.as_ref().unwrap();
    assert_eq!(offers.offers.len(), 1);
    let o = &offers.offers[0];
    assert_eq!(o.id.value, "M-O0");
    assert_eq!(o.agent_id.value, "M-S0");
    assert_eq!(o.hostname, "host-M-S0");
    // Old resource format: role "*", no allocation_info without MULTI_ROLE.
    assert!(o.resources.iter().all(|r| r.role.as_deref() == Some("*")));
    assert!(o.resources.iter().all(|r| r.allocation_info.is_none()));
    assert!(o.allocation_info.is_none());
    // No second offer while the first is outstanding and nothing else is free.
    c.allocate(now);
    assert!(s.offers().is_empty());
    c.check_invariants().unwrap();
    // A second framework id increments.
    let s2 = subscribe(&mut c, framework_info(&[]), now);
    assert_eq!(s2.fid, "M-0001");
}

#[test]
fn multi_role_offers_carry_allocation_info() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut info = framework_info(&[
        framework_info::capability::Type::MultiRole,
        framework_info::capability::Type::ReservationRefinement,
    ]);
    info.roles = vec!["batch".into()];
    let mut s = subscribe(&mut c, info, now);
    let o = s.offers().remove(0);
    assert_eq!(o.allocation_info.unwrap().role.as_deref(), Some("batch"));
    assert!(o.resources.iter().all(|r| r.role.is_none()));
    assert!(
        o.resources
            .iter()
            .all(|r| r.allocation_info.as_ref().unwrap().role.as_deref() == Some("batch"))
    );
}

#[test]
fn decline_filters_until_refuse_seconds_pass_and_revive_clears() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    c.add_agent(FakeAgent::new("M-S1", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let offers = s.offers();
    assert_eq!(offers.len(), 2);
    let mut d = s.call(call::Type::Decline);
    d.decline = Some(call::Decline {
        offer_ids: vec![offers[0].id.clone()],
        filters: Some(Filters {
            refuse_seconds: Some(10.0),
        }),
    });
    assert_eq!(run(&mut c, &s, d, now), Ok(CallOutcome::Accepted));
    c.allocate(now + Duration::from_secs(5));
    assert!(s.offers().is_empty(), "filtered for 10 s");
    c.allocate(now + Duration::from_secs(11));
    let again = s.offers();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].agent_id, offers[0].agent_id);
    // Decline with a long filter, then REVIVE clears it at once.
    let mut d = s.call(call::Type::Decline);
    d.decline = Some(call::Decline {
        offer_ids: vec![again[0].id.clone()],
        filters: Some(Filters {
            refuse_seconds: Some(1000.0),
        }),
    });
    run(&mut c, &s, d, now).unwrap();
    c.allocate(now + Duration::from_secs(12));
    assert!(s.offers().is_empty());
    run(
        &mut c,
        &s,
        s.call(call::Type::Revive),
        now + Duration::from_secs(12),
    )
    .unwrap();
    assert_eq!(s.offers().len(), 1);
    c.check_invariants().unwrap();
}

#[test]
fn suppress_stops_offers_until_revive() {
    let (mut c, now) = core();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    run(&mut c, &s, s.call(call::Type::Suppress), now).unwrap();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    c.allocate(now);
    assert!(s.offers().is_empty());
    run(&mut c, &s, s.call(call::Type::Revive), now).unwrap();
    assert_eq!(s.offers().len(), 1);
}

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

fn expect_master_update(u: &TaskStatus, state: TaskState, reason: task_status::Reason, msg: &str) {
    assert_eq!(u.state, state as i32, "{u:?}");
    assert_eq!(u.reason, Some(reason as i32), "{u:?}");
    assert_eq!(u.source, Some(task_status::Source::Master as i32));
    assert!(u.uuid.is_none(), "master updates carry no uuid");
    assert!(u.message.as_deref().unwrap_or("").contains(msg), "{u:?}");
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

fn custom_executor(id: &str, cpus: f64) -> ExecutorInfo {
    ExecutorInfo {
        executor_id: ExecutorId { value: id.into() },
        command: Some(CommandInfo {
            value: Some("./executor".into()),
            ..Default::default()
        }),
        resources: vec![scalar("cpus", cpus), scalar("mem", 32.0)],
        ..Default::default()
    }
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
fn failover_resubscribe_and_teardown() {
    let (mut c, now) = core();
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s1 = subscribe(&mut c, framework_info(&[]), now);
    assert_eq!(s1.offers().len(), 1);
    let mut info = framework_info(&[]);
    info.id = Some(FrameworkId {
        value: s1.fid.clone(),
    });
    info.user = "changed".into();
    let mut s2 = subscribe(&mut c, info.clone(), now);
    assert_eq!(s2.fid, s1.fid);
    assert_ne!(s2.stream_id, s1.stream_id);
    let old = s1.events();
    assert_eq!(
        old.last().unwrap().error.as_ref().unwrap().message,
        "Framework failed over"
    );
    // The old stream is closed (its sender dropped).
    assert!(s1.rx.try_recv().is_err());
    let ev = s2.events();
    assert_eq!(
        ev[0].subscribed.as_ref().unwrap().framework_id.value,
        s1.fid
    );
    // Outstanding offers were discarded and re-offered to the new stream.
    assert_eq!(ev.iter().filter(|e| e.offers.is_some()).count(), 1);
    assert_eq!(
        c.frameworks[&s1.fid].info.user, "u",
        "user changes are ignored"
    );
    // The old stream id is stale now.
    let r = c.handle_call(
        call::Type::Revive,
        s1.call(call::Type::Revive),
        Some(&s1.stream_id),
        now,
    );
    assert!(matches!(r, Err(CallError::BadRequest(_))));
    run(&mut c, &s2, s2.call(call::Type::Teardown), now).unwrap();
    assert!(c.frameworks.is_empty());
    let mut s3 = subscribe(&mut c, info, now);
    assert!(s3.fid.is_empty());
    let ev = s3.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0].error.as_ref().unwrap().message,
        "Framework has been removed"
    );
    c.check_invariants().unwrap();
}

#[test]
fn failover_timeout_removes_the_framework_and_kills_tasks() {
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
    c.stream_closed(&s.fid, &s.stream_id, now);
    assert!(!c.frameworks[&s.fid].connected());
    assert_eq!(c.next_deadline(), Some(now + Duration::from_secs(60)));
    c.on_timers(now + Duration::from_secs(59));
    assert!(c.frameworks.contains_key(&s.fid));
    c.on_timers(now + Duration::from_secs(60));
    assert!(!c.frameworks.contains_key(&s.fid));
    assert!(agent.calls().contains(&format!("teardown {}", s.fid)));
    assert!(c.agents["M-S0"].used.is_empty());
    let done = &c.completed_frameworks[0].completed_tasks[0];
    assert_eq!(done.state, TaskState::TaskKilled);
    c.check_invariants().unwrap();
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

#[test]
fn offer_timeout_rescinds() {
    let (mut c, now) = core();
    c.config.offer_timeout = Some(Duration::from_secs(30));
    c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 3)), now)
        .unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let o = s.offers().remove(0);
    assert_eq!(c.next_deadline(), Some(now + Duration::from_secs(30)));
    c.on_timers(now + Duration::from_secs(30));
    assert_eq!(s.events()[0].rescind.as_ref().unwrap().offer_id, o.id);
    assert!(c.offers.is_empty());
    c.check_invariants().unwrap();
}

#[test]
fn subscribe_errors_close_the_stream_with_one_error() {
    let (mut c, now) = core();
    let mut info = framework_info(&[]);
    info.roles = vec!["x".into()];
    let mut s = subscribe(&mut c, info, now);
    let ev = s.events();
    assert_eq!(ev.len(), 1);
    assert!(ev[0].error.as_ref().unwrap().message.contains("MULTI_ROLE"));
    assert!(c.frameworks.is_empty());
}

#[test]
fn update_framework_rules() {
    let (mut c, now) = core();
    let s = subscribe(&mut c, framework_info(&[]), now);
    let mut info = framework_info(&[]);
    info.id = Some(FrameworkId {
        value: s.fid.clone(),
    });
    info.name = "renamed".into();
    let mut u = s.call(call::Type::UpdateFramework);
    u.update_framework = Some(call::UpdateFramework {
        framework_info: info.clone(),
        suppressed_roles: vec![],
    });
    assert_eq!(run(&mut c, &s, u.clone(), now), Ok(CallOutcome::Ok));
    assert_eq!(c.frameworks[&s.fid].info.name, "renamed");
    info.user = "other".into();
    u.update_framework.as_mut().unwrap().framework_info = info;
    assert!(matches!(run(&mut c, &s, u, now), Err(CallError::BadRequest(m)) if m.contains("user")));
}

fn arb_task_cpus() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    proptest::collection::vec((0u8..4, 1u8..30, 0u8..8), 1..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever a framework asks for, bookkeeping stays consistent and an agent is never
    /// over-committed.
    #[test]
    fn bookkeeping_invariants_hold(steps in arb_task_cpus()) {
        let (mut c, now) = core();
        c.add_agent(FakeAgent::new("M-S0", 4.0, 1024.0, (0, 7)), now).unwrap();
        c.add_agent(FakeAgent::new("M-S1", 2.0, 512.0, (0, 3)), now).unwrap();
        let mut s = subscribe(&mut c, framework_info(&[]), now);
        let mut n = 0;
        let mut running: Vec<(String, String)> = Vec::new();
        for (action, tenths, cpu) in steps {
            c.allocate(now);
            let offers = s.offers();
            match action {
                0 | 1 => {
                    for o in offers {
                        n += 1;
                        let id = format!("t{n}");
                        let cpu = u64::from(cpu);
                        let t = command_task(&id, &o.agent_id.value, vec![
                            scalar("cpus", f64::from(tenths) / 10.0),
                            ranges("cpuids", cpu, cpu),
                        ]);
                        running.push((id, o.agent_id.value.clone()));
                        accept(&mut c, &s, launch(&[&o.id.value], vec![t], Some(0.0)), now);
                    }
                }
                2 => {
                    if let Some((id, agent)) = running.pop() {
                        c.agent_report(agent_update(&agent, &s.fid, &id, TaskState::TaskFinished, 7));
                        run(&mut c, &s, ack(&s, &agent, &id, 7), now).unwrap();
                    }
                }
                _ => {
                    let mut d = s.call(call::Type::Decline);
                    d.decline = Some(call::Decline {
                        offer_ids: offers.iter().map(|o| o.id.clone()).collect(),
                        filters: Some(Filters { refuse_seconds: Some(0.0) }),
                    });
                    run(&mut c, &s, d, now).unwrap();
                }
            }
            s.updates();
            prop_assert_eq!(c.check_invariants(), Ok(()));
        }
    }
}

#[test]
fn principals_own_their_frameworks() {
    let (mut c, now) = core();
    let mut info = framework_info(&[]);
    info.principal = Some("alice".into());
    // Without credentials nothing is checked.
    assert_eq!(
        c.authorize_subscribe(&subscribe_call(info.clone()), None),
        Ok(())
    );
    // FrameworkInfo.principal must be the authenticated one (absent is not).
    assert_eq!(
        c.authorize_subscribe(&subscribe_call(info.clone()), Some("alice")),
        Ok(())
    );
    let e = c
        .authorize_subscribe(&subscribe_call(info.clone()), Some("bob"))
        .unwrap_err();
    assert!(e.contains("'bob' does not match principal 'alice'"), "{e}");
    let mut anonymous = info.clone();
    anonymous.principal = None;
    assert!(
        c.authorize_subscribe(&subscribe_call(anonymous), Some("alice"))
            .is_err()
    );
    let s = subscribe(&mut c, info.clone(), now);
    // Bob cannot take alice's framework over by re-subscribing with its id, even when he
    // claims his own principal.
    let mut hijack = info;
    hijack.id = Some(FrameworkId {
        value: s.fid.clone(),
    });
    hijack.principal = Some("bob".into());
    let e = c
        .authorize_subscribe(&subscribe_call(hijack.clone()), Some("bob"))
        .unwrap_err();
    assert!(e.contains("belongs to principal 'alice'"), "{e}");
    hijack.principal = Some("alice".into());
    assert_eq!(
        c.authorize_subscribe(&subscribe_call(hijack), Some("alice")),
        Ok(())
    );
    // Other calls: only alice may act on alice's framework; an unknown framework is left
    // to the call's own 400.
    let kill = s.call(call::Type::Kill);
    assert_eq!(c.authorize_call(&kill, Some("alice")), Ok(()));
    assert_eq!(c.authorize_call(&kill, None), Ok(()));
    assert!(matches!(
        c.authorize_call(&kill, Some("bob")),
        Err(CallError::Forbidden(m)) if m.contains("'bob' does not match principal 'alice'")
    ));
    let mut unknown = kill;
    unknown.framework_id = Some(FrameworkId {
        value: "nope".into(),
    });
    assert_eq!(c.authorize_call(&unknown, Some("bob")), Ok(()));
}

#[test]
fn freed_resources_are_offered_at_once_declined_ones_wait_for_their_filter() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 1.0, 256.0, (0, 0));
    c.add_agent(agent, now).unwrap();
    let mut s = subscribe(&mut c, framework_info(&[]), now);
    let offer = s.offers().remove(0);
    let task = command_task(
        "t1",
        "M-S0",
        vec![
            scalar("cpus", 1.0),
            scalar("mem", 256.0),
            ranges("cpuids", 0, 0),
        ],
    );
    accept(
        &mut c,
        &s,
        launch(&[&offer.id.value], vec![task], Some(3600.0)),
        now,
    );
    // Nothing was freed: no round is wanted.
    assert!(!c.allocate_if_wanted(now));
    assert!(s.offers().is_empty());
    c.agent_report(agent_update(
        "M-S0",
        &s.fid,
        "t1",
        TaskState::TaskFinished,
        1,
    ));
    assert_eq!(s.updates()[0].state, TaskState::TaskFinished as i32);
    // The task's cpu comes back in an offer at the same instant, no interval passed.
    assert!(c.allocate_if_wanted(now));
    let again = s.offers();
    assert_eq!(again.len(), 1);
    let cpus = again[0]
        .resources
        .iter()
        .find(|r| r.name == "cpus")
        .unwrap();
    assert_eq!(cpus.scalar.as_ref().unwrap().value, 1.0);
    // Declined with a 10 s filter: no round until the filter expires.
    let mut d = s.call(call::Type::Decline);
    d.decline = Some(call::Decline {
        offer_ids: vec![again[0].id.clone()],
        filters: Some(Filters {
            refuse_seconds: Some(10.0),
        }),
    });
    run(&mut c, &s, d, now).unwrap();
    assert!(!c.allocate_if_wanted(now));
    assert!(s.offers().is_empty());
    let expiry = now + Duration::from_secs(10);
    assert_eq!(c.next_deadline(), Some(expiry));
    c.on_timers(now + Duration::from_secs(9));
    assert!(!c.allocate_if_wanted(now + Duration::from_secs(9)));
    c.on_timers(expiry);
    assert!(c.allocate_if_wanted(expiry));
    assert_eq!(s.offers().len(), 1);
    // The expired filter is gone: the timer does not fire again before the accept's
    // filter on the unused disk.
    assert!(c.next_deadline().is_some_and(|d| d > expiry));
    c.check_invariants().unwrap();
}

#[test]
fn an_executor_exit_frees_its_resources_at_once() {
    let (mut c, now) = core();
    let agent = FakeAgent::new("M-S0", 2.0, 512.0, (0, 1));
    c.add_agent(agent, now).unwrap();
    let mut s1 = subscribe(&mut c, framework_info(&[]), now);
    let offer = s1.offers().remove(0);
    let mut task = command_task("t1", "M-S0", vec![scalar("cpus", 1.0)]);
    task.command = None;
    task.executor = Some(custom_executor("e1", 1.0));
    accept(
        &mut c,
        &s1,
        launch(&[&offer.id.value], vec![task], Some(3600.0)),
        now,
    );
    let u = s1.updates();
    assert!(u.is_empty(), "{u:?}");
    assert_eq!(c.agents["M-S0"].used.scalar("cpus"), Some(2.0));
    assert!(!c.allocate_if_wanted(now));
    // A second framework gets no cpus until the first one's executor goes away.
    let mut s2 = subscribe(&mut c, framework_info(&[]), now);
    let cpus_of = |o: &Offer| {
        o.resources
            .iter()
            .find(|r| r.name == "cpus")
            .map_or(0.0, |r| r.scalar.as_ref().unwrap().value)
    };
    assert!(s2.offers().iter().all(|o| cpus_of(o) == 0.0));
    c.agent_report(agent_update(
        "M-S0",
        &s1.fid,
        "t1",
        TaskState::TaskFailed,
        1,
    ));
    c.agent_report(AgentReport::ExecutorExited {
        agent_id: AgentId {
            value: "M-S0".into(),
        },
        framework_id: FrameworkId {
            value: s1.fid.clone(),
        },
        executor_id: ExecutorId { value: "e1".into() },
        wait_status: 0,
    });
    assert!(c.allocate_if_wanted(now));
    let mut o = s1.offers();
    o.extend(s2.offers());
    assert_eq!(o.len(), 1);
    assert_eq!(cpus_of(&o[0]), 2.0, "the freed cpus are offered at once");
    c.check_invariants().unwrap();
}
