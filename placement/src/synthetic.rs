//! A pure parser for the subset of hwloc's synthetic topology descriptions that Retz uses,
//! e.g. `"pack:2 numa:2 core:4 pu:2"` or the KNL-like
//! `"package:1 group:4 [numa] [numa] core:16 pu:4"`.
//!
//! Grammar (whitespace separated, names case-insensitive):
//! - a level `NAME:COUNT[(ATTRS)]` with COUNT ≥ 1; NAME is `package|pack|socket`,
//!   `group|groupN|die`, `numa|node|numanode`, a cache (`l1`…`l5` with optional
//!   `i|d|u` and `cache` suffix, `cache`, `memcache`), `core`, or `pu|thread`; caches are
//!   ignored except L3 (`l3`, `l3u`, `l3cache`), whose objects become the cache domains
//!   of the nodes below them (e.g. `pack:2 numa:1 l3:12 core:8 pu:2` for an EPYC 9654
//!   in NPS1, 12 L3 domains of 8 cores per node);
//! - a memory child `[numa]` or `[numa(memory=16GB)]` attaches one more NUMA node to every
//!   object of the preceding level (or to the machine when it comes first);
//! - attributes: `memory=SIZE` on NUMA nodes (bytes, or with `kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB`,
//!   all powers of 1024); other attributes (cache `size=`, …) are ignored, except
//!   `indexes=` which is rejected because we number PUs in logical order.
//!
//! Invariants of the result: PU os indexes are their logical (depth-first) order, like hwloc
//! numbers synthetic PUs; NUMA node ids are their depth-first order (memory children of an
//! object before its normal children); a PU belongs to the first NUMA node of its deepest
//! ancestor that has one, other nodes of that ancestor are memory-only; without any NUMA
//! level one node 0 holds everything; a node's package is the package object it lies in, or
//! the package of its first core when it lies above the package level; a node's cache domains
//! group its cores by their L3 object (none when they share one). The parser rejects
//! more than [`MAX_SET_ID`]+1 PUs, more than [`MAX_NODES`] nodes and more than 32 levels,
//! so hostile strings cannot exhaust memory.

use crate::sets::{CpuId, CpuSet, MAX_SET_ID, NodeId};
use crate::topology::{CacheSpec, CoreSpec, MAX_NODES, NodeSpec, TopologyError, TopologySpec};

const MAX_LEVELS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Package,
    Group,
    Numa,
    Cache,
    Core,
    Pu,
}

#[derive(Debug)]
struct Level {
    kind: Kind,
    /// An L3 cache level (`l3`, `l3u`, `l3cache`, ...): its objects are cache domains.
    l3: bool,
    count: u64,
    /// Memory of the NUMA node this level's objects are (Kind::Numa only).
    memory_mb: Option<u64>,
    /// Memory children attached to each object of this level (`[numa]` tokens).
    memory_children: Vec<Option<u64>>,
}

struct Parser<'a> {
    input: &'a str,
}

impl Parser<'_> {
    fn err(&self, pos: usize, message: impl Into<String>) -> TopologyError {
        TopologyError::Synthetic {
            input: self.input.chars().take(120).collect(),
            pos,
            message: message.into(),
        }
    }
}

