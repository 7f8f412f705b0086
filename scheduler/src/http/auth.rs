//! The [`Caller`] extractor: reads the request body (up to the body limit, else 413),
//! then authenticates the request with `Retz-auth-v1` and loads the calling user.
//!
//! The body is read under three bounds: its size (`body_limit`, 413, refused up front
//! when `Content-Length` says so), its time (`body_read_timeout`, 408) and the bytes all
//! requests buffer together (`body_buffer_bytes`: a body that does not fit is 503 at
//! once, before any byte is read).
//!
//! Order of checks: `Authorization` present and well-formed (401), `Date` present and
//! within the skew window (401, only with authentication on), the key names a user and
//! the signature matches (compared in constant time; only with authentication on), the
//! user is enabled (403 `User disabled`). An unknown key and a bad signature get the same
//! answer (401 `Authentication failed. String to sign: ...`, the same work done), so the
//! answer never tells which keys exist. With authentication off the key must still name
//! an enabled user (403 `No such user` otherwise): ownership checks stay.

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
    /// What makes a submission unique: the `Idempotency-Key` header (covered by the
    /// signature) when sent; else, with authentication on, a digest of what the request
    /// signed ([`signed_submission_key`]), so a captured request of a client that sends
    /// no key (the original's) replayed within the Date window is the same submission.
    pub idempotency_key: Option<String>,
}

impl Caller {
    /// The caller's access key.
    pub fn key(&self) -> &str {
        &self.user.key_id
    }
}

/// The secret an unknown key's signature is checked against (never matches a real one:
/// the answer is refused either way).
const UNKNOWN_KEY_SECRET: &str = "retz-unknown-key";

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is over the server's limit of {limit} bytes"),
    )
}

/// Reads a body of at most `limit` bytes (`declared` by `Content-Length`, if it was),
/// within the time and the shared buffer budget of `state`.
async fn read_body(
    body: Body,
    limit: usize,
    declared: Option<u64>,
    state: &AppState,
) -> Result<Bytes, ApiError> {
    if declared == Some(0) {
        return Ok(Bytes::new());
    }
    let want = declared.map_or(limit, |n| usize::try_from(n).unwrap_or(limit).min(limit));
    let want = u32::try_from(want).unwrap_or(u32::MAX);
    let _budget = state
        .bodies
        .clone()
        .try_acquire_many_owned(want)
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is buffering as many request bodies as it may \
             (server.max_body_buffer_bytes); try again shortly",
            )
        })?;
    let timeout = state.config.body_read_timeout;
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s (server.body_read_timeout_s)",
                timeout.as_secs()
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

/// The one answer to an unknown key and to a bad signature.
fn auth_failed(to_sign: &str) -> ApiError {
    ApiError::unauthorized(format!(
        "Authentication failed. String to sign: {to_sign:?}"
    ))
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
        let body = read_body(body, limit, declared, state).await?;
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
        let resource = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
        let idempotency_key = idempotency_key(&parts.headers)?;
        let to_sign = auth::string_to_sign_keyed(
            parts.method.as_str(),
            &auth::content_md5(&body),
            date.unwrap_or_default(),
            resource,
            idempotency_key.as_deref(),
        );
        let user = state.store.get_user(key).await?;
        let Some(user) = user else {
            if !state.config.authentication {
                // No secrets at all: keys are names, and saying so hides nothing.
                return Err(ApiError::forbidden("No such user"));
            }
            // The same work as a known key's check, then the same answer.
            let _ = auth::verify(UNKNOWN_KEY_SECRET, &to_sign, signature);
            return Err(auth_failed(&to_sign));
        };
        if state.config.authentication && !auth::verify(&user.secret, &to_sign, signature) {
            return Err(auth_failed(&to_sign));
        }
        if !user.enabled {
            return Err(ApiError::forbidden("User disabled"));
        }
        let idempotency_key = idempotency_key.or_else(|| {
            state
                .config
                .authentication
                .then(|| signed_submission_key(&to_sign))
        });
        Ok(Caller {
            user,
            body,
            idempotency_key,
        })
    }
}

/// The submission key of a signed request without an `Idempotency-Key`: `signed:` and
/// the SHA-256 of its string to sign (method, Content-MD5, Date, resource), the same for
/// every replay of it however the signature is padded. Two byte-identical submissions
/// signed within the same second are thus one submission; clients that mean two
/// identical jobs at once send distinct keys (`retz-client` sends a fresh one each time).
pub fn signed_submission_key(string_to_sign: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(string_to_sign.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("signed:{hex}")
}

/// The `Idempotency-Key` header: 1 to [`auth::MAX_IDEMPOTENCY_KEY`] visible ASCII
/// characters (400 otherwise).
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(auth::IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if auth::valid_idempotency_key(k) => Ok(Some(k.to_owned())),
        _ => Err(ApiError::bad_request(format!(
            "{} must be 1 to {} visible ASCII characters (a UUID, for example)",
            auth::IDEMPOTENCY_KEY,
            auth::MAX_IDEMPOTENCY_KEY
        ))),
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
