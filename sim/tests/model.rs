//! The placement runtime model end to end: `gen-history` → `fit` recovers known factors,
//! pools small apps, drops factors without variation; `run|tune --model` changes the
//! policy ranking where the model says it should; without `--model` every output is
//! byte-identical to the outputs of the code before the model existed (committed under
//! `tests/data/nomodel/`, made by the pre-model binary).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use retz_sim::fit::{FitOptions, fit, model_of};
use retz_sim::history::{SynthApp, generate, parse};
use retz_sim::model::{FACTORS, RuntimeModel};

fn sim_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retz-sim"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run retz-sim")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn data() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

const NOMODEL_CLUSTER: &str = "3x@pack:1 numa:2 l3:2 core:2 pu:2";

#[test]
fn without_model_outputs_are_byte_identical_to_the_pre_model_code() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::copy(data().join("nomodel/jobs.jsonl"), d.join("jobs.jsonl")).unwrap();
    let run = ok(&sim_in(
        d,
        &[
            "run",
            "--cluster",
            NOMODEL_CLUSTER,
            "--workload",
            "jobs.jsonl",
            "--policy",
            "retz",
            "--policy",
            "first-fit",
            "--policy",
            "spread",
            "--bins",
            "20",
            "--threads",
            "1",
            "--out",
            "run",
        ],
    ));
    let tune = ok(&sim_in(
        d,
        &[
            "tune",
            "--cluster",
            NOMODEL_CLUSTER,
            "--workload",
            "jobs.jsonl",
            "--max-evals",
            "12",
            "--threads",
            "1",
            "--out",
            "tune",
        ],
    ));
    let expect = data().join("nomodel");
    for (name, stdout) in [("run", run), ("tune", tune)] {
        let want = std::fs::read_to_string(expect.join(format!("expect-{name}.stdout"))).unwrap();
        assert_eq!(stdout, want, "{name} stdout changed");
        let got = common::dir_bytes(&d.join(name));
        let want = common::dir_bytes(&expect.join(format!("expect-{name}")));
        assert_eq!(
            got.iter().map(|f| &f.0).collect::<Vec<_>>(),
            want.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g.1 == w.1,
                "{name}/{} differs from the pre-model output",
                g.0
            );
        }
        let summary = std::fs::read_to_string(d.join(name).join("summary.json")).unwrap();
        assert!(!summary.contains("throughput_jobs_per_h") && !summary.contains("modelled"));
    }
}

