//! hwloc's own test set (`tests/hwloc/xml/*.xml` of hwloc 2.9.0, fetched by
//! `scripts/lib/hwloc_testset.sh` into `$RETZ_HWLOC_TESTSET`; never committed here): every
//! file that hwloc loads gives agent flags that parse back to the same layout and advertise
//! exactly hwloc's usable CPUs and allowed nodes, or one clear error line naming the file;
//! never a panic. The same holds for a restricted copy of every file (half of its CPUs and
//! one of its NUMA nodes disallowed, as a cgroup cpuset does), whose flags must use only
//! the allowed CPUs and nodes. Prints a table of what each file gave.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use hwlocality::Topology as Hwloc;
use hwlocality::bitmap::BitmapIndex;
use hwlocality::object::types::ObjectType;
use hwlocality::topology::builder::{BuildFlags, TypeFilter};
use hwlocality::topology::editor::AllowSet;
use hwlocality::topology::export::xml::XMLExportFlags;
use retz_placement::sets::{CpuId, CpuSet, NodeId, NodeSet};
use retz_placement::topology::{Topology, TopologySpec};
use retz_proto::numa::{offer_topology, parse_agent_flags};
use retz_topology::cli::render;
use retz_topology::hwloc::LoadedTopology;
use retz_topology::{TopologyArgs, TopologyError, TopologySource, load};

fn name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn cpus_of(bitmap: &hwlocality::cpu::cpuset::CpuSet) -> CpuSet {
    bitmap
        .iter_set()
        .map(|i| CpuId(u32::try_from(usize::from(i)).unwrap()))
        .collect()
}

fn nodes_of(bitmap: &hwlocality::memory::nodeset::NodeSet) -> NodeSet {
    bitmap
        .iter_set()
        .map(|i| NodeId(u32::try_from(usize::from(i)).unwrap()))
        .collect()
}

/// What hwloc itself says may be used: its (online) CPUs that are allowed, its NUMA
/// nodes that are allowed.
fn hwloc_usable(hwloc: &Hwloc) -> (CpuSet, NodeSet) {
    let cpus = cpus_of(&hwloc.cpuset()).intersection(&cpus_of(&hwloc.allowed_cpuset()));
    let nodes = nodes_of(&hwloc.nodeset())
        .iter()
        .filter(|n| nodes_of(&hwloc.allowed_nodeset()).contains(*n))
        .collect();
    (cpus, nodes)
}

/// hwloc's view of one PU: its core and L3 cache (persistent indexes) and NUMA node.
struct PuFacts {
    core: BTreeMap<CpuId, u64>,
    l3: BTreeMap<CpuId, Option<u64>>,
    node_cpus: BTreeMap<NodeId, CpuSet>,
}

fn pu_facts(hwloc: &Hwloc) -> PuFacts {
    let mut facts = PuFacts {
        core: BTreeMap::new(),
        l3: BTreeMap::new(),
        node_cpus: BTreeMap::new(),
    };
    for pu in hwloc.objects_with_type(ObjectType::PU) {
        let Some(cpu) = pu.os_index().and_then(|i| u32::try_from(i).ok()) else {
            continue;
        };
        let core = pu.first_ancestor_with_type(ObjectType::Core).unwrap_or(pu);
        facts
            .core
            .insert(CpuId(cpu), core.global_persistent_index());
        let l3 = pu.first_ancestor_with_type(ObjectType::L3Cache);
        facts
            .l3
            .insert(CpuId(cpu), l3.map(|o| o.global_persistent_index()));
    }
    for node in hwloc.objects_with_type(ObjectType::NUMANode) {
        if let (Some(id), Some(set)) = (node.os_index(), node.cpuset()) {
            facts
                .node_cpus
                .insert(NodeId(u32::try_from(id).unwrap()), cpus_of(&set));
        }
    }
    facts
}

