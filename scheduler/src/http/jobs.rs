//! Job endpoints: list (`POST /jobs`), schedule (`POST /job`), plan (`POST /job/plan`:
//! where it would run now; checked as schedule, nothing stored), get and kill
//! (`GET`/`DELETE /job/{id}`). A job of another user is answered as absent.
//!
//! Idempotent submission: a `POST /job` with an `Idempotency-Key` (signed with the
//! request, see [`super::auth`]) creates at most one job per user and key. A retry or a
//! replay finds that job and answers it (200, the job as it is now) instead of queueing
//! another; two submissions racing with one key meet at the store's unique index.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use retz_proto::api::{
    Application, GetJobResponse, Job, JobResponse, JobState, ListJobsRequest, ListJobsResponse,
    PlanResponse, Sandbox, ScheduleRequest,
};

use super::{ApiError, ApiResult, AppState, Caller, job_id, parse_json};
use crate::statem::{self, KillOutcome};
use crate::store::now_string;

/// Attempts at a kill's compare-and-set before giving up (the planner moved the job).
const KILL_ATTEMPTS: usize = 5;

/// How long `POST /job/plan` waits for the planner loop (then 503). A constant: no
/// config option for it yet.
const PLAN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A job as it leaves the API: the sandbox's browse URL made from the stored location
/// (the only place a URL is built from it).
pub(super) fn shown(mut job: Job) -> Job {
    job.url = job.sandbox.as_ref().map(Sandbox::browse_url);
    job
}

/// [`shown`], with the planner's pending reason of a queued job.
fn with_pending(state: &AppState, mut job: Job) -> Job {
    if job.state == JobState::Queued {
        job.pending = state.planner.pending_reason(job.id);
    }
    shown(job)
}

/// `POST /jobs`: the caller's jobs in one state (and with one tag), newest first.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ListJobsResponse>> {
    let req: ListJobsRequest = parse_json(&caller.body)?;
    if req.state == JobState::Created {
        return Err(ApiError::bad_request(
            "state CREATED exists only in clients; list QUEUED, STARTING, STARTED, FINISHED or KILLED",
        ));
    }
    let (jobs, more) = state
        .store
        .list_jobs(
            caller.key(),
            req.state,
            req.tag.as_deref(),
            state.config.max_list_jobs,
        )
        .await?;
    let jobs = jobs.into_iter().map(|j| with_pending(&state, j)).collect();
    Ok(Json(ListJobsResponse { jobs, more }))
}

