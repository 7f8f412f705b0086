//! Stateless validation of what schedulers send: calls (`validation::scheduler::call` in
//! Mesos), `FrameworkInfo`, IDs, roles, and the parts of `TaskInfo`/`ExecutorInfo` that do
//! not depend on master state. Messages follow Mesos' wording where it is known.
//!
//! Invariant: every function here is pure and total (no panics on any input).

use retz_proto::mesos::{
    ExecutorInfo, FrameworkId, FrameworkInfo, TaskInfo, executor_info, framework_info,
};
use retz_proto::scheduler::{Call, call};

use super::resources::Resources;

/// Longest ID Mesos accepts (`NAME_MAX`).
pub const MAX_ID_LEN: usize = 255;

/// Minimum executor resources required for LAUNCH_GROUP (Mesos `MIN_CPUS`/`MIN_MEM`).
pub const MIN_EXECUTOR_CPUS: f64 = 0.01;
/// Minimum executor memory in MB for LAUNCH_GROUP.
pub const MIN_EXECUTOR_MEM: f64 = 32.0;

/// The validated type of a call.
pub type CallType = call::Type;

/// Validates a call as Mesos does before dispatching it; the error is the message of a
/// 400 reply (without the "Failed to validate scheduler::Call: " prefix).
pub fn validate_call(c: &Call) -> Result<CallType, String> {
    let Some(raw) = c.r#type else {
        return Err("Expecting 'type' to be present".into());
    };
    let ty = call::Type::try_from(raw).unwrap_or(call::Type::Unknown);
    if ty == call::Type::Subscribe {
        let Some(sub) = &c.subscribe else {
            return Err("Expecting 'subscribe' to be present".into());
        };
        if id_value(sub.framework_info.id.as_ref()) != id_value(c.framework_id.as_ref()) {
            return Err("'framework_id' differs from 'subscribe.framework_info.id'".into());
        }
        return Ok(ty);
    }
    if c.framework_id.is_none() {
        return Err("Expecting 'framework_id' to be present".into());
    }
    let present = |ok: bool, name: &str| -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(format!("Expecting '{name}' to be present"))
        }
    };
    match ty {
        call::Type::Accept => present(c.accept.is_some(), "accept")?,
        call::Type::Decline => present(c.decline.is_some(), "decline")?,
        call::Type::AcceptInverseOffers => {
            present(c.accept_inverse_offers.is_some(), "accept_inverse_offers")?;
        }
        call::Type::DeclineInverseOffers => {
            present(c.decline_inverse_offers.is_some(), "decline_inverse_offers")?;
        }
        call::Type::Kill => present(c.kill.is_some(), "kill")?,
        call::Type::Shutdown => present(c.shutdown.is_some(), "shutdown")?,
        call::Type::Acknowledge => {
            let Some(ack) = &c.acknowledge else {
                return Err("Expecting 'acknowledge' to be present".into());
            };
            validate_uuid(&ack.uuid)?;
        }
        call::Type::AcknowledgeOperationStatus => {
            let Some(ack) = &c.acknowledge_operation_status else {
                return Err("Expecting 'acknowledge_operation_status' to be present".into());
            };
            validate_uuid(&ack.uuid)?;
        }
        call::Type::Reconcile => present(c.reconcile.is_some(), "reconcile")?,
        call::Type::ReconcileOperations => {
            present(c.reconcile_operations.is_some(), "reconcile_operations")?;
        }
        call::Type::Message => present(c.message.is_some(), "message")?,
        call::Type::Request => present(c.request.is_some(), "request")?,
        call::Type::UpdateFramework => present(c.update_framework.is_some(), "update_framework")?,
        call::Type::Teardown
        | call::Type::Revive
        | call::Type::Suppress
        | call::Type::Unknown
        | call::Type::Subscribe => {}
    }
    Ok(ty)
}

fn id_value(id: Option<&FrameworkId>) -> &str {
    id.map_or("", |i| i.value.as_str())
}

/// A status update uuid must be 16 raw bytes.
pub fn validate_uuid(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() == 16 {
        Ok(())
    } else {
        Err(format!(
            "Not a valid UUID: expected 16 bytes, got {} (send the bytes of 'status.uuid' back unchanged)",
            bytes.len()
        ))
    }
}

