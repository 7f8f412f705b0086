//! The [`Operator`] extractor: who may use `/admin/...`, the server's operator and no
//! ordinary user.
//!
//! Rules, in order:
//! 1. with [`super::HttpConfig::admin_loopback`] on, a request that carries **no**
//!    `Authorization` header and whose TCP peer (`ConnectInfo<SocketAddr>`) is a loopback
//!    address is the operator on the server's own host: admitted unsigned;
//! 2. with the switch on, an unsigned request from any other peer is refused (403) with
//!    a message saying so;
//! 3. otherwise the request is authenticated like every other ([`super::Caller`]) and
//!    admitted only when its key is one of the admin keys (403 otherwise).
//!
//! Invariants: a request without a known peer (no `ConnectInfo`) is never from loopback
//! (fail closed); a signed request is judged by its key alone, wherever it comes from,
//! so an ordinary user's key is refused even over loopback; the body is read within the
//! body limit either way.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::auth::require_admin;
use super::{ApiError, AppState, Caller};

/// An admitted `/admin/...` request: who sent it and its body.
#[derive(Debug, Clone)]
pub struct Operator {
    /// How the operator was recognised.
    pub who: OperatorId,
    /// The request body (checked against the signature when signed).
    pub body: Bytes,
}

/// How an [`Operator`] was recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorId {
    /// A signed request with an admin key.
    Key(String),
    /// An unsigned request from this loopback peer (`admin_loopback = true`).
    Loopback(SocketAddr),
}

impl std::fmt::Display for OperatorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OperatorId::Key(k) => write!(f, "admin key {k}"),
            OperatorId::Loopback(peer) => write!(f, "loopback peer {peer}"),
        }
    }
}

/// Whether `ip` is a loopback address (`127.0.0.0/8`, `::1`, or `::ffff:127.x.y.z`).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

impl FromRequest<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let what = format!("{} {}", req.method(), req.uri().path());
        let op = recognise(req, state).await?;
        tracing::info!(operator = %op.who, request = %what, "admin request");
        Ok(op)
    }
}

async fn recognise(req: Request, state: &AppState) -> Result<Operator, ApiError> {
    if state.config.admin_loopback && !req.headers().contains_key(AUTHORIZATION) {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(p)| *p);
        return match peer {
            Some(peer) if is_loopback(peer.ip()) => {
                let body = read_body(req, state.config.body_limit).await?;
                Ok(Operator {
                    who: OperatorId::Loopback(peer),
                    body,
                })
            }
            _ => Err(ApiError::forbidden(
                "unsigned admin requests are accepted only from the server's own host \
                     (loopback); elsewhere sign the request with an admin key",
            )),
        };
    }
    let caller = Caller::from_request(req, state).await?;
    require_admin(&caller, state)?;
    Ok(Operator {
        who: OperatorId::Key(caller.user.key_id),
        body: caller.body,
    })
}

async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the server's limit of {limit} bytes"),
        )
    };
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "::ffff:10.0.0.1",
            "fe80::1",
            "192.168.1.1",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn operators_say_who_they_are() {
        assert_eq!(OperatorId::Key("k".into()).to_string(), "admin key k");
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            OperatorId::Loopback(peer).to_string(),
            "loopback peer 127.0.0.1:4000"
        );
    }
}
