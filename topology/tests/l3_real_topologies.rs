//! L3-aware placement on the shared real machines (EPYC 7763 and 9654 hwloc exports, read
//! with the same converter the agent probe uses), a property that L3 locality is never
//! worse than the node-only choice on any shared topology, and a sweep that every shared
//! hwloc XML gives agent flags that parse back through the NUMA convention (or one clear
//! error line).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use retz_placement::{
    AgentState, CachePolicy, CpuSet, JobRequest, Packer, Planner, PolicyConfig, SmtPolicy,
    Topology, TopologySpec,
};
use retz_proto::numa::{FreeResources, agent_flags, offer_topology, parse_agent_flags};
use retz_topology::hwloc::load_xml_file;

const EPYC: [&str; 2] = [
    "128amd64-2p8l3-epyc7763.xml",
    "384amd64-2p12l3-epyc9654.xml",
];

fn topologies_dir() -> PathBuf {
    match std::env::var_os("RETZ_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir).join("topologies"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/topologies"),
    }
}

/// Some exports carry no memory size: those nodes get 64 GiB so that jobs with memory fit.
fn with_memory(mut spec: TopologySpec) -> Topology {
    for n in &mut spec.nodes {
        if n.memory_mb == 0 && !n.cores.is_empty() {
            n.memory_mb = 65_536;
        }
    }
    Topology::new(spec).unwrap()
}

fn topology(name: &str) -> Arc<Topology> {
    let loaded = load_xml_file(&topologies_dir().join(name)).unwrap();
    Arc::new(with_memory(loaded.spec))
}

fn agent(t: &Arc<Topology>, id: usize, free: CpuSet) -> AgentState {
    let mem = t.nodes().iter().map(|n| n.memory_mb()).collect();
    AgentState::new(
        format!("a{id}"),
        format!("h{id}"),
        Arc::clone(t),
        free,
        mem,
        0,
        true,
    )
    .unwrap()
}

fn domains(t: &Topology, cpus: &CpuSet) -> BTreeSet<usize> {
    cpus.iter().filter_map(|c| t.cache_of(c)).collect()
}

fn job(id: u64, cpus: u32, smt: SmtPolicy, cache: CachePolicy) -> JobRequest {
    let mut j = JobRequest::new(id, cpus, 1024);
    j.smt = smt;
    j.cache = cache;
    j
}

#[test]
fn every_job_up_to_one_l3_on_an_idle_epyc_gets_one_l3() {
    for name in EPYC {
        let t = topology(name);
        let l3 = t.largest_split_cache();
        assert!(l3 >= 8, "{name}: L3 domains of {l3} CPUs");
        let agents = [AgentState::idle("a", "h", Arc::clone(&t), 0)];
        for k in 1..=l3 {
            for smt in [SmtPolicy::WholeCores, SmtPolicy::Pack] {
                let j = job(1, k, smt, CachePolicy::Pack);
                let plan = Packer::new(PolicyConfig::default()).plan(&agents, &[j], 0);
                let a = plan.assignment(1).expect("placed");
                assert_eq!(a.cpus.len() as u32, k);
                assert_eq!(
                    domains(&t, &a.cpus).len(),
                    1,
                    "{name} {k} {smt:?}: {}",
                    a.cpus
                );
            }
        }
    }
}

