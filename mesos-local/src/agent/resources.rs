//! What an agent advertises for a machine topology: Mesos resources and attributes, by
//! the Retz NUMA resource convention (`retz_proto::numa`, DESIGN.md).
//!
//! Pure. The agent goes through the convention's agent flags, exactly as a real Mesos
//! agent started with `retz-executor topology --agent-flags` would: `cpus` (usable CPUs),
//! `mem` (sum of the nodes' memory, MiB), `disk` (as given), `cpuids` (RANGES of usable
//! CPU ids), `numanodes` (node count), and the `retz_numa`/`numa_n<ID>`/`numa_offline`
//! attributes. Unreserved resources carry `role: "*"` (the pre-refinement format a v1
//! agent reports).
//!
//! Like a Mesos agent whose `--resources` name no ports, the agent also offers
//! `ports:[31000-32000]` ([`DEFAULT_PORTS`]) unless it is given other ranges (none at all
//! when given an empty list); [`parse_port_ranges`] reads them from the command line.
//!
//! GPUs are offered only when asked for (`retz-mesos-local --gpus N`, `[local] gpus`):
//! the `gpus` scalar, their device ids as `gpuids` RANGES and their locality in the
//! `numa_gpus` attribute. A machine whose topology lists GPUs offers its first `N`; one
//! without (this project's test machine) offers GPUs `0..N` attached to its first NUMA
//! node ([`spec_with_gpus`]).

use retz_placement::sets::CpuSet;
use retz_placement::topology::TopologySpec;
use retz_proto::mesos::{Attribute, Resource, value};
use retz_proto::numa::{self, FreeResources, NumaError};

/// An unreserved SCALAR resource.
pub fn scalar(name: &str, amount: f64) -> Resource {
    Resource {
        name: name.to_string(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: amount }),
        role: Some("*".to_string()),
        ..Default::default()
    }
}

/// An unreserved RANGES resource of inclusive `(begin, end)` pairs.
pub fn ranges(name: &str, runs: impl IntoIterator<Item = (u64, u64)>) -> Resource {
    Resource {
        name: name.to_string(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: runs
                .into_iter()
                .map(|(begin, end)| value::Range { begin, end })
                .collect(),
        }),
        role: Some("*".to_string()),
        ..Default::default()
    }
}

/// The ports a Mesos agent offers when its `--resources` name none: `[31000-32000]`.
pub const DEFAULT_PORTS: [(u64, u64); 1] = [(31000, 32000)];

/// The Mesos resource name of ports.
pub const PORTS: &str = "ports";

/// Port ranges that cannot be offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad port ranges {input:?}: {problem} (write ranges of ports 1-65535 such as \
     31000-32000,40000-40099, or 'none')"
)]
pub struct PortRangesError {
    /// The text given.
    pub input: String,
    /// What is wrong.
    pub problem: String,
}

/// Parses `31000-32000,40000-40099` (Mesos' `[31000-32000, 40000-40099]` brackets and
/// spaces are accepted too; a single port is `N` or `N-N`) into sorted, disjoint
/// inclusive ranges. `none` or an empty list means no ports.
pub fn parse_port_ranges(input: &str) -> Result<Vec<(u64, u64)>, PortRangesError> {
    let err = |problem: String| PortRangesError {
        input: input.chars().take(80).collect(),
        problem,
    };
    let t = input.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t)
        .trim();
    if t.is_empty() || t.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let port = |p: &str| -> Result<u64, PortRangesError> {
        match p.trim().parse::<u64>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n),
            _ => Err(err(format!("{:?} is not a port number", p.trim()))),
        }
    };
    let mut runs = Vec::new();
    for part in t.split(',') {
        let (b, e) = match part.split_once('-') {
            Some((b, e)) => (port(b)?, port(e)?),
            None => {
                let p = port(part)?;
                (p, p)
            }
        };
        if b > e {
            return Err(err(format!("range {b}-{e} ends before it begins")));
        }
        runs.push((b, e));
    }
    runs.sort_unstable();
    for w in runs.windows(2) {
        if w[1].0 <= w[0].1 {
            return Err(err(format!(
                "ranges {}-{} and {}-{} overlap",
                w[0].0, w[0].1, w[1].0, w[1].1
            )));
        }
    }
    Ok(runs)
}

/// The resources and attributes of an agent running on `spec` with `disk_mb` of disk and
/// the [`DEFAULT_PORTS`].
pub fn try_agent_resources(
    spec: &TopologySpec,
    disk_mb: u64,
) -> Result<(Vec<Resource>, Vec<Attribute>), NumaError> {
    try_agent_resources_with_ports(spec, disk_mb, &DEFAULT_PORTS)
}

