//! A recording fake of [`Sys`] for tests and benches: cgroupfs and procfs in a temporary
//! directory, and fake processes.
//!
//! The fake enforces the kernel rules the executor depends on, so ordering bugs fail
//! here as they would on a real machine:
//! - v1 cpuset: a new cgroup starts with empty `cpuset.cpus`/`cpuset.mems`; attaching a
//!   process to it before both are set fails with `ENOSPC`; a child's `cpuset.cpus` must
//!   be a subset of its parent's (`EINVAL`).
//! - v2: controller files appear in a child only when the parent enabled the controller in
//!   `cgroup.subtree_control`; enabling needs the controller in `cgroup.controllers`
//!   (`ENOENT`) and, below the root, a cgroup without processes (`EBUSY`); a cgroup with
//!   enabled subtree controllers takes no processes (`EBUSY`); `cgroup.kill` kills.
//! - `rmdir` of a cgroup with processes or children fails with `EBUSY` and removes the
//!   control files with the directory, as cgroupfs does.
//! - Processes: each has its own process group; `SIGTERM` ends it unless told to ignore it;
//!   `SIGKILL` always ends it; a dead process leaves every `cgroup.procs` and `/proc`.
//!
//! Mutating calls are recorded in order as [`Op`]s. `/proc/self/{status,cgroup}` and
//! `/proc/<pid>/{status,cgroup}` are generated from the fake's state on read.

mod cgroupfs;
mod procfs;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::{ExitStatus, Signal, SignalTarget, SpawnError, SpawnPlan, Spawned, Sys};
use crate::idlist::IdList;
use cgroupfs::{all_cgroups, read_procs, subdirs, write_procs};

/// Which cgroup hierarchies the fake machine mounts under its cgroup root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeLayout {
    /// cgroup v1: `cpuset/` and `memory/` hierarchies.
    V1,
    /// v1 plus a `unified/` cgroup2 mount without controllers (this project's test
    /// machine).
    Hybrid,
    /// Pure cgroup v2 at the root with `cpuset` and `memory` available.
    V2,
    /// Pure cgroup v2 without the `cpuset` controller.
    V2NoCpuset,
    /// Nothing mounted.
    Empty,
}

/// One recorded mutating call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `mkdir`.
    Mkdir(PathBuf),
    /// `rmdir` (recorded whether or not it succeeded).
    Rmdir(PathBuf),
    /// A write to a file.
    Write(PathBuf, String),
    /// A spawn.
    Spawn {
        argv: Vec<String>,
        env: Vec<(String, String)>,
        cwd: PathBuf,
        cgroup_procs: Vec<PathBuf>,
        affinity: Option<String>,
        mem_policy: Option<String>,
    },
    /// A process joined a cgroup (its `cgroup.procs` file).
    Attach { procs: PathBuf, pid: u32 },
    /// A signal.
    Signal(SignalTarget, Signal),
}

/// How a fake process behaves, chosen per spawn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeBehavior {
    /// Exit right after starting with this status.
    pub exit_at_once: Option<ExitStatus>,
    /// Survive `SIGTERM`.
    pub ignore_term: bool,
    /// Extra processes started in the task's cgroups but in their own process groups
    /// (like a daemon that called `setsid`); only a cgroup sweep reaches them.
    pub escaped_children: u32,
    /// Report this `Cpus_allowed_list` instead of the real one (simulates drift).
    pub reported_cpus: Option<IdList>,
    /// Fail the exec with this errno.
    pub exec_errno: Option<i32>,
}

type BehaviorFn = dyn Fn(&SpawnPlan) -> FakeBehavior + Send + Sync;

struct FakeProc {
    pgid: u32,
    alive: bool,
    ignore_term: bool,
    affinity: Option<IdList>,
    reported_cpus: Option<IdList>,
    exit_tx: Option<oneshot::Sender<ExitStatus>>,
}

struct State {
    ops: Vec<Op>,
    next_pid: u32,
    procs: BTreeMap<u32, FakeProc>,
    behavior: Arc<BehaviorFn>,
    cap_sys_admin: bool,
    read_only: bool,
    write_failures: BTreeMap<PathBuf, i32>,
    machine_cpus: IdList,
    machine_mems: IdList,
    own_cgroups: BTreeMap<String, String>,
}

