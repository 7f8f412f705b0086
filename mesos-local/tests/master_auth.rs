//! Framework authentication on a LocalCluster with credentials (a real agent running
//! command tasks): without valid HTTP Basic nothing happens (401, no framework, no task);
//! a framework belongs to the principal that subscribed it (403 for any other principal,
//! whatever the call); read-only endpoints need credentials, `/health`, `/version` and
//! `/redirect` do not.

mod master_support;

use std::time::Duration;

use hyper::{Method, StatusCode};
use master_support::*;
use retz_mesos_local::cluster::{AgentSpec, ClusterConfig, LocalCluster};
use retz_mesos_local::master::MasterConfig;
use retz_proto::ContentType;
use retz_proto::credentials::Credential;
use retz_proto::mesos::{CommandInfo, FrameworkId, Offer, TaskId, TaskInfo, TaskState};
use retz_proto::scheduler::{Call, call};
use retz_topology::TopologySource;

async fn cluster(dir: &std::path::Path) -> LocalCluster {
    let mut config = ClusterConfig::new(dir);
    config.master = MasterConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        allocation_interval: Duration::from_millis(50),
        ..MasterConfig::default()
    };
    config.credentials = Some(credentials(&["alice", "bob"]));
    config.agents = vec![AgentSpec {
        disk_mb: Some(1024),
        ..AgentSpec::new(TopologySource::Synthetic("pack:1 core:4 pu:1".into()))
    }];
    LocalCluster::start(config).await.expect("cluster starts")
}

fn sleeper(id: &str, offer: &Offer) -> TaskInfo {
    let mut t = command_task(
        id,
        &offer.agent_id,
        vec![scalar("cpus", 1.0), scalar("mem", 32.0)],
    );
    t.command = Some(CommandInfo {
        value: Some("exec sleep 1000".into()),
        ..Default::default()
    });
    t
}

fn assert_401(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text());
    assert_eq!(
        r.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Basic realm=\"mesos\""),
        "{what}"
    );
    assert_eq!(r.text().lines().count(), 1, "{what}: {}", r.text());
}

/// Tasks and frameworks the master knows, read with alice's credentials.
async fn state(addr: std::net::SocketAddr) -> serde_json::Value {
    Http::with_credential(addr, &credential("alice"))
        .get_json("/state")
        .await
}

