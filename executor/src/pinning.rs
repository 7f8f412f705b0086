//! Pinning decisions and their verification, as pure functions, plus the report that
//! goes into the task's statuses.
//!
//! [`plan`] turns a validated spec and the CPUs/nodes this executor may use into what to
//! apply: the CPU affinity (also the cgroup's `cpuset.cpus`), the cgroup's `cpuset.mems`
//! and the memory policy. When the spec cannot be honoured exactly, a spec with
//! `pin_required` fails with a [`PinError`] naming the CPUs or nodes at fault; otherwise
//! the task runs with what is possible and the report says what was dropped.
//!
//! [`verify`] compares what `/proc/<pid>/status` and `/proc/<pid>/cgroup` show with what
//! was applied. Drift is only ever reported with evidence (issue 21): a process that is
//! gone, a zombie or exiting is "exited before verification", never drift. An exiting
//! task leaves its cgroups (the kernel then shows `/`, while `status` may still say `R`
//! or `D`), so when the cgroup file disagrees, `/proc/<pid>/stat` is read *after* it: only
//! a task still alive and not exiting then was in the wrong cgroup. Files that cannot be
//! read or understood make the task "unverifiable", not drifted. [`PinningReport::verified`]
//! is the typed result sent to the server (`retz_proto::task::VerifiedPinning`).

use std::fmt::{self, Write as _};
use std::io;

use retz_placement::{AffinityPolicy, CpuSet, NodeSet};
use retz_proto::task::{PinMechanism, Verification, VerifiedPinning};

use crate::cgroup::{CgroupVersion, TaskCgroup};
use crate::procfs::{parse_cgroup, parse_stat, parse_status, v1_path, v2_path};
use crate::spec::{MemPolicy, ValidSpec};

/// The CPUs and memory nodes this executor may hand out (its own allowed sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `Cpus_allowed_list` of the executor.
    pub cpus: CpuSet,
    /// `Mems_allowed_list` of the executor.
    pub mems: NodeSet,
}

/// What to apply to one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinPlan {
    /// CPU affinity and cgroup `cpuset.cpus`; `None`: not pinned.
    pub cpus: Option<CpuSet>,
    /// Cgroup `cpuset.mems`; `None`: inherited.
    pub mems: Option<NodeSet>,
    /// Memory policy and its nodes.
    pub mem_policy: Option<(MemPolicy, NodeSet)>,
    /// What was dropped or adjusted, for the report.
    pub notes: Vec<String>,
}

/// Pinning the spec demands cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pinning required but impossible: {0}")]
pub struct PinError(pub String);

/// Decides the pinning of a task.
pub fn plan(spec: &ValidSpec, machine: &Machine) -> Result<PinPlan, PinError> {
    let required = spec.spec.pin_required;
    let affinity = spec.spec.affinity;
    let pins = spec.spec.pins();
    let mut notes = Vec::new();
    let cpus = if !pins {
        if let Some(c) = &spec.spec.cpuset {
            notes.push(format!("affinity policy none: cpuset {c} not applied"));
        }
        None
    } else {
        match spec.spec.cpuset.as_ref().filter(|c| !c.is_empty()) {
            None if required => {
                return Err(PinError(format!(
                    "affinity policy {affinity} demands pinning but the task spec has no cpuset"
                )));
            }
            None => {
                notes.push("the task spec has no cpuset: not pinned".into());
                None
            }
            Some(req) => restrict(req, &machine.cpus, "CPU", required, &mut notes)?,
        }
    };
    let mems = match spec.spec.mem_nodes.as_ref().filter(|m| !m.is_empty()) {
        Some(req) if pins => restrict(req, &machine.mems, "NUMA node", required, &mut notes)?,
        _ => None,
    };
    let mem_policy = match (spec.mem_policy, &mems) {
        (MemPolicy::None, _) => None,
        (policy, Some(nodes)) => Some((policy, nodes.clone())),
        (policy, None) => {
            if required && spec.spec.mem_policy.is_some() {
                return Err(PinError(format!(
                    "memory policy {policy} needs the task spec's mem_nodes"
                )));
            }
            if pins {
                notes.push(format!(
                    "memory policy {policy} not applied: the task spec names no usable mem_nodes"
                ));
            }
            None
        }
    };
    Ok(PinPlan {
        cpus,
        mems,
        mem_policy,
        notes,
    })
}

