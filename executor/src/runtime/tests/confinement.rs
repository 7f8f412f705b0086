//! Job users, the one-owner rule, secrets, PID namespaces, leftovers and the verification
//! race, against the fake kernel.

use super::*;
use crate::sys::Identity;

fn spawns(fake: &FakeSys) -> Vec<Op> {
    fake.ops()
        .into_iter()
        .filter(|op| matches!(op, Op::Spawn { .. }))
        .collect()
}

fn spawn_identity(op: &Op) -> (Option<Identity>, bool) {
    match op {
        Op::Spawn {
            identity,
            pid_namespace,
            ..
        } => (identity.clone(), *pid_namespace),
        other => panic!("not a spawn: {other:?}"),
    }
}

fn with_user(cpuset: &str, user: &str) -> TaskSpec {
    TaskSpec {
        user: Some(user.into()),
        ..spec(cpuset)
    }
}

async fn failure(events: &mut mpsc::UnboundedReceiver<TaskEvent>) -> (FailReason, String) {
    match next(events).await.update {
        TaskUpdate::Failed {
            reason, message, ..
        } => (reason, message),
        other => panic!("expected Failed, got {other:?}"),
    }
}

async fn finished(events: &mut mpsc::UnboundedReceiver<TaskEvent>) -> (String, u32) {
    match next(events).await.update {
        TaskUpdate::Finished {
            message, leftovers, ..
        } => (message, leftovers),
        other => panic!("expected Finished, got {other:?}"),
    }
}

