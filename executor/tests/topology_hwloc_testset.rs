//! `retz-executor topology --xml FILE --agent-flags` on every file of hwloc's own test set
//! (`$RETZ_HWLOC_TESTSET`, fetched by `scripts/lib/hwloc_testset.sh`): exit 0 with exactly
//! the two flag lines and nothing on stderr, or exit 1 with one `retz-executor topology:`
//! line naming the file; a damaged copy of each file is always the latter. The flags'
//! contents are checked against hwloc in `topology/tests/hwloc_testset.rs`.

use std::path::Path;
use std::process::Command;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn topology_flags(path: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_retz-executor"))
        .arg("topology")
        .arg("--xml")
        .arg(path)
        .arg("--agent-flags")
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `Ok(true)`: flags; `Ok(false)`: one clear error line; `Err`: neither (a bug).
fn judge(run: &Run, path: &Path) -> Result<bool, String> {
    if run.code == Some(0) {
        let lines: Vec<&str> = run.stdout.lines().collect();
        let two_flags = lines.len() == 2
            && lines[0].starts_with("--resources='cpus:")
            && lines[0].contains("cpuids:[")
            && lines[1].starts_with("--attributes='retz_numa:v1;");
        return if two_flags && run.stderr.is_empty() {
            Ok(true)
        } else {
            Err(format!(
                "exit 0 but stdout {:?} stderr {:?}",
                run.stdout, run.stderr
            ))
        };
    }
    // hwloc itself may print its own critical error before ours; ours is one line, the last.
    let ours: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("retz-executor"))
        .collect();
    let last = run.stderr.lines().last().unwrap_or_default();
    if run.code == Some(1)
        && run.stdout.is_empty()
        && ours.len() == 1
        && ours[0] == last
        && last.starts_with("retz-executor topology: ")
        && last.contains(&path.display().to_string())
        && !run.stderr.contains("panicked")
    {
        Ok(false)
    } else {
        Err(format!(
            "exit {:?}, stdout {:?}, stderr {:?}",
            run.code, run.stdout, run.stderr
        ))
    }
}

#[test]
fn every_file_gives_two_flag_lines_or_one_error_line() {
    let Some(files) = retz_testkit::hwloc_testset() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut flags, mut refused, mut bugs) = (0, 0, Vec::new());
    for path in &files {
        match judge(&topology_flags(path), path) {
            Ok(true) => flags += 1,
            Ok(false) => refused += 1,
            Err(why) => bugs.push(format!("{}: {why}", path.display())),
        }
        let text = std::fs::read(path).unwrap();
        let damaged = dir.path().join(path.file_name().unwrap());
        std::fs::write(&damaged, &text[..text.len() / 3]).unwrap();
        match judge(&topology_flags(&damaged), &damaged) {
            Ok(false) => {}
            Ok(true) => bugs.push(format!("{}: a third of it gave flags", damaged.display())),
            Err(why) => bugs.push(format!("{}: {why}", damaged.display())),
        }
    }
    println!(
        "retz-executor topology on hwloc's test set: {} files, {flags} printed flags, {refused} refused",
        files.len()
    );
    assert!(bugs.is_empty(), "{}", bugs.join("\n"));
    assert!(flags > 0, "no file gave flags");
}

/// A reader that stops early (`retz-executor topology --xml F | head -1`) ends the command
/// quietly: no panic on the closed pipe.
#[test]
fn a_closed_output_pipe_is_not_a_panic() {
    let Some(files) = retz_testkit::hwloc_testset() else {
        return;
    };
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_retz-executor"))
        .arg("topology")
        .arg("--xml")
        .arg(&files[0])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
