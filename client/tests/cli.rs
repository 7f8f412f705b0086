//! The real `retz-client` and `retz-admin` binaries against the fake server of
//! `common`: every subcommand's output and exit code, and the error lines.

mod common;

use common::*;
use retz_proto::api::JobState;
use sha2::{Digest, Sha256};

fn one_line(s: &str) -> bool {
    s.trim_end().lines().count() == 1
}

#[test]
fn config_prints_the_masked_config_and_its_file() {
    let f = Fake::start();
    let o = f.client(&["config"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains(&f.url()) && o.stdout.contains("********"),
        "{o:?}"
    );
    assert!(!o.stdout.contains(SECRET), "{o:?}");
    let o = f.client(&["config", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["access_key"], KEY);
}

#[test]
fn original_properties_file_is_accepted() {
    let f = Fake::start();
    let p = f.dir.path().join("retz.properties");
    std::fs::write(
        &p,
        format!(
            "retz.server.uri = {}\nretz.access.key = {KEY}\nretz.access.secret = {SECRET}\n",
            f.url()
        ),
    )
    .unwrap();
    let o = run_bin(env!("CARGO_BIN_EXE_retz-client"), Some(&p), &["list"], None);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.starts_with("TaskId"), "{o:?}");
}

#[test]
fn config_from_the_environment_variable() {
    let f = Fake::start();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_retz-client"))
        .arg("config")
        .env("RETZ_CLIENT_CONFIG", f.config())
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains(&f.url()));
    // and a missing config is exit 3 with what was tried
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_retz-client"))
        .arg("list")
        .env_remove("RETZ_CLIENT_CONFIG")
        .env("HOME", "/nonexistent-home")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("no client config found") && one_line(&err),
        "{err}"
    );
}

