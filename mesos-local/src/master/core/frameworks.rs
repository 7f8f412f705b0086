//! Frameworks: SUBSCRIBE (new, failover, recovered ids), streams closing, failover
//! timeouts and removal.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Core {
    // ----- subscribe ----------------------------------------------------------------

    /// Handles a validated SUBSCRIBE call: SUBSCRIBED then HEARTBEAT on a new stream, or a
    /// stream holding one ERROR when the framework cannot subscribe.
    pub fn subscribe(&mut self, c: Call, content_type: ContentType, now: Instant) -> Subscription {
        let stream_id = uuid::Uuid::new_v4().to_string();
        let (sink, rx) = EventSink::channel(stream_id.clone(), content_type);
        let sub = c.subscribe.unwrap_or_default();
        let info = sub.framework_info;
        let refuse = |sink: EventSink, rx, message: String| {
            sink.send(&error_event(message));
            Subscription {
                stream_id: stream_id.clone(),
                rx,
                framework_id: None,
            }
        };
        if let Err(e) = validation::validate_framework_info(&info, &sub.suppressed_roles) {
            return refuse(sink, rx, e);
        }
        let fid = match info.id.clone() {
            None => {
                let id = FrameworkId {
                    value: format!("{}-{:04}", self.config.master_id, self.next_framework),
                };
                self.next_framework += 1;
                let entry = self.new_framework_entry(id.clone(), info);
                self.frameworks.insert(id.value.clone(), entry);
                id
            }
            Some(id) => {
                if self.completed_ids.contains(&id.value) {
                    return refuse(sink, rx, "Framework has been removed".into());
                }
                if self.frameworks.contains_key(&id.value) {
                    self.failover(&id.value, info);
                } else {
                    // After a master failover an unknown id is accepted: the framework
                    // is recovered with the id it had.
                    let entry = self.new_framework_entry(id.clone(), info);
                    self.frameworks.insert(id.value.clone(), entry);
                }
                id
            }
        };
        let heartbeat_secs = self.config.heartbeat_interval.as_secs_f64();
        let master_info = self.config.master_info.clone();
        let Some(fw) = self.frameworks.get_mut(&fid.value) else {
            return Subscription {
                stream_id,
                rx,
                framework_id: None,
            };
        };
        fw.suppressed = sub.suppressed_roles.into_iter().collect();
        fw.failover_deadline = None;
        fw.unregistered_time = None;
        if fw.recovered {
            fw.recovered = false;
            fw.reregistered_time = Some(wall_clock());
        }
        sink.send(&Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                framework_id: fid.clone(),
                heartbeat_interval_seconds: Some(heartbeat_secs),
                master_info: Some(master_info),
            }),
            ..Default::default()
        });
        sink.send(&heartbeat_event());
        fw.sink = Some(sink);
        self.allocate(now);
        Subscription {
            stream_id,
            rx,
            framework_id: Some(fid.value),
        }
    }

    /// Re-subscription of a known framework: the old stream gets ERROR "Framework failed
    /// over", outstanding offers are dropped, `user` and `checkpoint` keep their values.
    pub(super) fn failover(&mut self, fid: &str, mut info: FrameworkInfo) {
        let offers: Vec<String> = self
            .frameworks
            .get(fid)
            .map(|fw| fw.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in offers {
            self.remove_offer(&id, false);
        }
        let Some(fw) = self.frameworks.get_mut(fid) else {
            return;
        };
        if let Some(old) = fw.sink.take() {
            old.send(&error_event("Framework failed over"));
        }
        info.user = fw.info.user.clone();
        info.checkpoint = fw.info.checkpoint;
        info.id = Some(fw.id.clone());
        let old_roles = fw.roles();
        fw.info = info;
        let new_roles = fw.roles();
        if old_roles != new_roles {
            fw.filters.retain(|(_, role), _| new_roles.contains(role));
        }
        if !fw.recovered {
            fw.reregistered_time = Some(wall_clock());
        }
    }

    /// The SUBSCRIBE stream `stream_id` of `fid` ended (client gone, or replaced).
    pub fn stream_closed(&mut self, fid: &str, stream_id: &str, now: Instant) {
        let current = self
            .frameworks
            .get(fid)
            .and_then(|fw| fw.sink.as_ref())
            .is_some_and(|s| s.stream_id() == stream_id);
        if current {
            self.disconnect(fid, now);
        }
    }

    /// Fault injection: closes the framework's stream as if the connection broke.
    pub fn drop_stream(&mut self, fid: &str, now: Instant) -> bool {
        let connected = self
            .frameworks
            .get(fid)
            .is_some_and(FrameworkEntry::connected);
        if connected {
            self.disconnect(fid, now);
        }
        connected
    }

    /// The framework lost its stream: inactive, offers recovered, failover timer started.
    pub(super) fn disconnect(&mut self, fid: &str, now: Instant) {
        let offers: Vec<String> = self
            .frameworks
            .get(fid)
            .map(|fw| fw.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in offers {
            self.remove_offer(&id, false);
        }
        if let Some(fw) = self.frameworks.get_mut(fid) {
            fw.sink = None;
            fw.unregistered_time = Some(wall_clock());
            fw.failover_deadline = deadline(now, fw.info.failover_timeout.unwrap_or(0.0));
        }
    }

    /// Removes a framework for good (TEARDOWN or failover timeout): its stream closes,
    /// offers go back, agents shut its executors down, tasks become TASK_KILLED, and its
    /// id can no longer subscribe.
    pub fn remove_framework(&mut self, fid: &str) {
        let offers: Vec<String> = self
            .frameworks
            .get(fid)
            .map(|fw| fw.offers.iter().cloned().collect())
            .unwrap_or_default();
        for id in offers {
            self.remove_offer(&id, false);
        }
        let Some(mut fw) = self.frameworks.remove(fid) else {
            return;
        };
        fw.sink = None;
        let mut on_agents: BTreeSet<String> = BTreeSet::new();
        let tasks = std::mem::take(&mut fw.tasks);
        for (_, mut task) in tasks {
            on_agents.insert(task.agent_id.clone());
            if !task.released {
                if let Some(agent) = self.agents.get_mut(&task.agent_id) {
                    agent.used.subtract(&task.resources);
                }
                task.released = true;
                self.allocation_wanted = true;
            }
            if !task.state.is_terminal() {
                let status = master_status(
                    &task.info.task_id,
                    Some(&task.agent_id),
                    TaskState::TaskKilled,
                    task_status::Reason::FrameworkRemoved,
                    format!("Framework {fid} removed"),
                );
                task.state = TaskState::TaskKilled;
                task.statuses.push(status);
            }
            push_completed(&mut fw.completed_tasks, task);
        }
        for ((agent_id, _), ex) in std::mem::take(&mut fw.executors) {
            if let Some(agent) = self.agents.get_mut(&agent_id) {
                agent.used.subtract(&ex.resources);
            }
            self.allocation_wanted = true;
            on_agents.insert(agent_id);
        }
        for agent_id in on_agents {
            if let Some(agent) = self.agents.get(&agent_id) {
                agent.link.shutdown_framework(&fw.id);
            }
        }
        fw.filters.clear();
        fw.failover_deadline = None;
        fw.unregistered_time = Some(wall_clock());
        self.completed_ids.insert(fid.to_string());
        self.completed_frameworks.push_back(fw);
        while self.completed_frameworks.len() > MAX_COMPLETED_FRAMEWORKS {
            self.completed_frameworks.pop_front();
        }
    }
}
