//! ACCEPT: offer validation, then LAUNCH and LAUNCH_GROUP operations checked task by task
//! against what is left of the offered resources, as Mesos' `Master::accept`/`_accept` do.
//!
//! Rules:
//! * the offers must exist, be this framework's, be listed once, be allocated to one role
//!   and come from one agent; otherwise every valid offer goes back (no filter) and each
//!   task of the call gets TASK_LOST (TASK_DROPPED for PARTITION_AWARE frameworks) with
//!   REASON_INVALID_OFFERS;
//! * a LAUNCH task failing validation gets TASK_ERROR / REASON_TASK_INVALID; a LAUNCH_GROUP
//!   failing it gets TASK_ERROR / REASON_TASK_GROUP_INVALID for all its tasks; these
//!   master-generated updates carry no uuid;
//! * a launched task (and its executor, when that executor is not known on the agent yet)
//!   consumes its resources from the offered pool, which is checked with `contains`;
//! * what remains of the pool goes back to the agent, filtered for the call's
//!   `refuse_seconds`.
//!
//! Operations other than LAUNCH and LAUNCH_GROUP (reservations, volumes) are not supported
//! by this master: they are dropped with a warning in the log.

use std::collections::BTreeSet;
use std::time::Instant;

use retz_proto::mesos::{
    ExecutorInfo, TaskGroupInfo, TaskInfo, TaskState, framework_info, offer, task_status,
};
use retz_proto::scheduler::call;

use super::core::{Core, ExecutorEntry, TaskEntry, master_status, update_event};
use super::resources::Resources;
use super::validation;

/// A task that passed validation, ready to launch.
struct Checked {
    task: TaskInfo,
    resources: Resources,
    /// The executor (framework id filled in) and whether it is new on the agent.
    executor: Option<(ExecutorInfo, Resources, bool)>,
}

impl Core {
    /// Handles an ACCEPT call of framework `fid`.
    pub(super) fn accept(&mut self, fid: &str, accept: call::Accept, now: Instant) {
        if let Err(message) = self.validate_offers(fid, &accept.offer_ids) {
            for oid in &accept.offer_ids {
                let ours = self
                    .offers
                    .get(&oid.value)
                    .is_some_and(|o| o.framework_id == fid);
                if ours {
                    self.remove_offer(&oid.value, false);
                }
            }
            let pa = self
                .frameworks
                .get(fid)
                .is_some_and(|fw| fw.capability(framework_info::capability::Type::PartitionAware));
            let state = if pa {
                TaskState::TaskDropped
            } else {
                TaskState::TaskLost
            };
            for op in &accept.operations {
                for task in operation_tasks(op) {
                    let status = master_status(
                        &task.task_id,
                        Some(&task.agent_id.value),
                        state,
                        task_status::Reason::InvalidOffers,
                        format!("Task launched with invalid offers: {message}"),
                    );
                    self.send_to(fid, status);
                }
            }
            return;
        }
        self.counters.offers_accepted += accept.offer_ids.len() as u64;
        let mut pool = Resources::new();
        let mut agent_id = String::new();
        let mut role = String::new();
        for oid in &accept.offer_ids {
            if let Some(o) = self.remove_offer(&oid.value, false) {
                pool.add(&o.resources);
                agent_id = o.agent_id;
                role = o.role;
            }
        }
        for op in accept.operations {
            match op
                .r#type
                .and_then(|t| offer::operation::Type::try_from(t).ok())
            {
                Some(offer::operation::Type::Launch) => {
                    let tasks = op.launch.map(|l| l.task_infos).unwrap_or_default();
                    for task in &tasks {
                        self.launch_one(fid, &agent_id, &role, task, &mut pool);
                    }
                }
                Some(offer::operation::Type::LaunchGroup) => {
                    if let Some(lg) = op.launch_group {
                        self.launch_group(
                            fid,
                            &agent_id,
                            &role,
                            lg.executor,
                            &lg.task_group,
                            &mut pool,
                        );
                    }
                }
                other => {
                    tracing::warn!(
                        framework = fid,
                        operation = other.map_or("UNKNOWN", |t| t.as_str_name()),
                        "dropping an offer operation retz-mesos-local does not support"
                    );
                }
            }
        }
        self.add_filter(fid, &agent_id, &role, pool, accept.filters.as_ref(), now);
    }