fn apps() -> Vec<SynthApp> {
    [
        "etl:1.45,1.05,1.20,1.60@800",
        "ml:1.02,1.25,1.35,1.10@600",
        "db:1.80,0.95,1.05,1.90@500",
        "tiny:1.30,1.00,1.00,1.30@20",
        "odd:1.10,1.10,1.10,1.10@12",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

#[test]
fn fit_recovers_known_factors_within_5_percent_and_pools_small_apps() {
    let apps = apps();
    let h = parse("synthetic", &generate(&apps, 0.08, 42)).unwrap();
    let r = fit(&h, &FitOptions { min_jobs: 30 }).unwrap();
    let m = model_of(&r);
    for a in apps.iter().filter(|a| a.jobs >= 30) {
        let am = &m.apps[&a.name];
        assert_eq!(am.n, a.jobs);
        for (k, name) in FACTORS.iter().enumerate() {
            let got = am.factors[*name];
            let want = a.factors[k];
            assert!(
                (got / want - 1.0).abs() < 0.05,
                "{}: {name} fitted {got}, true {want}",
                a.name
            );
            let [lo, hi] = am.ci95[*name];
            assert!(lo < got && got < hi && hi - lo < 0.2, "{lo} {got} {hi}");
        }
        assert!((am.b.unwrap() - a.b).abs() < 0.05);
    }
    // Small apps are pooled into "*", not fitted alone.
    assert!(!m.apps.contains_key("tiny") && !m.apps.contains_key("odd"));
    let pooled = &m.apps["*"];
    assert_eq!(pooled.n, 32);
    assert_eq!(
        pooled.extra["pooled_apps"],
        serde_json::json!(["odd", "tiny"])
    );
    // A higher threshold pools more.
    let r = fit(&h, &FitOptions { min_jobs: 350 }).unwrap();
    let m = model_of(&r);
    assert_eq!(m.apps["*"].n, 32);
    let r = fit(&h, &FitOptions { min_jobs: 550 }).unwrap();
    let m = model_of(&r);
    assert_eq!(m.apps["*"].n, 532);
    assert_eq!(m.apps.len(), 3);
}

#[test]
fn fit_cli_writes_the_model_table_and_charts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&sim_in(
        d,
        &["gen-history", "--out", "h.jsonl", "--seed", "3"],
    ));
    // A line without placement (unpinned) and one unfinished job are skipped and counted.
    let mut text = std::fs::read_to_string(d.join("h.jsonl")).unwrap();
    text.push_str("{\"job\":9001,\"app\":\"etl\",\"cpus\":2,\"runtime_s\":5,\"nodes_spanned\":null,\"l3_spanned\":null,\"smt_shared\":null,\"remote_mem_share\":null}\n");
    text.push_str(
        "{\"job\":9002,\"app\":\"etl\",\"state\":\"FAILED\",\"cpus\":2,\"runtime_s\":5}\n",
    );
    std::fs::write(d.join("h.jsonl"), text).unwrap();
    let out = ok(&sim_in(d, &["fit", "--history", "h.jsonl", "--out", "m"]));
    let line = out
        .lines()
        .find(|l| l.starts_with("etl: x") && l.contains("per extra node"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.ends_with(", n=600)") && line.contains("(±0.0"),
        "{line}"
    );
    assert!(
        out.contains("skipped lines: 1 unpinned, 1 not finished"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("m/model.json")).unwrap()).unwrap();
    let etl = &v["apps"]["etl"];
    assert_eq!(etl["n"], 600);
    assert!(etl["a"].is_f64() && etl["b"].is_f64());
    for f in FACTORS {
        assert!(etl["factors"][f].as_f64().unwrap() > 0.0);
        assert_eq!(etl["ci95"][f].as_array().unwrap().len(), 2);
    }
    assert_eq!(v["skipped_lines"]["unpinned"], 1);
    RuntimeModel::load(&d.join("m/model.json")).unwrap();
    for f in ["fit-app-etl.svg", "fit-app-ml.svg", "fit-pooled.svg"] {
        let svg = std::fs::read_to_string(d.join("m").join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<circle"), "{f}");
    }
    // Same input, same bytes.
    ok(&sim_in(
        d,
        &["fit", "--history", "h.jsonl", "--out", "m2", "-q"],
    ));
    assert_eq!(
        common::dir_bytes(&d.join("m")),
        common::dir_bytes(&d.join("m2"))
    );
}

#[test]
fn factors_without_variation_are_dropped_and_said() {
    let apps: Vec<SynthApp> = vec!["etl:1.45,1.05,1.20,1.60@200".parse().unwrap()];
    let text: String = generate(&apps, 0.1, 1)
        .lines()
        .map(|l| l.replace("\"smt_shared\":true", "\"smt_shared\":false") + "\n")
        .collect();
    let h = parse("h", &text).unwrap();
    let r = fit(&h, &FitOptions { min_jobs: 30 }).unwrap();
    let m = model_of(&r);
    let etl = &m.apps["etl"];
    assert!(!etl.factors.contains_key("smt_shared"));
    assert!(!etl.ci95.contains_key("smt_shared"));
    assert_eq!(
        etl.extra["dropped"]["smt_shared"],
        serde_json::json!("no variation in the data")
    );
    assert!(
        retz_sim::fit::table(&r)
            .contains("etl: smt_shared dropped: no variation in the data (n=200)")
    );
}

#[test]
fn bad_history_is_one_error_line_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("ok.jsonl"),
        "{\"job\":1,\"app\":\"a\",\"cpus\":1,\"runtime_s\":3,\"nodes_spanned\":1,\"l3_spanned\":1,\"smt_shared\":false,\"remote_mem_share\":0}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("h.jsonl"),
        "{\"job\":1,\"app\":\"a\",\"cpus\":1,\"runtime_s\":3,\"nodes_spanned\":1,\"l3_spanned\":1,\"smt_shared\":false,\"remote_mem_share\":0}\n\n{\"job\":2,\"app\":\"a\",\"cpus\":1,\"runtime_s\":-3,\"nodes_spanned\":1,\"l3_spanned\":1,\"smt_shared\":false,\"remote_mem_share\":0}\n",
    )
    .unwrap();
    for (args, want) in [
        (
            vec!["fit", "--history", "h.jsonl", "--out", "m"],
            "h.jsonl:3: `runtime_s` must be a number > 0",
        ),
        (
            vec!["fit", "--history", "missing.jsonl", "--out", "m"],
            "missing.jsonl: cannot read the file",
        ),
        (
            vec![
                "fit",
                "--history",
                "ok.jsonl",
                "--out",
                "m",
                "--min-jobs",
                "3",
            ],
            "--min-jobs 3 is too small",
        ),
    ] {
        let o = sim_in(d, &args);
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{e}");
        assert!(lines[0].contains(want), "want {want:?} in {e}");
    }
    std::fs::write(
        d.join("bad.json"),
        "{\"apps\": {\"x\": {\"n\": 1, \"factors\": {\"nodez\": 2}}}}",
    )
    .unwrap();
    std::fs::write(
        d.join("j.jsonl"),
        "{\"id\":1,\"submit\":0,\"runtime\":5,\"cpus\":1}\n",
    )
    .unwrap();
    let o = sim_in(
        d,
        &[
            "run",
            "--cluster",
            "1x@numa:1 core:2",
            "--workload",
            "j.jsonl",
            "--policy",
            "retz",
            "--model",
            "bad.json",
            "--out",
            "o",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("bad.json: app \"x\": unknown factor \"nodez\"")
    );
}

/// One node is busy with a blocker on each NUMA node; job 3 (app X) either spreads over
/// both nodes at once (numa-prefer) or waits 19 s for a whole node (numa-strict).
const SCENARIO: &str = "{\"id\":1,\"submit\":0,\"runtime\":20,\"cpus\":3,\"app\":\"blocker\"}\n{\"id\":2,\"submit\":0,\"runtime\":30,\"cpus\":3,\"app\":\"blocker\"}\n{\"id\":3,\"submit\":1,\"runtime\":100,\"cpus\":2,\"app\":\"X\"}\n";

fn figures(d: &Path, model: &str) -> Vec<(String, f64, u64)> {
    std::fs::write(d.join(format!("{model}.json")), match model {
        "slow" => "{\"apps\":{\"X\":{\"n\":100,\"factors\":{\"nodes_spanned\":2.0}}}}",
        _ => "{\"apps\":{\"X\":{\"n\":100,\"factors\":{\"nodes_spanned\":1.01,\"remote_mem_share\":1.3}}}}",
    })
    .unwrap();
    ok(&sim_in(
        d,
        &[
            "run",
            "--cluster",
            "1x@pack:1 numa:2 core:4",
            "--workload",
            "s.jsonl",
            "--policy",
            "numa-strict",
            "--policy",
            "numa-prefer",
            "--model",
            &format!("{model}.json"),
            "--out",
            model,
            "-q",
        ],
    ));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join(model).join("summary.json")).unwrap())
            .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["policy"].as_str().unwrap().to_string(),
                s["throughput_jobs_per_h"].as_f64().unwrap(),
                s["modelled_makespan_s"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_model_decides_whether_waiting_for_one_node_pays() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("s.jsonl"), SCENARIO).unwrap();
    // Spreading doubles X's runtime: waiting 19 s for a whole node wins.
    let slow = figures(d, "slow");
    assert_eq!(slow[0], ("numa-strict".to_string(), 90.0, 120));
    assert_eq!(slow[1].0, "numa-prefer");
    assert_eq!(slow[1].2, 201);
    assert!(slow[0].1 > slow[1].1);
    // Spreading costs 1 %: starting at once wins.
    let fine = figures(d, "fine");
    assert_eq!(fine[0], ("numa-strict".to_string(), 90.0, 120));
    assert_eq!(fine[1].2, 102);
    assert!(fine[1].1 > fine[0].1);
    // The jobs CSV shows the modelled runtime.
    let csv = std::fs::read_to_string(d.join("slow/jobs-numa-prefer.csv")).unwrap();
    assert!(csv.contains("\n3,1,1,201,0,200,"), "{csv}");
}

