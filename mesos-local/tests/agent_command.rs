//! Command tasks (no executor): the agent runs and supervises the process itself.

mod agent_support;

use std::time::Duration;

use agent_support::*;
use retz_mesos_local::agent::AgentReport;
use retz_mesos_local::agent::process;
use retz_proto::mesos::environment::Variable;
use retz_proto::mesos::task_status::{Reason, Source};
use retz_proto::mesos::{CommandInfo, DurationInfo, Environment, KillPolicy, TaskState};

#[tokio::test]
async fn command_runs_output_lands_in_sandbox_and_updates_wait_for_acks() {
    let mut h = Harness::start().await;
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("t1", shell("echo hello; echo oops >&2"))],
    );
    let running = h.next_update().await;
    assert_eq!(running.task_id.value, "t1");
    assert_eq!(running.state(), TaskState::TaskRunning);
    assert_eq!(running.source(), Source::Executor);
    assert_eq!(running.executor_id.as_ref().unwrap().value, "t1");
    let cs = running.container_status.as_ref().unwrap();
    assert!(cs.executor_pid.is_some());
    assert!(cs.container_id.is_some());

    // The command finishes, but TASK_FINISHED waits for the acknowledgement of
    // TASK_RUNNING: the next event is the process exit, not the update.
    let status = h.expect_exited("t1").await;
    assert_eq!(status, 0);
    h.ack(&running);
    let finished = h.next_update().await;
    assert_eq!(finished.state(), TaskState::TaskFinished);
    assert_eq!(
        finished.message.as_deref(),
        Some("Command exited with status 0")
    );
    assert_ne!(finished.uuid, running.uuid);
    h.ack(&finished);

    let sandbox = h.sandbox("t1");
    assert_eq!(read(&sandbox.join("stdout")), "hello\n");
    assert_eq!(read(&sandbox.join("stderr")), "oops\n");
    // Mesos' layout, with `latest` pointing at the run
    let runs = sandbox.parent().unwrap();
    assert!(runs.ends_with("frameworks/M-0000/executors/t1/runs"));
    assert_eq!(
        std::fs::canonicalize(runs.join("latest")).unwrap(),
        std::fs::canonicalize(&sandbox).unwrap()
    );
    assert!(runs.starts_with(h.dir.path().join("work/slaves/M-S0")));
    // command tasks are not custom executors
    assert!(h.agent.executor_ids(&fid()).is_empty());
}

#[tokio::test]
async fn failing_command_reports_its_exit_code() {
    let mut h = Harness::start().await;
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("bad", shell("exit 3"))],
    );
    h.expect_update("bad", TaskState::TaskRunning).await;
    let failed = h.expect_update("bad", TaskState::TaskFailed).await;
    assert_eq!(
        failed.message.as_deref(),
        Some("Command exited with status 3")
    );
    assert_eq!(h.expect_exited("bad").await, 3 << 8);
}

