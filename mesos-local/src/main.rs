//! `retz-mesos-local`: the embedded local Mesos cluster as a standalone process — a v1
//! master on `--bind` plus `--agents N` agents that run real executors — for tests and
//! demos. Runs until SIGINT/SIGTERM, then stops executors gracefully.
//!
//! Topologies: none given = this machine (hwloc) for every agent; one `--xml`/`--synthetic`
//! = that topology for every agent; N of them = one per agent, in command-line order.
//! Bad input ends with one error line and exit status 2.
//!
//! Authentication, as a Mesos master with `--authenticate_http_frameworks
//! --authenticate_http_readonly --credentials`: frameworks (and readers of `/state`,
//! `/files`) need HTTP Basic with a principal of `--credentials FILE`; without that flag a
//! credential (principal `retz`) is generated at every start into
//! `<work-dir>/credentials.json` (mode 0600, Mesos' JSON form) and its path is printed,
//! never the secret. `--no-authentication` opens the cluster, with a warning.
//!
//! ZooKeeper: with `--zk zk://HOST:PORT/PATH` the master joins the masters' group as a
//! Mesos master does and answers as a non-leader (307 to the leader) while another
//! master leads (see [`retz_mesos_local::zk`]); run two such processes for a failover.
//! Such a master starts its agents only once elected, and exits (as a Mesos master
//! does) if it loses the leadership: give the masters of a group one `--work-dir` and
//! the new leader's agents take over the old leader's (agent ids, ports, sandboxes and
//! running executors), as Mesos agents re-register with a new leader.
//!
//! The work directory is created mode 0755; an existing one must belong to this user and
//! not be writable by others (it holds the sandboxes and the credentials).

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use retz_mesos_local::agent::parse_port_ranges;
use retz_mesos_local::cluster::{AgentSpec, ClusterConfig, LocalCluster};
use retz_mesos_local::master::{Leadership, MasterConfig};
use retz_proto::credentials::{Credential, Credentials};
use retz_proto::logging::{self, LogFormat};
use retz_topology::TopologySource;

