//! One planning cycle over a batch of offers: pure, no I/O.
//!
//! [`plan_cycle`] groups the offers by agent (an agent with several offers is planned as
//! one machine and accepted with all of them), turns each into a placement agent state
//! (the NUMA resource convention; offers without it are counts-only agents), runs the
//! packer over the queue window, and decides per agent: LAUNCH what was placed (ACCEPT
//! with every offer of the agent), DECLINE the rest. Jobs whose application is gone are
//! reported so the caller can end them; jobs left waiting carry the packer's reason.
//!
//! Ports (`-ports N`) are handed out here, after placement, from each agent's offered
//! `ports` ranges ([`super::ports`]): lowest first, none twice in one cycle; a job the
//! agent cannot give its ports is not launched there (see [`plan_cycle`]).

use std::collections::{BTreeMap, BTreeSet};

use retz_placement::{AgentState, Assignment, JobRequest, Packer, Plan, PolicyConfig};
use retz_proto::api::{Application, Grant, Job};
use retz_proto::mesos::{FrameworkId, Offer, OfferId, TaskInfo};

use super::ports::PortPool;
use super::request::job_request;
use super::task::{ExecutorLocation, agent_base, executor_info, grant, task_info};
use crate::config::PlannerSection;
use crate::identity::LaunchUsers;
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
    /// The placement it came from (what it takes on the agent).
    pub assignment: Assignment,
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
    /// The placement state of each agent in `agents` (same order), before the launches.
    pub states: Vec<AgentState>,
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
    /// The Unix users of launches (executor, jobs).
    pub users: &'a LaunchUsers,
    /// How many more jobs may start now (max_running minus running).
    pub room: usize,
    /// Now, Unix seconds.
    pub now: u64,
}

/// Why a placed job is held back when the server runs all it may.
pub const MAX_RUNNING: &str = "the server's max_running limit is reached";

/// Plans `offers` for the queue of `ctx`.
///
/// Ports are not part of the placement model: a job placed on an agent that has too few
/// free ports left this cycle is not launched there; it is planned once more, against
/// the agents that still have ports (and what the first pass left of them), and waits
/// with "needs N ports, agent X offers M" if that fails too.
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
    let mut launcher = Launcher {
        ctx,
        jobs: &jobs,
        agents: &agents,
        agent_index: &agent_index,
        pools: agents
            .iter()
            .map(|a| PortPool::from_resources(&a.merged.resources))
            .collect(),
        by_agent: BTreeMap::new(),
        placed: Vec::new(),
        launched: BTreeSet::new(),
        pending: BTreeMap::new(),
        short_of_ports: Vec::new(),
    };
    if let Some(plan) = &plan {
        for p in &plan.pending {
            launcher.pending.insert(p.job_id, p.reason.to_string());
        }
        for asg in &plan.assignments {
            launcher.place(asg);
        }
        if !launcher.short_of_ports.is_empty() {
            let retry = launcher.retry_plan(&states, &requests, packer.config());
            for asg in &retry.assignments {
                launcher.place(asg);
            }
        }
    } else if ctx.room == 0 {
        for job in ctx.queue {
            launcher.pending.insert(job.id, MAX_RUNNING.into());
        }
    }
    let Launcher {
        mut by_agent,
        pending,
        ..
    } = launcher;
    out.pending = pending.into_iter().collect();
    out.states = states;
    for (i, a) in agents.into_iter().enumerate() {
        out.agents.push(AgentDecision {
            offer_ids: a.offer_ids,
            launches: by_agent.remove(&i).unwrap_or_default(),
        });
    }
    out
}

/// Turns assignments into launches, handing out ports and the room left.
struct Launcher<'c, 'a> {
    ctx: &'c CycleContext<'a>,
    jobs: &'c BTreeMap<u64, &'a Job>,
    agents: &'c [AgentOffers],
    agent_index: &'c BTreeMap<&'c str, usize>,
    /// Free ports per agent (same order as `agents`).
    pools: Vec<PortPool>,
    /// Launches per agent position.
    by_agent: BTreeMap<usize, Vec<Launch>>,
    /// What the launches take, per agent position (for the second pass).
    placed: Vec<(usize, Assignment)>,
    launched: BTreeSet<u64>,
    pending: BTreeMap<u64, String>,
    /// Jobs placed on an agent with too few free ports.
    short_of_ports: Vec<u64>,
}

