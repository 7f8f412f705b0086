//! Strict reading of request bodies: [`from_json`] refuses a field the API does not
//! know at any depth (inside `job`, `job.resources`, `application`...), naming it by its
//! path, the same way `deny_unknown_fields` refuses one at the top level. The types stay
//! lenient for what they read back (stored rows, answers of newer servers); only what
//! clients send is checked.

use serde::de::DeserializeOwned;

/// Why a body was refused.
#[derive(Debug, thiserror::Error)]
pub enum StrictError {
    /// Not JSON, or not the expected shape (serde's message, with line and column).
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A field the API does not know, by its path (`job.foo`, `job.resources.bar`).
    #[error("unknown field `{0}`; remove it (field names are case-sensitive camelCase)")]
    Unknown(String),
}

/// Reads `body` as a `T`, refusing unknown fields at every depth.
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, StrictError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut unknown: Option<String> = None;
    let value: T = serde_ignored::deserialize(&mut de, |path| {
        if unknown.is_none() {
            unknown = Some(path.to_string());
        }
    })?;
    de.end()?;
    match unknown {
        Some(path) => Err(StrictError::Unknown(path)),
        None => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LoadAppRequest, ScheduleRequest};

    #[test]
    fn unknown_fields_are_named_at_every_depth() {
        let e = from_json::<ScheduleRequest>(br#"{"job":{"appid":"a","cmd":"ls","foo":1}}"#)
            .unwrap_err();
        assert!(e.to_string().starts_with("unknown field `job.foo`"), "{e}");
        let e = from_json::<ScheduleRequest>(
            br#"{"job":{"appid":"a","cmd":"ls","resources":{"cpu":1,"cpus":2}}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `cpus`"), "{e}");
        let e = from_json::<LoadAppRequest>(br#"{"application":{"appid":"a","bogus":true}}"#)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("unknown field `application.bogus`"),
            "{e}"
        );
        let e =
            from_json::<ScheduleRequest>(br#"{"job":{"appid":"a","cmd":"ls"},"x":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
        let e = from_json::<ScheduleRequest>(br#"{"job":{"appid":"a","cmd":"ls"}} trailing"#)
            .unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
    }

    #[test]
    fn every_field_of_the_original_api_is_accepted() {
        // Job.java and Application.java as the original client sent them.
        let job = br#"{"job":{"id":0,"name":"n","appid":"a","cmd":"ls","tags":["t"],
            "env":{"E":"F"},"resources":{"cpu":1,"memMB":32,"gpu":0,
            "ports":0,"diskMB":32,"nodes":1},"priority":0,"attributes":"x","scheduled":null,
            "started":null,"finished":null,"result":-1,"reason":null,"retry":0,"url":null,
            "taskId":null,"slaveId":null,"state":"CREATED"}}"#;
        from_json::<ScheduleRequest>(job).unwrap();
        let props = br#"{"job":{"appid":"a","cmd":"ls","props":{"K":"V"}}}"#;
        from_json::<ScheduleRequest>(props).unwrap();
        let app = br#"{"application":{"appid":"a","files":[],"largeFiles":[],"user":null,
            "owner":"","gracePeriod":0,"container":{"type":"mesos"},"enabled":true}}"#;
        from_json::<LoadAppRequest>(app).unwrap();
    }
}
