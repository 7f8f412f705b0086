//! Who jobs run as: the one check of a job user's name, and the choice of the Unix user
//! of a launch.
//!
//! The server decides a job's Unix user (see [`LaunchUsers::job_user`]): its
//! application's `user` when the operator allows it (`jobs.allowed_users`, or the default
//! job user itself), else `jobs.default_user`. The executor is started as
//! `mesos.executor_user` (root by default: it needs its privileges for cgroups) and drops
//! to the job's user before exec.
//!
//! Invariant: root is never a job user, in any spelling. [`check_job_user`] refuses
//! `root` whatever its case or surrounding blanks, numeric names (`0` is root; numbers are
//! ids, not names), anything that is not a plain user name, and any name that resolves
//! to uid 0 (or primary gid 0) on this host. The config ([`crate::config`]) and load-app
//! ([`crate::http`]) both use it, so every name [`LaunchUsers`] can return passed it.

use std::collections::BTreeSet;

use retz_proto::api::Application;

/// The longest user name accepted (as `useradd` on Linux).
pub const MAX_USER_NAME: usize = 32;

/// Why a name cannot be a job user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// `root` in some spelling (case, blanks), or all zeros (uid 0).
    #[error("user {0:?} is root; jobs never run as root")]
    Root(String),
    /// Resolves to uid 0 on this host.
    #[error("user {0:?} is uid 0 (root) on this host; jobs never run as root")]
    Uid0(String),
    /// Resolves to a user whose primary group is 0 (root) on this host.
    #[error(
        "user {0:?} has the primary group 0 (root) on this host; jobs never run with the root group"
    )]
    Gid0(String),
    /// A number: an id, not a name.
    #[error("user {0:?} is a number; name the user (numeric ids are refused, 0 is root)")]
    Numeric(String),
    /// Not a plain user name.
    #[error(
        "user {0:?} is not a plain user name; use 1 to 32 lowercase letters, digits, '_' and \
         '-', starting with a letter or '_', without blanks"
    )]
    NotPlain(String),
}

impl UserError {
    /// Whether the name is root (by spelling or by uid/gid 0), as opposed to malformed.
    pub fn is_root(&self) -> bool {
        matches!(
            self,
            UserError::Root(_) | UserError::Uid0(_) | UserError::Gid0(_)
        )
    }
}

/// Whether `name` is a plain user name: `[a-z_][a-z0-9_-]*`, at most [`MAX_USER_NAME`]
/// bytes.
pub fn is_plain_user_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() <= MAX_USER_NAME
        && (first.is_ascii_lowercase() || first == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A resolved Unix user: uid and primary gid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ids {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

/// The uid and primary gid of `name` on this host, `None` if unknown here (or the user
/// database cannot be read: the agents resolve the name again and refuse root there).
pub fn lookup(name: &str) -> Option<Ids> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Some(Ids {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }),
        _ => None,
    }
}

/// Checks that `name` may be a job user (see the module docs), resolving names with
/// `resolve` (normally [`lookup`]).
pub fn check_job_user_with(
    name: &str,
    resolve: impl Fn(&str) -> Option<Ids>,
) -> Result<(), UserError> {
    let trimmed = name.trim();
    if trimmed.eq_ignore_ascii_case("root") {
        return Err(UserError::Root(name.to_owned()));
    }
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if trimmed.bytes().all(|b| b == b'0') {
            UserError::Root(name.to_owned())
        } else {
            UserError::Numeric(name.to_owned())
        });
    }
    if !is_plain_user_name(name) {
        return Err(UserError::NotPlain(name.to_owned()));
    }
    match resolve(name) {
        Some(ids) if ids.uid == 0 => Err(UserError::Uid0(name.to_owned())),
        Some(ids) if ids.gid == 0 => Err(UserError::Gid0(name.to_owned())),
        _ => Ok(()),
    }
}

/// Checks that `name` may be a job user on this host (see the module docs).
pub fn check_job_user(name: &str) -> Result<(), UserError> {
    check_job_user_with(name, lookup)
}

