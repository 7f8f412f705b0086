//! GPU device access of a task through the cgroup v1 devices controller.
//!
//! A task whose spec carries `gpu_ids` (the agent names its GPUs) may open only the GPU
//! device nodes it was granted: every other `/dev/nvidiaN` present on the machine (char
//! major [`NVIDIA_MAJOR`], minor `N`, device id `N`) is written to the `devices.deny` of
//! the task's own cgroup in the v1 devices hierarchy (`<root>/devices`), before the task
//! process joins it. The shared nodes (`nvidiactl`, `nvidia-uvm`, ...) stay allowed, as
//! CUDA needs them.
//!
//! Owns: listing the GPU device nodes under a configurable `/dev` ([`gpu_minors`]), the
//! deny rules ([`deny_rules`]), the devices scope ([`Cgroups::has_devices`], prepared with
//! the other v1 hierarchies at setup) and the per-task devices cgroup
//! ([`Cgroups::deny_devices`]). Without the v1 devices hierarchy (pure cgroup v2, where
//! device control needs a BPF program, or an unmounted controller) nothing is denied and
//! the executor says so once at start; `CUDA_VISIBLE_DEVICES` still names the granted
//! devices.
//!
//! Invariants: a devices task cgroup is created only when there is something to deny;
//! it is listed in the task's [`TaskCgroup::dirs`], so the task joins it before exec and
//! it is removed with the task's other cgroups.

use std::path::{Path, PathBuf};

use super::hierarchy::{Cgroups, write};
use super::task::empty_and_remove;
use super::{CgroupError, TaskCgroup};
use crate::sys::Sys;
use retz_placement::GpuSet;

/// Char major number of the NVIDIA GPU device nodes `/dev/nvidiaN` (minor `N`).
pub const NVIDIA_MAJOR: u32 = 195;

