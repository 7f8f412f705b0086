//! `plan`: where a job would run now, by the planner's own packer, without launching or
//! storing anything ([`dry_run`]).
//!
//! The job is planned as the next planning cycle would plan it: against the free
//! resources of the known agents ([`super::agents`]), among the jobs the cycle would
//! consider, in the fair queue's own order ([`super::fairq`]: the job is put in the
//! queue as the newest of its user for the selection, then taken out), planned in that
//! order as the cycle does ([`retz_placement::Packer::plan_in_order`]), with the packer's
//! reservations, and within the server's `max_running`. A user held by its running
//! quota is answered with that reason. The packer does not block the
//! head of the queue, so a small job behind a big one that waits still runs: it is
//! answered with its placement ("backfill"). A job left unplaced gets the packer's
//! reason and the number of QUEUED jobs that would be ahead of it.
//!
//! Not modelled: ports (`-ports N`) are handed out from the offer at launch, not here.

use std::collections::BTreeMap;

use retz_placement::{AgentState, Packer};
use retz_proto::api::{Application, Job, Placement, PlanResponse};

use super::cycle::MAX_RUNNING;
use super::request::job_request;
use super::service::{Planner, PlannerError};
use crate::config::PlannerSection;

/// The id the planned job takes (no stored job has it: ids are positive `i64`s).
pub const CANDIDATE_ID: u64 = u64::MAX;

/// Why a job waits when no agent is known yet.
pub const NO_AGENTS: &str = "no agent has offered resources yet";

/// What a dry run plans against.
pub struct DryRun<'a> {
    /// The known agents' free resources.
    pub agents: &'a [AgentState],
    /// The jobs the cycle would consider, in the fair queue's order.
    pub window: &'a [Job],
    /// Where the job goes in `window` (its place in the fair order).
    pub position: usize,
    /// The window's applications by name (jobs whose application is gone are skipped).
    pub apps: &'a BTreeMap<String, Application>,
    /// Planner settings.
    pub cfg: &'a PlannerSection,
    /// How many more jobs may start now.
    pub room: usize,
    /// QUEUED jobs (the whole queue) of a priority at most the job's: all would be ahead
    /// of it.
    pub ahead: u64,
    /// Now, Unix seconds.
    pub now: u64,
}

/// Plans `job` (of `app`) on a copy of `packer`.
pub fn dry_run(packer: &Packer, job: &Job, app: &Application, at: &DryRun<'_>) -> PlanResponse {
    let wait = |reason: &str| PlanResponse {
        placement: None,
        reason: Some(reason.to_owned()),
        queue_position: Some(at.ahead),
    };
    if at.agents.is_empty() {
        return wait(NO_AGENTS);
    }
    if at.room == 0 {
        return wait(MAX_RUNNING);
    }
    let mut candidate = job.clone();
    candidate.id = CANDIDATE_ID;
    candidate.scheduled = None;
    let request = |j: &Job| {
        let app = at.apps.get(&j.appid)?;
        Some(job_request(j, Some(app), at.cfg, at.now))
    };
    let pos = at.position.min(at.window.len());
    let mut requests: Vec<_> = at.window[..pos].iter().filter_map(request).collect();
    requests.push(job_request(&candidate, Some(app), at.cfg, at.now));
    requests.extend(at.window[pos..].iter().filter_map(request));
    let plan = packer.clone().plan_in_order(at.agents, &requests, at.now);
    let Some(pos) = plan
        .assignments
        .iter()
        .position(|a| a.job_id == CANDIDATE_ID)
    else {
        let reason = plan
            .pending_reason(CANDIDATE_ID)
            .map_or_else(|| "not placed".to_owned(), ToString::to_string);
        return wait(&reason);
    };
    // Assignments are in planning order: the launches before it use up the room first.
    if pos >= at.room {
        return wait(MAX_RUNNING);
    }
    let asg = &plan.assignments[pos];
    let list = |s: String| (asg.pinned && !s.is_empty()).then_some(s);
    PlanResponse {
        placement: Some(Placement {
            agent_id: asg.agent_id.clone(),
            hostname: asg.hostname.clone(),
            cpu: asg.granted_cpus,
            mem_mb: asg.granted_mem_mb,
            cpuset: list(asg.cpus.to_string()),
            numa_nodes: list(asg.cpu_nodes.to_string()),
            memory_nodes: list(asg.nodes.to_string()),
            pinned: asg.pinned,
        }),
        reason: None,
        queue_position: None,
    }
}

