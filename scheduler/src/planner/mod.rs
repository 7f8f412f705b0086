//! The planner: Mesos offers → placement → launches, status updates → the job state
//! machine, all against the store.
//!
//! * [`request`] — a stored job as a placement request (policy fallback job → app →
//!   cluster).
//! * [`task`] — the executor and task infos of a launch (task spec in `TaskInfo.data`).
//! * [`cycle`] — one pure planning cycle over a batch of offers.
//! * [`ports`] — the agents' offered `ports` ranges, handed out to jobs (`$PORT0`..).
//! * [`service`] — the loop ([`Planner`]) and its link to the HTTP API ([`PlannerLink`]).
//! * [`report`] — the executor's task report in status updates (exit code, work dir,
//!   verified pinning).
//! * `agents` — the agents seen and their NUMA layout, for the web page's CPU map.
//! * `link` — [`PlannerLink`], the planner as the HTTP API sees it.
//! * [`metrics`] — counters and the placement-latency histogram.
//! * [`record`] — `--record-events`.

mod agents;
pub mod cycle;
mod link;
pub mod metrics;
pub mod ports;
pub mod record;
pub mod report;
pub mod request;
pub mod service;
pub mod task;

pub use service::{Planner, PlannerError, PlannerLink, PlannerOptions};
pub use task::ExecutorLocation;
