//! Real pinning on this machine: needs root, a cpuset cgroup controller and CPUs 0 and 1.
//! Without them the tests skip with a message, unless `CI=true`, where they fail. Jobs
//! run as the default job user (`nobody`) in their own PID namespace, so pids a job
//! prints are its namespace's; the host's are read from its cgroup.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use retz_executor::runtime::TaskUpdate;

#[tokio::test]
async fn task_on_cpu1_sees_cpu1_from_inside_and_its_threads_too() {
    let Some(mut rig) = rig("cpu1").await else {
        return;
    };
    let python = Path::new("/usr/bin/python3").exists();
    if !require(python, "/usr/bin/python3 missing (used to start a thread)") {
        return;
    }
    let command = r#"grep Cpus_allowed_list /proc/self/status
grep -o 'bind:[0-9,-]*' /proc/self/numa_maps | head -n 1
sleep 5 & echo "bg $(grep Cpus_allowed_list /proc/$!/status)"; kill $!
/usr/bin/python3 -c '
import os, threading
def show():
    tid = threading.get_native_id()
    with open("/proc/self/task/%d/status" % tid) as f:
        print("thread", [l.split(":")[1].strip() for l in f if l.startswith("Cpus_allowed_list")][0])
t = threading.Thread(target=show); t.start(); t.join()
'
echo "cpus=$RETZ_CPUSET nodes=$RETZ_NUMA_NODES n=$RETZ_CPU"
sleep 30"#;
    launch(&rig, "pin1", spec(command, "1"));
    let (_, pid, report) = running(&mut rig).await;
    assert!(report.drift.is_empty(), "{report:?}");
    assert_eq!(report.observed_cpus, Some("1".parse().unwrap()));
    let cg = report.cgroup.clone().expect("a cgroup");
    let cpuset_dir = PathBuf::from(&cg.paths[0]);
    assert_eq!(
        std::fs::read_to_string(cpuset_dir.join("cpuset.cpus"))
            .unwrap()
            .trim(),
        "1"
    );
    let procs = std::fs::read_to_string(cpuset_dir.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "{procs}"
    );

    // Wait for the job to print its checks (it then sleeps).
    let mut out = String::new();
    for _ in 0..600 {
        out = stdout(&rig, "pin1");
        if out.contains("cpus=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Cpus_allowed_list:\t1", "{out}");
    assert_eq!(lines[1], "bind:0", "memory policy seen from inside: {out}");
    assert_eq!(lines[2], "bg Cpus_allowed_list:\t1", "{out}");
    assert_eq!(lines[3], "thread 1", "{out}");
    assert_eq!(lines[4], "cpus=1 nodes=0 n=1", "{out}");

    assert!(rig.rt.kill("pin1", None));
    let ev = next(&mut rig).await;
    assert!(matches!(ev.update, TaskUpdate::Killed { .. }), "{ev:?}");
    assert!(
        soon(|| !group_alive(pid)).await,
        "process group {pid} outlived the kill"
    );
    assert!(!cpuset_dir.exists(), "task cgroup removed");
    rig.rt.shutdown(Duration::from_secs(1)).await;
    assert!(!rig.rt.cgroups().unwrap().scope().exists(), "scope removed");
}

#[tokio::test]
async fn concurrent_tasks_on_cpu0_and_cpu1_never_see_each_other() {
    let Some(mut rig) = rig("two").await else {
        return;
    };
    // Each task samples its own mask, a child's mask and the CPU the child ran on.
    let command = r#"i=0; while [ $i -lt 20 ]; do
  grep Cpus_allowed_list /proc/self/status
  sh -c 'grep Cpus_allowed_list /proc/self/status'
  echo "ran_on $(cut -d' ' -f39 /proc/self/stat)"
  i=$((i+1))
done"#;
    launch(&rig, "on0", spec(command, "0"));
    launch(&rig, "on1", spec(command, "1"));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let ev = next(&mut rig).await;
        seen.push((ev.task_id.clone(), ev.update));
    }
    for (cpu, id) in [("0", "on0"), ("1", "on1")] {
        assert!(
            seen.iter()
                .any(|(t, u)| t == id && matches!(u, TaskUpdate::Finished { .. })),
            "{seen:?}"
        );
        let out = stdout(&rig, id);
        assert_eq!(out.lines().count(), 60, "{out}");
        for line in out.lines() {
            let want_mask = format!("Cpus_allowed_list:\t{cpu}");
            let want_cpu = format!("ran_on {cpu}");
            assert!(
                line == want_mask || line == want_cpu,
                "{id}: {line:?} in\n{out}"
            );
        }
    }
    rig.rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn kill_leaves_no_process_and_no_cgroup() {
    let Some(mut rig) = rig("kill").await else {
        return;
    };
    // A background job, a job that ignores SIGTERM, and one that left the process group.
    let command = r#"sleep 300 & echo $! > pids
sh -c 'trap "" TERM; sleep 300' & echo $! >> pids
setsid sleep 300 & echo $! >> pids
trap '' TERM
sleep 300"#;
    launch(&rig, "victim", spec(command, "1"));
    let (_, pid, report) = running(&mut rig).await;
    assert!(report.pid_namespace, "{report:?}");
    let cgroup = PathBuf::from(&report.cgroup.expect("a cgroup").paths[0]);
    let pids_file = rig.tmp.path().join("tasks/victim/pids");
    let mut pids: Vec<u32> = Vec::new();
    for _ in 0..600 {
        pids = std::fs::read_to_string(&pids_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pids.len(), 3);
    // Host pids: the tracked process, the namespace's PID 1, the job and its children.
    let pids = cgroup_pids(&cgroup);
    assert!(pids.len() >= 7, "{pids:?}");
    assert!(pids.iter().all(|p| process_running(*p)));
    assert!(rig.rt.kill("victim", Some(Duration::from_millis(300))));
    let ev = next(&mut rig).await;
    match &ev.update {
        TaskUpdate::Killed { message, .. } => assert!(message.contains("SIGKILL"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(
        soon(|| !group_alive(pid)).await,
        "process group {pid} outlived the kill"
    );
    for p in pids {
        assert!(
            soon(|| !process_running(p)).await,
            "process {p} survived the kill"
        );
    }
    assert!(!cgroup.exists(), "{} left behind", cgroup.display());
    rig.rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retz_values_stay_literal() {
    let Some(mut rig) = rig("subst").await else {
        return;
    };
    let marker = format!("/tmp/retz-subst-{}", std::process::id());
    let task_id = format!("t-$(touch {marker})-`touch {marker}`-'q'");
    let mut s = spec(
        r#"printf '%s\n' $RETZ_TASK_ID "${RETZ_TASK_ID}" "$ARGS" "$RETZ_FOO" '$RETZ_CPU'"#,
        "0",
    );
    s.env = BTreeMap::from([(
        "ARGS".to_owned(),
        format!("threads=$RETZ_CPU $(touch {marker}) `touch {marker}`"),
    )]);
    launch(&rig, &task_id, s);
    running(&mut rig).await;
    assert_eq!(finished(&mut rig).await, task_id);
    let out = std::fs::read_to_string(
        rig.tmp
            .path()
            .join("tasks")
            .join(retz_executor::sandbox::task_key(&task_id).unwrap())
            .join("stdout"),
    )
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], task_id);
    assert_eq!(lines[1], task_id);
    assert_eq!(
        lines[2],
        format!("threads=1 $(touch {marker}) `touch {marker}`")
    );
    assert_eq!(
        lines[3], "",
        "an unknown $RETZ_FOO is left to the shell (unset)"
    );
    assert_eq!(lines[4], "1");
    assert!(!Path::new(&marker).exists(), "a value was evaluated");
    rig.rt.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn exit_codes_and_impossible_pinning() {
    let Some(mut rig) = rig("exit").await else {
        return;
    };
    launch(&rig, "three", spec("exit 3", "0"));
    running(&mut rig).await;
    let ev = next(&mut rig).await;
    assert!(
        matches!(&ev.update, TaskUpdate::Failed { message, .. } if message.contains("exited with code 3")),
        "{ev:?}"
    );
    let beyond = rig.rt.machine().cpus.last().unwrap().0 + 1;
    launch(&rig, "nowhere", spec("true", &beyond.to_string()));
    let ev = next(&mut rig).await;
    assert!(
        matches!(&ev.update, TaskUpdate::Failed { message, .. }
            if message.contains("not in this executor's allowed set")),
        "{ev:?}"
    );
    rig.rt.shutdown(Duration::from_secs(1)).await;
}
