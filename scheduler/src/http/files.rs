//! Sandbox files of a job: `/job/{id}/file`, `/download`, `/dir`, proxied to the Mesos
//! agent's `/files/read`, `/files/download`, `/files/browse` of the job's sandbox (taken
//! from the job's `url`, `http://AGENT/files/browse?path=SANDBOX`).
//!
//! Invariant: a client path is relative to the sandbox (`$MESOS_SANDBOX` or empty means
//! the sandbox itself); absolute paths and `..` components are refused with 400 before
//! any request leaves the server, so no path outside the sandbox is ever asked for.
//! Requests carry the framework's credential (`Authorization: Basic`) when the server has
//! one: the embedded cluster's agents (and agents run with HTTP authentication) refuse
//! `/files` without it.
//!
//! Byte-exact: `/file` decodes the agent's `/files/read` answer byte for byte
//! ([`agent_read`]; a Mesos agent puts raw bytes in its JSON) and answers a
//! [`FileChunk`] that is text when the bytes are UTF-8 and base64 otherwise, offsets
//! counting bytes. The job in a `/file` answer is read before the file, so a client that
//! sees the job ended and an empty piece has reached the file's end. `/download` streams the agent's `/files/download` whole, or refuses
//! before sending anything: a file over `max_file_size` (as the agent's `Content-Length`
//! announces it, else as `/files/read` sizes it) is a 400 naming the limit, never a 200
//! cut short. The announced length is passed on, so a body the agent ends early fails
//! on the client instead of passing for the whole file.

mod agent_read;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use retz_proto::api::{DirEntry, FileChunk, GetFileResponse, Job, ListFilesResponse};
use retz_proto::credentials::Credential;

use super::jobs::shown;
use super::{ApiError, ApiResult, AppState, Caller, job_id};

/// The sandbox placeholder clients may use in paths.
const SANDBOX_VAR: &str = "$MESOS_SANDBOX";

/// Largest agent answer read for `/file` and `/dir` (JSON), bytes.
const MAX_AGENT_JSON: usize = 64 << 20;

/// An HTTP client for agents' `/files` endpoints.
#[derive(Clone)]
pub(super) struct AgentClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    /// `Authorization` of every request (Basic, the framework's credential), and its
    /// principal for messages.
    authorization: Option<(HeaderValue, String)>,
}

impl AgentClient {
    pub(super) fn new(connect_timeout: Duration, credential: Option<&Credential>) -> AgentClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        let authorization = credential.and_then(|c| {
            // A checked credential has no control characters: always a valid value.
            let mut v = HeaderValue::from_str(&c.basic_header()).ok()?;
            v.set_sensitive(true);
            Some((v, c.principal.clone()))
        });
        AgentClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            authorization,
        }
    }

    /// What to tell the user when an agent answers 401.
    fn unauthorized(&self, what: &str) -> ApiError {
        let who = match &self.authorization {
            Some((_, principal)) => {
                format!("refused the server's credentials (principal {principal})")
            }
            None => "requires credentials and the server has none (mesos.secret_file)".into(),
        };
        ApiError::bad_gateway(format!("the job's agent {who} for {what}"))
    }

    async fn get(
        &self,
        uri: &str,
        timeout: Duration,
    ) -> ApiResult<axum::http::Response<hyper::body::Incoming>> {
        let uri: Uri = uri
            .parse()
            .map_err(|e| ApiError::internal(format!("bad agent url {uri}: {e}")))?;
        let mut req = Request::get(uri.clone());
        if let Some((value, _)) = &self.authorization {
            req = req.header(AUTHORIZATION, value.clone());
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| ApiError::internal(format!("agent request {uri}: {e}")))?;
        match tokio::time::timeout(timeout, self.client.request(req)).await {
            Ok(Ok(res)) => Ok(res),
            Ok(Err(e)) => Err(ApiError::bad_gateway(format!(
                "the job's agent did not answer ({uri}): {e}"
            ))),
            Err(_) => Err(ApiError::bad_gateway(format!(
                "the job's agent did not answer within {} s ({uri})",
                timeout.as_secs()
            ))),
        }
    }
}

