//! Bodies of the cargo-fuzz targets in `placement/fuzz/` (so the normal test suite can
//! feed them nasty inputs too). Each takes raw bytes, must never panic on any input, and
//! asserts the invariants of whatever the parsers accept — a failed assertion here is a
//! bug found.

use std::sync::Arc;

use crate::agent::AgentState;
use crate::config::PolicyConfig;
use crate::packer::plan;
use crate::request::{AffinityPolicy, JobRequest};
use crate::sets::{CpuSet, NodeSet};
use crate::topology::{Topology, TopologySpec};

/// Inputs larger than this are ignored (the parsers are linear; this keeps runs fast).
const MAX_INPUT: usize = 1 << 16;

/// Target `cpulist`: parse as a CPU list and a node list; accepted lists round-trip.
pub fn cpulist(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(set) = text.parse::<CpuSet>() {
        let printed = set.to_string();
        let again: CpuSet = printed.parse().expect("printed list must parse");
        assert_eq!(again, set, "round trip of {printed:?}");
        let from_ranges: usize = set.ranges().map(|(a, b)| (b - a + 1) as usize).sum();
        assert_eq!(from_ranges, set.len());
        assert!(set.iter().zip(set.iter().skip(1)).all(|(a, b)| a < b));
    }
    if let Ok(set) = text.parse::<NodeSet>() {
        let again: NodeSet = set.to_string().parse().expect("printed list must parse");
        assert_eq!(again, set);
    }
}

