//! Walks the quickstart's steps: the embedded local cluster on this machine, jobs placed by
//! the NUMA engine and run by the real retz-executor, each pinned to the CPUs it was granted.

use std::path::PathBuf;
use std::time::Duration;

use retz_e2e_tests::quickstart::{JobResult, Options, run};

/// `target/<profile>/retz-executor`, built by `cargo test --workspace` (the executor
/// package's own tests need its binary).
fn executor_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/quickstart-<hash>
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("retz-executor"))
        .expect("target layout")
}

fn cpus_allowed(r: &JobResult) -> String {
    r.stdout
        .split("Cpus_allowed_list:")
        .nth(1)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_jobs_run_pinned_to_their_grants() {
    let executor = executor_binary();
    if !executor.is_file() {
        let msg = format!(
            "{} is missing: run `cargo build -p retz-executor` (cargo test --workspace builds it)",
            executor.display()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("skipping: {msg}");
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        executor,
        work_dir: work.path().to_path_buf(),
        jobs: 2,
        cpus_per_job: 1,
        timeout: Duration::from_secs(120),
    };
    let results = run(&opts).await.expect("quickstart runs");
    assert_eq!(results.len(), 2);
    let mut seen = Vec::new();
    for r in &results {
        assert_eq!(r.state, "TASK_FINISHED", "job {}: {:?}", r.job_id, r);
        assert!(
            r.stdout.contains("RETZ_CPU=1 "),
            "job {}: {}",
            r.job_id,
            r.stdout
        );
        assert!(
            r.stdout.contains(&format!("RETZ_CPUSET={} ", r.cpuset)),
            "job {} granted {} but printed {}",
            r.job_id,
            r.cpuset,
            r.stdout
        );
        assert_eq!(
            cpus_allowed(r),
            r.cpuset,
            "job {} is pinned to its grant",
            r.job_id
        );
        seen.push(r.cpuset.clone());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        2,
        "two 1-CPU jobs on a 2-CPU machine get different CPUs"
    );
}