/// Whether `spec`'s agent flags are valid for the hwloc topology `hwloc`: they parse back
/// to `spec`, advertise exactly hwloc's usable CPUs and allowed nodes, group CPUs as
/// hwloc's cores and L3 caches do, and keep each CPU on its own node unless listed remote.
fn check_flags(spec: &TopologySpec, flags: &str, hwloc: &Hwloc) -> Result<String, String> {
    let lines: Vec<&str> = flags.lines().collect();
    if lines.len() != 2
        || !lines[0].starts_with("--resources='")
        || !lines[1].starts_with("--attributes='")
    {
        return Err(format!("not two flag lines: {flags:?}"));
    }
    let parsed = parse_agent_flags(flags).map_err(|e| format!("flags do not parse: {e}"))?;
    let offer = offer_topology(&parsed.resources, &parsed.attributes)
        .map_err(|e| format!("flags are not a valid offer: {e}"))?;
    if !offer.numa_aware {
        return Err("flags lack the NUMA attributes".into());
    }
    Topology::new(offer.spec.clone()).map_err(|e| format!("decoded layout invalid: {e}"))?;
    if &offer.spec != spec {
        return Err(format!(
            "flags decode to another layout:\n{:?}\nnot\n{spec:?}",
            offer.spec
        ));
    }
    let (usable, allowed_nodes) = hwloc_usable(hwloc);
    let advertised = &offer.free.cpuids;
    if advertised != &usable {
        return Err(format!(
            "cpuids {advertised} are not hwloc's usable CPUs {usable}"
        ));
    }
    if offer.free.cpus != advertised.len() as f64 {
        return Err(format!(
            "cpus:{} for {} cpuids",
            offer.free.cpus,
            advertised.len()
        ));
    }
    if !advertised.is_disjoint(&spec.offline_cpus) {
        return Err(format!(
            "offline CPUs {} advertised",
            spec.offline_cpus.intersection(advertised)
        ));
    }
    let spec_nodes: NodeSet = spec.nodes.iter().map(|n| n.id).collect();
    if spec_nodes != allowed_nodes {
        return Err(format!(
            "nodes {spec_nodes} are not hwloc's allowed nodes {allowed_nodes}"
        ));
    }
    if let Some(gpu) = spec.gpus.iter().find(|g| !g.nodes.is_subset(&spec_nodes)) {
        return Err(format!(
            "GPU {} is local to nodes {} outside the layout",
            gpu.id, gpu.nodes
        ));
    }
    let facts = pu_facts(hwloc);
    for node in &spec.nodes {
        let local = facts.node_cpus.get(&node.id).cloned().unwrap_or_default();
        for core in &node.cores {
            let cores: Vec<_> = core.cpus.iter().map(|c| facts.core.get(&c)).collect();
            if cores.windows(2).any(|w| w[0] != w[1]) {
                return Err(format!("core {} spans hwloc cores", core.cpus));
            }
            let foreign = core.cpus.difference(&local);
            if !foreign.is_subset(&spec.remote_cpus) {
                return Err(format!(
                    "CPUs {foreign} on node {} are not local to it and not listed remote",
                    node.id
                ));
            }
        }
        for cache in &node.caches {
            let l3s: Vec<_> = cache.cpus.iter().map(|c| facts.l3.get(&c)).collect();
            if l3s.windows(2).any(|w| w[0] != w[1]) || l3s.first() == Some(&Some(&None)) {
                return Err(format!("L3 domain {} is not one hwloc L3", cache.cpus));
            }
        }
    }
    Ok(format!(
        "{} CPUs on {} nodes, {} L3 domains, {} remote, {} offline, {} GPUs",
        advertised.len(),
        spec.nodes.len(),
        spec.nodes.iter().map(|n| n.caches.len()).sum::<usize>(),
        spec.remote_cpus.len(),
        spec.offline_cpus.len(),
        spec.gpus.len()
    ))
}

/// What our code made of one topology source.
enum Outcome {
    /// Valid flags (a one-line description).
    Flags(String),
    /// A clear refusal (the error line).
    Refused(String),
    /// A bug: a panic, a multi-line or nameless error, or invalid flags.
    Bug(String),
}

