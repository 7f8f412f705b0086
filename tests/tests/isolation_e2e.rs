//! Tenant isolation (issue #13) end to end, on `retz-server --local` run as real processes:
//! the server's side of the attacks — the embedded master is not an open door, secrets at
//! rest are private, load-app decides who jobs run as (never root, no containers), and a
//! reused or reloaded application name gets a fresh executor and sandbox.
//!
//! These need the embedded cluster's authentication (retz-mesos-local) and the executor's
//! user switch to pass in full; under root (CI) jobs run as `nobody`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use retz_e2e_tests::{
    Server, client, client_ok, create_user, http_request, is_root, job_file, job_json, job_user,
    test_dir, wait_ended, wait_until,
};

const PATIENCE: Duration = Duration::from_secs(90);

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The master address `/status` shows (no authentication needed to read it).
fn master_of(server: &Server) -> std::net::SocketAddr {
    wait_until("the server subscribed", PATIENCE, || {
        let (status, body) = http_request(server.addr, "GET", "/status", &[], b"");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["master"].as_str()?.parse().ok()
    })
}

/// Every file the store keeps, and the other secrets of a data dir.
fn secret_files(data: &Path) -> Vec<PathBuf> {
    [
        "retz.db",
        "retz.db-wal",
        "retz.db-shm",
        "retz.db-journal",
        "client.toml",
        "local-credentials.json",
    ]
    .iter()
    .map(|f| data.join(f))
    .filter(|f| f.exists())
    .collect()
}

#[test]
fn the_local_master_needs_the_servers_credentials_and_its_secrets_stay_private() {
    let dir = test_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--local"]);
    let master = master_of(&server);

    // Attack 1: knowing the master's address is not enough.
    let subscribe =
        br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"intruder"}}}"#;
    let json = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    let (status, body) = http_request(master, "POST", "/api/v1/scheduler", &json, subscribe);
    assert_eq!(status, 401, "SUBSCRIBE without credentials: {body}");
    let wrong = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
        ("Authorization", "Basic cmV0ejpndWVzcw=="), // retz:guess
    ];
    let (status, body) = http_request(master, "POST", "/api/v1/scheduler", &wrong, subscribe);
    assert_eq!(status, 401, "SUBSCRIBE with a guessed secret: {body}");
    let (status, _) = http_request(master, "GET", "/state", &[], b"");
    assert_eq!(status, 401, "/state needs credentials too");
    let (status, _) = http_request(master, "GET", "/health", &[], b"");
    assert_eq!(status, 200, "/health stays open");

    // The server itself is let in: its jobs run, as the default job user.
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "who"]);
    let out = client_ok(c, &["run", "-A", "who", "-c", "id -un"]);
    assert_eq!(out.trim(), job_user(), "{out}");

    // Attack 3: secrets at rest.
    assert_eq!(mode(&data), 0o700);
    let files = secret_files(&data);
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    // Sandboxes are outside the private data dir, where job users can reach them.
    let work = dir.path().join("data-work");
    assert_eq!(mode(&work) & 0o005, 0o005, "{}", work.display());
    assert!(!data.join("local").exists(), "no sandboxes in the data dir");

    // A restart finds them loosened: private again, and the same local credential.
    let credentials = std::fs::read_to_string(data.join("local-credentials.json")).unwrap();
    let port = server.addr.port();
    drop(server);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in secret_files(&data) {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = Server::start_on(&data, port, &["--local"]);
    assert_eq!(mode(&data), 0o700);
    for f in secret_files(&data) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    assert_eq!(
        std::fs::read_to_string(data.join("local-credentials.json")).unwrap(),
        credentials,
        "reused, not regenerated"
    );
    let out = client_ok(
        &server.client_config,
        &["run", "-A", "who", "-c", "echo again"],
    );
    assert_eq!(out, "again\n");
}