/// The fake kernel. Cloning shares the state.
#[derive(Clone)]
pub struct FakeSys {
    cg_root: PathBuf,
    proc_root: PathBuf,
    state: Arc<Mutex<State>>,
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl FakeSys {
    /// A fake machine with CPUs 0-3 and NUMA node 0, its cgroupfs at `<dir>/cgroup` and
    /// its procfs at `<dir>/proc`.
    pub fn new(dir: &Path, layout: FakeLayout) -> io::Result<Self> {
        Self::with_machine(dir, layout, "0-3", "0")
    }

    /// A fake machine with the given CPUs and NUMA nodes (list format).
    pub fn with_machine(
        dir: &Path,
        layout: FakeLayout,
        cpus: &str,
        mems: &str,
    ) -> io::Result<Self> {
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidInput, e);
        let machine_cpus = IdList::parse(cpus).map_err(invalid)?;
        let machine_mems = IdList::parse(mems).map_err(invalid)?;
        let cg_root = dir.join("cgroup");
        let proc_root = dir.join("proc");
        std::fs::create_dir_all(&cg_root)?;
        std::fs::create_dir_all(proc_root.join("self"))?;
        let put = |p: PathBuf, s: &str| std::fs::write(p, s);
        let v1 = |name: &str, files: &[(&str, String)]| -> io::Result<()> {
            let root = cg_root.join(name);
            std::fs::create_dir_all(&root)?;
            put(root.join("cgroup.procs"), "")?;
            put(root.join("tasks"), "")?;
            for (f, v) in files {
                put(root.join(f), v)?;
            }
            Ok(())
        };
        let v2 = |root: &Path, controllers: &str| -> io::Result<()> {
            std::fs::create_dir_all(root)?;
            put(root.join("cgroup.procs"), "")?;
            put(root.join("cgroup.controllers"), &format!("{controllers}\n"))?;
            put(root.join("cgroup.subtree_control"), "\n")
        };
        match layout {
            FakeLayout::V1 | FakeLayout::Hybrid => {
                v1(
                    "cpuset",
                    &[
                        ("cpuset.cpus", format!("{machine_cpus}\n")),
                        ("cpuset.mems", format!("{machine_mems}\n")),
                        ("cgroup.clone_children", "0\n".into()),
                    ],
                )?;
                v1(
                    "memory",
                    &[("memory.limit_in_bytes", "9223372036854771712\n".into())],
                )?;
                if layout == FakeLayout::Hybrid {
                    v2(&cg_root.join("unified"), "")?;
                }
            }
            FakeLayout::V2 => v2(&cg_root, "cpuset cpu io memory pids")?,
            FakeLayout::V2NoCpuset => v2(&cg_root, "cpu io memory pids")?,
            FakeLayout::Empty => {}
        }
        let behavior: Arc<BehaviorFn> = Arc::new(|_: &SpawnPlan| FakeBehavior::default());
        Ok(Self {
            cg_root,
            proc_root,
            state: Arc::new(Mutex::new(State {
                ops: Vec::new(),
                next_pid: 1000,
                procs: BTreeMap::new(),
                behavior,
                cap_sys_admin: true,
                read_only: false,
                write_failures: BTreeMap::new(),
                machine_cpus,
                machine_mems,
                own_cgroups: BTreeMap::new(),
            })),
        })
    }

    /// The fake `/sys/fs/cgroup`.
    pub fn cgroup_root(&self) -> &Path {
        &self.cg_root
    }

    /// The fake `/proc`.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock only happens in a failing test; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Chooses how each spawned process behaves.
    pub fn set_behavior(&self, f: impl Fn(&SpawnPlan) -> FakeBehavior + Send + Sync + 'static) {
        self.lock().behavior = Arc::new(f);
    }

    /// Whether the fake process holds `CAP_SYS_ADMIN` (default yes).
    pub fn set_cap_sys_admin(&self, yes: bool) {
        self.lock().cap_sys_admin = yes;
    }

    /// Makes the cgroupfs read-only (writes fail with `EROFS`, `is_writable` is false).
    pub fn set_read_only(&self, yes: bool) {
        self.lock().read_only = yes;
    }

    /// Makes writes to `path` fail with `errno` (for a `cgroup.procs` file, also a
    /// process joining that cgroup at spawn).
    pub fn fail_writes(&self, path: impl Into<PathBuf>, errno: i32) {
        self.lock().write_failures.insert(path.into(), errno);
    }

