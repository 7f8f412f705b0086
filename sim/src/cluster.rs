//! The simulated cluster: [`Cluster`] (hosts with their topologies) and the `--cluster`
//! SPEC grammar that builds it.
//!
//! ```text
//! SPEC  := GROUP (',' GROUP)*
//! GROUP := COUNT 'x@' TOPO [';gpus=' N]      COUNT hosts with the same topology
//!        | 'recording:' FILE                 the agents seen in a retz-server recording
//! TOPO  := FILE.json                         a TopologySpec as JSON (retz-placement's serde form)
//!        | FILE.xml                          an hwloc XML export (needs hwloc; see below)
//!        | an hwloc synthetic description    e.g. `pack:2 numa:2 core:4 pu:2`
//! ```
//!
//! Commas inside parentheses (synthetic attributes) do not split groups. NUMA nodes of a
//! synthetic description without a `memory=` attribute, and NUMA nodes with CPUs of an
//! hwloc XML export that gives no memory size, get [`ClusterOptions::node_mem_mb`].
//! hwloc XML files are read with `retz_topology` (hwloc 2.x, the same mapping as
//! the agent probe: offline PUs left out, node memory and SLIT distances kept) when the
//! `hwloc` feature is on (the default); without it they are refused with advice to
//! convert them once with `retz-executor topology --xml FILE --json > FILE.json`.
//!
//! Invariants of a [`Cluster`]: at least one host; agent ids are unique; a SPEC host at
//! position `i` has agent id `agent-<i>` and hostname `host-<i>` (zero-padded to the same
//! width, so name order is position order), recorded agents keep their ids; hosts of one
//! SPEC group share one `Arc<Topology>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use retz_placement::{AgentState, Topology, TopologySpec};

use crate::error::{InputError, excerpt, read_text};

/// Most hosts one SPEC may describe (bounds memory on hostile input).
pub const MAX_HOSTS: u64 = 1_000_000;

/// How to read topologies that do not say everything themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Memory of each NUMA node of a synthetic description without `memory=`, MB.
    pub node_mem_mb: u64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            node_mem_mb: 65_536,
        }
    }
}

/// One simulated host.
#[derive(Clone, Debug)]
pub struct Host {
    /// Mesos agent id.
    pub agent_id: String,
    /// Hostname.
    pub hostname: String,
    /// Its topology (shared by the hosts of one group).
    pub topology: Arc<Topology>,
    /// GPUs.
    pub gpus: u32,
    /// Whether the host advertises its NUMA layout (false: counts only, no pinning).
    pub numa_aware: bool,
}

/// A group of identical hosts, as written in the SPEC.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroupInfo {
    /// How many hosts.
    pub count: u64,
    /// Where the topology came from, as written.
    pub topology: String,
    /// CPUs per host.
    pub cpus_per_host: usize,
    /// NUMA nodes per host.
    pub nodes_per_host: usize,
    /// Memory per host, MB.
    pub mem_mb_per_host: u64,
    /// GPUs per host.
    pub gpus_per_host: u32,
}

/// The cluster the simulation runs on.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The SPEC it was built from.
    pub spec: String,
    /// The groups, in SPEC order.
    pub groups: Vec<GroupInfo>,
    /// All hosts, group by group.
    pub hosts: Vec<Host>,
}

impl Cluster {
    /// Total usable CPUs.
    pub fn total_cpus(&self) -> u64 {
        self.hosts
            .iter()
            .map(|h| h.topology.cpus().len() as u64)
            .sum()
    }

    /// Total NUMA nodes with CPUs.
    pub fn total_nodes(&self) -> u64 {
        self.hosts
            .iter()
            .map(|h| {
                h.topology
                    .nodes()
                    .iter()
                    .filter(|n| !n.is_memory_only())
                    .count() as u64
            })
            .sum()
    }

