//! Runtime tests against the fake kernel (no root needed). Job users, namespaces and
//! leftovers: [`confinement`].

mod confinement;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cgroup::CgroupConfig;
use crate::spec::TaskSpec;
use crate::sys::fake::{FakeBehavior, FakeLayout, FakeSys, Op};
use crate::sys::{Signal, SignalTarget};
use retz_placement::AffinityPolicy;
use retz_proto::task::{PinMechanism, Verification};

struct Rig {
    _tmp: tempfile::TempDir,
    sandbox: PathBuf,
    fake: FakeSys,
    rt: TaskRuntime,
    events: mpsc::UnboundedReceiver<TaskEvent>,
}

async fn rig_with(layout: FakeLayout, prepare: impl FnOnce(&FakeSys, &Path)) -> Rig {
    rig_config(layout, prepare, |_| {}).await
}

async fn rig_config(
    layout: FakeLayout,
    prepare: impl FnOnce(&FakeSys, &Path),
    configure: impl FnOnce(&mut RuntimeConfig),
) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeSys::new(tmp.path(), layout).unwrap();
    let sandbox = tmp.path().join("sandbox");
    std::fs::create_dir(&sandbox).unwrap();
    prepare(&fake, &sandbox);
    let mut config = RuntimeConfig::new(&sandbox);
    config.cgroups = CgroupConfig {
        root: fake.cgroup_root().to_path_buf(),
        parent: "retz".into(),
        scope: "exec".into(),
        memory_limit: true,
        dev_root: fake.cgroup_root().join("dev"),
    };
    config.proc_root = fake.proc_root().to_path_buf();
    config.base_env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    if sandbox.join("app.tgz").exists() {
        config.artifacts = vec!["app.tgz".into()];
    }
    configure(&mut config);
    let (rt, events) = TaskRuntime::start(Arc::new(fake.clone()), config)
        .await
        .unwrap();
    fake.clear_ops();
    Rig {
        _tmp: tmp,
        sandbox,
        fake,
        rt,
        events,
    }
}

async fn rig(layout: FakeLayout) -> Rig {
    rig_with(layout, |_, _| {}).await
}

fn spec(cpuset: &str) -> TaskSpec {
    TaskSpec {
        command: "run --threads $RETZ_CPU".into(),
        env: BTreeMap::from([("ARGS".into(), "n=$RETZ_CPU $(rm -rf /)".into())]),
        cpus: 1,
        mem_mb: 64,
        gpus: 0,
        gpu_ids: None,
        cpuset: Some(cpuset.parse().unwrap()),
        mem_nodes: Some("0".parse().unwrap()),
        affinity: AffinityPolicy::NumaStrict,
        mem_policy: None,
        pin_required: true,
        job_id: Some(5),
        app: None,
        ports: Vec::new(),
        user: None,
    }
}

fn launch(rt: &TaskRuntime, id: &str, spec: TaskSpec) {
    rt.launch(TaskLaunch {
        task_id: id.into(),
        spec,
        kill_grace: None,
    })
    .unwrap();
}

async fn next(events: &mut mpsc::UnboundedReceiver<TaskEvent>) -> TaskEvent {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("an event within 30 s")
        .expect("the channel is open")
}

async fn running(events: &mut mpsc::UnboundedReceiver<TaskEvent>) -> (String, u32, PinningReport) {
    let ev = next(events).await;
    match ev.update {
        TaskUpdate::Running { pid, pinning, .. } => (ev.task_id, pid, *pinning),
        other => panic!("expected Running, got {other:?}"),
    }
}

fn spawn_op(fake: &FakeSys) -> Op {
    fake.ops()
        .into_iter()
        .find(|op| matches!(op, Op::Spawn { .. }))
        .expect("a spawn")
}