impl Launcher<'_, '_> {
    /// Launches `asg` unless the server is full or the agent lacks ports (then the job
    /// waits with the reason).
    fn place(&mut self, asg: &Assignment) {
        let (Some(job), Some(&at)) = (
            self.jobs.get(&asg.job_id),
            self.agent_index.get(asg.agent_id.as_str()),
        ) else {
            return;
        };
        let Some(app) = self.ctx.apps.get(&job.appid) else {
            return;
        };
        if self.launched.contains(&job.id) {
            return;
        }
        if self.launched.len() >= self.ctx.room {
            self.pending.insert(job.id, MAX_RUNNING.into());
            return;
        }
        let agent = &self.agents[at];
        let want = job.resources.ports;
        let Some(ports) = self.pools[at].take(want) else {
            self.pending.insert(
                job.id,
                format!(
                    "needs {want} ports, agent {} ({}) offers {}",
                    agent.merged.agent_id.value,
                    agent.merged.hostname,
                    self.pools[at].free()
                ),
            );
            self.short_of_ports.push(job.id);
            return;
        };
        let users = self.ctx.users;
        let executor = executor_info(app, self.ctx.executor, self.ctx.framework_id, users);
        let attempt = job.attempt + 1;
        self.by_agent.entry(at).or_default().push(Launch {
            job_id: job.id,
            attempt,
            task: task_info(
                job,
                attempt,
                app,
                asg,
                &ports,
                &agent.merged,
                &executor,
                users,
            ),
            grant: grant(asg, &ports, users.job_user(app)),
            agent_base: agent_base(&agent.merged),
            numa_local: asg.cpu_nodes.len() <= 1,
            assignment: asg.clone(),
        });
        self.placed.push((at, asg.clone()));
        self.launched.insert(job.id);
        self.pending.remove(&job.id);
    }

    /// Plans the jobs that were short of ports once more, on what the launches left of
    /// the agents that still have enough ports for the smallest of them.
    fn retry_plan(
        &mut self,
        states: &[AgentState],
        requests: &[JobRequest],
        config: &PolicyConfig,
    ) -> Plan {
        let short: BTreeSet<u64> = std::mem::take(&mut self.short_of_ports)
            .into_iter()
            .collect();
        let least = short
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .map(|j| j.resources.ports)
            .min()
            .unwrap_or(0);
        let mut after: BTreeMap<usize, Option<AgentState>> = states
            .iter()
            .enumerate()
            .filter(|(at, _)| self.pools[*at].free() >= least)
            .map(|(at, state)| (at, Some(state.clone())))
            .collect();
        for (at, asg) in &self.placed {
            if let Some(slot) = after.get_mut(at)
                && slot.as_mut().is_some_and(|s| s.allocate(asg).is_err())
            {
                // Cannot happen for a plan of these states; leave such an agent out.
                *slot = None;
            }
        }
        let left: Vec<AgentState> = after.into_values().flatten().collect();
        let retry: Vec<JobRequest> = requests
            .iter()
            .filter(|r| short.contains(&r.job_id))
            .cloned()
            .collect();
        if left.is_empty() || retry.is_empty() {
            return Plan::default();
        }
        retz_placement::plan(&left, &retry, self.ctx.now, config)
    }
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
        let users = LaunchUsers::default();
        let ctx = CycleContext {
            queue,
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
            vec![(1, "needs 3 ports, agent a1 (a1) offers 2".to_string())]
        );
        // An agent offering no ports at all (none in the offer).
        let out = run(vec![plain_offer("o1", "a1", 4.0)], &queue, 10, true);
        assert!(out.agents[0].launches.is_empty());
        assert_eq!(out.pending[0].1, "needs 3 ports, agent a1 (a1) offers 0");
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
