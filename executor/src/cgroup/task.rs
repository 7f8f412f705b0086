//! One cgroup per task: created with its cpuset (and memory limit) written before any
//! process joins, emptied and removed when the task ends.
//!
//! Emptying counts every process found and kills it: in v2 with `cgroup.kill`; in v1 the
//! task's freezer cgroup (when the freezer hierarchy is mounted) is frozen first, so
//! nothing forks while its processes get `SIGKILL`, then thawed so they die; without a
//! freezer, `SIGKILL` to each listed process, in rounds until the cgroup is empty.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::hierarchy::{Cgroups, write};
use super::{CgroupError, CgroupVersion};
use crate::sys::{Signal, SignalTarget, Sys, is_gone};
use retz_placement::{CpuSet, NodeSet};

/// Rounds of kill-and-check before giving up on emptying a cgroup.
const KILL_ROUNDS: u32 = 100;
/// Pause between rounds; a killed process leaves `cgroup.procs` within microseconds to
/// milliseconds.
const ROUND_PAUSE: Duration = Duration::from_millis(10);
/// Pause between checks of a freezing cgroup.
const FREEZE_PAUSE: Duration = Duration::from_millis(1);

/// A task's cgroup(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCgroup {
    /// Version in use.
    pub version: CgroupVersion,
    /// The directory in the cpuset hierarchy (the only one in v2).
    pub cpuset_dir: PathBuf,
    /// The v1 memory hierarchy directory, when a memory limit was applied in v1.
    pub memory_dir: Option<PathBuf>,
    /// The v1 freezer hierarchy directory, when that hierarchy is used.
    pub freezer_dir: Option<PathBuf>,
    /// `cpuset.cpus` as written (v2: `None` when inherited).
    pub cpus: Option<CpuSet>,
    /// `cpuset.mems` as written (v2: `None` when inherited).
    pub mems: Option<NodeSet>,
    /// The memory limit applied, in bytes.
    pub memory_limit: Option<u64>,
    /// The v1 devices hierarchy directory, when GPU devices are denied to the task.
    pub devices_dir: Option<PathBuf>,
    /// The `devices.deny` rules written there (`c 195:N rwm`).
    pub denied_devices: Vec<String>,
    /// `(hierarchy name, path)` as `/proc/<pid>/cgroup` shows membership (`""` for v2).
    pub expected: Vec<(String, String)>,
}

impl TaskCgroup {
    /// The task's cgroup directories, cpuset hierarchy first.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.cpuset_dir.clone()];
        dirs.extend(self.memory_dir.clone());
        dirs.extend(self.freezer_dir.clone());
        dirs.extend(self.devices_dir.clone());
        dirs
    }

    /// The `cgroup.procs` files the task process joins, in order.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().iter().map(|d| d.join("cgroup.procs")).collect()
    }
}