#[tokio::test]
async fn kill_escalates_to_sigkill_and_leaves_no_process() {
    let mut h = Harness::start().await;
    // ignores SIGTERM (and so does its child), so only the SIGKILL after the grace ends it
    let script = "trap '' TERM; sleep 1000 & echo $! > child; wait";
    h.agent
        .launch(&framework(), None, vec![command_task("k", shell(script))]);
    h.expect_update("k", TaskState::TaskRunning).await;
    let pgid = h.wait_pid("k").await;
    let sandbox = h.sandbox("k");
    let child: u32 = wait_for(|| {
        std::fs::read_to_string(sandbox.join("child"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .await;
    assert!(is_pid_alive(child));
    h.agent.kill_task(
        &fid(),
        &tid("k"),
        Some(KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: 200_000_000,
            }),
        }),
    );
    let killed = h.expect_update("k", TaskState::TaskKilled).await;
    assert_eq!(
        killed.message.as_deref(),
        Some("Command terminated with signal Killed")
    );
    assert_eq!(h.expect_exited("k").await & 0x7f, 9);
    wait_for(|| (!is_pid_alive(child)).then_some(())).await;
    assert!(!process::group_alive(pgid));
}

#[tokio::test]
async fn kill_with_task_killing_capability_sends_killing_first() {
    use retz_proto::mesos::framework_info::Capability;
    use retz_proto::mesos::framework_info::capability::Type;
    let mut h = Harness::start().await;
    let mut fw = framework();
    fw.capabilities.push(Capability {
        r#type: Some(Type::TaskKillingState as i32),
    });
    h.agent.launch(
        &fw,
        None,
        vec![command_task("k2", shell("exec sleep 1000"))],
    );
    h.expect_update("k2", TaskState::TaskRunning).await;
    h.agent.kill_task(&fid(), &tid("k2"), None);
    h.expect_update("k2", TaskState::TaskKilling).await;
    let killed = h.expect_update("k2", TaskState::TaskKilled).await;
    assert_eq!(
        killed.message.as_deref(),
        Some("Command terminated with signal Terminated")
    );
    h.expect_exited("k2").await;
}

#[tokio::test]
async fn environment_and_direct_exec() {
    let mut h = Harness::start().await;
    let direct = CommandInfo {
        value: Some("/usr/bin/env".into()),
        shell: Some(false),
        arguments: vec!["env".into()],
        environment: Some(Environment {
            variables: vec![Variable {
                name: "RETZ_TEST_VAR".into(),
                value: Some("a b $HOME".into()),
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    h.agent
        .launch(&framework(), None, vec![command_task("env", direct)]);
    h.expect_update("env", TaskState::TaskRunning).await;
    h.expect_update("env", TaskState::TaskFinished).await;
    h.expect_exited("env").await;
    let sandbox = h.sandbox("env");
    let out = read(&sandbox.join("stdout"));
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} not in:\n{out}"))
            .to_string()
    };
    let dir = sandbox.to_string_lossy().into_owned();
    assert_eq!(get("MESOS_FRAMEWORK_ID"), FID);
    assert_eq!(get("MESOS_EXECUTOR_ID"), "env");
    assert_eq!(get("MESOS_DIRECTORY"), dir);
    assert_eq!(get("MESOS_SANDBOX"), dir);
    assert_eq!(get("MESOS_AGENT_ENDPOINT"), h.agent.endpoint().to_string());
    assert_eq!(get("MESOS_SLAVE_ID"), "M-S0");
    assert_eq!(
        get("MESOS_SLAVE_PID"),
        format!("slave(1)@{}", h.agent.endpoint())
    );
    assert_eq!(get("MESOS_CHECKPOINT"), "0");
    assert_eq!(get("MESOS_HTTP_COMMAND_EXECUTOR"), "0");
    assert_eq!(get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), "5secs");
    assert_eq!(get("LIBPROCESS_PORT"), "0");
    assert_eq!(get("RETZ_TEST_VAR"), "a b $HOME");
    assert!(!out.contains("MESOS_RECOVERY_TIMEOUT"));

    // a checkpointing framework gets the recovery variables
    let mut fw = framework();
    fw.checkpoint = Some(true);
    h.agent
        .launch(&fw, None, vec![command_task("ckpt", shell("env"))]);
    h.expect_update("ckpt", TaskState::TaskRunning).await;
    h.expect_update("ckpt", TaskState::TaskFinished).await;
    h.expect_exited("ckpt").await;
    let out = read(&h.sandbox("ckpt").join("stdout"));
    assert!(out.contains("MESOS_CHECKPOINT=1\n"), "{out}");
    assert!(out.contains("MESOS_RECOVERY_TIMEOUT=15mins\n"), "{out}");
    assert!(
        out.contains("MESOS_SUBSCRIPTION_BACKOFF_MAX=2secs\n"),
        "{out}"
    );
}

#[tokio::test]
async fn launch_failures_are_reported_by_the_agent() {
    let mut h = Harness::start().await;
    let missing = CommandInfo {
        uris: vec![retz_proto::mesos::command_info::Uri {
            value: "file:///nonexistent/retz/app.tgz".into(),
            ..Default::default()
        }],
        ..shell("true")
    };
    h.agent
        .launch(&framework(), None, vec![command_task("nofile", missing)]);
    let failed = h.expect_update("nofile", TaskState::TaskFailed).await;
    assert_eq!(failed.source(), Source::Agent);
    assert_eq!(failed.reason(), Reason::ContainerLaunchFailed);
    let msg = failed.message.unwrap();
    assert!(msg.contains("/nonexistent/retz/app.tgz"), "{msg}");
    assert_eq!(h.expect_exited("nofile").await, -1);

    // a task with neither command nor executor
    let mut bare = command_task("bare", shell("true"));
    bare.command = None;
    h.agent.launch(&framework(), None, vec![bare]);
    let err = h.expect_update("bare", TaskState::TaskError).await;
    assert_eq!(err.reason(), Reason::TaskInvalid);

    // an id that would climb out of the sandbox tree
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("../x", shell("true"))],
    );
    let err = h.expect_update("../x", TaskState::TaskError).await;
    assert!(err.message.unwrap().contains("invalid task id"));

    // a program that does not exist
    let nope = CommandInfo {
        value: Some("/nonexistent/prog".into()),
        shell: Some(false),
        ..Default::default()
    };
    h.agent
        .launch(&framework(), None, vec![command_task("noprog", nope)]);
    let failed = h.expect_update("noprog", TaskState::TaskFailed).await;
    assert_eq!(failed.reason(), Reason::ContainerLaunchFailed);
    assert_eq!(h.expect_exited("noprog").await, -1);
}

#[tokio::test]
async fn registration_timeout_covers_a_stuck_fetch() {
    // an HTTP server that accepts and never answers
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    let mut h = Harness::start_with(|c| {
        c.executor_registration_timeout = Duration::from_millis(300);
    })
    .await;
    let stuck = CommandInfo {
        uris: vec![retz_proto::mesos::command_info::Uri {
            value: format!("http://{addr}/never.tgz"),
            ..Default::default()
        }],
        ..shell("true")
    };
    h.agent
        .launch(&framework(), None, vec![command_task("stuck", stuck)]);
    let failed = h.expect_update("stuck", TaskState::TaskFailed).await;
    assert_eq!(failed.reason(), Reason::ExecutorRegistrationTimeout);
    assert_eq!(failed.source(), Source::Agent);
    assert_eq!(h.expect_exited("stuck").await, -1);
    hold.abort();
}

#[tokio::test]
async fn kill_before_start_and_kill_of_unknown_task() {
    let mut h = Harness::start_with(|c| {
        c.executor_registration_timeout = Duration::from_secs(600);
    })
    .await;
    // an unknown task
    h.agent.kill_task(&fid(), &tid("ghost"), None);
    let lost = h.expect_update("ghost", TaskState::TaskLost).await;
    assert_eq!(lost.source(), Source::Agent);

    // a task still fetching (from a server that never answers) is killed by the agent
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    let stuck = CommandInfo {
        uris: vec![retz_proto::mesos::command_info::Uri {
            value: format!("http://{addr}/never.tgz"),
            ..Default::default()
        }],
        ..shell("true")
    };
    h.agent
        .launch(&framework(), None, vec![command_task("early", stuck)]);
    h.agent.kill_task(&fid(), &tid("early"), None);
    let killed = h.expect_update("early", TaskState::TaskKilled).await;
    assert_eq!(killed.reason(), Reason::TaskKilledDuringLaunch);
    h.expect_exited("early").await;
    hold.abort();
}

#[tokio::test]
async fn dropping_the_agent_kills_its_processes() {
    let mut h = Harness::start().await;
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("orphan?", shell("sleep 1000"))],
    );
    h.expect_update("orphan?", TaskState::TaskRunning).await;
    let pgid = h.wait_pid("orphan?").await;
    assert!(process::group_alive(pgid));
    let Harness { agent, rx, dir } = h;
    drop(agent);
    wait_for(|| (!process::group_alive(pgid)).then_some(())).await;
    drop((rx, dir));
}

