//! One planning cycle over a batch of offers: pure, no I/O.
//!
//! [`plan_cycle`] groups the offers by agent (an agent with several offers is planned as
//! one machine and accepted with all of them), turns each into a placement agent state
//! (the NUMA resource convention; offers without it are counts-only agents), runs the
//! packer over the queue window, and decides per agent: LAUNCH what was placed (ACCEPT
//! with every offer of the agent), DECLINE the rest. Jobs whose application is gone are
//! reported so the caller can end them; jobs left waiting carry the packer's reason.
//!
//! The jobs are planned in the order given (the fair queue's, [`super::fairq`]). A job
//! asking more ports than any agent of the batch offers is not planned at all (it would
//! take CPUs it cannot use); it waits with that reason.
//!
//! Ports (`-ports N`) are handed out here, after placement, from each agent's offered
//! `ports` ranges ([`super::ports`]): lowest first, none twice in one cycle; a job the
//! agent cannot give its ports is not launched there (see [`plan_cycle`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use retz_placement::{
    AgentState, Assignment, JobRequest, Packer, PendingReason, Plan, PolicyConfig,
};
use retz_proto::api::{Application, Grant, Job};
use retz_proto::mesos::{ExecutorInfo, FrameworkId, Offer, OfferId, TaskInfo};
use rustc_hash::{FxHashMap, FxHashSet};

use super::ports::PortPool;
use super::request::job_request;
use super::task::{ExecutorLocation, agent_base, executor_info, grant, task_info};
use crate::config::PlannerSection;
use crate::identity::LaunchUsers;
use crate::offers::{TopologyCache, agent_state, agent_state_shared};

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
    /// Of `pending`, the jobs no agent of this cycle could hold even idle (too big,
    /// invalid, more ports than any agent offers): their class is planned head only.
    pub never: BTreeSet<u64>,
    /// The placement state of each agent in `agents` (same order), before the launches.
    pub states: Vec<AgentState>,
}

/// Inputs of a cycle besides the offers.
pub struct CycleContext<'a> {
    /// The jobs to consider, in planning (fair-share) order (borrowed: the server keeps
    /// their records between cycles).
    pub queue: &'a [&'a Job],
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
    plan_cycle_with(packer, offers, ctx, Shortcuts::ALL)
}

/// The work a cycle shares between agents and jobs instead of redoing it; the outcome is
/// the same with or without (tests compare both, [`Shortcuts::NONE`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shortcuts {
    /// Agents of one layout share one topology ([`TopologyCache`]).
    share_topologies: bool,
    /// One executor info per application, not per launch.
    executor_per_app: bool,
}

impl Shortcuts {
    const ALL: Shortcuts = Shortcuts {
        share_topologies: true,
        executor_per_app: true,
    };
    #[cfg(test)]
    pub(crate) const NONE: Shortcuts = Shortcuts {
        share_topologies: false,
        executor_per_app: false,
    };
}

