//! Shared helpers of the master integration tests: a raw hyper HTTP client speaking the
//! scheduler API in JSON or protobuf (optionally authenticating with HTTP Basic), a
//! SUBSCRIBE stream reader, and masters with simulated agents.
//!
//! Frameworks run their command tasks as `nobody` when the tests run as root (the agents
//! then switch to that user, never root), else as the current user.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use retz_mesos_local::master::{Master, MasterConfig, SimAgent, SimBehaviour};
use retz_proto::ContentType;
use retz_proto::credentials::{Credential, Credentials};
use retz_proto::mesos::{
    AgentId, AgentInfo, CommandInfo, Filters, FrameworkId, FrameworkInfo, Offer, OfferId, Resource,
    TaskId, TaskInfo, TaskStatus, framework_info, offer, value,
};
use retz_proto::recordio::RecordDecoder;
use retz_proto::scheduler::{Call, Event, call, event};
use tokio::sync::mpsc;

/// Longest wait for anything in these tests (a hang, not a speed check).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    /// `Authorization` sent with every request, when set.
    authorization: Option<String>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Stream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub stream_id: String,
    pub content_type: ContentType,
    events: mpsc::UnboundedReceiver<Event>,
    reader: tokio::task::JoinHandle<()>,
}

impl Stream {
    /// The next event, `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Event> {
        match tokio::time::timeout(PATIENCE, self.events.recv()).await {
            Ok(e) => e,
            Err(_) => panic!("no event within {PATIENCE:?}"),
        }
    }

    /// The next event of type `ty`, skipping others.
    pub async fn next_of(&mut self, ty: event::Type) -> Event {
        loop {
            let e = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended while waiting for {ty:?}"));
            if e.r#type == Some(ty as i32) {
                return e;
            }
        }
    }

    /// The offers of the next OFFERS event.
    pub async fn offers(&mut self) -> Vec<Offer> {
        self.next_of(event::Type::Offers)
            .await
            .offers
            .unwrap()
            .offers
    }

    /// The status of the next UPDATE event.
    pub async fn update(&mut self) -> TaskStatus {
        self.next_of(event::Type::Update)
            .await
            .update
            .unwrap()
            .status
    }

    /// Waits for the end of the stream, returning the events before it.
    pub async fn rest(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }

    /// Drops the connection (the client goes away).
    pub fn disconnect(self) {
        self.reader.abort();
    }
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
            authorization: None,
        }
    }

    /// A client authenticating every request as `credential` (HTTP Basic).
    pub fn with_credential(addr: SocketAddr, credential: &Credential) -> Http {
        Http {
            authorization: Some(credential.basic_header()),
            ..Http::new(addr)
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a.as_str());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = tokio::time::timeout(PATIENCE, self.client.request(req))
            .await
            .expect("reply in time")
            .expect("HTTP request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.request(Method::GET, path, &[], Vec::new()).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    /// SUBSCRIBE with `Content-Type` and `Accept` both `ct`.
    pub async fn subscribe(&self, ct: ContentType, info: FrameworkInfo) -> Stream {
        self.subscribe_with(ct, &[("Accept", ct.mime())], subscribe_call(info))
            .await
    }

    pub async fn subscribe_with(&self, ct: ContentType, extra: &[(&str, &str)], c: Call) -> Stream {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}/api/v1/scheduler", self.base))
            .header("Content-Type", ct.mime());
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a.as_str());
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(ct.encode(&c)))).unwrap();
        let resp = tokio::time::timeout(PATIENCE, self.client.request(req))
            .await
            .expect("reply in time")
            .expect("HTTP request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let stream_id = headers
            .get("Mesos-Stream-Id")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let content_type = headers
            .get("Content-Type")
            .and_then(|v| ContentType::from_header(v.to_str().unwrap()))
            .unwrap_or(ct);
        let (tx, events) = mpsc::unbounded_channel();
        let mut body = resp.into_body();
        let ok = status == StatusCode::OK;
        let reader = tokio::spawn(async move {
            if !ok {
                // An error reply is one line of text, not a stream of events.
                return;
            }
            let mut decoder = RecordDecoder::default();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                decoder.push(&data);
                while let Some(record) = decoder.next_record().expect("valid RecordIO") {
                    let ev: Event = content_type.decode(&record).expect("valid event");
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
            decoder.finish().expect("stream ends on a record boundary");
        });
        Stream {
            status,
            headers,
            stream_id,
            content_type,
            events,
            reader,
        }
    }

    /// A non-SUBSCRIBE call on its own connection.
    pub async fn call(&self, ct: ContentType, stream_id: &str, c: &Call) -> Reply {
        self.request(
            Method::POST,
            "/api/v1/scheduler",
            &[("Content-Type", ct.mime()), ("Mesos-Stream-Id", stream_id)],
            ct.encode(c),
        )
        .await
    }
}

/// The user command tasks run as: `nobody` under root, else this user.
pub fn job_user() -> String {
    if nix::unistd::geteuid().is_root() {
        "nobody".into()
    } else {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map_or_else(|| "nobody".into(), |u| u.name)
    }
}

