//! retz-server end to end: the quickstart's steps on `retz-server --local`, NUMA-strict
//! ranges on synthetic two-socket agents of `retz-mesos-local`, durability across
//! `kill -9` of the server (SQLite and PostgreSQL), and a master restart mid-job.
//!
//! Jobs run as the server's default job user (`nobody` under root), so what they write for
//! the test goes to a directory anyone may write ([`job_writable_dir`]); clusters require
//! credentials, which the server is given.

use std::collections::BTreeMap;
use std::time::Duration;

use retz_e2e_tests::{
    MesosLocal, Server, app_tarball, client, client_ok, fresh_database, job_json, job_user,
    job_writable_dir, psql, schedule, test_database_url, wait_until,
};

const LONG: Duration = Duration::from_secs(180);

/// `Cpus_allowed_list` of this test process: the CPUs jobs can really be pinned to.
fn host_cpus() -> Vec<u32> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim()
        .to_owned();
    expand(&list)
}

fn expand(list: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
            None => out.push(part.parse().unwrap()),
        }
    }
    out
}

fn state(job: &serde_json::Value) -> &str {
    job["state"].as_str().unwrap_or("")
}

#[test]
fn quickstart_on_the_local_cluster_runs_jobs_pinned_to_their_grants() {
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    let uri = app_tarball(dir.path(), b"#!/bin/sh\necho hello from the app\n");
    client_ok(c, &["load-app", "-A", "quickstart", "-F", &uri]);
    // A range under numa-strict: granted within 2-4 and within one NUMA node.
    let out = client_ok(
        c,
        &[
            "run",
            "-A",
            "quickstart",
            "-cpu",
            "2-4",
            "--affinity",
            "numa-strict",
            "-cmd",
            "echo RETZ_CPU=$RETZ_CPU RETZ_CPUSET=$RETZ_CPUSET NODES=$RETZ_NUMA_NODES; \
             grep Cpus_allowed_list /proc/self/status; $RETZ_PVNAME/bin/hello.sh; \
             echo JOB_USER=$(id -un)",
        ],
    );
    assert!(out.contains("hello from the app"), "{out}");
    assert!(
        out.contains(&format!("JOB_USER={}\n", job_user())),
        "jobs run as the default job user: {out}"
    );
    let jobs: serde_json::Value =
        serde_json::from_str(&client_ok(c, &["list", "--states", "ALL", "--json"])).unwrap();
    let job = jobs
        .as_array()
        .and_then(|a| a.first())
        .or_else(|| jobs["jobs"].as_array().and_then(|a| a.first()))
        .unwrap_or_else(|| panic!("list --json: {jobs}"));
    assert_eq!(state(job), "FINISHED", "{job}");
    let granted = &job["granted"];
    let cpu = granted["cpu"].as_u64().unwrap();
    let cpuset = granted["cpuset"].as_str().unwrap();
    assert!((2..=4).contains(&cpu) || host_cpus().len() < 2, "{granted}");
    assert_eq!(expand(cpuset).len() as u64, cpu);
    assert!(
        !granted["numaNodes"].as_str().unwrap().contains(','),
        "one node: {granted}"
    );
    assert!(
        out.contains(&format!("RETZ_CPU={cpu} RETZ_CPUSET={cpuset} ")),
        "{out}"
    );
    let allowed = out
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("the job printed its Cpus_allowed_list")
        .trim();
    assert_eq!(
        expand(allowed),
        expand(cpuset),
        "pinned to exactly the grant: {out}"
    );
}

