//! `retz-admin export-history` against a real `retz-server --local`: jobs run to their
//! end on the embedded (NUMA-aware) cluster, and the export has exactly one JSON line per
//! job that started and ended, with every field of the "Job history format"
//! (`sim/README.md`), placement features recorded at the grant, and a positive runtime;
//! `--app`, `--since` (date or RFC 3339) and `--out` work, and a bad `--since` is one
//! error line and a non-zero exit.

use std::collections::BTreeSet;
use std::path::Path;

use retz_e2e_tests::{Server, admin, admin_ok, client, client_ok};
use serde_json::Value;

/// The contract's fields.
const FIELDS: [&str; 16] = [
    "job",
    "app",
    "user",
    "state",
    "cpus",
    "mem_mb",
    "gpus",
    "agent",
    "granted_cpus",
    "nodes_spanned",
    "l3_spanned",
    "smt_shared",
    "remote_mem_share",
    "co_runners",
    "runtime_s",
    "finished",
];

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs `cmd` as a job of `app` to its end (`retz-client run`); returns its id.
fn run(config: &Path, app: &str, cpus: &str, cmd: &str) -> u64 {
    // `run` exits with the job's exit code; the job is then the newest of the app.
    client(config, &["run", "-A", app, "-cpu", cpus, "-cmd", cmd]);
    let jobs: Value =
        serde_json::from_str(&client_ok(config, &["list", "--states", "ALL", "--json"])).unwrap();
    let all = jobs
        .as_array()
        .or_else(|| jobs["jobs"].as_array())
        .unwrap_or_else(|| panic!("list --json: {jobs}"));
    all.iter()
        .filter(|j| j["appid"] == app)
        .filter_map(|j| j["id"].as_u64())
        .max()
        .unwrap_or_else(|| panic!("no job of {app}: {jobs}"))
}

#[test]
fn export_history_has_one_line_per_ended_job_with_placement_features() {
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "etl"]);
    client_ok(c, &["load-app", "-A", "web"]);
    let mut etl = BTreeSet::new();
    etl.insert(run(c, "etl", "1", "sleep 0.3"));
    etl.insert(run(c, "etl", "2", "sleep 0.2; exit 3"));
    let web = run(c, "web", "1", "sleep 0.2");
    let all: BTreeSet<u64> = etl.iter().copied().chain([web]).collect();
    assert_eq!(all.len(), 3);

    let text = admin_ok(c, &["export-history"]);
    let got = lines(&text);
    let ids: BTreeSet<u64> = got.iter().map(|l| l["job"].as_u64().unwrap()).collect();
    assert_eq!(got.len(), 3, "one line per ended job: {text}");
    assert_eq!(ids, all, "{text}");
    for l in &got {
        let obj = l.as_object().unwrap();
        for f in FIELDS {
            assert!(obj.contains_key(f), "{f} missing: {l}");
        }
        assert!(
            matches!(l["state"].as_str(), Some("FINISHED" | "KILLED")),
            "{l}"
        );
        assert!(l["runtime_s"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["finished"].as_str().unwrap().ends_with('Z'), "{l}");
        assert!(!l["agent"].as_str().unwrap().is_empty(), "{l}");
        assert_eq!(
            l["user"].as_str().unwrap().len(),
            32,
            "the owner's key: {l}"
        );
        // The local cluster advertises its NUMA layout: jobs are pinned, with features.
        let cpus = l["cpus"].as_u64().unwrap();
        assert!(l["granted_cpus"].is_string(), "{l}");
        let nodes = l["nodes_spanned"].as_u64().expect("features recorded");
        let l3 = l["l3_spanned"].as_u64().unwrap();
        assert!(nodes >= 1 && nodes <= l3 && l3 <= cpus, "{l}");
        assert!(l["smt_shared"].is_boolean(), "{l}");
        let remote = l["remote_mem_share"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&remote), "{l}");
        // The jobs ran one after another: nothing else ran beside them.
        assert_eq!(l["co_runners"], 0, "{l}");
    }
    let failed = got.iter().find(|l| l["cpus"] == 2).expect("the 2-CPU job");
    assert!(etl.contains(&failed["job"].as_u64().unwrap()));

    // --app: only that application's jobs.
    let only = lines(&admin_ok(c, &["export-history", "--app", "etl"]));
    let ids: BTreeSet<u64> = only.iter().map(|l| l["job"].as_u64().unwrap()).collect();
    assert_eq!(ids, etl);
    // --since: a date (midnight UTC) in the past keeps all, one in the future none;
    // an RFC 3339 time works too.
    assert_eq!(
        lines(&admin_ok(c, &["export-history", "--since", "2000-01-01"])).len(),
        3
    );
    assert_eq!(
        admin_ok(c, &["export-history", "--since", "9999-01-01"]),
        ""
    );
    let last = got.last().unwrap();
    let since = last["finished"].as_str().unwrap();
    let tail = lines(&admin_ok(c, &["export-history", "--since", since]));
    let tail: BTreeSet<u64> = tail.iter().map(|l| l["job"].as_u64().unwrap()).collect();
    assert!(tail.contains(&last["job"].as_u64().unwrap()), "{tail:?}");
    assert!(
        !tail.contains(&got[0]["job"].as_u64().unwrap()),
        "ended earlier: {tail:?}"
    );
    // --out: the same lines in a file.
    let file = dir.path().join("history.jsonl");
    let out = admin_ok(c, &["export-history", "--out", file.to_str().unwrap()]);
    assert_eq!(out, "", "nothing on stdout with --out");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    // A bad --since: one error line, exit 1, no file left behind.
    let bad = dir.path().join("bad.jsonl");
    let out = admin(
        c,
        &[
            "export-history",
            "--since",
            "yesterday",
            "--out",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not a time"), "{err}");
    assert!(!bad.exists());
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".part-"))
            .count(),
        0,
        "no temporary file left"
    );
}