#[tokio::test]
async fn kill_agent_and_stop() {
    let mut h = Harness::start_with(|c| {
        c.executor_shutdown_grace_period = Duration::from_millis(200);
    })
    .await;
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("a", shell("sleep 1000"))],
    );
    h.expect_update("a", TaskState::TaskRunning).await;
    let pgid = h.wait_pid("a").await;
    h.agent.kill_agent().await;
    assert!(!process::group_alive(pgid));
    // a dead agent sends nothing more and refuses launches
    h.agent
        .launch(&framework(), None, vec![command_task("b", shell("true"))]);
    assert!(h.rx.try_recv().is_err());

    // graceful stop: the command is terminated (TASK_KILLED) before the agent goes
    let mut h = Harness::start_with(|c| {
        c.executor_shutdown_grace_period = Duration::from_millis(200);
    })
    .await;
    h.agent.launch(
        &framework(),
        None,
        vec![command_task("c", shell("exec sleep 1000"))],
    );
    h.expect_update("c", TaskState::TaskRunning).await;
    let pgid = h.wait_pid("c").await;
    h.agent.stop().await;
    assert!(!process::group_alive(pgid));
    let mut saw_killed = false;
    while let Ok(ev) = h.rx.try_recv() {
        if let AgentReport::StatusUpdate { status, .. } = ev {
            saw_killed |= status.state() == TaskState::TaskKilled;
        }
    }
    assert!(saw_killed);
}

