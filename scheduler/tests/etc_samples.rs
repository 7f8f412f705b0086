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
