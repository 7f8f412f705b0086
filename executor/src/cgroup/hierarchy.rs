//! The executor's scope: `<own>/<parent>/<scope>` in each hierarchy it uses, created and
//! prepared once at start ([`Cgroups::setup`]), swept of leftovers, removed at shutdown.
//!
//! Setup refuses (with a reason, never a panic) when the executor may not manage cgroups:
//! no cpuset controller, no `CAP_SYS_ADMIN` for v1, a read-only or foreign cgroupfs, or a
//! cgroupfs write failing. The caller then pins by affinity alone and says so.

use std::path::{Component, Path, PathBuf};

use super::{CgroupError, CgroupVersion, Layout, detect};
use crate::procfs::{parse_cgroup, v1_path, v2_path};
use crate::spec::is_safe_component;
use crate::sys::Sys;

/// Where the executor keeps its cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupConfig {
    /// The cgroupfs root (`/sys/fs/cgroup`).
    pub root: PathBuf,
    /// Parent of the executor's scope: relative to the executor's own cgroup, or from the
    /// hierarchy's root when it starts with `/`. Default `retz`.
    pub parent: String,
    /// The executor's own directory under the parent (one per executor, e.g. its id).
    pub scope: String,
    /// Whether to apply the task's `mem_mb` as a cgroup memory limit.
    pub memory_limit: bool,
    /// Where the GPU device nodes (`nvidiaN`) are looked up (`/dev`).
    pub dev_root: PathBuf,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/sys/fs/cgroup"),
            parent: "retz".into(),
            scope: "standalone".into(),
            memory_limit: true,
            dev_root: PathBuf::from("/dev"),
        }
    }
}

impl CgroupConfig {
    /// Checks that `parent` and `scope` are plain relative paths.
    pub fn validate(&self) -> Result<(), String> {
        let parent = self.parent.trim_start_matches('/');
        if parent.is_empty()
            || !Path::new(parent).components().all(
                |c| matches!(c, Component::Normal(n) if n.to_str().is_some_and(is_safe_component)),
            )
        {
            return Err(format!(
                "cgroup parent {:?} must be a path like `retz` or `/retz/jobs` without `.` or `..`",
                self.parent
            ));
        }
        if !is_safe_component(&self.scope) {
            return Err(format!(
                "cgroup scope {:?} must be one directory name (no `/`, not `.` or `..`)",
                self.scope
            ));
        }
        Ok(())
    }
}

/// One hierarchy the executor uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hier {
    /// As `/proc/<pid>/cgroup` names it: `cpuset`, `memory`, or `""` for v2.
    pub name: String,
    /// Mount point.
    pub mount: PathBuf,
    /// The executor's scope directory.
    pub scope: PathBuf,
    /// Parent levels inside the executor's own (non-root) cgroup, deepest first: private
    /// to this executor's container, so removed with the scope. Levels under a hierarchy
    /// root are shared by every executor of the machine and stay.
    pub private_parents: Vec<PathBuf>,
}

/// The executor's prepared cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    pub(super) version: CgroupVersion,
    pub(super) cpuset: Hier,
    /// Where memory limits go: the v1 memory hierarchy, or the v2 scope (same as cpuset).
    pub(super) memory: Option<Hier>,
    /// The v1 freezer hierarchy, to freeze a task before killing its leftovers.
    pub(super) freezer: Option<Hier>,
    /// The v1 devices hierarchy, to deny a task the GPUs it was not granted.
    pub(super) devices: Option<Hier>,
    /// Where GPU device nodes are looked up.
    pub(super) dev_root: PathBuf,
    notes: Vec<String>,
}