#[test]
fn a_sequence_of_half_l3_jobs_fills_l3_domains_one_by_one() {
    for name in EPYC {
        let t = topology(name);
        let half = t.largest_split_cache() / 2;
        let agents = [AgentState::idle("a", "h", Arc::clone(&t), 0)];
        let cfg = PolicyConfig::default();
        let mut planner = Planner::new(&agents, &cfg);
        let mut used: Vec<usize> = Vec::new();
        let n = t.cpus().len() as u32 / half;
        for i in 0..n {
            let j = job(u64::from(i), half, SmtPolicy::WholeCores, CachePolicy::Pack);
            let d = planner.decide(&j).unwrap();
            let doms = domains(&t, d.cpus());
            assert_eq!(doms.len(), 1, "{name} job {i}: {}", d.cpus());
            let dom = *doms.iter().next().unwrap();
            // Either the domain the previous job opened, or a new one once that is full.
            if i % 2 == 1 {
                assert_eq!(Some(&dom), used.last(), "{name} job {i}");
            } else {
                assert!(!used.contains(&dom), "{name} job {i}: domain {dom} reused");
                used.push(dom);
            }
            planner.commit(&j, d);
        }
        assert_eq!(used.len(), t.caches().len(), "{name}: every domain filled");
    }
}

#[test]
fn cache_spread_spreads_over_l3_domains() {
    for name in EPYC {
        let t = topology(name);
        let agents = [AgentState::idle("a", "h", Arc::clone(&t), 0)];
        let width = t.smt_width() as u32;
        let per_node = t.nodes()[0].num_caches();
        for cores in [2u32, 4, 6] {
            let j = job(1, cores * width, SmtPolicy::WholeCores, CachePolicy::Spread);
            let plan = Packer::new(PolicyConfig::default()).plan(&agents, &[j], 0);
            let a = plan.assignment(1).unwrap();
            assert_eq!(
                domains(&t, &a.cpus).len(),
                (cores as usize).min(per_node),
                "{name} {cores} cores: {}",
                a.cpus
            );
        }
        // The cluster-wide override spreads a job that asked for pack.
        let cfg = PolicyConfig {
            cache: Some(CachePolicy::Spread),
            ..PolicyConfig::default()
        };
        let j = job(1, 4 * width, SmtPolicy::WholeCores, CachePolicy::Pack);
        let a = Packer::new(cfg)
            .plan(&agents, &[j], 0)
            .assignment(1)
            .cloned();
        assert_eq!(domains(&t, &a.unwrap().cpus).len(), 4, "{name}");
    }
}

fn shared_xmls() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(topologies_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shared_xml_gives_agent_flags_that_parse_back_or_one_error_line() {
    let files = shared_xmls();
    assert!(files.len() >= 5, "{files:?}");
    let mut ok = 0;
    for f in &files {
        let loaded = match load_xml_file(f) {
            Ok(l) => l,
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    !msg.is_empty() && !msg.contains('\n'),
                    "{}: {msg:?}",
                    f.display()
                );
                continue;
            }
        };
        let flags = agent_flags(&loaded.spec, &FreeResources::whole_machine(&loaded.spec))
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let parsed = parse_agent_flags(&flags.to_flag_lines())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let offer = offer_topology(&parsed.resources, &parsed.attributes)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(offer.numa_aware, "{}", f.display());
        assert_eq!(offer.spec, loaded.spec, "{}", f.display());
        let t = Topology::new(offer.spec).unwrap();
        assert_eq!(&offer.free.cpuids, t.cpus(), "{}", f.display());
        ok += 1;
    }
    // The EPYC, DGX-2 and Intel exports at least convert.
    assert!(ok >= 5, "only {ok} of {} files converted", files.len());
}

/// The shared topologies that load, loaded once.
fn shared_topologies() -> &'static [Arc<Topology>] {
    static TOPOS: OnceLock<Vec<Arc<Topology>>> = OnceLock::new();
    TOPOS.get_or_init(|| {
        shared_xmls()
            .iter()
            .filter_map(|f| load_xml_file(f).ok())
            .map(|l| Arc::new(with_memory(l.spec)))
            .collect()
    })
}

fn span(agents: &[AgentState], cfg: &PolicyConfig, j: &JobRequest) -> Option<(usize, usize)> {
    let p = Planner::new(agents, cfg);
    let d = p.decide(j).ok()?;
    let t = agents[d.agent_index()].topology();
    Some((d.agent_index(), domains(t, d.cpus()).len()))
}

