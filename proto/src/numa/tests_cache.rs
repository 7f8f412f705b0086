//! Tests of the convention's additions: L3 cache domains (`numa_l3_n<ID>`), GPU locality
//! (`numa_gpus`, `gpuids`), remote-memory CPUs (`numa_remote`), and backward compatibility
//! with decoders and flags that predate them.
use super::tests::{arb_spec_and_free, round_trip, set, two_socket};
use super::*;
use proptest::prelude::*;

/// An EPYC 9654 in NPS1 (2 sockets, one node each, 12 L3 domains of 8 SMT-2 cores), with
/// Linux numbering (core c = {c, c+192}), 4 GPUs behind each socket and CPU 191 remote.
fn epyc_with_gpus() -> TopologySpec {
    let node = |id: u32| {
        let cores: Vec<CoreSpec> = (0..96)
            .map(|i| CoreSpec {
                cpus: set(&format!("{},{}", id * 96 + i, id * 96 + i + 192)),
            })
            .collect();
        let caches = (0..12)
            .map(|d| CacheSpec {
                cpus: set(&format!(
                    "{}-{},{}-{}",
                    id * 96 + d * 8,
                    id * 96 + d * 8 + 7,
                    id * 96 + d * 8 + 192,
                    id * 96 + d * 8 + 199
                )),
            })
            .collect();
        NodeSpec {
            id: NodeId(id),
            package: id,
            memory_mb: 386_000,
            cores,
            distances: vec![if id == 0 { 10 } else { 32 }, if id == 0 { 32 } else { 10 }],
            caches,
        }
    };
    TopologySpec {
        nodes: vec![node(0), node(1)],
        offline_cpus: CpuSet::new(),
        remote_cpus: set("191,383"),
        gpus: (0..8)
            .map(|g| GpuSpec {
                id: GpuId(g),
                nodes: if g < 4 { "0" } else { "1" }.parse().unwrap(),
            })
            .chain(std::iter::once(GpuSpec {
                id: GpuId(9),
                nodes: NodeSet::new(),
            }))
            .collect(),
    }
}

#[test]
fn cache_gpu_and_remote_attributes_are_exact_and_round_trip() {
    let spec = epyc_with_gpus();
    let free = FreeResources::whole_machine(&spec).with_gpus(&spec, 8);
    let flags = agent_flags(&spec, &free).unwrap();
    assert_eq!(
        flags.resources,
        "cpus:384;mem:772000;gpus:8;cpuids:[0-383];gpuids:[0-7];numanodes:2"
    );
    let want =
        "numa_n1:pkg.1/mem.386000/cores.96-191t192/dist.32.10;numa_l3_n0:n8x12;numa_l3_n1:n8x12;";
    assert!(flags.attributes.contains(want), "{}", flags.attributes);
    assert!(
        flags
            .attributes
            .ends_with(";numa_gpus:g0-3n0/g4-7n1/g9;numa_remote:cpus.191.383"),
        "{}",
        flags.attributes
    );
    let offer = round_trip(&spec, &free);
    assert_eq!(offer.spec, spec);
    assert_eq!(offer.free, free);
    assert_eq!(offer.free.gpuids.to_string(), "0-7");
    // Fewer GPUs asked than listed: the lowest ids.
    let some = FreeResources::whole_machine(&spec).with_gpus(&spec, 3);
    assert_eq!(some.gpuids.to_string(), "0-2");
}

#[test]
fn strided_core_lists_are_compact() {
    // hwloc synthetic numbering: core c = {2c, 2c+1}, so a domain's lowest CPUs step by 2.
    let spec = retz_placement::synthetic::parse("pack:1 numa:1 l3:4 core:4 pu:2", 1).unwrap();
    let attrs = attributes_text(&spec).unwrap();
    assert!(attrs.ends_with("numa_l3_n0:n4x4"), "{attrs}");
    assert_eq!(
        round_trip(&spec, &FreeResources::whole_machine(&spec)).spec,
        spec
    );
    for (ids, text) in [
        ("0", "0"),
        ("0-1", "0-1"),
        ("0,2", "0.2"),
        ("0,2,4", "0-4s2"),
        ("0-2,5,9", "0-2.5.9"),
        ("1,4,7,8", "1-7s3.8"),
    ] {
        assert_eq!(encode_strided(&set(ids)), text, "{ids}");
        assert_eq!(decode_strided(text).unwrap(), set(ids), "{text}");
    }
}

