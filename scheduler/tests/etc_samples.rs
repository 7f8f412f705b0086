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
