//! The real [`Sys`]: std/nix/libc calls on Linux.
//!
//! The pre-exec steps of [`LinuxSys::spawn`] run in the forked child, where only
//! async-signal-safe calls are allowed: everything they need is computed before the fork
//! (see [`child`], which also describes the processes of a task with a PID namespace). A
//! failing step reports `(step << 16) | errno` as its raw OS error, which std hands back
//! from `spawn`; the parent decodes it into a [`SpawnError`] with the path, list or
//! identity involved.
//!
//! With a PID namespace the executor tracks the outer process X; the exit future waits
//! for X, then reads the job's real wait status and the reaped count from the result
//! pipe (non-blocking: the namespace's PID 1 wrote them before X could exit). An empty
//! pipe means PID 1 was killed (the task was `SIGKILL`ed): X's own status is reported.
//! The task's stdout/stderr are opened without following symlinks.
//!
//! `set_mempolicy(2)` is called through `libc::syscall` (glibc has no wrapper without
//! libnuma): `MPOL_BIND`, `MPOL_PREFERRED` (first node of the list) or
//! `MPOL_INTERLEAVE`, with a node mask of `maxnode = bits + 1` (the kernel reads one bit
//! less than `maxnode`). On a one-node machine every policy is trivially satisfiable.
//!
//! Signals refuse pids 0 and 1 and this process's own pid, so a corrupt `cgroup.procs`
//! read can never turn into signalling ourselves or init.

mod child;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::fcntl::OFlag;
use nix::sched::CpuSet as CpuMask;
use nix::sys::signal::{Signal as NixSignal, kill, killpg};
use nix::unistd::{AccessFlags, Pid, access};

use super::{
    Account, Credentials, ExitStatus, Signal, SignalTarget, SpawnError, SpawnPlan, Spawned, Sys,
    TaskExit,
};
use crate::spec::MemPolicy;
#[cfg(test)]
use child::encode;
use child::{ChildSetup, RESULT_LEN};
use child::{
    STEP_AFFINITY, STEP_ATTACH, STEP_CAPBSET, STEP_CAPSET, STEP_FORK, STEP_MEMPOLICY,
    STEP_MOUNT_PROC, STEP_MOUNT_SLAVE, STEP_NO_NEW_PRIVS, STEP_SETGID, STEP_SETGROUPS, STEP_SETUID,
    STEP_SIGNALS, STEP_UNSHARE,
};
use retz_placement::{CpuSet, NodeSet};

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxSys;

