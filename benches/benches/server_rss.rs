//! Server memory with a large queue: `retz-server` (the release binary, a separate
//! process) started over an SQLite store that already holds N QUEUED jobs, with a Mesos
//! master address nobody answers (so nothing is launched and the whole queue stays
//! queued). Printed: how long seeding and the server's queue load took, and the server's
//! resident set (VmRSS) and its peak (VmHWM) once the planner has loaded the queue, and
//! again after 10,000 more submissions over HTTP.
//!
//! Not a criterion bench: the figure is one process's memory, not a repeated timing.
//! `RETZ_BENCH_QUEUED` sets N (default 1,000,000). Goal: RSS < 1 GiB at 1,000,000.
//!
//! `cargo bench -p retz-benches --bench server_rss`

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

/// Builds the release `retz-server` (cargo answers at once when it is fresh).
fn server_binary() -> PathBuf {
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

async fn seed(url: &str, n: usize) -> User {
    let store = Store::open(url).await.expect("open store");
    let user = store.create_user("bench").await.expect("user");
    store
        .put_app(&Application::new("bench", &user.key_id))
        .await
        .expect("app");
    let started = Instant::now();
    let mut done = 0usize;
    let owner_key = user.key_id.clone();
    let mut inserts = futures_util::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            let owner = owner_key.clone();
            async move {
                let mut job = Job::new("bench", format!("./run-batch.sh --part {i} --of {n}"));
                job.name = format!("nightly-{}", i % 97);
                job.resources.cpu = retz_placement::ResourceRange::between(1, 4);
                job.resources.mem_mb = retz_placement::ResourceRange::exactly(2048);
                job.priority = (i % 5) as i32;
                store.insert_job(&owner, job).await.expect("insert")
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
        "seeded {n} jobs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    user
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
                assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);
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
    let user = rt.block_on(seed(&url, n));

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
    println!("server_rss: {n} queued jobs; {line}");
    println!(
        "server_rss: queue loaded {load_s:.1} s after start; VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        mib(rss),
        mib(hwm)
    );
    let t = Instant::now();
    rt.block_on(submit_more(&addr, &user, 10_000));
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