/// Splits into tokens at top-level whitespace (parentheses may contain spaces); returns
/// `(byte offset, token)`.
fn tokens<'a>(p: &Parser<'a>) -> Result<Vec<(usize, &'a str)>, TopologyError> {
    let s = p.input;
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start: Option<usize> = None;
    for (i, c) in s.char_indices() {
        match c {
            '(' => {
                depth += 1;
                start.get_or_insert(i);
            }
            ')' => {
                if depth == 0 {
                    return Err(p.err(i, "unbalanced ')'"));
                }
                depth -= 1;
            }
            c if c.is_whitespace() && depth == 0 => {
                if let Some(st) = start.take() {
                    out.push((st, &s[st..i]));
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if depth != 0 {
        return Err(p.err(s.len(), "unclosed '('"));
    }
    if let Some(st) = start {
        out.push((st, &s[st..]));
    }
    Ok(out)
}

fn kind_of(name: &str) -> Option<Kind> {
    let n = name.to_ascii_lowercase();
    let kind = match n.as_str() {
        "package" | "pack" | "socket" => Kind::Package,
        "group" | "die" => Kind::Group,
        "numa" | "node" | "numanode" => Kind::Numa,
        "cache" | "memcache" => Kind::Cache,
        "core" => Kind::Core,
        "pu" | "thread" => Kind::Pu,
        _ => {
            if let Some(rest) = n.strip_prefix("group") {
                if rest.chars().all(|c| c.is_ascii_digit()) {
                    return Some(Kind::Group);
                }
                return None;
            }
            let rest = n.strip_prefix('l')?;
            let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            let rest = &rest[digits..];
            let rest = rest
                .strip_prefix('i')
                .or_else(|| rest.strip_prefix('d'))
                .or_else(|| rest.strip_prefix('u'))
                .unwrap_or(rest);
            if rest.is_empty() || rest == "cache" {
                Kind::Cache
            } else {
                return None;
            }
        }
    };
    Some(kind)
}

/// Parses a hwloc memory size into MiB (floor).
fn parse_memory(v: &str) -> Option<u64> {
    let digits = v.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let number: u64 = v[..digits].parse().ok()?;
    let shift = match v[digits..].to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kb" | "kib" => 10,
        "mb" | "mib" => 20,
        "gb" | "gib" => 30,
        "tb" | "tib" => 40,
        _ => return None,
    };
    let bytes = u128::from(number) << shift;
    u64::try_from(bytes >> 20).ok()
}

/// Whether a level name is an L3 cache (`l3`, `l3u`, `l3cache`, `L3Cache`, ...).
fn is_l3(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.strip_prefix("l3").is_some_and(|rest| {
        let rest = rest.strip_prefix('u').unwrap_or(rest);
        rest.is_empty() || rest == "cache"
    })
}

/// Parses `NAME[:COUNT][(ATTRS)]` at `pos`; returns (kind, count, memory attribute).
fn parse_level(
    p: &Parser<'_>,
    pos: usize,
    tok: &str,
    need_count: bool,
) -> Result<(Kind, Option<u64>, Option<u64>), TopologyError> {
    let (head, attrs) = match tok.find('(') {
        Some(i) => {
            if !tok.ends_with(')') {
                return Err(p.err(pos + tok.len(), "text after ')'"));
            }
            (&tok[..i], Some((pos + i + 1, &tok[i + 1..tok.len() - 1])))
        }
        None => (tok, None),
    };
    let (name, count) = match head.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (head, None),
    };
    let kind = kind_of(name).ok_or_else(|| {
        p.err(
            pos,
            format!("unknown level {name:?}; use package, group, numa, l1..l5/cache, core or pu"),
        )
    })?;
    let count = match count {
        Some(c) => {
            let n: u64 = c
                .parse()
                .ok()
                .filter(|&n| n >= 1 && n <= u64::from(MAX_SET_ID) + 1)
                .ok_or_else(|| {
                    p.err(
                        pos + name.len() + 1,
                        format!("count {c:?} of level {name:?} must be a number from 1 to 65536"),
                    )
                })?;
            Some(n)
        }
        None if need_count => {
            return Err(p.err(
                pos + name.len(),
                format!("level {name:?} needs a count, e.g. {name}:2"),
            ));
        }
        None => None,
    };
    let mut memory = None;
    if let Some((apos, attrs)) = attrs {
        for attr in attrs.split_whitespace() {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            match k.to_ascii_lowercase().as_str() {
                "memory" if kind == Kind::Numa => {
                    memory = Some(parse_memory(v).ok_or_else(|| {
                        p.err(apos, format!("bad memory size {v:?}; use e.g. memory=16GB"))
                    })?);
                }
                "indexes" => {
                    return Err(p.err(
                        apos,
                        "the indexes= attribute is not supported; PUs are numbered in logical order",
                    ));
                }
                _ => {}
            }
        }
    }
    Ok((kind, count, memory))
}

fn parse_levels(p: &Parser<'_>) -> Result<(Vec<Option<u64>>, Vec<Level>), TopologyError> {
    let mut machine_memory = Vec::new();
    let mut levels: Vec<Level> = Vec::new();
    for (pos, tok) in tokens(p)? {
        if let Some(inner) = tok.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| p.err(pos, "memory child must be written [numa] or [numa(...)]"))?;
            let (kind, count, memory) = parse_level(p, pos + 1, inner, false)?;
            if kind != Kind::Numa || count.is_some() {
                return Err(p.err(pos, "only [numa] (without a count) may be a memory child"));
            }
            match levels.last_mut() {
                None => machine_memory.push(memory),
                Some(l) if matches!(l.kind, Kind::Core | Kind::Pu) => {
                    return Err(p.err(pos, "memory children must be attached above the core level"));
                }
                Some(l) => l.memory_children.push(memory),
            }
            continue;
        }
        let (kind, count, memory) = parse_level(p, pos, tok, true)?;
        let count = count.unwrap_or(1);
        if levels.len() >= MAX_LEVELS {
            return Err(p.err(pos, format!("more than {MAX_LEVELS} levels")));
        }
        if let Some(last) = levels.last() {
            if last.kind == Kind::Pu {
                return Err(p.err(pos, "nothing may follow the pu level"));
            }
            if last.kind == Kind::Core && kind != Kind::Pu {
                return Err(p.err(pos, "only pu may follow the core level"));
            }
        }
        if matches!(kind, Kind::Package | Kind::Numa | Kind::Core | Kind::Pu)
            && levels.iter().any(|l| l.kind == kind)
        {
            return Err(p.err(pos, format!("level {tok:?} appears twice")));
        }
        let l3 = kind == Kind::Cache && is_l3(tok.split([':', '(']).next().unwrap_or(""));
        levels.push(Level {
            kind,
            l3,
            count,
            memory_mb: memory,
            memory_children: Vec::new(),
        });
    }
    if levels.is_empty() {
        return Err(p.err(0, "empty description; e.g. \"pack:2 numa:2 core:4 pu:2\""));
    }
    let mut pus: u64 = 1;
    for l in &levels {
        pus = pus.saturating_mul(l.count);
    }
    if pus > u64::from(MAX_SET_ID) + 1 {
        return Err(p.err(
            0,
            format!("{pus} PUs; at most {} are supported", MAX_SET_ID + 1),
        ));
    }
    Ok((machine_memory, levels))
}