/// The set operations [`restrict`] needs, for CPU and node sets alike.
trait IdSet: Clone + fmt::Display + Sized {
    fn minus(&self, other: &Self) -> Self;
    fn and(&self, other: &Self) -> Self;
    fn none(&self) -> bool;
}

macro_rules! id_set {
    ($t:ty) => {
        impl IdSet for $t {
            fn minus(&self, other: &Self) -> Self {
                self.difference(other)
            }
            fn and(&self, other: &Self) -> Self {
                self.intersection(other)
            }
            fn none(&self) -> bool {
                self.is_empty()
            }
        }
    };
}
id_set!(CpuSet);
id_set!(NodeSet);

fn restrict<T: IdSet>(
    requested: &T,
    allowed: &T,
    what: &str,
    required: bool,
    notes: &mut Vec<String>,
) -> Result<Option<T>, PinError> {
    let missing = requested.minus(allowed);
    if missing.none() {
        return Ok(Some(requested.clone()));
    }
    if required {
        return Err(PinError(format!(
            "{what}(s) {missing} of {requested} are not in this executor's allowed set {allowed}"
        )));
    }
    let usable = requested.and(allowed);
    if usable.none() {
        notes.push(format!(
            "none of {what}s {requested} is allowed here (allowed: {allowed}): not restricted"
        ));
        Ok(None)
    } else {
        notes.push(format!(
            "{what}(s) {missing} not allowed here (allowed: {allowed}): using {usable}"
        ));
        Ok(Some(usable))
    }
}

/// The cgroup part of a [`PinningReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupReport {
    /// `v1` or `v2`.
    pub version: CgroupVersion,
    /// The task's cgroup directories.
    pub paths: Vec<String>,
    /// Memory limit applied, bytes.
    pub memory_limit_bytes: Option<u64>,
}

/// What was applied to a task and what the kernel shows; its summary is the message of
/// `TASK_RUNNING`, its [`PinningReport::verified`] part goes into the statuses' data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinningReport {
    /// The affinity policy of the spec.
    pub affinity: Option<AffinityPolicy>,
    /// CPUs set with `sched_setaffinity` (absent: not pinned).
    pub cpus: Option<CpuSet>,
    /// Memory nodes given to the cgroup.
    pub mems: Option<NodeSet>,
    /// Memory policy set before exec, e.g. `bind 0`.
    pub mem_policy: Option<String>,
    /// The task's cgroup.
    pub cgroup: Option<CgroupReport>,
    /// Why no cgroup is used (the task is then pinned by affinity alone).
    pub cgroup_unavailable: Option<String>,
    /// What verification showed (`None`: not verified yet).
    pub outcome: Option<Verification>,
    /// `Cpus_allowed_list` read back from `/proc/<pid>/status`.
    pub observed_cpus: Option<CpuSet>,
    /// `Mems_allowed_list` read back.
    pub observed_mems: Option<NodeSet>,
    /// `/proc/<pid>/cgroup` lines of the hierarchies used.
    pub observed_cgroups: Vec<String>,
    /// Differences between applied and observed (only with evidence).
    pub drift: Vec<String>,
    /// Adjustments and remarks.
    pub notes: Vec<String>,
    /// Why the task was not observed (exited or unverifiable).
    pub unobserved: Option<String>,
    /// Who the job runs as, e.g. `nobody (uid 65534, gid 65534)`.
    pub user: Option<String>,
    /// Whether the job runs in its own PID namespace.
    pub pid_namespace: bool,
    /// Why it does not, when it does not.
    pub pid_namespace_unavailable: Option<String>,
}

impl PinningReport {
    /// A report of the plan and the cgroup (before verification).
    pub fn new(affinity: AffinityPolicy, plan: &PinPlan, cgroup: Option<&TaskCgroup>) -> Self {
        Self {
            affinity: Some(affinity),
            cpus: plan.cpus.clone(),
            mems: plan.mems.clone(),
            mem_policy: plan.mem_policy.as_ref().map(|(p, n)| format!("{p} {n}")),
            cgroup: cgroup.map(|cg| CgroupReport {
                version: cg.version,
                paths: cg.dirs().iter().map(|p| p.display().to_string()).collect(),
                memory_limit_bytes: cg.memory_limit,
            }),
            notes: plan.notes.clone(),
            ..Self::default()
        }
    }