fn all_tasks(state: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["frameworks", "completed_frameworks"] {
        for fw in state[key].as_array().unwrap() {
            for list in ["tasks", "completed_tasks"] {
                for t in fw[list].as_array().unwrap() {
                    out.push(t["id"].as_str().unwrap().to_string());
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn without_valid_credentials_nothing_happens() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path()).await;
    let addr = c.master_addr();
    let info = with_principal(framework("intruder"), "alice");
    let sub = subscribe_call(info.clone());
    let body = ContentType::Json.encode(&sub);
    let wrong_secret = Credential::new("alice", "guess").unwrap();
    let unknown = Credential::new("mallory", "alice-secret").unwrap();
    for (what, auth) in [
        ("no Authorization", None),
        ("wrong secret", Some(wrong_secret.basic_header())),
        ("unknown principal", Some(unknown.basic_header())),
        ("not Basic", Some("Bearer alice-secret".to_string())),
        ("garbage", Some("Basic %%%".to_string())),
    ] {
        let mut headers = vec![
            ("Content-Type", ContentType::JSON_MIME),
            ("Accept", ContentType::JSON_MIME),
        ];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        for path in ["/api/v1/scheduler", "/master/api/v1/scheduler"] {
            let r = Http::new(addr)
                .request(Method::POST, path, &headers, body.clone())
                .await;
            assert_401(&r, what);
        }
    }
    let st = state(addr).await;
    assert_eq!(st["frameworks"], serde_json::json!([]), "{st:#}");
    assert_eq!(st["completed_frameworks"], serde_json::json!([]));

    // A legitimate framework gets an offer; an ACCEPT of it without credentials (the
    // intruder knows the framework and stream ids) launches nothing and the offer stays.
    let alice = Http::with_credential(addr, &credential("alice"));
    let mut s = alice.subscribe(ContentType::Json, info.clone()).await;
    assert_eq!(s.status, StatusCode::OK);
    let fid = subscribed_id(&s.next().await.unwrap());
    let offer = s.offers().await.remove(0);
    let accept = accept_call(&fid, &[&offer.id], vec![sleeper("stolen", &offer)], None);
    let r = Http::new(addr)
        .call(ContentType::Json, &s.stream_id, &accept)
        .await;
    assert_401(&r, "ACCEPT without credentials");
    let r = Http::with_credential(addr, &wrong_secret)
        .call(ContentType::Json, &s.stream_id, &accept)
        .await;
    assert_401(&r, "ACCEPT with a wrong secret");
    let r = Http::new(addr)
        .call(
            ContentType::Json,
            &s.stream_id,
            &call_of(&fid, call::Type::Teardown),
        )
        .await;
    assert_401(&r, "TEARDOWN without credentials");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(all_tasks(&state(addr).await).is_empty());
    assert!(
        c.agents()[0].active_tasks().is_empty(),
        "a task reached the agent"
    );
    // The offer was untouched: alice can still use it.
    let mine = accept_call(&fid, &[&offer.id], vec![sleeper("mine", &offer)], None);
    let r = alice.call(ContentType::Json, &s.stream_id, &mine).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let u = s.update().await;
    assert_eq!(
        (u.task_id.value.as_str(), u.state()),
        ("mine", TaskState::TaskRunning)
    );
    assert_eq!(all_tasks(&state(addr).await), vec!["mine"]);
    c.shutdown().await;
}

#[tokio::test]
async fn frameworks_belong_to_their_principal() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path()).await;
    let addr = c.master_addr();
    let alice = Http::with_credential(addr, &credential("alice"));
    let bob = Http::with_credential(addr, &credential("bob"));

    // FrameworkInfo.principal must be the authenticated principal (absent is not).
    for (what, claimed) in [("another principal", Some("alice")), ("none", None)] {
        let mut info = framework("bob's");
        info.principal = claimed.map(str::to_owned);
        let s = bob.subscribe(ContentType::Json, info).await;
        assert_eq!(s.status, StatusCode::FORBIDDEN, "{what}");
    }
    let r = bob
        .request(
            Method::POST,
            "/api/v1/scheduler",
            &[("Content-Type", ContentType::JSON_MIME)],
            ContentType::Json.encode(&subscribe_call(with_principal(framework("x"), "alice"))),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.text()
            .contains("Authenticated principal 'bob' does not match principal 'alice'"),
        "{}",
        r.text()
    );
    assert_eq!(state(addr).await["frameworks"], serde_json::json!([]));

    // Alice runs a task.
    let mut s = alice
        .subscribe(
            ContentType::Json,
            with_principal(framework("alice's"), "alice"),
        )
        .await;
    let fid = subscribed_id(&s.next().await.unwrap());
    let offers = s.offers().await;
    let offer = &offers[0];
    let r = alice
        .call(
            ContentType::Json,
            &s.stream_id,
            &accept_call(&fid, &[&offer.id], vec![sleeper("a1", offer)], Some(0.0)),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let running = s.update().await;
    assert_eq!(running.state(), TaskState::TaskRunning);
    let r = alice
        .call(ContentType::Json, &s.stream_id, &ack_call(&fid, &running))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);

    // Bob, authenticated, knowing alice's framework and stream ids, can do nothing to it.
    let mut kill = call_of(&fid, call::Type::Kill);
    kill.kill = Some(call::Kill {
        task_id: TaskId { value: "a1".into() },
        ..Default::default()
    });
    let next_offers = s.offers().await;
    let mut calls: Vec<(&str, Call)> = vec![
        ("KILL", kill),
        (
            "ACCEPT",
            accept_call(
                &fid,
                &[&next_offers[0].id],
                vec![sleeper("b1", &next_offers[0])],
                None,
            ),
        ),
        ("TEARDOWN", call_of(&fid, call::Type::Teardown)),
        ("REVIVE", call_of(&fid, call::Type::Revive)),
    ];
    let mut ack = ack_call(&fid, &running);
    ack.r#type = Some(call::Type::Acknowledge as i32);
    calls.push(("ACKNOWLEDGE", ack));
    for (what, c) in &calls {
        let r = bob.call(ContentType::Json, &s.stream_id, c).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text());
        assert!(
            r.text().contains(&format!(
                "Authenticated principal 'bob' does not match principal 'alice' of framework {}",
                fid.value
            )),
            "{what}: {}",
            r.text()
        );
    }
    // Nor take it over by re-subscribing with its id.
    let mut hijack = with_principal(framework("alice's"), "bob");
    hijack.id = Some(FrameworkId {
        value: fid.value.clone(),
    });
    let h = bob.subscribe(ContentType::Json, hijack).await;
    assert_eq!(h.status, StatusCode::FORBIDDEN);

    // Alice's framework and task are untouched, and she still owns the offer bob tried.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = state(addr).await;
    let fws = st["frameworks"].as_array().unwrap();
    assert_eq!(fws.len(), 1, "{st:#}");
    assert_eq!(fws[0]["id"], fid.value.as_str());
    assert_eq!(fws[0]["principal"], "alice");
    assert_eq!(fws[0]["tasks"][0]["id"], "a1");
    assert_eq!(fws[0]["tasks"][0]["state"], "TASK_RUNNING");
    assert_eq!(all_tasks(&st), vec!["a1"]);
    let r = alice
        .call(
            ContentType::Json,
            &s.stream_id,
            &accept_call(
                &fid,
                &[&next_offers[0].id],
                vec![sleeper("a2", &next_offers[0])],
                None,
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    // Alice may kill her own task.
    let mut kill = call_of(&fid, call::Type::Kill);
    kill.kill = Some(call::Kill {
        task_id: TaskId { value: "a1".into() },
        ..Default::default()
    });
    let r = alice.call(ContentType::Json, &s.stream_id, &kill).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    c.shutdown().await;
}

#[tokio::test]
async fn read_only_endpoints_need_credentials_health_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path()).await;
    let addr = c.master_addr();
    let anonymous = Http::new(addr);
    let wrong = Http::with_credential(addr, &Credential::new("alice", "nope").unwrap());
    let alice = Http::with_credential(addr, &credential("alice"));
    for path in [
        "/state",
        "/state.json",
        "/master/state",
        "/master/state.json",
        "/state-summary",
        "/master/state-summary",
        "/metrics/snapshot",
        "/master/metrics/snapshot",
    ] {
        assert_401(
            &anonymous.request(Method::GET, path, &[], vec![]).await,
            path,
        );
        assert_401(&wrong.request(Method::GET, path, &[], vec![]).await, path);
        let r = alice.request(Method::GET, path, &[], vec![]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    }
    for path in ["/health", "/master/health", "/version"] {
        let r = anonymous.request(Method::GET, path, &[], vec![]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    for path in ["/redirect", "/master/redirect"] {
        let r = anonymous.request(Method::GET, path, &[], vec![]).await;
        assert_eq!(r.status, StatusCode::TEMPORARY_REDIRECT, "{path}");
    }
    let flags = &alice.get_json("/state").await["flags"];
    assert_eq!(flags["authenticate_http_frameworks"], "true");
    assert_eq!(flags["authenticate_http_readonly"], "true");
    // The agent's /state and /files need them too.
    let agent = Http::new(c.agents()[0].endpoint());
    let r = agent.request(Method::GET, "/state", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = agent
        .request(Method::GET, "/files/browse?path=/frameworks", &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = Http::with_credential(c.agents()[0].endpoint(), &credential("bob"))
        .request(Method::GET, "/state", &[], vec![])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    c.shutdown().await;
}
