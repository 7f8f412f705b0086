//! The fetcher: puts a `CommandInfo`'s URIs into a sandbox before the process starts, as
//! the Mesos fetcher does.
//!
//! Sources: `file://` URIs (empty host or `localhost`), absolute plain paths, and
//! `http://` URLs (redirects followed, at most [`MAX_REDIRECTS`]). Other schemes
//! (`https://`, `hdfs://`, ...) and relative paths (which Mesos resolves against
//! `--frameworks_home`) are refused with an error naming the URI.
//!
//! After the download:
//! * `executable: true` → mode 0755, no extraction;
//! * else, with `extract` (default true), archives are unpacked into the sandbox (the
//!   archive itself stays): `.tar`, `.tar.gz`, `.tgz` with the `tar` and `flate2` crates,
//!   `.gz` gunzipped with `flate2`; `.tar.bz2`, `.tbz2`, `.tar.xz`, `.txz` with the system
//!   `tar`, `.zip` with the system `unzip` (as Mesos does for all of them);
//! * `output_file` renames the download (a relative path inside the sandbox);
//! * `cache: true` keeps the download in the agent's cache directory, under the SHA-256
//!   of the URI; a later fetch of the same URI copies it from there without downloading.
//!   The cache has no size limit and is never evicted while the work dir lives.
//!
//! Invariant: nothing is written outside the sandbox and the cache directory (`output_file`
//! and archive entries that would escape are refused).

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use retz_proto::mesos::command_info::Uri;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

/// How many HTTP redirects a download follows.
pub const MAX_REDIRECTS: usize = 5;

/// Why a URI could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URI's scheme is not one this fetcher supports.
    #[error(
        "cannot fetch {uri:?}: unsupported scheme {scheme:?} (the local agent fetches file://, http:// and absolute paths)"
    )]
    UnsupportedScheme {
        /// The URI.
        uri: String,
        /// Its scheme.
        scheme: String,
    },
    /// A relative plain path.
    #[error(
        "cannot fetch {uri:?}: relative paths need --frameworks_home, which the local agent does not have; use an absolute path or a file:// URI"
    )]
    RelativePath {
        /// The URI.
        uri: String,
    },
    /// A `file://` URI naming another host.
    #[error("cannot fetch {uri:?}: file:// URIs must name this host (empty or localhost)")]
    RemoteFile {
        /// The URI.
        uri: String,
    },
    /// The URI ends in no file name (and no `output_file` was given).
    #[error("cannot fetch {uri:?}: it names no file; set output_file")]
    NoFileName {
        /// The URI.
        uri: String,
    },
    /// `output_file` is absolute or climbs out of the sandbox.
    #[error(
        "cannot fetch {uri:?}: output_file {output_file:?} must be a relative path inside the sandbox"
    )]
    BadOutputFile {
        /// The URI.
        uri: String,
        /// The offending `output_file`.
        output_file: String,
    },
    /// A file system operation failed.
    #[error("cannot fetch {uri:?}: {what} {path}: {source}")]
    Io {
        /// The URI.
        uri: String,
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTP request failed.
    #[error("cannot fetch {uri:?}: {message}")]
    Http {
        /// The URI.
        uri: String,
        /// What went wrong.
        message: String,
    },
    /// Extraction failed.
    #[error("cannot extract {archive}: {message}")]
    Extract {
        /// The archive.
        archive: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What one fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The fetched file in the sandbox.
    pub path: PathBuf,
    /// Copied from the cache, without downloading.
    pub from_cache: bool,
    /// The archive was extracted into the sandbox.
    pub extracted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Local(PathBuf),
    Http(String),
}

pub(crate) fn classify(uri: &str) -> Result<Source, FetchError> {
    if let Some(rest) = uri.strip_prefix("file://") {
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !(host.is_empty() || host == "localhost") || path.is_empty() {
            return Err(FetchError::RemoteFile { uri: uri.into() });
        }
        return Ok(Source::Local(PathBuf::from(path)));
    }
    if uri.starts_with("http://") {
        return Ok(Source::Http(uri.to_string()));
    }
    if let Some(i) = uri.find("://") {
        return Err(FetchError::UnsupportedScheme {
            uri: uri.into(),
            scheme: uri[..i].to_string(),
        });
    }
    let path = Path::new(uri);
    if path.is_absolute() {
        Ok(Source::Local(path.to_path_buf()))
    } else {
        Err(FetchError::RelativePath { uri: uri.into() })
    }
}

/// The file name a URI is saved under (its last path segment, without query or fragment).
pub(crate) fn basename(uri: &str) -> Option<String> {
    let no_frag = uri.split('#').next().unwrap_or(uri);
    let no_query = no_frag.split('?').next().unwrap_or(no_frag);
    let path = no_query
        .strip_prefix("http://")
        .map_or(no_query, |rest| rest.find('/').map_or("", |i| &rest[i..]));
    let name = path.rsplit('/').next().unwrap_or("");
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_string())
}

