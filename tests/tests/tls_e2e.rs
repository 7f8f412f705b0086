//! HTTPS end to end with real processes: `retz-server --local --data-dir D -C retz.toml`
//! whose `[server]` names a self-signed certificate (made here with rcgen), then
//! `retz-client -C D/client.toml list` and `retz-admin` over https, a user config from
//! `create-user` that trusts the server too, a config without `ca_cert` refused with the
//! connection-error exit code and accepted with `--ca-cert`, and a key that does not
//! match the certificate refused at startup with the config key named.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use retz_e2e_tests::{Server, admin_ok, binary, client, client_ok, free_port, wait_until};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes a self-signed certificate for localhost/127.0.0.1 and its key into `dir`.
fn self_signed(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("generate a certificate");
    let cert = dir.join(format!("{stem}-cert.pem"));
    let key = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

fn retz_toml(dir: &Path, cert: &Path, key: &Path) -> PathBuf {
    let path = dir.join("retz.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .expect("write retz.toml");
    path
}

#[test]
fn the_admin_client_toml_of_a_tls_server_works_over_https() {
    let tmp = retz_e2e_tests::test_dir();
    let (cert, key) = self_signed(tmp.path(), "server");
    let config = retz_toml(tmp.path(), &cert, &key);
    let data = tmp.path().join("data");
    let server = Server::start(&data, &["--local", "-C", config.to_str().expect("utf-8")]);

    let admin_toml = std::fs::read_to_string(&server.client_config).expect("client.toml");
    assert!(
        admin_toml.contains(&format!(
            "server = \"https://127.0.0.1:{}\"",
            server.addr.port()
        )),
        "{admin_toml}"
    );
    assert!(
        admin_toml.contains(&format!("ca_cert = {:?}", cert.display().to_string())),
        "{admin_toml}"
    );
    wait_until(
        "the server says it listens on https",
        Duration::from_secs(60),
        || {
            server
                .proc
                .log_text()
                .contains("listening on https://127.0.0.1:")
                .then_some(())
        },
    );

    // The admin: retz-client and retz-admin over https.
    let listed = client_ok(&server.client_config, &["list"]);
    assert!(listed.starts_with("TaskId"), "{listed}");
    let users = admin_ok(&server.client_config, &["list-user"]);
    assert!(users.contains("admin"), "{users}");

    // A new user's config trusts the server as the admin's does.
    let created = admin_ok(&server.client_config, &["create-user", "--info", "alice"]);
    assert!(created.contains("ca_cert"), "{created}");
    let alice = tmp.path().join("alice.toml");
    std::fs::write(&alice, &created).expect("write alice.toml");
    client_ok(&alice, &["list"]);

    // Without ca_cert: the certificate is not trusted, exit 3 with the way out named...
    let untrusting = tmp.path().join("untrusting.toml");
    let without: String = created
        .lines()
        .filter(|l| !l.starts_with("ca_cert"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&untrusting, without).expect("write untrusting.toml");
    let out = client(&untrusting, &["list"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("does not accept") && err.contains("--ca-cert"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // ... and --ca-cert fixes it.
    client_ok(
        &untrusting,
        &["--ca-cert", cert.to_str().expect("utf-8"), "list"],
    );

    // Plain http to the https port: a connection error, and the server carries on.
    let plain = tmp.path().join("plain.toml");
    std::fs::write(
        &plain,
        created
            .replace("https://", "http://")
            .lines()
            .filter(|l| !l.starts_with("ca_cert"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .expect("write plain.toml");
    let out = client(&plain, &["list"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    client_ok(&server.client_config, &["list"]);
}

#[test]
fn a_key_that_does_not_match_the_certificate_stops_the_server_at_startup() {
    let tmp = retz_e2e_tests::test_dir();
    let (cert, _) = self_signed(tmp.path(), "server");
    let (_, other_key) = self_signed(tmp.path(), "other");
    let config = retz_toml(tmp.path(), &cert, &other_key);
    let data = tmp.path().join("data");
    let out = Command::new(binary("retz-scheduler", "retz-server"))
        .args([
            "--local",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--bind",
            &format!("127.0.0.1:{}", free_port()),
            "-C",
            config.to_str().expect("utf-8"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run retz-server");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("server.tls_key") && err.contains("does not belong to the certificate"),
        "{err}"
    );
    assert!(
        !data.exists(),
        "nothing is created before the certificate is checked"
    );
}
