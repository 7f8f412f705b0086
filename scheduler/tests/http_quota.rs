//! Shares and quotas over HTTP (`oneshot` against the router, a SQLite store in a
//! tempdir): the admin routes (`/admin/user/{key}/limits`, `/share`, `/quota`), their
//! refusals, and the queued-jobs quota of `POST /job` (429 with the limit named, also
//! in the original envelope).

mod http_support;

use axum::http::{Method, StatusCode};
use http_support::{Env, error_message};
use retz_proto::api::Quota;
use retz_scheduler::http::HttpConfig;
use serde_json::json;

fn job() -> serde_json::Value {
    json!({"appid": "app", "cmd": "true", "resources": {"cpu": 1, "memMB": 32}})
}

#[tokio::test]
async fn shares_are_set_shown_and_handed_to_the_planner() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let path = |what: &str| format!("/admin/user/{}/{what}", alice.key_id);
    let (s, v) = env.get(&env.admin, &path("limits")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["limits"]["share"], 1.0);
    let (s, v) = env
        .call(
            &env.admin,
            Method::PUT,
            &path("share"),
            Some(json!({"weight": 2.5})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["limits"]["share"], 2.5);
    let (_, v) = env.get(&env.admin, &path("limits")).await;
    assert_eq!(v["limits"]["share"], 2.5, "stored");
    let told = env.planner.limits.lock().unwrap().clone();
    assert_eq!(told.len(), 1);
    assert_eq!(
        (told[0].user.as_str(), told[0].share),
        (alice.key_id.as_str(), 2.5)
    );

    // Bad weights: 400 with one clear line; nothing stored or told.
    for bad in [
        json!({"weight": 0}),
        json!({"weight": -1}),
        json!({"weight": 1e300}),
    ] {
        let (s, v) = env
            .call(&env.admin, Method::PUT, &path("share"), Some(bad.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(error_message(&v).contains("weight"), "{v}");
    }
    for bad in [
        json!({"weight": "two"}),
        json!({}),
        json!({"weight": 1, "x": 2}),
    ] {
        let (s, v) = env
            .call(&env.admin, Method::PUT, &path("share"), Some(bad.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    assert_eq!(env.planner.limits.lock().unwrap().len(), 1);
    // A user that does not exist: 404; not an admin: 403.
    let (s, _) = env
        .call(
            &env.admin,
            Method::PUT,
            "/admin/user/nobody/share",
            Some(json!({"weight": 2})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for (method, p, body) in [
        (Method::GET, path("limits"), None),
        (Method::PUT, path("share"), Some(json!({"weight": 9}))),
        (
            Method::PUT,
            path("quota"),
            Some(json!({"max_queued_jobs": 9})),
        ),
        (Method::DELETE, path("quota"), None),
    ] {
        let (s, v) = env.call(&alice, method, &p, body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{p}: {v}");
    }
}

#[tokio::test]
async fn quotas_override_the_defaults_and_clear_back_to_them() {
    let config = HttpConfig {
        quota: Quota {
            max_queued_jobs: Some(100),
            max_running_cpus: Some(8),
            max_running_mem_mb: None,
        },
        ..HttpConfig::default()
    };
    let env = Env::new(config).await;
    let alice = env.user("alice").await;
    let path = format!("/admin/user/{}/quota", alice.key_id);
    let (s, v) = env
        .call(
            &env.admin,
            Method::PUT,
            &path,
            Some(json!({"max_running_cpus": 64, "max_running_mem_mb": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["effective"]["max_queued_jobs"], 100, "default kept: {v}");
    assert_eq!(v["effective"]["max_running_cpus"], 64, "{v}");
    assert_eq!(
        v["effective"]["max_running_mem_mb"], 0,
        "0 = unlimited: {v}"
    );
    assert_eq!(v["defaults"]["max_running_cpus"], 8);
    // Fields left out keep their value.
    let (_, v) = env
        .call(
            &env.admin,
            Method::PUT,
            &path,
            Some(json!({"max_queued_jobs": 5})),
        )
        .await;
    assert_eq!(v["limits"]["quota"]["max_running_cpus"], 64, "{v}");
    assert_eq!(v["limits"]["quota"]["max_queued_jobs"], 5, "{v}");
    let stored = env.store.user_limits(&alice.key_id).await.unwrap();
    assert_eq!(stored.quota.max_queued_jobs, Some(5));
    // Nothing to set, a negative or unknown limit: 400.
    for bad in [
        json!({}),
        json!({"max_queued_jobs": -1}),
        json!({"cpus": 1}),
    ] {
        let (s, v) = env
            .call(&env.admin, Method::PUT, &path, Some(bad.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let (s, v) = env.call(&env.admin, Method::DELETE, &path, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["effective"]["max_running_cpus"], 8,
        "back to the default: {v}"
    );
    let told = env.planner.limits.lock().unwrap().clone();
    assert_eq!(told.len(), 3);
    assert!(told[2].quota.is_empty());
}

#[tokio::test]
async fn a_submission_over_the_queued_limit_is_refused_with_the_limit_named() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    env.load_app(&alice, "app").await;
    env.load_app(&bob, "bapp").await;
    let (s, v) = env
        .call(
            &env.admin,
            Method::PUT,
            &format!("/admin/user/{}/quota", alice.key_id),
            Some(json!({"max_queued_jobs": 2})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for _ in 0..2 {
        let (s, v) = env.schedule(&alice, job()).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = env.schedule(&alice, job()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(
        error_message(&v),
        format!("user {} has 2 queued jobs, the limit is 2", alice.key_id)
    );
    // The original envelope gets the same refusal in its error form.
    let (s, v) = env
        .call(
            &alice,
            Method::POST,
            "/job",
            Some(json!({"command": "schedule", "version": "0.4.0", "job": job()})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["command"], "error", "{v}");
    assert!(
        v["status"].as_str().unwrap().contains("the limit is 2"),
        "{v}"
    );
    // Another user is not limited; a job leaving the queue makes room.
    let mut b = job();
    b["appid"] = json!("bapp");
    let (s, v) = env.schedule(&bob, b).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let queued = env.store.queued_count(&alice.key_id).await.unwrap();
    assert_eq!(queued, 2);
    let first = env
        .store
        .list_jobs(&alice.key_id, retz_proto::api::JobState::Queued, None, 10)
        .await
        .unwrap()
        .0[0]
        .id;
    let (s, v) = env
        .call(&alice, Method::DELETE, &format!("/job/{first}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = env.schedule(&alice, job()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // 0 is unlimited for this user.
    env.call(
        &env.admin,
        Method::PUT,
        &format!("/admin/user/{}/quota", alice.key_id),
        Some(json!({"max_queued_jobs": 0})),
    )
    .await;
    let (s, v) = env.schedule(&alice, job()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn the_servers_default_queued_limit_applies_to_everyone() {
    let config = HttpConfig {
        quota: Quota {
            max_queued_jobs: Some(1),
            ..Quota::default()
        },
        ..HttpConfig::default()
    };
    let env = Env::new(config).await;
    let alice = env.user("alice").await;
    env.load_app(&alice, "app").await;
    let (s, _) = env.schedule(&alice, job()).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = env.schedule(&alice, job()).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(
        error_message(&v).ends_with("has 1 queued job, the limit is 1"),
        "{v}"
    );
}
