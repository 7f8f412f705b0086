//! Tasks launched without Retz task data: a plain Mesos `CommandInfo` becomes an
//! equivalent [`TaskSpec`] ([`from_plain_command`]) that never pins.
//!
//! The task contract itself ([`TaskSpec`], [`ValidSpec`], [`MemPolicy`], [`SpecError`])
//! lives in `retz_proto::task`, shared with `retz-server`; it is re-exported here.

use std::collections::BTreeMap;

use retz_placement::AffinityPolicy;
pub use retz_proto::task::{
    DEFAULT_APP, MemPolicy, SpecError, TaskSpec, ValidSpec, is_safe_component,
};

use crate::subst::shell_quote;

/// The spec equivalent to a plain Mesos `CommandInfo` task: no pinning, no memory
/// policy, resources from the task's scalar resources (CPUs rounded up).
///
/// With `shell = false` Mesos runs `value` with `arguments` as argv; here that becomes
/// `exec 'value' 'arg1' …` under `sh -c` (`arguments[0]`, argv\[0\], is dropped, as
/// `exec` sets argv\[0\] to the program).
pub fn from_plain_command(cmd: &PlainCommand) -> TaskSpec {
    let command = if cmd.shell {
        cmd.value.clone()
    } else {
        let mut words = vec!["exec".to_owned(), shell_quote(&cmd.value)];
        words.extend(cmd.arguments.iter().skip(1).map(|a| shell_quote(a)));
        words.join(" ")
    };
    TaskSpec {
        command,
        env: cmd.env.clone(),
        cpus: scalar_to_u32(cmd.cpus),
        mem_mb: scalar_to_u64(cmd.mem_mb),
        gpus: scalar_to_u32(cmd.gpus),
        gpu_ids: None,
        cpuset: None,
        mem_nodes: None,
        affinity: AffinityPolicy::None,
        mem_policy: None,
        pin_required: false,
        job_id: None,
        app: None,
        ports: Vec::new(),
        user: None,
    }
}

/// The parts of a Mesos `CommandInfo` task the executor uses (kept free of proto types).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlainCommand {
    /// `CommandInfo.value`.
    pub value: String,
    /// `CommandInfo.shell` (Mesos default `true`).
    pub shell: bool,
    /// `CommandInfo.arguments` (argv, including argv\[0\]).
    pub arguments: Vec<String>,
    /// `CommandInfo.environment` (VALUE variables).
    pub env: BTreeMap<String, String>,
    /// Scalar `cpus` resource of the task.
    pub cpus: f64,
    /// Scalar `mem` resource of the task (MB).
    pub mem_mb: f64,
    /// Scalar `gpus` resource of the task.
    pub gpus: f64,
}

fn scalar_to_u32(v: f64) -> u32 {
    if v.is_finite() && v > 0.0 {
        v.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

fn scalar_to_u64(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // u64::MAX is not exactly representable; saturate on the way.
        v.ceil().min(1.8e19) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_command_conversion() {
        let shell = from_plain_command(&PlainCommand {
            value: "echo hi".into(),
            shell: true,
            cpus: 0.5,
            mem_mb: 100.2,
            ..Default::default()
        });
        assert_eq!(shell.command, "echo hi");
        assert_eq!(shell.cpus, 1);
        assert_eq!(shell.mem_mb, 101);
        assert_eq!(shell.affinity, AffinityPolicy::None);
        let argv = from_plain_command(&PlainCommand {
            value: "/bin/echo".into(),
            shell: false,
            arguments: vec!["echo".into(), "it's".into(), "$(x)".into()],
            cpus: f64::NAN,
            ..Default::default()
        });
        assert_eq!(argv.command, r#"exec /bin/echo 'it'\''s' '$(x)'"#);
        assert_eq!(argv.cpus, 0);
    }
}
