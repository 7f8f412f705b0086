//! Tests of the NUMA convention: round trips, agent-flag syntax, decoding errors.
use super::*;
use proptest::prelude::*;

pub(super) fn set(list: &str) -> CpuSet {
    list.parse().unwrap()
}

fn core(list: &str) -> CoreSpec {
    CoreSpec { cpus: set(list) }
}

/// The shape of `32em64t-2n8c2t-pci-noio.xml` (2 nodes, 8 cores x 2 threads each).
pub(super) fn two_socket() -> TopologySpec {
    let node = |id: u32, base: u32, mem: u64, dist: Vec<u32>| NodeSpec {
        id: NodeId(id),
        package: id,
        memory_mb: mem,
        cores: (0..8)
            .map(|i| core(&format!("{},{}", base + i, base + i + 16)))
            .collect(),
        distances: dist,
        caches: Vec::new(),
    };
    TopologySpec {
        nodes: vec![
            node(0, 0, 32739, vec![10, 20]),
            node(1, 8, 32768, vec![20, 10]),
        ],
        offline_cpus: CpuSet::new(),
        ..Default::default()
    }
}

pub(super) fn round_trip(spec: &TopologySpec, free: &FreeResources) -> OfferTopology {
    let flags = agent_flags(spec, free).unwrap();
    let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
    offer_topology(&parsed.resources, &parsed.attributes).unwrap()
}

#[test]
fn two_socket_flags_are_exact() {
    let spec = two_socket();
    let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
    assert_eq!(
        flags.resources,
        "cpus:32;mem:65507;cpuids:[0-31];numanodes:2"
    );
    assert_eq!(
        flags.attributes,
        "retz_numa:v1;numa_n0:pkg.0/mem.32739/cores.0-7t16/dist.10.20;\
         numa_n1:pkg.1/mem.32768/cores.8-15t16/dist.20.10"
    );
    assert_eq!(
        flags.to_flag_lines(),
        format!(
            "--resources='{}'\n--attributes='{}'",
            flags.resources, flags.attributes
        )
    );
}

#[test]
fn two_socket_round_trips() {
    let spec = two_socket();
    let free = FreeResources::whole_machine(&spec);
    let offer = round_trip(&spec, &free);
    assert!(offer.numa_aware);
    assert_eq!(offer.spec, spec);
    assert_eq!(offer.free, free);
}

#[test]
fn strided_smt4_offline_memory_only_and_unordered_cores_round_trip() {
    let spec = TopologySpec {
        nodes: vec![
            NodeSpec {
                id: NodeId(0),
                package: 3,
                memory_mb: 0,
                cores: vec![
                    core("0,40"),
                    core("4,44"),
                    core("8,48"),
                    core("100-103"),
                    core("2"),
                    core("1"),
                    core("60,70,75"),
                ],
                distances: vec![10, 11, 31],
                caches: Vec::new(),
            },
            NodeSpec {
                id: NodeId(5),
                package: 3,
                memory_mb: 1 << 40,
                cores: Vec::new(),
                distances: vec![11, 10, 31],
                caches: Vec::new(),
            },
            NodeSpec {
                id: NodeId(65535),
                package: u32::MAX,
                memory_mb: u64::MAX,
                cores: vec![core("65535")],
                distances: vec![31, 31, 10],
                caches: Vec::new(),
            },
        ],
        offline_cpus: set("3,5-7,200"),
        ..Default::default()
    };
    let attributes = attributes_text(&spec).unwrap();
    assert!(
        attributes
            .contains("numa_n0:pkg.3/mem.0/cores.0-8s4t40.100t1t2t3.2.1.60t10t15/dist.10.11.31"),
        "{attributes}"
    );
    assert!(
        attributes.contains("numa_n5:pkg.3/mem.1099511627776/dist.11.10.31"),
        "{attributes}"
    );
    assert!(
        attributes.ends_with(";numa_offline:cpus.3.5-7.200"),
        "{attributes}"
    );
    let free = FreeResources {
        cpuids: set("1-2,40,65535"),
        cpus: 2.5,
        mem_mb: 1024.125,
        disk_mb: 0.001,
        gpus: 2.0,
        gpuids: GpuSet::new(),
        numanodes: 1.0,
    };
    let offer = round_trip(&spec, &free);
    assert_eq!(offer.spec, spec);
    assert_eq!(offer.free, free);
}

