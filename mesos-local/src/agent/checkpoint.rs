//! What an agent writes to disk so that it can recover after a crash, as a Mesos agent
//! with checkpointing does: its id and port (`<work_dir>/meta/agent.json`), and per
//! executor of a checkpointing framework (`<work_dir>/meta/executors/<fid>/<eid>.json`,
//! mode 0600: it holds the executor's token) the framework and executor infos, the run
//! (container id, sandbox), the executor's pid with its start time (so a reused pid is
//! never taken for the executor), and its tasks with their latest states and the status
//! updates the master has not acknowledged yet.
//!
//! Every write is atomic and durable: a temporary file in the same directory, `fsync`,
//! `rename`, then `fsync` of the directory. A file that cannot be read back is skipped
//! with a warning (recovery never fails the agent's start).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use prost::Message;
use retz_proto::mesos::{ExecutorInfo, FrameworkInfo, TaskInfo, TaskStatus};
use serde::{Deserialize, Serialize};

/// The agent's identity across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMeta {
    /// The agent id.
    pub id: String,
    /// The port of its HTTP listener (the executors' `MESOS_AGENT_ENDPOINT`).
    pub port: u16,
}

/// One task of a checkpointed executor.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCheckpoint {
    /// The task as launched.
    pub info: TaskInfo,
    /// Its latest state.
    pub state: i32,
    /// Tasks launched in one LAUNCH_GROUP share a group number.
    pub group: Option<u64>,
    /// Updates accepted but not yet acknowledged by the master, oldest first.
    pub pending: Vec<TaskStatus>,
    /// Whether the executor showed it knows the task.
    pub known: bool,
}

/// One executor of a checkpointing framework.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorCheckpoint {
    /// Its framework.
    pub framework: FrameworkInfo,
    /// The executor.
    pub info: ExecutorInfo,
    /// Its run.
    pub container_id: String,
    /// Its sandbox.
    pub directory: PathBuf,
    /// Its pid (= process group) once started.
    pub pid: Option<u32>,
    /// The pid's start time (clock ticks since boot, `/proc/<pid>/stat` field 22).
    pub pid_start: Option<u64>,
    /// Its executor API token.
    pub token: String,
    /// Its tasks.
    pub tasks: Vec<TaskCheckpoint>,
}

#[derive(Serialize, Deserialize)]
struct TaskFile {
    info: String,
    state: i32,
    group: Option<u64>,
    pending: Vec<String>,
    known: bool,
}

#[derive(Serialize, Deserialize)]
struct ExecutorFile {
    framework: String,
    info: String,
    container_id: String,
    directory: PathBuf,
    pid: Option<u32>,
    pid_start: Option<u64>,
    token: String,
    tasks: Vec<TaskFile>,
}

fn hex(msg: &impl Message) -> String {
    msg.encode_to_vec()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unhex<M: Message + Default>(text: &str) -> Option<M> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    M::decode(bytes?.as_slice()).ok()
}

fn meta_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("meta")
}

fn executor_path(work_dir: &Path, fid: &str, eid: &str) -> PathBuf {
    meta_dir(work_dir)
        .join("executors")
        .join(fid)
        .join(format!("{eid}.json"))
}

