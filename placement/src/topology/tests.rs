//! Tests of the topology model: validation, indexes, cache domains, GPUs.
use super::*;
use crate::sets::GpuId;

fn cs(s: &str) -> CpuSet {
    s.parse().unwrap()
}

fn node(id: u32, package: u32, cores: &[&str], distances: Vec<u32>) -> NodeSpec {
    NodeSpec {
        id: NodeId(id),
        package,
        memory_mb: 1024,
        cores: cores.iter().map(|c| CoreSpec { cpus: cs(c) }).collect(),
        distances,
        caches: Vec::new(),
    }
}

#[test]
fn builds_indexes() {
    let t = Topology::new(TopologySpec {
        nodes: vec![
            node(0, 0, &["0,4", "1,5"], vec![10, 21, 31]),
            node(1, 0, &["2,6", "3,7"], vec![21, 10, 31]),
            node(3, 1, &[], vec![31, 31, 10]),
        ],
        offline_cpus: cs("8-9"),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.cpus(), &cs("0-7"));
    assert_eq!(t.node_of(CpuId(6)), Some(NodeId(1)));
    assert_eq!(t.node_of(CpuId(8)), None);
    assert_eq!(t.node_of(CpuId(100_000)), None);
    assert_eq!(t.siblings(CpuId(5)), Some(&cs("1,5")));
    assert_eq!(t.distance(NodeId(0), NodeId(3)), 31);
    assert_eq!(t.distance(NodeId(1), NodeId(0)), 21);
    assert_eq!(t.nodes_by_distance(2), &[2, 0, 1]);
    assert_eq!(t.nodes_by_distance(0), &[0, 1, 2]);
    assert_eq!(t.distance(NodeId(7), NodeId(7)), 10);
    assert!(t.node(NodeId(3)).unwrap().is_memory_only());
    assert_eq!(t.node(NodeId(1)).unwrap().index(), 1);
    assert_eq!(t.smt_width(), 2);
    assert_eq!(t.total_memory_mb(), 3072);
    assert_eq!(t.node_ids().to_string(), "0-1,3");
}

#[test]
fn unknown_distances_default() {
    let t = Topology::new(TopologySpec {
        nodes: vec![node(0, 0, &["0"], vec![]), node(1, 0, &["1"], vec![])],
        offline_cpus: CpuSet::new(),
        ..Default::default()
    })
    .unwrap();
    assert!(!t.distances_known());
    assert_eq!(t.distance(NodeId(0), NodeId(0)), 10);
    assert_eq!(t.distance(NodeId(0), NodeId(1)), 20);
}

#[test]
fn rejects_invalid_specs() {
    let bad = |nodes: Vec<NodeSpec>, offline: &str| {
        Topology::new(TopologySpec {
            nodes,
            offline_cpus: cs(offline),
            ..Default::default()
        })
        .unwrap_err()
    };
    assert_eq!(bad(vec![], ""), TopologyError::NoNodes);
    assert!(matches!(
        bad(
            vec![node(1, 0, &["0"], vec![]), node(0, 0, &["1"], vec![])],
            ""
        ),
        TopologyError::NodesNotAscending { position: 1, .. }
    ));
    assert!(matches!(
        bad(
            vec![node(0, 0, &["0"], vec![]), node(0, 0, &["1"], vec![])],
            ""
        ),
        TopologyError::NodesNotAscending { .. }
    ));
    assert_eq!(
        bad(vec![node(0, 0, &["0-1", "1"], vec![])], ""),
        TopologyError::CpuInTwoCores { cpu: CpuId(1) }
    );
    assert_eq!(
        bad(
            vec![node(0, 0, &["0"], vec![]), node(1, 0, &["0"], vec![])],
            ""
        ),
        TopologyError::CpuInTwoCores { cpu: CpuId(0) }
    );
    assert_eq!(
        bad(vec![node(0, 0, &["0-1"], vec![])], "1"),
        TopologyError::CpuBothOnlineAndOffline { cpu: CpuId(1) }
    );
    assert!(matches!(
        bad(vec![node(0, 0, &[""], vec![])], ""),
        TopologyError::EmptyCore { core: 0, .. }
    ));
    assert_eq!(
        bad(vec![node(0, 0, &[], vec![])], ""),
        TopologyError::NoCpus
    );
    assert!(matches!(
        bad(
            vec![node(0, 0, &["0"], vec![10, 20]), node(1, 0, &["1"], vec![])],
            ""
        ),
        TopologyError::DistanceRow { len: 0, .. }
    ));
    assert!(matches!(
        bad(vec![node(0, 0, &["0"], vec![0])], ""),
        TopologyError::ZeroDistance { .. }
    ));
    assert!(matches!(
        bad(vec![node(70_000, 0, &["0"], vec![])], ""),
        TopologyError::NodeIdTooLarge { .. }
    ));
    let many: Vec<NodeSpec> = (0..=MAX_NODES as u32)
        .map(|i| node(i, 0, &[], vec![]))
        .collect();
    assert!(matches!(bad(many, ""), TopologyError::TooManyNodes { .. }));
}

#[test]
fn spec_json_roundtrip() {
    let t = Topology::from_synthetic("pack:2 numa:2 core:2 pu:2", 4096).unwrap();
    let json = serde_json::to_string(t.spec()).unwrap();
    assert!(json.contains("\"cpus\":\"0-1\""), "{json}");
    let back: TopologySpec = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, t.spec());
    assert_eq!(Topology::new(back).unwrap(), t);
}

