//! `retz-server --local` survives `kill -9` with jobs running, as a Mesos agent with
//! checkpointing does: the embedded agent comes back with its id and port, the executors
//! (which outlived it) re-subscribe, reconciliation answers their tasks' real states, and
//! each job runs exactly once. When the executor died too, its tasks' processes are killed
//! before the tasks are reported lost, so a retry never runs beside the first run.
//!
//! Needs root (the embedded agent runs executors that make cgroups); under `CI=true`
//! without root the tests fail instead of skipping.

use std::path::{Path, PathBuf};
use std::time::Duration;

use retz_e2e_tests::{
    Server, client_ok, file_lines, is_root, job_json, job_writable_dir, schedule, wait_until,
};

const LONG: Duration = Duration::from_secs(240);

fn can_run() -> bool {
    retz_testkit::require(is_root(), "local_recovery_e2e needs root")
}

fn state(job: &serde_json::Value) -> String {
    job["job"]["state"].as_str().unwrap_or("").to_owned()
}

/// Processes whose working directory is under `dir` and whose name is `comm`.
fn processes_under(dir: &Path, comm: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        if name.trim() == comm && cwd.starts_with(dir) {
            out.push(pid);
        }
    }
    out
}

struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    server: Server,
    markers: Vec<PathBuf>,
    ids: Vec<u64>,
}

/// A server with two running jobs, each writing `start <task>` to its own marker, then
/// sleeping `secs`, then writing `end <task>`.
fn two_running_jobs(secs: u32) -> Setup {
    let dir = retz_e2e_tests::test_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--local"]);
    let c = server.client_config.clone();
    client_ok(&c, &["load-app", "-A", "recover"]);
    let out = job_writable_dir(dir.path());
    let mut markers = Vec::new();
    let mut ids = Vec::new();
    for n in 0..2 {
        let marker = out.join(format!("marker-{n}"));
        let m = marker.display();
        let cmd =
            format!("echo start $RETZ_TASK_ID >> {m}; sleep {secs}; echo end $RETZ_TASK_ID >> {m}");
        ids.push(schedule(
            &c,
            &["-A", "recover", "-cmd", &cmd, "-cpu", "1", "-mem", "32"],
        ));
        markers.push(marker);
    }
    wait_until("both jobs STARTED and running", LONG, || {
        let started = ids.iter().all(|&id| state(&job_json(&c, id)) == "STARTED");
        let ran = markers.iter().all(|m| file_lines(m).len() == 1);
        (started && ran).then_some(())
    });
    Setup {
        _dir: dir,
        data,
        server,
        markers,
        ids,
    }
}

#[test]
fn running_jobs_finish_once_across_kill_9_of_the_local_server() {
    if !can_run() {
        return;
    }
    let Setup {
        _dir,
        data,
        mut server,
        markers,
        ids,
    } = two_running_jobs(15);
    let c = server.client_config.clone();
    let port = server.addr.port();
    let before: Vec<serde_json::Value> = ids.iter().map(|&id| job_json(&c, id)).collect();
    server.proc.kill();
    let first_log = server.proc.log_text();
    drop(server);
    let server = Server::start_on(&data, port, &["--local"]);
    let done = wait_until("both jobs end", LONG, || {
        let jobs: Vec<serde_json::Value> = ids.iter().map(|&id| job_json(&c, id)).collect();
        jobs.iter()
            .all(|j| matches!(state(j).as_str(), "FINISHED" | "KILLED"))
            .then_some(jobs)
    });
    let log = server.proc.log_text();
    for ((job, was), marker) in done.iter().zip(&before).zip(&markers) {
        assert_eq!(
            state(job),
            "FINISHED",
            "{job}\nfirst server:\n{first_log}\nsecond server:\n{log}"
        );
        assert_eq!(job["job"]["result"], 0, "{job}");
        assert_eq!(
            job["job"]["attempt"], was["job"]["attempt"],
            "one attempt: {job}"
        );
        assert_eq!(job["job"]["retry"], 0, "{job}");
        let l = file_lines(marker);
        assert_eq!(
            l.iter().filter(|l| l.starts_with("start ")).count(),
            1,
            "ran exactly once: {l:?}"
        );
        assert_eq!(l.len(), 2, "started and ended once: {l:?}");
    }
    drop(server);
}

#[test]
fn tasks_of_an_executor_lost_with_the_server_are_killed_before_any_retry() {
    if !can_run() {
        return;
    }
    let Setup {
        _dir,
        data,
        mut server,
        markers,
        ids,
    } = two_running_jobs(20);
    let c = server.client_config.clone();
    let port = server.addr.port();
    let work = PathBuf::from(format!("{}-work", data.display()));
    server.proc.kill();
    drop(server);
    // The executors outlived the server: kill them; their jobs' shells stay, orphans.
    let executors = processes_under(&work, "retz-executor");
    assert!(!executors.is_empty(), "no executor survived the server");
    for pid in &executors {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let orphans = processes_under(&work, "sleep");
    assert!(
        !orphans.is_empty(),
        "the jobs' processes should be left over"
    );
    let server = Server::start_on(&data, port, &["--local"]);
    // Every process of the first runs is gone before the jobs run again.
    for (marker, &id) in markers.iter().zip(&ids) {
        wait_until("the job ends or runs again", LONG, || {
            let again = file_lines(marker).len() > 1;
            let ended = matches!(state(&job_json(&c, id)).as_str(), "FINISHED" | "KILLED");
            (again || ended).then_some(())
        });
    }
    for pid in &orphans {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "orphan {pid} of the first run still alive when the job was retried"
        );
    }
    let done = wait_until("both jobs end", LONG, || {
        let jobs: Vec<serde_json::Value> = ids.iter().map(|&id| job_json(&c, id)).collect();
        jobs.iter()
            .all(|j| matches!(state(j).as_str(), "FINISHED" | "KILLED"))
            .then_some(jobs)
    });
    let log = server.proc.log_text();
    for (job, marker) in done.iter().zip(&markers) {
        let l = file_lines(marker);
        // Runs never overlap: each `start` is followed by its own `end` (or by nothing,
        // for the killed first run) before the next `start`.
        let first = l[0]
            .strip_prefix("start ")
            .expect("a start line")
            .to_owned();
        assert!(
            !l.contains(&format!("end {first}")),
            "the first run went on after its executor was lost: {l:?}\n{log}"
        );
        for pair in l[1..].chunks(2) {
            let task = pair[0].strip_prefix("start ").expect("start");
            assert_ne!(task, first, "{l:?}");
            if let Some(end) = pair.get(1) {
                assert_eq!(end, &format!("end {task}"), "{l:?}");
            }
        }
        if state(job) == "FINISHED" {
            assert!(l.len() >= 3, "{job}: a retry ran to its end: {l:?}");
        }
    }
    drop(server);
}
