//! The HTTP API's refusals, driven in-process (`oneshot`) over a SQLite store in a
//! tempdir: application validation, who may load applications, the bad inputs of issue #6
//! (each a 4xx JSON error that leaves the store unchanged), and `POST /job/plan`, checked
//! like a submission and storing nothing.

mod http_support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_support::{Env, error_message, signed};
use retz_proto::api::User;
use retz_proto::api::auth;
use retz_scheduler::http::HttpConfig;
use retz_scheduler::identity::LaunchUsers;
use serde_json::json;

#[tokio::test]
async fn applications_are_validated() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let put = |name: &str, body: serde_json::Value| {
        let path = format!("/app/{name}");
        let env = &env;
        let alice = alice.clone();
        async move { env.call(&alice, Method::PUT, &path, Some(body)).await }
    };
    let (s, _) = put("a", json!({"application": {"appid": "b"}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = put("a..b%2F", json!({"application": {"appid": "a..b/"}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = put(
        "a",
        json!({"application": {"appid": "a", "owner": "someone"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = put("a", json!({"application": {"appid": "a", "user": "root"}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = put(
        "a",
        json!({"application": {"appid": "a", "enabled": false}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["application"]["owner"], alice.key_id.as_str());
    let (s, v) = env
        .schedule(&alice, json!({"appid": "a", "cmd": "x"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(error_message(&v).contains("disabled"));
    let (s, v) = env.call(&alice, Method::DELETE, "/app/a", None).await;
    assert_eq!(
        (s, v["application"]["appid"].as_str()),
        (StatusCode::OK, Some("a"))
    );
    let (s, _) = env.get(&alice, "/app/a").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Load-app decides who the jobs may run as (issue #13): root in any spelling is a 400
/// JSON error, a user the operator does not allow a 403 saying what to do, containers a
/// 400; every load gets a fresh generation, whatever the client sent.
#[tokio::test]
async fn load_app_refuses_root_and_users_the_operator_does_not_allow() {
    let mut users = LaunchUsers::default();
    users.allowed_users.insert("batch".into());
    let env = Env::new(HttpConfig {
        users,
        ..HttpConfig::default()
    })
    .await;
    let alice = env.user("alice").await;
    let put = |user: Option<&str>, extra: serde_json::Value| {
        let mut app = json!({"appid": "a"});
        if let Some(u) = user {
            app["user"] = json!(u);
        }
        if let (Some(a), Some(e)) = (app.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        let env = &env;
        let alice = alice.clone();
        async move {
            env.call(
                &alice,
                Method::PUT,
                "/app/a",
                Some(json!({ "application": app })),
            )
            .await
        }
    };
    let before = env.snapshot().await;
    for root in ["root", " root", "ROOT", "0", "Root\t", "00"] {
        let (s, v) = put(Some(root), json!({})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{root:?}: {v}");
        let m = error_message(&v);
        assert!(
            m.contains("is root") && m.contains("never run as root") && m.contains("omit -U"),
            "{root:?}: {m}"
        );
    }
    for bad in ["al ice", "Alice", "", "1000", "../etc"] {
        let (s, v) = put(Some(bad), json!({})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}: {v}");
        assert!(error_message(&v).contains(&format!("{bad:?}")), "{v}");
    }
    let (s, v) = put(Some("mallory"), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let m = error_message(&v);
    assert!(
        m.contains("\"mallory\" is not allowed")
            && m.contains("ask the operator")
            && m.contains("omit -U")
            && m.contains("(nobody)"),
        "{m}"
    );
    let (s, v) = put(
        None,
        json!({"container": {"type": "docker", "image": "ubuntu:22.04"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        error_message(&v),
        "containers are not supported yet; load the application without --container"
    );
    let (s, _) = put(
        Some("root"),
        json!({"container": {"type": "docker", "image": "ubuntu:22.04"}}),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "root is no longer allowed with docker"
    );
    assert_eq!(env.snapshot().await, before, "refused loads change nothing");

    // Allowed: a listed user, the default user itself, or none.
    let mut generations = std::collections::BTreeSet::new();
    for user in [Some("batch"), Some("nobody"), None] {
        let (s, v) = put(user, json!({"generation": "chosen-by-the-client"})).await;
        assert_eq!(s, StatusCode::OK, "{user:?}: {v}");
        let app = &v["application"];
        assert_eq!(app["user"].as_str(), user, "{v}");
        let g = app["generation"].as_str().unwrap().to_owned();
        assert!(g.len() >= 32 && g != "chosen-by-the-client", "{v}");
        let (_, got) = env.get(&alice, "/app/a").await;
        assert_eq!(
            got["application"]["generation"],
            g.as_str(),
            "stored: {got}"
        );
        assert!(generations.insert(g), "a fresh generation at every load");
    }
}

/// Every bad input of issue #6: a 4xx JSON error, and the store unchanged.
#[tokio::test]
async fn bad_input_is_a_json_4xx_and_changes_nothing() {
    let env = Env::new(HttpConfig {
        body_limit: 4096,
        max_cpus: 64,
        max_gpus: 0,
        ..HttpConfig::default()
    })
    .await;
    let alice = env.user("alice").await;
    env.load_app(&alice, "app").await;
    let (_, v) = env
        .schedule(&alice, json!({"appid": "app", "cmd": "x"}))
        .await;
    let id = v["job"]["id"].as_u64().unwrap();
    let before = env.snapshot().await;
    let now = auth::now_date();
    let raw = |body: &str| signed(&alice, Method::POST, "/job", body.as_bytes().to_vec(), &now);
    let job = |j: serde_json::Value| raw(&json!({ "job": j }).to_string());
    let skewed = (chrono::Utc::now() - chrono::Duration::seconds(3600))
        .format(retz_proto::api::TIME_FORMAT)
        .to_string();
    let mut bad_sig = alice.clone();
    bad_sig.secret = "wrong".into();
    let mut no_date = job(json!({"appid": "app", "cmd": "x"}));
    no_date.headers_mut().remove("date");

    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            raw(r#"{"job": {"appid": "#),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            "not an object",
            raw("[1,2]"),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            "wrong field type",
            job(json!({"appid": 5, "cmd": "x"})),
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        (
            "wrong nested type",
            job(json!({"appid": "app", "cmd": "x", "priority": "high"})),
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        (
            "unknown top-level field",
            raw(r#"{"job":{"appid":"app","cmd":"x"},"extra":1}"#),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "unknown field inside job",
            raw(r#"{"job":{"appid":"app","cmd":"x","cpus":4}}"#),
            StatusCode::BAD_REQUEST,
            "unknown field `job.cpus`",
        ),
        (
            "unknown field inside resources",
            job(json!({"appid": "app", "cmd": "x", "resources": {"disk": 1}})),
            StatusCode::BAD_REQUEST,
            "unknown field `disk`",
        ),
        (
            "a million ports",
            job(json!({"appid": "app", "cmd": "x", "resources": {"ports": 1_000_000}})),
            StatusCode::BAD_REQUEST,
            "ports 1000000 does not fit system limit 10",
        ),
        (
            "disk 2^63",
            raw(r#"{"job":{"appid":"app","cmd":"x","resources":{"diskMB":9223372036854775808}}}"#),
            StatusCode::BAD_REQUEST,
            "diskMB 9223372036854775808 does not fit",
        ),
        (
            "a GPU on a server without",
            job(json!({"appid": "app", "cmd": "x", "resources": {"gpu": 1}})),
            StatusCode::BAD_REQUEST,
            "gpu 1 does not fit",
        ),
        (
            "maxRetries 2^32-1",
            job(json!({"appid": "app", "cmd": "x", "maxRetries": 4_294_967_295_u64})),
            StatusCode::BAD_REQUEST,
            "maxRetries 4294967295 does not fit system limit 100",
        ),
        (
            "nodes 2^32-1",
            job(json!({"appid": "app", "cmd": "x", "resources": {"nodes": 4_294_967_295_u64}})),
            StatusCode::BAD_REQUEST,
            "nodes 4294967295 does not fit",
        ),
        (
            "cpu 0-",
            job(json!({"appid": "app", "cmd": "x", "resources": {"cpu": "0-"}})),
            StatusCode::BAD_REQUEST,
            "cpu has a zero minimum",
        ),
        (
            "mem 0-64",
            job(json!({"appid": "app", "cmd": "x", "resources": {"memMB": "0-64"}})),
            StatusCode::BAD_REQUEST,
            "memMB has a zero minimum",
        ),
        (
            "gracePeriod 2^32-1",
            signed(
                &alice,
                Method::PUT,
                "/app/app",
                br#"{"application":{"appid":"app","gracePeriod":4294967295}}"#.to_vec(),
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "gracePeriod 4294967295 does not fit system limit 3600",
        ),
        (
            "unknown field inside application",
            signed(
                &alice,
                Method::PUT,
                "/app/app",
                br#"{"application":{"appid":"app","largefiles":[]}}"#.to_vec(),
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "unknown field `application.largefiles`",
        ),
        (
            "offset 2^63",
            signed(
                &alice,
                Method::GET,
                &format!("/job/{id}/file?path=stdout&offset=9223372036854775808"),
                vec![],
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "offset=9223372036854775808 is out of range",
        ),
        (
            "length 2^64-1",
            signed(
                &alice,
                Method::GET,
                &format!("/job/{id}/file?path=stdout&length=18446744073709551615"),
                vec![],
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "length=18446744073709551615 is out of range",
        ),
        (
            "bad Idempotency-Key",
            {
                let mut r = job(json!({"appid": "app", "cmd": "x"}));
                r.headers_mut()
                    .insert("idempotency-key", "k".repeat(200).parse().unwrap());
                r
            },
            StatusCode::BAD_REQUEST,
            "Idempotency-Key must be",
        ),
        (
            "cpu 4-2",
            job(json!({"appid": "app", "cmd": "x", "resources": {"cpu": "4-2"}})),
            StatusCode::BAD_REQUEST,
            "below minimum",
        ),
        (
            "negative mem",
            job(json!({"appid": "app", "cmd": "x", "resources": {"memMB": -5}})),
            StatusCode::BAD_REQUEST,
            "negative",
        ),
        (
            "over the cpu limit",
            job(json!({"appid": "app", "cmd": "x", "resources": {"cpu": 1024}})),
            StatusCode::BAD_REQUEST,
            "does not fit system limit",
        ),
        (
            "priority out of range",
            job(json!({"appid": "app", "cmd": "x", "priority": 20})),
            StatusCode::BAD_REQUEST,
            "priority",
        ),
        (
            "empty command",
            job(json!({"appid": "app", "cmd": " "})),
            StatusCode::BAD_REQUEST,
            "empty cmd",
        ),
        (
            "unknown application",
            job(json!({"appid": "nope", "cmd": "x"})),
            StatusCode::NOT_FOUND,
            "No such application: nope",
        ),
        (
            "over-limit body",
            job(json!({"appid": "app", "cmd": "x".repeat(5000)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit of 4096 bytes",
        ),
        (
            "bad signature",
            signed(
                &bad_sig,
                Method::POST,
                "/job",
                json!({"job": {"appid": "app", "cmd": "x"}})
                    .to_string()
                    .into_bytes(),
                &now,
            ),
            StatusCode::UNAUTHORIZED,
            "Authentication failed",
        ),
        ("missing Date", no_date, StatusCode::UNAUTHORIZED, "Date"),
        (
            "skewed Date",
            signed(
                &alice,
                Method::POST,
                "/job",
                json!({"job": {"appid": "app", "cmd": "x"}})
                    .to_string()
                    .into_bytes(),
                &skewed,
            ),
            StatusCode::UNAUTHORIZED,
            "clock",
        ),
        (
            "unreadable Date",
            signed(
                &alice,
                Method::POST,
                "/job",
                json!({"job": {"appid": "app", "cmd": "x"}})
                    .to_string()
                    .into_bytes(),
                "yesterday",
            ),
            StatusCode::UNAUTHORIZED,
            "Date",
        ),
        (
            "path traversal",
            signed(
                &alice,
                Method::GET,
                &format!("/job/{id}/file?path=../../etc/passwd"),
                vec![],
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "leaves the sandbox",
        ),
        (
            "absolute path",
            signed(
                &alice,
                Method::GET,
                &format!("/job/{id}/download?path=/etc/passwd"),
                vec![],
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "absolute",
        ),
        (
            "traversal in dir",
            signed(
                &alice,
                Method::GET,
                &format!("/job/{id}/dir?path=$MESOS_SANDBOX/../x"),
                vec![],
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "leaves the sandbox",
        ),
        (
            "bad offset",
            signed(
                &alice,
                Method::GET,
                &format!("/job/{id}/file?path=stdout&offset=-1"),
                vec![],
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "offset",
        ),
        (
            "unknown query parameter",
            signed(
                &alice,
                Method::GET,
                &format!("/job/{id}/file?path=stdout&x=1"),
                vec![],
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "unknown parameter",
        ),
        (
            "non-numeric job id",
            signed(&alice, Method::DELETE, "/job/abc", vec![], &now),
            StatusCode::BAD_REQUEST,
            "not a number",
        ),
        (
            "list state unknown",
            signed(
                &alice,
                Method::POST,
                "/jobs",
                br#"{"state":"RUNNING"}"#.to_vec(),
                &now,
            ),
            StatusCode::BAD_REQUEST,
            "unknown variant",
        ),
        (
            "gc without leeway",
            signed(&env.admin, Method::POST, "/admin/gc", b"{}".to_vec(), &now),
            StatusCode::BAD_REQUEST,
            "leeway",
        ),
        (
            "unknown path",
            signed(&alice, Method::GET, "/nope", vec![], &now),
            StatusCode::NOT_FOUND,
            "no such endpoint",
        ),
        (
            "wrong method",
            signed(&alice, Method::PATCH, "/job", vec![], &now),
            StatusCode::METHOD_NOT_ALLOWED,
            "not allowed",
        ),
    ];
    for (what, req, status, needle) in cases {
        let (s, _, body) = env.send(req).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(&body))
        });
        assert_eq!(s, status, "{what}: {v}");
        let msg = error_message(&v);
        assert!(msg.contains(needle), "{what}: {msg:?} lacks {needle:?}");
        assert_eq!(env.snapshot().await, before, "{what} changed the store");
    }
    assert_eq!(
        *env.planner.queued.lock().unwrap(),
        vec![id],
        "planner woken by bad input"
    );
}

#[tokio::test]
async fn plan_is_checked_like_schedule_and_stores_nothing() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let bob = env.user("bob").await;
    env.load_app(&alice, "app").await;
    let plan = |user: &User, job: serde_json::Value| {
        let env = &env;
        let user = user.clone();
        async move {
            env.call(
                &user,
                Method::POST,
                "/job/plan",
                Some(json!({ "job": job })),
            )
            .await
        }
    };
    let before = env.snapshot().await;
    let (s, v) = plan(
        &alice,
        json!({"appid": "app", "cmd": "x", "resources": {"cpu": 4}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["placement"]["agentId"], "a1");
    assert_eq!(v["placement"]["cpuset"], "0-3", "{v}");
    assert_eq!(
        env.planner.planned.lock().unwrap().clone(),
        vec![("app".to_owned(), "x".to_owned())]
    );
    // Nothing stored, nothing queued.
    assert_eq!(env.snapshot().await, before);
    assert!(env.planner.queued.lock().unwrap().is_empty());
    // The same refusals as POST /job, before the planner is asked.
    let (s, v) = plan(&bob, json!({"appid": "app", "cmd": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another user's app: {v}");
    let (s, v) = plan(
        &alice,
        json!({"appid": "app", "cmd": "x", "resources": {"cpu": 1_000_000}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["status"].as_str().unwrap().contains("1000000"),
        "the server's limit: {v}"
    );
    let (s, v) = env
        .call(
            &alice,
            Method::POST,
            "/job/plan",
            Some(json!({"job": {"nope": 1}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(env.planner.planned.lock().unwrap().len(), 1);
    // A planner loop that stopped: 503 with a JSON error.
    env.planner
        .plan_stopped
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (s, v) = plan(&alice, json!({"appid": "app", "cmd": "x"})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["status"].as_str().unwrap().contains("planner"), "{v}");
    assert_eq!(env.snapshot().await, before);
}