impl Sys for LinuxSys {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write_file(&self, path: &Path, contents: &str) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.write_all(contents.as_bytes())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn list_dirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
        dirs.sort();
        Ok(dirs)
    }

    fn exists(&self, path: &Path) -> bool {
        path.try_exists().unwrap_or(false)
    }

    fn is_writable(&self, path: &Path) -> bool {
        access(path, AccessFlags::W_OK).is_ok()
    }

    fn has_cap_sys_admin(&self) -> io::Result<bool> {
        caps::has_cap(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        )
        .map_err(io::Error::other)
    }

    fn credentials(&self) -> io::Result<Credentials> {
        let has = |cap| caps::has_cap(None, caps::CapSet::Effective, cap).map_err(io::Error::other);
        Ok(Credentials {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            can_switch_user: has(caps::Capability::CAP_SETUID)?
                && has(caps::Capability::CAP_SETGID)?,
        })
    }

    fn lookup_user(&self, name: &str) -> io::Result<Option<Account>> {
        let Some(user) = nix::unistd::User::from_name(name).map_err(io::Error::from)? else {
            return Ok(None);
        };
        let cname = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a user name"))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid).map_err(io::Error::from)?;
        Ok(Some(Account {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups: groups.into_iter().map(|g| g.as_raw()).collect(),
            home: user.dir,
        }))
    }

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        std::os::unix::fs::lchown(path, uid, gid)
    }

    fn spawn(&self, plan: &SpawnPlan) -> Result<Spawned, SpawnError> {
        let program = plan
            .argv
            .first()
            .ok_or_else(|| SpawnError::Invalid("empty argv".into()))?;
        let (result_rd, result_wr) = if plan.pid_namespace {
            let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
                .map_err(|e| SpawnError::Invalid(format!("cannot create a pipe: {e}")))?;
            (Some(rd), Some(wr))
        } else {
            (None, None)
        };
        let setup = ChildSetup::new(plan, result_wr.as_ref().map(AsRawFd::as_raw_fd))?;
        let stdout = create_output("stdout", &plan.stdout)?;
        let stderr = create_output("stderr", &plan.stderr)?;

        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&plan.argv[1..])
            .env_clear()
            .envs(plan.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&plan.cwd)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(false);
        install_pre_exec(&mut cmd, setup);
        let spawned = cmd.spawn();
        // The children hold their copies; ours would keep the pipe open for ever.
        drop(result_wr);
        drop(cmd);
        let mut child = spawned.map_err(|e| decode_spawn_error(e, plan))?;
        let pid = child
            .id()
            .ok_or_else(|| SpawnError::Invalid("the task exited before its pid was read".into()))?;
        let exit = Box::pin(async move {
            let status = child.wait().await?;
            let outer = match (status.code(), status.signal()) {
                (Some(code), _) => ExitStatus::Code(code),
                (None, Some(sig)) => ExitStatus::Signal(sig),
                (None, None) => ExitStatus::Code(-1),
            };
            Ok(match result_rd.and_then(read_result) {
                Some(exit) => exit,
                None => TaskExit::plain(outer),
            })
        });
        Ok(Spawned { pid, exit })
    }

    fn signal(&self, target: SignalTarget, signal: Signal) -> io::Result<()> {
        let sig = match signal {
            Signal::Term => NixSignal::SIGTERM,
            Signal::Kill => NixSignal::SIGKILL,
        };
        let id = match target {
            SignalTarget::Process(id) | SignalTarget::Group(id) => id,
        };
        let own = std::process::id();
        let raw = i32::try_from(id).unwrap_or(0);
        if raw <= 1 || id == own {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to signal pid/pgid {id}"),
            ));
        }
        let result = match target {
            SignalTarget::Process(_) => kill(Pid::from_raw(raw), sig),
            SignalTarget::Group(_) => killpg(Pid::from_raw(raw), sig),
        };
        result.map_err(|errno| io::Error::from_raw_os_error(errno as i32))
    }
}

fn create_output(what: &'static str, path: &Path) -> Result<File, SpawnError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| SpawnError::Output {
            what,
            path: path.to_owned(),
            source,
        })
}

/// The job's status and reaped count as the namespace's PID 1 wrote them, if it did.
fn read_result(fd: OwnedFd) -> Option<TaskExit> {
    let mut buf = [0u8; RESULT_LEN];
    let n = File::from(fd).read(&mut buf).ok()?;
    if n != RESULT_LEN {
        return None;
    }
    let raw = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let reaped = u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some(TaskExit {
        status: wait_status(raw),
        reaped,
    })
}

/// A raw wait status as an [`ExitStatus`].
fn wait_status(raw: libc::c_int) -> ExitStatus {
    if libc::WIFSIGNALED(raw) {
        ExitStatus::Signal(libc::WTERMSIG(raw))
    } else {
        ExitStatus::Code(libc::WEXITSTATUS(raw))
    }
}

#[allow(unsafe_code)]
fn install_pre_exec(cmd: &mut tokio::process::Command, setup: ChildSetup) {
    // SAFETY: the closure only calls async-signal-safe functions on data prepared
    // before the fork and allocates nothing (see the `child` module).
    unsafe {
        cmd.pre_exec(move || setup.apply());
    }
}

