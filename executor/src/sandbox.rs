//! The executor's sandbox: the application directory kept across tasks, and one working
//! directory per task.
//!
//! ```text
//! $MESOS_SANDBOX/
//!   <artifacts fetched by the agent>      the executor's CommandInfo URIs
//!   app/<name>/                           RETZ_PVNAME: artifacts unpacked once
//!   app/<name>/.retz-unpacked             completion marker
//!   tasks/<task-key>/                     one per task: its working directory, with
//!     {stdout,stderr}                     its own outputs and the application's tree
//!     bin/..., lib/...                    laid out again (see [`view`])
//! ```
//! Invariants: an application directory is visible under its final name only when it is
//! complete. It is built in `app/.<name>.partial`, the marker written last, then renamed
//! into place; a crash mid-way leaves only the partial directory, which the next attempt
//! deletes and rebuilds. Archives are unpacked with [`crate::archive`] (traversal
//! refused); other artifacts are hard-linked (or copied). Callers serialise
//! [`Sandbox::prepare_app`] per application (the runtime holds a lock per name).
//!
//! Task ids become directory (and cgroup) names through [`task_key`], an injective escape
//! that keeps `[A-Za-z0-9_.-]` and writes other bytes as `%XX`.
//!
//! Ownership and modes (the job runs as its own unprivileged user, see
//! [`crate::identity`]):
//! - the sandbox root (the agent's run directory) is set by [`Sandbox::claim`], at the
//!   executor's first task, to the executor's user (root) and the job's group, mode 0750:
//!   the job can enter it, other users cannot;
//! - `app/` and `app/<name>/` belong to the executor: directories 0755, files 0644 or
//!   0755 (no group/other write, no set-id bits, whatever the archive said), so the job
//!   reads its application but cannot change it;
//! - `tasks/` is 0755 and the executor's; `tasks/<key>/` is the job user's, mode 0700,
//!   with `stdout` and `stderr` the job user's, mode 0600, created without following
//!   symlinks. It is the task's working directory, as the Mesos sandbox was the original
//!   Retz's: the application's directories are laid out again there as the job user's
//!   (it may write in them), its files are hard links to the read-only shared copy
//!   ([`view`]). A relaunch of a task id starts from a fresh directory.
//!
//! Modes are set with `std::fs`; ownership goes through [`Sys::chown`] (recorded by the
//! fake kernel, so none of this needs root in tests).

use std::fs::{OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

pub mod view;

use crate::archive::{self, ArchiveError};
use crate::spec::is_safe_component;
use crate::sys::Sys;

/// The owner of a task's directory and output files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Name of the completion marker inside an application directory.
pub const MARKER: &str = ".retz-unpacked";

/// The executor's sandbox directory and the artifacts the agent fetched into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    root: PathBuf,
    artifacts: Vec<PathBuf>,
}

/// A prepared application directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDir {
    /// Its path (`RETZ_PVNAME`).
    pub path: PathBuf,
    /// Whether it was already there (a later task of the application).
    pub reused: bool,
}

/// A task's working directory and output files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDir {
    /// The working directory.
    pub dir: PathBuf,
    /// Its `stdout` file.
    pub stdout: PathBuf,
    /// Its `stderr` file.
    pub stderr: PathBuf,
}

