//! Pinning decisions and their verification, as pure functions, plus the report that
//! goes into the `TASK_RUNNING` status.
//!
//! [`plan`] turns a validated spec and the CPUs/nodes this executor may use into what to
//! apply: the CPU affinity (also the cgroup's `cpuset.cpus`), the cgroup's `cpuset.mems`
//! and the memory policy. When the spec cannot be honoured exactly, a spec with
//! `pin_required` fails with a [`PinError`] naming the CPUs or nodes at fault; otherwise
//! the task runs with what is possible and the report says what was dropped.
//! [`verify`] compares what `/proc/<pid>/status` and `/proc/<pid>/cgroup` show with what
//! was applied, listing every difference as drift. A process that is gone or a zombie is
//! not observed, never drift: an exiting task leaves its cgroups (the kernel then shows
//! `/`, while `status` may still say `R` or `D`), so when the cgroup file disagrees,
//! `/proc/<pid>/stat` is read and a task that is exiting (`PF_EXITING`), a zombie or gone
//! is reported as exited, not as drift (issue 21).

use std::fmt::Write as _;
use std::io;

use serde::Serialize;

use crate::cgroup::{CgroupVersion, TaskCgroup};
use crate::idlist::IdList;
use crate::procfs::{parse_cgroup, parse_stat, parse_status, v1_path, v2_path};
use crate::spec::{Affinity, MemPolicy, ValidSpec};

/// The CPUs and memory nodes this executor may hand out (its own allowed sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `Cpus_allowed_list` of the executor.
    pub cpus: IdList,
    /// `Mems_allowed_list` of the executor.
    pub mems: IdList,
}

