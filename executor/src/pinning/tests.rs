//! Unit tests of pinning plans and their verification (`pinning.rs`).

use super::*;
use crate::spec::TaskSpec;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn spec(
    affinity: AffinityPolicy,
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
        gpu_ids: None,
        cpuset: cpuset.map(|c| c.parse().unwrap()),
        mem_nodes: nodes.map(|n| n.parse().unwrap()),
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
        cpus: "0-3".parse().unwrap(),
        mems: "0".parse().unwrap(),
    }
}

#[test]
fn exact_pinning() {
    let p = plan(
        &spec(AffinityPolicy::NumaStrict, Some("1"), Some("0"), true),
        &machine(),
    )
    .unwrap();
    assert_eq!(p.cpus.unwrap().to_string(), "1");
    assert_eq!(p.mems.unwrap().to_string(), "0");
    assert_eq!(p.mem_policy, Some((MemPolicy::Bind, "0".parse().unwrap())));
    assert!(p.notes.is_empty());
}

#[test]
fn required_but_impossible_names_the_cpus() {
    let err = plan(
        &spec(AffinityPolicy::NumaStrict, Some("2-5"), None, true),
        &machine(),
    )
    .unwrap_err();
    assert!(err.0.contains("4-5") && err.0.contains("0-3"), "{err}");
    let err = plan(&spec(AffinityPolicy::Spread, None, None, true), &machine()).unwrap_err();
    assert!(err.to_string().contains("no cpuset"), "{err}");
    let err = plan(
        &spec(AffinityPolicy::NumaPrefer, Some("1"), Some("1"), true),
        &machine(),
    )
    .unwrap_err();
    assert!(err.0.contains("NUMA node"), "{err}");
}

#[test]
fn best_effort_when_not_required() {
    let p = plan(
        &spec(AffinityPolicy::NumaPrefer, Some("2-5"), Some("0-1"), false),
        &machine(),
    )
    .unwrap();
    assert_eq!(p.cpus.unwrap().to_string(), "2-3");
    assert_eq!(p.mems.unwrap().to_string(), "0");
    assert_eq!(p.mem_policy.unwrap().0, MemPolicy::Preferred);
    assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
    let p = plan(
        &spec(AffinityPolicy::Spread, Some("8"), None, false),
        &machine(),
    )
    .unwrap();
    assert_eq!(p.cpus, None);
    assert!(p.notes.iter().any(|n| n.contains("not restricted")));
    assert!(p.notes.iter().any(|n| n.contains("interleave not applied")));
    let p = plan(
        &spec(AffinityPolicy::None, Some("1"), Some("0"), true),
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
        cpus: Some("1".parse().unwrap()),
        mems: Some("0".parse().unwrap()),
        memory_limit: Some(1 << 20),
        devices_dir: None,
        denied_devices: Vec::new(),
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
        &spec(AffinityPolicy::NumaStrict, Some("1"), Some("0"), true),
        &machine(),
    )
    .unwrap();
    let cg = cgroup();
    let alive = "State:\tS (sleeping)\nCpus_allowed_list:\t1\nMems_allowed_list:\t0\n";
    let exiting = "9 (sh) D 1 9 9 0 -1 4194564 0 0";
    for after in [exiting, "9 (sh) Z 1 9 9 0 -1 4227084 0 0", "-"] {
        let mut r = PinningReport::new(AffinityPolicy::NumaStrict, &p, Some(&cg));
        verify(&mut r, &p, Some(&cg), files(alive, "3:cpuset:/\n", after));
        assert!(r.drift.is_empty(), "{after:?}: {:?}", r.drift);
        assert_eq!(r.outcome, Some(Verification::Exited), "{after:?}");
        assert_eq!(r.unobserved.as_deref(), Some(EXITED_DURING));
        let v = r.verified();
        assert_eq!(v.outcome, Verification::Exited);
        assert!(v.drift.is_empty());
    }
    // Still running in the wrong cgroup: drift, with the evidence.
    let mut r = PinningReport::new(AffinityPolicy::NumaStrict, &p, Some(&cg));
    verify(&mut r, &p, Some(&cg), files(alive, "3:cpuset:/\n", RUNNING));
    assert_eq!(r.drift, vec!["cpuset cgroup is /, expected /retz/e/t"]);
    assert_eq!(r.outcome, Some(Verification::Drift));
    // Gone before the cgroup read: nothing to compare.
    let mut r = PinningReport::new(AffinityPolicy::NumaStrict, &p, Some(&cg));
    verify(&mut r, &p, Some(&cg), |f| match f {
        "status" => Ok(alive.to_owned()),
        _ => Err(io::Error::from(io::ErrorKind::NotFound)),
    });
    assert!(r.drift.is_empty(), "{:?}", r.drift);
    assert_eq!(r.outcome, Some(Verification::Exited));
}

