//! Validation of executor API calls, as the Mesos agent's `validateExecutorCall` does it.
//!
//! Pure. A failed check is answered `400 Bad Request` with the message returned here.
//! (Whether the executor is known or subscribed is decided later, against agent state.)

use retz_proto::executor::{Call, call};
use retz_proto::mesos::TaskState;
use retz_proto::mesos::task_status::Source;

/// Checks a status update uuid: exactly 16 bytes with a version (1 to 5) that boost, and
/// so stout's `UUID::fromBytes`, recognises.
pub fn validate_uuid(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() != 16 {
        return Err(format!(
            "Invalid UUID: expected 16 bytes, got {} (a uuid is sent as its raw bytes, base64 in JSON, not as text)",
            bytes.len()
        ));
    }
    let version = bytes[6] >> 4;
    if !(1..=5).contains(&version) {
        return Err(format!(
            "Invalid UUID: unrecognised version {version} (byte 6 high nibble must be 1 to 5)"
        ));
    }
    Ok(())
}

/// The call's type after validation.
pub fn validate_call(c: &Call) -> Result<call::Type, String> {
    let Some(raw) = c.r#type else {
        return Err("Expecting 'type' to be present".into());
    };
    let Ok(ty) = call::Type::try_from(raw) else {
        return Err(format!("Unknown call type {raw}"));
    };
    match ty {
        call::Type::Unknown => Err("Expecting 'type' to be known (got UNKNOWN)".into()),
        call::Type::Subscribe => {
            if c.subscribe.is_none() {
                return Err("Expecting 'subscribe' to be present".into());
            }
            Ok(ty)
        }
        call::Type::Update => {
            let Some(update) = &c.update else {
                return Err("Expecting 'update' to be present".into());
            };
            let status = &update.status;
            if let Some(eid) = &status.executor_id
                && eid.value != c.executor_id.value
            {
                return Err(format!(
                    "ExecutorID in Call: {} does not match ExecutorID in TaskStatus: {}",
                    c.executor_id.value, eid.value
                ));
            }
            if status.source() != Source::Executor || status.source.is_none() {
                return Err(format!(
                    "Received Call from executor with invalid source, reason: source must be SOURCE_EXECUTOR, got {}",
                    status.source.map_or("none".to_string(), |_| status
                        .source()
                        .as_str_name()
                        .to_string())
                ));
            }
            let Some(uuid) = &status.uuid else {
                return Err("Expecting 'uuid' to be present".into());
            };
            validate_uuid(uuid)?;
            if status.state() == TaskState::TaskStaging {
                return Err("Received TASK_STAGING from executor".into());
            }
            Ok(ty)
        }
        call::Type::Message => {
            if c.message.is_none() {
                return Err("Expecting 'message' to be present".into());
            }
            Ok(ty)
        }
        call::Type::Heartbeat => Ok(ty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::{ExecutorId, FrameworkId, TaskId, TaskStatus};

    fn v4() -> Vec<u8> {
        uuid::Uuid::new_v4().as_bytes().to_vec()
    }

    fn update(status: TaskStatus) -> Call {
        Call {
            executor_id: ExecutorId { value: "e".into() },
            framework_id: FrameworkId { value: "f".into() },
            r#type: Some(call::Type::Update as i32),
            update: Some(call::Update { status }),
            ..Default::default()
        }
    }

    fn good_status() -> TaskStatus {
        TaskStatus {
            task_id: TaskId { value: "t".into() },
            state: TaskState::TaskRunning as i32,
            source: Some(Source::Executor as i32),
            uuid: Some(v4()),
            executor_id: Some(ExecutorId { value: "e".into() }),
            ..Default::default()
        }
    }

    #[test]
    fn uuids() {
        assert!(validate_uuid(&v4()).is_ok());
        let with_version = |v: u8| {
            let mut b = [0x5a; 16];
            b[6] = (v << 4) | 0x0a;
            b
        };
        for v in 1..=5 {
            assert!(validate_uuid(&with_version(v)).is_ok(), "version {v}");
        }
        for v in [0, 6, 7, 15] {
            assert!(validate_uuid(&with_version(v)).is_err(), "version {v}");
        }
        assert!(validate_uuid(&[0; 16]).is_err(), "nil uuid has version 0");
        // the 36 bytes of a uuid's text form
        let text = uuid::Uuid::new_v4().to_string();
        let e = validate_uuid(text.as_bytes()).unwrap_err();
        assert!(e.contains("got 36"), "{e}");
    }

    #[test]
    fn update_checks() {
        assert_eq!(
            validate_call(&update(good_status())),
            Ok(call::Type::Update)
        );
        let mut s = good_status();
        s.uuid = Some(vec![1, 2, 3]);
        assert!(
            validate_call(&update(s))
                .unwrap_err()
                .contains("Invalid UUID")
        );
        let mut s = good_status();
        s.uuid = None;
        assert!(validate_call(&update(s)).unwrap_err().contains("uuid"));
        let mut s = good_status();
        s.source = Some(Source::Agent as i32);
        assert!(validate_call(&update(s)).unwrap_err().contains("source"));
        let mut s = good_status();
        s.source = None;
        assert!(validate_call(&update(s)).unwrap_err().contains("source"));
        let mut s = good_status();
        s.state = TaskState::TaskStaging as i32;
        assert!(
            validate_call(&update(s))
                .unwrap_err()
                .contains("TASK_STAGING")
        );
        let mut s = good_status();
        s.executor_id = Some(ExecutorId {
            value: "other".into(),
        });
        assert!(
            validate_call(&update(s))
                .unwrap_err()
                .contains("does not match")
        );
        let mut s = good_status();
        s.executor_id = None;
        assert!(validate_call(&update(s)).is_ok());
    }

    #[test]
    fn payload_presence() {
        let mut c = update(good_status());
        c.update = None;
        assert!(validate_call(&c).is_err());
        c.r#type = None;
        assert!(validate_call(&c).unwrap_err().contains("type"));
        c.r#type = Some(call::Type::Subscribe as i32);
        assert!(validate_call(&c).unwrap_err().contains("subscribe"));
        c.r#type = Some(call::Type::Message as i32);
        assert!(validate_call(&c).unwrap_err().contains("message"));
        c.r#type = Some(call::Type::Heartbeat as i32);
        assert_eq!(validate_call(&c), Ok(call::Type::Heartbeat));
        c.r#type = Some(99);
        assert!(validate_call(&c).is_err());
        c.r#type = Some(0);
        assert!(validate_call(&c).is_err());
    }
}