/// A sandbox operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A filesystem operation, with its path.
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// An artifact the agent should have fetched is missing.
    #[error(
        "application artifact {0} is not in the sandbox (was it listed in the executor's \
         CommandInfo URIs and fetched?)"
    )]
    MissingArtifact(PathBuf),
    /// An artifact path that is not a plain relative path.
    #[error("artifact path {0:?} must be relative to the sandbox, without `..`")]
    BadArtifact(PathBuf),
    /// Unpacking an archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A task id that cannot become a directory name.
    #[error(
        "task id {0:?} is too long to use as a directory name (at most 200 bytes once escaped)"
    )]
    TaskId(String),
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl Sandbox {
    /// A sandbox at `root` whose application consists of `artifacts` (paths relative to
    /// `root`, as fetched by the agent).
    pub fn new(root: impl Into<PathBuf>, artifacts: Vec<PathBuf>) -> Result<Self, SandboxError> {
        for a in &artifacts {
            let plain = !a.as_os_str().is_empty()
                && a.components().all(|c| matches!(c, Component::Normal(_)));
            if !plain {
                return Err(SandboxError::BadArtifact(a.clone()));
            }
        }
        Ok(Self {
            root: root.into(),
            artifacts,
        })
    }

    /// The sandbox directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Gives the sandbox root to `uid` (the executor) and group `gid` (the job's), mode
    /// 0750, so that the job's user can enter it and nobody else can.
    pub fn claim(&self, sys: &dyn Sys, uid: u32, gid: u32) -> Result<(), SandboxError> {
        sys.chown(&self.root, Some(uid), Some(gid))
            .map_err(io_err("set the owner of", &self.root))?;
        set_mode(&self.root, 0o750)
    }

    /// Where application `name` lives (`RETZ_PVNAME`).
    pub fn app_path(&self, name: &str) -> PathBuf {
        self.root.join("app").join(name)
    }

    /// Makes sure application `name` is unpacked, doing the work only the first time.
    /// Blocking; `name` must be a safe component (validated specs guarantee it).
    pub fn prepare_app(&self, name: &str) -> Result<AppDir, SandboxError> {
        if !is_safe_component(name) {
            return Err(SandboxError::Io {
                op: "use application name",
                path: PathBuf::from(name),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a directory name"),
            });
        }
        let path = self.app_path(name);
        if path.join(MARKER).is_file() {
            return Ok(AppDir { path, reused: true });
        }
        let apps = self.root.join("app");
        std::fs::create_dir_all(&apps).map_err(io_err("create", &apps))?;
        set_mode(&apps, 0o755)?;
        if path.exists() {
            // Not ours, or from an older layout: rebuild.
            std::fs::remove_dir_all(&path).map_err(io_err("remove incomplete", &path))?;
        }
        let partial = apps.join(format!(".{name}.partial"));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(io_err("remove stale", &partial))?;
        }
        std::fs::create_dir(&partial).map_err(io_err("create", &partial))?;
        let mut done = Vec::new();
        for artifact in &self.artifacts {
            let src = self.root.join(artifact);
            if !src.is_file() {
                return Err(SandboxError::MissingArtifact(src));
            }
            match archive::kind_of(&src) {
                Some(kind) => {
                    archive::extract(&src, kind, &partial)?;
                }
                None => {
                    let name = src.file_name().unwrap_or(artifact.as_os_str());
                    let dst = partial.join(name);
                    if std::fs::hard_link(&src, &dst).is_err() {
                        std::fs::copy(&src, &dst).map_err(io_err("copy to", &dst))?;
                    }
                }
            }
            done.push(artifact.display().to_string());
        }
        let marker = partial.join(MARKER);
        std::fs::write(&marker, done.join("\n") + "\n").map_err(io_err("write", &marker))?;
        seal(&partial)?;
        std::fs::rename(&partial, &path).map_err(io_err("rename into place", &path))?;
        Ok(AppDir {
            path,
            reused: false,
        })
    }

    /// Creates the working directory of the task with id `task_id` (`tasks/<key>`, mode
    /// 0700) with the application's tree laid out in it when `app` is given
    /// ([`view`]), and its empty `stdout`/`stderr` (0600). The directory, its new
    /// subdirectories and the outputs belong to `owner` when given (else to the executor's
    /// user). A relaunch of the same task id starts from a fresh directory.
    pub fn task_dir(
        &self,
        sys: &dyn Sys,
        task_id: &str,
        owner: Option<Owner>,
        app: Option<&Path>,
    ) -> Result<TaskDir, SandboxError> {
        let key = task_key(task_id).ok_or_else(|| SandboxError::TaskId(task_id.to_owned()))?;
        let tasks = self.root.join("tasks");
        std::fs::create_dir_all(&tasks).map_err(io_err("create", &tasks))?;
        set_mode(&tasks, 0o755)?;
        let dir = tasks.join(key);
        // A relaunch of the same task id: what the earlier attempt left goes (as a new
        // Mesos sandbox would), so nothing the job changed there steers the executor.
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(&dir).map_err(io_err("remove the old", &dir))?
            }
            Ok(_) => std::fs::remove_file(&dir).map_err(io_err("remove the old", &dir))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", &dir)(e)),
        }
        // Built while only the executor can enter it, given to the job last.
        std::fs::create_dir(&dir).map_err(io_err("create", &dir))?;
        set_mode(&dir, 0o700)?;
        if let Some(app) = app {
            view::lay_out(sys, app, &dir, owner)?;
        }
        let chown = |path: &Path| match owner {
            Some(o) => sys
                .chown(path, Some(o.uid), Some(o.gid))
                .map_err(io_err("set the owner of", path)),
            None => Ok(()),
        };
        let task = TaskDir {
            stdout: dir.join("stdout"),
            stderr: dir.join("stderr"),
            dir,
        };
        for file in [&task.stdout, &task.stderr] {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(file)
                .map_err(io_err("create", file))?;
            chown(file)?;
            set_mode(file, 0o600)?;
        }
        chown(&task.dir)?;
        Ok(task)
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), SandboxError> {
    std::fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io_err("chmod", path))
}

