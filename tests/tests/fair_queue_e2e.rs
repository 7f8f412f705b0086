//! The fair queue end to end on `retz-server --local` at the size of issue 15, with the
//! default planner window (10,000 jobs): one user's queue of 10,010 jobs that can never
//! fit (200 CPUs each, inside `max_cpus` so accepted, more than the agent has) holds
//! back neither another user's small job nor the same user's other jobs, and every
//! waiting job says why; a queued job asking more ports than the agent has free holds
//! back nothing (the next 1-CPU job takes the last free CPU), and once killed it leaves
//! the planner at once.
//!
//! The 10,010 jobs are queued through the HTTP API ([`submit_jobs`]): a `retz-client`
//! process per job would take minutes.

use std::time::{Duration, Instant};

use retz_e2e_tests::{
    Server, client_ok, create_user, http_request, job_record, schedule, submit_jobs, wait_finished,
    wait_started, wait_until,
};

const LONG: Duration = Duration::from_secs(120);

/// The big user's queue: more than one default planner window (10,000).
const BIG: usize = 10_010;

/// The mean planning cycle so far, from the server's `/metrics`
/// (`retz_placement_cycle_seconds`), for the test's log.
fn mean_cycle(server: &Server) -> String {
    let (_, text) = http_request(server.addr, "GET", "/metrics", &[], b"");
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    let sum = value("retz_placement_cycle_seconds_sum ");
    let count = value("retz_placement_cycle_seconds_count ");
    format!("{count} cycles, mean {:.1} ms", 1000.0 * sum / count)
}

#[test]
fn a_queue_of_jobs_that_never_fit_holds_back_no_one_and_says_why() {
    let dir = retz_e2e_tests::test_dir();
    // The default planner window and max_cpus (256); ports up to the agent's 1,001.
    let server = Server::start_local(dir.path(), "[limits]\nmax_ports = 1000\n");
    let a = &server.client_config;
    let (b, _) = create_user(a, dir.path(), "second");
    let b = &b;
    client_ok(a, &["load-app", "-A", "big"]);
    client_ok(b, &["load-app", "-A", "small"]);

    // User A: 10,010 jobs asking more CPUs than the local agent has.
    let mut job = retz_proto::api::Job::new("big", "true");
    job.resources.cpu.min = 200;
    job.resources.cpu.max = Some(200);
    let started = Instant::now();
    let mut big = submit_jobs(a, vec![job; BIG], 4);
    // In queue (id) order: the connections' submissions interleave.
    big.sort_unstable();
    eprintln!(
        "queued {BIG} jobs of 200 CPUs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(big.len(), BIG);

    // User B's 1-CPU job runs all the same, while all of A's are still queued.
    let started = Instant::now();
    let small = schedule(b, &["-A", "small", "-cpu", "1", "-cmd", "echo small"]);
    wait_finished(b, small, LONG);
    eprintln!(
        "the other user's job ran in {:.1} s; {}",
        started.elapsed().as_secs_f64(),
        mean_cycle(&server)
    );
    // So does A's own small job (another class of the same user).
    let own = schedule(a, &["-A", "big", "-cpu", "1", "-cmd", "echo own"]);
    wait_finished(a, own, LONG);

    // Every waiting job says why: the head of the class the packer's reason, the jobs
    // behind it how many are ahead and that same reason.
    let first = wait_until("the first big job has a reason", LONG, || {
        job_record(a, big[0])["pending"].as_str().map(str::to_owned)
    });
    assert!(
        first.contains("needs 200 CPUs") && first.contains("the largest agent has"),
        "{first}"
    );
    let last = job_record(a, big[BIG - 1]);
    assert_eq!(last["state"], "QUEUED", "{last}");
    let why = last["pending"].as_str().unwrap_or_default();
    assert!(
        why.starts_with(&format!("behind {} jobs of the same class", BIG - 1))
            && why.contains("needs 200 CPUs"),
        "{last}"
    );
    let started = Instant::now();
    let listed = client_ok(a, &["--json", "list", "--states", "QUEUED"]);
    eprintln!(
        "list --json of the queue took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let jobs = listed.as_array().expect("list --json is an array");
    // Not one of A's 10,010 started while B's and A's small jobs ran.
    assert_eq!(jobs.len(), BIG, "A's whole queue is still queued");
    assert!(
        jobs.iter()
            .all(|j| j["pending"].as_str().is_some_and(|p| !p.is_empty())),
        "every queued job has a reason in list"
    );

    // A job asking more ports than the agent offers waits with that reason and takes
    // no CPU from others; killed, it leaves the planner at once. A sleeper holds 2 of
    // the agent's 1,001 ports, so a job asking 1,000 cannot run while it does.
    let sleeper = schedule(
        a,
        &["-A", "big", "-cpu", "1", "-ports", "2", "-cmd", "sleep 600"],
    );
    wait_started(a, sleeper, LONG);
    let ports = schedule(
        a,
        &["-A", "big", "-cpu", "1", "-ports", "1000", "-cmd", "true"],
    );
    let why = wait_until("the ports job has a reason", LONG, || {
        job_record(a, ports)["pending"]
            .as_str()
            .filter(|p| p.contains("ports"))
            .map(str::to_owned)
    });
    assert!(why.contains("needs 1000 ports"), "{why}");
    let meanwhile = schedule(b, &["-A", "small", "-cpu", "1", "-cmd", "echo meanwhile"]);
    wait_finished(b, meanwhile, LONG);
    client_ok(a, &["kill", "-i", &ports.to_string()]);
    let killed = job_record(a, ports);
    assert_eq!(killed["state"], "KILLED", "{killed}");
    assert!(killed["pending"].is_null(), "{killed}");
    let after = schedule(b, &["-A", "small", "-cpu", "1", "-cmd", "echo after"]);
    wait_finished(b, after, LONG);
    client_ok(a, &["kill", "-i", &sleeper.to_string()]);
    eprintln!("at the end: {}", mean_cycle(&server));
}