#[test]
fn encoder_rejects_invalid_specs_and_free_resources() {
    let mut spec = two_socket();
    spec.nodes[1].cores.push(core("0"));
    assert!(matches!(
        attributes_text(&spec),
        Err(NumaError::Topology(TopologyError::CpuInTwoCores { .. }))
    ));
    let spec = two_socket();
    let mut free = FreeResources::whole_machine(&spec);
    free.cpuids.insert(CpuId(40));
    let err = agent_flags(&spec, &free).unwrap_err();
    assert_eq!(err, NumaError::CpusOutsideTopology { cpus: set("40") });
    for bad in [f64::NAN, -1.0, f64::INFINITY, 2e12] {
        let mut free = FreeResources::whole_machine(&spec);
        free.mem_mb = bad;
        assert!(matches!(
            resources_text(&spec, &free),
            Err(NumaError::BadScalar { name: "mem", .. })
        ));
    }
}

#[test]
fn resources_parse_like_a_mesos_agent() {
    let r = parse_resources(
        " cpus:8 ; mem:1024.5;cpuids:[0-3, 8-8,4-5];ports:[31000-32000];bugs(role):{a,b,c};cpus(retz):2;cpus:0.0005;disk:0",
    )
    .unwrap();
    let names: Vec<(&str, Option<&str>)> = r
        .iter()
        .map(|r| (r.name.as_str(), r.role.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("cpus", None),
            ("mem", None),
            ("cpuids", None),
            ("ports", None),
            ("bugs", Some("role")),
            ("cpus", Some("retz")),
        ]
    );
    // 8 + 0.0005 rounds to 3 decimals like Mesos; disk:0 is dropped
    assert_eq!(r[0].scalar.as_ref().unwrap().value, 8.001);
    assert_eq!(r[1].scalar.as_ref().unwrap().value, 1024.5);
    let cpuids = &r[2].ranges.as_ref().unwrap().range;
    assert_eq!(
        cpuids,
        &vec![
            value::Range { begin: 0, end: 5 },
            value::Range { begin: 8, end: 8 }
        ]
    );
    assert_eq!(r[4].r#type, value::Type::Set as i32);
    assert_eq!(r[4].set.as_ref().unwrap().item, ["a", "b", "c"]);
    assert_eq!(r[4].reservations.len(), 1);
    assert_eq!(r[4].reservations[0].role.as_deref(), Some("role"));
    assert_eq!(
        r[4].reservations[0].r#type,
        Some(reservation_info::Type::Static as i32)
    );
    assert!(parse_resources("").unwrap().is_empty());
    assert!(parse_resources("cpuids:[];x:{}").unwrap().is_empty());
    // ranges merge across entries of the same name and role
    let r = parse_resources("cpuids:[0-3];cpuids:[2-9]").unwrap();
    assert_eq!(
        r[0].ranges.as_ref().unwrap().range,
        vec![value::Range { begin: 0, end: 9 }]
    );
}

#[test]
fn bad_resources_get_one_clear_error() {
    let cases = [
        ("cpus", "missing ':'"),
        ("cpus:1:2", "more than one ':'"),
        (":4", "empty name"),
        ("cpus:", "empty value"),
        ("cpus:abc", "is not a value"),
        ("cpus:-1", "negative"),
        ("cpus:1e3", "is not a value"),
        ("cpus:2000000000000", "too large"),
        ("cpuids:[5]", "not a pair"),
        ("cpuids:[5-5", "must end with ']'"),
        ("cpuids:[7-5]", "runs backwards"),
        ("cpuids:[0-5,3-8]", "overlap"),
        ("cpuids:[a-b]", "not a non-negative integer"),
        ("cpuids:[0-99999999999999999999]", "too large"),
        ("x:{a,a}", "given twice"),
        ("x:{a", "must end with '}'"),
        ("x:{a b}", "only letters"),
        ("cpus(:1", "closing ')'"),
        ("cpus():1", "empty role"),
        ("cp us:1", "only letters"),
        ("cpus:1;cpus:[1-2]", "one name has one type"),
    ];
    for (input, needle) in cases {
        let err = parse_resources(input).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                NumaError::Syntax {
                    flag: "--resources",
                    ..
                }
            ),
            "{input}: {text}"
        );
        assert!(text.contains(needle), "{input}: {text}");
        assert!(!text.contains('\n'), "{input}: {text}");
    }
    for input in ["[{\"name\":\"cpus\"}]", "file:///etc/resources"] {
        assert!(matches!(
            parse_resources(input),
            Err(NumaError::Flags { .. })
        ));
    }
    let long = format!("cpus:{}", "x".repeat(10_000));
    assert!(parse_resources(&long).unwrap_err().to_string().len() < 600);
}

