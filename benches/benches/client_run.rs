//! `retz-client run -cmd true` against `retz-server --local`, end to end: one process
//! of the client per iteration (submit, follow the job, print its stdout, exit with its
//! code), a real server with the embedded cluster and the real executor.
//!
//! The binaries are taken from `RETZ_BIN_DIR` (default: the bench's own profile
//! directory, e.g. `target/release`); build them first:
//! `cargo build --release -p retz-scheduler -p retz-client -p retz-executor --bins`.
//!
//! Before the criterion group, 30 runs are timed and their median, p90, min and max
//! printed (goal: median <= 60 ms). What bounds it: the submission, the planner's
//! reaction to a queued job, the embedded master's offer round (an offer for the freed
//! CPUs), the executor's launch, and the client's polling (4 ms doubling).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RETZ_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("bench path");
    // target/<profile>/deps/<bench>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps layout")
        .to_path_buf()
}

fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build --release -p retz-scheduler -p retz-client \
         -p retz-executor --bins), or set RETZ_BIN_DIR",
        p.display()
    );
    p
}

struct ServerProc {
    child: Child,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> ServerProc {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let data = dir.path().join("data");
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log");
    let child = Command::new(binary("retz-server"))
        .args(["--local", "--data-dir"])
        .arg(&data)
        .args(["--bind", &addr.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start retz-server");
    let config = data.join("client.toml");
    let start = Instant::now();
    while !(config.is_file() && TcpStream::connect(addr).is_ok()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "retz-server not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = ServerProc {
        child,
        config,
        _dir: dir,
    };
    let ok = client(&server.config, &["load-app", "-A", "bench"]);
    assert!(ok, "load-app failed");
    server
}

fn client(config: &Path, args: &[&str]) -> bool {
    Command::new(binary("retz-client"))
        .arg("-C")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run_true(config: &Path) -> Duration {
    let t = Instant::now();
    let ok = client(config, &["run", "-A", "bench", "-cmd", "true"]);
    let d = t.elapsed();
    assert!(ok, "retz-client run -cmd true failed");
    d
}

fn client_run(c: &mut Criterion) {
    let server = start_server();
    // warm up: the first job creates the application's executor
    run_true(&server.config);
    let mut times: Vec<Duration> = (0..30).map(|_| run_true(&server.config)).collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "client_run: retz-client run -cmd true x30: median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        ms(times[0]),
        ms(times[times.len() - 1]),
    );
    let mut g = c.benchmark_group("client_run");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("run_true", |b| b.iter(|| run_true(&server.config)));
    g.finish();
}

criterion_group!(benches, client_run);
criterion_main!(benches);
