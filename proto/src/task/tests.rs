//! Round trips and wire shapes of the task contract.

use std::collections::BTreeMap;

use proptest::prelude::*;
use retz_placement::{AffinityPolicy, CpuSet, NodeSet};

use super::*;

fn sample() -> TaskSpec {
    TaskSpec {
        command: "echo $RETZ_CPU".into(),
        env: BTreeMap::from([("A".into(), "x=$RETZ_CPU".into())]),
        cpus: 2,
        mem_mb: 512,
        gpus: 0,
        gpu_ids: None,
        cpuset: Some("0-1".parse().unwrap()),
        mem_nodes: Some("0".parse().unwrap()),
        affinity: AffinityPolicy::NumaStrict,
        mem_policy: None,
        pin_required: true,
        job_id: Some(7),
        app: Some("asakusa".into()),
        ports: vec![31000, 31002],
        user: Some("alice".into()),
    }
}

fn pinning() -> VerifiedPinning {
    VerifiedPinning {
        affinity: AffinityPolicy::NumaStrict,
        mechanism: PinMechanism::CgroupV1,
        outcome: Verification::Verified,
        cpus: Some("8-11".parse().unwrap()),
        mems: Some("1".parse().unwrap()),
        cpus_seen: Some("8-11".parse().unwrap()),
        mems_seen: Some("1".parse().unwrap()),
        drift: Vec::new(),
        note: None,
    }
}

#[test]
fn spec_round_trip_and_field_names() {
    let spec = sample();
    let json = spec.to_vec();
    let text = String::from_utf8(json.clone()).unwrap();
    for field in [
        "\"command\"",
        "\"env\"",
        "\"cpus\"",
        "\"mem_mb\"",
        "\"gpus\"",
        "\"cpuset\":\"0-1\"",
        "\"mem_nodes\":\"0\"",
        "\"affinity\":\"numa-strict\"",
        "\"pin_required\"",
        "\"job_id\"",
        "\"app\"",
        "\"ports\":[31000,31002]",
        "\"user\":\"alice\"",
    ] {
        assert!(text.contains(field), "{field} missing in {text}");
    }
    assert_eq!(TaskSpec::from_slice(&json).unwrap(), spec);
}

#[test]
fn specs_of_earlier_servers_are_read() {
    // The exact shape retz-server wrote before the contract moved here.
    let old = br#"{"command":"true","env":{},"cpus":1,"mem_mb":32,"gpus":0,"cpuset":"3",
        "mem_nodes":"0","affinity":"numa-prefer","pin_required":true,"job_id":9,"app":"a"}"#;
    let spec = TaskSpec::from_slice(old).unwrap();
    assert_eq!(spec.cpuset, Some(CpuSet::from_range(3, 3)));
    assert_eq!(spec.mem_nodes, Some(NodeSet::from_range(0, 0)));
    assert_eq!(spec.affinity, AffinityPolicy::NumaPrefer);
    assert_eq!(spec.user, None);
    assert!(spec.ports.is_empty());
    let spec = TaskSpec::from_slice(
        br#"{"command":"true","cpus":1,"mem_mb":32,"affinity":"spread",
             "mem_policy":"interleave","pvname":"app1","unknown_field":1}"#,
    )
    .unwrap();
    assert_eq!(spec.app.as_deref(), Some("app1"));
    assert_eq!(spec.mem_policy, Some(MemPolicy::Interleave));
    let v = spec.validate().unwrap();
    assert_eq!(v.app, "app1");
    assert_eq!(v.spec.cpuset, None);
    let text = String::from_utf8(v.spec.to_vec()).unwrap();
    assert!(!text.contains("ports") && !text.contains("user"), "{text}");
}

