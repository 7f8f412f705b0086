//! Tests of the planning cycle.
use super::*;
use retz_placement::{AffinityPolicy, PolicyConfig, ResourceRange};
use retz_proto::mesos::{AgentId, Resource, value};
use retz_proto::numa::{FreeResources, agent_flags, parse_agent_flags};

/// An offer of a whole 2-socket agent (4 CPUs per node) by the NUMA convention.
fn numa_offer(id: &str, agent: &str) -> Offer {
    let spec = retz_placement::synthetic::parse("pack:2 numa:1 core:4 pu:1", 2048).unwrap();
    let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
    let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
    Offer {
        id: OfferId { value: id.into() },
        framework_id: FrameworkId { value: "f".into() },
        agent_id: AgentId {
            value: agent.into(),
        },
        hostname: format!("{agent}.example"),
        resources: parsed.resources,
        attributes: parsed.attributes,
        ..Offer::default()
    }
}

fn plain_offer(id: &str, agent: &str, cpus: f64) -> Offer {
    let scalar = |name: &str, v: f64| Resource {
        name: name.into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: v }),
        ..Resource::default()
    };
    Offer {
        id: OfferId { value: id.into() },
        framework_id: FrameworkId { value: "f".into() },
        agent_id: AgentId {
            value: agent.into(),
        },
        hostname: agent.into(),
        resources: vec![scalar("cpus", cpus), scalar("mem", 4096.0)],
        ..Offer::default()
    }
}

fn job(id: u64, cpus: ResourceRange<u32>, policy: AffinityPolicy) -> Job {
    let mut j = Job::new("app", "echo $RETZ_CPU");
    j.id = id;
    j.resources.cpu = cpus;
    j.affinity = Some(policy);
    j
}

fn run(offers: Vec<Offer>, queue: &[Job], room: usize, with_app: bool) -> CycleOutcome {
    let mut apps = BTreeMap::new();
    if with_app {
        apps.insert("app".to_string(), Application::new("app", "k"));
    }
    let cfg = PlannerSection::default();
    let loc = ExecutorLocation::parse("/opt/retz-executor");
    let fid = FrameworkId { value: "f".into() };
    let users = LaunchUsers::default();
    let queue: Vec<&Job> = queue.iter().collect();
    let ctx = CycleContext {
        queue: &queue,
        apps: &apps,
        cfg: &cfg,
        executor: &loc,
        framework_id: &fid,
        users: &users,
        room,
        now: 0,
    };
    plan_cycle(&mut Packer::new(PolicyConfig::default()), offers, &ctx)
}

#[test]
fn a_strict_range_job_gets_cpus_of_one_node_and_the_task_says_so() {
    let queue = [job(
        1,
        ResourceRange::between(2, 4),
        AffinityPolicy::NumaStrict,
    )];
    let out = run(vec![numa_offer("o1", "a1")], &queue, 10, true);
    assert_eq!(out.agents.len(), 1);
    let l = &out.agents[0].launches[0];
    assert!(l.numa_local);
    assert!((2..=4).contains(&l.grant.cpu), "{:?}", l.grant);
    assert!(l.grant.pinned);
    assert_eq!(l.grant.numa_nodes.as_deref().map(|n| n.len()), Some(1));
    assert_eq!(l.task.task_id.value, "retz-app-id-1-1");
    let spec: TaskSpecView = serde_json::from_slice(l.task.data.as_ref().unwrap()).unwrap();
    assert_eq!(spec.cpus, l.grant.cpu);
    assert_eq!(spec.cpuset, l.grant.cpuset);
    let cpuids = l
        .task
        .resources
        .iter()
        .find(|r| r.name == "cpuids")
        .unwrap();
    let n: u64 = cpuids
        .ranges
        .as_ref()
        .unwrap()
        .range
        .iter()
        .map(|r| r.end - r.begin + 1)
        .sum();
    assert_eq!(n, u64::from(l.grant.cpu));
}

