//! Shared by the HTTP tests: a recording fake planner, a server over a SQLite store in a
//! tempdir, and signed request helpers (driven with `tower::ServiceExt::oneshot`).

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use retz_proto::api::auth;
use retz_proto::api::{Application, Job, User};
use retz_scheduler::http::{AppState, ClusterView, HttpConfig, PlannerHandle, PlannerStatus, app};
use retz_scheduler::metrics::Metrics;
use retz_scheduler::store::Store;
use serde_json::Value;
use tower::ServiceExt;

/// A planner that records what the API told it.
#[derive(Default)]
pub struct FakePlanner {
    pub queued: Mutex<Vec<u64>>,
    pub kills: Mutex<Vec<u64>>,
    /// What `cluster()` answers.
    pub cluster: Mutex<ClusterView>,
    pub metrics: Metrics,
    /// Jobs `plan` was asked about (app, command).
    pub planned: Mutex<Vec<(String, String)>>,
    /// Whether `plan` drops its answer (a stopped planner loop).
    pub plan_stopped: std::sync::atomic::AtomicBool,
    /// The share and quota changes it was told of.
    pub limits: Mutex<Vec<retz_proto::api::UserLimits>>,
}

impl PlannerHandle for FakePlanner {
    fn job_queued(&self, job: &Job) {
        self.queued.lock().unwrap().push(job.id);
    }
    fn kill_requested(&self, job: &Job) {
        self.kills.lock().unwrap().push(job.id);
    }
    fn user_limits_changed(&self, limits: &retz_proto::api::UserLimits) {
        self.limits.lock().unwrap().push(limits.clone());
    }
    fn pending_reason(&self, job_id: u64) -> Option<String> {
        Some(format!("no offer fits job {job_id}"))
    }
    fn status(&self) -> PlannerStatus {
        PlannerStatus {
            agents: 2,
            offers: 3,
            offered_cpus: 12.0,
            offered_mem_mb: 4096,
            offered_gpus: 1,
            offered_ports: 1001,
            offered_disk_mb: 20480,
            master: "local".into(),
            events_waiting: 0,
        }
    }
    /// Answers "would run on a1 with the job's minimum CPUs from 0 up", or drops the
    /// answer when `plan_stopped`.
    fn plan(
        &self,
        job: Job,
        app: Application,
    ) -> tokio::sync::oneshot::Receiver<retz_proto::api::PlanResponse> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.planned
            .lock()
            .unwrap()
            .push((app.appid, job.cmd.clone()));
        if !self.plan_stopped.load(std::sync::atomic::Ordering::Relaxed) {
            let n = job.resources.cpu.min;
            let _ = tx.send(retz_proto::api::PlanResponse {
                placement: Some(retz_proto::api::Placement {
                    agent_id: "a1".into(),
                    hostname: "h1".into(),
                    cpu: n,
                    mem_mb: job.resources.mem_mb.min,
                    cpuset: Some(format!("0-{}", n - 1)),
                    numa_nodes: Some("0".into()),
                    memory_nodes: Some("0".into()),
                    pinned: true,
                }),
                reason: None,
                queue_position: None,
            });
        }
        rx
    }
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    fn cluster(&self) -> ClusterView {
        self.cluster.lock().unwrap().clone()
    }
}

pub struct Env {
    pub router: Router,
    pub store: Store,
    pub planner: Arc<FakePlanner>,
    pub admin: User,
    pub config: HttpConfig,
    _dir: tempfile::TempDir,
}

/// The state of the store a bad request must not change.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    users: Vec<User>,
    jobs: Vec<(u64, Job)>,
    apps: Vec<Application>,
}

impl Snapshot {
    /// How many jobs the store holds.
    #[allow(dead_code)]
    pub fn jobs_len(&self) -> usize {
        self.jobs.len()
    }
}

impl Env {
    pub async fn new(mut config: HttpConfig) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/retz.db", dir.path().display()))
            .await
            .unwrap();
        let admin = store.create_user("admin").await.unwrap();
        config.admin_keys.insert(admin.key_id.clone());
        let planner = Arc::new(FakePlanner::default());
        let state = AppState::new(store.clone(), config.clone(), planner.clone());
        Env {
            router: app(state),
            store,
            planner,
            admin,
            config,
            _dir: dir,
        }
    }

    pub async fn default() -> Env {
        Env::new(HttpConfig::default()).await
    }

    pub async fn user(&self, info: &str) -> User {
        self.store.create_user(info).await.unwrap()
    }

    /// Sends `req`; returns status, headers and body.
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body)
    }

    /// A signed request of `user`, with a JSON body if given.
    pub async fn call(
        &self,
        user: &User,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, _, bytes) = self
            .send(signed(user, method, path, body, &auth::now_date()))
            .await;
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{path}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    pub async fn get(&self, user: &User, path: &str) -> (StatusCode, Value) {
        self.call(user, Method::GET, path, None).await
    }

    pub async fn load_app(&self, user: &User, name: &str) {
        let (s, v) = self
            .call(
                user,
                Method::PUT,
                &format!("/app/{name}"),
                Some(serde_json::json!({"application": {"appid": name}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    pub async fn schedule(&self, user: &User, job: Value) -> (StatusCode, Value) {
        self.call(
            user,
            Method::POST,
            "/job",
            Some(serde_json::json!({ "job": job })),
        )
        .await
    }

    /// Stores queued job `id` as launched (STARTING) on `agent_id` with `sandbox` and
    /// `grant`, as the planner would; returns the stored record.
    pub async fn launch(
        &self,
        id: u64,
        agent_id: &str,
        sandbox: Option<retz_proto::api::Sandbox>,
        grant: retz_proto::api::Grant,
    ) -> Job {
        let (_, queued) = self.store.get_job(id).await.unwrap().unwrap();
        let launch = retz_scheduler::statem::Launch {
            agent_id: agent_id.into(),
            sandbox,
            grant,
        };
        let running = retz_scheduler::statem::on_launch(&queued, launch).unwrap();
        assert!(
            self.store
                .update_job(&running, retz_proto::api::JobState::Queued)
                .await
                .unwrap()
        );
        running
    }

    pub async fn snapshot(&self) -> Snapshot {
        let users = self.store.list_users().await.unwrap();
        let mut jobs = Vec::new();
        let mut apps = Vec::new();
        for u in &users {
            apps.extend(self.store.list_apps(&u.key_id).await.unwrap());
            for st in retz_proto::api::JobState::ALL {
                let (l, _) = self
                    .store
                    .list_jobs(&u.key_id, st, None, 1000)
                    .await
                    .unwrap();
                jobs.extend(l.into_iter().map(|j| (j.id, j)));
            }
        }
        Snapshot { users, jobs, apps }
    }
}

/// A request signed with Retz-auth-v1 by `user` at `date`.
pub fn signed(user: &User, method: Method, path: &str, body: Vec<u8>, date: &str) -> Request<Body> {
    let md5 = auth::content_md5(&body);
    let sig = auth::sign(
        &user.secret,
        &auth::string_to_sign(method.as_str(), &md5, date, path),
    );
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("Date", date)
        .header("Authorization", auth::authorization(&user.key_id, &sig));
    if !body.is_empty() {
        b = b
            .header("Content-Type", "application/json")
            .header("Content-MD5", md5);
    }
    b.body(Body::from(body)).unwrap()
}

/// An error body's message, checking the shape.
pub fn error_message(v: &Value) -> &str {
    assert_eq!(v["command"], "error", "{v}");
    v["status"].as_str().unwrap()
}