#[test]
fn attributes_parse_like_a_mesos_agent() {
    let a = parse_attributes("rack:r-12;zone:2;range:[1-2];os:debian/12.5;ver:1.2.3").unwrap();
    assert_eq!(a.len(), 5);
    assert_eq!(a[0].r#type, value::Type::Text as i32);
    assert_eq!(a[0].text.as_ref().unwrap().value, "r-12");
    assert_eq!(a[1].r#type, value::Type::Scalar as i32);
    assert_eq!(a[1].scalar.as_ref().unwrap().value, 2.0);
    assert_eq!(a[2].r#type, value::Type::Ranges as i32);
    assert_eq!(a[3].text.as_ref().unwrap().value, "debian/12.5");
    assert_eq!(a[4].r#type, value::Type::Text as i32);
    for (input, needle) in [
        ("s:{a,b}", "sets"),
        ("t:a b", "only letters"),
        ("t:a,b", "only letters"),
        ("n a:x", "attribute name"),
        ("t", "missing ':'"),
    ] {
        let text = parse_attributes(input).unwrap_err().to_string();
        assert!(text.contains(needle), "{input}: {text}");
    }
}

#[test]
fn agent_flags_text_forms() {
    let spec = two_socket();
    let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
    let forms = [
        flags.to_flag_lines(),
        format!(
            "mesos-agent --master=zk://h:2181/mesos \\\n  --resources=\"{}\" --work_dir=/var/lib/mesos --attributes '{}'",
            flags.resources, flags.attributes
        ),
        format!(
            "--attributes={} --resources={}",
            flags.attributes, flags.resources
        ),
    ];
    let first = parse_agent_flags(&forms[0]).unwrap();
    assert_eq!(first.resources.len(), 4);
    assert_eq!(first.attributes.len(), 3);
    for form in &forms[1..] {
        assert_eq!(parse_agent_flags(form).unwrap(), first, "{form}");
    }
    for (input, needle) in [
        ("--resources='cpus:1", "unterminated"),
        ("--resources=cpus:1 --resources=cpus:2", "given twice"),
        ("--master=x", "neither"),
        ("--attributes", "last word"),
    ] {
        let text = parse_agent_flags(input).unwrap_err().to_string();
        assert!(text.contains(needle), "{input}: {text}");
    }
    // only resources: fine, no attributes
    let only = parse_agent_flags("--resources=cpus:2").unwrap();
    assert!(only.attributes.is_empty());
}

#[test]
fn offer_without_numa_attributes_is_one_node_not_numa_aware() {
    let resources = parse_resources("cpus:3.7;mem:2048.9").unwrap();
    let rack = parse_attributes("rack:a").unwrap();
    let offer = offer_topology(&resources, &rack).unwrap();
    assert!(!offer.numa_aware);
    assert_eq!(offer.spec.nodes.len(), 1);
    assert_eq!(offer.spec.nodes[0].id, NodeId(0));
    assert_eq!(offer.spec.nodes[0].memory_mb, 2048);
    assert_eq!(
        offer.spec.nodes[0].cores,
        vec![core("0"), core("1"), core("2")]
    );
    assert_eq!(offer.free.cpuids, set("0-2"));
    assert_eq!(offer.free.cpus, 3.7);

    let resources =
        parse_resources("cpus:2;cpus(retz):2;cpuids:[4-5];cpuids(retz):[9-10]").unwrap();
    let offer = offer_topology(&resources, &[]).unwrap();
    assert!(!offer.numa_aware);
    assert_eq!(offer.free.cpus, 4.0);
    assert_eq!(offer.free.cpuids, set("4-5,9-10"));
    assert_eq!(
        offer.spec.nodes[0].cores,
        vec![core("4"), core("5"), core("9"), core("10")]
    );

    for text in ["mem:10", "cpus:0.5", ""] {
        let resources = parse_resources(text).unwrap();
        assert_eq!(
            offer_topology(&resources, &[]).unwrap_err(),
            NumaError::NoCpus
        );
    }
}

#[test]
fn offer_with_partly_taken_cpus_keeps_the_layout() {
    let spec = two_socket();
    let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
    let attributes = parse_attributes(&flags.attributes).unwrap();
    let resources = parse_resources("cpus:4;mem:100;cpuids:[8-9,24-25];numanodes:1").unwrap();
    let offer = offer_topology(&resources, &attributes).unwrap();
    assert!(offer.numa_aware);
    assert_eq!(offer.spec, spec);
    assert_eq!(offer.free.cpuids, set("8-9,24-25"));
    assert_eq!(offer.free.numanodes, 1.0);
    // no cpuids left at all
    let offer = offer_topology(&parse_resources("mem:1").unwrap(), &attributes).unwrap();
    assert!(offer.free.cpuids.is_empty());
    // cpuids beyond the layout
    let resources = parse_resources("cpuids:[30-40]").unwrap();
    assert_eq!(
        offer_topology(&resources, &attributes).unwrap_err(),
        NumaError::CpusOutsideTopology { cpus: set("32-40") }
    );
}

#[test]
fn bad_numa_attributes_get_clear_errors() {
    let with = |attrs: &str| {
        let attributes = parse_attributes(attrs).unwrap();
        offer_topology(&parse_resources("cpus:1").unwrap(), &attributes)
            .unwrap_err()
            .to_string()
    };
    let cases = [
        (
            "retz_numa:v2;numa_n0:pkg.0/mem.1/cores.0",
            "understands only",
        ),
        ("retz_numa:1;numa_n0:pkg.0/mem.1/cores.0", "TEXT"),
        ("retz_numa:v1", "no numa_n<id>"),
        ("retz_numa:v1;numa_nx:pkg.0/mem.1/cores.0", "numa_n<id>"),
        ("retz_numa:v1;numa_n99999:pkg.0/mem.1/cores.0", "numa_n<id>"),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_n0:pkg.0/mem.1",
            "given twice",
        ),
        ("retz_numa:v1;numa_n0:mem.1/cores.0", "missing pkg"),
        ("retz_numa:v1;numa_n0:pkg.0/cores.0", "missing mem"),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/pkg.1/cores.0",
            "given twice",
        ),
        ("retz_numa:v1;numa_n0:pkg.0/mem.1/cpus.0", "unknown field"),
        ("retz_numa:v1;numa_n0:pkg.0/mem.1/cores", "not key.value"),
        (
            "retz_numa:v1;numa_n0:pkg.x/mem.1/cores.0",
            "not an unsigned integer",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0.0",
            "already listed",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0-5s2",
            "multiple of STRIDE",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.5-0",
            "LAST below FIRST",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0-4s0",
            "zero stride",
        ),
        ("retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0t2t1", "ascending"),
        ("retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0t0", "ascending"),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0t",
            "not an unsigned integer",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.65535t1",
            "above 65535",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0-65535.0",
            "already listed",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0/dist.10.20",
            "distance row",
        ),
        ("retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0/dist.0", "is 0"),
        ("retz_numa:v1;numa_n0:pkg.0/mem.1", "no usable CPU"),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_offline:0",
            "TEXT",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_offline:cpus.0",
            "listed twice",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_offline:cpus.3-1",
            "backwards",
        ),
        (
            "retz_numa:v1;numa_n0:pkg.0/mem.1/cores.0;numa_offline:x.1",
            "cpus.<list>",
        ),
    ];
    for (attrs, needle) in cases {
        let text = with(attrs);
        assert!(text.contains(needle), "{attrs}: {text}");
        assert!(!text.contains('\n'), "{attrs}: {text}");
    }
}

