//! The web page an operator keeps open (`GET /`), sign-in and sign-out, and one page per
//! job (`GET /ui/job/{id}`). Server-rendered HTML, no scripts.
//!
//! * `page` — the HTML (and the one escaping function);
//! * `cpumap` — the cluster CPU map;
//! * `session` — the session table and cookie.
//!
//! Who sees what ([`Viewer`]): an anonymous visitor sees aggregates — the counts, the CPU
//! map with job ids, running jobs' grants and pinning, queue positions and pending
//! reasons, usage summed over users — and never a command, job name, application or
//! user; a user signed in with their key and secret sees their own jobs' commands and
//! usage too; the operator (a user whose key is one of the server's admin keys) sees
//! everything.
//!
//! Sign-in (`POST /login`, a form with `key` and `secret`): the secret is checked as the
//! API's authentication does — in constant time, the same work for an unknown key, not
//! at all with `authentication = false` (keys are names then), a disabled user refused
//! after the check. A wrong key or secret answers the form again with 401 and no cookie.
//! CSRF: every POST must come from the page's own origin (`Origin`, else `Referer`,
//! naming the request's `Host`), else 403; the cookie is `SameSite=Strict` as well.

mod cpumap;
mod page;
mod session;

use std::collections::BTreeMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, LOCATION, REFERER, REFERRER_POLICY,
    SET_COOKIE, VARY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use retz_proto::api::{Job, JobState, StatusResponse, User};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use session::Sessions;

use super::{ApiError, ApiResult, AppState};
use crate::store::JobCounts;

/// Most queued jobs listed on the page (the rest are counted).
const QUEUE_SHOWN: usize = 100;
/// The secret an unknown key's sign-in is compared with (never matches: same work).
const UNKNOWN_KEY_SECRET: &str = "retz-unknown-key";
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// Who looks at a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Viewer {
    /// No (valid) session.
    Anonymous,
    /// A signed-in user.
    User(User),
    /// A signed-in user whose key is an admin key.
    Operator(User),
}

impl Viewer {
    /// Whether this viewer may see what the owner `owner` typed (commands, names...).
    pub(super) fn may_see(&self, owner: &str) -> bool {
        match self {
            Viewer::Anonymous => false,
            Viewer::User(u) => u.key_id == owner,
            Viewer::Operator(_) => true,
        }
    }

    /// The signed-in user, if any.
    pub(super) fn user(&self) -> Option<&User> {
        match self {
            Viewer::Anonymous => None,
            Viewer::User(u) | Viewer::Operator(u) => Some(u),
        }
    }
}

/// What `/` shows, before the viewer's filter.
pub(super) struct PageData {
    pub status: StatusResponse,
    pub counts: JobCounts,
    pub cluster: super::ClusterView,
    /// STARTING/STARTED jobs with their owners, by id.
    pub running: Vec<(String, Job)>,
    /// The head of the queue in order, with owners and pending reasons.
    pub queue: Vec<(String, Job, Option<String>)>,
    /// Key → info of the users the viewer may see.
    pub users: BTreeMap<String, String>,
}

/// The viewer of a request: the user of a live session whose user is still enabled.
async fn viewer(state: &AppState, headers: &HeaderMap) -> ApiResult<Viewer> {
    let Some(token) = session::cookie_token(headers) else {
        return Ok(Viewer::Anonymous);
    };
    let Some(key) = state.sessions.user(&token) else {
        return Ok(Viewer::Anonymous);
    };
    match state.store.get_user(&key).await? {
        Some(u) if u.enabled => Ok(if state.config.admin_keys.contains(&u.key_id) {
            Viewer::Operator(u)
        } else {
            Viewer::User(u)
        }),
        _ => {
            state.sessions.close(&token);
            Ok(Viewer::Anonymous)
        }
    }
}

/// An HTML answer with the page's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(VARY, HeaderValue::from_static("Cookie"));
    res
}

