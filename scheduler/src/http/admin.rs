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

/// A bound of `retz-admin usage`: a time (the Retz format, RFC 3339 or HTTP-date), or
/// as the original (which compared the text with the finish times) a date `YYYY-MM-DD`,
/// `YYYY-MM` or `YYYY`, midnight UTC at its start. A day past the month's end counts on
/// into the next month, so the original's default end `9999-12-32` is after every time
/// of 9999, and its default start `0000-01-01` before every time.
pub(super) fn usage_bound(v: &str) -> Option<chrono::DateTime<Utc>> {
    if let Ok(t) = parse_date(Some(v)) {
        return Some(t.to_utc());
    }
    let mut parts = v.split('-');
    let year = parts.next()?;
    let month = parts.next().unwrap_or("1");
    let day = parts.next().unwrap_or("1");
    let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if parts.next().is_some()
        || !digits(year, 4..=4)
        || !digits(month, 1..=2)
        || !digits(day, 1..=2)
    {
        return None;
    }
    let (year, month, day): (i32, u32, u32) =
        (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&month) || !(1..=32).contains(&day) {
        return None;
    }
    let first = chrono::NaiveDate::from_ymd_opt(year, month, 1)?;
    let date = first.checked_add_days(chrono::Days::new(u64::from(day - 1)))?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

/// `GET /admin/usage?start=T&end=T`: jobs that ended in `[start, end)` (see
/// [`usage_bound`] for the forms of a bound; `end` defaults to now).
pub(super) async fn usage(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    _op: Operator,
) -> ApiResult<Json<UsageResponse>> {
    let mut start = None;
    let mut end = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let t = usage_bound(&v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{k}={v:?} is not a time; use a date (2026-01-02) or a time \
                 (2026-01-02T00:00:00.000+00:00)"
            ))
        })?;
        match &*k {
            "start" => start = Some(t),
            "end" => end = Some(t),
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

#[cfg(test)]
mod tests {
    use super::usage_bound;

    fn at(v: &str) -> String {
        usage_bound(v).map_or("none".into(), |t| t.to_rfc3339())
    }

    #[test]
    fn usage_bounds_take_dates_and_the_originals_defaults() {
        assert_eq!(at("2017-01-01"), "2017-01-01T00:00:00+00:00");
        assert_eq!(at("2017-03"), "2017-03-01T00:00:00+00:00");
        assert_eq!(at("2017"), "2017-01-01T00:00:00+00:00");
        assert_eq!(at("2017-02-30"), "2017-03-02T00:00:00+00:00");
        assert_eq!(at("9999-12-32"), "+10000-01-01T00:00:00+00:00");
        assert!(usage_bound("0000-01-01").unwrap() < usage_bound("1970-01-01").unwrap());
        assert_eq!(
            at("2026-01-02T03:04:05.006+09:00"),
            "2026-01-01T18:04:05.006+00:00"
        );
        for bad in [
            "",
            "yesterday",
            "2017-13-01",
            "2017-01-33",
            "2017-1-1-1",
            "17-01-01",
            "2017-00",
        ] {
            assert_eq!(at(bad), "none", "{bad}");
        }
    }
}