    /// Puts the fake executor in cgroup `path` of the hierarchy `name` (`cpuset`,
    /// `memory`, or `""` for cgroup v2), as `/proc/self/cgroup` reports it.
    pub fn set_own_cgroup(&self, name: &str, path: &str) {
        self.lock().own_cgroups.insert(name.into(), path.into());
    }

    /// The mutating calls so far.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().ops.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_ops(&self) {
        self.lock().ops.clear();
    }

    /// Pids of the fake processes still alive.
    pub fn alive_pids(&self) -> Vec<u32> {
        self.lock()
            .procs
            .iter()
            .filter(|(_, p)| p.alive)
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// Makes a fake process exit with `status` (as if it finished on its own).
    pub fn exit(&self, pid: u32, status: ExitStatus) -> bool {
        let mut st = self.lock();
        self.die(&mut st, pid, status)
    }

    fn die(&self, st: &mut State, pid: u32, status: ExitStatus) -> bool {
        let Some(p) = st.procs.get_mut(&pid).filter(|p| p.alive) else {
            return false;
        };
        p.alive = false;
        if let Some(tx) = p.exit_tx.take() {
            let _ = tx.send(status);
        }
        for dir in all_cgroups(&self.cg_root) {
            let procs = read_procs(&dir);
            if procs.contains(&pid) {
                write_procs(&dir, procs.into_iter().filter(|p| *p != pid));
            }
        }
        true
    }
}

