//! Jobs are confined, on the real kernel: they run as the job user (`nobody` by default)
//! with no capabilities and `no_new_privs`, cannot write their cgroup, move themselves,
//! widen their CPUs, read root's files, signal another job, or leave a process behind;
//! their sandbox belongs to them and their application is read-only (its tree, laid out
//! in their working directory, is theirs to add to). Needs root and a
//! cpuset cgroup controller; skips without them, fails under `CI=true`.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use retz_executor::runtime::TaskUpdate;

fn account(name: &str) -> Option<nix::unistd::User> {
    nix::unistd::User::from_name(name).ok().flatten()
}

/// `(uid, gid)` of `name`, or `None` (after `require`) when the account is missing.
fn ids(name: &str) -> Option<(u32, u32)> {
    let user = account(name);
    require(
        user.is_some(),
        &format!("no `{name}` account on this machine"),
    )
    .then(|| user.map(|u| (u.uid.as_raw(), u.gid.as_raw())))
    .flatten()
}

/// Waits for task `id` to write `started` in its directory.
async fn started(rig: &Rig, id: &str) {
    wait_for_file(&rig.tmp.path().join("tasks").join(id).join("started")).await;
}

/// Lets task `id` (waiting for `go` in its directory) finish.
fn go(rig: &Rig, id: &str) {
    std::fs::write(rig.tmp.path().join("tasks").join(id).join("go"), "").unwrap();
}

const WAIT_FOR_GO: &str = "echo started > started; while [ ! -e go ]; do sleep 0.05; done";

