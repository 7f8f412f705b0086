//! Every `retz-client` subcommand, and `retz-admin`'s user commands, run as real processes
//! against a real `retz-server --local` (embedded local cluster, real executor, real
//! sandboxes): exit codes, printed output and the files jobs write, as a user sees them.
//!
//! One server per test function (each in its own temporary directory); jobs are tiny
//! (`echo`, `sleep` that gets killed) because the host has two CPUs. Waits are bounded
//! polls ([`wait_until`], [`Lines::next`]) that only guard against hangs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use retz_e2e_tests::{
    Server, admin_ok, binary, client, client_ok, free_port, job_json, listed_ids, schedule,
    wait_until, write_tarball,
};
use serde_json::Value;

/// How long a job may take to reach a state (a guard against hangs, not a measure).
const PATIENCE: Duration = Duration::from_secs(60);

/// The name with spaces and `+` (a URL-encoding trap) of the first downloaded file.
const POET: &str = "dead + poet + society.txt";
/// The non-ASCII name of the second downloaded file.
const UNICODE: &str = "résumé 日本.bin";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "{args:?} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Runs `retz-client -C config args...` and asserts its exit code; returns the output.
fn client_exits(config: &Path, args: &[&str], code: i32) -> Output {
    let out = client(config, args);
    assert_eq!(out.status.code(), Some(code), "{}", describe(args, &out));
    out
}

/// Runs `retz-client args...` without `-C` (and without a config found elsewhere).
fn client_bare(args: &[&str]) -> Output {
    Command::new(binary("retz-client", "retz-client"))
        .args(args)
        .env_remove("RETZ_CLIENT_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent-retz-test")
        .env("HOME", "/nonexistent-retz-test")
        .stdin(Stdio::null())
        .output()
        .expect("run retz-client")
}

/// Starts `retz-client -C config args...` with its stdout piped.
fn spawn_client(config: &Path, args: &[&str]) -> (Child, Lines) {
    let mut child = Command::new(binary("retz-client", "retz-client"))
        .arg("-C")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start retz-client");
    let stdout = child.stdout.take().expect("piped stdout");
    (child, Lines::new(stdout))
}

/// The lines of a child's stdout, read on a thread so that a test never blocks forever.
struct Lines(Receiver<String>);

impl Lines {
    fn new(stdout: ChildStdout) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// The next line, `None` at end of output; panics after [`PATIENCE`].
    fn next(&self, what: &str) -> Option<String> {
        match self.0.recv_timeout(PATIENCE) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("no output after {PATIENCE:?}: {what}"),
        }
    }
}

/// Waits for a spawned client and returns its exit code and stderr.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).expect("read stderr");
    }
    let status = child.wait().expect("wait retz-client");
    (status.code(), stderr)
}

/// A shell loop that waits until `marker` exists, and makes the job exit 9 if it does not
/// appear within 30 s (half of [`PATIENCE`]): a client that only printed once the job
/// ended would see that exit code instead of the clean end the tests expect.
fn wait_for_marker(marker: &Path) -> String {
    format!(
        "i=0; while [ ! -e '{m}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
         [ -e '{m}' ] || exit 9",
        m = marker.display()
    )
}

fn job_state(config: &Path, id: u64) -> String {
    job_json(config, id)["job"]["state"]
        .as_str()
        .unwrap_or_else(|| panic!("job {id} has no state"))
        .to_owned()
}

/// Waits until job `id` is in `state` and returns its JSON; fails at once if the job
/// ended in another state.
fn wait_state(config: &Path, id: u64, state: &str) -> Value {
    wait_until(&format!("job {id} {state}"), PATIENCE, || {
        let job = job_json(config, id)["job"].clone();
        let now = job["state"].as_str().unwrap_or_default();
        assert!(
            now == state || !matches!(now, "FINISHED" | "KILLED"),
            "job {id} ended {now}, not {state}: {job}"
        );
        (now == state).then_some(job)
    })
}

/// Prints the server's log when the test fails (its temporary directory goes away).
struct LogOnPanic<'a>(&'a Server);

