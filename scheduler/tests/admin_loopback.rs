//! Who may use `/admin/*`: an admin key always; with `admin_loopback = true` also an
//! unsigned request whose TCP peer is loopback; never an ordinary user's key, never an
//! unsigned request from elsewhere or from an unknown peer. The peer is injected as
//! `ConnectInfo<SocketAddr>`, as the accept loop does (see `tls.rs` for the real sockets).

mod http_support;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use http_support::{Env, error_message, signed};
use retz_proto::api::auth;
use retz_scheduler::http::HttpConfig;
use serde_json::Value;

const LOOPBACK: &str = "127.0.0.1:40000";
const LOOPBACK_V6: &str = "[::1]:40000";
const REMOTE: &str = "10.1.2.3:40000";

async fn env(admin_loopback: bool) -> Env {
    Env::new(HttpConfig {
        admin_loopback,
        ..HttpConfig::default()
    })
    .await
}

fn from(mut req: Request<Body>, peer: Option<&str>) -> Request<Body> {
    if let Some(p) = peer {
        let addr: SocketAddr = p.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    req
}

fn unsigned(method: Method, path: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn send(env: &Env, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, body) = env.send(req).await;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, v)
}

#[tokio::test]
async fn loopback_operator_is_admitted_unsigned_when_the_switch_is_on() {
    let env = env(true).await;
    for peer in [LOOPBACK, LOOPBACK_V6, "[::ffff:127.0.0.1]:1"] {
        let (s, v) = send(
            &env,
            from(unsigned(Method::GET, "/admin/users", ""), Some(peer)),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{peer}: {v}");
        assert_eq!(v["users"].as_array().unwrap().len(), 1, "{v}");
    }
    // A body is read too: create a user, then gc.
    let (s, v) = send(
        &env,
        from(
            unsigned(Method::POST, "/admin/users", r#"{"info":"bob"}"#),
            Some(LOOPBACK),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["user"]["info"], "bob");
    let (s, v) = send(
        &env,
        from(
            unsigned(Method::POST, "/admin/gc", r#"{"leeway":0}"#),
            Some(LOOPBACK),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(env.store.list_users().await.unwrap().len(), 2);
}

#[tokio::test]
async fn loopback_is_refused_unsigned_when_the_switch_is_off() {
    let env = env(false).await;
    let (s, v) = send(
        &env,
        from(unsigned(Method::GET, "/admin/users", ""), Some(LOOPBACK)),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let before = env.snapshot().await;
    let (s, _) = send(
        &env,
        from(
            unsigned(Method::POST, "/admin/users", r#"{"info":"eve"}"#),
            Some(LOOPBACK),
        ),
    )
    .await;
    assert!(s.is_client_error(), "{s}");
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn unsigned_requests_from_elsewhere_or_an_unknown_peer_are_refused() {
    let env = env(true).await;
    let before = env.snapshot().await;
    for peer in [Some(REMOTE), Some("[fe80::1]:1"), None] {
        let (s, v) = send(
            &env,
            from(
                unsigned(Method::POST, "/admin/users", r#"{"info":"eve"}"#),
                peer,
            ),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{peer:?}: {v}");
        assert!(error_message(&v).contains("loopback"), "{v}");
    }
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn an_ordinary_users_key_is_refused_even_over_loopback() {
    for switch in [true, false] {
        let env = env(switch).await;
        let alice = env.user("alice").await;
        for peer in [LOOPBACK, REMOTE] {
            let req = signed(
                &alice,
                Method::GET,
                "/admin/users",
                vec![],
                &auth::now_date(),
            );
            let (s, v) = send(&env, from(req, Some(peer))).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "switch {switch}, {peer}: {v}");
            assert!(error_message(&v).contains("not an admin key"), "{v}");
        }
        // A signed request with a bad signature is judged as signed: 401, not admitted.
        let mut forged = alice.clone();
        forged.key_id = env.admin.key_id.clone();
        forged.secret = "wrong".into();
        let req = signed(
            &forged,
            Method::GET,
            "/admin/users",
            vec![],
            &auth::now_date(),
        );
        let (s, v) = send(&env, from(req, Some(LOOPBACK))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "switch {switch}: {v}");
    }
}

#[tokio::test]
async fn an_admin_key_works_from_anywhere_with_or_without_the_switch() {
    for switch in [true, false] {
        let env = env(switch).await;
        for peer in [Some(REMOTE), Some(LOOPBACK), None] {
            let req = signed(
                &env.admin,
                Method::GET,
                "/admin/users",
                vec![],
                &auth::now_date(),
            );
            let (s, v) = send(&env, from(req, peer)).await;
            assert_eq!(s, StatusCode::OK, "switch {switch}, {peer:?}: {v}");
        }
    }
}

#[tokio::test]
async fn the_loopback_body_is_held_to_the_body_limit() {
    let env = env(true).await;
    let limit = env.config.body_limit;
    let big = format!(r#"{{"info":"{}"}}"#, "x".repeat(limit));
    let (s, v) = send(
        &env,
        from(unsigned(Method::POST, "/admin/users", &big), Some(LOOPBACK)),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(env.store.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn ordinary_endpoints_still_need_a_signature_from_loopback() {
    let env = env(true).await;
    let (s, v) = send(
        &env,
        from(unsigned(Method::GET, "/apps", ""), Some(LOOPBACK)),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
}
