//! [`Client`]: one typed async method per endpoint of the Retz HTTP API.
//!
//! Every request is signed ([`crate::signing`]) with a fresh `Date`; the signed RESOURCE
//! is the path plus the query text exactly as it is put on the wire ([`crate::query`]).
//! Connection errors are retried with a doubling delay, for idempotent calls only (reads,
//! kills, `PUT /app`, enabling/disabling users); `POST /job`, `POST /admin/users` and
//! `POST /admin/gc` are sent once. Connects time out after
//! [`ClientOptions::connect_timeout`] (3 s), whole requests after
//! [`ClientOptions::request_timeout`]; a download has no overall limit but fails when no
//! byte arrives for [`ClientOptions::request_timeout`].
//!
//! HTTPS: the server's certificate is checked against the public CAs plus the
//! certificates of [`ClientConfig::ca_cert`] (a private CA, or the server's self-signed
//! certificate); `tls_insecure` turns checking off. A certificate the client does not
//! accept is [`Error::Untrusted`] at once, never retried.

use std::io::Write;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use retz_proto::api::{
    AppResponse, Application, ClientConfig, CreateUserRequest, ErrorBody, GcRequest, GcResponse,
    GetFileResponse, GetJobResponse, Job, JobResponse, JobState, ListAppsResponse,
    ListFilesResponse, ListJobsRequest, ListJobsResponse, ListUsersResponse, LoadAppRequest,
    ScheduleRequest, StatusResponse, UsageResponse, User, UserResponse, auth::IDEMPOTENCY_KEY,
    auth::now_date,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backoff::Backoff;
use crate::error::Error;
use crate::query;
use crate::signing::{resource, sign_request_keyed};

/// Timeouts and retries of a [`Client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Limit for establishing a connection (3 s).
    pub connect_timeout: Duration,
    /// Limit for a whole request and answer (60 s); for downloads, the longest silence.
    pub request_timeout: Duration,
    /// How many times an idempotent call is retried after a connection error (3).
    pub retries: u32,
    /// First retry delay (250 ms), doubling up to [`ClientOptions::retry_max_delay`].
    pub retry_delay: Duration,
    /// Longest retry delay (4 s).
    pub retry_max_delay: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(60),
            retries: 3,
            retry_delay: Duration::from_millis(250),
            retry_max_delay: Duration::from_secs(4),
        }
    }
}

/// Whether a call may be repeated after a connection error.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Idempotent,
    Once,
}

/// A connection to one Retz server for one access key.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
    base: String,
    options: ClientOptions,
}

