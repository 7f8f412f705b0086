//! Rust client library for the Retz HTTP API.
