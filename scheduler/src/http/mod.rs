//! The HTTP API of `retz-server` (axum): the original Retz paths and status codes, signed
//! requests (`Retz-auth-v1`), per-user isolation, JSON errors, plus `/metrics` and the
//! web page (`/`, `/login`, `/logout`, `/ui/job/{id}`: see `web`). [`app`] builds the router over an [`AppState`].
//!
//! Invariants:
//! - every error is a JSON [`retz_proto::api::ErrorBody`] (also for unknown paths, wrong
//!   methods, malformed bodies, over-limit bodies);
//! - a user sees and touches only their own jobs and applications; another user's job or
//!   application answers exactly as if it did not exist;
//! - a job is answered 201 only after its commit, and only then is the planner woken;
//! - every response carries `Server: retz-server-<version>` and `x-request-id` (the
//!   client's, else a fresh UUID); every request is logged inside a `request` span with
//!   that id, its method and path, so a 500's log line (with its error's source chain)
//!   is found from the id the client saw;
//! - request bodies are bounded one by one (`body_limit`, 413), in time
//!   (`body_read_timeout`, 408) and all together (`body_buffer_bytes`, 503).

mod admin;
mod apps;
mod auth;
mod envelope;
mod error;
mod files;
mod history;
mod import;
mod jobs;
mod operator;
mod planner;
mod quota;
mod status;
mod web;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::Caller;
pub use error::{ApiError, parse_json};
pub use files::sandbox_path;
pub use operator::{Operator, OperatorId, is_loopback};
pub use planner::{AgentView, ClusterView, NodeView, PlannerHandle, PlannerStatus};

use retz_proto::credentials::Credential;

use crate::identity::LaunchUsers;
use crate::statem::{DEFAULT_MAX_RETRIES, RetryPolicy};
use crate::store::Store;

/// The HTTP API's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Check signatures and the `Date` header (`retz.authentication`).
    pub authentication: bool,
    /// How far a request's `Date` may be from the server's clock, seconds.
    pub date_skew_s: u64,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Most jobs one `POST /jobs` returns (`retz.max.list-jobs`).
    pub max_list_jobs: usize,
    /// Largest file `/job/{id}/download` serves, bytes (`retz.max.file-size`).
    pub max_file_size: u64,
    /// Largest CPU request one job may make (its minimum).
    pub max_cpus: u32,
    /// Largest memory request one job may make (its minimum), MB.
    pub max_mem_mb: u64,
    /// Largest GPU request one job may make.
    pub max_gpus: u32,
    /// Largest disk request one job may make, MB.
    pub max_disk_mb: u64,
    /// Most ports one job may ask for.
    pub max_ports: u32,
    /// Largest `maxRetries` of a job.
    pub max_retries: u32,
    /// Largest `gracePeriod` of an application, seconds.
    pub max_grace_period_s: u32,
    /// Longest time a request body may take to arrive.
    pub body_read_timeout: Duration,
    /// Most bytes of request bodies buffered at once across all requests.
    pub body_buffer_bytes: usize,
    /// Access keys allowed on `/admin/...`.
    pub admin_keys: BTreeSet<String>,
    /// Admit unsigned `/admin/...` requests from loopback peers (the peer is read from
    /// `ConnectInfo<SocketAddr>`; without it a request is not from loopback).
    pub admin_loopback: bool,
    /// Version string shown in `/status` and the `Server` header.
    pub server_version: String,
    /// Retries after lost tasks when a job names none.
    pub default_max_retries: u32,
    /// Connect timeout to agents' `/files` endpoints.
    pub agent_connect_timeout: Duration,
    /// Timeout of a whole request to an agent's `/files` endpoints.
    pub agent_timeout: Duration,
    /// Who jobs run as: load-app refuses users that are not allowed (403) and root in
    /// any spelling (400).
    pub users: LaunchUsers,
    /// Sent as HTTP Basic to the agents' `/files` (the framework's credential).
    pub agent_credential: Option<Credential>,
    /// The default per-user quota (`[quota]`); stored overrides apply over it.
    pub quota: retz_proto::api::Quota,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            authentication: true,
            date_skew_s: 300,
            body_limit: 1 << 20,
            max_list_jobs: 65536,
            max_file_size: 100 << 20,
            max_cpus: 1024,
            max_mem_mb: 4 << 20,
            max_gpus: 64,
            max_disk_mb: 1024 * 1024,
            max_ports: 10,
            max_retries: 100,
            max_grace_period_s: 3600,
            body_read_timeout: Duration::from_secs(30),
            body_buffer_bytes: 64 << 20,
            admin_keys: BTreeSet::new(),
            admin_loopback: false,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            default_max_retries: DEFAULT_MAX_RETRIES,
            agent_connect_timeout: Duration::from_secs(3),
            agent_timeout: Duration::from_secs(30),
            users: LaunchUsers::default(),
            agent_credential: None,
            quota: retz_proto::api::Quota::default(),
        }
    }
}