impl Cgroups {
    /// Creates the cgroup(s) of task `key` under the scope: `cpuset.cpus` and
    /// `cpuset.mems` (inherited from the scope in v1 when `None`), then the memory limit.
    /// A stale cgroup of the same name (a previous run) is emptied and recreated. On error
    /// nothing is left behind.
    pub async fn create_task(
        &self,
        sys: &dyn Sys,
        key: &str,
        cpus: Option<&CpuSet>,
        mems: Option<&NodeSet>,
        memory_limit: Option<u64>,
    ) -> Result<TaskCgroup, CgroupError> {
        let cpuset_dir = self.cpuset.scope.join(key);
        let memory_dir = match (&self.memory, memory_limit) {
            (Some(m), Some(_)) if m.scope != self.cpuset.scope => Some(m.scope.join(key)),
            _ => None,
        };
        let freezer_dir = self.freezer.as_ref().map(|f| f.scope.join(key));
        let mut created = Vec::new();
        let result = self
            .fill_task(
                sys,
                &cpuset_dir,
                [memory_dir.as_deref(), freezer_dir.as_deref()],
                cpus,
                mems,
                memory_limit,
                &mut created,
            )
            .await;
        match result {
            Ok((cpus, mems, memory_limit)) => {
                let rel = |mount: &Path, dir: &Path| {
                    format!("/{}", dir.strip_prefix(mount).unwrap_or(dir).display())
                };
                let mut expected = vec![(
                    self.cpuset.name.clone(),
                    rel(&self.cpuset.mount, &cpuset_dir),
                )];
                if let (Some(m), Some(d)) = (&self.memory, &memory_dir) {
                    expected.push((m.name.clone(), rel(&m.mount, d)));
                }
                if let (Some(f), Some(d)) = (&self.freezer, &freezer_dir) {
                    expected.push((f.name.clone(), rel(&f.mount, d)));
                }
                Ok(TaskCgroup {
                    version: self.version,
                    cpuset_dir,
                    memory_dir,
                    freezer_dir,
                    cpus,
                    mems,
                    memory_limit,
                    devices_dir: None,
                    denied_devices: Vec::new(),
                    expected,
                })
            }
            Err(e) => {
                for dir in created.iter().rev() {
                    // Best effort: the directory was just made and holds no process.
                    let _ = sys.remove_dir(dir);
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fill_task(
        &self,
        sys: &dyn Sys,
        cpuset_dir: &Path,
        [memory_dir, freezer_dir]: [Option<&Path>; 2],
        cpus: Option<&CpuSet>,
        mems: Option<&NodeSet>,
        memory_limit: Option<u64>,
        created: &mut Vec<PathBuf>,
    ) -> Result<(Option<CpuSet>, Option<NodeSet>, Option<u64>), CgroupError> {
        let mut dirs = vec![cpuset_dir];
        dirs.extend(memory_dir);
        dirs.extend(freezer_dir);
        for dir in &dirs {
            if sys.exists(dir) {
                empty_and_remove(sys, &[dir.to_path_buf()]).await?;
            }
            sys.create_dir(dir)
                .map_err(|e| CgroupError::new("create cgroup", *dir, e))?;
            created.push(dir.to_path_buf());
        }
        let (cpus, mems) = match self.version {
            CgroupVersion::V1 => {
                let scope = &self.cpuset.scope;
                (
                    Some(inherit(sys, scope, "cpuset.cpus", cpus)?),
                    Some(inherit(sys, scope, "cpuset.mems", mems)?),
                )
            }
            CgroupVersion::V2 => (cpus.cloned(), mems.cloned()),
        };
        if let Some(cpus) = &cpus {
            write(sys, &cpuset_dir.join("cpuset.cpus"), &cpus.to_string())?;
        }
        if let Some(mems) = &mems {
            write(sys, &cpuset_dir.join("cpuset.mems"), &mems.to_string())?;
        }
        let applied_limit = match (memory_limit, &self.memory) {
            (Some(bytes), Some(_)) => {
                let (dir, file) = match self.version {
                    CgroupVersion::V1 => {
                        (memory_dir.unwrap_or(cpuset_dir), "memory.limit_in_bytes")
                    }
                    CgroupVersion::V2 => (cpuset_dir, "memory.max"),
                };
                write(sys, &dir.join(file), &bytes.to_string())?;
                Some(bytes)
            }
            _ => None,
        };
        Ok((cpus, mems, applied_limit))
    }

    /// Kills every process left in the task's cgroups and removes them. Returns how many
    /// processes were found there.
    pub async fn destroy_task(
        &self,
        sys: &dyn Sys,
        cgroup: &TaskCgroup,
    ) -> Result<u32, CgroupError> {
        empty_and_remove(sys, &cgroup.dirs()).await
    }
}

/// Pids listed in `dir/cgroup.procs`; a vanished cgroup has none.
pub(super) fn procs(sys: &dyn Sys, dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let file = dir.join("cgroup.procs");
    match sys.read_file(&file) {
        Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(CgroupError::new("read", file, e)),
    }
}

/// Kills every process in `dirs` (and their sub-cgroups), freezing the v1 freezer
/// cgroups among them first, then removes them deepest first. Returns how many distinct
/// processes were found.
pub(super) async fn empty_and_remove(sys: &dyn Sys, dirs: &[PathBuf]) -> Result<u32, CgroupError> {
    // Depth-first list of every cgroup below and including `dirs`.
    let mut all = Vec::new();
    let mut todo: Vec<PathBuf> = dirs.to_vec();
    while let Some(dir) = todo.pop() {
        if let Ok(children) = sys.list_dirs(&dir) {
            todo.extend(children);
        }
        all.push(dir);
    }
    all.sort_by_key(|d| std::cmp::Reverse(d.components().count()));

    let mut seen = BTreeSet::new();
    let mut present = Vec::new();
    for dir in &all {
        present.extend(procs(sys, dir)?);
    }
    let freezers: Vec<&PathBuf> = all
        .iter()
        .filter(|d| sys.exists(&d.join("freezer.state")))
        .collect();
    if !present.is_empty()
        && !freezers.is_empty()
        && let Err(e) = freeze_and_kill(sys, &all, &freezers, &mut seen).await
    {
        tracing::warn!("{e}; killing the task's processes without freezing them");
    }

    let mut last_err = None;
    for round in 0..KILL_ROUNDS {
        let mut alive = 0;
        for dir in &all {
            let pids = procs(sys, dir)?;
            alive += pids.len();
            if pids.is_empty() {
                continue;
            }
            seen.extend(pids.iter().copied());
            let kill_file = dir.join("cgroup.kill");
            if sys.exists(&kill_file) && write(sys, &kill_file, "1").is_ok() {
                continue;
            }
            for pid in pids {
                if let Err(e) = sys.signal(SignalTarget::Process(pid), Signal::Kill)
                    && !is_gone(&e)
                {
                    last_err = Some(CgroupError::new(
                        format!("SIGKILL process {pid} of"),
                        dir,
                        e,
                    ));
                }
            }
        }
        if alive == 0 {
            break;
        }
        if round + 1 == KILL_ROUNDS {
            return Err(last_err.unwrap_or_else(|| {
                CgroupError::new(
                    "empty",
                    &all[0],
                    io::Error::other(format!("{alive} process(es) survived SIGKILL")),
                )
            }));
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
    for dir in &all {
        let mut attempt = 0;
        loop {
            match sys.remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                // A killed process may still be leaving the cgroup.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < KILL_ROUNDS => {
                    attempt += 1;
                    tokio::time::sleep(ROUND_PAUSE).await;
                }
                Err(e) => return Err(CgroupError::new("remove cgroup", dir, e)),
            }
        }
    }
    Ok(seen.len() as u32)
}

/// v1: freezes `freezers` (waiting until the kernel says FROZEN), sends `SIGKILL` to
/// every process of `all` while nothing can fork, then thaws so the signals take effect.
async fn freeze_and_kill(
    sys: &dyn Sys,
    all: &[PathBuf],
    freezers: &[&PathBuf],
    seen: &mut BTreeSet<u32>,
) -> Result<(), CgroupError> {
    let mut result = Ok(());
    'freeze: for dir in freezers {
        let state = dir.join("freezer.state");
        if let Err(e) = write(sys, &state, "FROZEN") {
            result = Err(e);
            break;
        }
        for _ in 0..KILL_ROUNDS {
            match sys.read_file(&state) {
                Ok(s) if s.trim() == "FROZEN" => continue 'freeze,
                Ok(_) => tokio::time::sleep(FREEZE_PAUSE).await,
                Err(e) => {
                    result = Err(CgroupError::new("read", &state, e));
                    break 'freeze;
                }
            }
        }
    }
    for dir in all {
        for pid in procs(sys, dir).unwrap_or_default() {
            seen.insert(pid);
            // Whatever fails here is retried by the kill rounds that follow.
            let _ = sys.signal(SignalTarget::Process(pid), Signal::Kill);
        }
    }
    // Always thaw: a frozen process never dies of its SIGKILL.
    for dir in freezers {
        if let Err(e) = write(sys, &dir.join("freezer.state"), "THAWED") {
            result = result.and(Err(e));
        }
    }
    result
}

/// `given`, else the list in the scope's `file` (v1 levels inherit their parent's).
fn inherit<T>(sys: &dyn Sys, scope: &Path, file: &str, given: Option<&T>) -> Result<T, CgroupError>
where
    T: Clone + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match given {
        Some(list) => Ok(list.clone()),
        None => {
            let path = scope.join(file);
            let text = sys
                .read_file(&path)
                .map_err(|e| CgroupError::new("read", &path, e))?;
            text.parse().map_err(|e: T::Err| {
                CgroupError::new("parse", &path, io::Error::other(e.to_string()))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::CgroupConfig;
    use crate::sys::SpawnPlan;
    use crate::sys::fake::{FakeBehavior, FakeLayout, FakeSys, Op};

    fn setup(layout: FakeLayout) -> (tempfile::TempDir, FakeSys, Cgroups) {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), layout).unwrap();
        let config = CgroupConfig {
            root: fake.cgroup_root().to_path_buf(),
            parent: "retz".into(),
            scope: "e".into(),
            memory_limit: true,
            dev_root: PathBuf::from("/nonexistent"),
        };
        let cg = Cgroups::setup(&fake, &config, fake.proc_root()).unwrap();
        fake.clear_ops();
        (tmp, fake, cg)
    }

    fn plan(tmp: &Path, cg: &TaskCgroup) -> SpawnPlan {
        SpawnPlan {
            argv: vec!["sh".into()],
            env: vec![],
            cwd: tmp.to_path_buf(),
            stdout: tmp.join("o"),
            stderr: tmp.join("e"),
            cgroup_procs: cg.procs_files(),
            affinity: cg.cpus.clone(),
            mem_policy: None,
            identity: None,
            pid_namespace: false,
        }
    }

    #[tokio::test]
    async fn v1_task_cpuset_written_before_the_pid_joins() {
        let (tmp, fake, cgs) = setup(FakeLayout::V1);
        let one = "1".parse::<CpuSet>().unwrap();
        let cg = cgs
            .create_task(&fake, "t1", Some(&one), None, Some(64 << 20))
            .await
            .unwrap();
        let root = fake.cgroup_root();
        let dir = root.join("cpuset/retz/e/t1");
        let mem = root.join("memory/retz/e/t1");
        assert_eq!(cg.cpuset_dir, dir);
        assert_eq!(
            cg.mems.as_ref().unwrap().to_string(),
            "0",
            "inherited from the scope"
        );
        assert_eq!(
            cg.expected,
            vec![
                ("cpuset".to_owned(), "/retz/e/t1".to_owned()),
                ("memory".to_owned(), "/retz/e/t1".to_owned())
            ]
        );
        let child = fake.spawn(&plan(tmp.path(), &cg)).unwrap();
        let ops = fake.ops();
        let pos = |want: &Op| {
            ops.iter()
                .position(|op| op == want)
                .unwrap_or_else(|| panic!("{want:?} in {ops:#?}"))
        };
        let cpus = pos(&Op::Write(dir.join("cpuset.cpus"), "1".into()));
        let mems = pos(&Op::Write(dir.join("cpuset.mems"), "0".into()));
        let limit = pos(&Op::Write(
            mem.join("memory.limit_in_bytes"),
            (64u64 << 20).to_string(),
        ));
        let attach = pos(&Op::Attach {
            procs: dir.join("cgroup.procs"),
            pid: child.pid,
        });
        let attach_mem = pos(&Op::Attach {
            procs: mem.join("cgroup.procs"),
            pid: child.pid,
        });
        assert!(pos(&Op::Mkdir(dir.clone())) < cpus);
        assert!(
            cpus < mems && mems < attach && limit < attach_mem,
            "{ops:#?}"
        );

        fake.clear_ops();
        cgs.destroy_task(&fake, &cg).await.unwrap();
        assert!(!dir.exists() && !mem.exists());
        assert!(fake.alive_pids().is_empty());
        let ops = fake.ops();
        let kill = ops
            .iter()
            .position(|op| *op == Op::Signal(SignalTarget::Process(child.pid), Signal::Kill))
            .unwrap();
        let rmdir = ops
            .iter()
            .position(|op| *op == Op::Rmdir(dir.clone()))
            .unwrap();
        assert!(kill < rmdir);
    }

    #[tokio::test]
    async fn v2_task_uses_one_dir_and_cgroup_kill() {
        let (tmp, fake, cgs) = setup(FakeLayout::V2);
        let cpus = "2-3".parse::<CpuSet>().unwrap();
        let cg = cgs
            .create_task(&fake, "t", Some(&cpus), None, Some(1 << 30))
            .await
            .unwrap();
        let dir = fake.cgroup_root().join("retz/e/t");
        assert_eq!(cg.dirs(), vec![dir.clone()]);
        assert_eq!(cg.mems, None);
        assert_eq!(
            std::fs::read_to_string(dir.join("memory.max")).unwrap(),
            "1073741824\n"
        );
        assert_eq!(cg.expected, vec![(String::new(), "/retz/e/t".to_owned())]);
        fake.set_behavior(|_| FakeBehavior {
            escaped_children: 2,
            ..Default::default()
        });
        let _child = fake.spawn(&plan(tmp.path(), &cg)).unwrap();
        assert_eq!(fake.alive_pids().len(), 3);
        cgs.destroy_task(&fake, &cg).await.unwrap();
        assert!(fake.alive_pids().is_empty());
        assert!(
            fake.ops()
                .contains(&Op::Write(dir.join("cgroup.kill"), "1".into()))
        );
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn errors_carry_the_path_and_leave_nothing() {
        let (_tmp, fake, cgs) = setup(FakeLayout::V1);
        let dir = fake.cgroup_root().join("cpuset/retz/e/bad");
        let err = cgs
            .create_task(
                &fake,
                "bad",
                Some(&"9".parse::<CpuSet>().unwrap()),
                None,
                None,
            )
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.join("cpuset.cpus").display().to_string()),
            "{msg}"
        );
        assert!(!dir.exists());
        fake.fail_writes(
            fake.cgroup_root().join("cpuset/retz/e/x/cpuset.mems"),
            libc::EACCES,
        );
        let msg = cgs
            .create_task(&fake, "x", None, None, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("x/cpuset.mems") && msg.contains("CAP_SYS_ADMIN"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn stale_task_cgroup_is_replaced_and_scope_swept() {
        let (tmp, fake, cgs) = setup(FakeLayout::V1);
        let cg = cgs.create_task(&fake, "t", None, None, None).await.unwrap();
        let child = fake.spawn(&plan(tmp.path(), &cg)).unwrap();
        // Same task key again (executor restarted): the old process is killed first.
        let again = cgs.create_task(&fake, "t", None, None, None).await.unwrap();
        assert!(!fake.alive_pids().contains(&child.pid));
        let _child2 = fake.spawn(&plan(tmp.path(), &again)).unwrap();
        assert!(cgs.sweep(&fake).await.is_empty());
        assert!(fake.alive_pids().is_empty());
        assert!(!again.cpuset_dir.exists());
        assert!(cgs.remove_scope(&fake).await.is_empty());
        assert!(!cgs.scope().exists());
        assert!(
            fake.cgroup_root().join("cpuset/retz").exists(),
            "the parent stays"
        );
    }
}