#[derive(serde::Deserialize)]
struct TaskSpecView {
    cpus: u32,
    cpuset: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
}

/// `offer` with a `ports` RANGES resource of `runs` added.
fn with_ports(mut offer: Offer, runs: &[(u64, u64)]) -> Offer {
    let mut ports = super::super::ports::ports_resource(runs);
    ports.role = Some("*".into());
    offer.resources.push(ports);
    offer
}

fn with_port_count(mut j: Job, n: u32) -> Job {
    j.resources.ports = n;
    j
}

fn task_ports(l: &Launch) -> Vec<(u64, u64)> {
    l.task
        .resources
        .iter()
        .filter(|r| r.name == "ports")
        .flat_map(|r| r.ranges.as_ref().unwrap().range.iter())
        .map(|r| (r.begin, r.end))
        .collect()
}

#[test]
fn jobs_get_distinct_ports_of_the_offer_in_grant_spec_and_resources() {
    let queue = [
        with_port_count(job(1, ResourceRange::exactly(1), AffinityPolicy::None), 2),
        with_port_count(job(2, ResourceRange::exactly(1), AffinityPolicy::None), 3),
        job(3, ResourceRange::exactly(1), AffinityPolicy::None),
    ];
    let offer = with_ports(
        plain_offer("o1", "a1", 4.0),
        &[(31000, 31001), (31003, 31010)],
    );
    let out = run(vec![offer], &queue, 10, true);
    let launches = &out.agents[0].launches;
    assert_eq!(launches.len(), 3, "{:?}", out.pending);
    let by_job = |id: u64| launches.iter().find(|l| l.job_id == id).unwrap();
    let (l1, l2, l3) = (by_job(1), by_job(2), by_job(3));
    assert_eq!(l1.grant.ports, vec![31000, 31001], "lowest first");
    assert_eq!(l2.grant.ports, vec![31003, 31004, 31005]);
    assert!(l3.grant.ports.is_empty());
    assert_eq!(task_ports(l1), vec![(31000, 31001)], "merged ranges");
    assert_eq!(task_ports(l2), vec![(31003, 31005)]);
    assert!(task_ports(l3).is_empty(), "no ports resource without ports");
    for l in [l1, l2, l3] {
        let spec: TaskSpecView = serde_json::from_slice(l.task.data.as_ref().unwrap()).unwrap();
        assert_eq!(spec.ports, l.grant.ports);
    }
    assert!(out.pending.is_empty());
}

#[test]
fn too_few_ports_keeps_the_job_queued_with_the_reason() {
    let queue = [with_port_count(
        job(1, ResourceRange::exactly(1), AffinityPolicy::None),
        3,
    )];
    let offer = with_ports(plain_offer("o1", "a1", 4.0), &[(31000, 31001)]);
    let out = run(vec![offer], &queue, 10, true);
    assert!(out.agents[0].launches.is_empty(), "declined");
    assert_eq!(
        out.pending,
        vec![(
            1,
            "needs 3 ports, the most any agent offers is 2".to_string()
        )]
    );
    // An agent offering no ports at all (none in the offer).
    let out = run(vec![plain_offer("o1", "a1", 4.0)], &queue, 10, true);
    assert!(out.agents[0].launches.is_empty());
    assert_eq!(
        out.pending[0].1,
        "needs 3 ports, the most any agent offers is 0"
    );
    assert!(out.never.contains(&1), "planned head only next time");
}