/// Writes `bytes` to `path` atomically and durably (mode 0600).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The agent's id and port from an earlier run, if any.
pub fn read_agent_meta(work_dir: &Path) -> Option<AgentMeta> {
    let text = std::fs::read(meta_dir(work_dir).join("agent.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Records the agent's id and port.
pub fn write_agent_meta(work_dir: &Path, meta: &AgentMeta) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
    write_atomic(&meta_dir(work_dir).join("agent.json"), &bytes)
}

/// Writes an executor's checkpoint.
pub fn write_executor(work_dir: &Path, cp: &ExecutorCheckpoint) -> std::io::Result<()> {
    let fid = cp.framework.id.as_ref().map_or("", |f| f.value.as_str());
    let file = ExecutorFile {
        framework: hex(&cp.framework),
        info: hex(&cp.info),
        container_id: cp.container_id.clone(),
        directory: cp.directory.clone(),
        pid: cp.pid,
        pid_start: cp.pid_start,
        token: cp.token.clone(),
        tasks: cp
            .tasks
            .iter()
            .map(|t| TaskFile {
                info: hex(&t.info),
                state: t.state,
                group: t.group,
                pending: t.pending.iter().map(hex).collect(),
                known: t.known,
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    write_atomic(
        &executor_path(work_dir, fid, &cp.info.executor_id.value),
        &bytes,
    )
}

/// Removes an executor's checkpoint (it ended).
pub fn remove_executor(work_dir: &Path, fid: &str, eid: &str) {
    let path = executor_path(work_dir, fid, eid);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), "cannot remove a checkpoint: {e}"),
    }
}

fn parse_executor(bytes: &[u8]) -> Option<ExecutorCheckpoint> {
    let f: ExecutorFile = serde_json::from_slice(bytes).ok()?;
    let tasks = f
        .tasks
        .iter()
        .map(|t| {
            Some(TaskCheckpoint {
                info: unhex(&t.info)?,
                state: t.state,
                group: t.group,
                pending: t.pending.iter().map(|p| unhex(p)).collect::<Option<_>>()?,
                known: t.known,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(ExecutorCheckpoint {
        framework: unhex(&f.framework)?,
        info: unhex(&f.info)?,
        container_id: f.container_id,
        directory: f.directory,
        pid: f.pid,
        pid_start: f.pid_start,
        token: f.token,
        tasks,
    })
}

/// Every executor checkpoint under `work_dir` (unreadable ones are skipped with a
/// warning).
pub fn read_executors(work_dir: &Path) -> Vec<ExecutorCheckpoint> {
    let mut out = Vec::new();
    let Ok(frameworks) = std::fs::read_dir(meta_dir(work_dir).join("executors")) else {
        return out;
    };
    for fw in frameworks.flatten() {
        let Ok(files) = std::fs::read_dir(fw.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path).ok().and_then(|b| parse_executor(&b)) {
                Some(cp) if cp.framework.id.is_some() => out.push(cp),
                _ => {
                    tracing::warn!(path = %path.display(), "unreadable executor checkpoint skipped")
                }
            }
        }
    }
    out
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), if it exists.
pub fn pid_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After "(comm)": state is field 3, so starttime (22) is the 20th here.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` still runs (not a zombie).
pub fn same_process_alive(pid: u32, start: Option<u64>) -> bool {
    super::process::pid_alive(pid) && start.is_none_or(|s| pid_start_time(pid) == Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::{ExecutorId, FrameworkId, TaskId};

    fn sample() -> ExecutorCheckpoint {
        ExecutorCheckpoint {
            framework: FrameworkInfo {
                id: Some(FrameworkId { value: "F1".into() }),
                checkpoint: Some(true),
                ..Default::default()
            },
            info: ExecutorInfo {
                executor_id: ExecutorId { value: "E1".into() },
                ..Default::default()
            },
            container_id: "c1".into(),
            directory: "/sb".into(),
            pid: Some(42),
            pid_start: Some(7),
            token: "tok".into(),
            tasks: vec![TaskCheckpoint {
                info: TaskInfo {
                    task_id: TaskId { value: "t1".into() },
                    name: "日本".into(),
                    ..Default::default()
                },
                state: 1,
                group: Some(3),
                pending: vec![TaskStatus {
                    task_id: TaskId { value: "t1".into() },
                    uuid: Some(vec![0, 255, 16]),
                    ..Default::default()
                }],
                known: true,
            }],
        }
    }

    #[test]
    fn executor_checkpoints_round_trip_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let cp = sample();
        write_executor(dir.path(), &cp).unwrap();
        let path = dir.path().join("meta/executors/F1/E1.json");
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(!path.with_extension("tmp").exists());
        assert_eq!(read_executors(dir.path()), vec![cp.clone()]);
        // A damaged file is skipped, the others are read.
        std::fs::write(dir.path().join("meta/executors/F1/E2.json"), b"{garbage").unwrap();
        assert_eq!(read_executors(dir.path()), vec![cp]);
        remove_executor(dir.path(), "F1", "E1");
        remove_executor(dir.path(), "F1", "E2");
        assert!(read_executors(dir.path()).is_empty());
        assert!(!dir.path().join("meta/executors/F1").exists());
    }

    #[test]
    fn agent_meta_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_agent_meta(dir.path()), None);
        let meta = AgentMeta {
            id: "M-S0".into(),
            port: 40123,
        };
        write_agent_meta(dir.path(), &meta).unwrap();
        assert_eq!(read_agent_meta(dir.path()), Some(meta));
    }

    #[test]
    fn a_reused_pid_is_not_the_executor() {
        let me = std::process::id();
        let start = pid_start_time(me).unwrap();
        assert!(same_process_alive(me, Some(start)));
        assert!(!same_process_alive(me, Some(start + 1)));
        assert_eq!(unhex::<TaskInfo>("0"), None);
        assert_eq!(unhex::<TaskInfo>("zz"), None);
    }
}
