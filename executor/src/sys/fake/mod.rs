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
//!   `SIGKILL` always ends it; a dead process leaves every `cgroup.procs` and `/proc`
//!   (unless it is left a zombie: `State: Z`, every cgroup `/`, as the kernel shows an
//!   exited, unreaped task).
//! - PID namespaces: a task spawned with one owns its other processes; when its main
//!   process ends (other than by `SIGKILL` of the waiting process) they are killed and
//!   counted in [`TaskExit::reaped`], as the namespace's PID 1 does. Entering one needs
//!   `CAP_SYS_ADMIN`; switching to an [`Identity`] needs [`Credentials::can_switch_user`].
//! - A user database (`root`, `nobody`, plus [`FakeSys::add_user`]) and the executor's
//!   credentials ([`FakeSys::set_credentials`]; root with every capability by default).
//!   `chown` is recorded, not applied (tests need not run as root).
//!
//! Mutating calls are recorded in order as [`Op`]s. `/proc/self/{status,cgroup}` and
//! `/proc/<pid>/{status,cgroup,stat}` are generated from the fake's state on read, and a
//! listing of `/proc` shows the live processes.

mod cgroupfs;
mod procfs;
mod spawn;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::{
    Account, Credentials, ExitStatus, Identity, Signal, SignalTarget, SpawnError, SpawnPlan,
    Spawned, Sys, TaskExit,
};
use cgroupfs::{all_cgroups, read_procs, subdirs, write_procs};
use retz_placement::{CpuSet, NodeSet};

/// Which cgroup hierarchies the fake machine mounts under its cgroup root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeLayout {
    /// cgroup v1: `cpuset/` and `memory/` hierarchies.
    V1,
    /// v1 plus `freezer/` and a `unified/` cgroup2 mount without controllers (this
    /// project's test machine).
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
        identity: Option<Identity>,
        pid_namespace: bool,
    },
    /// A `chown`.
    Chown(PathBuf, Option<u32>, Option<u32>),
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
    pub reported_cpus: Option<CpuSet>,
    /// Fail the exec with this errno.
    pub exec_errno: Option<i32>,
    /// Processes left running in the task's process group and cgroups (like `sleep &`).
    pub background: u32,
    /// Exit (code 0) right after the first read of `/proc/<pid>/status`, staying a
    /// zombie: the race of a task ending during its pinning verification.
    pub exit_during_verify: bool,
    /// Entering the PID namespace fails with this errno.
    pub namespace_errno: Option<i32>,
}

type BehaviorFn = dyn Fn(&SpawnPlan) -> FakeBehavior + Send + Sync;

struct FakeProc {
    pgid: u32,
    alive: bool,
    zombie: bool,
    ignore_term: bool,
    affinity: Option<CpuSet>,
    reported_cpus: Option<CpuSet>,
    /// The main process of the PID namespace this process is in, if any.
    ns_leader: Option<u32>,
    exit_during_verify: bool,
    exit_tx: Option<oneshot::Sender<TaskExit>>,
}

impl FakeProc {
    fn new(pgid: u32, affinity: Option<CpuSet>) -> Self {
        Self {
            pgid,
            alive: true,
            zombie: false,
            ignore_term: false,
            affinity,
            reported_cpus: None,
            ns_leader: None,
            exit_during_verify: false,
            exit_tx: None,
        }
    }
}

struct State {
    ops: Vec<Op>,
    next_pid: u32,
    procs: BTreeMap<u32, FakeProc>,
    behavior: Arc<BehaviorFn>,
    cap_sys_admin: bool,
    read_only: bool,
    write_failures: BTreeMap<PathBuf, i32>,
    machine_cpus: CpuSet,
    machine_mems: NodeSet,
    own_cgroups: BTreeMap<String, String>,
    users: BTreeMap<String, Account>,
    credentials: Credentials,
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

    /// Mounts a v1 `devices` hierarchy (as on this project's test machine), for the GPU
    /// device tests.
    pub fn mount_devices(&self) -> io::Result<()> {
        let root = self.cg_root.join("devices");
        std::fs::create_dir_all(&root)?;
        for (f, v) in [
            ("cgroup.procs", ""),
            ("tasks", ""),
            ("devices.deny", ""),
            ("devices.allow", ""),
            ("devices.list", "a *:* rwm\n"),
        ] {
            std::fs::write(root.join(f), v)?;
        }
        Ok(())
    }

