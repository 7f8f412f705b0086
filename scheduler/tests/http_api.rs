//! The HTTP API, driven in-process (`oneshot`) over a SQLite store in a tempdir: the
//! original's WebConsole tests (ping, lists, schedule, kill, status, isolation, disabled
//! users), authentication, admin endpoints, metrics and the status page. The refusals of
//! bad input and `POST /job/plan` are in `http_api_input.rs`.

mod http_support;
mod store_support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_support::{Env, error_message, signed};
use retz_proto::api::JobState;
use retz_proto::api::auth;
use retz_scheduler::http::HttpConfig;
use serde_json::json;
use store_support::grant;

#[tokio::test]
async fn ping_status_and_page_need_no_auth() {
    let env = Env::default().await;
    let req = Request::get("/ping").body(Body::empty()).unwrap();
    let (s, h, body) = env.send(req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&body[..], b"\"OK\"");
    let server = h["server"].to_str().unwrap();
    assert!(server.starts_with("retz-server-"), "{server}");

    let (s, _, body) = env
        .send(Request::get("/status").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["queueLength"], 0);
    assert_eq!(v["numSlaves"], 2);
    assert_eq!(v["master"], "local");

    let (s, h, body) = env
        .send(Request::get("/").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        page.contains("Queued jobs") && !page.contains("<script"),
        "{page}"
    );
}

