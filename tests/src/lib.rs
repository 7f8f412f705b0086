//! Shared pieces of the end-to-end tests (the tests themselves live in `tests/`): finding
//! the workspace's binaries, running `retz-server`, `retz-mesos-local`, `retz-client` and
//! `retz-admin` as real processes, and waiting for them; queuing jobs and waiting for
//! their ends ([`schedule`], [`wait_finished`]), users ([`create_user`]), application
//! tarballs, the test PostgreSQL ([`test_database_url`], [`fresh_database`]), and queues
//! of thousands of jobs sent straight to the HTTP API ([`submit_jobs`]).
//!
//! Jobs do not run as the test's user: under root (CI) they run as `nobody` (the server's
//! default job user), in sandboxes under `<data dir>-work`; otherwise as the test's user
//! ([`job_user`]). So a test's directory must be traversable by others ([`test_dir`]),
//! files jobs write go to a directory anyone may write ([`job_writable_dir`]), and a
//! `retz-mesos-local` cluster requires credentials that the server is given
//! ([`MesosLocal::server_args`]).
//!
//! Binaries are taken from the test's own target directory (`cargo test --workspace`
//! builds every binary of the workspace first, so they are current); a missing one is
//! built with the same cargo, so `cargo test -p retz-e2e-tests` works alone too — but
//! after changing a binary's sources, run `cargo build --workspace --bins` (or the whole
//! suite) first, or the tests run the old binary.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/<name>`, built if missing (package `package`); or
/// `$RETZ_E2E_BIN_DIR/<name>` when that is set (binaries built elsewhere, e.g. when
/// several checkouts share one target directory).
pub fn binary(package: &str, name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("RETZ_E2E_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test>-<hash>
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target layout: target/<profile>/deps");
    let path = profile.join(name);
    if !path.is_file() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", package, "--bin", name])
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {package} --bin {name} failed"
        );
    }
    path
}

/// A temporary directory other users can traverse (mode 0755), so that job users reach
/// sandboxes under it (`<data dir>-work`, a `retz-mesos-local` work dir) and read what the
/// test puts there for them.
pub fn test_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 0755 the test dir");
    dir
}

