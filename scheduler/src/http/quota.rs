//! Per-user shares and quotas: the admin routes (`/admin/user/{key}/limits`, `/share`,
//! `/quota`; operator only, see [`super::operator`]) and the queued-jobs check of
//! `POST /job` ([`check_queued`]).
//!
//! A change is stored first, then handed to the planner
//! ([`super::PlannerHandle::user_limits_changed`]), which applies it from its next
//! cycle: no restart.
//!
//! A submission over the queued-jobs limit is answered **429 Too Many Requests**: the
//! refusal is about the user's current load, not its rights (403 would say the user may
//! never do this), and it clears by itself as the user's jobs leave the queue, which is
//! what 429 tells a client ("try again later"). The body is the usual error
//! (`{"command":"error","status":"user alice has 1000 queued jobs, the limit is 1000"}`),
//! so the original client shows the message too.

use axum::Json;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use retz_proto::api::{
    Quota, SetQuotaRequest, SetShareRequest, UserLimits, UserLimitsResponse, quota_limit,
};

use super::operator::Operator;
use super::{ApiError, ApiResult, AppState, parse_json, path_text};

/// The routes of this module.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/user/{key}/limits", get(get_limits))
        .route("/admin/user/{key}/share", put(set_share))
        .route(
            "/admin/user/{key}/quota",
            put(set_quota).delete(clear_quota),
        )
}

/// The user named by the path, which must exist (404 otherwise).
async fn user_of(state: &AppState, path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    let key = path_text(path)?;
    if state.store.get_user(&key).await?.is_none() {
        return Err(ApiError::not_found(format!("No such user: {key}")));
    }
    Ok(key)
}

fn answer(state: &AppState, limits: UserLimits) -> Json<UserLimitsResponse> {
    let defaults = state.config.quota;
    Json(UserLimitsResponse {
        effective: limits.quota.or(&defaults),
        limits,
        defaults,
    })
}

/// Stores `limits`, tells the planner, answers them.
async fn store(state: &AppState, limits: UserLimits) -> ApiResult<Json<UserLimitsResponse>> {
    state.store.put_user_limits(&limits).await?;
    state.planner.user_limits_changed(&limits);
    Ok(answer(state, limits))
}

/// `GET /admin/user/{key}/limits`: the user's share and quota.
async fn get_limits(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _op: Operator,
) -> ApiResult<Json<UserLimitsResponse>> {
    let user = user_of(&state, path).await?;
    let limits = state.store.user_limits(&user).await?;
    Ok(answer(&state, limits))
}

/// `PUT /admin/user/{key}/share {"weight": W}`: W finite and above 0.
async fn set_share(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    op: Operator,
) -> ApiResult<Json<UserLimitsResponse>> {
    let user = user_of(&state, path).await?;
    let req: SetShareRequest = parse_json(&op.body)?;
    check_weight(req.weight)?;
    let mut limits = state.store.user_limits(&user).await?;
    limits.share = req.weight;
    store(&state, limits).await
}

/// A weight is finite and above 0 (and not absurdly small or large, so shares divide
/// well).
fn check_weight(w: f64) -> Result<(), ApiError> {
    if w.is_finite() && (1e-3..=1e6).contains(&w) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "weight {w} is not allowed: a share is a number from 0.001 to 1000000 \
             (1 is the default; 2 gets twice the share of 1)"
        )))
    }
}

/// `PUT /admin/user/{key}/quota {...}`: sets the limits given (0 = unlimited for this
/// user), keeps the others.
async fn set_quota(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    op: Operator,
) -> ApiResult<Json<UserLimitsResponse>> {
    let user = user_of(&state, path).await?;
    let req: SetQuotaRequest = parse_json(&op.body)?;
    if req.is_empty() {
        return Err(ApiError::bad_request(
            "no limit given: set max_queued_jobs, max_running_cpus or max_running_mem_mb",
        ));
    }
    let mut limits = state.store.user_limits(&user).await?;
    limits.quota = req.or(&limits.quota);
    store(&state, limits).await
}

/// `DELETE /admin/user/{key}/quota`: the user's overrides go; the defaults apply.
async fn clear_quota(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _op: Operator,
) -> ApiResult<Json<UserLimitsResponse>> {
    let user = user_of(&state, path).await?;
    let mut limits = state.store.user_limits(&user).await?;
    limits.quota = Quota::default();
    store(&state, limits).await
}

/// Refuses (429) a new job of `owner` when its queued jobs are at its limit. Costs a
/// read of the user's limits and, only when a limit applies, one count of its queued
/// jobs (an index range). Concurrent submissions of one user may each see the count
/// before the others commit: a burst may pass the limit by the submissions in flight.
pub(super) async fn check_queued(state: &AppState, owner: &str) -> ApiResult<()> {
    let defaults = &state.config.quota;
    let limits = state.store.user_limits(owner).await?;
    let Some(max) = quota_limit(limits.quota.or(defaults).max_queued_jobs) else {
        return Ok(());
    };
    let queued = state.store.queued_count(owner).await?;
    if queued >= max {
        let of = if queued == 1 { "job" } else { "jobs" };
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("user {owner} has {queued} queued {of}, the limit is {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_weight;

    #[test]
    fn weights_are_finite_and_positive() {
        for ok in [1.0, 2.0, 0.5, 1e-3, 1e6] {
            assert!(check_weight(ok).is_ok(), "{ok}");
        }
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-4, 1e7] {
            let e = check_weight(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }
}