#[test]
fn offer_resources_of_the_wrong_type_are_errors() {
    let r = parse_resources("cpuids:7").unwrap();
    assert!(matches!(
        offer_topology(&r, &[]),
        Err(NumaError::ResourceType {
            expected: "RANGES",
            ..
        })
    ));
    let r = parse_resources("cpus:[1-2]").unwrap();
    assert!(matches!(
        offer_topology(&r, &[]),
        Err(NumaError::ResourceType {
            expected: "SCALAR",
            ..
        })
    ));
    let mut r = parse_resources("mem:1;cpus:1").unwrap();
    r[0].scalar = Some(value::Scalar { value: f64::NAN });
    assert!(matches!(
        offer_topology(&r, &[]),
        Err(NumaError::ResourceType { .. })
    ));
    let r = vec![Resource {
        name: CPUIDS.to_string(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: vec![value::Range {
                begin: 0,
                end: u64::MAX,
            }],
        }),
        ..Default::default()
    }];
    assert!(matches!(
        offer_topology(&r, &[]),
        Err(NumaError::ResourceType { .. })
    ));
}

#[test]
fn cpuset_ranges_convert_both_ways() {
    let s = set("0-3,8,10-11");
    let r = cpuset_to_ranges(&s);
    assert_eq!(r.range.len(), 3);
    assert_eq!(ranges_to_cpuset(&r).unwrap(), s);
    let reversed = value::Ranges {
        range: vec![value::Range { begin: 5, end: 4 }],
    };
    assert!(ranges_to_cpuset(&reversed).is_err());
}

