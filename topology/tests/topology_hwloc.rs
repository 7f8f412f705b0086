//! hwloc → TopologySpec on the shared real topologies, synthetic shapes and bad input.

use std::path::PathBuf;

use retz_placement::sets::{CpuId, CpuSet, NodeId};
use retz_placement::topology::{CoreSpec, Topology, TopologySpec};
use retz_topology::hwloc::{
    LoadedTopology, TopologyError, TopologySource, load, load_synthetic, load_xml_file,
};

fn shared_dir() -> PathBuf {
    match std::env::var_os("RETZ_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn topology_file(name: &str) -> LoadedTopology {
    let path = shared_dir().join("topologies").join(name);
    load_xml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn set(list: &str) -> CpuSet {
    list.parse().unwrap()
}

fn cores(spec: &TopologySpec) -> usize {
    spec.nodes.iter().map(|n| n.cores.len()).sum()
}

fn cpus(spec: &TopologySpec) -> CpuSet {
    spec.nodes
        .iter()
        .flat_map(|n| &n.cores)
        .fold(CpuSet::new(), |acc, c| acc.union(&c.cpus))
}

fn node_cpus(spec: &TopologySpec, id: u32) -> CpuSet {
    let node = spec.nodes.iter().find(|n| n.id == NodeId(id)).unwrap();
    node.cores
        .iter()
        .fold(CpuSet::new(), |acc, c| acc.union(&c.cpus))
}

/// packages / NUMA nodes / cores / PUs, as in the README table.
fn assert_shape(loaded: &LoadedTopology, packages: usize, nodes: usize, ncores: usize, pus: usize) {
    assert_eq!(
        loaded.packages.len(),
        packages,
        "packages of {}",
        loaded.source
    );
    assert_eq!(loaded.spec.nodes.len(), nodes, "nodes of {}", loaded.source);
    assert_eq!(cores(&loaded.spec), ncores, "cores of {}", loaded.source);
    assert_eq!(cpus(&loaded.spec).len(), pus, "PUs of {}", loaded.source);
    Topology::new(loaded.spec.clone()).expect("valid placement topology");
}

#[test]
fn sandy_bridge_two_nodes_slit_10_20() {
    let t = topology_file("32em64t-2n8c2t-pci-noio.xml");
    assert_shape(&t, 2, 2, 16, 32);
    let spec = &t.spec;
    assert_eq!(t.packages, [0, 1]);
    assert_eq!(spec.nodes[0].id, NodeId(0));
    assert_eq!(spec.nodes[0].package, 0);
    assert_eq!(spec.nodes[1].package, 1);
    assert_eq!(spec.nodes[0].memory_mb, 34_330_173_440 / (1 << 20));
    assert_eq!(spec.nodes[1].memory_mb, 32_768);
    assert_eq!(node_cpus(spec, 0), set("0-7,16-23"));
    assert_eq!(node_cpus(spec, 1), set("8-15,24-31"));
    // SMT siblings are i and i+16, cores ordered by their lowest PU
    let expected: Vec<CoreSpec> = (0..8)
        .map(|i| CoreSpec {
            cpus: set(&format!("{i},{}", i + 16)),
        })
        .collect();
    assert_eq!(spec.nodes[0].cores, expected);
    assert_eq!(spec.nodes[0].distances, [10, 20]);
    assert_eq!(spec.nodes[1].distances, [20, 10]);
    assert!(spec.offline_cpus.is_empty());
}

#[test]
fn cascade_lake_snc2_four_nodes_slit_10_11_21() {
    let t = topology_file("memorysidecaches.xml");
    assert_shape(&t, 2, 4, 40, 80);
    let spec = &t.spec;
    let ids: Vec<u32> = spec.nodes.iter().map(|n| n.id.0).collect();
    assert_eq!(ids, [0, 1, 2, 3]);
    // SNC2: nodes 0 and 2 share package 0, nodes 1 and 3 package 1
    let packages: Vec<u32> = spec.nodes.iter().map(|n| n.package).collect();
    assert_eq!(packages, [0, 1, 0, 1]);
    assert_eq!(spec.nodes[0].distances, [10, 21, 11, 21]);
    assert_eq!(spec.nodes[1].distances, [21, 10, 21, 11]);
    assert_eq!(spec.nodes[2].distances, [11, 21, 10, 21]);
    assert_eq!(spec.nodes[3].distances, [21, 11, 21, 10]);
    assert_eq!(spec.nodes[0].memory_mb, 397_816_131_584 / (1 << 20));
    assert_eq!(spec.nodes[3].memory_mb, 399_526_719_488 / (1 << 20));
    let node0: CpuSet = (0..20).map(|i| CpuId(4 * i)).collect();
    assert_eq!(node_cpus(spec, 0), node0);
    for node in &spec.nodes {
        assert_eq!(node.cores.len(), 10);
        for core in &node.cores {
            let first = core.cpus.first().unwrap().0;
            assert_eq!(core.cpus, set(&format!("{first},{}", first + 40)));
        }
    }
}

#[test]
fn opteron_eight_nodes_uses_the_numa_latency_matrix() {
    let t = topology_file("16amd64-4distances.xml");
    assert_shape(&t, 8, 8, 16, 16);
    let spec = &t.spec;
    // node os indexes are not in package order: node 1 holds CPUs 0-1
    assert_eq!(node_cpus(spec, 1), set("0-1"));
    assert_eq!(node_cpus(spec, 0), set("2-3"));
    assert_eq!(node_cpus(spec, 5), set("6-7"));
    assert_eq!(spec.nodes[1].package, 0);
    assert_eq!(spec.nodes[0].package, 1);
    assert_eq!(spec.nodes[0].memory_mb, 8_587_984_896 / (1 << 20));
    assert_eq!(spec.nodes[7].memory_mb, 8192);
    // The NUMALatency matrix (10 local / 20 remote), not the Package or Core matrices
    // (10/20/40/80) nor the PU one.
    for (i, node) in spec.nodes.iter().enumerate() {
        let expected: Vec<u32> = (0..8).map(|j| if i == j { 10 } else { 20 }).collect();
        assert_eq!(node.distances, expected, "row of node {}", node.id);
    }
    for node in &spec.nodes {
        assert!(node.cores.iter().all(|c| c.cpus.len() == 1));
    }
}

#[test]
fn offline_pus_are_never_usable() {
    let t = topology_file("16em64t-4s2c2t-offlines.xml");
    assert_shape(&t, 4, 1, 6, 7);
    let spec = &t.spec;
    assert_eq!(t.packages, [0, 1, 2, 3]);
    assert_eq!(cpus(spec), set("0-1,3-4,6,12,15"));
    assert_eq!(spec.offline_cpus, set("2,5,7-11,13-14"));
    let node = &spec.nodes[0];
    assert_eq!(node.id, NodeId(0));
    // the node sits above all packages: it reports the package of its first CPU
    assert_eq!(node.package, 0);
    assert_eq!(node.memory_mb, 0, "the export has no memory size");
    let expected: Vec<CpuSet> = ["0", "1", "3", "4,12", "6", "15"]
        .into_iter()
        .map(set)
        .collect();
    let got: Vec<CpuSet> = node.cores.iter().map(|c| c.cpus.clone()).collect();
    assert_eq!(got, expected);
    assert!(node.distances.is_empty());
}

#[test]
fn synthetic_shapes_match_the_placement_parser() {
    // hwloc gives synthetic NUMA nodes 1 GiB each.
    for desc in [
        "pack:2 numa:2 core:4 pu:2",
        "numa:8 core:4 pu:1",
        "pack:1 core:4 pu:4",
        "pack:2 core:3 pu:2",
        "pack:2 numa:1 core:6 pu:2",
    ] {
        let hwloc = load_synthetic(desc).unwrap();
        let pure = Topology::from_synthetic(desc, 1024).unwrap();
        assert_eq!(&hwloc.spec, pure.spec(), "{desc}");
    }
    let t = load_synthetic("pack:2 numa:2 core:4 pu:2").unwrap();
    assert_shape(&t, 2, 4, 16, 32);
    let packages: Vec<u32> = t.spec.nodes.iter().map(|n| n.package).collect();
    assert_eq!(packages, [0, 0, 1, 1]);
    assert!(t.spec.nodes.iter().all(|n| n.distances.is_empty()));
    assert_eq!(t.spec.nodes[1].cores[0].cpus, set("8-9"));

    let smt4 = load_synthetic("pack:1 core:4 pu:4").unwrap();
    assert_shape(&smt4, 1, 1, 4, 16);
    assert_eq!(smt4.spec.nodes[0].cores[3].cpus, set("12-15"));
}

#[test]
fn memory_only_nodes_have_no_cores() {
    // two NUMA nodes per package with the same locality (DRAM + HBM/CXL style)
    let t = load_synthetic("pack:2 [numa(memory=2GB)] [numa(memory=4GB)] core:2 pu:1").unwrap();
    assert_shape(&t, 2, 4, 4, 4);
    let spec = &t.spec;
    assert_eq!(node_cpus(spec, 0), set("0-1"));
    assert!(spec.nodes[1].cores.is_empty());
    assert_eq!(node_cpus(spec, 2), set("2-3"));
    assert!(spec.nodes[3].cores.is_empty());
    assert_eq!(spec.nodes[1].memory_mb, 4_000_000_000 / (1 << 20));
    assert_eq!(spec.nodes[1].package, 0);
    assert_eq!(spec.nodes[3].package, 1);
}

#[test]
fn disallowed_pus_go_offline() {
    // A 4-PU machine whose allowed_cpuset excludes PU 3 (as under a restricted cgroup).
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE topology SYSTEM "hwloc2.dtd">
<topology version="2.0">
  <object type="Machine" os_index="0" cpuset="0x0000000f" complete_cpuset="0x0000000f" allowed_cpuset="0x00000007" nodeset="0x00000001" complete_nodeset="0x00000001" allowed_nodeset="0x00000001" gp_index="1">
    <object type="NUMANode" os_index="0" cpuset="0x0000000f" complete_cpuset="0x0000000f" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="2" local_memory="1073741824"/>
    <object type="Package" os_index="0" cpuset="0x0000000f" complete_cpuset="0x0000000f" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="3">
      <object type="Core" os_index="0" cpuset="0x00000003" complete_cpuset="0x00000003" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="4">
        <object type="PU" os_index="0" cpuset="0x00000001" complete_cpuset="0x00000001" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="5"/>
        <object type="PU" os_index="1" cpuset="0x00000002" complete_cpuset="0x00000002" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="6"/>
      </object>
      <object type="Core" os_index="1" cpuset="0x0000000c" complete_cpuset="0x0000000c" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="7">
        <object type="PU" os_index="2" cpuset="0x00000004" complete_cpuset="0x00000004" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="8"/>
        <object type="PU" os_index="3" cpuset="0x00000008" complete_cpuset="0x00000008" nodeset="0x00000001" complete_nodeset="0x00000001" gp_index="9"/>
      </object>
    </object>
  </object>
</topology>
"#;
    let t = load(&TopologySource::XmlText(xml.to_string())).unwrap();
    assert_eq!(cpus(&t.spec), set("0-2"));
    assert_eq!(t.spec.offline_cpus, set("3"));
    let got: Vec<CpuSet> = t.spec.nodes[0]
        .cores
        .iter()
        .map(|c| c.cpus.clone())
        .collect();
    assert_eq!(got, [set("0-1"), set("2")]);
    assert_eq!(t.spec.nodes[0].memory_mb, 1024);
}

#[test]
fn this_machine_loads_as_a_valid_topology() {
    let t = load(&TopologySource::ThisMachine).unwrap();
    assert_eq!(t.source, "this machine");
    assert!(!cpus(&t.spec).is_empty());
    Topology::new(t.spec).unwrap();
}

#[test]
fn bad_input_gives_one_clear_error() {
    let missing = shared_dir().join("topologies/no-such-file.xml");
    let err = load_xml_file(&missing).unwrap_err();
    assert!(matches!(err, TopologyError::ReadXml { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("no-such-file.xml"), "{text}");
    assert!(text.contains("No such file"), "{text}");

    let dir = std::env::temp_dir().join(format!("retz-topology-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.xml");
    std::fs::write(&garbage, "<topology>not hwloc</topology>").unwrap();
    let err = load_xml_file(&garbage).unwrap_err();
    assert!(matches!(err, TopologyError::InvalidXml { .. }), "{err}");
    assert!(err.to_string().contains("garbage.xml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    for desc in ["pack:two core:2", "", "   ", "core:0", "numa:2 banana:3"] {
        let err = load_synthetic(desc).unwrap_err();
        assert!(
            matches!(err, TopologyError::InvalidSynthetic { .. }),
            "{desc:?}: {err}"
        );
        assert!(err.to_string().contains("pack:2 numa:2"), "{err}");
    }
    let err = load_synthetic("pack:2\0 pu:2").unwrap_err();
    assert!(matches!(err, TopologyError::ContainsNul { .. }), "{err}");
    for err in [
        load_xml_file(&missing).unwrap_err(),
        load_synthetic("x").unwrap_err(),
    ] {
        assert!(!err.to_string().contains('\n'));
    }
}