async fn finished_update(rig: &mut Rig) -> (String, String, u32) {
    let ev = next(rig).await;
    match ev.update {
        TaskUpdate::Finished {
            message, leftovers, ..
        } => (ev.task_id, message, leftovers),
        other => panic!("{}: expected Finished, got {other:?}", ev.task_id),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn jobs_run_as_nobody_with_no_privileges_left() {
    let Some((uid, gid)) = ids("nobody") else {
        return;
    };
    let Some(mut rig) = rig_with("ids", |config| {
        config.base_env.push((
            "MESOS_EXECUTOR_AUTHENTICATION_TOKEN".into(),
            "executor-secret-token".into(),
        ));
    })
    .await
    else {
        return;
    };
    let command = r#"echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status
echo "home=$HOME user=$USER logname=$LOGNAME"
env | grep -c executor-secret-token || true"#;
    launch(&rig, "ids", spec(command, "1"));
    let (_, _, report) = running(&mut rig).await;
    assert!(report.pid_namespace, "{report:?}");
    assert_eq!(
        report.user,
        Some(format!("nobody (uid {uid}, gid {gid})")),
        "{report:?}"
    );
    finished(&mut rig).await;
    let out = stdout(&rig, "ids");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("uid={uid} gid={gid} groups={gid}"),
        "{out}"
    );
    for (i, cap) in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .iter()
        .enumerate()
    {
        assert_eq!(lines[1 + i], format!("{cap}:\t0000000000000000"), "{out}");
    }
    assert_eq!(lines[6], "NoNewPrivs:\t1", "{out}");
    let home = account("nobody").unwrap().dir;
    assert_eq!(
        lines[7],
        format!("home={} user=nobody logname=nobody", home.display()),
        "{out}"
    );
    assert_eq!(lines[8], "0", "the executor's token reached the job: {out}");

    // Root, in any spelling, never runs.
    for user in ["root", " root", "0"] {
        let mut s = spec("id -u > ran-as-root", "1");
        s.user = Some(user.into());
        launch(&rig, "root", s);
        let ev = next(&mut rig).await;
        assert!(
            matches!(&ev.update, TaskUpdate::Failed { message, .. } if message.contains(user.trim())),
            "{ev:?}"
        );
        assert!(!rig.tmp.path().join("tasks/root/ran-as-root").exists());
    }
    rig.rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_job_cannot_change_its_cgroup_or_cpus_or_read_roots_files() {
    let Some(mut rig) = rig("walls").await else {
        return;
    };
    let command = r#"cg=$(grep ':cpuset:' /proc/self/cgroup | cut -d: -f3)
mem=$(grep ':memory:' /proc/self/cgroup | cut -d: -f3)
try() { if eval "$2" 2>/dev/null; then echo "$1=ALLOWED"; else echo "$1=denied"; fi; }
try cpus "echo 0-1 > /sys/fs/cgroup/cpuset$cg/cpuset.cpus"
try memory "echo -1 > /sys/fs/cgroup/memory$mem/memory.limit_in_bytes"
try move "echo $$ > /sys/fs/cgroup/cpuset/cgroup.procs"
try move-tasks "echo $$ > /sys/fs/cgroup/cpuset/tasks"
try shadow "cat /etc/shadow > /dev/null"
try mount "mount -t tmpfs none /tmp"
taskset -pc 0-1 $$ > /dev/null 2>&1
grep Cpus_allowed_list /proc/self/status
sh -c 'grep Cpus_allowed_list /proc/self/status'"#;
    launch(&rig, "walls", spec(command, "1"));
    let (_, _, report) = running(&mut rig).await;
    let cgroup = PathBuf::from(&report.cgroup.clone().expect("a cgroup").paths[0]);
    finished(&mut rig).await;
    let out = stdout(&rig, "walls");
    assert_eq!(
        out,
        "cpus=denied\nmemory=denied\nmove=denied\nmove-tasks=denied\nshadow=denied\n\
         mount=denied\nCpus_allowed_list:\t1\nCpus_allowed_list:\t1\n",
        "stderr: {}",
        std::fs::read_to_string(rig.tmp.path().join("tasks/walls/stderr")).unwrap()
    );
    assert!(!cgroup.exists(), "task cgroup removed");
    rig.rt.shutdown(Duration::from_secs(1)).await;
}

/// Within one executor jobs share a user: their PID namespaces keep them apart. Across
/// executors (another user, no namespace for the attacker), distinct uids do.
#[tokio::test]
async fn a_job_cannot_signal_another_job() {
    let Some(mut rig) = rig("victims").await else {
        return;
    };
    if ids("daemon").is_none() {
        return;
    }
    let Some(mut other) = rig_with("attacker", |config| {
        config.default_user = "daemon".into();
        config.pid_namespace = false;
    })
    .await
    else {
        return;
    };
    launch(
        &rig,
        "victim",
        spec(&format!("{WAIT_FOR_GO}; echo survived"), "0"),
    );
    let (_, _, report) = running(&mut rig).await;
    let victim_cgroup = PathBuf::from(&report.cgroup.expect("a cgroup").paths[0]);
    started(&rig, "victim").await;
    let pids = cgroup_pids(&victim_cgroup);
    // The tracked process, the namespace's PID 1 and the job's shell (its `sleep 0.05`
    // come and go, and one just forked is still a shell for a moment: only what is there
    // in two looks 200 ms apart counts).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = cgroup_pids(&victim_cgroup);
    let lasting: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| again.contains(p))
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c != "sleep\n")
        })
        .collect();
    assert_eq!(lasting.len(), 3, "{pids:?}");
    let list = pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let attack = format!(
        "for p in {list}; do if kill -TERM $p 2>>errors; then echo \"signalled $p\"; fi; \
         if kill -KILL $p 2>>errors; then echo \"killed $p\"; fi; done; echo done"
    );
    // Same executor (same user, own namespace): no such process.
    launch(&rig, "neighbour", spec(&attack, "1"));
    running(&mut rig).await;
    let (id, _, _) = finished_update(&mut rig).await;
    assert_eq!(id, "neighbour");
    assert_eq!(stdout(&rig, "neighbour"), "done\n");
    let errors = std::fs::read_to_string(rig.tmp.path().join("tasks/neighbour/errors")).unwrap();
    assert!(errors.contains("No such process"), "{errors}");
    // Another executor's job (another user, the host's pids visible): not permitted.
    launch(&other, "stranger", spec(&attack, "1"));
    let (_, _, report) = running(&mut other).await;
    assert!(!report.pid_namespace);
    finished(&mut other).await;
    assert_eq!(stdout(&other, "stranger"), "done\n");
    let errors = std::fs::read_to_string(other.tmp.path().join("tasks/stranger/errors")).unwrap();
    assert!(errors.contains("Operation not permitted"), "{errors}");

    assert!(
        lasting.iter().all(|p| process_running(*p)),
        "the victim was hurt"
    );
    go(&rig, "victim");
    let (id, message, _) = finished_update(&mut rig).await;
    assert_eq!(
        (id.as_str(), message.as_str()),
        ("victim", "command exited with code 0")
    );
    assert_eq!(stdout(&rig, "victim"), "survived\n");
    other.rt.shutdown(Duration::from_secs(1)).await;
    rig.rt.shutdown(Duration::from_secs(1)).await;
}

/// Host pid of the task's `sleep 1000`, found in its cgroup.
fn sleeper(cgroup: &Path) -> u32 {
    cgroup_pids(cgroup)
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\x001000\x00")
        })
        .expect("the background sleep in the task's cgroup")
}