/// Makes an unpacked application read-only to others: directories 0755, files 0755 when
/// executable by anyone else 0644. Symlinks are left alone (never followed).
fn seal(dir: &Path) -> Result<(), SandboxError> {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        set_mode(&d, 0o755)?;
        for entry in std::fs::read_dir(&d).map_err(io_err("read", &d))? {
            let entry = entry.map_err(io_err("read", &d))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() {
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                set_mode(&path, mode)?;
            }
        }
    }
    Ok(())
}

/// The directory and cgroup name for a task id: `[A-Za-z0-9_.-]` kept, other bytes
/// `%XX`, a leading `.` escaped too. `None` when longer than 200 bytes.
pub fn task_key(task_id: &str) -> Option<String> {
    let mut key = String::with_capacity(task_id.len());
    for (i, b) in task_id.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if keep {
            key.push(b as char);
        } else {
            key.push_str(&format!("%{b:02X}"));
        }
    }
    (!key.is_empty() && key.len() <= 200).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{FakeLayout, FakeSys, Op};
    use proptest::prelude::*;

    fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(enc);
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn unpacks_once_then_reuses() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("app.tar.gz"),
            tar_gz(&[("lib/a.txt", b"A")]),
        )
        .unwrap();
        std::fs::write(tmp.path().join("run.sh"), "echo").unwrap();
        let sb = Sandbox::new(tmp.path(), vec!["app.tar.gz".into(), "run.sh".into()]).unwrap();
        let first = sb.prepare_app("asakusa").unwrap();
        assert!(!first.reused);
        assert_eq!(first.path, tmp.path().join("app/asakusa"));
        assert_eq!(
            std::fs::read_to_string(first.path.join("lib/a.txt")).unwrap(),
            "A"
        );
        assert!(first.path.join("run.sh").is_file());
        assert!(first.path.join(MARKER).is_file());
        // A later task reuses it even if the task changed files there.
        std::fs::write(first.path.join("lib/a.txt"), "changed").unwrap();
        let second = sb.prepare_app("asakusa").unwrap();
        assert!(second.reused);
        assert_eq!(
            std::fs::read_to_string(second.path.join("lib/a.txt")).unwrap(),
            "changed"
        );
        assert!(!tmp.path().join("app/.asakusa.partial").exists());
    }

    #[test]
    fn crash_mid_extract_is_redone() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a.tgz"), tar_gz(&[("x", b"1")])).unwrap();
        let sb = Sandbox::new(tmp.path(), vec!["a.tgz".into()]).unwrap();
        // A crash left a partial dir and a final dir without marker.
        std::fs::create_dir_all(tmp.path().join("app/.app.partial/junk")).unwrap();
        std::fs::create_dir_all(tmp.path().join("app/app/half")).unwrap();
        let dir = sb.prepare_app("app").unwrap();
        assert!(!dir.reused);
        assert!(dir.path.join("x").is_file());
        assert!(!dir.path.join("half").exists());
        assert!(!tmp.path().join("app/.app.partial").exists());
    }

    #[test]
    fn failures_name_the_artifact_and_leave_no_final_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let sb = Sandbox::new(tmp.path(), vec!["missing.tgz".into()]).unwrap();
        let msg = sb.prepare_app("a").unwrap_err().to_string();
        assert!(msg.contains("missing.tgz"), "{msg}");
        assert!(!tmp.path().join("app/a").exists());
        std::fs::write(tmp.path().join("bad.tgz"), b"not gzip").unwrap();
        let sb = Sandbox::new(tmp.path(), vec!["bad.tgz".into()]).unwrap();
        let msg = sb.prepare_app("a").unwrap_err().to_string();
        assert!(msg.contains("bad.tgz"), "{msg}");
        assert!(!tmp.path().join("app/a").exists());
        for bad in ["../x", "/etc/passwd", ""] {
            assert!(matches!(
                Sandbox::new(tmp.path(), vec![bad.into()]),
                Err(SandboxError::BadArtifact(_))
            ));
        }
        assert!(sb.prepare_app("..").is_err());
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn fake(tmp: &Path) -> FakeSys {
        FakeSys::new(&tmp.join("kernel"), FakeLayout::Empty).unwrap()
    }

    #[test]
    fn application_files_are_read_only_to_others() {
        let tmp = tempfile::tempdir().unwrap();
        let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(enc);
        for (name, mode) in [("bin/run", 0o4777), ("etc/conf", 0o666), ("lib/a", 0o600)] {
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_mode(mode);
            h.set_cksum();
            b.append_data(&mut h, name, &b"x"[..]).unwrap();
        }
        std::fs::write(
            tmp.path().join("a.tgz"),
            b.into_inner().unwrap().finish().unwrap(),
        )
        .unwrap();
        let sb = Sandbox::new(tmp.path(), vec!["a.tgz".into()]).unwrap();
        let app = sb.prepare_app("x").unwrap().path;
        assert_eq!(mode(&tmp.path().join("app")), 0o755);
        assert_eq!(mode(&app), 0o755);
        assert_eq!(mode(&app.join("bin")), 0o755);
        assert_eq!(mode(&app.join("bin/run")), 0o755, "set-uid and o+w dropped");
        assert_eq!(mode(&app.join("etc/conf")), 0o644);
        assert_eq!(mode(&app.join("lib/a")), 0o644);
    }

    #[test]
    fn claim_and_task_dir_ownership() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = fake(tmp.path());
        let root = tmp.path().join("run");
        std::fs::create_dir(&root).unwrap();
        let sb = Sandbox::new(&root, vec![]).unwrap();
        sb.claim(&fake, 0, 65534).unwrap();
        assert_eq!(mode(&root), 0o750);
        let owner = Owner {
            uid: 65534,
            gid: 65534,
        };
        let t = sb.task_dir(&fake, "t1", Some(owner), None).unwrap();
        assert_eq!(mode(&root.join("tasks")), 0o755);
        assert_eq!(mode(&t.dir), 0o700);
        assert_eq!(mode(&t.stdout), 0o600);
        assert_eq!(mode(&t.stderr), 0o600);
        let chowned: Vec<PathBuf> = fake
            .ops()
            .into_iter()
            .filter_map(|op| match op {
                Op::Chown(p, Some(65534), Some(65534)) => Some(p),
                Op::Chown(p, Some(0), Some(65534)) if p == root => None,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            chowned,
            vec![t.stdout.clone(), t.stderr.clone(), t.dir.clone()],
            "the directory goes to the job last"
        );

        // A relaunch of the same id: a symlink planted as stdout is replaced, not followed.
        let target = tmp.path().join("target");
        std::fs::write(&target, "precious").unwrap();
        std::fs::remove_file(&t.stdout).unwrap();
        std::os::unix::fs::symlink(&target, &t.stdout).unwrap();
        let again = sb.task_dir(&fake, "t1", Some(owner), None).unwrap();
        assert!(std::fs::symlink_metadata(&again.stdout).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn task_dirs_and_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = fake(tmp.path());
        let sb = Sandbox::new(tmp.path(), vec![]).unwrap();
        let t = sb.task_dir(&fake, "job-42.task/1", None, None).unwrap();
        assert_eq!(t.dir, tmp.path().join("tasks/job-42.task%2F1"));
        assert!(t.dir.is_dir());
        assert_eq!(t.stdout, t.dir.join("stdout"));
        assert_eq!(task_key(".."), Some("%2E.".into()));
        assert_eq!(task_key(""), None);
        assert!(sb.task_dir(&fake, &"x".repeat(201), None, None).is_err());
        assert!(fake.ops().is_empty(), "no owner given: nothing chowned");
    }

    proptest! {
        #[test]
        fn task_keys_are_safe_and_injective(a in "\\PC{1,15}", b in "\\PC{1,15}") {
            let (ka, kb) = (task_key(&a).unwrap(), task_key(&b).unwrap());
            prop_assert!(is_safe_component(&ka));
            prop_assert!(!ka.starts_with('.'));
            prop_assert_eq!(a == b, ka == kb);
        }
    }
}