#[tokio::test]
async fn the_spec_user_is_resolved_and_root_never_runs() {
    let mut r = rig_with(FakeLayout::V2, |fake, _| {
        fake.add_user("alice", 1000, 1000, &[1000, 27]);
        fake.add_user("toor", 0, 100, &[100]);
    })
    .await;
    for (user, want) in [
        ("root", "uid 0"),
        ("toor", "uid 0"),
        (" root", "not a plain user name"),
        ("0", "not a plain user name"),
        ("mallory", "does not exist on this agent"),
    ] {
        launch(&r.rt, "t", with_user("1", user));
        let (reason, message) = failure(&mut r.events).await;
        assert_eq!(reason, FailReason::UserRefused, "{user:?}");
        assert!(message.contains(want), "{user:?}: {message}");
        assert!(message.contains(user.trim()), "{user:?}: {message}");
    }
    assert!(spawns(&r.fake).is_empty(), "nothing started as root");
    assert!(
        !r.fake.ops().iter().any(|op| matches!(op, Op::Chown(..))),
        "the sandbox was not handed to anyone"
    );

    launch(&r.rt, "a", with_user("1", "alice"));
    let (_, pid, report) = running(&mut r.events).await;
    assert_eq!(report.user.as_deref(), Some("alice (uid 1000, gid 1000)"));
    let (identity, ns) = spawn_identity(&spawns(&r.fake)[0]);
    assert_eq!(
        identity,
        Some(Identity {
            uid: 1000,
            gid: 1000,
            groups: vec![1000, 27]
        })
    );
    assert!(ns);
    let Op::Spawn { env, .. } = &spawns(&r.fake)[0] else {
        unreachable!()
    };
    let env: BTreeMap<_, _> = env.iter().cloned().collect();
    assert_eq!(env["HOME"], "/home/alice");
    assert_eq!(env["LOGNAME"], "alice");
    // The sandbox went to alice's group, the task's files to alice.
    let ops = r.fake.ops();
    assert!(ops.contains(&Op::Chown(r.sandbox.clone(), Some(0), Some(1000))));
    let task = r.sandbox.join("tasks/a");
    for path in [task.clone(), task.join("stdout"), task.join("stderr")] {
        assert!(
            ops.contains(&Op::Chown(path.clone(), Some(1000), Some(1000))),
            "{path:?}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&r.sandbox), 0o750);
    assert_eq!(mode(&task), 0o700);
    assert_eq!(mode(&task.join("stdout")), 0o600);
    r.fake.exit(pid, ExitStatus::Code(0));
    finished(&mut r.events).await;
}

#[tokio::test]
async fn one_executor_serves_one_owner() {
    let mut r = rig_with(FakeLayout::V1, |fake, _| {
        fake.add_user("alice", 1000, 1000, &[1000]);
        fake.add_user("alias", 1000, 1000, &[1000]);
        fake.add_user("bob", 1001, 1001, &[1001]);
    })
    .await;
    launch(&r.rt, "a1", with_user("0", "alice"));
    let (_, a1, _) = running(&mut r.events).await;
    launch(&r.rt, "b1", with_user("1", "bob"));
    let (reason, message) = failure(&mut r.events).await;
    assert_eq!(reason, FailReason::UserRefused);
    assert!(
        message.contains("already runs the jobs of user alice (uid 1000")
            && message.contains("bob (uid 1001")
            && message.contains("one executor serves one owner"),
        "{message}"
    );
    // The same account under another name is the same owner.
    launch(&r.rt, "a2", with_user("1", "alias"));
    let (_, a2, _) = running(&mut r.events).await;
    for pid in [a1, a2] {
        r.fake.exit(pid, ExitStatus::Code(0));
        finished(&mut r.events).await;
    }
    assert_eq!(spawns(&r.fake).len(), 2);
    let sandbox_chowns = r
        .fake
        .ops()
        .into_iter()
        .filter(|op| matches!(op, Op::Chown(p, ..) if *p == r.sandbox))
        .count();
    assert_eq!(sandbox_chowns, 1, "claimed once, by the first task");
}

#[tokio::test]
async fn an_unprivileged_executor_runs_jobs_as_itself_only() {
    let mut r = rig_with(FakeLayout::V1, |fake, _| {
        fake.add_user("alice", 1000, 1000, &[1000]);
        fake.set_credentials(1000, 1000, false);
        fake.set_cap_sys_admin(false);
    })
    .await;
    launch(&r.rt, "other", spec("1"));
    let (reason, message) = failure(&mut r.events).await;
    assert_eq!(reason, FailReason::UserRefused);
    assert!(
        message.contains("\"nobody\"") && message.contains("uid 1000 without CAP_SETUID"),
        "{message}"
    );
    launch(&r.rt, "self", with_user("1", "alice"));
    let (_, pid, report) = running(&mut r.events).await;
    assert_eq!(spawn_identity(&spawns(&r.fake)[0]), (None, false));
    assert!(!report.pid_namespace);
    assert!(
        report
            .summary()
            .contains("no PID namespace (the executor lacks CAP_SYS_ADMIN)"),
        "{}",
        report.summary()
    );
    assert!(
        !r.fake
            .ops()
            .iter()
            .any(|op| matches!(op, Op::Chown(_, Some(u), _) if *u != 1000)),
        "only chowns to itself: {:?}",
        r.fake.ops()
    );
    r.fake.exit(pid, ExitStatus::Code(0));
    finished(&mut r.events).await;
}

#[tokio::test]
async fn the_executors_secrets_never_reach_a_job() {
    let mut r = rig_config(
        FakeLayout::V2,
        |_, _| {},
        |config| {
            config.base_env.extend([
                (
                    "MESOS_EXECUTOR_AUTHENTICATION_TOKEN".into(),
                    "tok-123".into(),
                ),
                ("MESOS_CREDENTIAL".into(), "/etc/mesos/credential".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ]);
        },
    )
    .await;
    let mut s = spec("1");
    s.env.insert("MINE".into(), "kept".into());
    launch(&r.rt, "t", s);
    running(&mut r.events).await;
    let Op::Spawn { env, .. } = &spawns(&r.fake)[0] else {
        unreachable!()
    };
    let env: BTreeMap<_, _> = env.iter().cloned().collect();
    assert!(!env.contains_key("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"));
    assert!(!env.contains_key("MESOS_CREDENTIAL"));
    assert!(env.values().all(|v| !v.contains("tok-123")));
    assert_eq!(env["LANG"], "C.UTF-8");
    assert_eq!(env["MINE"], "kept");
}

#[tokio::test]
async fn leftovers_reaped_in_the_namespace_are_counted() {
    let mut r = rig(FakeLayout::V2).await;
    r.fake.set_behavior(|_| FakeBehavior {
        background: 2,
        ..Default::default()
    });
    launch(&r.rt, "t", spec("1"));
    let (_, pid, _) = running(&mut r.events).await;
    assert_eq!(r.fake.alive_pids().len(), 3);
    r.fake.exit(pid, ExitStatus::Code(0));
    let (message, leftovers) = finished(&mut r.events).await;
    assert_eq!(leftovers, 2);
    assert_eq!(
        message,
        "command exited with code 0; 2 leftover processes killed"
    );
    assert!(r.fake.alive_pids().is_empty());
    // A failing command says it too.
    r.fake.set_behavior(|_| FakeBehavior {
        background: 1,
        exit_at_once: Some(ExitStatus::Code(4)),
        ..Default::default()
    });
    launch(&r.rt, "f", spec("1"));
    running(&mut r.events).await;
    match next(&mut r.events).await.update {
        TaskUpdate::Failed {
            message,
            exit_code,
            leftovers,
            ..
        } => {
            assert_eq!(
                message,
                "command exited with code 4; 1 leftover process killed"
            );
            assert_eq!((exit_code, leftovers), (Some(4), 1));
        }
        other => panic!("{other:?}"),
    }
}

/// Without a namespace the leftovers are found in the cgroup: v2 `cgroup.kill`, v1 with
/// the freezer (frozen, killed, thawed), v1 without (kill rounds); without a cgroup, in
/// the process group.
#[tokio::test]
async fn leftovers_found_in_the_cgroup_or_group_are_counted() {
    for layout in [FakeLayout::V2, FakeLayout::Hybrid, FakeLayout::V1] {
        let mut r = rig_config(layout, |_, _| {}, |c| c.pid_namespace = false).await;
        r.fake.set_behavior(|_| FakeBehavior {
            background: 2,
            escaped_children: 1,
            ..Default::default()
        });
        launch(&r.rt, "t", spec("1"));
        let (_, pid, report) = running(&mut r.events).await;
        assert!(!report.pid_namespace);
        assert_eq!(
            report.pid_namespace_unavailable.as_deref(),
            Some("disabled by configuration")
        );
        r.fake.clear_ops();
        r.fake.exit(pid, ExitStatus::Code(0));
        let (message, leftovers) = finished(&mut r.events).await;
        assert_eq!(leftovers, 3, "{layout:?}: {message}");
        assert!(
            message.ends_with("; 3 leftover processes killed"),
            "{message}"
        );
        assert!(r.fake.alive_pids().is_empty(), "{layout:?}");
        let ops = r.fake.ops();
        let at = |want: &dyn Fn(&Op) -> bool| ops.iter().position(want);
        let frozen = at(
            &|op| matches!(op, Op::Write(p, v) if p.ends_with("freezer.state") && v == "FROZEN"),
        );
        let thawed = at(
            &|op| matches!(op, Op::Write(p, v) if p.ends_with("freezer.state") && v == "THAWED"),
        );
        let first_kill = at(&|op| matches!(op, Op::Signal(SignalTarget::Process(_), Signal::Kill)));
        let cgroup_kill = at(&|op| matches!(op, Op::Write(p, _) if p.ends_with("cgroup.kill")));
        match layout {
            FakeLayout::V2 => assert!(cgroup_kill.is_some() && frozen.is_none(), "{ops:#?}"),
            FakeLayout::Hybrid => {
                let (f, k, t) = (frozen.unwrap(), first_kill.unwrap(), thawed.unwrap());
                assert!(f < k && k < t, "freeze, kill, thaw: {ops:#?}");
            }
            _ => assert!(first_kill.is_some() && frozen.is_none(), "{ops:#?}"),
        }
    }

    let mut r = rig_with(FakeLayout::V1, |fake, _| fake.set_cap_sys_admin(false)).await;
    r.fake.set_behavior(|_| FakeBehavior {
        background: 2,
        ..Default::default()
    });
    launch(&r.rt, "g", spec("1"));
    let (_, pid, report) = running(&mut r.events).await;
    assert!(report.cgroup.is_none() && !report.pid_namespace);
    r.fake.exit(pid, ExitStatus::Code(0));
    let (message, leftovers) = finished(&mut r.events).await;
    assert_eq!(leftovers, 2, "{message}");
    assert!(r.fake.alive_pids().is_empty());
}

#[tokio::test]
async fn a_namespace_that_cannot_be_entered_falls_back_and_says_so() {
    let mut r = rig(FakeLayout::Hybrid).await;
    r.fake.set_behavior(|_| FakeBehavior {
        namespace_errno: Some(libc::EPERM),
        ..Default::default()
    });
    launch(&r.rt, "t", spec("1"));
    let (_, _, report) = running(&mut r.events).await;
    let tries: Vec<_> = spawns(&r.fake).iter().map(spawn_identity).collect();
    assert_eq!(tries.len(), 2);
    assert!(tries[0].1 && !tries[1].1, "{tries:?}");
    assert!(tries.iter().all(|(id, _)| id.is_some()), "still not root");
    assert!(!report.pid_namespace);
    let why = report.pid_namespace_unavailable.clone().unwrap();
    assert!(
        why.contains("PID namespace") && why.contains("unshare"),
        "{why}"
    );
    assert!(report.cgroup.is_some(), "the cgroup is kept");
}

#[tokio::test]
async fn a_task_ending_during_verification_is_not_drift() {
    // Issue 21: the task exits between the reads of /proc/<pid>/status and cgroup; the
    // kernel then shows it in the root cgroups.
    for pid_namespace in [true, false] {
        let mut r = rig_config(
            FakeLayout::Hybrid,
            |_, _| {},
            |c| {
                c.pid_namespace = pid_namespace;
            },
        )
        .await;
        r.fake.set_behavior(|_| FakeBehavior {
            exit_during_verify: true,
            ..Default::default()
        });
        launch(&r.rt, "quick", spec("1"));
        let (_, _, report) = running(&mut r.events).await;
        assert!(report.drift.is_empty(), "{:?}", report.drift);
        assert_eq!(
            report.outcome,
            Some(retz_proto::task::Verification::Exited),
            "{report:?}"
        );
        let (message, _) = finished(&mut r.events).await;
        assert_eq!(message, "command exited with code 0");
    }
}
