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
