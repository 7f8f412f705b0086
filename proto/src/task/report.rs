//! [`TaskReport`]: what `retz-executor` answers in `TaskStatus.data`, and the
//! [`VerifiedPinning`] it carries.
//!
//! TASK_RUNNING carries `work_dir` and `pinning`; the terminal states carry `exit_code`
//! (the command exited) or `signal` (a signal ended it), `leftovers` when the job left
//! processes behind, and `pinning` again. Absent fields are omitted, so the terminal data
//! of a plain exit stays `{"exit_code":0,"pinning":{...}}` and executors that wrote
//! `{"exit_code":N}` by hand are still read.
//!
//! Drift is only ever reported with evidence: [`Verification::Drift`] means the kernel
//! showed the running task with other CPUs, nodes or cgroups than were applied, and
//! `drift` lists each difference. A task that exited (or became a zombie, or vanished)
//! before it could be read back is [`Verification::Exited`], never drift.

use std::fmt;

use retz_placement::{AffinityPolicy, CpuSet, NodeSet};
use serde::{Deserialize, Serialize};

/// How a task's CPUs were enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinMechanism {
    /// A cgroup v2 cpuset plus `sched_setaffinity`.
    CgroupV2,
    /// A cgroup v1 cpuset plus `sched_setaffinity`.
    CgroupV1,
    /// `sched_setaffinity` alone (no usable cgroup).
    AffinityOnly,
    /// Not pinned (policy `none`, or no usable CPUs).
    #[serde(rename = "none")]
    Unpinned,
}

impl PinMechanism {
    /// Every mechanism, in a fixed order.
    pub const ALL: [PinMechanism; 4] = [
        PinMechanism::CgroupV2,
        PinMechanism::CgroupV1,
        PinMechanism::AffinityOnly,
        PinMechanism::Unpinned,
    ];

    /// The wire name (`cgroup-v2`, `cgroup-v1`, `affinity-only`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            PinMechanism::CgroupV2 => "cgroup-v2",
            PinMechanism::CgroupV1 => "cgroup-v1",
            PinMechanism::AffinityOnly => "affinity-only",
            PinMechanism::Unpinned => "none",
        }
    }
}

impl fmt::Display for PinMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What reading the pinning back from the kernel showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verification {
    /// The task was seen running with what was applied.
    Verified,
    /// The task was seen running with something else (evidence in `drift`).
    Drift,
    /// The task exited (zombie, exiting or gone) before it could be read back.
    Exited,
    /// Its `/proc` files could not be read or understood (why in `note`); not drift.
    Unverifiable,
}

impl Verification {
    /// The wire name (`verified`, `drift`, `exited`, `unverifiable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Verified => "verified",
            Verification::Drift => "drift",
            Verification::Exited => "exited",
            Verification::Unverifiable => "unverifiable",
        }
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pinning the executor applied and verified for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedPinning {
    /// The affinity policy of the spec.
    pub affinity: AffinityPolicy,
    /// How the CPUs were enforced.
    pub mechanism: PinMechanism,
    /// What reading back showed.
    pub outcome: Verification,
    /// CPUs applied (affinity and cgroup `cpuset.cpus`); absent: not pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<CpuSet>,
    /// Memory nodes applied (cgroup `cpuset.mems`); absent: inherited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mems: Option<NodeSet>,
    /// `Cpus_allowed_list` the kernel showed for the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_seen: Option<CpuSet>,
    /// `Mems_allowed_list` the kernel showed for the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mems_seen: Option<NodeSet>,
    /// Each difference between applied and seen (only with [`Verification::Drift`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Why the task was not observed ([`Verification::Exited`], [`Verification::Unverifiable`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl VerifiedPinning {
    /// One line for people: `cgroup-v1 CPUs 8-11 nodes 1: verified`,
    /// `affinity-only CPUs 2: DRIFT Cpus_allowed_list is 0-3, applied 2`.
    pub fn summary(&self) -> String {
        let mut s = self.mechanism.as_str().to_owned();
        if let Some(c) = &self.cpus {
            s.push_str(&format!(" CPUs {c}"));
        }
        if let Some(m) = &self.mems {
            s.push_str(&format!(" nodes {m}"));
        }
        match self.outcome {
            Verification::Drift => s.push_str(&format!(": DRIFT {}", self.drift.join("; "))),
            Verification::Exited => s.push_str(": exited before verification"),
            other => s.push_str(&format!(": {other}")),
        }
        if let (Some(note), Verification::Unverifiable) = (&self.note, self.outcome) {
            s.push_str(&format!(" ({note})"));
        }
        s
    }

    /// A short form for tables: `cgroup-v1 verified`, `affinity-only DRIFT`.
    pub fn short(&self) -> String {
        let outcome = match self.outcome {
            Verification::Drift => "DRIFT",
            other => other.as_str(),
        };
        format!("{} {outcome}", self.mechanism)
    }
}

/// What the executor answers in `TaskStatus.data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    /// The command's exit code, when it exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended the command, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Processes the job left behind, killed before the terminal status (reaped by the
    /// job's PID-namespace init plus those swept from its cgroup or process group).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub leftovers: u32,
    /// The task's directory on the agent (absolute; TASK_RUNNING).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    /// The pinning applied and what reading it back showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinning: Option<VerifiedPinning>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `TaskStatus.data` that is not a Retz task report.
#[derive(Debug, thiserror::Error)]
#[error("TaskStatus.data is not a Retz task report: {0}")]
pub struct ReportError(#[from] serde_json::Error);

impl TaskReport {
    /// Parses `TaskStatus.data`; never panics, whatever the bytes.
    pub fn from_slice(data: &[u8]) -> Result<Self, ReportError> {
        Ok(serde_json::from_slice(data)?)
    }

    /// Serialises to the JSON carried in `TaskStatus.data`.
    pub fn to_vec(&self) -> Vec<u8> {
        // Integers, strings and list strings: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Whether the report says nothing (no data is then sent).
    pub fn is_empty(&self) -> bool {
        self == &TaskReport::default()
    }
}
