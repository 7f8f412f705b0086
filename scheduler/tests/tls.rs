//! HTTPS: the API served over TLS by `retz_scheduler::serve::serve` and by a whole
//! `Server`, reached with the client library trusting a self-signed certificate or a
//! private CA (generated here with rcgen, ring backend); clients that do not trust the
//! certificate, plain HTTP and garbage on the TLS port, stalled handshakes; startup
//! errors for unusable certificate and key files. No network: everything is on loopback.

mod http_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_support::Env;
use retz_client::cli::exit::{CliError, UNREACHABLE};
use retz_client::{Client, ClientOptions, Error};
use retz_proto::api::{Application, ClientConfig, Job, JobState, User};
use retz_scheduler::config::ServerConfig;
use retz_scheduler::http::HttpConfig;
use retz_scheduler::server::{Server, ServerError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// PEM files of a certificate and its key in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    /// The file a client should trust: the certificate itself, or the CA.
    trust: PathBuf,
}

const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A self-signed certificate for `localhost` and `127.0.0.1`.
fn self_signed() -> Pki {
    self_signed_for(&NAMES)
}

fn self_signed_for(names: &[&str]) -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(names).unwrap();
    let cert = write(dir.path(), "cert.pem", &ck.cert.pem());
    let key = write(dir.path(), "key.pem", &ck.signing_key.serialize_pem());
    Pki {
        trust: cert.clone(),
        dir,
        cert,
        key,
    }
}

/// A private CA and a server certificate it issued; the server's file holds the chain.
fn private_ca() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Retz test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(NAMES.map(String::from).to_vec())
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let cert = write(
        dir.path(),
        "chain.pem",
        &format!("{}{}", leaf.pem(), ca.pem()),
    );
    let key = write(dir.path(), "key.pem", &leaf_key.serialize_pem());
    let trust = write(dir.path(), "ca.pem", &ca.pem());
    Pki {
        dir,
        cert,
        key,
        trust,
    }
}

/// The API of `env` served over HTTPS on an ephemeral loopback port.
struct Https {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Https {
    async fn start(env: &Env, pki: &Pki) -> Https {
        let tls = retz_scheduler::tls::load(&pki.cert, &pki.key).unwrap();
        Https::start_with(env, Some(tls)).await
    }