    /// How the CPUs are enforced.
    pub fn mechanism(&self) -> PinMechanism {
        match (&self.cpus, &self.cgroup) {
            (None, _) => PinMechanism::Unpinned,
            (Some(_), Some(cg)) if cg.version == CgroupVersion::V2 => PinMechanism::CgroupV2,
            (Some(_), Some(_)) => PinMechanism::CgroupV1,
            (Some(_), None) => PinMechanism::AffinityOnly,
        }
    }

    /// The typed result for the server.
    pub fn verified(&self) -> VerifiedPinning {
        VerifiedPinning {
            affinity: self.affinity.unwrap_or(AffinityPolicy::None),
            mechanism: self.mechanism(),
            outcome: self.outcome.unwrap_or(Verification::Unverifiable),
            cpus: self.cpus.clone(),
            mems: self.mems.clone(),
            cpus_seen: self.observed_cpus.clone(),
            mems_seen: self.observed_mems.clone(),
            drift: self.drift.clone(),
            note: match self.outcome {
                None => Some("not verified".into()),
                Some(_) => self.unobserved.clone(),
            },
        }
    }

    /// One line for `TaskStatus.message`.
    pub fn summary(&self) -> String {
        let mut s = match &self.cpus {
            Some(cpus) => format!("pinned to CPUs {cpus}"),
            None => "not pinned".to_owned(),
        };
        if let Some(a) = self.affinity {
            let _ = write!(s, " (policy {a})");
        }
        match (&self.cgroup, &self.cgroup_unavailable) {
            (Some(cg), _) => {
                let _ = write!(s, "; cgroup {} {}", cg.version, cg.paths.join(" "));
                if let Some(bytes) = cg.memory_limit_bytes {
                    let _ = write!(s, ", memory limit {} MB", bytes >> 20);
                }
            }
            (None, Some(why)) => {
                let _ = write!(s, "; no cgroup ({why}): affinity alone");
            }
            (None, None) => {}
        }
        if let Some(m) = &self.mems {
            let _ = write!(s, "; memory nodes {m}");
        }
        if let Some(p) = &self.mem_policy {
            let _ = write!(s, "; mempolicy {p}");
        }
        if let Some(c) = &self.observed_cpus {
            let _ = write!(s, "; verified Cpus_allowed_list {c}");
        }
        if let Some(why) = &self.unobserved {
            let _ = write!(s, "; not verified: {why}");
        }
        if let Some(u) = &self.user {
            let _ = write!(s, "; runs as {u}");
        }
        match (self.pid_namespace, &self.pid_namespace_unavailable) {
            (true, _) => s.push_str(" in its own PID namespace"),
            (false, Some(why)) => {
                let _ = write!(s, "; no PID namespace ({why})");
            }
            (false, None) => {}
        }
        if !self.drift.is_empty() {
            let _ = write!(s, "; DRIFT: {}", self.drift.join("; "));
        }
        if !self.notes.is_empty() {
            let _ = write!(s, "; notes: {}", self.notes.join("; "));
        }
        s
    }

    fn exited(&mut self, why: &str) {
        self.outcome = Some(Verification::Exited);
        self.unobserved = Some(why.to_owned());
    }

    fn unverifiable(&mut self, why: String) {
        self.outcome = Some(Verification::Unverifiable);
        self.unobserved = Some(why);
    }

    fn stop(&mut self, stop: Stop) {
        match stop {
            Stop::Exited(why) => self.exited(why),
            Stop::Unverifiable(why) => self.unverifiable(why),
        }
    }
}

/// The task exited before its pinning could be read back.
pub const EXITED_BEFORE: &str = "the task exited before its pinning could be read back";
/// The task exited while its cgroup membership was read back.
pub const EXITED_DURING: &str = "the task exited while its cgroup membership was read back";