fn decode_spawn_error(err: io::Error, plan: &SpawnPlan) -> SpawnError {
    let exec = |source| SpawnError::Exec {
        program: plan.argv.first().cloned().unwrap_or_default(),
        cwd: plan.cwd.clone(),
        source,
    };
    let Some(code) = err.raw_os_error().filter(|c| *c >= 1 << 16) else {
        return exec(err);
    };
    let (step, source) = (code >> 16, io::Error::from_raw_os_error(code & 0xffff));
    let namespace = |step| SpawnError::Namespace {
        step,
        source: io::Error::from_raw_os_error(code & 0xffff),
    };
    let identity = |step| match &plan.identity {
        Some(id) => SpawnError::Identity {
            step,
            uid: id.uid,
            gid: id.gid,
            source: io::Error::from_raw_os_error(code & 0xffff),
        },
        None => SpawnError::Exec {
            program: format!(
                "{} ({step})",
                plan.argv.first().cloned().unwrap_or_default()
            ),
            cwd: plan.cwd.clone(),
            source: io::Error::from_raw_os_error(code & 0xffff),
        },
    };
    match step {
        STEP_UNSHARE => namespace("unshare(CLONE_NEWPID | CLONE_NEWNS)"),
        STEP_MOUNT_SLAVE => namespace("making mounts private"),
        STEP_MOUNT_PROC => namespace("mounting its /proc"),
        STEP_FORK => namespace("fork"),
        STEP_CAPBSET => identity("dropping the capability bounding set"),
        STEP_SETGROUPS => identity("setgroups"),
        STEP_SETGID => identity("setresgid"),
        STEP_SETUID => identity("setresuid"),
        STEP_CAPSET => identity("clearing capabilities"),
        STEP_NO_NEW_PRIVS => identity("PR_SET_NO_NEW_PRIVS"),
        STEP_SIGNALS => identity("signal mask"),
        STEP_AFFINITY => SpawnError::Affinity {
            cpus: plan
                .affinity
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            source,
        },
        STEP_MEMPOLICY => match &plan.mem_policy {
            Some((policy, nodes)) => SpawnError::MemPolicy {
                policy: *policy,
                nodes: nodes.to_string(),
                source,
            },
            None => exec(source),
        },
        step => match plan.cgroup_procs.get((step - STEP_ATTACH) as usize) {
            Some(path) => SpawnError::Attach {
                path: path.clone(),
                source,
            },
            None => exec(source),
        },
    }
}

/// A `cpu_set_t` holding `cpus`.
pub fn cpu_set(cpus: &CpuSet) -> Result<CpuMask, SpawnError> {
    if cpus.is_empty() {
        return Err(SpawnError::Invalid("empty CPU affinity".into()));
    }
    let mut set = CpuMask::new();
    for cpu in cpus.iter() {
        set.set(cpu.0 as usize).map_err(|_| {
            SpawnError::Invalid(format!(
                "CPU {cpu} is beyond the {} CPUs an affinity mask holds",
                CpuMask::count()
            ))
        })?;
    }
    Ok(set)
}