#[test]
fn numa_strict_ranges_on_synthetic_two_socket_agents_take_one_node() {
    let dir = retz_e2e_tests::test_dir();
    // Two agents, each 2 sockets × 2 cores: nodes {0,1} and {2,3}.
    let mesos = MesosLocal::start(dir.path(), 2, Some("pack:2 numa:1 core:2 pu:1"));
    let args = mesos.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&dir.path().join("data"), &args);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "numa"]);
    let id = schedule(
        c,
        &[
            "-A",
            "numa",
            "-cpu",
            "2-4",
            "--affinity",
            "numa-strict",
            "-cmd",
            "echo RETZ_CPU=$RETZ_CPU RETZ_CPUSET=$RETZ_CPUSET",
        ],
    );
    let job = wait_until("the job is placed", LONG, || {
        let j = job_json(c, id);
        j["job"]["granted"].is_object().then_some(j)
    });
    let granted = &job["job"]["granted"];
    let cpuset = expand(granted["cpuset"].as_str().unwrap());
    assert_eq!(
        granted["cpu"].as_u64().unwrap(),
        2,
        "a node has 2 CPUs: {granted}"
    );
    assert!(
        cpuset == [0, 1] || cpuset == [2, 3],
        "both CPUs on one node: {granted}"
    );
    assert_eq!(granted["numaNodes"].as_str().map(str::len), Some(1));
    // CPUs 2-3 do not exist on a 2-CPU host: the executor refuses to run unpinned, so the
    // job only finishes when its node is one this machine has.
    if cpuset.iter().all(|c| host_cpus().contains(c)) {
        let done = wait_until("the job ends", LONG, || {
            let j = job_json(c, id);
            matches!(state(&j["job"]), "FINISHED" | "KILLED").then_some(j)
        });
        assert_eq!(state(&done["job"]), "FINISHED", "{done}");
        let out = client_ok(c, &["get-file", "-i", &id.to_string(), "--path", "stdout"]);
        assert!(out.contains("RETZ_CPU=2 RETZ_CPUSET="), "{out}");
    }
}

/// 64 jobs, `kill -9` of the server while they run, restart: every job ends FINISHED
/// with result 0 and every command ran exactly once.
fn persistence(database: Option<&str>) {
    let dir = retz_e2e_tests::test_dir();
    let mesos = MesosLocal::start(dir.path(), 1, None);
    let mesos_args = mesos.server_args();
    let data = dir.path().join("data");
    let mut args: Vec<&str> = mesos_args.iter().map(String::as_str).collect();
    if let Some(db) = database {
        args.extend(["--database", db]);
    }
    let mut server = Server::start(&data, &args);
    let port = server.addr.port();
    let c = server.client_config.clone();
    client_ok(&c, &["load-app", "-A", "persist"]);
    let ran = job_writable_dir(dir.path()).join("ran.txt");
    let cmd = format!("sleep 0.3; echo $RETZ_JOB_ID >> {}", ran.display());
    let ids: Vec<u64> = (0..64)
        .map(|_| schedule(&c, &["-A", "persist", "-cmd", &cmd, "-cpu", "1"]))
        .collect();
    wait_until("some jobs have run", LONG, || {
        let n = std::fs::read_to_string(&ran)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        (n >= 4).then_some(())
    });
    server.proc.kill();
    let log = server.proc.log_text();
    drop(server);
    let server = Server::start_on(&data, port, &args);
    let done = wait_until("all 64 jobs end", Duration::from_secs(600), || {
        let jobs: Vec<serde_json::Value> = ids.iter().map(|&id| job_json(&c, id)).collect();
        jobs.iter()
            .all(|j| matches!(state(&j["job"]), "FINISHED" | "KILLED"))
            .then_some(jobs)
    });
    for j in &done {
        assert_eq!(state(&j["job"]), "FINISHED", "{j}\nfirst server:\n{log}");
        assert_eq!(j["job"]["result"], 0, "{j}");
    }
    let mut runs: BTreeMap<u64, u32> = BTreeMap::new();
    for line in std::fs::read_to_string(&ran).unwrap().lines() {
        *runs.entry(line.trim().parse().unwrap()).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(
            runs.get(id),
            Some(&1),
            "job {id} ran {:?} times",
            runs.get(id)
        );
    }
    drop(server);
}

#[test]
fn accepted_jobs_survive_kill_9_of_the_server_on_sqlite_and_run_once() {
    persistence(None);
}

