//! The fair queue at scale: 1,000,000 queued jobs in 10,000 request classes (100 users ×
//! 100 shapes) → `FairQueue::select` (the window of 10,000 jobs in fair-share order plus
//! the head of every class), then the planning cycle over 1,000 offers of 8-node agents.
//!
//! `fair_queue/select_1M_jobs_10k_classes`: the selection alone;
//! `fair_queue/cycle_1M_jobs_10k_classes_1000_agents`: the in-memory work of the server's
//! cycle (`Planner::on_offers` and `Planner::window`), in its order: the selection (and
//! the users it holds), the window's records looked up among those the server keeps
//! between cycles (its `hot` map: the records of the latest window, the rest being in the
//! store), `plan_cycle` (offers → agent states, requests, the packer, the launches with
//! their task infos and grants, the waiting jobs' reasons), the reasons published for
//! the API and recorded per class (`FairQueue::record_cycle`), and freeing the outcome.
//! Not in it: the store (the applications and running count read per cycle, the job
//! updates per launch), the ACCEPT/DECLINE calls (see `planner_cycle`), the metrics and
//! the agent book. Before the timed runs it prints the cycle's launches and, over a few
//! cycles, the median wall and on-CPU time (those runs include cloning the offers).
//! Its parts: `fair_queue/agent_states_1000_offers` (offers → placement agent states) and
//! `fair_queue/packer_10k_window_1000_agents` (the packer alone on the selected window).

use std::collections::BTreeMap;

// Only `cycle_times` is used here.
#[allow(dead_code)]
mod common;
use common::cycle_times;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use retz_placement::{AffinityPolicy, AgentState, JobRequest, Packer, ResourceRange, Starvation};
use retz_proto::api::{Application, Job};
use retz_proto::mesos::{AgentId, FrameworkId, Offer, OfferId};
use retz_proto::numa::{FreeResources, agent_flags, parse_agent_flags};
use retz_scheduler::config::PlannerSection;
use retz_scheduler::identity::LaunchUsers;
use retz_scheduler::offers::{TopologyCache, agent_state_shared};
use retz_scheduler::planner::ExecutorLocation;
use retz_scheduler::planner::cycle::{CycleContext, plan_cycle};
use retz_scheduler::planner::fairq::{Demand, FairQueue};
use retz_scheduler::planner::request::job_request;
use rustc_hash::{FxHashMap, FxHashSet};

const USERS: u64 = 100;
const SHAPES: u64 = 100;
const JOBS: u64 = 1_000_000;
const WINDOW: usize = 10_000;

fn offers(n: usize) -> Vec<Offer> {
    let spec = retz_placement::synthetic::parse("pack:2 numa:4 core:8 pu:2", 16_384).unwrap();
    let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
    let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
    (0..n)
        .map(|i| Offer {
            id: OfferId {
                value: format!("o{i}"),
            },
            framework_id: FrameworkId { value: "f".into() },
            agent_id: AgentId {
                value: format!("a{i}"),
            },
            hostname: format!("h{i}"),
            resources: parsed.resources.clone(),
            attributes: parsed.attributes.clone(),
            ..Offer::default()
        })
        .collect()
}

/// Job `id`: user `id % USERS`, shape `(id / USERS) % SHAPES` (CPUs 1..=100, the
/// larger ones more than any agent has; memory by shape).
fn job(id: u64) -> (String, Job) {
    let shape = (id / USERS) % SHAPES;
    let mut j = Job::new("app", "java -jar app.jar");
    j.id = id;
    j.resources.cpu = ResourceRange::exactly(1 + shape as u32);
    j.resources.mem_mb = ResourceRange::exactly(256 * (1 + shape % 4));
    j.affinity = Some(AffinityPolicy::NumaPrefer);
    j.priority = (id % 5) as i32 - 2;
    (format!("user{}", id % USERS), j)
}