#[test]
fn old_flags_still_decode_and_old_decoders_skip_the_additions() {
    // Flags written before cache domains existed: no domains, no GPUs, as before.
    let old = "--resources='cpus:32;mem:65507;cpuids:[0-31];numanodes:2' --attributes='retz_numa:v1;numa_n0:pkg.0/mem.32739/cores.0-7t16/dist.10.20;numa_n1:pkg.1/mem.32768/cores.8-15t16/dist.20.10'";
    let parsed = parse_agent_flags(old).unwrap();
    let offer = offer_topology(&parsed.resources, &parsed.attributes).unwrap();
    assert_eq!(offer.spec, two_socket());
    assert!(offer.spec.nodes.iter().all(|n| n.caches.is_empty()));
    // The added attribute names are not node attributes to a decoder that predates them
    // (it reads `numa_n<ID>` and `numa_offline` and ignores every other name).
    let spec = epyc_with_gpus();
    for (name, _) in topology_attributes(&spec).unwrap() {
        let added = name.starts_with(CACHE_ATTRIBUTE_PREFIX)
            || name == GPU_ATTRIBUTE
            || name == REMOTE_ATTRIBUTE;
        assert_eq!(
            added,
            !name.starts_with(NODE_ATTRIBUTE_PREFIX)
                && name != OFFLINE_ATTRIBUTE
                && name != VERSION_ATTRIBUTE,
            "{name}"
        );
    }
    // Without the additions the same flags give the same layout minus them.
    let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
    let mut attrs = parse_attributes(&flags.attributes).unwrap();
    attrs.retain(|a| a.name.starts_with(NODE_ATTRIBUTE_PREFIX) || a.name == VERSION_ATTRIBUTE);
    let resources = parse_resources(&flags.resources).unwrap();
    let stripped = offer_topology(&resources, &attrs).unwrap().spec;
    let mut want = spec;
    want.gpus.clear();
    want.remote_cpus = CpuSet::new();
    for n in &mut want.nodes {
        n.caches.clear();
    }
    assert_eq!(stripped, want);
}

#[test]
fn bad_cache_gpu_and_remote_attributes_get_clear_errors() {
    let base = "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0-3t4";
    let with = |extra: &str, resources: &str| {
        let attributes = parse_attributes(&format!("{base};{extra}")).unwrap();
        offer_topology(&parse_resources(resources).unwrap(), &attributes)
            .map(|o| o.spec)
            .unwrap_err()
            .to_string()
    };
    let cases = [
        ("numa_l3_n0:c0-1/x2-3", "does not start with c"),
        ("numa_l3_n0:n2.3", "add up to more than"),
        ("numa_l3_n0:n1x3", "add up to 3 cores; the node has 4"),
        ("numa_l3_n0:n0x4", "has a zero"),
        ("numa_l3_n0:n2x", "not an unsigned integer"),
        ("numa_l3_n0:c0-1/c4", "not the lowest CPU of a core"),
        ("numa_l3_n0:c0-1", "leave CPUs 2-3,6-7 out"),
        ("numa_l3_n0:c0-1/c1-3", "two cache domains"),
        ("numa_l3_n0:c0-3s0", "multiple of K"),
        ("numa_l3_n0:c0.0/c1-3", "listed twice"),
        ("numa_l3_n1:c0", "no numa_n1"),
        ("numa_l3_nx:c0", "numa_l3_n<id>"),
        ("numa_l3_n0:c0-3;numa_l3_n0:c0-3", "given twice"),
        ("numa_gpus:h0", "does not start with g"),
        ("numa_gpus:g0n0/g0n0", "listed twice"),
        ("numa_gpus:g0n1", "not nodes of the topology"),
        ("numa_gpus:g0n", "not an unsigned integer"),
        ("numa_gpus:g0;numa_gpus:g1", "given twice"),
        ("numa_remote:x0", "cpus.<list>"),
        ("numa_remote:cpus.9", "not usable CPUs"),
    ];
    for (extra, needle) in cases {
        let text = with(extra, "cpus:1");
        assert!(text.contains(needle), "{extra}: {text}");
        assert!(!text.contains('\n'), "{extra}: {text}");
    }
    let text = with("numa_gpus:g0-1n0", "gpuids:[0-2]");
    assert!(text.contains("gpuids 2 are not GPUs"), "{text}");
    assert!(with("numa_gpus:g0-1n0", "gpuids:[5-5]").contains("gpuids 5 are not GPUs"));
    // gpuids without a GPU layout: ids without locality, accepted.
    let attributes = parse_attributes(base).unwrap();
    let offer = offer_topology(
        &parse_resources("gpus:2;gpuids:[4-5]").unwrap(),
        &attributes,
    )
    .unwrap();
    assert_eq!(offer.free.gpuids.to_string(), "4-5");
    assert!(matches!(
        offer_topology(&parse_resources("gpuids:1").unwrap(), &[]),
        Err(NumaError::ResourceType { .. })
    ));
}