struct NodeDraft {
    memory_mb: u64,
    package: Option<u32>,
    cores: Vec<CoreSpec>,
    /// The L3 object each core lies in (parallel to `cores`).
    core_l3: Vec<Option<u32>>,
}

struct Builder<'a> {
    levels: &'a [Level],
    default_memory: u64,
    has_core: bool,
    nodes: Vec<NodeDraft>,
    next_pu: u32,
    next_package: u32,
    next_l3: u32,
    /// The core currently being filled (index into the owner node's cores).
    current_core: Option<(usize, usize)>,
}

impl Builder<'_> {
    fn add_node(&mut self, memory: Option<u64>, package: Option<u32>) -> Result<usize, String> {
        if self.nodes.len() >= MAX_NODES {
            return Err(format!("more than {MAX_NODES} NUMA nodes"));
        }
        self.nodes.push(NodeDraft {
            memory_mb: memory.unwrap_or(self.default_memory),
            package,
            cores: Vec::new(),
            core_l3: Vec::new(),
        });
        Ok(self.nodes.len() - 1)
    }

    fn push_core(&mut self, owner: usize, package: Option<u32>, l3: Option<u32>) {
        self.nodes[owner].cores.push(CoreSpec {
            cpus: CpuSet::new(),
        });
        self.nodes[owner].core_l3.push(l3);
        self.current_core = Some((owner, self.nodes[owner].cores.len() - 1));
        if self.nodes[owner].package.is_none() {
            self.nodes[owner].package = Some(package.unwrap_or(0));
        }
    }

    fn visit(
        &mut self,
        depth: usize,
        package: Option<u32>,
        l3: Option<u32>,
        owner: usize,
    ) -> Result<(), String> {
        let level = &self.levels[depth];
        let mut package = package;
        if level.kind == Kind::Package {
            package = Some(self.next_package);
            self.next_package += 1;
        }
        let mut l3 = l3;
        if level.l3 {
            l3 = Some(self.next_l3);
            self.next_l3 += 1;
        }
        let mut owner = owner;
        let mut first_here = None;
        if level.kind == Kind::Numa {
            first_here = Some(self.add_node(level.memory_mb, package)?);
        }
        for m in level.memory_children.clone() {
            let id = self.add_node(m, package)?;
            first_here.get_or_insert(id);
        }
        if let Some(f) = first_here {
            owner = f;
        }
        match level.kind {
            Kind::Core => self.push_core(owner, package, l3),
            Kind::Pu => {
                let cpu = CpuId(self.next_pu);
                self.next_pu += 1;
                if !self.has_core {
                    self.push_core(owner, package, l3);
                }
                let (n, c) = self
                    .current_core
                    .ok_or_else(|| "internal: pu without core".to_string())?;
                self.nodes[n].cores[c].cpus.insert(cpu);
                return Ok(());
            }
            _ => {}
        }
        if depth + 1 < self.levels.len() {
            for _ in 0..self.levels[depth + 1].count {
                self.visit(depth + 1, package, l3, owner)?;
            }
        }
        Ok(())
    }
}

