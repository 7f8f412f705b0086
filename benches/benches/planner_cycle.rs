//! The server's planning cycle end to end: 1,000 Mesos offers (8-node agents advertised by
//! the NUMA resource convention) and a window of 10,000 queued jobs →
//! `retz_scheduler::planner::cycle::plan_cycle` (offer conversion, placement, task and
//! executor infos with the task spec) → the ACCEPT/DECLINE calls encoded as protobuf.
//!
//! `planner_cycle/1000_offers_10000_jobs`: the whole cycle; `…/encode_calls`: only the
//! call encoding, for the split.

use std::collections::BTreeMap;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use prost::Message;
use retz_placement::{AffinityPolicy, Packer, ResourceRange};
use retz_proto::api::{Application, Job};
use retz_proto::mesos::{AgentId, FrameworkId, Offer, OfferId};
use retz_proto::numa::{FreeResources, agent_flags, parse_agent_flags};
use retz_scheduler::config::PlannerSection;
use retz_scheduler::mesos::calls;
use retz_scheduler::planner::ExecutorLocation;
use retz_scheduler::planner::cycle::{CycleContext, CycleOutcome, plan_cycle};

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

fn jobs(n: u64) -> Vec<Job> {
    let policies = [
        AffinityPolicy::NumaStrict,
        AffinityPolicy::NumaPrefer,
        AffinityPolicy::Spread,
    ];
    (1..=n)
        .map(|id| {
            let mut j = Job::new("app", "java -Dthreads=$RETZ_CPU -jar app.jar");
            j.id = id;
            j.resources.cpu = match id % 4 {
                0 => ResourceRange::exactly(4),
                1 => ResourceRange::between(2, 8),
                2 => ResourceRange::at_least(2),
                _ => ResourceRange::exactly(1),
            };
            j.resources.mem_mb = ResourceRange::exactly(1024);
            j.affinity = Some(policies[(id % 3) as usize]);
            j.priority = (id % 7) as i32 - 3;
            j
        })
        .collect()
}

fn encode(out: &CycleOutcome, fid: &FrameworkId) -> usize {
    let mut bytes = 0;
    for a in &out.agents {
        let call = if a.launches.is_empty() {
            calls::decline(fid, a.offer_ids.clone(), None)
        } else {
            calls::accept(
                fid,
                a.offer_ids.clone(),
                vec![calls::launch(
                    a.launches.iter().map(|l| l.task.clone()).collect(),
                )],
                None,
            )
        };
        bytes += call.encode_to_vec().len();
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let offers = offers(1_000);
    let queue = jobs(10_000);
    let mut apps = BTreeMap::new();
    apps.insert("app".to_string(), Application::new("app", "k"));
    let cfg = PlannerSection::default();
    let loc = ExecutorLocation::parse("/usr/local/bin/retz-executor");
    let fid = FrameworkId { value: "f".into() };
    let refs: Vec<&Job> = queue.iter().collect();
    let ctx = CycleContext {
        queue: &refs,
        apps: &apps,
        cfg: &cfg,
        executor: &loc,
        framework_id: &fid,
        users: &retz_scheduler::identity::LaunchUsers::default(),
        room: usize::MAX,
        now: 0,
    };
    let sample = plan_cycle(
        &mut Packer::new(retz_placement::PolicyConfig::default()),
        offers.clone(),
        &ctx,
    );
    let launched: usize = sample.agents.iter().map(|a| a.launches.len()).sum();
    println!(
        "planner_cycle: {launched} of {} jobs launched on {} agents, {} pending, {} bytes of calls",
        queue.len(),
        sample.agents.len(),
        sample.pending.len(),
        encode(&sample, &fid)
    );
    let mut g = c.benchmark_group("planner_cycle");
    g.sample_size(10);
    g.bench_function("1000_offers_10000_jobs", |b| {
        b.iter_batched(
            || offers.clone(),
            |o| {
                let out = plan_cycle(
                    &mut Packer::new(retz_placement::PolicyConfig::default()),
                    o,
                    &ctx,
                );
                encode(&out, &fid)
            },
            BatchSize::LargeInput,
        );
    });
    g.bench_function("encode_calls", |b| b.iter(|| encode(&sample, &fid)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
