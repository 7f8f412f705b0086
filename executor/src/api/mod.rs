//! The Mesos v1 executor API client (`POST /api/v1/executor` on the agent), wired to the
//! task runtime.
//!
//! [`env`] reads what the agent passes in the environment, [`transport`] speaks HTTP/1.1
//! with protobuf or JSON bodies and reads the RecordIO event stream, [`convert`] maps
//! `TaskInfo`/`TaskStatus` to and from the runtime's types, [`pending`] tracks what the
//! agent has not acknowledged, and [`client`] runs the executor's event loop.

pub mod client;
pub mod convert;
pub mod env;
pub mod pending;
pub mod transport;

pub use client::{ExecutorConfig, ExecutorError, Exit, run};
pub use env::AgentEnv;
