//! Unit tests of the server config (TOML, properties, validation) (`config.rs`).

use super::*;

#[test]
fn empty_file_is_the_defaults_and_valid_with_a_data_dir() {
    let c: ServerConfig = toml::from_str("").unwrap();
    assert_eq!(c, ServerConfig::default());
    c.validate().unwrap();
    assert!(c.database_url().is_err());
    let mut c = c;
    c.server.data_dir = Some("/var/lib/retz".into());
    assert_eq!(c.database_url().unwrap(), "sqlite:///var/lib/retz/retz.db");
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let e = toml::from_str::<ServerConfig>("[server]\nbnd = \"x\"").unwrap_err();
    assert!(e.to_string().contains("bnd"), "{e}");
    let mut c = ServerConfig::default();
    c.mesos.user = Some("root".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("mesos.user"), "{e}");
    let mut c = ServerConfig::default();
    c.server.database = Some("mysql://x".into());
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("server.database")
    );
    let mut c = ServerConfig::default();
    c.planner.window = 0;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("planner.window"), "{e}");
    let e = toml::from_str::<ServerConfig>("[planner]\naffinity = \"numa-stric\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("numa-stric"), "{e}");
}

#[test]
fn original_properties_map_onto_the_sections() {
    let c = ServerConfig::from_properties(
        "retz.mesos = 10.0.0.1:5050,10.0.0.2:5050\nretz.bind = http://10.0.0.9:9090\n\
         retz.mesos.refuse = 7\nretz.user = batch\nretz.max.running = 64\n\
         retz.max.cpus = 32\nretz.max.gpus = 2\nretz.access.key = deadbeef\nretz.access.secret = s\n\
         retz.database.url = jdbc:postgresql://db:5432/retz\nretz.jmx.port = 9999\n",
    )
    .unwrap();
    assert_eq!(c.mesos.masters, ["10.0.0.1:5050", "10.0.0.2:5050"]);
    assert_eq!(c.server.bind, "10.0.0.9:9090".parse().unwrap());
    assert_eq!(c.mesos.refuse_seconds, 7.0);
    assert_eq!(c.jobs.default_user.as_deref(), Some("batch"));
    assert_eq!(c.planner.max_running, 64);
    assert_eq!(c.limits.max_cpus, 32);
    assert!(c.mesos.gpus);
    assert_eq!(c.server.admin_keys, ["deadbeef"]);
    assert_eq!(
        c.server.database.as_deref(),
        Some("postgres://db:5432/retz")
    );
    c.validate().unwrap();
    let e = ServerConfig::from_properties("retz.max.running = lots").unwrap_err();
    assert!(e.to_string().contains("retz.max.running"), "{e}");
    let c = ServerConfig::from_properties("retz.mesos = zk://a:2181,b:2181/mesos").unwrap();
    assert_eq!(c.mesos.masters, ["zk://a:2181,b:2181/mesos"]);
}

/// The one properties reader: a continued line (which the old loop cut at the
/// backslash) and an error that names its line.
#[test]
fn properties_continuation_lines_and_line_numbers() {
    let c = ServerConfig::from_properties(
        "retz.mesos = 10.0.0.1:5050,\\\n    10.0.0.2:5050\nretz.user = batch\n",
    )
    .unwrap();
    assert_eq!(c.mesos.masters, ["10.0.0.1:5050", "10.0.0.2:5050"]);
    assert_eq!(c.jobs.default_user.as_deref(), Some("batch"));
    let e = ServerConfig::from_properties("retz.user = a\nretz.role = \\u00zz\n").unwrap_err();
    assert!(
        matches!(e, ConfigError::Properties(ref p) if p.line() == 2),
        "{e}"
    );
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn https_in_properties_needs_pem_files() {
    let c = ServerConfig::from_properties(
        "retz.bind = https://127.0.0.1:9443\nretz.tls.cert = /etc/retz/cert.pem\n\
         retz.tls.key = /etc/retz/key.pem\nretz.tls.insecure = false\n",
    )
    .unwrap();
    assert_eq!(c.server.bind, "127.0.0.1:9443".parse().unwrap());
    assert_eq!(c.server.tls_cert, Some(PathBuf::from("/etc/retz/cert.pem")));
    assert_eq!(c.server.tls_key, Some(PathBuf::from("/etc/retz/key.pem")));
    c.validate().unwrap();
    let e = ServerConfig::from_properties(
        "retz.bind = https://127.0.0.1:9443\nretz.tls.keystore.file = /k.jks\n\
         retz.tls.keystore.pass = x\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("retz.bind") && e.contains("keystore") && e.contains("retz.tls.cert"),
        "{e}"
    );
    let e = ServerConfig::from_properties("retz.bind = https://127.0.0.1:9443\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no certificate is named"), "{e}");
    let e = ServerConfig::from_properties(
        "retz.bind = http://127.0.0.1:9090\nretz.tls.cert = c.pem\nretz.tls.key = k.pem\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not https://"), "{e}");
}

