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
//! memory policy to [`SpawnPlan::mem_policy`]. A failure of any step aborts the spawn with
//! a [`SpawnError`] naming the step and path.

pub mod fake;
pub mod linux;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use crate::idlist::IdList;
use crate::spec::MemPolicy;

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
    pub affinity: Option<IdList>,
    /// NUMA memory policy and its nodes, set before exec (never [`MemPolicy::None`]).
    pub mem_policy: Option<(MemPolicy, IdList)>,
}

/// The exit of a spawned process (reaps it).
pub type ExitFuture = Pin<Box<dyn Future<Output = io::Result<ExitStatus>> + Send>>;

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
    /// Starts a task process (see the module docs for the order of steps).
    fn spawn(&self, plan: &SpawnPlan) -> Result<Spawned, SpawnError>;
    /// Sends a signal. Nobody there is the raw OS error `ESRCH` (see [`is_gone`]).
    fn signal(&self, target: SignalTarget, signal: Signal) -> io::Result<()>;
}

/// Whether a [`Sys::signal`] error means the target no longer exists.
pub fn is_gone(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ESRCH)
}