/// Nasty inputs for the fuzz target; none may panic.
#[test]
fn fuzz_target_survives_nasty_inputs() {
    let spec = two_socket();
    let good = agent_flags(&spec, &FreeResources::whole_machine(&spec))
        .unwrap()
        .to_flag_lines();
    let corpus = [
        String::new(),
        good.clone(),
        good.replace("cores.0-7t16", "cores.0-7t16t4294967295"),
        good.replace("cores.0-7t16", "cores.0-65535s1"),
        good.replace("cores.0-7t16", "cores.4294967295-4294967295"),
        good.replace("mem.32739", "mem.18446744073709551616"),
        good.replace("dist.10.20", "dist.4294967296.1"),
        good.replace("v1", "v1.0"),
        "--resources='cpus:999999999999;cpus:999999999999'".to_string(),
        "--resources=cpus:1000000000000;cpus:0.001".to_string(),
        "--resources=cpus:0.0004".to_string(),
        "--resources=cpus:1.9999 --attributes=".to_string(),
        "--resources=cpuids:[0-65535];cpus:1 ".to_string(),
        "--resources=cpuids:[0-65536]".to_string(),
        "--resources=\"\\".to_string(),
        "'\"'\"".to_string(),
        "--resources=;;;;:;".to_string(),
        "--attributes=retz_numa:v1;numa_n0://///".to_string(),
        "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.0-0s0".to_string(),
        "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.ttt".to_string(),
        "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.-".to_string(),
        "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.0-s".to_string(),
        "--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.1é".to_string(),
        "--attributes=retz_numa:v1;numa_n00:pkg.0/mem.0/cores.1;numa_n0:pkg.0/mem.0/cores.2"
            .to_string(),
        "--resources=cpus(*):4;mem(r/x):5 --attributes=retz_numa:v1;numa_n3:pkg.0/mem.0/cores.0t1t2t3"
            .to_string(),
        "\u{0}\u{feff}--resources=cpus:1".to_string(),
        "x".repeat(100_000),
        format!("--resources=cpuids:[{}]", "1-1,".repeat(5000)),
        format!("--attributes=retz_numa:v1;numa_n0:pkg.0/mem.0/cores.{}", "0t1".repeat(3000)),
    ];
    for input in &corpus {
        fuzz_agent_flags(input);
    }
}

// ---- property tests

fn arb_cpu() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..256, 1 => 0u32..=MAX_SET_ID]
}

