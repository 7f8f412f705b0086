//! The Retz task spec: what the scheduler puts in `TaskInfo.data` (JSON) for each task.
//!
//! [`TaskSpec`] is the wire contract between `retz-server` and `retz-executor`; its JSON
//! field names are stable. [`TaskSpec::from_json`] parses it and [`TaskSpec::validate`]
//! checks every field the executor will act on (command, env names, id lists, app name),
//! producing a [`ValidSpec`] with the lists parsed, so nothing downstream re-parses
//! outside input. A task launched with a plain Mesos `CommandInfo` (no `data`) is turned
//! into an equivalent spec by [`TaskSpec::from_plain_command`], which never pins.
//!
//! Invariants of a [`ValidSpec`]: the command is non-empty and free of NUL bytes; env
//! names are non-empty, contain no `=` or NUL, and values contain no NUL; the app name is
//! a single safe path component; ports are distinct and non-zero.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::idlist::{IdList, IdListError};
use crate::subst::shell_quote;

/// The Retz task spec carried in `TaskInfo.data` as JSON.
///
/// Example:
/// ```json
/// {"command":"java -Dthreads=$RETZ_CPU -jar app.jar","env":{"X":"1"},"cpus":4,
///  "mem_mb":8192,"gpus":0,"cpuset":"8-11","mem_nodes":"1","affinity":"numa-strict",
///  "mem_policy":"bind","pin_required":true,"job_id":42,"app":"asakusa",
///  "ports":[31000,31001]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Shell command, run as `sh -c <command>` after `$RETZ_*` substitution.
    pub command: String,
    /// Extra environment for the job; `$RETZ_*` in values is substituted literally.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Number of CPUs granted (exported as `RETZ_CPU`).
    pub cpus: u32,
    /// Memory granted in MB (exported as `RETZ_MEM`; the cgroup memory limit when enabled).
    pub mem_mb: u64,
    /// GPUs granted (exported as `RETZ_GPU`).
    #[serde(default)]
    pub gpus: u32,
    /// Exact CPU ids granted, Linux list format (`8-11,40-43`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// NUMA node ids whose memory the job uses, Linux list format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_nodes: Option<String>,
    /// The affinity policy the placement used.
    pub affinity: Affinity,
    /// Memory policy for the job; when absent it follows from `affinity`
    /// (see [`Affinity::default_mem_policy`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_policy: Option<MemPolicy>,
    /// Fail the task instead of running it unpinned when pinning is impossible.
    #[serde(default)]
    pub pin_required: bool,
    /// The Retz job id (exported as `RETZ_JOB_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// Application name: its files live in `$MESOS_SANDBOX/app/<app>` (`RETZ_PVNAME`),
    /// unpacked once per executor. Also accepted as `pvname`. Absent: `default`.
    #[serde(default, alias = "pvname", skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Port numbers granted (the task's `ports` resource), exported in this order as
    /// `PORT0`, `PORT1`, ... and as the comma list `RETZ_PORTS`. Absent in specs of
    /// jobs that asked for none (and in specs written before ports existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// The Unix user the job runs as (never root; see the executor's security notes).
    /// Absent: the executor's default job user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Affinity policy (the cluster's, the application's or the job's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Affinity {
    /// One NUMA node or wait.
    NumaStrict,
    /// Fewest nodes, closest by distance.
    NumaPrefer,
    /// Balance across nodes.
    Spread,
    /// No pinning (Mesos-only behaviour).
    None,
}

/// NUMA memory policy applied with `set_mempolicy(2)` before exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemPolicy {
    /// `MPOL_BIND`: allocate only on the nodes.
    Bind,
    /// `MPOL_PREFERRED`: prefer the first node, fall back elsewhere.
    Preferred,
    /// `MPOL_INTERLEAVE`: interleave pages over the nodes.
    Interleave,
    /// Leave the default (local allocation).
    None,
}

impl Affinity {
    /// The policy name as written in specs and configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Affinity::NumaStrict => "numa-strict",
            Affinity::NumaPrefer => "numa-prefer",
            Affinity::Spread => "spread",
            Affinity::None => "none",
        }
    }

    /// Whether the policy pins the job to its cpuset.
    pub fn pins(self) -> bool {
        self != Affinity::None
    }

    /// Memory policy used when the spec names none: `numa-strict` → bind,
    /// `numa-prefer` → preferred, `spread` → interleave, `none` → none.
    pub fn default_mem_policy(self) -> MemPolicy {
        match self {
            Affinity::NumaStrict => MemPolicy::Bind,
            Affinity::NumaPrefer => MemPolicy::Preferred,
            Affinity::Spread => MemPolicy::Interleave,
            Affinity::None => MemPolicy::None,
        }
    }
}

impl fmt::Display for Affinity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MemPolicy {
    /// The policy name as written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            MemPolicy::Bind => "bind",
            MemPolicy::Preferred => "preferred",
            MemPolicy::Interleave => "interleave",
            MemPolicy::None => "none",
        }
    }
}

