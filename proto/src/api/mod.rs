//! The Retz HTTP API wire types, shared by `retz-server` and `retz-client`.
//!
//! Owns the JSON shapes of the original Retz API (field names in camelCase as the Java
//! server wrote them, `"command":"error"` error bodies) plus what NUMA placement adds:
//! resource ranges (`"cpu": 2` or `"cpu": "2-4"`), the affinity policy, the grant
//! (cpuset, NUMA nodes), the pending reason and the attempt number. Also owns request
//! signing ([`auth`]) and the client config file shape ([`ClientConfig`]).
//!
//! Paths (all JSON unless noted; every path but `/ping`, `/status`, `/`, `/metrics`
//! needs a `Retz-auth-v1` signature):
//!
//! | method, path | request | response |
//! |---|---|---|
//! | `POST /jobs` | [`ListJobsRequest`] | [`ListJobsResponse`] |
//! | `POST /job` | [`ScheduleRequest`] | 201 [`JobResponse`] |
//! | `GET /job/{id}` | | [`GetJobResponse`] |
//! | `DELETE /job/{id}` | | [`JobResponse`] |
//! | `GET /job/{id}/file?path&offset&length` | | [`GetFileResponse`] |
//! | `GET /job/{id}/download?path` | | raw bytes |
//! | `GET /job/{id}/dir?path` | | [`ListFilesResponse`] |
//! | `GET /apps` | | [`ListAppsResponse`] |
//! | `GET/PUT/DELETE /app/{name}` | [`LoadAppRequest`] (PUT) | [`AppResponse`] |
//! | `GET /status` | | [`StatusResponse`] |
//! | `GET /admin/users` | | [`ListUsersResponse`] |
//! | `POST /admin/users` | [`CreateUserRequest`] | 201 [`UserResponse`] |
//! | `GET /admin/user/{key}` | | [`UserResponse`] |
//! | `POST /admin/user/{key}/enable`, `/disable` | | [`UserResponse`] |
//! | `GET /admin/usage?start&end` | | [`UsageResponse`] |
//! | `POST /admin/gc` | [`GcRequest`] | [`GcResponse`] |
//! | `GET /admin/user/{key}/limits` | | [`UserLimitsResponse`] |
//! | `PUT /admin/user/{key}/share` | [`SetShareRequest`] | [`UserLimitsResponse`] |
//! | `PUT`/`DELETE /admin/user/{key}/quota` | [`SetQuotaRequest`] (PUT) | [`UserLimitsResponse`] |
//!
//! Errors are `4xx`/`5xx` with an [`ErrorBody`]. Request bodies are read with
//! [`strict::from_json`] (unknown fields refused at every depth) and checked against
//! the bounds in [`limits`].

pub mod auth;
mod config;
mod import;
mod job;
pub mod limits;
mod messages;
mod model;
mod plan;
mod quota;
mod range_json;
pub mod strict;

pub use config::ClientConfig;
pub use import::{ImportCounts, ImportRequest, ImportResponse, ImportedJob, import_key};
pub use job::{Grant, Job, JobResources, JobState, Sandbox, UnknownState};
pub use messages::*;
pub use model::{
    Application, ChunkDecodeError, ChunkEncoding, Container, DirEntry, DockerVolume, FileChunk,
    User,
};
pub use plan::{Placement, PlanResponse};
pub use quota::{
    Quota, SetQuotaRequest, SetShareRequest, UserLimits, UserLimitsResponse, limit as quota_limit,
};

/// The API version the server reports and the client compares (major.minor must match).
pub const PROTOCOL_VERSION: &str = "0.3.0";

/// Timestamp format of job times (`scheduled`, `started`, `finished`), as the original:
/// `yyyy-MM-dd'T'HH:mm:ss.SSSXXX`, e.g. `2026-11-22T07:30:00.123+00:00`.
pub const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f%:z";
