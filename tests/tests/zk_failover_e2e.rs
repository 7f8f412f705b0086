//! Master failover through ZooKeeper, end to end: two `retz-mesos-local --zk` masters in
//! one group (a real ZooKeeper, `RETZ_TEST_ZK=HOST:PORT`, which scripts/test.sh starts)
//! sharing one work directory, and `retz-server --mesos zk://...`. A job finishes on the
//! first leader; a second job is running when that leader is killed with SIGKILL; the
//! other master is elected, its agents take over the dead master's agents (ids, ports,
//! running executors), the server follows the new leader, the running job finishes
//! there once, and a job scheduled after the failover finishes on the new leader. No job
//! runs twice: each writes start/end lines to its own marker and keeps attempt 1.
//!
//! Needs root (the agents run executors that make cgroups) and `RETZ_TEST_ZK`; without
//! them the test skips, or fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use retz_e2e_tests::{
    MESOS_PRINCIPAL, Proc, Server, binary, client_ok, file_lines, free_port, is_root, job_json,
    job_writable_dir, wait_for_port, wait_until, write_credentials,
};

const LONG: Duration = Duration::from_secs(240);

fn zk_server() -> Option<String> {
    let zk = std::env::var("RETZ_TEST_ZK").ok().filter(|s| !s.is_empty());
    let ok = retz_testkit::require(
        zk.is_some(),
        "zk_failover_e2e needs RETZ_TEST_ZK (scripts/lib/zookeeper.sh starts a ZooKeeper)",
    ) && retz_testkit::require(is_root(), "zk_failover_e2e needs root");
    if ok { zk } else { None }
}

/// A `retz-mesos-local --zk` master (its agents start once it is elected).
fn master(dir: &Path, name: &str, zk_url: &str, credentials: &Path) -> (Proc, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let args: Vec<String> = [
        "--zk",
        zk_url,
        "--bind",
        &addr,
        "--credentials",
        &credentials.display().to_string(),
        "--work-dir",
        &dir.join("mesos").display().to_string(),
        "--agents",
        "1",
        "--synthetic",
        "pack:1 core:4 pu:1",
        "--allocation-interval",
        "200ms",
    ]
    .map(str::to_owned)
    .to_vec();
    let proc = Proc::spawn(
        &binary("retz-mesos-local", "retz-mesos-local"),
        &args,
        &dir.join(format!("master-{name}.log")),
        &[("RUST_LOG", "info")],
    );
    wait_for_port(addr.parse().expect("addr"), Duration::from_secs(30));
    (proc, addr)
}

/// `schedule -q -A failover -cmd CMD -cpu 1 -mem 32`.
fn schedule(config: &Path, cmd: &str) -> u64 {
    retz_e2e_tests::schedule(
        config,
        &["-A", "failover", "-cmd", cmd, "-cpu", "1", "-mem", "32"],
    )
}

fn state(job: &serde_json::Value) -> String {
    job["job"]["state"].as_str().unwrap_or("").to_owned()
}

/// A job writing `start` and `end` lines to `marker`, `secs` apart.
fn marked(marker: &Path, secs: u32) -> String {
    let m = marker.display();
    format!("echo start $RETZ_TASK_ID >> {m}; sleep {secs}; echo end $RETZ_TASK_ID >> {m}")
}

fn wait_finished(c: &Path, id: u64, what: &str, logs: &dyn Fn() -> String) -> serde_json::Value {
    let start = std::time::Instant::now();
    let job = loop {
        let j = job_json(c, id);
        if matches!(state(&j).as_str(), "FINISHED" | "KILLED" | "LOST") {
            break j;
        }
        assert!(
            start.elapsed() < LONG,
            "timed out after {LONG:?}: {what}: {j}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(state(&job), "FINISHED", "{job}\n{}", logs());
    job
}

fn assert_ran_once(job: &serde_json::Value, marker: &Path, logs: &dyn Fn() -> String) {
    assert_eq!(job["job"]["result"], 0, "{job}");
    assert_eq!(job["job"]["retry"], 0, "not retried: {job}\n{}", logs());
    assert_eq!(job["job"]["attempt"], 1, "one attempt: {job}\n{}", logs());
    let l = file_lines(marker);
    assert_eq!(
        l.iter().filter(|l| l.starts_with("start ")).count(),
        1,
        "ran exactly once: {l:?}\n{}",
        logs()
    );
    assert_eq!(l.len(), 2, "started and ended once: {l:?}");
}

#[test]
fn jobs_finish_once_across_a_leader_failover() {
    let Some(zk) = zk_server() else { return };
    let dir = retz_e2e_tests::test_dir();
    let group = format!(
        "/retz-e2e-failover-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let zk_url = format!("zk://{zk}{group}");
    let credentials = dir.path().join("mesos-credentials.json");
    write_credentials(&credentials, MESOS_PRINCIPAL);

    let (mut first, first_addr) = master(dir.path(), "a", &zk_url, &credentials);
    wait_until("the first master is elected", LONG, || {
        first.log_text().contains("elected leader").then_some(())
    });
    let (second, _) = master(dir.path(), "b", &zk_url, &credentials);
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--mesos",
            &zk_url,
            "--mesos-principal",
            MESOS_PRINCIPAL,
            "--mesos-secret-file",
            &credentials.display().to_string(),
        ],
    );
    let paths = [
        first.log.clone(),
        second.log.clone(),
        server.proc.log.clone(),
    ];
    let logs = || {
        let [a, b, s] = paths
            .each_ref()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default());
        format!("--- master a ---\n{a}\n--- master b ---\n{b}\n--- server ---\n{s}")
    };
    let c = server.client_config.as_path();
    client_ok(c, &["load-app", "-A", "failover"]);
    let out = job_writable_dir(dir.path());
    let markers: Vec<PathBuf> = (0..3).map(|n| out.join(format!("marker-{n}"))).collect();

    // 1. A job finishes on the first leader.
    let before = schedule(c, &marked(&markers[0], 0));
    let job = wait_finished(c, before, "the first job finishes", &logs);
    assert_ran_once(&job, &markers[0], &logs);
    assert!(
        first.log_text().contains("framework subscribed"),
        "the server subscribed to the first master:\n{}",
        logs()
    );
    assert!(
        !second.log_text().contains("elected leader"),
        "the second master leads while the first lives:\n{}",
        logs()
    );

    // 2. A job is running when the leader is killed.
    let across = schedule(c, &marked(&markers[1], 8));
    wait_until("the second job runs", LONG, || {
        (state(&job_json(c, across)) == "STARTED" && file_lines(&markers[1]).len() == 1)
            .then_some(())
    });
    first.kill();
    eprintln!("killed the leading master {first_addr}");
    wait_until("the second master is elected", LONG, || {
        second.log_text().contains("elected leader").then_some(())
    });

    // 3. A job scheduled after the failover finishes on the new leader; the running one
    //    finished once.
    let after = schedule(c, &marked(&markers[2], 0));
    let job = wait_finished(c, after, "the job after the failover finishes", &logs);
    assert_ran_once(&job, &markers[2], &logs);
    let job = wait_finished(c, across, "the job across the failover finishes", &logs);
    assert_ran_once(&job, &markers[1], &logs);
    assert!(
        second.log_text().contains("framework subscribed"),
        "the server subscribed to the new leader:\n{}",
        logs()
    );
    // The first job did not run again either.
    assert_eq!(
        file_lines(&markers[0]).len(),
        2,
        "{:?}",
        file_lines(&markers[0])
    );
}