impl Drop for LogOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- retz-server log ---\n{}", self.0.proc.log_text());
        }
    }
}

/// `n` bytes from the kernel's random source, followed by every byte value once.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.extend(0..=255u8);
    bytes
}

/// A copy of `config` with `key = ...` replaced by `key = "value"`.
fn config_with(config: &Path, key: &str, value: &str, to: &Path) -> PathBuf {
    let original = std::fs::read_to_string(config).expect("read client config");
    let prefix = format!("{key} =");
    assert!(
        original.lines().any(|l| l.starts_with(&prefix)),
        "no {key} in {original}"
    );
    let changed: Vec<String> = original
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{key} = \"{value}\"")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(to, changed.join("\n") + "\n").expect("write client config");
    to.to_owned()
}

/// The string value of `key = "value"` in a client config.
fn config_value(toml: &str, key: &str) -> String {
    let prefix = format!("{key} = \"");
    toml.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no {key} in {toml}"))
        .to_owned()
}

#[test]
fn apps_run_and_sandbox_files() {
    let tmp = retz_e2e_tests::test_dir();
    let server = Server::start(&tmp.path().join("data"), &["--local"]);
    let _log = LogOnPanic(&server);
    let admin = &server.client_config;

    // load-app with a tarball holding a script and two binary files.
    let poet = random_bytes(3000);
    let unicode = random_bytes(5000);
    let script = b"#!/bin/sh\necho \"hello from the app, arg=$1\"\n";
    let tarball = write_tarball(
        &tmp.path().join("app.tar.gz"),
        &[
            ("hello.sh", 0o755, script),
            (POET, 0o644, &poet),
            (UNICODE, 0o644, &unicode),
        ],
    );
    let uri = format!("file://{}", tarball.display());
    let out = client_ok(admin, &["load-app", "-A", "tools", "-F", &uri]);
    assert!(out.contains("tools"), "load-app: {out}");

    // get-app shows it as JSON, list-app lists it.
    let app: Value = serde_json::from_str(&client_ok(admin, &["get-app", "-A", "tools"]))
        .expect("get-app prints JSON");
    assert_eq!(app["appid"], "tools");
    assert_eq!(app["files"], serde_json::json!([uri]));
    assert_eq!(app["enabled"], true);
    let table = client_ok(admin, &["list-app"]);
    assert!(table.starts_with("AppName"), "list-app: {table}");
    assert!(
        table.lines().skip(1).any(|l| l.starts_with("tools ")),
        "list-app: {table}"
    );
    let apps: Value =
        serde_json::from_str(&client_ok(admin, &["--json", "list-app"])).expect("list-app JSON");
    assert!(
        apps.as_array()
            .expect("array")
            .iter()
            .any(|a| a["appid"] == "tools"),
        "list-app --json: {apps}"
    );

    // A job sees the unpacked tarball under $RETZ_PVNAME, executable bit kept.
    let out = client_ok(
        admin,
        &[
            "run",
            "-A",
            "tools",
            "-c",
            "\"$RETZ_PVNAME/hello.sh\" world && sh \"$RETZ_PVNAME/hello.sh\" again",
        ],
    );
    assert_eq!(
        out,
        "hello from the app, arg=world\nhello from the app, arg=again\n"
    );

    // run streams stdout: the first line arrives while the job still waits for us.
    let marker = tmp.path().join("run-marker");
    let cmd = format!("echo first; {}; echo second", wait_for_marker(&marker));
    let (child, lines) = spawn_client(admin, &["run", "-A", "tools", "-c", &cmd]);
    assert_eq!(lines.next("run's first line").as_deref(), Some("first"));
    std::fs::write(&marker, b"go").expect("marker");
    assert_eq!(lines.next("run's second line").as_deref(), Some("second"));
    assert_eq!(lines.next("run's end"), None);
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "run: {stderr}");

    // run exits with the command's exit code; --stderr prints the job's stderr after.
    let out = client_exits(
        admin,
        &[
            "run",
            "-A",
            "tools",
            "--stderr",
            "-c",
            "echo to-out; echo to-err >&2; exit 3",
        ],
        3,
    );
    assert_eq!(text(&out.stdout), "to-out\n");
    assert!(
        text(&out.stderr).contains("to-err"),
        "{}",
        text(&out.stderr)
    );

    // get-file --poll follows a job as it writes, until it ends.
    let marker = tmp.path().join("poll-marker");
    let cmd = format!(
        "for i in 1 2 3 4 5; do echo line-$i; sleep 0.2; done; {}; \
         for i in 6 7 8 9 10; do echo line-$i; sleep 0.2; done",
        wait_for_marker(&marker)
    );
    let id = schedule(admin, &["-A", "tools", "-c", &cmd]);
    let id_s = id.to_string();
    let (child, lines) = spawn_client(admin, &["get-file", "-i", &id_s, "--poll"]);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(lines.next("polled line").expect("poll ended early"));
    }
    // The job cannot have ended yet: it waits for the marker.
    assert_eq!(job_state(admin, id), "STARTED");
    std::fs::write(&marker, b"go").expect("marker");
    while let Some(line) = lines.next("polled line") {
        got.push(line);
    }
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(0), "get-file --poll: {stderr}");
    let want: Vec<String> = (1..=10).map(|i| format!("line-{i}")).collect();
    assert_eq!(got, want);
    assert_eq!(job_state(admin, id), "FINISHED");

    // get-file of a finished job prints the file.
    let all = want.join("\n") + "\n";
    assert_eq!(
        client_ok(admin, &["get-file", "-i", &id_s, "--path", "stdout"]),
        all
    );
    assert_eq!(client_ok(admin, &["get-file", "-i", &id_s]), all);

    // Files with awkward names, laid out beside the job as read-only links to the
    // application's copy (which the file API does not serve: not the job user's);
    // removed first, each becomes the job's own copy, downloaded byte for byte.
    let cmd = format!(
        "cmp \"$RETZ_PVNAME/{POET}\" \"{POET}\" && ! {{ echo x >> \"{UNICODE}\"; }} 2>/dev/null && \
         rm -f \"{POET}\" \"{UNICODE}\" && cp \"$RETZ_PVNAME/{POET}\" \"$RETZ_PVNAME/{UNICODE}\" . && \
         echo x >> \"{UNICODE}\" && echo copied"
    );
    let id = schedule(admin, &["-A", "tools", "-c", &cmd]);
    let id_s = id.to_string();
    let job = wait_state(admin, id, "FINISHED");
    assert_eq!(job["result"], 0, "{job}");

    let listing: Value =
        serde_json::from_str(&client_ok(admin, &["--json", "list-files", "-i", &id_s]))
            .expect("list-files JSON");
    let entries = listing.as_array().expect("list-files --json is an array");
    let size_of = |name: &str| {
        entries
            .iter()
            .find(|e| {
                e["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("/{name}")))
            })
            .unwrap_or_else(|| panic!("{name} not listed: {listing}"))["size"]
            .as_u64()
    };
    assert_eq!(size_of(POET), Some(poet.len() as u64));
    // The private copy, with the line the job added.
    let mut changed = unicode;
    changed.extend_from_slice(b"x\n");
    assert_eq!(size_of(UNICODE), Some(changed.len() as u64));
    assert_eq!(size_of("stdout"), Some("copied\n".len() as u64));
    assert_eq!(size_of("stderr"), Some(0));
    let table = client_ok(admin, &["list-files", "-i", &id_s]);
    assert!(
        table.lines().next().is_some_and(|h| h.contains("path")),
        "{table}"
    );
    assert!(table.contains(POET) && table.contains(UNICODE), "{table}");

    let results = tmp.path().join("results");
    std::fs::create_dir(&results).expect("results dir");
    let dir = results.to_str().expect("utf-8");
    for (name, bytes) in [(POET, &poet), (UNICODE, &changed)] {
        client_ok(
            admin,
            &[
                "get-file", "-i", &id_s, "--binary", "-R", dir, "--path", name,
            ],
        );
        let saved = std::fs::read(results.join(name))
            .unwrap_or_else(|e| panic!("{name} not saved in {dir}: {e}"));
        assert!(saved == *bytes, "{name}: downloaded bytes differ");
    }

    // unload-app: gone for get-app, list-app and schedule.
    let out = client_ok(admin, &["unload-app", "-A", "tools"]);
    assert!(out.contains("tools"), "unload-app: {out}");
    let out = client_exits(admin, &["get-app", "-A", "tools"], 1);
    assert!(
        text(&out.stderr).contains("No such application"),
        "{}",
        describe(&[], &out)
    );
    assert!(!client_ok(admin, &["list-app"]).contains("tools"));
    client_exits(admin, &["schedule", "-A", "tools", "-c", "true"], 1);
    client_exits(admin, &["unload-app", "-A", "tools"], 1);
}