#[test]
fn single_node_for_plain_offers() {
    let t = Topology::single_node(&cs("0-3"), 8192).unwrap();
    assert_eq!(t.num_nodes(), 1);
    assert_eq!(t.cores().len(), 4);
    assert_eq!(t.smt_width(), 1);
    assert!(Topology::single_node(&CpuSet::new(), 1).is_err());
}

fn with_caches(mut n: NodeSpec, caches: &[&str]) -> NodeSpec {
    n.caches = caches.iter().map(|c| CacheSpec { cpus: cs(c) }).collect();
    n
}

#[test]
fn cache_domains_partition_each_node() {
    // Node 0: two L3 domains of two SMT cores each; node 1: no cache information.
    let t = Topology::new(TopologySpec {
        nodes: vec![
            with_caches(
                node(0, 0, &["0,8", "1,9", "2,10", "3,11"], vec![]),
                &["0-1,8-9", "2-3,10-11"],
            ),
            node(1, 1, &["4,12", "5,13"], vec![]),
            node(2, 1, &[], vec![]),
        ],
        offline_cpus: CpuSet::new(),
        remote_cpus: cs("5,13"),
        gpus: vec![
            GpuSpec {
                id: GpuId(0),
                nodes: "0".parse().unwrap(),
            },
            GpuSpec {
                id: GpuId(3),
                nodes: NodeSet::new(),
            },
        ],
    })
    .unwrap();
    assert_eq!(t.caches().len(), 3);
    assert_eq!(t.nodes()[0].cache_range(), 0..2);
    assert_eq!(t.nodes()[1].cache_range(), 2..3);
    assert_eq!(t.nodes()[2].num_caches(), 0);
    assert_eq!(t.cache_cores(1), &[2, 3]);
    assert_eq!(t.cache_of(CpuId(10)), Some(1));
    assert_eq!(t.cache_of(CpuId(13)), Some(2));
    assert!(t.caches()[0].is_explicit() && !t.caches()[2].is_explicit());
    assert_eq!(t.caches()[2].remote_cpus(), 2);
    assert!(t.has_split_caches());
    assert_eq!(t.largest_split_cache(), 4);
    assert_eq!(t.gpu_ids().to_string(), "0,3");
    assert_eq!(t.gpu(GpuId(0)).unwrap().nodes.to_string(), "0");
    assert!(t.gpu(GpuId(1)).is_none());
    assert_eq!(t.remote_cpus(), &cs("5,13"));
    let json = serde_json::to_string(t.spec()).unwrap();
    let back: TopologySpec = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, t.spec());
    // A plain machine serialises exactly as before (no new keys).
    let plain = Topology::from_synthetic("pack:1 numa:1 core:1", 1).unwrap();
    let json = serde_json::to_string(plain.spec()).unwrap();
    assert!(
        !json.contains("caches") && !json.contains("gpus") && !json.contains("remote"),
        "{json}"
    );
    assert!(!plain.has_split_caches());
}