#[tokio::test]
async fn webconsole_schedule_list_kill_and_status() {
    let env = Env::default().await;
    let alice = env.user("alice").await;

    // Empty lists say more=false.
    let (s, v) = env
        .call(
            &alice,
            Method::POST,
            "/jobs",
            Some(json!({"state": "QUEUED"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"command": "list", "status": "ok", "jobs": [], "more": false})
    );
    let (s, v) = env.get(&alice, "/apps").await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"command": "list-app", "status": "ok", "applicationList": []})
        )
    );

    // Scheduling without the application fails and queues nothing.
    let (s, v) = env
        .schedule(&alice, json!({"appid": "app", "cmd": "ls"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_message(&v), "No such application: app");
    assert_eq!(env.store.counts().await.unwrap().get(JobState::Queued), 0);

    // After load-app, schedule returns the job, queued and committed, and wakes the planner.
    env.load_app(&alice, "app").await;
    let (s, v) = env
        .schedule(
            &alice,
            json!({"appid": "app", "cmd": "ls", "resources": {"cpu": "2-4"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["job"]["id"].as_u64().unwrap();
    assert!(id > 0);
    assert_eq!(v["job"]["state"], "QUEUED");
    assert_eq!(v["job"]["resources"]["cpu"], "2-4");
    assert!(v["job"]["scheduled"].is_string());
    assert_eq!(*env.planner.queued.lock().unwrap(), vec![id]);
    let (owner, stored) = env.store.get_job(id).await.unwrap().unwrap();
    assert_eq!(
        (owner, stored.state),
        (alice.key_id.clone(), JobState::Queued)
    );

    // Status sees it at once.
    let (_, _, body) = env
        .send(Request::get("/status").body(Body::empty()).unwrap())
        .await;
    let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["queueLength"], 1);

    // get-job, with the queue position and the planner's pending reason.
    let (s, v) = env.get(&alice, &format!("/job/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["job"]["id"], id);
    assert_eq!(v["queuePosition"], 0);
    assert_eq!(v["job"]["pending"], format!("no offer fits job {id}"));

    // list-files is [] and get-file has no file before the job runs.
    let (s, v) = env.get(&alice, &format!("/job/{id}/dir?path=")).await;
    assert_eq!((s, &v["entries"]), (StatusCode::OK, &json!([])));
    let (s, v) = env
        .get(&alice, &format!("/job/{id}/file?path=stdout"))
        .await;
    assert_eq!((s, &v["file"]), (StatusCode::OK, &json!(null)));

    // list
    let (_, v) = env
        .call(
            &alice,
            Method::POST,
            "/jobs",
            Some(json!({"state": "QUEUED"})),
        )
        .await;
    assert_eq!(v["jobs"][0]["id"], id);

    // kill of an absent job, then of the queued one, twice.
    let (s, v) = env.call(&alice, Method::DELETE, "/job/0", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_message(&v), "No such job: 0");
    let (s, v) = env
        .call(&alice, Method::DELETE, &format!("/job/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["job"]["state"], "KILLED");
    assert_eq!(v["job"]["reason"], "Canceled by user");
    assert_eq!(
        env.store.get_job(id).await.unwrap().unwrap().1.state,
        JobState::Killed
    );
    let (s, _) = env
        .call(&alice, Method::DELETE, &format!("/job/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, body) = env
        .send(Request::get("/status").body(Body::empty()).unwrap())
        .await;
    let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["queueLength"], 0);
}

#[tokio::test]
async fn killing_a_running_job_asks_the_planner_and_a_finished_one_conflicts() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    env.load_app(&alice, "app").await;
    let (_, v) = env
        .schedule(&alice, json!({"appid": "app", "cmd": "sleep 60"}))
        .await;
    let id = v["job"]["id"].as_u64().unwrap();
    env.launch(id, "a1", None, grant(1, 32)).await;
    let (s, v) = env
        .call(&alice, Method::DELETE, &format!("/job/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["job"]["state"], "STARTING");
    assert_eq!(v["job"]["killRequested"], true);
    assert_eq!(*env.planner.kills.lock().unwrap(), vec![id]);
    let (_, stored) = env.store.get_job(id).await.unwrap().unwrap();
    assert!(stored.kill_requested);

    let mut done = stored.clone();
    done.state = JobState::Finished;
    done.result = 0;
    assert!(
        env.store
            .update_job(&done, JobState::Starting)
            .await
            .unwrap()
    );
    let (s, v) = env
        .call(&alice, Method::DELETE, &format!("/job/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(error_message(&v).contains("already finished"));
}

#[tokio::test]
async fn users_see_and_touch_only_their_own_jobs_and_apps() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let eve = env.user("eve").await;
    env.load_app(&alice, "app").await;
    let (_, v) = env
        .schedule(&alice, json!({"appid": "app", "cmd": "ls"}))
        .await;
    let id = v["job"]["id"].as_u64().unwrap();
    let before = env.snapshot().await;

    let (s, v) = env
        .call(
            &eve,
            Method::POST,
            "/jobs",
            Some(json!({"state": "QUEUED"})),
        )
        .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"command": "list", "status": "ok", "jobs": [], "more": false})
        )
    );
    let (s, v) = env.get(&eve, &format!("/job/{id}")).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"command": "get-job", "status": "ok", "job": null})
        )
    );
    let (s, v) = env
        .call(&eve, Method::DELETE, &format!("/job/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_message(&v), format!("No such job: {id}"));
    for path in [
        format!("/job/{id}/file?path=stdout"),
        format!("/job/{id}/dir?path="),
        format!("/job/{id}/download?path=stdout"),
    ] {
        let (s, v) = env.get(&eve, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let (s, v) = env.get(&eve, "/apps").await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"command": "list-app", "status": "ok", "applicationList": []})
        )
    );
    let (s, _) = env.get(&eve, "/app/app").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = env.call(&eve, Method::DELETE, "/app/app", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = env
        .call(
            &eve,
            Method::PUT,
            "/app/app",
            Some(json!({"application": {"appid": "app"}})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        error_message(&v),
        "The application name is already used by other user"
    );
    let (s, v) = env
        .schedule(&eve, json!({"appid": "app", "cmd": "rm -rf /"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_message(&v), "No such application: app");

    assert_eq!(env.snapshot().await, before, "eve changed nothing");
    assert_eq!(
        env.store.get_job(id).await.unwrap().unwrap().1.state,
        JobState::Queued
    );
}

#[tokio::test]
async fn disabled_users_are_refused_until_enabled_again() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let (s, v) = env
        .call(
            &env.admin,
            Method::POST,
            &format!("/admin/user/{}/disable", alice.key_id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["enabled"], false);
    let (s, v) = env.get(&alice, "/apps").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(error_message(&v), "User disabled");
    env.call(
        &env.admin,
        Method::POST,
        &format!("/admin/user/{}/enable", alice.key_id),
        None,
    )
    .await;
    let (s, _) = env.get(&alice, "/apps").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn authentication_failures() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let now = auth::now_date();

    // Unknown key and wrong secret: the same 401 and the same message (saying what was
    // signed), so the answer does not tell an attacker which keys exist.
    let mut ghost = alice.clone();
    ghost.key_id = "0".repeat(32);
    let (s_ghost, _, b_ghost) = env
        .send(signed(&ghost, Method::GET, "/apps", vec![], &now))
        .await;
    let mut wrong = alice.clone();
    wrong.secret = "not-the-secret".into();
    let (s, _, b) = env
        .send(signed(&wrong, Method::GET, "/apps", vec![], &now))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&b).contains("String to sign"));
    assert_eq!(
        (s_ghost, b_ghost),
        (s, b),
        "unknown key and bad signature differ"
    );

    // The query is part of what is signed.
    let mut req = signed(&alice, Method::GET, "/job/1/dir?path=a", vec![], &now);
    *req.uri_mut() = "/job/1/dir?path=b".parse().unwrap();
    assert_eq!(env.send(req).await.0, StatusCode::UNAUTHORIZED);

    // A body changed after signing fails.
    let mut req = signed(
        &alice,
        Method::POST,
        "/jobs",
        br#"{"state":"QUEUED"}"#.to_vec(),
        &now,
    );
    *req.body_mut() = Body::from(r#"{"state":"KILLED"}"#);
    assert_eq!(env.send(req).await.0, StatusCode::UNAUTHORIZED);

    // No Authorization header, a malformed one.
    let (s, _, b) = env
        .send(Request::get("/apps").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&b).contains("\"command\":\"error\""));
    let req = Request::get("/apps")
        .header("Authorization", "Basic Zm9vOmJhcg==")
        .header("Date", &now)
        .body(Body::empty())
        .unwrap();
    assert_eq!(env.send(req).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_authentication_keys_must_still_exist_and_be_enabled() {
    let env = Env::new(HttpConfig {
        authentication: false,
        ..HttpConfig::default()
    })
    .await;
    let alice = env.user("alice").await;
    let req = |key: &str| {
        Request::get("/apps")
            .header(
                "Authorization",
                auth::authorization(key, auth::NO_AUTH_SIGNATURE),
            )
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(env.send(req(&alice.key_id)).await.0, StatusCode::OK);
    assert_eq!(env.send(req("nobody")).await.0, StatusCode::FORBIDDEN);
    env.store
        .set_user_enabled(&alice.key_id, false)
        .await
        .unwrap();
    assert_eq!(env.send(req(&alice.key_id)).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn admin_endpoints_are_for_admin_keys_only() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    for (method, path) in [
        (Method::GET, "/admin/users".to_owned()),
        (Method::POST, "/admin/users".to_owned()),
        (Method::GET, format!("/admin/user/{}", alice.key_id)),
        (
            Method::POST,
            format!("/admin/user/{}/disable", env.admin.key_id),
        ),
        (
            Method::GET,
            "/admin/usage?start=2020-01-01T00:00:00Z".to_owned(),
        ),
    ] {
        let (s, v) = env.call(&alice, method, &path, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
    }
    let (s, v) = env
        .call(
            &alice,
            Method::POST,
            "/admin/gc",
            Some(json!({"leeway": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    let (s, v) = env
        .call(
            &env.admin,
            Method::POST,
            "/admin/users",
            Some(json!({"info": "carol"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["user"]["keyId"].as_str().unwrap().to_owned();
    assert_eq!(v["user"]["secret"].as_str().unwrap().len(), 32);
    let (s, v) = env.get(&env.admin, "/admin/users").await;
    assert_eq!(s, StatusCode::OK);
    let users = v["users"].as_array().unwrap();
    assert_eq!(users.len(), 3);
    assert!(users.iter().all(|u| u.get("secret").is_none()), "{v}");
    let (s, v) = env.get(&env.admin, &format!("/admin/user/{key}")).await;
    assert_eq!(
        (s, v["user"]["info"].as_str()),
        (StatusCode::OK, Some("carol"))
    );
    let (s, _) = env.get(&env.admin, "/admin/user/nobody").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // usage and gc see the killed job.
    env.load_app(&alice, "app").await;
    let (_, v) = env
        .schedule(&alice, json!({"appid": "app", "cmd": "x"}))
        .await;
    let id = v["job"]["id"].as_u64().unwrap();
    env.call(&alice, Method::DELETE, &format!("/job/{id}"), None)
        .await;
    let (s, v) = env
        .get(&env.admin, "/admin/usage?start=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["jobs"][0]["id"], id);
    let (_, v) = env
        .get(
            &env.admin,
            "/admin/usage?start=2000-01-01T00:00:00Z&end=2000-01-02T00:00:00Z",
        )
        .await;
    assert_eq!(v["jobs"], json!([]));
    let (s, v) = env.get(&env.admin, "/admin/usage?start=yesterday").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = env
        .call(
            &env.admin,
            Method::POST,
            "/admin/gc",
            Some(json!({"leeway": 3600})),
        )
        .await;
    assert_eq!((s, v), (StatusCode::OK, json!({"deleted": 0})));
}

#[tokio::test]
async fn metrics_are_openmetrics_or_prometheus_text_on_request() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    env.load_app(&alice, "app").await;
    env.schedule(&alice, json!({"appid": "app", "cmd": "x"}))
        .await;
    let (s, h, body) = env
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    for line in [
        "retz_queue_length 1\n",
        "retz_running_jobs 0\n",
        "retz_jobs{state=\"QUEUED\"} 1\n",
        "retz_stored_job_retries 0\n",
        "retz_offers_held 3\n",
        "retz_agents 2\n",
        "retz_job_retries_total 0\n",
        "# TYPE retz_job_retries counter\n",
        "retz_placement_cycle_seconds_count 0\n",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Prometheus text format for clients that ask for it (promtool).
    let (s, h, body) = env
        .send(
            Request::get("/metrics")
                .header("accept", "text/plain")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains("# TYPE retz_job_retries_total counter\nretz_job_retries_total 0\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
}

/// Whether `promtool` (Debian's `prometheus` package) is on the PATH.
fn has_promtool() -> bool {
    std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn metrics_pass_promtool_check_metrics() {
    if !retz_testkit::require(
        has_promtool(),
        "promtool not found (install Debian's prometheus package: scripts/setup-debian.sh --test)",
    ) {
        return;
    }
    let env = Env::default().await;
    let alice = env.user("alice").await;
    env.load_app(&alice, "app").await;
    for cmd in ["a", "b"] {
        let (s, v) = env
            .schedule(&alice, json!({"appid": "app", "cmd": cmd}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // Some of every kind of series: counters, the histogram, labelled families.
    let m = &env.planner.metrics;
    m.tasks_launched.inc();
    m.observe_cycle(std::time::Duration::from_micros(300));
    m.count_pinning(
        retz_proto::task::Verification::Verified,
        retz_proto::task::PinMechanism::CgroupV1,
    );
    let (s, _, body) = env
        .send(
            Request::get("/metrics")
                .header("accept", "text/plain")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("retz_tasks_pinning_verified_total{mechanism=\"cgroup-v1\"} 1\n"));
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {said}\n{text}");
    assert!(
        said.trim().is_empty(),
        "promtool lint warnings: {said}\n{text}"
    );
}
