//! Pure builders of scheduler [`Call`]s and of the offer operations the planner sends.
//!
//! Invariants: every call carries its `type` and the matching payload; every call but
//! SUBSCRIBE for a new framework carries `framework_id`; a SUBSCRIBE carries the same
//! id (or none) in `Call.framework_id` and `subscribe.framework_info.id`, as the master
//! requires.

use retz_proto::mesos::offer::{Operation, operation};
use retz_proto::mesos::{
    AgentId, ExecutorId, ExecutorInfo, Filters, FrameworkId, FrameworkInfo, KillPolicy, OfferId,
    TaskGroupInfo, TaskId, TaskInfo, TaskStatus,
};
use retz_proto::scheduler::{Call, call};

fn base(framework_id: Option<&FrameworkId>, ty: call::Type) -> Call {
    Call {
        framework_id: framework_id.cloned(),
        r#type: Some(ty as i32),
        ..Call::default()
    }
}

/// SUBSCRIBE: `framework_info` with its `id` replaced by `framework_id` (a new
/// framework when `None`), asking for `suppressed_roles` to start suppressed.
pub fn subscribe(
    framework_info: &FrameworkInfo,
    framework_id: Option<&FrameworkId>,
    suppressed_roles: Vec<String>,
) -> Call {
    let mut info = framework_info.clone();
    info.id = framework_id.cloned();
    Call {
        subscribe: Some(call::Subscribe {
            framework_info: info,
            suppressed_roles,
        }),
        ..base(framework_id, call::Type::Subscribe)
    }
}

/// ACCEPT `offer_ids` (all from one agent) with `operations`; unused resources are
/// refused for `filters.refuse_seconds`.
pub fn accept(
    framework_id: &FrameworkId,
    offer_ids: Vec<OfferId>,
    operations: Vec<Operation>,
    filters: Option<Filters>,
) -> Call {
    Call {
        accept: Some(call::Accept {
            offer_ids,
            operations,
            filters,
        }),
        ..base(Some(framework_id), call::Type::Accept)
    }
}

/// DECLINE `offer_ids`, refusing their resources for `filters.refuse_seconds`.
pub fn decline(
    framework_id: &FrameworkId,
    offer_ids: Vec<OfferId>,
    filters: Option<Filters>,
) -> Call {
    Call {
        decline: Some(call::Decline { offer_ids, filters }),
        ..base(Some(framework_id), call::Type::Decline)
    }
}

/// REVIVE offers for `roles` (all the framework's roles when empty).
pub fn revive(framework_id: &FrameworkId, roles: Vec<String>) -> Call {
    Call {
        revive: Some(call::Revive { roles }),
        ..base(Some(framework_id), call::Type::Revive)
    }
}

/// SUPPRESS offers for `roles` (all the framework's roles when empty).
pub fn suppress(framework_id: &FrameworkId, roles: Vec<String>) -> Call {
    Call {
        suppress: Some(call::Suppress { roles }),
        ..base(Some(framework_id), call::Type::Suppress)
    }
}

/// KILL a task.
pub fn kill(
    framework_id: &FrameworkId,
    task_id: TaskId,
    agent_id: Option<AgentId>,
    kill_policy: Option<KillPolicy>,
) -> Call {
    Call {
        kill: Some(call::Kill {
            task_id,
            agent_id,
            kill_policy,
        }),
        ..base(Some(framework_id), call::Type::Kill)
    }
}

/// SHUTDOWN an executor.
pub fn shutdown(framework_id: &FrameworkId, executor_id: ExecutorId, agent_id: AgentId) -> Call {
    Call {
        shutdown: Some(call::Shutdown {
            executor_id,
            agent_id,
        }),
        ..base(Some(framework_id), call::Type::Shutdown)
    }
}

/// Why an update cannot be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcknowledgeError {
    /// The update has a uuid but no agent id, so there is nothing to echo.
    #[error(
        "update of task {task_id:?} carries a uuid but no agent_id, so it cannot be acknowledged"
    )]
    MissingAgentId {
        /// The task of the update.
        task_id: String,
    },
}

