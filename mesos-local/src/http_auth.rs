//! HTTP authentication shared by the master and the agents: HTTP Basic against a
//! [`Credentials`] set (Mesos' `--credentials` with `--authenticate_http_frameworks` /
//! `--authenticate_http_readonly`), and the 401 replies with their `WWW-Authenticate`
//! challenge.
//!
//! Invariants: a request is authenticated only by a well-formed `Authorization` header
//! whose secret matches its principal's (compared in constant time by
//! [`Credentials::verify_basic`]); every refusal is a 401 with a challenge and one
//! `text/plain` line that never echoes what the client sent.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use retz_proto::credentials::Credentials;

/// The realm of the master's endpoints (`WWW-Authenticate: Basic realm="mesos"`).
pub const MASTER_REALM: &str = "mesos";
/// The realm of an agent's read-only endpoints (`/files/*`, `/state`).
pub const AGENT_READONLY_REALM: &str = "mesos-agent-readonly";
/// The realm of an agent's executor API (`Bearer` tokens).
pub const AGENT_EXECUTOR_REALM: &str = "mesos-agent-executor";

/// A refused request: its status, its `WWW-Authenticate` challenge (401s) and its one
/// line of text. Becomes the reply with [`IntoResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401 or 403.
    pub status: StatusCode,
    /// `<scheme> realm="<realm>"`, for a 401.
    pub challenge: Option<String>,
    /// Why, one line.
    pub message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut r = (self.status, self.message).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(v) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }
}

/// A 401 with `WWW-Authenticate: <scheme> realm="<realm>"` and `message` as its one line.
pub fn unauthorized(scheme: &str, realm: &str, message: &str) -> Refusal {
    Refusal {
        status: StatusCode::UNAUTHORIZED,
        challenge: Some(format!("{scheme} realm=\"{realm}\"")),
        message: message.to_owned(),
    }
}

/// A 403 with `message` as its one line.
pub fn forbidden(message: String) -> Refusal {
    Refusal {
        status: StatusCode::FORBIDDEN,
        challenge: None,
        message,
    }
}

/// The `Authorization` header value, if there is exactly one and it is text.
pub fn authorization(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// HTTP Basic: `Ok(None)` when `credentials` is `None` (the endpoint is open),
/// `Ok(Some(principal))` for a known principal with its secret, else the 401 of `realm`.
pub fn basic(
    credentials: Option<&Credentials>,
    headers: &HeaderMap,
    realm: &str,
) -> Result<Option<String>, Refusal> {
    let Some(credentials) = credentials else {
        return Ok(None);
    };
    let Some(value) = authorization(headers) else {
        return Err(unauthorized(
            "Basic",
            realm,
            "Authentication required: send 'Authorization: Basic <base64 of principal:secret>' with credentials this cluster knows",
        ));
    };
    match credentials.verify_basic(value) {
        Some(principal) => Ok(Some(principal.to_owned())),
        None => Err(unauthorized(
            "Basic",
            realm,
            "Authentication failed: unknown principal, wrong secret, or not HTTP Basic",
        )),
    }
}

/// The token of `Authorization: Bearer <token>`, if the header is exactly that.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let (scheme, token) = authorization(headers)?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::credentials::Credential;

    fn with(value: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in value {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn basic_admits_exactly_known_principals() {
        let c = Credential::new("retz", "s3cret").unwrap();
        let set = Credentials::single(c.clone());
        assert_eq!(basic(None, &with(&[]), MASTER_REALM).unwrap(), None);
        assert_eq!(
            basic(Some(&set), &with(&[&c.basic_header()]), MASTER_REALM).unwrap(),
            Some("retz".into())
        );
        for bad in [
            vec![],
            vec!["Basic !!"],
            vec!["Bearer x"],
            vec![c.basic_header().as_str(), c.basic_header().as_str()],
        ] {
            let r = basic(Some(&set), &with(&bad), MASTER_REALM)
                .unwrap_err()
                .into_response();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
            assert_eq!(
                r.headers().get(header::WWW_AUTHENTICATE).unwrap(),
                "Basic realm=\"mesos\""
            );
        }
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer(&with(&["Bearer abc"])), Some("abc"));
        assert_eq!(bearer(&with(&["bearer  abc "])), Some("abc"));
        assert_eq!(bearer(&with(&["Basic abc"])), None);
        assert_eq!(bearer(&with(&["Bearer "])), None);
        assert_eq!(bearer(&with(&[])), None);
        assert_eq!(bearer(&with(&["Bearer a", "Bearer b"])), None);
    }
}
