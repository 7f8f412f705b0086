//! A task's view of its application: the application directory's tree laid out again in
//! the task's working directory, so that a command finds the application's files where
//! the original Retz left them (`-cmd 'bin/hello.sh'` runs `<cwd>/bin/hello.sh`, as in a
//! Mesos sandbox with the files unpacked in it).
//!
//! What is made, for each entry of `app/<name>/` (the shared, read-only copy):
//! - a directory becomes a new directory of the job's user (mode 0755): the job may
//!   create, rename and delete entries in it, as it could in the original sandbox;
//! - a regular file becomes a hard link to the shared file (copied when a link cannot be
//!   made), so it costs no space and stays the executor's, read-only to the job: the job
//!   can replace it (delete, then write its own) but never change the shared copy that
//!   later tasks see;
//! - a symbolic link is made again with the same target;
//! - anything else is skipped.
//!
//! At the top level, the completion marker and the names `stdout` and `stderr` (the
//! task's own outputs) are skipped. The view is built before the task directory is given
//! to the job, in a directory only the executor can enter, so nothing the job does can
//! redirect where the executor writes.

use std::path::{Path, PathBuf};

use super::{MARKER, Owner, SandboxError, io_err, set_mode};
use crate::sys::Sys;

/// Top-level names of the application not laid out in a task's directory.
pub const SKIPPED: &[&str] = &[MARKER, "stdout", "stderr"];

/// Lays out the tree of `app` in `dst` (an existing, empty directory), giving the new
/// directories to `owner` when given. Returns how many entries were made.
pub(super) fn lay_out(
    sys: &dyn Sys,
    app: &Path,
    dst: &Path,
    owner: Option<Owner>,
) -> Result<u64, SandboxError> {
    let mut made = 0;
    let mut todo: Vec<(PathBuf, PathBuf)> = vec![(app.to_path_buf(), dst.to_path_buf())];
    while let Some((from, to)) = todo.pop() {
        let top = from == app;
        for entry in std::fs::read_dir(&from).map_err(io_err("read", &from))? {
            let entry = entry.map_err(io_err("read", &from))?;
            let name = entry.file_name();
            if top && SKIPPED.iter().any(|s| name == *s) {
                continue;
            }
            let src = entry.path();
            let target = to.join(&name);
            let meta = std::fs::symlink_metadata(&src).map_err(io_err("stat", &src))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                std::fs::create_dir(&target).map_err(io_err("create", &target))?;
                set_mode(&target, 0o755)?;
                if let Some(o) = owner {
                    sys.chown(&target, Some(o.uid), Some(o.gid))
                        .map_err(io_err("set the owner of", &target))?;
                }
                todo.push((src, target));
            } else if kind.is_file() {
                if std::fs::hard_link(&src, &target).is_err() {
                    std::fs::copy(&src, &target).map_err(io_err("copy to", &target))?;
                }
            } else if kind.is_symlink() {
                let link = std::fs::read_link(&src).map_err(io_err("read the link", &src))?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(io_err("create the link", &target))?;
            } else {
                continue;
            }
            made += 1;
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::super::Sandbox;
    use super::*;
    use crate::sys::fake::{FakeLayout, FakeSys, Op};
    use std::os::unix::fs::MetadataExt;

    fn app_tree(root: &Path) -> PathBuf {
        let app = root.join("app/a");
        std::fs::create_dir_all(app.join("bin")).unwrap();
        std::fs::create_dir_all(app.join("lib/deep")).unwrap();
        std::fs::write(app.join("bin/hello.sh"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::write(app.join("lib/deep/x.jar"), "jar").unwrap();
        std::fs::write(app.join("stdout"), "the app's own stdout file").unwrap();
        std::fs::write(app.join(MARKER), "a.tgz\n").unwrap();
        std::os::unix::fs::symlink("bin/hello.sh", app.join("hello")).unwrap();
        app
    }

    #[test]
    fn the_task_sees_the_application_where_it_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(&tmp.path().join("kernel"), FakeLayout::Empty).unwrap();
        let root = tmp.path().join("run");
        let app = app_tree(&root);
        let sb = Sandbox::new(&root, vec![]).unwrap();
        let owner = Owner { uid: 7, gid: 8 };
        let t = sb.task_dir(&fake, "t1", Some(owner), Some(&app)).unwrap();
        let script = t.dir.join("bin/hello.sh");
        assert_eq!(
            std::fs::read_to_string(&script).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        let ino = |p: &Path| std::fs::symlink_metadata(p).unwrap().ino();
        assert_eq!(ino(&script), ino(&app.join("bin/hello.sh")), "a hard link");
        assert_eq!(
            ino(&t.dir.join("lib/deep/x.jar")),
            ino(&app.join("lib/deep/x.jar"))
        );
        assert_eq!(
            std::fs::read_link(t.dir.join("hello")).unwrap(),
            Path::new("bin/hello.sh")
        );
        assert!(!t.dir.join(MARKER).exists(), "the marker is not the task's");
        assert_eq!(
            std::fs::read(&t.stdout).unwrap(),
            b"",
            "the task's own stdout"
        );
        // The directories are the job's; the files stay the executor's.
        let chowned: Vec<PathBuf> = fake
            .ops()
            .into_iter()
            .filter_map(|op| match op {
                Op::Chown(p, Some(7), Some(8)) => Some(p),
                _ => None,
            })
            .collect();
        for dir in ["bin", "lib", "lib/deep"] {
            assert!(chowned.contains(&t.dir.join(dir)), "{dir}: {chowned:?}");
        }
        for file in ["bin/hello.sh", "lib/deep/x.jar", "hello"] {
            assert!(!chowned.contains(&t.dir.join(file)), "{file}");
        }
    }

    #[test]
    fn a_relaunch_starts_from_a_fresh_view() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(&tmp.path().join("kernel"), FakeLayout::Empty).unwrap();
        let root = tmp.path().join("run");
        let app = app_tree(&root);
        let sb = Sandbox::new(&root, vec![]).unwrap();
        let t = sb.task_dir(&fake, "t1", None, Some(&app)).unwrap();
        // The first attempt wrote a file and turned `bin` into a link out of the sandbox.
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(t.dir.join("result.txt"), "old").unwrap();
        std::fs::remove_file(t.dir.join("bin/hello.sh")).unwrap();
        std::fs::remove_dir(t.dir.join("bin")).unwrap();
        std::os::unix::fs::symlink(&outside, t.dir.join("bin")).unwrap();
        let again = sb.task_dir(&fake, "t1", None, Some(&app)).unwrap();
        assert!(!again.dir.join("result.txt").exists());
        assert!(
            std::fs::symlink_metadata(again.dir.join("bin"))
                .unwrap()
                .is_dir()
        );
        assert!(again.dir.join("bin/hello.sh").is_file());
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
    }

    #[test]
    fn without_an_application_the_directory_holds_only_the_outputs() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(&tmp.path().join("kernel"), FakeLayout::Empty).unwrap();
        let sb = Sandbox::new(tmp.path(), vec![]).unwrap();
        let t = sb.task_dir(&fake, "t", None, None).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&t.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["stderr", "stdout"]);
    }
}
