//! Placement scenarios on real machine topologies: the shared hwloc exports are loaded
//! through the executor's hwloc converter (and, for the offer path, through the NUMA agent
//! flags and back), then planned by the placement engine's packer.

use std::path::PathBuf;
use std::sync::Arc;

use retz_placement::{
    AffinityPolicy, AgentState, Assignment, CpuSet, JobRequest, NodeId, Packer, PendingReason,
    PolicyConfig, SmtPolicy, Topology,
};
use retz_proto::numa::{
    FreeResources, agent_flags, offer_topology, parse_agent_flags, parse_resources,
};
use retz_topology::hwloc::{LoadedTopology, load_xml_file};

fn shared_dir() -> PathBuf {
    match std::env::var_os("RETZ_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn real(name: &str) -> LoadedTopology {
    load_xml_file(&shared_dir().join("topologies").join(name)).unwrap()
}

fn topology(name: &str) -> Arc<Topology> {
    Arc::new(Topology::new(real(name).spec).unwrap())
}

fn idle(topology: &Arc<Topology>) -> Vec<AgentState> {
    vec![AgentState::idle(
        "agent-0",
        "host0",
        Arc::clone(topology),
        0,
    )]
}

fn place(agents: &[AgentState], job: JobRequest) -> Assignment {
    let id = job.job_id;
    let plan = Packer::new(PolicyConfig::default()).plan(agents, &[job], 0);
    match plan.assignment(id) {
        Some(a) => a.clone(),
        None => panic!("job {id} not placed: {:?}", plan.pending_reason(id)),
    }
}

/// The nodes whose CPUs the assignment uses.
fn nodes_of(topology: &Topology, cpus: &CpuSet) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = cpus.iter().filter_map(|c| topology.node_of(c)).collect();
    nodes.dedup();
    nodes.sort();
    nodes.dedup();
    nodes
}

#[test]
fn numa_strict_six_cpus_are_three_whole_cores_of_one_node() {
    let topo = topology("32em64t-2n8c2t-pci-noio.xml");
    let job = JobRequest::new(1, 6, 4096).with_policy(AffinityPolicy::NumaStrict);
    let a = place(&idle(&topo), job);
    assert_eq!(a.cpus.len(), 6);
    assert_eq!(a.granted_cpus, 6);
    assert!(a.pinned);
    assert_eq!(nodes_of(&topo, &a.cpus).len(), 1, "{}", a.cpus);
    // every CPU's SMT sibling is in the grant too: three whole physical cores
    for cpu in a.cpus.iter() {
        let siblings = topo.siblings(cpu).unwrap();
        assert_eq!(siblings.len(), 2);
        assert!(
            siblings.is_subset(&a.cpus),
            "{} splits core {siblings}",
            a.cpus
        );
    }
}

#[test]
fn numa_strict_larger_than_any_node_never_fits() {
    let topo = topology("32em64t-2n8c2t-pci-noio.xml");
    let job = JobRequest::new(7, 20, 1024).with_policy(AffinityPolicy::NumaStrict);
    let plan = Packer::new(PolicyConfig::default()).plan(&idle(&topo), &[job], 0);
    assert!(plan.assignment(7).is_none());
    assert!(
        matches!(
            plan.pending_reason(7),
            Some(PendingReason::NeverFits { .. })
        ),
        "{:?}",
        plan.pending_reason(7)
    );
}

#[test]
fn numa_prefer_job_larger_than_one_node_gets_two_nodes_on_the_eight_node_opteron() {
    // 2 CPUs per node: a 4-CPU job needs two nodes, and no more
    let topo = topology("16amd64-4distances.xml");
    let job = JobRequest::new(2, 4, 1024).with_policy(AffinityPolicy::NumaPrefer);
    let a = place(&idle(&topo), job);
    let nodes = nodes_of(&topo, &a.cpus);
    assert_eq!(nodes.len(), 2, "{}", a.cpus);
    // the NUMALatency matrix is flat: any two nodes are at the closest distance, 20
    assert_eq!(topo.distance(nodes[0], nodes[1]), 20);
    // each of the two nodes is used whole (2 CPUs each)
    for node in nodes {
        let node_cpus = topo.node(node).unwrap().cpus().clone();
        assert!(node_cpus.is_subset(&a.cpus));
    }
}

#[test]
fn numa_prefer_job_larger_than_one_node_gets_the_two_closest_nodes() {
    // SNC2: node pairs {0,2} and {1,3} share a package (distance 11, remote 21);
    // 20 PUs per node, so 30 CPUs need two nodes, which must be a same-package pair
    let topo = topology("memorysidecaches.xml");
    let job = JobRequest::new(3, 30, 8192).with_policy(AffinityPolicy::NumaPrefer);
    let a = place(&idle(&topo), job);
    let nodes = nodes_of(&topo, &a.cpus);
    assert_eq!(nodes.len(), 2, "{}", a.cpus);
    assert_eq!(topo.distance(nodes[0], nodes[1]), 11, "nodes {nodes:?}");
    assert!(
        nodes == [NodeId(0), NodeId(2)] || nodes == [NodeId(1), NodeId(3)],
        "{nodes:?}"
    );
}

