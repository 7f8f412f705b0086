//! The real [`Sys`]: std/nix/libc calls on Linux.
//!
//! The pre-exec steps of [`LinuxSys::spawn`] run in the forked child, where only
//! async-signal-safe calls are allowed: everything they need (C strings of the
//! `cgroup.procs` paths, the `cpu_set_t`, the node mask) is computed before the fork, and
//! the child only calls `open`, `write`, `close`, `sched_setaffinity` and
//! `set_mempolicy`. A failing step reports `(step << 16) | errno` as its raw OS error,
//! which std hands back from `spawn`; the parent decodes it into a [`SpawnError`] with the
//! path or list involved.
//!
//! `set_mempolicy(2)` is called through `libc::syscall` (glibc has no wrapper without
//! libnuma): `MPOL_BIND`, `MPOL_PREFERRED` (first node of the list) or
//! `MPOL_INTERLEAVE`, with a node mask of `maxnode = bits + 1` (the kernel reads one bit
//! less than `maxnode`). On a one-node machine every policy is trivially satisfiable.
//!
//! Signals refuse pids 0 and 1 and this process's own pid, so a corrupt `cgroup.procs`
//! read can never turn into signalling ourselves or init.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sched::CpuSet;
use nix::sys::signal::{Signal as NixSignal, kill, killpg};
use nix::unistd::{AccessFlags, Pid, access};

use super::{ExitStatus, Signal, SignalTarget, SpawnError, SpawnPlan, Spawned, Sys};
use crate::idlist::IdList;
use crate::spec::MemPolicy;

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxSys;

const STEP_ATTACH: i32 = 1; // + index of the cgroup.procs file
const STEP_AFFINITY: i32 = 0x200;
const STEP_MEMPOLICY: i32 = 0x201;
const MAX_ATTACH: usize = 0x100;

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

    fn spawn(&self, plan: &SpawnPlan) -> Result<Spawned, SpawnError> {
        let program = plan
            .argv
            .first()
            .ok_or_else(|| SpawnError::Invalid("empty argv".into()))?;
        let setup = ChildSetup::new(plan)?;
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
        let mut child = cmd.spawn().map_err(|e| decode_spawn_error(e, plan))?;
        let pid = child
            .id()
            .ok_or_else(|| SpawnError::Invalid("the task exited before its pid was read".into()))?;
        let exit = Box::pin(async move {
            let status = child.wait().await?;
            Ok(match (status.code(), status.signal()) {
                (Some(code), _) => ExitStatus::Code(code),
                (None, Some(sig)) => ExitStatus::Signal(sig),
                (None, None) => ExitStatus::Code(-1),
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
    File::create(path).map_err(|source| SpawnError::Output {
        what,
        path: path.to_owned(),
        source,
    })
}

/// What the child does between fork and exec, prepared before the fork.
struct ChildSetup {
    procs: Vec<CString>,
    cpus: Option<CpuSet>,
    mem_policy: Option<(libc::c_int, Vec<libc::c_ulong>)>,
}

impl ChildSetup {
    fn new(plan: &SpawnPlan) -> Result<Self, SpawnError> {
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
        let cpus = plan.affinity.as_ref().map(cpu_set).transpose()?;
        let mem_policy = match &plan.mem_policy {
            None | Some((MemPolicy::None, _)) => None,
            Some((policy, nodes)) => Some(node_mask(*policy, nodes)?),
        };
        Ok(Self {
            procs,
            cpus,
            mem_policy,
        })
    }

    /// Runs in the forked child: async-signal-safe calls only, no allocation.
    #[allow(unsafe_code)]
    fn apply(&self) -> io::Result<()> {
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
}

#[allow(unsafe_code)]
fn install_pre_exec(cmd: &mut tokio::process::Command, setup: ChildSetup) {
    // SAFETY: the closure only calls async-signal-safe functions on data prepared
    // before the fork and allocates nothing (see `ChildSetup::apply`).
    unsafe {
        cmd.pre_exec(move || setup.apply());
    }
}

fn step_error(step: i32) -> io::Error {
    encode(step, nix::errno::Errno::last_raw())
}

fn encode(step: i32, errno: i32) -> io::Error {
    io::Error::from_raw_os_error((step << 16) | (errno & 0xffff))
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
    match step {
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
pub fn cpu_set(cpus: &IdList) -> Result<CpuSet, SpawnError> {
    if cpus.is_empty() {
        return Err(SpawnError::Invalid("empty CPU affinity".into()));
    }
    let mut set = CpuSet::new();
    for cpu in cpus.iter() {
        set.set(cpu as usize).map_err(|_| {
            SpawnError::Invalid(format!(
                "CPU {cpu} is beyond the {} CPUs an affinity mask holds",
                CpuSet::count()
            ))
        })?;
    }
    Ok(set)
}

fn node_mask(
    policy: MemPolicy,
    nodes: &IdList,
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
        MemPolicy::Preferred => nodes.first().into_iter().collect(),
        _ => nodes.iter().collect(),
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
        let (mode, mask) = node_mask(MemPolicy::Bind, &IdList::parse("0,2,64").unwrap()).unwrap();
        assert_eq!(mode, libc::MPOL_BIND);
        assert_eq!(mask, vec![0b101, 1]);
        let (mode, mask) = node_mask(MemPolicy::Preferred, &IdList::parse("3-5").unwrap()).unwrap();
        assert_eq!(mode, libc::MPOL_PREFERRED);
        assert_eq!(mask, vec![0b1000]);
        assert!(node_mask(MemPolicy::Interleave, &IdList::new()).is_err());
    }

    #[test]
    fn cpu_sets_refuse_what_they_cannot_hold() {
        assert!(cpu_set(&IdList::parse("0-1").unwrap()).is_ok());
        assert!(cpu_set(&IdList::new()).is_err());
        let msg = cpu_set(&IdList::parse("5000").unwrap())
            .unwrap_err()
            .to_string();
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
            affinity: Some(IdList::parse("1").unwrap()),
            mem_policy: Some((MemPolicy::Bind, IdList::parse("0").unwrap())),
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
