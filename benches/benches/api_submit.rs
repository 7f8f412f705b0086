//! Durable job submissions over loopback HTTP: a real `retz-server` HTTP API (axum on
//! 127.0.0.1:0, in this process) over a store, and 64 concurrent clients each sending
//! signed `POST /job` requests on keep-alive connections. A submission counts when its
//! 201 arrived, i.e. after the job's commit.
//!
//! * `api_submit/sqlite/64_clients`: throughput (elements = submissions) on an SQLite file
//!   (WAL, `synchronous=FULL`) in a tempdir;
//! * `api_submit/postgres/64_clients`: the same on PostgreSQL, when
//!   `RETZ_TEST_DATABASE_URL` is set (a fresh schema).
//!
//! Before each criterion group a fixed load (64 clients x 100 submissions) is timed and
//! its rate, p50 and p99 latencies are printed (goal: >= 5,000/s, p99 < 25 ms).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use retz_proto::api::{Application, User, auth};
use retz_scheduler::http::{AppState, HttpConfig, PlannerHandle, PlannerStatus, app};
use retz_scheduler::store::Store;
use tokio::runtime::Runtime;

const CLIENTS: usize = 64;
const PER_CLIENT: usize = 100;

struct NoPlanner;

impl PlannerHandle for NoPlanner {
    fn job_queued(&self, _: &retz_proto::api::Job) {}
    fn kill_requested(&self, _: &retz_proto::api::Job) {}
    fn pending_reason(&self, _: u64) -> Option<String> {
        None
    }
    fn status(&self) -> PlannerStatus {
        PlannerStatus::default()
    }
    fn plan(
        &self,
        _: retz_proto::api::Job,
        _: retz_proto::api::Application,
    ) -> tokio::sync::oneshot::Receiver<retz_proto::api::PlanResponse> {
        tokio::sync::oneshot::channel().1
    }
    fn metrics(&self) -> &retz_scheduler::metrics::Metrics {
        static NONE: std::sync::OnceLock<retz_scheduler::metrics::Metrics> =
            std::sync::OnceLock::new();
        NONE.get_or_init(retz_scheduler::metrics::Metrics::new)
    }
}

struct Target {
    url: String,
    user: User,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn serve(store: Store) -> Target {
    let user = store.create_user("bench").await.expect("create user");
    store
        .put_app(&Application::new("bench", &user.key_id))
        .await
        .expect("put app");
    let state = AppState::new(store, HttpConfig::default(), Arc::new(NoPlanner));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CLIENTS)
        .build(connector);
    Target {
        url: format!("http://{addr}"),
        user,
        client,
    }
}

async fn submit(t: &Target) -> Duration {
    let body = br#"{"job":{"appid":"bench","cmd":"echo hi","resources":{"cpu":"1-2"}}}"#;
    let date = auth::now_date();
    let md5 = auth::content_md5(body);
    let sig = auth::sign(
        &t.user.secret,
        &auth::string_to_sign("POST", &md5, &date, "/job"),
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/job", t.url))
        .header("Date", date)
        .header("Content-MD5", md5)
        .header("Content-Type", "application/json")
        .header("Authorization", auth::authorization(&t.user.key_id, &sig))
        .body(Full::new(Bytes::from_static(body)))
        .expect("request");
    let start = Instant::now();
    let res = t.client.request(req).await.expect("submit");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    start.elapsed()
}

/// `per_client` submissions by each of [`CLIENTS`] concurrent clients; returns the
/// wall time and every latency.
async fn load(t: &Arc<Target>, per_client: usize) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    lat.push(submit(&t).await);
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(CLIENTS * per_client);
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    (start.elapsed(), all)
}

fn report(name: &str, rt: &Runtime, t: &Arc<Target>) {
    let (wall, mut lat) = rt.block_on(load(t, PER_CLIENT));
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "api_submit/{name}: {} submissions by {CLIENTS} clients in {:.2} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        wall.as_secs_f64(),
        lat.len() as f64 / wall.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
}

fn bench_target(c: &mut Criterion, name: &str, rt: &Runtime, t: &Arc<Target>) {
    report(name, rt, t);
    let mut g = c.benchmark_group(format!("api_submit/{name}"));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let per_client = 8;
    g.throughput(Throughput::Elements((CLIENTS * per_client) as u64));
    g.bench_function(format!("{CLIENTS}_clients"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(load(t, per_client)).0;
            }
            total
        })
    });
    g.finish();
}

fn api_submit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let sqlite = rt.block_on(async { serve(Store::open(&url).await.expect("open sqlite")).await });
    bench_target(c, "sqlite", &rt, &Arc::new(sqlite));

    match std::env::var("RETZ_TEST_DATABASE_URL") {
        Ok(pg) => {
            let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let target = rt.block_on(async {
                let admin = sqlx::PgPool::connect(&pg).await.expect("connect postgres");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&admin)
                    .await
                    .expect("create schema");
                let sep = if pg.contains('?') { '&' } else { '?' };
                let store = Store::open(&format!("{pg}{sep}options[search_path]={schema}"))
                    .await
                    .expect("open postgres");
                serve(store).await
            });
            bench_target(c, "postgres", &rt, &Arc::new(target));
            rt.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&pg).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                        .execute(&admin)
                        .await;
                }
            });
        }
        Err(_) => println!("api_submit/postgres: skipped (RETZ_TEST_DATABASE_URL is not set)"),
    }
}

criterion_group!(benches, api_submit);
criterion_main!(benches);