#[test]
fn a_job_short_of_ports_is_placed_on_another_agent_that_has_them() {
    let queue = [with_port_count(
        job(1, ResourceRange::exactly(2), AffinityPolicy::None),
        2,
    )];
    // Whichever agent the packer prefers, the job ends on the one with ports.
    for (first, second) in [(false, true), (true, false)] {
        let offer = |id: &str, agent: &str, ports: bool| {
            let o = plain_offer(id, agent, 4.0);
            if ports {
                with_ports(o, &[(31000, 31009)])
            } else {
                o
            }
        };
        let out = run(
            vec![offer("o1", "a1", first), offer("o2", "a2", second)],
            &queue,
            10,
            true,
        );
        let with = if first { "a1" } else { "a2" };
        let launched: Vec<(&str, &Launch)> = out
            .agents
            .iter()
            .zip(["a1", "a2"])
            .flat_map(|(d, a)| d.launches.iter().map(move |l| (a, l)))
            .collect();
        assert_eq!(launched.len(), 1, "{:?}", out.pending);
        assert_eq!(launched[0].0, with);
        assert_eq!(launched[0].1.grant.ports, vec![31000, 31001]);
        assert!(out.pending.is_empty(), "{:?}", out.pending);
    }
}

#[test]
fn the_second_pass_never_books_what_the_first_launched() {
    // a1 has no ports, a2 has; both have 4 CPUs. Job 1 (no ports) and job 2 (ports)
    // each want all 4 CPUs: job 2 can only run on a2, and only if job 1 is not there.
    let queue = [
        job(1, ResourceRange::exactly(4), AffinityPolicy::None),
        with_port_count(job(2, ResourceRange::exactly(4), AffinityPolicy::None), 1),
    ];
    for order in [["a1", "a2"], ["a2", "a1"]] {
        let offers = order
            .iter()
            .map(|&a| {
                let o = plain_offer(&format!("o-{a}"), a, 4.0);
                if a == "a2" {
                    with_ports(o, &[(31000, 31000)])
                } else {
                    o
                }
            })
            .collect();
        let out = run(offers, &queue, 10, true);
        for (d, _) in out.agents.iter().zip(["a1", "a2"]) {
            let cpus: u32 = d.launches.iter().map(|l| l.grant.cpu).sum();
            assert!(cpus <= 4, "an agent is overbooked: {d:?}");
        }
        let agent_of = |id: u64| {
            out.agents
                .iter()
                .find(|d| d.launches.iter().any(|l| l.job_id == id))
                .map(|d| d.launches[0].task.agent_id.value.clone())
        };
        if let Some(a) = agent_of(2) {
            assert_eq!(a, "a2");
            assert_eq!(agent_of(1).as_deref(), Some("a1"));
        } else {
            assert!(
                out.pending
                    .iter()
                    .any(|(id, r)| *id == 2 && r.contains("ports")),
                "{:?}",
                out.pending
            );
        }
    }
}

#[test]
fn a_job_short_of_ports_does_not_use_up_the_room() {
    let queue = [
        with_port_count(job(1, ResourceRange::exactly(1), AffinityPolicy::None), 5),
        with_port_count(job(2, ResourceRange::exactly(1), AffinityPolicy::None), 1),
    ];
    let offer = with_ports(plain_offer("o1", "a1", 4.0), &[(31000, 31001)]);
    let out = run(vec![offer], &queue, 1, true);
    let launches = &out.agents[0].launches;
    assert_eq!(launches.len(), 1);
    assert_eq!(launches[0].job_id, 2);
    assert_eq!(launches[0].grant.ports, vec![31000]);
    assert!(
        out.pending[0].1.starts_with("needs 5 ports"),
        "{:?}",
        out.pending
    );
}

#[test]
fn a_job_asking_more_ports_than_any_agent_takes_no_cpu_from_others() {
    // One free CPU; the ports job comes first in the queue order.
    let queue = [
        with_port_count(
            job(1, ResourceRange::exactly(1), AffinityPolicy::None),
            1_000_000,
        ),
        job(2, ResourceRange::exactly(1), AffinityPolicy::None),
    ];
    let offer = with_ports(plain_offer("o1", "a1", 1.0), &[(31000, 32000)]);
    let out = run(vec![offer], &queue, 10, true);
    let launched: Vec<u64> = out.agents[0].launches.iter().map(|l| l.job_id).collect();
    assert_eq!(launched, vec![2], "{:?}", out.pending);
    assert_eq!(
        out.pending,
        vec![(
            1,
            "needs 1000000 ports, the most any agent offers is 1001".to_string()
        )]
    );
}