/// [`try_agent_resources`] offering `ports` (sorted, disjoint inclusive ranges, as
/// [`parse_port_ranges`] gives; empty: no `ports` resource).
pub fn try_agent_resources_with_ports(
    spec: &TopologySpec,
    disk_mb: u64,
    ports: &[(u64, u64)],
) -> Result<(Vec<Resource>, Vec<Attribute>), NumaError> {
    try_agent_resources_with_gpus(spec, disk_mb, ports, 0)
}

/// [`try_agent_resources_with_ports`] also offering `gpus` GPUs: the `gpus` scalar and,
/// as `spec.gpus` lists them (see [`spec_with_gpus`]), their `gpuids` and the `numa_gpus`
/// attribute with their locality.
pub fn try_agent_resources_with_gpus(
    spec: &TopologySpec,
    disk_mb: u64,
    ports: &[(u64, u64)],
    gpus: u32,
) -> Result<(Vec<Resource>, Vec<Attribute>), NumaError> {
    let mut free = FreeResources::whole_machine(spec).with_gpus(spec, gpus);
    free.disk_mb = disk_mb as f64;
    let flags = numa::agent_flags(spec, &free)?;
    let mut resources = numa::parse_resources(&flags.resources)?;
    for r in &mut resources {
        if r.role.is_none() {
            r.role = Some("*".to_string());
        }
    }
    let attributes = numa::parse_attributes(&flags.attributes)?;
    if !ports.is_empty() {
        resources.push(ranges(PORTS, ports.iter().copied()));
    }
    Ok((resources, attributes))
}

/// [`try_agent_resources`], for a spec that may not be a valid topology: then the error is
/// logged and the agent advertises `cpus`, `mem`, `disk`, `cpuids`, `numanodes` and the
/// ports without the NUMA attributes (an offer without them is still usable: one node, no
/// pinning guarantees).
pub fn agent_resources(spec: &TopologySpec, disk_mb: u64) -> (Vec<Resource>, Vec<Attribute>) {
    agent_resources_with_ports(spec, disk_mb, &DEFAULT_PORTS)
}

/// [`agent_resources`] offering `ports` instead of the [`DEFAULT_PORTS`].
pub fn agent_resources_with_ports(
    spec: &TopologySpec,
    disk_mb: u64,
    ports: &[(u64, u64)],
) -> (Vec<Resource>, Vec<Attribute>) {
    agent_resources_with_gpus(spec, disk_mb, ports, 0)
}

/// `spec` with exactly `n` GPUs: its first `n` when it lists that many (their locality as
/// hwloc found it), else GPUs `0..n` attached to its first NUMA node (a machine without
/// GPUs, offering GPUs for tests and demos).
pub fn spec_with_gpus(spec: &TopologySpec, n: u32) -> TopologySpec {
    let mut spec = spec.clone();
    if spec.gpus.len() as u64 >= u64::from(n) {
        spec.gpus.truncate(n as usize);
    } else {
        let node: retz_placement::sets::NodeSet =
            spec.nodes.first().map(|x| x.id).into_iter().collect();
        spec.gpus = (0..n)
            .map(|id| retz_placement::topology::GpuSpec {
                id: retz_placement::sets::GpuId(id),
                nodes: node.clone(),
            })
            .collect();
    }
    spec
}

