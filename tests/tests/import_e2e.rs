//! `retz-admin import` end to end: an original Retz 0.4 schema and rows are created in the
//! test PostgreSQL (`RETZ_TEST_DATABASE_URL`, started by `scripts/test.sh`), imported into
//! a real `retz-server --local`; a dry run writes nothing, a second import imports
//! nothing new, the original user's key and secret list its jobs with their original
//! ids, and the imported queued job runs to FINISHED.

use std::time::Duration;

use retz_e2e_tests::{
    Server, admin_ok, app_tarball, client_ok, fresh_database, job_json, psql, test_database_url,
    wait_until,
};

const LONG: Duration = Duration::from_secs(180);
const KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const SECRET: &str = "f9e8d7c6b5a40392817f6e5d4c3b2a10";

/// The original's DDL (`retz-ddl.sql`, after `V2__Remove_cmd_from_jobs.sql`).
const ORIGINAL_SCHEMA: &str = "
CREATE TABLE users (key_id VARCHAR(32) PRIMARY KEY, secret VARCHAR(64) NOT NULL,
                    enabled BOOLEAN, json TEXT NOT NULL);
CREATE TABLE applications (appid VARCHAR(32) PRIMARY KEY, owner VARCHAR(32) NOT NULL,
                           json TEXT NOT NULL);
CREATE TABLE jobs (name VARCHAR(32), id INTEGER PRIMARY KEY, appid VARCHAR(32),
                   priority INTEGER, started VARCHAR(32), finished VARCHAR(32),
                   taskid VARCHAR(128), state VARCHAR(16), json TEXT NOT NULL);
CREATE INDEX job_priority ON jobs (priority);
CREATE TABLE properties (key VARCHAR(32) PRIMARY KEY, value VARCHAR(64), epoch BIGINT);
";

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The original database's rows: one user, one application, a finished, a killed, a
/// queued and a (then) running job.
fn original_rows(uri: &str) -> String {
    let user = format!(r#"{{"key_id":"{KEY}","secret":"{SECRET}","enabled":true,"info":"alice"}}"#);
    let app = format!(
        r#"{{"appid":"orig","files":["{uri}"],"largeFiles":[],"user":null,"owner":"{KEY}",
            "gracePeriod":0,"container":{{"type":"mesos"}},"enabled":true}}"#
    );
    let job = |id: u32, state: &str, cmd: &str, extra: &str| {
        let json = format!(
            r#"{{"cmd":{cmd},"appid":"orig","id":{id},"name":"job{id}","tags":["old"],
                "props":{{"X":"-Xmx$RETZ_MEMm"}},
                "resources":{{"cpu":1,"memMB":64,"gpu":0,"ports":0,"diskMB":32,"nodes":0}},
                "priority":0,"attributes":null,"scheduled":"2017-11-01T10:00:00.000+09:00",
                "retry":0,"url":null,"taskId":null,"slaveId":null,"state":"{state}"{extra}}}"#,
            cmd = serde_json::to_string(cmd).unwrap()
        );
        format!(
            "INSERT INTO jobs (name, id, appid, priority, state, json) VALUES \
             ('job{id}', {id}, 'orig', 0, '{state}', {});",
            quote(&json)
        )
    };
    let finished = r#","started":"2017-11-01T10:00:01.000+09:00","finished":"2017-11-01T10:00:02.000+09:00","result":0"#;
    let killed =
        r#","finished":"2017-11-01T10:00:03.000+09:00","result":-1,"reason":"Canceled by user""#;
    let started = r#","started":"2017-11-01T10:00:04.000+09:00","result":-1"#;
    [
        format!(
            "INSERT INTO users VALUES ({}, {}, true, {});",
            quote(KEY),
            quote(SECRET),
            quote(&user)
        ),
        format!(
            "INSERT INTO applications VALUES ('orig', {}, {});",
            quote(KEY),
            quote(&app)
        ),
        "INSERT INTO properties VALUES ('FrameworkID', 'old-framework', 0);".to_owned(),
        job(5, "FINISHED", "echo done", finished),
        job(6, "KILLED", "sleep 100", killed),
        job(
            7,
            "QUEUED",
            "bin/hello.sh && echo \"X=$X\"",
            r#","result":-1"#,
        ),
        job(8, "STARTED", "sleep 100", started),
    ]
    .join("\n")
}