impl Planner {
    /// `plan`: `job` planned as the next cycle would, on the known agents' free resources.
    pub(super) async fn dry_run(
        &mut self,
        job: &Job,
        app: &Application,
    ) -> Result<PlanResponse, PlannerError> {
        let ids = self.window().await?;
        let (order, held) = self.fair_order_with(job, &app.owner);
        if let Some(why) = held {
            let ahead = super::link::lock(&self.link.queue).count_at_most(job.priority);
            return Ok(PlanResponse {
                placement: None,
                reason: Some(why),
                queue_position: Some(ahead),
            });
        }
        let by_id: BTreeMap<u64, &Job> = ids
            .iter()
            .filter_map(|id| self.hot.get(id).map(|j| (*id, j)))
            .collect();
        let position = order
            .iter()
            .filter(|&&id| id == CANDIDATE_ID || by_id.contains_key(&id))
            .position(|&id| id == CANDIDATE_ID)
            .unwrap_or(usize::MAX);
        let window: Vec<Job> = order
            .iter()
            .filter_map(|id| by_id.get(id).map(|j| (*j).clone()))
            .collect();
        let mut apps: BTreeMap<String, Application> = BTreeMap::new();
        for j in &window {
            if !apps.contains_key(&j.appid)
                && let Some(a) = self.store.get_app(&j.appid).await?
                && a.enabled
            {
                apps.insert(a.appid.clone(), a);
            }
        }
        let running = self.store.running_count().await? as usize;
        let room = (self.opts.cfg.max_running as usize).saturating_sub(running);
        let agents: Vec<_> = self.agents.states().cloned().collect();
        let ahead = super::link::lock(&self.link.queue).count_at_most(job.priority);
        let at = DryRun {
            agents: &agents,
            window: &window,
            position,
            apps: &apps,
            cfg: &self.opts.cfg,
            room,
            ahead,
            now: Self::now_unix(),
        };
        Ok(dry_run(&self.packer, job, app, &at))
    }