/// The agent path of `rel` inside `sandbox`. `rel` is relative to the sandbox; empty or
/// `$MESOS_SANDBOX` is the sandbox itself. Absolute paths, `..` components and control
/// characters are refused.
pub fn sandbox_path(sandbox: &str, rel: &str) -> Result<String, ApiError> {
    let rest = if rel == SANDBOX_VAR {
        ""
    } else if let Some(r) = rel
        .strip_prefix(SANDBOX_VAR)
        .and_then(|r| r.strip_prefix('/'))
    {
        r
    } else {
        rel
    };
    if rest.starts_with('/') {
        return Err(ApiError::bad_request(format!(
            "path {rel:?} is absolute; give a path relative to the sandbox"
        )));
    }
    if rest.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "path contains control characters; give a plain relative path",
        ));
    }
    let parts: Vec<&str> = rest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(ApiError::bad_request(format!(
            "path {rel:?} leaves the sandbox (`..`); give a path inside it"
        )));
    }
    let mut out = sandbox.trim_end_matches('/').to_owned();
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The query's parameters; only `allowed` names are accepted.
fn query_params(
    query: Option<String>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&&*k) {
            return Err(ApiError::bad_request(format!(
                "unknown parameter {:?}; use {}",
                k.chars().take(40).collect::<String>(),
                allowed.join(", ")
            )));
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

/// Largest `offset` and `length` (agents take them as signed 64-bit numbers). The file
/// proxy owns this rule: the handlers refuse a larger one with 400 before any agent is
/// asked.
const MAX_OFFSET: u64 = i64::MAX as u64;

/// The query parameter `name` as a byte offset or length, at most [`MAX_OFFSET`].
fn number(params: &BTreeMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|v| match v.parse::<u64>() {
            Ok(n) if n <= MAX_OFFSET => Ok(n),
            Ok(_) => Err(ApiError::bad_request(format!(
                "{name}={v} is out of range; at most {MAX_OFFSET} bytes"
            ))),
            Err(_) => Err(ApiError::bad_request(format!(
                "{name}={v:?} is not a whole number of bytes"
            ))),
        })
        .transpose()
}

