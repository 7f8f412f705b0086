//! The fake's `spawn`: records the plan, applies the kernel's rules in the order of the
//! real pre-exec steps, and starts fake processes.

use std::io;
use std::path::Path;

use tokio::sync::oneshot;

use super::{FakeProc, FakeSys, Op, State, errno};
use crate::sys::{ExitStatus, SpawnError, SpawnPlan, Spawned};

impl FakeSys {
    pub(super) fn spawn_fake(&self, plan: &SpawnPlan) -> Result<Spawned, SpawnError> {
        let mut st = self.lock();
        st.ops.push(Op::Spawn {
            argv: plan.argv.clone(),
            env: plan.env.clone(),
            cwd: plan.cwd.clone(),
            cgroup_procs: plan.cgroup_procs.clone(),
            affinity: plan.affinity.as_ref().map(ToString::to_string),
            mem_policy: plan.mem_policy.as_ref().map(|(p, n)| format!("{p} {n}")),
            identity: plan.identity.clone(),
            pid_namespace: plan.pid_namespace,
        });
        let behavior = (st.behavior.clone())(plan);
        if plan.argv.is_empty() {
            return Err(SpawnError::Invalid("empty argv".into()));
        }
        for (what, path) in [("stdout", &plan.stdout), ("stderr", &plan.stderr)] {
            std::fs::write(path, "").map_err(|source| SpawnError::Output {
                what,
                path: path.clone(),
                source,
            })?;
        }
        let extra = behavior.escaped_children + behavior.background;
        let pid = st.next_pid;
        st.next_pid += 1 + extra;
        let ns_leader = plan.pid_namespace.then_some(pid);
        let (tx, rx) = oneshot::channel();
        st.procs.insert(
            pid,
            FakeProc {
                ignore_term: behavior.ignore_term,
                reported_cpus: behavior.reported_cpus.clone(),
                ns_leader,
                exit_during_verify: behavior.exit_during_verify,
                exit_tx: Some(tx),
                ..FakeProc::new(pid, plan.affinity.clone())
            },
        );
        let fail = |st: &mut State, err: SpawnError| {
            self.die(st, pid, ExitStatus::Code(127));
            Err(err)
        };
        for procs in &plan.cgroup_procs {
            let dir = procs.parent().unwrap_or(Path::new("/"));
            if let Err(source) = self.attach(&mut st, dir, pid) {
                return fail(
                    &mut st,
                    SpawnError::Attach {
                        path: procs.clone(),
                        source,
                    },
                );
            }
        }
        if let Some(cpus) = &plan.affinity
            && (cpus.is_empty() || !cpus.is_subset(&st.machine_cpus))
        {
            let err = SpawnError::Affinity {
                cpus: cpus.to_string(),
                source: errno(libc::EINVAL),
            };
            return fail(&mut st, err);
        }
        if let Some((policy, nodes)) = &plan.mem_policy
            && (nodes.is_empty() || !nodes.is_subset(&st.machine_mems))
        {
            let err = SpawnError::MemPolicy {
                policy: *policy,
                nodes: nodes.to_string(),
                source: errno(libc::EINVAL),
            };
            return fail(&mut st, err);
        }
        if plan.pid_namespace {
            let code = behavior
                .namespace_errno
                .or((!st.cap_sys_admin).then_some(libc::EPERM));
            if let Some(code) = code {
                let err = SpawnError::Namespace {
                    step: "unshare",
                    source: errno(code),
                };
                return fail(&mut st, err);
            }
        }
        if let Some(id) = &plan.identity
            && !st.credentials.can_switch_user
        {
            let err = SpawnError::Identity {
                step: "setresuid",
                uid: id.uid,
                gid: id.gid,
                source: errno(libc::EPERM),
            };
            return fail(&mut st, err);
        }
        if let Some(code) = behavior.exec_errno {
            let err = SpawnError::Exec {
                program: plan.argv[0].clone(),
                cwd: plan.cwd.clone(),
                source: errno(code),
            };
            return fail(&mut st, err);
        }
        for i in 1..=extra {
            let child = pid + i;
            let escaped = i <= behavior.escaped_children;
            st.procs.insert(
                child,
                FakeProc {
                    ignore_term: escaped,
                    ns_leader,
                    ..FakeProc::new(if escaped { child } else { pid }, plan.affinity.clone())
                },
            );
            for procs in &plan.cgroup_procs {
                let dir = procs.parent().unwrap_or(Path::new("/"));
                // Joined the parent's cgroups by fork; cannot fail after the parent did.
                let _ = self.attach(&mut st, dir, child);
            }
        }
        if let Some(status) = behavior.exit_at_once {
            self.die(&mut st, pid, status);
        }
        let exit = Box::pin(async move {
            rx.await
                .map_err(|_| io::Error::other("fake process vanished without exit status"))
        });
        Ok(Spawned { pid, exit })
    }
}
