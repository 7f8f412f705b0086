//! The executor's life: SUBSCRIBE, run what the agent sends through the task runtime,
//! report every task state as an UPDATE until acknowledged, survive agent restarts when
//! checkpointing, and shut down in time.
//!
//! - The runtime starts at the first `SUBSCRIBED`, with the application artifacts of the
//!   `ExecutorInfo`. `LAUNCH`/`LAUNCH_GROUP` → `TASK_STARTING`, then the runtime's
//!   updates; `KILL` → the runtime's kill (an unknown task gets `TASK_LOST`);
//!   `ACKNOWLEDGED` clears the pending update; `SHUTDOWN` (or SIGTERM to the executor)
//!   kills every task within `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`, reports them, and
//!   exits before the grace period ends.
//! - Updates are posted in order by one sender task; those still unacknowledged after
//!   `resend_after` are posted again, and every re-SUBSCRIBE carries the unacknowledged
//!   updates and tasks.
//! - When the stream breaks: without checkpointing the executor kills its tasks and exits;
//!   with checkpointing it re-subscribes with exponential backoff capped at
//!   `MESOS_SUBSCRIPTION_BACKOFF_MAX` until `MESOS_RECOVERY_TIMEOUT`, tasks running on.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use retz_proto::ContentType;
use retz_proto::executor::{Call, Event, call, event};
use retz_proto::mesos::{ExecutorId, FrameworkId, TaskInfo, TaskState, TaskStatus, task_status};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::convert;
use super::env::AgentEnv;
use super::pending::Pending;
use super::transport::{ApiError, EventStream, Transport};
use crate::runtime::{LaunchError, RuntimeConfig, RuntimeError, TaskEvent, TaskRuntime};
use crate::sys::Sys;

/// How the executor is configured.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// What the agent said in the environment.
    pub agent: AgentEnv,
    /// Body encoding of the calls and events.
    pub content_type: ContentType,
    /// Runtime settings (the sandbox and artifacts are filled from the agent).
    pub runtime: RuntimeConfig,
    /// Re-post an update not acknowledged for this long.
    pub resend_after: Duration,
    /// Shortest pause between re-subscription attempts.
    pub backoff_min: Duration,
}

impl ExecutorConfig {
    /// A configuration for `agent` with protobuf bodies, a 10 s resend interval and the
    /// runtime defaults.
    pub fn new(agent: AgentEnv) -> Self {
        let runtime = RuntimeConfig::new(agent.sandbox.clone());
        Self {
            agent,
            content_type: ContentType::Protobuf,
            runtime,
            resend_after: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
        }
    }
}

/// Why the executor stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The agent sent SHUTDOWN.
    Shutdown,
    /// The executor was told to stop (signal).
    Stopped,
    /// The agent went away and checkpointing is off.
    AgentGone(String),
    /// The agent did not come back within the recovery timeout.
    RecoveryTimeout,
}

/// Why the executor could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// Talking to the agent failed for good.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The task runtime could not start.
    #[error("cannot start the task runtime: {0}")]
    Runtime(#[from] RuntimeError),
    /// The agent refused the subscription for good.
    #[error("could not subscribe to the agent at {endpoint}: {last}")]
    Subscribe { endpoint: String, last: String },
}

/// First subscription attempts allowed without checkpointing.
const FIRST_ATTEMPTS: u32 = 10;

/// How long to wait for the agent to answer a SUBSCRIBE.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

struct Shutdown {
    task: Option<JoinHandle<()>>,
    deadline: Instant,
    exit: Exit,
}

struct Executor {
    sys: Arc<dyn Sys>,
    config: ExecutorConfig,
    transport: Transport,
    runtime: Option<TaskRuntime>,
    events: Option<mpsc::UnboundedReceiver<TaskEvent>>,
    pending: Pending,
    known: BTreeSet<String>,
    outbox: mpsc::UnboundedSender<call::Update>,
    connected: bool,
    shutdown: Option<Shutdown>,
}