/// `rel` joined to `base` if it is relative and stays below `base` lexically.
pub(crate) fn inside(base: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || p.is_absolute() {
        return None;
    }
    let mut depth = 0usize;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth = depth.checked_sub(1)?,
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (depth > 0).then(|| base.join(p))
}

/// Fetches URIs into sandboxes, with one cache directory.
#[derive(Clone)]
pub struct Fetcher {
    cache_dir: PathBuf,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher keeping cached downloads in `cache_dir` (created on first use).
    pub fn new(cache_dir: PathBuf) -> Self {
        Fetcher {
            cache_dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Where a cached download of `uri` lives.
    pub fn cache_path(&self, uri: &str) -> PathBuf {
        let digest = Sha256::digest(uri.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.cache_dir.join(hex)
    }

    /// Fetches every URI into `sandbox`, in order; stops at the first failure.
    pub async fn fetch_all(
        &self,
        uris: &[Uri],
        sandbox: &Path,
    ) -> Result<Vec<Fetched>, FetchError> {
        let mut out = Vec::with_capacity(uris.len());
        for uri in uris {
            out.push(self.fetch(uri, sandbox).await?);
        }
        Ok(out)
    }

    /// Fetches one URI into `sandbox`.
    pub async fn fetch(&self, uri: &Uri, sandbox: &Path) -> Result<Fetched, FetchError> {
        let value = uri.value.as_str();
        let source = classify(value)?;
        let target = match uri.output_file.as_deref() {
            Some(out) => inside(sandbox, out).ok_or_else(|| FetchError::BadOutputFile {
                uri: value.into(),
                output_file: out.into(),
            })?,
            None => {
                let name =
                    basename(value).ok_or_else(|| FetchError::NoFileName { uri: value.into() })?;
                sandbox.join(name)
            }
        };
        let io = |what: &'static str, path: &Path| {
            let uri = value.to_string();
            let path = path.to_path_buf();
            move |source| FetchError::Io {
                uri,
                what,
                path,
                source,
            }
        };
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io("create directory", parent))?;
        }
        let mut from_cache = false;
        if uri.cache() {
            let cached = self.cache_path(value);
            if tokio::fs::try_exists(&cached).await.unwrap_or(false) {
                from_cache = true;
            } else {
                tokio::fs::create_dir_all(&self.cache_dir)
                    .await
                    .map_err(io("create directory", &self.cache_dir))?;
                let tmp = self
                    .cache_dir
                    .join(format!(".partial-{}", uuid::Uuid::new_v4()));
                let res = self.download(value, &source, &tmp).await;
                if let Err(e) = res {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    return Err(e);
                }
                tokio::fs::rename(&tmp, &cached)
                    .await
                    .map_err(io("move into the cache", &cached))?;
            }
            tokio::fs::copy(&cached, &target)
                .await
                .map_err(io("copy from the cache to", &target))?;
        } else {
            self.download(value, &source, &target).await?;
        }
        let mut extracted = false;
        if uri.executable() {
            use std::os::unix::fs::PermissionsExt as _;
            tokio::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .await
                .map_err(io("make executable", &target))?;
        } else if uri.extract() {
            let archive = target.clone();
            let dest = sandbox.to_path_buf();
            extracted = tokio::task::spawn_blocking(move || extract(&archive, &dest))
                .await
                .map_err(|e| FetchError::Extract {
                    archive: target.clone(),
                    message: format!("extraction task failed: {e}"),
                })??;
        }
        Ok(Fetched {
            path: target,
            from_cache,
            extracted,
        })
    }

