//! `retz-server`: the Mesos scheduler client, the job queue, the planner loop, the store and
//! the HTTP API.
//!
//! * [`config`] — `retz.toml` / `retz.properties`, parsed once into typed sections.
//! * [`identity`] — who jobs run as: the job user checks (never root) and the launch users.
//! * [`metrics`] — the `prometheus-client` registry and every series of `/metrics`.
//! * [`mesos`] — the Mesos v1 scheduler client (typed events in, calls out).
//! * [`offers`] — offers ↔ placement agent states, assignments → task resources.
//! * [`planner`] — the planner loop: offers → placement → launches, updates → jobs.
//! * [`server`] — everything put together (`retz-server`).
//! * [`serve`] — the accept loop of the API, plain HTTP or HTTPS, with graceful stop.
//! * [`tls`] — the HTTPS certificate and key, checked, as a rustls (ring) config.
//! * [`statem`] — the job state machine (pure).
//! * [`store`] — the durable store (SQLite or PostgreSQL).
//! * [`http`] — the HTTP API (axum), auth, isolation, files proxy, admin, metrics.

pub mod config;
pub mod http;
pub mod identity;
pub mod mesos;
pub mod metrics;
pub mod offers;
pub mod planner;
pub mod serve;
pub mod server;
pub mod statem;
pub mod store;
pub mod tls;
