//! `retz-executor`: a Mesos executor that pins each task to the CPUs it was granted.
pub mod cgroup;
pub mod idlist;
pub mod procfs;
pub mod spec;
pub mod subst;
pub mod sys;
