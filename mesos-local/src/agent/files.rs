//! The agent's `/files/browse`, `/files/read` and `/files/download` endpoints over the
//! executor sandboxes (reference §5).
//!
//! Accepted paths:
//! * the virtual path `/frameworks/<fid>/executors/<eid>/runs/<latest|container id>[/...]`;
//! * the real path `<work_dir>/slaves/<aid>/frameworks/<fid>/executors/<eid>/runs/<latest|container id>[/...]`.
//!
//! Invariants: a path with a `..` component is refused (403) before touching the disk;
//! after symlinks are resolved, the file must still lie under
//! `<work_dir>/slaves/<aid>/frameworks` (403 otherwise), so a sandbox symlink cannot
//! expose the rest of the machine. A path that is neither form is 404 (not attached).

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};

/// The most `/files/read` returns at once: 16 pages of 4 KiB.
pub const READ_CAP: u64 = 16 * 4096;

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

/// Maps a requested path to the file on disk, enforcing the invariants above.
pub fn resolve(work_dir: &Path, agent_id: &str, requested: &str) -> Result<PathBuf, FilesError> {
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
    let agent_dir = crate::agent::sandbox::agent_dir(work_dir, agent_id);
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
    let parts: Vec<_> = relative.components().collect();
    let attached = parts.len() >= 6
        && parts[0].as_os_str() == "frameworks"
        && parts[2].as_os_str() == "executors"
        && parts[4].as_os_str() == "runs";
    if !attached {
        return Err(not_attached(requested));
    }
    let candidate = canonical_agent_dir.join(&relative);
    let real = std::fs::canonicalize(&candidate).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            FilesError::new(StatusCode::NOT_FOUND, format!("{requested} does not exist"))
        } else {
            FilesError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot resolve {requested}: {e}"),
            )
        }
    })?;
    if !real.starts_with(canonical_agent_dir.join("frameworks")) {
        return Err(FilesError::new(
            StatusCode::FORBIDDEN,
            format!("{requested} leads outside the agent's sandboxes; refusing it"),
        ));
    }
    Ok(real)
}

