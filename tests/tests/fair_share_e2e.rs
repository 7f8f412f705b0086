//! Fair share between users end to end on `retz-server --local` (one agent of 3 CPUs,
//! synthetic, more than this 2-CPU machine has, so the jobs run unpinned with affinity
//! `none`; 1-CPU jobs, so 3 slots): one user floods the queue with 10,000 jobs and
//! another's 10 jobs still start first (issue 15's size; the flood is queued through the
//! HTTP API, [`submit_jobs`]); with shares 2:1 set through `retz-admin set-share` on the
//! running server, the starts of two always-queued users split 2:1 (measured from the job
//! records' start times, not from timing: with 3 slots the fair share holds 2 of the
//! first user's jobs and 1 of the second's running, whatever each job takes).

use std::path::Path;
use std::time::{Duration, Instant};

use retz_e2e_tests::{
    Server, admin_ok, client_ok, create_user, schedule, submit_jobs, wait_finished, wait_started,
};

const LONG: Duration = Duration::from_secs(240);

/// A server on one synthetic agent of 3 CPUs, with users `flooder` (A), `late` (B) and
/// `holder` (C), each with an application (`fa`, `fb`, `fc`).
struct Cluster {
    server: Server,
    a: (std::path::PathBuf, String),
    b: (std::path::PathBuf, String),
    c: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn cluster() -> Cluster {
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start_local(
        dir.path(),
        "[local]\nsynthetic = \"pack:1 numa:1 core:3 pu:1\"\nallocation_interval_s = 0.2\n",
    );
    let root = &server.client_config;
    let a = create_user(root, dir.path(), "flooder");
    let b = create_user(root, dir.path(), "late");
    // A third user holds the 3 slots while the others queue, so what follows does not
    // depend on how fast jobs are submitted.
    let (c, _) = create_user(root, dir.path(), "holder");
    client_ok(&a.0, &["load-app", "-A", "fa"]);
    client_ok(&b.0, &["load-app", "-A", "fb"]);
    client_ok(&c, &["load-app", "-A", "fc"]);
    Cluster {
        server,
        a,
        b,
        c,
        _dir: dir,
    }
}

/// A 1-CPU, 32 MB job of `app` running `cmd`, unpinned.
fn job(app: &str, cmd: &str) -> retz_proto::api::Job {
    let mut job = retz_proto::api::Job::new(app, cmd);
    job.resources.mem_mb.min = 32;
    job.resources.mem_mb.max = Some(32);
    job.affinity = Some("none".parse().expect("affinity none"));
    job
}

/// Three holder jobs of `c`'s, running: every slot of the agent.
fn hold(c: &Path) -> Vec<u64> {
    let args = [
        "-A",
        "fc",
        "-cpu",
        "1",
        "-mem",
        "32",
        "--affinity",
        "none",
        "-cmd",
        "sleep 600",
    ];
    let holders: Vec<u64> = (0..3).map(|_| schedule(c, &args)).collect();
    for &h in &holders {
        wait_started(c, h, LONG);
    }
    holders
}

fn release(c: &Path, holders: &[u64]) {
    for &h in holders {
        client_ok(c, &["kill", "-i", &h.to_string()]);
    }
}

/// Waits until every job of `ids` has FINISHED; returns their start times (as the
/// records say, same format and offset, so they order as text).
fn starts(config: &Path, ids: &[u64]) -> Vec<(String, u64)> {
    ids.iter()
        .map(|&id| {
            let j = wait_finished(config, id, LONG);
            (j["started"].as_str().expect("started").to_owned(), id)
        })
        .collect()
}

#[test]
fn a_flood_of_ten_thousand_holds_back_no_other_user() {
    let Cluster {
        server,
        a,
        b,
        c,
        _dir,
    } = cluster();
    let (a, b) = (&a.0, &b.0);
    let holders = hold(&c);
    // User A floods the queue with 10,000 jobs; B comes later with 10.
    let t = Instant::now();
    let flood = submit_jobs(a, vec![job("fa", "sleep 0.2"); 10_000], 4);
    eprintln!(
        "queued A's 10,000 jobs in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let late = submit_jobs(b, vec![job("fb", "sleep 0.2"); 10], 1);
    let t = Instant::now();
    release(&c, &holders);
    let late_starts = starts(b, &late);
    let last_late = late_starts.iter().max().unwrap().0.clone();
    eprintln!(
        "B's 10 jobs ran {:.1} s after the slots were freed",
        t.elapsed().as_secs_f64()
    );
    // A's jobs that started before B's last one started, from their records.
    let listed = client_ok(
        a,
        &[
            "--json",
            "list",
            "--states",
            "STARTING,STARTED,FINISHED,KILLED",
        ],
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let a_before = listed
        .as_array()
        .expect("list --json is an array")
        .iter()
        .filter(|j| {
            j["started"]
                .as_str()
                .is_some_and(|t| t < last_late.as_str())
        })
        .count();
    eprintln!("{a_before} of A's 10,000 jobs started before B's last of 10");
    // B's running share is the smaller one whenever a slot frees: its ten jobs take
    // about every other start, long before most of A's 10,000 (FIFO would start all
    // 10,000 first).
    assert!(
        a_before <= 30,
        "{a_before} of A's jobs started before B's last one ({last_late})"
    );
    // A's flood is still queued behind: the order was the fair share's, not the end
    // of A's queue.
    assert!(flood.len() == 10_000 && a_before < flood.len());
    drop(server);
}

#[test]
fn shares_set_through_retz_admin_split_the_starts() {
    let Cluster {
        server,
        a,
        b,
        c,
        _dir,
    } = cluster();
    let root = &server.client_config;
    let ((a, a_key), (b, b_key)) = (&a, &b);
    // Shares 2:1, set on the running server. The holder takes the 3 slots while both
    // queue, so both are queued when the slots free.
    assert!(admin_ok(root, &["set-share", a_key, "2"]).contains('2'));
    let shown = admin_ok(root, &["--json", "get-share", b_key]);
    assert!(shown.contains("\"share\": 1"), "{shown}");
    let holders = hold(&c);
    let a_jobs = submit_jobs(a, vec![job("fa", "sleep 0.5"); 45], 1);
    let b_jobs = submit_jobs(b, vec![job("fb", "sleep 0.5"); 45], 1);
    release(&c, &holders);
    // The first 30 starts after the holders: about 20 of A's and 10 of B's. Both
    // users stay queued throughout (45 jobs each).
    let mut all: Vec<(String, char)> = starts(a, &a_jobs)
        .into_iter()
        .map(|(t, _)| (t, 'a'))
        .chain(starts(b, &b_jobs).into_iter().map(|(t, _)| (t, 'b')))
        .collect();
    all.sort();
    let a_first = all[..30].iter().filter(|(_, u)| *u == 'a').count();
    eprintln!("with shares 2:1, A had {a_first} of the first 30 starts");
    assert!(
        (17..=23).contains(&a_first),
        "A (share 2) had {a_first} of the first 30 starts, B (share 1) {}: {all:?}",
        30 - a_first
    );
}
