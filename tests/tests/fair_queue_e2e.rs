//! The fair queue end to end on `retz-server --local` with a small planner window: one
//! user's long queue of jobs that can never fit (more CPUs than the agent has) holds
//! back neither another user's small job nor the same user's other jobs, and every
//! waiting job says why; a queued job asking more ports than the agent has free holds
//! back nothing (the next 1-CPU job takes the last free CPU), and once killed it leaves
//! the planner at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use retz_e2e_tests::{Server, client_ok, job_json, wait_until};

const LONG: Duration = Duration::from_secs(120);

fn schedule(config: &Path, args: &[&str]) -> u64 {
    let mut all = vec!["schedule", "-q"];
    all.extend_from_slice(args);
    client_ok(config, &all)
        .trim()
        .parse()
        .expect("schedule -q prints the id")
}

fn state(config: &Path, id: u64) -> serde_json::Value {
    job_json(config, id)["job"].take()
}

fn finished(config: &Path, id: u64) {
    let job = wait_until(&format!("job {id} ends"), LONG, || {
        let j = state(config, id);
        matches!(j["state"].as_str(), Some("FINISHED" | "KILLED")).then_some(j)
    });
    assert_eq!(job["state"], "FINISHED", "{job}");
}

/// A second user's client config, made with `retz-admin create-user`.
fn second_user(admin: &Path, dir: &Path) -> PathBuf {
    let out = std::process::Command::new(retz_e2e_tests::binary("retz-client", "retz-admin"))
        .arg("-C")
        .arg(admin)
        .args(["create-user", "--info", "second user"])
        .output()
        .expect("retz-admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("second.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn a_queue_of_jobs_that_never_fit_holds_back_no_one_and_says_why() {
    let dir = retz_e2e_tests::test_dir();
    let cfg = dir.path().join("retz.toml");
    std::fs::write(
        &cfg,
        "[planner]\nwindow = 20\n\n[limits]\nmax_cpus = 256\nmax_ports = 1000\n",
    )
    .unwrap();
    let cfg_arg = cfg.display().to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &["--local", "-C", cfg_arg.as_str()],
    );
    let a = &server.client_config;
    let b = &second_user(a, dir.path());
    client_ok(a, &["load-app", "-A", "big"]);
    client_ok(b, &["load-app", "-A", "small"]);

    // User A: 300 jobs asking more CPUs than the local agent has: 15 windows' worth.
    let big: Vec<u64> = (0..300)
        .map(|_| schedule(a, &["-A", "big", "-cpu", "200", "-cmd", "true"]))
        .collect();
    // User B's 1-CPU job runs all the same.
    let small = schedule(b, &["-A", "small", "-cpu", "1", "-cmd", "echo small"]);
    finished(b, small);
    // So does A's own small job (another class of the same user).
    let own = schedule(a, &["-A", "big", "-cpu", "1", "-cmd", "echo own"]);
    finished(a, own);

    // Every waiting job says why: the head of the class the packer's reason, the jobs
    // behind it how many are ahead and that same reason.
    let first = wait_until("the first big job has a reason", LONG, || {
        let j = state(a, big[0]);
        j["pending"].as_str().map(str::to_owned)
    });
    assert!(
        first.contains("needs 200 CPUs") && first.contains("the largest agent has"),
        "{first}"
    );
    let last = state(a, big[299]);
    assert_eq!(last["state"], "QUEUED", "{last}");
    let why = last["pending"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("behind 299 jobs of the same class") && why.contains("needs 200 CPUs"),
        "{last}"
    );
    let listed = client_ok(a, &["--json", "list"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let jobs = listed.as_array().expect("list --json is an array");
    assert!(jobs.len() >= 100, "{listed}");
    assert!(
        jobs.iter()
            .all(|j| j["pending"].as_str().is_some_and(|p| !p.is_empty())),
        "every queued job has a reason in list: {listed}"
    );

    // A job asking more ports than the agent offers waits with that reason and takes
    // no CPU from others; killed, it leaves the planner at once. A sleeper holds 2 of
    // the agent's 1,001 ports, so a job asking 1,000 cannot run while it does.
    let sleeper = schedule(
        a,
        &["-A", "big", "-cpu", "1", "-ports", "2", "-cmd", "sleep 600"],
    );
    wait_until("the sleeper runs", LONG, || {
        (state(a, sleeper)["state"] == "STARTED").then_some(())
    });
    let ports = schedule(
        a,
        &["-A", "big", "-cpu", "1", "-ports", "1000", "-cmd", "true"],
    );
    let why = wait_until("the ports job has a reason", LONG, || {
        state(a, ports)["pending"]
            .as_str()
            .filter(|p| p.contains("ports"))
            .map(str::to_owned)
    });
    assert!(why.contains("needs 1000 ports"), "{why}");
    let meanwhile = schedule(b, &["-A", "small", "-cpu", "1", "-cmd", "echo meanwhile"]);
    finished(b, meanwhile);
    client_ok(a, &["kill", "-i", &ports.to_string()]);
    let killed = state(a, ports);
    assert_eq!(killed["state"], "KILLED", "{killed}");
    assert!(killed["pending"].is_null(), "{killed}");
    let after = schedule(b, &["-A", "small", "-cpu", "1", "-cmd", "echo after"]);
    finished(b, after);
    client_ok(a, &["kill", "-i", &sleeper.to_string()]);
}