/// A credential for tests.
pub fn credential(principal: &str) -> Credential {
    Credential::new(principal, format!("{principal}-secret")).unwrap()
}

/// A set of test credentials, one per principal.
pub fn credentials(principals: &[&str]) -> Credentials {
    Credentials::new(principals.iter().map(|p| credential(p)).collect()).unwrap()
}

/// `info` claiming `principal`.
pub fn with_principal(mut info: FrameworkInfo, principal: &str) -> FrameworkInfo {
    info.principal = Some(principal.into());
    info
}

pub fn framework(name: &str) -> FrameworkInfo {
    FrameworkInfo {
        user: job_user(),
        name: name.into(),
        failover_timeout: Some(3600.0),
        ..Default::default()
    }
}

pub fn with_caps(
    mut info: FrameworkInfo,
    caps: &[framework_info::capability::Type],
) -> FrameworkInfo {
    info.capabilities
        .extend(caps.iter().map(|c| framework_info::Capability {
            r#type: Some(*c as i32),
        }));
    info
}

pub fn subscribe_call(info: FrameworkInfo) -> Call {
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

pub fn call_of(fid: &FrameworkId, ty: call::Type) -> Call {
    Call {
        r#type: Some(ty as i32),
        framework_id: Some(fid.clone()),
        ..Default::default()
    }
}

pub fn subscribed_id(e: &Event) -> FrameworkId {
    e.subscribed
        .as_ref()
        .expect("SUBSCRIBED")
        .framework_id
        .clone()
}

pub fn scalar(name: &str, v: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: v }),
        ..Default::default()
    }
}

pub fn ranges(name: &str, b: u64, e: u64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: vec![value::Range { begin: b, end: e }],
        }),
        ..Default::default()
    }
}

pub fn command_task(id: &str, agent: &AgentId, resources: Vec<Resource>) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: agent.clone(),
        resources,
        command: Some(CommandInfo {
            value: Some("true".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn accept_call(
    fid: &FrameworkId,
    offers: &[&OfferId],
    tasks: Vec<TaskInfo>,
    refuse: Option<f64>,
) -> Call {
    let mut c = call_of(fid, call::Type::Accept);
    c.accept = Some(call::Accept {
        offer_ids: offers.iter().map(|o| (*o).clone()).collect(),
        operations: vec![offer::Operation {
            r#type: Some(offer::operation::Type::Launch as i32),
            launch: Some(offer::operation::Launch { task_infos: tasks }),
            ..Default::default()
        }],
        filters: refuse.map(|r| Filters {
            refuse_seconds: Some(r),
        }),
    });
    c
}

pub fn decline_call(fid: &FrameworkId, offers: &[&OfferId], refuse: f64) -> Call {
    let mut c = call_of(fid, call::Type::Decline);
    c.decline = Some(call::Decline {
        offer_ids: offers.iter().map(|o| (*o).clone()).collect(),
        filters: Some(Filters {
            refuse_seconds: Some(refuse),
        }),
    });
    c
}

pub fn ack_call(fid: &FrameworkId, status: &TaskStatus) -> Call {
    let mut c = call_of(fid, call::Type::Acknowledge);
    c.acknowledge = Some(call::Acknowledge {
        agent_id: status.agent_id.clone().expect("agent id"),
        task_id: status.task_id.clone(),
        uuid: status.uuid.clone().expect("uuid"),
    });
    c
}

/// A master on a free port with a short allocation interval.
pub async fn master(heartbeat: Duration) -> Master {
    master_with(heartbeat, None).await
}

/// A master on a free port with a short allocation interval and `credentials`.
pub async fn master_with(heartbeat: Duration, credentials: Option<Credentials>) -> Master {
    Master::start(MasterConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        heartbeat_interval: heartbeat,
        allocation_interval: Duration::from_millis(50),
        credentials,
        ..Default::default()
    })
    .await
    .expect("master starts")
}

/// The resources of a simulated agent: 4 cpus (ids 0-3), 4 GiB, 10 GB disk, 1 node.
pub fn agent_resources() -> Vec<Resource> {
    vec![
        scalar("cpus", 4.0),
        scalar("mem", 4096.0),
        scalar("disk", 10_000.0),
        ranges("cpuids", 0, 3),
        scalar("numanodes", 1.0),
    ]
}

/// Registers `n` simulated agents.
pub async fn sim_agents(m: &Master, n: usize, behaviour: SimBehaviour) -> Vec<SimAgent> {
    let mut out = Vec::new();
    for i in 0..n {
        let info = AgentInfo {
            hostname: format!("sim-{i}"),
            port: Some(5051 + i as i32),
            id: Some(m.agent_id(i)),
            resources: agent_resources(),
            ..Default::default()
        };
        let agent = SimAgent::new(info, m.reporter(), behaviour.clone());
        m.add_agent(std::sync::Arc::new(agent.clone()))
            .await
            .expect("agent registers");
        out.push(agent);
    }
    out
}

/// The named resource of an offer.
pub fn resource<'a>(o: &'a Offer, name: &str) -> &'a Resource {
    o.resources
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("offer without {name}: {o:?}"))
}
