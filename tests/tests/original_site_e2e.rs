//! An original Retz 0.4 site, end to end: `retz-server` started from the site's own
//! `retz.properties` (admin access key and secret, a `jdbc:postgresql:` URL with
//! `retz.database.user`/`.pass`, GC settings, a host name in `retz.bind`, the framework's
//! `retz.mesos.secret.file`) against the test PostgreSQL, clients using an original client
//! `retz.properties`, `retz-admin` reading the server's file, and the one-line stops of
//! what cannot carry over (an H2 database, another secret for the admin key).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use retz_e2e_tests::{
    MesosLocal, Proc, binary, free_port, fresh_database, psql, stdout_ok, test_database_url,
    wait_for_port, wait_until,
};

const LONG: Duration = Duration::from_secs(180);
const KEY: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "fedcba9876543210fedcba9876543210";

fn run(bin: &str, package: &str, args: &[&str]) -> Output {
    Command::new(binary(package, bin))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"))
}

fn ok(bin: &str, package: &str, args: &[&str]) -> String {
    stdout_ok(bin, args, &run(bin, package, args))
}

fn client(props: &Path, args: &[&str]) -> Output {
    let mut all = vec!["-C", props.to_str().unwrap()];
    all.extend_from_slice(args);
    run("retz-client", "retz-client", &all)
}

fn client_ok(props: &Path, args: &[&str]) -> String {
    let mut all = vec!["-C", props.to_str().unwrap()];
    all.extend_from_slice(args);
    ok("retz-client", "retz-client", &all)
}

/// The test PostgreSQL (`RETZ_TEST_DATABASE_URL`, which scripts/test.sh sets) with a fresh
/// database of this test: (psql admin URL, host:port, user, password, database name).
fn test_database() -> Option<(String, String, String, String, String)> {
    let url = test_database_url()?;
    // postgres://USER:PASS@HOST:PORT/DB
    let rest = url.strip_prefix("postgres://").expect("postgres:// URL");
    let (auth, rest) = rest.split_once('@').expect("USER:PASS@");
    let (user, pass) = auth.split_once(':').expect("USER:PASS");
    let (hostport, _) = rest.split_once('/').expect("HOST:PORT/DB");
    let name = format!("retz_original_{}", std::process::id());
    fresh_database(&url, &name);
    Some((url.clone(), hostport.into(), user.into(), pass.into(), name))
}

