//! `/job/{id}/file|download|dir` against a fake Mesos agent (axum on 127.0.0.1:0) that
//! serves `/files/read` (raw bytes in the JSON string, as Mesos writes them),
//! `/files/browse` and `/files/download` from memory and records every path it is asked
//! for.

mod http_support;
mod store_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt as _;
use http_support::{Env, error_message, signed};
use retz_proto::api::auth;
use retz_proto::api::{ChunkEncoding, FileChunk, Sandbox, User};
use retz_proto::credentials::{Credential, Credentials};
use retz_scheduler::http::HttpConfig;
use serde_json::json;
use store_support::grant;
use tower::ServiceExt as _;

const SANDBOX: &str = "/var/lib/mesos/slaves/S0/sandbox";

#[derive(Clone, Default)]
struct Agent {
    files: Arc<BTreeMap<String, Vec<u8>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn file(&self, q: &BTreeMap<String, String>) -> Option<(String, Vec<u8>)> {
        let path = q.get("path")?.clone();
        self.asked.lock().unwrap().push(path.clone());
        self.files.get(&path).map(|d| (path, d.clone()))
    }
}

async fn read(State(a): State<Agent>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let Some((_, data)) = a.file(&q) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let length: usize = q
        .get("length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let Some(offset) = q.get("offset").and_then(|o| o.parse::<usize>().ok()) else {
        // no offset: the size, as Mesos answers
        return mesos_read(data.len(), &[]);
    };
    let start = offset.min(data.len());
    let end = start.saturating_add(length.min(65536)).min(data.len());
    mesos_read(offset, &data[start..end])
}

/// A `/files/read` answer written as a Mesos agent writes it: the bytes go into the
/// JSON string as they are; `"`, `\`, `/` and control characters are escaped.
fn mesos_read(offset: usize, data: &[u8]) -> Response {
    let mut body = b"{\"data\":\"".to_vec();
    for &b in data {
        match b {
            b'"' => body.extend_from_slice(b"\\\""),
            b'\\' => body.extend_from_slice(b"\\\\"),
            b'/' => body.extend_from_slice(b"\\/"),
            b'\n' => body.extend_from_slice(b"\\n"),
            0x00..=0x1f | 0x7f => body.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => body.push(b),
        }
    }
    body.extend_from_slice(format!("\",\"offset\":{offset}}}").as_bytes());
    ([("content-type", "application/json")], body).into_response()
}

async fn browse(State(a): State<Agent>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let path = q.get("path").cloned().unwrap_or_default();
    a.asked.lock().unwrap().push(path.clone());
    let prefix = format!("{}/", path.trim_end_matches('/'));
    let entries: Vec<_> = a
        .files
        .iter()
        .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
        .map(|(p, d)| {
            json!({"path": p, "size": d.len(), "mode": "-rw-r--r--", "nlink": 1,
                   "uid": "retz", "gid": "retz", "mtime": 1_700_000_000.0})
        })
        .collect();
    if entries.is_empty() && !a.files.keys().any(|p| p.starts_with(&prefix)) {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(entries).into_response()
}

/// Files named `*.chunked` are sent without a length; `*.short` announce 100 bytes more
/// than they send.
async fn download(State(a): State<Agent>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let Some((path, data)) = a.file(&q) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if path.ends_with(".chunked") || path.ends_with(".short") {
        // A pause before each piece, so that what came before is on the wire.
        let pieces: Vec<Vec<u8>> = data.chunks(100).map(<[u8]>::to_vec).collect();
        let stream = futures_util::stream::unfold(pieces.into_iter(), |mut rest| async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let piece = rest.next()?;
            Some((Ok::<_, std::io::Error>(piece), rest))
        });
        let mut r = Response::new(axum::body::Body::from_stream(stream));
        if path.ends_with(".short") {
            r.headers_mut()
                .insert("content-length", (data.len() + 100).into());
        }
        return r;
    }
    data.into_response()
}

