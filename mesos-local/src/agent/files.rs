//! The agent's `/files/browse`, `/files/read` and `/files/download` endpoints over the
//! executor sandboxes (reference §5).
//!
//! Accepted paths:
//! * the virtual path `/frameworks/<fid>/executors/<eid>/runs/<latest|container id>[/...]`;
//! * the real path `<work_dir>/slaves/<aid>/frameworks/<fid>/executors/<eid>/runs/<latest|container id>[/...]`.
//!
//! How a path is opened ([`open`]): a path with a `..` component is refused (403) before
//! touching the disk; a path that is neither form is 404 (not attached). `latest` is read
//! with `readlinkat` (it must name a container id). Then, from the executor's `runs`
//! directory, every component is opened with `openat2` relative to the previous one with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: no symbolic link is
//! followed anywhere (403 "... is a symbolic link"), nothing outside the sandbox is
//! reached. The last component is opened for reading (non-blocking, so a FIFO cannot
//! stall the agent) and every answer is read from that descriptor, never by opening the
//! path again.
//!
//! What is served of what was opened (403 otherwise):
//! * only regular files and directories;
//! * a regular file with more than one hard link only if it belongs to the sandbox's
//!   user: the owner of its task directory under `tasks/<key>/`, else of the run
//!   directory (a hard link made in a sandbox cannot expose another user's file); or if,
//!   at `tasks/<key>/REL`, it is the very file `app/<name>/REL` of the same run (the
//!   application's tree that retz-executor lays out in each task directory as links to
//!   its read-only shared copy, which the job may read anyway);
//! * under `tasks/<key>/`, only what the owner of that task directory could read
//!   itself: mode bits against its uid, primary gid and supplementary groups, with search
//!   permission on every directory below the task directory (so a root-owned 0600 file in
//!   a job's task directory is refused).
//!
//! `/files/browse` lists a directory's entries with their own metadata (`fstatat` without
//! following links): a symbolic link is listed as one (mode `l...`) and never followed.
//! `/files/read` and `/files/download` are byte-exact ([`read`](mod@read)).

mod read;

pub use read::{download, encode_read, push_json_string_bytes, read, read_window};

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Component, Path, PathBuf};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::sandbox::{self, LATEST};

/// The most `/files/read` returns at once: 16 pages of 4 KiB.
pub const READ_CAP: u64 = 16 * 4096;

/// How every component below an executor's `runs` directory is resolved.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// A failed files request: its status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesError {
    /// 400, 403, 404 or 500.
    pub status: StatusCode,
    /// Why.
    pub message: String,
}

impl FilesError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        FilesError {
            status,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response {
        (self.status, self.message).into_response()
    }
}

/// The metadata the endpoints use, of a file itself (links are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard links.
    pub nlink: u64,
    /// Size, bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl Meta {
    // The stat field types differ between architectures.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn of(st: &rustix::fs::Stat) -> Meta {
        Meta {
            mode: st.st_mode as u32,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            nlink: st.st_nlink as u64,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime as i64,
        }
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
}

/// A requested path, opened beneath its sandbox (see the module doc).
#[derive(Debug)]
pub struct Opened {
    /// The open file or directory (read-only).
    pub fd: OwnedFd,
    /// Its metadata.
    pub meta: Meta,
    /// Its name (the last component, or the container id for a run directory).
    pub name: String,
}

/// The parts of a request below `<work_dir>/slaves/<aid>`.
struct Request {
    agent_dir: PathBuf,
    fid: String,
    eid: String,
    run: String,
    rest: Vec<String>,
    /// The requested path's components up to and including the run's, as written.
    run_prefix: Vec<String>,
}

impl Request {
    /// The path of `rest[..n]`, as the client would write it.
    fn shown(&self, n: usize) -> String {
        let mut parts = self.run_prefix.clone();
        parts.extend(self.rest.iter().take(n).cloned());
        format!("/{}", parts.join("/"))
    }
}

fn not_attached(requested: &str) -> FilesError {
    FilesError::new(
        StatusCode::NOT_FOUND,
        format!(
            "{requested} is not a sandbox path; use /frameworks/<fid>/executors/<eid>/runs/latest[/file]"
        ),
    )
}

