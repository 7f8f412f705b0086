//! Command tasks as their user, as a Mesos agent with `--switch_user` runs them.
//!
//! When the agent runs as root, a command task (the agent's own command executor, no
//! `ExecutorInfo`) runs as `CommandInfo.user`, else `FrameworkInfo.user`: the name is
//! resolved on this machine ([`resolve`]: uid, primary gid, supplementary groups), root in
//! any spelling (`root`, ` root`, `ROOT`, `0`, any name whose uid is 0) and group root are
//! refused, the sandbox is handed to the user ([`prepare_sandbox`]), and the process drops
//! to the user before exec ([`drop_privileges`]: supplementary groups, gid, uid, then
//! `no_new_privs`). When the agent is not root it runs command tasks as itself.
//!
//! Custom executors (such as `retz-executor`) keep running as the agent's user: they need
//! its privileges for cgroups and drop them for their jobs themselves.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};
use retz_proto::mesos::task_status::Reason;
use retz_proto::mesos::{CommandInfo, FrameworkInfo};

/// A user a command task runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUser {
    /// The user name (`USER`, `LOGNAME`).
    pub name: String,
    /// Its uid (never 0).
    pub uid: u32,
    /// Its primary gid (never 0).
    pub gid: u32,
    /// Its supplementary groups (`getgrouplist`, the primary one included; never 0).
    pub groups: Vec<u32>,
    /// Its home directory (`HOME`).
    pub home: PathBuf,
}

/// Why a task cannot run as the user it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// Root, in any spelling.
    #[error(
        "the local agent does not run tasks as root (user {0:?} is root); set CommandInfo.user or FrameworkInfo.user to an unprivileged user"
    )]
    Root(String),
    /// A user whose primary or supplementary group is root (gid 0).
    #[error(
        "the local agent does not run tasks with the root group (user {0:?} has gid 0); use a user outside group root"
    )]
    RootGroup(String),
    /// No user named.
    #[error("no user to run the task as: set CommandInfo.user or FrameworkInfo.user")]
    Empty,
    /// No such user on this machine.
    #[error("user {0:?} does not exist on this agent")]
    Unknown(String),
    /// The user database could not be read.
    #[error("cannot look up user {name:?}: {error}")]
    Lookup {
        /// The user.
        name: String,
        /// Why.
        error: String,
    },
}

impl UserError {
    /// The reason of the TASK_ERROR that refuses the task: unauthorized for root, invalid
    /// otherwise.
    pub fn reason(&self) -> Reason {
        match self {
            UserError::Root(_) | UserError::RootGroup(_) => Reason::TaskUnauthorized,
            _ => Reason::TaskInvalid,
        }
    }
}

/// Whether this agent can switch users (it runs as root).
pub fn agent_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The user a command task names: `CommandInfo.user`, else `FrameworkInfo.user`.
pub fn task_user_name<'a>(command: &'a CommandInfo, framework: &'a FrameworkInfo) -> &'a str {
    command.user.as_deref().unwrap_or(&framework.user)
}

/// The user a command task runs as: `None` (the agent's own) unless the agent is root,
/// else the one it names ([`task_user_name`]), resolved with root refused.
pub fn command_user(
    framework: Option<&FrameworkInfo>,
    command: &CommandInfo,
) -> Result<Option<JobUser>, UserError> {
    if !agent_is_root() {
        return Ok(None);
    }
    let fallback = FrameworkInfo::default();
    resolve(task_user_name(command, framework.unwrap_or(&fallback))).map(Some)
}

/// Resolves a user name (or a decimal uid) on this machine, refusing root (see the module
/// doc).
pub fn resolve(name: &str) -> Result<JobUser, UserError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(UserError::Empty);
    }
    if trimmed.eq_ignore_ascii_case("root") {
        return Err(UserError::Root(name.to_owned()));
    }
    let lookup = |error: nix::Error| UserError::Lookup {
        name: name.to_owned(),
        error: error.to_string(),
    };
    let user = if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let Ok(uid) = trimmed.parse::<u32>() else {
            return Err(UserError::Unknown(name.to_owned()));
        };
        if uid == 0 {
            return Err(UserError::Root(name.to_owned()));
        }
        User::from_uid(Uid::from_raw(uid)).map_err(lookup)?
    } else if trimmed != name {
        // Surrounding whitespace: no such name as the kernel's user database sees it.
        return Err(UserError::Unknown(name.to_owned()));
    } else {
        User::from_name(name).map_err(lookup)?
    };
    let Some(user) = user else {
        return Err(UserError::Unknown(name.to_owned()));
    };
    if user.uid.is_root() {
        return Err(UserError::Root(name.to_owned()));
    }
    // A name from the user database holds no NUL.
    let cname =
        CString::new(user.name.as_bytes()).map_err(|_| UserError::Unknown(name.to_owned()))?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid).map_err(lookup)?;
    if user.gid.as_raw() == 0 || groups.iter().any(|g| g.as_raw() == 0) {
        return Err(UserError::RootGroup(name.to_owned()));
    }
    Ok(JobUser {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups: groups.into_iter().map(Gid::as_raw).collect(),
        home: user.dir,
    })
}

