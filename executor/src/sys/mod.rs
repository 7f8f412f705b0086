//! The one seam between the executor and the kernel.
//!
//! Everything that touches process or cgroup state goes through [`Sys`]: cgroupfs and
//! procfs reads and writes, capability checks, spawning a task (with its pre-exec
//! pinning), and signals. [`linux::LinuxSys`] is the real implementation;
//! [`fake::FakeSys`] emulates cgroupfs (v1, v2, hybrid) and procfs in a temporary
//! directory, keeps fake processes, and records every mutating call in order, so the
//! cgroup and runtime logic are tested without root. Sandbox files (task directories,
//! unpacked applications) are ordinary files under a configurable directory and use
//! `std::fs` directly.
//!
//! Contract of [`Sys::spawn`]: the child is put in its own process group (pgid = pid),
//! then, in this order and before `exec`, it writes `0` into each of
//! [`SpawnPlan::cgroup_procs`] (joining those cgroups itself, so no process of the task
//! ever runs outside them), sets its CPU affinity to [`SpawnPlan::affinity`] and its NUMA
//! memory policy to [`SpawnPlan::mem_policy`]. With [`SpawnPlan::pid_namespace`] it then
//! enters a new PID namespace (and a mount namespace with its own `/proc`): the tracked
//! process stays outside and waits, a PID 1 inside starts the job and, when the job ends,
//! kills and reaps everything else in the namespace, counting it. Last, the job process
//! drops the capability bounding set and switches to [`SpawnPlan::identity`] (groups, gid,
//! uid; its capability sets end empty), and sets `no_new_privs` in every case. A failure
//! of any step aborts the spawn with a [`SpawnError`] naming the step and path.
//!
//! [`Spawned::exit`] resolves with the job's own status (not the waiting process's) and
//! the number of leftover processes the namespace's PID 1 killed ([`TaskExit`]).
//!
//! The user database ([`Sys::lookup_user`]) and the executor's own credentials
//! ([`Sys::credentials`]) are read through the seam too, so identity decisions are tested
//! without root; so is [`Sys::chown`] of sandbox files.

pub mod fake;
pub mod linux;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use crate::spec::MemPolicy;
use retz_placement::{CpuSet, NodeSet};

/// A signal the executor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGTERM`: ask to stop.
    Term,
    /// `SIGKILL`: stop now.
    Kill,
}

/// Who receives a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTarget {
    /// One process.
    Process(u32),
    /// Every process of a process group.
    Group(u32),
}

/// How a task's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Code(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signal(sig) => {
                let name = nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown signal");
                write!(f, "killed by signal {sig} ({name})")
            }
        }
    }
}

/// How a task ended: its job's status and the leftovers its PID namespace killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskExit {
    /// The job process's status.
    pub status: ExitStatus,
    /// Processes left in the task's PID namespace when the job ended, killed and reaped
    /// by its PID 1 (0 without a namespace).
    pub reaped: u32,
}

impl TaskExit {
    /// An exit with nothing reaped.
    pub fn plain(status: ExitStatus) -> Self {
        Self { status, reaped: 0 }
    }
}

/// The credentials a job process switches to before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id (never 0).
    pub uid: u32,
    /// Primary group id (never 0).
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// A Unix account as the user database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Every group it belongs to (`getgrouplist`, the primary one included).
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: PathBuf,
}

/// The executor process's own credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// `CAP_SETUID` and `CAP_SETGID` are both effective: it can start jobs as other users.
    pub can_switch_user: bool,
}

/// Everything needed to start one task process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnPlan {
    /// Program and arguments; `argv[0]` is looked up in the task's `PATH`.
    pub argv: Vec<String>,
    /// The complete environment of the task.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// File receiving stdout (created or truncated).
    pub stdout: PathBuf,
    /// File receiving stderr (created or truncated).
    pub stderr: PathBuf,
    /// `cgroup.procs` files the child joins before exec, in order.
    pub cgroup_procs: Vec<PathBuf>,
    /// CPU affinity set before exec.
    pub affinity: Option<CpuSet>,
    /// NUMA memory policy and its nodes, set before exec (never [`MemPolicy::None`]).
    pub mem_policy: Option<(MemPolicy, NodeSet)>,
    /// Who the job runs as; `None`: as the executor's own user (no switch).
    pub identity: Option<Identity>,
    /// Start the job in a new PID namespace (needs `CAP_SYS_ADMIN`).
    pub pid_namespace: bool,
}

