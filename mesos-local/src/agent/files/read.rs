//! `/files/read` and `/files/download`: the bytes of an opened sandbox file.
//!
//! Both are byte-exact. `/files/read` answers `{"data": ..., "offset": n}` written as a
//! Mesos agent writes it ([`encode_read`]): the bytes go into the JSON string as they
//! are, only `"`, `\`, `/` and control characters escaped, so a byte is never replaced
//! and `offset` counts bytes (a read of non-UTF-8 bytes is therefore not valid UTF-8
//! JSON, exactly as with Mesos; readers decode it byte by byte). `/files/download`
//! announces the file's size at open in `Content-Length` and sends exactly that many
//! bytes, as libprocess does; a file that shrinks meanwhile ends the connection early,
//! so a reader never takes a short body for the whole file.

use std::collections::HashMap;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};

use super::{FilesError, READ_CAP, open, required_path};

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

/// Appends `bytes` as the inside of a JSON string the way Mesos (stout's `jsonify`)
/// writes it: `"` `\` `/` and `\b \f \n \r \t` escaped, other bytes below 0x20 and 0x7f
/// as `\u00xx`, every other byte (0x80 and up included) as it is.
pub fn push_json_string_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
}

/// The body of a `/files/read` answer: `{"data":"<bytes>","offset":n}` (keys in Mesos's
/// order), wrapped as `callback(...);` when `jsonp` is given.
pub fn encode_read(offset: u64, data: &[u8], jsonp: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 40);
    if let Some(cb) = jsonp {
        out.extend_from_slice(cb.as_bytes());
        out.push(b'(');
    }
    out.extend_from_slice(b"{\"data\":\"");
    push_json_string_bytes(&mut out, data);
    out.extend_from_slice(format!("\",\"offset\":{offset}}}").as_bytes());
    if jsonp.is_some() {
        out.extend_from_slice(b");");
    }
    out
}

/// `GET /files/read?path=P&offset=O&length=L`.
pub fn read(work_dir: &Path, agent_id: &str, query: &HashMap<String, String>) -> Response {
    match read_bytes(work_dir, agent_id, query) {
        Ok((offset, data)) => {
            let jsonp = query
                .get("jsonp")
                .map(String::as_str)
                .filter(|c| !c.is_empty());
            let kind = if jsonp.is_some() {
                "text/javascript"
            } else {
                "application/json"
            };
            (
                [(header::CONTENT_TYPE, kind)],
                encode_read(offset, &data, jsonp),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The offset and the bytes a `/files/read` query asks for.
fn read_bytes(
    work_dir: &Path,
    agent_id: &str,
    query: &HashMap<String, String>,
) -> Result<(u64, Vec<u8>), FilesError> {
    let requested = required_path(query)?;
    let offset = parse_i64(query, "offset")?;
    let length = parse_i64(query, "length")?;
    let opened = open(work_dir, agent_id, requested)?;
    if opened.meta.is_dir() {
        return Err(FilesError::new(
            StatusCode::BAD_REQUEST,
            format!("Cannot read a directory: {requested}; use /files/browse"),
        ));
    }
    let (offset, len) = read_window(opened.meta.size, offset, length)
        .map_err(|m| FilesError::new(StatusCode::BAD_REQUEST, m))?;
    let file = std::fs::File::from(opened.fd);
    let mut data = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let mut filled = 0;
    while filled < data.len() {
        match file.read_at(&mut data[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(FilesError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot read {requested}: {e}"),
                ));
            }
        }
    }
    data.truncate(filled);
    Ok((offset, data))
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

/// `GET /files/download?path=P`: the raw bytes as an attachment, `Content-Length` the
/// size at open.
pub async fn download(
    work_dir: &Path,
    agent_id: &str,
    query: &HashMap<String, String>,
) -> Response {
    let requested = match required_path(query) {
        Ok(p) => p.to_string(),
        Err(e) => return e.into_response(),
    };
    let (work_dir, agent_id, req) = (
        work_dir.to_path_buf(),
        agent_id.to_owned(),
        requested.clone(),
    );
    let opened = tokio::task::spawn_blocking(move || open(&work_dir, &agent_id, &req))
        .await
        .unwrap_or_else(|e| {
            Err(FilesError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("files handler failed: {e}"),
            ))
        });
    let opened = match opened {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    if opened.meta.is_dir() {
        return FilesError::new(
            StatusCode::BAD_REQUEST,
            format!("Cannot download a directory: {requested}"),
        )
        .into_response();
    }
    let name = opened.name;
    let size = opened.meta.size;
    let disposition = HeaderValue::from_str(&format!("attachment; filename={name}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let file = tokio::fs::File::from_std(std::fs::File::from(opened.fd));
    let mut resp = Response::new(Body::from_stream(exactly(file, size)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(mime_of(&name)),
    );
    resp.headers_mut()
        .insert(header::CONTENT_DISPOSITION, disposition);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    resp
}

/// A stream of the first `size` bytes of a file in chunks of up to 64 KiB; an error if
/// the file ends before (it shrank since it was opened).
fn exactly(
    file: tokio::fs::File,
    size: u64,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold(Some((file, size)), |state| async move {
        use tokio::io::AsyncReadExt as _;
        let (mut file, left) = state?;
        if left == 0 {
            return None;
        }
        let want = usize::try_from(left.min(64 * 1024)).unwrap_or(64 * 1024);
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the file shrank: {left} announced bytes are gone"),
                )),
                None,
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some((file, left - n as u64))))
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
    fn reads_are_written_as_mesos_writes_them() {
        // raw bytes stay raw; only quotes, backslash, slash and controls are escaped
        let data = b"a\"b\\c/d\n\t\x01\x7f\xe6\x97\xa5\xff";
        let body = encode_read(65535, data, None);
        let mut want = b"{\"data\":\"a\\\"b\\\\c\\/d\\n\\t\\u0001\\u007f".to_vec();
        want.extend_from_slice(b"\xe6\x97\xa5\xff\",\"offset\":65535}");
        assert_eq!(body, want);
        // valid UTF-8 input gives standard JSON
        let body = encode_read(0, "日本\u{8}\u{c}\r".as_bytes(), Some("cb"));
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text, "cb({\"data\":\"日本\\b\\f\\r\",\"offset\":0});");
        // and any JSON parser reads text back unchanged
        let text = "x/ü \"q\" \\ \u{1b}[0m 日本";
        let v: serde_json::Value =
            serde_json::from_slice(&encode_read(3, text.as_bytes(), None)).unwrap();
        assert_eq!(v, serde_json::json!({"data": text, "offset": 3}));
    }
}
