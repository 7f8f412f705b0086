//! Job commands of an original Retz site on `retz-server --local`: a command relative to
//! the application's files (`-cmd 'bin/hello.sh'`) runs where they are, a file the job
//! writes beside them reads back with `get-file --path NAME`, and `$RETZ_MEM` is replaced
//! inside words (`-Xmx$RETZ_MEMm`) in `-E` values and in the command, as the original's
//! operations guide uses it.

use std::time::Duration;

use retz_e2e_tests::{Server, app_tarball, client_ok, job_file, schedule, wait_finished};

const LONG: Duration = Duration::from_secs(180);

#[test]
fn original_job_commands_run_as_the_guide_writes_them() {
    let dir = retz_e2e_tests::test_dir();
    let server = Server::start(&dir.path().join("data"), &["--local"]);
    let c = &server.client_config;
    let uri = app_tarball(
        dir.path(),
        b"#!/bin/sh\necho \"hello from $(pwd | sed 's,.*/tasks/,tasks/,')\"\n",
    );
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
    wait_finished(c, a, LONG);
    wait_finished(c, b, LONG);
    assert_eq!(job_file(c, a, "result.txt"), "A\n");
    assert_eq!(job_file(c, b, "result.txt"), "B\n");
    assert_eq!(job_file(c, b, "bin/added"), "new\n");
    assert!(job_file(c, a, "stdout").starts_with("hello from tasks/"));

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
    wait_finished(c, id, LONG);
    assert_eq!(
        job_file(c, id, "stdout"),
        "OPTS=-Xmx96m CMD=-Xmx96m BRACED=96m CPU=1s\n"
    );
}
