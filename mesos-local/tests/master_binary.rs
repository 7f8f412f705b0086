//! The `retz-mesos-local` binary: one error line and status 2 on bad input, `--help`, and
//! `--agents 2 --synthetic "pack:2 numa:2 core:4 pu:2"` serving a framework end to end
//! until SIGTERM.

mod master_support;

use std::process::Stdio;

use hyper::StatusCode;
use master_support::*;
use retz_proto::ContentType;
use retz_proto::mesos::TaskState;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_retz-mesos-local");

#[test]
fn bad_input_gives_one_error_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_str().unwrap();
    for (args, needle) in [
        (vec!["--bogus"], "unexpected argument"),
        (vec!["--agents", "0"], "at least 1"),
        (vec!["--agents", "x"], "invalid value"),
        (vec!["--bind", "nowhere"], "invalid value"),
        (vec!["--heartbeat-interval", "5h"], "unknown unit"),
        (vec!["--xml", "/nonexistent/topo.xml"], "no such file"),
        (
            vec![
                "--agents",
                "3",
                "--synthetic",
                "core:2",
                "--synthetic",
                "core:4",
            ],
            "one per agent",
        ),
        (
            vec![
                "--bind",
                "127.0.0.1:0",
                "--work-dir",
                work,
                "--synthetic",
                "not a topology",
            ],
            "synthetic",
        ),
    ] {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("retz-mesos-local: "), "{stderr}");
        assert!(lines[0].contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn help_lists_the_flags() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bind",
        "--agents",
        "--xml",
        "--synthetic",
        "--work-dir",
        "--heartbeat-interval",
        "--allocation-interval",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[tokio::test]
async fn two_synthetic_agents_serve_a_framework_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--agents",
            "2",
            "--synthetic",
            "pack:2 numa:2 core:4 pu:2",
            "--allocation-interval",
            "50ms",
            "--disk-mb",
            "1024",
            "--work-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the binary starts")
        .unwrap()
        .expect("a first line");
    let addr = first
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    let http = Http::new(addr.parse().unwrap());
    let mut s = http.subscribe(ContentType::Json, framework("binary")).await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let mut offers = Vec::new();
    while offers.len() < 2 {
        offers.extend(s.offers().await);
    }
    for (i, o) in offers.iter().enumerate() {
        assert_eq!(resource(o, "cpus").scalar.as_ref().unwrap().value, 32.0);
        assert_eq!(resource(o, "numanodes").scalar.as_ref().unwrap().value, 4.0);
        let t = command_task(
            &format!("hello-{i}"),
            &o.agent_id,
            vec![
                scalar("cpus", 2.0),
                scalar("mem", 64.0),
                ranges("cpuids", 16, 17),
            ],
        );
        let r = http
            .call(
                ContentType::Json,
                &s.stream_id,
                &accept_call(&fid, &[&o.id], vec![t], Some(0.0)),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
    let mut finished = 0;
    while finished < 2 {
        let u = s.update().await;
        if u.state == TaskState::TaskFinished as i32 {
            finished += 1;
        } else {
            assert!(
                u.state == TaskState::TaskRunning as i32
                    || u.state == TaskState::TaskStarting as i32,
                "{u:?}"
            );
        }
        let r = http
            .call(ContentType::Json, &s.stream_id, &ack_call(&fid, &u))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
