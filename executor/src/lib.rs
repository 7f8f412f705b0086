//! `retz-executor`: a Mesos executor that pins each task to the CPUs it was granted.
//!
//! The crate is a transport-independent task runtime ([`runtime::TaskRuntime`]) plus the
//! pieces it is made of: the task spec carried in `TaskInfo.data` ([`spec`]), `$RETZ_*`
//! substitution ([`subst`]) and the task environment ([`taskenv`]), pinning decisions and
//! their verification ([`pinning`]), per-task cgroups v1/v2 ([`cgroup`]), the sandbox with
//! the application unpacked once ([`sandbox`], [`archive`]), the job's Unix user
//! ([`identity`]: never root), and the single seam to the kernel ([`sys`]) with a Linux
//! implementation and a recording fake. [`calibrate`] measures the machine's placement
//! runtime factors (`retz-executor calibrate`).
pub mod api;
pub mod archive;
pub mod calibrate;
pub mod cgroup;
pub mod fuzzing;
pub mod identity;
pub mod pinning;
pub mod procfs;
pub mod runtime;
pub mod sandbox;
pub mod spec;
pub mod subst;
pub mod sys;
pub mod taskenv;