impl Sys for FakeSys {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        if let Ok(rel) = path.strip_prefix(&self.proc_root) {
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let st = self.lock();
            return match parts.as_slice() {
                [who, file] => self.proc_file(&st, who, file),
                _ => Err(errno(libc::ENOENT)),
            };
        }
        std::fs::read_to_string(path)
    }

    fn write_file(&self, path: &Path, contents: &str) -> io::Result<()> {
        let mut st = self.lock();
        st.ops.push(Op::Write(path.to_owned(), contents.to_owned()));
        if let Some(&code) = st.write_failures.get(path) {
            return Err(errno(code));
        }
        if st.read_only && path.starts_with(&self.cg_root) {
            return Err(errno(libc::EROFS));
        }
        if !path.is_file() {
            return Err(errno(libc::ENOENT));
        }
        self.write_cgroup_file(&mut st, path, contents)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.ops.push(Op::Mkdir(path.to_owned()));
        if st.read_only && path.starts_with(&self.cg_root) {
            return Err(errno(libc::EROFS));
        }
        std::fs::create_dir(path)?;
        self.populate_cgroup(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.ops.push(Op::Rmdir(path.to_owned()));
        if path.join("cgroup.procs").is_file() {
            if !read_procs(path).is_empty() || !subdirs(path).is_empty() {
                return Err(errno(libc::EBUSY));
            }
            for entry in std::fs::read_dir(path)? {
                std::fs::remove_file(entry?.path())?;
            }
        }
        std::fs::remove_dir(path)
    }

    fn list_dirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        if !path.is_dir() {
            return Err(errno(libc::ENOENT));
        }
        Ok(subdirs(path))
    }

    fn exists(&self, path: &Path) -> bool {
        if let Ok(rel) = path.strip_prefix(&self.proc_root) {
            let mut parts = rel.components();
            return match parts.next().and_then(|c| c.as_os_str().to_str()) {
                Some("self") => true,
                Some(pid) => pid
                    .parse::<u32>()
                    .ok()
                    .is_some_and(|pid| self.lock().procs.get(&pid).is_some_and(|p| p.alive)),
                None => true,
            };
        }
        path.exists()
    }

    fn is_writable(&self, path: &Path) -> bool {
        !(self.lock().read_only && path.starts_with(&self.cg_root)) && path.exists()
    }

    fn has_cap_sys_admin(&self) -> io::Result<bool> {
        Ok(self.lock().cap_sys_admin)
    }

    fn spawn(&self, plan: &SpawnPlan) -> Result<Spawned, SpawnError> {
        let mut st = self.lock();
        st.ops.push(Op::Spawn {
            argv: plan.argv.clone(),
            env: plan.env.clone(),
            cwd: plan.cwd.clone(),
            cgroup_procs: plan.cgroup_procs.clone(),
            affinity: plan.affinity.as_ref().map(ToString::to_string),
            mem_policy: plan.mem_policy.as_ref().map(|(p, n)| format!("{p} {n}")),
        });
        let behavior = (st.behavior.clone())(plan);
        if plan.argv.is_empty() {
            return Err(SpawnError::Invalid("empty argv".into()));
        }
        for (what, path) in [("stdout", &plan.stdout), ("stderr", &plan.stderr)] {
            std::fs::write(path, "").map_err(|source| SpawnError::Output {
                what,
                path: path.clone(),
                source,
            })?;
        }
        let pid = st.next_pid;
        st.next_pid += 1 + behavior.escaped_children;
        let (tx, rx) = oneshot::channel();
        st.procs.insert(
            pid,
            FakeProc {
                pgid: pid,
                alive: true,
                ignore_term: behavior.ignore_term,
                affinity: plan.affinity.clone(),
                reported_cpus: behavior.reported_cpus.clone(),
                exit_tx: Some(tx),
            },
        );
        let fail = |st: &mut State, err: SpawnError| {
            self.die(st, pid, ExitStatus::Code(127));
            Err(err)
        };
        for procs in &plan.cgroup_procs {
            let dir = procs.parent().unwrap_or(Path::new("/"));
            if let Err(source) = self.attach(&mut st, dir, pid) {
                return fail(
                    &mut st,
                    SpawnError::Attach {
                        path: procs.clone(),
                        source,
                    },
                );
            }
        }
        if let Some(cpus) = &plan.affinity
            && (cpus.is_empty() || !cpus.is_subset(&st.machine_cpus))
        {
            let err = SpawnError::Affinity {
                cpus: cpus.to_string(),
                source: errno(libc::EINVAL),
            };
            return fail(&mut st, err);
        }
        if let Some((policy, nodes)) = &plan.mem_policy
            && (nodes.is_empty() || !nodes.is_subset(&st.machine_mems))
        {
            let err = SpawnError::MemPolicy {
                policy: *policy,
                nodes: nodes.to_string(),
                source: errno(libc::EINVAL),
            };
            return fail(&mut st, err);
        }
        if let Some(code) = behavior.exec_errno {
            let err = SpawnError::Exec {
                program: plan.argv[0].clone(),
                cwd: plan.cwd.clone(),
                source: errno(code),
            };
            return fail(&mut st, err);
        }
        for i in 1..=behavior.escaped_children {
            let child = pid + i;
            st.procs.insert(
                child,
                FakeProc {
                    pgid: child,
                    alive: true,
                    ignore_term: true,
                    affinity: plan.affinity.clone(),
                    reported_cpus: None,
                    exit_tx: None,
                },
            );
            for procs in &plan.cgroup_procs {
                let dir = procs.parent().unwrap_or(Path::new("/"));
                // Joined the parent's cgroups by fork; cannot fail after the parent did.
                let _ = self.attach(&mut st, dir, child);
            }
        }
        if let Some(status) = behavior.exit_at_once {
            self.die(&mut st, pid, status);
        }
        let exit = Box::pin(async move {
            rx.await
                .map_err(|_| io::Error::other("fake process vanished without exit status"))
        });
        Ok(Spawned { pid, exit })
    }

    fn signal(&self, target: SignalTarget, signal: Signal) -> io::Result<()> {
        let mut st = self.lock();
        st.ops.push(Op::Signal(target, signal));
        let pids: Vec<u32> = st
            .procs
            .iter()
            .filter(|(pid, p)| {
                p.alive
                    && match target {
                        SignalTarget::Process(t) => **pid == t,
                        SignalTarget::Group(g) => p.pgid == g,
                    }
            })
            .map(|(pid, _)| *pid)
            .collect();
        if pids.is_empty() {
            return Err(errno(libc::ESRCH));
        }
        for pid in pids {
            let ignore = st.procs.get(&pid).is_some_and(|p| p.ignore_term);
            match signal {
                Signal::Term if ignore => {}
                Signal::Term => {
                    self.die(&mut st, pid, ExitStatus::Signal(libc::SIGTERM));
                }
                Signal::Kill => {
                    self.die(&mut st, pid, ExitStatus::Signal(libc::SIGKILL));
                }
            }
        }
        Ok(())
    }
}