fn agent_flags_args() -> TopologyArgs {
    TopologyArgs {
        agent_flags: true,
        ..TopologyArgs::default()
    }
}

/// Loads `source` the way `retz-executor topology --agent-flags` does and judges the
/// result against `hwloc` (the same document as hwloc itself loads it).
fn outcome(source: &TopologySource, must_name: &str, hwloc: &Hwloc) -> Outcome {
    let result = catch_unwind(AssertUnwindSafe(|| {
        load(source).and_then(|loaded: LoadedTopology| {
            render(&loaded, &agent_flags_args()).map(|text| (loaded.spec, text))
        })
    }));
    match result {
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Outcome::Bug(format!("panicked: {msg}"))
        }
        Ok(Err(e)) => refusal(&e, must_name),
        Ok(Ok((spec, flags))) => match check_flags(&spec, &flags, hwloc) {
            Ok(summary) => Outcome::Flags(summary),
            Err(why) => Outcome::Bug(format!("invalid flags: {why}")),
        },
    }
}

fn refusal(e: &TopologyError, must_name: &str) -> Outcome {
    let line = e.to_string();
    if line.contains('\n') || line.trim().is_empty() {
        Outcome::Bug(format!("error is not one line: {line:?}"))
    } else if !line.contains(must_name) {
        Outcome::Bug(format!("error does not name {must_name}: {line}"))
    } else {
        Outcome::Refused(line)
    }
}

fn index(id: u32) -> BitmapIndex {
    BitmapIndex::try_from(usize::try_from(id).unwrap()).unwrap()
}

/// `hwloc` restricted like a cgroup would: every other usable CPU and the first allowed
/// node that has CPUs (when another node stays) disallowed; exported as XML.
fn restricted_xml(path: &Path) -> Option<(String, CpuSet, NodeSet)> {
    let mut hwloc = Hwloc::builder()
        .with_flags(BuildFlags::INCLUDE_DISALLOWED)
        .ok()?
        .with_io_type_filter(TypeFilter::KeepAll)
        .ok()?
        .from_xml_file(path)
        .ok()?
        .build()
        .ok()?;
    let (usable, nodes) = hwloc_usable(&hwloc);
    let keep_cpus: CpuSet = usable.iter().step_by(2).collect();
    let facts = pu_facts(&hwloc);
    let with_cpus = nodes
        .iter()
        .find(|n| facts.node_cpus.get(n).is_some_and(|c| !c.is_empty()));
    let keep_nodes: NodeSet = match with_cpus {
        Some(drop) if nodes.len() > 1 => nodes.iter().filter(|&n| n != drop).collect(),
        _ => nodes,
    };
    let cpuset: hwlocality::cpu::cpuset::CpuSet = keep_cpus.iter().map(|c| index(c.0)).collect();
    let nodeset: hwlocality::memory::nodeset::NodeSet =
        keep_nodes.iter().map(|n| index(n.0)).collect();
    hwloc
        .edit(|editor| {
            editor.allow(AllowSet::Custom {
                cpuset: Some(&cpuset),
                nodeset: Some(&nodeset),
            })
        })
        .ok()?;
    let xml = hwloc.export_xml(XMLExportFlags::empty()).ok()?;
    let text: &str = xml.as_ref();
    Some((text.to_string(), keep_cpus, keep_nodes))
}