    /// Mesos' `validation::offer::validate`, in its order.
    fn validate_offers(&self, fid: &str, ids: &[retz_proto::mesos::OfferId]) -> Result<(), String> {
        if ids.is_empty() {
            return Err("No offers specified".into());
        }
        let mut seen = BTreeSet::new();
        for id in ids {
            if !seen.insert(&id.value) {
                return Err(format!("Duplicate offer {} in offer list", id.value));
            }
        }
        let mut first: Option<(&str, &str, &str)> = None;
        for id in ids {
            let Some(o) = self.offers.get(&id.value) else {
                return Err(format!("Offer {} is no longer valid", id.value));
            };
            if o.framework_id != fid {
                return Err(format!(
                    "Offer {} has invalid framework {} while framework {} is expected",
                    id.value, o.framework_id, fid
                ));
            }
            match first {
                None => first = Some((&id.value, &o.role, &o.agent_id)),
                Some((fo, frole, fagent)) => {
                    if frole != o.role {
                        return Err(format!(
                            "Aggregated offers must be allocated to the same role. Offer {fo} uses role {frole} and offer {} uses role {}",
                            id.value, o.role
                        ));
                    }
                    if fagent != o.agent_id {
                        return Err(format!(
                            "Aggregated offers must belong to one single agent. Offer {fo} uses agent {fagent} and offer {} uses agent {}",
                            id.value, o.agent_id
                        ));
                    }
                }
            }
            if !self.agents.contains_key(&o.agent_id) {
                return Err(format!("Agent {} is not available", o.agent_id));
            }
        }
        Ok(())
    }

    fn send_to(&self, fid: &str, status: retz_proto::mesos::TaskStatus) {
        if let Some(fw) = self.frameworks.get(fid) {
            fw.send(&update_event(status));
        }
    }

    fn task_error(
        &self,
        fid: &str,
        agent_id: &str,
        task: &TaskInfo,
        reason: task_status::Reason,
        message: String,
    ) {
        let status = master_status(
            &task.task_id,
            Some(agent_id),
            TaskState::TaskError,
            reason,
            message,
        );
        self.send_to(fid, status);
    }

    /// Checks one task of a LAUNCH against the framework, the agent and the pool.
    fn check_task(
        &self,
        fid: &str,
        agent_id: &str,
        mut task: TaskInfo,
        pool: &Resources,
    ) -> Result<Checked, String> {
        let fw = self
            .frameworks
            .get(fid)
            .ok_or_else(|| "Framework cannot be found".to_string())?;
        validation::validate_id(&task.task_id.value)
            .map_err(|e| format!("'TaskInfo.task_id' is invalid: {e}"))?;
        if fw.tasks.contains_key(&task.task_id.value) {
            return Err(format!("Task has duplicate ID: {}", task.task_id.value));
        }
        if task.agent_id.value != agent_id {
            return Err(format!("Task uses invalid agent: {}", task.agent_id.value));
        }
        let resources = validation::validate_task_basics(&task)?;
        if task.executor.is_some() == task.command.is_some() {
            return Err(
                "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
                    .into(),
            );
        }
        let mut consumed = resources.clone();
        let executor = match task.executor.take() {
            None => None,
            Some(mut ex) => {
                let ex_res = validation::validate_executor_for_launch(&mut ex, &fw.id)?;
                let key = (agent_id.to_string(), ex.executor_id.value.clone());
                let is_new = match fw.executors.get(&key) {
                    Some(existing) if existing.info != ex => {
                        return Err(format!(
                            "ExecutorInfo is not compatible with the ExecutorInfo of the existing executor '{}' (same ExecutorID)",
                            ex.executor_id.value
                        ));
                    }
                    Some(_) => false,
                    None => true,
                };
                if is_new {
                    consumed.add(&ex_res);
                }
                task.executor = Some(ex.clone());
                Some((ex, ex_res, is_new))
            }
        };
        if !pool.contains(&consumed) {
            return Err(format!(
                "Task uses more resources {consumed} than available {pool}"
            ));
        }
        Ok(Checked {
            task,
            resources,
            executor,
        })
    }

    fn launch_one(
        &mut self,
        fid: &str,
        agent_id: &str,
        role: &str,
        task: &TaskInfo,
        pool: &mut Resources,
    ) {
        match self.check_task(fid, agent_id, task.clone(), pool) {
            Err(message) => self.task_error(
                fid,
                agent_id,
                task,
                task_status::Reason::TaskInvalid,
                message,
            ),
            Ok(checked) => {
                let executor = checked.executor.as_ref().map(|(ex, _, _)| ex.clone());
                let task = checked.task.clone();
                self.record_launch(fid, agent_id, role, vec![checked], pool);
                let (Some(fw), Some(agent)) = (self.frameworks.get(fid), self.agents.get(agent_id))
                else {
                    return;
                };
                agent.link.launch(&fw.info, executor, vec![task]);
            }
        }
    }

    fn launch_group(
        &mut self,
        fid: &str,
        agent_id: &str,
        role: &str,
        executor: ExecutorInfo,
        group: &TaskGroupInfo,
        pool: &mut Resources,
    ) {
        match self.check_group(fid, agent_id, executor, group, pool) {
            Err(message) => {
                for task in &group.tasks {
                    self.task_error(
                        fid,
                        agent_id,
                        task,
                        task_status::Reason::TaskGroupInvalid,
                        message.clone(),
                    );
                }
            }
            Ok((executor, checked)) => {
                let tasks: Vec<TaskInfo> = checked.iter().map(|c| c.task.clone()).collect();
                self.record_launch(fid, agent_id, role, checked, pool);
                let (Some(fw), Some(agent)) = (self.frameworks.get(fid), self.agents.get(agent_id))
                else {
                    return;
                };
                agent
                    .link
                    .launch_group(&fw.info, executor, TaskGroupInfo { tasks });
            }
        }
    }