    /// Every host idle, as agent states in host order.
    pub fn idle_agents(&self) -> Vec<AgentState> {
        self.hosts
            .iter()
            .map(|h| {
                if h.numa_aware {
                    AgentState::idle(
                        h.agent_id.clone(),
                        h.hostname.clone(),
                        h.topology.clone(),
                        h.gpus,
                    )
                } else {
                    let free = h.topology.nodes().iter().map(|n| n.memory_mb()).collect();
                    // A non-NUMA host has a one-node topology (checked when it was built),
                    // so this cannot fail; fall back to the NUMA-aware form if it ever did.
                    AgentState::new(
                        h.agent_id.clone(),
                        h.hostname.clone(),
                        h.topology.clone(),
                        h.topology.cpus().clone(),
                        free,
                        h.gpus,
                        false,
                    )
                    .unwrap_or_else(|_| {
                        AgentState::idle(
                            h.agent_id.clone(),
                            h.hostname.clone(),
                            h.topology.clone(),
                            h.gpus,
                        )
                    })
                }
            })
            .collect()
    }

    /// A one-line description, e.g. `120 hosts, 240 CPUs, 120 NUMA nodes`.
    pub fn describe(&self) -> String {
        format!(
            "{} hosts, {} CPUs, {} NUMA nodes",
            self.hosts.len(),
            self.total_cpus(),
            self.total_nodes()
        )
    }
}

/// Where one group's topology comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopoSource {
    /// An hwloc synthetic description.
    Synthetic(String),
    /// A `TopologySpec` JSON file.
    Json(PathBuf),
    /// An hwloc XML file.
    Xml(PathBuf),
}

/// One parsed SPEC group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupSpec {
    /// `COUNTx@TOPO[;gpus=N]`.
    Hosts {
        /// How many hosts.
        count: u64,
        /// Their topology.
        topology: TopoSource,
        /// GPUs per host.
        gpus: u32,
    },
    /// `recording:FILE`.
    Recording(PathBuf),
}

const SPEC: &str = "--cluster";

fn spec_err(message: impl Into<String>) -> InputError {
    InputError::new(SPEC, 0, message)
}

/// Splits at commas that are not inside parentheses.
fn split_groups(spec: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in spec.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&spec[start..]);
    out
}

/// Parses a SPEC into its groups (no file is read here).
pub fn parse_spec(spec: &str) -> Result<Vec<GroupSpec>, InputError> {
    if spec.trim().is_empty() {
        return Err(spec_err(
            "empty cluster SPEC; write e.g. `20x@pack:2 numa:2 core:4 pu:2` or `recording:events.jsonl`",
        ));
    }
    let mut groups = Vec::new();
    let mut total = 0u64;
    for raw in split_groups(spec) {
        let g = raw.trim();
        if g.is_empty() {
            return Err(spec_err(format!(
                "empty group in {:?}; groups are separated by single commas",
                excerpt(spec, 80)
            )));
        }
        if let Some(file) = g.strip_prefix("recording:") {
            let file = file.trim();
            if file.is_empty() {
                return Err(spec_err("`recording:` needs a file name"));
            }
            groups.push(GroupSpec::Recording(PathBuf::from(file)));
            continue;
        }
        let Some((count, rest)) = g.split_once('@') else {
            return Err(spec_err(format!(
                "group {:?} has no `@`; write COUNTx@TOPOLOGY, e.g. `20x@pack:2 numa:2 core:4 pu:2`",
                excerpt(g, 80)
            )));
        };
        let count = count.trim();
        let digits = count.strip_suffix(['x', 'X']).unwrap_or(count).trim();
        let count: u64 = match digits.parse() {
            Ok(n) if n >= 1 && digits.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(spec_err(format!(
                    "host count {:?} in group {:?} is not a whole number of at least 1; write e.g. `20x@...`",
                    excerpt(count, 20),
                    excerpt(g, 80)
                )));
            }
        };
        total = total.saturating_add(count);
        if total > MAX_HOSTS {
            return Err(spec_err(format!(
                "the SPEC describes more than {MAX_HOSTS} hosts; simulate fewer"
            )));
        }
        let (topo, gpus) = match rest.rsplit_once(';') {
            Some((t, opt)) => {
                let opt = opt.trim();
                let n = opt
                    .strip_prefix("gpus=")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .ok_or_else(|| {
                        spec_err(format!(
                            "unknown host option {:?}; the only option is `;gpus=N`",
                            excerpt(opt, 40)
                        ))
                    })?;
                (t.trim(), n)
            }
            None => (rest.trim(), 0),
        };
        if topo.is_empty() {
            return Err(spec_err(format!(
                "group {:?} has no topology after `@`",
                excerpt(g, 80)
            )));
        }
        let lower = topo.to_ascii_lowercase();
        let topology = if lower.ends_with(".json") {
            TopoSource::Json(PathBuf::from(topo))
        } else if lower.ends_with(".xml") {
            TopoSource::Xml(PathBuf::from(topo))
        } else {
            TopoSource::Synthetic(topo.to_string())
        };
        groups.push(GroupSpec::Hosts {
            count,
            topology,
            gpus,
        });
    }
    Ok(groups)
}