/// The server's cycle as `bench` times it: see the module doc. Returns the outcome's
/// launches and pending jobs (and frees it).
fn cycle(
    env: &Env<'_>,
    q: &mut FairQueue,
    hot: &mut FxHashMap<u64, Job>,
    offers: Vec<Offer>,
    shown: &mut FxHashMap<u64, String>,
) -> (usize, usize) {
    let sel = q.select(0, WINDOW, env.s, env.running, env.total);
    q.set_held(&sel.held);
    // `Planner::window`: the records not held would be read from the store.
    let missing = sel.ids.iter().filter(|id| !hot.contains_key(id)).count();
    assert_eq!(missing, 0, "the window is the same every cycle");
    let wanted: FxHashSet<u64> = sel.ids.iter().copied().collect();
    hot.retain(|id, _| wanted.contains(id));
    let ids: Vec<u64> = sel
        .ids
        .into_iter()
        .filter(|id| hot.contains_key(id))
        .collect();
    // `Planner::on_offers`: the cycle borrows the records.
    let window: Vec<&Job> = ids.iter().filter_map(|id| hot.get(id)).collect();
    let ctx = CycleContext {
        queue: &window,
        apps: env.apps,
        cfg: env.cfg,
        executor: env.executor,
        framework_id: env.framework_id,
        users: env.users,
        room: usize::MAX,
        now: 0,
    };
    let out = plan_cycle(
        &mut Packer::new(retz_placement::PolicyConfig::default()),
        offers,
        &ctx,
    );
    shown.clear();
    shown.extend(out.pending.iter().cloned());
    q.record_cycle(&ids, &out.pending, &out.never);
    let launched = out.agents.iter().map(|a| a.launches.len()).sum();
    (launched, out.pending.len())
}

/// What a cycle reads besides the queue and the offers.
struct Env<'a> {
    s: &'a Starvation,
    running: &'a BTreeMap<String, Demand>,
    total: &'a Demand,
    apps: &'a BTreeMap<String, Application>,
    cfg: &'a PlannerSection,
    executor: &'a ExecutorLocation,
    framework_id: &'a FrameworkId,
    users: &'a LaunchUsers,
}

fn bench(c: &mut Criterion) {
    let mut q = FairQueue::default();
    for id in 1..=JOBS {
        let (owner, j) = job(id);
        q.insert(&owner, &j, 0);
    }
    assert_eq!(q.class_count(), (USERS * SHAPES) as usize);
    let s = Starvation::default();
    let total = Demand {
        cpus: 64_000.0,
        mem_mb: 16_384_000.0,
    };
    let running = BTreeMap::new();
    let offers = offers(1_000);
    let mut apps = BTreeMap::new();
    apps.insert("app".to_string(), Application::new("app", "k"));
    let cfg = PlannerSection::default();
    let loc = ExecutorLocation::parse("/usr/local/bin/retz-executor");
    let fid = FrameworkId { value: "f".into() };
    let users = LaunchUsers::default();
    let env = Env {
        s: &s,
        running: &running,
        total: &total,
        apps: &apps,
        cfg: &cfg,
        executor: &loc,
        framework_id: &fid,
        users: &users,
    };
    let sample = q.select(0, WINDOW, &s, &running, &total);
    // The server's records between cycles: those of the latest window.
    let mut hot: FxHashMap<u64, Job> = sample.ids.iter().map(|&id| (id, job(id).1)).collect();
    let mut shown = FxHashMap::default();
    let (launched, pending) = cycle(&env, &mut q, &mut hot, offers.clone(), &mut shown);
    println!(
        "fair_queue: {} jobs in {} classes, {} selected; a cycle launches {launched}, {pending} wait",
        q.len(),
        q.class_count(),
        sample.ids.len()
    );
    println!(
        "fair_queue: cycle, {}",
        cycle_times(5, || cycle(
            &env,
            &mut q,
            &mut hot,
            offers.clone(),
            &mut shown
        ))
    );
    let mut g = c.benchmark_group("fair_queue");
    g.sample_size(10);
    g.bench_function("select_1M_jobs_10k_classes", |b| {
        b.iter(|| q.select(0, WINDOW, &s, &running, &total).ids.len())
    });
    g.bench_function("cycle_1M_jobs_10k_classes_1000_agents", |b| {
        b.iter_batched(
            || offers.clone(),
            |o| cycle(&env, &mut q, &mut hot, o, &mut shown),
            BatchSize::LargeInput,
        );
    });
    // The parts of a cycle.
    g.bench_function("agent_states_1000_offers", |b| {
        b.iter(|| {
            let mut cache = TopologyCache::default();
            offers
                .iter()
                .filter_map(|o| agent_state_shared(o, &mut cache).ok())
                .count()
        })
    });
    // As the server's cycle builds them: agents of one layout share its topology.
    let mut layouts = TopologyCache::default();
    let states: Vec<AgentState> = offers
        .iter()
        .map(|o| agent_state_shared(o, &mut layouts).unwrap())
        .collect();
    let requests: Vec<JobRequest> = sample
        .ids
        .iter()
        .map(|id| job_request(&hot[id], apps.get("app"), &cfg, 0))
        .collect();
    g.bench_function("packer_10k_window_1000_agents", |b| {
        b.iter(|| {
            Packer::new(retz_placement::PolicyConfig::default())
                .plan_in_order(&states, &requests, 0)
                .assignments
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
