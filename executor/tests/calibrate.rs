//! `retz-executor calibrate --quick` on the machine the tests run on: the model form
//! `retz-sim run --model` reads, every factor either measured (positive) or listed as
//! unmeasured with a reason, and the factors this machine's topology cannot show listed,
//! not faked.

use std::process::Command;

use retz_placement::Topology;
use retz_topology::TopologySource;
use serde_json::Value;

const FACTORS: [&str; 4] = [
    "nodes_spanned",
    "l3_spanned",
    "smt_shared",
    "remote_mem_share",
];

#[test]
fn calibrate_quick_writes_the_model_form_and_lists_what_it_cannot_measure() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("cal.json");
    let out = Command::new(env!("CARGO_BIN_EXE_retz-executor"))
        .args(["calibrate", "--quick", "--out"])
        .arg(&out_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(printed["topology"], written["topology"]);
    let v = written;
    let star = &v["apps"]["*"];
    assert!(star["n"].as_u64().unwrap() >= 3);
    let factors = star["factors"].as_object().unwrap();
    let unmeasured = v["unmeasured"].as_object().unwrap();
    for f in FACTORS {
        let measured = factors.get(f);
        let why = unmeasured.get(f);
        assert!(
            measured.is_some() != why.is_some(),
            "{f}: measured {measured:?}, unmeasured {why:?}"
        );
        if let Some(m) = measured {
            assert!(m.as_f64().unwrap() > 0.0);
        }
        if let Some(w) = why {
            assert!(!w.as_str().unwrap().is_empty());
            assert!(stderr.contains(&format!("{f} not measured")), "{stderr}");
        }
    }
    for k in factors.keys().chain(unmeasured.keys()) {
        assert!(FACTORS.contains(&k.as_str()), "unknown factor {k}");
    }
    assert!(v["baseline_gb_per_s"].as_f64().unwrap() > 0.0);
    // What this machine cannot show must be listed (not faked).
    let t = Topology::new(
        retz_topology::load(&TopologySource::ThisMachine)
            .unwrap()
            .spec,
    )
    .unwrap();
    let cpu_nodes = t
        .nodes()
        .iter()
        .filter(|n| !n.core_range().is_empty())
        .count();
    if cpu_nodes < 2 {
        assert!(unmeasured.contains_key("remote_mem_share"));
        assert!(unmeasured.contains_key("nodes_spanned"));
    }
    if !t.has_split_caches() {
        assert!(unmeasured.contains_key("l3_spanned"));
    }
    if t.cores().iter().all(|c| c.len() < 2) {
        assert!(unmeasured.contains_key("smt_shared"));
    }
    assert_eq!(v["topology"]["numa_nodes"], t.num_nodes());
}

#[test]
fn calibrate_bad_settings_are_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_retz-executor"))
        .args(["calibrate", "--reps", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = e
        .lines()
        .filter(|l| l.starts_with("retz-executor calibrate: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{e}");
    assert!(lines[0].contains("repetitions"), "{e}");
}
