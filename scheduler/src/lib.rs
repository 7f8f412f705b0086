//! `retz-server`: the Mesos scheduler client, the job queue, the planner loop, the store and
//! the HTTP API.

pub mod http;
pub mod mesos;
pub mod offers;
pub mod statem;
pub mod store;
