//! Admin endpoints (`/admin/...`): users, usage, garbage collection. Only for the
//! operator ([`Operator`]): a request signed with a key named in
//! [`super::HttpConfig::admin_keys`], or, with [`super::HttpConfig::admin_loopback`] on,
//! an unsigned request from a loopback peer; 403 otherwise.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use chrono::Utc;
use retz_proto::api::auth::parse_date;
use retz_proto::api::{
    CreateUserRequest, GcRequest, GcResponse, ListUsersResponse, UsageResponse, UserResponse,
};

use super::operator::Operator;
use super::{ApiError, ApiResult, AppState, parse_json, path_text};

/// `GET /admin/users`: every user, without secrets.
pub(super) async fn list_users(
    State(state): State<AppState>,
    _op: Operator,
) -> ApiResult<Json<ListUsersResponse>> {
    let mut users = state.store.list_users().await?;
    for u in &mut users {
        u.secret.clear();
    }
    Ok(Json(ListUsersResponse { users }))
}

/// `POST /admin/users`: a new user with a random key and secret (shown once, here).
pub(super) async fn create_user(
    State(state): State<AppState>,
    op: Operator,
) -> ApiResult<(StatusCode, Json<UserResponse>)> {
    let req: CreateUserRequest = if op.body.is_empty() {
        CreateUserRequest::default()
    } else {
        parse_json(&op.body)?
    };
    let user = state.store.create_user(&req.info).await?;
    Ok((StatusCode::CREATED, Json(UserResponse { user })))
}

/// `GET /admin/user/{key}`: one user, with its secret.
pub(super) async fn get_user(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    _op: Operator,
) -> ApiResult<Json<UserResponse>> {
    let key = path_text(path)?;
    let user = state
        .store
        .get_user(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No such user: {key}")))?;
    Ok(Json(UserResponse { user }))
}

async fn set_enabled(
    state: AppState,
    path: Result<Path<String>, PathRejection>,
    _op: Operator,
    enabled: bool,
) -> ApiResult<Json<UserResponse>> {
    let key = path_text(path)?;
    let mut user = state
        .store
        .set_user_enabled(&key, enabled)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("No such user: {key}")))?;
    user.secret.clear();
    Ok(Json(UserResponse { user }))
}

/// `POST /admin/user/{key}/enable`.
pub(super) async fn enable_user(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    op: Operator,
) -> ApiResult<Json<UserResponse>> {
    set_enabled(state, path, op, true).await
}

/// `POST /admin/user/{key}/disable`.
pub(super) async fn disable_user(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    op: Operator,
) -> ApiResult<Json<UserResponse>> {
    set_enabled(state, path, op, false).await
}

/// `GET /admin/usage?start=T&end=T`: jobs that ended in `[start, end)` (times in the
/// Retz format, RFC 3339 or HTTP-date; `end` defaults to now).
pub(super) async fn usage(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    _op: Operator,
) -> ApiResult<Json<UsageResponse>> {
    let mut start = None;
    let mut end = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let t = parse_date(Some(&v)).map_err(|_| {
            ApiError::bad_request(format!(
                "{k}={v:?} is not a time; use e.g. 2026-01-02T00:00:00.000+00:00"
            ))
        })?;
        match &*k {
            "start" => start = Some(t.to_utc()),
            "end" => end = Some(t.to_utc()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}; use start and end"
                )));
            }
        }
    }
    let start = start.ok_or_else(|| ApiError::bad_request("missing start=TIME"))?;
    // Without `end`: everything that ended so far, including this very millisecond.
    let end = end.unwrap_or_else(|| Utc::now() + chrono::Duration::milliseconds(1));
    let jobs = state.store.finished_between(start, end).await?;
    Ok(Json(UsageResponse { jobs }))
}

/// `POST /admin/gc {"leeway": SECONDS}`: deletes jobs that ended longer ago.
pub(super) async fn gc(State(state): State<AppState>, op: Operator) -> ApiResult<Json<GcResponse>> {
    let req: GcRequest = parse_json(&op.body)?;
    let deleted = state.store.gc(req.leeway).await?;
    state.counts.invalidate();
    Ok(Json(GcResponse { deleted }))
}