#[test]
fn root_is_refused_as_a_job_user_in_every_spelling_with_the_key_named() {
    for root in ["root", " root", "ROOT", "0", "Root ", "000"] {
        let mut c = ServerConfig::default();
        c.jobs.default_user = Some(root.into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("config: jobs.default_user:") && e.contains("root"),
            "{root:?}: {e}"
        );
        let mut c = ServerConfig::default();
        c.jobs.allowed_users = vec!["alice".into(), root.into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("config: jobs.allowed_users:") && e.contains("root"),
            "{root:?}: {e}"
        );
        let mut c = ServerConfig::default();
        c.mesos.user = Some(root.into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("config: mesos.user:"), "{root:?}: {e}");
    }
    // A name that is uid 0 on this host (root itself always is).
    let mut c = ServerConfig::default();
    c.jobs.allowed_users = vec!["root".into()];
    assert!(c.validate().is_err());
    // Not plain user names.
    for bad in ["", "Alice", "a b", "../x", "1000"] {
        let mut c = ServerConfig::default();
        c.jobs.default_user = Some(bad.into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("config: jobs.default_user:"), "{bad:?}: {e}");
    }
    let mut c = ServerConfig::default();
    c.mesos.executor_user = Some("exec utor".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("config: mesos.executor_user:"), "{e}");
    let mut c = ServerConfig::default();
    c.jobs.default_user = Some("nobody".into());
    c.mesos.user = Some("batch".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("config: mesos.user:"), "{e}");
}

#[test]
fn job_users_default_to_nobody_and_the_executor_to_root() {
    let c: ServerConfig = toml::from_str(
        "[jobs]\nallowed_users = [\"alice\", \"bob\"]\n[mesos]\nexecutor_user = \"root\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    let u = c.launch_users_for((0, Some("root"))).unwrap();
    assert_eq!(u.default_user, "nobody");
    assert_eq!(u.executor_user, "root");
    assert_eq!(u.allowed_users.iter().collect::<Vec<_>>(), ["alice", "bob"]);
    // Not local, not root: the same (agents switch users, not this server).
    let u = ServerConfig::default()
        .launch_users_for((1000, Some("me")))
        .unwrap();
    assert_eq!(
        (u.default_user.as_str(), u.executor_user.as_str()),
        ("nobody", "root")
    );
    // Local and root: nobody; local and not root: the server's own user.
    let mut c = ServerConfig::default();
    c.mesos.local = true;
    let u = c.launch_users_for((0, Some("root"))).unwrap();
    assert_eq!(
        (u.default_user.as_str(), u.executor_user.as_str()),
        ("nobody", "root")
    );
    let u = c.launch_users_for((1000, Some("me"))).unwrap();
    assert_eq!(
        (u.default_user.as_str(), u.executor_user.as_str()),
        ("me", "me")
    );
    let e = c.launch_users_for((1000, None)).unwrap_err().to_string();
    assert!(e.contains("jobs.default_user") && e.contains("1000"), "{e}");
    c.jobs.default_user = Some("batch".into());
    let e = c
        .launch_users_for((1000, Some("me")))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("config: jobs.default_user:") && e.contains("--local"),
        "{e}"
    );
    c.jobs.default_user = Some("me".into());
    assert_eq!(
        c.launch_users_for((1000, Some("me"))).unwrap().default_user,
        "me"
    );
    // The deprecated mesos.user still names the default user.
    let mut c = ServerConfig::default();
    c.mesos.user = Some("batch".into());
    c.validate().unwrap();
    assert_eq!(
        c.launch_users_for((0, Some("root"))).unwrap().default_user,
        "batch"
    );
}

