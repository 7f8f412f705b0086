//! Shared pieces of the end-to-end tests (the tests themselves live in `tests/`), and the
//! quickstart's main job ([`quickstart`]), which `scripts/quickstart.sh` runs through the
//! `quickstart` example.

pub mod quickstart;
