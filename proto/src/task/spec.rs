//! [`TaskSpec`]: what `retz-server` puts in `TaskInfo.data` for each task, and its
//! validation into a [`ValidSpec`].
//!
//! The JSON field names are stable (`command`, `env`, `cpus`, `mem_mb`, `gpus`,
//! `gpu_ids`, `cpuset`, `mem_nodes`, `affinity`, `mem_policy`, `pin_required`, `job_id`,
//! `app` alias `pvname`, `ports`, `user`); unknown fields are ignored so older executors
//! read newer specs. `cpuset`, `mem_nodes` and `gpu_ids` are parsed while reading: a bad
//! list is refused with the field named.
//!
//! Invariants of a [`ValidSpec`]: the command is non-empty and free of NUL bytes; env
//! names are non-empty, contain no `=` or NUL, and values contain no NUL; the app name is
//! a single safe path component; ports are distinct and non-zero; `gpu_ids`, when given,
//! names exactly `gpus` devices.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use retz_placement::{AffinityPolicy, CpuSet, GpuSet, NodeSet};
use serde::{Deserialize, Deserializer, Serialize};

/// The Retz task spec carried in `TaskInfo.data` as JSON.
///
/// Example:
/// ```json
/// {"command":"java -Dthreads=$RETZ_CPU -jar app.jar","env":{"X":"1"},"cpus":4,
///  "mem_mb":8192,"gpus":1,"gpu_ids":"2","cpuset":"8-11","mem_nodes":"1","affinity":"numa-strict",
///  "mem_policy":"bind","pin_required":true,"job_id":42,"app":"asakusa",
///  "ports":[31000,31001],"user":"alice"}
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
    /// The GPU device ids granted (`"0,2"` on the wire), when the agent names its GPUs:
    /// the executor exports them as `CUDA_VISIBLE_DEVICES` and `NVIDIA_VISIBLE_DEVICES`
    /// and denies the task every other GPU device. Empty: the task gets no GPU. Absent:
    /// the agent states no GPU ids (or an older server wrote the spec).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "gpu_ids_field"
    )]
    pub gpu_ids: Option<GpuSet>,
    /// Exact CPU ids granted (`"8-11,40-43"` on the wire).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "cpuset_field"
    )]
    pub cpuset: Option<CpuSet>,
    /// NUMA node ids whose memory the job uses.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "mem_nodes_field"
    )]
    pub mem_nodes: Option<NodeSet>,
    /// The affinity policy the placement used.
    pub affinity: AffinityPolicy,
    /// Memory policy for the job; when absent it follows from `affinity`
    /// (see [`MemPolicy::for_affinity`]).
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

fn list_field<'de, D, T>(d: D, field: &str) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let text = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
    text.map(|t| {
        t.parse()
            .map_err(|e| serde::de::Error::custom(format!("field `{field}`: {e}")))
    })
    .transpose()
}

fn cpuset_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CpuSet>, D::Error> {
    list_field(d, "cpuset")
}

fn gpu_ids_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<GpuSet>, D::Error> {
    list_field(d, "gpu_ids")
}

fn mem_nodes_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NodeSet>, D::Error> {
    list_field(d, "mem_nodes")
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

    /// Memory policy used when the spec names none: `numa-strict` → bind,
    /// `numa-prefer` → preferred, `spread` → interleave, `none` → none.
    pub fn for_affinity(affinity: AffinityPolicy) -> MemPolicy {
        match affinity {
            AffinityPolicy::NumaStrict => MemPolicy::Bind,
            AffinityPolicy::NumaPrefer => MemPolicy::Preferred,
            AffinityPolicy::Spread => MemPolicy::Interleave,
            AffinityPolicy::None => MemPolicy::None,
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
    /// A port is 0 or given twice.
    #[error(
        "task spec field `ports`: port {port} {problem} (ports must be distinct numbers \
         1-65535, as granted from the agent's `ports` resource)"
    )]
    Ports { port: u16, problem: &'static str },
    /// `gpu_ids` does not name as many devices as `gpus` says.
    #[error(
        "task spec field `gpu_ids` = {ids:?} names {named} devices but `gpus` is {gpus}; \
         they must agree"
    )]
    GpuIds {
        ids: String,
        named: usize,
        gpus: u32,
    },
    /// The app name is not a single safe path component.
    #[error(
        "task spec field `app` = {name:?} is not a usable directory name (use 1-200 \
         characters, no `/`, NUL or control characters, not `.` or `..`)"
    )]
    App { name: String },
}

/// A validated spec: the original plus what follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSpec {
    /// The spec as received.
    pub spec: TaskSpec,
    /// The app name (default `default`).
    pub app: String,
    /// The memory policy in force (explicit or derived from the affinity policy).
    pub mem_policy: MemPolicy,
}

/// Application name used when the spec names none.
pub const DEFAULT_APP: &str = "default";

impl TaskSpec {
    /// Parses `TaskInfo.data`; never panics, whatever the bytes.
    pub fn from_slice(data: &[u8]) -> Result<Self, SpecError> {
        Ok(serde_json::from_slice(data)?)
    }

    /// Serialises to the JSON carried in `TaskInfo.data`.
    pub fn to_vec(&self) -> Vec<u8> {
        // Strings, integers, bools, string maps and list strings: serialisation cannot
        // fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Whether the policy pins the job to its cpuset.
    pub fn pins(&self) -> bool {
        self.affinity != AffinityPolicy::None
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
        if let Some(ids) = &self.gpu_ids
            && ids.len() as u64 != u64::from(self.gpus)
        {
            return Err(SpecError::GpuIds {
                ids: ids.to_string(),
                named: ids.len(),
                gpus: self.gpus,
            });
        }
        let mut seen = BTreeSet::new();
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
        let app = match &self.app {
            None => DEFAULT_APP.to_owned(),
            Some(name) if is_safe_component(name) => name.clone(),
            Some(name) => return Err(SpecError::App { name: name.clone() }),
        };
        let mem_policy = self
            .mem_policy
            .unwrap_or_else(|| MemPolicy::for_affinity(self.affinity));
        Ok(ValidSpec {
            spec: self,
            app,
            mem_policy,
        })
    }
}

/// Whether `name` can be used as one directory name (app names, escaped task ids).
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}
