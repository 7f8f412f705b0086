//! The planner loop: Mesos events in, calls out, the store as the source of truth.
//!
//! One task owns the queue window and the Mesos driver; the HTTP API talks to it through
//! [`PlannerLink`] (a [`PlannerHandle`](crate::http::PlannerHandle)) without waiting. Order of effects, so that a
//! crash at any point neither loses nor doubles a job:
//! - launch: the job is stored STARTING with its new task id (compare-and-set on QUEUED)
//!   *before* the ACCEPT is sent; after a crash in between, reconciliation answers
//!   TASK_LOST for the never-launched task and the job is requeued under a new task id;
//! - status update: the job's next state is stored *before* the update is acknowledged,
//!   so Mesos resends anything not yet stored;
//! - (re)subscribe: every STARTING/STARTED job is reconciled and settled by the answers.
//!
//! Memory: the planner keeps the whole queue as keys grouped by request class
//! ([`super::fairq`], tens of bytes a job), and holds full job records just for the jobs
//! a cycle considers (the fair-share window of [`PlannerOptions::window`] jobs plus the
//! head of every class); the rest stays in the store and is read when selected. A
//! million queued jobs cost tens of megabytes, not gigabytes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use retz_placement::Packer;
use retz_proto::api::{Application, Job, JobState, Sandbox};
use retz_proto::mesos::{
    AgentId, FrameworkId, OfferId, TaskId, TaskState, TaskStatus, task_status,
};
use retz_proto::scheduler::call;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::agents::AgentBook;
use super::cycle::{CycleContext, group_offers, plan_cycle};
use super::executors::ExecutorBook;
pub use super::link::PlannerLink;
use super::link::{Command, lock};
use super::record::Recorder;
use super::report::{self, StatusReport};
use super::task::ExecutorLocation;
use super::usage::RunningUsage;
use crate::config::PlannerSection;
use crate::http::PlannerStatus;
use crate::identity::LaunchUsers;
use crate::mesos::{SchedulerDriver, SchedulerEvent};
use crate::offers::agent_state;
use crate::statem::{self, RetryPolicy, StatusInput, Transition};
use crate::store::{Store, StoreError, now_string};

