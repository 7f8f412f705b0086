//! [`SchedulerDriver`]: the cloneable handle that sends typed calls to the master
//! holding the subscription.
//!
//! Invariants: a call is sent only while subscribed, to the master of the current
//! subscription, with its `Mesos-Stream-Id` and the framework id it gave; an update
//! without a uuid is never acknowledged; a successful TEARDOWN stops the client.

use retz_proto::mesos::offer::Operation;
use retz_proto::mesos::{
    AgentId, ExecutorId, ExecutorInfo, Filters, FrameworkId, KillPolicy, OfferId, TaskId, TaskInfo,
    TaskStatus,
};
use retz_proto::scheduler::{Call, call};
use std::sync::Arc;
use tracing::{debug, error};

use super::calls;
use super::error::CallError;
use super::state::{Session, Shared};

/// Sends calls to the Mesos master; clone it freely. Every call returns once the master
/// answered 202 (or failed, see [`CallError`]).
#[derive(Debug, Clone)]
pub struct SchedulerDriver {
    shared: Arc<Shared>,
}

impl SchedulerDriver {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        SchedulerDriver { shared }
    }

    /// The framework id, once the master gave one (or the configured one).
    pub fn framework_id(&self) -> Option<FrameworkId> {
        self.shared.state().framework_id.clone()
    }

    /// Whether a subscription is up now.
    pub fn is_subscribed(&self) -> bool {
        !self.shared.cancel.is_cancelled() && self.shared.state().session.is_some()
    }

    /// Stops the client: closes the event stream without tearing the framework down (the
    /// master keeps its tasks for `failover_timeout`). The event receiver then ends.
    pub fn stop(&self) {
        self.shared.cancel.cancel();
    }

    /// Whether the client has stopped.
    pub fn is_stopped(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// Waits until the client has stopped.
    pub async fn stopped(&self) {
        self.shared.cancel.cancelled().await;
    }

    /// The current subscription, or why there is none.
    fn session(&self, name: &'static str) -> Result<Session, CallError> {
        if self.shared.cancel.is_cancelled() {
            return Err(CallError::Stopped { call: name });
        }
        let session = self.shared.state().session.clone();
        session.ok_or(CallError::NotSubscribed { call: name })
    }

    /// Builds a call with the session's framework id and sends it on the session.
    async fn send(
        &self,
        name: &'static str,
        build: impl FnOnce(&FrameworkId) -> Call,
    ) -> Result<(), CallError> {
        let session = self.session(name)?;
        let call = build(&session.framework_id);
        let result = self
            .shared
            .calls
            .post(&session.endpoint, &session.stream_id, &call)
            .await;
        self.check_unauthorized(&result);
        result
    }

    /// After a 401: logs it and drops the subscription, so that the next SUBSCRIBE
    /// either holds or ends the client (no retry loop on refused credentials).
    fn check_unauthorized(&self, result: &Result<(), CallError>) {
        if let Err(e @ CallError::Unauthorized { .. }) = result {
            error!(error = %e, "call refused for the framework's credentials");
            self.shared.unauthorized.notify_waiters();
        }
    }

    /// ACCEPT `offer_ids` (all from one agent) with `operations` (see
    /// [`calls::launch`], [`calls::launch_group`]); unused resources are refused for
    /// `filters.refuse_seconds` (Mesos default 5 s when `None`).
    pub async fn accept(
        &self,
        offer_ids: Vec<OfferId>,
        operations: Vec<Operation>,
        filters: Option<Filters>,
    ) -> Result<(), CallError> {
        self.send("ACCEPT", |f| {
            calls::accept(f, offer_ids, operations, filters)
        })
        .await
    }

    /// ACCEPT `offer_ids` with one LAUNCH of `tasks`.
    pub async fn launch(
        &self,
        offer_ids: Vec<OfferId>,
        tasks: Vec<TaskInfo>,
        filters: Option<Filters>,
    ) -> Result<(), CallError> {
        self.accept(offer_ids, vec![calls::launch(tasks)], filters)
            .await
    }

    /// ACCEPT `offer_ids` with one LAUNCH_GROUP of `tasks` under `executor`.
    pub async fn launch_group(
        &self,
        offer_ids: Vec<OfferId>,
        executor: ExecutorInfo,
        tasks: Vec<TaskInfo>,
        filters: Option<Filters>,
    ) -> Result<(), CallError> {
        self.accept(
            offer_ids,
            vec![calls::launch_group(executor, tasks)],
            filters,
        )
        .await
    }

    /// DECLINE `offer_ids`, refusing their resources for `refuse_seconds` (Mesos default
    /// 5 s when `None`).
    pub async fn decline(
        &self,
        offer_ids: Vec<OfferId>,
        refuse_seconds: Option<f64>,
    ) -> Result<(), CallError> {
        let filters = refuse_seconds.map(calls::refuse_for);
        self.send("DECLINE", |f| calls::decline(f, offer_ids, filters))
            .await
    }

    /// Whether offers are suppressed for some role: what a (re-)subscription asks the
    /// master for, so after SUBSCRIBED the master suppresses exactly these.
    pub fn is_suppressed(&self) -> bool {
        !self.shared.state().suppressed.is_empty()
    }

    /// REVIVE offers for `roles` (every role of the framework when empty). Re-subscriptions
    /// no longer suppress them.
    pub async fn revive(&self, roles: Vec<String>) -> Result<(), CallError> {
        let revived = roles.clone();
        self.send("REVIVE", |f| calls::revive(f, roles)).await?;
        let mut state = self.shared.state();
        if revived.is_empty() {
            state.suppressed.clear();
        } else {
            for r in &revived {
                state.suppressed.remove(r);
            }
        }
        Ok(())
    }

    /// SUPPRESS offers for `roles` (every role of the framework when empty).
    /// Re-subscriptions keep them suppressed.
    pub async fn suppress(&self, roles: Vec<String>) -> Result<(), CallError> {
        let suppressed = if roles.is_empty() {
            self.shared.roles.clone()
        } else {
            roles.clone()
        };
        self.send("SUPPRESS", |f| calls::suppress(f, roles)).await?;
        self.shared.state().suppressed.extend(suppressed);
        Ok(())
    }

    /// KILL `task_id` (on `agent_id`, if known), with an optional grace period.
    pub async fn kill(
        &self,
        task_id: TaskId,
        agent_id: Option<AgentId>,
        kill_policy: Option<KillPolicy>,
    ) -> Result<(), CallError> {
        self.send("KILL", |f| calls::kill(f, task_id, agent_id, kill_policy))
            .await
    }

    /// SHUTDOWN `executor_id` on `agent_id` (idle custom executors are never reaped
    /// otherwise).
    pub async fn shutdown(
        &self,
        executor_id: ExecutorId,
        agent_id: AgentId,
    ) -> Result<(), CallError> {
        self.send("SHUTDOWN", |f| calls::shutdown(f, executor_id, agent_id))
            .await
    }

    /// ACKNOWLEDGE `status`, echoing its agent id, task id and uuid. An update without a
    /// uuid (generated by the master: reconciliation, invalid offers, ...) must not be
    /// acknowledged: that is a no-op returning `Ok(())`.
    pub async fn acknowledge(&self, status: &TaskStatus) -> Result<(), CallError> {
        if status.uuid.is_none() {
            debug!(task = %status.task_id.value, "update without uuid: not acknowledged");
            return Ok(());
        }
        let session = self.session("ACKNOWLEDGE")?;
        match calls::acknowledge(&session.framework_id, status)? {
            Some(call) => {
                let result = self
                    .shared
                    .calls
                    .post(&session.endpoint, &session.stream_id, &call)
                    .await;
                self.check_unauthorized(&result);
                result
            }
            None => Ok(()),
        }
    }

    /// RECONCILE `tasks` (every task the master knows of when empty); the answers come
    /// as uuid-less [`super::SchedulerEvent::Update`]s.
    pub async fn reconcile(&self, tasks: Vec<call::reconcile::Task>) -> Result<(), CallError> {
        self.send("RECONCILE", |f| calls::reconcile(f, tasks)).await
    }

    /// MESSAGE: opaque `data` to `executor_id` on `agent_id`.
    pub async fn message(
        &self,
        agent_id: AgentId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    ) -> Result<(), CallError> {
        self.send("MESSAGE", |f| {
            calls::message(f, agent_id, executor_id, data)
        })
        .await
    }

    /// TEARDOWN: the master kills every task of the framework and forgets it. The
    /// client then stops.
    pub async fn teardown(&self) -> Result<(), CallError> {
        self.send("TEARDOWN", calls::teardown).await?;
        self.shared.cancel.cancel();
        Ok(())
    }
}
