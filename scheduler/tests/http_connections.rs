//! The API on a real socket (`serve::serve_with` over the in-process router): the
//! connection cap sheds new connections while open ones keep working, a half-sent body
//! times out with a JSON 408, `/ping` answers while hundreds of idle connections are
//! held, hyper's own answers to malformed framing (414, 431, `Content-Length: -1`) carry
//! the JSON error body, every response echoes `x-request-id`, and idempotent submission
//! (`Idempotency-Key`, or the signed request itself for clients that send no key) through
//! raw replays and through `retz-client`.

mod http_support;

use std::time::Duration;

use http_support::Env;
use retz_proto::api::{ClientConfig, Job, JobState, User, auth};
use retz_scheduler::http::HttpConfig;
use retz_scheduler::serve::{ConnLimits, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Liveness bound of the reads below (never a speed assertion).
const PATIENCE: Duration = Duration::from_secs(30);

struct Live {
    env: Env,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn live(config: HttpConfig, limits: ConnLimits) -> Live {
    let env = Env::new(config).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_with(
        listener,
        env.router.clone(),
        None,
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    Live {
        env,
        addr,
        stop: Some(stop),
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Reads one whole HTTP/1.1 response (head and `content-length` body) from `s`.
async fn read_response(s: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                    return (head, body);
                }
            }
            let n = s.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "closed before a whole response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let (head, body) = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("no response");
    let status = head[9..12].parse().unwrap();
    (status, head, body)
}

async fn ping(s: &mut TcpStream) -> u16 {
    s.write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    read_response(s).await.0
}

fn json_error(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    assert_eq!(v["command"], "error", "{v}");
    v["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn over_the_cap_a_new_connection_is_shed_while_open_ones_work() {
    let srv = live(
        HttpConfig::default(),
        ConnLimits {
            max_connections: 2,
            ..ConnLimits::default()
        },
    )
    .await;
    let mut a = TcpStream::connect(srv.addr).await.unwrap();
    let mut b = TcpStream::connect(srv.addr).await.unwrap();
    assert_eq!(ping(&mut a).await, 200);
    assert_eq!(ping(&mut b).await, 200);

    // The third is answered 503 (JSON) or simply closed; either way, not served.
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    let mut got = Vec::new();
    let end = tokio::time::timeout(PATIENCE, c.read_to_end(&mut got)).await;
    let end = end.expect("a shed connection is closed, not left hanging");
    let text = String::from_utf8_lossy(&got);
    assert!(
        end.is_err() || got.is_empty() || text.starts_with("HTTP/1.1 503"),
        "{text}"
    );
    if text.starts_with("HTTP/1.1 503") {
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert!(json_error(body).contains("max_connections"), "{body}");
    }
    // The open connections still work, and a closed one frees its place.
    assert_eq!(ping(&mut a).await, 200);
    drop(b);
    let mut d = loop {
        let mut d = TcpStream::connect(srv.addr).await.unwrap();
        if d.write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .is_ok()
        {
            let mut first = [0u8; 12];
            if tokio::time::timeout(PATIENCE, d.read_exact(&mut first))
                .await
                .is_ok_and(|r| r.is_ok())
                && &first == b"HTTP/1.1 200"
            {
                break d;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = d.shutdown().await;
}

#[tokio::test]
async fn a_half_sent_body_times_out_with_a_json_408() {
    let srv = live(
        HttpConfig {
            body_read_timeout: Duration::from_secs(1),
            ..HttpConfig::default()
        },
        ConnLimits::default(),
    )
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(
        b"POST /job HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 100000\r\n\r\n{\"job\":",
    )
    .await
    .unwrap();
    let (status, head, body) = read_response(&mut s).await;
    assert_eq!(status, 408, "{head}");
    assert!(json_error(&body).contains("did not arrive"), "{body}");
    assert_eq!(srv.env.snapshot().await.jobs_len(), 0);
}

#[tokio::test]
async fn ping_answers_while_many_idle_connections_are_held() {
    let srv = live(HttpConfig::default(), ConnLimits::default()).await;
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    // Half of them sent half a request head.
    for s in idle.iter_mut().step_by(2) {
        s.write_all(b"GET /ping HTTP/1.1\r\nhost:").await.unwrap();
    }
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    assert_eq!(ping(&mut s).await, 200);
    assert_eq!(idle.len(), 500);
}

#[tokio::test]
async fn malformed_framing_gets_the_json_error_body() {
    let srv = live(HttpConfig::default(), ConnLimits::default()).await;
    let long_uri = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let big_header = format!(
        "GET /ping HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> =
        vec![
        (
            "Content-Length: -1",
            b"POST /job HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n".to_vec(),
            400,
            "malformed HTTP request",
        ),
        (
            "two Content-Lengths",
            b"POST /job HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab"
                .to_vec(),
            400,
            "malformed HTTP request",
        ),
        ("garbage", b"\x01\x02 nonsense\r\n\r\n".to_vec(), 400, "malformed"),
        ("URI over 64 KiB", long_uri.into_bytes(), 414, "URI"),
        ("headers over the buffer", big_header.into_bytes(), 431, "headers"),
        (
            "unknown path",
            b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            404,
            "no such endpoint",
        ),
        (
            "wrong method",
            b"PATCH /ping HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            405,
            "not allowed",
        ),
        (
            "over-limit body",
            format!(
                "POST /job HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                HttpConfig::default().body_limit + 1
            )
            .into_bytes(),
            413,
            "limit",
        ),
    ];
    for (what, bytes, want, needle) in cases {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        if what == "over-limit body" || what == "unknown path" || what == "wrong method" {
            // Kept-alive answers: read one response instead of waiting for the close.
            s.write_all(&bytes).await.unwrap();
            let (status, head, body) = read_response(&mut s).await;
            assert_eq!(status, want, "{what}: {head}");
            assert!(json_error(&body).contains(needle), "{what}: {body}");
            continue;
        }
        let (mut r, mut w) = s.split();
        let write = async {
            // The server may answer and close before reading everything.
            let _ = w.write_all(&bytes).await;
        };
        let mut buf = Vec::new();
        let read = async {
            let _ = tokio::time::timeout(PATIENCE, r.read_to_end(&mut buf)).await;
        };
        tokio::join!(write, read);
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {want}")),
            "{what}: {text}"
        );
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}: {head}"
        );
        assert!(json_error(body).contains(needle), "{what}: {body}");
    }
}

#[tokio::test]
async fn every_response_echoes_a_request_id() {
    let srv = live(HttpConfig::default(), ConnLimits::default()).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\nx-request-id: trace-me-7\r\n\r\n")
        .await
        .unwrap();
    let (_, head, _) = read_response(&mut s).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("x-request-id: trace-me-7"),
        "{head}"
    );
    // Without one, the server makes one (an error included).
    s.write_all(b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut s).await;
    assert_eq!(status, 404);
    let id = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id: ")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no x-request-id: {head}"));
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

/// A signed `POST /job` carrying `key`, as raw bytes (what an attacker would capture).
fn signed_submission(user: &User, key: Option<&str>, body: &str, date: &str) -> Vec<u8> {
    let md5 = auth::content_md5(body.as_bytes());
    let to_sign = auth::string_to_sign_keyed("POST", &md5, date, "/job", key);
    let sig = auth::sign(&user.secret, &to_sign);
    let mut head = format!(
        "POST /job HTTP/1.1\r\nhost: x\r\ndate: {date}\r\nauthorization: {}\r\n\
         content-type: application/json\r\ncontent-md5: {md5}\r\ncontent-length: {}\r\n",
        auth::authorization(&user.key_id, &sig),
        body.len()
    );
    if let Some(k) = key {
        head.push_str(&format!("idempotency-key: {k}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    head.into_bytes()
}

async fn send_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let (status, _, body) = read_response(&mut s).await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn a_replayed_signed_submission_creates_one_job() {
    let srv = live(HttpConfig::default(), ConnLimits::default()).await;
    let alice = srv.env.user("alice").await;
    srv.env.load_app(&alice, "app").await;
    let date = auth::now_date();
    let body = r#"{"job":{"appid":"app","cmd":"echo once"}}"#;
    let captured = signed_submission(&alice, Some("9f1c-once"), body, &date);

    let (s, first) = send_raw(srv.addr, &captured).await;
    assert_eq!(s, 201, "{first}");
    let id = first["job"]["id"].as_u64().unwrap();
    for _ in 0..3 {
        let (s, again) = send_raw(srv.addr, &captured).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["job"]["id"].as_u64(), Some(id), "{again}");
        assert_eq!(again["job"]["cmd"], "echo once");
    }
    // Replayed under another key, or with the key stripped: the signature no longer
    // matches (the key is signed).
    let text = String::from_utf8(captured.clone()).unwrap();
    let other = text.replace("idempotency-key: 9f1c-once", "idempotency-key: 9f1c-twice");
    assert_eq!(send_raw(srv.addr, other.as_bytes()).await.0, 401);
    let stripped = text.replace("idempotency-key: 9f1c-once\r\n", "");
    assert_eq!(send_raw(srv.addr, stripped.as_bytes()).await.0, 401);
    assert_eq!(srv.env.snapshot().await.jobs_len(), 1);
    // The planner was woken once.
    assert_eq!(*srv.env.planner.queued.lock().unwrap(), vec![id]);

    // Keys are per user: bob's submission with the same key is his own job.
    let bob = srv.env.user("bob").await;
    srv.env.load_app(&bob, "bobs").await;
    let body = r#"{"job":{"appid":"bobs","cmd":"echo once"}}"#;
    let (s, v) = send_raw(
        srv.addr,
        &signed_submission(&bob, Some("9f1c-once"), body, &date),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_ne!(v["job"]["id"].as_u64(), Some(id));
}

#[tokio::test]
async fn a_replayed_submission_of_a_client_without_keys_creates_one_job() {
    // The original clients sign no Idempotency-Key: the signed request itself is the
    // submission, so its replays (however the signature is padded) answer its job.
    let srv = live(HttpConfig::default(), ConnLimits::default()).await;
    let alice = srv.env.user("alice").await;
    srv.env.load_app(&alice, "app").await;
    let body = r#"{"job":{"appid":"app","cmd":"echo original"}}"#;
    let date = auth::now_date();
    let captured = signed_submission(&alice, None, body, &date);
    let (s, first) = send_raw(srv.addr, &captured).await;
    assert_eq!(s, 201, "{first}");
    let id = first["job"]["id"].as_u64().unwrap();
    let text = String::from_utf8(captured).unwrap();
    let auth_line = text
        .lines()
        .find(|l| l.starts_with("authorization:"))
        .unwrap();
    let padded = text.replace(auth_line, &format!("{auth_line}="));
    for replay in [text.as_str(), text.as_str(), padded.as_str()] {
        let (s, again) = send_raw(srv.addr, replay.as_bytes()).await;
        assert_eq!(s, 200, "{again}");
        assert_eq!(again["job"]["id"].as_u64(), Some(id), "{again}");
    }
    assert_eq!(srv.env.snapshot().await.jobs_len(), 1);

    // The same job submitted again (another Date) is a new submission.
    let later = (chrono::Utc::now() + chrono::Duration::milliseconds(7)).to_rfc3339();
    let (s, second) = send_raw(srv.addr, &signed_submission(&alice, None, body, &later)).await;
    assert_eq!(s, 201, "{second}");
    assert_ne!(second["job"]["id"].as_u64(), Some(id));
    assert_eq!(srv.env.snapshot().await.jobs_len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sets_a_key_so_its_retries_are_safe() {
    let srv = live(HttpConfig::default(), ConnLimits::default()).await;
    let alice = srv.env.user("alice").await;
    srv.env.load_app(&alice, "app").await;
    let client = retz_client::Client::new(ClientConfig {
        server: format!("http://{}", srv.addr),
        access_key: alice.key_id.clone(),
        secret: alice.secret.clone(),
        authentication: true,
        tls_insecure: false,
        ca_cert: None,
    })
    .unwrap();
    // A retry after a lost answer is the same call with the same key.
    let first = client
        .schedule_with_key(Job::new("app", "echo a"), "retry-1")
        .await
        .unwrap();
    let again = client
        .schedule_with_key(Job::new("app", "echo a"), "retry-1")
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(again.state, JobState::Queued);
    // Concurrent retries with one key meet at the store: one job.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(
                async move { c.schedule_with_key(Job::new("app", "echo b"), "race").await },
            )
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap().id);
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    // Plain schedule: a fresh key each time, so two calls are two jobs.
    let x = client.schedule(Job::new("app", "echo c")).await.unwrap();
    let y = client.schedule(Job::new("app", "echo c")).await.unwrap();
    assert_ne!(x.id, y.id);
    assert_eq!(srv.env.snapshot().await.jobs_len(), 4);
}
