//! Unit tests of the client library (`client.rs`).

use super::*;

#[test]
fn error_messages_are_one_line() {
    let body = serde_json::to_string(&ErrorBody::new(
        "Authentication failed. String to sign: GET\n\nD\n/apps\n",
    ))
    .unwrap();
    let m = error_message(StatusCode::UNAUTHORIZED, &body);
    assert_eq!(
        m,
        "Authentication failed. String to sign: GET\\n\\nD\\n/apps"
    );
    assert!(!m.contains('\n'));
    assert_eq!(error_message(StatusCode::NOT_FOUND, ""), "Not Found");
    assert_eq!(
        error_message(StatusCode::BAD_GATEWAY, "proxy down\nmore"),
        "proxy down"
    );
    assert_eq!(
        error_message(StatusCode::BAD_REQUEST, &"x".repeat(900)).len(),
        500
    );
}

#[test]
fn default_options_are_the_documented_ones() {
    let o = ClientOptions::default();
    assert_eq!(o.connect_timeout, Duration::from_secs(3));
    assert!(o.retries > 0 && o.retry_delay <= o.retry_max_delay);
}