    /// A fake machine with the given CPUs and NUMA nodes (list format).
    pub fn with_machine(
        dir: &Path,
        layout: FakeLayout,
        cpus: &str,
        mems: &str,
    ) -> io::Result<Self> {
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidInput, e);
        let machine_cpus: CpuSet = cpus.parse().map_err(invalid)?;
        let machine_mems: NodeSet = mems.parse().map_err(invalid)?;
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
                    v1("freezer", &[])?;
                    v2(&cg_root.join("unified"), "")?;
                }
            }
            FakeLayout::V2 => v2(&cg_root, "cpuset cpu io memory pids")?,
            FakeLayout::V2NoCpuset => v2(&cg_root, "cpu io memory pids")?,
            FakeLayout::Empty => {}
        }
        let behavior: Arc<BehaviorFn> = Arc::new(|_: &SpawnPlan| FakeBehavior::default());
        let fake = Self {
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
                users: BTreeMap::new(),
                credentials: Credentials {
                    uid: 0,
                    gid: 0,
                    can_switch_user: true,
                },
            })),
        };
        fake.add_user("root", 0, 0, &[0]);
        fake.add_user("nobody", 65534, 65534, &[65534]);
        Ok(fake)
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

    /// Adds (or replaces) an account of the user database; its home is `/home/<name>`
    /// (`/root` for uid 0, `/nonexistent` for `nobody`).
    pub fn add_user(&self, name: &str, uid: u32, gid: u32, groups: &[u32]) {
        let home = match (name, uid) {
            (_, 0) => PathBuf::from("/root"),
            ("nobody", _) => PathBuf::from("/nonexistent"),
            _ => PathBuf::from("/home").join(name),
        };
        let account = Account {
            name: name.to_owned(),
            uid,
            gid,
            groups: groups.to_vec(),
            home,
        };
        self.lock().users.insert(name.to_owned(), account);
    }

    /// The executor's effective uid/gid and whether it may switch users.
    pub fn set_credentials(&self, uid: u32, gid: u32, can_switch_user: bool) {
        self.lock().credentials = Credentials {
            uid,
            gid,
            can_switch_user,
        };
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

    /// Ends process `pid`. The main process of a PID namespace takes the rest of its
    /// namespace with it and reports them as reaped (not when `SIGKILL`ed: then the
    /// namespace's PID 1 died too and reports nothing).
    fn die(&self, st: &mut State, pid: u32, status: ExitStatus) -> bool {
        let Some(p) = st.procs.get_mut(&pid).filter(|p| p.alive) else {
            return false;
        };
        p.alive = false;
        let tx = p.exit_tx.take();
        let leader = p.ns_leader == Some(pid);
        self.leave_cgroups(pid);
        let mut reaped = 0;
        if leader {
            let members: Vec<u32> = st
                .procs
                .iter()
                .filter(|(other, q)| q.alive && **other != pid && q.ns_leader == Some(pid))
                .map(|(other, _)| *other)
                .collect();
            for member in members {
                if let Some(q) = st.procs.get_mut(&member) {
                    q.alive = false;
                }
                self.leave_cgroups(member);
                reaped += 1;
            }
            if status == ExitStatus::Signal(libc::SIGKILL) {
                reaped = 0;
            }
        }
        if let Some(tx) = tx {
            let _ = tx.send(TaskExit { status, reaped });
        }
        true
    }

    fn leave_cgroups(&self, pid: u32) {
        for dir in all_cgroups(&self.cg_root) {
            let procs = read_procs(&dir);
            if procs.contains(&pid) {
                write_procs(&dir, procs.into_iter().filter(|p| *p != pid));
            }
        }
    }
}

impl Sys for FakeSys {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        if let Ok(rel) = path.strip_prefix(&self.proc_root) {
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let mut st = self.lock();
            return match parts.as_slice() {
                [who, file] => self.read_proc(&mut st, who, file),
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
        if path == self.proc_root {
            return Ok(self.proc_listing(&self.lock()));
        }
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
                Some(pid) => pid.parse::<u32>().ok().is_some_and(|pid| {
                    self.lock()
                        .procs
                        .get(&pid)
                        .is_some_and(|p| p.alive || p.zombie)
                }),
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

    fn credentials(&self) -> io::Result<Credentials> {
        Ok(self.lock().credentials)
    }

    fn lookup_user(&self, name: &str) -> io::Result<Option<Account>> {
        Ok(self.lock().users.get(name).cloned())
    }

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let mut st = self.lock();
        st.ops.push(Op::Chown(path.to_owned(), uid, gid));
        std::fs::symlink_metadata(path).map(|_| ())
    }

    fn spawn(&self, plan: &SpawnPlan) -> Result<Spawned, SpawnError> {
        self.spawn_fake(plan)
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
