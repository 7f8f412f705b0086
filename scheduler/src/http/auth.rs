//! The [`Caller`] extractor: reads the request body (up to the body limit, else 413),
//! then authenticates the request with `Retz-auth-v1` and loads the calling user.
//!
//! Order of checks: `Authorization` present and well-formed (401), `Date` present and
//! within the skew window (401, only with authentication on), the key names a user (403
//! `No such user`), the user is enabled (403 `User disabled`), the signature matches
//! (401, compared in constant time; only with authentication on). With authentication
//! off the key must still name an enabled user: ownership checks stay.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, DATE};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use retz_proto::api::User;
use retz_proto::api::auth;

use super::{ApiError, AppState};

/// An authenticated request: who sent it, and its body.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The calling user.
    pub user: User,
    /// The request body (already checked against the signature's Content-MD5).
    pub body: Bytes,
}

impl Caller {
    /// The caller's access key.
    pub fn key(&self) -> &str {
        &self.user.key_id
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is over the server's limit of {limit} bytes"),
    )
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

impl FromRequest<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let limit = state.config.body_limit;
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let body = read_body(body, limit).await?;
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let (key, signature) = auth::parse_authorization(header(AUTHORIZATION))
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        let date = header(DATE);
        if state.config.authentication {
            let sent = auth::parse_date(date).map_err(|e| ApiError::unauthorized(e.to_string()))?;
            let skew = (chrono::Utc::now() - sent.to_utc())
                .num_seconds()
                .unsigned_abs();
            let window = state.config.date_skew_s;
            if skew > window {
                return Err(ApiError::unauthorized(format!(
                    "Date header is {skew} s away from the server's clock (allowed: {window} s); \
                     fix the client's clock"
                )));
            }
        }
        let user = state
            .store
            .get_user(key)
            .await?
            .ok_or_else(|| ApiError::forbidden("No such user"))?;
        if !user.enabled {
            return Err(ApiError::forbidden("User disabled"));
        }
        if state.config.authentication {
            let resource = parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
            let to_sign = auth::string_to_sign(
                parts.method.as_str(),
                &auth::content_md5(&body),
                date.unwrap_or_default(),
                resource,
            );
            if !auth::verify(&user.secret, &to_sign, signature) {
                return Err(ApiError::unauthorized(format!(
                    "Authentication failed. String to sign: {to_sign:?}"
                )));
            }
        }
        Ok(Caller { user, body })
    }
}

/// Refuses callers whose key is not one of the configured admin keys (403).
pub fn require_admin(caller: &Caller, state: &AppState) -> Result<(), ApiError> {
    if state.config.admin_keys.contains(caller.key()) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "key {} is not an admin key; admin endpoints need a key named in the server's admin_keys",
            caller.key()
        )))
    }
}
