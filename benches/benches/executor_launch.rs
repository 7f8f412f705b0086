//! Executor launch latency: LAUNCH → Running (cgroup setup, spawn with pre-exec pinning,
//! read-back verification), and application reuse (first task unpacks a 100 MB archive,
//! later tasks reuse it).
//!
//! As root with a usable cpuset cgroup the real kernel is measured; otherwise the
//! recording fake (and the bench says so). A launch includes confining the job: it runs
//! as the default job user (`nobody`) with no capabilities, in its own PID namespace
//! when the executor may create one (the bench prints which, once). Besides criterion's
//! statistics, each group prints p50/p99 of every launch it timed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use retz_executor::cgroup::CgroupConfig;
use retz_executor::runtime::{RuntimeConfig, TaskEvent, TaskLaunch, TaskRuntime, TaskUpdate};
use retz_executor::spec::{MemPolicy, TaskSpec};
use retz_executor::sys::Sys;
use retz_executor::sys::fake::{FakeLayout, FakeSys};
use retz_executor::sys::linux::LinuxSys;
use retz_placement::AffinityPolicy;
use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;

const ARCHIVE_MB: usize = 100;

struct Env {
    sys: Arc<dyn Sys>,
    cgroup_root: PathBuf,
    proc_root: PathBuf,
    cpu: &'static str,
    label: &'static str,
    _tmp: tempfile::TempDir,
}

/// The real kernel when we may manage cgroups, else the fake.
fn environment(rt: &Runtime) -> Env {
    let tmp = tempfile::tempdir().expect("tempdir");
    if nix::unistd::geteuid().is_root() {
        let mut config = RuntimeConfig::new(tmp.path());
        config.cgroups.scope = format!("bench-probe-{}", std::process::id());
        let probe = rt.block_on(TaskRuntime::start(Arc::new(LinuxSys), config));
        if let Ok((probe, _)) = probe {
            let usable = probe.cgroups().is_ok();
            let cpu = if probe.machine().cpus.contains(retz_placement::CpuId(1)) {
                "1"
            } else {
                "0"
            };
            rt.block_on(probe.shutdown(Duration::from_millis(10)));
            if usable {
                return Env {
                    sys: Arc::new(LinuxSys),
                    cgroup_root: PathBuf::from("/sys/fs/cgroup"),
                    proc_root: PathBuf::from("/proc"),
                    cpu,
                    label: "linux",
                    _tmp: tmp,
                };
            }
        }
    }
    eprintln!("executor_launch: not root or no usable cpuset cgroup: measuring the fake kernel");
    let fake = FakeSys::new(tmp.path(), FakeLayout::Hybrid).expect("fake");
    Env {
        sys: Arc::new(fake.clone()),
        cgroup_root: fake.cgroup_root().to_path_buf(),
        proc_root: fake.proc_root().to_path_buf(),
        cpu: "1",
        label: "fake",
        _tmp: tmp,
    }
}

fn spec(cpu: &str, app: &str) -> TaskSpec {
    TaskSpec {
        command: "exec sleep 600".into(),
        env: BTreeMap::new(),
        cpus: 1,
        mem_mb: 64,
        gpus: 0,
        gpu_ids: None,
        cpuset: Some(cpu.parse().expect("a CPU list")),
        mem_nodes: Some("0".parse().expect("a node list")),
        affinity: AffinityPolicy::NumaStrict,
        mem_policy: Some(MemPolicy::Bind),
        pin_required: true,
        job_id: None,
        app: Some(app.into()),
        ports: Vec::new(),
        user: None,
    }
}

struct Runner {
    rt: TaskRuntime,
    events: UnboundedReceiver<TaskEvent>,
    next: u64,
    described: bool,
}

impl Runner {
    async fn start(env: &Env, sandbox: &Path, artifacts: Vec<PathBuf>, scope: &str) -> Runner {
        let mut config = RuntimeConfig::new(sandbox);
        config.artifacts = artifacts;
        config.cgroups = CgroupConfig {
            root: env.cgroup_root.clone(),
            scope: format!("{scope}-{}", std::process::id()),
            ..CgroupConfig::default()
        };
        config.proc_root = env.proc_root.clone();
        config.base_env = vec![("PATH".into(), "/usr/bin:/bin".into())];
        let (rt, events) = TaskRuntime::start(env.sys.clone(), config)
            .await
            .expect("runtime starts");
        Runner {
            rt,
            events,
            next: 0,
            described: false,
        }
    }