pub(crate) fn plan_cycle_with(
    packer: &mut Packer,
    offers: Vec<Offer>,
    ctx: &CycleContext<'_>,
    shortcuts: Shortcuts,
) -> CycleOutcome {
    let mut out = CycleOutcome::default();
    let mut agents = Vec::new();
    let mut states = Vec::new();
    let mut topologies = TopologyCache::default();
    for a in group_offers(offers) {
        let state = if shortcuts.share_topologies {
            agent_state_shared(&a.merged, &mut topologies)
        } else {
            agent_state(&a.merged)
        };
        match state {
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
    let mut requests: Vec<JobRequest> = Vec::with_capacity(ctx.queue.len());
    let mut jobs: FxHashMap<u64, &Job> =
        FxHashMap::with_capacity_and_hasher(ctx.queue.len(), Default::default());
    // Free ports per agent (same order as `agents`).
    let pools: Vec<PortPool> = agents
        .iter()
        .map(|a| PortPool::from_resources(&a.merged.resources))
        .collect();
    // Ports are not in the placement model: a job asking more than any agent of the
    // batch offers would take CPUs in the plan it can never use there.
    let most_ports = pools.iter().map(PortPool::free).max();
    for &job in ctx.queue {
        match ctx.apps.get(&job.appid) {
            Some(_) if most_ports.is_some_and(|m| job.resources.ports > m) => {
                out.pending.push((
                    job.id,
                    format!(
                        "needs {} ports, the most any agent offers is {}",
                        job.resources.ports,
                        most_ports.unwrap_or(0)
                    ),
                ));
                out.never.insert(job.id);
            }
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
        Some(packer.plan_in_order(&states, &requests, ctx.now))
    };
    // Agent id → position in `agents`, so each assignment finds its offer at once.
    let agent_index: HashMap<&str, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.merged.agent_id.value.as_str(), i))
        .collect();
    let mut launcher = Launcher {
        ctx,
        jobs: &jobs,
        agents: &agents,
        agent_index: &agent_index,
        pools,
        by_agent: std::iter::repeat_with(Vec::new)
            .take(agents.len())
            .collect(),
        executors: shortcuts.executor_per_app.then(BTreeMap::new),
        launched: FxHashSet::default(),
        pending: BTreeMap::new(),
        short_of_ports: Vec::new(),
    };
    if let Some(plan) = plan {
        let mut texts = ReasonTexts::default();
        for p in &plan.pending {
            launcher.pending.insert(p.job_id, texts.text(&p.reason));
            if matches!(
                p.reason,
                PendingReason::NeverFits { .. } | PendingReason::InvalidRequest { .. }
            ) {
                out.never.insert(p.job_id);
            }
        }
        // Each agent's launches in one allocation (a launch is large to move).
        let mut placed = vec![0usize; agents.len()];
        for asg in &plan.assignments {
            if let Some(&at) = agent_index.get(asg.agent_id.as_str()) {
                placed[at] += 1;
            }
        }
        for (launches, n) in launcher.by_agent.iter_mut().zip(placed) {
            launches.reserve_exact(n);
        }
        for asg in plan.assignments {
            launcher.place(asg);
        }
        if !launcher.short_of_ports.is_empty() {
            let retry = launcher.retry_plan(&states, &requests, packer.config());
            for asg in retry.assignments {
                launcher.place(asg);
            }
        }
    } else if ctx.room == 0 {
        for job in ctx.queue.iter().filter(|j| jobs.contains_key(&j.id)) {
            launcher.pending.insert(job.id, MAX_RUNNING.into());
        }
    }
    let Launcher {
        by_agent, pending, ..
    } = launcher;
    out.pending.extend(pending);
    out.states = states;
    for (a, launches) in agents.into_iter().zip(by_agent) {
        out.agents.push(AgentDecision {
            offer_ids: a.offer_ids,
            launches,
        });
    }
    out
}

/// The texts of the latest distinct pending reasons: jobs planned one after the other
/// mostly wait for the same reason, whose text is then made once, not once per job.
#[derive(Default)]
struct ReasonTexts<'p> {
    recent: Vec<(&'p PendingReason, String)>,
}

impl<'p> ReasonTexts<'p> {
    /// Distinct reasons kept.
    const KEPT: usize = 8;

    /// `reason`'s text (its `Display`).
    fn text(&mut self, reason: &'p PendingReason) -> String {
        if let Some((_, t)) = self.recent.iter().find(|(r, _)| *r == reason) {
            return t.clone();
        }
        let t = reason.to_string();
        if self.recent.len() == Self::KEPT {
            self.recent.remove(0);
        }
        self.recent.push((reason, t.clone()));
        t
    }
}

/// Turns assignments into launches, handing out ports and the room left.
struct Launcher<'c, 'a> {
    ctx: &'c CycleContext<'a>,
    jobs: &'c FxHashMap<u64, &'a Job>,
    agents: &'c [AgentOffers],
    agent_index: &'c HashMap<&'c str, usize>,
    /// Free ports per agent (same order as `agents`).
    pools: Vec<PortPool>,
    /// Launches per agent (same order as `agents`).
    by_agent: Vec<Vec<Launch>>,
    /// The executor info of each application launched so far (when shared).
    executors: Option<BTreeMap<String, ExecutorInfo>>,
    launched: FxHashSet<u64>,
    pending: BTreeMap<u64, String>,
    /// Jobs placed on an agent with too few free ports.
    short_of_ports: Vec<u64>,
}

impl Launcher<'_, '_> {
    /// Launches `asg` unless the server is full or the agent lacks ports (then the job
    /// waits with the reason).
    fn place(&mut self, asg: Assignment) {
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
        let make = || executor_info(app, self.ctx.executor, self.ctx.framework_id, users);
        let executor = match &mut self.executors {
            Some(known) => match known.get(&app.appid) {
                Some(e) => e.clone(),
                None => known.entry(app.appid.clone()).or_insert_with(make).clone(),
            },
            None => make(),
        };
        let attempt = job.attempt + 1;
        let grant = grant(&asg, &ports, users.job_user(app));
        self.by_agent[at].push(Launch {
            job_id: job.id,
            attempt,
            task: task_info(job, attempt, app, &asg, &grant, &agent.merged, executor),
            grant,
            agent_base: agent_base(&agent.merged),
            numa_local: asg.cpu_nodes.len() <= 1,
            assignment: asg,
        });
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
        // What the launches take, per agent position.
        let placed = self
            .by_agent
            .iter()
            .enumerate()
            .flat_map(|(at, ls)| ls.iter().map(move |l| (at, &l.assignment)));
        for (at, asg) in placed {
            if let Some(slot) = after.get_mut(&at)
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
mod tests;
