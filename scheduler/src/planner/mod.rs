//! The planner: Mesos offers → placement → launches, status updates → the job state
//! machine, all against the store.
//!
//! * [`request`] — a stored job as a placement request (policy fallback job → app →
//!   cluster).
//! * [`task`] — the executor and task infos of a launch (task spec in `TaskInfo.data`).
//! * `agents` — the agents known and what each has free (counted in `/status`, planned
//!   on by `plan`).
//! * [`cycle`] — one pure planning cycle over a batch of offers.
//! * [`dryrun`] — `plan`: where a job would run now, by the same packer, nothing stored.
//! * [`ports`] — the agents' offered `ports` ranges, handed out to jobs (`$PORT0`..).
//! * [`service`] — the loop ([`Planner`]) and its link to the HTTP API ([`PlannerLink`]).
//! * [`report`] — the executor's task report in status updates (exit code, work dir,
//!   verified pinning).
//! * `agents` — the agents seen and their NUMA layout, for the web page's CPU map.
//! * `link` — [`PlannerLink`], the planner as the HTTP API sees it.
//! * [`record`] — `--record-events`.
//! * [`fairq`] — the queue by request class and the fair-share choice of what a cycle
//!   considers; `queueing` — the loop's side of it; `usage` — what users' running jobs
//!   hold.

mod agents;
mod cluster_map;
pub mod cycle;
pub mod dryrun;
pub mod executors;
pub mod fairq;
mod lifecycle;
mod link;
pub mod ports;
mod queueing;
pub mod record;
pub mod report;
pub mod request;
pub mod service;
pub mod task;
mod usage;

pub use service::{Planner, PlannerError, PlannerLink, PlannerOptions};
pub use task::ExecutorLocation;
