//! `[gc]`: the periodic deletion of jobs that ended long ago (the original's `retz.gc`,
//! `retz.gc.leeway`, `retz.gc.interval`), run by the server with [`crate::store::Store::gc`],
//! the same deletion `retz-admin gc` asks for.

use serde::{Deserialize, Serialize};

/// `[gc]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcSection {
    /// Run the GC. Off by default in `retz.toml` (job history is kept until
    /// `retz-admin gc`); on by default for an original `retz.properties`, as there.
    pub enabled: bool,
    /// FINISHED and KILLED jobs that ended more than this many seconds ago are deleted.
    pub leeway_s: u64,
    /// Seconds between two GC runs (the first runs one interval after the start).
    pub interval_s: u64,
}

impl Default for GcSection {
    fn default() -> Self {
        GcSection {
            enabled: false,
            leeway_s: 604_800,
            interval_s: 600,
        }
    }
}

impl GcSection {
    /// The original's defaults: on, a week of leeway, every ten minutes.
    pub fn original() -> Self {
        GcSection {
            enabled: true,
            ..GcSection::default()
        }
    }
}
