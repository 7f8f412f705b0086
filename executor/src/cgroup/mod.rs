//! Per-task cgroups: detection of the cgroup layout, the executor's scope under a
//! configurable parent, and one cgroup per task holding its cpuset and memory limit.
//!
//! Layout on disk (`<own>` is the executor's own cgroup in that hierarchy, from
//! `/proc/self/cgroup`; a parent starting with `/` is taken from the hierarchy's root
//! instead):
//! ```text
//! <mount>/<own>/<parent>/<scope>/<task-key>/   cpuset.cpus, cpuset.mems, cgroup.procs
//! ```
//! - cgroup v2 is used when the cpuset controller is available on the unified hierarchy;
//!   otherwise the v1 cpuset hierarchy (plus the v1 memory hierarchy for the memory limit,
//!   and the v1 freezer hierarchy, when mounted, to freeze a task's leftovers before they
//!   are killed, and the v1 devices hierarchy, when mounted, to deny a task the GPUs it
//!   was not granted: see `devices`).
//! - Invariants: in v1 every level down to the task has `cpuset.cpus`/`cpuset.mems`
//!   populated (copied from the level above when empty) before anything is attached; a
//!   task's `cpuset.cpus` and `cpuset.mems` are written before any process joins (the
//!   process joins itself, pre-exec, see [`crate::sys`]); in v2 each level enables the
//!   controllers for its children in `cgroup.subtree_control`.
//! - A task cgroup is removed only after every process in it is gone (and counted: the
//!   task's terminal status says how many were left); the executor's scope
//!   is swept at start (leftovers of a previous run of the same executor) and removed at
//!   shutdown. The shared parent directory is left in place.
//! - Every error carries the path it concerns.

mod detect;
mod devices;
mod hierarchy;
mod task;

pub use detect::{Layout, detect};
pub use devices::{NVIDIA_MAJOR, deny_rules, gpu_minors};
pub use hierarchy::{CgroupConfig, Cgroups};
pub use task::TaskCgroup;

use std::io;
use std::path::PathBuf;

/// Which cgroup version is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// cgroup v1 (cpuset hierarchy).
    V1,
    /// cgroup v2 (unified hierarchy).
    V2,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        })
    }
}

/// A cgroupfs operation that failed, with its path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {path}: {source}{hint}", hint = hint(.source))]
pub struct CgroupError {
    /// What was attempted (`create cgroup`, `write 1-3 to`, …).
    pub op: String,
    /// The file or directory.
    pub path: PathBuf,
    /// The OS error.
    pub source: io::Error,
}

impl CgroupError {
    pub(crate) fn new(op: impl Into<String>, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self {
            op: op.into(),
            path: path.into(),
            source,
        }
    }
}

fn hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => " (the executor needs root or CAP_SYS_ADMIN)",
        Some(libc::EROFS) => " (cgroupfs is mounted read-only)",
        Some(libc::ENOSPC) => " (cpuset.cpus/cpuset.mems of that cgroup are empty)",
        Some(libc::EBUSY) => " (the cgroup still holds processes or children)",
        _ => "",
    }
}