/// A node's cache domains from the L3 object of each core, in order of first appearance;
/// none when the node's cores share one L3 (or there is no L3 level).
fn l3_domains(cores: &[CoreSpec], core_l3: &[Option<u32>]) -> Vec<CacheSpec> {
    let mut ids: Vec<Option<u32>> = Vec::new();
    let mut out: Vec<CacheSpec> = Vec::new();
    for (core, l3) in cores.iter().zip(core_l3) {
        match ids.iter().position(|x| x == l3) {
            Some(p) => out[p].cpus.union_with(&core.cpus),
            None => {
                ids.push(*l3);
                out.push(CacheSpec {
                    cpus: core.cpus.clone(),
                });
            }
        }
    }
    if out.len() < 2 { Vec::new() } else { out }
}

/// Parses `desc` into a [`TopologySpec`] (not yet validated); `memory_mb_per_node` is the
/// memory of each NUMA node without a `memory=` attribute.
pub fn parse(desc: &str, memory_mb_per_node: u64) -> Result<TopologySpec, TopologyError> {
    let p = Parser { input: desc };
    let (machine_memory, mut levels) = parse_levels(&p)?;
    // A leaf level that is not a PU gets one PU per object.
    if levels.last().map(|l| l.kind) != Some(Kind::Pu) {
        levels.push(Level {
            kind: Kind::Pu,
            l3: false,
            count: 1,
            memory_mb: None,
            memory_children: Vec::new(),
        });
    }
    let has_core = levels.iter().any(|l| l.kind == Kind::Core);
    let any_numa = !machine_memory.is_empty()
        || levels
            .iter()
            .any(|l| l.kind == Kind::Numa || !l.memory_children.is_empty());
    let mut b = Builder {
        levels: &levels,
        default_memory: memory_mb_per_node,
        has_core,
        nodes: Vec::new(),
        next_pu: 0,
        next_package: 0,
        next_l3: 0,
        current_core: None,
    };
    let wrap = |m: String| p.err(0, m);
    let mut owner = None;
    for m in &machine_memory {
        let id = b.add_node(*m, None).map_err(wrap)?;
        owner.get_or_insert(id);
    }
    if !any_numa {
        owner = Some(b.add_node(None, None).map_err(wrap)?);
    }
    let owner = owner.unwrap_or(0);
    if b.nodes.is_empty() {
        // Nodes come only from levels below the machine: create them as we go, but the
        // machine-level owner must exist for PUs outside every NUMA object. A placeholder
        // that stays memory-less and CPU-less is removed below.
        b.add_node(Some(0), None).map_err(wrap)?;
    }
    let placeholder = machine_memory.is_empty() && any_numa;
    for _ in 0..levels[0].count {
        b.visit(0, None, None, owner).map_err(wrap)?;
    }
    let mut drafts = b.nodes;
    if placeholder {
        let first = drafts.remove(0);
        if !first.cores.is_empty() {
            return Err(p.err(0, "some PUs lie outside every NUMA node"));
        }
    }
    let nodes = drafts
        .into_iter()
        .enumerate()
        .map(|(i, d)| NodeSpec {
            id: NodeId(i as u32),
            package: d.package.unwrap_or(0),
            memory_mb: d.memory_mb,
            caches: l3_domains(&d.cores, &d.core_l3),
            cores: d.cores,
            distances: Vec::new(),
        })
        .collect();
    Ok(TopologySpec {
        nodes,
        offline_cpus: CpuSet::new(),
        remote_cpus: CpuSet::new(),
        gpus: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use crate::sets::{CpuId, CpuSet, NodeId};
    use crate::topology::{Topology, TopologyError};

    fn cs(s: &str) -> CpuSet {
        s.parse().unwrap()
    }

    #[test]
    fn dual_socket_two_numa_smt2() {
        let t = Topology::from_synthetic("pack:2 numa:2 core:4 pu:2", 8192).unwrap();
        assert_eq!(t.num_nodes(), 4);
        assert_eq!(t.cpus(), &cs("0-31"));
        assert_eq!(t.node(NodeId(0)).unwrap().cpus(), &cs("0-7"));
        assert_eq!(t.node(NodeId(3)).unwrap().cpus(), &cs("24-31"));
        assert_eq!(t.node(NodeId(1)).unwrap().package(), 0);
        assert_eq!(t.node(NodeId(2)).unwrap().package(), 1);
        assert_eq!(t.siblings(CpuId(5)), Some(&cs("4-5")));
        assert_eq!(t.node(NodeId(2)).unwrap().memory_mb(), 8192);
    }

    #[test]
    fn no_numa_level_means_one_node() {
        let t =
            Topology::from_synthetic("Package:1 L3Cache:1(size=8MB linesize=64) Core:4 PU:1", 100)
                .unwrap();
        assert_eq!(t.num_nodes(), 1);
        assert_eq!(t.cores().len(), 4);
        let t = Topology::from_synthetic("pu:3", 1).unwrap();
        assert_eq!(t.cores().len(), 3);
        let t = Topology::from_synthetic("core:2", 1).unwrap();
        assert_eq!(t.cpus(), &cs("0-1"));
    }

    #[test]
    fn knl_like_memory_children() {
        let t = Topology::from_synthetic(
            "package:1 group:4 [numa(memory=16GB)] [numa(memory=4GiB)] core:16 pu:4",
            1,
        )
        .unwrap();
        assert_eq!(t.num_nodes(), 8);
        let n0 = t.node(NodeId(0)).unwrap();
        let n1 = t.node(NodeId(1)).unwrap();
        assert_eq!(n0.cpus(), &cs("0-63"));
        assert_eq!(n0.memory_mb(), 16384);
        assert!(n1.is_memory_only());
        assert_eq!(n1.memory_mb(), 4096);
        assert_eq!(t.node(NodeId(2)).unwrap().cpus(), &cs("64-127"));
        assert_eq!(t.smt_width(), 4);
    }

    #[test]
    fn numa_above_package() {
        let t = Topology::from_synthetic("numa:2 pack:2 core:2 pu:1", 10).unwrap();
        assert_eq!(t.node(NodeId(1)).unwrap().cpus(), &cs("4-7"));
        assert_eq!(t.node(NodeId(1)).unwrap().package(), 2);
        // Machine-level memory child plus deeper NUMA levels: the machine node is
        // memory-only.
        let t = Topology::from_synthetic("[numa] pack:2 numa:1 core:2", 10).unwrap();
        assert_eq!(t.num_nodes(), 3);
        assert!(t.node(NodeId(0)).unwrap().is_memory_only());
        assert_eq!(t.node(NodeId(2)).unwrap().cpus(), &cs("2-3"));
    }

    #[test]
    fn rejects_bad_descriptions() {
        let cases = [
            ("", "empty description"),
            ("   ", "empty description"),
            ("pack:0 core:1", "must be a number"),
            ("pack:x", "must be a number"),
            ("pack", "needs a count"),
            ("banana:2", "unknown level"),
            ("core:2 pack:2", "only pu may follow"),
            ("pu:2 core:2", "nothing may follow"),
            ("pack:2 pack:2", "appears twice"),
            ("pack:2 core:2 pu:2(indexes=0,2,1,3)", "indexes"),
            ("numa:2(memory=lots) core:2", "bad memory size"),
            ("pack:2 [core] core:2", "only [numa]"),
            ("core:2 [numa] pu:2", "above the core level"),
            ("pack:2 (core:2", "unclosed"),
            ("pack:2) core:2", "unbalanced"),
            ("pack:65536 core:65536 pu:65536", "PUs; at most"),
            ("numa:2000 pu:1", "NUMA nodes"),
            ("[numa", "memory child must be written"),
            ("pack:2(x)y", "text after"),
        ];
        for (input, needle) in cases {
            let e = Topology::from_synthetic(input, 1).unwrap_err();
            assert!(
                matches!(e, TopologyError::Synthetic { .. }),
                "{input}: {e:?}"
            );
            assert!(e.to_string().contains(needle), "{input}: {e}");
        }
        let deep = "group:1 ".repeat(40);
        assert!(Topology::from_synthetic(&deep, 1).is_err());
    }
}
