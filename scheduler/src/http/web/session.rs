//! Web sessions: the server-side session table, session tokens and the session cookie.
//!
//! Invariants:
//! - a token is 256 bits from the operating system's CSPRNG, sent to the browser once in
//!   the cookie; the table keys sessions by the token's SHA-256, so lookups never compare
//!   the token itself;
//! - a session lives [`SESSION_TTL`] from sign-in, then is gone (checked on every lookup);
//!   sign-out removes it at once;
//! - the table holds at most [`MAX_SESSIONS`]: when full, expired sessions are swept and
//!   then the ones closest to expiry make room, so memory stays bounded;
//! - the cookie is `HttpOnly; SameSite=Strict; Path=/` with `Max-Age`, plus `Secure` when
//!   the sign-in came from an `https` origin (the server's TLS, or a TLS proxy in front).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use sha2::{Digest, Sha256};

/// How long a session lasts after sign-in (a constant: the server's config has no
/// option for it).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 10_000;
/// The session cookie's name.
pub const COOKIE_NAME: &str = "retz_session";

#[derive(Debug)]
struct Session {
    key: String,
    expires: Instant,
}

/// The server-side session table: token hash → the signed-in user's key.
#[derive(Debug, Default)]
pub struct Sessions {
    table: Mutex<HashMap<[u8; 32], Session>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh session token: 32 random bytes, hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for user `key` under `token`, valid for `ttl`.
    pub fn open(&self, token: &str, key: &str, ttl: Duration) {
        let now = Instant::now();
        let mut table = self.lock();
        if table.len() >= MAX_SESSIONS {
            table.retain(|_, s| s.expires > now);
        }
        while table.len() >= MAX_SESSIONS {
            let Some(oldest) = table.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) else {
                break;
            };
            table.remove(&oldest);
        }
        table.insert(
            digest(token),
            Session {
                key: key.to_owned(),
                expires: now + ttl,
            },
        );
    }

    /// The key of the user signed in under `token`, if the session exists and has not
    /// expired (an expired one is removed).
    pub fn user(&self, token: &str) -> Option<String> {
        let d = digest(token);
        let mut table = self.lock();
        match table.get(&d) {
            Some(s) if s.expires > Instant::now() => Some(s.key.clone()),
            Some(_) => {
                table.remove(&d);
                None
            }
            None => None,
        }
    }

    /// Ends the session under `token`, if any.
    pub fn close(&self, token: &str) {
        self.lock().remove(&digest(token));
    }

    /// How many sessions are held (expired ones not yet swept included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Set-Cookie` value that stores `token` for `ttl`.
pub fn set_cookie(token: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session token of the request's `Cookie` headers, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tokens_are_256_random_bits() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn sessions_open_expire_and_close() {
        let s = Sessions::default();
        s.open("t1", "alice", SESSION_TTL);
        s.open("t2", "bob", Duration::ZERO);
        assert_eq!(s.user("t1").as_deref(), Some("alice"));
        assert_eq!(s.user("t2"), None, "expired");
        assert_eq!(s.user("nope"), None);
        assert_eq!(s.len(), 1, "the expired session was removed");
        s.close("t1");
        assert_eq!(s.user("t1"), None);
        assert!(s.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let s = Sessions::default();
        for i in 0..MAX_SESSIONS + 5 {
            s.open(&format!("t{i}"), "u", SESSION_TTL);
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        let last = format!("t{}", MAX_SESSIONS + 4);
        assert_eq!(s.user(&last).as_deref(), Some("u"));
    }

    #[test]
    fn cookies_carry_the_attributes_and_are_read_back() {
        let c = set_cookie("abc", SESSION_TTL, false);
        assert_eq!(
            c,
            "retz_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"
        );
        assert!(set_cookie("abc", SESSION_TTL, true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; retz_session=tok ; b=2"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("tok"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("retz_session="));
        assert_eq!(cookie_token(&h), None);
    }
}