#[test]
fn an_original_site_runs_from_its_own_properties_files() {
    let Some((admin_url, hostport, user, pass, db)) = test_database() else {
        return;
    };
    let dir = retz_e2e_tests::test_dir();
    let mesos = MesosLocal::start(dir.path(), 1, Some("pack:1 numa:1 core:2 pu:1"));
    let port = free_port();
    let server_props = dir.path().join("retz.properties");
    let write_server_props = |secret: &str, database: &str| {
        std::fs::write(
            &server_props,
            format!(
                "# an original retz-server/etc/retz.properties\n\
                 retz.mesos = {mesos}\n\
                 retz.mesos.principal = {principal}\n\
                 retz.mesos.secret.file = {secret_file}\n\
                 retz.bind = http://localhost:{port}\n\
                 retz.user = {job_user}\n\
                 retz.authentication = true\n\
                 retz.access.key = {KEY}\n\
                 retz.access.secret = {secret}\n\
                 retz.database.url = {database}\n\
                 retz.database.driver = org.postgresql.Driver\n\
                 retz.database.user = {user}\n\
                 retz.database.pass = {pass}\n\
                 retz.max.running = 8\n\
                 retz.max.stock = 16\n\
                 retz.max.disk = 256\n\
                 retz.planner.name = fifo\n\
                 retz.job-queue.type = fit\n\
                 retz.jmx.port = 9999\n\
                 retz.gc = true\n\
                 retz.gc.leeway = 20\n\
                 retz.gc.interval = 1\n",
                mesos = mesos.addr,
                principal = retz_e2e_tests::MESOS_PRINCIPAL,
                secret_file = mesos.credentials.display(),
                job_user = retz_e2e_tests::job_user(),
            ),
        )
        .unwrap();
    };
    let jdbc = format!("jdbc:postgresql://{hostport}/{db}");
    write_server_props(SECRET, &jdbc);
    let executor = binary("retz-executor", "retz-executor");
    let server_args = [
        "-C".to_owned(),
        server_props.display().to_string(),
        "--executor".to_owned(),
        executor.display().to_string(),
    ];
    let server = Proc::spawn(
        &binary("retz-scheduler", "retz-server"),
        &server_args,
        &dir.path().join("server.log"),
        &[("RUST_LOG", "info")],
    );
    wait_for_port(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(60),
    );
    let log = server.log_text();
    for key in [
        "retz.max.stock",
        "retz.planner.name",
        "retz.job-queue.type",
        "retz.jmx.port",
    ] {
        assert!(
            log.lines().any(|l| l.contains("WARN") && l.contains(key)),
            "{key} is noted in one warning: {log}"
        );
    }

    // The original client's own properties file.
    let client_props = dir.path().join("client.properties");
    std::fs::write(
        &client_props,
        format!(
            "retz.server.uri = http://localhost:{port}\nretz.authentication = true\n\
             retz.access.key = {KEY}\nretz.access.secret = {SECRET}\nretz.tls.insecure = false\n"
        ),
    )
    .unwrap();
    client_ok(&client_props, &["load-app", "-A", "original"]);
    let out = client_ok(
        &client_props,
        &[
            "run",
            "-A",
            "original",
            "-cmd",
            "echo hello from an original site",
        ],
    );
    assert!(out.contains("hello from an original site"), "{out}");
    let jobs: serde_json::Value = serde_json::from_str(&client_ok(
        &client_props,
        &["list", "--states", "ALL", "--json"],
    ))
    .unwrap();
    let list = jobs.as_array().or_else(|| jobs["jobs"].as_array()).unwrap();
    let id = list
        .iter()
        .find(|j| j["state"] == "FINISHED")
        .and_then(|j| j["id"].as_u64())
        .unwrap_or_else(|| panic!("a finished job in {jobs}"));

    // retz-admin reads the server's own retz.properties, as the original did; usage
    // with its defaults and with date-only bounds, against this real server.
    let props = server_props.to_str().unwrap();
    let usage: serde_json::Value =
        serde_json::from_str(&ok("retz-admin", "retz-client", &["-C", props, "usage"])).unwrap();
    assert!(
        usage.as_array().unwrap().iter().any(|j| j["id"] == id),
        "usage with its defaults lists job {id}: {usage}"
    );
    let dated: serde_json::Value = serde_json::from_str(&ok(
        "retz-admin",
        "retz-client",
        &[
            "-C",
            props,
            "usage",
            "--start",
            "2017-01-01",
            "--end",
            "9999-12-32",
        ],
    ))
    .unwrap();
    assert!(
        dated.as_array().unwrap().iter().any(|j| j["id"] == id),
        "{dated}"
    );
    let none: serde_json::Value = serde_json::from_str(&ok(
        "retz-admin",
        "retz-client",
        &[
            "-C",
            props,
            "usage",
            "--start",
            "2000-01-01",
            "--end",
            "2001-01-01",
        ],
    ))
    .unwrap();
    assert_eq!(none, serde_json::json!([]), "nothing ended in 2000");

    // Raw requests as the 0.4 Java client sends them: the envelope, signed.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let signed = |method: &str, path: &str, body: &str| {
        use retz_proto::api::auth;
        let date = auth::now_date();
        let md5 = if body.is_empty() {
            String::new()
        } else {
            auth::content_md5(body.as_bytes())
        };
        let sig = auth::sign(SECRET, &auth::string_to_sign(method, &md5, &date, path));
        let authz = auth::authorization(KEY, &sig);
        let mut headers = vec![
            ("Date", date.as_str()),
            ("Authorization", authz.as_str()),
            ("Content-Type", "application/json"),
        ];
        if !md5.is_empty() {
            headers.push(("Content-MD5", md5.as_str()));
        }
        let (status, text) =
            retz_e2e_tests::http_request(addr, method, path, &headers, body.as_bytes());
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        (status, v)
    };
    let (status, v) = signed(
        "POST",
        "/jobs",
        r#"{"command":"list","version":"0.2.1","state":"FINISHED","tag":null}"#,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["command"], &v["status"]),
        (&serde_json::json!("list"), &serde_json::json!("ok")),
        "{v}"
    );
    assert!(
        v["jobs"].as_array().unwrap().iter().any(|j| j["id"] == id),
        "{v}"
    );
    let (status, v) = signed("GET", "/status", "");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "ok", "{v}");
    assert!(
        v["totalOffered"]["cpu"].is_u64() && v["totalUsed"]["memMB"].is_u64(),
        "{v}"
    );
    // The local agent's free memory and ports are counted, not left at 0.
    assert!(
        v["totalOffered"]["memMB"].as_u64() > Some(0)
            && v["totalOffered"]["ports"].as_u64() > Some(0),
        "{v}"
    );

    // retz.max.disk is enforced at submission, the limit named.
    let big = client(
        &client_props,
        &[
            "schedule", "-A", "original", "-cmd", "true", "--disk", "512",
        ],
    );
    assert!(!big.status.success());
    let err = String::from_utf8_lossy(&big.stderr);
    assert!(err.contains("diskMB") && err.contains("256"), "{err}");

    // The periodic GC (retz.gc.leeway 20 s, every second) deletes the finished job.
    wait_until("the GC deletes the finished job", LONG, || {
        let all = client_ok(&client_props, &["list", "--states", "ALL", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&all).ok()?;
        let list = v.as_array().or_else(|| v["jobs"].as_array())?.clone();
        (!list.iter().any(|j| j["id"] == id)).then_some(())
    });
    drop(server);

    // What cannot carry over stops the server with one line naming the key.
    let stop = |what: &str, want: &[&str]| {
        let out = run(
            "retz-server",
            "retz-scheduler",
            &["-C", server_props.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(1), "{what}");
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| want.iter().all(|w| l.contains(w)))
            .unwrap_or_else(|| panic!("{what}: one line naming {want:?}: {err}"));
        assert!(!line.is_empty());
    };
    write_server_props("another-secret", &jdbc);
    stop("another secret", &["retz.access.secret", KEY]);
    write_server_props(SECRET, "jdbc:h2:mem:retz-server;DB_CLOSE_DELAY=-1");
    stop(
        "an H2 database",
        &["retz.database.url", "retz-admin import", "--data-dir"],
    );
    drop(mesos);
    psql(
        &admin_url,
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}
