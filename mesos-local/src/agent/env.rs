//! The environment an agent gives an executor (or a command task): the `MESOS_*`
//! variables of Mesos' `executorEnvironment()`, then the `CommandInfo` environment.
//!
//! Pure: builds a list of `(name, value)` pairs; the process module applies it on top of
//! the agent's own environment (which executors inherit, as in Mesos).
//!
//! Invariants: a variable set by `CommandInfo.environment` overrides an agent-generated
//! one of the same name (later entries win when applied in order), except
//! `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, which comes last: the executor always gets the
//! token the agent made for it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use retz_proto::mesos::Environment;
use retz_proto::mesos::environment::variable::Type as VariableType;

use super::switch_user::{JobUser, user_environment};

/// The variable holding an executor's token for the executor API.
pub const AUTHENTICATION_TOKEN_VAR: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// `--recovery_timeout` of a Mesos agent (default), exported when checkpointing.
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// `--executor_reregistration_timeout` of a Mesos agent (default), exported as
/// `MESOS_SUBSCRIPTION_BACKOFF_MAX` when checkpointing.
pub const SUBSCRIPTION_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the environment of one executor is made of.
#[derive(Debug, Clone)]
pub struct EnvContext<'a> {
    /// `MESOS_FRAMEWORK_ID`.
    pub framework_id: &'a str,
    /// `MESOS_EXECUTOR_ID`.
    pub executor_id: &'a str,
    /// `MESOS_DIRECTORY` and `MESOS_SANDBOX` (no container image, so they are equal).
    pub directory: &'a Path,
    /// `MESOS_AGENT_ENDPOINT` (`ip:port`) and the address in `MESOS_SLAVE_PID`.
    pub agent_endpoint: SocketAddr,
    /// `MESOS_SLAVE_ID`.
    pub agent_id: &'a str,
    /// `MESOS_CHECKPOINT`, plus the recovery variables when true.
    pub checkpoint: bool,
    /// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD`.
    pub shutdown_grace_period: Duration,
    /// `CommandInfo.environment`, applied after the agent's variables.
    pub command_environment: Option<&'a Environment>,
    /// `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, applied last.
    pub authentication_token: Option<&'a str>,
    /// The user a command task runs as: `USER`, `LOGNAME`, `HOME` (before the command's
    /// variables).
    pub user: Option<&'a JobUser>,
}

/// A `CommandInfo.environment` variable this agent cannot provide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// Secrets need a secret resolver module, which the local agent does not have.
    #[error(
        "environment variable {name:?} is a SECRET: the local agent has no secret resolver; pass the value as a VALUE variable"
    )]
    Secret {
        /// The variable.
        name: String,
    },
    /// The variable name cannot be exported (empty, or holds `=` or NUL).
    #[error(
        "environment variable name {name:?} is not valid: it must be non-empty and hold no '=' or NUL"
    )]
    BadName {
        /// The variable.
        name: String,
    },
    /// The value holds a NUL byte, which cannot be passed to a process.
    #[error("environment variable {name:?} has a value with a NUL byte")]
    BadValue {
        /// The variable.
        name: String,
    },
}

/// The environment of an executor, in the order to apply it.
pub fn executor_environment(ctx: &EnvContext<'_>) -> Result<Vec<(String, String)>, EnvError> {
    let dir = ctx.directory.to_string_lossy().into_owned();
    let mut env = vec![
        (
            "MESOS_FRAMEWORK_ID".to_string(),
            ctx.framework_id.to_string(),
        ),
        ("MESOS_EXECUTOR_ID".to_string(), ctx.executor_id.to_string()),
        ("MESOS_DIRECTORY".to_string(), dir.clone()),
        ("MESOS_SANDBOX".to_string(), dir),
        (
            "MESOS_AGENT_ENDPOINT".to_string(),
            ctx.agent_endpoint.to_string(),
        ),
        ("MESOS_SLAVE_ID".to_string(), ctx.agent_id.to_string()),
        (
            "MESOS_SLAVE_PID".to_string(),
            format!("slave(1)@{}", ctx.agent_endpoint),
        ),
        (
            "MESOS_CHECKPOINT".to_string(),
            if ctx.checkpoint { "1" } else { "0" }.to_string(),
        ),
        ("MESOS_HTTP_COMMAND_EXECUTOR".to_string(), "0".to_string()),
        (
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD".to_string(),
            format_duration(ctx.shutdown_grace_period),
        ),
    ];
    if ctx.checkpoint {
        env.push((
            "MESOS_RECOVERY_TIMEOUT".to_string(),
            format_duration(RECOVERY_TIMEOUT),
        ));
        env.push((
            "MESOS_SUBSCRIPTION_BACKOFF_MAX".to_string(),
            format_duration(SUBSCRIPTION_BACKOFF_MAX),
        ));
    }
    env.push(("LIBPROCESS_PORT".to_string(), "0".to_string()));
    if let Some(user) = ctx.user {
        env.extend(user_environment(user));
    }
    if let Some(environment) = ctx.command_environment {
        env.extend(command_environment(environment)?);
    }
    if let Some(token) = ctx.authentication_token {
        env.push((AUTHENTICATION_TOKEN_VAR.to_string(), token.to_string()));
    }
    Ok(env)
}

/// The variables of a `CommandInfo.environment`, checked.
pub fn command_environment(environment: &Environment) -> Result<Vec<(String, String)>, EnvError> {
    let mut out = Vec::with_capacity(environment.variables.len());
    for var in &environment.variables {
        if var.r#type() == VariableType::Secret {
            return Err(EnvError::Secret {
                name: var.name.clone(),
            });
        }
        if var.name.is_empty() || var.name.contains('=') || var.name.contains('\0') {
            return Err(EnvError::BadName {
                name: var.name.clone(),
            });
        }
        let value = var.value().to_string();
        if value.contains('\0') {
            return Err(EnvError::BadValue {
                name: var.name.clone(),
            });
        }
        out.push((var.name.clone(), value));
    }
    Ok(out)
}