/// Mesos' rules for framework, task and executor IDs.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("ID must not be empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "ID must not be greater than {MAX_ID_LEN} characters"
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("'{id}' is disallowed"));
    }
    if id.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(format!(
            "'{}' contains invalid characters",
            id.escape_debug()
        ));
    }
    Ok(())
}

/// Mesos' rules for role names (hierarchical roles separated by `/` allowed).
pub fn validate_role(role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    if role.is_empty() {
        return Err("Empty role name is invalid".into());
    }
    for part in role.split('/') {
        if part.is_empty() || part == "." || part == ".." || part == "*" {
            return Err(format!(
                "Role '{role}' cannot include '{part}' as a path component"
            ));
        }
        if part.starts_with('-') {
            return Err(format!(
                "Role '{role}' cannot start a path component with '-'"
            ));
        }
        if part
            .chars()
            .any(|c| c.is_whitespace() || c == '\\' || c.is_control())
        {
            return Err(format!(
                "Role '{}' contains invalid characters",
                role.escape_debug()
            ));
        }
    }
    Ok(())
}

/// Whether the framework declared `cap`.
pub fn has_capability(info: &FrameworkInfo, cap: framework_info::capability::Type) -> bool {
    info.capabilities
        .iter()
        .any(|c| c.r#type == Some(cap as i32))
}

/// The roles a framework subscribes with: `roles` for MULTI_ROLE, else `role` or `*`.
pub fn framework_roles(info: &FrameworkInfo) -> Vec<String> {
    if has_capability(info, framework_info::capability::Type::MultiRole) {
        info.roles.clone()
    } else {
        vec![info.role.clone().unwrap_or_else(|| "*".into())]
    }
}

/// Validates a FrameworkInfo and the suppressed roles of a SUBSCRIBE/UPDATE_FRAMEWORK.
pub fn validate_framework_info(info: &FrameworkInfo, suppressed: &[String]) -> Result<(), String> {
    let multi_role = has_capability(info, framework_info::capability::Type::MultiRole);
    if multi_role {
        if info.role.is_some() {
            return Err(
                "'FrameworkInfo.role' must not be present when the MULTI_ROLE capability is specified"
                    .into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for role in &info.roles {
            if !seen.insert(role) {
                return Err(format!(
                    "'FrameworkInfo.roles' contains duplicate items: {role}"
                ));
            }
            validate_role(role)?;
        }
    } else {
        if !info.roles.is_empty() {
            return Err(
                "'FrameworkInfo.roles' must not be present when the MULTI_ROLE capability is not specified"
                    .into(),
            );
        }
        if let Some(role) = &info.role {
            validate_role(role)?;
        }
    }
    if let Some(id) = &info.id {
        validate_id(&id.value).map_err(|e| format!("'FrameworkInfo.id' is invalid: {e}"))?;
    }
    if let Some(t) = info.failover_timeout
        && (!t.is_finite() || !(0.0..=MAX_DURATION_SECS).contains(&t))
    {
        return Err(format!(
            "Invalid 'FrameworkInfo.failover_timeout' {t}: expected a number of seconds between 0 and {MAX_DURATION_SECS}"
        ));
    }
    let roles = framework_roles(info);
    for role in suppressed {
        if !roles.contains(role) {
            return Err(format!(
                "Suppressed role '{role}' is not contained in the list of roles"
            ));
        }
    }
    Ok(())
}

/// The longest duration Mesos can represent (int64 nanoseconds), in seconds.
pub const MAX_DURATION_SECS: f64 = 9_223_372_036.0;

/// Checks of one `TaskInfo` that need no master state, in Mesos' order: ID, kill policy,
/// resources, exactly one of command/executor.
pub fn validate_task_basics(task: &TaskInfo) -> Result<Resources, String> {
    validate_id(&task.task_id.value).map_err(|e| format!("'TaskInfo.task_id' is invalid: {e}"))?;
    if let Some(kp) = &task.kill_policy
        && kp.grace_period.as_ref().is_some_and(|g| g.nanoseconds < 0)
    {
        return Err("Task's 'kill_policy.grace_period' must be non-negative".into());
    }
    if let Some(mct) = &task.max_completion_time
        && mct.nanoseconds < 0
    {
        return Err("Task's 'max_completion_time' must be non-negative".into());
    }
    let resources = Resources::from_protos(&task.resources)
        .map_err(|e| format!("Task uses invalid resources: {e}"))?;
    if resources.is_empty() {
        return Err("Task uses no resources".into());
    }
    Ok(resources)
}

/// Checks of an `ExecutorInfo` given with a LAUNCH, filling in its framework id.
pub fn validate_executor_for_launch(
    executor: &mut ExecutorInfo,
    framework_id: &FrameworkId,
) -> Result<Resources, String> {
    validate_id(&executor.executor_id.value)
        .map_err(|e| format!("'ExecutorInfo.executor_id' is invalid: {e}"))?;
    if let Some(t) = executor.r#type
        && t != executor_info::Type::Custom as i32
    {
        return Err("'ExecutorInfo.type' must be 'CUSTOM' for the LAUNCH operation".into());
    }
    if executor.command.is_none() {
        return Err("'ExecutorInfo.command' must be set for a 'CUSTOM' executor".into());
    }
    fill_framework_id(executor, framework_id)?;
    Resources::from_protos(&executor.resources)
        .map_err(|e| format!("Executor uses invalid resources: {e}"))
}

/// Checks of the `ExecutorInfo` of a LAUNCH_GROUP: type set, DEFAULT without a command,
/// CUSTOM with one, and at least the minimum cpus, mem and some disk.
pub fn validate_executor_for_group(
    executor: &mut ExecutorInfo,
    framework_id: &FrameworkId,
) -> Result<Resources, String> {
    validate_id(&executor.executor_id.value)
        .map_err(|e| format!("'ExecutorInfo.executor_id' is invalid: {e}"))?;
    match executor.r#type.map(executor_info::Type::try_from) {
        None => return Err("'ExecutorInfo.type' must be set".into()),
        Some(Ok(executor_info::Type::Default)) => {
            if executor.command.is_some() {
                return Err("'ExecutorInfo.command' must not be set for 'DEFAULT' executor".into());
            }
        }
        Some(Ok(executor_info::Type::Custom)) => {
            if executor.command.is_none() {
                return Err("'ExecutorInfo.command' must be set for 'CUSTOM' executor".into());
            }
        }
        Some(_) => return Err("Unknown executor type".into()),
    }
    fill_framework_id(executor, framework_id)?;
    let resources = Resources::from_protos(&executor.resources)
        .map_err(|e| format!("Executor uses invalid resources: {e}"))?;
    let cpus = resources.scalar("cpus").unwrap_or(0.0);
    if cpus < MIN_EXECUTOR_CPUS {
        return Err(format!(
            "Executor '{}' uses less cpus ({cpus}) than the minimum required ({MIN_EXECUTOR_CPUS})",
            executor.executor_id.value
        ));
    }
    let mem = resources.scalar("mem").unwrap_or(0.0);
    if mem < MIN_EXECUTOR_MEM {
        return Err(format!(
            "Executor '{}' uses less memory ({mem}) than the minimum required ({MIN_EXECUTOR_MEM})",
            executor.executor_id.value
        ));
    }
    if resources.scalar("disk").is_none() {
        return Err(format!(
            "Executor '{}' has no disk resources",
            executor.executor_id.value
        ));
    }
    Ok(resources)
}

fn fill_framework_id(
    executor: &mut ExecutorInfo,
    framework_id: &FrameworkId,
) -> Result<(), String> {
    match &executor.framework_id {
        Some(f) if f != framework_id => Err(format!(
            "ExecutorInfo has an invalid FrameworkID (Actual: {} vs Expected: {})",
            f.value, framework_id.value
        )),
        _ => {
            executor.framework_id = Some(framework_id.clone());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::{CommandInfo, TaskId};

    fn call_of(ty: call::Type) -> Call {
        Call {
            r#type: Some(ty as i32),
            framework_id: Some(FrameworkId { value: "f".into() }),
            ..Default::default()
        }
    }

    #[test]
    fn calls_need_type_framework_id_and_payload() {
        let mut c = call_of(call::Type::Accept);
        c.r#type = None;
        assert_eq!(
            validate_call(&c).unwrap_err(),
            "Expecting 'type' to be present"
        );
        let mut c = call_of(call::Type::Teardown);
        c.framework_id = None;
        assert_eq!(
            validate_call(&c).unwrap_err(),
            "Expecting 'framework_id' to be present"
        );
        assert_eq!(
            validate_call(&call_of(call::Type::Accept)).unwrap_err(),
            "Expecting 'accept' to be present"
        );
        assert_eq!(
            validate_call(&call_of(call::Type::Revive)),
            Ok(call::Type::Revive)
        );
        let mut c = call_of(call::Type::Accept);
        c.r#type = Some(999);
        assert_eq!(validate_call(&c), Ok(call::Type::Unknown));
    }

    #[test]
    fn acknowledge_needs_a_16_byte_uuid() {
        let mut c = call_of(call::Type::Acknowledge);
        c.acknowledge = Some(call::Acknowledge {
            uuid: vec![1; 15],
            ..Default::default()
        });
        assert!(
            validate_call(&c)
                .unwrap_err()
                .starts_with("Not a valid UUID")
        );
        c.acknowledge.as_mut().unwrap().uuid = vec![1; 16];
        assert_eq!(validate_call(&c), Ok(call::Type::Acknowledge));
    }

    #[test]
    fn subscribe_framework_ids_must_agree() {
        let mut c = call_of(call::Type::Subscribe);
        c.subscribe = Some(call::Subscribe::default());
        assert_eq!(
            validate_call(&c).unwrap_err(),
            "'framework_id' differs from 'subscribe.framework_info.id'"
        );
        c.framework_id = None;
        assert_eq!(validate_call(&c), Ok(call::Type::Subscribe));
    }

    #[test]
    fn ids_and_roles() {
        assert!(validate_id("task-1.a_b").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_id(&"x".repeat(256)).is_err());
        assert!(validate_role("*").is_ok());
        assert!(validate_role("eng/batch").is_ok());
        for bad in ["", "-x", "a b", "a//b", "a/*", ".."] {
            assert!(validate_role(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn framework_info_rules() {
        let mut info = FrameworkInfo {
            user: "u".into(),
            name: "n".into(),
            ..Default::default()
        };
        assert!(validate_framework_info(&info, &[]).is_ok());
        assert!(validate_framework_info(&info, &["*".into()]).is_ok());
        assert!(validate_framework_info(&info, &["x".into()]).is_err());
        info.roles = vec!["a".into()];
        assert!(validate_framework_info(&info, &[]).is_err());
        info.capabilities.push(framework_info::Capability {
            r#type: Some(framework_info::capability::Type::MultiRole as i32),
        });
        assert!(validate_framework_info(&info, &["a".into()]).is_ok());
        info.roles.push("a".into());
        assert!(
            validate_framework_info(&info, &[])
                .unwrap_err()
                .contains("duplicate")
        );
        info.roles.pop();
        info.role = Some("a".into());
        assert!(validate_framework_info(&info, &[]).is_err());
        info.role = None;
        info.failover_timeout = Some(-1.0);
        assert!(validate_framework_info(&info, &[]).is_err());
        info.failover_timeout = Some(f64::NAN);
        assert!(validate_framework_info(&info, &[]).is_err());
    }

    #[test]
    fn task_and_executor_basics() {
        let task = TaskInfo {
            name: "t".into(),
            task_id: TaskId { value: "t1".into() },
            ..Default::default()
        };
        assert_eq!(
            validate_task_basics(&task).unwrap_err(),
            "Task uses no resources"
        );
        let fid = FrameworkId { value: "f".into() };
        let mut ex = ExecutorInfo::default();
        ex.executor_id.value = "e".into();
        assert!(validate_executor_for_launch(&mut ex, &fid).is_err());
        ex.command = Some(CommandInfo::default());
        assert!(validate_executor_for_launch(&mut ex, &fid).is_ok());
        assert_eq!(ex.framework_id, Some(fid.clone()));
        ex.framework_id = Some(FrameworkId { value: "g".into() });
        assert!(
            validate_executor_for_launch(&mut ex, &fid)
                .unwrap_err()
                .contains("invalid FrameworkID")
        );
        ex.framework_id = None;
        assert!(
            validate_executor_for_group(&mut ex, &fid)
                .unwrap_err()
                .contains("type")
        );
        ex.r#type = Some(executor_info::Type::Custom as i32);
        assert!(
            validate_executor_for_group(&mut ex, &fid)
                .unwrap_err()
                .contains("cpus")
        );
    }
}
