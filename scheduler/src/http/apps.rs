//! Application endpoints: `GET /apps`, `GET`/`PUT`/`DELETE /app/{name}`. Only the owner
//! sees or changes an application; to anyone else it does not exist.
//!
//! Load-app decides who the jobs may run as: an application's `user` that is root in any
//! spelling (or not a plain user name) is refused with 400, one the operator does not
//! allow (`jobs.allowed_users`, or the default job user) with 403; containers are refused
//! with 400 (not supported yet). Every load gets a fresh `generation`, so its jobs never
//! share an executor or a sandbox with an earlier load's.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use retz_proto::api::{AppResponse, Application, Container, ListAppsResponse, LoadAppRequest};

use super::{ApiError, ApiResult, AppState, Caller, parse_json, path_text};
use crate::identity::{LaunchUsers, check_job_user};

/// Longest application name.
const MAX_NAME: usize = 64;

/// An application name must be one safe path component: it names the executor's
/// directory and appears in task ids.
pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "application name {:?} is invalid; use 1 to {MAX_NAME} of A-Z a-z 0-9 - _ .",
            name.chars().take(MAX_NAME + 8).collect::<String>()
        )))
    }
}

/// Whether `user` may be an application's Unix user on this server: never root (400),
/// and allowed by the operator (403).
pub(super) fn check_user(users: &LaunchUsers, user: &str) -> Result<(), ApiError> {
    if let Err(e) = check_job_user(user) {
        let hint = if e.is_root() {
            "name an unprivileged user the operator allows, or omit -U"
        } else {
            "fix the name, or omit -U"
        };
        return Err(ApiError::bad_request(format!(
            "{e}; {hint} to run as the default job user ({})",
            users.default_user
        )));
    }
    if !users.allows(user) {
        return Err(ApiError::forbidden(format!(
            "user {user:?} is not allowed to run jobs on this server (jobs.allowed_users); \
             ask the operator to allow it, or omit -U to run as the default job user ({})",
            users.default_user
        )));
    }
    Ok(())
}

async fn owned_app(state: &AppState, caller: &Caller, name: &str) -> ApiResult<Application> {
    state
        .store
        .get_app(name)
        .await?
        .filter(|a| a.owner == caller.key())
        .ok_or_else(|| ApiError::not_found(format!("No such application: {name}")))
}

/// `GET /apps`: the caller's applications.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ListAppsResponse>> {
    let application_list = state.store.list_apps(caller.key()).await?;
    Ok(Json(ListAppsResponse { application_list }))
}

/// `GET /app/{name}`.
pub(super) async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    caller: Caller,
) -> ApiResult<Json<AppResponse>> {
    let name = path_text(path)?;
    let application = owned_app(&state, &caller, &name).await?;
    Ok(Json(AppResponse { application }))
}

/// `PUT /app/{name}`: creates the application or overwrites the caller's own.
pub(super) async fn put(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    caller: Caller,
) -> ApiResult<Json<AppResponse>> {
    let name = path_text(path)?;
    let LoadAppRequest { mut application } = parse_json(&caller.body)?;
    check_name(&name)?;
    if application.appid != name {
        return Err(ApiError::bad_request(format!(
            "application name {:?} in the body differs from {name:?} in the path",
            application.appid
        )));
    }
    if !application.owner.is_empty() && application.owner != caller.key() {
        return Err(ApiError::bad_request(format!(
            "owner {} is not the requester {}; leave owner empty",
            application.owner,
            caller.key()
        )));
    }
    if !matches!(application.container, Container::Mesos) {
        return Err(ApiError::bad_request(
            "containers are not supported yet; load the application without --container",
        ));
    }
    if let Some(user) = &application.user {
        check_user(&state.config.users, user)?;
    }
    retz_proto::api::limits::check_app(&application, &state.config.limits())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    application.owner = caller.key().to_owned();
    application.generation = uuid::Uuid::new_v4().simple().to_string();
    if !state.store.put_app(&application).await? {
        return Err(ApiError::forbidden(
            "The application name is already used by other user",
        ));
    }
    Ok(Json(AppResponse { application }))
}

/// `DELETE /app/{name}`: removes the caller's application.
pub(super) async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    caller: Caller,
) -> ApiResult<Json<AppResponse>> {
    let name = path_text(path)?;
    let application = owned_app(&state, &caller, &name).await?;
    state.store.delete_app(&name).await?;
    Ok(Json(AppResponse { application }))
}
