//! The sample agent flags in `etc/mesos-agent/` parse into the NUMA topologies they describe.

use std::path::PathBuf;

use retz_proto::numa::{offer_topology, parse_agent_flags};

fn etc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../etc/mesos-agent")
}

fn load(name: &str) -> retz_proto::numa::OfferTopology {
    let path = etc_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let flags = parse_agent_flags(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    offer_topology(&flags.resources, &flags.attributes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_sample_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(etc_dir()).expect("etc/mesos-agent exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "flags") {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name");
            let topo = load(name);
            assert!(topo.numa_aware, "{name} must carry the NUMA attributes");
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected the sample flag files, found {seen}");
}

#[test]
fn dual_sandy_bridge_has_two_nodes_of_eight_smt2_cores() {
    let topo = load("2x-xeon-e5-2650.flags");
    assert_eq!(topo.spec.nodes.len(), 2);
    for node in &topo.spec.nodes {
        assert_eq!(node.cores.len(), 8);
        assert!(node.cores.iter().all(|c| c.cpus.len() == 2));
    }
    assert_eq!(topo.spec.nodes[0].distances, vec![10, 20]);
    assert_eq!(topo.free.cpuids.to_string(), "0-31");
}

#[test]
fn snc2_gold_has_four_nodes_with_same_package_distance_11() {
    let topo = load("2x-xeon-gold-6230-snc2.flags");
    assert_eq!(topo.spec.nodes.len(), 4);
    assert_eq!(topo.spec.nodes[0].distances, vec![10, 21, 11, 21]);
    assert_eq!(topo.spec.nodes[0].package, topo.spec.nodes[2].package);
}