/// What the loop needs besides the store and the driver.
#[derive(Clone, Debug)]
pub struct PlannerOptions {
    /// Planner settings (default affinity, SMT, retries, limits).
    pub cfg: PlannerSection,
    /// Cost-model weights and starvation protection (`[placement]`).
    pub policy: retz_placement::PolicyConfig,
    /// Where agents find retz-executor.
    pub executor: ExecutorLocation,
    /// The Unix users of launches (executor, jobs).
    pub users: LaunchUsers,
    /// Seconds declined offers stay away.
    pub refuse_seconds: f64,
    /// Record events to this file.
    pub record_events: Option<PathBuf>,
    /// How many queued jobs one cycle considers in fair-share order (besides the head of
    /// every class).
    pub window: usize,
    /// The default per-user quota (`[quota]`; stored overrides apply over it).
    pub quota: retz_proto::api::Quota,
}

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// The master ended the framework (ERROR event) or the client stopped.
    #[error("Mesos: {0}")]
    Mesos(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The loop's state.
pub struct Planner {
    pub(super) store: Store,
    pub(super) driver: SchedulerDriver,
    pub(super) link: Arc<PlannerLink>,
    rx: mpsc::UnboundedReceiver<Command>,
    pub(super) opts: PlannerOptions,
    pub(super) packer: Packer,
    retry: RetryPolicy,
    /// Full records of the queued jobs the latest cycle considered, by id.
    pub(super) hot: FxHashMap<u64, Job>,
    /// What each user's running jobs hold (the fair share's running side).
    pub(super) usage: RunningUsage,
    pub(super) framework_id: Option<FrameworkId>,
    suppressed: bool,
    recorder: Option<Recorder>,
    /// Tasks reported TASK_UNREACHABLE, with when.
    unreachable: HashMap<String, Instant>,
    /// The agents known and what they have free.
    pub(super) agents: AgentBook,
    /// The executors on agents, for their shutdown.
    pub(super) executors: ExecutorBook,
}

impl Planner {
    /// A planner over `store` driving `driver`, and the link the HTTP API uses.
    pub fn new(
        store: Store,
        driver: SchedulerDriver,
        opts: PlannerOptions,
    ) -> Result<(Planner, Arc<PlannerLink>), std::io::Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let link = Arc::new(PlannerLink {
            tx,
            pending: Mutex::new(FxHashMap::default()),
            status: Mutex::new(PlannerStatus::default()),
            queue: Mutex::new(Default::default()),
            metrics: crate::metrics::Metrics::new(),
            cluster: Default::default(),
        });
        let recorder = match &opts.record_events {
            Some(p) => Some(Recorder::open(p)?),
            None => None,
        };
        let mut packer_cfg = opts.policy.clone();
        packer_cfg.name = "retz-server".into();
        let planner = Planner {
            store,
            driver,
            link: Arc::clone(&link),
            rx,
            retry: RetryPolicy {
                max_retries: opts.cfg.max_retries,
            },
            packer: Packer::new(packer_cfg),
            opts,
            hot: FxHashMap::default(),
            usage: RunningUsage::default(),
            framework_id: None,
            suppressed: false,
            recorder,
            unreachable: HashMap::new(),
            agents: AgentBook::default(),
            executors: ExecutorBook::default(),
        };
        Ok((planner, link))
    }

    /// Runs until the master ends the framework or the event stream closes.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<SchedulerEvent>,
    ) -> Result<(), PlannerError> {
        self.load_queue().await?;
        self.link
            .metrics
            .start_pinning(&self.store.pinning_counts().await?);
        info!(queued = self.queued(), "planner started");
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                ev = events.recv() => {
                    let Some(ev) = ev else {
                        return Err(PlannerError::Mesos("the scheduler client stopped".into()));
                    };
                    self.set_waiting(events.len());
                    if let Some(r) = &mut self.recorder {
                        r.record(&ev);
                    }
                    self.on_event(ev).await?;
                    self.publish_agents();
                }
                Some(cmd) = self.rx.recv() => self.on_command(cmd).await?,
                _ = tick.tick() => self.on_tick().await?,
            }
        }
    }

    fn set_waiting(&self, n: usize) {
        lock(&self.link.status).events_waiting = n as u64;
    }

    /// Publishes the known agents and their free CPUs to `/status`.
    fn publish_agents(&self) {
        let mut s = lock(&self.link.status);
        s.agents = self.agents.count() as u64;
        s.offers = self.agents.offers() as u64;
        let free = self.agents.free_totals();
        s.offered_cpus = free.cpus as f64;
        s.offered_mem_mb = free.mem_mb;
        s.offered_gpus = free.gpus;
        s.offered_ports = free.ports;
        s.offered_disk_mb = free.disk_mb;
    }

    async fn on_event(&mut self, ev: SchedulerEvent) -> Result<(), PlannerError> {
        match ev {
            SchedulerEvent::Subscribed {
                framework_id,
                master_info,
                ..
            } => {
                info!(framework = %framework_id.value, "subscribed");
                self.store.set_framework_id(&framework_id.value).await?;
                self.framework_id = Some(framework_id);
                if let Some(m) = master_info {
                    let addr = m
                        .address
                        .as_ref()
                        .map(|a| {
                            format!(
                                "{}:{}",
                                a.ip.clone().or(a.hostname.clone()).unwrap_or_default(),
                                a.port
                            )
                        })
                        .unwrap_or_else(|| {
                            format!("{}:{}", m.hostname.clone().unwrap_or_default(), m.port)
                        });
                    lock(&self.link.status).master = addr;
                }
                // The subscription carried the driver's suppression (a REVIVE that
                // failed while disconnected left it suppressed).
                self.suppressed = self.driver.is_suppressed();
                self.reconcile().await?;
                self.update_suppression().await;
            }
            SchedulerEvent::Offers(offers) => self.on_offers(offers).await?,
            SchedulerEvent::Rescind(id) => debug!(offer = %id.value, "offer rescinded"),
            SchedulerEvent::Update(status) => self.on_update(status).await?,
            SchedulerEvent::Failure {
                agent_id: Some(agent),
                executor_id: None,
                ..
            } => {
                warn!(agent = %agent.value, "the master reports the agent lost");
                self.agents.lost(&agent.value);
                self.executors.forget_agent(&agent.value);
                self.link.cluster.forget(&agent.value);
            }
            SchedulerEvent::Failure {
                agent_id,
                executor_id,
                status,
            } => {
                if let (Some(a), Some(e)) = (&agent_id, &executor_id) {
                    self.executors.forget(&(a.value.clone(), e.value.clone()));
                }
                warn!(
                agent = ?agent_id.map(|a| a.value),
                executor = ?executor_id.map(|e| e.value),
                ?status,
                "agent or executor failure"
                )
            }
            SchedulerEvent::Message { .. } => {}
            SchedulerEvent::Error(message) => {
                error!(%message, "the master ended the framework");
                return Err(PlannerError::Mesos(message));
            }
            SchedulerEvent::Disconnected {
                master,
                reason,
                retry_in,
            } => warn!(%master, %reason, ?retry_in, "disconnected from the master; retrying"),
        }
        Ok(())
    }

    /// Asks the master for the state of every STARTING/STARTED job's task.
    async fn reconcile(&mut self) -> Result<(), PlannerError> {
        let active = self.store.active_jobs().await?;
        let tasks: Vec<call::reconcile::Task> = active
            .iter()
            .filter_map(|j| {
                Some(call::reconcile::Task {
                    task_id: TaskId {
                        value: j.task_id.clone()?,
                    },
                    agent_id: j.slave_id.clone().map(|value| AgentId { value }),
                })
            })
            .collect();
        info!(tasks = tasks.len(), "reconciling active jobs");
        if !tasks.is_empty()
            && let Err(e) = self.driver.reconcile(tasks).await
        {
            warn!(error = %e, "RECONCILE failed; will retry at the next subscription");
        }
        for j in active.iter().filter(|j| j.kill_requested) {
            self.send_kill(j).await;
        }
        Ok(())
    }

    pub(super) fn now_unix() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    async fn on_offers(
        &mut self,
        offers: Vec<retz_proto::mesos::Offer>,
    ) -> Result<(), PlannerError> {
        self.link
            .metrics
            .offers_received
            .inc_by(offers.len() as u64);
        self.link.cluster.observe(&offers);
        self.agents.observe_offers(&offers);
        self.executors_offered(&offers);
        let Some(fid) = self.framework_id.clone() else {
            return Ok(());
        };
        if self.queued() == 0 {
            for a in group_offers(offers.clone()) {
                let state = agent_state(&a.merged).ok();
                self.agents
                    .offered(&a.merged.agent_id.value, a.offer_ids, state);
            }
            let ids: Vec<OfferId> = offers.into_iter().map(|o| o.id).collect();
            self.decline(ids).await;
            self.update_suppression().await;
            return Ok(());
        }
        let ids = self.window().await?;
        // Borrowed from `hot`, not copied: the cycle only reads them.
        let window: Vec<&Job> = ids.iter().filter_map(|id| self.hot.get(id)).collect();
        let mut apps: BTreeMap<String, Application> = BTreeMap::new();
        for job in &window {
            if !apps.contains_key(&job.appid)
                && let Some(app) = self.store.get_app(&job.appid).await?
                && app.enabled
            {
                apps.insert(app.appid.clone(), app);
            }
        }
        let running = self.store.running_count().await? as usize;
        let room = (self.opts.cfg.max_running as usize).saturating_sub(running);
        let started = Instant::now();
        let outcome = {
            let ctx = CycleContext {
                queue: &window,
                apps: &apps,
                cfg: &self.opts.cfg,
                executor: &self.opts.executor,
                framework_id: &fid,
                users: &self.opts.users,
                room,
                now: Self::now_unix(),
            };
            plan_cycle(&mut self.packer, offers, &ctx)
        };
        self.link.metrics.observe_cycle(started.elapsed());
        {
            let mut p = lock(&self.link.pending);
            p.clear();
            p.extend(outcome.pending.iter().cloned());
        }
        self.record_outcome(&ids, &outcome.pending, &outcome.never);
        for (d, state) in outcome.agents.iter().zip(&outcome.states) {
            self.agents
                .offered(state.agent_id(), d.offer_ids.clone(), Some(state.clone()));
        }
        for (id, why) in &outcome.bad_offers {
            warn!(offer = %id.value, %why, "offer breaks the NUMA convention; declined");
        }
        self.decline(
            outcome
                .bad_offers
                .iter()
                .map(|(id, _)| id.clone())
                .collect(),
        )
        .await;
        for job_id in &outcome.orphans {
            self.end_orphan(*job_id).await?;
        }
        for agent in outcome.agents {
            let mut tasks = Vec::new();
            for l in agent.launches {
                let Some(job) = self.hot.get(&l.job_id).cloned() else {
                    continue;
                };
                let sandbox = l.agent_base.map(|agent| Sandbox {
                    agent,
                    directory: None,
                });
                let mut grant = l.grant.clone();
                grant.features = self.agents.features(&l.assignment);
                let Some(mut next) = statem::on_launch(
                    &job,
                    statem::Launch {
                        agent_id: l.task.agent_id.value.clone(),
                        sandbox,
                        grant,
                    },
                ) else {
                    continue;
                };
                debug_assert_eq!(next.attempt, l.attempt);
                // A new attempt: its pinning is reported anew.
                next.pinning = None;
                // Stored before the ACCEPT: see the module doc.
                if self.store.update_job(&next, JobState::Queued).await? {
                    let owner = lock(&self.link.queue).owner(job.id);
                    self.dequeue(job.id);
                    if let Some(owner) = owner {
                        self.usage.started(&owner, &next);
                    }
                    let m = &self.link.metrics;
                    m.tasks_launched.inc();
                    if l.numa_local {
                        m.tasks_numa_local.inc();
                    }
                    self.agents.launched(&l.task.task_id.value, &l.assignment);
                    self.executor_launched(&l.task, &job.appid);
                    info!(job = job.id, task = %l.task.task_id.value, cpus = ?l.grant.cpuset, "launching");
                    tasks.push(l.task);
                } else {
                    // Killed (or changed) meanwhile: drop it from the queue copy.
                    self.dequeue(job.id);
                }
            }
            if tasks.is_empty() {
                self.decline(agent.offer_ids).await;
            } else if let Err(e) = self.driver.launch(agent.offer_ids, tasks, None).await {
                // The jobs stay STARTING; Mesos answers TASK_LOST/DROPPED for tasks it
                // never saw at the next reconciliation, which requeues them.
                warn!(error = %e, "ACCEPT failed; the launched jobs are settled by reconciliation");
                self.reconcile().await?;
            }
        }
        self.publish_queue();
        self.update_suppression().await;
        Ok(())
    }

    async fn decline(&self, ids: Vec<OfferId>) {
        if ids.is_empty() {
            return;
        }
        self.link.metrics.offers_declined.inc_by(ids.len() as u64);
        if let Err(e) = self
            .driver
            .decline(ids, Some(self.opts.refuse_seconds))
            .await
        {
            debug!(error = %e, "DECLINE failed");
        }
    }

    async fn update_suppression(&mut self) {
        let want = self.queued() == 0;
        if want == self.suppressed {
            return;
        }
        let r = if want {
            self.driver.suppress(Vec::new()).await
        } else {
            self.driver.revive(Vec::new()).await
        };
        match r {
            Ok(()) => {
                debug!(suppressed = want, "offer suppression changed");
                self.suppressed = want;
            }
            Err(e) => debug!(error = %e, "SUPPRESS/REVIVE failed; retried later"),
        }
    }

    async fn end_orphan(&mut self, job_id: u64) -> Result<(), PlannerError> {
        let Some(job) = self.hot.get(&job_id).cloned() else {
            return Ok(());
        };
        let mut next = job.clone();
        next.state = JobState::Killed;
        next.reason = Some(format!(
            "No such application: {} (unloaded or disabled while the job waited)",
            job.appid
        ));
        next.finished = Some(now_string());
        if self.store.update_job(&next, JobState::Queued).await? {
            warn!(job = job_id, app = %job.appid, "application gone; job ended KILLED");
        }
        self.dequeue(job.id);
        Ok(())
    }

    async fn on_update(&mut self, status: TaskStatus) -> Result<(), PlannerError> {
        self.link.metrics.status_updates.inc();
        let task_id = status.task_id.value.clone();
        let state = status.state();
        if state == TaskState::TaskUnreachable {
            self.unreachable
                .entry(task_id.clone())
                .or_insert_with(Instant::now);
        } else {
            self.unreachable.remove(&task_id);
        }
        if state.is_terminal() {
            self.agents.ended(&task_id);
        }
        self.executor_status(&status);
        let gone = matches!(state, TaskState::TaskLost | TaskState::TaskUnknown)
            && status.reason() == task_status::Reason::Reconciliation;
        let report = report::read(&status);
        let input = StatusInput {
            task_id: task_id.clone(),
            state,
            message: status.message.clone(),
            exit_code: report.exit_code,
            agent_id: status.agent_id.as_ref().map(|a| a.value.clone()),
            gone_for_good: gone,
        };
        match self.store.job_by_task_id(&task_id).await? {
            Some(job) => self.apply(&job, &input, &report).await?,
            None => {
                // TASK_UNKNOWN: the master does not know it either; nothing to stop.
                if !state.is_terminal() && state != TaskState::TaskUnknown {
                    // Not ours (any more): a task of a deleted job. Stop it.
                    warn!(task = %task_id, "update for an unknown task; killing it");
                    let _ = self
                        .driver
                        .kill(status.task_id.clone(), status.agent_id.clone(), None)
                        .await;
                }
            }
        }
        if let Err(e) = self.driver.acknowledge(&status).await {
            debug!(task = %task_id, error = %e, "ACKNOWLEDGE failed; Mesos will resend");
        }
        Ok(())
    }

    async fn apply(
        &mut self,
        job: &Job,
        input: &StatusInput,
        report: &StatusReport,
    ) -> Result<(), PlannerError> {
        let now = now_string();
        match statem::on_status(job, input, &self.retry, &now) {
            Transition::Unchanged(why) => {
                debug!(job = job.id, task = %input.task_id, state = ?input.state, ?why, "no change");
                if job.state.is_terminal()
                    && !input.state.is_terminal()
                    && input.state != TaskState::TaskUnknown
                {
                    // A task still running for an ended job: stop it.
                    let _ = self
                        .driver
                        .kill(
                            TaskId {
                                value: input.task_id.clone(),
                            },
                            input.agent_id.clone().map(|value| AgentId { value }),
                            None,
                        )
                        .await;
                }
            }
            Transition::Changed(mut next) => {
                let news = report::record_pinning(job, &mut next, report.pinning.as_ref());
                if next.state == JobState::Started
                    && let Some(dir) = &report.work_dir
                    && let Some(sandbox) = &mut next.sandbox
                {
                    sandbox.directory = Some(dir.clone());
                }
                if self.store.update_job(&next, job.state).await? {
                    info!(job = job.id, from = %job.state, to = %next.state, task = %input.task_id, "job state");
                    if let Some(p) = news {
                        self.link.metrics.count_pinning(p.outcome, p.mechanism);
                    }
                    if !matches!(next.state, JobState::Starting | JobState::Started) {
                        self.usage.ended(job.id);
                    }
                    if next.state == JobState::Queued {
                        self.link.metrics.retries.inc();
                        self.enqueue_stored(next.id).await?;
                        self.update_suppression().await;
                    }
                } else {
                    // Changed meanwhile (a kill): re-read and apply again.
                    if let Some((_, fresh)) = self.store.get_job(job.id).await?
                        && fresh.state != job.state
                    {
                        Box::pin(self.apply(&fresh, input, &StatusReport::default())).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), PlannerError> {
        match cmd {
            Command::Queued(job) => {
                if job.state == JobState::Queued {
                    self.enqueue_stored(job.id).await?;
                    self.update_suppression().await;
                }
            }
            Command::Kill(job) => {
                // Out of the queue and its reasons at once: it holds nothing back.
                self.dequeue(job.id);
                self.publish_queue();
                self.send_kill(&job).await;
            }
            Command::Plan(ja, reply) => {
                let (job, app) = *ja;
                let answer = self.dry_run(&job, &app).await?;
                // The caller may have given up (timeout): nothing to do then.
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }

    async fn send_kill(&self, job: &Job) {
        let Some(task) = job.task_id.clone() else {
            return;
        };
        info!(job = job.id, %task, "killing");
        if let Err(e) = self
            .driver
            .kill(
                TaskId { value: task },
                job.slave_id.clone().map(|value| AgentId { value }),
                None,
            )
            .await
        {
            warn!(job = job.id, error = %e, "KILL failed; resent at the next subscription");
        }
    }

    /// Tasks unreachable for longer than the timeout count as lost.
    async fn on_tick(&mut self) -> Result<(), PlannerError> {
        let timeout = Duration::from_secs(self.opts.cfg.unreachable_timeout_s);
        let expired: Vec<String> = self
            .unreachable
            .iter()
            .filter(|(_, t)| t.elapsed() >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for task_id in expired {
            self.unreachable.remove(&task_id);
            if let Some(job) = self.store.job_by_task_id(&task_id).await? {
                let mut input = StatusInput::new(task_id, TaskState::TaskUnreachable);
                input.gone_for_good = true;
                input.message = Some("unreachable for longer than the timeout".into());
                self.apply(&job, &input, &StatusReport::default()).await?;
            }
        }
        self.reap_executors().await?;
        self.update_suppression().await;
        Ok(())
    }
}