/// Checks a job request against the server's bounds; the message says what to change.
fn validate(job: &Job, state: &AppState) -> Result<(), ApiError> {
    retz_proto::api::limits::check_job(job, &state.config.limits())
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The job an earlier submission with the caller's `Idempotency-Key` created, answered
/// as a replay (200).
async fn replayed(
    state: &AppState,
    caller: &Caller,
) -> ApiResult<Option<(StatusCode, Json<JobResponse>)>> {
    let Some(key) = caller.idempotency_key.as_deref() else {
        return Ok(None);
    };
    Ok(state
        .store
        .job_by_idempotency_key(caller.key(), key)
        .await?
        .map(|job| {
            tracing::debug!(
                id = job.id,
                "replayed submission; answering the job it created"
            );
            (
                StatusCode::OK,
                Json(JobResponse {
                    job: with_pending(state, job),
                }),
            )
        }))
}

/// The original's default name: the command's Java `String.hashCode()`.
fn default_name(cmd: &str) -> String {
    let h = cmd
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    h.to_string()
}

/// The request's job and its application, checked as `POST /job` checks them: the
/// caller's enabled application, within the server's bounds.
async fn admissible(state: &AppState, caller: &Caller) -> ApiResult<(Job, Application)> {
    let ScheduleRequest { job } = parse_json(&caller.body)?;
    let app = state
        .store
        .get_app(&job.appid)
        .await?
        .filter(|a| a.owner == caller.key())
        .ok_or_else(|| ApiError::not_found(format!("No such application: {}", job.appid)))?;
    if !app.enabled {
        return Err(ApiError::forbidden(format!(
            "Application {} is disabled; load it again to enable it",
            app.appid
        )));
    }
    validate(&job, state)?;
    Ok((job, app))
}

/// `POST /job/plan`: where the job would run now, or why it would wait; nothing is
/// stored (so no `Idempotency-Key` is needed).
pub(super) async fn plan(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<PlanResponse>> {
    let (job, app) = admissible(&state, &caller).await?;
    let answer = state.planner.plan(job, app);
    match tokio::time::timeout(PLAN_TIMEOUT, answer).await {
        Ok(Ok(r)) => Ok(Json(r)),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the planner is not running; try again when the server has restarted it",
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the planner did not answer within {} s; try again",
                PLAN_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// `POST /job`: validates, commits as QUEUED, answers 201, then wakes the planner.
pub(super) async fn schedule(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<JobResponse>)> {
    if let Some(answer) = replayed(&state, &caller).await? {
        return Ok(answer);
    }
    let (mut job, _) = admissible(&state, &caller).await?;
    super::quota::check_queued(&state, caller.key()).await?;
    if job.name.is_empty() {
        job.name = default_name(&job.cmd);
    }
    job.reason = None;
    let key = caller.idempotency_key.as_deref();
    let job = match state.store.insert_job_keyed(caller.key(), job, key).await {
        Ok(job) => job,
        Err(e) => {
            // A submission with the same key won the race: answer its job.
            if let Some(answer) = replayed(&state, &caller).await? {
                return Ok(answer);
            }
            return Err(e.into());
        }
    };
    state.counts.invalidate();
    state.planner.job_queued(&job);
    Ok((StatusCode::CREATED, Json(JobResponse { job })))
}

/// `GET /job/{id}`: the job if it is the caller's, else `null`.
pub(super) async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    caller: Caller,
) -> ApiResult<Json<GetJobResponse>> {
    let id = job_id(path)?;
    let job = state
        .store
        .get_job(id)
        .await?
        .filter(|(owner, _)| owner == caller.key())
        .map(|(_, j)| with_pending(&state, j));
    let queue_position = match &job {
        Some(j) if j.state == JobState::Queued => state.store.queue_position(id).await?,
        _ => None,
    };
    Ok(Json(GetJobResponse {
        job,
        queue_position,
    }))
}

/// `DELETE /job/{id}`: a queued job is KILLED at once; a running one is marked and the
/// planner sends KILL (TASK_KILLED ends it); a killed one stays killed (200).
pub(super) async fn kill(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    caller: Caller,
) -> ApiResult<Json<JobResponse>> {
    let id = job_id(path)?;
    for _ in 0..KILL_ATTEMPTS {
        let job = match state.store.get_job(id).await? {
            Some((owner, job)) if owner == caller.key() => job,
            _ => return Err(ApiError::not_found(format!("No such job: {id}"))),
        };
        match statem::on_kill(&job, &now_string()) {
            KillOutcome::Killed(next) => {
                if state.store.update_job(&next, job.state).await? {
                    state.counts.invalidate();
                    return Ok(Json(JobResponse { job: shown(next) }));
                }
            }
            KillOutcome::Requested(next) => {
                if next == job || state.store.update_job(&next, job.state).await? {
                    state.planner.kill_requested(&next);
                    return Ok(Json(JobResponse { job: shown(next) }));
                }
            }
            KillOutcome::AlreadyKilled => return Ok(Json(JobResponse { job: shown(job) })),
            KillOutcome::AlreadyFinished => {
                return Err(ApiError::conflict(format!(
                    "job {id} already finished; there is nothing to kill"
                )));
            }
        }
    }
    Err(ApiError::conflict(format!(
        "job {id} kept changing state while being killed; try again"
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_name_is_the_java_string_hash() {
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(super::default_name("hello"), "99162322");
        assert_eq!(super::default_name(""), "0");
    }
}