#[test]
fn the_local_work_dir_is_next_to_the_data_dir() {
    let mut c = ServerConfig::default();
    assert_eq!(c.local_work_dir(), None);
    for data in [
        "/nonexistent-retz/data",
        "/nonexistent-retz/data/",
        "/nonexistent-retz/data/.",
    ] {
        c.server.data_dir = Some(data.into());
        assert_eq!(
            c.local_work_dir(),
            Some(PathBuf::from("/nonexistent-retz/data-work")),
            "{data}"
        );
    }
    c.server.data_dir = Some("rel".into());
    let w = c.local_work_dir().unwrap();
    assert!(
        w.is_absolute() && w.ends_with("rel-work"),
        "{}",
        w.display()
    );
    c.local.work_dir = Some("/srv/retz-work".into());
    assert_eq!(c.local_work_dir(), Some(PathBuf::from("/srv/retz-work")));
    c.local.work_dir = Some("".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("config: local.work_dir:"), "{e}");
    let mut c = ServerConfig::default();
    c.mesos.secret_file = Some("".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("config: mesos.secret_file:"), "{e}");
}

#[test]
fn half_a_tls_config_names_the_missing_key() {
    let mut c = ServerConfig::default();
    c.server.tls_cert = Some("cert.pem".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("config: server.tls_key:"), "{e}");
    c.server.tls_cert = None;
    c.server.tls_key = Some("key.pem".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("config: server.tls_cert:"), "{e}");
    c.server.tls_cert = Some("".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("config: server.tls_cert: is empty"), "{e}");
    let c: ServerConfig = toml::from_str(
        "[server]\nadmin_loopback = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
    )
    .unwrap();
    assert!(c.server.admin_loopback);
    c.validate().unwrap();
}

#[test]
fn the_mesos_content_type_is_protobuf_or_json() {
    let c: ServerConfig = toml::from_str("[mesos]\ncontent_type = \"json\"").unwrap();
    assert_eq!(c.mesos.content_type, MesosContentType::Json);
    assert_eq!(
        retz_proto::ContentType::from(c.mesos.content_type),
        retz_proto::ContentType::Json
    );
    assert_eq!(
        ServerConfig::default().mesos.content_type,
        MesosContentType::Protobuf
    );
    let e = toml::from_str::<ServerConfig>("[mesos]\ncontent_type = \"xml\"").unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("xml") && e.contains("protobuf") && e.contains("json"),
        "{e}"
    );
}

fn props(text: &str) -> ServerConfig {
    ServerConfig::from_properties(text).unwrap()
}

