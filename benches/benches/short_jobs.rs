//! Short-job drain on `retz-server --local`: N one-CPU `true` jobs (default 300) are
//! submitted over HTTP as fast as the server takes them, and the bench waits until every
//! one is FINISHED or KILLED. Printed: submission time, drain time (first submission to
//! last terminal job) and jobs/s, and how many ended FINISHED and KILLED (a KILLED short
//! job is a failure of its own, e.g. a pinning verification race; it is counted, not
//! hidden).
//!
//! Not a criterion bench: one drain takes seconds and runs real processes. The server is
//! the release `retz-server` (built here unless `RETZ_BENCH_BIN_DIR` names a directory
//! holding `retz-server` and `retz-executor`), run as root (the embedded agent needs it).
//! `RETZ_BENCH_JOBS` sets N. Goal on a 2-CPU host: >= 15 jobs/s.
//!
//! `cargo bench -p retz-benches --bench short_jobs`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use retz_client::Client;
use retz_proto::api::{Application, Job, JobState};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ sits in the workspace")
        .to_path_buf()
}

/// The directory holding `retz-server` and `retz-executor`: `RETZ_BENCH_BIN_DIR`, or the
/// release build (cargo answers at once when it is fresh).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RETZ_BENCH_BIN_DIR") {
        return PathBuf::from(dir);
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
            "-p",
            "retz-executor",
            "--bin",
            "retz-executor",
        ])
        .current_dir(workspace())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of the binaries failed");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("release")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let n: usize = std::env::var("RETZ_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("short_jobs: needs root (the embedded agent runs executors); skipped");
        return;
    }
    let bin = bin_dir().join("retz-server");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
    let child = Command::new(&bin)
        .args(["--local", "--data-dir"])
        .arg(&data)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start retz-server");
    let _server = Killed(child);
    let config_path = data.join("client.toml");
    let start = Instant::now();
    while !config_path.is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "retz-server did not write {}",
            config_path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(&config_path).expect("client.toml");
    let config = retz_client::config::parse(&text, &config_path).expect("client config");
    let client = Client::new(config).expect("client");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        while client.ping().await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let owner = client.config().access_key.clone();
        client
            .load_app(Application::new("bench", owner))
            .await
            .expect("load-app");
        let t0 = Instant::now();
        let mut posts = futures_util::stream::iter(0..n)
            .map(|_| {
                let client = &client;
                async move {
                    let mut job = Job::new("bench", "true");
                    job.resources.cpu = retz_placement::ResourceRange::exactly(1);
                    job.resources.mem_mb = retz_placement::ResourceRange::exactly(32);
                    client.schedule(job).await.expect("schedule")
                }
            })
            .buffer_unordered(16);
        while posts.next().await.is_some() {}
        let submitted = t0.elapsed().as_secs_f64();
        let (finished, killed) = loop {
            let f = client
                .list_jobs(JobState::Finished, None)
                .await
                .expect("list")
                .jobs
                .len();
            let k = client
                .list_jobs(JobState::Killed, None)
                .await
                .expect("list")
                .jobs
                .len();
            if f + k >= n {
                break (f, k);
            }
            assert!(
                t0.elapsed() < Duration::from_secs(600),
                "only {f} FINISHED and {k} KILLED of {n} after 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let drained = t0.elapsed().as_secs_f64();
        println!(
            "short_jobs: {n} one-CPU `true` jobs on {} CPUs: submitted in {submitted:.2} s, \
             drained in {drained:.2} s = {:.1} jobs/s (goal >= 15); FINISHED {finished}, \
             KILLED {killed}",
            std::thread::available_parallelism().map_or(0, |p| p.get()),
            n as f64 / drained
        );
    });
}
