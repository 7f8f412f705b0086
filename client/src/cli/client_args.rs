//! The command line of `retz-client` as clap sees it: the subcommands, their options and
//! help texts. What each subcommand does lives in [`super::client_cli`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use retz_placement::{AffinityPolicy, CachePolicy, ResourceRange};
use retz_proto::api::{DockerVolume, JobState};

use crate::cli::parse;

pub(super) const ABOUT: &str =
    "Command-line client of Retz, the NUMA-aware batch job scheduler for Mesos";

pub(super) const CONFIG_HELP: &str = "Client config: TOML (see etc/client.toml) or an original \
retz.properties. Without -C: $RETZ_CLIENT_CONFIG, then $XDG_CONFIG_HOME/retz/client.toml \
or ~/.config/retz/client.toml, then /opt/retz-client/etc/retz.properties";

pub(super) const CLIENT_AFTER_HELP: &str = concat!(
    "The original single-dash long options are accepted too: -cmd, -cpu, -mem, -gpu, -id,\n",
    "-stderr, -ports, -prio, ... (any long option, e.g. -cpu=2-4).\n\n",
    "Exit status (run exits with the job's exit code instead):\n",
    "  0  success\n",
    "  1  the server refused the request (HTTP 4xx/5xx) or the job/app/user does not exist\n",
    "  2  usage error (unknown subcommand, bad or missing option)\n",
    "  3  cannot reach the server, config missing or invalid, or a local file problem"
);

/// The command line of `retz-client`.
#[derive(Debug, Parser)]
#[command(name = "retz-client", version, about = ABOUT, after_help = CLIENT_AFTER_HELP,
          after_long_help = CLIENT_AFTER_HELP)]