fn parse(work_dir: &Path, agent_id: &str, requested: &str) -> Result<Request, FilesError> {
    let req = Path::new(requested);
    if req.components().any(|c| c == Component::ParentDir) {
        return Err(FilesError::new(
            StatusCode::FORBIDDEN,
            format!("path {requested:?} contains '..'; refusing it"),
        ));
    }
    if !req.is_absolute() {
        return Err(FilesError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "path {requested:?} is not absolute; use /frameworks/<fid>/executors/<eid>/runs/latest"
            ),
        ));
    }
    let agent_dir = sandbox::agent_dir(work_dir, agent_id);
    let canonical_agent_dir =
        std::fs::canonicalize(&agent_dir).unwrap_or_else(|_| agent_dir.clone());
    // The part below `<work_dir>/slaves/<aid>`, as `frameworks/<fid>/executors/<eid>/runs/<run>/...`.
    let relative: PathBuf = if req.starts_with("/frameworks") {
        req.components().skip(1).collect()
    } else if let Ok(rest) = req.strip_prefix(&agent_dir) {
        rest.to_path_buf()
    } else if let Ok(rest) = req.strip_prefix(&canonical_agent_dir) {
        rest.to_path_buf()
    } else {
        return Err(not_attached(requested));
    };
    let names = |p: &Path| -> Vec<String> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect()
    };
    let parts = names(&relative);
    let all = names(req);
    let attached = parts.len() >= 6
        && parts[0] == "frameworks"
        && parts[2] == "executors"
        && parts[4] == "runs"
        && sandbox::validate_id("framework", &parts[1]).is_ok()
        && sandbox::validate_id("executor", &parts[3]).is_ok()
        && sandbox::validate_id("container", &parts[5]).is_ok();
    if !attached || all.len() < parts.len() {
        return Err(not_attached(requested));
    }
    let rest = parts[6..].to_vec();
    Ok(Request {
        run_prefix: all[..all.len() - rest.len()].to_vec(),
        agent_dir: canonical_agent_dir,
        fid: parts[1].clone(),
        eid: parts[3].clone(),
        run: parts[5].clone(),
        rest,
    })
}

fn open_error(e: Errno, shown: &str) -> FilesError {
    match e {
        Errno::NOENT | Errno::NOTDIR => {
            FilesError::new(StatusCode::NOT_FOUND, format!("{shown} does not exist"))
        }
        Errno::LOOP => FilesError::new(
            StatusCode::FORBIDDEN,
            format!("{shown} is a symbolic link; /files does not follow symbolic links"),
        ),
        Errno::XDEV => FilesError::new(
            StatusCode::FORBIDDEN,
            format!("{shown} leads outside its sandbox; refusing it"),
        ),
        Errno::ACCESS | Errno::PERM => {
            FilesError::new(StatusCode::FORBIDDEN, format!("{shown}: permission denied"))
        }
        Errno::NXIO => FilesError::new(
            StatusCode::FORBIDDEN,
            format!("{shown} is not a regular file or directory; refusing it"),
        ),
        Errno::NOSYS => FilesError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this kernel has no openat2(2) (Linux 5.6 or later is needed to serve files safely)",
        ),
        other => FilesError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot open {shown}: {other}"),
        ),
    }
}