/// The embedded local Mesos cluster: a Mesos v1 master plus agents that launch real
/// executors, on this machine, with no Mesos installed.
#[derive(Parser, Debug)]
#[command(name = "retz-mesos-local", version, about, long_about = None)]
struct Cli {
    /// Log line format on stderr: text or json (one JSON object per line).
    #[arg(
        long,
        value_name = "text|json",
        default_value = "text",
        env = "RETZ_LOG_FORMAT"
    )]
    log_format: LogFormat,

    /// Address of the master's HTTP API (scheduler API, /state, /version).
    #[arg(long, default_value = "127.0.0.1:5050", value_name = "ADDR")]
    bind: SocketAddr,

    /// Number of agents.
    #[arg(long, default_value_t = 1, value_name = "N")]
    agents: usize,

    /// hwloc XML export giving an agent's topology (once for all agents, or once per agent).
    #[arg(long, value_name = "FILE")]
    xml: Vec<PathBuf>,

    /// hwloc synthetic topology such as "pack:2 numa:2 core:4 pu:2" (once for all agents,
    /// or once per agent).
    #[arg(long, value_name = "DESC")]
    synthetic: Vec<String>,

    /// Root of the agents' work directories (sandboxes) and of the generated
    /// credentials.json (default: $TMPDIR/retz-mesos-local).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,

    /// Credentials frameworks must authenticate with (HTTP Basic) to use the master and
    /// to read /state and the agents' /files: Mesos' JSON
    /// {"credentials":[{"principal":"...","secret":"..."}]} or one `principal secret` pair
    /// per line. Without it, a credential (principal `retz`) is generated into
    /// <work-dir>/credentials.json (mode 0600).
    #[arg(long, value_name = "FILE", conflicts_with = "no_authentication")]
    credentials: Option<PathBuf>,

    /// No authentication at all: anyone who can reach the master can launch tasks
    /// (demos only; a warning is printed).
    #[arg(long)]
    no_authentication: bool,

    /// Interval between HEARTBEAT events on SUBSCRIBE streams (e.g. 15s, 500ms).
    #[arg(long, default_value = "15s", value_name = "DURATION", value_parser = parse_duration)]
    heartbeat_interval: Duration,

    /// Interval between allocation rounds (offers), e.g. 1s, 100ms.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    allocation_interval: Duration,

    /// Rescind offers outstanding for this long (default: never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    offer_timeout: Option<Duration>,

    /// Hostname the master and agents advertise.
    #[arg(long, default_value = "localhost")]
    hostname: String,

    /// Disk each agent advertises, MB (default: from the free space of the work directory).
    #[arg(long, value_name = "MB")]
    disk_mb: Option<u64>,

    /// Ports each agent offers (the `ports` RANGES resource), e.g. 31000-32000,40000-40099,
    /// or `none`; the default is a Mesos agent's.
    #[arg(long, value_name = "RANGES", default_value = "31000-32000", value_parser = parse_ports)]
    ports: PortRanges,

    /// GPUs each agent offers, with device ids 0..N and their NUMA locality (the
    /// machine's first N GPUs when hwloc lists them, else N GPUs on NUMA node 0); jobs see
    /// theirs in CUDA_VISIBLE_DEVICES.
    #[arg(long, default_value_t = 0, value_name = "N")]
    gpus: u32,

    /// Join the masters' group in ZooKeeper as a Mesos master does (an ephemeral
    /// sequential `json.info_` znode with this master's MasterInfo JSON); while another
    /// master leads, the scheduler API answers 307 to it. The agents start once this
    /// master is elected; a leader that loses the leadership exits. Masters of one group
    /// sharing --work-dir hand their agents (and running executors) over on failover.
    #[arg(long, value_name = "zk://HOST:PORT/PATH", value_parser = parse_zk_arg)]
    zk: Option<(String, String)>,

    /// Serve the master's scheduler API and /state over TLS with this PEM certificate
    /// chain; schedulers then use https://.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn parse_zk_arg(s: &str) -> Result<(String, String), String> {
    retz_mesos_local::zk::parse_zk(s).map_err(|e| e.to_string())
}

/// Parsed `--ports`.
#[derive(Clone, Debug)]
struct PortRanges(Vec<(u64, u64)>);

fn parse_ports(s: &str) -> Result<PortRanges, String> {
    parse_port_ranges(s)
        .map(PortRanges)
        .map_err(|e| e.to_string())
}

/// Parses a positive duration (`15`, `1.5s`, `500ms`, `2m`, `15secs`, `2mins`: the shared
/// grammar of [`retz_proto::duration`]).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = retz_proto::duration::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!("'{s}' must be a positive duration"));
    }
    Ok(d)
}

/// The topologies in command-line order.
fn topologies(matches: &clap::ArgMatches, cli: &Cli) -> Vec<TopologySource> {
    let mut indexed: Vec<(usize, TopologySource)> = Vec::new();
    if let Some(idx) = matches.indices_of("xml") {
        indexed.extend(
            idx.zip(&cli.xml)
                .map(|(i, p)| (i, TopologySource::XmlFile(p.clone()))),
        );
    }
    if let Some(idx) = matches.indices_of("synthetic") {
        indexed.extend(
            idx.zip(&cli.synthetic)
                .map(|(i, d)| (i, TopologySource::Synthetic(d.clone()))),
        );
    }
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, t)| t).collect()
}

