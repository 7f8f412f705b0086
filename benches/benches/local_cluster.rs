//! Benches of the embedded local cluster's master, over its real HTTP API:
//!
//! * `local_cluster/offer_cycle/1000_agents/{json,protobuf}`: one framework, 1,000
//!   simulated agents (no processes). One cycle = DECLINE of all 1,000 outstanding offers
//!   (refuse_seconds 0) + REVIVE, then the allocation round over 1,000 agents, and the
//!   OFFERS event with 1,000 offers streamed and decoded by the framework.
//! * `local_cluster/launch_latency/sim_agent`: ACCEPT sent -> TASK_RUNNING received with a
//!   simulated agent (the master's own overhead).
//! * `local_cluster/launch_latency/command_task`: ACCEPT sent -> TASK_RUNNING received
//!   with a real agent starting a trivial command task (`true`) as a process.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use retz_mesos_local::cluster::{AgentSpec, ClusterConfig, LocalCluster};
use retz_mesos_local::master::{Master, MasterConfig, SimAgent, SimBehaviour};
use retz_proto::ContentType;
use retz_proto::mesos::{
    AgentInfo, CommandInfo, Filters, FrameworkId, FrameworkInfo, Offer, OfferId, Resource, TaskId,
    TaskInfo, TaskState, TaskStatus, offer, value,
};
use retz_proto::recordio::RecordDecoder;
use retz_proto::scheduler::{Call, Event, call, event};
use retz_topology::TopologySource;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

struct Framework {
    client: Client<HttpConnector, Full<Bytes>>,
    url: String,
    ct: ContentType,
    stream_id: String,
    id: FrameworkId,
    events: mpsc::UnboundedReceiver<Event>,
    /// Events received while waiting for another type.
    pending: VecDeque<Event>,
}