/// The user whose view decides what a task directory serves.
struct Identity {
    name: String,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl Identity {
    /// `uid` as the user database knows it; without an entry, `fallback_gid` only.
    fn of(uid: u32, fallback_gid: u32) -> Identity {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten();
        match user {
            Some(u) => {
                let groups = CString::new(u.name.as_bytes())
                    .ok()
                    .and_then(|n| nix::unistd::getgrouplist(&n, u.gid).ok())
                    .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                    .unwrap_or_else(|| vec![u.gid.as_raw()]);
                Identity {
                    name: u.name,
                    uid,
                    gid: u.gid.as_raw(),
                    groups,
                }
            }
            None => Identity {
                name: uid.to_string(),
                uid,
                gid: fallback_gid,
                groups: vec![fallback_gid],
            },
        }
    }

    /// Whether the mode bits of `m` grant this user all of `want` (4 read, 1 search).
    fn may(&self, m: &Meta, want: u32) -> bool {
        let bits = if m.uid == self.uid {
            m.mode >> 6
        } else if m.gid == self.gid || self.groups.contains(&m.gid) {
            m.mode >> 3
        } else {
            m.mode
        };
        bits & want == want
    }
}

/// Opens a requested path beneath its sandbox, enforcing the rules of the module doc.
pub fn open(work_dir: &Path, agent_id: &str, requested: &str) -> Result<Opened, FilesError> {
    let r = parse(work_dir, agent_id, requested)?;
    let agent_fd = rustix::fs::open(
        &r.agent_dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| open_error(e, requested))?;
    let runs_path = format!("frameworks/{}/executors/{}/runs", r.fid, r.eid);
    let runs_fd = rustix::fs::openat2(
        &agent_fd,
        runs_path.as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .map_err(|e| open_error(e, &r.shown(0)))?;
    let container = if r.run == LATEST {
        let target = rustix::fs::readlinkat(&runs_fd, LATEST, Vec::new())
            .map_err(|e| open_error(e, &r.shown(0)))?;
        let target = target.to_string_lossy().into_owned();
        if sandbox::validate_id("container", &target).is_err() {
            return Err(FilesError::new(
                StatusCode::FORBIDDEN,
                format!("{} does not name a run of this executor", r.shown(0)),
            ));
        }
        target
    } else {
        r.run.clone()
    };
    // Component 0 is the run directory, then `rest`.
    let components: Vec<&str> = std::iter::once(container.as_str())
        .chain(r.rest.iter().map(String::as_str))
        .collect();
    let mut metas = Vec::with_capacity(components.len());
    let mut run_dir = None;
    let mut current = runs_fd;
    for (i, name) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let flags = if last {
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
        };
        let fd = rustix::fs::openat2(&current, *name, flags, Mode::empty(), RESOLVE)
            .map_err(|e| open_error(e, &r.shown(i)))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| open_error(e, &r.shown(i)))?;
        metas.push(Meta::of(&st));
        if i == 0 && !last {
            run_dir = fd.try_clone().ok();
        }
        current = fd;
    }
    let meta = *metas.last().unwrap_or(&metas[0]);
    let app_file = || {
        let st = rustix::fs::fstat(&current).ok()?;
        let run = run_dir.as_ref()?;
        let rel = r.rest.get(2..).filter(|rel| !rel.is_empty())?;
        Some(is_app_file(run, rel, &st))
    };
    check(&r, &metas, requested, || app_file().unwrap_or(false))?;
    Ok(Opened {
        fd: current,
        meta,
        name: components
            .last()
            .map_or_else(String::new, |n| (*n).to_owned()),
    })
}

/// Whether the opened file `st`, reached as `tasks/<key>/REL` (`rel`), is the same file
/// (device and inode) as `app/<name>/REL` of the run directory `run` for some application
/// `name`: opened beneath the run directory, no symbolic link followed.
fn is_app_file(run: &OwnedFd, rel: &[String], st: &rustix::fs::Stat) -> bool {
    let Ok(app) = rustix::fs::openat2(
        run,
        "app",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) else {
        return false;
    };
    let Ok(names) = rustix::fs::Dir::read_from(&app) else {
        return false;
    };
    let rel = rel.join("/");
    names
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().ok().map(str::to_owned))
        .filter(|name| !name.starts_with('.'))
        .any(|name| {
            let path = format!("{name}/{rel}");
            rustix::fs::openat2(
                &app,
                path.as_str(),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            )
            .and_then(|fd| rustix::fs::fstat(&fd))
            .is_ok_and(|a| a.st_dev == st.st_dev && a.st_ino == st.st_ino)
        })
}

