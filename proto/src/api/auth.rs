//! `Retz-auth-v1` request signing, shared by the server (verify) and the client (sign).
//!
//! `Authorization: Retz-auth-v1 <key>:<signature>`, where signature = base64 without
//! padding of HMAC-SHA256(secret, `VERB\nCONTENT-MD5\nDATE\nRESOURCE\n`); CONTENT-MD5 is
//! base64 without padding of the body's MD5 (empty when there is no body), DATE is the
//! request's `Date` header verbatim, RESOURCE is the path plus `?query` when there is a
//! query. A request with an `Idempotency-Key` header signs it too, as a fifth line
//! `idempotency-key:KEY` ([`string_to_sign_keyed`]). Verification compares in constant
//! time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chrono::{DateTime, FixedOffset, Utc};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// The scheme name in the `Authorization` header.
pub const SCHEME: &str = "Retz-auth-v1";

/// The signature a client sends when the server runs without authentication.
pub const NO_AUTH_SIGNATURE: &str = "all-okay";

/// Why an `Authorization` or `Date` header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing Authorization header; sign requests with Retz-auth-v1 <key>:<signature>")]
    Missing,
    /// The header is not `Retz-auth-v1 <key>:<signature>`.
    #[error("malformed Authorization header; expected Retz-auth-v1 <key>:<signature>")]
    Malformed,
    /// The `Date` header is missing or unreadable.
    #[error("missing or unreadable Date header; send the current time, e.g. {example}")]
    BadDate {
        /// A well-formed example.
        example: String,
    },
}

/// base64 (no padding) of the MD5 of `body`; `""` for an empty body.
pub fn content_md5(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    STANDARD_NO_PAD.encode(Md5::digest(body))
}

/// The string to sign: `VERB\nMD5\nDATE\nRESOURCE\n`.
pub fn string_to_sign(verb: &str, content_md5: &str, date: &str, resource: &str) -> String {
    format!("{verb}\n{content_md5}\n{date}\n{resource}\n")
}

/// The header naming a submission (`POST /job`), so a retry or a replay returns the job
/// it created instead of a new one.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// Whether `key` is a usable `Idempotency-Key`: 1 to [`MAX_IDEMPOTENCY_KEY`] visible
/// ASCII characters.
pub fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY && key.bytes().all(|b| b.is_ascii_graphic())
}

/// [`string_to_sign`], covering the request's `Idempotency-Key` too when it has one
/// (`...RESOURCE\nidempotency-key:KEY\n`), so a captured request cannot be replayed
/// under another key (or none) to queue its job again. Without a key it is exactly
/// [`string_to_sign`], as the original clients sign.
pub fn string_to_sign_keyed(
    verb: &str,
    content_md5: &str,
    date: &str,
    resource: &str,
    idempotency_key: Option<&str>,
) -> String {
    let mut s = string_to_sign(verb, content_md5, date, resource);
    if let Some(k) = idempotency_key {
        s.push_str("idempotency-key:");
        s.push_str(k);
        s.push('\n');
    }
    s
}

/// base64 (no padding) of HMAC-SHA256(`secret`, `string_to_sign`).
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    STANDARD_NO_PAD.encode(mac(secret, string_to_sign).finalize().into_bytes())
}

/// Whether `signature` is the signature of `string_to_sign` under `secret`, compared in
/// constant time.
pub fn verify(secret: &str, string_to_sign: &str, signature: &str) -> bool {
    let Ok(given) = STANDARD_NO_PAD.decode(signature.trim_end_matches('=')) else {
        return false;
    };
    mac(secret, string_to_sign).verify_slice(&given).is_ok()
}

fn mac(secret: &str, data: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(data.as_bytes());
    m
}

/// The `Authorization` header value for `key` and `signature`.
pub fn authorization(key: &str, signature: &str) -> String {
    format!("{SCHEME} {key}:{signature}")
}

/// Splits an `Authorization` header value into (key, signature).
pub fn parse_authorization(header: Option<&str>) -> Result<(&str, &str), AuthError> {
    let h = header.ok_or(AuthError::Missing)?.trim();
    let rest = h.strip_prefix(SCHEME).ok_or(AuthError::Malformed)?;
    if !rest.starts_with(' ') {
        return Err(AuthError::Malformed);
    }
    let (key, sig) = rest.trim().split_once(':').ok_or(AuthError::Malformed)?;
    if key.is_empty() || sig.is_empty() || key.contains(char::is_whitespace) {
        return Err(AuthError::Malformed);
    }
    Ok((key, sig))
}

/// The current time as a `Date` header value ([`super::TIME_FORMAT`], UTC).
pub fn now_date() -> String {
    Utc::now().format(super::TIME_FORMAT).to_string()
}

/// Reads a `Date` header: the Retz form (`2026-11-22T07:30:00.123+00:00`), any RFC 3339
/// time, or the HTTP form (`Sun, 22 Nov 2026 07:30:00 GMT`).
pub fn parse_date(value: Option<&str>) -> Result<DateTime<FixedOffset>, AuthError> {
    let bad = || AuthError::BadDate {
        example: now_date(),
    };
    let v = value.ok_or_else(bad)?.trim();
    DateTime::parse_from_str(v, super::TIME_FORMAT)
        .or_else(|_| DateTime::parse_from_rfc3339(v))
        .or_else(|_| DateTime::parse_from_rfc2822(v))
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_computation() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") is a published
        // test vector: f7bc83f4...d8.
        let sig = sign("key", "The quick brown fox jumps over the lazy dog");
        let raw = STANDARD_NO_PAD.decode(&sig).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert!(!sig.ends_with('='));
    }

    #[test]
    fn verify_accepts_only_the_right_secret_and_text() {
        let sts = string_to_sign("GET", "", "2026-11-22T07:30:00.000+00:00", "/job/1");
        assert_eq!(sts, "GET\n\n2026-11-22T07:30:00.000+00:00\n/job/1\n");
        let sig = sign("s3cret", &sts);
        assert!(verify("s3cret", &sts, &sig));
        assert!(!verify("other", &sts, &sig));
        assert!(!verify("s3cret", &sts.replace("/job/1", "/job/2"), &sig));
        assert!(!verify("s3cret", &sts, "not base64!"));
        assert!(!verify("s3cret", &sts, ""));
    }

    #[test]
    fn content_md5_is_unpadded_base64() {
        assert_eq!(content_md5(b""), "");
        // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72
        assert_eq!(content_md5(b"abc"), "kAFQmDzST7DWlj99KOF/cg");
    }

    #[test]
    fn authorization_header_round_trips_and_rejects_garbage() {
        let h = authorization("k1", "sig");
        assert_eq!(parse_authorization(Some(&h)).unwrap(), ("k1", "sig"));
        assert_eq!(parse_authorization(None), Err(AuthError::Missing));
        for bad in [
            "Basic abc",
            "Retz-auth-v1",
            "Retz-auth-v1 k1",
            "Retz-auth-v1 :s",
            "Retz-auth-v1x k:s",
        ] {
            assert_eq!(
                parse_authorization(Some(bad)),
                Err(AuthError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_in_all_three_forms_parse() {
        assert!(parse_date(Some(&now_date())).is_ok());
        assert!(parse_date(Some("2026-11-22T07:30:00Z")).is_ok());
        assert!(parse_date(Some("Sun, 22 Nov 2026 07:30:00 GMT")).is_ok());
        assert!(parse_date(Some("yesterday")).is_err());
        assert!(parse_date(None).is_err());
    }
}
