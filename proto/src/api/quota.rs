//! Per-user shares and quotas (`retz-admin set-share`, `set-quota`): the wire shapes of
//! `/admin/user/{key}/limits`, `/share` and `/quota`.
//!
//! A user's **share** (weight) scales its fair share of the cluster: with weights 2 and
//! 1, the first user's jobs get about twice the running resources of the second's while
//! both have work queued. A **quota** limits a user's queued jobs and running CPUs and
//! memory; each limit is the user's override if set, else the server's default
//! (`[quota]` in `retz.toml`); 0 means unlimited.

use serde::{Deserialize, Serialize};

/// A set of quota limits; `None` is "not set" (an override falls back to the server's
/// default; a default of `None` or 0 is unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Most QUEUED jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued_jobs: Option<u64>,
    /// Most CPUs granted to the user's STARTING and STARTED jobs together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running_cpus: Option<u64>,
    /// Most memory granted to the user's STARTING and STARTED jobs together, MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running_mem_mb: Option<u64>,
}

impl Quota {
    /// `self` where set, else `defaults`.
    pub fn or(&self, defaults: &Quota) -> Quota {
        Quota {
            max_queued_jobs: self.max_queued_jobs.or(defaults.max_queued_jobs),
            max_running_cpus: self.max_running_cpus.or(defaults.max_running_cpus),
            max_running_mem_mb: self.max_running_mem_mb.or(defaults.max_running_mem_mb),
        }
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Quota::default()
    }
}

/// A limit as enforced: `None` and 0 are unlimited.
pub fn limit(v: Option<u64>) -> Option<u64> {
    v.filter(|&n| n > 0)
}

/// What is stored for a user: its share and its quota overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserLimits {
    /// The user's access key.
    pub user: String,
    /// The user's weight in the fair share (1 unless set).
    pub share: f64,
    /// The user's own limits (unset fields take the server's defaults).
    #[serde(default)]
    pub quota: Quota,
}

impl UserLimits {
    /// A user with no share or quota set.
    pub fn new(user: &str) -> UserLimits {
        UserLimits {
            user: user.to_owned(),
            share: 1.0,
            quota: Quota::default(),
        }
    }
}

/// `PUT /admin/user/{key}/share`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetShareRequest {
    /// The weight: finite and above 0.
    pub weight: f64,
}

/// `PUT /admin/user/{key}/quota`: the limits to set (0 = unlimited for this user);
/// fields left out keep their value.
pub type SetQuotaRequest = Quota;

/// Answer of the limits endpoints: what is stored, the server's defaults, and what is
/// enforced (the overrides over the defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserLimitsResponse {
    /// Stored for the user.
    pub limits: UserLimits,
    /// The server's `[quota]` defaults.
    pub defaults: Quota,
    /// Enforced: `limits.quota` over `defaults` (absent or 0 = unlimited).
    pub effective: Quota,
}
