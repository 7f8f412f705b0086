//! Starting and signalling the processes an agent runs (executors and command tasks).
//!
//! Every process is started in its own process group (its pid is the group id), with
//! stdin from `/dev/null`, stdout and stderr appended to the sandbox's `stdout` and
//! `stderr` files, the sandbox as working directory, the agent's environment plus the
//! given variables, `kill_on_drop`, and (unless [`Spawn::die_with_agent`] is false: an
//! executor of a checkpointing framework) a parent-death signal (SIGKILL) so that it does
//! not outlive the agent's process even when that is killed hard. With a
//! [`Spawn::user`], the child drops to that user before exec (supplementary groups, gid,
//! uid, `no_new_privs`; see [`super::switch_user`]) and sets the parent-death signal
//! after the drop (changing credentials clears it).
//!
//! Invariant: signals always go to the whole group ([`signal_group`]), so whatever an
//! executor forked is killed with it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use retz_proto::mesos::CommandInfo;

use super::switch_user::{self, JobUser, Privileges};

/// What to execute: program, `argv[0]` and the remaining arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv {
    /// The file to execute (a name looked up in `PATH`, or a path).
    pub program: String,
    /// `argv[0]`.
    pub arg0: String,
    /// `argv[1..]`.
    pub args: Vec<String>,
}

/// A `CommandInfo` that cannot be executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No `value`.
    #[error("CommandInfo has no 'value': nothing to run")]
    NoValue,
    /// A NUL byte in the command line.
    #[error("CommandInfo value or arguments contain a NUL byte")]
    Nul,
}

/// The argv of a `CommandInfo`, with Mesos semantics: `shell` (default true) runs
/// `sh -c <value>` and ignores `arguments`; otherwise `value` is executed with
/// `arguments` as its full argv (`arguments[0]` is `argv[0]`; `value` when empty). A
/// relative `value` containing `/` is taken relative to `sandbox`.
pub fn command_argv(cmd: &CommandInfo, sandbox: &Path) -> Result<Argv, CommandError> {
    let value = cmd.value.as_deref().unwrap_or("");
    if value.is_empty() {
        return Err(CommandError::NoValue);
    }
    if value.contains('\0') || cmd.arguments.iter().any(|a| a.contains('\0')) {
        return Err(CommandError::Nul);
    }
    if cmd.shell() {
        return Ok(Argv {
            program: "/bin/sh".into(),
            arg0: "sh".into(),
            args: vec!["-c".into(), value.into()],
        });
    }
    let program = if value.contains('/') && !value.starts_with('/') {
        sandbox.join(value).to_string_lossy().into_owned()
    } else {
        value.to_string()
    };
    let (arg0, args) = match cmd.arguments.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => (value.to_string(), Vec::new()),
    };
    Ok(Argv {
        program,
        arg0,
        args,
    })
}

/// Where a process runs and writes.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// What to run.
    pub argv: Argv,
    /// Variables set on top of the agent's environment, in order (later ones win).
    pub env: Vec<(String, String)>,
    /// Working directory (the sandbox); `stdout` and `stderr` are created in it.
    pub sandbox: PathBuf,
    /// The user to run as (`None`: the agent's own user).
    pub user: Option<JobUser>,
    /// Whether the process gets SIGKILL when the agent's process dies (the default). An
    /// executor of a checkpointing framework outlives the agent and re-subscribes to
    /// the restarted agent.
    pub die_with_agent: bool,
}

/// Starts the process described by `spec` in a new process group.
pub fn spawn(spec: &Spawn) -> std::io::Result<tokio::process::Child> {
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec.sandbox.join(name))
    };
    let stdout = open("stdout")?;
    let stderr = open("stderr")?;
    let mut cmd = tokio::process::Command::new(&spec.argv.program);
    cmd.arg0(&spec.argv.arg0)
        .args(&spec.argv.args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&spec.sandbox)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    before_exec(
        &mut cmd,
        spec.user.as_ref().map(Privileges::of),
        spec.die_with_agent,
    );
    cmd.spawn()
}

#[allow(unsafe_code)]
fn before_exec(cmd: &mut tokio::process::Command, user: Option<Privileges>, pdeathsig: bool) {
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (setgroups, setresgid, setresuid, prctl) on data
    // prepared before the fork; it allocates nothing and touches no memory shared with
    // the parent.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(p) = &user {
                switch_user::drop_privileges(p)?;
            }
            if pdeathsig {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

/// Sends `signal` to the process group `pgid`. Returns false if no process is left in it.
pub fn signal_group(pgid: u32, signal: Signal) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    if raw <= 1 {
        return false;
    }
    nix::sys::signal::killpg(Pid::from_raw(raw), signal).is_ok()
}