fn arb_scalar() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        (0u64..100_000).prop_map(|k| k as f64),
        (0u64..=1_000_000_000_000_000).prop_map(|k| k as f64 / 1000.0),
    ]
}

prop_compose! {
    pub(super) fn arb_spec_and_free()(
        ids in proptest::collection::btree_set(0u32..=MAX_SET_ID, 1..=6),
        cpus in proptest::collection::vec(arb_cpu(), 1..160),
        cores in proptest::collection::vec((any::<u8>(), 1usize..=4), 1..60),
        params in proptest::collection::vec((any::<u32>(), any::<u64>()), 6),
        with_distances in any::<bool>(),
        distances in proptest::collection::vec(1u32..=u32::MAX, 36),
        offline_mask in proptest::collection::vec(any::<bool>(), 160),
        free_mask in proptest::collection::vec(any::<bool>(), 160),
        scalars in proptest::collection::vec(arb_scalar(), 5),
    ) -> (TopologySpec, FreeResources) {
        let ids: Vec<u32> = ids.into_iter().collect();
        let n = ids.len();
        let mut seen = std::collections::BTreeSet::new();
        let cpus: Vec<u32> = cpus.into_iter().filter(|c| seen.insert(*c)).collect();
        let mut nodes: Vec<NodeSpec> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| NodeSpec {
                id: NodeId(id),
                package: params[i].0,
                memory_mb: params[i].1,
                cores: Vec::new(),
                distances: if with_distances {
                    distances[i * 6..i * 6 + n].to_vec()
                } else {
                    Vec::new()
                },
                caches: Vec::new(),
            })
            .collect();
        let mut next = 0;
        for (selector, size) in cores {
            if next >= cpus.len() {
                break;
            }
            let take = size.min(cpus.len() - next);
            let core_cpus: CpuSet = cpus[next..next + take].iter().map(|&c| CpuId(c)).collect();
            next += take;
            nodes[usize::from(selector) % n].cores.push(CoreSpec { cpus: core_cpus });
        }
        let offline_cpus: CpuSet = cpus[next..]
            .iter()
            .zip(&offline_mask)
            .filter(|(_, off)| **off)
            .map(|(&c, _)| CpuId(c))
            .collect();
        let usable: Vec<u32> = cpus[..next].to_vec();
        let cpuids: CpuSet = usable
            .iter()
            .zip(&free_mask)
            .filter(|(_, f)| **f)
            .map(|(&c, _)| CpuId(c))
            .collect();
        let free = FreeResources {
            cpuids,
            cpus: scalars[0],
            mem_mb: scalars[1],
            disk_mb: scalars[2],
            gpus: scalars[3],
            gpuids: GpuSet::new(),
            numanodes: scalars[4],
        };
        (TopologySpec { nodes, offline_cpus, ..Default::default() }, free)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn spec_to_flags_to_spec_is_identity((spec, free) in arb_spec_and_free()) {
        prop_assume!(Topology::new(spec.clone()).is_ok());
        let flags = agent_flags(&spec, &free).unwrap();
        for (name, value) in topology_attributes(&spec).unwrap() {
            prop_assert!(name.chars().all(is_text_char));
            prop_assert!(value.starts_with(|c: char| c.is_ascii_alphabetic()));
            prop_assert!(value.chars().all(is_text_char), "{}", value);
        }
        let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
        let offer = offer_topology(&parsed.resources, &parsed.attributes).unwrap();
        prop_assert!(offer.numa_aware);
        prop_assert_eq!(&offer.spec, &spec);
        prop_assert_eq!(&offer.free, &free);
    }

    #[test]
    fn parsers_never_panic(text in "\\PC{0,200}") {
        fuzz_agent_flags(&text);
    }

    #[test]
    fn parsers_never_panic_on_flag_shaped_text(
        text in "(--resources=|--attributes=|retz_numa:v1;|numa_n[0-9]:|pkg\\.|mem\\.|cores\\.|dist\\.|[0-9]{1,6}|[-st./;:,\\[\\]{}()'\"]){0,40}"
    ) {
        fuzz_agent_flags(&text);
    }
}
