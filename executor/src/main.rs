//! `retz-executor`: started by a Mesos agent with no arguments, it runs as the executor
//! (talking to the agent's executor API and running tasks pinned to their CPUs).
//! Subcommands: `run` (the same, with options), `topology` (print this machine's, or a
//! given, NUMA topology; with `--agent-flags` the Mesos agent flags of the NUMA convention)
//! and `calibrate` (measure placement runtime factors, see `retz_executor::calibrate`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use retz_executor::api::{self, AgentEnv, ExecutorConfig, Exit};
use retz_executor::cgroup::CgroupConfig;
use retz_executor::sandbox::task_key;
use retz_executor::sys::linux::LinuxSys;
use retz_proto::ContentType;
use retz_proto::logging::{self, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "retz-executor",
    version,
    about = "Mesos executor that pins each task to its CPUs (cgroup cpuset + affinity)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run as the executor of a Mesos agent (the default without a subcommand).
    Run(RunArgs),
    /// Print this machine's (or the given) NUMA topology; with `--agent-flags` the Mesos
    /// agent `--resources` and `--attributes` of the Retz NUMA resource convention.
    Topology(retz_topology::TopologyArgs),
    /// Measure this machine's placement runtime factors (remote memory, spanning nodes
    /// and L3 domains, a busy SMT sibling) with a pinned triad; print them in the model
    /// form `retz-sim run --model` reads.
    Calibrate(CalibrateArgs),
}

