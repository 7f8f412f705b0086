//! Fair share between users end to end on `retz-server --local` (one agent of 3 CPUs,
//! synthetic, more than this 2-CPU machine has, so the jobs run unpinned with affinity
//! `none`; 1-CPU jobs, so 3 slots): one user floods the queue and another's 10 jobs still start
//! first; with shares 2:1 set through `retz-admin set-share` on the running server, the
//! starts of two always-queued users split 2:1 (measured from the job records' start
//! times, not from timing: with 3 slots the fair share holds 2 of the first user's jobs
//! and 1 of the second's running, whatever each job takes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use retz_e2e_tests::{Server, client_ok, job_json, wait_until};

const LONG: Duration = Duration::from_secs(240);

fn schedule(config: &Path, app: &str, cmd: &str) -> u64 {
    client_ok(
        config,
        &[
            "schedule",
            "-q",
            "-A",
            app,
            "-cpu",
            "1",
            "-mem",
            "32",
            "--affinity",
            "none",
            "-cmd",
            cmd,
        ],
    )
    .trim()
    .parse()
    .expect("schedule -q prints the id")
}

fn job(config: &Path, id: u64) -> serde_json::Value {
    job_json(config, id)["job"].take()
}

fn admin(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(retz_e2e_tests::binary("retz-client", "retz-admin"))
        .arg("-C")
        .arg(config)
        .args(args)
        .output()
        .expect("retz-admin");
    assert!(
        out.status.success(),
        "retz-admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A new user's client config and access key.
fn new_user(admin_cfg: &Path, dir: &Path, name: &str) -> (PathBuf, String) {
    let text = admin(admin_cfg, &["create-user", "--info", name]);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, &text).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("access_key = "))
        .expect("the config names the key")
        .trim_matches('"')
        .to_owned();
    (path, key)
}

/// Waits until every job of `ids` has ended; returns their start times (as the
/// records say, same format and offset, so they order as text).
fn starts(config: &Path, ids: &[u64]) -> Vec<(String, u64)> {
    ids.iter()
        .map(|&id| {
            let j = wait_until(&format!("job {id} ends"), LONG, || {
                let j = job(config, id);
                matches!(j["state"].as_str(), Some("FINISHED" | "KILLED")).then_some(j)
            });
            assert_eq!(j["state"], "FINISHED", "{j}");
            (j["started"].as_str().expect("started").to_owned(), id)
        })
        .collect()
}

#[test]
fn a_flood_holds_back_no_other_user_and_shares_set_the_split() {
    let dir = retz_e2e_tests::test_dir();
    let cfg = dir.path().join("retz.toml");
    std::fs::write(
        &cfg,
        "[local]\nsynthetic = \"pack:1 numa:1 core:3 pu:1\"\nallocation_interval_s = 0.2\n",
    )
    .unwrap();
    let cfg_arg = cfg.display().to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &["--local", "-C", cfg_arg.as_str()],
    );
    let root = &server.client_config;
    let (a, a_key) = new_user(root, dir.path(), "flooder");
    let (b, b_key) = new_user(root, dir.path(), "late");
    client_ok(&a, &["load-app", "-A", "fa"]);
    client_ok(&b, &["load-app", "-A", "fb"]);

    // A third user holds the 3 slots while the others queue, so what follows does not
    // depend on how fast jobs are submitted.
    let (c, _) = new_user(root, dir.path(), "holder");
    client_ok(&c, &["load-app", "-A", "fc"]);
    let hold = |c: &Path| -> Vec<u64> {
        let holders: Vec<u64> = (0..3).map(|_| schedule(c, "fc", "sleep 600")).collect();
        for &h in &holders {
            wait_until("the holders run", LONG, || {
                (job(c, h)["state"] == "STARTED").then_some(())
            });
        }
        holders
    };
    let release = |c: &Path, holders: &[u64]| {
        for &h in holders {
            client_ok(c, &["kill", "-i", &h.to_string()]);
        }
    };

    // 1. User A floods the queue; B comes later with 10 jobs.
    let holders = hold(&c);
    let flood: Vec<u64> = (0..90).map(|_| schedule(&a, "fa", "sleep 0.2")).collect();
    let late: Vec<u64> = (0..10).map(|_| schedule(&b, "fb", "sleep 0.2")).collect();
    release(&c, &holders);
    let late_starts = starts(&b, &late);
    let last_late = late_starts.iter().max().unwrap().0.clone();
    let flood_starts = starts(&a, &flood);
    let a_before = flood_starts.iter().filter(|(t, _)| *t < last_late).count();
    eprintln!("{a_before} of A's 90 jobs started before B's last of 10");
    // B's running share is the smaller one whenever a slot frees: its ten jobs take
    // about every other start (17-19 of A's started first in trials), long before A's 90
    // are through (FIFO would start all 90 first).
    assert!(
        a_before <= 30,
        "{a_before} of A's jobs started before B's last one ({last_late})"
    );

    // 2. Shares 2:1, set on the running server. The holder takes the 3 slots again while
    // both queue, so both are queued when the slots free.
    assert!(admin(root, &["set-share", &a_key, "2"]).contains('2'));
    let shown = admin(root, &["--json", "get-share", &b_key]);
    assert!(shown.contains("\"share\": 1"), "{shown}");
    let holders = hold(&c);
    let mut a_jobs = Vec::new();
    let mut b_jobs = Vec::new();
    for _ in 0..45 {
        a_jobs.push(schedule(&a, "fa", "sleep 0.5"));
        b_jobs.push(schedule(&b, "fb", "sleep 0.5"));
    }
    release(&c, &holders);
    // The first 30 starts after the holders: about 20 of A's and 10 of B's. Both
    // users stay queued throughout (45 jobs each).
    let mut all: Vec<(String, char)> = starts(&a, &a_jobs)
        .into_iter()
        .map(|(t, _)| (t, 'a'))
        .chain(starts(&b, &b_jobs).into_iter().map(|(t, _)| (t, 'b')))
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