    async fn download(&self, uri: &str, source: &Source, dest: &Path) -> Result<(), FetchError> {
        match source {
            Source::Local(path) => {
                let meta = tokio::fs::metadata(path)
                    .await
                    .map_err(|source| FetchError::Io {
                        uri: uri.into(),
                        what: "read",
                        path: path.clone(),
                        source,
                    })?;
                if meta.is_dir() {
                    return Err(FetchError::Io {
                        uri: uri.into(),
                        what: "read",
                        path: path.clone(),
                        source: std::io::Error::other("is a directory, not a file"),
                    });
                }
                tokio::fs::copy(path, dest)
                    .await
                    .map_err(|source| FetchError::Io {
                        uri: uri.into(),
                        what: "copy to",
                        path: dest.to_path_buf(),
                        source,
                    })?;
                Ok(())
            }
            Source::Http(url) => self.http_get(uri, url, dest).await,
        }
    }

    async fn http_get(&self, uri: &str, url: &str, dest: &Path) -> Result<(), FetchError> {
        let http_err = |message: String| FetchError::Http {
            uri: uri.into(),
            message,
        };
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let parsed: hyper::Uri = url
                .parse()
                .map_err(|e| http_err(format!("bad URL {url:?}: {e}")))?;
            let resp = self
                .client
                .get(parsed.clone())
                .await
                .map_err(|e| http_err(format!("GET {url} failed: {e}")))?;
            let status = resp.status();
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| http_err(format!("GET {url}: {status} without a Location")))?;
                url = if location.starts_with("http://") {
                    location.to_string()
                } else if location.starts_with('/') {
                    let authority = parsed.authority().map(|a| a.as_str()).unwrap_or_default();
                    format!("http://{authority}{location}")
                } else {
                    return Err(http_err(format!(
                        "GET {url}: redirect to {location:?} which is not an http:// URL"
                    )));
                };
                continue;
            }
            if status != http::StatusCode::OK {
                return Err(http_err(format!("GET {url}: HTTP status {status}")));
            }
            let io = |what: &'static str| {
                let uri = uri.to_string();
                let path = dest.to_path_buf();
                move |source| FetchError::Io {
                    uri,
                    what,
                    path,
                    source,
                }
            };
            let mut file = tokio::fs::File::create(dest).await.map_err(io("create"))?;
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                let frame =
                    frame.map_err(|e| http_err(format!("GET {url}: reading the body: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    file.write_all(&data).await.map_err(io("write"))?;
                }
            }
            file.flush().await.map_err(io("write"))?;
            return Ok(());
        }
        Err(http_err(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

/// The kind of archive a file name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Archive {
    Tar,
    TarGz,
    Gz,
    SystemTar,
    Zip,
}

pub(crate) fn archive_kind(name: &str) -> Option<Archive> {
    let n = name.to_ascii_lowercase();
    if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
        Some(Archive::TarGz)
    } else if n.ends_with(".tar") {
        Some(Archive::Tar)
    } else if n.ends_with(".gz") {
        Some(Archive::Gz)
    } else if n.ends_with(".tar.bz2")
        || n.ends_with(".tbz2")
        || n.ends_with(".tar.xz")
        || n.ends_with(".txz")
    {
        Some(Archive::SystemTar)
    } else if n.ends_with(".zip") {
        Some(Archive::Zip)
    } else {
        None
    }
}

