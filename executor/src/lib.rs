//! `retz-executor`: a Mesos executor that pins each task to the CPUs it was granted.
pub mod idlist;
pub mod spec;
pub mod subst;