impl HttpConfig {
    /// The bounds of what one job or application may ask for.
    pub fn limits(&self) -> retz_proto::api::limits::Limits {
        retz_proto::api::limits::Limits {
            max_cpus: self.max_cpus,
            max_mem_mb: self.max_mem_mb,
            max_gpus: self.max_gpus,
            max_disk_mb: self.max_disk_mb,
            max_ports: self.max_ports,
            max_retries: self.max_retries,
            max_grace_period_s: self.max_grace_period_s,
        }
    }

    /// The retry policy the server applies to jobs that name none.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.default_max_retries,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Settings.
    pub config: Arc<HttpConfig>,
    /// The planner loop.
    pub planner: Arc<dyn PlannerHandle>,
    counts: Arc<status::CountsCache>,
    agents: files::AgentClient,
    /// The web page's sign-in sessions.
    sessions: Arc<web::Sessions>,
    /// Bytes of request bodies that may still be buffered (`body_buffer_bytes`).
    bodies: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// State over `store`, `config` and `planner`.
    pub fn new(store: Store, config: HttpConfig, planner: Arc<dyn PlannerHandle>) -> AppState {
        let agents = files::AgentClient::new(
            config.agent_connect_timeout,
            config.agent_credential.as_ref(),
        );
        let budget = config
            .body_buffer_bytes
            .clamp(config.body_limit, tokio::sync::Semaphore::MAX_PERMITS);
        AppState {
            bodies: Arc::new(tokio::sync::Semaphore::new(budget)),
            store,
            config: Arc::new(config),
            planner,
            counts: Arc::new(status::CountsCache::default()),
            agents,
            sessions: Arc::new(web::Sessions::default()),
        }
    }
}

/// The API router over `state`.
pub fn app(state: AppState) -> Router {
    let server = HeaderValue::from_str(&format!("retz-server-{}", state.config.server_version))
        .unwrap_or_else(|_| HeaderValue::from_static("retz-server"));
    Router::new()
        .route("/ping", get(status::ping))
        .route("/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .route("/", get(web::index))
        .route("/login", get(web::login_form).post(web::login))
        .route("/logout", post(web::logout))
        .route("/ui/job/{id}", get(web::job_page))
        .route("/jobs", post(jobs::list))
        .route("/job", post(jobs::schedule))
        .route("/job/plan", post(jobs::plan))
        .route("/job/{id}", get(jobs::get).delete(jobs::kill))
        .route("/job/{id}/file", get(files::file))
        .route("/job/{id}/download", get(files::download))
        .route("/job/{id}/dir", get(files::dir))
        .route("/apps", get(apps::list))
        .route(
            "/app/{name}",
            get(apps::get).put(apps::put).delete(apps::delete),
        )
        .route(
            "/admin/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route("/admin/user/{key}", get(admin::get_user))
        .route("/admin/user/{key}/enable", post(admin::enable_user))
        .route("/admin/user/{key}/disable", post(admin::disable_user))
        .route("/admin/usage", get(admin::usage))
        .route("/admin/gc", post(admin::gc))
        .route("/admin/history", get(history::history))
        .route("/admin/import", post(import::import))
        .merge(quota::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn(envelope::respond))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let server = server.clone();
            async move {
                let mut res = next.run(req).await;
                res.headers_mut().insert(header::SERVER, server);
                res
            }
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The span of one request: its id (`x-request-id`), method and path.
fn request_span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    )
}

async fn no_route(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// The `{id}` path segment as a job id (400 if it is not a number).
fn job_id(path: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "job id {:?} is not a number",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

/// A `{name}` path segment (400 if it does not decode).
fn path_text(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(s)| s)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// What handlers return.
type ApiResult<T> = Result<T, ApiError>;