#[tokio::test]
async fn a_process_left_behind_is_killed_and_counted() {
    // In the job's PID namespace (reaped by its PID 1), and without one (found in the
    // cgroup, frozen and killed).
    for pid_namespace in [true, false] {
        let name = if pid_namespace { "left-ns" } else { "left-cg" };
        let Some(mut rig) = rig_with(name, |c| c.pid_namespace = pid_namespace).await else {
            return;
        };
        launch(&rig, "t", spec(&format!("sleep 1000 & {WAIT_FOR_GO}"), "1"));
        let (_, _, report) = running(&mut rig).await;
        assert_eq!(report.pid_namespace, pid_namespace);
        let cgroup = PathBuf::from(&report.cgroup.expect("a cgroup").paths[0]);
        started(&rig, "t").await;
        let sleep = sleeper(&cgroup);
        assert!(process_running(sleep));
        go(&rig, "t");
        let (_, message, leftovers) = finished_update(&mut rig).await;
        assert_eq!(
            (message.as_str(), leftovers),
            ("command exited with code 0; 1 leftover process killed", 1),
            "namespace: {pid_namespace}"
        );
        assert!(!process_running(sleep), "the sleep outlived its job");
        assert!(!cgroup.exists());
        rig.rt.shutdown(Duration::from_secs(1)).await;
    }
}

/// A `tar.gz` holding an executable `bin/hello.sh`, written as artifact `app.tgz` of the
/// sandbox of `config`.
fn hello_app(config: &mut retz_executor::runtime::RuntimeConfig) {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(enc);
    let script = b"#!/bin/sh\necho hello from the app\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(script.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    tar.append_data(&mut h, "bin/hello.sh", &script[..])
        .unwrap();
    let bytes = tar.into_inner().unwrap().finish().unwrap();
    std::fs::write(config.sandbox.join("app.tgz"), bytes).unwrap();
    config.artifacts = vec!["app.tgz".into()];
}

#[tokio::test]
async fn the_sandbox_belongs_to_the_job_and_the_application_is_read_only() {
    let Some((uid, gid)) = ids("nobody") else {
        return;
    };
    let Some(mut rig) = rig_with("sandbox", hello_app).await else {
        return;
    };
    let command = r#"try() { if eval "$2" >/dev/null 2>&1; then echo "$1=ALLOWED"; else echo "$1=denied"; fi; }
try app "touch $RETZ_PVNAME/x"
try app-marker "echo x >> $RETZ_PVNAME/.retz-unpacked"
try tasks "mkdir ../other"
try run-dir "touch ../../x"
try own "echo mine > mine"
try relative "bin/hello.sh"
try edit-app-file "echo x >> bin/hello.sh"
try new-in-app-dir "echo mine > bin/mine"
try replace-app-file "rm -f bin/hello.sh && printf 'echo replaced' > bin/hello.sh""#;
    launch(&rig, "box", spec(command, "0"));
    running(&mut rig).await;
    finished(&mut rig).await;
    assert_eq!(
        stdout(&rig, "box"),
        "app=denied\napp-marker=denied\ntasks=denied\nrun-dir=denied\nown=ALLOWED\n\
         relative=ALLOWED\nedit-app-file=denied\nnew-in-app-dir=ALLOWED\n\
         replace-app-file=ALLOWED\n"
    );
    let root = rig.tmp.path();
    let owner = |p: &Path| {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!((owner(root), mode(root)), ((0, gid), 0o750));
    let task = root.join("tasks/box");
    assert_eq!((owner(&task), mode(&task)), ((uid, gid), 0o700));
    for file in [
        "stdout",
        "stderr",
        "mine",
        "bin",
        "bin/mine",
        "bin/hello.sh",
    ] {
        assert_eq!(owner(&task.join(file)), (uid, gid), "{file}");
    }
    assert_eq!(mode(&task.join("stdout")), 0o600);
    assert_eq!(mode(&task.join("stderr")), 0o600);
    assert_eq!(mode(&root.join("tasks")), 0o755);
    let app = root.join("app/app");
    assert_eq!((owner(&app), mode(&app)), ((0, 0), 0o755));
    assert_eq!(mode(&app.join(".retz-unpacked")), 0o644);
    assert_eq!(
        std::fs::read_to_string(app.join("bin/hello.sh")).unwrap(),
        "#!/bin/sh\necho hello from the app\n",
        "the shared copy is untouched"
    );
    assert!(!app.join("bin/mine").exists());
    rig.rt.shutdown(Duration::from_secs(1)).await;
}
