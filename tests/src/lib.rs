//! End-to-end tests across Retz processes live in `tests/`; this library holds shared helpers.