/// Starts the fake agent; returns its base url.
async fn start_agent(agent: Agent) -> String {
    let app = Router::new()
        .route("/files/read", get(read))
        .route("/files/browse", get(browse))
        .route("/files/download", get(download))
        .with_state(agent);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A job of `user`, launched with a sandbox on the agent at `base`.
async fn running_job(env: &Env, user: &User, base: &str) -> u64 {
    env.load_app(user, "app").await;
    let (_, v) = env
        .schedule(user, json!({"appid": "app", "cmd": "x"}))
        .await;
    let id = v["job"]["id"].as_u64().unwrap();
    let sandbox = Sandbox {
        agent: base.to_owned(),
        directory: Some(SANDBOX.into()),
    };
    env.launch(id, "S0", Some(sandbox), grant(1, 32)).await;
    id
}

fn agent_with_files() -> Agent {
    let mut files = BTreeMap::new();
    files.insert(format!("{SANDBOX}/stdout"), b"hello world\n".to_vec());
    files.insert(format!("{SANDBOX}/d/e"), b"PPAP\n".to_vec());
    files.insert(
        format!("{SANDBOX}/dead + poet + society.txt"),
        b"123456789".to_vec(),
    );
    files.insert(format!("{SANDBOX}/big.bin"), vec![0xAB; 4096]);
    files.insert(format!("{SANDBOX}/bin"), (0..=255u8).collect());
    Agent {
        files: Arc::new(files),
        asked: Arc::default(),
    }
}

#[tokio::test]
async fn files_are_read_listed_and_downloaded_from_the_sandbox() {
    let agent = agent_with_files();
    let base = start_agent(agent.clone()).await;
    let env = Env::new(HttpConfig {
        max_file_size: 1000,
        ..HttpConfig::default()
    })
    .await;
    let alice = env.user("alice").await;
    let id = running_job(&env, &alice, &base).await;

    let (s, v) = env
        .get(&alice, &format!("/job/{id}/file?path=stdout"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["file"], json!({"data": "hello world\n", "offset": 0}));
    assert_eq!(v["job"]["id"], id);
    // The stored location, and the browse URL made from it as the answer leaves.
    assert_eq!(
        v["job"]["sandbox"],
        json!({"agent": base, "directory": SANDBOX})
    );
    assert_eq!(
        v["job"]["url"],
        format!("{base}/files/browse?path={SANDBOX}")
    );
    let (_, got) = env.get(&alice, &format!("/job/{id}")).await;
    assert_eq!(got["job"]["url"], v["job"]["url"]);
    let (_, v) = env
        .get(
            &alice,
            &format!("/job/{id}/file?path=$MESOS_SANDBOX/stdout&offset=6&length=5"),
        )
        .await;
    assert_eq!(v["file"], json!({"data": "world", "offset": 6}));
    let (_, v) = env.get(&alice, &format!("/job/{id}/file?path=d/e")).await;
    assert_eq!(v["file"]["data"], "PPAP\n");
    let (s, v) = env
        .get(&alice, &format!("/job/{id}/file?path=absent"))
        .await;
    assert_eq!((s, &v["file"]), (StatusCode::OK, &json!(null)));

    let (s, v) = env
        .get(&alice, &format!("/job/{id}/dir?path=$MESOS_SANDBOX"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["big.bin", "bin", "dead + poet + society.txt", "stdout"]
    );
    let (_, v) = env.get(&alice, &format!("/job/{id}/dir?path=d")).await;
    assert_eq!(v["entries"][0]["size"], 5);
    let (s, v) = env.get(&alice, &format!("/job/{id}/dir?path=nodir")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // Binary bytes survive; names with spaces and '+' are encoded right.
    let now = auth::now_date();
    let (s, h, body) = env
        .send(signed(
            &alice,
            Method::GET,
            &format!("/job/{id}/download?path=bin"),
            vec![],
            &now,
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.to_vec(), (0..=255u8).collect::<Vec<_>>());
    assert_eq!(h["content-length"], "256");
    let path = format!("/job/{id}/download?path=dead%20%2B%20poet%20%2B%20society.txt");
    let (s, _, body) = env
        .send(signed(&alice, Method::GET, &path, vec![], &now))
        .await;
    assert_eq!((s, body.len()), (StatusCode::OK, 9));
    let (s, _, body) = env
        .send(signed(
            &alice,
            Method::GET,
            &format!("/job/{id}/download?path=big.bin"),
            vec![],
            &now,
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("max file size"));
    let (s, _) = env
        .get(&alice, &format!("/job/{id}/download?path=absent"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Every path the agent was asked for is inside the sandbox.
    let asked = agent.asked.lock().unwrap().clone();
    assert!(!asked.is_empty());
    assert!(asked.iter().all(|p| p.starts_with(SANDBOX)), "{asked:?}");
}

#[tokio::test]
async fn traversal_never_reaches_the_agent_and_others_see_nothing() {
    let agent = agent_with_files();
    let base = start_agent(agent.clone()).await;
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let eve = env.user("eve").await;
    let id = running_job(&env, &alice, &base).await;
    for path in [
        format!("/job/{id}/file?path=../../../etc/passwd"),
        format!("/job/{id}/file?path=/etc/passwd"),
        format!("/job/{id}/dir?path=.."),
        format!("/job/{id}/download?path=d/../../x"),
    ] {
        let (s, v) = env.get(&alice, &path).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        error_message(&v);
    }
    for path in [
        format!("/job/{id}/file?path=stdout"),
        format!("/job/{id}/dir?path="),
        format!("/job/{id}/download?path=stdout"),
    ] {
        let (s, _) = env.get(&eve, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    assert!(agent.asked.lock().unwrap().is_empty(), "agent was asked");
}

#[tokio::test]
async fn an_unreachable_agent_is_a_json_502() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let id = running_job(&env, &alice, &format!("http://127.0.0.1:{port}")).await;
    let (s, v) = env
        .get(&alice, &format!("/job/{id}/file?path=stdout"))
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert!(error_message(&v).contains("agent"));
}

/// An agent whose `/files` want the cluster's Basic credential (401 otherwise) and
/// refuse links with 403, as the embedded cluster's agents do.
async fn start_guarded_agent(credentials: Credentials) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let guard = {
        let seen = Arc::clone(&seen);
        move |headers: HeaderMap, Query(q): Query<BTreeMap<String, String>>| {
            let seen = Arc::clone(&seen);
            let credentials = credentials.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                seen.lock().unwrap().push(auth.clone());
                if credentials.verify_basic(&auth).is_none() {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [("WWW-Authenticate", "Basic realm=\"mesos\"")],
                        "",
                    )
                        .into_response();
                }
                let path = q.get("path").cloned().unwrap_or_default();
                if path.ends_with("/link") {
                    return (
                        StatusCode::FORBIDDEN,
                        axum::Json(json!({"status": format!("{path} is a symbolic link")})),
                    )
                        .into_response();
                }
                if path.ends_with("/sandbox") {
                    return axum::Json(json!([])).into_response();
                }
                axum::Json(json!({"data": "ok\n", "offset": 0})).into_response()
            }
        }
    };
    let app = Router::new()
        .route("/files/read", get(guard.clone()))
        .route("/files/browse", get(guard.clone()))
        .route("/files/download", get(guard));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn the_proxy_presents_the_framework_credential_and_passes_refusals_on() {
    let right = Credential::new("retz", "s3cret").unwrap();
    let (base, seen) = start_guarded_agent(Credentials::single(right.clone())).await;
    for (credential, ok) in [
        (Some(right.clone()), true),
        (Some(Credential::new("retz", "wrong").unwrap()), false),
        (None, false),
    ] {
        let env = Env::new(HttpConfig {
            agent_credential: credential.clone(),
            ..HttpConfig::default()
        })
        .await;
        let alice = env.user("alice").await;
        let id = running_job(&env, &alice, &base).await;
        seen.lock().unwrap().clear();
        let (s, v) = env
            .get(&alice, &format!("/job/{id}/file?path=stdout"))
            .await;
        let sent = seen.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "{sent:?}");
        match &credential {
            Some(c) => assert_eq!(sent[0], c.basic_header()),
            None => assert_eq!(sent[0], ""),
        }
        if ok {
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v["file"]["data"], "ok\n");
            // Every endpoint carries it.
            for path in [
                format!("/job/{id}/dir?path="),
                format!("/job/{id}/download?path=stdout"),
            ] {
                let req = signed(&alice, Method::GET, &path, Vec::new(), &auth::now_date());
                let (s, _, _) = env.send(req).await;
                assert_eq!(s, StatusCode::OK, "{path}");
            }
            assert!(
                seen.lock()
                    .unwrap()
                    .iter()
                    .all(|a| *a == right.basic_header())
            );
            // The agent's refusal of a link is the user's 403, with its reason.
            for path in [
                format!("/job/{id}/file?path=link"),
                format!("/job/{id}/dir?path=link"),
                format!("/job/{id}/download?path=link"),
            ] {
                let (s, v) = env.get(&alice, &path).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
                let m = error_message(&v);
                assert!(m.contains("link is a symbolic link"), "{path}: {m}");
            }
        } else {
            assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
            let m = error_message(&v);
            let want = if credential.is_some() {
                "refused the server's credentials (principal retz)"
            } else {
                "requires credentials"
            };
            assert!(m.contains(want), "{m}");
        }
    }
}

fn agent_of(files: &[(&str, Vec<u8>)]) -> Agent {
    Agent {
        files: Arc::new(
            files
                .iter()
                .map(|(name, data)| (format!("{SANDBOX}/{name}"), data.clone()))
                .collect(),
        ),
        asked: Arc::default(),
    }
}

/// Reads `path` of job `id` through `/job/{id}/file` piece by piece, advancing by the
/// bytes each piece holds; returns the bytes and the pieces.
async fn read_all(env: &Env, user: &User, id: u64, path: &str) -> (Vec<u8>, Vec<FileChunk>) {
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    loop {
        let (s, v) = env
            .get(
                user,
                &format!("/job/{id}/file?path={path}&offset={}", out.len()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let chunk: FileChunk = serde_json::from_value(v["file"].clone()).unwrap();
        assert_eq!(chunk.offset, out.len() as u64);
        let bytes = chunk.bytes().unwrap().into_owned();
        if bytes.is_empty() {
            return (out, chunks);
        }
        out.extend(bytes);
        chunks.push(chunk);
    }
}

#[tokio::test]
async fn file_pieces_are_byte_exact() {
    let mut cut = vec![b'a'; 65535];
    cut.extend_from_slice("日本".as_bytes());
    let binary: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let japanese = "ログ：ジョブ開始 – résumé ✓\n".repeat(3000).into_bytes();
    let agent = agent_of(&[
        ("cut", cut.clone()),
        ("bin", binary.clone()),
        ("jp", japanese.clone()),
        ("quotes", b"a\"b\\c/d\x7f".to_vec()),
    ]);
    let base = start_agent(agent.clone()).await;
    let env = Env::default().await;
    let alice = env.user("alice").await;
    let id = running_job(&env, &alice, &base).await;

    // 日 starts at 65,535, the agent's 64 KiB cut falls inside it: the first piece is
    // the text before it, the second starts with it.
    let (got, chunks) = read_all(&env, &alice, id, "cut").await;
    assert_eq!(got, cut);
    assert_eq!(chunks.len(), 2);
    assert_eq!((chunks[0].data.len(), chunks[0].encoding), (65535, None));
    assert_eq!(
        (
            chunks[1].data.as_str(),
            chunks[1].offset,
            chunks[1].encoding
        ),
        ("日本", 65535, None)
    );
    let (got, chunks) = read_all(&env, &alice, id, "bin").await;
    assert_eq!(got, binary);
    assert!(
        chunks
            .iter()
            .all(|c| c.encoding == Some(ChunkEncoding::Base64))
    );
    let (got, chunks) = read_all(&env, &alice, id, "jp").await;
    assert_eq!(got, japanese);
    assert!(
        chunks.iter().all(|c| c.encoding.is_none()),
        "text stays text"
    );
    let (got, _) = read_all(&env, &alice, id, "quotes").await;
    assert_eq!(got, b"a\"b\\c/d\x7f");

    // A window in the middle of a character: base64 of exactly those bytes.
    let (_, v) = env
        .get(
            &alice,
            &format!("/job/{id}/file?path=cut&offset=65536&length=2"),
        )
        .await;
    let chunk: FileChunk = serde_json::from_value(v["file"].clone()).unwrap();
    assert_eq!(chunk.bytes().unwrap().as_ref(), &cut[65536..65538]);

    // Offsets and lengths an agent cannot take are the user's 400, never sent on.
    agent.asked.lock().unwrap().clear();
    for q in [
        "offset=9223372036854775808",
        "length=18446744073709551615",
        "offset=-1",
    ] {
        let (s, v) = env
            .get(&alice, &format!("/job/{id}/file?path=cut&{q}"))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
        error_message(&v);
    }
    assert!(agent.asked.lock().unwrap().is_empty());
    let (s, v) = env
        .get(
            &alice,
            &format!("/job/{id}/file?path=cut&offset=9223372036854775807"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn downloads_are_whole_or_refused_before_any_byte() {
    let agent = agent_of(&[
        ("small.chunked", vec![7; 900]),
        ("big.chunked", vec![7; 1001]),
        ("exact", vec![8; 1000]),
        ("big", vec![9; 1001]),
        ("cut.short", vec![1; 500]),
    ]);
    let base = start_agent(agent.clone()).await;
    let env = Env::new(HttpConfig {
        max_file_size: 1000,
        ..HttpConfig::default()
    })
    .await;
    let alice = env.user("alice").await;
    let id = running_job(&env, &alice, &base).await;
    let download = |path: &str| {
        signed(
            &alice,
            Method::GET,
            &format!("/job/{id}/download?path={path}"),
            vec![],
            &auth::now_date(),
        )
    };

    // Within the limit: every byte, with or without a length from the agent.
    let (s, h, body) = env.send(download("exact")).await;
    assert_eq!((s, body.to_vec()), (StatusCode::OK, vec![8; 1000]));
    assert_eq!(h["content-length"], "1000");
    let (s, _, body) = env.send(download("small.chunked")).await;
    assert_eq!((s, body.to_vec()), (StatusCode::OK, vec![7; 900]));

    // Over it: a 400 naming the limit, whether the agent announced the size or not.
    for path in ["big", "big.chunked"] {
        let (s, _, body) = env.send(download(path)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let m = error_message(&v);
        assert!(
            m.contains("1001 bytes") && m.contains("max file size of 1000"),
            "{m}"
        );
    }

    // An agent that ends early: the length is passed on and the body fails, so no
    // client takes 500 bytes for the file.
    let res = env
        .router
        .clone()
        .oneshot(download("cut.short"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-length"], "600");
    assert!(res.into_body().collect().await.is_err());
}