/// ACKNOWLEDGE `status`, echoing its agent id, task id and uuid bytes; `Ok(None)` for
/// an update without a uuid (master-generated updates must not be acknowledged).
pub fn acknowledge(
    framework_id: &FrameworkId,
    status: &TaskStatus,
) -> Result<Option<Call>, AcknowledgeError> {
    let Some(uuid) = &status.uuid else {
        return Ok(None);
    };
    let Some(agent_id) = &status.agent_id else {
        return Err(AcknowledgeError::MissingAgentId {
            task_id: status.task_id.value.clone(),
        });
    };
    Ok(Some(Call {
        acknowledge: Some(call::Acknowledge {
            agent_id: agent_id.clone(),
            task_id: status.task_id.clone(),
            uuid: uuid.clone(),
        }),
        ..base(Some(framework_id), call::Type::Acknowledge)
    }))
}

/// RECONCILE `tasks` (every known task when empty).
pub fn reconcile(framework_id: &FrameworkId, tasks: Vec<call::reconcile::Task>) -> Call {
    Call {
        reconcile: Some(call::Reconcile { tasks }),
        ..base(Some(framework_id), call::Type::Reconcile)
    }
}

/// MESSAGE: opaque `data` for an executor.
pub fn message(
    framework_id: &FrameworkId,
    agent_id: AgentId,
    executor_id: ExecutorId,
    data: Vec<u8>,
) -> Call {
    Call {
        message: Some(call::Message {
            agent_id,
            executor_id,
            data,
        }),
        ..base(Some(framework_id), call::Type::Message)
    }
}

/// TEARDOWN the framework: the master kills its tasks and forgets it.
pub fn teardown(framework_id: &FrameworkId) -> Call {
    base(Some(framework_id), call::Type::Teardown)
}

/// A LAUNCH operation for `tasks`.
pub fn launch(tasks: Vec<TaskInfo>) -> Operation {
    Operation {
        r#type: Some(operation::Type::Launch as i32),
        launch: Some(operation::Launch { task_infos: tasks }),
        ..Operation::default()
    }
}

/// A LAUNCH_GROUP operation: `tasks` as one group under `executor`.
pub fn launch_group(executor: ExecutorInfo, tasks: Vec<TaskInfo>) -> Operation {
    Operation {
        r#type: Some(operation::Type::LaunchGroup as i32),
        launch_group: Some(operation::LaunchGroup {
            executor,
            task_group: TaskGroupInfo { tasks },
        }),
        ..Operation::default()
    }
}

/// Filters refusing the declined (or unused) resources for `seconds`.
pub fn refuse_for(seconds: f64) -> Filters {
    Filters {
        refuse_seconds: Some(seconds),
    }
}

/// The call's type name as Mesos spells it (`"ACCEPT"`), for logs and errors.
pub fn type_name(call: &Call) -> &'static str {
    call.r#type
        .and_then(|t| call::Type::try_from(t).ok())
        .map_or("UNKNOWN", |t| t.as_str_name())
}

