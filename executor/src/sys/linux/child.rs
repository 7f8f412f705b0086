//! What a task's processes do between `fork` and `exec`, prepared before the fork.
//!
//! Only async-signal-safe calls run here and nothing is allocated: the C strings, the
//! `cpu_set_t`, the node mask and the group list are built by [`ChildSetup::new`] in the
//! executor. Forks inside the child use the raw `clone(SIGCHLD)` system call (no atfork
//! handlers). A failing step returns `(step << 16) | errno`; std passes it back through
//! its exec-error pipe and the parent decodes it (see the `STEP_*` constants).
//!
//! The forked child X first blocks every blockable signal, then joins the task's cgroups
//! and sets its affinity and memory policy (so the cpuset is in force before any job code
//! runs). With a PID namespace it then:
//! - `unshare(CLONE_NEWPID | CLONE_NEWNS)` and forks C; X closes every descriptor but the
//!   result pipe (std's exec-error pipe included, or `spawn` would wait for the job),
//!   waits for C and `_exit`s with C's code. X is the process the executor tracks.
//! - C is PID 1 of the new namespace and runs no user code: it asks for `SIGKILL` when X
//!   dies, makes its mounts slaves of the host's and mounts a `/proc` of the namespace (so
//!   the job's pids and `/proc` agree), forks J, closes its descriptors but the result
//!   pipe, and reaps. When J ends it `kill(-1, SIGKILL)`s the rest of the namespace, reaps
//!   them counting, writes (J's raw wait status, the count) to the result pipe and exits.
//! - J closes the result pipe and carries on below.
//!
//! The job process (J, or X itself without a namespace) drops the capability bounding
//! set and the ambient set, sets the supplementary groups, gid and uid of its identity
//! (`setresgid`/`setresuid`: permitted and effective sets empty) and clears the
//! inheritable set with `capset`; in every case it sets `no_new_privs`, resets caught
//! signals to their default and unblocks signals. Then std execs the command.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

use nix::sched::{CloneFlags, CpuSet};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::{Gid, Pid, Uid};

use crate::spec::MemPolicy;
use crate::sys::{SpawnError, SpawnPlan};

pub(super) const STEP_ATTACH: i32 = 1; // + index of the cgroup.procs file
pub(super) const MAX_ATTACH: usize = 0x100;
pub(super) const STEP_AFFINITY: i32 = 0x200;
pub(super) const STEP_MEMPOLICY: i32 = 0x201;
pub(super) const STEP_UNSHARE: i32 = 0x300;
pub(super) const STEP_MOUNT_SLAVE: i32 = 0x301;
pub(super) const STEP_MOUNT_PROC: i32 = 0x302;
pub(super) const STEP_FORK: i32 = 0x303;
pub(super) const STEP_CAPBSET: i32 = 0x400;
pub(super) const STEP_SETGROUPS: i32 = 0x401;
pub(super) const STEP_SETGID: i32 = 0x402;
pub(super) const STEP_SETUID: i32 = 0x403;
pub(super) const STEP_CAPSET: i32 = 0x404;
pub(super) const STEP_NO_NEW_PRIVS: i32 = 0x405;
pub(super) const STEP_SIGNALS: i32 = 0x406;

/// Bytes C writes to the result pipe: J's raw wait status and the reaped count.
pub(super) const RESULT_LEN: usize = 8;

