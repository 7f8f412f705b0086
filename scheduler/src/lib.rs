//! `retz-server`: the Mesos scheduler client, the job queue, the planner loop, the store and
//! the HTTP API.
//!
//! * [`config`] — `retz.toml` / `retz.properties`, parsed once into typed sections.
//! * [`mesos`] — the Mesos v1 scheduler client (typed events in, calls out).
//! * [`offers`] — offers ↔ placement agent states, assignments → task resources.
//! * [`planner`] — the planner loop: offers → placement → launches, updates → jobs.
//! * [`server`] — everything put together (`retz-server`).

pub mod config;
pub mod mesos;
pub mod offers;
pub mod planner;
pub mod server;