#[test]
fn offline_cpus_are_never_given() {
    let loaded = real("16em64t-4s2c2t-offlines.xml");
    let offline = loaded.spec.offline_cpus.clone();
    assert_eq!(offline.len(), 9);
    let topo = Arc::new(Topology::new(loaded.spec).unwrap());
    let mut agents = idle(&topo);
    let mut granted = CpuSet::new();
    let mut packer = Packer::new(PolicyConfig::default());
    // one-CPU jobs until nothing fits any more
    for id in 1..=20u64 {
        let job = JobRequest::new(id, 1, 0).with_policy(AffinityPolicy::NumaPrefer);
        let plan = packer.plan(&agents, &[job], 0);
        let Some(a) = plan.assignment(id) else {
            break;
        };
        assert!(
            a.cpus.is_disjoint(&offline),
            "job {id} got offline {}",
            a.cpus
        );
        assert!(a.cpus.is_disjoint(&granted), "job {id} got a taken CPU");
        granted.union_with(&a.cpus);
        agents[0].allocate(a).unwrap();
    }
    assert_eq!(&granted, topo.cpus(), "all 7 online CPUs, and only those");
    // a job as large as the whole complete_cpuset (16) never fits
    let plan =
        Packer::new(PolicyConfig::default()).plan(&idle(&topo), &[JobRequest::new(99, 8, 0)], 0);
    assert!(plan.assignment(99).is_none());
}

#[test]
fn grants_are_whole_cores_on_the_offline_machine() {
    // usable cores: {0} {1} {3} {4,12} {6} {15}; every count 1..=7 can be made of whole
    // cores, so no grant may split the one SMT core
    let topo = topology("16em64t-4s2c2t-offlines.xml");
    for n in 1..=7u32 {
        let mut job = JobRequest::new(u64::from(n), n, 0).with_policy(AffinityPolicy::NumaStrict);
        job.smt = SmtPolicy::WholeCores;
        let a = place(&idle(&topo), job);
        assert_eq!(a.cpus.len(), n as usize);
        for cpu in a.cpus.iter() {
            let siblings = topo.siblings(cpu).unwrap();
            assert!(
                siblings.is_subset(&a.cpus),
                "{n} CPUs: {} splits core {siblings}",
                a.cpus
            );
        }
    }
}

#[test]
fn offers_decoded_from_agent_flags_plan_only_free_cpus() {
    // the agent advertises the Sandy Bridge machine; CPUs 0-3 and their siblings 16-19
    // are already taken, so the offer's cpuids leave them out
    let loaded = real("32em64t-2n8c2t-pci-noio.xml");
    let flags = agent_flags(&loaded.spec, &FreeResources::whole_machine(&loaded.spec)).unwrap();
    let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
    let resources = parse_resources("cpus:24;mem:60000;cpuids:[4-15,20-31];numanodes:1").unwrap();
    let offer = offer_topology(&resources, &parsed.attributes).unwrap();
    assert!(offer.numa_aware);
    assert_eq!(offer.spec, loaded.spec);

    let topo = Arc::new(Topology::new(offer.spec).unwrap());
    let free_mem = topo.nodes().iter().map(|n| n.memory_mb()).collect();
    let agent = AgentState::new(
        "agent-1",
        "sandy",
        Arc::clone(&topo),
        offer.free.cpuids.clone(),
        free_mem,
        0,
        offer.numa_aware,
    )
    .unwrap();
    let agents = vec![agent];
    // node 0 has 4 whole cores left, node 1 has 8: a 12-CPU numa-strict job goes to node 1
    let a = place(
        &agents,
        JobRequest::new(11, 12, 1024).with_policy(AffinityPolicy::NumaStrict),
    );
    assert!(a.cpus.is_subset(&offer.free.cpuids), "{}", a.cpus);
    assert_eq!(nodes_of(&topo, &a.cpus), [NodeId(1)]);
    // an 18-CPU numa-strict job fits no node's free CPUs (8 and 16)
    let plan = Packer::new(PolicyConfig::default()).plan(
        &agents,
        &[JobRequest::new(12, 18, 1024).with_policy(AffinityPolicy::NumaStrict)],
        0,
    );
    assert!(plan.assignment(12).is_none());
    // numa-prefer takes all 24 free CPUs across both nodes, never the taken ones
    let a = place(
        &agents,
        JobRequest::new(13, 24, 1024).with_policy(AffinityPolicy::NumaPrefer),
    );
    assert_eq!(a.cpus, offer.free.cpuids);
}

#[test]
fn offers_without_numa_attributes_are_placed_unpinned() {
    let resources = parse_resources("cpus:4;mem:2048").unwrap();
    let offer = offer_topology(&resources, &[]).unwrap();
    assert!(!offer.numa_aware);
    let topo = Arc::new(Topology::new(offer.spec).unwrap());
    let agent = AgentState::new(
        "agent-2",
        "plain",
        topo,
        offer.free.cpuids,
        vec![2048],
        0,
        false,
    )
    .unwrap();
    let agents = vec![agent];
    // numa-strict needs a NUMA layout
    let plan = Packer::new(PolicyConfig::default()).plan(
        &agents,
        &[JobRequest::new(21, 2, 512).with_policy(AffinityPolicy::NumaStrict)],
        0,
    );
    assert!(
        matches!(
            plan.pending_reason(21),
            Some(PendingReason::NoNumaLayout { .. })
        ),
        "{:?}",
        plan.pending_reason(21)
    );
    // numa-prefer still runs, with no pinning guarantee
    let a = place(
        &agents,
        JobRequest::new(22, 2, 512).with_policy(AffinityPolicy::NumaPrefer),
    );
    assert_eq!(a.granted_cpus, 2);
    assert!(!a.pinned);
}
