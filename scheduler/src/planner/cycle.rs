//! One planning cycle over a batch of offers: pure, no I/O.
//!
//! [`plan_cycle`] groups the offers by agent (an agent with several offers is planned as
//! one machine and accepted with all of them), turns each into a placement agent state
//! (the NUMA resource convention; offers without it are counts-only agents), runs the
//! packer over the queue window, and decides per agent: LAUNCH what was placed (ACCEPT
//! with every offer of the agent), DECLINE the rest. Jobs whose application is gone are
//! reported so the caller can end them; jobs left waiting carry the packer's reason.

use std::collections::BTreeMap;

use retz_placement::{JobRequest, Packer};
use retz_proto::api::{Application, Grant, Job};
use retz_proto::mesos::{FrameworkId, Offer, OfferId, TaskInfo};

use super::request::job_request;
use super::task::{ExecutorLocation, agent_base, executor_info, grant, task_info};
use crate::config::PlannerSection;
use crate::offers::agent_state;

/// The offers of one agent, merged.
#[derive(Clone, Debug)]
pub struct AgentOffers {
    /// Every offer id of the agent in this batch.
    pub offer_ids: Vec<OfferId>,
    /// One offer carrying all their resources (for conversion and task resources).
    pub merged: Offer,
}

/// Groups `offers` by agent, merging resources of the same agent.
pub fn group_offers(offers: Vec<Offer>) -> Vec<AgentOffers> {
    let mut by_agent: BTreeMap<String, AgentOffers> = BTreeMap::new();
    for offer in offers {
        match by_agent.get_mut(&offer.agent_id.value) {
            Some(a) => {
                a.offer_ids.push(offer.id.clone());
                a.merged.resources.extend(offer.resources);
            }
            None => {
                by_agent.insert(
                    offer.agent_id.value.clone(),
                    AgentOffers {
                        offer_ids: vec![offer.id.clone()],
                        merged: offer,
                    },
                );
            }
        }
    }
    by_agent.into_values().collect()
}

/// One task to launch.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The job.
    pub job_id: u64,
    /// Its attempt number (task ids carry it).
    pub attempt: u32,
    /// The task.
    pub task: TaskInfo,
    /// What it was granted.
    pub grant: Grant,
    /// The agent's `/files` base URL, if the offer said.
    pub agent_base: Option<String>,
    /// Whether every CPU sits on one NUMA node.
    pub numa_local: bool,
}

/// What to do with one agent's offers.
#[derive(Clone, Debug)]
pub struct AgentDecision {
    /// The offers (accepted together).
    pub offer_ids: Vec<OfferId>,
    /// The tasks; empty means DECLINE.
    pub launches: Vec<Launch>,
}

/// The outcome of a cycle.
#[derive(Clone, Debug, Default)]
pub struct CycleOutcome {
    /// Per agent: accept with launches, or decline.
    pub agents: Vec<AgentDecision>,
    /// Offers that break the NUMA convention, with why (declined).
    pub bad_offers: Vec<(OfferId, String)>,
    /// Queued jobs whose application no longer exists.
    pub orphans: Vec<u64>,
    /// Queued jobs left waiting, with the packer's reason.
    pub pending: Vec<(u64, String)>,
}

/// Inputs of a cycle besides the offers.
pub struct CycleContext<'a> {
    /// The queue window, in queue order.
    pub queue: &'a [Job],
    /// The applications by name.
    pub apps: &'a BTreeMap<String, Application>,
    /// Planner settings.
    pub cfg: &'a PlannerSection,
    /// Where agents find retz-executor.
    pub executor: &'a ExecutorLocation,
    /// The framework.
    pub framework_id: &'a FrameworkId,
    /// How many more jobs may start now (max_running minus running).
    pub room: usize,
    /// Now, Unix seconds.
    pub now: u64,
}

/// Plans `offers` for the queue of `ctx`.
pub fn plan_cycle(packer: &mut Packer, offers: Vec<Offer>, ctx: &CycleContext<'_>) -> CycleOutcome {
    let mut out = CycleOutcome::default();
    let mut agents = Vec::new();
    let mut states = Vec::new();
    for a in group_offers(offers) {
        match agent_state(&a.merged) {
            Ok(s) => {
                states.push(s);
                agents.push(a);
            }
            Err(e) => {
                for id in a.offer_ids {
                    out.bad_offers.push((id, e.to_string()));
                }
            }
        }
    }
    let mut requests: Vec<JobRequest> = Vec::new();
    let mut jobs: BTreeMap<u64, &Job> = BTreeMap::new();
    for job in ctx.queue {
        match ctx.apps.get(&job.appid) {
            Some(app) => {
                requests.push(job_request(job, Some(app), ctx.cfg, ctx.now));
                jobs.insert(job.id, job);
            }
            None => out.orphans.push(job.id),
        }
    }
    let plan = if states.is_empty() || requests.is_empty() || ctx.room == 0 {
        None
    } else {
        Some(packer.plan(&states, &requests, ctx.now))
    };
    // Agent id → position in `agents`, so each assignment finds its offer in O(log n).
    let agent_index: BTreeMap<&str, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.merged.agent_id.value.as_str(), i))
        .collect();
    let mut by_agent: BTreeMap<String, Vec<Launch>> = BTreeMap::new();
    if let Some(plan) = &plan {
        for asg in plan.assignments.iter().take(ctx.room) {
            let (Some(job), Some(agent)) = (
                jobs.get(&asg.job_id),
                agent_index.get(asg.agent_id.as_str()).map(|&i| &agents[i]),
            ) else {
                continue;
            };
            let Some(app) = ctx.apps.get(&job.appid) else {
                continue;
            };
            let executor = executor_info(app, ctx.executor, ctx.framework_id);
            let attempt = job.attempt + 1;
            by_agent
                .entry(agent.merged.agent_id.value.clone())
                .or_default()
                .push(Launch {
                    job_id: job.id,
                    attempt,
                    task: task_info(job, attempt, app, asg, &agent.merged, &executor),
                    grant: grant(asg),
                    agent_base: agent_base(&agent.merged),
                    numa_local: asg.cpu_nodes.len() <= 1,
                });
        }
        for p in &plan.pending {
            out.pending.push((p.job_id, p.reason.to_string()));
        }
        let launched: Vec<u64> = by_agent.values().flatten().map(|l| l.job_id).collect();
        for asg in plan.assignments.iter().skip(ctx.room) {
            if !launched.contains(&asg.job_id) {
                out.pending.push((
                    asg.job_id,
                    "the server's max_running limit is reached".into(),
                ));
            }
        }
    } else if ctx.room == 0 {
        for job in ctx.queue {
            out.pending
                .push((job.id, "the server's max_running limit is reached".into()));
        }
    }
    for a in agents {
        let launches = by_agent
            .remove(&a.merged.agent_id.value)
            .unwrap_or_default();
        out.agents.push(AgentDecision {
            offer_ids: a.offer_ids,
            launches,
        });
    }
    out
}

#[cfg(test)]
mod tests {
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
        let ctx = CycleContext {
            queue,
            apps: &apps,
            cfg: &cfg,
            executor: &loc,
            framework_id: &fid,
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
}
