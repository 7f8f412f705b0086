//! Who a job runs as: the task spec's `user`, else the executor's default job user
//! (`--default-user`, `nobody` by default), resolved on this machine.
//!
//! [`resolve`] checks the name (a plain user name: letters, digits, `_`, `.`, `-`, an
//! optional trailing `$`, starting with a letter or `_`, at most 32 bytes; so `" root"`
//! and `"0"` are refused before any lookup), looks it up through the [`Sys`] seam
//! (`getpwnam` + `getgrouplist`) and refuses unknown users and every account with uid 0,
//! primary gid 0, or membership of group 0. A job never runs as root.
//!
//! When the executor holds `CAP_SETUID` and `CAP_SETGID` the job switches to the account
//! ([`JobUser::switch`]). Otherwise the executor cannot change users: the job runs as the
//! executor's own user, and only if that is the requested account and not root.
//!
//! Every error names the user and says what to do.

use std::path::PathBuf;

use crate::sys::{Account, Identity, Sys};

/// The default job user when neither the spec nor the executor's flags name one.
pub const DEFAULT_USER: &str = "nobody";

/// The resolved job user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUser {
    /// The account name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its supplementary groups.
    pub groups: Vec<u32>,
    /// Its home directory (`HOME` of the job).
    pub home: PathBuf,
    /// The job process switches to this user (false: it already is the executor's user).
    pub switch: bool,
}

impl JobUser {
    /// What the job process switches to; `None` when it runs as the executor's user.
    pub fn identity(&self) -> Option<Identity> {
        self.switch.then(|| Identity {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
        })
    }

    /// `name (uid U, gid G)`, for messages and reports.
    pub fn describe(&self) -> String {
        format!("{} (uid {}, gid {})", self.name, self.uid, self.gid)
    }
}

/// Why a task cannot get a job user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a plain user name.
    #[error(
        "job user {0:?} is not a plain user name (letters, digits, `_`, `.`, `-`, starting \
         with a letter or `_`, at most 32 characters); set the application's user or the \
         server's jobs.default_user to an existing unprivileged account"
    )]
    BadName(String),
    /// Not in the user database.
    #[error(
        "job user {0:?} does not exist on this agent; create the account on every agent \
         (e.g. `useradd --system {0}`) or choose another user"
    )]
    Unknown(String),
    /// The lookup itself failed.
    #[error("cannot look up job user {name:?} on this agent: {message}")]
    Lookup { name: String, message: String },
    /// Root in some form.
    #[error(
        "job user {name:?} has {what}: jobs never run as root; choose an unprivileged \
         account"
    )]
    Root { name: String, what: String },
    /// The executor cannot switch users and runs as someone else.
    #[error(
        "job user {name:?} cannot be used: this executor runs as uid {own_uid} without \
         CAP_SETUID/CAP_SETGID, so it can only run jobs as its own user; start the executor \
         as root (ExecutorInfo user root) or run the job as uid {own_uid}"
    )]
    CannotSwitch { name: String, own_uid: u32 },
    /// The executor cannot switch users and is itself root.
    #[error(
        "job user {name:?} cannot be used: this executor runs as root but lacks \
         CAP_SETUID/CAP_SETGID, and jobs never run as root; give the executor these \
         capabilities"
    )]
    RootWithoutCaps { name: String },
}

