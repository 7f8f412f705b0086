//! The environment a Mesos agent gives its executors (`executorEnvironment()` in the
//! agent), parsed once at start into [`AgentEnv`].
//!
//! Required: `MESOS_AGENT_ENDPOINT`, `MESOS_FRAMEWORK_ID`, `MESOS_EXECUTOR_ID`, and the
//! sandbox (`MESOS_SANDBOX`, else `MESOS_DIRECTORY`). Optional, with the agent's defaults:
//! `MESOS_CHECKPOINT` (`0`), `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD` (5 s),
//! `MESOS_RECOVERY_TIMEOUT` (15 min), `MESOS_SUBSCRIPTION_BACKOFF_MAX` (2 s),
//! `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`. Durations use the Mesos syntax: a number
//! (possibly fractional) then `ns`, `us`, `ms`, `secs`, `mins`, `hrs`, `days` or `weeks`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What the agent told the executor through its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEnv {
    /// `ip:port` of the agent (no scheme).
    pub endpoint: String,
    /// `MESOS_FRAMEWORK_ID`.
    pub framework_id: String,
    /// `MESOS_EXECUTOR_ID`.
    pub executor_id: String,
    /// `MESOS_SANDBOX` (or `MESOS_DIRECTORY`).
    pub sandbox: PathBuf,
    /// `MESOS_CHECKPOINT == "1"`: survive agent restarts by re-subscribing.
    pub checkpoint: bool,
    /// Time between SHUTDOWN and the container's destruction.
    pub shutdown_grace: Duration,
    /// How long to keep trying to re-subscribe (checkpointing only).
    pub recovery_timeout: Duration,
    /// Longest pause between re-subscription attempts.
    pub backoff_max: Duration,
    /// Bearer token for calls, when the agent requires executor authentication.
    pub auth_token: Option<String>,
}

/// A missing or malformed agent variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A required variable is absent.
    #[error(
        "{0} is not set: retz-executor must be started by a Mesos agent (or give the \
         MESOS_* variables by hand)"
    )]
    Missing(&'static str),
    /// A variable does not parse.
    #[error("{name}={value:?} is invalid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

impl AgentEnv {
    /// Reads the agent variables from `vars`.
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Self, EnvError> {
        let get = |name: &'static str| vars.get(name).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).cloned().ok_or(EnvError::Missing(name));
        let duration = |name: &'static str, default: Duration| match get(name) {
            None => Ok(default),
            Some(value) => parse_duration(value).map_err(|why| EnvError::Invalid {
                name,
                value: value.clone(),
                why,
            }),
        };
        let endpoint = required("MESOS_AGENT_ENDPOINT")?;
        if endpoint.contains('/') || !endpoint.contains(':') {
            return Err(EnvError::Invalid {
                name: "MESOS_AGENT_ENDPOINT",
                value: endpoint,
                why: "expected host:port without scheme or path".into(),
            });
        }
        let sandbox = get("MESOS_SANDBOX")
            .or_else(|| get("MESOS_DIRECTORY"))
            .ok_or(EnvError::Missing("MESOS_SANDBOX"))?;
        Ok(Self {
            endpoint,
            framework_id: required("MESOS_FRAMEWORK_ID")?,
            executor_id: required("MESOS_EXECUTOR_ID")?,
            sandbox: PathBuf::from(sandbox),
            checkpoint: get("MESOS_CHECKPOINT").is_some_and(|v| v == "1"),
            shutdown_grace: duration(
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
                Duration::from_secs(5),
            )?,
            recovery_timeout: duration("MESOS_RECOVERY_TIMEOUT", Duration::from_secs(15 * 60))?,
            backoff_max: duration("MESOS_SUBSCRIPTION_BACKOFF_MAX", Duration::from_secs(2))?,
            auth_token: get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN").cloned(),
        })
    }
}

/// Parses a Mesos duration such as `5secs`, `1.5mins` or `100ms` (the shared grammar of
/// [`retz_proto::duration`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    retz_proto::duration::parse_duration(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const BASE: &[(&str, &str)] = &[
        ("MESOS_AGENT_ENDPOINT", "10.0.0.1:5051"),
        ("MESOS_FRAMEWORK_ID", "fw-0000"),
        ("MESOS_EXECUTOR_ID", "retz-app"),
        ("MESOS_DIRECTORY", "/var/sandbox"),
    ];

    #[test]
    fn defaults_and_overrides() {
        let env = AgentEnv::from_vars(&vars(BASE)).unwrap();
        assert_eq!(env.endpoint, "10.0.0.1:5051");
        assert_eq!(env.sandbox, PathBuf::from("/var/sandbox"));
        assert!(!env.checkpoint);
        assert_eq!(env.shutdown_grace, Duration::from_secs(5));
        assert_eq!(env.recovery_timeout, Duration::from_secs(900));
        assert_eq!(env.backoff_max, Duration::from_secs(2));
        assert_eq!(env.auth_token, None);

        let mut v = vars(BASE);
        v.extend(vars(&[
            ("MESOS_SANDBOX", "/mnt/mesos/sandbox"),
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "1.5secs"),
            ("MESOS_RECOVERY_TIMEOUT", "2mins"),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "500ms"),
            ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "tok"),
        ]));
        let env = AgentEnv::from_vars(&v).unwrap();
        assert_eq!(env.sandbox, PathBuf::from("/mnt/mesos/sandbox"));
        assert!(env.checkpoint);
        assert_eq!(env.shutdown_grace, Duration::from_millis(1500));
        assert_eq!(env.recovery_timeout, Duration::from_secs(120));
        assert_eq!(env.backoff_max, Duration::from_millis(500));
        assert_eq!(env.auth_token.as_deref(), Some("tok"));
    }

    #[test]
    fn errors_name_the_variable() {
        let mut v = vars(BASE);
        v.remove("MESOS_EXECUTOR_ID");
        let msg = AgentEnv::from_vars(&v).unwrap_err().to_string();
        assert!(
            msg.contains("MESOS_EXECUTOR_ID") && msg.contains("Mesos agent"),
            "{msg}"
        );
        let mut v = vars(BASE);
        v.insert(
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".into(),
            "5 parsecs".into(),
        );
        let msg = AgentEnv::from_vars(&v).unwrap_err().to_string();
        assert!(
            msg.contains("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD") && msg.contains("parsecs"),
            "{msg}"
        );
        let mut v = vars(BASE);
        v.insert("MESOS_AGENT_ENDPOINT".into(), "http://x:1/".into());
        assert!(AgentEnv::from_vars(&v).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5secs").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(
            parse_duration("1weeks").unwrap(),
            Duration::from_secs(604800)
        );
        assert_eq!(parse_duration("3ns").unwrap(), Duration::from_nanos(3));
        for bad in ["", "secs", "5 hours", "-1secs", "1e999secs", "..secs"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn duration_parser_never_panics(s in "\\PC{0,20}") {
            let _ = parse_duration(&s);
        }
    }
}
