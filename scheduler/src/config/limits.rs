//! What one job and one user may ask: `[limits]` (the most one job may request,
//! refused with 400 at submission) and `[quota]` (the server's default per-user limits
//! on queued jobs and running CPUs and memory, 0 or absent = unlimited; `retz-admin
//! set-quota` overrides them per user, and the overrides are stored, these are not).

use retz_proto::api::Quota;
use serde::{Deserialize, Serialize};

/// `[limits]`: requests above these are refused with 400 at schedule time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// CPUs (the minimum of a range is checked).
    pub max_cpus: u32,
    /// Memory, MB.
    pub max_mem_mb: u64,
    /// GPUs.
    pub max_gpus: u32,
    /// Disk, MB.
    pub max_disk_mb: u64,
    /// Ports.
    pub max_ports: u32,
    /// A job's `maxRetries`.
    pub max_retries: u32,
    /// An application's `gracePeriod`, seconds.
    pub max_grace_period_s: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_cpus: 256,
            max_mem_mb: 1024 * 1024,
            max_gpus: 0,
            max_disk_mb: 1024 * 1024,
            max_ports: 10,
            max_retries: 100,
            max_grace_period_s: 3600,
        }
    }
}

/// `[quota]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaSection {
    /// Most QUEUED jobs per user; a submission beyond it is refused (429).
    pub max_queued_jobs: u64,
    /// Most CPUs a user's running (STARTING, STARTED) jobs hold together; jobs beyond
    /// it wait with the reason "user at running-CPU quota".
    pub max_running_cpus: u64,
    /// Most memory a user's running jobs hold together, MB.
    pub max_running_mem_mb: u64,
}

impl QuotaSection {
    /// The defaults as the API shows them (0 is shown as not set: unlimited).
    pub fn defaults(&self) -> Quota {
        let set = |n: u64| (n > 0).then_some(n);
        Quota {
            max_queued_jobs: set(self.max_queued_jobs),
            max_running_cpus: set(self.max_running_cpus),
            max_running_mem_mb: set(self.max_running_mem_mb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_parses_and_zero_is_unlimited() {
        let q: QuotaSection =
            toml::from_str("max_queued_jobs = 1000\nmax_running_cpus = 64\n").expect("valid");
        let d = q.defaults();
        assert_eq!(d.max_queued_jobs, Some(1000));
        assert_eq!(d.max_running_cpus, Some(64));
        assert_eq!(d.max_running_mem_mb, None);
        assert!(QuotaSection::default().defaults().is_empty());
        let e = toml::from_str::<QuotaSection>("max_cpus = 1\n").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        assert!(toml::from_str::<QuotaSection>("max_queued_jobs = -1\n").is_err());
    }
}