/// Reads a `TopologySpec` JSON file and validates it.
pub fn load_topology_json(path: &Path) -> Result<Topology, InputError> {
    let text = read_text(path)?;
    let spec: TopologySpec = serde_json::from_str(&text).map_err(|e| {
        InputError::new(
            path.display().to_string(),
            e.line(),
            format!("not a TopologySpec JSON document: {e}"),
        )
    })?;
    Topology::new(spec).map_err(|e| InputError::file(path, format!("invalid topology: {e}")))
}

fn load_topology(src: &TopoSource, opts: &ClusterOptions) -> Result<Topology, InputError> {
    match src {
        TopoSource::Synthetic(desc) => {
            Topology::from_synthetic(desc, opts.node_mem_mb).map_err(|e| {
                spec_err(format!(
                    "{e}; see `hwloc-gen-synthetic` syntax, e.g. `pack:2 numa:2 core:4 pu:2`"
                ))
            })
        }
        TopoSource::Json(p) => load_topology_json(p),
        TopoSource::Xml(p) => with_node_memory(load_topology_xml(p)?, opts.node_mem_mb)
            .map_err(|e| InputError::file(p, format!("invalid topology: {e}"))),
    }
}

/// Gives NUMA nodes with CPUs but no memory size (hwloc exports made without memory
/// information, such as the shared EPYC files) `node_mem_mb` MB, as synthetic
/// descriptions without `memory=` get.
fn with_node_memory(
    t: Topology,
    node_mem_mb: u64,
) -> Result<Topology, retz_placement::TopologyError> {
    if !t
        .nodes()
        .iter()
        .any(|n| n.memory_mb() == 0 && !n.is_memory_only())
    {
        return Ok(t);
    }
    let mut spec = t.spec().clone();
    for n in &mut spec.nodes {
        if n.memory_mb == 0 && !n.cores.is_empty() {
            n.memory_mb = node_mem_mb;
        }
    }
    Topology::new(spec)
}

/// Reads an hwloc XML export with `retz_topology` (hwloc 2.x).
#[cfg(feature = "hwloc")]
pub fn load_topology_xml(path: &Path) -> Result<Topology, InputError> {
    let loaded = retz_topology::hwloc::load_xml_file(path)
        .map_err(|e| InputError::file(path, e.to_string()))?;
    Topology::new(loaded.spec).map_err(|e| InputError::file(path, format!("invalid topology: {e}")))
}

/// Without the `hwloc` feature, XML files are refused with advice.
#[cfg(not(feature = "hwloc"))]
pub fn load_topology_xml(path: &Path) -> Result<Topology, InputError> {
    Err(InputError::file(
        path,
        "this retz-sim was built without the `hwloc` feature, so it cannot read hwloc XML; convert the file once with `retz-executor topology --xml FILE --json > FILE.json` and pass the .json file",
    ))
}

fn name_width(total: usize) -> usize {
    total.saturating_sub(1).to_string().len().max(3)
}

