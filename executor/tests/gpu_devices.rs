//! GPU device isolation on the real kernel.
//!
//! `the_devices_cgroup_denies_the_gpus_not_granted` needs root and the cgroup v1 devices
//! hierarchy (this project's test machine has both; without them it skips, or fails
//! under `CI=true`). The machine has no GPU, so it makes its own GPU device nodes
//! (`nvidia0`, `nvidia1`: char 195:0 and 195:1) in a directory given to the executor as
//! its `/dev`: a job granted GPU 1 cannot open `nvidia0` (EPERM from the devices cgroup)
//! while opening `nvidia1` reaches the kernel (ENXIO or ENODEV: no driver behind it).
//!
//! `real_gpus_are_isolated` needs NVIDIA GPUs and their driver; it is `#[ignore]`d (not a
//! skip of a capability the test machine should have): run it with `--ignored` on a GPU
//! machine.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use retz_executor::runtime::TaskUpdate;

/// `mknod path c 195 minor`, mode 0666.
fn gpu_node(path: &Path, minor: u64) -> nix::Result<()> {
    nix::sys::stat::mknod(
        path,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(195, minor),
    )?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|_| nix::Error::EPERM)
}

/// A directory every user can reach, holding `nvidia0` and `nvidia1`.
fn fake_dev() -> Option<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("retz-gpu-dev-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for n in 0..2 {
        if let Err(e) = gpu_node(&dir.path().join(format!("nvidia{n}")), n) {
            require(false, &format!("cannot create device nodes in /tmp: {e}"));
            return None;
        }
    }
    Some(dir)
}

/// The line of `out` starting with `label`.
fn line<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {out:?}"))
}

#[tokio::test]
async fn the_devices_cgroup_denies_the_gpus_not_granted() {
    let devices = Path::new("/sys/fs/cgroup/devices/devices.deny").exists();
    if !require(
        devices,
        "no cgroup v1 devices hierarchy at /sys/fs/cgroup/devices",
    ) {
        return;
    }
    if !require(nix::unistd::geteuid().is_root(), "not running as root") {
        return;
    }
    let Some(dev) = fake_dev() else {
        return;
    };
    let dev_root = dev.path().to_path_buf();
    let Some(mut rig) = rig_with("gpudev", |c| c.cgroups.dev_root = dev_root.clone()).await else {
        return;
    };
    assert!(rig.rt.cgroups().unwrap().has_devices());
    let d = dev.path().display();
    let mut s = spec(
        &format!(
            "for n in 0 1; do echo \"open$n $(head -c1 {d}/nvidia$n 2>&1 >/dev/null)\"; done; \
             echo \"cuda=$CUDA_VISIBLE_DEVICES nvidia=$NVIDIA_VISIBLE_DEVICES gpu=$RETZ_GPU\"; \
             grep devices /proc/self/cgroup"
        ),
        "0",
    );
    s.gpus = 1;
    s.gpu_ids = Some("1".parse().unwrap());
    launch(&rig, "g1", s);
    let (_, _, report) = running(&mut rig).await;
    let cg = report.cgroup.clone().expect("a cgroup");
    let devices_dir = cg
        .paths
        .iter()
        .map(PathBuf::from)
        .find(|p| p.starts_with("/sys/fs/cgroup/devices"))
        .unwrap_or_else(|| panic!("no devices cgroup in {:?}", cg.paths));
    // (devices.list keeps showing `a *:* rwm` under an allow-all default: the denials are
    // exceptions it does not list, so what the job can open is checked below.)
    assert!(devices_dir.join("devices.deny").exists());
    assert_eq!(finished(&mut rig).await, "g1");
    let out = stdout(&rig, "g1");
    let denied = line(&out, "open0 ");
    assert!(denied.contains("Operation not permitted"), "{out}");
    let granted = line(&out, "open1 ");
    assert!(
        granted.contains("No such device"),
        "granted GPU reaches the (absent) driver: {out}"
    );
    assert_eq!(line(&out, "cuda="), "cuda=1 nvidia=1 gpu=1", "{out}");
    assert!(out.contains(":devices:/"), "{out}");
    assert!(
        !devices_dir.exists(),
        "devices cgroup removed with the task"
    );

    // A job without GPUs on this agent may open neither.
    let mut s = spec(
        &format!("for n in 0 1; do echo \"open$n $(head -c1 {d}/nvidia$n 2>&1 >/dev/null)\"; done"),
        "0",
    );
    s.gpu_ids = Some(retz_placement::GpuSet::new());
    launch(&rig, "g0", s);
    let _ = running(&mut rig).await;
    assert_eq!(finished(&mut rig).await, "g0");
    let out = stdout(&rig, "g0");
    for label in ["open0 ", "open1 "] {
        assert!(
            line(&out, label).contains("Operation not permitted"),
            "{out}"
        );
    }
    rig.rt.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
#[ignore = "needs NVIDIA GPUs (/dev/nvidia0 and /dev/nvidia1) and their driver; run with --ignored on a GPU machine"]
async fn real_gpus_are_isolated() {
    assert!(
        Path::new("/dev/nvidia1").exists(),
        "this test needs two NVIDIA GPUs"
    );
    let Some(mut rig) = rig("realgpu").await else {
        return;
    };
    let mut s = spec(
        "head -c0 /dev/nvidia1 && echo open1 ok; head -c0 /dev/nvidia0 || echo open0 denied",
        "0",
    );
    s.gpus = 1;
    s.gpu_ids = Some("1".parse().unwrap());
    launch(&rig, "r1", s);
    let _ = running(&mut rig).await;
    let ev = next(&mut rig).await;
    assert!(matches!(ev.update, TaskUpdate::Finished { .. }), "{ev:?}");
    let out = stdout(&rig, "r1");
    assert!(
        out.contains("open1 ok") && out.contains("open0 denied"),
        "{out}"
    );
    rig.rt.shutdown(std::time::Duration::from_secs(1)).await;
}
