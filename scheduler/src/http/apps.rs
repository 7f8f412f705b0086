//! Application endpoints: `GET /apps`, `GET`/`PUT`/`DELETE /app/{name}`. Only the owner
//! sees or changes an application; to anyone else it does not exist.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use retz_proto::api::{AppResponse, Application, Container, ListAppsResponse, LoadAppRequest};

use super::{ApiError, ApiResult, AppState, Caller, parse_json, path_text};

/// Longest application name.
const MAX_NAME: usize = 64;

/// An application name must be one safe path component: it names the executor's
/// directory and appears in task ids.
fn check_name(name: &str) -> Result<(), ApiError> {
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
    if application.user.as_deref() == Some("root")
        && matches!(application.container, Container::Mesos)
    {
        return Err(ApiError::bad_request(
            "running jobs as root is only allowed in a Docker container; drop user=root or use a docker container",
        ));
    }
    application.owner = caller.key().to_owned();
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
