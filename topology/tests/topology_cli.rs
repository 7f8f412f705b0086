//! `retz-executor topology`: argument parsing and the three outputs.

use std::path::PathBuf;

use clap::Parser;
use retz_placement::topology::TopologySpec;
use retz_topology::{OutputFormat, TopologyArgs, TopologySource, run};

fn shared_dir() -> PathBuf {
    match std::env::var_os("RETZ_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn xml(name: &str) -> String {
    shared_dir()
        .join("topologies")
        .join(name)
        .display()
        .to_string()
}

/// The subcommand's arguments mounted the way `main` mounts them.
#[derive(Parser, Debug)]
#[command(name = "retz-executor-topology")]
struct Cli {
    #[command(flatten)]
    args: TopologyArgs,
}

fn parse(argv: &[&str]) -> Result<TopologyArgs, clap::Error> {
    let mut full = vec!["retz-executor-topology"];
    full.extend_from_slice(argv);
    Cli::try_parse_from(full).map(|c| c.args)
}

const SANDY_BRIDGE_FLAGS: &str = "--resources='cpus:32;mem:65507;cpuids:[0-31];numanodes:2'\n\
--attributes='retz_numa:v1;numa_n0:pkg.0/mem.32739/cores.0-7t16/dist.10.20;numa_n1:pkg.1/mem.32768/cores.8-15t16/dist.20.10;numa_l3_n0:n8;numa_l3_n1:n8'";

#[test]
fn arguments_parse() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.source(), TopologySource::ThisMachine);
    assert_eq!(a.format(), OutputFormat::Summary);
    let a = parse(&["--xml", "f.xml", "--json"]).unwrap();
    assert_eq!(a.source(), TopologySource::XmlFile("f.xml".into()));
    assert_eq!(a.format(), OutputFormat::Json);
    let a = parse(&[
        "--synthetic",
        "pack:2 pu:2",
        "--agent-flags",
        "--disk",
        "10",
    ])
    .unwrap();
    assert_eq!(a.source(), TopologySource::Synthetic("pack:2 pu:2".into()));
    assert_eq!(a.format(), OutputFormat::AgentFlags);
    assert_eq!(a.disk, Some(10));
    for bad in [
        &["--xml", "a", "--synthetic", "b"][..],
        &["--json", "--agent-flags"],
        &["--disk", "5"],
        &["--agent-flags", "--mem", "lots"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn agent_flags_for_the_sandy_bridge_export() {
    let args = parse(&[
        "--xml",
        &xml("32em64t-2n8c2t-pci-noio.xml"),
        "--agent-flags",
    ])
    .unwrap();
    assert_eq!(run(&args).unwrap(), SANDY_BRIDGE_FLAGS);
}

#[test]
fn the_convention_document_shows_the_real_output() {
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/numa-convention.md");
    let doc = std::fs::read_to_string(&doc).unwrap();
    assert!(
        doc.contains(SANDY_BRIDGE_FLAGS),
        "the example in docs/numa-convention.md is stale"
    );
    for name in [
        "memorysidecaches.xml",
        "16em64t-4s2c2t-offlines.xml",
        "128amd64-2p8l3-epyc7763.xml",
        "4intel64-2p-16gpu-dgx2.xml",
    ] {
        let args = parse(&["--xml", &xml(name), "--agent-flags"]).unwrap();
        let flags = run(&args).unwrap();
        assert!(
            doc.contains(&flags),
            "the {name} example in docs/numa-convention.md is stale; the command prints:\n{flags}"
        );
    }
}

#[test]
fn agent_flags_overrides() {
    let args = parse(&[
        "--synthetic",
        "pack:2 core:2 pu:2",
        "--agent-flags",
        "--mem",
        "900",
        "--disk",
        "4096",
        "--gpus",
        "1",
    ])
    .unwrap();
    assert_eq!(
        run(&args).unwrap(),
        "--resources='cpus:8;mem:900;disk:4096;gpus:1;cpuids:[0-7];numanodes:1'\n\
         --attributes='retz_numa:v1;numa_n0:pkg.0/mem.1024/cores.0-6s2t1'"
    );
}

#[test]
fn json_is_the_topology_spec() {
    let args = parse(&["--xml", &xml("16em64t-4s2c2t-offlines.xml"), "--json"]).unwrap();
    let spec: TopologySpec = serde_json::from_str(&run(&args).unwrap()).unwrap();
    assert_eq!(spec.nodes.len(), 1);
    assert_eq!(spec.offline_cpus.to_string(), "2,5,7-11,13-14");
}

#[test]
fn summary_is_readable() {
    let out = run(&parse(&["--xml", &xml("memorysidecaches.xml")]).unwrap()).unwrap();
    for needle in [
        "packages: 2, NUMA nodes: 4, cores: 40, usable CPUs: 80 (up to 2 per core)",
        "offline or disallowed CPUs: none",
        "node 2: package 0, 381019 MiB, 10 cores, CPUs 2,6,10,14,18,22,26,30,34,38,42,46,50,54,58,62,66,70,74,78",
        "distances (SLIT):",
        "\n    n0  n1  n2  n3\n",
        "\nn2  11  21  10  21",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let out = run(&parse(&["--synthetic", "pack:2 [numa] [numa] core:1 pu:1"]).unwrap()).unwrap();
    assert!(out.contains("node 1: package 0, "), "{out}");
    assert!(out.contains("memory only"), "{out}");
    assert!(out.contains("distances: unknown"), "{out}");
    let out = run(&parse(&["--xml", &xml("16em64t-4s2c2t-offlines.xml")]).unwrap()).unwrap();
    assert!(
        out.contains("offline or disallowed CPUs: 2,5,7-11,13-14 (9)"),
        "{out}"
    );
}

#[test]
fn this_machine_by_default() {
    let out = run(&parse(&["--agent-flags"]).unwrap()).unwrap();
    assert!(out.starts_with("--resources='cpus:"), "{out}");
    assert!(out.contains("\n--attributes='retz_numa:v1;numa_n"), "{out}");
}

#[test]
fn bad_input_is_one_line() {
    for argv in [
        &["--xml", "/nonexistent/topology.xml"][..],
        &["--synthetic", "pack:x"],
        &["--synthetic", ""],
    ] {
        let err = run(&parse(argv).unwrap()).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{argv:?}: {err}");
        assert!(err.len() < 300, "{argv:?}: {err}");
    }
}