/// The user this process runs as: effective uid and its name (`None` when the uid has no
/// entry in the user database).
pub fn server_user() -> (u32, Option<String>) {
    let uid = nix::unistd::geteuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name);
    (uid.as_raw(), name)
}

/// The Unix users of launches, from the config (`jobs.*`, `mesos.executor_user`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchUsers {
    /// Jobs of applications without an allowed `user` run as this user.
    pub default_user: String,
    /// Users applications may name (besides the default user).
    pub allowed_users: BTreeSet<String>,
    /// `ExecutorInfo.command.user`: the user the agent starts the executor as.
    pub executor_user: String,
}

impl Default for LaunchUsers {
    /// Jobs as `nobody`, no other user allowed, the executor as `root`.
    fn default() -> Self {
        LaunchUsers {
            default_user: "nobody".to_owned(),
            allowed_users: BTreeSet::new(),
            executor_user: "root".to_owned(),
        }
    }
}

impl LaunchUsers {
    /// Whether an application may name `user`: an allowed user, or the default user.
    pub fn allows(&self, user: &str) -> bool {
        user == self.default_user || self.allowed_users.contains(user)
    }

    /// The Unix user `app`'s jobs run as: its `user` when allowed, else the default user
    /// (also for an application loaded while its user was allowed and no longer is).
    pub fn job_user<'a>(&'a self, app: &'a Application) -> &'a str {
        match app.user.as_deref() {
            Some(u) if self.allows(u) => u,
            _ => &self.default_user,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(name: &str) -> Option<Ids> {
        match name {
            "toor" => Some(Ids { uid: 0, gid: 0 }),
            "wheelie" => Some(Ids { uid: 1001, gid: 0 }),
            "alice" => Some(Ids {
                uid: 1000,
                gid: 1000,
            }),
            _ => None,
        }
    }

    #[test]
    fn root_in_any_spelling_is_refused() {
        for name in [
            "root", " root", "root ", "ROOT", "Root", "\troot\n", "0", "00", " 0",
        ] {
            let e = check_job_user_with(name, resolve).unwrap_err();
            assert!(matches!(e, UserError::Root(_)), "{name:?}: {e:?}");
            assert!(e.is_root());
            assert!(e.to_string().contains("never run as root"), "{e}");
        }
        let e = check_job_user_with("toor", resolve).unwrap_err();
        assert_eq!(e, UserError::Uid0("toor".into()));
        assert!(e.to_string().contains("uid 0"), "{e}");
        let e = check_job_user_with("wheelie", resolve).unwrap_err();
        assert_eq!(e, UserError::Gid0("wheelie".into()));
        // This host's own root, by name.
        assert!(check_job_user("root").is_err());
    }

    #[test]
    fn only_plain_names_pass() {
        for name in ["alice", "nobody", "_svc", "batch-1", "a_b", "x"] {
            check_job_user_with(name, resolve).unwrap();
        }
        for name in [
            "",
            " ",
            "Alice",
            "al ice",
            "alice ",
            "-x",
            "1abc",
            "a:b",
            "a/b",
            "é",
            "a$",
            &"a".repeat(33),
        ] {
            let e = check_job_user_with(name, resolve).unwrap_err();
            assert!(matches!(e, UserError::NotPlain(_)), "{name:?}: {e:?}");
            assert!(!e.is_root());
        }
        assert_eq!(
            check_job_user_with("1000", resolve).unwrap_err(),
            UserError::Numeric("1000".into())
        );
    }

    #[test]
    fn the_job_user_is_the_apps_when_allowed_else_the_default() {
        let mut users = LaunchUsers::default();
        let mut app = Application::new("a", "k");
        assert_eq!(users.job_user(&app), "nobody");
        app.user = Some("alice".into());
        assert_eq!(users.job_user(&app), "nobody", "alice is not allowed");
        users.allowed_users.insert("alice".into());
        assert_eq!(users.job_user(&app), "alice");
        app.user = Some("nobody".into());
        assert_eq!(
            users.job_user(&app),
            "nobody",
            "the default user is always allowed"
        );
        app.user = Some("root".into());
        assert_eq!(users.job_user(&app), "nobody");
    }
}