/// Fills the outcome, observed fields and drift of `report` from the task's
/// `/proc/<pid>/status` and `/proc/<pid>/cgroup` (and `stat` when they disagree), read
/// with `read("status")` etc. (a read error `NotFound`/`ESRCH` means the task is gone).
pub fn verify(
    report: &mut PinningReport,
    plan: &PinPlan,
    cgroup: Option<&TaskCgroup>,
    mut read: impl FnMut(&str) -> io::Result<String>,
) {
    let status = match read_proc(&mut read, ("status", "status"), EXITED_BEFORE, |t| {
        parse_status(t).map_err(|e| format!("cannot parse /proc status: {e}"))
    }) {
        Ok(s) => s,
        Err(stop) => return report.stop(stop),
    };
    if exited(&status) {
        return report.exited(EXITED_BEFORE);
    }
    let mut drift = Vec::new();
    if let Some(want) = &plan.cpus {
        match &status.cpus_allowed {
            Some(got) if got == want => {}
            Some(got) => drift.push(format!("Cpus_allowed_list is {got}, applied {want}")),
            None => {
                return report.unverifiable("no Cpus_allowed_list in /proc status".into());
            }
        }
    }
    let want_mems = plan.mems.as_ref().or(cgroup.and_then(|c| c.mems.as_ref()));
    if let (Some(want), Some(got)) = (want_mems, &status.mems_allowed)
        && got != want
    {
        drift.push(format!("Mems_allowed_list is {got}, applied {want}"));
    }
    let mut observed = Vec::new();
    if let Some(cg) = cgroup {
        let entries = read_proc(&mut read, ("cgroup", "cgroup file"), EXITED_DURING, |t| {
            parse_cgroup(t).map_err(|e| format!("cannot verify cgroup membership: {e}"))
        });
        match entries {
            Ok(entries) => compare_cgroups(cg, &entries, &mut observed, &mut drift),
            Err(stop) => return report.stop(stop),
        }
    }
    if !drift.is_empty() {
        // Evidence only from a task alive after the reads: an exiting task leaves its
        // cgroups, so `stat` is read after them.
        let stat = read_proc(&mut read, ("stat", "stat"), EXITED_DURING, |t| {
            parse_stat(t).ok_or_else(|| "cannot parse /proc stat".to_owned())
        });
        match stat {
            Ok(s) if s.has_exited() => return report.exited(EXITED_DURING),
            Ok(_) => {}
            Err(stop) => return report.stop(stop),
        }
    }
    report.observed_cpus = status.cpus_allowed;
    report.observed_mems = status.mems_allowed;
    report.observed_cgroups = observed;
    report.outcome = Some(if drift.is_empty() {
        Verification::Verified
    } else {
        Verification::Drift
    });
    report.drift = drift;
}

/// Why a `/proc` read ended the verification early.
enum Stop {
    /// The task is gone (the text for [`PinningReport::unobserved`]).
    Exited(&'static str),
    /// The file could not be read or parsed (why).
    Unverifiable(String),
}

/// Reads `/proc/<pid>/<file>` through `read` and parses it; a task gone before the read
/// is [`Stop::Exited`] with `if_gone`, any other failure [`Stop::Unverifiable`] (a read
/// error naming the file as `what`).
fn read_proc<T>(
    read: &mut impl FnMut(&str) -> io::Result<String>,
    (file, what): (&str, &str),
    if_gone: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, Stop> {
    match read(file) {
        Ok(text) => parse(&text).map_err(Stop::Unverifiable),
        Err(e) if gone(&e) => Err(Stop::Exited(if_gone)),
        Err(e) => Err(Stop::Unverifiable(format!(
            "cannot read the task's /proc {what}: {e}"
        ))),
    }
}

fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Zombie (`Z`) or dead (`X`): exited, not running any more.
fn exited(status: &crate::procfs::ProcStatus) -> bool {
    status.is_zombie() || status.state == Some('X')
}

fn compare_cgroups(
    cg: &TaskCgroup,
    entries: &[crate::procfs::CgroupEntry],
    observed: &mut Vec<String>,
    drift: &mut Vec<String>,
) {
    for (name, want) in &cg.expected {
        let got = if name.is_empty() {
            v2_path(entries)
        } else {
            v1_path(entries, name)
        };
        let label = if name.is_empty() { "v2" } else { name.as_str() };
        match got {
            Some(got) => {
                observed.push(format!("{label}:{got}"));
                if got != want {
                    drift.push(format!("{label} cgroup is {got}, expected {want}"));
                }
            }
            None => drift.push(format!("no {label} line in /proc/<pid>/cgroup")),
        }
    }
}

#[cfg(test)]
mod tests;