impl Client {
    /// A client for `config` with the default [`ClientOptions`].
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        Client::with_options(config, ClientOptions::default())
    }

    /// A client for `config` with `options`.
    pub fn with_options(config: ClientConfig, options: ClientOptions) -> Result<Client, Error> {
        let bad = |reason: &str| Error::BadUrl {
            url: config.server.clone(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(config.server.trim()).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a server URL has no query or fragment"));
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.request_timeout)
            .danger_accept_invalid_certs(config.tls_insecure)
            .user_agent(concat!("retz-client/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_cert {
            for cert in trusted_certificates(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| match &config.ca_cert {
            // Certificates are only decoded here; the other settings cannot fail.
            Some(path) => Error::CaCert {
                path: path.display().to_string(),
                reason: root_cause(&e),
            },
            None => bad(&e.to_string()),
        })?;
        Ok(Client {
            http,
            config,
            base,
            options,
        })
    }

    /// The configuration this client uses.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The server URL, without a trailing `/`.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// `GET /ping` (no auth): the server's answer text (`"OK"`).
    pub async fn ping(&self) -> Result<String, Error> {
        let (res, resp) = self
            .send(Method::GET, "/ping", "", None, Retry::Idempotent, true)
            .await?;
        resp.text().await.map_err(|e| self.decode("GET", &res, &e))
    }

    /// `GET /status` (no auth).
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        self.call(Method::GET, "/status", "", None::<&()>, Retry::Idempotent)
            .await
    }

    /// `POST /jobs`: the caller's jobs in `state`, optionally only those tagged `tag`.
    pub async fn list_jobs(
        &self,
        state: JobState,
        tag: Option<&str>,
    ) -> Result<ListJobsResponse, Error> {
        let req = ListJobsRequest {
            state,
            tag: tag.map(str::to_owned),
        };
        // a read: safe to repeat although it is a POST
        self.call(Method::POST, "/jobs", "", Some(&req), Retry::Idempotent)
            .await
    }

    /// `POST /job`: queues `job`; the answer has its id, `scheduled` time and state.
    /// Sent with a fresh `Idempotency-Key` ([`Client::schedule_with_key`]), so its
    /// retries never queue the job twice.
    pub async fn schedule(&self, job: Job) -> Result<Job, Error> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        self.schedule_with_key(job, &key).await
    }

    /// `POST /job` with `Idempotency-Key: key` (signed with the request): the server
    /// creates at most one job for the key, and answers a repeat with that job. So the
    /// call is retried like a read (connection failures, a lost answer, 503), and calling
    /// it again with the same key after a failure is safe too.
    pub async fn schedule_with_key(&self, job: Job, key: &str) -> Result<Job, Error> {
        let req = ScheduleRequest { job };
        let body = serde_json::to_vec(&req)
            .map_err(|e| self.decode("POST", "/job", &format!("cannot encode: {e}")))?;
        let (res, resp) = self
            .send_keyed(
                Method::POST,
                "/job",
                "",
                Some(body),
                Retry::Idempotent,
                true,
                Some(key),
            )
            .await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport(&res, &e))?;
        let r: JobResponse =
            serde_json::from_slice(&bytes).map_err(|e| self.decode("POST", &res, &e))?;
        Ok(r.job)
    }

    /// `POST /job/plan`: where `job` would run now, or why it would wait. Nothing is
    /// stored, so it is retried like a read.
    pub async fn plan(&self, job: Job) -> Result<retz_proto::api::PlanResponse, Error> {
        let req = ScheduleRequest { job };
        self.call(Method::POST, "/job/plan", "", Some(&req), Retry::Idempotent)
            .await
    }

    /// `GET /job/{id}`: the job (`None` if there is no such job of the caller's) and,
    /// while queued, its queue position.
    pub async fn get_job(&self, id: u64) -> Result<GetJobResponse, Error> {
        self.call(
            Method::GET,
            &format!("/job/{id}"),
            "",
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `DELETE /job/{id}`: kills the job.
    pub async fn kill(&self, id: u64) -> Result<Job, Error> {
        let r: JobResponse = self
            .call(
                Method::DELETE,
                &format!("/job/{id}"),
                "",
                None::<&()>,
                Retry::Idempotent,
            )
            .await?;
        Ok(r.job)
    }

    /// `GET /job/{id}/file?path&offset&length`: up to `length` bytes (the whole rest
    /// when `None`) of the sandbox file `path` from `offset`.
    pub async fn get_file(
        &self,
        id: u64,
        path: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<GetFileResponse, Error> {
        let offset = offset.to_string();
        let length = length.map(|l| l.to_string());
        let mut pairs = vec![("path", path), ("offset", offset.as_str())];
        if let Some(l) = &length {
            pairs.push(("length", l));
        }
        self.call(
            Method::GET,
            &format!("/job/{id}/file"),
            &query::build(&pairs),
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `GET /job/{id}/download?path`: streams the raw bytes of `path` into `out`;
    /// returns how many bytes were written.
    pub async fn download<W: Write + Send + ?Sized>(
        &self,
        id: u64,
        path: &str,
        out: &mut W,
    ) -> Result<u64, Error> {
        let q = query::build(&[("path", path)]);
        let (res, mut resp) = self
            .send(
                Method::GET,
                &format!("/job/{id}/download"),
                &q,
                None,
                Retry::Idempotent,
                false,
            )
            .await?;
        let expected = resp.content_length();
        let mut written = 0u64;
        loop {
            let chunk = resp.chunk().await.map_err(|e| self.transport(&res, &e))?;
            let Some(chunk) = chunk else { break };
            out.write_all(&chunk).map_err(|source| Error::Write {
                resource: res.clone(),
                source,
            })?;
            written += chunk.len() as u64;
        }
        out.flush().map_err(|source| Error::Write {
            resource: res.clone(),
            source,
        })?;
        if let Some(n) = expected.filter(|n| *n != written) {
            return Err(self.decode(
                "GET",
                &res,
                &format!("got {written} bytes of the {n} announced"),
            ));
        }
        Ok(written)
    }

    /// [`Client::download`] into the file `target`, all or nothing: the bytes go to a
    /// new temporary file beside it (`.NAME.part-PID-N`, same directory, so the rename
    /// cannot cross file systems), which is renamed to `target` only once every byte
    /// arrived; on any failure it is removed and `target` is left as it was.
    pub async fn download_to(
        &self,
        id: u64,
        path: &str,
        target: &std::path::Path,
    ) -> Result<u64, Error> {
        let write_error = |source| Error::Write {
            resource: target.display().to_string(),
            source,
        };
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "download".into());
        let (temp, mut file) = (0u32..)
            .map(|n| dir.join(format!(".{name}.part-{}-{n}", std::process::id())))
            .take(100)
            .find_map(|p| {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&p)
                {
                    Ok(f) => Some(Ok((p, f))),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(e)),
                }
            })
            .unwrap_or_else(|| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "no free temporary name",
                ))
            })
            .map_err(write_error)?;
        let result = async {
            let n = self.download(id, path, &mut file).await?;
            file.sync_all().map_err(write_error)?;
            drop(file);
            std::fs::rename(&temp, target).map_err(write_error)?;
            Ok(n)
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// `GET /job/{id}/dir?path`: the entries of a sandbox directory (`$MESOS_SANDBOX` is
    /// the sandbox root).
    pub async fn list_files(&self, id: u64, path: &str) -> Result<ListFilesResponse, Error> {
        self.call(
            Method::GET,
            &format!("/job/{id}/dir"),
            &query::build(&[("path", path)]),
            None::<&()>,
            Retry::Idempotent,
        )
        .await
    }

    /// `PUT /app/{name}`: creates or replaces `app`.
    pub async fn load_app(&self, app: Application) -> Result<Application, Error> {
        let path = format!("/app/{}", query::encode(&app.appid));
        let req = LoadAppRequest { application: app };
        let r: AppResponse = self
            .call(Method::PUT, &path, "", Some(&req), Retry::Idempotent)
            .await?;
        Ok(r.application)
    }

    /// `GET /app/{name}`.
    pub async fn get_app(&self, name: &str) -> Result<Application, Error> {
        let path = format!("/app/{}", query::encode(name));
        let r: AppResponse = self
            .call(Method::GET, &path, "", None::<&()>, Retry::Idempotent)
            .await?;
        Ok(r.application)
    }

    /// `GET /apps`: the caller's applications.
    pub async fn list_apps(&self) -> Result<Vec<Application>, Error> {
        let r: ListAppsResponse = self
            .call(Method::GET, "/apps", "", None::<&()>, Retry::Idempotent)
            .await?;
        Ok(r.application_list)
    }

    /// `DELETE /app/{name}`.
    pub async fn unload_app(&self, name: &str) -> Result<Application, Error> {
        let path = format!("/app/{}", query::encode(name));
        let r: AppResponse = self
            .call(Method::DELETE, &path, "", None::<&()>, Retry::Idempotent)
            .await?;
        Ok(r.application)
    }

    /// `POST /admin/users` (admin key): a new user with its secret.
    pub async fn create_user(&self, info: &str) -> Result<User, Error> {
        let req = CreateUserRequest {
            info: info.to_owned(),
        };
        let r: UserResponse = self
            .call(Method::POST, "/admin/users", "", Some(&req), Retry::Once)
            .await?;
        Ok(r.user)
    }

    /// `GET /admin/users` (admin key).
    pub async fn list_users(&self) -> Result<Vec<User>, Error> {
        let r: ListUsersResponse = self
            .call(
                Method::GET,
                "/admin/users",
                "",
                None::<&()>,
                Retry::Idempotent,
            )
            .await?;
        Ok(r.users)
    }

    /// `GET /admin/user/{key}` (admin key).
    pub async fn get_user(&self, key: &str) -> Result<User, Error> {
        self.user_call(Method::GET, key, "").await
    }

    /// `POST /admin/user/{key}/enable` (admin key).
    pub async fn enable_user(&self, key: &str) -> Result<User, Error> {
        self.user_call(Method::POST, key, "/enable").await
    }

    /// `POST /admin/user/{key}/disable` (admin key).
    pub async fn disable_user(&self, key: &str) -> Result<User, Error> {
        self.user_call(Method::POST, key, "/disable").await
    }

    async fn user_call(&self, method: Method, key: &str, suffix: &str) -> Result<User, Error> {
        let path = format!("/admin/user/{}{suffix}", query::encode(key));
        let r: UserResponse = self
            .call(method, &path, "", None::<&()>, Retry::Idempotent)
            .await?;
        Ok(r.user)
    }

    /// `GET /admin/usage?start&end` (admin key): jobs that finished in `[start, end)`.
    pub async fn usage(&self, start: &str, end: &str) -> Result<Vec<Job>, Error> {
        let q = query::build(&[("start", start), ("end", end)]);
        let r: UsageResponse = self
            .call(
                Method::GET,
                "/admin/usage",
                &q,
                None::<&()>,
                Retry::Idempotent,
            )
            .await?;
        Ok(r.jobs)
    }

    /// `POST /admin/gc` (admin key): deletes jobs that ended more than `leeway` seconds
    /// ago; returns how many.
    pub async fn gc(&self, leeway: u64) -> Result<u64, Error> {
        let r: GcResponse = self
            .call(
                Method::POST,
                "/admin/gc",
                "",
                Some(&GcRequest { leeway }),
                Retry::Once,
            )
            .await?;
        Ok(r.deleted)
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T, Error> {
        let verb = method.as_str().to_owned();
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| {
                self.decode(
                    &verb,
                    &resource(path, query),
                    &format!("cannot encode: {e}"),
                )
            })?),
            None => None,
        };
        let (res, resp) = self.send(method, path, query, body, retry, true).await?;
        let bytes = resp.bytes().await.map_err(|e| self.transport(&res, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.decode(&verb, &res, &e))
    }

    /// Sends one signed request (retrying connection errors when `retry` allows) and
    /// turns an error status into [`Error::Server`]. Returns the signed resource too.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<Vec<u8>>,
        retry: Retry,
        whole_timeout: bool,
    ) -> Result<(String, reqwest::Response), Error> {
        self.send_keyed(method, path, query, body, retry, whole_timeout, None)
            .await
    }

    /// [`Client::send`] with an optional `Idempotency-Key`: a keyed request is also
    /// retried after the request went out (timeouts, resets, 503), since the server
    /// answers its repeats with what the first one did.
    #[allow(clippy::too_many_arguments)]
    async fn send_keyed(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<Vec<u8>>,
        retry: Retry,
        whole_timeout: bool,
        idempotency_key: Option<&str>,
    ) -> Result<(String, reqwest::Response), Error> {
        let res = resource(path, query);
        let url = format!("{}{res}", self.base);
        let verb = method.as_str().to_owned();
        let mut backoff = Backoff::new(self.options.retry_delay, self.options.retry_max_delay);
        let mut attempt = 0;
        let resp = loop {
            let body_bytes = body.as_deref().unwrap_or_default();
            let h = sign_request_keyed(
                &self.config,
                &verb,
                &res,
                body_bytes,
                &now_date(),
                idempotency_key,
            );
            let mut rb = self
                .http
                .request(method.clone(), &url)
                .header("Date", &h.date)
                .header("Authorization", &h.authorization);
            if let Some(k) = idempotency_key {
                rb = rb.header(IDEMPOTENCY_KEY, k);
            }
            if whole_timeout {
                rb = rb.timeout(self.options.request_timeout);
            }
            if let Some(md5) = &h.content_md5 {
                rb = rb.header("Content-MD5", md5);
            }
            if let Some(b) = &body {
                rb = rb
                    .header("Content-Type", "application/json")
                    .body(b.clone());
            }
            let keyed = idempotency_key.is_some();
            match rb.send().await {
                Ok(r)
                    if keyed
                        && r.status() == StatusCode::SERVICE_UNAVAILABLE
                        && attempt < self.options.retries =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Ok(r) => break r,
                Err(e)
                    if (e.is_connect() || keyed)
                        && retry == Retry::Idempotent
                        && !is_untrusted(&e) =>
                {
                    if attempt >= self.options.retries {
                        return Err(self.transport(&res, &e));
                    }
                    attempt += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(self.transport_verb(&verb, &res, &e)),
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok((res, resp));
        }
        let text = resp.text().await.unwrap_or_default();
        Err(self.refusal(&verb, &res, status, &text))
    }

    fn refusal(&self, verb: &str, res: &str, status: StatusCode, text: &str) -> Error {
        let message = error_message(status, text);
        Error::Server {
            server: self.base.clone(),
            method: verb.to_owned(),
            resource: res.to_owned(),
            code: status.as_u16(),
            message,
        }
    }

    fn transport(&self, res: &str, e: &reqwest::Error) -> Error {
        self.transport_verb("GET", res, e)
    }

    fn transport_verb(&self, verb: &str, res: &str, e: &reqwest::Error) -> Error {
        if e.is_timeout() && !e.is_connect() {
            return Error::Timeout {
                server: self.base.clone(),
                method: verb.to_owned(),
                resource: res.to_owned(),
                secs: self.options.request_timeout.as_secs(),
            };
        }
        if let Some(tls) = certificate_error(e) {
            return Error::Untrusted {
                server: self.base.clone(),
                cause: tls.to_string(),
                hint: untrusted_hint(tls, self.config.ca_cert.is_some()),
            };
        }
        if e.is_connect() || e.is_request() {
            return Error::Unreachable {
                server: self.base.clone(),
                cause: root_cause(e),
            };
        }
        self.decode(verb, res, &root_cause(e))
    }

    fn decode(&self, verb: &str, res: &str, cause: &dyn std::fmt::Display) -> Error {
        Error::Decode {
            server: self.base.clone(),
            method: verb.to_owned(),
            resource: res.to_owned(),
            cause: cause.to_string(),
        }
    }
}

/// The message of an error answer on one line: the [`ErrorBody`] `status`, else the
/// body's first line, else the status's reason; control characters escaped, at most
/// 500 characters.
fn error_message(status: StatusCode, text: &str) -> String {
    let raw = match serde_json::from_str::<ErrorBody>(text) {
        Ok(b) => b.status,
        Err(_) => text.trim().lines().next().unwrap_or("").to_owned(),
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no explanation")
            .to_owned();
    }
    raw.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .take(500)
        .collect()
}

mod history;
mod import;
mod limits;
mod tls;

use tls::{certificate_error, is_untrusted, root_cause, trusted_certificates, untrusted_hint};

#[cfg(test)]
mod tests;