#[test]
fn schedule_list_kill_and_killall() {
    let tmp = retz_e2e_tests::test_dir();
    let server = Server::start(&tmp.path().join("data"), &["--local"]);
    let _log = LogOnPanic(&server);
    let admin = &server.client_config;
    client_ok(admin, &["load-app", "-A", "q"]);

    // schedule prints the id; get-job --json shows what was asked.
    let out = client_ok(
        admin,
        &[
            "schedule",
            "-A",
            "q",
            "-c",
            "sleep 30",
            "-N",
            "sleeper",
            "--tags",
            "solo,long",
        ],
    );
    let sleeper: u64 = out
        .strip_prefix("Job (id=")
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("schedule printed {out:?}"));
    let job = wait_state(admin, sleeper, "STARTED");
    assert_eq!(job["id"], sleeper);
    assert_eq!(job["name"], "sleeper");
    assert_eq!(job["cmd"], "sleep 30");
    assert_eq!(job["appid"], "q");
    let mut tags: Vec<&str> = job["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["long", "solo"]);
    let table = client_ok(admin, &["get-job", "-i", &sleeper.to_string()]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("state") && l.ends_with("STARTED")),
        "get-job: {table}"
    );

    // status: the embedded cluster's one agent and the running job.
    let status: Value =
        serde_json::from_str(&client_ok(admin, &["--json", "status"])).expect("status JSON");
    assert_eq!(status["numSlaves"], 1, "{status}");
    assert_eq!(status["runningLength"], 1, "{status}");
    assert!(client_ok(admin, &["status"]).contains("agents"));

    // config: the config in use, secret masked; completions: a shell script.
    let admin_toml = std::fs::read_to_string(admin).expect("admin config");
    let shown = client_ok(admin, &["config"]);
    assert!(
        shown.contains(&config_value(&admin_toml, "access_key")),
        "{shown}"
    );
    assert!(
        !shown.contains(&config_value(&admin_toml, "secret")),
        "{shown}"
    );
    assert!(client_ok(admin, &["completions", "bash"]).contains("retz"));

    // --json schedule prints the queued job.
    let out = client_ok(admin, &["--json", "schedule", "-A", "q", "-c", "echo done"]);
    let echo: Value = serde_json::from_str(&out).expect("schedule --json");
    let echo_id = echo["id"].as_u64().expect("id");
    assert_eq!(echo["cmd"], "echo done");
    let job = wait_state(admin, echo_id, "FINISHED");
    assert_eq!(job["result"], 0);

    // list: active jobs by default, everything with --states ALL, filtered by --tag.
    assert_eq!(listed_ids(admin, &[]), vec![sleeper]);
    assert_eq!(
        listed_ids(admin, &["--states", "ALL"]),
        vec![sleeper, echo_id]
    );
    assert_eq!(listed_ids(admin, &["--state", "FINISHED"]), vec![echo_id]);
    assert_eq!(
        listed_ids(admin, &["--states", "ALL", "--tag", "long"]),
        vec![sleeper]
    );
    assert_eq!(
        listed_ids(admin, &["--states", "ALL", "--tag", "nope"]),
        Vec::<u64>::new()
    );
    let table = client_ok(admin, &["list", "--states", "ALL"]);
    assert!(table.starts_with("TaskId"), "list: {table}");
    assert_eq!(table.lines().count(), 3, "header and two jobs: {table}");

    // kill a running job.
    let out = client_ok(admin, &["kill", "-i", &sleeper.to_string()]);
    assert!(out.contains(&format!("id={sleeper}")), "kill: {out}");
    let job = wait_state(admin, sleeper, "KILLED");
    assert_eq!(job["reason"], "Canceled by user");

    // kill a job that can never start (more CPUs than the machine has): still QUEUED.
    let queued = schedule(admin, &["-A", "q", "-c", "sleep 30", "--cpu", "64"]);
    assert_eq!(job_state(admin, queued), "QUEUED");
    let out = client_ok(admin, &["kill", "-i", &queued.to_string()]);
    assert!(out.contains("KILLED"), "kill of a queued job: {out}");
    wait_state(admin, queued, "KILLED");

    // Nothing to kill: a finished job, an unknown one.
    let out = client_exits(admin, &["kill", "-i", &echo_id.to_string()], 1);
    assert!(
        text(&out.stderr).contains("finished"),
        "{}",
        describe(&[], &out)
    );
    client_exits(admin, &["kill", "-i", "4242"], 1);
    client_exits(admin, &["get-job", "-i", "4242"], 1);

    // killall --tag kills the tagged jobs, queued or running, and only them.
    let b1 = schedule(admin, &["-A", "q", "-c", "sleep 30", "--tags", "batch"]);
    let b2 = schedule(admin, &["-A", "q", "-c", "sleep 30", "--tags", "x,batch"]);
    let keep = schedule(
        admin,
        &["-A", "q", "-c", "sleep 30", "--tags", "keep", "--cpu", "64"],
    );
    wait_state(admin, b1, "STARTED");
    client_ok(admin, &["killall", "--tag", "batch"]);
    wait_state(admin, b1, "KILLED");
    wait_state(admin, b2, "KILLED");
    assert_eq!(job_state(admin, keep), "QUEUED");
    assert_eq!(listed_ids(admin, &[]), vec![keep]);
    assert_eq!(
        listed_ids(admin, &["--states", "KILLED", "--tag", "batch"]),
        vec![b1, b2]
    );
    client_ok(admin, &["kill", "-i", &keep.to_string()]);
    wait_state(admin, keep, "KILLED");
    assert_eq!(listed_ids(admin, &[]), Vec::<u64>::new());
}

