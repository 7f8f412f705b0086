//! The web page (`/`, `/login`, `/logout`, `/ui/job/{id}`), driven in-process (`oneshot`):
//! hostile text is escaped, an anonymous visitor sees no command and no user, sign-in
//! sets a `HttpOnly; SameSite=Strict; Path=/` session cookie and then shows the user's own
//! job's command but not another user's, the operator sees both, a wrong secret gets the
//! form again (401, no cookie), sign-out ends the session, and cross-site POSTs are
//! refused.

mod http_support;
mod store_support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_support::Env;
use retz_proto::api::{Grant, JobState, User};
use retz_scheduler::http::{AgentView, ClusterView, NodeView};
use serde_json::json;
use store_support::grant;

const HOST: &str = "127.0.0.1:8090";
const ORIGIN: &str = "http://127.0.0.1:8090";
const ALICE_CMD: &str = "echo <script>alert('alice')</script> && sleep 60";
const BOB_CMD: &str = "bob-secret-command --token=hunter2";

/// Schedules `cmd` for `user` and stores it STARTED on agent `a1` with `cpuset`.
async fn running(env: &Env, user: &User, app: &str, cmd: &str, cpuset: &str) -> u64 {
    let (s, v) = env.schedule(user, json!({"appid": app, "cmd": cmd})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["job"]["id"].as_u64().unwrap();
    let pinned = Grant {
        cpuset: Some(cpuset.into()),
        numa_nodes: Some("0".into()),
        pinned: true,
        user: Some("nobody".into()),
        ..grant(1, 32)
    };
    let mut job = env.launch(id, "a1", None, pinned).await;
    job.state = JobState::Started;
    assert!(
        env.store
            .update_job(&job, JobState::Starting)
            .await
            .unwrap()
    );
    id
}

struct Setup {
    env: Env,
    alice: User,
    bob: User,
    alice_job: u64,
    bob_job: u64,
    queued_job: u64,
}

async fn setup() -> Setup {
    let env = Env::default().await;
    let alice = env.user("alice-info").await;
    let bob = env.user("bob-info").await;
    env.load_app(&alice, "alice-app").await;
    env.load_app(&bob, "bob-app").await;
    *env.planner.cluster.lock().unwrap() = ClusterView {
        agents: vec![AgentView {
            id: "a1".into(),
            hostname: "host-1".into(),
            numa_aware: true,
            nodes: vec![NodeView {
                id: 0,
                memory_mb: 1024,
                cpus: vec![0, 1, 2, 3],
                caches: Vec::new(),
            }],
        }],
    };
    let alice_job = running(&env, &alice, "alice-app", ALICE_CMD, "1").await;
    let bob_job = running(&env, &bob, "bob-app", BOB_CMD, "2-3").await;
    let (_, v) = env
        .schedule(
            &bob,
            json!({"appid": "bob-app", "cmd": "bob-queued-command"}),
        )
        .await;
    let queued_job = v["job"]["id"].as_u64().unwrap();
    Setup {
        env,
        alice,
        bob,
        alice_job,
        bob_job,
        queued_job,
    }
}

async fn get(env: &Env, path: &str, cookie: Option<&str>) -> (StatusCode, String) {
    let mut b = Request::get(path).header("host", HOST);
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    let (s, h, body) = env.send(b.body(Body::empty()).unwrap()).await;
    if s == StatusCode::OK {
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
    }
    (s, String::from_utf8(body.to_vec()).unwrap())
}

/// POSTs a form; returns status, the Set-Cookie header and the body.
async fn post(
    env: &Env,
    path: &str,
    form: &str,
    origin: Option<&str>,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut b = Request::post(path)
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    let (s, h, body) = env.send(b.body(Body::from(form.to_owned())).unwrap()).await;
    let set = h.get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
    (s, set, String::from_utf8(body.to_vec()).unwrap())
}

/// Signs `user` in; returns the `Cookie` header value to send back.
async fn sign_in(env: &Env, user: &User) -> String {
    let form = format!("key={}&secret={}", user.key_id, user.secret);
    let (s, set, body) = post(env, "/login", &form, Some(ORIGIN), None).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{body}");
    let set = set.expect("a session cookie");
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn anonymous_visitors_see_the_cpu_map_and_aggregates_only() {
    let t = setup().await;
    let (s, page) = get(&t.env, "/", None).await;
    assert_eq!(s, StatusCode::OK);
    // The CPU map: each job on exactly its CPUs, free CPUs without a job.
    let a = t.alice_job;
    let b = t.bob_job;
    assert!(
        page.contains(&format!(
            "data-agent=\"a1\" data-cpu=\"1\" data-job=\"{a}\""
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "data-agent=\"a1\" data-cpu=\"2\" data-job=\"{b}\""
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "data-agent=\"a1\" data-cpu=\"3\" data-job=\"{b}\""
        )),
        "{page}"
    );
    assert!(page.contains("data-agent=\"a1\" data-cpu=\"0\">"), "{page}");
    assert_eq!(
        page.matches(&format!("data-job=\"{a}\"")).count(),
        2,
        "cell + row: {page}"
    );
    // The queue with its position and pending reason.
    let q = t.queued_job;
    assert!(page.contains(&format!("no offer fits job {q}")), "{page}");
    // No command, no user, no application name anywhere.
    for secret in [
        "alert",
        "script>",
        "alice-app",
        "bob-app",
        "bob-secret",
        "hunter2",
        "bob-queued",
        "alice-info",
        "bob-info",
        &t.alice.key_id,
        &t.bob.key_id,
    ] {
        assert!(!page.contains(secret), "{secret:?} in {page}");
    }
    assert!(page.contains("2 users"), "usage summed over users: {page}");
    // The job page is aggregate-only as well.
    let (s, job) = get(&t.env, &format!("/ui/job/{b}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(job.contains("2-3") && !job.contains("bob-secret"), "{job}");
    let (s, _) = get(&t.env, "/ui/job/99999", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_signed_in_user_sees_their_own_commands_escaped_and_no_one_elses() {
    let t = setup().await;
    let form = format!("key={}&secret={}", t.alice.key_id, t.alice.secret);
    let (s, set, _) = post(&t.env, "/login", &form, Some(ORIGIN), None).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let set = set.unwrap();
    let token = set
        .strip_prefix("retz_session=")
        .and_then(|r| r.split(';').next())
        .unwrap();
    assert_eq!(token.len(), 64, "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(
            set.split("; ").any(|a| a.starts_with(attr)),
            "{attr} in {set}"
        );
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = format!("retz_session={token}");

    let (_, page) = get(&t.env, "/", Some(&cookie)).await;
    assert!(
        page.contains(
            "echo &lt;script&gt;alert(&#39;alice&#39;)&lt;/script&gt; &amp;&amp; sleep 60"
        ),
        "{page}"
    );
    assert!(!page.contains("<script"), "{page}");
    assert!(page.contains("alice-info"), "{page}");
    for other in [
        "bob-secret",
        "hunter2",
        "bob-queued",
        "bob-info",
        &t.bob.key_id,
    ] {
        assert!(!page.contains(other), "{other:?} in {page}");
    }
    assert!(page.contains("1 other user"), "{page}");
    let (_, job) = get(&t.env, &format!("/ui/job/{}", t.alice_job), Some(&cookie)).await;
    assert!(job.contains("&lt;script&gt;alert"), "{job}");
    let (_, job) = get(&t.env, &format!("/ui/job/{}", t.bob_job), Some(&cookie)).await;
    assert!(!job.contains("bob-secret"), "{job}");

    // Signed in from an https origin (the server's TLS or a TLS proxy): Secure.
    let req = Request::post("/login")
        .header("host", "retz.example")
        .header("origin", "https://retz.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.clone()))
        .unwrap();
    let (s, h, _) = t.env.send(req).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h["set-cookie"].to_str().unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn the_operator_sees_every_command_and_user() {
    let t = setup().await;
    let cookie = sign_in(&t.env, &t.env.admin).await;
    let (_, page) = get(&t.env, "/", Some(&cookie)).await;
    for seen in [
        "bob-secret-command",
        "bob-queued-command",
        "&lt;script&gt;",
        "alice-info",
        "bob-info",
        "(operator)",
    ] {
        assert!(page.contains(seen), "{seen:?} in {page}");
    }
}

#[tokio::test]
async fn a_wrong_secret_gets_the_form_again_without_a_cookie() {
    let t = setup().await;
    for form in [
        format!("key={}&secret=wrong", t.alice.key_id),
        format!("key={}&secret={}", t.alice.key_id, t.bob.secret),
        format!("key=nosuchkey&secret={}", t.alice.secret),
        "key=&secret=".to_owned(),
        String::new(),
    ] {
        let (s, set, body) = post(&t.env, "/login", &form, Some(ORIGIN), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{form}: {body}");
        assert!(set.is_none(), "{form}: {set:?}");
        assert!(
            body.contains("Wrong access key or secret.") && body.contains("name=\"secret\""),
            "{body}"
        );
    }
    // A disabled user is refused even with the right secret.
    t.env
        .store
        .set_user_enabled(&t.bob.key_id, false)
        .await
        .unwrap();
    let form = format!("key={}&secret={}", t.bob.key_id, t.bob.secret);
    let (s, set, body) = post(&t.env, "/login", &form, Some(ORIGIN), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(set.is_none());
    // A made-up cookie is anonymous.
    let (_, page) = get(
        &t.env,
        "/",
        Some(&format!("retz_session={}", "0".repeat(64))),
    )
    .await;
    assert!(
        page.contains("Sign in") && !page.contains("alert"),
        "{page}"
    );
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let t = setup().await;
    let cookie = sign_in(&t.env, &t.alice).await;
    let (_, page) = get(&t.env, "/", Some(&cookie)).await;
    assert!(page.contains("alert"), "signed in: {page}");
    let (s, set, _) = post(&t.env, "/logout", "", Some(ORIGIN), Some(&cookie)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(set.unwrap().contains("Max-Age=0"));
    // The old cookie no longer works, even if the browser kept it.
    let (_, page) = get(&t.env, "/", Some(&cookie)).await;
    assert!(
        !page.contains("alert") && page.contains("Sign in"),
        "{page}"
    );
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let t = setup().await;
    let cookie = sign_in(&t.env, &t.alice).await;
    let form = format!("key={}&secret={}", t.alice.key_id, t.alice.secret);
    for origin in [Some("http://evil.example"), Some("null"), None] {
        let (s, set, body) = post(&t.env, "/login", &form, origin, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{origin:?}: {body}");
        assert!(set.is_none());
        assert!(body.contains("cross-site request refused"), "{body}");
        let (s, _, _) = post(&t.env, "/logout", "", origin, Some(&cookie)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    // The refused logout did not end the session.
    let (_, page) = get(&t.env, "/", Some(&cookie)).await;
    assert!(page.contains("alert"), "{page}");
    let _ = &t.bob;
}
