//! The `retz-mesos-local` binary: one error line and status 2 on bad input (bad
//! credentials files included), `--help`, `--agents 2 --synthetic "pack:2 numa:2 core:4
//! pu:2"` serving an authenticated framework end to end until SIGTERM with the credential
//! it generated into `<work-dir>/credentials.json` (0600), `--credentials FILE`, and
//! `--no-authentication`.

mod master_support;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;

use hyper::StatusCode;
use master_support::*;
use retz_proto::ContentType;
use retz_proto::credentials::{Credential, Credentials};
use retz_proto::mesos::TaskState;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

const BIN: &str = env!("CARGO_BIN_EXE_retz-mesos-local");

#[test]
fn bad_input_gives_one_error_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_str().unwrap();
    let bad_line = dir.path().join("bad-line");
    std::fs::write(&bad_line, "retz\n").unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(
        &bad_json,
        r#"{"credentials":[{"principal":"a:b","secret":"s"}]}"#,
    )
    .unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "# nothing\n").unwrap();
    let missing = dir.path().join("missing.json");
    let creds = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (bad_line, bad_json, empty, missing) = (
        creds(&bad_line),
        creds(&bad_json),
        creds(&empty),
        creds(&missing),
    );
    let with_work = |flag: &'static str, file: &str| {
        vec![
            "--bind".to_string(),
            "127.0.0.1:0".to_string(),
            "--work-dir".to_string(),
            work.to_string(),
            "--synthetic".to_string(),
            "core:2".to_string(),
            flag.to_string(),
            file.to_string(),
        ]
    };
    for (args, needle) in [
        (
            with_work("--credentials", &bad_line),
            format!("--credentials {bad_line}: credentials line 1"),
        ),
        (
            with_work("--credentials", &bad_json),
            format!("--credentials {bad_json}: principal \"a:b\""),
        ),
        (
            with_work("--credentials", &empty),
            format!("--credentials {empty}: no credentials"),
        ),
        (
            with_work("--credentials", &missing),
            format!("--credentials {missing}: cannot read it"),
        ),
        (
            vec![
                "--credentials".into(),
                bad_line.clone(),
                "--no-authentication".into(),
            ],
            "cannot be used with".into(),
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
        assert!(lines[0].contains(&needle), "{args:?}: {stderr}");
    }
    for (args, needle) in [
        (vec!["--bogus"], "unexpected argument"),
        (vec!["--agents", "0"], "at least 1"),
        (vec!["--agents", "x"], "invalid value"),
        (vec!["--bind", "nowhere"], "invalid value"),
        (vec!["--heartbeat-interval", "5 hours"], "unknown unit"),
        (vec!["--heartbeat-interval", "0s"], "positive"),
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
        "--credentials",
        "--no-authentication",
        "credentials.json",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

/// Starts the binary with `args` (plus a free port and short intervals); its master's
/// address, its stdout lines after the first, and the child.
async fn start(
    args: &[&str],
    work: &std::path::Path,
) -> (String, Lines<BufReader<ChildStdout>>, Child) {
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--synthetic",
            "pack:1 core:2 pu:1",
            "--allocation-interval",
            "50ms",
            "--disk-mb",
            "1024",
        ])
        .args(args)
        .arg("--work-dir")
        .arg(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    (addr, lines, child)
}

async fn stop(child: Child) -> String {
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert!(out.status.success(), "{}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A SUBSCRIBE as `info`, its status.
async fn subscribe_status(http: &Http, info: retz_proto::mesos::FrameworkInfo) -> StatusCode {
    http.subscribe(ContentType::Json, info).await.status
}

#[tokio::test]
async fn given_credentials_are_the_only_way_in() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds.txt");
    std::fs::write(&file, "# ops\nalice alice-secret\nbob bob-secret\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let work = dir.path().join("work");
    let (addr, mut lines, child) = start(&["--credentials", file.to_str().unwrap()], &work).await;
    let second = lines.next_line().await.unwrap().unwrap();
    assert!(second.contains(file.to_str().unwrap()), "{second}");
    assert!(second.contains("\"alice\", \"bob\""), "{second}");
    assert!(!second.contains("secret"), "{second}");
    assert!(
        !work.join("credentials.json").exists(),
        "generated despite --credentials"
    );
    let addr = addr.parse().unwrap();
    assert_eq!(
        subscribe_status(&Http::new(addr), with_principal(framework("anon"), "alice")).await,
        StatusCode::UNAUTHORIZED
    );
    let bob = Http::with_credential(addr, &credential("bob"));
    let mut s = bob
        .subscribe(ContentType::Json, with_principal(framework("bob's"), "bob"))
        .await;
    assert_eq!(s.status, StatusCode::OK);
    subscribed_id(&s.next().await.unwrap());
    drop(s);
    stop(child).await;
}

#[tokio::test]
async fn no_authentication_opens_the_cluster_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let (addr, _lines, child) = start(&["--no-authentication"], &work).await;
    let http = Http::new(addr.parse().unwrap());
    assert_eq!(
        subscribe_status(&http, framework("open")).await,
        StatusCode::OK
    );
    assert!(!work.join("credentials.json").exists());
    let stderr = stop(child).await;
    assert!(
        stderr.contains(
            "warning: --no-authentication: anyone who can reach the master can launch tasks"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn two_synthetic_agents_serve_a_framework_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    // A secret generated by an earlier start is replaced.
    std::fs::write(dir.path().join("credentials.json"), "stale").unwrap();
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
    // Without --credentials: a credential generated into <work-dir>/credentials.json, 0600,
    // its path and principal printed, never its secret.
    let second = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let path = dir.path().join("credentials.json");
    assert!(second.contains(path.to_str().unwrap()), "{second}");
    assert!(second.contains("principal \"retz\""), "{second}");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let creds = Credentials::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cred: Credential = creds.entries()[0].clone();
    assert_eq!(cred.principal, "retz");
    assert!(cred.secret.len() >= 32);
    assert!(!second.contains(&cred.secret));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    // A framework without credentials gets 401 and nothing.
    let anonymous = Http::new(addr);
    let s = anonymous
        .subscribe(ContentType::Json, with_principal(framework("anon"), "retz"))
        .await;
    assert_eq!(s.status, StatusCode::UNAUTHORIZED);
    let r = anonymous
        .request(hyper::Method::GET, "/state", &[], Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let http = Http::with_credential(addr, &cred);
    assert_eq!(
        http.get_json("/state").await["frameworks"],
        serde_json::json!([])
    );
    let mut s = http
        .subscribe(
            ContentType::Json,
            with_principal(framework("binary"), "retz"),
        )
        .await;
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
