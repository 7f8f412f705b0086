//! The prost-generated Mesos v1 types, nested by protobuf package so that prost's
//! relative paths (`super::...`) resolve. Re-exported flat from the crate root.

#![allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]

pub mod mesos {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/mesos.v1.rs"));

        pub mod scheduler {
            include!(concat!(env!("OUT_DIR"), "/mesos.v1.scheduler.rs"));
        }

        pub mod executor {
            include!(concat!(env!("OUT_DIR"), "/mesos.v1.executor.rs"));
        }
    }
}