/// Formats a duration as stout does (`5secs`, `1.5mins`, `500ms`, `15mins`): the largest
/// unit the duration reaches, with at most 6 significant digits.
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(&str, f64); 8] = [
        ("weeks", 604_800e9),
        ("days", 86_400e9),
        ("hrs", 3_600e9),
        ("mins", 60e9),
        ("secs", 1e9),
        ("ms", 1e6),
        ("us", 1e3),
        ("ns", 1.0),
    ];
    let nanos = d.as_nanos() as f64;
    let (unit, scale) = UNITS
        .iter()
        .copied()
        .find(|(_, scale)| nanos >= *scale)
        .unwrap_or(("ns", 1.0));
    format!("{}{unit}", significant6(nanos / scale))
}

/// `value` with at most 6 significant digits and no trailing zeros (like `ostream <<`).
fn significant6(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let digits_before = value.abs().log10().floor() as i32 + 1;
    let decimals = (6 - digits_before).clamp(0, 6) as usize;
    let mut s = format!("{value:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::mesos::environment::Variable;

    #[test]
    fn durations_print_like_stout() {
        assert_eq!(format_duration(Duration::from_secs(5)), "5secs");
        assert_eq!(format_duration(Duration::from_secs(90)), "1.5mins");
        assert_eq!(format_duration(Duration::from_secs(900)), "15mins");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(2)), "2secs");
        assert_eq!(format_duration(Duration::ZERO), "0ns");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2hrs");
        assert_eq!(
            format_duration(Duration::from_nanos(1_234_567)),
            "1.23457ms"
        );
    }

    fn var(name: &str, value: &str) -> Variable {
        Variable {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    #[test]
    fn environment_has_the_mesos_variables_and_command_ones_win() {
        let environment = Environment {
            variables: vec![
                var("FOO", "bar"),
                var("MESOS_SANDBOX", "/override"),
                var("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "forged"),
                var("HOME", "/custom"),
            ],
        };
        let user = JobUser {
            name: "job".into(),
            uid: 1000,
            gid: 1000,
            groups: vec![1000],
            home: "/home/job".into(),
        };
        let ctx = EnvContext {
            framework_id: "F",
            executor_id: "E",
            directory: Path::new("/w/run"),
            agent_endpoint: "127.0.0.1:5051".parse().unwrap(),
            agent_id: "M-S0",
            checkpoint: true,
            shutdown_grace_period: Duration::from_secs(5),
            command_environment: Some(&environment),
            authentication_token: Some("tok"),
            user: Some(&user),
        };
        let env = executor_environment(&ctx).unwrap();
        let get = |k: &str| {
            env.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("MESOS_FRAMEWORK_ID"), Some("F"));
        assert_eq!(get("MESOS_EXECUTOR_ID"), Some("E"));
        assert_eq!(get("MESOS_DIRECTORY"), Some("/w/run"));
        assert_eq!(get("MESOS_SANDBOX"), Some("/override"));
        assert_eq!(get("MESOS_AGENT_ENDPOINT"), Some("127.0.0.1:5051"));
        assert_eq!(get("MESOS_SLAVE_PID"), Some("slave(1)@127.0.0.1:5051"));
        assert_eq!(get("MESOS_CHECKPOINT"), Some("1"));
        assert_eq!(get("MESOS_HTTP_COMMAND_EXECUTOR"), Some("0"));
        assert_eq!(get("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"), Some("5secs"));
        assert_eq!(get("MESOS_RECOVERY_TIMEOUT"), Some("15mins"));
        assert_eq!(get("MESOS_SUBSCRIPTION_BACKOFF_MAX"), Some("2secs"));
        assert_eq!(get("LIBPROCESS_PORT"), Some("0"));
        assert_eq!(get("FOO"), Some("bar"));
        // the agent's token wins over the command's, the command's HOME over the user's
        assert_eq!(get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"), Some("tok"));
        assert_eq!(get("USER"), Some("job"));
        assert_eq!(get("HOME"), Some("/custom"));

        let no_ckpt = EnvContext {
            checkpoint: false,
            command_environment: None,
            authentication_token: None,
            user: None,
            ..ctx
        };
        let env = executor_environment(&no_ckpt).unwrap();
        assert!(env.iter().all(|(n, _)| n != "MESOS_RECOVERY_TIMEOUT"));
        assert!(
            env.iter()
                .all(|(n, _)| n != AUTHENTICATION_TOKEN_VAR && n != "USER")
        );
        assert!(env.iter().any(|(n, v)| n == "MESOS_CHECKPOINT" && v == "0"));
    }

    #[test]
    fn secrets_and_bad_names_are_refused() {
        let mut secret = var("S", "");
        secret.r#type = Some(VariableType::Secret as i32);
        let e = command_environment(&Environment {
            variables: vec![secret],
        })
        .unwrap_err();
        assert!(matches!(e, EnvError::Secret { .. }));
        for bad in ["", "A=B", "A\0"] {
            let e = command_environment(&Environment {
                variables: vec![var(bad, "x")],
            })
            .unwrap_err();
            assert!(matches!(e, EnvError::BadName { .. }), "{bad:?}");
        }
        let e = command_environment(&Environment {
            variables: vec![var("A", "x\0y")],
        })
        .unwrap_err();
        assert!(matches!(e, EnvError::BadValue { .. }));
    }
}
