//! Sandbox layout of an agent, as Mesos lays it out on disk.
//!
//! ```text
//! <work_dir>/slaves/<agent id>/frameworks/<framework id>/executors/<executor id>/runs/<container id>
//! <work_dir>/slaves/<agent id>/frameworks/<framework id>/executors/<executor id>/runs/latest -> <container id>
//! ```
//!
//! The same run directory is also reachable through the virtual path
//! `/frameworks/<fid>/executors/<eid>/runs/latest` (see [`virtual_run_path`]).
//!
//! Invariants: every id that becomes a path component passed [`validate_id`] first, so no
//! id can climb out of its parent directory; every directory the agent creates on the way
//! to a sandbox (work dir ancestors, `slaves/...`, `runs/<container id>`) is mode 0755
//! whatever the umask ([`create_dirs`]), so that the users jobs run as can traverse to
//! their sandboxes (an executor restricts its own run dir afterwards).

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The name of the symlink to the newest run of an executor.
pub const LATEST: &str = "latest";

/// Why an id cannot name a directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {id:?}: {why}")]
pub struct InvalidId {
    /// `framework`, `executor`, `task`, `container` or `agent`.
    pub kind: &'static str,
    /// The offending id.
    pub id: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Checks an id the way Mesos does before it becomes a path component: not empty, not
/// `.` or `..`, no `/`, no NUL or other control character.
pub fn validate_id(kind: &'static str, id: &str) -> Result<(), InvalidId> {
    let why = if id.is_empty() {
        "it is empty"
    } else if id == "." || id == ".." {
        "it is '.' or '..'"
    } else if id.contains('/') {
        "it contains '/'"
    } else if id.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(InvalidId {
        kind,
        id: id.to_string(),
        why,
    })
}

/// `<work_dir>/slaves/<agent id>`: everything the agent may serve lives below it.
pub fn agent_dir(work_dir: &Path, agent_id: &str) -> PathBuf {
    work_dir.join("slaves").join(agent_id)
}

/// `<work_dir>/slaves/<aid>/frameworks/<fid>/executors/<eid>/runs`.
pub fn runs_dir(work_dir: &Path, agent_id: &str, framework_id: &str, executor_id: &str) -> PathBuf {
    agent_dir(work_dir, agent_id)
        .join("frameworks")
        .join(framework_id)
        .join("executors")
        .join(executor_id)
        .join("runs")
}

/// The run directory (the sandbox) of one container of an executor.
pub fn run_dir(
    work_dir: &Path,
    agent_id: &str,
    framework_id: &str,
    executor_id: &str,
    container_id: &str,
) -> PathBuf {
    runs_dir(work_dir, agent_id, framework_id, executor_id).join(container_id)
}

/// The virtual path of the newest sandbox of an executor, as `/files/*` accept it.
pub fn virtual_run_path(framework_id: &str, executor_id: &str) -> String {
    format!("/frameworks/{framework_id}/executors/{executor_id}/runs/{LATEST}")
}

/// Where the per-agent fetcher cache lives: `<work_dir>/fetch/slaves/<agent id>`.
pub fn fetch_cache_dir(work_dir: &Path, agent_id: &str) -> PathBuf {
    work_dir.join("fetch").join("slaves").join(agent_id)
}

/// Creates `dir` and its missing ancestors, each mode 0755 (set explicitly, so the umask
/// does not narrow it); existing directories are left as they are.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dirs(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the run directory of a new container (and its ancestors, see
/// [`create_dirs`]) and points `runs/latest` at it (replacing the link atomically).
/// Returns the run directory.
pub fn create_run_dir(
    work_dir: &Path,
    agent_id: &str,
    framework_id: &str,
    executor_id: &str,
    container_id: &str,
) -> io::Result<PathBuf> {
    let runs = runs_dir(work_dir, agent_id, framework_id, executor_id);
    let dir = runs.join(container_id);
    create_dirs(&dir)?;
    let tmp = runs.join(format!(".{LATEST}.{container_id}"));
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(container_id, &tmp)?;
    std::fs::rename(&tmp, runs.join(LATEST))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_escape_are_refused() {
        for bad in ["", ".", "..", "a/b", "/", "a\0b", "a\nb"] {
            assert!(validate_id("executor", bad).is_err(), "{bad:?}");
        }
        for good in ["a", "task-1", "..a", "a..", "x y", "0000-S0"] {
            assert!(validate_id("executor", good).is_ok(), "{good:?}");
        }
        let e = validate_id("task", "a/b").unwrap_err();
        assert_eq!(e.to_string(), "invalid task id \"a/b\": it contains '/'");
    }

    #[test]
    fn layout_is_the_mesos_one() {
        let d = run_dir(Path::new("/w"), "M-S0", "M-0000", "e1", "c1");
        assert_eq!(
            d,
            Path::new("/w/slaves/M-S0/frameworks/M-0000/executors/e1/runs/c1")
        );
        assert_eq!(
            virtual_run_path("M-0000", "e1"),
            "/frameworks/M-0000/executors/e1/runs/latest"
        );
    }

    #[test]
    fn created_directories_are_traversable_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let made = create_run_dir(tmp.path(), "A", "F", "E", "c1");
        nix::sys::stat::umask(old);
        let run = made.unwrap();
        let mut d = run.as_path();
        while d != tmp.path() {
            let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{}", d.display());
            d = d.parent().unwrap();
        }
    }

    #[test]
    fn latest_follows_the_newest_run() {
        let tmp = tempfile::tempdir().unwrap();
        let a = create_run_dir(tmp.path(), "A", "F", "E", "c1").unwrap();
        std::fs::write(a.join("f"), "one").unwrap();
        let latest = runs_dir(tmp.path(), "A", "F", "E").join(LATEST);
        assert_eq!(std::fs::read_to_string(latest.join("f")).unwrap(), "one");
        let b = create_run_dir(tmp.path(), "A", "F", "E", "c2").unwrap();
        std::fs::write(b.join("f"), "two").unwrap();
        assert_eq!(std::fs::read_to_string(latest.join("f")).unwrap(), "two");
        assert_eq!(std::fs::read_link(&latest).unwrap(), Path::new("c2"));
    }
}