fn node_mask(
    policy: MemPolicy,
    nodes: &NodeSet,
) -> Result<(libc::c_int, Vec<libc::c_ulong>), SpawnError> {
    let mode = match policy {
        MemPolicy::Bind => libc::MPOL_BIND,
        MemPolicy::Preferred => libc::MPOL_PREFERRED,
        MemPolicy::Interleave => libc::MPOL_INTERLEAVE,
        MemPolicy::None => libc::MPOL_DEFAULT,
    };
    let bits = libc::c_ulong::BITS;
    let chosen: Vec<u32> = match policy {
        // MPOL_PREFERRED takes one node.
        MemPolicy::Preferred => nodes.first().into_iter().map(|n| n.0).collect(),
        _ => nodes.iter().map(|n| n.0).collect(),
    };
    let Some(&last) = chosen.last() else {
        return Err(SpawnError::Invalid(format!(
            "memory policy {policy} needs at least one NUMA node"
        )));
    };
    let mut mask = vec![0 as libc::c_ulong; (last / bits + 1) as usize];
    for node in chosen {
        mask[(node / bits) as usize] |= 1 << (node % bits);
    }
    Ok((mode, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_masks() {
        let (mode, mask) = node_mask(MemPolicy::Bind, &"0,2,64".parse().unwrap()).unwrap();
        assert_eq!(mode, libc::MPOL_BIND);
        assert_eq!(mask, vec![0b101, 1]);
        let (mode, mask) = node_mask(MemPolicy::Preferred, &"3-5".parse().unwrap()).unwrap();
        assert_eq!(mode, libc::MPOL_PREFERRED);
        assert_eq!(mask, vec![0b1000]);
        assert!(node_mask(MemPolicy::Interleave, &NodeSet::new()).is_err());
    }

    #[test]
    fn cpu_sets_refuse_what_they_cannot_hold() {
        assert!(cpu_set(&"0-1".parse().unwrap()).is_ok());
        assert!(cpu_set(&CpuSet::new()).is_err());
        let msg = cpu_set(&"5000".parse().unwrap()).unwrap_err().to_string();
        assert!(msg.contains("CPU 5000"), "{msg}");
    }

    #[test]
    fn spawn_errors_are_decoded_with_their_paths() {
        let plan = SpawnPlan {
            argv: vec!["sh".into()],
            env: vec![],
            cwd: "/w".into(),
            stdout: "/w/o".into(),
            stderr: "/w/e".into(),
            cgroup_procs: vec!["/cg/a/cgroup.procs".into(), "/cg/b/cgroup.procs".into()],
            affinity: Some("1".parse().unwrap()),
            mem_policy: Some((MemPolicy::Bind, "0".parse().unwrap())),
            identity: Some(crate::sys::Identity {
                uid: 65534,
                gid: 65534,
                groups: vec![65534],
            }),
            pid_namespace: true,
        };
        let attach = decode_spawn_error(encode(STEP_ATTACH + 1, libc::ENOSPC), &plan);
        let msg = attach.to_string();
        assert!(msg.contains("/cg/b/cgroup.procs"), "{msg}");
        assert!(matches!(attach, SpawnError::Attach { ref source, .. }
            if source.raw_os_error() == Some(libc::ENOSPC)));
        let aff = decode_spawn_error(encode(STEP_AFFINITY, libc::EINVAL), &plan).to_string();
        assert!(aff.contains("CPUs 1"), "{aff}");
        let mp = decode_spawn_error(encode(STEP_MEMPOLICY, libc::EINVAL), &plan).to_string();
        assert!(mp.contains("bind") && mp.contains("nodes 0"), "{mp}");
        let exec = decode_spawn_error(io::Error::from_raw_os_error(libc::ENOENT), &plan);
        assert!(matches!(exec, SpawnError::Exec { .. }));
        assert!(exec.to_string().contains("`sh`"));
        let ns = decode_spawn_error(encode(STEP_MOUNT_PROC, libc::EPERM), &plan).to_string();
        assert!(ns.contains("PID namespace") && ns.contains("/proc"), "{ns}");
        let id = decode_spawn_error(encode(STEP_SETUID, libc::EPERM), &plan);
        assert!(
            matches!(id, SpawnError::Identity { uid: 65534, .. }),
            "{id}"
        );
        assert!(id.to_string().contains("setresuid"), "{id}");
    }

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(wait_status(3 << 8), ExitStatus::Code(3));
        assert_eq!(
            wait_status(libc::SIGTERM),
            ExitStatus::Signal(libc::SIGTERM)
        );
        assert_eq!(wait_status(0), ExitStatus::Code(0));
    }

    #[test]
    fn refuses_to_signal_init_or_itself() {
        let sys = LinuxSys;
        for id in [0, 1, std::process::id(), u32::MAX] {
            assert!(sys.signal(SignalTarget::Process(id), Signal::Term).is_err());
            assert!(sys.signal(SignalTarget::Group(id), Signal::Term).is_err());
        }
    }
}
