//! The original Retz's wire envelope (reference §2), driven in-process (`oneshot`): an
//! original 0.4 client's requests carry `"command"` and `"version"` and are accepted;
//! answers of the original's endpoints carry `"command"` and `"status":"ok"`; errors are
//! `{"command":"error","status":MSG}`; `/status` has `totalUsed`/`totalOffered` as
//! resource objects, with this server's CPU numbers beside them.

mod http_support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_support::Env;
use serde_json::json;

#[tokio::test]
async fn requests_in_the_original_envelope_are_accepted_and_answers_carry_it() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    // load-app as the 0.4 client sends it.
    let (s, v) = env
        .call(
            &alice,
            Method::PUT,
            "/app/orig",
            Some(json!({"command": "load-app", "version": "0.2.1",
                        "application": {"appid": "orig"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["command"], &v["status"]),
        (&json!("load-app"), &json!("ok")),
        "{v}"
    );
    assert_eq!(v["application"]["appid"], "orig");

    let (s, v) = env
        .call(
            &alice,
            Method::POST,
            "/job",
            Some(json!({"command": "schedule", "version": "0.2.1",
                        "job": {"appid": "orig", "cmd": "echo hi"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (&v["command"], &v["status"]),
        (&json!("schedule"), &json!("ok")),
        "{v}"
    );
    let id = v["job"]["id"].as_u64().unwrap();

    let (s, v) = env
        .call(
            &alice,
            Method::POST,
            "/jobs",
            Some(json!({"command": "list", "version": "0.2.1", "state": "QUEUED", "tag": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["command"], &v["status"]),
        (&json!("list"), &json!("ok")),
        "{v}"
    );
    assert_eq!(v["jobs"][0]["id"], id);

    let (s, v) = env.get(&alice, &format!("/job/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (&v["command"], &v["status"]),
        (&json!("get-job"), &json!("ok")),
        "{v}"
    );
    let (s, v) = env.get(&alice, "/apps").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["command"], "list-app", "{v}");
    let (s, v) = env
        .call(&alice, Method::DELETE, &format!("/job/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (&v["command"], &v["status"]),
        (&json!("kill"), &json!("ok")),
        "{v}"
    );

    // Errors keep the original's form; a non-string envelope field is a 400 naming it.
    let (s, v) = env.get(&alice, "/app/none").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["command"], "error", "{v}");
    let (s, v) = env
        .call(
            &alice,
            Method::POST,
            "/jobs",
            Some(json!({"command": "list", "version": 2, "state": "QUEUED"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["status"]
            .as_str()
            .unwrap()
            .contains("version must be a string"),
        "{v}"
    );
    // Other unknown fields are still refused.
    let (s, _) = env
        .call(
            &alice,
            Method::POST,
            "/jobs",
            Some(json!({"command": "list", "state": "QUEUED", "colour": "red"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Endpoints the original did not have are answered as before.
    let (s, v) = env.get(&env.admin, "/admin/users").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.get("command").is_none(), "{v}");
}

#[tokio::test]
async fn status_has_the_originals_field_types() {
    let env = Env::default().await;
    let (s, _, body) = env
        .send(Request::get("/status").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (&v["command"], &v["status"]),
        (&json!("status"), &json!("ok")),
        "{v}"
    );
    for field in ["totalUsed", "totalOffered"] {
        let q = &v[field];
        for k in ["cpu", "memMB", "gpu", "ports", "diskMB", "nodes"] {
            assert!(q[k].is_u64(), "{field}.{k}: {v}");
        }
    }
    // The fake planner knows two agents and what they have free.
    assert_eq!(
        v["totalOffered"],
        json!({"cpu": 12, "memMB": 4096, "gpu": 1, "ports": 1001, "diskMB": 20480, "nodes": 2}),
        "{v}"
    );
    assert!(
        v["totalUsedCpus"].is_number() && v["totalOfferedCpus"].is_number(),
        "{v}"
    );
    for field in [
        "queueLength",
        "runningLength",
        "numSlaves",
        "offers",
        "stanchionQueueLength",
    ] {
        assert!(v[field].is_u64(), "{field}: {v}");
    }
    assert!(
        v["master"].is_string() && v["serverVersion"].is_string(),
        "{v}"
    );
    // This server's own client reads it back.
    let back: retz_proto::api::StatusResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(back.offered.nodes, 2);
}
