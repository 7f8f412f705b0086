//! Tenant isolation (issue #13) end to end, where jobs run: attacks 2 and 5 tried by real
//! jobs of `retz-server --local` (run as root, as the README says), through the client.
//!
//! A job runs as its user with no capabilities; it cannot read root's files or the
//! server's secrets, write its cgroup, leave its cpuset (by the cgroup files or by
//! `taskset`), signal another user's job, or leave a process behind; a link it makes in
//! its sandbox does not make the file API serve what the link points at.
//!
//! Confinement needs root and cgroups: without root these skip, under `CI=true` they fail.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use retz_e2e_tests::{
    Server, client, client_ok, is_root, job_file, job_json, job_user, test_dir, wait_ended,
    wait_until,
};

const PATIENCE: Duration = Duration::from_secs(90);

fn needs_root(test: &str) -> bool {
    retz_testkit::require(is_root(), &format!("{test} needs root"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `schedule -q -A APP -c CMD`.
fn schedule(config: &Path, app: &str, cmd: &str) -> u64 {
    retz_e2e_tests::schedule(config, &["-A", app, "-c", cmd])
}

/// Host pids whose command line contains `needle` (from /proc, so no pgrep needed).
fn pids_running(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = text(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && !cmdline.contains("sh -c") {
            found.push(pid);
        }
    }
    found
}

/// The probe a hostile job runs: every attempt prints what it got.
const PROBE: &str = r#"
echo "uid=$(id -u)"
echo "cpuset=$RETZ_CPUSET"
cat /etc/shadow >/dev/null 2>&1 && echo "ESCAPE read /etc/shadow"
cat "$CLIENT_TOML" >/dev/null 2>&1 && echo "ESCAPE read client.toml"
cat "$DB" >/dev/null 2>&1 && echo "ESCAPE read retz.db"
cg=$(grep ':cpuset:' /proc/self/cgroup | cut -d: -f3)
echo "cgroup=$cg"
(echo 0-1 > "/sys/fs/cgroup/cpuset$cg/cpuset.cpus") 2>/dev/null && echo "ESCAPE wrote cpuset.cpus"
(echo $$ > /sys/fs/cgroup/cpuset/cgroup.procs) 2>/dev/null && echo "ESCAPE moved to the root cpuset"
(echo $$ > /sys/fs/cgroup/cpuset/tasks) 2>/dev/null && echo "ESCAPE moved to the root cpuset (tasks)"
mg=$(grep ':memory:' /proc/self/cgroup | cut -d: -f3)
if [ -n "$mg" ] && [ -e "/sys/fs/cgroup/memory$mg/memory.limit_in_bytes" ]; then
  (echo -1 > "/sys/fs/cgroup/memory$mg/memory.limit_in_bytes") 2>/dev/null && echo "ESCAPE raised the memory limit"
fi
taskset -pc 0-1 $$ >/dev/null 2>&1
echo "after-taskset=$(grep Cpus_allowed_list /proc/self/status | cut -f2)"
echo "now-in=$(grep ':cpuset:' /proc/self/cgroup | cut -d: -f3)"
echo "caps=$(grep CapEff /proc/self/status | cut -f2)"
echo "nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)"
setsid sleep 7431 >/dev/null 2>&1 < /dev/null &
echo done
"#;

#[test]
fn a_job_runs_as_its_user_and_cannot_leave_its_confinement() {
    if !needs_root("a_job_runs_as_its_user_and_cannot_leave_its_confinement") {
        return;
    }
    let dir = test_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "probe"]);
    let cmd = format!(
        "CLIENT_TOML='{}' DB='{}'; {PROBE}",
        data.join("client.toml").display(),
        data.join("retz.db").display()
    );
    let id = schedule(c, "probe", &cmd);
    let job = wait_ended(c, id, PATIENCE);
    let out = job_file(c, id, "stdout");
    assert_eq!(job["state"], "FINISHED", "{job}\n{out}");
    assert!(out.contains("\ndone"), "the probe ran to its end:\n{out}");
    assert!(!out.contains("ESCAPE"), "a job got out:\n{out}");

    let line = |key: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in\n{out}"))
            .to_owned()
    };
    let expected_uid = nix::unistd::User::from_name(&job_user())
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    assert_eq!(line("uid"), expected_uid.to_string(), "{out}");
    assert_ne!(line("uid"), "0");
    assert_eq!(line("caps"), "0000000000000000", "no capabilities: {out}");
    assert_eq!(line("nnp"), "1", "no_new_privs: {out}");
    // Pinning still holds with the privileges dropped: taskset cannot widen it and the
    // job stays in its own cpuset.
    let cpuset = line("cpuset");
    assert!(!cpuset.is_empty(), "{out}");
    assert_eq!(line("after-taskset"), cpuset, "{out}");
    assert_eq!(line("now-in"), line("cgroup"), "{out}");
    assert_ne!(
        line("cgroup"),
        "/",
        "the job has a cpuset of its own: {out}"
    );

    // The process it left behind is gone, and the job's status says so.
    assert!(
        pids_running("sleep 7431").is_empty(),
        "a leftover outlived its job"
    );
    let reason = job["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("leftover"), "{job}");
}

#[test]
fn a_job_cannot_signal_another_users_job() {
    if !needs_root("a_job_cannot_signal_another_users_job") {
        return;
    }
    let dir = test_dir();
    let server = Server::start(
        &dir.path().join("data"),
        &["--local", "--allowed-users", "daemon"],
    );
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "victim", "-U", "daemon"]);
    client_ok(c, &["load-app", "-A", "attacker"]);
    let victim = schedule(c, "victim", "exec sleep 7432");
    let pid = wait_until("the victim runs", PATIENCE, || {
        pids_running("sleep 7432").first().copied()
    });
    let attacker = schedule(
        c,
        "attacker",
        &format!("kill -TERM {pid} 2>/dev/null; echo rc=$?; echo tried"),
    );
    let job = wait_ended(c, attacker, PATIENCE);
    let out = job_file(c, attacker, "stdout");
    assert!(out.contains("tried"), "{job}\n{out}");
    assert!(!out.contains("rc=0"), "the signal was delivered: {out}");
    assert_eq!(
        pids_running("sleep 7432"),
        vec![pid],
        "the victim still runs"
    );
    assert_eq!(job_json(c, victim)["job"]["state"], "STARTED");
    client_ok(c, &["kill", "-i", &victim.to_string()]);
    let job = wait_ended(c, victim, PATIENCE);
    assert_eq!(job["state"], "KILLED", "{job}");
}