#[test]
fn accepted_jobs_survive_kill_9_of_the_server_on_postgresql_and_run_once() {
    let Some(url) = test_database_url() else {
        return;
    };
    // A database of its own, so other tests' rows do not matter.
    let name = format!("retz_e2e_{}", std::process::id());
    persistence(Some(&fresh_database(&url, &name)));
    psql(
        &url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

#[test]
fn a_job_survives_a_master_restart_and_runs_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = retz_e2e_tests::test_dir();
    let mut cc = retz_mesos_local::cluster::ClusterConfig::new(dir.path().join("mesos"));
    cc.master.bind = "127.0.0.1:0".parse().unwrap();
    cc.master.allocation_interval = Duration::from_millis(200);
    // The server authenticates with mesos.principal and mesos.secret_file.
    let secret = dir.path().join("mesos-credentials.json");
    retz_e2e_tests::write_credentials(&secret, "retz-failover");
    let credentials =
        retz_proto::credentials::Credentials::parse(&std::fs::read_to_string(&secret).unwrap())
            .unwrap();
    cc.credentials = Some(credentials);
    let cluster = rt
        .block_on(retz_mesos_local::cluster::LocalCluster::start(cc))
        .unwrap();
    let mut cfg = retz_scheduler::config::ServerConfig::default();
    cfg.server.bind = "127.0.0.1:0".parse().unwrap();
    cfg.server.data_dir = Some(dir.path().join("data"));
    cfg.mesos.masters = vec![cluster.master_addr().to_string()];
    cfg.mesos.principal = "retz-failover".into();
    cfg.mesos.secret_file = Some(secret);
    cfg.mesos.executor = Some(
        retz_e2e_tests::binary("retz-executor", "retz-executor")
            .display()
            .to_string(),
    );
    let server = rt
        .block_on(retz_scheduler::server::Server::start(cfg))
        .unwrap();
    let c = server.client_config().unwrap().to_owned();
    client_ok(&c, &["load-app", "-A", "failover"]);
    let ran = job_writable_dir(dir.path()).join("ran.txt");
    let id = schedule(
        &c,
        &[
            "-A",
            "failover",
            "-cmd",
            &format!("sleep 3; echo $RETZ_JOB_ID >> {}", ran.display()),
        ],
    );
    wait_until("the job runs", LONG, || {
        (state(&job_json(&c, id)["job"]) == "STARTED").then_some(())
    });
    rt.block_on(cluster.restart_master()).unwrap();
    let done = wait_until("the job ends", LONG, || {
        let j = job_json(&c, id);
        matches!(state(&j["job"]), "FINISHED" | "KILLED").then_some(j)
    });
    assert_eq!(state(&done["job"]), "FINISHED", "{done}");
    assert_eq!(done["job"]["retry"], 0, "not requeued: {done}");
    assert_eq!(std::fs::read_to_string(&ran).unwrap().lines().count(), 1);
    // A bad request changes nothing and says why.
    let bad = client(
        &c,
        &["schedule", "-A", "failover", "-cmd", "true", "-cpu", "4-2"],
    );
    assert_eq!(bad.status.code(), Some(2));
    rt.block_on(server.stop());
    rt.block_on(cluster.shutdown());
}

#[test]
fn a_server_recording_replays_in_retz_sim() {
    let dir = retz_e2e_tests::test_dir();
    let rec = dir.path().join("events.jsonl");
    let rec_arg = rec.display().to_string();
    let mesos = MesosLocal::start(dir.path(), 2, Some("pack:2 numa:1 core:2 pu:1"));
    let mut args = mesos.server_args();
    args.extend(["--record-events".to_owned(), rec_arg]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&dir.path().join("data"), &args);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "rec"]);
    let id = schedule(c, &["-A", "rec", "-cpu", "1", "-cmd", "true"]);
    wait_until("the job is placed and offers recorded", LONG, || {
        let placed = job_json(c, id)["job"]["granted"].is_object();
        let lines = std::fs::read_to_string(&rec)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        (placed && lines >= 2).then_some(())
    });
    let workload = dir.path().join("jobs.jsonl");
    std::fs::write(
        &workload,
        "{\"id\":1,\"submit\":0,\"runtime\":60,\"cpus\":\"2\",\"mem\":64,\"policy\":\"numa-strict\"}\n\
         {\"id\":2,\"submit\":0,\"runtime\":60,\"cpus\":\"2\",\"mem\":64,\"policy\":\"numa-strict\"}\n",
    )
    .unwrap();
    let out = dir.path().join("sim");
    let sim = std::process::Command::new(retz_e2e_tests::binary("retz-sim", "retz-sim"))
        .args(["run", "--cluster"])
        .arg(format!("recording:{}", rec.display()))
        .arg("--workload")
        .arg(&workload)
        .args(["--policy", "numa-strict", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "retz-sim: {}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let first = summary
        .as_array()
        .and_then(|a| a.first())
        .or_else(|| summary["policies"].as_array().and_then(|a| a.first()))
        .unwrap_or_else(|| panic!("summary.json: {summary}"));
    // The recorded cluster is two 2×2-CPU agents: both 2-CPU jobs fit a node at once.
    assert_eq!(first["placed"], 2, "{summary}");
    assert_eq!(first["numa_local_ratio"], 1.0, "{summary}");
}

#[test]
fn a_queue_longer_than_the_planner_window_drains_in_priority_order_and_kills_reach_it() {
    let dir = retz_e2e_tests::test_dir();
    // The planner holds full records for 2 queued jobs only and runs one job at a time:
    // the other jobs wait as keys and are read from the store when they reach the front.
    let server = Server::start_local(dir.path(), "[planner]\nwindow = 2\nmax_running = 1\n");
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "window"]);
    let ran = job_writable_dir(dir.path()).join("ran.txt");
    let cmd = format!("echo $RETZ_JOB_ID >> {}; sleep 0.5", ran.display());
    let mut ids: Vec<u64> = (0..8)
        .map(|_| schedule(c, &["-A", "window", "-cmd", &cmd, "-cpu", "1"]))
        .collect();
    // Far outside the window: killed while queued, it never runs.
    let killed = ids.remove(6);
    client_ok(c, &["kill", "-id", &killed.to_string()]);
    // Submitted last, but urgent: it overtakes every job not yet launched.
    let urgent = schedule(
        c,
        &[
            "-A",
            "window",
            "-cmd",
            &cmd,
            "-cpu",
            "1",
            "--priority",
            "-5",
        ],
    );
    let last = *ids.last().unwrap();
    let last_still_queued = state(&job_json(c, last)["job"]) == "QUEUED";
    let all: Vec<u64> = ids.iter().copied().chain([urgent, killed]).collect();
    let done = wait_until("every job ends", LONG, || {
        let jobs: Vec<serde_json::Value> = all.iter().map(|&id| job_json(c, id)).collect();
        jobs.iter()
            .all(|j| matches!(state(&j["job"]), "FINISHED" | "KILLED"))
            .then_some(jobs)
    });
    for (id, j) in all.iter().zip(&done) {
        let want = if *id == killed { "KILLED" } else { "FINISHED" };
        assert_eq!(state(&j["job"]), want, "job {id}: {j}");
    }
    let order: Vec<u64> = std::fs::read_to_string(&ran)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(order.len(), ids.len() + 1, "each job ran once: {order:?}");
    assert!(!order.contains(&killed), "{order:?}");
    // FIFO among equal priorities; the urgent job overtook what was still queued.
    let pos = |id: u64| order.iter().position(|&x| x == id).unwrap();
    let rest: Vec<u64> = order.iter().copied().filter(|&x| x != urgent).collect();
    assert_eq!(rest, ids, "{order:?}");
    if last_still_queued {
        assert!(pos(urgent) < pos(last), "{order:?}");
    }
}
