//! L3-aware choice among agents and nodes: a job that fits one L3 domain goes where a
//! domain has room (inside the node the tightest one, so whole free domains stay whole;
//! across nodes by node fit, or by per-L3 fit with `cache_fragmentation`), a larger job goes
//! where whole domains hold it, `cache: spread` goes where it reaches the most domains, and
//! `cache_split = 0` gives the node-only choice back.

use std::collections::BTreeSet;
use std::sync::Arc;

use retz_placement::{
    AgentState, CachePolicy, CpuSet, JobRequest, Planner, PolicyConfig, SmtPolicy, Topology,
};

/// One node, four L3 domains of four 2-PU cores: domain d = CPUs 8d..8d+7.
fn four_domains() -> Arc<Topology> {
    Arc::new(Topology::from_synthetic("pack:1 numa:1 l3:4 core:4 pu:2", 65_536).unwrap())
}

fn agent(id: &str, t: &Arc<Topology>, free: &str) -> AgentState {
    let free: CpuSet = free.parse().unwrap();
    let mem = t.nodes().iter().map(|n| n.memory_mb()).collect();
    AgentState::new(id, id, Arc::clone(t), free, mem, 0, true).unwrap()
}

fn job(cpus: u32) -> JobRequest {
    JobRequest::new(1, cpus, 1024)
}

/// (agent id, CPUs, L3 domains spanned) of the decision.
fn decide(agents: &[AgentState], cfg: &PolicyConfig, j: &JobRequest) -> (String, String, usize) {
    let p = Planner::new(agents, cfg);
    let d = p.decide(j).unwrap();
    let a = &agents[d.agent_index()];
    let doms: BTreeSet<usize> = d
        .cpus()
        .iter()
        .filter_map(|c| a.topology().cache_of(c))
        .collect();
    (a.agent_id().to_string(), d.cpus().to_string(), doms.len())
}

fn node_only() -> PolicyConfig {
    let mut c = PolicyConfig::default();
    c.weights.cache_split = 0.0;
    c
}

#[test]
fn a_small_job_goes_to_the_agent_whose_domain_has_room() {
    let t = four_domains();
    // Agent a is fuller (best fit by count) but every domain has 6 of 8 CPUs used: no
    // domain holds 4 CPUs. Agent b has a whole domain free.
    let agents = [
        agent("a", &t, "6-7,14-15,22-23,30-31"),
        agent("b", &t, "0-7,10-15,18-23,26-31"),
    ];
    let (a, cpus, doms) = decide(&agents, &PolicyConfig::default(), &job(4));
    assert_eq!((a.as_str(), doms), ("b", 1), "{cpus}");
    // The node-only choice takes the fullest agent and splits the job.
    let (a, cpus, doms) = decide(&agents, &node_only(), &job(4));
    assert_eq!((a.as_str(), doms), ("a", 2), "{cpus}");
}

#[test]
fn a_partly_used_domain_that_fits_is_used_before_a_whole_free_one() {
    let t = four_domains();
    // Agent a: idle. Agent b: domain 0 has 2 cores used, the rest idle; both have room.
    // b's domain 0 (4 CPUs left) holds a 4-CPU job exactly; no whole domain is broken.
    let agents = [agent("a", &t, "0-31"), agent("b", &t, "4-31")];
    let (a, cpus, doms) = decide(&agents, &PolicyConfig::default(), &job(4));
    assert_eq!((a.as_str(), cpus.as_str(), doms), ("b", "4-7", 1));
    // A job of a whole domain on b takes a whole free domain, not 4 + 4.
    let (a, cpus, doms) = decide(&agents, &PolicyConfig::default(), &job(8));
    assert_eq!(doms, 1, "{a}: {cpus}");
}

#[test]
fn the_tightest_domain_across_agents_follows_node_fit_then_cache_fragmentation() {
    let t = four_domains();
    // Agent a: one core of domain 0 used (6 left there). Agent b: three cores of domain 0
    // used (2 left), domain 1 has two cores used (4 left). A 4-CPU job fits exactly in
    // b's domain 1 and leaves a's domain 0 and every whole domain alone.
    let agents = [agent("a", &t, "2-31"), agent("b", &t, "6-7,12-31")];
    let (a, cpus, doms) = decide(&agents, &PolicyConfig::default(), &job(4));
    assert_eq!((a.as_str(), cpus.as_str(), doms), ("b", "12-15", 1));
    // Agent a is the fuller one (node best fit), but its tightest domain keeps 2 CPUs
    // free where b's domain 0 holds the job exactly: by default the node fit decides,
    // with `cache_fragmentation` the per-L3 fit does. One domain either way.
    let agents = [agent("a", &t, "2-15"), agent("b", &t, "4-31")];
    let (a, cpus, doms) = decide(&agents, &PolicyConfig::default(), &job(4));
    assert_eq!((a.as_str(), cpus.as_str(), doms), ("a", "2-5", 1));
    let mut per_l3 = PolicyConfig::default();
    per_l3.weights.cache_fragmentation = 4.0;
    let (a, cpus, doms) = decide(&agents, &per_l3, &job(4));
    assert_eq!((a.as_str(), cpus.as_str(), doms), ("b", "4-7", 1));
}