/// [`agent_resources_with_ports`] also offering `gpus` GPUs (with their ids and, by the
/// NUMA convention, their locality); without the NUMA attributes, `gpus` and `gpuids`
/// only.
pub fn agent_resources_with_gpus(
    spec: &TopologySpec,
    disk_mb: u64,
    ports: &[(u64, u64)],
    gpus: u32,
) -> (Vec<Resource>, Vec<Attribute>) {
    match try_agent_resources_with_gpus(spec, disk_mb, ports, gpus) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(
                "the agent's topology does not follow the NUMA convention ({e}); advertising plain resources without NUMA attributes"
            );
            let cpus = spec
                .nodes
                .iter()
                .flat_map(|n| n.cores.iter())
                .fold(CpuSet::new(), |acc, core| acc.union(&core.cpus));
            let mem: u64 = spec.nodes.iter().map(|n| n.memory_mb).sum();
            let mut resources = vec![
                scalar(numa::CPUS, cpus.len() as f64),
                scalar(numa::MEM, mem as f64),
                scalar(numa::DISK, disk_mb as f64),
                ranges(
                    numa::CPUIDS,
                    cpus.ranges().map(|(a, b)| (u64::from(a), u64::from(b))),
                ),
                scalar(numa::NUMANODES, spec.nodes.len() as f64),
            ];
            if gpus > 0 {
                resources.push(scalar(numa::GPUS, f64::from(gpus)));
                resources.push(ranges(numa::GPUIDS, [(0, u64::from(gpus) - 1)]));
            }
            if !ports.is_empty() {
                resources.push(ranges(PORTS, ports.iter().copied()));
            }
            (resources, Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_placement::topology::Topology;

    fn find<'a>(rs: &'a [Resource], name: &str) -> &'a Resource {
        rs.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn two_node_machine() {
        let topo = Topology::from_synthetic("pack:2 numa:1 core:4 pu:2", 8192).unwrap();
        let (rs, attrs) = agent_resources(topo.spec(), 10_000);
        assert_eq!(find(&rs, "cpus").scalar.unwrap().value, 16.0);
        assert_eq!(find(&rs, "mem").scalar.unwrap().value, 16384.0);
        assert_eq!(find(&rs, "disk").scalar.unwrap().value, 10_000.0);
        assert_eq!(find(&rs, "numanodes").scalar.unwrap().value, 2.0);
        let ids = find(&rs, "cpuids").ranges.clone().unwrap();
        assert_eq!(ids.range, vec![value::Range { begin: 0, end: 15 }]);
        let ports = find(&rs, "ports").ranges.clone().unwrap();
        assert_eq!(
            ports.range,
            vec![value::Range {
                begin: 31000,
                end: 32000
            }],
            "a Mesos agent's default ports"
        );
        assert!(rs.iter().all(|r| r.role.as_deref() == Some("*")));
        // the NUMA layout round-trips through the convention
        let offer = numa::offer_topology(&rs, &attrs).unwrap();
        assert!(offer.numa_aware);
        assert_eq!(&offer.spec, topo.spec());
    }

    #[test]
    fn invalid_spec_falls_back_to_plain_resources() {
        let topo = Topology::from_synthetic("pack:1 numa:2 core:2 pu:1", 512).unwrap();
        let mut spec = topo.spec().clone();
        spec.nodes.swap(0, 1); // ids no longer ascending
        assert!(try_agent_resources(&spec, 5).is_err());
        let (rs, attrs) = agent_resources(&spec, 5);
        assert!(attrs.is_empty());
        assert_eq!(find(&rs, "cpus").scalar.unwrap().value, 4.0);
        assert_eq!(find(&rs, "numanodes").scalar.unwrap().value, 2.0);
        assert_eq!(find(&rs, "disk").scalar.unwrap().value, 5.0);
        assert!(rs.iter().any(|r| r.name == "ports"));
        let (rs, _) = agent_resources_with_ports(&spec, 5, &[]);
        assert!(rs.iter().all(|r| r.name != "ports"));
    }

    #[test]
    fn other_ports_or_none() {
        let topo = Topology::from_synthetic("pack:1 numa:1 core:2 pu:1", 512).unwrap();
        let (rs, attrs) = agent_resources_with_ports(topo.spec(), 5, &[(8000, 8009), (9000, 9000)]);
        let ports = find(&rs, "ports").ranges.clone().unwrap();
        let runs: Vec<(u64, u64)> = ports.range.iter().map(|r| (r.begin, r.end)).collect();
        assert_eq!(runs, vec![(8000, 8009), (9000, 9000)]);
        assert_eq!(find(&rs, "ports").role.as_deref(), Some("*"));
        // ports do not disturb the NUMA convention
        assert!(numa::offer_topology(&rs, &attrs).unwrap().numa_aware);
        let (rs, _) = agent_resources_with_ports(topo.spec(), 5, &[]);
        assert!(rs.iter().all(|r| r.name != "ports"));
    }

    #[test]
    fn port_ranges_parse_with_clear_errors() {
        assert_eq!(
            parse_port_ranges("31000-32000").unwrap(),
            vec![(31000, 32000)]
        );
        assert_eq!(
            parse_port_ranges(" [40000-40099, 8080, 31000-31000] ").unwrap(),
            vec![(8080, 8080), (31000, 31000), (40000, 40099)]
        );
        assert!(parse_port_ranges("none").unwrap().is_empty());
        assert!(parse_port_ranges("[]").unwrap().is_empty());
        for (bad, why) in [
            ("0-10", "\"0\" is not a port"),
            ("1-70000", "\"70000\" is not a port"),
            ("200-100", "ends before it begins"),
            ("1-10,5-20", "overlap"),
            ("a-b", "\"a\" is not a port"),
            ("1-2,", "\"\" is not a port"),
            ("-5", "\"\" is not a port"),
        ] {
            let e = parse_port_ranges(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("31000-32000"), "{bad}: {e}");
        }
    }
}