/// The credentials the job switches to.
struct Ids {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

/// Everything the child needs, computed before the fork.
pub(super) struct ChildSetup {
    procs: Vec<CString>,
    cpus: Option<CpuSet>,
    mem_policy: Option<(libc::c_int, Vec<libc::c_ulong>)>,
    ids: Option<Ids>,
    /// With a PID namespace: the write end of the result pipe (`O_CLOEXEC`).
    result_fd: Option<RawFd>,
}

impl ChildSetup {
    pub(super) fn new(plan: &SpawnPlan, result_fd: Option<RawFd>) -> Result<Self, SpawnError> {
        if plan.cgroup_procs.len() > MAX_ATTACH {
            return Err(SpawnError::Invalid("too many cgroups to join".into()));
        }
        let procs = plan
            .cgroup_procs
            .iter()
            .map(|p| {
                CString::new(p.as_os_str().as_bytes()).map_err(|_| {
                    SpawnError::Invalid(format!("cgroup path {} holds a NUL byte", p.display()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cpus = plan.affinity.as_ref().map(super::cpu_set).transpose()?;
        let mem_policy = match &plan.mem_policy {
            None | Some((MemPolicy::None, _)) => None,
            Some((policy, nodes)) => Some(super::node_mask(*policy, nodes)?),
        };
        let ids = match &plan.identity {
            None => None,
            Some(id) if id.uid == 0 || id.gid == 0 || id.groups.contains(&0) => {
                return Err(SpawnError::Invalid(format!(
                    "refusing to run a job with uid {} gid {} groups {:?}: jobs never run as root",
                    id.uid, id.gid, id.groups
                )));
            }
            Some(id) => Some(Ids {
                uid: Uid::from_raw(id.uid),
                gid: Gid::from_raw(id.gid),
                groups: id.groups.iter().map(|g| Gid::from_raw(*g)).collect(),
            }),
        };
        if plan.pid_namespace != result_fd.is_some() {
            return Err(SpawnError::Invalid(
                "a PID namespace needs a result pipe".into(),
            ));
        }
        Ok(Self {
            procs,
            cpus,
            mem_policy,
            ids,
            result_fd,
        })
    }

    /// Runs in the forked child (see the module docs). Returns only in the job process.
    pub(super) fn apply(&self) -> io::Result<()> {
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), None)
            .map_err(|e| encode(STEP_SIGNALS, e as i32))?;
        self.join_and_pin()?;
        if let Some(fd) = self.result_fd {
            enter_namespace(fd)?;
        }
        self.drop_privileges()?;
        reset_caught_signals();
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
            .map_err(|e| encode(STEP_SIGNALS, e as i32))
    }

    #[allow(unsafe_code)]
    fn join_and_pin(&self) -> io::Result<()> {
        for (index, path) in self.procs.iter().enumerate() {
            let step = STEP_ATTACH + index as i32;
            // SAFETY: `path` is a valid NUL-terminated string owned by `self`; open(2) is
            // async-signal-safe.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(step_error(step));
            }
            // SAFETY: `fd` is open; the buffer is a 1-byte static; write(2) is
            // async-signal-safe.
            let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            let err = (written != 1).then(|| step_error(step));
            // SAFETY: closing the descriptor opened above; close(2) is async-signal-safe.
            unsafe { libc::close(fd) };
            if let Some(err) = err {
                return Err(err);
            }
        }
        if let Some(cpus) = &self.cpus {
            nix::sched::sched_setaffinity(Pid::from_raw(0), cpus)
                .map_err(|errno| encode(STEP_AFFINITY, errno as i32))?;
        }
        if let Some((mode, mask)) = &self.mem_policy {
            let maxnode = (mask.len() * libc::c_ulong::BITS as usize + 1) as libc::c_ulong;
            // SAFETY: `mask` outlives the call and holds `maxnode - 1` bits; the syscall
            // only reads it. syscall(2) is async-signal-safe.
            let rc =
                unsafe { libc::syscall(libc::SYS_set_mempolicy, *mode, mask.as_ptr(), maxnode) };
            if rc != 0 {
                return Err(step_error(STEP_MEMPOLICY));
            }
        }
        Ok(())
    }

    /// Bounding and ambient sets, groups, gid, uid, inheritable set, `no_new_privs`.
    fn drop_privileges(&self) -> io::Result<()> {
        if let Some(ids) = &self.ids {
            drop_bounding_set()?;
            clear_ambient_set();
            nix::unistd::setgroups(&ids.groups).map_err(|e| encode(STEP_SETGROUPS, e as i32))?;
            nix::unistd::setresgid(ids.gid, ids.gid, ids.gid)
                .map_err(|e| encode(STEP_SETGID, e as i32))?;
            nix::unistd::setresuid(ids.uid, ids.uid, ids.uid)
                .map_err(|e| encode(STEP_SETUID, e as i32))?;
            clear_capabilities()?;
        }
        nix::sys::prctl::set_no_new_privs().map_err(|e| encode(STEP_NO_NEW_PRIVS, e as i32))
    }
}

/// X: unshare and fork C, then wait. C: mounts, fork J, reap. Returns in J only.
fn enter_namespace(result_fd: RawFd) -> io::Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS)
        .map_err(|e| encode(STEP_UNSHARE, e as i32))?;
    let c = raw_fork()?;
    if c > 0 {
        close_fds_except(result_fd);
        let status = wait_for(c);
        exit_now(exit_code(status));
    }
    // C: PID 1 of the namespace. Dies with X (SIGKILL from the parent namespace is the
    // one signal PID 1 cannot ignore).
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    mount_private_proc()?;
    reset_sigchld();
    let j = raw_fork()?;
    if j > 0 {
        close_fds_except(result_fd);
        let (status, reaped) = reap_namespace(j);
        write_result(result_fd, status, reaped);
        exit_now(0);
    }
    close_fd(result_fd);
    Ok(())
}

/// `fork` as a raw `clone(SIGCHLD)`: no atfork handlers, async-signal-safe.
#[allow(unsafe_code)]
fn raw_fork() -> io::Result<libc::pid_t> {
    // SAFETY: clone with only SIGCHLD and a null stack is fork(2): the child continues on
    // a copy of this stack. Both sides only make system calls afterwards.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if rc < 0 {
        return Err(step_error(STEP_FORK));
    }
    Ok(rc as libc::pid_t)
}

#[allow(unsafe_code)]
fn mount_private_proc() -> io::Result<()> {
    // SAFETY: static NUL-terminated strings and null pointers, as mount(2) documents;
    // mount is a plain system call.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(step_error(STEP_MOUNT_SLAVE));
    }
    // SAFETY: as above.
    let rc = unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(step_error(STEP_MOUNT_PROC));
    }
    Ok(())
}

