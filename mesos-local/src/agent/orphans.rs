//! Killing what an executor that did not survive an agent restart left running: its
//! tasks live in cgroups the executor made under its scope `<own cgroup>/retz/<key>` in
//! each hierarchy (`<key>` = `<framework id>_<executor id>`, escaped as the executor does;
//! see `retz-executor`'s cgroup module), so a retry of those tasks never runs beside an
//! orphan. cgroup v2: `cgroup.kill` (or SIGKILL to every member when the kernel has no
//! `cgroup.kill`); cgroup v1: the freezer scope is frozen, every member SIGKILLed, then
//! thawed, and the members of the cpuset and memory scopes are SIGKILLed until none is
//! left.
//!
//! The executor's own process group is killed too ([`super::process::signal_group`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// The directory name the executor gives its cgroup scope for `fid`/`eid`: ASCII
/// letters, digits, `_`, `-` and a non-leading `.` kept, every other byte `%XX`.
pub fn scope_key(fid: &str, eid: &str) -> String {
    let id = format!("{fid}_{eid}");
    let mut key = String::with_capacity(id.len());
    for (i, b) in id.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            key.push(b as char);
        } else {
            key.push_str(&format!("%{b:02X}"));
        }
    }
    key
}

/// The executor scopes named `key` that exist under `root` (`/sys/fs/cgroup`): in every
/// v1 hierarchy and the v2 one, under this process's own cgroup and under the root.
pub fn scopes(root: &Path, key: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut mounts: Vec<(PathBuf, String)> = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let rel = path.trim_start_matches('/').to_string();
        if controllers.is_empty() {
            mounts.push((root.to_path_buf(), rel.clone()));
            mounts.push((root.join("unified"), rel));
        } else {
            for c in controllers.split(',') {
                let name = c.trim_start_matches("name=");
                mounts.push((root.join(name), rel.clone()));
            }
        }
    }
    for h in ["cpuset", "memory", "freezer"] {
        mounts.push((root.join(h), String::new()));
    }
    mounts.push((root.to_path_buf(), String::new()));
    let mut out: Vec<PathBuf> = Vec::new();
    for (mount, rel) in mounts {
        let base = if rel.is_empty() {
            mount
        } else {
            mount.join(rel)
        };
        let scope = base.join("retz").join(key);
        if scope.is_dir() && !out.contains(&scope) {
            out.push(scope);
        }
    }
    out
}

/// `dir` and every cgroup below it, deepest first.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(tree(&e.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

fn members(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn kill_members(dir: &Path) -> usize {
    let pids = members(dir);
    for &pid in &pids {
        if pid > 1 {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    pids.len()
}

/// Kills every process in the scopes of `fid`/`eid` under `root` and removes the task
/// cgroups; returns how many processes were signalled. Waits up to `limit` for the
/// cgroups to empty.
pub fn kill_scopes(root: &Path, fid: &str, eid: &str, limit: Duration) -> usize {
    let key = scope_key(fid, eid);
    let scopes = scopes(root, &key);
    let mut killed = 0;
    for scope in &scopes {
        for dir in tree(scope) {
            let frozen = dir.join("freezer.state").is_file()
                && std::fs::write(dir.join("freezer.state"), "FROZEN").is_ok();
            if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                killed += members(&dir).len();
            }
            killed += kill_members(&dir);
            if frozen {
                let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
            }
        }
    }
    let deadline = Instant::now() + limit;
    for scope in &scopes {
        for dir in tree(scope) {
            while !members(&dir).is_empty() && Instant::now() < deadline {
                kill_members(&dir);
                std::thread::sleep(Duration::from_millis(20));
            }
            if dir != *scope {
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
    if killed > 0 {
        tracing::warn!(
            framework = fid,
            executor = eid,
            killed,
            "killed the tasks a lost executor left behind"
        );
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escape_as_the_executor_does() {
        assert_eq!(scope_key("F-1", "e.x"), "F-1_e.x");
        assert_eq!(scope_key(".a", "b/c d"), "%2Ea_b%2Fc%20d");
    }

    #[test]
    fn scopes_are_found_under_a_fake_root() {
        let root = tempfile::tempdir().unwrap();
        let scope = root.path().join("cpuset/retz/F_E");
        std::fs::create_dir_all(scope.join("task1")).unwrap();
        std::fs::write(scope.join("task1/cgroup.procs"), "").unwrap();
        assert_eq!(scopes(root.path(), "F_E"), vec![scope]);
        assert!(scopes(root.path(), "other").is_empty());
        // Nothing to kill: empty members; the task cgroup (a plain dir here) stays because
        // it holds a file, as a real cgroupfs directory would not.
        assert_eq!(kill_scopes(root.path(), "F", "E", Duration::ZERO), 0);
    }
}