impl fmt::Display for MemPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task spec was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `TaskInfo.data` is not a Retz task spec.
    #[error(
        "TaskInfo.data is not a Retz task spec: {0} (expected a JSON object with at least \
         `command`, `cpus`, `mem_mb` and `affinity`)"
    )]
    Json(#[from] serde_json::Error),
    /// The command is empty or holds a NUL byte.
    #[error("task spec field `command` {0}")]
    Command(&'static str),
    /// An env entry cannot be exported.
    #[error("task spec field `env`: variable `{name}` {problem}")]
    Env { name: String, problem: &'static str },
    /// `cpuset` or `mem_nodes` is not a valid list.
    #[error("task spec field `{field}`: {source}")]
    List {
        field: &'static str,
        source: IdListError,
    },
    /// A port is 0 or given twice.
    #[error(
        "task spec field `ports`: port {port} {problem} (ports must be distinct numbers \
         1-65535, as granted from the agent's `ports` resource)"
    )]
    Ports { port: u16, problem: &'static str },
    /// The app name is not a single safe path component.
    #[error(
        "task spec field `app` = {name:?} is not a usable directory name (use 1-200 \
         characters, no `/`, NUL or control characters, not `.` or `..`)"
    )]
    App { name: String },
}

/// A validated spec: the original plus the parsed lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSpec {
    /// The spec as received.
    pub spec: TaskSpec,
    /// Parsed `cpuset`.
    pub cpuset: Option<IdList>,
    /// Parsed `mem_nodes`.
    pub mem_nodes: Option<IdList>,
    /// The app name (default `default`).
    pub app: String,
    /// The memory policy in force (explicit or derived from the affinity policy).
    pub mem_policy: MemPolicy,
}

/// Application name used when the spec names none.
pub const DEFAULT_APP: &str = "default";

impl TaskSpec {
    /// Parses `TaskInfo.data`.
    pub fn from_json(data: &[u8]) -> Result<Self, SpecError> {
        Ok(serde_json::from_slice(data)?)
    }

    /// Serialises to the JSON carried in `TaskInfo.data`.
    pub fn to_json(&self) -> Vec<u8> {
        // A TaskSpec holds only strings, integers, bools and string maps: it always
        // serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks every field the executor acts on.
    pub fn validate(self) -> Result<ValidSpec, SpecError> {
        if self.command.trim().is_empty() {
            return Err(SpecError::Command(
                "is empty: give the shell command to run",
            ));
        }
        if self.command.contains('\0') {
            return Err(SpecError::Command("contains a NUL byte"));
        }
        for (name, value) in &self.env {
            let problem = if name.is_empty() {
                Some("has an empty name")
            } else if name.contains('=') || name.contains('\0') {
                Some("has `=` or NUL in its name")
            } else if value.contains('\0') {
                Some("has a NUL byte in its value")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(SpecError::Env {
                    name: name.clone(),
                    problem,
                });
            }
        }
        let parse = |field: &'static str, v: &Option<String>| {
            v.as_deref()
                .map(IdList::parse)
                .transpose()
                .map_err(|source| SpecError::List { field, source })
        };
        let mut seen = std::collections::BTreeSet::new();
        for &port in &self.ports {
            if port == 0 {
                return Err(SpecError::Ports {
                    port,
                    problem: "is not a port",
                });
            }
            if !seen.insert(port) {
                return Err(SpecError::Ports {
                    port,
                    problem: "is given twice",
                });
            }
        }
        let cpuset = parse("cpuset", &self.cpuset)?;
        let mem_nodes = parse("mem_nodes", &self.mem_nodes)?;
        let app = match &self.app {
            None => DEFAULT_APP.to_owned(),
            Some(name) if is_safe_component(name) => name.clone(),
            Some(name) => return Err(SpecError::App { name: name.clone() }),
        };
        let mem_policy = self
            .mem_policy
            .unwrap_or_else(|| self.affinity.default_mem_policy());
        Ok(ValidSpec {
            spec: self,
            cpuset,
            mem_nodes,
            app,
            mem_policy,
        })
    }

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
            cpuset: None,
            mem_nodes: None,
            affinity: Affinity::None,
            mem_policy: None,
            pin_required: false,
            job_id: None,
            app: None,
            ports: Vec::new(),
            user: None,
        }
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