#[test]
fn bad_specs_are_one_clear_error_naming_the_field() {
    let msg = TaskSpec::from_slice(br#"{"command":"x","cpus":1}"#)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("not a Retz task spec") && msg.contains("mem_mb"),
        "{msg}"
    );
    let msg =
        TaskSpec::from_slice(br#"{"command":"x","cpus":1,"mem_mb":1,"affinity":"numa-weird"}"#)
            .unwrap_err()
            .to_string();
    assert!(msg.contains("numa-weird"), "{msg}");
    let msg = TaskSpec::from_slice(
        br#"{"command":"x","cpus":1,"mem_mb":1,"affinity":"spread","cpuset":"1-x"}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("`cpuset`") && msg.contains("1-x"), "{msg}");
    let msg = TaskSpec::from_slice(
        br#"{"command":"x","cpus":1,"mem_mb":1,"affinity":"spread","mem_nodes":"3-1"}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("`mem_nodes`") && msg.contains("backwards"),
        "{msg}"
    );
    let msg = TaskSpec::from_slice(
        br#"{"command":"x","cpus":1,"mem_mb":1,"affinity":"none","ports":[65536]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("65536"), "{msg}");
    assert!(TaskSpec::from_slice(b"\xff\xfe").is_err());
}

#[test]
fn validation_names_the_field() {
    let mut s = sample();
    s.command = "  ".into();
    assert!(s.validate().unwrap_err().to_string().contains("`command`"));
    let mut s = sample();
    s.env.insert("A=B".into(), "v".into());
    assert!(s.validate().unwrap_err().to_string().contains("`A=B`"));
    let mut s = sample();
    s.env.insert("V".into(), "a\0b".into());
    assert!(s.validate().is_err());
    for bad in ["", ".", "..", "a/b", "a\nb"] {
        let mut s = sample();
        s.app = Some(bad.into());
        assert!(
            matches!(s.validate(), Err(SpecError::App { .. })),
            "{bad:?}"
        );
    }
    let mut s = sample();
    s.ports = vec![31000, 0];
    let msg = s.validate().unwrap_err().to_string();
    assert!(msg.contains("`ports`") && msg.contains("port 0"), "{msg}");
    let mut s = sample();
    s.ports = vec![31000, 31001, 31000];
    let msg = s.validate().unwrap_err().to_string();
    assert!(msg.contains("31000 is given twice"), "{msg}");
}

#[test]
fn gpu_ids_travel_as_a_list_and_must_match_the_count() {
    let mut s = sample();
    s.gpus = 2;
    s.gpu_ids = Some("1,3".parse().unwrap());
    let text = String::from_utf8(s.to_vec()).unwrap();
    assert!(text.contains("\"gpu_ids\":\"1,3\""), "{text}");
    assert_eq!(TaskSpec::from_slice(text.as_bytes()).unwrap(), s);
    assert!(s.clone().validate().is_ok());
    // An empty list is kept: the agent names its GPUs and the task got none.
    let mut none = sample();
    none.gpu_ids = Some(retz_placement::GpuSet::new());
    let back = TaskSpec::from_slice(&none.to_vec()).unwrap();
    assert_eq!(back.gpu_ids, Some(retz_placement::GpuSet::new()));
    // Absent in specs without it.
    assert!(
        !String::from_utf8(sample().to_vec())
            .unwrap()
            .contains("gpu_ids")
    );
    let msg = TaskSpec::from_slice(
        br#"{"command":"x","cpus":1,"mem_mb":1,"affinity":"spread","gpus":1,"gpu_ids":"a"}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("`gpu_ids`"), "{msg}");
    s.gpus = 1;
    let msg = s.validate().unwrap_err().to_string();
    assert!(
        msg.contains("`gpu_ids`") && msg.contains("names 2 devices") && msg.contains("is 1"),
        "{msg}"
    );
}

#[test]
fn memory_policy_follows_affinity_unless_given() {
    assert_eq!(sample().validate().unwrap().mem_policy, MemPolicy::Bind);
    let mut s = sample();
    s.affinity = AffinityPolicy::NumaPrefer;
    assert_eq!(
        s.clone().validate().unwrap().mem_policy,
        MemPolicy::Preferred
    );
    s.mem_policy = Some(MemPolicy::None);
    assert_eq!(s.validate().unwrap().mem_policy, MemPolicy::None);
    assert_eq!(
        MemPolicy::for_affinity(AffinityPolicy::Spread),
        MemPolicy::Interleave
    );
    assert_eq!(
        MemPolicy::for_affinity(AffinityPolicy::None),
        MemPolicy::None
    );
    assert!(sample().pins());
}

#[test]
fn report_round_trip_and_wire_shape() {
    let report = TaskReport {
        exit_code: Some(0),
        leftovers: 2,
        pinning: Some(pinning()),
        ..TaskReport::default()
    };
    let json = report.to_vec();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"exit_code": 0, "leftovers": 2, "pinning": {
            "affinity": "numa-strict", "mechanism": "cgroup-v1", "outcome": "verified",
            "cpus": "8-11", "mems": "1", "cpus_seen": "8-11", "mems_seen": "1"}})
    );
    assert_eq!(TaskReport::from_slice(&json).unwrap(), report);
    for mechanism in PinMechanism::ALL {
        let mut p = pinning();
        p.mechanism = mechanism;
        p.outcome = Verification::Drift;
        p.drift = vec!["Cpus_allowed_list is 0-3, applied 8-11".into()];
        let r = TaskReport {
            signal: Some(9),
            work_dir: Some("/sb/tasks/t".into()),
            pinning: Some(p),
            ..TaskReport::default()
        };
        assert_eq!(TaskReport::from_slice(&r.to_vec()).unwrap(), r);
    }
}

#[test]
fn reports_of_earlier_executors_are_read() {
    let r = TaskReport::from_slice(br#"{"exit_code":3}"#).unwrap();
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.pinning, None);
    let r = TaskReport::from_slice(br#"{"leftovers":1}"#).unwrap();
    assert_eq!((r.exit_code, r.leftovers), (None, 1));
    // The TASK_RUNNING data of earlier executors: a flat pinning report with work_dir.
    let r = TaskReport::from_slice(
        br#"{"affinity":"numa-strict","cpus":"1","observed_cpus":"1","drift":[],"work_dir":"/w"}"#,
    )
    .unwrap();
    assert_eq!(r.work_dir.as_deref(), Some("/w"));
    assert_eq!(r.pinning, None);
    assert!(TaskReport::from_slice(b"").is_err());
    assert!(TaskReport::default().is_empty());
    assert_eq!(TaskReport::default().to_vec(), b"{}");
}

#[test]
fn summaries() {
    let p = pinning();
    assert_eq!(p.summary(), "cgroup-v1 CPUs 8-11 nodes 1: verified");
    assert_eq!(p.short(), "cgroup-v1 verified");
    let mut d = p.clone();
    d.outcome = Verification::Drift;
    d.drift = vec!["Cpus_allowed_list is 0-3, applied 8-11".into()];
    assert!(
        d.summary()
            .ends_with(": DRIFT Cpus_allowed_list is 0-3, applied 8-11")
    );
    assert_eq!(d.short(), "cgroup-v1 DRIFT");
    let mut e = p;
    e.outcome = Verification::Exited;
    assert!(
        e.summary().ends_with("exited before verification"),
        "{}",
        e.summary()
    );
}

fn arb_set() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        proptest::collection::btree_set(0u32..300, 0..8)
            .prop_map(|ids| ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
    )
}

proptest! {
    #[test]
    fn from_slice_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = TaskSpec::from_slice(&data);
        let _ = TaskReport::from_slice(&data);
        super::fuzz(&data);
    }

    #[test]
    fn json_like_garbage_never_panics(s in "[{}\\[\\]\":,a-z0-9_ -]{0,120}") {
        super::fuzz(s.as_bytes());
    }

    #[test]
    fn reports_round_trip(
        code in proptest::option::of(any::<i32>()),
        leftovers in any::<u32>(),
        cpus in arb_set(),
        seen in arb_set(),
        outcome in 0usize..4,
    ) {
        let outcome = [Verification::Verified, Verification::Drift, Verification::Exited,
            Verification::Unverifiable][outcome];
        let r = TaskReport {
            exit_code: code,
            leftovers,
            pinning: Some(VerifiedPinning {
                cpus: cpus.map(|c| c.parse().unwrap()),
                cpus_seen: seen.map(|c| c.parse().unwrap()),
                outcome,
                ..pinning()
            }),
            ..TaskReport::default()
        };
        prop_assert_eq!(TaskReport::from_slice(&r.to_vec()).unwrap(), r);
    }
}
