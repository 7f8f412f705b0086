//! Floods of short jobs on `retz-server --local` (issue 21): every one-CPU `true` job
//! ends FINISHED with 0. None may be KILLED by a pinning verification that raced the
//! task's exit ("pinning verification failed: cpuset cgroup is /"), and each job shows
//! the pinning its executor reported (`pinning` in `get-job --json`, never `drift`).
//!
//! `RETZ_SHORT_JOBS` sets how many (default 3,000: the embedded master offers freed CPUs at
//! once, so a 2-CPU host drains them in a minute or two, submissions included).

use std::time::Duration;

use retz_e2e_tests::{Server, client_ok, job_json, listed_ids, wait_until};

fn count() -> usize {
    std::env::var("RETZ_SHORT_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000)
}

#[test]
fn a_flood_of_true_jobs_all_finish() {
    let n = count();
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "short"]);
    let ids: Vec<u64> = (0..n)
        .map(|_| {
            client_ok(
                c,
                &["schedule", "-q", "-A", "short", "-cpu", "1", "-cmd", "true"],
            )
            .trim()
            .parse()
            .expect("schedule -q prints the id")
        })
        .collect();
    // Generous: at least 1 job a second on 2 CPUs, plus slack for a loaded CI host.
    let limit = Duration::from_secs(120 + n as u64);
    wait_until(&format!("{n} short jobs end"), limit, || {
        listed_ids(c, &["--states", "QUEUED,STARTING,STARTED"])
            .is_empty()
            .then_some(())
    });
    let killed = listed_ids(c, &["--states", "KILLED"]);
    let reasons: Vec<String> = killed
        .iter()
        .take(5)
        .map(|id| job_json(c, *id)["job"]["reason"].to_string())
        .collect();
    assert!(
        killed.is_empty(),
        "{} of {n} jobs KILLED, e.g. {reasons:?}\n--- server log ---\n{}",
        killed.len(),
        server.proc.log_text()
    );
    let mut reported = 0;
    for id in &ids {
        let job = job_json(c, *id)["job"].take();
        assert_eq!(job["state"], "FINISHED", "{job}");
        assert_eq!(job["result"], 0, "{job}");
        if let Some(outcome) = job["pinning"]["outcome"].as_str() {
            reported += 1;
            assert_ne!(outcome, "drift", "{job}");
        }
    }
    assert_eq!(
        reported, n,
        "every job shows the pinning its executor reported"
    );
    let table = client_ok(c, &["list", "--states", "FINISHED"]);
    assert!(
        table.lines().next().is_some_and(|h| h.ends_with("Pinning")),
        "{table}"
    );
}
