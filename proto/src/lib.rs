//! Mesos v1 wire layer shared by the scheduler, the executor and the local cluster.
//!
//! Owns the protobuf types (hand-written `.proto` files compiled by prost through protox),
//! the Mesos (stout) JSON dialect, the RecordIO stream codec, and the Retz NUMA resource
//! convention. No I/O lives here.