#[test]
fn schedule_sends_ranges_env_tags_and_prints_the_id() {
    let f = Fake::start();
    let o = f.client(&[
        "schedule",
        "-A",
        "app",
        "-cmd",
        "echo $RETZ_CPU",
        "-cpu",
        "2-4",
        "-mem",
        "512-",
        "-E",
        "ARGS=--x=$RETZ_CPU",
        "-E",
        "EMPTY=",
        "--tags",
        "a,b",
        "--affinity",
        "numa-strict",
        "--priority",
        "-5",
        "-N",
        "nm",
        "--retries",
        "2",
        "--retry-on-failure",
        "-gpu",
        "1",
        "-ports",
        "3",
        "--disk",
        "64",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        o.stdout,
        "Job (id=1): ok registered at 2026-11-22T07:30:00.000+00:00\n"
    );
    let body = f.state.lock().unwrap().bodies.last().cloned().unwrap();
    let job = &body["job"];
    assert_eq!(job["cmd"], "echo $RETZ_CPU");
    assert_eq!(job["resources"]["cpu"], "2-4");
    assert_eq!(job["resources"]["memMB"], "512-");
    assert_eq!(job["resources"]["gpu"], 1);
    assert_eq!(job["resources"]["ports"], 3);
    assert_eq!(job["resources"]["diskMB"], 64);
    assert_eq!(job["props"]["ARGS"], "--x=$RETZ_CPU");
    assert_eq!(job["props"]["EMPTY"], "");
    assert_eq!(job["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(job["affinity"], "numa-strict");
    assert_eq!(job["priority"], -5);
    assert_eq!(job["name"], "nm");
    assert_eq!(job["maxRetries"], 2);
    assert_eq!(job["retryOnFailure"], true);

    let o = f.client(&["schedule", "-A", "app", "-c", "true", "--quiet"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "2\n"), "{o:?}");
    let o = f.client(&["schedule", "-A", "app", "-c", "true", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["id"], 3);
    // only one POST /job per schedule
    let posts = f
        .log()
        .iter()
        .filter(|l| l.starts_with("POST /job"))
        .count();
    assert_eq!(posts, 3);
}

#[test]
fn schedule_refused_by_the_server_exits_1_with_its_message() {
    let f = Fake::start();
    let o = f.client(&["schedule", "-A", "nope", "-c", "true"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("No such application: nope") && o.stderr.contains("404"),
        "{o:?}"
    );
    assert!(
        o.stderr.starts_with("retz-client: ") && one_line(&o.stderr),
        "{o:?}"
    );
}

#[test]
fn list_shows_a_table_sorted_by_id_and_json() {
    let f = Fake::start();
    f.add_job(3, JobState::Started, &["t"]);
    f.add_job(1, JobState::Queued, &[]);
    f.add_job(2, JobState::Finished, &["t"]);
    let o = f.client(&["list"]);
    assert_eq!(o.code, 0, "{o:?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("TaskId  State") && lines[0].contains("Cpuset"),
        "{o:?}"
    );
    assert_eq!(lines.len(), 3, "{o:?}");
    assert!(
        lines[1].starts_with("1 ") && lines[2].starts_with("3 "),
        "{o:?}"
    );
    let o = f.client(&["list", "--states", "ALL", "--json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        v.iter()
            .map(|j| j["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let o = f.client(&["list", "--state", "FINISHED", "--json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v.len(), 1);
    let o = f.client(&["list", "--states", "ALL", "--tag", "t", "--json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v.len(), 2);
    let o = f.client(&["list", "--states", "RUNNING"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("unknown job state"), "{o:?}");
}

#[test]
fn get_job_shows_one_job_or_says_there_is_none() {
    let f = Fake::start();
    f.add_job(4, JobState::Queued, &["x"]);
    let o = f.client(&["get-job", "-id", "4"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains("state") && o.stdout.contains("QUEUED"),
        "{o:?}"
    );
    let o = f.client(&["get-job", "-i", "4", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["job"]["id"], 4);
    let o = f.client(&["get-job", "--id", "99"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("no job 99") && one_line(&o.stderr),
        "{o:?}"
    );
}

#[test]
fn get_file_prints_ranges_and_saves_to_a_directory() {
    let f = Fake::start();
    f.add_job(1, JobState::Finished, &[]);
    f.add_file(1, "stdout", b"0123456789");
    let o = f.client(&["get-file", "-i", "1"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "0123456789"), "{o:?}");
    let o = f.client(&["get-file", "-i", "1", "--offset", "2", "--length", "3"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "234"), "{o:?}");
    let o = f.client(&["get-file", "-i", "1", "--offset", "8", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["file"]["data"], "89");
    let out = f.dir.path().join("res");
    let o = f.client(&["get-file", "-i", "1", "-R", out.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(std::fs::read(out.join("stdout")).unwrap(), b"0123456789");
    let o = f.client(&["get-file", "-i", "1", "--path", "nothere"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("no file \"nothere\""), "{o:?}");
}

#[test]
fn get_file_poll_follows_a_growing_file_until_the_job_ends() {
    let f = Fake::start();
    let o = f.client(&["schedule", "-A", "app", "-c", "work pieces 4 exit 0", "-q"]);
    assert_eq!(o.code, 0, "{o:?}");
    // make it start
    f.client(&["get-job", "-i", "1"]);
    f.client(&["get-job", "-i", "1"]);
    let o = f.client(&["get-file", "-i", "1", "--poll"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "line 1\nline 2\nline 3\nline 4\n");
    // it read from increasing offsets
    let offsets: Vec<String> = f
        .log()
        .iter()
        .filter(|l| l.starts_with("GET /job/1/file"))
        .map(|l| {
            l.split("offset=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        offsets
            .windows(2)
            .all(|w| w[0].parse::<u64>().unwrap() <= w[1].parse::<u64>().unwrap()),
        "{offsets:?}"
    );
    let o = f.client(&["get-job", "-i", "1", "--json"]);
    assert!(o.stdout.contains("FINISHED"), "{o:?}");
}

#[test]
fn binary_downloads_keep_their_bytes_for_awkward_names() {
    let f = Fake::start();
    f.add_job(1, JobState::Finished, &[]);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let out = f.dir.path().join("dl");
    for name in ["with space.bin", "a+b.bin", "日本語 ü.bin", "dir/x y+z.dat"] {
        f.add_file(1, name, &data);
        let o = f.client(&[
            "get-file",
            "-i",
            "1",
            "--path",
            name,
            "--binary",
            "-R",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.code, 0, "{name}: {o:?}");
        let base = std::path::Path::new(name).file_name().unwrap();
        let got = std::fs::read(out.join(base)).unwrap();
        assert_eq!(Sha256::digest(&got), Sha256::digest(&data), "{name}");
    }
    let o = f.client(&["get-file", "-i", "1", "--binary"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("needs -R"), "{o:?}");
    let o = f.client(&[
        "get-file",
        "-i",
        "1",
        "--path",
        "missing",
        "--binary",
        "-R",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("missing not found"), "{o:?}");
}

#[test]
fn get_file_reproduces_any_bytes() {
    let f = Fake::start();
    f.add_job(1, JobState::Finished, &[]);
    // 日 at offset 65,535, cut by the client's 64 KiB pieces; then every byte value
    let mut data = vec![b'a'; 65535];
    data.extend_from_slice("日本".as_bytes());
    data.extend((0..=255u8).cycle().take(70_000));
    data.extend_from_slice("ジョブ終了\n".as_bytes());
    f.add_file(1, "mixed", &data);
    let out = f.dir.path().join("got");
    for extra in [&[][..], &["--poll"][..]] {
        let mut args = vec!["get-file", "-i", "1", "--path", "mixed", "-R"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        let o = f.client(&args);
        assert_eq!(o.code, 0, "{extra:?}: {o:?}");
        assert!(
            std::fs::read(out.join("mixed")).unwrap() == data,
            "{extra:?}"
        );
    }
    // and from an offset inside a character, for a length
    let o = f.client(&[
        "get-file",
        "-i",
        "1",
        "--path",
        "mixed",
        "--offset",
        "65536",
        "--length",
        "60000",
        "-R",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let got = std::fs::read(out.join("mixed")).unwrap();
    assert_eq!(got.len(), 60000);
    assert!(got == data[65536..125536]);
}

#[test]
fn a_failed_download_leaves_no_partial_file() {
    let f = Fake::start();
    f.add_job(1, JobState::Finished, &[]);
    f.add_file(1, "cut.short", &[5u8; 70_000]);
    f.add_file(1, "kept.short", &[6u8; 100]);
    let out = f.dir.path().join("dl");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("kept.short"), b"the old content").unwrap();
    for name in ["cut.short", "kept.short"] {
        let o = f.client(&[
            "get-file",
            "-i",
            "1",
            "--path",
            name,
            "--binary",
            "-R",
            out.to_str().unwrap(),
        ]);
        assert_ne!(o.code, 0, "{name}: {o:?}");
    }
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["kept.short"], "no partial file, no temporary file");
    assert_eq!(
        std::fs::read(out.join("kept.short")).unwrap(),
        b"the old content"
    );
    // a complete download replaces it
    f.add_file(1, "kept.short.ok", &[7u8; 10]);
    let o = f.client(&[
        "get-file",
        "-i",
        "1",
        "--path",
        "kept.short.ok",
        "--binary",
        "-R",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(std::fs::read(out.join("kept.short.ok")).unwrap(), [7u8; 10]);
}

#[test]
fn list_files_kill_and_killall() {
    let f = Fake::start();
    f.add_job(1, JobState::Started, &["batch"]);
    f.add_job(2, JobState::Queued, &["batch"]);
    f.add_job(3, JobState::Queued, &["other"]);
    f.add_file(1, "stdout", b"abc");
    let o = f.client(&["list-files", "-i", "1"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.starts_with("gid") && o.stdout.contains("/sandbox/stdout"),
        "{o:?}"
    );
    let o = f.client(&["list-files", "-i", "1", "--json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["size"], 3);
    assert!(
        f.log()
            .iter()
            .any(|l| l == "GET /job/1/dir?path=%24MESOS_SANDBOX"),
        "{:?}",
        f.log()
    );

    let o = f.client(&["killall", "--tag", "batch"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "Job (id=1): KILLED\nJob (id=2): KILLED\n");
    let o = f.client(&["kill", "-id", "3"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "Job (id=3): KILLED\n"),
        "{o:?}"
    );
    let o = f.client(&["kill", "-id", "42"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("No such job: 42"), "{o:?}");
}

#[test]
fn applications_load_get_list_unload() {
    let f = Fake::start();
    let o = f.client(&[
        "load-app",
        "-A",
        "myapp",
        "-F",
        "http://h/a.tgz",
        "-L",
        "http://h/big.tgz",
        "--grace-period",
        "30",
        "--affinity",
        "spread",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = f.client(&["get-app", "-A", "myapp"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["files"][0], "http://h/a.tgz");
    assert_eq!(v["largeFiles"][0], "http://h/big.tgz");
    assert_eq!(v["owner"], KEY);
    assert_eq!(v["gracePeriod"], 30);
    assert_eq!(v["affinity"], "spread");
    let o = f.client(&["list-app"]);
    assert!(
        o.stdout.starts_with("AppName") && o.stdout.contains("myapp"),
        "{o:?}"
    );
    let o = f.client(&["list-app", "--json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v.len(), 1);
    let o = f.client(&["unload-app", "-A", "myapp"]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = f.client(&["get-app", "-A", "myapp"]);
    assert_eq!(o.code, 1, "{o:?}");
    let o = f.client(&["load-app", "-A", "x", "-U", "root"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("root") && one_line(&o.stderr), "{o:?}");
}

#[test]
fn run_streams_stdout_and_exits_with_the_jobs_code() {
    let f = Fake::start();
    let o = f.client(&["run", "-A", "app", "-c", "work pieces 3 exit 3", "-stderr"]);
    assert_eq!(o.code, 3, "{o:?}");
    assert_eq!(o.stdout, "line 1\nline 2\nline 3\n");
    assert!(o.stderr.contains("some warnings"), "{o:?}");
    // no progress line when stderr is not a terminal
    assert!(!o.stderr.contains("position"), "{o:?}");
    let o = f.client(&["run", "-A", "app", "-c", "work pieces 1 exit 0"]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (0, "line 1\n", ""),
        "{o:?}"
    );
}

#[test]
fn run_reads_the_command_from_stdin() {
    let f = Fake::start();
    let o = run_bin(
        env!("CARGO_BIN_EXE_retz-client"),
        Some(&f.config()),
        &["run", "-A", "app", "-c", "-"],
        Some("work pieces 1 exit 7\n"),
    );
    assert_eq!(o.code, 7, "{o:?}");
    let body = f.state.lock().unwrap().bodies[0].clone();
    assert_eq!(body["job"]["cmd"], "work pieces 1 exit 7");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let f = Fake::start();
    for (args, want) in [
        (&["frobnicate"][..], "unrecognized subcommand"),
        (
            &["schedule", "-A", "app", "-c", "x", "-cpu", "4-2"],
            "below minimum",
        ),
        (
            &["schedule", "-A", "app", "-c", "x", "-E", "=v"],
            "empty name",
        ),
        (&["schedule", "-A", "app"], "--command"),
        (&["get-job"], "--id"),
        (
            &["run", "-A", "app", "-c", "x", "--priority", "50"],
            "outside",
        ),
    ] {
        let o = f.client(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains(want), "{args:?}: {o:?}");
        assert!(
            o.stderr.starts_with("retz-client: ") && one_line(&o.stderr),
            "{o:?}"
        );
    }
    assert!(f.log().is_empty(), "nothing sent: {:?}", f.log());
}

#[test]
fn unreachable_server_exits_3_with_what_to_do() {
    let f = Fake::start();
    // a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = f.dir.path().join("dead.toml");
    std::fs::write(
        &p,
        format!("server = \"http://127.0.0.1:{port}\"\naccess_key = \"k\"\nsecret = \"s\"\n"),
    )
    .unwrap();
    let o = run_bin(env!("CARGO_BIN_EXE_retz-client"), Some(&p), &["list"], None);
    assert_eq!(o.code, 3, "{o:?}");
    assert!(
        o.stderr.contains("cannot reach") && o.stderr.contains("is retz-server running"),
        "{o:?}"
    );
    assert!(one_line(&o.stderr), "{o:?}");
}

#[test]
fn wrong_secret_exits_1_with_the_servers_message() {
    let f = Fake::start();
    let p = f.write_config("wrong.toml", KEY, "not-the-secret");
    let o = run_bin(env!("CARGO_BIN_EXE_retz-client"), Some(&p), &["list"], None);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains("Authentication failed") && o.stderr.contains("401"),
        "{o:?}"
    );
    assert!(one_line(&o.stderr), "{o:?}");
}

#[test]
fn status_help_and_completions() {
    let f = Fake::start();
    let o = f.client(&["status"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("queued 1"), "{o:?}");
    let o = f.client(&["--help"]);
    assert_eq!(o.code, 0);
    assert!(
        o.stdout.contains("Exit status") && o.stdout.contains("get-file"),
        "{o:?}"
    );
    for sub in [
        "config",
        "list",
        "schedule",
        "plan",
        "run",
        "get-job",
        "get-file",
        "list-files",
        "kill",
        "killall",
        "load-app",
        "get-app",
        "list-app",
        "unload-app",
        "status",
        "completions",
    ] {
        let o = f.client(&[sub, "--help"]);
        assert_eq!(o.code, 0, "{sub}: {o:?}");
        assert!(o.stdout.contains("Usage:"), "{sub}: {o:?}");
    }
    let o = f.client(&["completions", "bash"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.contains("retz-client") && o.stdout.contains("get-file"),
        "{o:?}"
    );
    let o = f.client(&[]);
    assert_eq!(o.code, 2, "{o:?}");
}

#[test]
fn admin_creates_a_user_whose_config_retz_client_accepts() {
    let f = Fake::start();
    let o = f.admin(&["create-user", "--info", "alice"]);
    assert_eq!(o.code, 0, "{o:?}");
    let p = f.dir.path().join("alice.toml");
    std::fs::write(&p, &o.stdout).unwrap();
    let o2 = run_bin(env!("CARGO_BIN_EXE_retz-client"), Some(&p), &["list"], None);
    assert_eq!(o2.code, 0, "{o:?} {o2:?}");
    let key = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("access_key = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let o = f.admin(&["list-user"]);
    assert!(
        o.stdout.starts_with("KeyId") && o.stdout.contains(&key),
        "{o:?}"
    );
    let o = f.admin(&["get-user", "-id", &key, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["info"], "alice");
    let o = f.admin(&["disable-user", "-id", &key]);
    assert_eq!(o.code, 0, "{o:?}");
    let o2 = run_bin(env!("CARGO_BIN_EXE_retz-client"), Some(&p), &["list"], None);
    assert_eq!(o2.code, 1, "{o2:?}");
    assert!(o2.stderr.contains("User disabled"), "{o2:?}");
    let o = f.admin(&["enable-user", "-id", &key]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = f.admin(&["get-user", "-id", "nobody"]);
    assert_eq!(o.code, 1, "{o:?}");
    // a non-admin key is refused
    let o = run_bin(
        env!("CARGO_BIN_EXE_retz-admin"),
        Some(&f.config()),
        &["list-user"],
        None,
    );
    assert_eq!(o.code, 1, "{o:?}");
}

#[test]
fn admin_usage_and_gc() {
    let f = Fake::start();
    f.add_job(1, JobState::Finished, &[]);
    f.state.lock().unwrap().jobs.get_mut(&1).unwrap().finished =
        Some("2026-11-22T08:00:00.000+00:00".into());
    let o = f.admin(&["usage", "--start", "2026-11-22", "--end", "2026-11-23"]);
    assert_eq!(o.code, 0, "{o:?}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v.len(), 1);
    assert!(
        f.log()
            .iter()
            .any(|l| l == "GET /admin/usage?start=2026-11-22&end=2026-11-23")
    );
    let o = f.admin(&["usage", "--start", "2026-11-23"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    assert!(v.is_empty());
    let o = f.admin(&["gc", "-leeway", "60"]);
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "deleted 1 jobs\n"),
        "{o:?}"
    );
    let o = f.admin(&["gc"]);
    assert_eq!(o.code, 2, "{o:?}");
}

#[test]
fn run_kills_the_job_at_the_timeout() {
    let f = Fake::start();
    // 0.02 min = 1.2 s; the job never ends
    let o = f.client(&[
        "run",
        "-A",
        "app",
        "-c",
        "forever pieces 1",
        "--timeout",
        "0.02",
    ]);
    assert_eq!(o.code, 255, "{o:?}");
    assert_eq!(o.stdout, "line 1\n");
    assert!(
        o.stderr.contains("did not end within 0.02 min") && one_line(&o.stderr),
        "{o:?}"
    );
    assert!(
        f.log().iter().any(|l| l == "DELETE /job/1"),
        "{:?}",
        f.log()
    );
    let o = f.client(&["get-job", "-i", "1", "--json"]);
    assert!(o.stdout.contains("KILLED"), "{o:?}");
}

#[test]
fn run_shows_queue_position_and_pending_reason_on_a_terminal() {
    let ci = retz_testkit::under_ci();
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !ci,
            "script(1) (util-linux) is needed to give the client a terminal"
        );
        eprintln!("skipped: script(1) not installed, cannot give the client a terminal");
        return;
    }
    let f = Fake::start();
    let cmd = format!(
        "{} -C {} run -A app -c 'work pieces 1 exit 0'",
        env!("CARGO_BIN_EXE_retz-client"),
        f.config().display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("job 1 QUEUED, position 1 in the queue"),
        "{text}"
    );
    assert!(
        text.contains("waiting for 2 free CPUs on one NUMA node"),
        "{text}"
    );
    assert!(text.contains("line 1"), "{text}");
}
