//! A fake Retz server for the CLI tests: axum on 127.0.0.1:0, every signed request
//! checked with `retz_proto::api::auth::verify`, canned `retz_proto::api` bodies, and a
//! tiny job model (QUEUED on the first look, STARTED on the second; stdout grows by one
//! piece per read until the job finishes with the exit code its command names).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::http::{Request, Response, StatusCode};
use retz_proto::api::auth::{content_md5, parse_authorization, string_to_sign_keyed, verify};
use retz_proto::api::*;

pub const KEY: &str = "0123456789abcdef0123456789abcdef";
pub const SECRET: &str = "fedcba9876543210fedcba9876543210";
pub const ADMIN_KEY: &str = "adminadminadminadminadminadmin00";
pub const ADMIN_SECRET: &str = "admin-secret";

/// How a job behaves once started.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// stdout pieces, one appended per read of stdout.
    pub pieces: Vec<String>,
    /// Exit code.
    pub result: i32,
    /// Reads of stdout so far.
    pub reads: usize,
    /// Looks at the job (GET /job) so far.
    pub looks: usize,
    /// Never finishes (stdout stops growing after the pieces).
    pub endless: bool,
}

#[derive(Default)]
pub struct State {
    pub users: BTreeMap<String, User>,
    pub jobs: BTreeMap<u64, Job>,
    pub plans: HashMap<u64, Plan>,
    pub apps: BTreeMap<String, Application>,
    pub files: HashMap<(u64, String), Vec<u8>>,
    pub log: Vec<String>,
    pub bodies: Vec<serde_json::Value>,
    pub next_user: u32,
}

pub struct Fake {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    pub dir: tempfile::TempDir,
}

impl Fake {
    /// Starts a fake server on its own thread.
    pub fn start() -> Fake {
        Fake::start_at(0)
    }

    /// Starts a fake server on `port` of 127.0.0.1 (0: any free port).
    pub fn start_at(port: u16) -> Fake {
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut s = state.lock().unwrap();
            for (k, sec) in [(KEY, SECRET), (ADMIN_KEY, ADMIN_SECRET)] {
                s.users.insert(
                    k.to_owned(),
                    User {
                        key_id: k.to_owned(),
                        secret: sec.to_owned(),
                        enabled: true,
                        info: String::new(),
                    },
                );
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(move |req: Request<Body>| {
                    let st = st.clone();
                    async move { handle(st, req).await }
                });
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake { addr, state, dir };
        fake.write_config("client.toml", KEY, SECRET);
        fake.write_config("admin.toml", ADMIN_KEY, ADMIN_SECRET);
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn write_config(&self, name: &str, key: &str, secret: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "server = \"{}\"\naccess_key = \"{key}\"\nsecret = \"{secret}\"\n",
                self.url()
            ),
        )
        .unwrap();
        p
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("client.toml")
    }

    /// Runs retz-client with the user config.
    pub fn client(&self, args: &[&str]) -> Out {
        run_bin(
            env!("CARGO_BIN_EXE_retz-client"),
            Some(&self.config()),
            args,
            None,
        )
    }

    /// Runs retz-admin with the admin config.
    pub fn admin(&self, args: &[&str]) -> Out {
        run_bin(
            env!("CARGO_BIN_EXE_retz-admin"),
            Some(&self.dir.path().join("admin.toml")),
            args,
            None,
        )
    }

    /// Adds a job of KEY's directly.
    pub fn add_job(&self, id: u64, state: JobState, tags: &[&str]) {
        let mut j = Job::new("app", format!("job {id}"));
        j.id = id;
        j.state = state;
        j.tags = tags.iter().map(|t| t.to_string()).collect();
        j.scheduled = Some("2026-11-22T07:30:00.000+00:00".into());
        let mut s = self.state.lock().unwrap();
        s.jobs.insert(id, j);
    }

    pub fn add_file(&self, id: u64, path: &str, data: &[u8]) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert((id, path.to_owned()), data.to_vec());
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

/// A finished process run.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--stdout--\n{}\n--stderr--\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run_bin(bin: &str, config: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new(bin);
    if let Some(c) = config {
        cmd.arg("-C").arg(c);
    }
    cmd.args(args)
        .env_remove("RETZ_CLIENT_CONFIG")
        .env("HOME", "/nonexistent-home")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).unwrap();
        }
    }
    let o: Output = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stdout_bytes: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn json<T: serde::Serialize>(code: StatusCode, v: &T) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

