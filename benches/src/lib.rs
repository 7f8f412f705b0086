//! Criterion benches for Retz live in `benches/`; this library is empty.
