//! Agents joining (or re-registering after a master restart, with what runs on them)
//! and leaving the master.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Core {
    // ----- agents -------------------------------------------------------------------

    /// Registers an agent (or re-registers it after a master restart, with what runs on
    /// it). Frameworks known only from the agent are recovered, inactive.
    pub fn add_agent(&mut self, link: Arc<dyn AgentLink>, now: Instant) -> Result<AgentId, String> {
        let info = link.info();
        let Some(agent_id) = info.id.clone() else {
            return Err(format!("agent on {} has no id", info.hostname));
        };
        if self.agents.contains_key(&agent_id.value) {
            return Err(format!("agent {} is already registered", agent_id.value));
        }
        let total = Resources::from_protos(&info.resources)
            .map_err(|e| format!("agent {}: {e}", agent_id.value))?;
        let snapshot = link.snapshot();
        let reregistered = !snapshot.tasks.is_empty() || !snapshot.executors.is_empty();
        self.agents.insert(
            agent_id.value.clone(),
            AgentEntry {
                link,
                info,
                total,
                used: Resources::new(),
                offered: Resources::new(),
                registered_time: wall_clock(),
                reregistered_time: reregistered.then(wall_clock),
            },
        );
        self.recover_from_agent(&agent_id.value, snapshot, now);
        Ok(agent_id)
    }

    pub(super) fn recover_from_agent(
        &mut self,
        agent_id: &str,
        snapshot: AgentSnapshot,
        now: Instant,
    ) {
        for ex in snapshot.executors {
            let Some(fid) = ex.framework.id.clone() else {
                continue;
            };
            if self.completed_ids.contains(&fid.value) {
                continue;
            }
            let resources = Resources::from_protos(&ex.info.resources).unwrap_or_default();
            self.ensure_recovered_framework(&ex.framework, now);
            if let Some(agent) = self.agents.get_mut(agent_id) {
                agent.used.add(&resources);
            }
            if let Some(fw) = self.frameworks.get_mut(&fid.value) {
                fw.executors.insert(
                    (agent_id.to_string(), ex.info.executor_id.value.clone()),
                    ExecutorEntry {
                        info: ex.info,
                        resources,
                    },
                );
            }
        }
        for t in snapshot.tasks {
            let Some(fid) = t.framework.id.clone() else {
                continue;
            };
            if self.completed_ids.contains(&fid.value) || t.state.is_terminal() {
                continue;
            }
            let resources = Resources::from_protos(&t.task.resources).unwrap_or_default();
            self.ensure_recovered_framework(&t.framework, now);
            if let Some(agent) = self.agents.get_mut(agent_id) {
                agent.used.add(&resources);
            }
            if let Some(fw) = self.frameworks.get_mut(&fid.value) {
                let role = fw.roles().into_iter().next().unwrap_or_else(|| "*".into());
                fw.tasks.insert(
                    t.task.task_id.value.clone(),
                    TaskEntry {
                        framework_id: fid.value.clone(),
                        agent_id: agent_id.to_string(),
                        executor_id: t.executor_id,
                        role,
                        state: t.state,
                        statuses: Vec::new(),
                        resources,
                        released: false,
                        last_update: None,
                        info: t.task,
                    },
                );
            }
        }
    }

    pub(super) fn ensure_recovered_framework(&mut self, info: &FrameworkInfo, now: Instant) {
        let Some(fid) = info.id.clone() else { return };
        if self.frameworks.contains_key(&fid.value) {
            return;
        }
        let failover_deadline = deadline(now, info.failover_timeout.unwrap_or(0.0));
        let mut entry = self.new_framework_entry(fid.clone(), info.clone());
        entry.recovered = true;
        entry.unregistered_time = Some(wall_clock());
        entry.failover_deadline = failover_deadline;
        self.frameworks.insert(fid.value, entry);
    }

    pub(super) fn new_framework_entry(
        &self,
        id: FrameworkId,
        mut info: FrameworkInfo,
    ) -> FrameworkEntry {
        info.id = Some(id.clone());
        FrameworkEntry {
            id,
            info,
            sink: None,
            recovered: false,
            registered_time: wall_clock(),
            reregistered_time: None,
            unregistered_time: None,
            suppressed: BTreeSet::new(),
            filters: HashMap::new(),
            offers: BTreeSet::new(),
            tasks: BTreeMap::new(),
            completed_tasks: VecDeque::new(),
            executors: BTreeMap::new(),
            failover_deadline: None,
        }
    }

    /// Removes a dead agent: its offers are rescinded, its tasks become TASK_LOST
    /// (TASK_GONE for PARTITION_AWARE frameworks, reason REASON_AGENT_REMOVED, no uuid),
    /// its executors vanish and every connected framework gets a FAILURE event naming
    /// the agent.
    pub fn remove_agent(&mut self, agent_id: &str) -> bool {
        let Some(agent) = self.agents.remove(agent_id) else {
            return false;
        };
        let offer_ids: Vec<String> = self
            .offers
            .iter()
            .filter(|(_, o)| o.agent_id == agent_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in offer_ids {
            self.remove_offer(&id, true);
        }
        let message = format!("Agent {} removed: agent is gone", agent.info.hostname);
        for fw in self.frameworks.values_mut() {
            let partition_aware = fw.capability(framework_info::capability::Type::PartitionAware);
            let state = if partition_aware {
                TaskState::TaskGone
            } else {
                TaskState::TaskLost
            };
            let lost: Vec<String> = fw
                .tasks
                .iter()
                .filter(|(_, t)| t.agent_id == agent_id)
                .map(|(id, _)| id.clone())
                .collect();
            for tid in lost {
                if let Some(mut task) = fw.tasks.remove(&tid) {
                    if !task.state.is_terminal() {
                        let status = master_status(
                            &task.info.task_id,
                            Some(agent_id),
                            state,
                            task_status::Reason::AgentRemoved,
                            message.clone(),
                        );
                        task.state = state;
                        task.statuses.push(status.clone());
                        fw.send(&update_event(status));
                    }
                    task.released = true;
                    push_completed(&mut fw.completed_tasks, task);
                }
            }
            fw.executors.retain(|(a, _), _| a != agent_id);
            fw.filters.retain(|(a, _), _| a != agent_id);
            fw.send(&failure_event(agent_id, None, None));
        }
        true
    }
}