/// Whether `name` is a plain user name (see the module docs).
pub fn is_plain_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    let mut chars = body.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 32
        && (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Resolves the job user: `requested` (the spec's `user`) or else `default_user`.
pub fn resolve(
    sys: &dyn Sys,
    requested: Option<&str>,
    default_user: &str,
) -> Result<JobUser, IdentityError> {
    let name = requested.unwrap_or(default_user);
    if !is_plain_name(name) {
        return Err(IdentityError::BadName(name.to_owned()));
    }
    let account = sys
        .lookup_user(name)
        .map_err(|e| IdentityError::Lookup {
            name: name.to_owned(),
            message: e.to_string(),
        })?
        .ok_or_else(|| IdentityError::Unknown(name.to_owned()))?;
    check_not_root(name, &account)?;
    let own = sys.credentials().map_err(|e| IdentityError::Lookup {
        name: name.to_owned(),
        message: format!("cannot read the executor's own credentials: {e}"),
    })?;
    let switch = if own.can_switch_user {
        true
    } else if own.uid == 0 {
        return Err(IdentityError::RootWithoutCaps {
            name: name.to_owned(),
        });
    } else if own.uid == account.uid {
        false
    } else {
        return Err(IdentityError::CannotSwitch {
            name: name.to_owned(),
            own_uid: own.uid,
        });
    };
    Ok(JobUser {
        name: account.name,
        uid: account.uid,
        gid: account.gid,
        groups: account.groups,
        home: account.home,
        switch,
    })
}

fn check_not_root(name: &str, account: &Account) -> Result<(), IdentityError> {
    let what = if account.uid == 0 {
        Some("uid 0".to_owned())
    } else if account.gid == 0 {
        Some("primary group 0 (root)".to_owned())
    } else if account.groups.contains(&0) {
        Some("membership of group 0 (root)".to_owned())
    } else {
        None
    };
    match what {
        Some(what) => Err(IdentityError::Root {
            name: name.to_owned(),
            what,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{FakeLayout, FakeSys};

    fn fake() -> (tempfile::TempDir, FakeSys) {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSys::new(tmp.path(), FakeLayout::Empty).unwrap();
        fake.add_user("alice", 1000, 1000, &[1000, 27]);
        fake.add_user("toor", 0, 0, &[0]);
        fake.add_user("wheel", 1001, 0, &[0]);
        fake.add_user("sneaky", 1002, 1002, &[1002, 0]);
        (tmp, fake)
    }

    #[test]
    fn plain_names() {
        for ok in ["nobody", "alice", "_svc", "a.b-c_d", "machine$", "Bob"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in [
            "", "0", "1000", " root", "root ", "a b", "-x", "a/b", "a:b", "$", "é", "a\n",
        ] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert!(!is_plain_name(&"a".repeat(33)));
    }

    #[test]
    fn spec_user_else_default_and_switching() {
        let (_tmp, fake) = fake();
        let u = resolve(&fake, Some("alice"), "nobody").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups.clone()),
            (1000, 1000, vec![1000, 27])
        );
        assert!(u.switch);
        assert_eq!(
            u.identity(),
            Some(Identity {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 27]
            })
        );
        let d = resolve(&fake, None, "nobody").unwrap();
        assert_eq!((d.name.as_str(), d.uid, d.gid), ("nobody", 65534, 65534));
        assert_eq!(d.describe(), "nobody (uid 65534, gid 65534)");
    }

    #[test]
    fn root_in_every_spelling_is_refused() {
        let (_tmp, fake) = fake();
        for (name, want) in [
            ("root", "uid 0"),
            ("toor", "uid 0"),
            ("wheel", "primary group 0"),
            ("sneaky", "membership of group 0"),
        ] {
            let err = resolve(&fake, Some(name), "nobody").unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, IdentityError::Root { .. }) && msg.contains(want),
                "{msg}"
            );
            assert!(
                msg.contains(name) && msg.contains("never run as root"),
                "{msg}"
            );
        }
        for name in [" root", "0", "root\n", ""] {
            let err = resolve(&fake, Some(name), "nobody").unwrap_err();
            assert!(matches!(err, IdentityError::BadName(_)), "{name:?}: {err}");
        }
        // Names are case-sensitive, as getpwnam is: ROOT is simply unknown here.
        let err = resolve(&fake, Some("ROOT"), "nobody").unwrap_err();
        assert_eq!(err, IdentityError::Unknown("ROOT".into()));
        assert!(err.to_string().contains("does not exist on this agent"));
        // A root default user is refused the same way.
        assert!(matches!(
            resolve(&fake, None, "root"),
            Err(IdentityError::Root { .. })
        ));
    }

    #[test]
    fn unprivileged_executor_runs_jobs_only_as_itself() {
        let (_tmp, fake) = fake();
        fake.set_credentials(1000, 1000, false);
        let u = resolve(&fake, Some("alice"), "nobody").unwrap();
        assert!(!u.switch);
        assert_eq!(u.identity(), None);
        let err = resolve(&fake, None, "nobody").unwrap_err();
        assert_eq!(
            err,
            IdentityError::CannotSwitch {
                name: "nobody".into(),
                own_uid: 1000
            }
        );
        assert!(err.to_string().contains("CAP_SETUID"), "{err}");
        // Root without the capabilities never runs a job as itself.
        fake.set_credentials(0, 0, false);
        assert!(matches!(
            resolve(&fake, Some("alice"), "nobody"),
            Err(IdentityError::RootWithoutCaps { .. })
        ));
        assert!(matches!(
            resolve(&fake, Some("root"), "nobody"),
            Err(IdentityError::Root { .. })
        ));
    }
}