#[test]
fn links_in_a_sandbox_do_not_reach_outside_it_through_the_file_api() {
    if !needs_root("links_in_a_sandbox_do_not_reach_outside_it_through_the_file_api") {
        return;
    }
    let dir = test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    client_ok(c, &["load-app", "-A", "links"]);
    // Another job's output, which the linking job points at.
    let other = schedule(c, "links", "echo other-job-output");
    assert_eq!(wait_ended(c, other, PATIENCE)["state"], "FINISHED");
    let pwd = schedule(c, "links", "pwd");
    assert_eq!(wait_ended(c, pwd, PATIENCE)["state"], "FINISHED");
    let other_dir = job_file(c, pwd, "stdout");
    let other_dir = other_dir.trim();
    // A file of root's the job may write (so the kernel lets it make a hard link to it,
    // protected_hardlinks or not) but that is not the job user's own.
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "outside\n").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o666)).unwrap();
    let id = schedule(
        c,
        "links",
        &format!(
            "ln -s /etc/passwd passwd-link; ln -s / root-link; \
             ln -s '{other_dir}/stdout' other-stdout; \
             ln '{}' hard-link; \
             echo inside > plain; ls",
            outside.display()
        ),
    );
    let job = wait_ended(c, id, PATIENCE);
    assert_eq!(job["state"], "FINISHED", "{job}");
    let listing = job_file(c, id, "stdout");
    assert!(listing.contains("hard-link"), "{listing}");
    let ids = id.to_string();

    let out = client_ok(c, &["get-file", "-i", &ids, "--path", "plain"]);
    assert_eq!(out, "inside\n");
    for name in [
        "passwd-link",
        "other-stdout",
        "hard-link",
        "root-link/etc/passwd",
    ] {
        let out = client(c, &["get-file", "-i", &ids, "--path", name]);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{name} was served");
        assert!(!text(&out.stdout).contains("root:"), "{name}");
        assert!(!text(&out.stdout).contains("outside"), "{name}");
        assert!(!text(&out.stdout).contains("other-job-output"), "{name}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
        let saved = dir.path().join(format!("dl-{}", name.replace('/', "_")));
        std::fs::create_dir_all(&saved).unwrap();
        let out = client(
            c,
            &[
                "get-file",
                "-i",
                &ids,
                "--path",
                name,
                "--binary",
                "-R",
                saved.to_str().unwrap(),
            ],
        );
        assert_ne!(out.status.code(), Some(0), "download of {name} succeeded");
    }
    let out = client(c, &["list-files", "-i", &ids, "--path", "root-link"]);
    assert!(
        out.status.code() != Some(0) || !text(&out.stdout).contains("etc"),
        "list-files followed a link: {}",
        text(&out.stdout)
    );
    // The directory listing itself still works.
    let out = client_ok(c, &["list-files", "-i", &ids]);
    assert!(out.contains("plain"), "{out}");
}