#[command(disable_help_subcommand = false)]
pub struct Cli {
    /// Client config file.
    #[arg(short = 'C', long = "config", global = true, value_name = "FILE", long_help = CONFIG_HELP)]
    pub(super) config: Option<PathBuf>,
    /// Trust the certificates in this PEM file for an https:// server (overrides ca_cert
    /// of the config): the server's own certificate or the CA that issued it.
    #[arg(long = "ca-cert", global = true, value_name = "FILE")]
    pub(super) ca_cert: Option<PathBuf>,
    /// Say more on stderr (the config used, job state changes).
    #[arg(short, long, global = true)]
    pub(super) verbose: bool,
    /// Print machine-readable JSON instead of tables (read commands and schedule).
    #[arg(long, global = true)]
    pub(super) json: bool,
    #[command(subcommand)]
    pub(super) cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub(super) enum Cmd {
    /// Print the config in use (secret masked) and where it came from.
    Config,
    /// List your jobs (default: QUEUED, STARTING and STARTED), sorted by id.
    List(ListArgs),
    /// Queue a job and print its id.
    Schedule(ScheduleArgs),
    /// Where a job would run now (agent, NUMA nodes, CPU ids, memory nodes), or why it
    /// would wait; the same options as schedule; nothing is queued.
    #[command(after_help = super::plan_cli::EXIT_HELP)]
    Plan(PlanArgs),
    /// Queue a job, print its stdout as it is written, exit with its exit code.
    #[command(
        after_help = "Exit status: the job's exit code when its command exited (0 when it \
        finished); 255 when it was killed before exiting, failed to start or timed out (the original's -1); 1-3 as for other subcommands when \
        it could not be scheduled or followed."
    )]
    Run(RunArgs),
    /// Show one job.
    GetJob(IdArg),
    /// Print a file of a job's sandbox (stdout by default), or save it with -R.
    GetFile(GetFileArgs),
    /// List a directory of a job's sandbox.
    ListFiles(ListFilesArgs),
    /// Kill a job.
    Kill(IdArg),
    /// Kill every QUEUED, STARTING and STARTED job carrying a tag.
    Killall(KillallArgs),
    /// Create or replace an application.
    LoadApp(LoadAppArgs),
    /// Show an application (JSON).
    GetApp(AppArg),
    /// List your applications.
    ListApp,
    /// Remove an application.
    UnloadApp(AppArg),
    /// Show the server's status (queue length, running jobs, offers).
    Status,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Only jobs in this state (overrides --states).
    #[arg(long, value_parser = parse::state, value_name = "STATE")]
    pub(super) state: Option<JobState>,
    /// Comma separated states, or ALL.
    #[arg(long, value_parser = parse::states, value_name = "CSV|ALL",
          default_value = "QUEUED,STARTING,STARTED")]
    pub(super) states: parse::States,
    /// Only jobs with this tag.
    #[arg(short = 't', long)]
    pub(super) tag: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct JobArgs {
    /// Application name.
    #[arg(
        short = 'A',
        long = "appname",
        visible_alias = "app",
        value_name = "NAME"
    )]
    pub(super) appname: String,
    /// Shell command to run (`-` reads it from stdin).
    #[arg(
        short = 'c',
        long = "command",
        alias = "cmd",
        value_name = "COMMAND",
        allow_hyphen_values = true
    )]
    pub(super) command: String,
    /// Environment variable KEY=VALUE (repeatable; $RETZ_CPU etc. are expanded by the executor).
    #[arg(short = 'E', long = "env", value_name = "KEY=VALUE", value_parser = parse::env_pair,
          allow_hyphen_values = true)]
    pub(super) env: Vec<(String, String)>,
    /// CPUs: N, N-M (from N to M) or N- (at least N).
    #[arg(long, value_parser = parse::cpu_range, default_value = "1", value_name = "RANGE")]
    pub(super) cpu: ResourceRange<u32>,
    /// Memory in MB: N, N-M or N-.
    #[arg(long, value_parser = parse::mem_range, default_value = "32", value_name = "RANGE")]
    pub(super) mem: ResourceRange<u64>,
    /// Disk in MB.
    #[arg(long, default_value_t = 32, value_name = "MB")]
    pub(super) disk: u64,
    /// GPUs.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(super) gpu: u32,
    /// Number of ports ($PORT0...), 0 to 1000.
    #[arg(long, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub(super) ports: u32,
    /// Whole NUMA nodes to take exclusively.
    #[arg(long, value_name = "N")]
    pub(super) nodes: Option<u32>,
    /// Priority, -20 (first) to 19 (last).
    #[arg(long = "priority", alias = "prio", default_value = "0", value_parser = parse::priority,
          allow_negative_numbers = true, value_name = "P")]
    pub(super) priority: i32,
    /// Mesos attribute constraint string.
    #[arg(long, value_name = "STR")]
    pub(super) attributes: Option<String>,
    /// Job name.
    #[arg(short = 'N', long)]
    pub(super) name: Option<String>,
    /// Comma separated tags.
    #[arg(long, value_name = "a,b")]
    pub(super) tags: Option<String>,
    /// Affinity policy: numa-strict, numa-prefer, spread or none (default: the app's, else the cluster's).
    #[arg(long, value_parser = parse_affinity, value_name = "POLICY")]
    pub(super) affinity: Option<AffinityPolicy>,
    /// L3 cache use: pack (as few cache domains as possible) or spread (one core of each
    /// domain in turn, for memory-bandwidth-bound jobs); default: the cluster's.
    #[arg(long, value_parser = parse_cache, value_name = "POLICY")]
    pub(super) cache: Option<CachePolicy>,
    /// Retries after lost tasks (default: the server's).
    #[arg(long, value_name = "N")]
    pub(super) retries: Option<u32>,
    /// Also retry when the task fails, not only when it is lost.
    #[arg(long)]
    pub(super) retry_on_failure: bool,
}

pub(super) fn parse_affinity(s: &str) -> Result<AffinityPolicy, String> {
    s.parse().map_err(|e| format!("{e}"))
}

pub(super) fn parse_cache(s: &str) -> Result<CachePolicy, String> {
    s.parse().map_err(|e| format!("{e}"))
}

#[derive(Debug, Args)]
pub(super) struct ScheduleArgs {
    #[command(flatten)]
    pub(super) job: JobArgs,
    /// Print only the job id.
    #[arg(short, long)]
    pub(super) quiet: bool,
}

#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    #[command(flatten)]
    pub(super) job: JobArgs,
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) job: JobArgs,
    /// Print the job's stderr after it ended.
    #[arg(long)]
    pub(super) stderr: bool,
    /// Kill the job after this many minutes (fractions allowed; 0 or less: no limit).
    #[arg(
        long,
        default_value_t = 1440.0,
        allow_negative_numbers = true,
        value_name = "MIN"
    )]
    pub(super) timeout: f64,
}