#[test]
fn jobs_are_planned_in_the_order_given() {
    // Two 4-CPU jobs, one 4-CPU agent: the first of the queue runs, whatever its
    // priority (the fair queue already ordered them).
    let mut second = job(2, ResourceRange::exactly(4), AffinityPolicy::None);
    second.priority = -20;
    let queue = [
        job(1, ResourceRange::exactly(4), AffinityPolicy::None),
        second,
    ];
    let out = run(vec![plain_offer("o1", "a1", 4.0)], &queue, 10, true);
    let launched: Vec<u64> = out.agents[0].launches.iter().map(|l| l.job_id).collect();
    assert_eq!(launched, vec![1]);
}

#[test]
fn unplaced_offers_are_declined_and_waiting_jobs_say_why() {
    let queue = [job(
        1,
        ResourceRange::exactly(6),
        AffinityPolicy::NumaStrict,
    )];
    let out = run(vec![numa_offer("o1", "a1")], &queue, 10, true);
    assert!(
        out.agents[0].launches.is_empty(),
        "6 CPUs fit no 4-CPU node"
    );
    assert_eq!(out.pending.len(), 1);
    assert!(!out.pending[0].1.is_empty());
}

#[test]
fn several_offers_of_one_agent_are_planned_together() {
    let queue = [job(1, ResourceRange::exactly(3), AffinityPolicy::None)];
    let out = run(
        vec![plain_offer("o1", "a1", 2.0), plain_offer("o2", "a1", 2.0)],
        &queue,
        10,
        true,
    );
    assert_eq!(out.agents.len(), 1);
    assert_eq!(out.agents[0].offer_ids.len(), 2);
    assert_eq!(out.agents[0].launches.len(), 1);
    assert!(
        !out.agents[0].launches[0].grant.pinned,
        "plain offers never pin"
    );
}

#[test]
fn max_running_and_missing_apps_hold_jobs_back() {
    let queue = [
        job(1, ResourceRange::exactly(1), AffinityPolicy::NumaPrefer),
        job(2, ResourceRange::exactly(1), AffinityPolicy::NumaPrefer),
    ];
    let out = run(vec![numa_offer("o1", "a1")], &queue, 1, true);
    assert_eq!(out.agents[0].launches.len(), 1);
    assert!(out.pending.iter().any(|(_, r)| r.contains("max_running")));
    let out = run(vec![numa_offer("o1", "a1")], &queue, 0, true);
    assert!(out.agents[0].launches.is_empty());
    let out = run(vec![numa_offer("o1", "a1")], &queue, 10, false);
    assert_eq!(out.orphans, vec![1, 2]);
    assert!(out.agents[0].launches.is_empty());
}

mod shortcuts {
    //! The shortcuts of a cycle (shared topologies, one executor info per application)
    //! change nothing: the same offers and queue give the same outcome without them.
    use super::*;
    use proptest::prelude::*;

    /// An offer of agent `agent` with layout `layout` (three NUMA layouts and a plain
    /// one), with `ports` ports from 31000 (none when 0). `used` takes that many CPUs out
    /// of a NUMA offer's free ones (agents of one layout with different free resources);
    /// 7 adds a CPU id outside the layout instead (an offer to refuse).
    fn offer(i: usize, agent: u8, layout: u8, ports: u64, used: u8) -> Offer {
        let mut o = offer_without_ports(i, agent, layout);
        if let Some(r) = o.resources.iter_mut().find(|r| r.name == "cpuids")
            && let Some(ranges) = &mut r.ranges
        {
            let first = &mut ranges.range[0];
            if used == 7 {
                ranges.range.push(retz_proto::mesos::value::Range {
                    begin: 500,
                    end: 500,
                });
            } else {
                first.begin = (first.begin + u64::from(used)).min(first.end);
            }
        }
        if ports == 0 {
            o
        } else {
            with_ports(o, &[(31000, 30999 + ports)])
        }
    }

