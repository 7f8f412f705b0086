//! Mesos v1 wire layer shared by the scheduler, the executor and the local cluster.
//!
//! Owns the protobuf types (hand-written `.proto` files compiled by prost through protox),
//! the Mesos (stout) JSON dialect, the RecordIO stream codec. No I/O lives here.
//!
//! * [`mesos`] — package `mesos.v1` (offers, resources, tasks, statuses, ...).
//! * [`scheduler`] — package `mesos.v1.scheduler` (`Call`, `Event`).
//! * [`executor`] — package `mesos.v1.executor` (`Call`, `Event`).
//! * [`numa`] — the Retz NUMA resource convention (agent flags ↔ offers ↔ topology).

mod generated;
pub mod numa;

pub use generated::mesos::v1 as mesos;
pub use generated::mesos::v1::executor;
pub use generated::mesos::v1::scheduler;