/// Waits for `pid` (retrying on `EINTR`); its raw wait status, or `None` when lost.
#[allow(unsafe_code)]
fn wait_for(pid: libc::pid_t) -> Option<libc::c_int> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid out-pointer; waitpid(2) is async-signal-safe.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Some(status);
        }
        if rc < 0 && nix::errno::Errno::last_raw() != libc::EINTR {
            return None;
        }
    }
}

/// C's loop: reap everything; when J ends, kill the rest of the namespace and count it.
#[allow(unsafe_code)]
fn reap_namespace(job: libc::pid_t) -> (libc::c_int, u32) {
    let mut job_status = None;
    let mut reaped: u32 = 0;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid out-pointer; waitpid(2) is async-signal-safe.
        let rc = unsafe { libc::waitpid(-1, &mut status, 0) };
        if rc < 0 {
            if nix::errno::Errno::last_raw() == libc::EINTR {
                continue;
            }
            break; // ECHILD: nobody left.
        }
        if rc == job {
            job_status = Some(status);
        } else if job_status.is_some() {
            reaped = reaped.saturating_add(1);
        }
        if job_status.is_some() {
            // Again after every reap: also catches what was being forked meanwhile.
            // SAFETY: kill(2) is async-signal-safe; -1 is every process of this namespace
            // but PID 1 itself.
            unsafe { libc::kill(-1, libc::SIGKILL) };
        }
    }
    (job_status.unwrap_or(0), reaped)
}

#[allow(unsafe_code)]
fn write_result(fd: RawFd, status: libc::c_int, reaped: u32) {
    let mut buf = [0u8; RESULT_LEN];
    buf[..4].copy_from_slice(&status.to_ne_bytes());
    buf[4..].copy_from_slice(&reaped.to_ne_bytes());
    // SAFETY: `buf` is a valid buffer of RESULT_LEN bytes; write(2) is async-signal-safe.
    // A pipe takes 8 bytes atomically; if the reader is gone there is nobody to tell.
    unsafe { libc::write(fd, buf.as_ptr().cast(), RESULT_LEN) };
}