fn cluster_config(cli: &Cli, topologies: Vec<TopologySource>) -> anyhow::Result<ClusterConfig> {
    if cli.agents == 0 {
        bail!("--agents must be at least 1");
    }
    let per_agent: Vec<TopologySource> = match topologies.len() {
        0 => vec![TopologySource::ThisMachine; cli.agents],
        1 => vec![topologies[0].clone(); cli.agents],
        n if n == cli.agents => topologies,
        n => bail!(
            "{n} topologies for {} agents: give one --xml/--synthetic for all agents or exactly one per agent",
            cli.agents
        ),
    };
    for t in &per_agent {
        if let TopologySource::XmlFile(p) = t
            && !p.is_file()
        {
            bail!(
                "--xml {}: no such file (give an hwloc XML export, `lstopo file.xml`)",
                p.display()
            );
        }
    }
    let work_dir = cli
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("retz-mesos-local"));
    let mut config = ClusterConfig::new(work_dir);
    config.master = MasterConfig {
        bind: cli.bind,
        hostname: cli.hostname.clone(),
        heartbeat_interval: cli.heartbeat_interval,
        allocation_interval: cli.allocation_interval,
        offer_timeout: cli.offer_timeout,
        tls: (cli.tls_cert.as_deref().zip(cli.tls_key.as_deref()))
            .map(|(c, k)| retz_mesos_local::tls::load(c, k, "--tls-cert", "--tls-key"))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        ..MasterConfig::default()
    };
    config
        .master
        .flags
        .insert("work_dir".into(), config.work_dir.display().to_string());
    config.agents = per_agent
        .into_iter()
        .map(|t| AgentSpec {
            topology: t,
            hostname: cli.hostname.clone(),
            disk_mb: cli.disk_mb,
            ports: cli.ports.0.clone(),
            gpus: cli.gpus,
        })
        .collect();
    Ok(config)
}

/// How frameworks authenticate to this cluster.
enum Authentication {
    /// `--credentials FILE`.
    Given(PathBuf, Credentials),
    /// Generated into `<work-dir>/credentials.json`.
    Generated(PathBuf, Credentials),
    /// `--no-authentication`.
    Open,
}

impl Authentication {
    fn credentials(&self) -> Option<Credentials> {
        match self {
            Authentication::Given(_, c) | Authentication::Generated(_, c) => Some(c.clone()),
            Authentication::Open => None,
        }
    }

    fn describe(&self) -> String {
        let principals = |c: &Credentials| {
            c.entries()
                .iter()
                .map(|e| format!("{:?}", e.principal))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Authentication::Given(path, c) => format!(
                "frameworks authenticate with HTTP Basic as a principal of {} ({})",
                path.display(),
                principals(c)
            ),
            Authentication::Generated(path, c) => format!(
                "frameworks authenticate with HTTP Basic as principal {}; its secret is in {} (mode 0600)",
                principals(c),
                path.display()
            ),
            Authentication::Open => {
                "no authentication: anyone who can reach the master can launch tasks".into()
            }
        }
    }
}

/// Reads `--credentials FILE`.
fn read_credentials(path: &Path) -> anyhow::Result<Credentials> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--credentials {}: cannot read it", path.display()))?;
    let credentials =
        Credentials::parse(&text).with_context(|| format!("--credentials {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "retz-mesos-local: warning: --credentials {} is readable by other users (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
    Ok(credentials)
}

/// Creates the work directory (0755) or checks that an existing one is this user's and
/// not writable by others.
fn prepare_work_dir(dir: &Path) -> anyhow::Result<()> {
    retz_mesos_local::agent::sandbox::create_dirs(dir).with_context(|| {
        format!(
            "cannot create the work directory {}; pick another with --work-dir",
            dir.display()
        )
    })?;
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot inspect the work directory {}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "the work directory {} belongs to uid {}, not to this user (uid {me}); pick another with --work-dir",
            dir.display(),
            meta.uid()
        );
    }
    if meta.permissions().mode() & 0o022 != 0 {
        bail!(
            "the work directory {} is writable by other users (mode {:o}); chmod go-w it or pick another with --work-dir",
            dir.display(),
            meta.permissions().mode() & 0o777
        );
    }
    Ok(())
}

/// Writes `text` to `path` mode 0600, atomically (a new file renamed over the old).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.{}",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A fresh credential for principal `retz`: 64 hex digits of secret.
fn generate_credential() -> anyhow::Result<Credentials> {
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    Ok(Credentials::single(Credential::new("retz", secret)?))
}