/// The serving rules of the module doc, over the metadata of every opened component
/// (`metas[0]` is the run directory, `metas[i]` is `rest[i - 1]`).
fn check(
    r: &Request,
    metas: &[Meta],
    requested: &str,
    app_file: impl FnOnce() -> bool,
) -> Result<(), FilesError> {
    let forbidden = |m: String| Err(FilesError::new(StatusCode::FORBIDDEN, m));
    let target = metas[metas.len() - 1];
    if !target.is_file() && !target.is_dir() {
        return forbidden(format!(
            "{requested} is not a regular file or directory; refusing it"
        ));
    }
    // `rest[0] == "tasks"`, `rest[1]` the task key: its directory is `metas[2]`.
    let task_dir = (r.rest.len() >= 2 && r.rest[0] == "tasks").then(|| metas[2]);
    let owner = task_dir.map_or(metas[0].uid, |d| d.uid);
    if target.is_file() && target.nlink > 1 && target.uid != owner && !app_file() {
        return forbidden(format!(
            "{requested} is a hard link ({} links) to a file that the sandbox's user (uid {owner}) does not own; refusing it",
            target.nlink
        ));
    }
    if let Some(dir) = task_dir {
        let who = Identity::of(dir.uid, dir.gid);
        // Search permission on the task directory and every directory below it on the way.
        for (i, m) in metas.iter().enumerate().take(metas.len() - 1).skip(2) {
            if !who.may(m, 1) {
                return forbidden(format!(
                    "{} cannot be searched by {}, the owner of its task directory; refusing {requested}",
                    r.shown(i),
                    who.name
                ));
            }
        }
        if !who.may(&target, 4) {
            return forbidden(format!(
                "{requested} is not readable by {}, the owner of its task directory; refusing it",
                who.name
            ));
        }
    }
    Ok(())
}

/// `ls -l` style mode string, e.g. `-rw-r--r--` or `drwxr-xr-x`.
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, ch)) in bits.iter().enumerate() {
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (set, special, i) {
            (true, true, 8) => 't',
            (false, true, 8) => 'T',
            (true, true, _) => 's',
            (false, true, _) => 'S',
            (true, false, _) => *ch,
            (false, false, _) => '-',
        });
    }
    s
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// The `/files/browse` entry of one file (its own metadata: a symbolic link is listed
/// as a link, mode `l...`, never followed).
pub fn file_entry(path: &str, meta: &Meta) -> serde_json::Value {
    serde_json::json!({
        "path": path,
        "nlink": meta.nlink,
        "size": meta.size,
        "mtime": meta.mtime,
        "mode": mode_string(meta.mode),
        "uid": user_name(meta.uid),
        "gid": group_name(meta.gid),
    })
}

fn required_path(query: &HashMap<String, String>) -> Result<&str, FilesError> {
    query
        .get("path")
        .map(String::as_str)
        .ok_or_else(|| FilesError::new(StatusCode::BAD_REQUEST, "Expecting 'path' in query"))
}

/// A JSON response, wrapped as `callback(...)` when `jsonp` is given.
pub fn json_response(value: &serde_json::Value, query: &HashMap<String, String>) -> Response {
    match query.get("jsonp") {
        Some(cb) if !cb.is_empty() => (
            [(header::CONTENT_TYPE, "text/javascript")],
            format!("{cb}({value});"),
        )
            .into_response(),
        _ => (
            [(header::CONTENT_TYPE, "application/json")],
            value.to_string(),
        )
            .into_response(),
    }
}

/// `GET /files/browse?path=P`.
pub fn browse(work_dir: &Path, agent_id: &str, query: &HashMap<String, String>) -> Response {
    match browse_value(work_dir, agent_id, query) {
        Ok(v) => json_response(&v, query),
        Err(e) => e.into_response(),
    }
}

