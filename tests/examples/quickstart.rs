//! The quickstart's main job: pinned jobs on the embedded local cluster.
//! `cargo run --release -p retz-e2e-tests --example quickstart -- --help`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use retz_e2e_tests::quickstart::{Options, run};

/// Start the embedded local Mesos cluster on this machine, place a few jobs with the NUMA
/// placement engine and run them pinned through retz-executor; print what each job saw.
#[derive(Parser, Debug)]
#[command(name = "quickstart")]
struct Cli {
    /// The retz-executor binary (default: next to this program's target directory).
    #[arg(long)]
    executor: Option<PathBuf>,
    /// Work directory for the local cluster's sandboxes.
    #[arg(long, default_value = "/tmp/retz-quickstart")]
    work_dir: PathBuf,
    /// Number of jobs.
    #[arg(long, default_value_t = 2)]
    jobs: u64,
    /// CPUs per job.
    #[arg(long, default_value_t = 1)]
    cpus: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let executor = cli.executor.unwrap_or_else(default_executor);
    let opts = Options {
        executor,
        work_dir: cli.work_dir,
        jobs: cli.jobs,
        cpus_per_job: cli.cpus,
        timeout: Duration::from_secs(cli.timeout),
    };
    match run(&opts).await {
        Ok(results) => {
            let mut ok = true;
            for r in &results {
                println!(
                    "job {}: granted CPUs {} -> {}\n    {}",
                    r.job_id,
                    r.cpuset,
                    r.state,
                    r.stdout.trim()
                );
                ok &= r.state == "TASK_FINISHED";
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `target/<profile>/retz-executor`, found from this example's own path
/// (`target/<profile>/examples/quickstart`).
fn default_executor() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|d| d.join("retz-executor")))
        .unwrap_or_else(|| PathBuf::from("retz-executor"))
}