/// The minors `N` of the GPU device nodes `nvidiaN` under `dev_root`, ascending (not
/// `nvidiactl`, `nvidia-uvm` and the like). A missing directory has none.
pub fn gpu_minors(dev_root: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(dev_root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name();
                    let digits = name.to_str()?.strip_prefix("nvidia")?;
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    digits.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out.dedup();
    out
}

/// The `devices.deny` lines of a task granted `granted` on a machine with GPU device
/// nodes `present`: `c 195:N rwm` for every present `N` not granted.
pub fn deny_rules(present: &[u32], granted: &GpuSet) -> Vec<String> {
    present
        .iter()
        .filter(|&&n| !granted.contains(retz_placement::GpuId(n)))
        .map(|n| format!("c {NVIDIA_MAJOR}:{n} rwm"))
        .collect()
}

impl Cgroups {
    /// Whether GPU devices can be denied (the v1 devices hierarchy is in use).
    pub fn has_devices(&self) -> bool {
        self.devices.is_some()
    }

    /// The `devices.deny` rules of a task granted the GPUs `granted`: every GPU device
    /// node of this machine (under the configured `/dev`) it was not granted.
    pub fn gpu_deny_rules(&self, granted: &GpuSet) -> Vec<String> {
        deny_rules(&gpu_minors(&self.dev_root), granted)
    }

    /// Creates task `key`'s cgroup in the devices hierarchy with `rules` written to its
    /// `devices.deny`, and adds it to `task` (so the task joins it and it goes with the
    /// task). Nothing is created when `rules` is empty or there is no devices hierarchy;
    /// on error nothing is left behind.
    pub async fn deny_devices(
        &self,
        sys: &dyn Sys,
        task: &mut TaskCgroup,
        key: &str,
        rules: &[String],
    ) -> Result<(), CgroupError> {
        let Some(hier) = &self.devices else {
            return Ok(());
        };
        if rules.is_empty() {
            return Ok(());
        }
        let dir = hier.scope.join(key);
        if sys.exists(&dir) {
            empty_and_remove(sys, std::slice::from_ref(&dir)).await?;
        }
        sys.create_dir(&dir)
            .map_err(|e| CgroupError::new("create cgroup", &dir, e))?;
        for rule in rules {
            if let Err(e) = write(sys, &dir.join("devices.deny"), rule) {
                // Best effort: the directory was just made and holds no process.
                let _ = sys.remove_dir(&dir);
                return Err(e);
            }
        }
        let rel = format!(
            "/{}",
            dir.strip_prefix(&hier.mount).unwrap_or(&dir).display()
        );
        task.expected.push((hier.name.clone(), rel));
        task.devices_dir = Some(dir);
        task.denied_devices = rules.to_vec();
        Ok(())
    }
}

/// The v1 devices hierarchy under `root`, when mounted (`devices.deny` at its top).
pub(super) fn v1_mount(sys: &dyn Sys, root: &Path) -> Option<PathBuf> {
    let mount = root.join("devices");
    (sys.exists(&mount.join("devices.deny"))
        && sys.exists(&mount.join("cgroup.procs"))
        && !sys.exists(&mount.join("cgroup.controllers")))
    .then_some(mount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::CgroupConfig;
    use crate::sys::fake::{FakeLayout, FakeSys, Op};

    #[test]
    fn minors_are_the_numbered_nvidia_nodes() {
        let tmp = tempfile::tempdir().unwrap();
        for f in [
            "nvidia0",
            "nvidia3",
            "nvidia12",
            "nvidiactl",
            "nvidia-uvm",
            "nvidia-modeset",
            "null",
        ] {
            std::fs::write(tmp.path().join(f), "").unwrap();
        }
        assert_eq!(gpu_minors(tmp.path()), vec![0, 3, 12]);
        assert!(gpu_minors(&tmp.path().join("missing")).is_empty());
    }

    #[test]
    fn rules_deny_every_other_gpu() {
        let granted: GpuSet = "1,3".parse().unwrap();
        assert_eq!(
            deny_rules(&[0, 1, 2, 3], &granted),
            vec!["c 195:0 rwm", "c 195:2 rwm"]
        );
        assert_eq!(
            deny_rules(&[0, 1], &GpuSet::new()),
            vec!["c 195:0 rwm", "c 195:1 rwm"]
        );
        assert!(deny_rules(&[], &granted).is_empty());
    }

    fn config(fake: &FakeSys, dev_root: &Path) -> CgroupConfig {
        CgroupConfig {
            root: fake.cgroup_root().to_path_buf(),
            parent: "retz".into(),
            scope: "e".into(),
            memory_limit: true,
            dev_root: dev_root.to_path_buf(),
        }
    }

    #[tokio::test]
    async fn the_task_cgroup_denies_before_the_task_joins_and_goes_with_it() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), FakeLayout::Hybrid).unwrap();
        fake.mount_devices().unwrap();
        let cgs = Cgroups::setup(&fake, &config(&fake, tmp.path()), fake.proc_root()).unwrap();
        assert!(cgs.has_devices());
        let scope = fake.cgroup_root().join("devices/retz/e");
        assert!(scope.is_dir());
        let mut task = cgs
            .create_task(&fake, "t1", None, None, None)
            .await
            .unwrap();
        fake.clear_ops();
        let rules = deny_rules(&[0, 1, 2], &"1".parse().unwrap());
        cgs.deny_devices(&fake, &mut task, "t1", &rules)
            .await
            .unwrap();
        let dir = scope.join("t1");
        assert_eq!(task.devices_dir.as_deref(), Some(dir.as_path()));
        assert_eq!(
            fake.ops(),
            vec![
                Op::Mkdir(dir.clone()),
                Op::Write(dir.join("devices.deny"), "c 195:0 rwm".into()),
                Op::Write(dir.join("devices.deny"), "c 195:2 rwm".into()),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.deny")).unwrap(),
            "c 195:0 rwm\nc 195:2 rwm\n"
        );
        assert!(task.procs_files().contains(&dir.join("cgroup.procs")));
        assert!(
            task.expected
                .contains(&("devices".into(), "/retz/e/t1".into()))
        );
        // Nothing to deny: no devices cgroup.
        let mut other = cgs
            .create_task(&fake, "t2", None, None, None)
            .await
            .unwrap();
        cgs.deny_devices(&fake, &mut other, "t2", &[])
            .await
            .unwrap();
        assert!(other.devices_dir.is_none());
        assert!(!scope.join("t2").exists());
        // Destroying the task removes its devices cgroup too.
        cgs.destroy_task(&fake, &task).await.unwrap();
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn a_refused_rule_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), FakeLayout::V1).unwrap();
        fake.mount_devices().unwrap();
        let cgs = Cgroups::setup(&fake, &config(&fake, tmp.path()), fake.proc_root()).unwrap();
        let mut task = cgs.create_task(&fake, "t", None, None, None).await.unwrap();
        let bad = vec!["c 195:x rwm".to_string()];
        let e = cgs
            .deny_devices(&fake, &mut task, "t", &bad)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("devices.deny"), "{e}");
        assert!(!fake.cgroup_root().join("devices/retz/e/t").exists());
        assert!(task.devices_dir.is_none());
    }

    #[tokio::test]
    async fn without_a_devices_hierarchy_nothing_is_denied_and_setup_says_so() {
        for layout in [FakeLayout::V1, FakeLayout::V2] {
            let tmp = tempfile::tempdir().unwrap();
            let fake = FakeSys::new(tmp.path(), layout).unwrap();
            let dev = tmp.path().join("dev");
            std::fs::create_dir(&dev).unwrap();
            let cgs = Cgroups::setup(&fake, &config(&fake, &dev), fake.proc_root()).unwrap();
            assert!(!cgs.has_devices());
            assert!(cgs.notes().is_empty(), "no GPU, no note: {:?}", cgs.notes());
            std::fs::write(dev.join("nvidia0"), "").unwrap();
            let cgs = Cgroups::setup(&fake, &config(&fake, &dev), fake.proc_root()).unwrap();
            assert!(
                cgs.notes().iter().any(|n| n.contains("GPU devices")),
                "{:?}",
                cgs.notes()
            );
            let mut task = cgs.create_task(&fake, "t", None, None, None).await.unwrap();
            cgs.deny_devices(&fake, &mut task, "t", &["c 195:0 rwm".into()])
                .await
                .unwrap();
            assert!(task.devices_dir.is_none());
        }
    }
}