#[tokio::test]
async fn pinned_task_runs_and_finishes_clean() {
    let mut r = rig(FakeLayout::Hybrid).await;
    launch(&r.rt, "t1", spec("1"));
    let (id, pid, report) = running(&mut r.events).await;
    assert_eq!(id, "t1");
    assert_eq!(report.cpus, Some("1".parse().unwrap()));
    assert_eq!(report.observed_cpus, Some("1".parse().unwrap()));
    assert_eq!(report.mem_policy.as_deref(), Some("bind 0"));
    assert!(report.drift.is_empty(), "{:?}", report.drift);
    let cg = report.cgroup.clone().expect("a cgroup");
    let dir = r.fake.cgroup_root().join("cpuset/retz/exec/t1");
    assert_eq!(cg.paths[0], dir.display().to_string());
    assert_eq!(cg.memory_limit_bytes, Some(64 << 20));
    assert_eq!(
        std::fs::read_to_string(dir.join("cpuset.cpus")).unwrap(),
        "1\n"
    );
    assert_eq!(report.observed_cgroups[0], "cpuset:/retz/exec/t1");

    // Order: cgroup made and filled, then the spawn that joins it.
    let ops = r.fake.ops();
    let at = |want: &Op| ops.iter().position(|op| op == want).unwrap();
    let cpus = at(&Op::Write(dir.join("cpuset.cpus"), "1".into()));
    let mems = at(&Op::Write(dir.join("cpuset.mems"), "0".into()));
    let spawn = ops
        .iter()
        .position(|op| matches!(op, Op::Spawn { .. }))
        .unwrap();
    let attach = at(&Op::Attach {
        procs: dir.join("cgroup.procs"),
        pid,
    });
    assert!(at(&Op::Mkdir(dir.clone())) < cpus && cpus < mems && mems < spawn && spawn < attach);

    let Op::Spawn {
        argv,
        env,
        cwd,
        cgroup_procs,
        affinity,
        identity,
        pid_namespace,
        ..
    } = spawn_op(&r.fake)
    else {
        unreachable!()
    };
    assert_eq!(
        identity,
        Some(crate::sys::Identity {
            uid: 65534,
            gid: 65534,
            groups: vec![65534]
        }),
        "the default job user"
    );
    assert!(pid_namespace);
    assert_eq!(
        report.user.as_deref(),
        Some("nobody (uid 65534, gid 65534)")
    );
    assert!(report.pid_namespace);
    assert!(
        report.summary().contains("runs as nobody") && report.summary().contains("PID namespace"),
        "{}",
        report.summary()
    );
    assert_eq!(argv, vec!["sh", "-c", "run --threads 1"]);
    let env: BTreeMap<_, _> = env.into_iter().collect();
    assert_eq!(env["ARGS"], "n=1 $(rm -rf /)");
    assert_eq!(env["RETZ_CPUSET"], "1");
    assert_eq!(env["RETZ_TASK_ID"], "t1");
    assert_eq!(env["RETZ_JOB_ID"], "5");
    assert_eq!(env["USER"], "nobody");
    assert_eq!(env["HOME"], "/nonexistent");
    assert_eq!(
        env["RETZ_PVNAME"],
        r.sandbox.join("app/default").display().to_string()
    );
    assert_eq!(cwd, r.sandbox.join("tasks/t1"));
    assert!(cwd.join("stdout").is_file() && cwd.join("stderr").is_file());
    assert_eq!(cgroup_procs.len(), 3, "cpuset, memory and freezer");
    assert_eq!(affinity.as_deref(), Some("1"));

    r.fake.exit(pid, ExitStatus::Code(0));
    let ev = next(&mut r.events).await;
    let TaskUpdate::Finished {
        message,
        leftovers,
        pinning,
    } = ev.update
    else {
        panic!("expected Finished, got {ev:?}");
    };
    assert_eq!(
        (message.as_str(), leftovers),
        ("command exited with code 0", 0)
    );
    let pinning = pinning.expect("the terminal update carries the verified pinning");
    assert_eq!(pinning.outcome, Verification::Verified);
    assert_eq!(pinning.mechanism, PinMechanism::CgroupV1);
    assert_eq!(pinning.cpus_seen, Some("1".parse().unwrap()));
    assert!(!dir.exists(), "task cgroup removed");
    assert!(!r.fake.cgroup_root().join("memory/retz/exec/t1").exists());
    assert!(r.rt.active_tasks().is_empty());
}

