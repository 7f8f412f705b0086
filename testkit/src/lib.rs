//! The one rule every Retz test follows when something it needs is missing (root, cgroups,
//! PostgreSQL, python3, a tool, the shared topologies): on a developer's machine it skips
//! with a line on stderr; under `CI=true` a missing capability is a failure, never a skip.
//! Tests used to carry a dozen private copies of this check.

/// Whether the suite runs in CI (`CI=true`).
pub fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `ok`, or: under CI a panic naming `what`; elsewhere `false` after a "skipping" line.
/// Use as `if !require(has_root(), "needs root") { return; }`.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    assert!(
        !under_ci(),
        "{what} (CI=true: a missing capability is a failure, not a skip)"
    );
    eprintln!("skipping: {what}");
    false
}

/// The XML files of hwloc's own test set (`$RETZ_HWLOC_TESTSET`, fetched by
/// `scripts/lib/hwloc_testset.sh`), sorted; `None` after [`require`] when it is not there.
pub fn hwloc_testset() -> Option<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::env::var_os("RETZ_HWLOC_TESTSET")
        .and_then(|d| std::fs::read_dir(d).ok())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .collect()
        })
        .unwrap_or_default();
    let what = "hwloc's XML test set (RETZ_HWLOC_TESTSET, set by scripts/lib/hwloc_testset.sh)";
    if !require(!files.is_empty(), what) {
        return None;
    }
    files.sort();
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_capabilities_pass_and_missing_ones_follow_ci() {
        assert!(require(true, "anything"));
        if under_ci() {
            let r = std::panic::catch_unwind(|| require(false, "a tool"));
            let msg = r.unwrap_err();
            let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains("a tool") && msg.contains("CI=true"), "{msg}");
        } else {
            assert!(!require(false, "a tool"));
        }
    }
}
