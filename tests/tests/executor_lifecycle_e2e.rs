//! Executor lifecycle on `retz-server --local`: an application's `retz-executor`
//! processes go away after `unload-app` and after `planner.executor_idle_timeout_s`
//! with no task, and stay while the application is in use; and on a separate
//! `retz-mesos-local`, an executor left by a killed server goes idle under the next
//! server, which shuts it down.

use std::path::Path;
use std::time::Duration;

use retz_e2e_tests::{MesosLocal, Server, client_ok, free_port, job_json, wait_until};

const LONG: Duration = Duration::from_secs(180);
/// The bound: no executor of an unloaded app 30 s later.
const GONE_WITHIN: Duration = Duration::from_secs(30);

/// Pids of the `retz-executor` processes whose `MESOS_EXECUTOR_ID` is one of `appid`'s
/// (`retz-<appid>-<digest>`).
fn executors_of(appid: &str) -> Vec<u32> {
    let prefix = format!("MESOS_EXECUTOR_ID=retz-{appid}-");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != "retz-executor" {
            continue;
        }
        let env = std::fs::read(dir.join("environ")).unwrap_or_default();
        if env
            .split(|b| *b == 0)
            .any(|v| v.starts_with(prefix.as_bytes()))
        {
            pids.push(pid);
        }
    }
    pids
}

fn run_to_finish(config: &Path, app: &str) {
    let id: u64 = client_ok(config, &["schedule", "-q", "-A", app, "-cmd", "true"])
        .trim()
        .parse()
        .expect("schedule -q prints the id");
    let job = wait_until(&format!("job {id} ends"), LONG, || {
        let j = job_json(config, id)["job"].take();
        matches!(j["state"].as_str(), Some("FINISHED" | "KILLED")).then_some(j)
    });
    assert_eq!(job["state"], "FINISHED", "{job}");
}

#[test]
fn unload_app_shuts_its_executors_down_and_keeps_the_others() {
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "lifegone"]);
    client_ok(c, &["load-app", "-A", "lifekept"]);
    run_to_finish(c, "lifegone");
    run_to_finish(c, "lifekept");
    // The default idle timeout is 10 min: both executors are still there.
    assert!(
        !executors_of("lifegone").is_empty(),
        "no executor of lifegone"
    );
    assert!(
        !executors_of("lifekept").is_empty(),
        "no executor of lifekept"
    );

    client_ok(c, &["unload-app", "-A", "lifegone"]);
    wait_until("lifegone's executors exit", GONE_WITHIN, || {
        executors_of("lifegone").is_empty().then_some(())
    });
    assert!(
        !executors_of("lifekept").is_empty(),
        "another application's executor went too:\n{}",
        server.proc.log_text()
    );
    assert!(
        server.proc.log_text().contains("application unloaded"),
        "no shutdown logged:\n{}",
        server.proc.log_text()
    );
}

#[test]
fn an_idle_executor_goes_after_the_configured_timeout() {
    let dir = retz_e2e_tests::test_dir();
    let config = dir.path().join("retz.toml");
    std::fs::write(&config, "[planner]\nexecutor_idle_timeout_s = 1\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--local", "-C", config.to_str().unwrap()],
    );
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "lifeidle"]);
    run_to_finish(c, "lifeidle");
    wait_until("the idle executor exits", GONE_WITHIN, || {
        executors_of("lifeidle").is_empty().then_some(())
    });
    assert!(
        server.proc.log_text().contains("reason=idle"),
        "no idle shutdown logged:\n{}",
        server.proc.log_text()
    );
    // The application still works: its next job gets a new executor.
    run_to_finish(c, "lifeidle");
}

/// The restart case: an executor started for one `retz-server` process is shut
/// down after the idle timeout by the next one (same store, so the same framework id),
/// which learns of it only from the executor ids of the offers. The cluster is a
/// separate `retz-mesos-local`, so the executor outlives the first server's SIGKILL.
#[test]
fn an_idle_executor_of_a_killed_server_is_shut_down_by_the_next_one() {
    let dir = retz_e2e_tests::test_dir();
    let mesos = MesosLocal::start(dir.path(), 1, None);
    let args = mesos.server_args();
    let mut first_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = dir.path().join("data");
    let port = free_port();
    let mut first = Server::start_on(&data, port, &first_args);
    let c = first.client_config.clone();
    client_ok(&c, &["load-app", "-A", "liferestart"]);
    run_to_finish(&c, "liferestart");
    let before = executors_of("liferestart");
    assert!(!before.is_empty(), "no executor of liferestart");
    // The harshest stop: no goodbye to the master, whose failover timeout keeps the
    // framework's executors.
    first.proc.kill();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        executors_of("liferestart"),
        before,
        "the executor did not outlive the server:\n{}",
        mesos.proc.log_text()
    );

    let config = dir.path().join("retz.toml");
    std::fs::write(&config, "[planner]\nexecutor_idle_timeout_s = 1\n").unwrap();
    first_args.extend(["-C", config.to_str().unwrap()]);
    let second = Server::start_on(&data, port, &first_args);
    let logs = || format!("{}\n{}", second.proc.log_text(), mesos.proc.log_text());
    wait_until(
        "the restarted server shuts the idle executor down",
        LONG,
        || executors_of("liferestart").is_empty().then_some(()),
    );
    let log = second.proc.log_text();
    assert!(
        log.contains("reason=idle"),
        "no idle shutdown logged:\n{}",
        logs()
    );
    assert!(
        first.proc.log_text().contains("subscribed to Mesos")
            && log.contains("subscribed to Mesos"),
        "{}",
        logs()
    );
}