#[test]
fn an_original_database_imports_once_and_its_queued_job_runs() {
    let Some(url) = test_database_url() else {
        return;
    };
    let dir = retz_e2e_tests::test_dir();
    let name = format!("retz_original_{}", std::process::id());
    let original = fresh_database(&url, &name);
    psql(&original, ORIGINAL_SCHEMA);
    psql(
        &original,
        &original_rows(&app_tarball(
            dir.path(),
            b"#!/bin/sh\necho hello from the imported app\n",
        )),
    );

    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let a = &server.client_config;

    let dry = admin_ok(a, &["import", "--from", &original, "--dry-run"]);
    assert!(
        dry.contains("users: would import 1, already here 0, refused 0"),
        "{dry}"
    );
    assert!(dry.contains("applications: would import 1,"), "{dry}");
    assert!(
        dry.contains("jobs: would import 4, already here 0, refused 0"),
        "{dry}"
    );
    assert!(dry.contains("jobs queued to run: 1"), "{dry}");
    assert!(
        !admin_ok(a, &["list-user"]).contains(KEY),
        "a dry run writes nothing"
    );

    let first = admin_ok(a, &["import", "--from", &original]);
    assert!(
        first.contains("users: imported 1, already here 0"),
        "{first}"
    );
    assert!(
        first.contains("jobs: imported 4, already here 0, refused 0"),
        "{first}"
    );
    let again = admin_ok(a, &["import", "--from", &original]);
    assert!(
        again.contains("users: imported 0, already here 1"),
        "{again}"
    );
    assert!(
        again.contains("applications: imported 0, already here 1"),
        "{again}"
    );
    assert!(
        again.contains("jobs: imported 0, already here 4, refused 0"),
        "{again}"
    );

    // The original user's key and secret work and see its jobs, with their ids.
    let alice = dir.path().join("alice.toml");
    std::fs::write(
        &alice,
        format!(
            "server = \"http://{}\"\naccess_key = \"{KEY}\"\nsecret = \"{SECRET}\"\n",
            server.addr
        ),
    )
    .unwrap();
    let done = wait_until("imported job 7 ends", LONG, || {
        let j = job_json(&alice, 7)["job"].take();
        matches!(j["state"].as_str(), Some("FINISHED" | "KILLED")).then_some(j)
    });
    assert_eq!(done["state"], "FINISHED", "{done}");
    assert_eq!(done["result"], 0, "{done}");
    let out = client_ok(&alice, &["get-file", "-i", "7", "--path", "stdout"]);
    assert_eq!(out, "hello from the imported app\nX=-Xmx64m\n");
    let finished = job_json(&alice, 5)["job"].take();
    assert_eq!(finished["state"], "FINISHED", "{finished}");
    assert_eq!(finished["finished"], "2017-11-01T10:00:02.000+09:00");
    assert_eq!(job_json(&alice, 6)["job"]["reason"], "Canceled by user");
    let running = job_json(&alice, 8)["job"].take();
    assert_eq!(running["state"], "KILLED", "{running}");
    assert!(
        running["reason"]
            .as_str()
            .unwrap()
            .contains("original Retz"),
        "{running}"
    );
    let list = client_ok(&alice, &["list", "--states", "ALL", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&list).unwrap();
    let ids: Vec<u64> = listed
        .as_array()
        .or_else(|| listed["jobs"].as_array())
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(ids, [5, 6, 7, 8], "{list}");
    drop(server);
    psql(
        &url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}