/// The exit code X passes on: C's code, or 128 + signal.
fn exit_code(status: Option<libc::c_int>) -> libc::c_int {
    match status {
        Some(s) if libc::WIFEXITED(s) => libc::WEXITSTATUS(s),
        Some(s) if libc::WIFSIGNALED(s) => 128 + libc::WTERMSIG(s),
        _ => 127,
    }
}

#[allow(unsafe_code)]
fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit(2) is async-signal-safe and runs no destructors or atexit handlers
    // (this process is a fork of the executor and must not run its cleanup).
    unsafe { libc::_exit(code) }
}

#[allow(unsafe_code)]
fn close_fd(fd: RawFd) {
    // SAFETY: close(2) on a descriptor this process owns; async-signal-safe.
    unsafe { libc::close(fd) };
}

/// Closes every descriptor >= 3 except `keep`: `close_range(2)`, else a loop up to the
/// descriptor limit.
#[allow(unsafe_code)]
fn close_fds_except(keep: RawFd) {
    let ranges = [(3, keep - 1), (keep + 1, libc::c_int::MAX)];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range(2) only closes descriptors; async-signal-safe system call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                last as libc::c_uint,
                0 as libc::c_uint,
            )
        };
        if rc == 0 {
            continue;
        }
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid out-pointer; getrlimit is a plain system call.
        let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            limit.rlim_cur.min(1 << 20) as libc::c_int
        } else {
            1 << 16
        };
        for fd in first..=last.min(max) {
            close_fd(fd);
        }
    }
}

/// `PR_CAPBSET_DROP` for every capability the kernel knows (`EINVAL` past the last).
#[allow(unsafe_code)]
fn drop_bounding_set() -> io::Result<()> {
    for cap in 0..64 as libc::c_ulong {
        // SAFETY: prctl(2) with integer arguments; a plain system call.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if rc != 0 {
            if nix::errno::Errno::last_raw() == libc::EINVAL {
                break;
            }
            return Err(step_error(STEP_CAPBSET));
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn clear_ambient_set() {
    // SAFETY: prctl(2) with integer arguments. Kernels before 4.3 have no ambient set
    // (EINVAL), and setresuid away from root clears it anyway.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `capset` with every set empty (after `setresuid` only the inheritable set is left).
#[allow(unsafe_code)]
fn clear_capabilities() -> io::Result<()> {
    let mut header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: `header` and the two `data` entries match the kernel's v3 layout and
    // outlive the call; capset is a plain system call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(step_error(STEP_CAPSET));
    }
    Ok(())
}

/// Caught signals back to their default, so nothing pending runs an executor handler
/// (which would write into the executor's own signal pipe) once signals are unblocked.
#[allow(unsafe_code)]
fn reset_caught_signals() {
    for sig in 1..65 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed sigaction is a valid out-value; sigaction(2) is
        // async-signal-safe. Unknown or reserved numbers fail with EINVAL, ignored.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above; a null `act` only reads the current disposition.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
            continue;
        }
        if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
            // SAFETY: signal(2) with SIG_DFL; async-signal-safe.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

/// C must see its children's exits with `waitpid`, whatever the executor did with
/// `SIGCHLD` (ignoring it would make the kernel reap them).
#[allow(unsafe_code)]
fn reset_sigchld() {
    // SAFETY: signal(2) with SIG_DFL; async-signal-safe.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

pub(super) fn step_error(step: i32) -> io::Error {
    encode(step, nix::errno::Errno::last_raw())
}

pub(super) fn encode(step: i32, errno: i32) -> io::Error {
    io::Error::from_raw_os_error((step << 16) | (errno & 0xffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_of_wait_statuses() {
        assert_eq!(exit_code(Some(3 << 8)), 3);
        assert_eq!(exit_code(Some(libc::SIGKILL)), 128 + libc::SIGKILL);
        assert_eq!(exit_code(None), 127);
    }
}
