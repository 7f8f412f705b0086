//! What an agent advertises for a machine topology: Mesos resources and attributes, by
//! the Retz NUMA resource convention (DESIGN.md).
//!
//! Pure. `cpus` is the number of usable CPUs, `mem` the sum of the nodes' memory (MiB),
//! `disk` as given, `cpuids` the RANGES of usable CPU ids, `numanodes` the number of NUMA
//! nodes. All are unreserved (`role: "*"`).
//!
//! The NUMA layout attributes are the project's encoding owned by `retz_proto::numa`;
//! until that module is merged this agent advertises no attributes (an offer without the
//! NUMA attributes is still usable: one node, no pinning guarantees).

use retz_placement::topology::TopologySpec;
use retz_proto::mesos::{Attribute, Resource, value};

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
pub fn agent_resources(spec: &TopologySpec, disk_mb: u64) -> (Vec<Resource>, Vec<Attribute>) {
    let cpus = spec
        .nodes
        .iter()
        .flat_map(|n| n.cores.iter())
        .fold(retz_placement::sets::CpuSet::new(), |acc, core| {
            acc.union(&core.cpus)
        });
    let mem: u64 = spec.nodes.iter().map(|n| n.memory_mb).sum();
    let resources = vec![
        scalar("cpus", cpus.len() as f64),
        scalar("mem", mem as f64),
        scalar("disk", disk_mb as f64),
        ranges(
            "cpuids",
            cpus.ranges().map(|(a, b)| (u64::from(a), u64::from(b))),
        ),
        scalar("numanodes", spec.nodes.len() as f64),
    ];
    (resources, Vec::new())
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
        assert!(attrs.is_empty());
    }
}
