//! What the root tests share: a task runtime on the real kernel (skipping, or failing
//! under `CI=true`, without root or cgroups), event helpers, and process checks. After a
//! failed assertion a test ends without `shutdown`; dropping the [`Rig`] removes what it
//! left (processes in the scope's cgroups, the cgroups).
#![allow(dead_code)] // Each test file uses its own part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use retz_executor::cgroup::CgroupConfig;
use retz_executor::pinning::PinningReport;
use retz_executor::runtime::{RuntimeConfig, TaskEvent, TaskLaunch, TaskRuntime, TaskUpdate};
use retz_executor::spec::{MemPolicy, TaskSpec};
use retz_executor::sys::linux::LinuxSys;
use retz_placement::{AffinityPolicy, CpuId};
use tokio::sync::mpsc::UnboundedReceiver;

pub struct Rig {
    pub tmp: tempfile::TempDir,
    pub rt: TaskRuntime,
    pub events: UnboundedReceiver<TaskEvent>,
}

impl Drop for Rig {
    /// After a failed assertion the test ends without `shutdown`: remove what it left
    /// (processes in the scope's cgroups, the cgroups) so no test leaks into the machine.
    fn drop(&mut self) {
        let Ok(cgroups) = self.rt.cgroups() else {
            return;
        };
        let scope = cgroups.scope().to_path_buf();
        let name = scope.file_name().map(|n| n.to_owned()).unwrap_or_default();
        let mut scopes = vec![scope];
        // The memory, freezer and devices hierarchies' scopes have the same name somewhere there.
        let mut todo = vec![
            PathBuf::from("/sys/fs/cgroup/memory"),
            PathBuf::from("/sys/fs/cgroup/freezer"),
            PathBuf::from("/sys/fs/cgroup/devices"),
        ];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if path.file_name() == Some(name.as_os_str()) {
                        scopes.push(path);
                    } else {
                        todo.push(path);
                    }
                }
            }
        }
        for scope in scopes {
            let tasks: Vec<PathBuf> = std::fs::read_dir(&scope)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            for dir in tasks.iter().chain(std::iter::once(&scope)) {
                let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
                for _ in 0..100 {
                    let procs =
                        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                    if procs.trim().is_empty() {
                        break;
                    }
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Skips (or fails under CI) when `ok` is false.
pub use retz_testkit::require;

pub async fn rig(name: &str) -> Option<Rig> {
    rig_with(name, |_| {}).await
}

/// A rig whose runtime configuration `configure` adjusts.
pub async fn rig_with(name: &str, configure: impl FnOnce(&mut RuntimeConfig)) -> Option<Rig> {
    if !require(nix::unistd::geteuid().is_root(), "not running as root") {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut config = RuntimeConfig::new(tmp.path());
    config.cgroups = CgroupConfig {
        scope: format!("test-{}-{name}", std::process::id()),
        ..CgroupConfig::default()
    };
    config.base_env = std::env::vars().collect();
    config.default_kill_grace = Duration::from_secs(2);
    configure(&mut config);
    let (rt, events) = TaskRuntime::start(Arc::new(LinuxSys), config)
        .await
        .unwrap();
    if let Err(why) = rt.cgroups() {
        require(false, &format!("cgroups unusable: {why}"));
        return None;
    }
    let cpus = &rt.machine().cpus;
    if !require(
        cpus.contains(CpuId(0)) && cpus.contains(CpuId(1)),
        "CPUs 0 and 1 are not both allowed",
    ) {
        return None;
    }
    Some(Rig { tmp, rt, events })
}

pub fn spec(command: &str, cpuset: &str) -> TaskSpec {
    TaskSpec {
        command: command.into(),
        env: BTreeMap::new(),
        cpus: 1,
        mem_mb: 256,
        gpus: 0,
        gpu_ids: None,
        cpuset: Some(cpuset.parse().unwrap()),
        mem_nodes: Some("0".parse().unwrap()),
        affinity: AffinityPolicy::NumaStrict,
        mem_policy: Some(MemPolicy::Bind),
        pin_required: true,
        job_id: Some(7),
        app: Some("app".into()),
        ports: Vec::new(),
        user: None,
    }
}

pub fn launch(rig: &Rig, id: &str, spec: TaskSpec) {
    rig.rt
        .launch(TaskLaunch {
            task_id: id.into(),
            spec,
            kill_grace: None,
        })
        .unwrap();
}

pub async fn next(rig: &mut Rig) -> TaskEvent {
    tokio::time::timeout(Duration::from_secs(60), rig.events.recv())
        .await
        .expect("an event within 60 s")
        .expect("channel open")
}

pub async fn running(rig: &mut Rig) -> (String, u32, PinningReport) {
    let ev = next(rig).await;
    match ev.update {
        TaskUpdate::Running { pid, pinning, .. } => (ev.task_id, pid, *pinning),
        other => panic!("{}: expected Running, got {other:?}", ev.task_id),
    }
}

pub async fn finished(rig: &mut Rig) -> String {
    let ev = next(rig).await;
    match ev.update {
        TaskUpdate::Finished { .. } => ev.task_id,
        other => panic!("{}: expected Finished, got {other:?}", ev.task_id),
    }
}

pub fn stdout(rig: &Rig, id: &str) -> String {
    std::fs::read_to_string(rig.tmp.path().join("tasks").join(id).join("stdout")).unwrap()
}

/// Whether any non-zombie process is in process group `pgid` (killed orphans may linger
/// as zombies until init reaps them; they run nothing).
pub fn group_alive(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(Result::ok).any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...: parse after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

/// Whether `gone` holds within 10 s. A process the executor killed has left its cgroup
/// (which the executor then removed) before the kernel finishes its exit, so for a moment
/// it may still show in /proc as running; it runs nothing of the job's any more.
pub async fn soon(mut gone: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if gone() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    gone()
}

/// Alive and not a zombie (an orphan killed by us may wait for init to reap it).
pub fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(false)
}

/// Host pids in the cgroup directory `dir`.
pub fn cgroup_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits (up to 30 s) until `path` exists.
pub async fn wait_for_file(path: &Path) {
    for _ in 0..600 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not appear within 30 s", path.display());
}