/// What to apply to one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinPlan {
    /// CPU affinity and cgroup `cpuset.cpus`; `None`: not pinned.
    pub cpus: Option<IdList>,
    /// Cgroup `cpuset.mems`; `None`: inherited.
    pub mems: Option<IdList>,
    /// Memory policy and its nodes.
    pub mem_policy: Option<(MemPolicy, IdList)>,
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
    let mut notes = Vec::new();
    let cpus = if !affinity.pins() {
        if let Some(c) = &spec.cpuset {
            notes.push(format!("affinity policy none: cpuset {c} not applied"));
        }
        None
    } else {
        match spec.cpuset.as_ref().filter(|c| !c.is_empty()) {
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
    let mems = match spec.mem_nodes.as_ref().filter(|m| !m.is_empty()) {
        Some(req) if affinity.pins() => {
            restrict(req, &machine.mems, "NUMA node", required, &mut notes)?
        }
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
            if affinity.pins() {
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

fn restrict(
    requested: &IdList,
    allowed: &IdList,
    what: &str,
    required: bool,
    notes: &mut Vec<String>,
) -> Result<Option<IdList>, PinError> {
    let missing = requested.difference(allowed);
    if missing.is_empty() {
        return Ok(Some(requested.clone()));
    }
    if required {
        return Err(PinError(format!(
            "{what}(s) {missing} of {requested} are not in this executor's allowed set {allowed}"
        )));
    }
    let usable = requested.intersection(allowed);
    if usable.is_empty() {
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupReport {
    /// `v1` or `v2`.
    pub version: CgroupVersion,
    /// The task's cgroup directories.
    pub paths: Vec<String>,
    /// `cpuset.cpus` written.
    pub cpus: Option<String>,
    /// `cpuset.mems` written.
    pub mems: Option<String>,
    /// Memory limit applied, bytes.
    pub memory_limit_bytes: Option<u64>,
}

/// What was applied to a task and what the kernel shows; sent with `TASK_RUNNING`
/// (JSON in `TaskStatus.data`, [`PinningReport::summary`] in the message).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PinningReport {
    /// The affinity policy of the spec.
    pub affinity: Option<Affinity>,
    /// CPUs set with `sched_setaffinity` (absent: not pinned).
    pub cpus: Option<String>,
    /// Memory nodes given to the cgroup.
    pub mems: Option<String>,
    /// Memory policy set before exec, e.g. `bind 0`.
    pub mem_policy: Option<String>,
    /// The task's cgroup.
    pub cgroup: Option<CgroupReport>,
    /// Why no cgroup is used (the task is then pinned by affinity alone).
    pub cgroup_unavailable: Option<String>,
    /// `Cpus_allowed_list` read back from `/proc/<pid>/status`.
    pub observed_cpus: Option<String>,
    /// `Mems_allowed_list` read back.
    pub observed_mems: Option<String>,
    /// `/proc/<pid>/cgroup` lines of the hierarchies used.
    pub observed_cgroups: Vec<String>,
    /// Differences between applied and observed.
    pub drift: Vec<String>,
    /// Adjustments and remarks.
    pub notes: Vec<String>,
    /// Who the job runs as, e.g. `nobody (uid 65534, gid 65534)`.
    pub user: Option<String>,
    /// Whether the job runs in its own PID namespace.
    pub pid_namespace: bool,
    /// Why it does not, when it does not.
    pub pid_namespace_unavailable: Option<String>,
}

impl PinningReport {
    /// A report of the plan and the cgroup (before verification).
    pub fn new(affinity: Affinity, plan: &PinPlan, cgroup: Option<&TaskCgroup>) -> Self {
        Self {
            affinity: Some(affinity),
            cpus: plan.cpus.as_ref().map(ToString::to_string),
            mems: plan.mems.as_ref().map(ToString::to_string),
            mem_policy: plan.mem_policy.as_ref().map(|(p, n)| format!("{p} {n}")),
            cgroup: cgroup.map(|cg| CgroupReport {
                version: cg.version,
                paths: cg.dirs().iter().map(|p| p.display().to_string()).collect(),
                cpus: cg.cpus.as_ref().map(ToString::to_string),
                mems: cg.mems.as_ref().map(ToString::to_string),
                memory_limit_bytes: cg.memory_limit,
            }),
            notes: plan.notes.clone(),
            ..Self::default()
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

    /// The report as JSON (for `TaskStatus.data`).
    pub fn to_json(&self) -> Vec<u8> {
        // Only strings, numbers and lists: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Fills the observed fields and drift of `report` from the task's `/proc/<pid>/status`
/// and `/proc/<pid>/cgroup` (and `stat` when they disagree), read with `read("status")`
/// etc. (a read error `NotFound` means the task already exited).
pub fn verify(
    report: &mut PinningReport,
    plan: &PinPlan,
    cgroup: Option<&TaskCgroup>,
    mut read: impl FnMut(&str) -> io::Result<String>,
) {
    const EXITED: &str = "the task exited before its pinning could be read back";
    let status = match read("status") {
        Ok(text) => match parse_status(&text) {
            Ok(s) => s,
            Err(e) => {
                report.drift.push(format!("cannot verify: {e}"));
                return;
            }
        },
        Err(e) if gone(&e) => {
            report.notes.push(EXITED.into());
            return;
        }
        Err(e) => {
            report
                .drift
                .push(format!("cannot read the task's /proc status: {e}"));
            return;
        }
    };
    if exited(&status) {
        report.notes.push(EXITED.into());
        return;
    }
    report.observed_cpus = status.cpus_allowed.as_ref().map(ToString::to_string);
    report.observed_mems = status.mems_allowed.as_ref().map(ToString::to_string);
    if let Some(want) = &plan.cpus {
        match &status.cpus_allowed {
            Some(got) if got == want => {}
            Some(got) => report
                .drift
                .push(format!("Cpus_allowed_list is {got}, applied {want}")),
            None => report
                .drift
                .push("no Cpus_allowed_list in /proc status".into()),
        }
    }
    let want_mems = plan.mems.as_ref().or(cgroup.and_then(|c| c.mems.as_ref()));
    if let (Some(want), Some(got)) = (want_mems, &status.mems_allowed)
        && got != want
    {
        report
            .drift
            .push(format!("Mems_allowed_list is {got}, applied {want}"));
    }
    let Some(cg) = cgroup else {
        return;
    };
    let mut drift = Vec::new();
    let mut observed = Vec::new();
    match read("cgroup") {
        Ok(text) => match parse_cgroup(&text) {
            Ok(entries) => compare_cgroups(cg, &entries, &mut observed, &mut drift),
            Err(e) => drift.push(format!("cannot verify cgroup membership: {e}")),
        },
        Err(e) if gone(&e) => {}
        Err(e) => drift.push(format!("cannot read the task's /proc cgroup file: {e}")),
    }
    if !drift.is_empty() {
        // An exiting task leaves its cgroups: check it is still there before calling the
        // difference drift.
        let ended = match read("stat") {
            Ok(text) => parse_stat(&text).is_some_and(|s| s.has_exited()),
            Err(e) => gone(&e),
        };
        if ended {
            report.notes.push(
                "the task exited while its cgroup membership was read back: not observed".into(),
            );
            return;
        }
    }
    report.observed_cgroups.extend(observed);
    report.drift.extend(drift);
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
mod tests {
    use super::*;
    use crate::spec::TaskSpec;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn spec(
        affinity: Affinity,
        cpuset: Option<&str>,
        nodes: Option<&str>,
        required: bool,
    ) -> ValidSpec {
        TaskSpec {
            command: "true".into(),
            env: BTreeMap::new(),
            cpus: 1,
            mem_mb: 1,
            gpus: 0,
            cpuset: cpuset.map(Into::into),
            mem_nodes: nodes.map(Into::into),
            affinity,
            mem_policy: None,
            pin_required: required,
            job_id: None,
            app: None,
            ports: Vec::new(),
            user: None,
        }
        .validate()
        .unwrap()
    }

    fn machine() -> Machine {
        Machine {
            cpus: IdList::parse("0-3").unwrap(),
            mems: IdList::parse("0").unwrap(),
        }
    }

    #[test]
    fn exact_pinning() {
        let p = plan(
            &spec(Affinity::NumaStrict, Some("1"), Some("0"), true),
            &machine(),
        )
        .unwrap();
        assert_eq!(p.cpus.unwrap().to_string(), "1");
        assert_eq!(p.mems.unwrap().to_string(), "0");
        assert_eq!(
            p.mem_policy,
            Some((MemPolicy::Bind, IdList::parse("0").unwrap()))
        );
        assert!(p.notes.is_empty());
    }

    #[test]
    fn required_but_impossible_names_the_cpus() {
        let err = plan(
            &spec(Affinity::NumaStrict, Some("2-5"), None, true),
            &machine(),
        )
        .unwrap_err();
        assert!(err.0.contains("4-5") && err.0.contains("0-3"), "{err}");
        let err = plan(&spec(Affinity::Spread, None, None, true), &machine()).unwrap_err();
        assert!(err.to_string().contains("no cpuset"), "{err}");
        let err = plan(
            &spec(Affinity::NumaPrefer, Some("1"), Some("1"), true),
            &machine(),
        )
        .unwrap_err();
        assert!(err.0.contains("NUMA node"), "{err}");
    }

    #[test]
    fn best_effort_when_not_required() {
        let p = plan(
            &spec(Affinity::NumaPrefer, Some("2-5"), Some("0-1"), false),
            &machine(),
        )
        .unwrap();
        assert_eq!(p.cpus.unwrap().to_string(), "2-3");
        assert_eq!(p.mems.unwrap().to_string(), "0");
        assert_eq!(p.mem_policy.unwrap().0, MemPolicy::Preferred);
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
        let p = plan(&spec(Affinity::Spread, Some("8"), None, false), &machine()).unwrap();
        assert_eq!(p.cpus, None);
        assert!(p.notes.iter().any(|n| n.contains("not restricted")));
        assert!(p.notes.iter().any(|n| n.contains("interleave not applied")));
        let p = plan(
            &spec(Affinity::None, Some("1"), Some("0"), true),
            &machine(),
        )
        .unwrap();
        assert_eq!((p.cpus, p.mems, p.mem_policy), (None, None, None));
        assert!(p.notes[0].contains("policy none"));
    }

    fn cgroup() -> TaskCgroup {
        TaskCgroup {
            version: CgroupVersion::V1,
            cpuset_dir: PathBuf::from("/sys/fs/cgroup/cpuset/retz/e/t"),
            memory_dir: None,
            freezer_dir: None,
            cpus: Some(IdList::parse("1").unwrap()),
            mems: Some(IdList::parse("0").unwrap()),
            memory_limit: Some(1 << 20),
            expected: vec![("cpuset".into(), "/retz/e/t".into())],
        }
    }

    /// A reader of `/proc/<pid>/{status,cgroup,stat}` returning these texts; a `-` text
    /// is a vanished process.
    fn files<'a>(
        status: &'a str,
        cgroup: &'a str,
        stat: &'a str,
    ) -> impl FnMut(&str) -> io::Result<String> + 'a {
        move |file| {
            let text = match file {
                "status" => status,
                "stat" => stat,
                _ => cgroup,
            };
            if text == "-" {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(text.to_owned())
        }
    }

    const RUNNING: &str = "9 (sh) S 1 9 9 0 -1 4194560 0 0";

    #[test]
    fn a_task_exiting_between_the_reads_is_not_drift() {
        // Issue 21: status read while alive, then the task exits; the kernel shows an
        // exited task in the root cgroups.
        let p = plan(
            &spec(Affinity::NumaStrict, Some("1"), Some("0"), true),
            &machine(),
        )
        .unwrap();
        let cg = cgroup();
        let alive = "State:\tS (sleeping)\nCpus_allowed_list:\t1\nMems_allowed_list:\t0\n";
        let exiting = "9 (sh) D 1 9 9 0 -1 4194564 0 0";
        for after in [exiting, "9 (sh) Z 1 9 9 0 -1 4227084 0 0", "-"] {
            let mut r = PinningReport::new(Affinity::NumaStrict, &p, Some(&cg));
            verify(&mut r, &p, Some(&cg), files(alive, "3:cpuset:/\n", after));
            assert!(r.drift.is_empty(), "{after:?}: {:?}", r.drift);
            assert!(r.notes.iter().any(|n| n.contains("not observed")), "{r:?}");
            assert_eq!(r.observed_cpus.as_deref(), Some("1"));
        }
        // Still running in the wrong cgroup: drift.
        let mut r = PinningReport::new(Affinity::NumaStrict, &p, Some(&cg));
        verify(&mut r, &p, Some(&cg), files(alive, "3:cpuset:/\n", RUNNING));
        assert_eq!(r.drift, vec!["cpuset cgroup is /, expected /retz/e/t"]);
        // Gone before the cgroup read: nothing to compare.
        let mut r = PinningReport::new(Affinity::NumaStrict, &p, Some(&cg));
        verify(&mut r, &p, Some(&cg), |f| match f {
            "status" => Ok(alive.to_owned()),
            _ => Err(io::Error::from(io::ErrorKind::NotFound)),
        });
        assert!(r.drift.is_empty(), "{:?}", r.drift);
    }

    #[test]
    fn verification_reports_match_and_drift() {
        let p = plan(
            &spec(Affinity::NumaStrict, Some("1"), Some("0"), false),
            &machine(),
        )
        .unwrap();
        let cg = cgroup();
        let status = "State:\tS (sleeping)\nCpus_allowed_list:\t1\nMems_allowed_list:\t0\n";
        let mut r = PinningReport::new(Affinity::NumaStrict, &p, Some(&cg));
        verify(
            &mut r,
            &p,
            Some(&cg),
            files(status, "3:cpuset:/retz/e/t\n0::/\n", RUNNING),
        );
        assert!(r.drift.is_empty(), "{:?}", r.drift);
        assert_eq!(r.observed_cpus.as_deref(), Some("1"));
        assert_eq!(r.observed_cgroups, vec!["cpuset:/retz/e/t"]);
        let line = r.summary();
        assert!(
            line.contains("pinned to CPUs 1") && line.contains("cgroup v1"),
            "{line}"
        );
        assert!(
            line.contains("memory limit 1 MB") && line.contains("mempolicy bind 0"),
            "{line}"
        );
        let json: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(json["cgroup"]["version"], "v1");
        assert_eq!(json["affinity"], "numa-strict");

        let mut r = PinningReport::new(Affinity::NumaStrict, &p, Some(&cg));
        let drifted = "State:\tR\nCpus_allowed_list:\t0-3\nMems_allowed_list:\t0\n";
        verify(
            &mut r,
            &p,
            Some(&cg),
            files(drifted, "3:cpuset:/\n", RUNNING),
        );
        assert_eq!(r.drift.len(), 2, "{:?}", r.drift);
        assert!(
            r.summary()
                .contains("DRIFT: Cpus_allowed_list is 0-3, applied 1")
        );
    }

    #[test]
    fn exited_tasks_are_not_drift() {
        let p = plan(
            &spec(Affinity::NumaStrict, Some("1"), None, false),
            &machine(),
        )
        .unwrap();
        let mut r = PinningReport::new(Affinity::NumaStrict, &p, None);
        verify(&mut r, &p, None, |_| {
            Err(io::Error::from(io::ErrorKind::NotFound))
        });
        assert!(r.drift.is_empty());
        let mut r = PinningReport::new(Affinity::NumaStrict, &p, None);
        verify(&mut r, &p, None, files("State:\tZ (zombie)\n", "", "-"));
        assert!(r.drift.is_empty() && r.notes.iter().any(|n| n.contains("exited")));
        let mut r = PinningReport::new(Affinity::NumaStrict, &p, None);
        r.cgroup_unavailable = Some("no CAP_SYS_ADMIN".into());
        assert!(
            r.summary()
                .contains("no cgroup (no CAP_SYS_ADMIN): affinity alone")
        );
    }
}
