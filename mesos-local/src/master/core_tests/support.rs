//! Fixtures shared by the core tests: a fake agent that records what the master asks of
//! it, a core on virtual time, a subscribed scheduler that decodes its event stream, and
//! builders for calls, tasks and agent reports.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retz_proto::ContentType;
use retz_proto::mesos::{
    AgentId, AgentInfo, CommandInfo, ExecutorId, ExecutorInfo, Filters, FrameworkId, FrameworkInfo,
    KillPolicy, MasterInfo, Offer, OfferId, Resource, TaskGroupInfo, TaskId, TaskInfo, TaskState,
    TaskStatus, framework_info, offer, task_status, value,
};
use retz_proto::recordio::RecordDecoder;
use retz_proto::scheduler::{Call, Event, call};
use tokio::sync::mpsc;

use crate::master::agent_link::{AgentLink, AgentReport, AgentSnapshot};
use crate::master::core::{CallError, CallOutcome, Core, CoreConfig};
use crate::master::validation::validate_call;

#[derive(Default)]
pub(super) struct FakeAgent {
    pub(super) info: AgentInfo,
    pub(super) calls: Mutex<Vec<String>>,
    pub(super) snapshot: Mutex<AgentSnapshot>,
}

impl FakeAgent {
    pub(super) fn new(id: &str, cpus: f64, mem: f64, cpuids: (u64, u64)) -> Arc<FakeAgent> {
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
    pub(super) fn with_ports(id: &str, cpus: f64, ports: &[(u64, u64)]) -> Arc<FakeAgent> {
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

    pub(super) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub(super) fn log(&self, s: String) {
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

pub(super) fn scalar(name: &str, v: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: v }),
        ..Default::default()
    }
}

pub(super) fn ranges(name: &str, b: u64, e: u64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: vec![value::Range { begin: b, end: e }],
        }),
        ..Default::default()
    }
}

pub(super) fn core() -> (Core, Instant) {
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

pub(super) struct Sched {
    pub(super) fid: String,
    pub(super) stream_id: String,
    pub(super) rx: mpsc::UnboundedReceiver<bytes::Bytes>,
    pub(super) decoder: RecordDecoder,
}

impl Sched {
    pub(super) fn events(&mut self) -> Vec<Event> {
        while let Ok(b) = self.rx.try_recv() {
            self.decoder.push(&b);
        }
        let mut out = Vec::new();
        while let Some(r) = self.decoder.next_record().unwrap() {
            out.push(ContentType::Json.decode::<Event>(&r).unwrap());
        }
        out
    }

    pub(super) fn offers(&mut self) -> Vec<Offer> {
        self.events()
            .into_iter()
            .filter_map(|e| e.offers)
            .flat_map(|o| o.offers)
            .collect()
    }

    pub(super) fn updates(&mut self) -> Vec<TaskStatus> {
        self.events()
            .into_iter()
            .filter_map(|e| e.update)
            .map(|u| u.status)
            .collect()
    }

    pub(super) fn call(&self, ty: call::Type) -> Call {
        Call {
            r#type: Some(ty as i32),
            framework_id: Some(FrameworkId {
                value: self.fid.clone(),
            }),
            ..Default::default()
        }
    }
}

pub(super) fn framework_info(caps: &[framework_info::capability::Type]) -> FrameworkInfo {
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

pub(super) fn subscribe_call(info: FrameworkInfo) -> Call {
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

pub(super) fn subscribe(c: &mut Core, info: FrameworkInfo, now: Instant) -> Sched {
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

pub(super) fn run(
    c: &mut Core,
    s: &Sched,
    call: Call,
    now: Instant,
) -> Result<CallOutcome, CallError> {
    let ty = validate_call(&call).map_err(CallError::BadRequest)?;
    c.handle_call(ty, call, Some(&s.stream_id), now)
}

pub(super) fn command_task(id: &str, agent: &str, res: Vec<Resource>) -> TaskInfo {
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

pub(super) fn launch(
    offer_ids: &[&str],
    tasks: Vec<TaskInfo>,
    refuse: Option<f64>,
) -> call::Accept {
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

pub(super) fn accept(c: &mut Core, s: &Sched, a: call::Accept, now: Instant) {
    let mut call = s.call(call::Type::Accept);
    call.accept = Some(a);
    assert_eq!(run(c, s, call, now), Ok(CallOutcome::Accepted));
}

pub(super) fn agent_update(
    agent: &str,
    fid: &str,
    task: &str,
    state: TaskState,
    uuid: u8,
) -> AgentReport {
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

pub(super) fn ack(s: &Sched, agent: &str, task: &str, uuid: u8) -> Call {
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

pub(super) fn expect_master_update(
    u: &TaskStatus,
    state: TaskState,
    reason: task_status::Reason,
    msg: &str,
) {
    assert_eq!(u.state, state as i32, "{u:?}");
    assert_eq!(u.reason, Some(reason as i32), "{u:?}");
    assert_eq!(u.source, Some(task_status::Source::Master as i32));
    assert!(u.uuid.is_none(), "master updates carry no uuid");
    assert!(u.message.as_deref().unwrap_or("").contains(msg), "{u:?}");
}

pub(super) fn custom_executor(id: &str, cpus: f64) -> ExecutorInfo {
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
