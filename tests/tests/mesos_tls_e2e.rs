//! HTTPS Mesos masters end to end: a CA and a master certificate (localhost and
//! 127.0.0.1) made here with rcgen, `retz-mesos-local --tls-cert --tls-key` serving the
//! v1 scheduler API over TLS, and `retz-server --mesos https://...` with `mesos.ca_cert`:
//! - trusting the master's CA, the server subscribes over https and a job finishes;
//! - trusting another CA, the server never subscribes and logs why (certificate
//!   verification failed), retrying;
//! - a CA file that does not exist stops the server at startup with one line naming
//!   `mesos.ca_cert`;
//! - with ZooKeeper (`RETZ_TEST_ZK`, root), a `--zk` TLS master is found through
//!   `zk://` and contacted over https because `mesos.ca_cert` is set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use retz_e2e_tests::{
    MESOS_PRINCIPAL, Proc, Server, binary, client_ok, free_port, is_root, job_json, wait_for_port,
    write_credentials,
};

const LONG: Duration = Duration::from_secs(180);

/// Polls `f` until it holds, or panics after [`LONG`] with `what` and the logs.
fn wait_logged(what: &str, logs: &dyn Fn() -> String, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < LONG,
            "timed out after {LONG:?}: {what}
{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `log` has a line saying the server subscribed to the master at `addr` over
/// https.
fn subscribed_over_https(log: &str, addr: SocketAddr) -> bool {
    log.lines()
        .any(|l| l.contains("subscribed to Mesos") && l.contains(&format!("https://{addr}")))
}

/// A CA certificate file, and a master certificate and key it signed.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Makes a CA (`<stem>-ca.pem`) and a certificate for localhost/127.0.0.1 it signed.
fn pki(dir: &Path, stem: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{stem} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("master key");
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("master params");
    let cert = params.signed_by(&key, &issuer).expect("sign the master");
    let out = Pki {
        ca: dir.join(format!("{stem}-ca.pem")),
        cert: dir.join(format!("{stem}-master-cert.pem")),
        key: dir.join(format!("{stem}-master-key.pem")),
    };
    std::fs::write(&out.ca, ca_cert.pem()).expect("write the CA");
    std::fs::write(&out.cert, cert.pem()).expect("write the certificate");
    std::fs::write(&out.key, key.serialize_pem()).expect("write the key");
    out
}

/// `retz-mesos-local` serving TLS with `pki`'s certificate; `zk`: join that group.
fn tls_master(dir: &Path, pki: &Pki, credentials: &Path, zk: Option<&str>) -> (Proc, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut args: Vec<String> = [
        "--tls-cert",
        &pki.cert.display().to_string(),
        "--tls-key",
        &pki.key.display().to_string(),
        "--credentials",
        &credentials.display().to_string(),
        "--bind",
        &addr.to_string(),
        "--agents",
        "1",
        "--work-dir",
        &dir.join("mesos").display().to_string(),
        "--allocation-interval",
        "200ms",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(zk) = zk {
        args.extend(["--zk".to_owned(), zk.to_owned()]);
    }
    let proc = Proc::spawn(
        &binary("retz-mesos-local", "retz-mesos-local"),
        &args,
        &dir.join("mesos-local.log"),
        &[("RUST_LOG", "info")],
    );
    wait_for_port(addr, Duration::from_secs(30));
    (proc, addr)
}

/// A `retz.toml` naming `ca` as the masters' CA.
fn retz_toml(dir: &Path, ca: &Path) -> PathBuf {
    let path = dir.join("retz.toml");
    std::fs::write(
        &path,
        format!("[mesos]\nca_cert = {:?}\n", ca.display().to_string()),
    )
    .expect("write retz.toml");
    path
}

fn server_args<'a>(mesos: &'a str, credentials: &'a str, config: &'a str) -> Vec<&'a str> {
    vec![
        "--mesos",
        mesos,
        "--mesos-principal",
        MESOS_PRINCIPAL,
        "--mesos-secret-file",
        credentials,
        "-C",
        config,
    ]
}

fn run_to_finish(config: &Path, logs: &dyn Fn() -> String) {
    client_ok(config, &["load-app", "-A", "tlsmaster"]);
    let id: u64 = client_ok(
        config,
        &["schedule", "-q", "-A", "tlsmaster", "-cmd", "true"],
    )
    .trim()
    .parse()
    .expect("schedule -q prints the id");
    let mut job = serde_json::Value::Null;
    wait_logged(&format!("job {id} ends"), logs, || {
        job = job_json(config, id)["job"].take();
        matches!(job["state"].as_str(), Some("FINISHED" | "KILLED" | "LOST"))
    });
    assert_eq!(job["state"], "FINISHED", "{job}\n{}", logs());
}

#[test]
fn a_server_trusting_the_masters_ca_runs_a_job_over_https() {
    let dir = retz_e2e_tests::test_dir();
    let pki = pki(dir.path(), "good");
    let credentials = dir.path().join("mesos-credentials.json");
    write_credentials(&credentials, MESOS_PRINCIPAL);
    let (master, addr) = tls_master(dir.path(), &pki, &credentials, None);
    assert!(
        master
            .log_text()
            .contains(&format!("listening on https://{addr}")),
        "{}",
        master.log_text()
    );
    let config = retz_toml(dir.path(), &pki.ca);
    let mesos = format!("https://{addr}");
    let creds = credentials.display().to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &server_args(&mesos, &creds, config.to_str().expect("utf-8")),
    );
    let logs = || format!("{}\n{}", server.proc.log_text(), master.log_text());
    wait_logged("the server subscribes over https", &logs, || {
        subscribed_over_https(&server.proc.log_text(), addr)
    });
    run_to_finish(&server.client_config, &logs);
}