#[test]
fn load_app_never_lets_jobs_run_as_root_or_in_containers() {
    let dir = test_dir();
    // `daemon` exists on Debian; allowed here, other users are not.
    let server = Server::start(
        &dir.path().join("data"),
        &["--local", "--allowed-users", "daemon"],
    );
    let c = &server.client_config;
    for root in ["root", " root", "ROOT", "0"] {
        let out = client(c, &["load-app", "-A", "r", "-U", root]);
        assert_ne!(out.status.code(), Some(0), "-U {root:?}");
        assert!(
            text(&out.stderr).contains("root"),
            "-U {root:?}: {}",
            text(&out.stderr)
        );
    }
    // Names the client lets through are judged by the server.
    let out = client(c, &["load-app", "-A", "r", "-U", "Root_"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("not a plain user name"),
        "{}",
        text(&out.stderr)
    );
    let out = client(c, &["load-app", "-A", "r", "-U", "mallory"]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("not allowed") && err.contains("ask the operator") && err.contains("-U"),
        "{err}"
    );
    // Attack 6: a docker application is refused, root or not.
    for user in [None, Some("root")] {
        let mut args = vec![
            "load-app",
            "-A",
            "d",
            "--container",
            "docker",
            "--image",
            "ubuntu:22.04",
        ];
        if let Some(u) = user {
            args.extend(["-U", u]);
        }
        let out = client(c, &args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
    }
    let out = client(
        c,
        &[
            "load-app",
            "-A",
            "d",
            "--container",
            "docker",
            "--image",
            "ubuntu:22.04",
        ],
    );
    assert!(
        text(&out.stderr).contains("containers are not supported yet"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !client_ok(c, &["list-app"])
            .lines()
            .any(|l| l.starts_with("d ")),
        "nothing was loaded"
    );

    // An allowed user: its jobs run as that user (the server can switch users as root).
    client_ok(c, &["load-app", "-A", "as-daemon", "-U", "daemon"]);
    if is_root() {
        let out = client_ok(c, &["run", "-A", "as-daemon", "-c", "id -un; id -u"]);
        assert_eq!(out.lines().next(), Some("daemon"), "{out}");
        assert_ne!(out.lines().nth(1), Some("0"), "{out}");
    }
    let id: u64 = client_ok(c, &["schedule", "-q", "-A", "as-daemon", "-c", "true"])
        .trim()
        .parse()
        .unwrap();
    let job = wait_until("the job is placed", PATIENCE, || {
        let j = job_json(c, id);
        j["job"]["granted"].is_object().then_some(j)
    });
    assert_eq!(job["job"]["granted"]["user"], "daemon", "{job}");
}

/// The directory a job ran in, as it printed it with `pwd`, up to its task directory.
fn run_dir(pwd: &str) -> String {
    let pwd = pwd.trim();
    pwd.split_once("/tasks/")
        .map_or(pwd, |(run, _)| run)
        .to_owned()
}

fn finished_stdout(config: &Path, id: u64) -> String {
    let job = wait_ended(config, id, PATIENCE);
    assert_eq!(job["state"], "FINISHED", "{job}");
    job_file(config, id, "stdout")
}

/// `schedule -q -A APP -c CMD`.
fn schedule(config: &Path, app: &str, cmd: &str) -> u64 {
    retz_e2e_tests::schedule(config, &["-A", app, "-c", cmd])
}

#[test]
fn a_reused_or_reloaded_app_name_gets_a_fresh_executor_and_sandbox() {
    let dir = test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let admin = &server.client_config;
    let (second, _) = create_user(admin, dir.path(), "second");

    // User A's job leaves a secret in its sandbox. The application's files are read-only
    // to jobs: it writes into its own task directory.
    client_ok(admin, &["load-app", "-A", "shared"]);
    let a = finished_stdout(
        admin,
        schedule(admin, "shared", "echo a-secret > secret.txt && pwd"),
    );
    let a_run = run_dir(&a);
    let a_id = schedule(admin, "shared", "pwd");
    assert_eq!(
        run_dir(&finished_stdout(admin, a_id)),
        a_run,
        "one load of one owner: one executor"
    );
    // The same owner reloading the name: a fresh executor.
    client_ok(admin, &["load-app", "-A", "shared"]);
    let reloaded = run_dir(&finished_stdout(admin, schedule(admin, "shared", "pwd")));
    assert_ne!(reloaded, a_run, "a reload shares no executor");
    client_ok(admin, &["unload-app", "-A", "shared"]);

    // Attack 4: user B loads the same name; its job runs elsewhere and finds no trace.
    client_ok(&second, &["load-app", "-A", "shared"]);
    let b = finished_stdout(
        &second,
        schedule(
            &second,
            "shared",
            "pwd; cat \"$RETZ_PVNAME/secret.txt\" ../*/secret.txt secret.txt 2>/dev/null; \
             find .. -name secret.txt 2>/dev/null; true",
        ),
    );
    let mut lines = b.lines();
    let b_run = run_dir(lines.next().unwrap_or(""));
    assert_ne!(b_run, a_run, "another owner shares no executor: {b}");
    assert_ne!(b_run, reloaded, "{b}");
    assert!(!b.contains("a-secret"), "B read A's secret: {b}");
    assert!(!b.contains("secret.txt"), "B found A's file: {b}");
}
