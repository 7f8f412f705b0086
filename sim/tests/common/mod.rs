//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$RETZ_SHARED_DIR`, else `../../shared` from the crate.
pub fn shared_dir() -> PathBuf {
    std::env::var("RETZ_SHARED_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        PathBuf::from,
    )
}

/// The HPC2N trace, or `None` (after saying so) when the shared data is missing outside CI.
pub fn hpc2n() -> Option<PathBuf> {
    let p = shared_dir().join("traces/hpc2n.swf");
    if p.exists() {
        return Some(p);
    }
    retz_testkit::require(
        false,
        &format!("{} not found (set RETZ_SHARED_DIR)", p.display()),
    );
    None
}

/// Every file of a directory with its bytes, sorted by name.
pub fn dir_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Asserts two `dir_bytes` listings hold the same names and bytes, naming what differs
/// (without dumping the bytes).
pub fn assert_same_files(a: &[(String, Vec<u8>)], b: &[(String, Vec<u8>)]) {
    let na: Vec<&str> = a.iter().map(|f| f.0.as_str()).collect();
    let nb: Vec<&str> = b.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(na, nb, "different files");
    let differ: Vec<&str> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.1 != y.1)
        .map(|(x, _)| x.0.as_str())
        .collect();
    assert!(differ.is_empty(), "files differ between runs: {differ:?}");
}
