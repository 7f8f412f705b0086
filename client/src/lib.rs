//! Rust client library for the Retz HTTP API, and the code behind the `retz-client` and
//! `retz-admin` command lines.
//!
//! - [`Client`]: one typed async method per endpoint of [`retz_proto::api`], every request
//!   signed (`Retz-auth-v1`), retries with backoff on connection errors for idempotent
//!   calls only (GET/DELETE; never `POST /job`), a 3 s connect timeout and an overall
//!   request timeout.
//! - [`Error`]: the one error type; keeps the server's [`retz_proto::api::ErrorBody`]
//!   message and the HTTP code.
//! - [`config`]: where the client config comes from (`-C`, `$RETZ_CLIENT_CONFIG`, XDG,
//!   the original `/opt/retz-client/etc/retz.properties`) and how it is read (TOML or an
//!   original `retz.properties`).
//! - [`signing`]: the headers of a signed request (pure).
//! - [`backoff`]: the doubling delay used by retries and by file polling (pure).
//! - [`cli`]: the two command lines (argument parsing, output, exit codes).

pub mod backoff;
pub mod cli;
mod client;
pub mod config;
mod error;
pub mod fuzzing;
pub mod original_db;
pub mod query;
pub mod signing;

pub use client::{Client, ClientOptions};
pub use error::Error;