#[test]
fn a_server_trusting_another_ca_never_subscribes_and_says_why() {
    let dir = retz_e2e_tests::test_dir();
    let master_pki = pki(dir.path(), "master");
    let other = pki(dir.path(), "other");
    let credentials = dir.path().join("mesos-credentials.json");
    write_credentials(&credentials, MESOS_PRINCIPAL);
    let (master, addr) = tls_master(dir.path(), &master_pki, &credentials, None);
    let config = retz_toml(dir.path(), &other.ca);
    let mesos = format!("https://{addr}");
    let creds = credentials.display().to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &server_args(&mesos, &creds, config.to_str().expect("utf-8")),
    );
    // Two refused attempts: it is retried, and refused each time.
    let refused = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains("Mesos subscription down")
                    && l.contains("certificate verification failed")
                    && l.contains("mesos.ca_cert")
            })
            .count()
    };
    let logs = || format!("{}\n{}", server.proc.log_text(), master.log_text());
    wait_logged("two refused TLS handshakes logged", &logs, || {
        refused(&server.proc.log_text()) >= 2
    });
    let log = server.proc.log_text();
    assert!(
        !log.contains("subscribed to Mesos"),
        "subscribed to a master whose certificate does not verify:\n{log}"
    );
    assert!(
        log.contains("UnknownIssuer"),
        "{log}\n{}",
        master.log_text()
    );
    // The API still answers: the server runs, jobs queue.
    client_ok(&server.client_config, &["load-app", "-A", "none"]);
    let id: u64 = client_ok(
        &server.client_config,
        &["schedule", "-q", "-A", "none", "-cmd", "true"],
    )
    .trim()
    .parse()
    .expect("an id");
    assert_eq!(
        job_json(&server.client_config, id)["job"]["state"],
        "QUEUED"
    );
}

#[test]
fn a_missing_ca_file_stops_the_server_with_one_line() {
    let dir = retz_e2e_tests::test_dir();
    let config = retz_toml(dir.path(), Path::new("/nonexistent/mesos-ca.pem"));
    let out = Command::new(binary("retz-scheduler", "retz-server"))
        .args([
            "--data-dir",
            &dir.path().join("data").display().to_string(),
            "--bind",
            &format!("127.0.0.1:{}", free_port()),
            "--mesos",
            "https://127.0.0.1:1",
            "-C",
            config.to_str().expect("utf-8"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run retz-server");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("retz-server:"))
        .collect();
    assert_eq!(line.len(), 1, "{stderr}");
    assert!(
        line[0].contains("mesos.ca_cert: cannot read /nonexistent/mesos-ca.pem"),
        "{stderr}"
    );
}

#[test]
fn a_tls_master_found_through_zookeeper_is_contacted_over_https() {
    let zk = std::env::var("RETZ_TEST_ZK").ok().filter(|s| !s.is_empty());
    let ok = retz_testkit::require(
        zk.is_some(),
        "mesos_tls_e2e needs RETZ_TEST_ZK (scripts/lib/zookeeper.sh starts a ZooKeeper)",
    ) && retz_testkit::require(is_root(), "mesos_tls_e2e (ZooKeeper) needs root");
    let Some(zk) = zk.filter(|_| ok) else { return };
    let dir = retz_e2e_tests::test_dir();
    let zk_url = format!("zk://{zk}/retz-tls-{}-{}", std::process::id(), free_port());
    let pki = pki(dir.path(), "zk");
    let credentials = dir.path().join("mesos-credentials.json");
    write_credentials(&credentials, MESOS_PRINCIPAL);
    let (master, addr) = tls_master(dir.path(), &pki, &credentials, Some(&zk_url));
    let config = retz_toml(dir.path(), &pki.ca);
    let creds = credentials.display().to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &server_args(&zk_url, &creds, config.to_str().expect("utf-8")),
    );
    let logs = || format!("{}\n{}", server.proc.log_text(), master.log_text());
    wait_logged(
        "the server subscribes to the ZooKeeper leader over https",
        &logs,
        || subscribed_over_https(&server.proc.log_text(), addr),
    );
    run_to_finish(&server.client_config, &logs);
}
