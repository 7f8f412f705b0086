//! `GET /admin/history`, driven in-process (`oneshot`) over a SQLite store in a tempdir:
//! operator only, JSON lines in the contract's format (one per job that started and
//! ended), the `since` and `app` filters, and 400s with a JSON body for bad queries.

mod http_support;
mod store_support;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use http_support::{Env, error_message, signed};
use retz_placement::PlacementFeatures;
use retz_proto::api::{Grant, Job, JobState, Sandbox, auth};
use serde_json::{Value, json};
use store_support::{grant, store_ended};

/// The contract's field names, in order.
const FIELDS: [&str; 16] = [
    "job",
    "app",
    "user",
    "state",
    "cpus",
    "mem_mb",
    "gpus",
    "agent",
    "granted_cpus",
    "nodes_spanned",
    "l3_spanned",
    "smt_shared",
    "remote_mem_share",
    "co_runners",
    "runtime_s",
    "finished",
];

/// Stores a job of `owner` that ran `[start, end]` on agent-7 (never started when `start`
/// is `None`) and ended in `state`, pinned with features when `features` is given.
async fn ended(
    env: &Env,
    owner: &str,
    app: &str,
    start: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
    state: JobState,
    features: Option<PlacementFeatures>,
) -> u64 {
    let granted = Grant {
        cpuset: features.map(|_| "0-7".into()),
        numa_nodes: features.map(|_| "0".into()),
        pinned: features.is_some(),
        user: Some("nobody".into()),
        features,
        ..grant(8, 4096)
    };
    store_ended(&env.store, owner, app, start, end, state, granted, |job| {
        job.slave_id = Some("agent-7".into());
        job.sandbox = Some(Sandbox {
            agent: "http://host1:5051".into(),
            directory: None,
        });
    })
    .await
}

/// GET `path` as `user`: status, content type and body text.
async fn get(env: &Env, user: &retz_proto::api::User, path: &str) -> (StatusCode, String, String) {
    let req = signed(user, Method::GET, path, Vec::new(), &auth::now_date());
    let (s, h, body) = env.send(req).await;
    let ct = h
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (s, ct, String::from_utf8(body.to_vec()).unwrap())
}

fn lines(body: &str) -> Vec<Value> {
    assert!(body.is_empty() || body.ends_with('\n'), "{body:?}");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn the_history_is_json_lines_of_started_and_ended_jobs_for_the_operator_only() {
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let t0 = Utc::now() - Duration::hours(2);
    let m = |min: i64| t0 + Duration::minutes(min);
    let f = PlacementFeatures {
        nodes_spanned: 1,
        l3_spanned: 2,
        smt_shared: false,
        remote_mem_share: 0.0,
        co_runners: 3,
    };
    let key = alice.key_id.as_str();
    let pinned = ended(
        &env,
        key,
        "etl",
        Some(m(0)),
        m(2),
        JobState::Finished,
        Some(f),
    )
    .await;
    let unpinned = ended(&env, key, "web", Some(m(1)), m(40), JobState::Killed, None).await;
    ended(&env, key, "etl", None, m(3), JobState::Killed, None).await;
    env.store
        .insert_job(key, Job::new("etl", "true"))
        .await
        .unwrap();

    let (s, ct, body) = get(&env, &env.admin, "/admin/history").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(ct, "application/x-ndjson");
    let got = lines(&body);
    assert_eq!(
        got.len(),
        2,
        "one line per job that started and ended: {body}"
    );
    // Every contract field, in the contract's order.
    let first = body.lines().next().unwrap();
    let mut from = 0;
    for name in FIELDS {
        let at = first[from..]
            .find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("{name} missing or out of order: {first}"));
        from += at;
    }
    assert_eq!(got[0].as_object().unwrap().len(), FIELDS.len(), "{first}");
    assert_eq!(
        got[0],
        json!({
            "job": pinned, "app": "etl", "user": key, "state": "FINISHED",
            "cpus": 8, "mem_mb": 4096, "gpus": 0, "agent": "host1",
            "granted_cpus": "0-7", "nodes_spanned": 1, "l3_spanned": 2,
            "smt_shared": false, "remote_mem_share": 0.0, "co_runners": 3,
            "runtime_s": 120.0,
            "finished": DateTime::from_timestamp_millis(m(2).timestamp_millis())
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        })
    );
    assert!(got[0]["finished"].as_str().unwrap().ends_with('Z'));
    // Unpinned: no CPU ids, the four features null (present, not missing).
    assert_eq!(got[1]["job"], unpinned);
    assert_eq!(got[1]["state"], "KILLED");
    assert_eq!(got[1]["runtime_s"], 39.0 * 60.0);
    for k in [
        "granted_cpus",
        "nodes_spanned",
        "l3_spanned",
        "smt_shared",
        "remote_mem_share",
        "co_runners",
    ] {
        assert_eq!(got[1].get(k), Some(&Value::Null), "{k}");
    }

    // Filters: since (a time or a date), app, both.
    let since = m(30).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (s, _, body) = get(&env, &env.admin, &format!("/admin/history?since={since}")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(lines(&body).len(), 1);
    assert_eq!(lines(&body)[0]["job"], unpinned);
    let (_, _, body) = get(&env, &env.admin, "/admin/history?app=etl&since=2000-01-01").await;
    assert_eq!(lines(&body).len(), 1);
    assert_eq!(lines(&body)[0]["job"], pinned);
    let (_, _, body) = get(&env, &env.admin, "/admin/history?since=9999-01-01").await;
    assert_eq!(body, "", "nothing ended in the future");
    let (s, _, body) = get(&env, &env.admin, "/admin/history?app=nope").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, ""));

    // A plain user is refused, as on every /admin route.
    let (s, v) = env.get(&alice, "/admin/history").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    error_message(&v);
}

#[tokio::test]
async fn bad_history_queries_are_400s_with_a_json_body() {
    let env = Env::default().await;
    for (path, says) in [
        (
            "/admin/history?since=yesterday",
            "since=\"yesterday\" is not a time",
        ),
        ("/admin/history?since=2026-13-01", "is not a time"),
        ("/admin/history?app=", "app= is empty"),
        (
            "/admin/history?until=2026-01-01",
            "unknown parameter \"until\"",
        ),
    ] {
        let (s, v) = env.get(&env.admin, path).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        let msg = error_message(&v);
        assert!(msg.contains(says), "{path}: {msg}");
    }
}

#[tokio::test]
async fn the_history_streams_past_one_store_page() {
    let env = Env::default().await;
    let t = Utc::now() - Duration::minutes(5);
    // More jobs than one store read takes (500), so the answer spans pages.
    let n: u64 = 520;
    let mut ids = Vec::new();
    for i in 0..n {
        let end = t + Duration::milliseconds(i as i64 % 7);
        ids.push(ended(&env, "k", "a", Some(t), end, JobState::Finished, None).await);
    }
    let (s, _, body) = get(&env, &env.admin, "/admin/history").await;
    assert_eq!(s, StatusCode::OK);
    let got: Vec<u64> = lines(&body)
        .iter()
        .map(|l| l["job"].as_u64().unwrap())
        .collect();
    let mut want = ids.clone();
    want.sort_by_key(|id| ((id - ids[0]) % 7, *id));
    assert_eq!(got, want, "every job once, by end time then id");
}
