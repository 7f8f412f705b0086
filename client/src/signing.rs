//! The headers of a signed `Retz-auth-v1` request (pure: the date is a parameter).
//!
//! `Date` is always sent; `Content-MD5` only when there is a body; `Authorization` is
//! `Retz-auth-v1 <key>:<signature>` over `VERB\nCONTENT-MD5\nDATE\nRESOURCE\n`, where
//! RESOURCE is the path plus `?query` exactly as sent. With authentication off the
//! signature is [`NO_AUTH_SIGNATURE`] (the key is still sent: the server needs it).

use retz_proto::api::ClientConfig;
use retz_proto::api::auth::{
    NO_AUTH_SIGNATURE, authorization, content_md5, sign, string_to_sign_keyed,
};

/// The auth headers of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Date` value.
    pub date: String,
    /// `Content-MD5` value, when there is a body.
    pub content_md5: Option<String>,
    /// `Authorization` value.
    pub authorization: String,
}

/// The resource that is signed: `path` plus `?query` when the query is not empty.
pub fn resource(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// Signs `verb resource` with `body` at `date` for `config`'s key.
pub fn sign_request(
    config: &ClientConfig,
    verb: &str,
    resource: &str,
    body: &[u8],
    date: &str,
) -> SignedHeaders {
    sign_request_keyed(config, verb, resource, body, date, None)
}

/// [`sign_request`] for a request carrying `Idempotency-Key: idempotency_key`, which
/// the signature then covers.
pub fn sign_request_keyed(
    config: &ClientConfig,
    verb: &str,
    resource: &str,
    body: &[u8],
    date: &str,
    idempotency_key: Option<&str>,
) -> SignedHeaders {
    let md5 = content_md5(body);
    let signature = if config.authentication {
        let to_sign = string_to_sign_keyed(verb, &md5, date, resource, idempotency_key);
        sign(&config.secret, &to_sign)
    } else {
        NO_AUTH_SIGNATURE.to_owned()
    };
    SignedHeaders {
        date: date.to_owned(),
        content_md5: (!md5.is_empty()).then_some(md5),
        authorization: authorization(&config.access_key, &signature),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::api::auth::{parse_authorization, verify};

    fn config(auth: bool) -> ClientConfig {
        ClientConfig {
            server: "http://127.0.0.1:9090".into(),
            access_key: "k1".into(),
            secret: "s3cret".into(),
            authentication: auth,
            tls_insecure: false,
            ca_cert: None,
        }
    }

    #[test]
    fn string_to_sign_of_a_request_with_query_and_body() {
        let date = "2026-11-22T07:30:00.000+00:00";
        let body = br#"{"state":"QUEUED"}"#;
        let res = resource("/job/7/file", "path=std%20out&offset=0");
        assert_eq!(res, "/job/7/file?path=std%20out&offset=0");
        let h = sign_request(&config(true), "POST", &res, body, date);
        let md5 = content_md5(body);
        assert_eq!(h.content_md5.as_deref(), Some(md5.as_str()));
        assert_eq!(h.date, date);
        let expected_sts = format!("POST\n{md5}\n{date}\n/job/7/file?path=std%20out&offset=0\n");
        let (key, sig) = parse_authorization(Some(&h.authorization)).unwrap();
        assert_eq!(key, "k1");
        assert!(verify("s3cret", &expected_sts, sig));
        // the query is part of what is signed
        let without_query = format!("POST\n{md5}\n{date}\n/job/7/file\n");
        assert!(!verify("s3cret", &without_query, sig));
    }

    #[test]
    fn no_body_means_no_content_md5_and_an_empty_md5_line() {
        let date = "2026-11-22T07:30:00.000+00:00";
        let h = sign_request(&config(true), "GET", "/job/1", b"", date);
        assert_eq!(h.content_md5, None);
        let (_, sig) = parse_authorization(Some(&h.authorization)).unwrap();
        assert!(verify("s3cret", &format!("GET\n\n{date}\n/job/1\n"), sig));
        assert_eq!(resource("/apps", ""), "/apps");
    }

    #[test]
    fn authentication_off_sends_the_no_auth_signature() {
        let h = sign_request(&config(false), "GET", "/apps", b"", "d");
        assert_eq!(
            h.authorization,
            format!("Retz-auth-v1 k1:{NO_AUTH_SIGNATURE}")
        );
    }
}
