//! `retz-client plan` and `/metrics` against a real `retz-server --local` (issue 20):
//! the idle agent is counted; `plan` answers the exact CPUs that a following `schedule`
//! of the same job then gets, stores nothing, and answers a reason (exit 4) when nothing
//! fits; `/metrics` of the running server passes `promtool check metrics` (Debian's
//! `prometheus`; without it the promtool part skips, except under `CI=true`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use retz_e2e_tests::{Server, client, client_ok, http_request, job_json, wait_until};
use retz_testkit::require;

const LONG: Duration = Duration::from_secs(180);

/// `plan ARGS --json`: (exit code, answer).
fn plan(config: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["plan", "-A", "planner"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = client(config, &all);
    let text = String::from_utf8_lossy(&out.stdout);
    let answer = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "plan --json: {e}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), answer)
}

/// `schedule -q -A planner args...`.
fn schedule(config: &Path, args: &[&str]) -> u64 {
    retz_e2e_tests::schedule(config, &[&["-A", "planner"], args].concat())
}

fn status(server: &Server) -> serde_json::Value {
    let (code, body) = http_request(server.addr, "GET", "/status", &[], b"");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

fn promtool_check(metrics: &str) {
    let Some(promtool) = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .iter()
        .find(|p| Path::new(p).is_file())
    else {
        require(
            false,
            "needs promtool (Debian's prometheus; scripts/setup-debian.sh --test installs it)",
        );
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plan_answers_the_cpus_schedule_then_gets_and_why_a_job_would_wait() {
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "planner"]);

    // The idle agent is counted (it offered once and is declined, not forgotten).
    wait_until("the local agent is counted", LONG, || {
        (status(&server)["numSlaves"] == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(status(&server)["numSlaves"], 1, "still counted while idle");

    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let mut held = Vec::new();
    for round in 0..cpus {
        let (code, answer) = plan(c, &["-cpu", "1", "-cmd", "sleep 300"]);
        assert_eq!(code, 0, "round {round}: {answer}");
        let placement = &answer["placement"];
        let planned = placement["cpuset"]
            .as_str()
            .unwrap_or_else(|| panic!("a pinned placement: {answer}"))
            .to_owned();
        assert_eq!(placement["cpu"], 1, "{answer}");
        assert!(placement["numaNodes"].is_string(), "{answer}");
        assert!(placement["memoryNodes"].is_string(), "{answer}");
        // Nothing was stored by plan.
        assert!(
            !client_ok(c, &["list", "--json"]).contains(&format!("\"id\":{}", held.len() + 1)),
            "plan stores no job"
        );
        let id = schedule(c, &["-cpu", "1", "-cmd", "sleep 300"]);
        let job = wait_until(&format!("job {id} runs"), LONG, || {
            let j = job_json(c, id)["job"].take();
            (j["state"] == "STARTED").then_some(j)
        });
        assert_eq!(
            job["granted"]["cpuset"].as_str(),
            Some(planned.as_str()),
            "schedule got the CPUs plan answered: {job}"
        );
        assert_eq!(job["slaveId"], placement["agentId"], "{job}");
        held.push(id);
    }

    // Every CPU is held: a one-CPU job would wait, first in the queue.
    let (code, answer) = plan(c, &["-cpu", "1", "-cmd", "true"]);
    assert_eq!(code, 4, "{answer}");
    assert!(answer["placement"].is_null(), "{answer}");
    assert!(
        !answer["reason"].as_str().unwrap_or_default().is_empty(),
        "{answer}"
    );
    assert_eq!(answer["queuePosition"], 0, "{answer}");
    // Bigger than the machine: a reason naming what is missing.
    let (code, answer) = plan(c, &["-cpu", "200", "-cmd", "true"]);
    assert_eq!(code, 4, "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("200"),
        "{answer}"
    );

    // The running server's metrics are valid for Prometheus.
    let (code, text) = http_request(
        server.addr,
        "GET",
        "/metrics",
        &[("Accept", "text/plain;version=0.0.4")],
        b"",
    );
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("retz_agents 1"), "{text}");
    assert!(text.contains("retz_user_running_cpus{"), "{text}");
    promtool_check(&text);

    for id in held {
        client_ok(c, &["kill", "-i", &id.to_string()]);
    }
}