#[test]
fn bad_cache_domains_gpus_and_remote_cpus_are_rejected() {
    let n0 = || node(0, 0, &["0,4", "1,5", "2,6", "3,7"], vec![]);
    let bad = |caches: &[&str]| {
        Topology::new(TopologySpec {
            nodes: vec![with_caches(n0(), caches)],
            ..Default::default()
        })
        .unwrap_err()
    };
    assert!(matches!(
        bad(&["0-1,4-5", "2-3,6-7,9"]),
        TopologyError::CacheOutsideNode { cache: 1, .. }
    ));
    assert!(matches!(
        bad(&["0-1,4-5", ""]),
        TopologyError::CacheOutsideNode { .. }
    ));
    assert_eq!(
        bad(&["0-1,4", "2-3,5-7"]),
        TopologyError::CacheSplitsCore {
            node: NodeId(0),
            cache: 0,
            cpu: CpuId(1)
        }
    );
    assert!(matches!(
        bad(&["0-1,4-5", "1,5"]),
        TopologyError::CacheOverlap { .. }
    ));
    let e = bad(&["0-1,4-5"]);
    assert!(e.to_string().contains("leave CPUs 2-3,6-7 out"), "{e}");
    let spec = |remote: &str, gpus: Vec<(u32, &str)>| TopologySpec {
        nodes: vec![n0()],
        remote_cpus: cs(remote),
        gpus: gpus
            .into_iter()
            .map(|(id, nodes)| GpuSpec {
                id: GpuId(id),
                nodes: nodes.parse().unwrap(),
            })
            .collect(),
        ..Default::default()
    };
    assert!(matches!(
        Topology::new(spec("7-8", vec![])).unwrap_err(),
        TopologyError::RemoteCpusNotUsable { .. }
    ));
    assert_eq!(
        Topology::new(spec("", vec![(1, ""), (1, "")])).unwrap_err(),
        TopologyError::GpuTwice { id: GpuId(1) }
    );
    assert!(matches!(
        Topology::new(spec("", vec![(2, ""), (1, "")])).unwrap_err(),
        TopologyError::GpusNotAscending { .. }
    ));
    assert!(matches!(
        Topology::new(spec("", vec![(1, "0-1")])).unwrap_err(),
        TopologyError::GpuUnknownNode { .. }
    ));
    assert!(matches!(
        Topology::new(spec("", vec![(70_000, "")])).unwrap_err(),
        TopologyError::GpuIdTooLarge { .. }
    ));
    // One domain holding the whole node is valid (the same as none).
    let t = Topology::new(TopologySpec {
        nodes: vec![with_caches(n0(), &["0-7"])],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.caches().len(), 1);
    assert!(!t.has_split_caches());
}

#[test]
fn synthetic_l3_levels_become_cache_domains() {
    // An EPYC 9654 in NPS1: per socket one node, 12 L3 domains of 8 SMT-2 cores.
    let t = Topology::from_synthetic("pack:2 numa:1 l3:12 core:8 pu:2", 1024).unwrap();
    assert_eq!(t.num_nodes(), 2);
    assert_eq!(t.caches().len(), 24);
    assert_eq!(t.nodes()[1].cache_range(), 12..24);
    assert_eq!(t.caches()[0].cpus(), &cs("0-15"));
    assert_eq!(t.caches()[13].cpus().len(), 16);
    assert_eq!(t.largest_split_cache(), 16);
    // L3 above the NUMA level: each node shares one cache, nothing to record.
    let t = Topology::from_synthetic("pack:2 L3Cache:1 numa:2 core:4", 1024).unwrap();
    assert!(t.spec().nodes.iter().all(|n| n.caches.is_empty()));
    assert!(!t.has_split_caches());
    // Other caches are ignored.
    let t = Topology::from_synthetic("pack:1 l2:4 core:2 pu:2", 1024).unwrap();
    assert!(!t.has_split_caches());
}