/// Random cache partitions, GPUs and remote CPUs on top of the random layouts of
/// `tests.rs`.
fn with_additions(
    mut spec: TopologySpec,
    cuts: &[u8],
    gpus: &[(u8, u8)],
    remote_mask: &[bool],
) -> TopologySpec {
    let mut k = 0;
    for node in &mut spec.nodes {
        let mut caches: Vec<CacheSpec> = Vec::new();
        for core in &node.cores {
            let cut = cuts.get(k).copied().unwrap_or(0) % 3 == 0;
            k += 1;
            match caches.last_mut() {
                Some(c) if !cut => c.cpus.union_with(&core.cpus),
                _ => caches.push(CacheSpec {
                    cpus: core.cpus.clone(),
                }),
            }
        }
        node.caches = caches;
    }
    let ids: Vec<NodeId> = spec.nodes.iter().map(|n| n.id).collect();
    let mut seen = std::collections::BTreeSet::new();
    for &(id, node) in gpus {
        if seen.insert(id) {
            let nodes = if node as usize >= ids.len() {
                NodeSet::new()
            } else {
                std::iter::once(ids[node as usize]).collect()
            };
            spec.gpus.push(GpuSpec {
                id: GpuId(u32::from(id)),
                nodes,
            });
        }
    }
    spec.gpus.sort_by_key(|g| g.id);
    let usable: Vec<CpuId> = spec
        .nodes
        .iter()
        .flat_map(|n| n.cores.iter().flat_map(|c| c.cpus.iter()))
        .collect();
    spec.remote_cpus = usable
        .into_iter()
        .zip(remote_mask)
        .filter(|(_, r)| **r)
        .map(|(c, _)| c)
        .collect();
    spec
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn layouts_with_caches_gpus_and_remote_cpus_round_trip(
        (spec, free) in arb_spec_and_free(),
        cuts in proptest::collection::vec(any::<u8>(), 0..60),
        gpus in proptest::collection::vec((any::<u8>(), 0u8..8), 0..12),
        remote in proptest::collection::vec(any::<bool>(), 0..160),
        free_gpus in any::<u16>(),
    ) {
        prop_assume!(Topology::new(spec.clone()).is_ok());
        let spec = with_additions(spec, &cuts, &gpus, &remote);
        let built = Topology::new(spec.clone());
        prop_assert!(built.is_ok(), "{:?}", built.err());
        let mut free = free;
        free.gpuids = spec
            .gpus
            .iter()
            .enumerate()
            .filter(|(i, _)| free_gpus & (1 << (i % 16)) != 0)
            .map(|(_, g)| g.id)
            .collect();
        for (name, value) in topology_attributes(&spec).unwrap() {
            prop_assert!(name.chars().all(is_text_char));
            prop_assert!(value.starts_with(|c: char| c.is_ascii_alphabetic()));
            prop_assert!(value.chars().all(is_text_char), "{}", value);
        }
        let offer = round_trip(&spec, &free);
        prop_assert_eq!(&offer.spec, &spec);
        prop_assert_eq!(&offer.free, &free);
        let flags = agent_flags(&spec, &free).unwrap().to_flag_lines();
        fuzz_agent_flags(&flags);
    }
}

/// Nasty inputs aimed at the additions; none may panic (the fuzz target's invariants).
#[test]
fn fuzz_target_survives_nasty_cache_and_gpu_inputs() {
    let base =
        "--resources=cpus:1;gpuids:[0-1] --attributes=retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0-3t4";
    for extra in [
        "numa_l3_n0:c0-3s4294967295",
        "numa_l3_n0:c0-65535s1",
        "numa_l3_n0:c",
        "numa_l3_n0:c0-1//c2-3",
        "numa_l3_n0:n1x18446744073709551615",
        "numa_l3_n0:n18446744073709551615x2",
        "numa_l3_n0:nx",
        "numa_l3_n0:c0-1/c2-3;numa_gpus:g0-65535n0",
        "numa_gpus:g4294967296n0",
        "numa_gpus:gn0",
        "numa_gpus:g0nn0",
        "numa_gpus:g0-1n0-65535",
        "numa_remote:cpus.0-65535",
        "numa_l3_n00:c0-3",
        "numa_l3_n99999999999:c0",
    ] {
        fuzz_agent_flags(&format!("{base};{extra}"));
    }
}

proptest! {
    #[test]
    fn parsers_never_panic_on_cache_shaped_text(
        text in "(--resources=|--attributes=|retz_numa:v1;|numa_n0:pkg.0/mem.1/cores.0-7;|numa_l3_n[0-9]:|numa_gpus:|numa_remote:cpus.|gpuids:\\[|[cgns]|[0-9]{1,6}|[-./;:,\\[\\]]){0,40}"
    ) {
        fuzz_agent_flags(&text);
    }
}