async fn owned_job(state: &AppState, caller: &Caller, id: u64) -> ApiResult<Job> {
    match state.store.get_job(id).await? {
        Some((owner, job)) if owner == caller.key() => Ok(job),
        _ => Err(ApiError::not_found(format!("No such job: {id}"))),
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The agent base url and sandbox directory of `job`; `None` until the executor
/// reported the directory.
fn sandbox_of(job: &Job) -> Option<(String, String)> {
    let s = job.sandbox.as_ref()?;
    Some((s.agent.clone(), s.directory.clone()?))
}

/// Most of an agent's refusal shown to the user, bytes.
const MAX_AGENT_REFUSAL: usize = 1024;

/// 403 with the agent's reason (a link, a file the job's user could not read, ...).
async fn forbidden(
    res: axum::http::Response<hyper::body::Incoming>,
    what: &str,
    timeout: Duration,
) -> ApiError {
    let body = tokio::time::timeout(
        timeout,
        Limited::new(res.into_body(), MAX_AGENT_REFUSAL).collect(),
    )
    .await;
    let reason = match body {
        Ok(Ok(b)) => {
            let b = b.to_bytes();
            // The agent's JSON error or plain text; shown as text either way.
            let text = serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .and_then(|v| {
                    ["status", "message", "error"]
                        .iter()
                        .find_map(|k| v[k].as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&b).trim().to_owned());
            text.chars()
                .filter(|c| !c.is_control())
                .take(MAX_AGENT_REFUSAL)
                .collect()
        }
        _ => String::new(),
    };
    if reason.is_empty() {
        ApiError::forbidden(format!("{what}: the job's agent refuses to serve it"))
    } else {
        ApiError::forbidden(format!("{what}: {reason}"))
    }
}

/// The agent's answer to `uri` when it is a success; `None` for 404. Refusals become
/// the user's errors (401: the server's credentials; 403: the agent's reason).
async fn agent_ok(
    state: &AppState,
    uri: &str,
    what: &str,
) -> ApiResult<Option<axum::http::Response<hyper::body::Incoming>>> {
    let res = state.agents.get(uri, state.config.agent_timeout).await?;
    let status = res.status();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(state.agents.unauthorized(what));
    }
    if status == StatusCode::FORBIDDEN {
        return Err(forbidden(res, what, state.config.agent_timeout).await);
    }
    if !status.is_success() {
        return Err(ApiError::bad_gateway(format!(
            "the job's agent answered {status} for {what}"
        )));
    }
    Ok(Some(res))
}

/// The whole body of a successful agent answer (up to [`MAX_AGENT_JSON`]); `None` for 404.
async fn agent_body(state: &AppState, uri: &str, what: &str) -> ApiResult<Option<Bytes>> {
    let Some(res) = agent_ok(state, uri, what).await? else {
        return Ok(None);
    };
    let body = tokio::time::timeout(
        state.config.agent_timeout,
        Limited::new(res.into_body(), MAX_AGENT_JSON).collect(),
    )
    .await
    .map_err(|_| ApiError::bad_gateway(format!("the job's agent stalled sending {what}")))?
    .map_err(|e| ApiError::bad_gateway(format!("reading {what} from the job's agent: {e}")))?
    .to_bytes();
    Ok(Some(body))
}

async fn agent_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    uri: &str,
    what: &str,
) -> ApiResult<Option<T>> {
    let Some(body) = agent_body(state, uri, what).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| ApiError::bad_gateway(format!("the job's agent sent unreadable {what}: {e}")))
}

/// An agent's `/files/read` of `full` (`offset` absent: the file's size), byte for byte.
async fn agent_read(
    state: &AppState,
    base: &str,
    full: &str,
    window: Option<(u64, Option<u64>)>,
    what: &str,
) -> ApiResult<Option<agent_read::AgentRead>> {
    let mut uri = format!("{base}/files/read?path={}", encode(full));
    if let Some((offset, length)) = window {
        uri.push_str(&format!("&offset={offset}"));
        if let Some(l) = length {
            uri.push_str(&format!("&length={l}"));
        }
    }
    let Some(body) = agent_body(state, &uri, what).await? else {
        return Ok(None);
    };
    agent_read::parse_read(&body).map(Some).map_err(|e| {
        ApiError::bad_gateway(format!("the job's agent sent an unreadable {what}: {e}"))
    })
}