    fn check_group(
        &self,
        fid: &str,
        agent_id: &str,
        mut executor: ExecutorInfo,
        group: &TaskGroupInfo,
        pool: &Resources,
    ) -> Result<(ExecutorInfo, Vec<Checked>), String> {
        let fw = self
            .frameworks
            .get(fid)
            .ok_or_else(|| "Framework cannot be found".to_string())?;
        if group.tasks.is_empty() {
            return Err("Task group must contain at least one task".into());
        }
        let ex_res = validation::validate_executor_for_group(&mut executor, &fw.id)?;
        let key = (agent_id.to_string(), executor.executor_id.value.clone());
        let is_new = match fw.executors.get(&key) {
            Some(existing) if existing.info != executor => {
                return Err(format!(
                    "ExecutorInfo is not compatible with the ExecutorInfo of the existing executor '{}' (same ExecutorID)",
                    executor.executor_id.value
                ));
            }
            Some(_) => false,
            None => true,
        };
        let mut total = if is_new {
            ex_res.clone()
        } else {
            Resources::new()
        };
        let mut ids = BTreeSet::new();
        let mut checked = Vec::with_capacity(group.tasks.len());
        for (i, task) in group.tasks.iter().enumerate() {
            validation::validate_id(&task.task_id.value).map_err(|e| {
                format!("Task {i} of the group: 'TaskInfo.task_id' is invalid: {e}")
            })?;
            if !ids.insert(&task.task_id.value) || fw.tasks.contains_key(&task.task_id.value) {
                return Err(format!("Task has duplicate ID: {}", task.task_id.value));
            }
            if task.agent_id.value != agent_id {
                return Err(format!("Task uses invalid agent: {}", task.agent_id.value));
            }
            if task.executor.is_some() {
                return Err(format!(
                    "Task '{}': 'TaskInfo.executor' must not be set",
                    task.task_id.value
                ));
            }
            let res = validation::validate_task_basics(task)
                .map_err(|e| format!("Task '{}': {e}", task.task_id.value))?;
            total.add(&res);
            checked.push(Checked {
                task: task.clone(),
                resources: res,
                executor: None,
            });
        }
        if !pool.contains(&total) {
            return Err(format!(
                "Total resources {total} required by task group and its executor are more than available {pool}"
            ));
        }
        // The executor is charged once, with the first task.
        if let Some(first) = checked.first_mut() {
            first.executor = Some((executor.clone(), ex_res, is_new));
        }
        for c in &mut checked[1..] {
            c.executor = Some((executor.clone(), Resources::new(), false));
        }
        Ok((executor, checked))
    }

    /// Books launched tasks: the pool shrinks, the agent's used resources grow, tasks
    /// start in TASK_STAGING and new executors are recorded.
    fn record_launch(
        &mut self,
        fid: &str,
        agent_id: &str,
        role: &str,
        checked: Vec<Checked>,
        pool: &mut Resources,
    ) {
        for c in checked {
            let mut consumed = c.resources.clone();
            let mut executor_id = None;
            if let Some((ex, ex_res, is_new)) = &c.executor {
                executor_id = Some(ex.executor_id.clone());
                if *is_new {
                    consumed.add(ex_res);
                    if let Some(fw) = self.frameworks.get_mut(fid) {
                        fw.executors.insert(
                            (agent_id.to_string(), ex.executor_id.value.clone()),
                            ExecutorEntry {
                                info: ex.clone(),
                                resources: ex_res.clone(),
                            },
                        );
                    }
                }
            }
            pool.subtract(&consumed);
            if let Some(agent) = self.agents.get_mut(agent_id) {
                agent.used.add(&consumed);
            }
            self.counters.tasks_launched += 1;
            if let Some(fw) = self.frameworks.get_mut(fid) {
                fw.tasks.insert(
                    c.task.task_id.value.clone(),
                    TaskEntry {
                        framework_id: fid.to_string(),
                        agent_id: agent_id.to_string(),
                        executor_id,
                        role: role.to_string(),
                        state: TaskState::TaskStaging,
                        statuses: Vec::new(),
                        resources: c.resources,
                        released: false,
                        last_update: None,
                        info: c.task,
                    },
                );
            }
        }
    }
}

/// The tasks a LAUNCH or LAUNCH_GROUP operation carries.
fn operation_tasks(op: &offer::Operation) -> Vec<&TaskInfo> {
    let mut out = Vec::new();
    if let Some(l) = &op.launch {
        out.extend(l.task_infos.iter());
    }
    if let Some(lg) = &op.launch_group {
        out.extend(lg.task_group.tasks.iter());
    }
    out
}