#[test]
fn every_file_of_hwlocs_test_set_gives_valid_flags_or_one_clear_error() {
    let Some(files) = retz_testkit::hwloc_testset() else {
        return;
    };
    let (mut flags, mut refused, mut hwloc_refused, mut bugs) = (0, 0, 0, Vec::new());
    let mut restricted = 0;
    for path in &files {
        let file = name(path);
        // hwloc 2.9 on its own, with its default flags: does it load the file at all?
        let plain = Hwloc::builder()
            .from_xml_file(path)
            .ok()
            .and_then(|b| b.build().ok());
        let Some(plain) = plain else {
            hwloc_refused += 1;
            match outcome(
                &TopologySource::XmlFile(path.clone()),
                &file,
                &Hwloc::new().unwrap(),
            ) {
                Outcome::Bug(why) => bugs.push(format!("{file}: {why}")),
                Outcome::Flags(_) => bugs.push(format!("{file}: hwloc refuses it, we did not")),
                Outcome::Refused(line) => println!("{file}: hwloc refuses it: {line}"),
            }
            continue;
        };
        match outcome(&TopologySource::XmlFile(path.clone()), &file, &plain) {
            Outcome::Flags(summary) => {
                flags += 1;
                println!("{file}: flags: {summary}");
            }
            Outcome::Refused(line) => {
                refused += 1;
                println!("{file}: refused: {line}");
            }
            Outcome::Bug(why) => bugs.push(format!("{file}: {why}")),
        }

        // The same machine behind a cgroup cpuset: only the allowed CPUs and nodes.
        let Some((xml, cpus, nodes)) = restricted_xml(path) else {
            bugs.push(format!("{file}: hwloc could not restrict and export it"));
            continue;
        };
        let hwloc = Hwloc::builder()
            .from_xml(&xml)
            .ok()
            .and_then(|b| b.build().ok())
            .expect("hwloc reloads its own export");
        match outcome(
            &TopologySource::XmlText(xml.clone()),
            "hwloc XML text",
            &hwloc,
        ) {
            Outcome::Flags(summary) => {
                restricted += 1;
                let spec = load(&TopologySource::XmlText(xml)).unwrap().spec;
                let used: CpuSet = spec
                    .nodes
                    .iter()
                    .flat_map(|n| &n.cores)
                    .fold(CpuSet::new(), |acc, c| acc.union(&c.cpus));
                let used_nodes: NodeSet = spec.nodes.iter().map(|n| n.id).collect();
                if !used.is_subset(&cpus) || !used_nodes.is_subset(&nodes) {
                    bugs.push(format!(
                        "{file} restricted to CPUs {cpus} nodes {nodes}: flags use CPUs {used} nodes {used_nodes}"
                    ));
                }
                println!("{file} restricted to CPUs {cpus}, nodes {nodes}: flags: {summary}");
            }
            Outcome::Refused(line) => println!("{file} restricted: refused: {line}"),
            Outcome::Bug(why) => bugs.push(format!("{file} restricted: {why}")),
        }
    }
    println!(
        "hwloc test set: {} files: {flags} gave flags, {refused} refused with one line, \
         {hwloc_refused} refused by hwloc itself; {restricted} restricted copies gave flags",
        files.len()
    );
    assert!(bugs.is_empty(), "{}", bugs.join("\n"));
    assert!(flags > 0, "no file of the set gave flags");
}

#[test]
fn a_damaged_copy_of_every_file_is_one_clear_error_line() {
    let Some(files) = retz_testkit::hwloc_testset() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("retz-hwloc-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut bugs = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        // Cut inside the document: hwloc's parser must refuse it, and so must we.
        let cut = text.len() / 2;
        let cut = (cut..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap();
        let damaged = dir.join(name(path));
        std::fs::write(&damaged, &text[..cut]).unwrap();
        let file = damaged.display().to_string();
        let result = catch_unwind(AssertUnwindSafe(|| {
            load(&TopologySource::XmlFile(damaged.clone()))
        }));
        match result {
            Err(_) => bugs.push(format!("{file}: panicked")),
            Ok(Ok(_)) => bugs.push(format!("{file}: half a document was accepted")),
            Ok(Err(e)) => match refusal(&e, &file) {
                Outcome::Refused(line) => assert!(
                    matches!(e, TopologyError::InvalidXml { .. })
                        && line.contains("HWLOC_XML_VERBOSE"),
                    "{line}"
                ),
                Outcome::Bug(why) | Outcome::Flags(why) => bugs.push(format!("{file}: {why}")),
            },
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(bugs.is_empty(), "{}", bugs.join("\n"));
}