/// `--no-authentication`, else a credential generated into `<work-dir>/credentials.json`.
fn authentication(cli: &Cli, work_dir: &Path) -> anyhow::Result<Authentication> {
    if cli.no_authentication {
        return Ok(Authentication::Open);
    }
    let credentials = generate_credential()?;
    let path = work_dir.join("credentials.json");
    write_private(&path, &credentials.to_json())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Authentication::Generated(path, credentials))
}

async fn run(cli: Cli, topologies: Vec<TopologySource>) -> anyhow::Result<()> {
    let mut signals = Signals::watch()?;
    let mut config = cluster_config(&cli, topologies)?;
    // A bad --credentials file is reported before anything is created.
    let given = match &cli.credentials {
        Some(path) if !cli.no_authentication => Some((path.clone(), read_credentials(path)?)),
        _ => None,
    };
    prepare_work_dir(&config.work_dir)?;
    let auth = match given {
        Some((path, credentials)) => Authentication::Given(path, credentials),
        None => authentication(&cli, &config.work_dir)?,
    };
    if let Authentication::Open = auth {
        eprintln!(
            "retz-mesos-local: warning: --no-authentication: anyone who can reach the master can launch tasks{}; use it for demos only",
            if nix::unistd::geteuid().is_root() {
                " (as any non-root user of this machine)"
            } else {
                " as this user"
            }
        );
    }
    config.credentials = auth.credentials();
    let cluster = if cli.zk.is_some() {
        LocalCluster::start_master(config).await
    } else {
        LocalCluster::start(config).await
    }
    .context("cannot start the local cluster")?;
    let scheme = ["http", "https"][usize::from(cli.tls_cert.is_some())];
    println!(
        "retz-mesos-local: master {} listening on {scheme}://{} (scheduler API at /api/v1/scheduler)",
        cluster.master().id(),
        cluster.master_addr()
    );
    println!("retz-mesos-local: {}", auth.describe());
    let Some((servers, path)) = cli.zk.clone() else {
        print_agents(&cluster);
        signals.wait().await;
        println!("retz-mesos-local: stopping");
        cluster.shutdown().await;
        return Ok(());
    };
    println!("retz-mesos-local: joining the masters' group zk://{servers}{path}");
    let info = retz_mesos_local::zk::master_info_json(
        &cluster.master().id(),
        cluster.master_addr(),
        &cli.hostname,
    );
    cluster
        .master()
        .set_leadership(Leadership::NotLeader { leader: None });
    let cluster = std::sync::Arc::new(cluster);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let starter = cluster.clone();
    let membership = retz_mesos_local::zk::join_electing(
        servers,
        path,
        cluster.master().clone(),
        info,
        Some(Box::pin(async move {
            println!("retz-mesos-local: elected leader; starting the agents");
            let _ = started_tx.send(starter.start_agents().await);
        })),
    );
    let started = tokio::select! {
        () = signals.wait() => None,
        r = started_rx => r.ok(),
    };
    if let Some(started) = started {
        if let Err(e) = started {
            membership.abort();
            cluster.shutdown().await;
            return Err(e).context("cannot start the agents");
        }
        print_agents(&cluster);
        tokio::select! {
            () = signals.wait() => {}
            () = async {
                leadership_is(cluster.master(), true).await;
                leadership_is(cluster.master(), false).await;
            } => {
                // As a Mesos master does: a leader that lost its leadership exits. Its
                // executors live on, for the next leader's agents to take over.
                eprintln!(
                    "retz-mesos-local: lost the leadership in ZooKeeper; exiting (the next leader's agents take the executors over)"
                );
                std::process::exit(1);
            }
        }
    }
    println!("retz-mesos-local: stopping");
    membership.abort();
    cluster.shutdown().await;
    Ok(())
}

