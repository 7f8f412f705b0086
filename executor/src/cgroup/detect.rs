//! Finding the cgroup hierarchy that offers the cpuset controller, under a configurable
//! root (the real `/sys/fs/cgroup`, or a fake cgroupfs in tests).
//!
//! Order: the unified hierarchy at `<root>` (pure v2) or `<root>/unified` (hybrid) when its
//! `cgroup.controllers` lists `cpuset`; else the v1 cpuset hierarchy at `<root>/cpuset`
//! (with the v1 memory hierarchy at `<root>/memory` and the v1 freezer hierarchy at
//! `<root>/freezer` if present). Detection reads files only; whether the executor may write there is checked by the caller.

use std::path::{Path, PathBuf};

use crate::sys::Sys;

/// Where the usable hierarchies are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2 with the cpuset controller.
    V2 {
        /// The unified hierarchy's mount.
        mount: PathBuf,
        /// Whether the memory controller is available there too.
        memory: bool,
    },
    /// cgroup v1.
    V1 {
        /// The cpuset hierarchy's mount.
        cpuset: PathBuf,
        /// The memory hierarchy's mount, if mounted.
        memory: Option<PathBuf>,
        /// The freezer hierarchy's mount, if mounted (to freeze a task before killing
        /// what is left of it).
        freezer: Option<PathBuf>,
    },
}

/// Detects the layout under `root`; `Err` says why no cpuset controller is usable.
pub fn detect(sys: &dyn Sys, root: &Path) -> Result<Layout, String> {
    let mut seen_v2 = None;
    for mount in [root.to_path_buf(), root.join("unified")] {
        let file = mount.join("cgroup.controllers");
        if !sys.exists(&file) {
            continue;
        }
        let controllers = sys
            .read_file(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if has("cpuset") {
            return Ok(Layout::V2 {
                memory: has("memory"),
                mount,
            });
        }
        seen_v2.get_or_insert(mount);
    }
    let cpuset = root.join("cpuset");
    if sys.exists(&cpuset.join("cpuset.cpus")) && sys.exists(&cpuset.join("cgroup.procs")) {
        let memory = root.join("memory");
        let memory = sys
            .exists(&memory.join("memory.limit_in_bytes"))
            .then_some(memory);
        let freezer = root.join("freezer");
        let freezer = (sys.exists(&freezer.join("cgroup.procs"))
            && !sys.exists(&freezer.join("cgroup.controllers")))
        .then_some(freezer);
        return Ok(Layout::V1 {
            cpuset,
            memory,
            freezer,
        });
    }
    Err(match seen_v2 {
        Some(mount) => format!(
            "no cpuset controller: cgroup v2 at {} does not offer it (see its \
             cgroup.controllers) and there is no v1 cpuset hierarchy at {}",
            mount.display(),
            cpuset.display()
        ),
        None => format!(
            "no cgroup filesystem with a cpuset controller under {}",
            root.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{FakeLayout, FakeSys};

    fn detect_in(layout: FakeLayout) -> (tempfile::TempDir, PathBuf, Result<Layout, String>) {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), layout).unwrap();
        let root = fake.cgroup_root().to_path_buf();
        let found = detect(&fake, &root);
        (tmp, root, found)
    }

    #[test]
    fn v1_and_hybrid_use_the_v1_cpuset_hierarchy() {
        for layout in [FakeLayout::V1, FakeLayout::Hybrid] {
            let (_tmp, root, found) = detect_in(layout);
            assert_eq!(
                found.unwrap(),
                Layout::V1 {
                    cpuset: root.join("cpuset"),
                    memory: Some(root.join("memory")),
                    freezer: (layout == FakeLayout::Hybrid).then(|| root.join("freezer")),
                }
            );
        }
    }

    #[test]
    fn v2_with_cpuset() {
        let (_tmp, root, found) = detect_in(FakeLayout::V2);
        assert_eq!(
            found.unwrap(),
            Layout::V2 {
                mount: root,
                memory: true
            }
        );
    }

    #[test]
    fn missing_cpuset_says_where_it_looked() {
        let (_tmp, root, found) = detect_in(FakeLayout::V2NoCpuset);
        let msg = found.unwrap_err();
        assert!(
            msg.contains(&root.display().to_string()) && msg.contains("cpuset"),
            "{msg}"
        );
        let (_tmp, root, found) = detect_in(FakeLayout::Empty);
        let msg = found.unwrap_err();
        assert!(msg.contains(&root.display().to_string()), "{msg}");
    }

    #[test]
    fn hybrid_with_cpuset_on_unified_prefers_v2() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), FakeLayout::Hybrid).unwrap();
        let unified = fake.cgroup_root().join("unified");
        std::fs::write(unified.join("cgroup.controllers"), "cpuset memory\n").unwrap();
        assert_eq!(
            detect(&fake, fake.cgroup_root()).unwrap(),
            Layout::V2 {
                mount: unified,
                memory: true
            }
        );
    }
}
