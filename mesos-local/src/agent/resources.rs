//! What an agent advertises for a machine topology: Mesos resources and attributes, by
//! the Retz NUMA resource convention (`retz_proto::numa`, DESIGN.md).
//!
//! Pure. The agent goes through the convention's agent flags, exactly as a real Mesos
//! agent started with `retz-executor topology --agent-flags` would: `cpus` (usable CPUs),
//! `mem` (sum of the nodes' memory, MiB), `disk` (as given), `cpuids` (RANGES of usable
//! CPU ids), `numanodes` (node count), and the `retz_numa`/`numa_n<ID>`/`numa_offline`
//! attributes. Unreserved resources carry `role: "*"` (the pre-refinement format a v1
//! agent reports).

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

/// The resources and attributes of an agent running on `spec` with `disk_mb` of disk.
pub fn try_agent_resources(
    spec: &TopologySpec,
    disk_mb: u64,
) -> Result<(Vec<Resource>, Vec<Attribute>), NumaError> {
    let mut free = FreeResources::whole_machine(spec);
    free.disk_mb = disk_mb as f64;
    let flags = numa::agent_flags(spec, &free)?;
    let mut resources = numa::parse_resources(&flags.resources)?;
    for r in &mut resources {
        if r.role.is_none() {
            r.role = Some("*".to_string());
        }
    }
    let attributes = numa::parse_attributes(&flags.attributes)?;
    Ok((resources, attributes))
}

/// [`try_agent_resources`], for a spec that may not be a valid topology: then the error is
/// logged and the agent advertises `cpus`, `mem`, `disk`, `cpuids` and `numanodes` without
/// the NUMA attributes (an offer without them is still usable: one node, no pinning
/// guarantees).
pub fn agent_resources(spec: &TopologySpec, disk_mb: u64) -> (Vec<Resource>, Vec<Attribute>) {
    match try_agent_resources(spec, disk_mb) {
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
            let resources = vec![
                scalar(numa::CPUS, cpus.len() as f64),
                scalar(numa::MEM, mem as f64),
                scalar(numa::DISK, disk_mb as f64),
                ranges(
                    numa::CPUIDS,
                    cpus.ranges().map(|(a, b)| (u64::from(a), u64::from(b))),
                ),
                scalar(numa::NUMANODES, spec.nodes.len() as f64),
            ];
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
    }
}
