//! The `retz-executor` binary's command line: help, and one clear line on bad input.

use std::process::Command;

fn executor() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retz-executor"));
    cmd.env_clear().env("PATH", "/usr/bin:/bin");
    cmd
}

#[test]
fn help_lists_run() {
    let out = executor().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("run") && text.contains("--cgroup-parent"),
        "{text}"
    );
}

#[test]
fn outside_an_agent_it_says_what_is_missing() {
    let out = executor().output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("retz-executor:"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("MESOS_AGENT_ENDPOINT"), "{err}");
}

#[test]
fn bad_options_are_one_line() {
    let out = executor()
        .args(["run", "--cgroup-parent", "../up"])
        .env("MESOS_AGENT_ENDPOINT", "127.0.0.1:1")
        .env("MESOS_FRAMEWORK_ID", "f")
        .env("MESOS_EXECUTOR_ID", "e")
        .env("MESOS_SANDBOX", "/tmp")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--cgroup-parent") && err.contains("`..`"),
        "{err}"
    );
    let out = executor().args(["--kill-grace", "soon"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--kill-grace")
    );
}

#[test]
fn a_default_user_that_is_not_a_plain_name_is_refused() {
    for bad in [" root", "0", "a b"] {
        let out = executor()
            .args(["run", "--default-user", bad])
            .env("MESOS_AGENT_ENDPOINT", "127.0.0.1:1")
            .env("MESOS_FRAMEWORK_ID", "f")
            .env("MESOS_EXECUTOR_ID", "e")
            .env("MESOS_SANDBOX", "/tmp")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("--default-user") && err.contains("plain user name"),
            "{err}"
        );
    }
    let out = executor().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("--default-user") && text.contains("RETZ_DEFAULT_USER"),
        "{text}"
    );
}

#[test]
fn topology_subcommand_prints_agent_flags() {
    let out = executor()
        .args([
            "topology",
            "--synthetic",
            "pack:2 numa:2 core:2 pu:2",
            "--agent-flags",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("--resources='cpus:16;"), "{text}");
    assert!(
        lines[0].contains("cpuids:[0-15]") && lines[0].contains("numanodes:4"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("--attributes='retz_numa:v1;numa_n0:"),
        "{text}"
    );
}

#[test]
fn topology_subcommand_bad_input_is_one_line() {
    let out = executor()
        .args(["topology", "--synthetic", "pack:two"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("retz-executor topology: "), "{err}");
}
