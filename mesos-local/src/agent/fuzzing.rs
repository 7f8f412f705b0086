//! Entry points of the agent's fuzz targets (`mesos-local/fuzz`), one per kind of outside
//! input the agent parses: executor API bodies, `/files` paths and windows, fetcher URIs,
//! `Accept` headers, and `Authorization` headers. Each takes arbitrary bytes, must never panic, and asserts the
//! invariant of what it parses (so a violation is a fuzzing finding).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use retz_proto::ContentType;
use retz_proto::executor::Call;

use super::{executor_api, fetcher, files, sandbox, validation};

/// An executor API body, in both encodings, through decoding and validation.
pub fn fuzz_executor_call(data: &[u8]) {
    for ct in [ContentType::Json, ContentType::Protobuf] {
        if let Ok(call) = ct.decode::<Call>(data) {
            let _ = validation::validate_call(&call);
        }
    }
    let _ = validation::validate_uuid(data);
}

/// A fixed work dir with one sandbox (and a symlink leading out of it), shared by runs.
fn fuzz_work_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let work = std::env::temp_dir().join(format!("retz-agent-fuzz-{}", std::process::id()));
        let run = sandbox::create_run_dir(&work, "A", "F", "E", "c").ok()?;
        std::fs::write(run.join("stdout"), "out").ok()?;
        let _ = std::os::unix::fs::symlink("/", run.join("root"));
        Some(work)
    })
    .as_deref()
}

/// A `/files` path and offset/length pair. Invariant: an opened path lies under the
/// agent's sandboxes (as the kernel names the descriptor), and a read window never
/// exceeds the file or the cap.
pub fn fuzz_files_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let path = parts.next().unwrap_or("");
    let offset = parts.next().and_then(|s| s.trim().parse::<i64>().ok());
    let length = parts.next().and_then(|s| s.trim().parse::<i64>().ok());
    if let Some(work) = fuzz_work_dir()
        && let Ok(opened) = files::open(work, "A", path)
    {
        use std::os::fd::AsRawFd as _;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", opened.fd.as_raw_fd()))
            .unwrap_or_default();
        let root = std::fs::canonicalize(sandbox::agent_dir(work, "A").join("frameworks"))
            .unwrap_or_default();
        assert!(
            real.starts_with(&root),
            "{path:?} opened {}",
            real.display()
        );
    }
    let size = u64::from(data.first().copied().unwrap_or(0)) * 1000;
    if let Ok((off, len)) = files::read_window(size, offset, length) {
        assert!(len <= files::READ_CAP);
        assert!(len == 0 || off + len <= size);
    }
}

/// A `CommandInfo.URI` value and `output_file`. Invariant: the output path stays inside
/// the sandbox.
pub fn fuzz_fetch_uri(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (uri, out) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = fetcher::classify(uri);
    if let Some(name) = fetcher::basename(uri) {
        assert!(!name.contains('/') && name != ".." && name != ".");
    }
    let _ = fetcher::archive_kind(uri);
    let base = Path::new("/sandbox");
    if let Some(p) = fetcher::inside(base, out) {
        let mut depth = 0i64;
        for c in p.strip_prefix(base).unwrap_or(&p).components() {
            match c {
                std::path::Component::ParentDir => depth -= 1,
                std::path::Component::Normal(_) => depth += 1,
                _ => {}
            }
            assert!(depth >= 0, "{out:?} escapes");
        }
    }
}