    async fn start_with(env: &Env, tls: Option<Arc<rustls::ServerConfig>>) -> Https {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(retz_scheduler::serve::serve(
            listener,
            env.router.clone(),
            tls,
            async move {
                let _ = stopped.await;
            },
        ));
        Https {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }
}

fn config(server: String, user: &User, ca_cert: Option<&Path>) -> ClientConfig {
    ClientConfig {
        server,
        access_key: user.key_id.clone(),
        secret: user.secret.clone(),
        authentication: true,
        tls_insecure: false,
        ca_cert: ca_cert.map(Path::to_owned),
    }
}

fn quick() -> ClientOptions {
    ClientOptions {
        retries: 0,
        ..ClientOptions::default()
    }
}

async fn ping_and_submit(client: &Client) -> Job {
    assert!(client.ping().await.unwrap().contains("OK"));
    client
        .load_app(Application::new("tls-app", &client.config().access_key))
        .await
        .unwrap();
    let job = client
        .schedule(Job::new("tls-app", "echo over https"))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Queued);
    job
}

#[tokio::test]
async fn https_answers_ping_and_a_signed_submit_with_a_self_signed_certificate() {
    let env = Env::default().await;
    let pki = self_signed();
    let https = Https::start(&env, &pki).await;
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{}", https.addr.port());
        let client =
            Client::with_options(config(url, &env.admin, Some(&pki.trust)), quick()).unwrap();
        let job = ping_and_submit(&client).await;
        // Accepted means stored.
        let (owner, stored) = env.store.get_job(job.id).await.unwrap().unwrap();
        assert_eq!(owner, env.admin.key_id);
        assert_eq!(stored.cmd, "echo over https");
    }
    https.stop().await;
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_cert() {
    let env = Env::default().await;
    let pki = private_ca();
    let https = Https::start(&env, &pki).await;
    let url = format!("https://localhost:{}", https.addr.port());
    let client = Client::with_options(config(url, &env.admin, Some(&pki.trust)), quick()).unwrap();
    ping_and_submit(&client).await;
    https.stop().await;
}

#[tokio::test]
async fn plain_http_and_garbage_on_the_tls_port_do_not_stop_the_server() {
    let env = Env::default().await;
    let pki = self_signed();
    let https = Https::start(&env, &pki).await;
    let port = https.addr.port();

    // The client library speaking plain HTTP to the HTTPS port: a clear failure.
    let plain = Client::with_options(
        config(format!("http://127.0.0.1:{port}"), &env.admin, None),
        quick(),
    )
    .unwrap();
    let e = plain.ping().await.unwrap_err();
    assert!(!e.is_refusal(), "{e}");

    // Raw garbage: the server ends that connection (no hang, no answer).
    let mut raw = TcpStream::connect(https.addr).await.unwrap();
    raw.write_all(b"\x16\x03\x01\xff\xffNOT TLS AT ALL\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf).await;

    // ... and the next HTTPS request is served.
    let client = Client::with_options(
        config(
            format!("https://localhost:{port}"),
            &env.admin,
            Some(&pki.trust),
        ),
        quick(),
    )
    .unwrap();
    ping_and_submit(&client).await;
    https.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_does_not_hold_up_other_clients() {
    let env = Env::default().await;
    let pki = self_signed();
    let https = Https::start(&env, &pki).await;
    // Connects and never says anything: its handshake waits on its own task.
    let mut stalled = TcpStream::connect(https.addr).await.unwrap();
    let client = Client::with_options(
        config(
            format!("https://localhost:{}", https.addr.port()),
            &env.admin,
            Some(&pki.trust),
        ),
        quick(),
    )
    .unwrap();
    assert!(client.ping().await.unwrap().contains("OK"));
    // Served while the stalled connection is still open (had the accept loop waited on
    // it, the ping could only have been served after its handshake timed out and the
    // server closed it).
    let mut one = [0u8; 1];
    let still_open =
        tokio::time::timeout(std::time::Duration::from_millis(50), stalled.read(&mut one))
            .await
            .is_err();
    assert!(
        still_open,
        "the stalled connection was closed before the ping was served"
    );
    https.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_gets_a_clear_connection_error() {
    let env = Env::default().await;
    let pki = self_signed();
    let https = Https::start(&env, &pki).await;
    let url = format!("https://localhost:{}", https.addr.port());

    // No ca_cert: unknown issuer; the hint names ca_cert and --ca-cert.
    let client = Client::new(config(url.clone(), &env.admin, None)).unwrap();
    let e = client.ping().await.unwrap_err();
    assert!(matches!(e, Error::Untrusted { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("does not accept") && text.contains("ca_cert") && text.contains("--ca-cert"),
        "{text}"
    );
    assert_eq!(CliError::Api(e).exit_code(), UNREACHABLE);

    // The wrong certificate in ca_cert: says so.
    let other = self_signed();
    let client = Client::new(config(url.clone(), &env.admin, Some(&other.trust))).unwrap();
    let e = client.list_jobs(JobState::Queued, None).await.unwrap_err();
    assert!(e.to_string().contains("ca_cert does not hold"), "{e}");

    // tls_insecure: anything goes (the original's retz.tls.insecure).
    let mut insecure = config(url, &env.admin, None);
    insecure.tls_insecure = true;
    assert!(
        Client::new(insecure)
            .unwrap()
            .ping()
            .await
            .unwrap()
            .contains("OK")
    );
    https.stop().await;
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_with_a_hint() {
    let env = Env::default().await;
    let pki = self_signed_for(&["retz.example"]);
    let https = Https::start(&env, &pki).await;
    let client = Client::new(config(
        format!("https://127.0.0.1:{}", https.addr.port()),
        &env.admin,
        Some(&pki.trust),
    ))
    .unwrap();
    let e = client.ping().await.unwrap_err();
    assert!(matches!(e, Error::Untrusted { .. }), "{e:?}");
    assert!(e.to_string().contains("host name"), "{e}");
    https.stop().await;
}

#[tokio::test]
async fn an_unusable_ca_cert_file_is_named() {
    let env = Env::default().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let e = Client::new(config(
        "https://localhost:1".into(),
        &env.admin,
        Some(&missing),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("ca_cert") && e.contains("nope.pem"), "{e}");
    let empty = write(dir.path(), "empty.pem", "no pem here\n");
    let e = Client::new(config(
        "https://localhost:1".into(),
        &env.admin,
        Some(&empty),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("empty.pem") && e.contains("CERTIFICATE"), "{e}");
}

/// A raw HTTP/1.1 exchange over `stream`; returns the answer's status line.
async fn raw_get<S>(mut stream: S, path: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_peer_address_reaches_the_admin_rule_over_plain_http_and_tls() {
    let env = Env::new(HttpConfig {
        admin_loopback: true,
        ..HttpConfig::default()
    })
    .await;
    // Plain HTTP: an unsigned admin request from 127.0.0.1 is the operator.
    let plain = Https::start_with(&env, None).await;
    let tcp = TcpStream::connect(plain.addr).await.unwrap();
    assert_eq!(raw_get(tcp, "/admin/users").await, "HTTP/1.1 200 OK");
    plain.stop().await;

    // The same over TLS.
    let pki = self_signed();
    let https = Https::start(&env, &pki).await;
    let mut roots = rustls::RootCertStore::empty();
    for c in retz_scheduler::tls::load_certs(&pki.trust).unwrap() {
        roots.add(c).unwrap();
    }
    let client_cfg = rustls::ClientConfig::builder_with_provider(retz_scheduler::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let tcp = TcpStream::connect(https.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(raw_get(tls, "/admin/users").await, "HTTP/1.1 200 OK");
    https.stop().await;
}

fn server_config(data_dir: &Path, pki: &Pki) -> ServerConfig {
    let mut cfg = ServerConfig::default();
    cfg.server.bind = "127.0.0.1:0".parse().unwrap();
    cfg.server.data_dir = Some(data_dir.to_owned());
    cfg.server.tls_cert = Some(pki.cert.clone());
    cfg.server.tls_key = Some(pki.key.clone());
    // Nothing listens there: the Mesos client keeps retrying in the background, which
    // does not concern the HTTP API.
    cfg.mesos.masters = vec!["127.0.0.1:1".into()];
    cfg
}

#[tokio::test]
async fn a_tls_server_writes_an_https_client_toml_that_trusts_it() {
    let pki = self_signed();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(server_config(data.path(), &pki))
        .await
        .unwrap();
    assert!(server.https());
    assert!(
        server.url().starts_with("https://127.0.0.1:"),
        "{}",
        server.url()
    );
    let path = server.client_config().unwrap().to_owned();
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = retz_client::config::parse(&text, &path).unwrap();
    assert_eq!(
        cfg.server,
        format!("https://127.0.0.1:{}", server.addr().port())
    );
    assert_eq!(cfg.ca_cert.as_deref(), Some(pki.cert.as_path()));
    let client = Client::new(cfg).unwrap();
    assert!(client.ping().await.unwrap().contains("OK"));
    client.list_jobs(JobState::Queued, None).await.unwrap();
    assert!(client.list_users().await.unwrap().len() == 1);
    // Stops although the client keeps an idle keep-alive connection open.
    server.stop().await;
    assert!(client.ping().await.is_err(), "still serving after stop");
}

#[tokio::test]
async fn unusable_certificate_or_key_files_are_startup_errors_naming_the_key() {
    let pki = self_signed();
    let other = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let key_text = std::fs::read_to_string(&pki.key).unwrap();
    let cert_text = std::fs::read_to_string(&pki.cert).unwrap();
    let cases: Vec<(&str, PathBuf, PathBuf, &str)> = vec![
        (
            "missing cert",
            dir.path().join("missing.pem"),
            pki.key.clone(),
            "server.tls_cert: cannot read",
        ),
        (
            "missing key",
            pki.cert.clone(),
            dir.path().join("missing-key.pem"),
            "server.tls_key: cannot read",
        ),
        (
            "no certificate in the cert file",
            write(dir.path(), "only-key.pem", &key_text),
            pki.key.clone(),
            "server.tls_cert",
        ),
        (
            "no key in the key file",
            pki.cert.clone(),
            write(dir.path(), "only-cert.pem", &cert_text),
            "server.tls_key",
        ),
        (
            "a broken key",
            pki.cert.clone(),
            write(
                dir.path(),
                "broken.pem",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            "server.tls_key",
        ),
        (
            "a key of another certificate",
            pki.cert.clone(),
            other.key.clone(),
            "does not belong to the certificate",
        ),
    ];
    for (what, cert, key, expected) in cases {
        let data = dir.path().join(format!("data-{}", what.replace(' ', "-")));
        let mut cfg = server_config(&data, &pki);
        cfg.server.tls_cert = Some(cert.clone());
        cfg.server.tls_key = Some(key.clone());
        let e = match Server::start(cfg).await {
            Ok(s) => {
                s.stop().await;
                panic!("{what}: the server started");
            }
            Err(e) => e,
        };
        assert!(matches!(e, ServerError::Tls(_)), "{what}: {e:?}");
        let text = e.to_string();
        assert!(text.contains(expected), "{what}: {text}");
        assert!(
            text.contains(&cert.display().to_string()) || text.contains(&key.display().to_string()),
            "{what}: the file is named: {text}"
        );
        assert!(
            !data.exists(),
            "{what}: nothing was created before the check"
        );
    }
    let _ = (&pki.dir, &other.dir);
}

#[test]
fn no_aws_lc_in_the_lock_file() {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(
        !text.contains("aws-lc"),
        "Cargo.lock holds aws-lc-rs; TLS must use the ring provider only"
    );
}