/// `USER`, `LOGNAME` and `HOME` of the user (set before `CommandInfo.environment`).
pub fn user_environment(user: &JobUser) -> Vec<(String, String)> {
    vec![
        ("USER".to_owned(), user.name.clone()),
        ("LOGNAME".to_owned(), user.name.clone()),
        ("HOME".to_owned(), user.home.to_string_lossy().into_owned()),
    ]
}

/// Hands a freshly fetched sandbox to the user, before the task starts: creates `stdout`
/// and `stderr` (mode 0600), gives every file and directory under `dir` to
/// `uid:gid` without following symbolic links (a regular file with more than one hard link
/// is left alone: its other names may lie outside), and makes `dir` mode 0700 so that only
/// the user (and root) can read the sandbox.
pub fn prepare_sandbox(dir: &Path, user: &JobUser) -> io::Result<()> {
    for name in ["stdout", "stderr"] {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.join(name))?;
    }
    chown_tree(dir, user.uid, user.gid)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    if ft.is_file() && meta.nlink() > 1 {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if ft.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The identity the child process takes before exec ([`drop_privileges`]); built before
/// the fork so the child allocates nothing.
#[derive(Debug, Clone)]
pub struct Privileges {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

impl Privileges {
    /// The identity of `user`.
    pub fn of(user: &JobUser) -> Privileges {
        Privileges {
            uid: Uid::from_raw(user.uid),
            gid: Gid::from_raw(user.gid),
            groups: user.groups.iter().copied().map(Gid::from_raw).collect(),
        }
    }
}

/// In the child, before exec: supplementary groups, gid, uid (real, effective and saved),
/// then `no_new_privs`. Only async-signal-safe system calls; no allocation.
pub fn drop_privileges(d: &Privileges) -> io::Result<()> {
    nix::unistd::setgroups(&d.groups)?;
    nix::unistd::setresgid(d.gid, d.gid, d.gid)?;
    nix::unistd::setresuid(d.uid, d.uid, d.uid)?;
    nix::sys::prctl::set_no_new_privs()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_in_any_spelling_is_refused() {
        for name in ["root", " root", "root ", "ROOT", "Root", "0", "00", " 0 "] {
            assert!(
                matches!(resolve(name), Err(UserError::Root(_))),
                "{name:?}: {:?}",
                resolve(name)
            );
        }
        let e = resolve("0").unwrap_err().to_string();
        assert!(e.contains("does not run tasks as root"), "{e}");
        assert_eq!(resolve(""), Err(UserError::Empty));
        assert_eq!(resolve("  "), Err(UserError::Empty));
        assert!(matches!(
            resolve("no-such-user-retz"),
            Err(UserError::Unknown(_))
        ));
        assert!(matches!(resolve(" nobody"), Err(UserError::Unknown(_))));
    }

    #[test]
    fn nobody_resolves_to_its_ids() {
        let Ok(Some(nobody)) = User::from_name("nobody") else {
            return; // no such user on this machine
        };
        let u = resolve("nobody").unwrap();
        assert_eq!(u.uid, nobody.uid.as_raw());
        assert_eq!(u.gid, nobody.gid.as_raw());
        assert!(u.groups.contains(&u.gid));
        let by_uid = resolve(&u.uid.to_string()).unwrap();
        assert_eq!(by_uid.name, "nobody");
    }

    #[test]
    fn the_user_comes_from_the_command_first() {
        let fw = FrameworkInfo {
            user: "fw".into(),
            ..Default::default()
        };
        let mut cmd = CommandInfo::default();
        assert_eq!(task_user_name(&cmd, &fw), "fw");
        cmd.user = Some("cmd".into());
        assert_eq!(task_user_name(&cmd, &fw), "cmd");
    }
}