/// Runs a command task to its end; its stdout, and the last status.
async fn run_to_end(
    h: &mut Harness,
    fw: &retz_proto::mesos::FrameworkInfo,
    id: &str,
    cmd: CommandInfo,
) -> (String, retz_proto::mesos::TaskStatus) {
    h.agent.launch(fw, None, vec![command_task(id, cmd)]);
    h.expect_update(id, TaskState::TaskRunning).await;
    let end = h.next_update().await;
    h.ack(&end);
    h.expect_exited(id).await;
    (read(&h.sandbox(id).join("stdout")), end)
}

#[tokio::test]
async fn under_root_command_tasks_run_as_their_user_unprivileged() {
    if !need_root("under_root_command_tasks_run_as_their_user_unprivileged") {
        return;
    }
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let (uid, gid) = ids_of("nobody");
    let mut h = Harness::start().await;
    let mut fw = framework();
    fw.user = "nobody".into();
    let script = "id -u; id -g; id -G; grep -E '^(NoNewPrivs|CapEff|CapPrm):' /proc/self/status; \
                  echo USER=$USER; touch mine; cat /etc/shadow >/dev/null 2>&1 || echo no-shadow";
    let (out, end) = run_to_end(&mut h, &fw, "who", shell(script)).await;
    assert_eq!(end.state(), TaskState::TaskFinished, "{end:?}\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], uid.to_string(), "{out}");
    assert_eq!(lines[1], gid.to_string(), "{out}");
    assert!(
        !lines[2].split(' ').any(|g| g == "0"),
        "group root kept: {out}"
    );
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000000"), "{out}");
    assert!(out.contains("USER=nobody"), "{out}");
    assert!(out.contains("no-shadow"), "{out}");
    // the sandbox is the user's, private to it
    let sandbox = h.sandbox("who");
    let meta = std::fs::metadata(&sandbox).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(sandbox.join("mine")).unwrap().uid(), uid);
    assert_eq!(
        std::fs::metadata(sandbox.join("stdout")).unwrap().uid(),
        uid
    );

    // CommandInfo.user wins over FrameworkInfo.user
    let (daemon_uid, _) = ids_of("daemon");
    let cmd = CommandInfo {
        user: Some("daemon".into()),
        ..shell("id -u")
    };
    let (out, _) = run_to_end(&mut h, &fw, "daemon", cmd).await;
    assert_eq!(out.trim(), daemon_uid.to_string());
}

#[tokio::test]
async fn under_root_root_is_refused_in_any_spelling() {
    if !need_root("under_root_root_is_refused_in_any_spelling") {
        return;
    }
    let mut h = Harness::start().await;
    let mut n = 0;
    for user in ["root", "0", " root", "ROOT", "00"] {
        n += 1;
        let id = format!("r{n}");
        let cmd = CommandInfo {
            user: Some(user.into()),
            ..shell("touch ran")
        };
        h.agent
            .launch(&framework(), None, vec![command_task(&id, cmd)]);
        let s = h.expect_update(&id, TaskState::TaskError).await;
        assert_eq!(s.reason(), Reason::TaskUnauthorized, "{user:?}");
        assert_eq!(s.source(), Source::Agent);
        let msg = s.message.unwrap_or_default();
        assert!(
            msg.contains("does not run tasks as root"),
            "{user:?}: {msg}"
        );
        assert!(
            h.agent.sandbox_dir(&fid(), &eid(&id)).is_none(),
            "{user:?} got a sandbox"
        );
    }
    // FrameworkInfo.user root, nothing in CommandInfo
    let mut fw = framework();
    fw.user = "root".into();
    h.agent
        .launch(&fw, None, vec![command_task("fwroot", shell("touch ran"))]);
    let s = h.expect_update("fwroot", TaskState::TaskError).await;
    assert!(s.message.unwrap().contains("does not run tasks as root"));
    // an unknown user
    let cmd = CommandInfo {
        user: Some("no-such-user-retz".into()),
        ..shell("true")
    };
    h.agent
        .launch(&framework(), None, vec![command_task("ghost", cmd)]);
    let s = h.expect_update("ghost", TaskState::TaskError).await;
    assert_eq!(s.reason(), Reason::TaskInvalid);
    assert!(s.message.unwrap().contains("does not exist"));
    // nothing ran, nothing else happened
    assert!(h.rx.try_recv().is_err());
}
