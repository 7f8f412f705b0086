//! The `retz-client` and `retz-admin` command lines: argument rewriting and parsing,
//! output formatting, following files, exit codes. The binaries only call
//! [`client_cli::main`] and [`admin_cli::main`].

pub mod admin_cli;
pub mod argv;
mod client_args;
pub mod client_cli;
pub mod exit;
pub mod follow;
mod get_file;
mod history_cli;
pub mod import_cli;
pub mod output;
pub mod parse;
mod plan_cli;
pub mod quota_cli;