fn err(code: StatusCode, msg: &str) -> Response<Body> {
    json(code, &ErrorBody::new(msg))
}

fn query(q: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

async fn handle(st: Arc<Mutex<State>>, req: Request<Body>) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let q = req.uri().query().unwrap_or("").to_owned();
    let resource = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let (auth, date, md5, idem) = {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (
            header("authorization"),
            header("date"),
            header("content-md5"),
            header("idempotency-key"),
        )
    };
    let body = to_bytes(req.into_body(), 1 << 20).await.unwrap();
    st.lock().unwrap().log.push(format!("{method} {resource}"));
    if path == "/ping" {
        return Response::new(Body::from("OK"));
    }
    if path == "/status" {
        return json(
            StatusCode::OK,
            &StatusResponse {
                queue_length: 1,
                running_length: 2,
                used: retz_proto::api::ResourceQuantity {
                    cpu: 3,
                    ..Default::default()
                },
                offered: retz_proto::api::ResourceQuantity {
                    cpu: 4,
                    nodes: 1,
                    ..Default::default()
                },
                total_used: 3.0,
                num_slaves: 1,
                offers: 1,
                total_offered: 4.0,
                master: "local".into(),
                stanchion_queue_length: 0,
                server_version: "fake".into(),
            },
        );
    }
    // signature check
    let Ok((key, sig)) = parse_authorization(auth.as_deref()) else {
        return err(StatusCode::UNAUTHORIZED, "bad Authorization header");
    };
    let Some(date) = date else {
        return err(StatusCode::UNAUTHORIZED, "no Date header");
    };
    let body_md5 = content_md5(&body);
    if md5.as_deref().unwrap_or("") != body_md5 {
        return err(
            StatusCode::BAD_REQUEST,
            "Content-MD5 does not match the body",
        );
    }
    let user = st.lock().unwrap().users.get(key).cloned();
    let Some(user) = user else {
        return err(StatusCode::FORBIDDEN, "No such user");
    };
    if !user.enabled {
        return err(StatusCode::FORBIDDEN, "User disabled");
    }
    let sts = string_to_sign_keyed(&method, &body_md5, &date, &resource, idem.as_deref());
    if !verify(&user.secret, &sts, sig) {
        return err(
            StatusCode::UNAUTHORIZED,
            &format!(
                "Authentication failed. String to sign: {}",
                sts.replace('\n', "\\n")
            ),
        );
    }
    if !body.is_empty() {
        st.lock()
            .unwrap()
            .bodies
            .push(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
    }
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let qs = query(&q);
    let mut s = st.lock().unwrap();
    if seg[0] == "admin" && key != ADMIN_KEY {
        return err(StatusCode::FORBIDDEN, "admin only");
    }
    match (method.as_str(), seg.as_slice()) {
        ("POST", ["jobs"]) => {
            let r: ListJobsRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return err(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            let jobs: Vec<Job> = s
                .jobs
                .values()
                .rev()
                .filter(|j| j.state == r.state)
                .filter(|j| r.tag.as_ref().is_none_or(|t| j.tags.contains(t)))
                .cloned()
                .collect();
            json(StatusCode::OK, &ListJobsResponse { jobs, more: false })
        }
        ("POST", ["job"]) => {
            let r: ScheduleRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return err(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            if !s.apps.contains_key(&r.job.appid) && r.job.appid != "app" {
                return err(
                    StatusCode::NOT_FOUND,
                    &format!("No such application: {}", r.job.appid),
                );
            }
            let id = s.jobs.keys().next_back().copied().unwrap_or(0) + 1;
            let mut j = r.job;
            j.id = id;
            j.state = JobState::Queued;
            j.scheduled = Some("2026-11-22T07:30:00.000+00:00".into());
            j.pending = Some("waiting for 2 free CPUs on one NUMA node".into());
            // the command names the plan: "... pieces N exit C"
            let words: Vec<&str> = j.cmd.split_whitespace().collect();
            let num = |w: &str| {
                words
                    .iter()
                    .position(|x| *x == w)
                    .and_then(|i| words.get(i + 1))
                    .and_then(|v| v.parse::<i32>().ok())
            };
            let n = num("pieces").unwrap_or(2);
            let plan = Plan {
                pieces: (1..=n).map(|i| format!("line {i}\n")).collect(),
                result: num("exit").unwrap_or(0),
                reads: 0,
                looks: 0,
                endless: words.contains(&"forever"),
            };
            s.plans.insert(id, plan);
            s.files.insert((id, "stdout".into()), Vec::new());
            s.files
                .insert((id, "stderr".into()), b"some warnings\n".to_vec());
            s.jobs.insert(id, j.clone());
            json(StatusCode::CREATED, &JobResponse { job: j })
        }
        ("GET", ["job", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let mut queue_position = None;
            if let Some(p) = s.plans.get_mut(&id) {
                p.looks += 1;
                let looks = p.looks;
                let j = s.jobs.get_mut(&id).unwrap();
                if j.state == JobState::Queued {
                    if looks >= 2 {
                        j.state = JobState::Started;
                        j.pending = None;
                        j.started = Some("2026-11-22T07:30:01.000+00:00".into());
                    } else {
                        queue_position = Some(1);
                    }
                }
            }
            let job = s.jobs.get(&id).cloned();
            json(
                StatusCode::OK,
                &GetJobResponse {
                    job,
                    queue_position,
                },
            )
        }
        ("DELETE", ["job", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match s.jobs.get_mut(&id) {
                None => err(StatusCode::NOT_FOUND, &format!("No such job: {id}")),
                Some(j) => {
                    j.state = JobState::Killed;
                    j.reason = Some("Canceled by user".into());
                    json(StatusCode::OK, &JobResponse { job: j.clone() })
                }
            }
        }
        ("GET", ["job", id, "file"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let Some(job) = s.jobs.get(&id).cloned() else {
                return err(StatusCode::NOT_FOUND, &format!("No such job: {id}"));
            };
            let path = qs.get("path").cloned().unwrap_or_default();
            let offset: usize = qs.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
            let length: Option<usize> = qs.get("length").and_then(|o| o.parse().ok());
            // a started job with a plan: stdout grows by one piece per read (the first
            // read finds nothing yet)
            if path == "stdout"
                && job.state == JobState::Started
                && let Some(p) = s.plans.get_mut(&id)
            {
                p.reads += 1;
                let reads = p.reads;
                let delivered = reads.saturating_sub(1).min(p.pieces.len());
                let text: String = p.pieces[..delivered].concat();
                let done = delivered == p.pieces.len() && !p.endless;
                let result = p.result;
                s.files.insert((id, "stdout".into()), text.into_bytes());
                if done {
                    let j = s.jobs.get_mut(&id).unwrap();
                    j.state = JobState::Finished;
                    j.result = result;
                    j.finished = Some("2026-11-22T07:30:03.250+00:00".into());
                }
            }
            let job = s.jobs.get(&id).cloned().unwrap();
            let file = s.files.get(&(id, path)).map(|data| {
                let start = offset.min(data.len());
                let end = length.map_or(data.len(), |l| (start + l).min(data.len()));
                FileChunk::from_bytes(offset as u64, &data[start..end]).0
            });
            json(StatusCode::OK, &GetFileResponse { job, file })
        }
        ("GET", ["job", id, "download"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let path = qs.get("path").cloned().unwrap_or_default();
            match s.files.get(&(id, path.clone())) {
                // `*.short`: a server that announces more than it sends
                Some(d) if path.ends_with(".short") => Response::builder()
                    .status(200)
                    .header("content-length", d.len() + 1000)
                    .body(Body::from(d.clone()))
                    .unwrap(),
                Some(d) => Response::builder()
                    .status(200)
                    .header("content-length", d.len())
                    .body(Body::from(d.clone()))
                    .unwrap(),
                None => err(StatusCode::NOT_FOUND, &format!("{path} not found")),
            }
        }
        ("GET", ["job", id, "dir"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let Some(job) = s.jobs.get(&id).cloned() else {
                return err(StatusCode::NOT_FOUND, &format!("No such job: {id}"));
            };
            let mut entries: Vec<DirEntry> = s
                .files
                .iter()
                .filter(|((j, _), _)| *j == id)
                .map(|((_, p), d)| DirEntry {
                    gid: "root".into(),
                    mode: "-rw-r--r--".into(),
                    mtime: 1_700_000_000.0,
                    nlink: 1,
                    path: format!("/sandbox/{p}"),
                    size: d.len() as u64,
                    uid: "root".into(),
                })
                .collect();
            entries.sort_by(|a, b| a.path.cmp(&b.path));
            json(StatusCode::OK, &ListFilesResponse { job, entries })
        }
        ("GET", ["apps"]) => json(
            StatusCode::OK,
            &ListAppsResponse {
                application_list: s.apps.values().cloned().collect(),
            },
        ),
        ("PUT", ["app", name]) => {
            let r: LoadAppRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return err(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            if r.application.appid != *name || r.application.owner != key {
                return err(StatusCode::BAD_REQUEST, "owner or name mismatch");
            }
            s.apps.insert(name.to_string(), r.application.clone());
            json(
                StatusCode::OK,
                &AppResponse {
                    application: r.application,
                },
            )
        }
        ("GET", ["app", name]) => match s.apps.get(*name) {
            Some(a) => json(
                StatusCode::OK,
                &AppResponse {
                    application: a.clone(),
                },
            ),
            None => err(
                StatusCode::NOT_FOUND,
                &format!("No such application: {name}"),
            ),
        },
        ("DELETE", ["app", name]) => match s.apps.remove(*name) {
            Some(a) => json(StatusCode::OK, &AppResponse { application: a }),
            None => err(
                StatusCode::NOT_FOUND,
                &format!("No such application: {name}"),
            ),
        },
        ("POST", ["admin", "users"]) => {
            let r: CreateUserRequest = serde_json::from_slice(&body).unwrap_or_default();
            s.next_user += 1;
            let user = User {
                key_id: format!("{:032x}", 0xabc000 + s.next_user),
                secret: format!("{:032x}", 0xdef000 + s.next_user),
                enabled: true,
                info: r.info,
            };
            s.users.insert(user.key_id.clone(), user.clone());
            json(StatusCode::CREATED, &UserResponse { user })
        }
        ("GET", ["admin", "users"]) => json(
            StatusCode::OK,
            &ListUsersResponse {
                users: s
                    .users
                    .values()
                    .map(|u| User {
                        secret: String::new(),
                        ..u.clone()
                    })
                    .collect(),
            },
        ),
        ("GET", ["admin", "user", k]) => match s.users.get(*k) {
            Some(u) => json(StatusCode::OK, &UserResponse { user: u.clone() }),
            None => err(StatusCode::NOT_FOUND, &format!("No such user: {k}")),
        },
        ("POST", ["admin", "user", k, op @ ("enable" | "disable")]) => match s.users.get_mut(*k) {
            Some(u) => {
                u.enabled = *op == "enable";
                json(StatusCode::OK, &UserResponse { user: u.clone() })
            }
            None => err(StatusCode::NOT_FOUND, &format!("No such user: {k}")),
        },
        ("GET", ["admin", "usage"]) => {
            let (start, end) = (qs["start"].clone(), qs["end"].clone());
            let jobs = s
                .jobs
                .values()
                .filter(|j| j.finished.as_ref().is_some_and(|f| *f >= start && *f < end))
                .cloned()
                .collect();
            json(StatusCode::OK, &UsageResponse { jobs })
        }
        ("POST", ["admin", "gc"]) => {
            let r: GcRequest = serde_json::from_slice(&body).unwrap();
            let before = s.jobs.len();
            s.jobs
                .retain(|_, j| !j.state.is_terminal() || r.leeway > 1_000_000);
            let deleted = (before - s.jobs.len()) as u64;
            json(StatusCode::OK, &GcResponse { deleted })
        }
        _ => err(StatusCode::NOT_FOUND, &format!("no route {method} {path}")),
    }
}
