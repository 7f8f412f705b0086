//! Server memory with a large queue: `retz-server` (the release binary, a separate
//! process) started over an SQLite store that already holds N QUEUED jobs, with a Mesos
//! master address nobody answers (so nothing is launched and the whole queue stays
//! queued). Printed: how long seeding and the server's queue load took, and the server's
//! resident set (VmRSS) and its peak (VmHWM) once the planner has loaded the queue, and
//! again after 10,000 more submissions over HTTP.
//!
//! The queue is issue #15's: N jobs in 10,000 request classes, 100 users × 100 shapes
//! as in `fair_queue.rs` (job i: user i mod 100, 1 + (i / 100) mod 100 CPUs, memory by
//! shape, numa-prefer). `RETZ_BENCH_USERS` and `RETZ_BENCH_SHAPES` change the counts;
//! both 1 is the one-class queue (every job of one user asking 1-4 CPUs and 2 GB).
//!
//! Not a criterion bench: the figure is one process's memory, not a repeated timing.
//! `RETZ_BENCH_QUEUED` sets N (default 1,000,000). Goal: RSS < 1 GiB at 1,000,000.
//!
//! `cargo bench -p retz-benches --bench server_rss` (`RETZ_BENCH_SERVER=path` measures
//! that `retz-server` instead of building the release one).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use retz_proto::api::{Application, Job, User, auth};
use retz_scheduler::store::Store;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ sits in the workspace")
        .to_path_buf()
}

/// Builds the release `retz-server` (cargo answers at once when it is fresh), unless
/// `RETZ_BENCH_SERVER` names a binary to measure instead.
fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RETZ_BENCH_SERVER") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "retz-scheduler",
            "--bin",
            "retz-server",
        ])
        .current_dir(workspace())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of retz-server failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("release").join("retz-server")
}

/// How the seeded queue is shaped: `users` owners, `shapes` request shapes.
#[derive(Clone, Copy)]
struct Mix {
    users: usize,
    shapes: usize,
}

impl Mix {
    fn from_env() -> Mix {
        let var = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .unwrap_or(default)
        };
        Mix {
            users: var("RETZ_BENCH_USERS", 100),
            shapes: var("RETZ_BENCH_SHAPES", 100),
        }
    }

    /// Queued job `i` of `n` (its owner is user `i % users`).
    fn job(self, i: usize, n: usize) -> Job {
        let mut job = Job::new("bench", format!("./run-batch.sh --part {i} --of {n}"));
        job.name = format!("nightly-{}", i % 97);
        job.priority = (i % 5) as i32;
        if self.shapes == 1 {
            job.resources.cpu = retz_placement::ResourceRange::between(1, 4);
            job.resources.mem_mb = retz_placement::ResourceRange::exactly(2048);
        } else {
            // As fair_queue.rs: the larger shapes ask more than an agent has.
            let shape = ((i / self.users) % self.shapes) as u32;
            job.resources.cpu = retz_placement::ResourceRange::exactly(1 + shape);
            job.resources.mem_mb =
                retz_placement::ResourceRange::exactly(256 * (1 + u64::from(shape % 4)));
            job.affinity = Some(retz_placement::AffinityPolicy::NumaPrefer);
        }
        job
    }
}

/// Seeds `n` QUEUED jobs of `mix`; returns the users (the first submits more later).
async fn seed(url: &str, n: usize, mix: Mix) -> Vec<User> {
    let store = Store::open(url).await.expect("open store");
    let mut users = Vec::with_capacity(mix.users);
    for u in 0..mix.users {
        users.push(store.create_user(&format!("bench{u}")).await.expect("user"));
    }
    store
        .put_app(&Application::new("bench", &users[0].key_id))
        .await
        .expect("app");
    let started = Instant::now();
    let mut done = 0usize;
    let owners: Vec<String> = users.iter().map(|u| u.key_id.clone()).collect();
    let owners = &owners;
    let mut inserts = futures_util::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            async move {
                store
                    .insert_job(&owners[i % mix.users], mix.job(i, n))
                    .await
                    .expect("insert")
            }
        })
        .buffer_unordered(4096);
    while inserts.next().await.is_some() {
        done += 1;
        if done.is_multiple_of(100_000) {
            eprintln!(
                "  seeded {done} jobs ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "seeded {n} jobs of {} users x {} shapes in {:.1} s",
        mix.users,
        mix.shapes,
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    users
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn submit_more(addr: &str, user: &User, n: usize) {
    let client = reqwest::Client::new();
    let body = r#"{"job":{"appid":"bench","cmd":"echo more","resources":{"cpu":"1-2"}}}"#;
    let mut posts = futures_util::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            let date = auth::now_date();
            let md5 = auth::content_md5(body.as_bytes());
            let sig = auth::sign(
                &user.secret,
                &auth::string_to_sign("POST", &md5, &date, "/job"),
            );
            let url = format!("http://{addr}/job");
            let key = user.key_id.clone();
            async move {
                let r = client
                    .post(url)
                    .header("Content-Type", "application/json")
                    .header("Content-MD5", md5)
                    .header("Date", date)
                    .header("Authorization", auth::authorization(&key, &sig))
                    .body(body)
                    .send()
                    .await
                    .expect("POST /job");
                assert!(r.status().is_success(), "{:?}", r.text().await);
            }
        })
        .buffer_unordered(64);
    while posts.next().await.is_some() {}
}

fn main() {
    let n: usize = std::env::var("RETZ_BENCH_QUEUED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let bin = server_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("retz.db");
    let url = format!("sqlite://{}", db.display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mix = Mix::from_env();
    let users = rt.block_on(seed(&url, n, mix));
    let user = &users[0];

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("retz.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"{addr}\"\ndatabase = \"{url}\"\n\n[mesos]\n\
             masters = [\"127.0.0.1:9\"]\n"
        ),
    )
    .expect("write config");
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .arg("-C")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start retz-server");
    let stderr = child.stderr.take().expect("stderr");
    let server = Killed(child);
    let pid = server.0.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("planner started") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(600))
        .expect("the planner did not report its queue within 10 minutes");
    let load_s = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let (rss, hwm) = (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"));
    println!(
        "server_rss: {n} queued jobs of {} users x {} shapes; {line}",
        mix.users, mix.shapes
    );
    println!(
        "server_rss: queue loaded {load_s:.1} s after start; VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        mib(rss),
        mib(hwm)
    );
    let t = Instant::now();
    rt.block_on(submit_more(&addr, user, 10_000));
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "server_rss: +10,000 submissions over HTTP in {:.1} s; VmRSS {:.1} MiB, VmHWM {:.1} MiB \
         (goal < 1024 MiB)",
        t.elapsed().as_secs_f64(),
        mib(status_kib(pid, "VmRSS:")),
        mib(status_kib(pid, "VmHWM:"))
    );
    drop(server);
}