/// Runs the executor until SHUTDOWN, `stop`, or the agent's loss.
pub async fn run(
    sys: Arc<dyn Sys>,
    config: ExecutorConfig,
    stop: impl Future<Output = ()>,
) -> Result<Exit, ExecutorError> {
    let transport = Transport::new(
        &config.agent.endpoint,
        config.content_type,
        config.agent.auth_token.clone(),
    )?;
    let (outbox, outbox_rx) = mpsc::unbounded_channel();
    let poster = tokio::spawn(post_updates(transport.clone(), config.clone(), outbox_rx));
    let mut executor = Executor {
        sys,
        config,
        transport,
        runtime: None,
        events: None,
        pending: Pending::default(),
        known: BTreeSet::new(),
        outbox,
        connected: false,
        shutdown: None,
    };
    // The event loop's future is large (many select! branches): keep it on the heap.
    let result = Box::pin(executor.main_loop(stop)).await;
    poster.abort();
    result
}

/// Posts updates in order; failures are left for the resend timer or the next SUBSCRIBE.
async fn post_updates(
    transport: Transport,
    config: ExecutorConfig,
    mut rx: mpsc::UnboundedReceiver<call::Update>,
) {
    while let Some(update) = rx.recv().await {
        let call = Call {
            executor_id: ExecutorId {
                value: config.agent.executor_id.clone(),
            },
            framework_id: FrameworkId {
                value: config.agent.framework_id.clone(),
            },
            r#type: Some(call::Type::Update as i32),
            update: Some(update),
            ..Call::default()
        };
        if let Err(e) = transport.send(&call).await {
            tracing::warn!("UPDATE not delivered (will be sent again): {e}");
        }
    }
}

async fn next_event(stream: &mut Option<EventStream>) -> Result<Option<Event>, ApiError> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn next_task_event(
    events: &mut Option<mpsc::UnboundedReceiver<TaskEvent>>,
) -> Option<TaskEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn shutdown_done(shutdown: &mut Option<Shutdown>) {
    match shutdown.as_mut().and_then(|s| s.task.as_mut()) {
        Some(task) => {
            let _ = task.await;
        }
        None => std::future::pending().await,
    }
}

impl Executor {
    fn call(&self, kind: call::Type) -> Call {
        Call {
            executor_id: ExecutorId {
                value: self.config.agent.executor_id.clone(),
            },
            framework_id: FrameworkId {
                value: self.config.agent.framework_id.clone(),
            },
            r#type: Some(kind as i32),
            ..Call::default()
        }
    }