#[test]
fn unreadable_files_are_not_drift() {
    let p = plan(
        &spec(AffinityPolicy::NumaStrict, Some("1"), Some("0"), true),
        &machine(),
    )
    .unwrap();
    let cg = cgroup();
    let alive = "State:\tS (sleeping)\nCpus_allowed_list:\t1\nMems_allowed_list:\t0\n";
    let denied = || io::Error::from_raw_os_error(libc::EACCES);
    type Reader<'a> = Box<dyn FnMut(&str) -> io::Result<String> + 'a>;
    let cases: [(&str, Reader<'_>); 5] = [
        ("status unreadable", Box::new(|_: &str| Err(denied()))),
        (
            "status garbage",
            Box::new(files("Cpus_allowed_list:\t1-x\n", "", RUNNING)),
        ),
        ("no list", Box::new(files("State:\tS\n", "", RUNNING))),
        (
            "cgroup unreadable",
            Box::new(move |f: &str| match f {
                "status" => Ok(alive.to_owned()),
                _ => Err(denied()),
            }),
        ),
        (
            "stat unreadable after a difference",
            Box::new(move |f: &str| match f {
                "status" => Ok(alive.to_owned()),
                "cgroup" => Ok("3:cpuset:/\n".to_owned()),
                _ => Err(denied()),
            }),
        ),
    ];
    for (what, read) in cases {
        let mut r = PinningReport::new(AffinityPolicy::NumaStrict, &p, Some(&cg));
        verify(&mut r, &p, Some(&cg), read);
        assert!(r.drift.is_empty(), "{what}: {:?}", r.drift);
        assert_eq!(r.outcome, Some(Verification::Unverifiable), "{what}");
        assert!(
            r.summary().contains("not verified"),
            "{what}: {}",
            r.summary()
        );
    }
}

#[test]
fn verification_reports_match_and_drift() {
    let p = plan(
        &spec(AffinityPolicy::NumaStrict, Some("1"), Some("0"), false),
        &machine(),
    )
    .unwrap();
    let cg = cgroup();
    let status = "State:\tS (sleeping)\nCpus_allowed_list:\t1\nMems_allowed_list:\t0\n";
    let mut r = PinningReport::new(AffinityPolicy::NumaStrict, &p, Some(&cg));
    verify(
        &mut r,
        &p,
        Some(&cg),
        files(status, "3:cpuset:/retz/e/t\n0::/\n", RUNNING),
    );
    assert!(r.drift.is_empty(), "{:?}", r.drift);
    assert_eq!(r.outcome, Some(Verification::Verified));
    assert_eq!(r.observed_cpus, Some("1".parse().unwrap()));
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
    let v = r.verified();
    assert_eq!(v.mechanism, PinMechanism::CgroupV1);
    assert_eq!(v.affinity, AffinityPolicy::NumaStrict);
    assert_eq!(v.cpus_seen, Some("1".parse().unwrap()));
    assert_eq!(v.mems_seen, Some("0".parse().unwrap()));
    assert_eq!(v.note, None);

    let mut r = PinningReport::new(AffinityPolicy::NumaStrict, &p, Some(&cg));
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
    assert_eq!(r.verified().outcome, Verification::Drift);
}

#[test]
fn exited_tasks_are_not_drift() {
    let p = plan(
        &spec(AffinityPolicy::NumaStrict, Some("1"), None, false),
        &machine(),
    )
    .unwrap();
    let mut r = PinningReport::new(AffinityPolicy::NumaStrict, &p, None);
    verify(&mut r, &p, None, |_| {
        Err(io::Error::from(io::ErrorKind::NotFound))
    });
    assert!(r.drift.is_empty());
    assert_eq!(r.outcome, Some(Verification::Exited));
    let mut r = PinningReport::new(AffinityPolicy::NumaStrict, &p, None);
    verify(&mut r, &p, None, files("State:\tZ (zombie)\n", "", "-"));
    assert!(r.drift.is_empty() && r.unobserved.as_deref() == Some(EXITED_BEFORE));
    assert_eq!(r.verified().mechanism, PinMechanism::AffinityOnly);
    let mut r = PinningReport::new(AffinityPolicy::NumaStrict, &p, None);
    r.cgroup_unavailable = Some("no CAP_SYS_ADMIN".into());
    assert!(
        r.summary()
            .contains("no cgroup (no CAP_SYS_ADMIN): affinity alone")
    );
    assert_eq!(
        r.verified().outcome,
        Verification::Unverifiable,
        "not verified yet"
    );
    let none = plan(&spec(AffinityPolicy::None, None, None, false), &machine()).unwrap();
    assert_eq!(
        PinningReport::new(AffinityPolicy::None, &none, None).mechanism(),
        PinMechanism::Unpinned
    );
}