impl Cgroups {
    /// Detects the layout under `config.root`, checks the right to manage cgroups, and
    /// creates and prepares the scope. `Err` is the reason cgroups cannot be used.
    pub fn setup(
        sys: &dyn Sys,
        config: &CgroupConfig,
        proc_root: &Path,
    ) -> Result<Cgroups, String> {
        config.validate()?;
        let layout = detect(sys, &config.root)?;
        let self_cgroup = proc_root.join("self/cgroup");
        let own = sys
            .read_file(&self_cgroup)
            .map_err(|e| format!("cannot read {}: {e}", self_cgroup.display()))
            .and_then(|text| parse_cgroup(&text).map_err(|e| e.to_string()))?;
        let cap = sys
            .has_cap_sys_admin()
            .map_err(|e| format!("cannot read the executor's capabilities: {e}"))?;
        let mut notes = Vec::new();
        match layout {
            Layout::V1 {
                cpuset,
                memory,
                freezer,
            } => {
                if !cap {
                    return Err("the executor lacks CAP_SYS_ADMIN, which cgroup v1 needs".into());
                }
                let own_cpuset = v1_path(&own, "cpuset").unwrap_or("/");
                let (scope, private_parents) =
                    prepare_chain(sys, &cpuset, own_cpuset, config, &[])?;
                let cpuset = Hier {
                    name: "cpuset".into(),
                    mount: cpuset,
                    scope,
                    private_parents,
                };
                let memory = match (config.memory_limit, memory) {
                    (false, _) => None,
                    (true, None) => {
                        notes.push(
                            "no cgroup v1 memory hierarchy: memory limits not applied".into(),
                        );
                        None
                    }
                    (true, Some(mount)) => {
                        let own_memory = v1_path(&own, "memory").unwrap_or("/");
                        match prepare_chain(sys, &mount, own_memory, config, &[]) {
                            Ok((scope, private_parents)) => Some(Hier {
                                name: "memory".into(),
                                mount,
                                scope,
                                private_parents,
                            }),
                            Err(reason) => {
                                notes.push(format!("memory limits not applied: {reason}"));
                                None
                            }
                        }
                    }
                };
                let freezer = freezer.and_then(|mount| {
                    let own_freezer = v1_path(&own, "freezer").unwrap_or("/");
                    match prepare_chain(sys, &mount, own_freezer, config, &[]) {
                        Ok((scope, private_parents)) => Some(Hier {
                            name: "freezer".into(),
                            mount,
                            scope,
                            private_parents,
                        }),
                        Err(reason) => {
                            notes.push(format!(
                                "leftover processes are killed without freezing them first: \
                                 {reason}"
                            ));
                            None
                        }
                    }
                });
                let devices = match super::devices::v1_mount(sys, &config.root) {
                    Some(mount) => {
                        let own_devices = v1_path(&own, "devices").unwrap_or("/");
                        match prepare_chain(sys, &mount, own_devices, config, &[]) {
                            Ok((scope, private_parents)) => Some(Hier {
                                name: "devices".into(),
                                mount,
                                scope,
                                private_parents,
                            }),
                            Err(reason) => {
                                gpu_note(&mut notes, config, &reason);
                                None
                            }
                        }
                    }
                    None => {
                        gpu_note(&mut notes, config, "no cgroup v1 devices hierarchy");
                        None
                    }
                };
                Ok(Cgroups {
                    version: CgroupVersion::V1,
                    cpuset,
                    memory,
                    freezer,
                    devices,
                    dev_root: config.dev_root.clone(),
                    notes,
                })
            }
            Layout::V2 { mount, memory } => {
                if !cap && !sys.is_writable(&mount) {
                    return Err(format!(
                        "the executor lacks CAP_SYS_ADMIN and {} is not writable",
                        mount.display()
                    ));
                }
                let mut controllers = vec!["cpuset"];
                if config.memory_limit {
                    if memory {
                        controllers.push("memory");
                    } else {
                        notes.push(format!(
                            "memory controller not available at {}: memory limits not applied",
                            mount.display()
                        ));
                    }
                }
                let own_v2 = v2_path(&own).unwrap_or("/");
                let (scope, private_parents) =
                    prepare_chain(sys, &mount, own_v2, config, &controllers)?;
                let hier = Hier {
                    name: String::new(),
                    mount,
                    scope,
                    private_parents,
                };
                let memory = controllers.contains(&"memory").then(|| hier.clone());
                gpu_note(
                    &mut notes,
                    config,
                    "cgroup v2 device control needs a BPF program, which the executor does \
                     not load",
                );
                Ok(Cgroups {
                    version: CgroupVersion::V2,
                    cpuset: hier,
                    memory,
                    freezer: None,
                    devices: None,
                    dev_root: config.dev_root.clone(),
                    notes,
                })
            }
        }
    }

