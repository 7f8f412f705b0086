//! `retz-server`: flags and config file → [`retz_scheduler::server::Server`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use retz_proto::logging::{self, LogFormat};
use retz_scheduler::config::ServerConfig;
use retz_scheduler::server::Server;

/// The Retz batch job server: a durable job queue with NUMA-aware placement on Apache
/// Mesos offers (or on the embedded local cluster with --local).
#[derive(Debug, Parser)]
#[command(
    name = "retz-server",
    version,
    after_help = "Examples:\n  retz-server --local --data-dir /tmp/retz      # no Mesos needed\n  \
                  retz-server -C /etc/retz/retz.toml\n  \
                  retz-server -C /opt/retz-server/etc/retz.properties   # the original's config\n\n\
                  Logs: RUST_LOG=retz_scheduler=debug. Exit status: 0 on a clean stop, 1 when \
                  the server cannot start or the master ends the framework, 2 on bad flags."
)]
struct Args {
    /// Log line format on stderr: text or json (one JSON object per line).
    #[arg(
        long,
        value_name = "text|json",
        default_value = "text",
        env = "RETZ_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Config file: retz.toml, or an original retz.properties.
    #[arg(short = 'C', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run the embedded local cluster on this machine (no Mesos needed).
    #[arg(long, conflicts_with = "mesos")]
    local: bool,
    /// Mesos masters, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    mesos: Option<Vec<String>>,
    /// Directory for the SQLite store and the admin's client.toml.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the HTTP API.
    #[arg(long, value_name = "ADDR")]
    bind: Option<std::net::SocketAddr>,
    /// Store URL: sqlite://PATH or postgres://USER:PASS@HOST:PORT/DB.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Record every Mesos event to this JSON-lines file (for retz-sim).
    #[arg(long, value_name = "FILE")]
    record_events: Option<PathBuf>,
    /// Local cluster: number of agents.
    #[arg(long, value_name = "N")]
    agents: Option<u32>,
    /// Local cluster: hwloc synthetic topology for every agent, e.g. "pack:2 numa:1 core:4 pu:1".
    #[arg(long, value_name = "DESC", conflicts_with = "xml")]
    synthetic: Option<String>,
    /// Local cluster: hwloc XML topology for every agent.
    #[arg(long, value_name = "FILE")]
    xml: Option<PathBuf>,
    /// Local cluster: GPUs each agent offers (local.gpus), with device ids 0..N.
    #[arg(long, value_name = "N")]
    gpus: Option<u32>,
    /// Local cluster: the agents' work dir, where sandboxes live (local.work_dir; default
    /// DATA_DIR-work). Job users must be able to traverse to it.
    #[arg(long, value_name = "DIR")]
    local_work_dir: Option<PathBuf>,
    /// The Unix user jobs run as unless their application names an allowed user
    /// (jobs.default_user; default nobody). Never root.
    #[arg(long, value_name = "USER")]
    default_user: Option<String>,
    /// Users applications may name with load-app -U (jobs.allowed_users), comma separated.
    #[arg(long, value_name = "USER,...", value_delimiter = ',')]
    allowed_users: Option<Vec<String>>,
    /// The framework principal sent to the Mesos masters (mesos.principal).
    #[arg(long, value_name = "NAME")]
    mesos_principal: Option<String>,
    /// File holding the framework's secret, or a Mesos credentials file holding the
    /// principal (mesos.secret_file).
    #[arg(long, value_name = "FILE")]
    mesos_secret_file: Option<PathBuf>,
    /// The retz-executor agents run (path on the agents or URI).
    #[arg(long, value_name = "PATH|URI")]
    executor: Option<String>,
    /// Cluster affinity policy: numa-strict, numa-prefer, spread, none.
    #[arg(long, value_name = "POLICY")]
    affinity: Option<retz_placement::AffinityPolicy>,
    /// Placement policy file ([placement] section, as `retz-sim tune` writes it).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Serve the API over HTTPS with this PEM certificate chain (server.tls_cert; needs
    /// --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (server.tls_key).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Admit unsigned /admin/* requests from loopback peers (server.admin_loopback).
    #[arg(long)]
    admin_loopback: bool,
    /// Most HTTP connections open at once; more are shed (server.max_connections).
    #[arg(long, value_name = "N")]
    max_connections: Option<u32>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn config(args: &Args) -> anyhow::Result<ServerConfig> {
    let mut c = match &args.config {
        Some(p) => ServerConfig::load(p)?,
        None => ServerConfig::default(),
    };
    if args.local {
        c.mesos.local = true;
    }
    if let Some(m) = &args.mesos {
        c.mesos.local = false;
        c.mesos.masters = m.clone();
    }
    if let Some(d) = &args.data_dir {
        c.server.data_dir = Some(d.clone());
    }
    if let Some(b) = args.bind {
        c.server.bind = b;
        c.server.bind_host = None;
    }
    if let Some(d) = &args.database {
        c.server.database = Some(d.clone());
    }
    if let Some(r) = &args.record_events {
        c.server.record_events = Some(r.clone());
    }
    if let Some(n) = args.agents {
        c.local.agents = n;
    }
    if let Some(n) = args.gpus {
        c.local.gpus = n;
    }
    if let Some(s) = &args.synthetic {
        c.local.synthetic = Some(s.clone());
        c.local.xml = None;
    }
    if let Some(x) = &args.xml {
        c.local.xml = Some(x.clone());
        c.local.synthetic = None;
    }
    if let Some(w) = &args.local_work_dir {
        c.local.work_dir = Some(w.clone());
    }
    if let Some(u) = &args.default_user {
        c.jobs.default_user = Some(u.clone());
        // The deprecated spelling would contradict the flag.
        c.mesos.user = None;
    }
    if let Some(u) = &args.allowed_users {
        c.jobs.allowed_users = u.clone();
    }
    if let Some(p) = &args.mesos_principal {
        c.mesos.principal = p.clone();
    }
    if let Some(f) = &args.mesos_secret_file {
        c.mesos.secret_file = Some(f.clone());
    }
    if let Some(e) = &args.executor {
        c.mesos.executor = Some(e.clone());
    }
    if let Some(a) = args.affinity {
        c.planner.affinity = a;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        c.server.tls_cert = Some(cert.clone());
        c.server.tls_key = Some(key.clone());
    }
    if args.admin_loopback {
        c.server.admin_loopback = true;
    }
    if let Some(n) = args.max_connections {
        c.server.max_connections = n;
    }
    if let Some(p) = &args.policy {
        c.load_policy(p)?;
    }
    // A local cluster offering GPUs: ask for GPU offers and let jobs ask for them.
    if c.mesos.local && c.local.gpus > 0 {
        c.mesos.gpus = true;
        if c.limits.max_gpus == 0 {
            c.limits.max_gpus = c.local.gpus;
        }
    }
    c.validate()?;
    Ok(c)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match &mut term {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    tracing::info!("shutting down");
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    if args.print_config {
        print!("{}", toml::to_string(&cfg).context("config to TOML")?);
        return Ok(());
    }
    let server = Server::start(cfg).await?;
    eprintln!("retz-server: listening on {}", server.url());
    if let Some(p) = server.client_config() {
        eprintln!(
            "retz-server: admin client config in {} (retz-client -C {} list)",
            p.display(),
            p.display()
        );
    }
    server.run_until(shutdown_signal()).await?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log_format, "RUST_LOG", "info");
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("retz-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retz-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