/// `parent/out`, a directory every user may write (mode 1777, like `/tmp`): where jobs,
/// running as another user than the test, leave files for the test to read.
pub fn job_writable_dir(parent: &Path) -> PathBuf {
    let dir = parent.join("out");
    std::fs::create_dir_all(&dir).expect("create the jobs' output dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))
        .expect("chmod 1777 the jobs' output dir");
    dir
}

/// Whether the tests run as root (then jobs run as `nobody`).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The Unix user jobs of a server started by these helpers run as: `nobody` when the
/// tests run as root, else the test's own user.
pub fn job_user() -> String {
    if is_root() {
        return "nobody".into();
    }
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until `addr` accepts TCP connections.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) {
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < timeout,
            "nothing listens on {addr} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (SIGKILL) when dropped, its output in a log file.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Proc {
    /// Starts `bin args...`, output appended to `log`.
    pub fn spawn(bin: &Path, args: &[String], log: &Path, envs: &[(&str, &str)]) -> Proc {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(bin)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Proc {
            child,
            log: log.to_owned(),
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The principal of the credential [`MesosLocal`] requires.
pub const MESOS_PRINCIPAL: &str = "retz";

/// A `retz-mesos-local` process.
pub struct MesosLocal {
    /// The process.
    pub proc: Proc,
    /// Its master address.
    pub addr: SocketAddr,
    /// The credentials file it was given (`--credentials`, JSON, mode 0600): principal
    /// [`MESOS_PRINCIPAL`] and a random secret.
    pub credentials: PathBuf,
}

/// Writes a credentials file (Mesos JSON, mode 0600) for `principal` with a random
/// secret into `path`.
pub fn write_credentials(path: &Path, principal: &str) {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("random bytes");
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let json = serde_json::json!({"credentials": [{"principal": principal, "secret": secret}]});
    std::fs::write(path, json.to_string()).expect("write the credentials file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 0600 the credentials file");
}

impl MesosLocal {
    /// Starts `retz-mesos-local` with `agents` agents of topology `synthetic` (this
    /// machine when `None`), work dir under `dir`, requiring the credential written to
    /// `dir/mesos-credentials.json`.
    pub fn start(dir: &Path, agents: u32, synthetic: Option<&str>) -> MesosLocal {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let credentials = dir.join("mesos-credentials.json");
        write_credentials(&credentials, MESOS_PRINCIPAL);
        let mut args = vec![
            "--credentials".to_owned(),
            credentials.display().to_string(),
            "--bind".to_owned(),
            addr.to_string(),
            "--agents".to_owned(),
            agents.to_string(),
            "--work-dir".to_owned(),
            dir.join("mesos").display().to_string(),
            "--allocation-interval".to_owned(),
            "200ms".to_owned(),
        ];
        if let Some(s) = synthetic {
            args.push("--synthetic".to_owned());
            args.push(s.to_owned());
        }
        let proc = Proc::spawn(
            &binary("retz-mesos-local", "retz-mesos-local"),
            &args,
            &dir.join("mesos-local.log"),
            &[],
        );
        wait_for_port(addr, Duration::from_secs(30));
        MesosLocal {
            proc,
            addr,
            credentials,
        }
    }

    /// The `retz-server` flags that use this cluster: `--mesos ADDR` with the principal
    /// and its credentials file.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--mesos".to_owned(),
            self.addr.to_string(),
            "--mesos-principal".to_owned(),
            MESOS_PRINCIPAL.to_owned(),
            "--mesos-secret-file".to_owned(),
            self.credentials.display().to_string(),
        ]
    }
}

/// A `retz-server` process.
pub struct Server {
    /// The process.
    pub proc: Proc,
    /// The HTTP API.
    pub addr: SocketAddr,
    /// The admin's client config.
    pub client_config: PathBuf,
}

impl Server {
    /// Starts `retz-server --data-dir DIR --bind 127.0.0.1:PORT extra...` and waits for
    /// its API and the admin's `client.toml`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_on(data_dir, free_port(), extra)
    }

    /// `retz-server --local` with `retz_toml` as its config (written to `dir/retz.toml`),
    /// data dir `dir/data`.
    pub fn start_local(dir: &Path, retz_toml: &str) -> Server {
        let cfg = dir.join("retz.toml");
        std::fs::write(&cfg, retz_toml).expect("write retz.toml");
        let cfg = cfg.display().to_string();
        Server::start(&dir.join("data"), &["--local", "-C", cfg.as_str()])
    }

    /// As [`Server::start`], on a given port (to restart a server where it was).
    pub fn start_on(data_dir: &Path, port: u16, extra: &[&str]) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut args = vec![
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
            "--bind".to_owned(),
            addr.to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let proc = Proc::spawn(
            &binary("retz-scheduler", "retz-server"),
            &args,
            &data_dir.with_extension("server.log"),
            &[("RUST_LOG", "info")],
        );
        let mut server = Server {
            proc,
            addr,
            client_config: data_dir.join("client.toml"),
        };
        // The API listens before the admin's client.toml is written (it names the bound
        // port): wait for both, and stop early if the server exited.
        let start = Instant::now();
        while !(server.client_config.is_file()
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
        {
            if let Ok(Some(status)) = server.proc.child.try_wait() {
                panic!(
                    "retz-server exited with {status} before it was ready:\n{}",
                    server.proc.log_text()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "retz-server not ready after 60 s:\n{}",
                server.proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}

/// Runs `retz-client -C config args...`.
pub fn client(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["-C", config.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    Command::new(binary("retz-client", "retz-client"))
        .args(&all)
        .stdin(Stdio::null())
        .output()
        .expect("run retz-client")
}

/// The stdout of `program args...` that ended as `out`, asserting it exited 0 (else
/// the assertion shows its exit code, stdout and stderr).
pub fn stdout_ok(program: &str, args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "{program} {args:?} exited {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `retz-client` and returns its stdout, asserting exit status 0.
pub fn client_ok(config: &Path, args: &[&str]) -> String {
    stdout_ok("retz-client", args, &client(config, args))
}

/// Polls `f` every 200 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `get-job -i ID --json` as JSON.
pub fn job_json(config: &Path, id: u64) -> serde_json::Value {
    let text = client_ok(config, &["get-job", "-i", &id.to_string(), "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("get-job --json: {e}: {text}"))
}

/// One plain HTTP/1.1 request to `addr` (`Connection: close`); returns the status code
/// and the body (no chunked decoding: for small answers of servers that send a length).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect for HTTP");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    stream.write_all(body).expect("send the body");
    let mut answer = Vec::new();
    // A server may reset after answering; keep what came.
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Runs `retz-admin -C config args...` (stdin closed).
pub fn admin(config: &Path, args: &[&str]) -> Output {
    Command::new(binary("retz-client", "retz-admin"))
        .arg("-C")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run retz-admin")
}

/// Runs `retz-admin` and returns its stdout, asserting exit status 0.
pub fn admin_ok(config: &Path, args: &[&str]) -> String {
    stdout_ok("retz-admin", args, &admin(config, args))
}

/// A new user made with `retz-admin -C admin_config create-user --info NAME`: its client
/// config, written to `dir/NAME.toml`, and its access key.
pub fn create_user(admin_config: &Path, dir: &Path, name: &str) -> (PathBuf, String) {
    let text = admin_ok(admin_config, &["create-user", "--info", name]);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, &text).expect("write the new user's client config");
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("access_key = "))
        .unwrap_or_else(|| panic!("create-user printed no access_key: {text}"))
        .trim_matches('"')
        .to_owned();
    (path, key)
}

/// `retz-client schedule -q args...`: queues a job and returns its id.
pub fn schedule(config: &Path, args: &[&str]) -> u64 {
    let mut all = vec!["schedule", "-q"];
    all.extend_from_slice(args);
    client_ok(config, &all)
        .trim()
        .parse()
        .expect("schedule -q prints the id")
}

/// The record of job `id` (`get-job --json`'s `job`; null when the caller has no such
/// job).
pub fn job_record(config: &Path, id: u64) -> serde_json::Value {
    job_json(config, id)["job"].take()
}

/// Waits up to `timeout` for job `id` to end (FINISHED or KILLED) and returns its record.
pub fn wait_ended(config: &Path, id: u64, timeout: Duration) -> serde_json::Value {
    wait_until(&format!("job {id} ends"), timeout, || {
        let j = job_record(config, id);
        matches!(j["state"].as_str(), Some("FINISHED" | "KILLED")).then_some(j)
    })
}

/// [`wait_ended`], asserting the job FINISHED with exit code 0.
pub fn wait_finished(config: &Path, id: u64, timeout: Duration) -> serde_json::Value {
    let job = wait_ended(config, id, timeout);
    assert_eq!(job["state"], "FINISHED", "{job}");
    assert_eq!(job["result"], 0, "{job}");
    job
}

/// Waits up to `timeout` for job `id` to be STARTED (running) and returns its record.
pub fn wait_started(config: &Path, id: u64, timeout: Duration) -> serde_json::Value {
    wait_until(&format!("job {id} runs"), timeout, || {
        let j = job_record(config, id);
        (j["state"] == "STARTED").then_some(j)
    })
}

/// Writes a `.tar.gz` at `path` holding `files` (name, mode, contents; modified at a
/// fixed time) and returns `path`.
pub fn write_tarball(path: &Path, files: &[(&str, u32, &[u8])]) -> PathBuf {
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).expect("create tarball"),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for (name, mode, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        tar.append_data(&mut header, name, *data)
            .expect("append to tarball");
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .expect("finish tarball");
    path.to_owned()
}

/// Writes `dir/app.tar.gz` holding one executable file, `bin/hello.sh` with `script`,
/// and returns its `file://` URI (an application's `-F` file).
pub fn app_tarball(dir: &Path, script: &[u8]) -> String {
    let path = write_tarball(&dir.join("app.tar.gz"), &[("bin/hello.sh", 0o755, script)]);
    format!("file://{}", path.display())
}

/// Queues `jobs` through the HTTP API (`POST /job`, signed with the key of the client
/// config at `config`, as `retz-client schedule` does) over `connections` concurrent
/// connections, each sending its share of `jobs` in order; returns the ids, in the order
/// of `jobs`. For queues of thousands of jobs, where a `retz-client` process per job
/// would take minutes.
pub fn submit_jobs(config: &Path, jobs: Vec<retz_proto::api::Job>, connections: usize) -> Vec<u64> {
    let text = std::fs::read_to_string(config).expect("read the client config");
    let config = retz_client::config::parse(&text, config).expect("a valid client config");
    let client = retz_client::Client::new(config).expect("a client for the config");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let connections = connections.max(1);
    let chunk = jobs.len().div_ceil(connections).max(1);
    runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        let mut jobs = jobs;
        let mut chunks = Vec::new();
        while !jobs.is_empty() {
            let rest = jobs.split_off(chunk.min(jobs.len()));
            chunks.push(std::mem::replace(&mut jobs, rest));
        }
        for (i, chunk) in chunks.into_iter().enumerate() {
            let client = client.clone();
            tasks.spawn(async move {
                let mut ids = Vec::with_capacity(chunk.len());
                for job in chunk {
                    let job = client
                        .schedule(job)
                        .await
                        .unwrap_or_else(|e| panic!("POST /job: {e}"));
                    ids.push(job.id);
                }
                (i, ids)
            });
        }
        let mut parts: Vec<(usize, Vec<u64>)> = tasks.join_all().await.into_iter().collect();
        parts.sort_unstable_by_key(|(i, _)| *i);
        parts.into_iter().flat_map(|(_, ids)| ids).collect()
    })
}

/// The lines of the file at `path` (none when it cannot be read, e.g. not written yet).
pub fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The ids of the jobs `retz-client --json list args...` lists.
pub fn listed_ids(config: &Path, args: &[&str]) -> Vec<u64> {
    let mut all = vec!["--json", "list"];
    all.extend_from_slice(args);
    let out = client_ok(config, &all);
    let jobs: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("list --json: {e}: {out}"));
    jobs.as_array()
        .unwrap_or_else(|| panic!("list --json is not an array: {out}"))
        .iter()
        .map(|j| j["id"].as_u64().expect("job id"))
        .collect()
}

/// The test PostgreSQL's URL (`RETZ_TEST_DATABASE_URL`, which `scripts/test.sh` sets);
/// `None` after a "skipping" line when it is not set, and a failure under `CI=true`.
pub fn test_database_url() -> Option<String> {
    let url = std::env::var("RETZ_TEST_DATABASE_URL").ok();
    let present = retz_testkit::require(
        url.is_some(),
        "RETZ_TEST_DATABASE_URL is not set (scripts/test.sh starts PostgreSQL)",
    );
    url.filter(|_| present)
}

/// Runs `psql URL -v ON_ERROR_STOP=1 -qc SQL`, asserting it succeeded.
pub fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("psql (installed with PostgreSQL)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drops (if it exists) and creates database `name` on the PostgreSQL of `url` (the
/// test PostgreSQL's URL); returns the URL of the new database.
pub fn fresh_database(url: &str, name: &str) -> String {
    psql(url, &format!("DROP DATABASE IF EXISTS {name}"));
    psql(url, &format!("CREATE DATABASE {name}"));
    let (base, _) = url.rsplit_once('/').expect("postgres://.../db");
    format!("{base}/{name}")
}

/// `retz-client get-file -i ID --path PATH`: a file of job `id`'s sandbox.
pub fn job_file(config: &Path, id: u64, path: &str) -> String {
    client_ok(config, &["get-file", "-i", &id.to_string(), "--path", path])
}