    /// The selection the next cycle would make with `job` of `owner` queued as its
    /// newest (as [`CANDIDATE_ID`]), and the reason if its user is held by its quota.
    fn fair_order_with(&self, job: &Job, owner: &str) -> (Vec<u64>, Option<String>) {
        let mut candidate = job.clone();
        candidate.id = CANDIDATE_ID;
        candidate.scheduled = None;
        let total = self.agents.totals();
        let mut q = super::link::lock(&self.link.queue);
        q.insert(owner, &candidate, Self::now_unix());
        let sel = q.select(
            Self::now_unix(),
            self.opts.window.saturating_add(1),
            &self.opts.policy.starvation,
            self.usage.by_user(),
            &total,
        );
        q.remove(CANDIDATE_ID);
        let held = sel.held.get(owner).cloned();
        (sel.ids, held)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use retz_placement::{AffinityPolicy, PolicyConfig, ResourceRange, Topology};

    /// A 2-node agent, 4 CPUs a node, all free.
    fn agent(id: &str) -> AgentState {
        let spec = retz_placement::synthetic::parse("pack:2 numa:1 core:4 pu:1", 2048).unwrap();
        AgentState::idle(
            id,
            format!("{id}.example"),
            Arc::new(Topology::new(spec).unwrap()),
            0,
        )
    }

    fn job(id: u64, cpus: u32, priority: i32) -> Job {
        let mut j = Job::new("app", "true");
        j.id = id;
        j.priority = priority;
        j.resources.cpu = ResourceRange::exactly(cpus);
        j.resources.mem_mb = ResourceRange::exactly(32);
        j.affinity = Some(AffinityPolicy::NumaStrict);
        j
    }

    fn apps() -> BTreeMap<String, Application> {
        BTreeMap::from([("app".to_owned(), Application::new("app", "k"))])
    }

    fn run(agents: &[AgentState], window: &[Job], room: usize, j: &Job) -> PlanResponse {
        run_at(agents, window, usize::MAX, room, j)
    }

    /// With the job at `position` of the fair order.
    fn run_at(
        agents: &[AgentState],
        window: &[Job],
        position: usize,
        room: usize,
        j: &Job,
    ) -> PlanResponse {
        let cfg = PlannerSection::default();
        let apps = apps();
        let at = DryRun {
            agents,
            window,
            position,
            apps: &apps,
            cfg: &cfg,
            room,
            ahead: window.len() as u64,
            now: 1_000,
        };
        dry_run(&Packer::new(PolicyConfig::default()), j, &apps["app"], &at)
    }

    #[test]
    fn an_idle_agent_answers_the_cpus_a_planning_cycle_would_grant() {
        let agents = [agent("a1")];
        let r = run(&agents, &[], 10, &job(0, 3, 0));
        let p = r.placement.clone().expect("would run");
        assert_eq!(
            (p.agent_id.as_str(), p.hostname.as_str()),
            ("a1", "a1.example")
        );
        assert_eq!(p.cpu, 3);
        assert!(p.pinned);
        assert_eq!(p.numa_nodes.as_deref().map(str::len), Some(1), "{p:?}");
        assert_eq!(p.memory_nodes, p.numa_nodes);
        // The same as the packer gives a real job on the same agents.
        let mut packer = Packer::new(PolicyConfig::default());
        let mut real = job(7, 3, 0);
        real.scheduled = None;
        let cfg = PlannerSection::default();
        let plan = packer.plan(
            &agents,
            &[job_request(&real, Some(&apps()["app"]), &cfg, 1_000)],
            1_000,
        );
        assert_eq!(p.cpuset, Some(plan.assignments[0].cpus.to_string()));
        assert_eq!(r.reason, None);
    }

    #[test]
    fn the_queue_ahead_takes_its_share_first_and_backfill_is_answered() {
        let agents = [agent("a1")];
        // Two queued 4-CPU jobs fill both nodes: a third waits behind them.
        let window = [job(1, 4, 0), job(2, 4, 0)];
        let r = run(&agents, &window, 10, &job(0, 1, 0));
        assert!(!r.would_run(), "{r:?}");
        assert_eq!(r.queue_position, Some(2));
        assert!(!r.reason.as_deref().unwrap_or("").is_empty());
        // A 5-CPU job ahead fits no 4-CPU node (strict) and waits; a 2-CPU job behind it
        // runs now.
        let window = [job(1, 5, 0)];
        let r = run(&agents, &window, 10, &job(0, 2, 0));
        assert!(r.would_run(), "{r:?}");
        // The fair order decides, as in the cycle: first in it, the job runs ...
        let window = [job(1, 4, 5), job(2, 4, 5)];
        let r = run_at(&agents, &window, 0, 10, &job(0, 4, 0));
        assert!(r.would_run(), "{r:?}");
        // ... after both (another user's turn came first), it waits, whatever its
        // priority: the dry run does not reorder by priority.
        let r = run_at(&agents, &window, 2, 10, &job(0, 4, 0));
        assert!(!r.would_run(), "{r:?}");
        // Between them: the second queued job is the one left out.
        let r = run_at(&agents, &window, 1, 10, &job(0, 4, 0));
        assert!(r.would_run(), "{r:?}");
    }

    #[test]
    fn nothing_fits_no_agent_and_max_running_say_why() {
        let agents = [agent("a1")];
        let r = run(&agents, &[], 10, &job(0, 9, 0));
        assert!(!r.would_run());
        let reason = r.reason.as_deref().unwrap();
        assert!(
            reason.starts_with("needs 9 CPUs") && reason.contains("has 4 CPUs"),
            "{reason}"
        );
        assert_eq!(r.queue_position, Some(0));
        let r = run(&[], &[], 10, &job(0, 1, 0));
        assert_eq!(r.reason.as_deref(), Some(NO_AGENTS));
        let r = run(&agents, &[], 0, &job(0, 1, 0));
        assert_eq!(r.reason.as_deref(), Some(MAX_RUNNING));
        // Room for one: the queued job ahead takes it.
        let r = run(&agents, &[job(1, 1, 0)], 1, &job(0, 1, 0));
        assert_eq!(r.reason.as_deref(), Some(MAX_RUNNING));
    }
}