/// Whether `name` can be used as one directory name (app names, escaped task ids).
pub(crate) fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TaskSpec {
        TaskSpec {
            command: "echo $RETZ_CPU".into(),
            env: BTreeMap::from([("A".into(), "x=$RETZ_CPU".into())]),
            cpus: 2,
            mem_mb: 512,
            gpus: 0,
            cpuset: Some("0-1".into()),
            mem_nodes: Some("0".into()),
            affinity: Affinity::NumaStrict,
            mem_policy: None,
            pin_required: true,
            job_id: Some(7),
            app: Some("asakusa".into()),
            ports: vec![31000, 31002],
            user: Some("alice".into()),
        }
    }

    #[test]
    fn json_round_trip_and_field_names() {
        let spec = sample();
        let json = spec.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        for field in [
            "\"command\"",
            "\"env\"",
            "\"cpus\"",
            "\"mem_mb\"",
            "\"gpus\"",
            "\"cpuset\"",
            "\"mem_nodes\"",
            "\"affinity\":\"numa-strict\"",
            "\"pin_required\"",
            "\"job_id\"",
            "\"app\"",
            "\"ports\":[31000,31002]",
        ] {
            assert!(text.contains(field), "{field} missing in {text}");
        }
        assert_eq!(TaskSpec::from_json(&json).unwrap(), spec);
    }

    #[test]
    fn minimal_json_and_pvname_alias() {
        let spec = TaskSpec::from_json(
            br#"{"command":"true","cpus":1,"mem_mb":32,"affinity":"spread",
                 "mem_policy":"interleave","pvname":"app1","unknown_field":1}"#,
        )
        .unwrap();
        assert_eq!(spec.app.as_deref(), Some("app1"));
        assert_eq!(spec.mem_policy, Some(MemPolicy::Interleave));
        assert!(spec.env.is_empty());
        assert!(!spec.pin_required);
        let v = spec.validate().unwrap();
        assert_eq!(v.app, "app1");
        assert_eq!(v.cpuset, None);
        assert!(v.spec.ports.is_empty(), "specs without ports parse");
        let text = String::from_utf8(v.spec.to_json()).unwrap();
        assert!(!text.contains("ports"), "{text}");
    }

    #[test]
    fn ports_must_be_distinct_real_ports() {
        let mut s = sample();
        s.ports = vec![31000, 0];
        let msg = s.validate().unwrap_err().to_string();
        assert!(msg.contains("`ports`") && msg.contains("port 0"), "{msg}");
        let mut s = sample();
        s.ports = vec![31000, 31001, 31000];
        let msg = s.validate().unwrap_err().to_string();
        assert!(msg.contains("31000 is given twice"), "{msg}");
        let err = TaskSpec::from_json(
            br#"{"command":"x","cpus":1,"mem_mb":1,"affinity":"none","ports":[65536]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("65536"), "{err}");
        assert_eq!(sample().validate().unwrap().spec.ports, vec![31000, 31002]);
    }

    #[test]
    fn bad_json_is_one_clear_error() {
        let err = TaskSpec::from_json(br#"{"command":"x","cpus":1}"#).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("not a Retz task spec"), "{msg}");
        assert!(msg.contains("mem_mb"), "{msg}");
        let err =
            TaskSpec::from_json(br#"{"command":"x","cpus":1,"mem_mb":1,"affinity":"numa-weird"}"#)
                .unwrap_err();
        assert!(err.to_string().contains("numa-weird"), "{err}");
        assert!(TaskSpec::from_json(b"\xff\xfe").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let mut s = sample();
        s.command = "  ".into();
        assert!(s.validate().unwrap_err().to_string().contains("`command`"));
        let mut s = sample();
        s.cpuset = Some("1-x".into());
        let msg = s.validate().unwrap_err().to_string();
        assert!(msg.contains("`cpuset`") && msg.contains("1-x"), "{msg}");
        let mut s = sample();
        s.mem_nodes = Some("3-1".into());
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("`mem_nodes`")
        );
        let mut s = sample();
        s.env.insert("A=B".into(), "v".into());
        assert!(s.validate().unwrap_err().to_string().contains("`A=B`"));
        let mut s = sample();
        s.env.insert("V".into(), "a\0b".into());
        assert!(s.validate().is_err());
        for bad in ["", ".", "..", "a/b", "a\nb"] {
            let mut s = sample();
            s.app = Some(bad.into());
            assert!(
                matches!(s.validate(), Err(SpecError::App { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn memory_policy_follows_affinity_unless_given() {
        let v = sample().validate().unwrap();
        assert_eq!(v.mem_policy, MemPolicy::Bind);
        let mut s = sample();
        s.affinity = Affinity::NumaPrefer;
        assert_eq!(
            s.clone().validate().unwrap().mem_policy,
            MemPolicy::Preferred
        );
        s.mem_policy = Some(MemPolicy::None);
        assert_eq!(s.validate().unwrap().mem_policy, MemPolicy::None);
        assert_eq!(Affinity::Spread.default_mem_policy(), MemPolicy::Interleave);
        assert_eq!(Affinity::None.default_mem_policy(), MemPolicy::None);
    }

    #[test]
    fn plain_command_conversion() {
        let shell = TaskSpec::from_plain_command(&PlainCommand {
            value: "echo hi".into(),
            shell: true,
            cpus: 0.5,
            mem_mb: 100.2,
            ..Default::default()
        });
        assert_eq!(shell.command, "echo hi");
        assert_eq!(shell.cpus, 1);
        assert_eq!(shell.mem_mb, 101);
        assert_eq!(shell.affinity, Affinity::None);
        let argv = TaskSpec::from_plain_command(&PlainCommand {
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
