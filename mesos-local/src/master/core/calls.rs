//! Dispatch of the non-SUBSCRIBE scheduler calls, UPDATE_FRAMEWORK and KILL.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Core {
    // ----- calls --------------------------------------------------------------------

    /// Handles a validated non-SUBSCRIBE call of type `ty` on behalf of the connection
    /// that sent `stream_id`.
    pub fn handle_call(
        &mut self,
        ty: CallType,
        c: Call,
        stream_id: Option<&str>,
        now: Instant,
    ) -> Result<CallOutcome, CallError> {
        let fid = c.framework_id.clone().unwrap_or_default().value;
        let Some(fw) = self.frameworks.get(&fid) else {
            return Err(CallError::BadRequest("Framework cannot be found".into()));
        };
        let Some(sink) = &fw.sink else {
            return Err(CallError::Forbidden("Framework is not subscribed".into()));
        };
        match stream_id {
            None => {
                return Err(CallError::BadRequest(
                    "All non-subscribe calls should include the 'Mesos-Stream-Id' header".into(),
                ));
            }
            Some(s) if s != sink.stream_id() => {
                return Err(CallError::BadRequest(format!(
                    "The stream ID '{s}' included in this request didn't match the stream ID currently associated with framework ID {fid}"
                )));
            }
            Some(_) => {}
        }
        *self.counters.calls.entry(ty.as_str_name()).or_insert(0) += 1;
        match ty {
            call::Type::Teardown => {
                self.remove_framework(&fid);
            }
            call::Type::Accept => self.accept(&fid, c.accept.unwrap_or_default(), now),
            call::Type::Decline => {
                let d = c.decline.unwrap_or_default();
                self.decline(&fid, &d.offer_ids, d.filters.as_ref(), now);
            }
            call::Type::Revive => self.revive(&fid, &c.revive.unwrap_or_default().roles, now),
            call::Type::Suppress => self.suppress(&fid, &c.suppress.unwrap_or_default().roles),
            call::Type::Kill => self.kill(&fid, c.kill.unwrap_or_default()),
            call::Type::Shutdown => {
                let s = c.shutdown.unwrap_or_default();
                if let Some(agent) = self.agents.get(&s.agent_id.value) {
                    agent
                        .link
                        .shutdown_executor(&FrameworkId { value: fid }, &s.executor_id);
                }
            }
            call::Type::Acknowledge => self.acknowledge(&fid, &c.acknowledge.unwrap_or_default()),
            call::Type::Reconcile => self.reconcile(&fid, &c.reconcile.unwrap_or_default().tasks),
            call::Type::Message => {
                let m = c.message.unwrap_or_default();
                if let Some(agent) = self.agents.get(&m.agent_id.value) {
                    agent
                        .link
                        .send_message(&FrameworkId { value: fid }, &m.executor_id, m.data);
                }
            }
            call::Type::UpdateFramework => {
                self.update_framework(&fid, c.update_framework.unwrap_or_default())?;
                return Ok(CallOutcome::Ok);
            }
            // No inverse offers, operations or requests exist in this master: these calls
            // are valid and have nothing to act on (the built-in allocator also ignores
            // REQUEST).
            call::Type::AcceptInverseOffers
            | call::Type::DeclineInverseOffers
            | call::Type::AcknowledgeOperationStatus
            | call::Type::Request => {}
            call::Type::ReconcileOperations => {
                return Err(CallError::NotImplemented(
                    "RECONCILE_OPERATIONS is not supported by retz-mesos-local (it has no offer operations to reconcile)"
                        .into(),
                ));
            }
            call::Type::Unknown | call::Type::Subscribe => {
                return Err(CallError::NotImplemented(format!(
                    "Received an unexpected '{}' call",
                    ty.as_str_name()
                )));
            }
        }
        Ok(CallOutcome::Accepted)
    }

    pub(super) fn update_framework(
        &mut self,
        fid: &str,
        u: call::UpdateFramework,
    ) -> Result<(), CallError> {
        let mut info = u.framework_info;
        if info.id.as_ref().map(|i| i.value.as_str()) != Some(fid) {
            return Err(CallError::BadRequest(
                "'UpdateFramework.framework_info.id' is not equal to 'Call.framework_id'".into(),
            ));
        }
        validation::validate_framework_info(&info, &u.suppressed_roles)
            .map_err(CallError::BadRequest)?;
        let Some(fw) = self.frameworks.get(fid) else {
            return Err(CallError::BadRequest("Framework cannot be found".into()));
        };
        if info.user != fw.info.user {
            return Err(CallError::BadRequest(
                "Updating 'FrameworkInfo.user' is unsupported".into(),
            ));
        }
        if info.checkpoint.unwrap_or(false) != fw.info.checkpoint.unwrap_or(false) {
            return Err(CallError::BadRequest(
                "Updating 'FrameworkInfo.checkpoint' is unsupported".into(),
            ));
        }
        if info.principal != fw.info.principal {
            return Err(CallError::BadRequest(
                "Updating 'FrameworkInfo.principal' is unsupported".into(),
            ));
        }
        info.id = Some(fw.id.clone());
        let new_roles = framework_roles(&info);
        let stale: Vec<String> = fw
            .offers
            .iter()
            .filter(|o| {
                self.offers
                    .get(*o)
                    .is_some_and(|offer| !new_roles.contains(&offer.role))
            })
            .cloned()
            .collect();
        for id in stale {
            self.remove_offer(&id, true);
        }
        if let Some(fw) = self.frameworks.get_mut(fid) {
            fw.info = info;
            fw.suppressed = u.suppressed_roles.into_iter().collect();
            fw.filters.retain(|(_, role), _| new_roles.contains(role));
        }
        Ok(())
    }

    pub(super) fn kill(&mut self, fid: &str, k: call::Kill) {
        let Some(fw) = self.frameworks.get(fid) else {
            return;
        };
        match fw.tasks.get(&k.task_id.value) {
            Some(task) => {
                if task.state.is_terminal() {
                    return;
                }
                let policy = k.kill_policy.or(task.info.kill_policy);
                if let Some(agent) = self.agents.get(&task.agent_id) {
                    agent.link.kill_task(&fw.id, &k.task_id, policy);
                }
            }
            None => {
                // Mesos answers a kill of an unknown task with its reconciliation.
                self.reconcile(
                    fid,
                    &[call::reconcile::Task {
                        task_id: k.task_id,
                        agent_id: k.agent_id,
                    }],
                );
            }
        }
    }
}