/// The exit of a spawned task (reaps it).
pub type ExitFuture = Pin<Box<dyn Future<Output = io::Result<TaskExit>> + Send>>;

/// A started task process.
pub struct Spawned {
    /// Its pid, also its process group id.
    pub pid: u32,
    /// Resolves when it exits.
    pub exit: ExitFuture,
}

impl fmt::Debug for Spawned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawned").field("pid", &self.pid).finish()
    }
}

/// Why a task process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The plan itself cannot be carried out.
    #[error("cannot start the task: {0}")]
    Invalid(String),
    /// The stdout or stderr file.
    #[error("cannot create the task's {what} file {path}: {source}")]
    Output {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Joining a cgroup in the child.
    #[error("the task could not join cgroup {path} before exec: {source}")]
    Attach { path: PathBuf, source: io::Error },
    /// `sched_setaffinity` in the child.
    #[error("sched_setaffinity to CPUs {cpus} failed before exec: {source}")]
    Affinity { cpus: String, source: io::Error },
    /// `set_mempolicy` in the child.
    #[error("set_mempolicy({policy} on nodes {nodes}) failed before exec: {source}")]
    MemPolicy {
        policy: MemPolicy,
        nodes: String,
        source: io::Error,
    },
    /// Entering the PID namespace or mounting its `/proc`.
    #[error("cannot start the task in its own PID namespace ({step}): {source}")]
    Namespace {
        step: &'static str,
        source: io::Error,
    },
    /// Dropping privileges or switching to the job's user.
    #[error("cannot switch the task to uid {uid} gid {gid} ({step}) before exec: {source}")]
    Identity {
        step: &'static str,
        uid: u32,
        gid: u32,
        source: io::Error,
    },
    /// Anything else (`exec`, `chdir`, fork).
    #[error("cannot run `{program}` in {cwd}: {source}")]
    Exec {
        program: String,
        cwd: PathBuf,
        source: io::Error,
    },
}

/// The kernel, as the executor sees it.
pub trait Sys: Send + Sync + 'static {
    /// Reads a whole (small) file.
    fn read_file(&self, path: &Path) -> io::Result<String>;
    /// Writes `contents` to an existing file (cgroupfs control files).
    fn write_file(&self, path: &Path, contents: &str) -> io::Result<()>;
    /// `mkdir`.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// `rmdir`.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// The subdirectories of `path`.
    fn list_dirs(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Whether this process may write into `path` (`access(W_OK)`).
    fn is_writable(&self, path: &Path) -> bool;
    /// Whether `CAP_SYS_ADMIN` is in the effective set.
    fn has_cap_sys_admin(&self) -> io::Result<bool>;
    /// This process's effective uid/gid and whether it may switch users.
    fn credentials(&self) -> io::Result<Credentials>;
    /// The account named `name` (`getpwnam` + `getgrouplist`); `None` when unknown.
    fn lookup_user(&self, name: &str) -> io::Result<Option<Account>>;
    /// `chown` (without following a final symlink); `None` keeps that id.
    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()>;
    /// Starts a task process (see the module docs for the order of steps).
    fn spawn(&self, plan: &SpawnPlan) -> Result<Spawned, SpawnError>;
    /// Sends a signal. Nobody there is the raw OS error `ESRCH` (see [`is_gone`]).
    fn signal(&self, target: SignalTarget, signal: Signal) -> io::Result<()>;
}

/// Whether a [`Sys::signal`] error means the target no longer exists.
pub fn is_gone(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ESRCH)
}