fn not_attached(requested: &str) -> FilesError {
    FilesError::new(
        StatusCode::NOT_FOUND,
        format!(
            "{requested} is not a sandbox path; use /frameworks/<fid>/executors/<eid>/runs/latest[/file]"
        ),
    )
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

/// The `/files/browse` entry of one file.
pub fn file_entry(path: &str, meta: &std::fs::Metadata) -> serde_json::Value {
    serde_json::json!({
        "path": path,
        "nlink": meta.nlink(),
        "size": meta.size(),
        "mtime": meta.mtime(),
        "mode": mode_string(meta.permissions().mode()),
        "uid": user_name(meta.uid()),
        "gid": group_name(meta.gid()),
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
    let real = resolve(work_dir, agent_id, requested)?;
    let internal = |e: std::io::Error| {
        FilesError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot browse {requested}: {e}"),
        )
    };
    let meta = std::fs::metadata(&real).map_err(internal)?;
    let base = requested.trim_end_matches('/');
    if !meta.is_dir() {
        return Ok(serde_json::Value::Array(vec![file_entry(base, &meta)]));
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(&real).map_err(internal)? {
        let entry = entry.map_err(internal)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // symlink_metadata so that a dangling link is listed rather than failing the listing
        let meta = entry
            .path()
            .metadata()
            .or_else(|_| entry.path().symlink_metadata())
            .map_err(internal)?;
        entries.push((format!("{base}/{name}"), meta));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(serde_json::Value::Array(
        entries.iter().map(|(p, m)| file_entry(p, m)).collect(),
    ))
}

fn parse_i64(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, FilesError> {
    match query.get(key) {
        None => Ok(None),
        Some(s) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            FilesError::new(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse {key}: {s:?} is not an integer"),
            )
        }),
    }
}

/// The `(offset, bytes)` `/files/read` returns for a file of `size` bytes, given the
/// query's offset and length (pure arithmetic of §5; `None` = absent).
pub fn read_window(
    size: u64,
    offset: Option<i64>,
    length: Option<i64>,
) -> Result<(u64, u64), String> {
    let offset = offset.unwrap_or(-1);
    if offset < -1 {
        return Err(format!("Negative offset provided: {offset}"));
    }
    let length = length.unwrap_or(-1);
    if length < -1 {
        return Err(format!("Negative length provided: {length}"));
    }
    if offset == -1 {
        return Ok((size, 0));
    }
    let offset = offset as u64;
    if offset >= size {
        return Ok((offset, 0));
    }
    let available = size - offset;
    let wanted = if length == -1 {
        available
    } else {
        (length as u64).min(available)
    };
    Ok((offset, wanted.min(READ_CAP)))
}

/// `GET /files/read?path=P&offset=O&length=L`.
pub fn read(work_dir: &Path, agent_id: &str, query: &HashMap<String, String>) -> Response {
    match read_value(work_dir, agent_id, query) {
        Ok(v) => json_response(&v, query),
        Err(e) => e.into_response(),
    }
}

fn read_value(
    work_dir: &Path,
    agent_id: &str,
    query: &HashMap<String, String>,
) -> Result<serde_json::Value, FilesError> {
    let requested = required_path(query)?;
    let offset = parse_i64(query, "offset")?;
    let length = parse_i64(query, "length")?;
    let real = resolve(work_dir, agent_id, requested)?;
    let internal = |e: std::io::Error| {
        FilesError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {requested}: {e}"),
        )
    };
    let meta = std::fs::metadata(&real).map_err(internal)?;
    if meta.is_dir() {
        return Err(FilesError::new(
            StatusCode::BAD_REQUEST,
            format!("Cannot read a directory: {requested}; use /files/browse"),
        ));
    }
    let (offset, len) = read_window(meta.len(), offset, length)
        .map_err(|m| FilesError::new(StatusCode::BAD_REQUEST, m))?;
    let mut data = Vec::new();
    if len > 0 {
        let mut file = std::fs::File::open(&real).map_err(internal)?;
        file.seek(SeekFrom::Start(offset)).map_err(internal)?;
        file.take(len).read_to_end(&mut data).map_err(internal)?;
    }
    Ok(serde_json::json!({
        "data": String::from_utf8_lossy(&data),
        "offset": offset,
    }))
}

fn mime_of(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("txt" | "log" | "out" | "err") => "text/plain",
        Some("html" | "htm") => "text/html",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("csv") => "text/csv",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("zip") => "application/zip",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// `GET /files/download?path=P`: the raw bytes as an attachment.
pub async fn download(
    work_dir: &Path,
    agent_id: &str,
    query: &HashMap<String, String>,
) -> Response {
    let requested = match required_path(query) {
        Ok(p) => p.to_string(),
        Err(e) => return e.into_response(),
    };
    let real = match resolve(work_dir, agent_id, &requested) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let file = match tokio::fs::File::open(&real).await {
        Ok(f) => f,
        Err(e) => {
            return FilesError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot open {requested}: {e}"),
            )
            .into_response();
        }
    };
    match file.metadata().await {
        Ok(m) if m.is_dir() => {
            return FilesError::new(
                StatusCode::BAD_REQUEST,
                format!("Cannot download a directory: {requested}"),
            )
            .into_response();
        }
        Ok(_) => {}
        Err(e) => {
            return FilesError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot stat {requested}: {e}"),
            )
            .into_response();
        }
    }
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let disposition = HeaderValue::from_str(&format!("attachment; filename={name}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let stream = tokio_util_stream(file);
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(mime_of(&name)),
    );
    resp.headers_mut()
        .insert(header::CONTENT_DISPOSITION, disposition);
    resp
}

/// A stream of a file's bytes in 64 KiB chunks.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold(Some(file), |state| async move {
        use tokio::io::AsyncReadExt as _;
        let mut file = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(read_window(100, None, None), Ok((100, 0)));
        assert_eq!(read_window(100, Some(-1), Some(5)), Ok((100, 0)));
        assert_eq!(read_window(100, Some(10), Some(5)), Ok((10, 5)));
        assert_eq!(read_window(100, Some(10), None), Ok((10, 90)));
        assert_eq!(read_window(100, Some(10), Some(-1)), Ok((10, 90)));
        assert_eq!(read_window(100, Some(100), Some(5)), Ok((100, 0)));
        assert_eq!(read_window(100, Some(500), None), Ok((500, 0)));
        assert_eq!(read_window(1 << 20, Some(0), None), Ok((0, READ_CAP)));
        assert_eq!(
            read_window(1 << 20, Some(0), Some(1 << 19)),
            Ok((0, READ_CAP))
        );
        assert!(read_window(100, Some(-2), None).is_err());
        assert!(read_window(100, Some(0), Some(-2)).is_err());
        assert_eq!(read_window(100, Some(0), Some(0)), Ok((0, 0)));
    }

    #[test]
    fn modes() {
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041777), "drwxrwxrwt");
        assert_eq!(mode_string(0o102644), "-rw-r-Sr--");
    }

    #[test]
    fn resolution() {
        let tmp = tempfile::tempdir().unwrap();
        let w = tmp.path();
        let run = crate::agent::sandbox::create_run_dir(w, "A", "F", "E", "c1").unwrap();
        std::fs::write(run.join("stdout"), "hi").unwrap();
        std::os::unix::fs::symlink("/etc", run.join("etc")).unwrap();
        let real_run = std::fs::canonicalize(&run).unwrap();

        let ok = |p: &str| resolve(w, "A", p).unwrap();
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

        let status = |p: &str| resolve(w, "A", p).unwrap_err().status;
        assert_eq!(
            status("/frameworks/F/executors/E/runs/latest/../../../../../../etc"),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status("/frameworks/F/executors/E/runs/latest/etc/passwd"),
            StatusCode::FORBIDDEN
        );
        assert_eq!(status("/etc/passwd"), StatusCode::NOT_FOUND);
        assert_eq!(status("/frameworks/F"), StatusCode::NOT_FOUND);
        assert_eq!(
            status("/frameworks/F/executors/E/runs/latest/nope"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status("relative/x"), StatusCode::BAD_REQUEST);
        let other_agent = format!(
            "{}/slaves/B/frameworks/F/executors/E/runs/latest",
            w.display()
        );
        assert_eq!(status(&other_agent), StatusCode::NOT_FOUND);
    }
}
