//! `retz-executor topology [--xml FILE | --synthetic DESC] [--agent-flags | --json]`: shows
//! the topology an agent would advertise.
//!
//! Owns the subcommand's arguments ([`TopologyArgs`]) and its output: a human-readable
//! summary (default), the [`TopologySpec`] as JSON (`--json`), or the two Mesos agent flags
//! `--resources='...'` and `--attributes='...'` of the Retz NUMA convention
//! (`--agent-flags`, with `--mem`/`--disk`/`--gpus` to override what is advertised).
//! [`run`] returns the text to print; printing and exit codes belong to `main`.
//!
//! [`TopologySpec`]: retz_placement::topology::TopologySpec

use std::fmt::Write as _;
use std::path::PathBuf;

use retz_placement::topology::TopologySpec;
use retz_proto::numa::{FreeResources, agent_flags};

use super::hwloc::{LoadedTopology, TopologyError, TopologySource, load};

/// Arguments of `retz-executor topology`.
#[derive(Clone, Debug, Default, PartialEq, clap::Args)]
pub struct TopologyArgs {
    /// Read this hwloc XML export (`lstopo file.xml`) instead of probing this machine.
    #[arg(long, value_name = "FILE", conflicts_with = "synthetic")]
    pub xml: Option<PathBuf>,
    /// Use this hwloc synthetic topology, e.g. "pack:2 numa:2 core:8 pu:2".
    #[arg(long, value_name = "DESC")]
    pub synthetic: Option<String>,
    /// Print `--resources='...'` and `--attributes='...'` for mesos-agent.
    #[arg(long, conflicts_with = "json")]
    pub agent_flags: bool,
    /// Print the placement topology as JSON.
    #[arg(long)]
    pub json: bool,
    /// With --agent-flags: advertise this much memory (MB) instead of all node memory.
    #[arg(long, value_name = "MB", requires = "agent_flags")]
    pub mem: Option<u64>,
    /// With --agent-flags: advertise this much disk (MB); omitted by default.
    #[arg(long, value_name = "MB", requires = "agent_flags")]
    pub disk: Option<u64>,
    /// With --agent-flags: advertise this many GPUs; omitted by default.
    #[arg(long, value_name = "N", requires = "agent_flags")]
    pub gpus: Option<u32>,
}

/// What [`run`] prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Human-readable summary.
    Summary,
    /// The `TopologySpec` as pretty JSON.
    Json,
    /// Two mesos-agent flag lines.
    AgentFlags,
}

impl TopologyArgs {
    /// Where the topology comes from.
    pub fn source(&self) -> TopologySource {
        match (&self.xml, &self.synthetic) {
            (Some(path), _) => TopologySource::XmlFile(path.clone()),
            (None, Some(desc)) => TopologySource::Synthetic(desc.clone()),
            (None, None) => TopologySource::ThisMachine,
        }
    }

    /// The chosen output.
    pub fn format(&self) -> OutputFormat {
        if self.agent_flags {
            OutputFormat::AgentFlags
        } else if self.json {
            OutputFormat::Json
        } else {
            OutputFormat::Summary
        }
    }
}

/// Loads the topology and returns the text to print (no trailing newline).
pub fn run(args: &TopologyArgs) -> Result<String, TopologyError> {
    let loaded = load(&args.source())?;
    render(&loaded, args)
}

/// Renders an already loaded topology as `args` asks (pure).
pub fn render(loaded: &LoadedTopology, args: &TopologyArgs) -> Result<String, TopologyError> {
    match args.format() {
        OutputFormat::Summary => Ok(summary(loaded)),
        OutputFormat::Json => Ok(serde_json::to_string_pretty(&loaded.spec)?),
        OutputFormat::AgentFlags => {
            let mut free = FreeResources::whole_machine(&loaded.spec);
            if let Some(mem) = args.mem {
                free.mem_mb = mem as f64;
            }
            if let Some(disk) = args.disk {
                free.disk_mb = disk as f64;
            }
            if let Some(gpus) = args.gpus {
                free.gpus = f64::from(gpus);
            }
            Ok(agent_flags(&loaded.spec, &free)?.to_flag_lines())
        }
    }
}

/// The human-readable summary.
pub fn summary(loaded: &LoadedTopology) -> String {
    let spec: &TopologySpec = &loaded.spec;
    let mut out = String::new();
    let cores: usize = spec.nodes.iter().map(|n| n.cores.len()).sum();
    let cpus: usize = spec
        .nodes
        .iter()
        .flat_map(|n| &n.cores)
        .map(|c| c.cpus.len())
        .sum();
    let smt = spec
        .nodes
        .iter()
        .flat_map(|n| &n.cores)
        .map(|c| c.cpus.len())
        .max()
        .unwrap_or(0);
    let memory: u64 = spec
        .nodes
        .iter()
        .fold(0u64, |acc, n| acc.saturating_add(n.memory_mb));
    let _ = writeln!(out, "source: {}", loaded.source);
    let _ = writeln!(
        out,
        "packages: {}, NUMA nodes: {}, cores: {cores}, usable CPUs: {cpus} (up to {smt} per core)",
        loaded.packages.len(),
        spec.nodes.len()
    );
    let offline = if spec.offline_cpus.is_empty() {
        "none".to_string()
    } else {
        format!("{} ({})", spec.offline_cpus, spec.offline_cpus.len())
    };
    let _ = writeln!(out, "offline or disallowed CPUs: {offline}");
    let _ = writeln!(out, "memory: {memory} MiB");
    for node in &spec.nodes {
        let node_cpus = node
            .cores
            .iter()
            .fold(retz_placement::sets::CpuSet::new(), |acc, c| {
                acc.union(&c.cpus)
            });
        let what = if node.cores.is_empty() {
            "memory only".to_string()
        } else {
            format!("{} cores, CPUs {node_cpus}", node.cores.len())
        };
        let _ = writeln!(
            out,
            "node {}: package {}, {} MiB, {what}",
            node.id, node.package, node.memory_mb
        );
    }
    if spec.nodes.iter().all(|n| n.distances.is_empty()) {
        let _ = write!(
            out,
            "distances: unknown (placement assumes 10 local, 20 remote)"
        );
    } else {
        let width = spec
            .nodes
            .iter()
            .flat_map(|n| n.distances.iter().map(|d| d.to_string().len()))
            .chain(spec.nodes.iter().map(|n| n.id.to_string().len() + 1))
            .max()
            .unwrap_or(2);
        let _ = write!(out, "distances (SLIT):\n{:>width$}", "");
        for node in &spec.nodes {
            let _ = write!(out, "  {:>width$}", format!("n{}", node.id));
        }
        for node in &spec.nodes {
            let _ = write!(out, "\n{:>width$}", format!("n{}", node.id));
            for d in &node.distances {
                let _ = write!(out, "  {d:>width$}");
            }
        }
    }
    out
}
