//! Job commands of an original Retz site on `retz-server --local`: a command relative to
//! the application's files (`-cmd 'bin/hello.sh'`) runs where they are, a file the job
//! writes beside them reads back with `get-file --path NAME`, and `$RETZ_MEM` is replaced
//! inside words (`-Xmx$RETZ_MEMm`) in `-E` values and in the command, as the original's
//! operations guide uses it.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use retz_e2e_tests::{Server, client_ok, job_json, wait_until};

const LONG: Duration = Duration::from_secs(180);

/// Writes `app.tar.gz` holding an executable `bin/hello.sh` and returns its file:// URI.
fn app_tarball(dir: &Path) -> String {
    let path = dir.join("app.tar.gz");
    let file = std::fs::File::create(&path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let script = b"#!/bin/sh\necho \"hello from $(pwd | sed 's,.*/tasks/,tasks/,')\"\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "bin/hello.sh", &script[..])
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
    format!("file://{}", path.display())
}

fn schedule(config: &Path, args: &[&str]) -> u64 {
    let mut all = vec!["schedule", "-q"];
    all.extend_from_slice(args);
    client_ok(config, &all)
        .trim()
        .parse()
        .expect("schedule -q prints the id")
}

/// Waits for `id` to end and asserts it FINISHED with 0.
fn finished(config: &Path, id: u64) {
    let job = wait_until(&format!("job {id} ends"), LONG, || {
        let j = job_json(config, id)["job"].take();
        matches!(j["state"].as_str(), Some("FINISHED" | "KILLED")).then_some(j)
    });
    assert_eq!(job["state"], "FINISHED", "{job}");
    assert_eq!(job["result"], 0, "{job}");
}

fn file(config: &Path, id: u64, path: &str) -> String {
    client_ok(config, &["get-file", "-i", &id.to_string(), "--path", path])
}

#[test]
fn original_job_commands_run_as_the_guide_writes_them() {
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    let uri = app_tarball(dir.path());
    client_ok(c, &["load-app", "-A", "hello", "-F", &uri]);

    // A command relative to the application's files, in the task's own directory.
    let out = client_ok(c, &["run", "-A", "hello", "-cmd", "bin/hello.sh"]);
    assert!(out.contains("hello from tasks/"), "{out}");

    // Two jobs of the same application: each writes beside the application's files in
    // its own directory, and reads back only its own.
    let a = schedule(
        c,
        &["-A", "hello", "-cmd", "bin/hello.sh && echo A > result.txt"],
    );
    let b = schedule(
        c,
        &[
            "-A",
            "hello",
            "-cmd",
            "echo B > result.txt; echo new > bin/added",
        ],
    );
    finished(c, a);
    finished(c, b);
    assert_eq!(file(c, a, "result.txt"), "A\n");
    assert_eq!(file(c, b, "result.txt"), "B\n");
    assert_eq!(file(c, b, "bin/added"), "new\n");
    assert!(file(c, a, "stdout").starts_with("hello from tasks/"));

    // `$RETZ_MEM` inside a word, in an -E value and in the command; braces still work.
    let id = schedule(
        c,
        &[
            "-A",
            "hello",
            "-mem",
            "96",
            "-E",
            "YAESS_OPTS=-Xmx$RETZ_MEMm",
            "-cmd",
            "echo \"OPTS=$YAESS_OPTS CMD=-Xmx$RETZ_MEMm BRACED=${RETZ_MEM}m CPU=$RETZ_CPUs\"",
        ],
    );
    finished(c, id);
    assert_eq!(
        file(c, id, "stdout"),
        "OPTS=-Xmx96m CMD=-Xmx96m BRACED=96m CPU=1s\n"
    );
}