#[derive(Args, Debug, Clone)]
struct CalibrateArgs {
    /// Working set of the triad, MB (three arrays); the default runs for about 1-2 s on a
    /// machine where every factor can be measured.
    #[arg(long, default_value_t = 32)]
    mb: usize,
    /// Repetitions of each run (the median counts).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Triad passes per run.
    #[arg(long, default_value_t = 4)]
    passes: usize,
    /// A few milliseconds instead (4 MB, 3 repetitions, 2 passes): for tests, not figures.
    #[arg(long)]
    quick: bool,
    /// Also write the model JSON to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn calibrate(a: &CalibrateArgs) -> anyhow::Result<()> {
    use retz_executor::calibrate::{self, kernel::TriadTimer};
    let (mb, reps, passes) = if a.quick {
        (4, 3, 2)
    } else {
        (a.mb, a.reps, a.passes)
    };
    let loaded = retz_topology::load(&retz_topology::TopologySource::ThisMachine)
        .map_err(|e| calibrate::CalibrateError::Topology(e.to_string()))?;
    let topo = retz_placement::Topology::new(loaded.spec)
        .map_err(|e| calibrate::CalibrateError::Topology(e.to_string()))?;
    let plan = calibrate::plan(&topo)?;
    let mut timer = TriadTimer::new(mb, passes)?;
    let v = calibrate::calibrate(&topo, &plan, &mut timer, reps)?;
    let mut text = serde_json::to_string_pretty(&v).context("cannot format the result")?;
    text.push('\n');
    if let Some(out) = &a.out {
        std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?;
    }
    for (f, why) in &plan.unmeasured {
        eprintln!("retz-executor calibrate: {f} not measured: {why}");
    }
    print!("{text}");
    Ok(())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Encoding {
    /// application/x-protobuf
    Protobuf,
    /// application/json (Mesos dialect)
    Json,
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Body encoding of the executor API calls and events.
    #[arg(
        long,
        value_enum,
        default_value = "protobuf",
        env = "RETZ_EXECUTOR_CONTENT_TYPE"
    )]
    content_type: Encoding,
    /// The cgroup filesystem root.
    #[arg(long, default_value = "/sys/fs/cgroup", env = "RETZ_CGROUP_ROOT")]
    cgroup_root: PathBuf,
    /// Parent of the executor's cgroups: relative to the executor's own cgroup, or from
    /// the hierarchy root when it starts with `/`.
    #[arg(long, default_value = "retz", env = "RETZ_CGROUP_PARENT")]
    cgroup_parent: String,
    /// Do not apply the task's memory grant as a cgroup memory limit.
    #[arg(long)]
    no_memory_limit: bool,
    /// Default grace period between SIGTERM and SIGKILL (Mesos syntax, e.g. `3secs`).
    #[arg(long, default_value = "3secs", value_parser = parse_duration)]
    kill_grace: Duration,
    /// The Unix user of jobs whose task spec names none (never root; the spec's `user`
    /// wins, and retz-server always sends one).
    #[arg(long, default_value = "nobody", env = "RETZ_DEFAULT_USER")]
    default_user: String,
    /// Do not start jobs in their own PID namespace (leftover processes are then found
    /// in the task's cgroup or process group only).
    #[arg(long)]
    no_pid_namespace: bool,
    /// The procfs mount.
    #[arg(long, default_value = "/proc", hide = true)]
    proc_root: PathBuf,
    /// Log line format on stderr: text or json (one JSON object per line).
    #[arg(
        long,
        value_name = "text|json",
        default_value = "text",
        env = "RETZ_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    api::env::parse_duration(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Calibrate(args)) = &cli.command {
        return match calibrate(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("retz-executor calibrate: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Topology(args)) = &cli.command {
        return match retz_topology::run(args) {
            Ok(text) => {
                use std::io::Write as _;
                match writeln!(std::io::stdout().lock(), "{text}") {
                    // A reader that stopped early (`| head`) is not a failure.
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                        eprintln!("retz-executor topology: cannot write the output: {e}");
                        ExitCode::FAILURE
                    }
                    _ => ExitCode::SUCCESS,
                }
            }
            Err(e) => {
                eprintln!("retz-executor topology: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let log_format = match &cli.command {
        Some(Command::Run(args)) => args.log_format,
        _ => cli.run.log_format,
    };
    logging::init(log_format, "RETZ_LOG", "info");
    let result = match cli.command {
        Some(Command::Run(args)) => run(&args),
        Some(Command::Topology(_) | Command::Calibrate(_)) => unreachable_topology(),
        None => run(&cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("retz-executor: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `topology` and `calibrate` return from `main` before logging starts; kept total for the
/// match.
fn unreachable_topology() -> anyhow::Result<ExitCode> {
    bail!("the topology subcommand is handled before the executor starts")
}

fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let agent = AgentEnv::from_vars(&vars)?;
    let scope = task_key(&format!("{}_{}", agent.framework_id, agent.executor_id))
        .unwrap_or_else(|| format!("executor-{}", std::process::id()));
    let cgroups = CgroupConfig {
        root: args.cgroup_root.clone(),
        parent: args.cgroup_parent.clone(),
        scope,
        memory_limit: !args.no_memory_limit,
        dev_root: std::path::PathBuf::from("/dev"),
    };
    if let Err(e) = cgroups.validate() {
        bail!("--cgroup-parent: {e}");
    }
    if !retz_executor::identity::is_plain_name(&args.default_user) {
        bail!(
            "--default-user {:?} is not a plain user name (letters, digits, `_`, `.`, `-`, \
             starting with a letter or `_`)",
            args.default_user
        );
    }
    let mut config = ExecutorConfig::new(agent);
    config.content_type = match args.content_type {
        Encoding::Protobuf => ContentType::Protobuf,
        Encoding::Json => ContentType::Json,
    };
    config.runtime.cgroups = cgroups;
    config.runtime.proc_root = args.proc_root.clone();
    config.runtime.default_kill_grace = args.kill_grace;
    config.runtime.base_env = vars.into_iter().collect();
    config.runtime.default_user = args.default_user.clone();
    config.runtime.pid_namespace = !args.no_pid_namespace;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let exit = rt.block_on(async move {
        let stop = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!("cannot watch SIGTERM: {e}");
                        return std::future::pending().await;
                    }
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        api::run(Arc::new(LinuxSys), config, stop).await
    })?;
    tracing::info!("executor ends: {exit:?}");
    Ok(match exit {
        Exit::Shutdown | Exit::Stopped | Exit::AgentGone(_) => ExitCode::SUCCESS,
        Exit::RecoveryTimeout => ExitCode::FAILURE,
    })
}
