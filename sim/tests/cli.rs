//! The `retz-sim` binary: help, one-line errors with file:line and non-zero exits, and
//! complete runs (run, tune, gen-workload) whose outputs are byte-identical when repeated.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retz-sim"))
        .args(args)
        .output()
        .expect("run retz-sim")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a failure with exactly one non-empty stderr line containing `want`.
fn fails_with(o: &Output, code: i32, want: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {e}");
    let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {e}");
    assert!(lines[0].starts_with("retz-sim: error: "), "{e}");
    assert!(lines[0].contains(want), "want {want:?} in: {e}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const JOBS: &str = "{\"id\":1,\"submit\":0,\"runtime\":10,\"cpus\":4}\n{\"id\":2,\"submit\":0,\"runtime\":10,\"cpus\":4}\n{\"id\":3,\"submit\":0,\"runtime\":10,\"cpus\":4}\n";

#[test]
fn help_everywhere() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["tune", "--help"],
        vec!["gen-workload", "--help"],
    ] {
        let o = sim(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage: retz-sim"), "{args:?}");
    }
    assert!(stdout(&sim(&["run", "--help"])).contains("--cycle-interval"));
    assert!(stdout(&sim(&["--version"])).starts_with("retz-sim "));
}

#[test]
fn bad_flags_and_inputs_give_one_line() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out").display().to_string();
    let jobs = write(d.path(), "w.jsonl", JOBS);
    fails_with(&sim(&["run", "--cluster", "1x@core:4"]), 2, "required");
    fails_with(&sim(&["frobnicate"]), 2, "frobnicate");
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            &jobs,
            "--policy",
            "x",
            "--out",
            &out,
            "--cycle-interval",
            "-1",
        ]),
        2,
        "-1",
    );
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "4@",
            "--workload",
            &jobs,
            "--policy",
            "spread",
            "--out",
            &out,
        ]),
        1,
        "--cluster: group \"4@\" has no topology",
    );
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "2x@pack:2 nuna:2",
            "--workload",
            &jobs,
            "--policy",
            "spread",
            "--out",
            &out,
        ]),
        1,
        "--cluster: invalid synthetic topology",
    );
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            &jobs,
            "--policy",
            "best",
            "--out",
            &out,
        ]),
        1,
        "built-ins are: retz",
    );
    let bad = write(
        d.path(),
        "bad.jsonl",
        "{\"id\":1,\"submit\":0,\"runtime\":10,\"cpus\":4}\n\n{\"id\":2,\"submit\":0,\"runtime\":10,\"cpu\":4}\n",
    );
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            &bad,
            "--policy",
            "spread",
            "--out",
            &out,
        ]),
        1,
        "bad.jsonl:3: unknown field `cpu`",
    );
    let swf = write(d.path(), "bad.swf", "; Version: 2.2\n1 0 5 100 4\n");
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            &swf,
            "--policy",
            "spread",
            "--out",
            &out,
        ]),
        1,
        "bad.swf:2: an SWF record has 18 fields, this line has 5",
    );
    let pol = write(
        d.path(),
        "p.toml",
        "[placement]\npacker = \"retz\"\n[placement.weights]\ncross_nod = 1.0\n",
    );
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            &jobs,
            "--policy",
            &pol,
            "--out",
            &out,
        ]),
        1,
        "p.toml:4: unknown field `cross_nod`",
    );
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            "/nonexistent/w.swf",
            "--policy",
            "spread",
            "--out",
            &out,
        ]),
        1,
        "/nonexistent/w.swf: cannot read the file",
    );
    let txt = write(d.path(), "w.txt", JOBS);
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            &txt,
            "--policy",
            "spread",
            "--out",
            &out,
        ]),
        1,
        "--format",
    );
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            &txt,
            "--format",
            "gwf",
            "--policy",
            "spread",
            "--out",
            &out,
        ]),
        1,
        "unknown workload format",
    );
    // --out is a file: cannot write into it.
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            &jobs,
            "--policy",
            "spread",
            "--out",
            &jobs,
        ]),
        1,
        "cannot write",
    );
    fails_with(
        &sim(&["gen-workload", "--out", &out, "--rate", "0"]),
        1,
        "--rate",
    );
    fails_with(
        &sim(&["gen-workload", "--out", &out, "--policy-mix", "numa=1"]),
        1,
        "--policy-mix",
    );
}

