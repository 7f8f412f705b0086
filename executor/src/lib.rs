//! `retz-executor`: a Mesos executor that pins each task to the CPUs it was granted.

pub mod topology;