    /// Launches one task, returns LAUNCH → Running, then kills it (not timed).
    async fn launch_once(&mut self, env: &Env, app: &str) -> Duration {
        self.next += 1;
        let id = format!("t{}", self.next);
        let start = Instant::now();
        self.rt
            .launch(TaskLaunch {
                task_id: id.clone(),
                spec: spec(env.cpu, app),
                kill_grace: Some(Duration::from_secs(1)),
            })
            .expect("launch accepted");
        let ev = self.events.recv().await.expect("event");
        let took = start.elapsed();
        match &ev.update {
            TaskUpdate::Running { pinning, .. } => {
                assert!(pinning.drift.is_empty(), "{pinning:?}");
                if !std::mem::replace(&mut self.described, true) {
                    println!(
                        "executor_launch [{}]: the job runs as {}, {}",
                        env.label,
                        pinning.user.as_deref().unwrap_or("?"),
                        match &pinning.pid_namespace_unavailable {
                            _ if pinning.pid_namespace => "in its own PID namespace".to_owned(),
                            Some(why) => format!("without a PID namespace ({why})"),
                            None => "without a PID namespace".to_owned(),
                        }
                    );
                }
            }
            other => panic!("expected Running, got {other:?}"),
        }
        self.rt.kill(&id, None);
        loop {
            let ev = self.events.recv().await.expect("event");
            if ev.task_id == id && ev.update.is_terminal() {
                break;
            }
        }
        took
    }
}

fn percentiles(name: &str, label: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    if samples.is_empty() {
        // The bench was filtered out on the command line.
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let (p50, p99) = (at(0.50), at(0.99));
    println!(
        "{name} [{label}]: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    (p50, p99)
}

fn launch_to_running(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio");
    let env = environment(&rt);
    let sandbox = tempfile::tempdir().expect("tempdir");
    let mut runner = rt.block_on(Runner::start(&env, sandbox.path(), vec![], "bench-launch"));
    let mut all = Vec::new();
    let mut group = c.benchmark_group("executor_launch");
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(10));
    group.bench_function(format!("launch_to_running_{}", env.label), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let d = rt.block_on(runner.launch_once(&env, "bench"));
                all.push(d);
                total += d;
            }
            total
        })
    });
    group.finish();
    let (_, p99) = percentiles("launch_to_running", env.label, all);
    if p99.is_zero() {
        rt.block_on(runner.rt.shutdown(Duration::from_millis(100)));
        return;
    }
    println!(
        "launch_to_running goal p99 < 10 ms: {}",
        if p99 < Duration::from_millis(10) {
            "met"
        } else {
            "NOT met"
        }
    );
    rt.block_on(runner.rt.shutdown(Duration::from_millis(100)));
}

/// Writes a gzip tar of about `mb` MB (1 MB files of pseudo-random, barely compressible
/// bytes) to `path`.
fn write_archive(path: &Path, mb: usize) {
    let file = std::fs::File::create(path).expect("archive file");
    let enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(enc);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data = vec![0u8; 1 << 20];
    for i in 0..mb {
        for chunk in data.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("lib/part{i:03}.bin"), &data[..])
            .expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip");
}

fn app_reuse(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio");
    let env = environment(&rt);
    let store = tempfile::tempdir().expect("tempdir");
    let archive = store.path().join("app.tgz");
    write_archive(&archive, ARCHIVE_MB);
    let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    println!(
        "app archive: {:.1} MB compressed, {ARCHIVE_MB} MB unpacked",
        size as f64 / 1e6
    );

    let mut group = c.benchmark_group("executor_app_100mb");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));

    // First task of an application: a fresh sandbox each time, the archive unpacked.
    let mut first = Vec::new();
    let mut round = 0u64;
    group.bench_function(format!("first_task_{}", env.label), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let sandbox = tempfile::tempdir_in(store.path()).expect("sandbox");
                std::fs::hard_link(&archive, sandbox.path().join("app.tgz"))
                    .or_else(|_| {
                        std::fs::copy(&archive, sandbox.path().join("app.tgz")).map(|_| ())
                    })
                    .expect("artifact");
                let d = rt.block_on(async {
                    let mut runner = Runner::start(
                        &env,
                        sandbox.path(),
                        vec!["app.tgz".into()],
                        &format!("bench-first{round}"),
                    )
                    .await;
                    let d = runner.launch_once(&env, "big").await;
                    runner.rt.shutdown(Duration::from_millis(100)).await;
                    d
                });
                first.push(d);
                total += d;
            }
            total
        })
    });

    // Later tasks: the application is already there.
    let sandbox = tempfile::tempdir_in(store.path()).expect("sandbox");
    std::fs::hard_link(&archive, sandbox.path().join("app.tgz")).expect("artifact");
    let mut runner = rt.block_on(Runner::start(
        &env,
        sandbox.path(),
        vec!["app.tgz".into()],
        "bench-second",
    ));
    rt.block_on(runner.launch_once(&env, "big"));
    let mut second = Vec::new();
    group.bench_function(format!("second_task_{}", env.label), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let d = rt.block_on(runner.launch_once(&env, "big"));
                second.push(d);
                total += d;
            }
            total
        })
    });
    group.finish();
    rt.block_on(runner.rt.shutdown(Duration::from_millis(100)));
    let (first_p50, _) = percentiles("first_task_100mb", env.label, first);
    let (second_p50, _) = percentiles("second_task_100mb", env.label, second);
    if first_p50.is_zero() || second_p50.is_zero() {
        return;
    }
    let ratio = first_p50.as_secs_f64() / second_p50.as_secs_f64().max(1e-9);
    println!(
        "second task of the application starts {ratio:.0}x faster than the first (goal ≥ 20x: {})",
        if ratio >= 20.0 { "met" } else { "NOT met" }
    );
}

criterion_group!(benches, launch_to_running, app_reuse);
criterion_main!(benches);