#[test]
fn tune_with_a_model_optimises_throughput_and_searches_the_cache_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::copy(data().join("nomodel/jobs.jsonl"), d.join("jobs.jsonl")).unwrap();
    std::fs::write(
        d.join("m.json"),
        "{\"apps\":{\"*\":{\"n\":1,\"factors\":{\"nodes_spanned\":1.5,\"l3_spanned\":1.2}}}}",
    )
    .unwrap();
    let out = ok(&sim_in(
        d,
        &[
            "tune",
            "--cluster",
            NOMODEL_CLUSTER,
            "--workload",
            "jobs.jsonl",
            "--max-evals",
            "100",
            "--threads",
            "1",
            "--model",
            "m.json",
            "--out",
            "t",
        ],
    ));
    assert!(out.contains("under the runtime model:"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("t/tune.json")).unwrap()).unwrap();
    assert_eq!(v["objective"], retz_sim::tune::OBJECTIVE_MODEL);
    let evals = v["evaluations"].as_array().unwrap();
    assert!(
        evals
            .iter()
            .any(|e| e["step"].as_str().unwrap().ends_with(": cache"))
    );
    let best = &evals[v["best"].as_u64().unwrap() as usize];
    let best_t = best["score"]["throughput_jobs_per_h"].as_f64().unwrap();
    for e in evals
        .iter()
        .filter(|e| e["score"]["feasible"] == true && e["step"] != "baseline")
    {
        assert!(e["score"]["throughput_jobs_per_h"].as_f64().unwrap() <= best_t);
    }
    let toml = std::fs::read_to_string(d.join("t/best-policy.toml")).unwrap();
    assert!(toml.contains("maximise throughput_jobs_per_h"), "{toml}");
}

#[test]
fn run_accepts_a_calibration() {
    // The form `retz-executor calibrate` writes (committed from a run on a one-node host).
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("s.jsonl"), SCENARIO).unwrap();
    let cal = data().join("calibrate-one-node.json");
    let m = RuntimeModel::load(&cal).unwrap();
    assert!(m.extra.contains_key("unmeasured"));
    ok(&sim_in(
        d,
        &[
            "run",
            "--cluster",
            "1x@pack:1 numa:2 core:4",
            "--workload",
            "s.jsonl",
            "--policy",
            "numa-prefer",
            "--model",
            cal.to_str().unwrap(),
            "--out",
            "o",
            "-q",
        ],
    ));
    let s = std::fs::read_to_string(d.join("o/summary.json")).unwrap();
    assert!(s.contains("\"throughput_jobs_per_h\""));
}
