//! Request and response bodies of every endpoint (see the table in [`crate::api`]).

use serde::{Deserialize, Serialize};

use super::{Application, DirEntry, FileChunk, Job, JobState, User};

/// `POST /jobs`: the caller's jobs in one state, optionally with one tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListJobsRequest {
    /// State to list.
    pub state: JobState,
    /// Only jobs carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Answer to `POST /jobs`: newest first; `more` when the list was cut at the limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListJobsResponse {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Whether more jobs matched than were returned.
    pub more: bool,
}

/// `POST /job`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// The job to queue (`id`, `state` and times are set by the server).
    pub job: Job,
}

/// A job (answer of `POST /job` (201) and `DELETE /job/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResponse {
    /// The job.
    pub job: Job,
}

/// `GET /job/{id}`: `job` is null when there is no such job of the caller's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetJobResponse {
    /// The job, if it exists and is the caller's.
    pub job: Option<Job>,
    /// While QUEUED: how many queued jobs run before it (0 = next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
}

/// `GET /job/{id}/file`: `file` is null when the job has not started or the file is
/// absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GetFileResponse {
    /// The job.
    pub job: Job,
    /// The chunk read.
    pub file: Option<FileChunk>,
}

/// `GET /job/{id}/dir`: `[]` when the job has not started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListFilesResponse {
    /// The job.
    pub job: Job,
    /// The entries.
    pub entries: Vec<DirEntry>,
}

/// `GET /apps`: the caller's applications.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAppsResponse {
    /// The applications.
    pub application_list: Vec<Application>,
}

/// `PUT /app/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadAppRequest {
    /// The application (its `appid` must equal the path's name).
    pub application: Application,
}

/// An application (answer of `GET`/`PUT`/`DELETE /app/{name}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppResponse {
    /// The application.
    pub application: Application,
}

/// `GET /status` (no auth).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// QUEUED jobs.
    pub queue_length: u64,
    /// STARTING + STARTED jobs.
    pub running_length: u64,
    /// The original's `totalUsed`: what running jobs hold, as a resource object (`nodes`
    /// is 0: a job holds no agent).
    #[serde(rename = "totalUsed", default)]
    pub used: ResourceQuantity,
    /// CPUs used by running jobs.
    #[serde(rename = "totalUsedCpus")]
    pub total_used: f64,
    /// Agents that sent offers recently.
    pub num_slaves: u64,
    /// Offers held now.
    pub offers: u64,
    /// The original's `totalOffered`: free resources on the known agents, as a resource
    /// object (CPUs, memory and GPUs as placed; ports and disk as last offered; `nodes`
    /// the agents).
    #[serde(rename = "totalOffered", default)]
    pub offered: ResourceQuantity,
    /// CPUs free on the known agents (latest offers, less launches, plus ends since).
    #[serde(rename = "totalOfferedCpus")]
    pub total_offered: f64,
    /// The Mesos master in use (or `local`).
    pub master: String,
    /// Events waiting for the planner loop.
    pub stanchion_queue_length: u64,
    /// Server version.
    pub server_version: String,
}

/// The original's `ResourceQuantity` (`/status`'s `totalUsed` and `totalOffered`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ResourceQuantity {
    /// CPUs.
    pub cpu: u64,
    /// Memory, MB.
    #[serde(rename = "memMB")]
    pub mem_mb: u64,
    /// GPUs.
    pub gpu: u64,
    /// Ports.
    pub ports: u64,
    /// Disk, MB.
    #[serde(rename = "diskMB")]
    pub disk_mb: u64,
    /// Agents.
    pub nodes: u64,
}

/// Error body of every 4xx/5xx: `{"command":"error","status":"<message>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Always `error`.
    pub command: String,
    /// One line: what went wrong, and what to do.
    pub status: String,
}

impl ErrorBody {
    /// An error body with `message`.
    pub fn new(message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            command: "error".to_owned(),
            status: message.into(),
        }
    }
}

/// `POST /admin/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Free text about the user.
    #[serde(default)]
    pub info: String,
}

/// One user (admin endpoints; includes the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserResponse {
    /// The user.
    pub user: User,
}

/// `GET /admin/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListUsersResponse {
    /// The users (without secrets).
    pub users: Vec<User>,
}

/// `GET /admin/usage?start&end`: jobs that finished in `[start, end)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageResponse {
    /// The jobs.
    pub jobs: Vec<Job>,
}

/// `POST /admin/gc`: delete FINISHED/KILLED jobs that ended more than `leeway` seconds ago.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Age in seconds.
    pub leeway: u64,
}

/// Answer to `POST /admin/gc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcResponse {
    /// How many jobs were deleted.
    pub deleted: u64,
}