/// Target `topology_spec`: the bytes as a JSON [`TopologySpec`] and as a synthetic
/// description; accepted topologies keep their invariants and can be planned on.
pub fn topology_spec(data: &[u8]) {
    if data.len() > MAX_INPUT {
        return;
    }
    if let Ok(spec) = serde_json::from_slice::<TopologySpec>(data)
        && let Ok(t) = Topology::new(spec)
    {
        check_topology(&t);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(t) = Topology::from_synthetic(text, 1024)
    {
        check_topology(&t);
    }
}

fn check_topology(t: &Topology) {
    let mut union = CpuSet::new();
    for n in t.nodes() {
        assert!(union.is_disjoint(n.cpus()), "nodes share CPUs");
        union.union_with(n.cpus());
        for ci in n.core_range() {
            assert!(t.cores()[ci].is_subset(n.cpus()));
        }
    }
    assert_eq!(&union, t.cpus());
    assert!(t.cpus().is_disjoint(t.offline_cpus()));
    for cpu in t.cpus().iter() {
        let node = t.node_of(cpu).expect("usable CPU has a node");
        let sib = t.siblings(cpu).expect("usable CPU has a core");
        assert!(sib.contains(cpu));
        assert!(sib.iter().all(|s| t.node_of(s) == Some(node)));
    }
    for a in t.node_ids().iter() {
        for b in t.node_ids().iter() {
            assert!(t.distance(a, b) > 0);
        }
    }
    let json = serde_json::to_string(t.spec()).expect("spec serializes");
    let back: TopologySpec = serde_json::from_str(&json).expect("spec parses back");
    assert_eq!(&Topology::new(back).expect("spec validates again"), t);
    // Plan a few jobs on it; small topologies only, to keep fuzzing fast.
    if t.cpus().len() <= 1024 {
        let agent = AgentState::idle("fuzz", "fuzz", Arc::new(t.clone()), 1);
        let n = t.cpus().len() as u32;
        let mut queue: Vec<JobRequest> = AffinityPolicy::ALL
            .iter()
            .enumerate()
            .map(|(i, &p)| JobRequest::new(i as u64, (n / 3).max(1), 100).with_policy(p))
            .collect();
        let mut whole = JobRequest::new(9, 1, 0);
        whole.numanodes = Some(1);
        queue.push(whole);
        let agents = [agent];
        for name in ["retz", "first-fit", "node-blind"] {
            let cfg = PolicyConfig::builtin(name).expect("builtin");
            let p = plan(&agents, &queue, 0, &cfg);
            let mut given = CpuSet::new();
            for a in &p.assignments {
                assert!(a.cpus.is_subset(t.cpus()));
                assert!(given.is_disjoint(&a.cpus));
                given.union_with(&a.cpus);
            }
            assert_eq!(p.assignments.len() + p.pending.len(), queue.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulist_survives_nasty_inputs() {
        let corpus: &[&[u8]] = &[
            b"",
            b"\n",
            b"0",
            b"0-3,8,10-11\n",
            b"0-65535",
            b"65535-65535",
            b"0-65536",
            b"4294967295",
            b"18446744073709551616",
            b"-",
            b"--",
            b",",
            b",,,",
            b"1-",
            b"-1",
            b"3-1",
            b"1,2,3,",
            b"0x10",
            b"1 - 2",
            b"\x00\xff\xfe",
            "\u{0661}\u{0662}".as_bytes(),
            b"1-2-3",
            b"00000000000000000000000001",
            b"0-3:2",
            b"\t 7 \r\n",
            &[b'9'; 5000],
        ];
        for input in corpus {
            cpulist(input);
        }
        let long: String = (0..5000)
            .map(|i| format!("{},", i * 13 % 65536))
            .collect::<String>()
            + "1";
        cpulist(long.as_bytes());
    }

    #[test]
    fn topology_spec_survives_nasty_inputs() {
        let corpus: &[&str] = &[
            "",
            "{}",
            "null",
            "[]",
            r#"{"nodes":[]}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":1,"cores":[{"cpus":"0-3"}]}]}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":18446744073709551615,"cores":[{"cpus":"0"}]},{"id":1,"package":0,"memory_mb":18446744073709551615,"cores":[{"cpus":"1"}]}]}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":1,"cores":[{"cpus":"0-3"}],"distances":[10,20]}]}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":1,"cores":[{"cpus":"0-3"}],"distances":[0]}]}"#,
            r#"{"nodes":[{"id":4294967295,"package":0,"memory_mb":1,"cores":[{"cpus":"0"}]}]}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":1,"cores":[{"cpus":""}]}]}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":1,"cores":[{"cpus":"0-1"},{"cpus":"1-2"}]}]}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":1,"cores":[{"cpus":"0-1"}]}],"offline_cpus":"1"}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":1,"cores":[{"cpus":"65535"}]}]}"#,
            r#"{"nodes":[{"id":2,"package":0,"memory_mb":0,"cores":[]},{"id":1,"package":0,"memory_mb":0,"cores":[{"cpus":"0"}]}]}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":0,"cores":[]},{"id":5,"package":9,"memory_mb":7,"cores":[{"cpus":"0,64,128"}],"distances":[]}]}"#,
            r#"{"nodes":[{"id":0,"package":0,"memory_mb":1,"cores":[{"cpus":"0"}],"distances":[4294967295]}]}"#,
            "pack:2 numa:2 core:4 pu:2",
            "pack:0",
            "pack:65536 pu:2",
            "numa:1024 pu:1",
            "numa:1025 pu:1",
            "[numa] [numa] [numa]",
            "package:1 group:4 [numa] [numa] core:16 pu:4",
            "pu:65536",
            "l3:1(size=(((",
            "pack:2(memory=1GB) numa:2(memory=99999999999999999999TB) core:1",
            "numa:2(memory=18446744073709551615TB) core:1",
            "group:1 group:1 group:1 group:1 group:1 group:1 group:1 group:1 core:1",
            "[numa(memory=1KB)] core:1",
            "\u{0}\u{1}",
            "core:1 pu:1 pu:1",
            ")(",
            "numa:3 [numa] core:2 pu:3",
        ];
        for input in corpus {
            topology_spec(input.as_bytes());
        }
        // A spec with many nodes and a full distance matrix.
        let n = 64;
        let nodes: Vec<String> = (0..n)
            .map(|i| {
                let d: Vec<String> = (0..n).map(|j| if i == j { "10" } else { "21" }.to_string()).collect();
                format!(
                    r#"{{"id":{i},"package":{},"memory_mb":1024,"cores":[{{"cpus":"{}-{}"}}],"distances":[{}]}}"#,
                    i / 8,
                    2 * i,
                    2 * i + 1,
                    d.join(",")
                )
            })
            .collect();
        let big = format!(r#"{{"nodes":[{}]}}"#, nodes.join(","));
        topology_spec(big.as_bytes());
        assert!(Topology::new(serde_json::from_str(&big).unwrap()).is_ok());
    }
}