/// Extracts `archive` into `dest` if its name is an archive's; returns whether it did.
fn extract(archive: &Path, dest: &Path) -> Result<bool, FetchError> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(kind) = archive_kind(&name) else {
        return Ok(false);
    };
    let fail = |message: String| FetchError::Extract {
        archive: archive.to_path_buf(),
        message,
    };
    let open = || std::fs::File::open(archive).map_err(|e| fail(format!("open: {e}")));
    match kind {
        Archive::Tar => unpack_tar(open()?, dest).map_err(fail)?,
        Archive::TarGz => unpack_tar(flate2::read::GzDecoder::new(open()?), dest).map_err(fail)?,
        Archive::Gz => {
            let out = dest.join(&name[..name.len() - 3]);
            let mut reader = flate2::read::GzDecoder::new(open()?);
            let mut file = std::fs::File::create(&out)
                .map_err(|e| fail(format!("create {}: {e}", out.display())))?;
            std::io::copy(&mut reader, &mut file).map_err(|e| fail(format!("gunzip: {e}")))?;
        }
        Archive::SystemTar => run_tool(
            std::process::Command::new("tar")
                .arg("-C")
                .arg(dest)
                .arg("-xf")
                .arg(archive),
            "tar",
        )
        .map_err(fail)?,
        Archive::Zip => run_tool(
            std::process::Command::new("unzip")
                .arg("-o")
                .arg("-q")
                .arg("-d")
                .arg(dest)
                .arg(archive),
            "unzip",
        )
        .map_err(fail)?,
    }
    Ok(true)
}

fn unpack_tar<R: std::io::Read>(reader: R, dest: &Path) -> Result<(), String> {
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_overwrite(true);
    // `unpack` refuses entries that would land outside `dest` (absolute or `..` paths).
    ar.unpack(dest).map_err(|e| format!("untar: {e}"))
}

fn run_tool(cmd: &mut std::process::Command, tool: &str) -> Result<(), String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the system `{tool}` (is it installed?): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{tool}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            classify("file:///a/b.tgz").unwrap(),
            Source::Local("/a/b.tgz".into())
        );
        assert_eq!(
            classify("file://localhost/a").unwrap(),
            Source::Local("/a".into())
        );
        assert_eq!(classify("/a/b").unwrap(), Source::Local("/a/b".into()));
        assert_eq!(
            classify("http://h:1/x").unwrap(),
            Source::Http("http://h:1/x".into())
        );
        assert!(matches!(
            classify("file://other/a"),
            Err(FetchError::RemoteFile { .. })
        ));
        assert!(matches!(
            classify("https://h/x"),
            Err(FetchError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            classify("hdfs://h/x"),
            Err(FetchError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            classify("rel/x"),
            Err(FetchError::RelativePath { .. })
        ));
    }

    #[test]
    fn basenames() {
        assert_eq!(
            basename("http://h:1/d/app.tgz?x=1#f").as_deref(),
            Some("app.tgz")
        );
        assert_eq!(basename("file:///d/run.sh").as_deref(), Some("run.sh"));
        assert_eq!(basename("http://h:1/"), None);
        assert_eq!(basename("http://h:1"), None);
        assert_eq!(basename("/d/.."), None);
    }

    #[test]
    fn output_file_stays_inside() {
        let base = Path::new("/s");
        assert_eq!(inside(base, "a/b"), Some(PathBuf::from("/s/a/b")));
        assert_eq!(inside(base, "a/../b"), Some(PathBuf::from("/s/a/../b")));
        assert_eq!(inside(base, "../b"), None);
        assert_eq!(inside(base, "a/../../b"), None);
        assert_eq!(inside(base, "/etc/passwd"), None);
        assert_eq!(inside(base, "."), None);
        assert_eq!(inside(base, ""), None);
    }

    #[test]
    fn archive_kinds() {
        assert_eq!(archive_kind("a.tar.gz"), Some(Archive::TarGz));
        assert_eq!(archive_kind("A.TGZ"), Some(Archive::TarGz));
        assert_eq!(archive_kind("a.tar"), Some(Archive::Tar));
        assert_eq!(archive_kind("a.gz"), Some(Archive::Gz));
        assert_eq!(archive_kind("a.tbz2"), Some(Archive::SystemTar));
        assert_eq!(archive_kind("a.tar.xz"), Some(Archive::SystemTar));
        assert_eq!(archive_kind("a.zip"), Some(Archive::Zip));
        assert_eq!(archive_kind("a.sh"), None);
    }
}