/// Returns once the master's leadership is (`true`) or is not (`false`) the leader.
async fn leadership_is(master: &retz_mesos_local::master::Master, leader: bool) {
    while (master.leadership() == Leadership::Leader) != leader {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_agents(cluster: &LocalCluster) {
    for a in cluster.agents() {
        let info = a.info();
        let cpus = info
            .resources
            .iter()
            .find(|r| r.name == "cpus")
            .and_then(|r| r.scalar.as_ref())
            .map_or(0.0, |s| s.value);
        println!(
            "retz-mesos-local: agent {} on http://{} ({} cpus, sandboxes under {})",
            a.id().value,
            a.endpoint(),
            cpus,
            a.config().work_dir.display()
        );
    }
}

/// SIGINT and SIGTERM, watched from now on (so one arriving while the cluster starts
/// still stops it gracefully).
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn watch() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "retz-mesos-local: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("retz-mesos-local: {e}");
            return ExitCode::from(2);
        }
    };
    let topologies = topologies(&matches, &cli);
    logging::init(cli.log_format, "RUST_LOG", "warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("retz-mesos-local: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, topologies)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("retz-mesos-local: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2mins"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("15secs"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "x", "0", "-1s", "5 hours", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    fn parse(args: &[&str]) -> anyhow::Result<ClusterConfig> {
        let matches = Cli::command().try_get_matches_from(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        let t = topologies(&matches, &cli);
        cluster_config(&cli, t)
    }

    #[test]
    fn topologies_for_all_or_per_agent_in_order() {
        let c = parse(&["x", "--agents", "2", "--synthetic", "pack:1 core:2 pu:1"]).unwrap();
        assert_eq!(c.agents.len(), 2);
        assert!(
            c.agents
                .iter()
                .all(|a| a.topology == TopologySource::Synthetic("pack:1 core:2 pu:1".into()))
        );
        let c = parse(&[
            "x",
            "--agents",
            "2",
            "--synthetic",
            "core:2",
            "--synthetic",
            "core:4",
        ])
        .unwrap();
        assert_eq!(
            c.agents[1].topology,
            TopologySource::Synthetic("core:4".into())
        );
        let e = parse(&[
            "x",
            "--agents",
            "3",
            "--synthetic",
            "core:2",
            "--synthetic",
            "core:4",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("exactly one per agent"), "{e}");
        let e = parse(&["x", "--xml", "/nonexistent.xml"]).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        assert!(parse(&["x", "--agents", "0"]).is_err());
        let c = parse(&["x"]).unwrap();
        assert_eq!(c.agents[0].topology, TopologySource::ThisMachine);
        assert_eq!(c.master.bind, "127.0.0.1:5050".parse().unwrap());
    }

    #[test]
    fn work_dirs_are_created_traversable_and_must_be_ours_and_not_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        prepare_work_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o755);
        assert_eq!(mode(dir.parent().unwrap()), 0o755);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare_work_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("writable by other users (mode 777)"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        if nix::unistd::geteuid().is_root()
            && let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody")
        {
            std::os::unix::fs::chown(&dir, Some(nobody.uid.as_raw()), None).unwrap();
            let e = prepare_work_dir(&dir).unwrap_err().to_string();
            assert!(e.contains("not to this user"), "{e}");
        }
    }

    #[test]
    fn generated_credentials_are_private_and_fresh() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("credentials.json");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let a = generate_credential().unwrap();
        write_private(&path, &a.to_json()).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let back = Credentials::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, a);
        assert_eq!(a.entries()[0].principal, "retz");
        assert_eq!(a.entries()[0].secret.len(), 64);
        assert_ne!(generate_credential().unwrap(), a);
        // the file is replaced, not followed, when it is a symbolic link
        let target = tmp.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_private(&path, &a.to_json()).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(
            !std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn ports_default_to_a_mesos_agents_and_can_be_changed() {
        let c = parse(&["x", "--agents", "2"]).unwrap();
        assert!(c.agents.iter().all(|a| a.ports == vec![(31000, 32000)]));
        let c = parse(&["x", "--ports", "8000-8099,9000"]).unwrap();
        assert_eq!(c.agents[0].ports, vec![(8000, 8099), (9000, 9000)]);
        let c = parse(&["x", "--ports", "none"]).unwrap();
        assert!(c.agents[0].ports.is_empty());
        let e = parse(&["x", "--ports", "9-1"]).unwrap_err();
        assert!(e.to_string().contains("ends before it begins"), "{e}");
    }
}
