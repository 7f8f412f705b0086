//! Tests of the fake kernel's rules.

use super::cgroupfs::{read_procs, read_trim};
use super::*;
use crate::sys::Sys;

#[tokio::test]
async fn v1_attach_needs_cpus_and_mems_first() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeSys::new(tmp.path(), FakeLayout::V1).unwrap();
    let cg = fake.cgroup_root().join("cpuset/t");
    fake.create_dir(&cg).unwrap();
    assert_eq!(read_trim(&cg.join("cpuset.cpus")), "");
    let plan = SpawnPlan {
        argv: vec!["sh".into()],
        env: vec![],
        cwd: tmp.path().into(),
        stdout: tmp.path().join("o"),
        stderr: tmp.path().join("e"),
        cgroup_procs: vec![cg.join("cgroup.procs")],
        affinity: None,
        mem_policy: None,
        identity: None,
        pid_namespace: false,
    };
    let err = fake.spawn(&plan).unwrap_err();
    assert!(
        matches!(err, SpawnError::Attach { ref source, .. }
        if source.raw_os_error() == Some(libc::ENOSPC)),
        "{err}"
    );
    assert_eq!(
        fake.write_file(&cg.join("cpuset.cpus"), "7")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EINVAL),
        "not a subset of the parent"
    );
    fake.write_file(&cg.join("cpuset.cpus"), "1").unwrap();
    fake.write_file(&cg.join("cpuset.mems"), "0").unwrap();
    let child = fake.spawn(&plan).unwrap();
    assert_eq!(read_procs(&cg), vec![child.pid]);
    let status = fake
        .read_file(&fake.proc_root().join(child.pid.to_string()).join("status"))
        .unwrap();
    assert!(status.contains("Cpus_allowed_list:\t1\n"), "{status}");
    let cgroup = fake
        .read_file(&fake.proc_root().join(child.pid.to_string()).join("cgroup"))
        .unwrap();
    assert!(cgroup.contains(":cpuset:/t\n"), "{cgroup}");
    assert_eq!(
        fake.remove_dir(&cg).unwrap_err().raw_os_error(),
        Some(libc::EBUSY)
    );
    fake.signal(SignalTarget::Group(child.pid), Signal::Term)
        .unwrap();
    assert_eq!(
        child.exit.await.unwrap(),
        TaskExit::plain(ExitStatus::Signal(libc::SIGTERM))
    );
    fake.remove_dir(&cg).unwrap();
    assert!(!cg.exists());
    assert!(
        fake.signal(SignalTarget::Group(child.pid), Signal::Kill)
            .is_err_and(|e| crate::sys::is_gone(&e))
    );
}

#[test]
fn v2_controllers_follow_subtree_control() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeSys::new(tmp.path(), FakeLayout::V2).unwrap();
    let root = fake.cgroup_root().to_path_buf();
    let a = root.join("a");
    fake.create_dir(&a).unwrap();
    assert!(!a.join("cpuset.cpus").exists());
    fake.write_file(&root.join("cgroup.subtree_control"), "+cpuset +memory")
        .unwrap();
    assert!(a.join("cpuset.cpus").exists() && a.join("memory.max").exists());
    assert_eq!(
        fake.write_file(&a.join("cgroup.subtree_control"), "+hugetlb")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOENT)
    );
    let proc_status = fake
        .read_file(&fake.proc_root().join("self/cgroup"))
        .unwrap();
    assert_eq!(proc_status, "0::/\n");
}