fn props_err(text: &str) -> String {
    match ServerConfig::from_properties(text) {
        Ok(c) => c.validate().unwrap_err().to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_access_key_and_secret_name_the_admin_user() {
    let c = props("retz.access.key = deadbeef\nretz.access.secret = cafe\n");
    assert_eq!(c.server.admin_access_key.as_deref(), Some("deadbeef"));
    assert_eq!(c.server.admin_secret.as_deref(), Some("cafe"));
    assert_eq!(c.server.admin_keys, ["deadbeef"]);
    c.validate().unwrap();
    let e = props_err("retz.access.key = deadbeef\n");
    assert!(e.contains("retz.access.secret"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // Without authentication the original needed no secret either.
    props("retz.access.key = deadbeef\nretz.authentication = false\n")
        .validate()
        .unwrap();
    let e = props_err("retz.access.secret = cafe\n");
    assert!(e.contains("retz.access.key"), "{e}");
    let e = props_err("retz.access.key = dead beef\nretz.access.secret = x\n");
    assert!(e.contains("retz.access.key"), "{e}");
}

#[test]
fn a_postgresql_jdbc_url_takes_the_database_user_and_password() {
    let c = props(
        "retz.database.url = jdbc:postgresql://db.example:5433/retz?sslmode=disable\n\
         retz.database.driver = org.postgresql.Driver\n\
         retz.database.user = re tz\nretz.database.pass = p@ss:w/rd\n",
    );
    assert_eq!(
        c.server.database.as_deref(),
        Some("postgres://re%20tz:p%40ss%3Aw%2Frd@db.example:5433/retz?sslmode=disable")
    );
    c.validate().unwrap();
    // The order of the keys does not matter.
    let c = props(
        "retz.database.pass = pw\nretz.database.user = u\n\
         retz.database.url = jdbc:postgresql://db/retz\n",
    );
    assert_eq!(
        c.server.database.as_deref(),
        Some("postgres://u:pw@db/retz")
    );
    let e = props_err("retz.database.url = jdbc:mysql://db/retz\n");
    assert!(e.contains("retz.database.url"), "{e}");
    let e = props_err("retz.database.user = u\n");
    assert!(e.contains("retz.database.url"), "{e}");
    let e = props_err(
        "retz.database.url = jdbc:postgresql://db/retz\nretz.database.driver = com.mysql.Driver\n",
    );
    assert!(e.contains("retz.database.driver"), "{e}");
}

#[test]
fn an_h2_database_stops_the_server_with_the_import_path_unless_a_data_dir_is_given() {
    let c = props("retz.database.url = jdbc:h2:mem:retz-server;DB_CLOSE_DELAY=-1\n");
    let e = c.validate().unwrap_err().to_string();
    for part in [
        "retz.database.url",
        "retz-admin import",
        "--data-dir",
        "migrating-from-retz-0.4.md",
    ] {
        assert!(e.contains(part), "{part}: {e}");
    }
    assert!(!e.contains('\n'), "{e}");
    let mut c = c;
    c.server.data_dir = Some("/var/lib/retz".into());
    c.validate().unwrap();
    assert_eq!(c.database_url().unwrap(), "sqlite:///var/lib/retz/retz.db");
}

#[test]
fn a_host_name_in_retz_bind_is_kept_for_resolution_at_start() {
    let c = props("retz.bind = http://my-hostname:9091\n");
    assert_eq!(c.server.bind_host.as_deref(), Some("my-hostname"));
    assert_eq!(c.server.bind.port(), 9091);
    c.validate().unwrap();
    let c = props("retz.bind = http://localhost:9092/\n");
    assert_eq!(c.server.bind_host.as_deref(), Some("localhost"));
    let c = props("retz.bind = http://[::1]:9093\n");
    assert_eq!(c.server.bind, "[::1]:9093".parse().unwrap());
    assert_eq!(c.server.bind_host, None);
    for bad in [
        "http://my host:9090",
        "http://host",
        "http://host:port",
        "http://:9090",
    ] {
        let e = props_err(&format!("retz.bind = {bad}\n"));
        assert!(e.contains("retz.bind"), "{bad}: {e}");
    }
}

#[test]
fn the_gc_keys_set_the_periodic_gc_with_the_originals_defaults() {
    assert_eq!(ServerConfig::default().gc, GcSection::default());
    assert!(!GcSection::default().enabled);
    let c = props("retz.mesos = m:5050\n");
    assert_eq!(
        c.gc,
        GcSection {
            enabled: true,
            leeway_s: 604_800,
            interval_s: 600
        }
    );
    let c = props("retz.gc = false\nretz.gc.leeway = 60\nretz.gc.interval = 5\n");
    assert_eq!(
        c.gc,
        GcSection {
            enabled: false,
            leeway_s: 60,
            interval_s: 5
        }
    );
    let e = props_err("retz.gc.interval = 0\n");
    assert!(e.contains("retz.gc.interval"), "{e}");
    let e = props_err("retz.gc = sometimes\n");
    assert!(e.contains("retz.gc"), "{e}");
    let t: ServerConfig =
        toml::from_str("[gc]\nenabled = true\nleeway_s = 1\ninterval_s = 2\n").unwrap();
    assert_eq!(t.gc.leeway_s, 1);
}

#[test]
fn keys_mapped_onto_a_close_behaviour_each_leave_a_note() {
    let c = props(
        "retz.max.stock = 16\nretz.job-queue.type = fit\nretz.planner.name = priority2\n\
         retz.jmx.port = 9999\nretz.classpath = /opt/retz-server/lib\nretz.max.queue = 3\n\
         retz.tls.insecure = true\nretz.no.such.key = 1\n",
    );
    for key in [
        "retz.max.stock",
        "retz.job-queue.type",
        "retz.planner.name",
        "retz.jmx.port",
        "retz.classpath",
        "retz.max.queue",
        "retz.tls.insecure",
        "retz.no.such.key",
    ] {
        assert_eq!(
            c.notes.iter().filter(|n| n.starts_with(key)).count(),
            1,
            "{key}: {:?}",
            c.notes
        );
    }
    assert!(c.notes.iter().all(|n| !n.contains('\n')), "{:?}", c.notes);
    let c = props("retz.job-queue.type = all\nretz.job-queue.all.limit = 25\n");
    assert_eq!(c.planner.window, 25);
    let c = props("retz.job-queue.all.limit = -1\n");
    assert_eq!(c.planner.window, PlannerSection::default().window);
    let e = props_err("retz.planner.name = com.example.MyPlanner\n");
    assert!(e.contains("retz.planner.name"), "{e}");
    let e = props_err("retz.job-queue.type = some\n");
    assert!(e.contains("retz.job-queue.type"), "{e}");
    let e = props_err("retz.max.stock = many\n");
    assert!(e.contains("retz.max.stock"), "{e}");
    // A retz.toml has no notes.
    assert!(toml::from_str::<ServerConfig>("").unwrap().notes.is_empty());
}

#[test]
fn the_framework_secret_file_and_the_limits_carry_over() {
    let c = props(
        "retz.mesos.principal = fw\nretz.mesos.secret.file = /etc/retz/secret\n\
         retz.max.disk = 2048\nretz.max.ports = 3\nretz.max.mem = 4096\n",
    );
    assert_eq!(c.mesos.principal, "fw");
    assert_eq!(
        c.mesos.secret_file.as_deref(),
        Some(Path::new("/etc/retz/secret"))
    );
    assert_eq!(c.limits.max_disk_mb, 2048);
    assert_eq!(c.limits.max_ports, 3);
    assert_eq!(c.limits.max_mem_mb, 4096);
}

#[test]
fn https_masters_and_their_ca_file_are_read_from_toml_and_properties() {
    let c: ServerConfig = toml::from_str(
        "[mesos]\nmasters = [\"https://m1:5050\", \"https://m2:5050\"]\n\
         ca_cert = \"/etc/retz/mesos-ca.pem\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.mesos.masters, ["https://m1:5050", "https://m2:5050"]);
    assert_eq!(
        c.mesos.ca_cert.as_deref(),
        Some(Path::new("/etc/retz/mesos-ca.pem"))
    );
    assert_eq!(c.mesos.tls, None);
    let c: ServerConfig =
        toml::from_str("[mesos]\nmasters = [\"zk://z1:2181/mesos\"]\ntls = true\n").unwrap();
    assert_eq!(c.mesos.tls, Some(true));
    assert_eq!(ServerConfig::default().mesos.ca_cert, None);
    let c = props(
        "retz.mesos = https://m1:5050,https://m2:5050\n\
         retz.mesos.ca.cert = /etc/retz/mesos-ca.pem\nretz.mesos.tls = true\n",
    );
    assert_eq!(c.mesos.masters, ["https://m1:5050", "https://m2:5050"]);
    assert_eq!(
        c.mesos.ca_cert.as_deref(),
        Some(Path::new("/etc/retz/mesos-ca.pem"))
    );
    assert_eq!(c.mesos.tls, Some(true));
    let e = props_err("retz.mesos.tls = maybe\n");
    assert!(e.contains("retz.mesos.tls") && !e.contains('\n'), "{e}");
}
