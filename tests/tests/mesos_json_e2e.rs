//! `mesos.content_type = "json"` end to end on `retz-server --local`: the server speaks
//! the v1 scheduler API in JSON (the embedded master logs the encoding each framework
//! subscribed with) and a job runs to FINISHED; the default stays protobuf.

use std::time::Duration;

use retz_e2e_tests::{Server, client_ok, job_json, wait_until};

fn a_job_finishes(config_text: &str) -> String {
    let dir = retz_e2e_tests::test_dir();
    let config = dir.path().join("retz.toml");
    std::fs::write(&config, config_text).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--local", "-C", config.to_str().unwrap()],
    );
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "jsonapp"]);
    let id: u64 = client_ok(c, &["schedule", "-q", "-A", "jsonapp", "-cmd", "echo hi"])
        .trim()
        .parse()
        .expect("schedule -q prints the id");
    let job = wait_until(&format!("job {id} ends"), Duration::from_secs(180), || {
        let j = job_json(c, id)["job"].take();
        matches!(j["state"].as_str(), Some("FINISHED" | "KILLED")).then_some(j)
    });
    assert_eq!(job["state"], "FINISHED", "{job}");
    server.proc.log_text()
}

#[test]
fn the_scheduler_api_runs_in_json_when_configured() {
    let log = a_job_finishes("[mesos]\ncontent_type = \"json\"\n");
    assert!(
        log.contains("framework subscribed") && log.contains("content_type=\"application/json\""),
        "the master saw no JSON subscription:\n{log}"
    );
    assert!(
        !log.contains("content_type=\"application/x-protobuf\""),
        "{log}"
    );
}

#[test]
fn the_default_is_protobuf() {
    let log = a_job_finishes("");
    assert!(
        log.contains("content_type=\"application/x-protobuf\""),
        "the master saw no protobuf subscription:\n{log}"
    );
}
