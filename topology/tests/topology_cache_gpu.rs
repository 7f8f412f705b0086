//! hwloc → TopologySpec: L3 cache domains (EPYC 7763 and 9654), restricted machines
//! (allowed CPU and node sets narrower than the machine) and GPU locality (DGX-2).

use std::path::PathBuf;

use retz_placement::sets::{CpuSet, GpuId, NodeId, NodeSet};
use retz_placement::topology::{Topology, TopologySpec};
use retz_proto::numa::{FreeResources, agent_flags};
use retz_topology::hwloc::{LoadedTopology, TopologySource, load, load_xml_file};

fn shared_dir() -> PathBuf {
    match std::env::var_os("RETZ_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn shared_xml(name: &str) -> String {
    let path = shared_dir().join("topologies").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn topology_file(name: &str) -> LoadedTopology {
    let path = shared_dir().join("topologies").join(name);
    load_xml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn set(list: &str) -> CpuSet {
    list.parse().unwrap()
}

fn node(spec: &TopologySpec, id: u32) -> &retz_placement::topology::NodeSpec {
    spec.nodes.iter().find(|n| n.id == NodeId(id)).unwrap()
}

#[test]
fn epyc_7763_has_sixteen_l3_domains_of_eight_cores() {
    // The export shows the two sockets as one NUMA node (128 cores, no SMT), which
    // placement used to treat as one pool; its 16 CCXs are now its cache domains.
    let t = topology_file("128amd64-2p8l3-epyc7763.xml");
    assert_eq!(t.spec.nodes.len(), 1);
    let n = &t.spec.nodes[0];
    assert_eq!(n.caches.len(), 16);
    for c in &n.caches {
        let cores = n.cores.iter().filter(|k| k.cpus.is_subset(&c.cpus)).count();
        assert_eq!(cores, 8, "domain {}", c.cpus);
    }
    assert_eq!(n.caches[0].cpus, set("0-7"));
    let flags = agent_flags(&t.spec, &FreeResources::whole_machine(&t.spec)).unwrap();
    assert_eq!(
        flags.attributes,
        "retz_numa:v1;numa_n0:pkg.0/mem.0/cores.0-127;numa_l3_n0:n8x16"
    );
    Topology::new(t.spec).unwrap();
}

#[test]
fn epyc_9654_nodes_have_twelve_l3_domains() {
    let t = topology_file("384amd64-2p12l3-epyc9654.xml");
    let domains: usize = t.spec.nodes.iter().map(|n| n.caches.len()).sum();
    assert_eq!(domains, 24);
    for n in &t.spec.nodes {
        for c in &n.caches {
            assert_eq!(c.cpus.len(), 16, "8 cores x 2 threads: {}", c.cpus);
        }
    }
}

#[test]
fn machines_without_l3_have_no_domains() {
    let t = topology_file("16amd64-4distances.xml");
    assert!(t.spec.nodes.iter().all(|n| n.caches.is_empty()));
}

/// The 8-node Opteron export with CPU 0 disallowed and NUMA node 1 (CPUs 0-1)
/// disallowed, as on an agent confined by a cgroup cpuset.
fn restricted_opteron() -> String {
    let xml = shared_xml("16amd64-4distances.xml");
    let xml = xml.replacen(
        r#"allowed_cpuset="0x0000ffff""#,
        r#"allowed_cpuset="0x0000fffe""#,
        1,
    );
    xml.replacen(
        r#"allowed_nodeset="0x000000ff""#,
        r#"allowed_nodeset="0x000000fd""#,
        1,
    )
}

#[test]
fn a_restricted_machine_uses_only_its_allowed_cpus_and_nodes() {
    let t = load(&TopologySource::XmlText(restricted_opteron())).unwrap();
    let spec = &t.spec;
    assert!(
        spec.nodes.iter().all(|n| n.id != NodeId(1)),
        "node 1 is not allowed"
    );
    assert_eq!(spec.nodes.len(), 7);
    assert!(spec.offline_cpus.contains(retz_placement::sets::CpuId(0)));
    // CPU 1 is allowed but its node is not: it joins the nearest allowed node (by the
    // latency matrix) and is marked remote.
    assert_eq!(spec.remote_cpus, set("1"));
    let holder = spec
        .nodes
        .iter()
        .find(|n| n.cores.iter().any(|c| c.cpus == set("1")))
        .expect("CPU 1 is in a core of an allowed node");
    let opteron = load(&TopologySource::XmlText(shared_xml(
        "16amd64-4distances.xml",
    )))
    .unwrap();
    let row = &node(&opteron.spec, 1).distances;
    let position = |id: NodeId| opteron.spec.nodes.iter().position(|n| n.id == id).unwrap();
    let nearest = spec
        .nodes
        .iter()
        .map(|n| row[position(n.id)])
        .min()
        .unwrap();
    assert_eq!(row[position(holder.id)], nearest, "{row:?}");
    // Distances now cover the seven usable nodes.
    assert!(spec.nodes.iter().all(|n| n.distances.len() == 7));
    // The flags describe exactly that, and decode to the same layout.
    let flags = agent_flags(spec, &FreeResources::whole_machine(spec)).unwrap();
    assert!(
        flags.resources.contains("cpuids:[1-15]"),
        "{}",
        flags.resources
    );
    assert!(
        !flags.attributes.contains("numa_n1:"),
        "{}",
        flags.attributes
    );
    assert!(
        flags.attributes.contains("numa_remote:cpus.1"),
        "{}",
        flags.attributes
    );
    Topology::new(spec.clone()).unwrap();
}

#[test]
fn dgx2_gpus_are_local_to_their_socket() {
    let t = topology_file("4intel64-2p-16gpu-dgx2.xml");
    let gpus = &t.spec.gpus;
    assert_eq!(gpus.len(), 16, "{gpus:?}");
    for (i, g) in gpus.iter().enumerate() {
        assert_eq!(g.id, GpuId(u32::try_from(i).unwrap()));
        assert_eq!(
            g.nodes.len(),
            1,
            "GPU {i} hangs off one socket: {:?}",
            g.nodes
        );
    }
    let first_half: NodeSet = gpus[..8].iter().flat_map(|g| g.nodes.iter()).collect();
    let second_half: NodeSet = gpus[8..].iter().flat_map(|g| g.nodes.iter()).collect();
    assert_eq!(first_half.len(), 1, "{first_half:?}");
    assert_eq!(second_half.len(), 1, "{second_half:?}");
    assert_ne!(first_half, second_half);
    let flags = agent_flags(&t.spec, &FreeResources::whole_machine(&t.spec)).unwrap();
    // The export is of a process confined to 4 CPUs; the GPUs are all listed.
    assert!(
        flags.attributes.ends_with(";numa_gpus:g0-7n0/g8-15n1"),
        "{}",
        flags.attributes
    );
}

#[test]
fn machines_without_gpus_list_none() {
    for name in ["32em64t-2n8c2t-pci-noio.xml", "128amd64-2p8l3-epyc7763.xml"] {
        assert!(topology_file(name).spec.gpus.is_empty(), "{name}");
    }
}