fn redirect_home(cookie: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/"));
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().insert(SET_COOKIE, v);
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /`: the page.
pub(super) async fn index(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let viewer = viewer(&state, &headers).await?;
    let (counts, status) = super::status::current(&state).await?;
    let running = state.store.active_jobs_owned().await?;
    let queue = state
        .store
        .queue_head(QUEUE_SHOWN)
        .await?
        .into_iter()
        .map(|(owner, job)| {
            let reason = state.planner.pending_reason(job.id);
            (owner, job, reason)
        })
        .collect();
    let users = match &viewer {
        Viewer::Anonymous => BTreeMap::new(),
        Viewer::User(u) => BTreeMap::from([(u.key_id.clone(), u.info.clone())]),
        Viewer::Operator(_) => state
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| (u.key_id, u.info))
            .collect(),
    };
    let data = PageData {
        status,
        counts,
        cluster: state.planner.cluster(),
        running,
        queue,
        users,
    };
    Ok(html(StatusCode::OK, page::index(&data, &viewer)))
}

/// `GET /login`: the sign-in form.
pub(super) async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let viewer = viewer(&state, &headers).await?;
    Ok(html(StatusCode::OK, page::login(&viewer, None)))
}

/// The `scheme://host[:port]` authority of an `Origin` or `Referer` value, and whether
/// it is `https`.
fn origin_of(value: &str) -> Option<(String, bool)> {
    let url = url::Url::parse(value).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    Some((format!("{host}:{port}"), url.scheme() == "https"))
}

/// Whether a POST comes from this server's own pages: its `Origin` (else its `Referer`)
/// names the request's `Host`. Returns whether that origin is `https` (for `Secure`).
fn same_origin(headers: &HeaderMap, uri_host: Option<&str>) -> Result<bool, ApiError> {
    let refuse = |why: &str| {
        ApiError::forbidden(format!(
            "cross-site request refused: {why}; sign in and out from this server's own page"
        ))
    };
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let source = match header(axum::http::header::ORIGIN) {
        Some(o) if o != "null" => o,
        _ => header(REFERER).ok_or_else(|| refuse("no Origin or Referer header"))?,
    };
    let (origin, https) = origin_of(source).ok_or_else(|| refuse("unreadable Origin"))?;
    let host = header(HOST)
        .or(uri_host)
        .ok_or_else(|| refuse("no Host header"))?
        .to_ascii_lowercase();
    let default_port = if https { 443 } else { 80 };
    let host = if host.ends_with(']') || !host.contains(':') {
        format!("{host}:{default_port}")
    } else {
        host
    };
    if host == origin {
        Ok(https)
    } else {
        Err(refuse("the Origin is another site"))
    }
}

/// Reads a small form body (within the API's body limit).
async fn form(state: &AppState, req: Request) -> ApiResult<BTreeMap<String, String>> {
    let body = axum::body::to_bytes(req.into_body(), state.config.body_limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the form is over the server's body limit",
            )
        })?;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// `POST /login`: checks key and secret, opens a session and sets its cookie.
pub(super) async fn login(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let headers = req.headers().clone();
    let https = same_origin(&headers, req.uri().host())?;
    let viewer = viewer(&state, &headers).await?;
    let fields = form(&state, req).await?;
    let key = fields.get("key").map(|k| k.trim()).unwrap_or_default();
    let secret = fields.get("secret").map(String::as_str).unwrap_or_default();
    let wrong = || {
        Ok(html(
            StatusCode::UNAUTHORIZED,
            page::login(&viewer, Some("Wrong access key or secret.")),
        ))
    };
    if key.is_empty() {
        return wrong();
    }
    let user = state.store.get_user(key).await?;
    let hash = |s: &str| -> [u8; 32] { Sha256::digest(s.as_bytes()).into() };
    let expected = user
        .as_ref()
        .map_or(UNKNOWN_KEY_SECRET, |u| u.secret.as_str());
    let secret_ok: bool = hash(secret).ct_eq(&hash(expected)).into();
    let Some(user) = user else { return wrong() };
    if state.config.authentication && !secret_ok {
        return wrong();
    }
    if !user.enabled {
        return Ok(html(
            StatusCode::FORBIDDEN,
            page::login(&viewer, Some("This user is disabled.")),
        ));
    }
    let token = session::new_token()
        .map_err(|e| ApiError::internal(format!("no random bytes for a session token: {e}")))?;
    state
        .sessions
        .open(&token, &user.key_id, session::SESSION_TTL);
    Ok(redirect_home(&session::set_cookie(
        &token,
        session::SESSION_TTL,
        https,
    )))
}

/// `POST /logout`: ends the session and removes the cookie.
pub(super) async fn logout(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let https = same_origin(req.headers(), req.uri().host())?;
    if let Some(token) = session::cookie_token(req.headers()) {
        state.sessions.close(&token);
    }
    Ok(redirect_home(&session::clear_cookie(https)))
}

/// `GET /ui/job/{id}`: one job, as the viewer may see it.
pub(super) async fn job_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let viewer = viewer(&state, &headers).await?;
    let id = super::job_id(path)?;
    let Some((owner, job)) = state.store.get_job(id).await? else {
        return Ok(html(
            StatusCode::NOT_FOUND,
            page::message(&viewer, &format!("No such job: {id}")),
        ));
    };
    let (reason, position) = if job.state == JobState::Queued {
        (
            state.planner.pending_reason(id),
            state.store.queue_position(id).await?,
        )
    } else {
        (None, None)
    };
    Ok(html(
        StatusCode::OK,
        page::job(&owner, &job, reason.as_deref(), position, &viewer),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_same_origin_posts_pass() {
        let ok = headers(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "http://127.0.0.1:8090"),
        ]);
        assert!(!same_origin(&ok, None).unwrap());
        let tls = headers(&[("host", "retz.example"), ("origin", "https://retz.example")]);
        assert!(same_origin(&tls, None).unwrap());
        let referer = headers(&[
            ("host", "127.0.0.1:8090"),
            ("referer", "http://127.0.0.1:8090/login"),
        ]);
        assert!(same_origin(&referer, None).is_ok());
        for bad in [
            headers(&[
                ("host", "127.0.0.1:8090"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[
                ("host", "127.0.0.1:8090"),
                ("origin", "http://127.0.0.1:8091"),
            ]),
            headers(&[("host", "127.0.0.1:8090"), ("origin", "null")]),
            headers(&[("host", "127.0.0.1:8090")]),
            headers(&[
                ("host", "retz.example"),
                ("origin", "http://retz.example:443"),
            ]),
        ] {
            assert!(same_origin(&bad, None).is_err(), "{bad:?}");
        }
    }
}