fn browse_value(
    work_dir: &Path,
    agent_id: &str,
    query: &HashMap<String, String>,
) -> Result<serde_json::Value, FilesError> {
    let requested = required_path(query)?;
    let opened = open(work_dir, agent_id, requested)?;
    let internal = |e: Errno| {
        FilesError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot browse {requested}: {e}"),
        )
    };
    let base = requested.trim_end_matches('/');
    if !opened.meta.is_dir() {
        return Ok(serde_json::Value::Array(vec![file_entry(
            base,
            &opened.meta,
        )]));
    }
    let mut dir = rustix::fs::Dir::new(opened.fd).map_err(internal)?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(internal)?;
        let name = entry.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    let dir_fd = dir.fd().map_err(internal)?;
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        // The entry's own metadata: a link is listed as a link. An entry gone since the
        // listing is skipped.
        let Ok(st) = rustix::fs::statat(dir_fd.as_fd(), name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
        else {
            continue;
        };
        let shown = format!("{base}/{}", name.to_string_lossy());
        entries.push((shown, Meta::of(&st)));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(serde_json::Value::Array(
        entries.iter().map(|(p, m)| file_entry(p, m)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o102644), "-rw-r-Sr--");
    }

    /// Where an opened descriptor is, as the kernel names it.
    fn path_of(o: &Opened) -> PathBuf {
        use std::os::fd::AsRawFd as _;
        std::fs::read_link(format!("/proc/self/fd/{}", o.fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn resolution() {
        let tmp = tempfile::tempdir().unwrap();
        let w = tmp.path();
        let run = crate::agent::sandbox::create_run_dir(w, "A", "F", "E", "c1").unwrap();
        std::fs::write(run.join("stdout"), "hi").unwrap();
        std::os::unix::fs::symlink("/etc", run.join("etc")).unwrap();
        std::os::unix::fs::symlink("stdout", run.join("out")).unwrap();
        let real_run = std::fs::canonicalize(&run).unwrap();

        let ok = |p: &str| path_of(&open(w, "A", p).unwrap());
        assert_eq!(
            ok("/frameworks/F/executors/E/runs/latest/stdout"),
            real_run.join("stdout")
        );
        assert_eq!(ok("/frameworks/F/executors/E/runs/c1"), real_run);
        let real = format!("{}/stdout", run.display());
        assert_eq!(ok(&real), real_run.join("stdout"));
        let via_latest = format!(
            "{}/slaves/A/frameworks/F/executors/E/runs/latest",
            w.display()
        );
        assert_eq!(ok(&via_latest), real_run);
        let o = open(w, "A", "/frameworks/F/executors/E/runs/latest/stdout").unwrap();
        assert!(o.meta.is_file());
        assert_eq!(o.meta.size, 2);
        assert_eq!(o.name, "stdout");

        let err = |p: &str| open(w, "A", p).unwrap_err();
        let status = |p: &str| err(p).status;
        assert_eq!(
            status("/frameworks/F/executors/E/runs/latest/../../../../../../etc"),
            StatusCode::FORBIDDEN
        );
        let e = err("/frameworks/F/executors/E/runs/latest/etc/passwd");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(
            e.message,
            "/frameworks/F/executors/E/runs/latest/etc is a symbolic link; /files does not follow symbolic links"
        );
        // a link inside the sandbox is not followed either
        let e = err("/frameworks/F/executors/E/runs/c1/out");
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(
            e.message.contains("/runs/c1/out is a symbolic link"),
            "{}",
            e.message
        );
        assert_eq!(status("/etc/passwd"), StatusCode::NOT_FOUND);
        assert_eq!(status("/frameworks/F"), StatusCode::NOT_FOUND);
        assert_eq!(
            status("/frameworks/F/executors/E/runs/latest/nope"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status("/frameworks/F/executors/E/runs/latest/stdout/x"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status("/frameworks/F/executors/X/runs/latest"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status("relative/x"), StatusCode::BAD_REQUEST);
        let other_agent = format!(
            "{}/slaves/B/frameworks/F/executors/E/runs/latest",
            w.display()
        );
        assert_eq!(status(&other_agent), StatusCode::NOT_FOUND);
        // a FIFO does not stall the agent and is not served
        nix::unistd::mkfifo(
            &run.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert_eq!(
            status("/frameworks/F/executors/E/runs/c1/fifo"),
            StatusCode::FORBIDDEN
        );
    }

    fn meta(mode: u32, uid: u32, gid: u32) -> Meta {
        Meta {
            mode,
            uid,
            gid,
            nlink: 1,
            size: 0,
            mtime: 0,
        }
    }

    #[test]
    fn mode_bits_are_judged_as_the_kernel_would() {
        let who = Identity {
            name: "job".into(),
            uid: 1000,
            gid: 1000,
            groups: vec![1000, 27],
        };
        assert!(who.may(&meta(0o100600, 1000, 0), 4));
        assert!(!who.may(&meta(0o100600, 0, 0), 4), "root-owned 0600");
        assert!(!who.may(&meta(0o100640, 0, 0), 4));
        assert!(who.may(&meta(0o100640, 0, 27), 4), "supplementary group");
        assert!(who.may(&meta(0o100644, 0, 0), 4));
        // the owner class decides even when other bits would allow
        assert!(!who.may(&meta(0o100044, 1000, 1000), 4));
        assert!(who.may(&meta(0o040711, 0, 0), 1));
        assert!(!who.may(&meta(0o040700, 0, 0), 1));
    }
}