/// The roles `info` subscribes with: `roles` with MULTI_ROLE, else `role` (default `*`).
pub fn framework_roles(info: &FrameworkInfo) -> Vec<String> {
    if info.roles.is_empty() {
        vec![info.role.clone().unwrap_or_else(|| "*".to_owned())]
    } else {
        info.roles.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fid() -> FrameworkId {
        FrameworkId {
            value: "f-0001".into(),
        }
    }

    #[test]
    fn subscribe_sets_both_ids_or_neither() {
        let info = FrameworkInfo {
            user: "u".into(),
            name: "retz".into(),
            id: Some(FrameworkId {
                value: "stale".into(),
            }),
            failover_timeout: Some(3600.0),
            ..FrameworkInfo::default()
        };
        let fresh = subscribe(&info, None, vec![]);
        assert_eq!(fresh.framework_id, None);
        assert_eq!(fresh.subscribe.as_ref().unwrap().framework_info.id, None);
        assert_eq!(type_name(&fresh), "SUBSCRIBE");
        let again = subscribe(&info, Some(&fid()), vec!["r".into()]);
        assert_eq!(again.framework_id, Some(fid()));
        let sub = again.subscribe.unwrap();
        assert_eq!(sub.framework_info.id, Some(fid()));
        assert_eq!(sub.framework_info.failover_timeout, Some(3600.0));
        assert_eq!(sub.suppressed_roles, ["r"]);
    }

    #[test]
    fn acknowledge_only_with_uuid() {
        let mut status = TaskStatus {
            task_id: TaskId { value: "t1".into() },
            state: retz_proto::mesos::TaskState::TaskRunning as i32,
            ..TaskStatus::default()
        };
        assert_eq!(acknowledge(&fid(), &status), Ok(None));
        status.uuid = Some(vec![7; 16]);
        assert_eq!(
            acknowledge(&fid(), &status),
            Err(AcknowledgeError::MissingAgentId {
                task_id: "t1".into()
            })
        );
        status.agent_id = Some(AgentId {
            value: "a-S1".into(),
        });
        let c = acknowledge(&fid(), &status).unwrap().unwrap();
        assert_eq!(type_name(&c), "ACKNOWLEDGE");
        let ack = c.acknowledge.unwrap();
        assert_eq!(ack.uuid, vec![7; 16]);
        assert_eq!(ack.agent_id.value, "a-S1");
        assert_eq!(ack.task_id.value, "t1");
        assert_eq!(c.framework_id, Some(fid()));
    }

    #[test]
    fn every_builder_sets_type_payload_and_framework_id() {
        let f = fid();
        let t = || TaskId { value: "t".into() };
        let a = || AgentId { value: "a".into() };
        let e = || ExecutorId { value: "e".into() };
        let o = || vec![OfferId { value: "o".into() }];
        let cases = [
            (
                accept(&f, o(), vec![launch(vec![])], Some(refuse_for(1.0))),
                "ACCEPT",
            ),
            (decline(&f, o(), Some(refuse_for(30.0))), "DECLINE"),
            (revive(&f, vec![]), "REVIVE"),
            (suppress(&f, vec!["x".into()]), "SUPPRESS"),
            (kill(&f, t(), Some(a()), None), "KILL"),
            (shutdown(&f, e(), a()), "SHUTDOWN"),
            (reconcile(&f, vec![]), "RECONCILE"),
            (message(&f, a(), e(), b"hi".to_vec()), "MESSAGE"),
            (teardown(&f), "TEARDOWN"),
        ];
        for (c, name) in cases {
            assert_eq!(type_name(&c), name);
            assert_eq!(c.framework_id.as_ref(), Some(&f), "{name}");
        }
        assert_eq!(
            decline(&f, o(), Some(refuse_for(30.0)))
                .decline
                .unwrap()
                .filters
                .unwrap()
                .refuse_seconds,
            Some(30.0)
        );
        assert!(accept(&f, o(), vec![], None).accept.is_some());
        assert!(kill(&f, t(), None, None).kill.is_some());
        assert!(message(&f, a(), e(), vec![1]).message.is_some());
        assert_eq!(type_name(&Call::default()), "UNKNOWN");
    }

    #[test]
    fn operations() {
        let task = TaskInfo {
            name: "n".into(),
            ..TaskInfo::default()
        };
        let l = launch(vec![task.clone()]);
        assert_eq!(l.r#type, Some(operation::Type::Launch as i32));
        assert_eq!(l.launch.unwrap().task_infos, vec![task.clone()]);
        let g = launch_group(ExecutorInfo::default(), vec![task.clone(), task]);
        assert_eq!(g.r#type, Some(operation::Type::LaunchGroup as i32));
        assert_eq!(g.launch_group.unwrap().task_group.tasks.len(), 2);
    }

    #[test]
    fn roles_of_a_framework() {
        let mut info = FrameworkInfo::default();
        assert_eq!(framework_roles(&info), ["*"]);
        info.role = Some("batch".into());
        assert_eq!(framework_roles(&info), ["batch"]);
        info.roles = vec!["a".into(), "b".into()];
        assert_eq!(framework_roles(&info), ["a", "b"]);
    }
}