#[test]
fn a_larger_job_goes_where_whole_domains_hold_it() {
    let t = four_domains();
    // 16 CPUs = two domains. Agent a (fuller) has 20 free CPUs but only one whole domain;
    // agent b has 24 free in three whole domains.
    let agents = [
        agent("a", &t, "4-7,12-15,16-23,28-31"),
        agent("b", &t, "0-7,16-31"),
    ];
    let (a, cpus, doms) = decide(&agents, &PolicyConfig::default(), &job(16));
    assert_eq!((a.as_str(), doms), ("b", 2), "{cpus}");
    let (a, _, doms) = decide(&agents, &node_only(), &job(16));
    assert_eq!(a, "a");
    assert!(doms > 2);
}

#[test]
fn cache_spread_goes_where_it_reaches_the_most_domains() {
    let t = four_domains();
    // Agent a (fuller): only domains 0 and 1 have free cores. Agent b: all four domains do.
    let agents = [
        agent("a", &t, "0-15"),
        agent("b", &t, "0-5,8-13,16-21,24-29"),
    ];
    let mut j = job(8);
    j.cache = CachePolicy::Spread;
    let (a, cpus, doms) = decide(&agents, &PolicyConfig::default(), &j);
    assert_eq!((a.as_str(), doms), ("b", 4), "{cpus}");
    // The cluster-wide override does the same for a job that asked for pack.
    let cfg = PolicyConfig {
        cache: Some(CachePolicy::Spread),
        ..PolicyConfig::default()
    };
    let (a, _, doms) = decide(&agents, &cfg, &job(8));
    assert_eq!((a.as_str(), doms), ("b", 4));
    // And pack stays on the fuller agent, in one domain.
    let (a, _, doms) = decide(&agents, &PolicyConfig::default(), &job(8));
    assert_eq!((a.as_str(), doms), ("a", 1));
}

#[test]
fn smt_pack_keeps_partly_used_cores_inside_the_chosen_domain() {
    let t = four_domains();
    // CPU 0 is used, so core {0,1} of domain 0 is partly used (7 free there); domain 1
    // has two whole cores free (4 CPUs). A 3-CPU SMT-pack job fits the tightest domain,
    // domain 1, and takes all three there: not CPU 1 of the partly used core first.
    let agents = [agent("a", &t, "1-7,12-31")];
    let mut j = job(3);
    j.smt = SmtPolicy::Pack;
    let (_, cpus, doms) = decide(&agents, &PolicyConfig::default(), &j);
    assert_eq!((cpus.as_str(), doms), ("12-14", 1));
    // Inside the chosen domain, the partly used core still comes first: CPU 12 is used
    // too, domain 1 (3 free) is now the tightest and its CPU 13 is taken.
    let agents = [agent("a", &t, "1-7,13-31")];
    let (_, cpus, doms) = decide(&agents, &PolicyConfig::default(), &j);
    assert_eq!((cpus.as_str(), doms), ("13-15", 1));
}

#[test]
fn machines_without_split_caches_are_scored_as_before() {
    let t = Arc::new(Topology::from_synthetic("pack:2 numa:1 core:8 pu:2", 65_536).unwrap());
    let agents = [agent("a", &t, "0-31"), agent("b", &t, "2-31")];
    for c in [1, 4, 8, 16, 20] {
        let new = decide(&agents, &PolicyConfig::default(), &job(c));
        let old = decide(&agents, &node_only(), &job(c));
        assert_eq!(new, old, "{c} CPUs");
    }
}

#[test]
fn a_whole_core_job_that_fits_one_domain_only_with_a_half_free_core_is_scored_as_one() {
    let t = four_domains();
    // 3 CPUs, whole cores. Agent a: domain 0 has the whole core {0,1} and the half-free
    // cores 2 and 4, nothing else is free: no domain has 3 PUs of whole cores, but the
    // selection takes {0,1} and CPU 2, one domain. Agent b: one whole core in each of
    // three domains, so the job spans two. Scoring has to see a's real layout (an
    // estimate counting domains with free CPUs saw three there and chose b).
    let agents = [agent("a", &t, "0-2,4"), agent("b", &t, "0-1,8-9,16-17")];
    let mut j = job(3);
    j.smt = SmtPolicy::WholeCores;
    let (a, cpus, doms) = decide(&agents, &PolicyConfig::default(), &j);
    assert_eq!((a.as_str(), doms), ("a", 1), "{cpus}");
    // Node-only scoring prefers b (whole cores, no SMT sharing) and splits the job.
    let (a, cpus, doms) = decide(&agents, &node_only(), &j);
    assert_eq!((a.as_str(), doms), ("b", 2), "{cpus}");
}