/// Builds the cluster a SPEC describes, reading topology files and recordings.
pub fn load_cluster(spec: &str, opts: &ClusterOptions) -> Result<Cluster, InputError> {
    enum Piece {
        Synthetic(u64, Arc<Topology>, u32, String),
        Recorded(Vec<Host>, String),
    }
    let mut pieces = Vec::new();
    for g in parse_spec(spec)? {
        match g {
            GroupSpec::Hosts {
                count,
                topology,
                gpus,
            } => {
                let topo = Arc::new(load_topology(&topology, opts)?);
                let label = match &topology {
                    TopoSource::Synthetic(s) => s.clone(),
                    TopoSource::Json(p) | TopoSource::Xml(p) => p.display().to_string(),
                };
                pieces.push(Piece::Synthetic(count, topo, gpus, label));
            }
            GroupSpec::Recording(path) => {
                let hosts = crate::recording::load_recording_hosts(&path)?;
                pieces.push(Piece::Recorded(
                    hosts,
                    format!("recording:{}", path.display()),
                ));
            }
        }
    }
    let total: usize = pieces
        .iter()
        .map(|p| match p {
            Piece::Synthetic(n, ..) => *n as usize,
            Piece::Recorded(h, _) => h.len(),
        })
        .sum();
    let width = name_width(total);
    let mut hosts: Vec<Host> = Vec::with_capacity(total);
    let mut groups = Vec::with_capacity(pieces.len());
    for p in pieces {
        let first = hosts.len();
        let label = match p {
            Piece::Synthetic(count, topo, gpus, label) => {
                for _ in 0..count {
                    let i = hosts.len();
                    hosts.push(Host {
                        agent_id: format!("agent-{i:0width$}"),
                        hostname: format!("host-{i:0width$}"),
                        topology: topo.clone(),
                        gpus,
                        numa_aware: true,
                    });
                }
                label
            }
            Piece::Recorded(recorded, label) => {
                hosts.extend(recorded);
                label
            }
        };
        let group = &hosts[first..];
        groups.push(GroupInfo {
            count: group.len() as u64,
            topology: label,
            cpus_per_host: group
                .iter()
                .map(|h| h.topology.cpus().len())
                .max()
                .unwrap_or(0),
            nodes_per_host: group
                .iter()
                .map(|h| h.topology.num_nodes())
                .max()
                .unwrap_or(0),
            mem_mb_per_host: group
                .iter()
                .map(|h| h.topology.total_memory_mb())
                .max()
                .unwrap_or(0),
            gpus_per_host: group.iter().map(|h| h.gpus).max().unwrap_or(0),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for h in &hosts {
        if !seen.insert(h.agent_id.as_str()) {
            return Err(spec_err(format!(
                "agent id {} appears twice in the cluster; a recording cannot be combined with itself or with hosts of the same ids",
                excerpt(&h.agent_id, 60)
            )));
        }
    }
    Ok(Cluster {
        spec: spec.to_string(),
        groups,
        hosts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups() {
        let g = parse_spec("20x@topo.xml, 48x@pack:2 numa:1 core:6 pu:2,2x@a.JSON;gpus=4").unwrap();
        assert_eq!(
            g,
            vec![
                GroupSpec::Hosts {
                    count: 20,
                    topology: TopoSource::Xml("topo.xml".into()),
                    gpus: 0
                },
                GroupSpec::Hosts {
                    count: 48,
                    topology: TopoSource::Synthetic("pack:2 numa:1 core:6 pu:2".into()),
                    gpus: 0
                },
                GroupSpec::Hosts {
                    count: 2,
                    topology: TopoSource::Json("a.JSON".into()),
                    gpus: 4
                },
            ]
        );
        let g = parse_spec("3@numa:2(memory=1GB) core:2, recording:rec.jsonl").unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[1], GroupSpec::Recording("rec.jsonl".into()));
    }

    #[test]
    fn rejects_bad_specs_with_advice() {
        for (bad, want) in [
            ("", "empty cluster SPEC"),
            ("4x@pu:2,,", "empty group"),
            ("pack:2", "has no `@`"),
            ("0x@pu:2", "at least 1"),
            ("-3x@pu:2", "whole number"),
            ("ax@pu:2", "whole number"),
            ("2x@", "no topology"),
            ("2x@pu:2;cpus=3", "`;gpus=N`"),
            ("recording:", "needs a file"),
            ("999999999999x@pu:1", "more than"),
        ] {
            let e = parse_spec(bad).unwrap_err().to_string();
            assert!(e.starts_with("--cluster: "), "{bad}: {e}");
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn builds_hosts_with_padded_names() {
        let c = load_cluster(
            "2x@pack:2 numa:2 core:4 pu:2,1x@core:2",
            &ClusterOptions { node_mem_mb: 1000 },
        )
        .unwrap();
        assert_eq!(c.hosts.len(), 3);
        assert_eq!(c.hosts[0].agent_id, "agent-000");
        assert_eq!(c.hosts[2].hostname, "host-002");
        assert_eq!(c.total_cpus(), 32 + 32 + 2);
        assert_eq!(c.total_nodes(), 4 + 4 + 1);
        assert!(Arc::ptr_eq(&c.hosts[0].topology, &c.hosts[1].topology));
        assert_eq!(c.groups[0].mem_mb_per_host, 4000);
        assert_eq!(c.describe(), "3 hosts, 66 CPUs, 9 NUMA nodes");
        assert_eq!(c.idle_agents().len(), 3);
    }

    #[cfg(feature = "hwloc")]
    #[test]
    fn hwloc_xml_exports_load() {
        let dir = std::env::var("RETZ_SHARED_DIR").map_or_else(
            |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
            PathBuf::from,
        );
        let t = dir.join("topologies");
        if !t.exists() {
            retz_testkit::require(false, &format!("{} not found", t.display()));
            return;
        }
        let spec = format!(
            "2x@{},1x@{}",
            t.join("32em64t-2n8c2t-pci-noio.xml").display(),
            t.join("16em64t-4s2c2t-offlines.xml").display()
        );
        let c = load_cluster(&spec, &ClusterOptions::default()).unwrap();
        assert_eq!(c.hosts.len(), 3);
        // 2 x (2 nodes, 32 PUs) + the 7 online PUs of the offline-heavy machine.
        assert_eq!(c.total_cpus(), 32 + 32 + 7);
        assert_eq!(c.groups[0].nodes_per_host, 2);
        assert!(c.hosts[0].topology.distances_known());
        assert!(c.groups[0].mem_mb_per_host > 0);
    }

    #[cfg(feature = "hwloc")]
    #[test]
    fn epyc_exports_make_clusters_with_l3_domains_and_memory() {
        let dir = std::env::var("RETZ_SHARED_DIR").map_or_else(
            |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
            PathBuf::from,
        );
        let f = dir.join("topologies/384amd64-2p12l3-epyc9654.xml");
        if !f.exists() {
            retz_testkit::require(false, &format!("{} not found", f.display()));
            return;
        }
        let opts = ClusterOptions { node_mem_mb: 1000 };
        let c = load_cluster(&format!("20x@{}", f.display()), &opts).unwrap();
        assert_eq!(c.hosts.len(), 20);
        assert_eq!(c.total_cpus(), 20 * 384);
        let t = &c.hosts[0].topology;
        assert!(Arc::ptr_eq(t, &c.hosts[19].topology));
        assert_eq!(t.caches().len(), 24);
        // The export has no memory sizes: every node with CPUs gets --node-mem-mb.
        assert!(t.nodes().iter().all(|n| n.memory_mb() == 1000));
    }

    #[test]
    fn topology_errors_name_the_input() {
        let e = load_cluster("2x@pack:2 numa:x", &ClusterOptions::default()).unwrap_err();
        assert!(
            e.to_string().starts_with("--cluster: invalid synthetic"),
            "{e}"
        );
        let e = load_cluster("2x@/nonexistent/t.xml", &ClusterOptions::default()).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/t.xml: "), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        std::fs::write(&p, "{\n  \"nodes\": 3\n}").unwrap();
        let e =
            load_cluster(&format!("1x@{}", p.display()), &ClusterOptions::default()).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let spec = Topology::from_synthetic("pack:1 numa:2 core:2", 512)
            .unwrap()
            .spec()
            .clone();
        std::fs::write(&p, serde_json::to_string(&spec).unwrap()).unwrap();
        let c = load_cluster(&format!("4x@{}", p.display()), &ClusterOptions::default()).unwrap();
        assert_eq!(c.total_cpus(), 16);
    }
}