/// An `Authorization` header value, as the master, `/files` and the executor API read
/// it. Invariant: HTTP Basic admits exactly the known principal with its secret, and a
/// bearer token is never empty.
pub fn fuzz_authorization(data: &[u8]) {
    use retz_proto::credentials::{Credential, Credentials};
    let Ok(v) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut h = http::HeaderMap::new();
    h.insert(http::header::AUTHORIZATION, v);
    let Ok(known) = Credential::new("retz", "s3cret") else {
        return;
    };
    let set = Credentials::single(known.clone());
    if let Ok(Some(p)) = crate::http_auth::basic(Some(&set), &h, crate::http_auth::MASTER_REALM) {
        assert_eq!(p, "retz");
        // Only the one base64 text of `retz:s3cret` (canonical padding) gets in.
        let value = String::from_utf8_lossy(data);
        let (_, encoded) = value.trim().split_once(' ').unwrap_or_default();
        let header = known.basic_header();
        let expected = header.trim_start_matches("Basic ");
        assert_eq!(encoded.trim(), expected, "{value:?} admitted");
    }
    if let Some(t) = crate::http_auth::bearer(&h) {
        assert!(!t.is_empty() && !t.starts_with(' '));
    }
}

/// An `Accept` header value.
pub fn fuzz_accept(data: &[u8]) {
    if let Ok(v) = http::HeaderValue::from_bytes(data) {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::ACCEPT, v);
        let _ = executor_api::negotiate(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nasty() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = [
            "",
            "\0",
            "/",
            "..",
            "/frameworks/F/executors/E/runs/latest/../../../../../../etc/passwd",
            "/frameworks/F/executors/E/runs/latest/root/etc/passwd",
            "/frameworks/F/executors/E/runs/c/stdout\n-1\n-1",
            "/frameworks/F/executors/E/runs/c/stdout\n9223372036854775807\n9223372036854775807",
            "/frameworks/F/executors/E/runs/c/stdout\n-9223372036854775808\n5",
            "/frameworks//F//executors/E/runs/latest/./stdout",
            "/frameworks/F/executors/E/runs",
            "%2e%2e/%2e%2e",
            "file://",
            "file:///",
            "file://host",
            "http://",
            "http://[::1",
            "http://h:99999999/x\n../../x",
            "a\n/abs",
            "a\nx/../../y",
            "a\n./.",
            "*/*;q=0,application/json;;;,,",
            "Basic cmV0ejpzM2NyZXQ=",
            "basic   cmV0ejpzM2NyZXQ=  ",
            "Basic cmV0ejpzM2NyZXM=",
            "Basic cmV0ejo=",
            "Basic Og==",
            "Bearer ",
            "Bearer  x",
            "application/x-protobuf, text/html",
            "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},\"state\":\"TASK_RUNNING\",\"uuid\":\"AAAA\"}},\"executor_id\":{\"value\":\"e\"},\"framework_id\":{\"value\":\"f\"}}",
            "{\"type\":\"SUBSCRIBE\"",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        v.push(vec![0xff; 64]);
        v.push(vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]); // length-delimited field, huge length
        v.push(vec![0x1a; 4096]);
        v.push("é/../\u{202e}".repeat(500).into_bytes());
        v
    }

    #[test]
    fn nasty_inputs_do_not_panic() {
        for input in nasty() {
            fuzz_executor_call(&input);
            fuzz_files_request(&input);
            fuzz_fetch_uri(&input);
            fuzz_accept(&input);
            fuzz_authorization(&input);
        }
    }

    #[test]
    fn the_known_credential_is_admitted_so_the_invariant_is_exercised() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Basic cmV0ejpzM2NyZXQ="),
        );
        let set = retz_proto::credentials::Credentials::single(
            retz_proto::credentials::Credential::new("retz", "s3cret").unwrap(),
        );
        assert_eq!(
            crate::http_auth::basic(Some(&set), &h, "r").unwrap(),
            Some("retz".into())
        );
    }

    #[test]
    fn the_fuzz_sandbox_exists_so_resolution_is_exercised() {
        let work = fuzz_work_dir().expect("temp dir usable");
        assert!(files::open(work, "A", "/frameworks/F/executors/E/runs/latest/stdout").is_ok());
        assert!(files::open(work, "A", "/frameworks/F/executors/E/runs/latest/root/etc").is_err());
    }
}