/// `GET /job/{id}/file?path&offset&length`: a chunk of a sandbox file; `file` is null
/// before the job runs or when the file is absent.
pub(super) async fn file(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> ApiResult<Json<GetFileResponse>> {
    let id = job_id(path)?;
    let params = query_params(query, &["path", "offset", "length"])?;
    let rel = params
        .get("path")
        .ok_or_else(|| ApiError::bad_request("missing path=FILE (relative to the sandbox)"))?;
    sandbox_path("", rel)?;
    let offset = number(&params, "offset")?.unwrap_or(0);
    let length = number(&params, "length")?;
    let job = owned_job(&state, &caller, id).await?;
    let Some((base, sandbox)) = sandbox_of(&job) else {
        return Ok(Json(GetFileResponse {
            job: shown(job),
            file: None,
        }));
    };
    let full = sandbox_path(&sandbox, rel)?;
    let read = agent_read(&state, &base, &full, Some((offset, length)), rel).await?;
    let file = read.map(|r| FileChunk::from_bytes(r.offset, &r.data).0);
    Ok(Json(GetFileResponse {
        job: shown(job),
        file,
    }))
}

/// `GET /job/{id}/dir?path`: a sandbox directory listing; `[]` before the job runs.
pub(super) async fn dir(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> ApiResult<Json<ListFilesResponse>> {
    let id = job_id(path)?;
    let params = query_params(query, &["path"])?;
    let rel = params.get("path").map_or("", String::as_str);
    sandbox_path("", rel)?;
    let job = owned_job(&state, &caller, id).await?;
    let Some((base, sandbox)) = sandbox_of(&job) else {
        return Ok(Json(ListFilesResponse {
            job: shown(job),
            entries: Vec::new(),
        }));
    };
    let full = sandbox_path(&sandbox, rel)?;
    let uri = format!("{base}/files/browse?path={}", encode(&full));
    let entries: Vec<DirEntry> = agent_json(&state, &uri, rel)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{rel} not found")))?;
    Ok(Json(ListFilesResponse {
        job: shown(job),
        entries,
    }))
}

/// `GET /job/{id}/download?path`: the raw file, whole, when it is within the server's
/// max file size; a 400 naming the limit before any byte otherwise.
pub(super) async fn download(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> ApiResult<Response> {
    let id = job_id(path)?;
    let params = query_params(query, &["path"])?;
    let rel = params
        .get("path")
        .ok_or_else(|| ApiError::bad_request("missing path=FILE (relative to the sandbox)"))?;
    sandbox_path("", rel)?;
    let job = owned_job(&state, &caller, id).await?;
    let Some((base, sandbox)) = sandbox_of(&job) else {
        return Err(ApiError::not_found(format!(
            "job {id} has not started; it has no sandbox yet"
        )));
    };
    let full = sandbox_path(&sandbox, rel)?;
    let uri = format!("{base}/files/download?path={}", encode(&full));
    let not_found = || ApiError::not_found(format!("{rel} not found"));
    let res = agent_ok(&state, &uri, rel).await?.ok_or_else(not_found)?;
    let max = state.config.max_file_size;
    let announced = res
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // An agent that does not announce the length (Mesos and ours do): its size now.
    let size = match announced {
        Some(n) => n,
        None if max == u64::MAX => 0,
        None => {
            agent_read(&state, &base, &full, None, rel)
                .await?
                .ok_or_else(not_found)?
                .offset
        }
    };
    if size > max {
        return Err(ApiError::bad_request(format!(
            "{rel} is {size} bytes, over the server's max file size of {max} bytes \
             (server.max_file_size); read it in pieces with get-file --offset --length"
        )));
    }
    let mut response = (
        [(CONTENT_TYPE, "application/octet-stream")],
        Body::new(res.into_body()),
    )
        .into_response();
    if let Some(n) = announced {
        response.headers_mut().insert(CONTENT_LENGTH, n.into());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_paths_stay_inside() {
        assert_eq!(sandbox_path("/s/x", "").unwrap(), "/s/x");
        assert_eq!(sandbox_path("/s/x/", "$MESOS_SANDBOX").unwrap(), "/s/x");
        assert_eq!(
            sandbox_path("/s/x", "$MESOS_SANDBOX/a/b").unwrap(),
            "/s/x/a/b"
        );
        assert_eq!(sandbox_path("/s/x", "./a//b/").unwrap(), "/s/x/a/b");
        assert_eq!(
            sandbox_path("/s", "dead + poet + society.txt").unwrap(),
            "/s/dead + poet + society.txt"
        );
        for bad in [
            "/etc/passwd",
            "..",
            "a/../../b",
            "$MESOS_SANDBOX/..",
            "a\nb",
            "$MESOS_SANDBOX//etc",
        ] {
            assert!(sandbox_path("/s", bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn accepted_paths_never_leave_the_sandbox(rel in "[a-z./$A-Z_ \\\\-]{0,40}") {
            if let Ok(p) = sandbox_path("/sb/x", &rel) {
                proptest::prop_assert!(p == "/sb/x" || p.starts_with("/sb/x/"), "{p}");
                proptest::prop_assert!(!p.split('/').any(|c| c == ".."), "{p}");
            }
        }
    }
}