    /// The cgroup version in use.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The executor's scope directory in the cpuset hierarchy.
    pub fn scope(&self) -> &Path {
        &self.cpuset.scope
    }

    /// Whether memory limits can be applied.
    pub fn has_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// Things set up differently from what was configured (e.g. no memory controller).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Whether leftovers are frozen before they are killed (v1 freezer hierarchy).
    pub fn has_freezer(&self) -> bool {
        self.freezer.is_some()
    }

    /// Scope directories, cpuset hierarchy first (one for v2).
    pub(super) fn scopes(&self) -> Vec<&Hier> {
        let mut out = vec![&self.cpuset];
        if let Some(m) = &self.memory
            && m.scope != self.cpuset.scope
        {
            out.push(m);
        }
        out.extend(&self.freezer);
        out.extend(&self.devices);
        out
    }

    /// Kills what is left in task cgroups of the scope (a previous run of this executor)
    /// and removes them. Returns the failures.
    pub async fn sweep(&self, sys: &dyn Sys) -> Vec<CgroupError> {
        let mut failures = Vec::new();
        for hier in self.scopes() {
            let Ok(children) = sys.list_dirs(&hier.scope) else {
                continue;
            };
            for dir in children {
                if let Err(e) = super::task::empty_and_remove(sys, &[dir]).await {
                    failures.push(e);
                }
            }
        }
        failures
    }

    /// Sweeps the scope and removes it (at shutdown). The parent stays.
    pub async fn remove_scope(&self, sys: &dyn Sys) -> Vec<CgroupError> {
        let mut failures = self.sweep(sys).await;
        let dirs: Vec<PathBuf> = self.scopes().iter().map(|h| h.scope.clone()).collect();
        if let Err(e) = super::task::empty_and_remove(sys, &dirs).await {
            failures.push(e);
        }
        for hier in self.scopes() {
            for dir in &hier.private_parents {
                // Still used (another scope, a process) or already gone: leave it.
                if sys.remove_dir(dir).is_err() {
                    break;
                }
            }
        }
        failures
    }
}

/// Notes that GPUs the tasks were not granted stay reachable, when the machine has GPU
/// device nodes.
fn gpu_note(notes: &mut Vec<String>, config: &CgroupConfig, reason: &str) {
    if !super::devices::gpu_minors(&config.dev_root).is_empty() {
        notes.push(format!(
            "GPU devices are not denied to tasks that were not granted them ({reason}); \
             CUDA_VISIBLE_DEVICES still names the granted ones"
        ));
    }
}

/// Creates `<mount>/<own>/<parent>/<scope>` level by level. v1 cpuset levels get their
/// `cpuset.cpus`/`cpuset.mems` copied from the level above when empty; v2 levels enable
/// `controllers` for their children. Returns the scope directory and the private parent
/// levels (see [`Hier::private_parents`]).
fn prepare_chain(
    sys: &dyn Sys,
    mount: &Path,
    own: &str,
    config: &CgroupConfig,
    controllers: &[&str],
) -> Result<(PathBuf, Vec<PathBuf>), String> {
    let private = !config.parent.starts_with('/') && !own.trim_start_matches('/').is_empty();
    let base = if config.parent.starts_with('/') {
        mount.to_path_buf()
    } else {
        mount.join(own.trim_start_matches('/'))
    };
    if !sys.exists(&base) {
        return Err(format!(
            "the executor's cgroup {} does not exist",
            base.display()
        ));
    }
    if !sys.is_writable(&base) {
        return Err(format!(
            "{} is not writable (read-only cgroupfs or no permission)",
            base.display()
        ));
    }
    let levels: Vec<&str> = config
        .parent
        .split('/')
        .filter(|c| !c.is_empty())
        .chain(std::iter::once(config.scope.as_str()))
        .collect();
    let v1_cpuset = sys.exists(&mount.join("cpuset.cpus"));
    let mut dir = base.clone();
    enable_controllers(sys, &dir, controllers).map_err(|e| {
        format!(
            "{e}; with cgroup v2 the executor's own cgroup cannot hand controllers to \
             children while it holds processes: give an absolute cgroup parent (e.g. /retz)"
        )
    })?;
    for level in levels {
        let parent = dir.clone();
        dir = dir.join(level);
        if !sys.exists(&dir)
            && let Err(e) = sys.create_dir(&dir)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(CgroupError::new("create cgroup", &dir, e).to_string());
        }
        if v1_cpuset {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                copy_if_empty(sys, &parent.join(file), &dir.join(file))
                    .map_err(|e| e.to_string())?;
            }
        }
        enable_controllers(sys, &dir, controllers).map_err(|e| e.to_string())?;
    }
    let mut parents = Vec::new();
    if private {
        let mut level = dir.parent();
        while let Some(p) = level.filter(|p| *p != base) {
            parents.push(p.to_path_buf());
            level = p.parent();
        }
    }
    Ok((dir, parents))
}