#[test]
fn run_writes_everything_and_repeats_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    let jobs = write(d.path(), "w.jsonl", JOBS);
    let mut outs = Vec::new();
    let mut texts = Vec::new();
    for k in 0..2 {
        let out = d.path().join(format!("out{k}"));
        let o = sim(&[
            "run",
            "--cluster",
            "1x@core:4",
            "--workload",
            &jobs,
            "--policy",
            "numa-prefer",
            "--policy",
            "first-fit",
            "--policy",
            "numa-prefer",
            "--out",
            &out.display().to_string(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        texts.push(stdout(&o).replace(&out.display().to_string(), "OUT"));
        outs.push(common::dir_bytes(&out));
    }
    assert_eq!(texts[0], texts[1]);
    common::assert_same_files(&outs[0], &outs[1]);
    let names: Vec<&str> = outs[0].iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "fragmentation.svg",
            "jobs-first-fit.csv",
            "jobs-numa-prefer.csv",
            "jobs-numa-prefer_2.csv",
            "numa_local.svg",
            "run.json",
            "summary.json",
            "utilization.svg",
            "wait_cdf.svg"
        ]
    );
    let t = &texts[0];
    assert!(
        t.contains("policy                   numa-prefer  first-fit  numa-prefer#2"),
        "{t}"
    );
    assert!(
        t.contains("wait_p95_s                        20         20             20"),
        "{t}"
    );
    let csv = String::from_utf8(outs[0][1].1.clone()).unwrap();
    assert_eq!(
        csv.lines().nth(2),
        Some("2,0,10,20,10,10,agent-000,4,0-3,0,0,true,true,true,")
    );
    // With latency measured: timing.json appears and the figure is a number.
    let out = d.path().join("timed");
    let o = sim(&[
        "run",
        "--cluster",
        "1x@core:4",
        "--workload",
        &jobs,
        "--policy",
        "spread",
        "--out",
        &out.display().to_string(),
        "--measure-latency",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("timing.json").exists());
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(s[0]["decision_latency_p99_us"].is_number());
}

#[test]
fn gen_tune_and_run_the_tuned_policy() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path().join("gen.jsonl");
    let o = sim(&[
        "gen-workload",
        "--out",
        &w.display().to_string(),
        "--jobs",
        "300",
        "--seed",
        "3",
        "--load",
        "0.9",
        "--cluster",
        "4x@pack:2 numa:2 core:2 pu:2",
        "--cpus",
        "1,2,3,4,6,8",
        "--runtime-min",
        "30",
        "--runtime-max",
        "600",
        "--policy-mix",
        "numa-prefer=3,numa-strict=1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&w).unwrap();
    assert_eq!(text.lines().count(), 301);
    let out = d.path().join("tune");
    let o = sim(&[
        "tune",
        "--cluster",
        "4x@pack:2 numa:2 core:2 pu:2",
        "--workload",
        &w.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--max-evals",
        "20",
        "--rounds",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("best policy:"));
    let toml = std::fs::read_to_string(out.join("best-policy.toml")).unwrap();
    assert!(toml.starts_with("# Tuned by `retz-sim tune`"), "{toml}");
    assert!(
        toml.contains("# objective: minimise bounded_slowdown_mean"),
        "{toml}"
    );
    assert!(toml.contains("[placement.weights]"), "{toml}");
    let tune: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("tune.json")).unwrap()).unwrap();
    let evals = tune["evaluations"].as_array().unwrap();
    assert!(evals.len() <= 20 && evals.len() >= 7, "{}", evals.len());
    assert!(out.join("summary.json").exists());
    // The tuned file is a valid --policy.
    let run = d.path().join("run");
    let o = sim(&[
        "run",
        "--cluster",
        "4x@pack:2 numa:2 core:2 pu:2",
        "--workload",
        &w.display().to_string(),
        "--policy",
        &out.join("best-policy.toml").display().to_string(),
        "--out",
        &run.display().to_string(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s[0]["policy"], "tuned");
    // Same figures as the tuned row of the tune run.
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s[0]["bounded_slowdown_mean"], t[3]["bounded_slowdown_mean"]);
    // Tuning twice gives the same file.
    let out2 = d.path().join("tune2");
    let o = sim(&[
        "tune",
        "--cluster",
        "4x@pack:2 numa:2 core:2 pu:2",
        "--workload",
        &w.display().to_string(),
        "--out",
        &out2.display().to_string(),
        "--max-evals",
        "20",
        "--rounds",
        "1",
        "--threads",
        "1",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    common::assert_same_files(&common::dir_bytes(&out), &common::dir_bytes(&out2));
}

#[test]
fn hpc2n_on_two_cpu_hosts() {
    let Some(trace) = common::hpc2n() else { return };
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o");
    let o = sim(&[
        "run",
        "--cluster",
        "120x@pu:2",
        "--workload",
        &trace.display().to_string(),
        "--policy",
        "numa-prefer",
        "--policy",
        "first-fit",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(t.contains("; Acknowledge: Ake Sandgren"), "{t}");
    assert!(t.contains("skipped: 25 x run time unknown"), "{t}");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    // Jobs of at most 2 processors fit a 2-CPU host; the others never fit one host.
    assert_eq!(s[0]["jobs"], 3145);
    assert_eq!(s[0]["placed"], s[1]["placed"]);
    let placed = s[0]["placed"].as_u64().unwrap();
    assert!(placed > 0 && placed < 3145);
}

#[test]
fn a_recording_is_a_cluster() {
    let d = tempfile::tempdir().unwrap();
    let offer = |agent: &str, cpus: u32, mem: u32| {
        format!(
            "{{\"ts\":1700000000.5,\"event\":{{\"type\":\"OFFERS\",\"offers\":{{\"offers\":[{{\"id\":{{\"value\":\"o-{agent}\"}},\"framework_id\":{{\"value\":\"f\"}},\"agent_id\":{{\"value\":\"{agent}\"}},\"hostname\":\"{agent}.example\",\"resources\":[{{\"name\":\"cpus\",\"type\":\"SCALAR\",\"scalar\":{{\"value\":{cpus}}}}},{{\"name\":\"mem\",\"type\":\"SCALAR\",\"scalar\":{{\"value\":{mem}}}}}]}}]}}}}}}\n"
        )
    };
    let rec = format!(
        "{}{{\"ts\":1700000001,\"event\":{{\"type\":\"HEARTBEAT\"}}}}\n{}",
        offer("a2", 4, 4096),
        offer("a1", 2, 1024)
    );
    let rec = write(d.path(), "events.jsonl", &rec);
    let jobs = write(d.path(), "w.jsonl", JOBS);
    let out = d.path().join("o");
    let o = sim(&[
        "run",
        "--cluster",
        &format!("recording:{rec}"),
        "--workload",
        &jobs,
        "--policy",
        "numa-prefer",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("(2 hosts, 6 CPUs, 2 NUMA nodes)"),
        "{}",
        stdout(&o)
    );
    let csv = std::fs::read_to_string(out.join("jobs-numa-prefer.csv")).unwrap();
    // Only a2 has 4 CPUs: the three 4-CPU jobs run there one after the other.
    assert!(csv.lines().skip(1).all(|l| l.contains(",a2,4,")), "{csv}");
    // Counts-only hosts: not NUMA-local, not pinned.
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.contains(",false,true,false,")),
        "{csv}"
    );
    // A broken line names its line.
    let bad = write(
        d.path(),
        "bad.jsonl",
        &format!("{}{{\"ts\":2}}\n", offer("a", 1, 1)),
    );
    fails_with(
        &sim(&[
            "run",
            "--cluster",
            &format!("recording:{bad}"),
            "--workload",
            &jobs,
            "--policy",
            "spread",
            "--out",
            &out.display().to_string(),
        ]),
        1,
        "bad.jsonl:2: not a recording line",
    );
}

#[test]
fn cache_spread_trades_l3_locality_for_spread_jobs() {
    let d = tempfile::tempdir().unwrap();
    // Two L3 domains of 4 CPUs; two 2-CPU jobs at once.
    let jobs = write(
        d.path(),
        "jobs.jsonl",
        "{\"id\":1,\"submit\":0,\"runtime\":10,\"cpus\":2}\n{\"id\":2,\"submit\":0,\"runtime\":10,\"cpus\":2}\n",
    );
    let ratio = |cache: Option<&str>| {
        let out = d.path().join(format!("out-{cache:?}"));
        let out = out.to_str().unwrap();
        let mut args = vec![
            "run",
            "--cluster",
            "1x@pack:1 numa:1 l3:2 core:4 pu:1",
            "--workload",
            &jobs,
            "--policy",
            "retz",
            "--out",
            out,
            "-q",
        ];
        if let Some(c) = cache {
            args.extend(["--cache", c]);
        }
        let o = sim(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{out}/summary.json")).unwrap()).unwrap();
        summary[0]["l3_local_ratio"].as_f64().unwrap()
    };
    assert_eq!(ratio(None), 1.0);
    assert_eq!(ratio(Some("pack")), 1.0);
    // Spread lays each job one core per domain: neither stays in one.
    assert_eq!(ratio(Some("spread")), 0.0);
    fails_with(
        &sim(&["run", "--cache", "wide", "--policy", "retz"]),
        2,
        "pack, spread",
    );
}