#[tokio::test]
async fn exit_codes_and_signals_fail_the_task() {
    let mut r = rig(FakeLayout::V2).await;
    r.fake.set_behavior(|plan| FakeBehavior {
        exit_at_once: Some(if plan.cwd.ends_with("t3") {
            ExitStatus::Code(3)
        } else {
            ExitStatus::Signal(libc::SIGSEGV)
        }),
        ..Default::default()
    });
    launch(&r.rt, "t3", spec("1"));
    let (_, _, report) = running(&mut r.events).await;
    assert_eq!(report.outcome, Some(Verification::Exited), "{report:?}");
    assert!(report.summary().contains("exited before"), "{report:?}");
    let ev = next(&mut r.events).await;
    match ev.update {
        TaskUpdate::Failed {
            reason,
            message,
            exit_code,
            ..
        } => {
            assert_eq!(reason, FailReason::CommandFailed);
            assert!(message.contains("exited with code 3"), "{message}");
            assert_eq!(exit_code, Some(3));
        }
        other => panic!("{other:?}"),
    }
    launch(&r.rt, "seg", spec("1"));
    running(&mut r.events).await;
    let ev = next(&mut r.events).await;
    assert!(
        matches!(&ev.update, TaskUpdate::Failed { message, .. } if message.contains("signal 11 (SIGSEGV)")),
        "{ev:?}"
    );
    assert!(r.fake.alive_pids().is_empty());
}