    fn offer_without_ports(i: usize, agent: u8, layout: u8) -> Offer {
        let (id, agent) = (format!("o{i}"), format!("a{agent}"));
        let synthetic = match layout % 4 {
            0 => "pack:2 numa:1 core:4 pu:1",
            1 => "pack:1 numa:2 core:2 pu:2",
            2 => "pack:2 numa:2 core:2 pu:1",
            _ => return plain_offer(&id, &agent, f64::from(2 + layout)),
        };
        let spec = retz_placement::synthetic::parse(synthetic, 1024).unwrap();
        let flags = agent_flags(&spec, &FreeResources::whole_machine(&spec)).unwrap();
        let parsed = parse_agent_flags(&flags.to_flag_lines()).unwrap();
        Offer {
            id: OfferId { value: id },
            framework_id: FrameworkId { value: "f".into() },
            agent_id: AgentId { value: agent },
            hostname: "h".into(),
            resources: parsed.resources,
            attributes: parsed.attributes,
            ..Offer::default()
        }
    }

    fn policy(p: u8) -> AffinityPolicy {
        [
            AffinityPolicy::None,
            AffinityPolicy::NumaPrefer,
            AffinityPolicy::NumaStrict,
            AffinityPolicy::Spread,
        ][usize::from(p % 4)]
    }

    proptest! {
        #[test]
        fn the_outcome_is_the_same_without_shortcuts(
            offers in prop::collection::vec((0u8..6, 0u8..8, 0u64..4, 0u8..8), 0..8),
            jobs in prop::collection::vec((1u32..10, 0u8..4, 0u64..3, 0u32..3), 0..24),
            room in 0usize..30,
        ) {
            let offers: Vec<Offer> = offers
                .iter()
                .enumerate()
                .map(|(i, &(agent, layout, ports, used))| offer(i, agent, layout, ports, used))
                .collect();
            let queue: Vec<Job> = jobs
                .iter()
                .enumerate()
                .map(|(i, &(cpus, p, mem, ports))| {
                    let mut j = job(i as u64 + 1, ResourceRange::exactly(cpus), policy(p));
                    j.resources.mem_mb = ResourceRange::exactly(mem * 300);
                    with_port_count(j, ports)
                })
                .collect();
            let mut apps = BTreeMap::new();
            apps.insert("app".to_string(), Application::new("app", "k"));
            let cfg = PlannerSection::default();
            let loc = ExecutorLocation::parse("/opt/retz-executor");
            let fid = FrameworkId { value: "f".into() };
            let users = LaunchUsers::default();
            let queue: Vec<&Job> = queue.iter().collect();
            let ctx = CycleContext {
                queue: &queue,
                apps: &apps,
                cfg: &cfg,
                executor: &loc,
                framework_id: &fid,
                users: &users,
                room,
                now: 0,
            };
            let packer = || Packer::new(PolicyConfig::default());
            let fast = plan_cycle_with(&mut packer(), offers.clone(), &ctx, Shortcuts::ALL);
            let slow = plan_cycle_with(&mut packer(), offers, &ctx, Shortcuts::NONE);
            prop_assert_eq!(format!("{fast:?}"), format!("{slow:?}"));
        }
    }
}

#[test]
fn reason_texts_are_each_reasons_display() {
    // More distinct reasons than are kept, repeated and interleaved.
    let reasons: Vec<PendingReason> = (0..20u32)
        .map(|i| PendingReason::OneAgent {
            cpus: i % 11,
            mem_mb: 64,
            largest: None,
            cpu_fit_most_mem: None,
        })
        .chain([PendingReason::NoAgents, PendingReason::DuplicateJobId])
        .collect();
    let mut texts = ReasonTexts::default();
    for r in reasons.iter().chain(reasons.iter().rev()).chain(&reasons) {
        assert_eq!(texts.text(r), r.to_string(), "{r:?}");
    }
}