#[derive(Debug, Args)]
pub(super) struct IdArg {
    /// Job id.
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub(super) id: u64,
}

#[derive(Debug, Args)]
pub(super) struct GetFileArgs {
    /// Job id.
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub(super) id: u64,
    /// Path in the sandbox.
    #[arg(long, default_value = "stdout")]
    pub(super) path: String,
    /// Directory to save the file in (named as its last path component); `-` = stdout.
    #[arg(
        short = 'R',
        long = "resultdir",
        default_value = "-",
        value_name = "DIR"
    )]
    pub(super) resultdir: String,
    /// Follow the file as it grows until the job ends.
    #[arg(long)]
    pub(super) poll: bool,
    /// Start at this byte.
    #[arg(long, default_value_t = 0)]
    pub(super) offset: u64,
    /// Read at most this many bytes (-1: to the end).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub(super) length: i64,
    /// Download the raw bytes (needs -R DIR; not with --poll).
    #[arg(long)]
    pub(super) binary: bool,
    /// Stop polling after this many minutes (fractions allowed; 0 or less: no limit).
    #[arg(
        long,
        default_value_t = 1440.0,
        allow_negative_numbers = true,
        value_name = "MIN"
    )]
    pub(super) timeout: f64,
}

#[derive(Debug, Args)]
pub(super) struct ListFilesArgs {
    /// Job id.
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub(super) id: u64,
    /// Directory in the sandbox ($MESOS_SANDBOX = its root).
    #[arg(long, default_value = "$MESOS_SANDBOX")]
    pub(super) path: String,
}

#[derive(Debug, Args)]
pub(super) struct KillallArgs {
    /// The tag.
    #[arg(short = 't', long)]
    pub(super) tag: String,
}

#[derive(Debug, Args)]
pub(super) struct AppArg {
    /// Application name.
    #[arg(
        short = 'A',
        long = "appname",
        visible_alias = "app",
        value_name = "NAME"
    )]
    pub(super) appname: String,
}

#[derive(Debug, Args)]
pub(super) struct LoadAppArgs {
    /// Application name.
    #[arg(
        short = 'A',
        long = "appname",
        visible_alias = "app",
        value_name = "NAME"
    )]
    pub(super) appname: String,
    /// URIs fetched for every executor, not cached.
    #[arg(short = 'F', long = "file", num_args = 1.., value_name = "URI")]
    pub(super) files: Vec<String>,
    /// URIs fetched through the agent's cache.
    #[arg(short = 'L', long = "large-file", num_args = 1.., value_name = "URI")]
    pub(super) large_files: Vec<String>,
    /// Unix user the jobs run as, if the server's operator allows it (jobs.allowed_users);
    /// without -U they run as the server's default job user. Never root.
    #[arg(short = 'U', long = "user")]
    pub(super) user: Option<String>,
    /// Seconds between SIGTERM and SIGKILL on kill (0: the Mesos default; at most 1024).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1024))]
    pub(super) grace_period: u32,
    /// Container: mesos (docker is refused by the server: containers are not supported
    /// yet).
    #[arg(long, default_value = "mesos", value_parser = ["mesos", "docker"])]
    pub(super) container: String,
    /// Docker image (required with --container docker).
    #[arg(long)]
    pub(super) image: Option<String>,
    /// Docker volumes: driver:name:path[:mode=RO|RW][:key=value...] (repeatable or comma separated).
    #[arg(long, value_delimiter = ',', value_parser = parse::docker_volume, value_name = "VOLUME")]
    pub(super) docker_volumes: Vec<DockerVolume>,
    /// Whether jobs may be scheduled: true or false.
    #[arg(long, default_value = "true", value_parser = parse::boolean, value_name = "BOOL",
          action = clap::ArgAction::Set)]
    pub(super) enabled: bool,
    /// The application's affinity policy.
    #[arg(long, value_parser = parse_affinity, value_name = "POLICY")]
    pub(super) affinity: Option<AffinityPolicy>,
}