    async fn main_loop(&mut self, stop: impl Future<Output = ()>) -> Result<Exit, ExecutorError> {
        tokio::pin!(stop);
        let mut stream: Option<EventStream> = None;
        let mut backoff = self.config.backoff_min;
        let mut retry_at = Instant::now();
        let mut ever_subscribed = false;
        let mut attempts = 0u32;
        let mut disconnected_at = Instant::now();
        let mut resend =
            tokio::time::interval(self.config.resend_after.max(Duration::from_millis(10)));
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            if let Some(sd) = &self.shutdown {
                let done = sd.task.as_ref().is_none_or(|t| t.is_finished());
                if (done && self.pending.is_empty()) || Instant::now() >= sd.deadline {
                    if !self.pending.is_empty() {
                        tracing::warn!(
                            "exiting with {} update(s) unacknowledged (grace period over)",
                            self.pending.len()
                        );
                    }
                    return Ok(sd.exit.clone());
                }
            }
            if stream.is_none() && Instant::now() >= retry_at {
                attempts += 1;
                let call = Call {
                    subscribe: Some(self.pending.subscribe()),
                    ..self.call(call::Type::Subscribe)
                };
                let attempt =
                    tokio::time::timeout(SUBSCRIBE_TIMEOUT, self.transport.subscribe(&call));
                let result = match attempt.await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {SUBSCRIBE_TIMEOUT:?}")),
                };
                match result {
                    Ok(s) => {
                        tracing::info!(endpoint = %self.config.agent.endpoint, "subscribed");
                        stream = Some(s);
                        self.connected = true;
                        // What was pending just went out inside the SUBSCRIBE.
                        self.pending.mark_all_sent(std::time::Instant::now());
                        ever_subscribed = true;
                        attempts = 0;
                        backoff = self.config.backoff_min;
                    }
                    Err(why) => {
                        tracing::warn!("SUBSCRIBE failed: {why}");
                        if let Some(exit) =
                            self.after_disconnect(ever_subscribed, attempts, disconnected_at, &why)
                        {
                            let exit = self.abandon(exit).await;
                            if !ever_subscribed {
                                return Err(ExecutorError::Subscribe {
                                    endpoint: self.config.agent.endpoint.clone(),
                                    last: why,
                                });
                            }
                            return Ok(exit);
                        }
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2)
                            .min(self.config.agent.backoff_max.max(self.config.backoff_min));
                    }
                }
                continue;
            }
            let deadline = self.shutdown.as_ref().map(|s| s.deadline);
            tokio::select! {
                () = &mut stop, if self.shutdown.is_none() => {
                    tracing::info!("stop requested: killing tasks");
                    if self.begin_shutdown(Exit::Stopped) {
                        return Ok(Exit::Stopped);
                    }
                }
                ev = next_task_event(&mut self.events) => match ev {
                    Some(ev) => self.on_task_event(&ev),
                    // The runtime is gone (cannot happen while we hold it); stop polling.
                    None => self.events = None,
                },
                ev = next_event(&mut stream) => match ev {
                    Ok(Some(event)) => {
                        if let Some(exit) = self.on_event(event).await? {
                            return Ok(exit);
                        }
                    }
                    Ok(None) | Err(_) => {
                        match &ev {
                            Err(e) => tracing::warn!("event stream broken: {e}"),
                            _ => tracing::warn!("the agent closed the event stream"),
                        }
                        stream = None;
                        self.connected = false;
                        disconnected_at = Instant::now();
                        attempts = 0;
                        let why = match ev { Err(e) => e.to_string(), _ => "stream closed".into() };
                        if let Some(exit) = self.after_disconnect(true, 0, disconnected_at, &why) {
                            return Ok(self.abandon(exit).await);
                        }
                        retry_at = Instant::now() + backoff;
                    }
                },
                _ = resend.tick(), if self.connected => {
                    for update in self.pending.due(std::time::Instant::now(), self.config.resend_after) {
                        let _ = self.outbox.send(update);
                    }
                }
                () = tokio::time::sleep_until(retry_at), if stream.is_none() => {}
                () = shutdown_done(&mut self.shutdown) => {
                    if let Some(sd) = &mut self.shutdown {
                        sd.task = None;
                    }
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
            }
        }
    }

    /// Decides what a lost or failed subscription means; `Some` ends the executor.
    fn after_disconnect(
        &self,
        was_subscribed: bool,
        attempts: u32,
        since: Instant,
        why: &str,
    ) -> Option<Exit> {
        if self.shutdown.is_some() {
            return None;
        }
        if !self.config.agent.checkpoint {
            if was_subscribed && attempts == 0 {
                return Some(Exit::AgentGone(why.to_owned()));
            }
            if attempts >= FIRST_ATTEMPTS {
                return Some(Exit::AgentGone(why.to_owned()));
            }
            return None;
        }
        (since.elapsed() >= self.config.agent.recovery_timeout).then_some(Exit::RecoveryTimeout)
    }

    /// Kills every task without an agent to report to, then ends with `exit`.
    async fn abandon(&mut self, exit: Exit) -> Exit {
        tracing::error!("giving up on the agent ({exit:?}): killing all tasks");
        if let Some(rt) = &self.runtime {
            rt.shutdown(self.config.runtime.default_kill_grace).await;
        }
        exit
    }

    /// Starts killing everything; true when there is nothing to wait for.
    fn begin_shutdown(&mut self, exit: Exit) -> bool {
        let grace = self.config.agent.shutdown_grace;
        let Some(rt) = self.runtime.clone() else {
            return true;
        };
        // Leave time to report the kills before the agent destroys the container.
        let kill_grace = grace.saturating_sub(Duration::from_secs(2)).max(grace / 2);
        let deadline = Instant::now() + grace.mul_f64(0.9);
        let task = tokio::spawn(async move { rt.shutdown(kill_grace).await });
        self.shutdown = Some(Shutdown {
            task: Some(task),
            deadline,
            exit,
        });
        false
    }

    fn send_status(&mut self, status: TaskStatus, terminal: bool) {
        let uuid = status.uuid.clone().unwrap_or_default();
        let update = self.pending.push(status, terminal);
        if self.connected {
            self.pending.mark_sent(&uuid, std::time::Instant::now());
            let _ = self.outbox.send(update);
        }
    }

    fn on_task_event(&mut self, ev: &TaskEvent) {
        let status = convert::status(&ev.task_id, &self.config.agent.executor_id, &ev.update);
        self.send_status(status, ev.update.is_terminal());
    }

    fn executor_status(
        &mut self,
        task_id: &str,
        state: TaskState,
        reason: Option<task_status::Reason>,
        message: String,
    ) {
        let terminal = state != TaskState::TaskStarting;
        let status = convert::new_status(
            task_id,
            &self.config.agent.executor_id,
            state,
            reason,
            message,
            None,
        );
        self.send_status(status, terminal);
    }

    async fn on_event(&mut self, event: Event) -> Result<Option<Exit>, ExecutorError> {
        let kind = event.r#type.and_then(|t| event::Type::try_from(t).ok());
        match kind {
            Some(event::Type::Subscribed) => {
                if let (Some(sub), None) = (event.subscribed, &self.runtime) {
                    let mut config = self.config.runtime.clone();
                    config.sandbox = self.config.agent.sandbox.clone();
                    config.artifacts = convert::artifacts(&sub.executor_info);
                    let (rt, events) = TaskRuntime::start(self.sys.clone(), config).await?;
                    self.runtime = Some(rt);
                    self.events = Some(events);
                }
            }
            Some(event::Type::Launch) => {
                if let Some(launch) = event.launch {
                    self.launch(launch.task);
                }
            }
            Some(event::Type::LaunchGroup) => {
                if let Some(group) = event.launch_group {
                    for task in group.task_group.tasks {
                        self.launch(task);
                    }
                }
            }
            Some(event::Type::Kill) => {
                if let Some(kill) = event.kill {
                    let id = kill.task_id.value;
                    let grace = kill
                        .kill_policy
                        .as_ref()
                        .and_then(|k| k.grace_period.as_ref())
                        .map(convert::duration);
                    let killed = self.runtime.as_ref().is_some_and(|rt| rt.kill(&id, grace));
                    if !killed && !self.known.contains(&id) {
                        self.executor_status(
                            &id,
                            TaskState::TaskLost,
                            Some(task_status::Reason::TaskUnknown),
                            "no such task in this executor".into(),
                        );
                    }
                }
            }
            Some(event::Type::Acknowledged) => {
                if let Some(ack) = event.acknowledged
                    && !self.pending.acknowledged(&ack.task_id.value, &ack.uuid)
                {
                    tracing::debug!(task = %ack.task_id.value, "acknowledgement of an unknown update");
                }
            }
            Some(event::Type::Shutdown) => {
                tracing::info!("SHUTDOWN from the agent");
                if self.shutdown.is_none() && self.begin_shutdown(Exit::Shutdown) {
                    return Ok(Some(Exit::Shutdown));
                }
            }
            Some(event::Type::Message) => tracing::info!("framework message ignored"),
            Some(event::Type::Error) => {
                let message = event.error.map(|e| e.message).unwrap_or_default();
                tracing::error!("agent error: {message}");
            }
            Some(event::Type::Heartbeat) | Some(event::Type::Unknown) | None => {}
        }
        Ok(None)
    }

    fn launch(&mut self, task: TaskInfo) {
        let id = task.task_id.value.clone();
        if self.known.contains(&id) && !self.pending.ended(&id) {
            tracing::warn!(task = %id, "duplicate LAUNCH ignored");
            return;
        }
        self.known.insert(id.clone());
        let launch = convert::task_launch(&task);
        self.pending.task_launched(task);
        if self.shutdown.is_some() {
            self.executor_status(
                &id,
                TaskState::TaskKilled,
                None,
                "the executor is shutting down".into(),
            );
            return;
        }
        let Some(rt) = self.runtime.clone() else {
            self.executor_status(
                &id,
                TaskState::TaskFailed,
                Some(task_status::Reason::ExecutorUnregistered),
                "LAUNCH before SUBSCRIBED".into(),
            );
            return;
        };
        match launch {
            Err(e) => self.executor_status(
                &id,
                TaskState::TaskFailed,
                Some(task_status::Reason::TaskInvalid),
                e.to_string(),
            ),
            Ok(launch) => match rt.launch(launch) {
                Ok(()) => self.executor_status(
                    &id,
                    TaskState::TaskStarting,
                    None,
                    "preparing the task".into(),
                ),
                Err(LaunchError::Duplicate(_)) => {
                    tracing::warn!(task = %id, "duplicate LAUNCH ignored")
                }
                Err(LaunchError::ShuttingDown(_)) => self.executor_status(
                    &id,
                    TaskState::TaskKilled,
                    None,
                    "the executor is shutting down".into(),
                ),
            },
        }
    }
}
