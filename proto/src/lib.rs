//! Mesos v1 wire layer shared by the scheduler, the executor and the local cluster.
//!
//! Owns the protobuf types (hand-written `.proto` files compiled by prost through protox),
//! the Mesos (stout) JSON dialect, the RecordIO stream codec. No I/O lives here.
//!
//! * [`mesos`] — package `mesos.v1` (offers, resources, tasks, statuses, ...).
//! * [`scheduler`] — package `mesos.v1.scheduler` (`Call`, `Event`).
//! * [`executor`] — package `mesos.v1.executor` (`Call`, `Event`).
//! * [`json`] — the Mesos JSON dialect for every message ([`json::MesosJson`]).
//! * [`ContentType`] — JSON or protobuf bodies, chosen by header.
//! * [`recording`] — one line of a `--record-events` recording.
//! * [`recordio`] — the RecordIO framing of the event streams.
//! * [`fuzzing`] — the entry points of the fuzz targets (never panic).
//! * [`api`] — the Retz HTTP API's JSON types and `Retz-auth-v1` signing.
//! * [`credentials`] — Mesos HTTP credentials (principal + secret, Basic auth, files).
//! * [`numa`] — the Retz NUMA resource convention (agent flags ↔ offers ↔ topology).
//! * [`properties`] — the one reader of Java `.properties` text (`retz.properties`).
//! * [`task`] — the task contract: [`task::TaskSpec`] (server → executor) and
//!   [`task::TaskReport`] (executor → server).
//! * `logging` (feature `logging`) — the binaries' shared logging setup.
//!
//! Notes on the generated types (prost 0.14, proto2):
//! * required fields, messages included, are plain values (`Offer.id: OfferId`,
//!   `event::Update.status: TaskStatus`); optional ones are `Option`s with getters that
//!   apply the declared default (`FrameworkInfo::failover_timeout()`);
//! * enums are `i32` fields with typed getters (`status.state() -> TaskState`); prost
//!   strips the enum's own name from variant names (`task_status::Source::Executor`,
//!   but `TaskState::TaskRunning`);
//! * maps are `BTreeMap`s (deterministic encoding);
//! * boxed fields: `ContainerID.parent` (recursive), and the large, rarely set
//!   `Resource.disk`, `TaskInfo.{container, health_check, check, discovery}`,
//!   `ExecutorInfo.{container, discovery}` and `Volume.{image, source}`;
//! * `deprecated` fields (`FrameworkInfo.role`, `Resource.role`, ...) carry no
//!   `#[deprecated]` attribute: the pre-refinement resource format still needs them;
//! * protobuf decoding does not check required fields (absent ones read as defaults);
//!   JSON decoding does.

pub mod api;
mod codec;
pub mod credentials;
pub mod duration;
pub mod fuzzing;
mod generated;
pub mod json;
#[cfg(feature = "logging")]
pub mod logging;
pub mod numa;
pub mod properties;
pub mod recording;
pub mod recordio;
pub mod task;
mod task_state;

pub use codec::{ContentType, DecodeError};
pub use generated::mesos::v1 as mesos;
pub use generated::mesos::v1::executor;
pub use generated::mesos::v1::scheduler;
pub use json::{JsonError, MesosJson};

/// The encoded `google.protobuf.FileDescriptorSet` of the three `.proto` files (with
/// their `deprecated` options), for reflection-based tools.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mesos_descriptors.bin"));