/// One agent per seed, each CPU of `t` used with probability `density`%.
fn random_agents(t: &Arc<Topology>, seeds: &[u64], density: u32) -> Vec<AgentState> {
    seeds
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let mut x = s | 1;
            let free: CpuSet = t
                .cpus()
                .iter()
                .filter(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 100) as u32 >= density
                })
                .collect();
            agent(t, i, free)
        })
        .collect()
}

/// The largest L3 domain of `t`, or its largest node when its caches are not split.
fn l3_size(t: &Topology) -> u32 {
    match t.largest_split_cache() {
        0 => t
            .nodes()
            .iter()
            .map(|n| n.cpus().len() as u32)
            .max()
            .unwrap(),
        n => n,
    }
}

/// 256 cases in CI (the suite runs on two cores); `PROPTEST_CASES=5000` for a deeper run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// For a job that fits one L3 domain of the machine, the L3-aware choice spans no more
    /// domains than the node-only choice (`cache_split = 0`), whatever is free.
    #[test]
    fn l3_locality_is_never_worse_than_node_only_scoring(
        which in 0usize..64,
        seeds in proptest::collection::vec(any::<u64>(), 3),
        density in 0u32..100,
        k_seed in any::<u32>(),
        pack_smt in any::<bool>(),
    ) {
        let topos = shared_topologies();
        let t = &topos[which % topos.len()];
        let k = 1 + k_seed % l3_size(t);
        // Three agents, each CPU used with probability `density`%.
        let agents = random_agents(t, &seeds, density);
        let smt = if pack_smt { SmtPolicy::Pack } else { SmtPolicy::WholeCores };
        let j = job(1, k, smt, CachePolicy::Pack);
        let mut old = PolicyConfig::default();
        old.weights.cache_split = 0.0;
        let new = span(&agents, &PolicyConfig::default(), &j);
        let before = span(&agents, &old, &j);
        // The same jobs are placeable either way.
        prop_assert_eq!(new.is_some(), before.is_some());
        if let (Some((_, n)), Some((_, b))) = (new, before) {
            prop_assert!(n <= b, "k={} smt={:?}: L3-aware spans {} domains, node-only {}", k, smt, n, b);
        }
    }

    /// With more agents than scored candidates (so the first [`PolicyConfig::candidates`]
    /// are not all there is), uneven densities and both cache policies: a packed job never
    /// spans more L3 domains than with node-only scoring, a spread job never fewer, and
    /// the same jobs are placeable.
    #[test]
    fn l3_scoring_is_never_worse_on_many_agents_for_pack_and_spread(
        which in 0usize..64,
        seeds in proptest::collection::vec(any::<u64>(), 1..24),
        density in 0u32..100,
        k_seed in any::<u32>(),
        pack_smt in any::<bool>(),
        spread in any::<bool>(),
    ) {
        let topos = shared_topologies();
        let t = &topos[which % topos.len()];
        let k = 1 + k_seed % l3_size(t);
        let agents = random_agents(t, &seeds, density);
        let smt = if pack_smt { SmtPolicy::Pack } else { SmtPolicy::WholeCores };
        let cache = if spread { CachePolicy::Spread } else { CachePolicy::Pack };
        let j = job(1, k, smt, cache);
        let mut old = PolicyConfig::default();
        old.weights.cache_split = 0.0;
        let new = span(&agents, &PolicyConfig::default(), &j);
        let before = span(&agents, &old, &j);
        prop_assert_eq!(new.is_some(), before.is_some());
        if let (Some((_, n)), Some((_, b))) = (new, before) {
            if spread {
                prop_assert!(n >= b, "k={} smt={:?}: spread L3-aware spans {}, node-only {}", k, smt, n, b);
            } else {
                prop_assert!(n <= b, "k={} smt={:?}: L3-aware spans {} domains, node-only {}", k, smt, n, b);
            }
        }
    }
}