fn read(sys: &dyn Sys, path: &Path) -> Result<String, CgroupError> {
    sys.read_file(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| CgroupError::new("read", path, e))
}

pub(super) fn write(sys: &dyn Sys, path: &Path, value: &str) -> Result<(), CgroupError> {
    sys.write_file(path, value)
        .map_err(|e| CgroupError::new(format!("write {value:?} to"), path, e))
}

fn copy_if_empty(sys: &dyn Sys, from: &Path, to: &Path) -> Result<(), CgroupError> {
    if read(sys, to)?.is_empty() {
        let value = read(sys, from)?;
        write(sys, to, &value)?;
    }
    Ok(())
}

fn enable_controllers(sys: &dyn Sys, dir: &Path, controllers: &[&str]) -> Result<(), CgroupError> {
    if controllers.is_empty() {
        return Ok(());
    }
    let file = dir.join("cgroup.subtree_control");
    let current = read(sys, &file)?;
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !current.split_whitespace().any(|x| x == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write(sys, &file, &missing.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{FakeLayout, FakeSys, Op};

    fn config(fake: &FakeSys, parent: &str) -> CgroupConfig {
        CgroupConfig {
            root: fake.cgroup_root().to_path_buf(),
            parent: parent.into(),
            scope: "exec1".into(),
            memory_limit: true,
            dev_root: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn v1_scope_is_populated_top_down() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::with_machine(tmp.path(), FakeLayout::Hybrid, "0-7", "0-1").unwrap();
        let cg = Cgroups::setup(&fake, &config(&fake, "retz"), fake.proc_root()).unwrap();
        let root = fake.cgroup_root();
        assert_eq!(cg.version(), CgroupVersion::V1);
        assert_eq!(cg.scope(), root.join("cpuset/retz/exec1"));
        assert!(cg.has_memory());
        for dir in ["cpuset/retz", "cpuset/retz/exec1"] {
            let d = root.join(dir);
            assert_eq!(
                std::fs::read_to_string(d.join("cpuset.cpus")).unwrap(),
                "0-7\n"
            );
            assert_eq!(
                std::fs::read_to_string(d.join("cpuset.mems")).unwrap(),
                "0-1\n"
            );
        }
        assert!(root.join("memory/retz/exec1").is_dir());
        // Each level: mkdir, then cpus, then mems, before going deeper.
        let ops: Vec<Op> = fake
            .ops()
            .into_iter()
            .filter(|op| matches!(op, Op::Mkdir(p) | Op::Write(p, _) if p.starts_with(root.join("cpuset"))))
            .collect();
        let r = root.join("cpuset/retz");
        let s = r.join("exec1");
        assert_eq!(
            ops,
            vec![
                Op::Mkdir(r.clone()),
                Op::Write(r.join("cpuset.cpus"), "0-7".into()),
                Op::Write(r.join("cpuset.mems"), "0-1".into()),
                Op::Mkdir(s.clone()),
                Op::Write(s.join("cpuset.cpus"), "0-7".into()),
                Op::Write(s.join("cpuset.mems"), "0-1".into()),
            ]
        );
        // A second setup (executor restart) reuses what is there.
        fake.clear_ops();
        Cgroups::setup(&fake, &config(&fake, "retz"), fake.proc_root()).unwrap();
        assert!(
            fake.ops()
                .iter()
                .all(|op| !matches!(op, Op::Mkdir(_) | Op::Write(..)))
        );
    }

    #[tokio::test]
    async fn relative_parent_nests_under_own_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), FakeLayout::V1).unwrap();
        std::fs::create_dir_all(fake.cgroup_root().join("memory/mesos/c1")).unwrap();
        std::fs::write(fake.cgroup_root().join("memory/mesos/c1/cgroup.procs"), "").unwrap();
        fake.set_own_cgroup("memory", "/mesos/c1");
        let cg = Cgroups::setup(&fake, &config(&fake, "retz"), fake.proc_root()).unwrap();
        assert_eq!(
            cg.memory.unwrap().scope,
            fake.cgroup_root().join("memory/mesos/c1/retz/exec1")
        );
        let cg = Cgroups::setup(&fake, &config(&fake, "/top/retz"), fake.proc_root()).unwrap();
        assert_eq!(cg.scope(), fake.cgroup_root().join("cpuset/top/retz/exec1"));
    }

    #[test]
    fn v2_enables_controllers_on_every_level() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), FakeLayout::V2).unwrap();
        let cg = Cgroups::setup(&fake, &config(&fake, "retz"), fake.proc_root()).unwrap();
        let root = fake.cgroup_root();
        assert_eq!(cg.version(), CgroupVersion::V2);
        for dir in [
            root.to_path_buf(),
            root.join("retz"),
            root.join("retz/exec1"),
        ] {
            let sc = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap();
            assert_eq!(sc.trim(), "cpuset memory", "{}", dir.display());
        }
        assert!(cg.has_memory());
    }

    #[test]
    fn refusals_give_reasons() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), FakeLayout::V1).unwrap();
        fake.set_cap_sys_admin(false);
        let why = Cgroups::setup(&fake, &config(&fake, "retz"), fake.proc_root()).unwrap_err();
        assert!(why.contains("CAP_SYS_ADMIN"), "{why}");

        fake.set_cap_sys_admin(true);
        fake.set_read_only(true);
        let why = Cgroups::setup(&fake, &config(&fake, "retz"), fake.proc_root()).unwrap_err();
        assert!(
            why.contains("not writable") && why.contains("cpuset"),
            "{why}"
        );

        fake.set_read_only(false);
        let cpus = fake.cgroup_root().join("cpuset/retz/cpuset.cpus");
        std::fs::create_dir_all(cpus.parent().unwrap()).unwrap();
        for f in ["cgroup.procs", "cpuset.mems"] {
            std::fs::write(cpus.parent().unwrap().join(f), "").unwrap();
        }
        std::fs::write(&cpus, "").unwrap();
        fake.fail_writes(&cpus, libc::EACCES);
        let why = Cgroups::setup(&fake, &config(&fake, "retz"), fake.proc_root()).unwrap_err();
        assert!(
            why.contains(&cpus.display().to_string()) && why.contains("CAP_SYS_ADMIN"),
            "{why}"
        );

        let why = Cgroups::setup(&fake, &config(&fake, "../x"), fake.proc_root()).unwrap_err();
        assert!(why.contains("`.` or `..`"), "{why}");

        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), FakeLayout::V2NoCpuset).unwrap();
        let why = Cgroups::setup(&fake, &config(&fake, "retz"), fake.proc_root()).unwrap_err();
        assert!(why.contains("cpuset"), "{why}");
    }

    #[test]
    fn v2_own_cgroup_with_processes_explains_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), FakeLayout::V2).unwrap();
        let root = fake.cgroup_root().to_path_buf();
        fake.write_file(&root.join("cgroup.subtree_control"), "+cpuset")
            .unwrap();
        fake.create_dir(&root.join("job")).unwrap();
        fake.set_own_cgroup("", "/job");
        // Put a process in /job.
        let plan = crate::sys::SpawnPlan {
            argv: vec!["x".into()],
            env: vec![],
            cwd: tmp.path().into(),
            stdout: tmp.path().join("o"),
            stderr: tmp.path().join("e"),
            cgroup_procs: vec![root.join("job/cgroup.procs")],
            affinity: None,
            mem_policy: None,
            identity: None,
            pid_namespace: false,
        };
        let _child = fake.spawn(&plan).unwrap();
        let why = Cgroups::setup(&fake, &config(&fake, "retz"), fake.proc_root()).unwrap_err();
        assert!(
            why.contains("absolute cgroup parent") && why.contains("job"),
            "{why}"
        );
        assert!(Cgroups::setup(&fake, &config(&fake, "/retz"), fake.proc_root()).is_ok());
    }
}