#[tokio::test]
async fn kill_terms_then_kills_and_sweeps_the_cgroup() {
    let mut r = rig(FakeLayout::V1).await;
    r.fake.set_behavior(|plan| FakeBehavior {
        ignore_term: plan.cwd.ends_with("stubborn"),
        escaped_children: 2,
        ..Default::default()
    });
    launch(&r.rt, "polite", spec("0"));
    let (_, pid, _) = running(&mut r.events).await;
    assert_eq!(r.fake.alive_pids().len(), 3);
    assert!(r.rt.kill("polite", Some(Duration::from_secs(5))));
    let ev = next(&mut r.events).await;
    match &ev.update {
        TaskUpdate::Killed {
            during_launch,
            message,
            ..
        } => {
            assert!(!during_launch);
            assert!(
                message.contains("SIGTERM, then killed by signal 15"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        r.fake.alive_pids().is_empty(),
        "escaped children swept by the cgroup"
    );
    assert!(
        r.fake
            .ops()
            .contains(&Op::Signal(SignalTarget::Group(pid), Signal::Term))
    );
    assert!(
        !r.fake
            .cgroup_root()
            .join("cpuset/retz/exec/polite")
            .exists()
    );

    r.rt.launch(TaskLaunch {
        task_id: "stubborn".into(),
        spec: spec("1"),
        kill_grace: Some(Duration::from_millis(20)),
    })
    .unwrap();
    let (_, pid, _) = running(&mut r.events).await;
    assert!(r.rt.kill("stubborn", None));
    let ev = next(&mut r.events).await;
    assert!(
        matches!(&ev.update, TaskUpdate::Killed { message, .. }
            if message.contains("no exit within the 20ms grace period, SIGKILL")),
        "{ev:?}"
    );
    assert!(
        r.fake
            .ops()
            .contains(&Op::Signal(SignalTarget::Group(pid), Signal::Kill))
    );
    assert!(r.fake.alive_pids().is_empty());
    assert!(!r.rt.kill("stubborn", None), "no longer active");
}

#[tokio::test]
async fn leftovers_of_a_finished_task_are_killed() {
    let mut r = rig(FakeLayout::V2).await;
    r.fake.set_behavior(|_| FakeBehavior {
        escaped_children: 1,
        ..Default::default()
    });
    launch(&r.rt, "t", spec("2"));
    let (_, pid, _) = running(&mut r.events).await;
    r.fake.exit(pid, ExitStatus::Code(0));
    assert!(matches!(
        next(&mut r.events).await.update,
        TaskUpdate::Finished { message, leftovers: 1, .. }
            if message == "command exited with code 0; 1 leftover process killed"
    ));
    assert!(r.fake.alive_pids().is_empty());
    assert!(!r.fake.cgroup_root().join("retz/exec/t").exists());
}

#[tokio::test]
async fn impossible_required_pinning_fails_before_spawning() {
    let mut r = rig(FakeLayout::V1).await;
    launch(&r.rt, "t", spec("2-9"));
    let ev = next(&mut r.events).await;
    match ev.update {
        TaskUpdate::Failed {
            reason, message, ..
        } => {
            assert_eq!(reason, FailReason::PinningImpossible);
            assert!(
                message.contains("4-9") && message.contains("0-3"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        r.fake
            .ops()
            .iter()
            .all(|op| !matches!(op, Op::Spawn { .. }))
    );
    // Not required: runs on what exists, and says so.
    let mut s = spec("2-9");
    s.pin_required = false;
    launch(&r.rt, "t2", s);
    let (_, _, report) = running(&mut r.events).await;
    assert_eq!(report.cpus, Some("2-3".parse().unwrap()));
    assert!(report.notes.iter().any(|n| n.contains("4-9")), "{report:?}");
}

#[tokio::test]
async fn drift_fails_a_required_task_and_is_reported_otherwise() {
    let mut r = rig(FakeLayout::V1).await;
    r.fake.set_behavior(|_| FakeBehavior {
        reported_cpus: Some("0-3".parse().unwrap()),
        ..Default::default()
    });
    launch(&r.rt, "req", spec("1"));
    let ev = next(&mut r.events).await;
    assert!(
        matches!(&ev.update, TaskUpdate::Failed { reason: FailReason::PinningImpossible, message, .. }
            if message.contains("Cpus_allowed_list is 0-3, applied 1")),
        "{ev:?}"
    );
    assert!(r.fake.alive_pids().is_empty());
    let mut s = spec("1");
    s.pin_required = false;
    launch(&r.rt, "opt", s);
    let (_, _, report) = running(&mut r.events).await;
    assert_eq!(report.drift.len(), 1);
    assert!(report.summary().contains("DRIFT"));
}

#[tokio::test]
async fn without_cgroup_rights_affinity_alone() {
    let mut r = rig_with(FakeLayout::V1, |fake, _| fake.set_cap_sys_admin(false)).await;
    assert!(r.rt.cgroups().unwrap_err().contains("CAP_SYS_ADMIN"));
    launch(&r.rt, "t", spec("1"));
    let (_, _, report) = running(&mut r.events).await;
    assert!(report.cgroup.is_none());
    assert!(
        report.summary().contains("affinity alone"),
        "{}",
        report.summary()
    );
    assert_eq!(report.observed_cpus, Some("1".parse().unwrap()));
    let Op::Spawn {
        cgroup_procs,
        affinity,
        ..
    } = spawn_op(&r.fake)
    else {
        unreachable!()
    };
    assert!(cgroup_procs.is_empty());
    assert_eq!(affinity.as_deref(), Some("1"));
}

#[tokio::test]
async fn a_failing_cgroup_join_falls_back_to_affinity() {
    let mut r = rig(FakeLayout::V1).await;
    let procs = r.fake.cgroup_root().join("cpuset/retz/exec/t/cgroup.procs");
    r.fake.fail_writes(&procs, libc::EACCES);
    launch(&r.rt, "t", spec("1"));
    let (_, pid, report) = running(&mut r.events).await;
    let why = report.cgroup_unavailable.clone().unwrap();
    assert!(why.contains(&procs.display().to_string()), "{why}");
    assert!(report.cgroup.is_none());
    assert!(
        !procs.parent().unwrap().exists(),
        "the unused cgroup is removed"
    );
    r.fake.exit(pid, ExitStatus::Code(0));
    assert!(matches!(
        next(&mut r.events).await.update,
        TaskUpdate::Finished { .. }
    ));
}

#[tokio::test]
async fn bad_specs_and_duplicates() {
    let mut r = rig(FakeLayout::V2).await;
    let mut s = spec("1");
    s.command = String::new();
    launch(&r.rt, "empty", s);
    let ev = next(&mut r.events).await;
    assert!(
        matches!(&ev.update, TaskUpdate::Failed { reason: FailReason::InvalidTask, message, .. } if message.contains("`command`")),
        "{ev:?}"
    );
    launch(&r.rt, "dup", spec("1"));
    running(&mut r.events).await;
    assert_eq!(
        r.rt.launch(TaskLaunch {
            task_id: "dup".into(),
            spec: spec("1"),
            kill_grace: None
        }),
        Err(LaunchError::Duplicate("dup".into()))
    );
    r.fake.set_behavior(|_| FakeBehavior {
        exec_errno: Some(libc::ENOENT),
        ..Default::default()
    });
    launch(&r.rt, "noexec", spec("1"));
    let ev = next(&mut r.events).await;
    assert!(
        matches!(&ev.update, TaskUpdate::Failed { reason: FailReason::LaunchFailed, message, .. } if message.contains("`sh`")),
        "{ev:?}"
    );
    assert!(!r.fake.cgroup_root().join("retz/exec/noexec").exists());
}

#[tokio::test]
async fn kill_during_launch() {
    let mut r = rig(FakeLayout::V1).await;
    let lock = r.rt.inner.app_lock("default");
    let guard = lock.lock().await;
    launch(&r.rt, "early", spec("1"));
    assert!(r.rt.kill("early", None));
    let ev = next(&mut r.events).await;
    assert_eq!(
        ev.update,
        TaskUpdate::Killed {
            during_launch: true,
            message: "killed before the task started".into(),
            leftovers: 0,
            pinning: None,
        }
    );
    drop(guard);
    assert!(
        r.fake
            .ops()
            .iter()
            .all(|op| !matches!(op, Op::Spawn { .. }))
    );
}

#[tokio::test]
async fn concurrent_tasks_each_get_their_cpus() {
    let mut r = rig(FakeLayout::V2).await;
    launch(&r.rt, "a", spec("0"));
    launch(&r.rt, "b", spec("1"));
    let mut seen = BTreeMap::new();
    for _ in 0..2 {
        let (id, pid, report) = running(&mut r.events).await;
        seen.insert(id, (pid, report.observed_cpus.unwrap().to_string()));
    }
    assert_eq!(seen["a"].1, "0");
    assert_eq!(seen["b"].1, "1");
    assert_eq!(r.rt.active_tasks(), vec!["a", "b"]);
    for (pid, _) in seen.values() {
        r.fake.exit(*pid, ExitStatus::Code(0));
    }
    for _ in 0..2 {
        assert!(matches!(
            next(&mut r.events).await.update,
            TaskUpdate::Finished { .. }
        ));
    }
}

#[tokio::test]
async fn shutdown_kills_everything_and_removes_the_scope() {
    let mut r = rig(FakeLayout::Hybrid).await;
    r.fake.set_behavior(|_| FakeBehavior {
        ignore_term: true,
        escaped_children: 1,
        ..Default::default()
    });
    launch(&r.rt, "a", spec("0"));
    launch(&r.rt, "b", spec("1"));
    running(&mut r.events).await;
    running(&mut r.events).await;
    r.rt.shutdown(Duration::from_millis(10)).await;
    for _ in 0..2 {
        assert!(matches!(
            next(&mut r.events).await.update,
            TaskUpdate::Killed { .. }
        ));
    }
    assert!(r.fake.alive_pids().is_empty());
    assert!(!r.fake.cgroup_root().join("cpuset/retz/exec").exists());
    assert!(!r.fake.cgroup_root().join("memory/retz/exec").exists());
    assert_eq!(
        r.rt.launch(TaskLaunch {
            task_id: "late".into(),
            spec: spec("0"),
            kill_grace: None
        }),
        Err(LaunchError::ShuttingDown("late".into()))
    );
}

#[tokio::test]
async fn application_unpacked_once_for_all_tasks() {
    let mut r = rig_with(FakeLayout::V2, |_, sandbox| {
        let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(enc);
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, "bin/app", &b"app"[..]).unwrap();
        std::fs::write(
            sandbox.join("app.tgz"),
            b.into_inner().unwrap().finish().unwrap(),
        )
        .unwrap();
    })
    .await;
    let mut s = spec("1");
    s.app = Some("batch".into());
    launch(&r.rt, "first", s.clone());
    let (_, pid, _) = running(&mut r.events).await;
    let app = r.sandbox.join("app/batch");
    assert_eq!(std::fs::read_to_string(app.join("bin/app")).unwrap(), "app");
    // Mark it, so a re-extraction would show.
    std::fs::write(app.join("bin/app"), "touched").unwrap();
    r.fake.exit(pid, ExitStatus::Code(0));
    next(&mut r.events).await;
    launch(&r.rt, "second", s);
    running(&mut r.events).await;
    assert_eq!(
        std::fs::read_to_string(app.join("bin/app")).unwrap(),
        "touched"
    );
    assert!(r.sandbox.join("tasks/first/stdout").exists());
    assert!(r.sandbox.join("tasks/second/stdout").exists());
}