#[test]
fn usage_and_connection_errors() {
    // Usage errors: exit 2 with the reason, no server needed.
    let out = client_bare(&["frobnicate"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        describe(&["frobnicate"], &out)
    );
    assert!(
        text(&out.stderr).contains("frobnicate"),
        "{}",
        text(&out.stderr)
    );

    let args = ["schedule", "-A", "a", "-c", "true", "-cpu", "4-2"];
    let out = client_bare(&args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
    let err = text(&out.stderr);
    assert!(
        err.contains("4-2") && err.contains("below minimum"),
        "{err}"
    );

    let args = ["schedule", "-c", "true"];
    let out = client_bare(&args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
    assert!(
        text(&out.stderr).contains("--appname"),
        "{}",
        text(&out.stderr)
    );

    // A missing config file: exit 3.
    let tmp = retz_e2e_tests::test_dir();
    let missing = tmp.path().join("missing.toml");
    let out = client_exits(&missing, &["list"], 3);
    assert!(
        text(&out.stderr).contains("missing.toml"),
        "{}",
        text(&out.stderr)
    );

    // A server that does not listen: exit 3.
    let closed = tmp.path().join("closed.toml");
    std::fs::write(
        &closed,
        format!(
            "server = \"http://127.0.0.1:{}\"\naccess_key = \"k\"\nsecret = \"s\"\n",
            free_port()
        ),
    )
    .expect("write config");
    let out = client_exits(&closed, &["list"], 3);
    assert!(
        text(&out.stderr).contains("cannot reach"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn users_see_and_touch_only_their_own() {
    let tmp = retz_e2e_tests::test_dir();
    let server = Server::start(&tmp.path().join("data"), &["--local"]);
    let _log = LogOnPanic(&server);
    let admin = &server.client_config;

    // The admin's jobs: one finished with output, one running.
    client_ok(admin, &["load-app", "-A", "private"]);
    let done = schedule(admin, &["-A", "private", "-c", "echo admin-secret-output"]);
    wait_state(admin, done, "FINISHED");
    let sleeper = schedule(
        admin,
        &["-A", "private", "-c", "sleep 30", "--tags", "admin-work"],
    );
    wait_state(admin, sleeper, "STARTED");

    // A wrong secret: refused with the server's message, exit 1.
    let wrong = config_with(
        admin,
        "secret",
        "0123456789abcdef0123456789abcdef",
        &tmp.path().join("wrong.toml"),
    );
    let out = client_exits(&wrong, &["list"], 1);
    assert!(
        text(&out.stderr).contains("Authentication failed"),
        "{}",
        text(&out.stderr)
    );

    // create-user prints a config that retz-client takes as is.
    let toml = admin_ok(admin, &["create-user", "--info", "second user"]);
    let admin_toml = std::fs::read_to_string(admin).expect("admin config");
    assert_eq!(
        config_value(&toml, "server"),
        config_value(&admin_toml, "server")
    );
    let key = config_value(&toml, "access_key");
    assert_ne!(key, config_value(&admin_toml, "access_key"));
    assert!(!config_value(&toml, "secret").is_empty());
    let second = tmp.path().join("second.toml");
    std::fs::write(&second, &toml).expect("write second config");
    let users = admin_ok(admin, &["list-user"]);
    assert!(
        users
            .lines()
            .any(|l| l.starts_with(&key) && l.contains("second user")),
        "list-user: {users}"
    );

    // The second user sees none of the admin's jobs or apps...
    assert_eq!(listed_ids(&second, &["--states", "ALL"]), Vec::<u64>::new());
    for id in [done, sleeper] {
        let out = client_exits(&second, &["get-job", "-i", &id.to_string()], 1);
        assert!(out.stdout.is_empty(), "{}", describe(&["get-job"], &out));
        client_exits(&second, &["--json", "get-job", "-i", &id.to_string()], 1);
    }
    let out = client_exits(&second, &["get-file", "-i", &done.to_string()], 1);
    assert!(
        !text(&out.stdout).contains("admin-secret-output"),
        "{}",
        describe(&["get-file"], &out)
    );
    client_exits(&second, &["list-files", "-i", &done.to_string()], 1);
    client_exits(&second, &["get-app", "-A", "private"], 1);
    client_exits(&second, &["schedule", "-A", "private", "-c", "true"], 1);

    // ...and cannot kill them, one by one or by tag.
    client_exits(&second, &["kill", "-i", &sleeper.to_string()], 1);
    client_ok(&second, &["killall", "--tag", "admin-work"]);
    assert_eq!(job_state(admin, sleeper), "STARTED");

    // Its own work goes through.
    client_ok(&second, &["load-app", "-A", "mine"]);
    assert_eq!(
        client_ok(&second, &["run", "-A", "mine", "-c", "echo own-job"]),
        "own-job\n"
    );
    assert!(!client_ok(admin, &["list-app"]).contains("mine"));

    // disable-user: refused with the server's message; enable-user: accepted again.
    admin_ok(admin, &["disable-user", "-i", &key]);
    let user: Value = serde_json::from_str(&admin_ok(admin, &["--json", "get-user", "-i", &key]))
        .expect("get-user JSON");
    assert_eq!(user["enabled"], false);
    let out = client_exits(&second, &["list"], 1);
    assert!(
        text(&out.stderr).contains("User disabled"),
        "{}",
        text(&out.stderr)
    );
    client_exits(&second, &["run", "-A", "mine", "-c", "echo again"], 1);
    admin_ok(admin, &["enable-user", "-i", &key]);
    assert_eq!(listed_ids(&second, &[]), Vec::<u64>::new());
    assert_eq!(
        client_ok(&second, &["run", "-A", "mine", "-c", "echo again"]),
        "again\n"
    );

    client_ok(admin, &["kill", "-i", &sleeper.to_string()]);
    wait_state(admin, sleeper, "KILLED");
}
