//! Unit tests of the state machine with simulated agents and virtual time, one module per
//! subject, sharing the fixtures in `support`.

mod accept;
mod agents;
mod calls;
mod frameworks;
mod offers;
mod support;
