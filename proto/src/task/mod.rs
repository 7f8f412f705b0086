//! The task contract between `retz-server` and `retz-executor`, typed once for both.
//!
//! Owns what the server asks of a task ([`TaskSpec`], carried as JSON in
//! `TaskInfo.data`) and what the executor answers ([`TaskReport`], JSON in
//! `TaskStatus.data` of TASK_RUNNING and of the terminal state): the exit code or signal,
//! the pinning it verified ([`VerifiedPinning`]: mechanism, CPUs and memory nodes seen,
//! drift) and the processes left behind. CPU and node lists are retz-placement's
//! [`CpuSet`](retz_placement::CpuSet) and [`NodeSet`](retz_placement::NodeSet) (the Linux
//! list format on the wire), the policy is its [`AffinityPolicy`](retz_placement::AffinityPolicy).
//!
//! Both sides read with `from_slice`, which never panics and names the problem, and
//! write with `to_vec`; the JSON shapes are backward compatible with the hand-written
//! ones of earlier executors (`{"exit_code":N}`, `{"leftovers":N}`, `work_dir`).

mod report;
mod spec;
#[cfg(test)]
mod tests;

pub use report::{PinMechanism, ReportError, TaskReport, Verification, VerifiedPinning};
pub use spec::{DEFAULT_APP, MemPolicy, SpecError, TaskSpec, ValidSpec, is_safe_component};

/// Fuzz entry point: parses `data` as a spec and as a report; never panics, and whatever
/// parses serialises back to an equal value.
pub fn fuzz(data: &[u8]) {
    if let Ok(spec) = TaskSpec::from_slice(data) {
        assert_eq!(
            TaskSpec::from_slice(&spec.to_vec()).ok().as_ref(),
            Some(&spec),
            "a task spec does not round-trip"
        );
        let _ = spec.validate();
    }
    if let Ok(report) = TaskReport::from_slice(data) {
        assert_eq!(
            TaskReport::from_slice(&report.to_vec()).ok().as_ref(),
            Some(&report),
            "a task report does not round-trip"
        );
        if let Some(p) = &report.pinning {
            let _ = p.summary();
        }
    }
}