/// Whether any live (non-zombie) process belongs to group `pgid`, read from `/proc`.
pub fn group_alive(pgid: u32) -> bool {
    !group_members(pgid).is_empty()
}

/// The live (non-zombie) processes of group `pgid`, read from `/proc`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((state, pgrp)) = proc_state(pid)
            && pgrp == pgid
            && state != 'Z'
            && state != 'X'
        {
            out.push(pid);
        }
    }
    out
}

/// Whether process `pid` exists and is not a zombie, read from `/proc`.
pub fn pid_alive(pid: u32) -> bool {
    proc_state(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// `(state, process group)` of a process from `/proc/<pid>/stat`.
fn proc_state(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// The `wait(2)` status of an exit, as Mesos reports it in `ExecutorExited`.
pub fn wait_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status.into_raw()
}

/// "exited with status N" / "terminated with signal NAME", as Mesos words it.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(sig) = status.signal() {
        let name =
            Signal::try_from(sig).map_or_else(|_| format!("{sig}"), |s| signal_name(s).to_string());
        format!("terminated with signal {name}")
    } else {
        format!("ended ({status})")
    }
}

fn signal_name(s: Signal) -> &'static str {
    match s {
        Signal::SIGTERM => "Terminated",
        Signal::SIGKILL => "Killed",
        Signal::SIGINT => "Interrupt",
        Signal::SIGSEGV => "Segmentation fault",
        Signal::SIGABRT => "Aborted",
        Signal::SIGHUP => "Hangup",
        other => other.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(value: &str, shell: Option<bool>, args: &[&str]) -> CommandInfo {
        CommandInfo {
            value: Some(value.into()),
            shell,
            arguments: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn shell_semantics() {
        let sb = Path::new("/sb");
        let a = command_argv(&cmd("echo $X", None, &["ignored"]), sb).unwrap();
        assert_eq!(a.program, "/bin/sh");
        assert_eq!(a.args, vec!["-c", "echo $X"]);
        let a = command_argv(&cmd("/bin/echo", Some(false), &["echo", "a b", "c"]), sb).unwrap();
        assert_eq!(a.program, "/bin/echo");
        assert_eq!(a.arg0, "echo");
        assert_eq!(a.args, vec!["a b", "c"]);
        let a = command_argv(&cmd("./run.sh", Some(false), &[]), sb).unwrap();
        assert_eq!(a.program, "/sb/./run.sh");
        assert_eq!(a.arg0, "./run.sh");
        let a = command_argv(&cmd("python3", Some(false), &["python3", "-V"]), sb).unwrap();
        assert_eq!(a.program, "python3");
        assert_eq!(
            command_argv(&cmd("", None, &[]), sb),
            Err(CommandError::NoValue)
        );
        assert_eq!(
            command_argv(&CommandInfo::default(), sb),
            Err(CommandError::NoValue)
        );
        assert_eq!(
            command_argv(&cmd("a\0b", None, &[]), sb),
            Err(CommandError::Nul)
        );
    }

    #[tokio::test]
    async fn group_is_killed_with_its_children() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = Spawn {
            argv: command_argv(
                &cmd("sleep 300 & echo $! > child; wait", None, &[]),
                tmp.path(),
            )
            .unwrap(),
            env: vec![],
            sandbox: tmp.path().to_path_buf(),
            user: None,
            die_with_agent: true,
        };
        let mut child = spawn(&spec).unwrap();
        let pgid = child.id().unwrap();
        let child_file = tmp.path().join("child");
        let grandchild: u32 = loop {
            if let Ok(s) = std::fs::read_to_string(&child_file)
                && let Ok(pid) = s.trim().parse()
            {
                break pid;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert!(group_alive(pgid));
        assert_eq!(group_members(pgid).len(), 2);
        assert!(signal_group(pgid, Signal::SIGKILL));
        let status = child.wait().await.unwrap();
        assert!(
            describe_exit(status).contains("Killed"),
            "{}",
            describe_exit(status)
        );
        // the grandchild was in the group too: once reaped by init it is gone
        let mut gone = false;
        for _ in 0..500 {
            if !pid_alive(grandchild) {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(gone, "grandchild {grandchild} survived the group kill");
        assert!(!group_alive(pgid));
    }
}
