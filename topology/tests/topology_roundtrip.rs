//! hwloc topology → agent flags → parsed Resources/Attributes → TopologySpec is lossless,
//! for every shared topology file and for synthetic shapes.

use std::path::PathBuf;

use retz_proto::numa::{FreeResources, agent_flags, offer_topology, parse_agent_flags};
use retz_topology::hwloc::{LoadedTopology, load_synthetic, load_xml_file};

fn shared_dir() -> PathBuf {
    match std::env::var_os("RETZ_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn assert_round_trip(loaded: &LoadedTopology, free: &FreeResources) {
    let flags = agent_flags(&loaded.spec, free).unwrap();
    let text = flags.to_flag_lines();
    let parsed = parse_agent_flags(&text).unwrap();
    let offer = offer_topology(&parsed.resources, &parsed.attributes).unwrap();
    assert!(offer.numa_aware, "{}", loaded.source);
    assert_eq!(offer.spec, loaded.spec, "{}\n{text}", loaded.source);
    assert_eq!(&offer.free, free, "{}", loaded.source);
    // every attribute value stays short enough to read in an offer
    for attribute in &parsed.attributes {
        let len = attribute.text.as_ref().map_or(0, |t| t.value.len());
        assert!(
            len < 200,
            "{}: {} is {len} long",
            loaded.source,
            attribute.name
        );
    }
}

#[test]
fn every_shared_topology_round_trips() {
    let dir = shared_dir().join("topologies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the shared topologies in {}",
        dir.display()
    );
    for file in files {
        let loaded = load_xml_file(&file).unwrap();
        assert_round_trip(&loaded, &FreeResources::whole_machine(&loaded.spec));
        // with disk and gpus advertised, and every other CPU taken
        let mut free = FreeResources::whole_machine(&loaded.spec);
        free.disk_mb = 102_400.0;
        free.gpus = 2.0;
        free.cpuids = free.cpuids.iter().step_by(2).collect();
        free.cpus = free.cpuids.len() as f64;
        free.numanodes = 0.0;
        assert_round_trip(&loaded, &free);
    }
}

#[test]
fn synthetic_topologies_round_trip() {
    for desc in [
        "pack:2 numa:2 core:8 pu:2",
        "numa:8 core:4 pu:1",
        "pack:2 core:4 pu:4",
        "pack:4 numa:2 core:16 pu:2",
        "pack:2 [numa(memory=2GB)] [numa(memory=4GB)] core:2 pu:1",
    ] {
        let loaded = load_synthetic(desc).unwrap();
        assert_round_trip(&loaded, &FreeResources::whole_machine(&loaded.spec));
    }
}
