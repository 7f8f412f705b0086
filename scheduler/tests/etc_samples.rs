//! The `etc/retz.toml` sample parses, validates, and differs from the defaults only where
//! it says so.

use std::path::Path;

use retz_scheduler::config::ServerConfig;

#[test]
fn sample_retz_toml_parses_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/retz.toml");
    let c = ServerConfig::load(&path).unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.server.data_dir.as_deref(),
        Some(Path::new("/var/lib/retz"))
    );
    assert_eq!(c.database_url().unwrap(), "sqlite:///var/lib/retz/retz.db");
    let mut expected = ServerConfig::default();
    expected.server.data_dir = c.server.data_dir.clone();
    assert_eq!(c, expected, "the sample documents the defaults");
}

/// Every key the sample shows only as a comment (`# key = value`) parses when uncommented,
/// and the security keys are documented.
#[test]
fn commented_keys_of_the_sample_parse_when_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/retz.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    for key in [
        "default_user",
        "allowed_users",
        "executor_user",
        "secret_file",
        "work_dir",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} = "))),
            "etc/retz.toml documents {key}"
        );
    }
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }) =>
            {
                rest.to_owned()
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("retz.toml");
    // `synthetic` and `xml` exclude each other: keep the first.
    std::fs::write(&all, uncommented.replace("\nxml = ", "\n# xml = ")).unwrap();
    let c = ServerConfig::load(&all).unwrap();
    c.validate().unwrap();
    assert_eq!(c.jobs.default_user.as_deref(), Some("nobody"));
    assert!(c.jobs.allowed_users.is_empty());
    assert_eq!(c.mesos.executor_user.as_deref(), Some("root"));
    assert_eq!(
        c.mesos.secret_file.as_deref(),
        Some(Path::new("/etc/retz/mesos-secret"))
    );
    assert_eq!(
        c.local.work_dir.as_deref(),
        Some(Path::new("/var/lib/retz-work"))
    );
    // The sample's default work dir is where it says.
    let sample = ServerConfig::load(&path).unwrap();
    assert_eq!(sample.local_work_dir(), Some("/var/lib/retz-work".into()));
    let users = c.launch_users_for((0, Some("root"))).unwrap();
    assert_eq!(users.default_user, "nobody");
}

#[test]
fn a_retz_sim_policy_file_loads_as_the_placement_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("best-policy.toml");
    std::fs::write(
        &path,
        "# written by retz-sim tune\n[placement]\nname = \"tuned\"\ncandidates = 4\n\
         [placement.weights]\ncross_node = 7.5\n",
    )
    .unwrap();
    let mut c = ServerConfig::default();
    c.load_policy(&path).unwrap();
    assert_eq!(c.placement.name, "tuned");
    assert_eq!(c.placement.candidates, 4);
    assert_eq!(c.placement.weights.cross_node, 7.5);
    std::fs::write(&path, "[placement]\ncandidats = 4\n").unwrap();
    let e = c.load_policy(&path).unwrap_err().to_string();
    assert!(e.contains("candidats"), "{e}");
}