impl Framework {
    async fn subscribe(addr: SocketAddr, ct: ContentType) -> Framework {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let url = format!("http://{addr}/api/v1/scheduler");
        let c = Call {
            r#type: Some(call::Type::Subscribe as i32),
            subscribe: Some(call::Subscribe {
                framework_info: FrameworkInfo {
                    user: "bench".into(),
                    name: "bench".into(),
                    failover_timeout: Some(3600.0),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header("Content-Type", ct.mime())
            .header("Accept", ct.mime())
            .body(Full::new(Bytes::from(ct.encode(&c))))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let stream_id = resp.headers()["Mesos-Stream-Id"]
            .to_str()
            .unwrap()
            .to_string();
        let (tx, events) = mpsc::unbounded_channel();
        let mut body = resp.into_body();
        tokio::spawn(async move {
            let mut decoder = RecordDecoder::default();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                decoder.push(&data);
                while let Ok(Some(record)) = decoder.next_record() {
                    let Ok(ev) = ct.decode::<Event>(&record) else {
                        return;
                    };
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        });
        let mut fw = Framework {
            client,
            url,
            ct,
            stream_id,
            id: FrameworkId::default(),
            events,
            pending: VecDeque::new(),
        };
        let first = fw.next_of(event::Type::Subscribed).await;
        fw.id = first.subscribed.unwrap().framework_id;
        fw
    }

    /// The next event of type `ty`; events of other types are kept for later, except
    /// heartbeats.
    async fn next_of(&mut self, ty: event::Type) -> Event {
        if let Some(pos) = self
            .pending
            .iter()
            .position(|e| e.r#type == Some(ty as i32))
        {
            return self.pending.remove(pos).unwrap();
        }
        loop {
            let e = tokio::time::timeout(Duration::from_secs(60), self.events.recv())
                .await
                .expect("event in time")
                .expect("stream open");
            if e.r#type == Some(ty as i32) {
                return e;
            }
            if e.r#type != Some(event::Type::Heartbeat as i32) {
                self.pending.push_back(e);
            }
        }
    }

    async fn offers(&mut self) -> Vec<Offer> {
        self.next_of(event::Type::Offers)
            .await
            .offers
            .unwrap()
            .offers
    }

    /// Every offer received so far (at least one event's worth).
    async fn all_offers(&mut self) -> Vec<Offer> {
        let mut offers = self.offers().await;
        while let Ok(e) = self.events.try_recv() {
            self.pending.push_back(e);
        }
        let (more, rest): (Vec<Event>, Vec<Event>) = self
            .pending
            .drain(..)
            .partition(|e| e.r#type == Some(event::Type::Offers as i32));
        self.pending.extend(rest);
        offers.extend(more.into_iter().flat_map(|e| e.offers.unwrap().offers));
        offers
    }

    async fn update(&mut self) -> TaskStatus {
        self.next_of(event::Type::Update)
            .await
            .update
            .unwrap()
            .status
    }

    fn call(&self, ty: call::Type) -> Call {
        Call {
            r#type: Some(ty as i32),
            framework_id: Some(self.id.clone()),
            ..Default::default()
        }
    }

    async fn send(&self, c: &Call) {
        let req = Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header("Content-Type", self.ct.mime())
            .header("Mesos-Stream-Id", &self.stream_id)
            .body(Full::new(Bytes::from(self.ct.encode(c))))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    async fn decline_all(&self, offers: &[Offer]) {
        let mut c = self.call(call::Type::Decline);
        c.decline = Some(call::Decline {
            offer_ids: offers.iter().map(|o| o.id.clone()).collect(),
            filters: Some(Filters {
                refuse_seconds: Some(0.0),
            }),
        });
        self.send(&c).await;
    }

    async fn launch(&self, offer: &OfferId, task: TaskInfo) {
        let mut c = self.call(call::Type::Accept);
        c.accept = Some(call::Accept {
            offer_ids: vec![offer.clone()],
            operations: vec![offer::Operation {
                r#type: Some(offer::operation::Type::Launch as i32),
                launch: Some(offer::operation::Launch {
                    task_infos: vec![task],
                }),
                ..Default::default()
            }],
            filters: Some(Filters {
                refuse_seconds: Some(0.0),
            }),
        });
        self.send(&c).await;
    }

    async fn ack(&self, s: &TaskStatus) {
        let mut c = self.call(call::Type::Acknowledge);
        c.acknowledge = Some(call::Acknowledge {
            agent_id: s.agent_id.clone().unwrap(),
            task_id: s.task_id.clone(),
            uuid: s.uuid.clone().unwrap(),
        });
        self.send(&c).await;
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

fn sim_resources() -> Vec<Resource> {
    vec![
        scalar("cpus", 16.0),
        scalar("mem", 65536.0),
        scalar("disk", 100_000.0),
        Resource {
            name: "cpuids".into(),
            r#type: value::Type::Ranges as i32,
            ranges: Some(value::Ranges {
                range: vec![value::Range { begin: 0, end: 15 }],
            }),
            ..Default::default()
        },
        scalar("numanodes", 2.0),
    ]
}

async fn master_with_sim_agents(
    n: usize,
    behaviour: SimBehaviour,
    allocation_interval: Duration,
) -> Master {
    let m = Master::start(MasterConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        allocation_interval,
        heartbeat_interval: Duration::from_secs(3600),
        ..MasterConfig::default()
    })
    .await
    .unwrap();
    for i in 0..n {
        let info = AgentInfo {
            hostname: format!("sim-{i}"),
            port: Some(5051),
            id: Some(m.agent_id(i)),
            resources: sim_resources(),
            ..Default::default()
        };
        m.add_agent(Arc::new(SimAgent::new(
            info,
            m.reporter(),
            behaviour.clone(),
        )))
        .await
        .unwrap();
    }
    m
}

fn offer_cycle(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("local_cluster/offer_cycle");
    group.sample_size(20);
    for ct in [ContentType::Json, ContentType::Protobuf] {
        let name = match ct {
            ContentType::Json => "1000_agents/json",
            ContentType::Protobuf => "1000_agents/protobuf",
        };
        let (m, mut fw) = rt.block_on(async {
            // Allocation happens on REVIVE only, not on the clock.
            let m =
                master_with_sim_agents(1000, SimBehaviour::default(), Duration::from_secs(3600))
                    .await;
            let mut fw = Framework::subscribe(m.addr(), ct).await;
            let mut outstanding = Vec::new();
            while outstanding.len() < 1000 {
                outstanding.extend(fw.offers().await);
            }
            fw.decline_all(&outstanding).await;
            (m, fw)
        });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let fw = &mut fw;
                    let start = Instant::now();
                    for _ in 0..iters {
                        fw.send(&fw.call(call::Type::Revive)).await;
                        let offers = fw.offers().await;
                        assert_eq!(offers.len(), 1000);
                        fw.decline_all(&offers).await;
                    }
                    start.elapsed()
                })
            });
        });
        rt.block_on(m.shutdown());
    }
    group.finish();
}

fn command_task(id: &str, offer: &Offer, cmd: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: offer.agent_id.clone(),
        resources: vec![scalar("cpus", 1.0), scalar("mem", 32.0)],
        command: Some(CommandInfo {
            value: Some(cmd.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One offer with a cpu to spare (the others are declined without a filter).
async fn usable_offer(fw: &mut Framework) -> Offer {
    loop {
        let mut offers = fw.all_offers().await;
        offers.sort_by(|a, b| cpus(b).total_cmp(&cpus(a)));
        let best = offers.remove(0);
        if !offers.is_empty() {
            fw.decline_all(&offers).await;
        }
        if cpus(&best) >= 1.0 {
            return best;
        }
        fw.decline_all(&[best]).await;
    }
}

fn cpus(o: &Offer) -> f64 {
    o.resources
        .iter()
        .filter(|r| r.name == "cpus")
        .filter_map(|r| r.scalar.as_ref())
        .map(|s| s.value)
        .sum()
}

/// Measures ACCEPT -> TASK_RUNNING; acknowledges through TASK_FINISHED outside the clock.
async fn launch_rounds(fw: &mut Framework, iters: u64, next_id: &mut u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let offer = usable_offer(fw).await;
        *next_id += 1;
        let id = format!("t{next_id}");
        let task = command_task(&id, &offer, "true");
        let start = Instant::now();
        fw.launch(&offer.id, task).await;
        loop {
            let u = fw.update().await;
            let state = TaskState::try_from(u.state).unwrap();
            assert_eq!(u.task_id.value, id);
            if state == TaskState::TaskRunning {
                total += start.elapsed();
            }
            fw.ack(&u).await;
            match state {
                TaskState::TaskFinished => break,
                TaskState::TaskStarting | TaskState::TaskRunning => {}
                _ => panic!("unexpected {u:?}"),
            }
        }
    }
    total
}

fn launch_latency(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut group = c.benchmark_group("local_cluster/launch_latency");
    group.sample_size(20);

    let (m, mut state) = rt.block_on(async {
        let m = master_with_sim_agents(
            1,
            SimBehaviour {
                run_for: Some(Duration::ZERO),
            },
            Duration::from_millis(10),
        )
        .await;
        let fw = Framework::subscribe(m.addr(), ContentType::Json).await;
        (m, (fw, 0u64))
    });
    group.bench_function("sim_agent", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (fw, n) = &mut state;
                launch_rounds(fw, iters, n).await
            })
        });
    });
    rt.block_on(m.shutdown());

    let dir = tempfile::tempdir().unwrap();
    let (cluster, mut state) = rt.block_on(async {
        let mut config = ClusterConfig::new(dir.path());
        config.master = MasterConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            allocation_interval: Duration::from_millis(10),
            heartbeat_interval: Duration::from_secs(3600),
            ..MasterConfig::default()
        };
        config.agents = vec![AgentSpec {
            disk_mb: Some(1024),
            ..AgentSpec::new(TopologySource::Synthetic("pack:1 core:2 pu:1".into()))
        }];
        let cluster = LocalCluster::start(config).await.unwrap();
        let fw = Framework::subscribe(cluster.master_addr(), ContentType::Json).await;
        (cluster, (fw, 0u64))
    });
    group.bench_function("command_task", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let (fw, n) = &mut state;
                launch_rounds(fw, iters, n).await
            })
        });
    });
    rt.block_on(cluster.shutdown());
    group.finish();
}

criterion_group!(benches, offer_cycle, launch_latency);
criterion_main!(benches);
