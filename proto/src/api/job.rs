//! [`Job`], its [`JobState`] machine states, its requested [`JobResources`] and the
//! [`Grant`] the planner made.
//!
//! State machine (the original's, kept): `QUEUED` on schedule → `STARTING` when launched
//! → `STARTED` on TASK_RUNNING → `FINISHED` on TASK_FINISHED; TASK_FAILED/ERROR/KILLED
//! and user kills end in `KILLED`; lost tasks go back to `QUEUED` with `retry + 1` until
//! the retry limit. `CREATED` exists only in clients, before the server answered.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use retz_placement::{AffinityPolicy, CachePolicy, PlacementFeatures, ResourceRange};
use serde::{Deserialize, Serialize};

/// A job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Built by a client, not yet accepted by a server.
    Created,
    /// Accepted and durable; waiting for a placement.
    Queued,
    /// Launched on an agent; not yet running.
    Starting,
    /// Running (TASK_RUNNING seen).
    Started,
    /// Ended with TASK_FINISHED (exit code in `result`).
    Finished,
    /// Ended otherwise: killed by its user, failed, or out of retries (`reason` says).
    Killed,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        JobState::Created,
        JobState::Queued,
        JobState::Starting,
        JobState::Started,
        JobState::Finished,
        JobState::Killed,
    ];

    /// The wire name (`QUEUED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Created => "CREATED",
            JobState::Queued => "QUEUED",
            JobState::Starting => "STARTING",
            JobState::Started => "STARTED",
            JobState::Finished => "FINISHED",
            JobState::Killed => "KILLED",
        }
    }

    /// Whether the job has ended (FINISHED or KILLED).
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Finished | JobState::Killed)
    }

    /// Whether a task of the job may be alive on an agent (STARTING or STARTED).
    pub fn is_active(self) -> bool {
        matches!(self, JobState::Starting | JobState::Started)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`JobState::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {0:?}; expected one of QUEUED, STARTING, STARTED, FINISHED, KILLED")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        let t = s.trim();
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownState(t.chars().take(32).collect()))
    }
}

fn default_cpu() -> ResourceRange<u32> {
    ResourceRange::exactly(1)
}
fn default_mem() -> ResourceRange<u64> {
    ResourceRange::exactly(32)
}
fn default_disk() -> u64 {
    32
}
fn default_result() -> i32 {
    -1
}

/// What a job asks for. Defaults as the original client: 1 CPU, 32 MB, 32 MB disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobResources {
    /// CPUs: `2` (exactly), `"2-4"`, `"2-"` (at least 2).
    #[serde(default = "default_cpu", with = "crate::api::range_json")]
    pub cpu: ResourceRange<u32>,
    /// Memory in MB, same forms as `cpu`.
    #[serde(
        rename = "memMB",
        default = "default_mem",
        with = "crate::api::range_json"
    )]
    pub mem_mb: ResourceRange<u64>,
    /// GPUs (exact).
    #[serde(default)]
    pub gpu: u32,
    /// Disk in MB.
    #[serde(rename = "diskMB", default = "default_disk")]
    pub disk_mb: u64,
    /// Number of ports (`$PORT0`..).
    #[serde(default)]
    pub ports: u32,
    /// Whole NUMA nodes taken exclusively (`numanodes`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
}

impl Default for JobResources {
    fn default() -> Self {
        JobResources {
            cpu: default_cpu(),
            mem_mb: default_mem(),
            gpu: 0,
            disk_mb: default_disk(),
            ports: 0,
            nodes: None,
        }
    }
}

/// What the planner granted one attempt of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// CPUs granted (`$RETZ_CPU`).
    pub cpu: u32,
    /// Memory granted, MB (`$RETZ_MEM`).
    #[serde(rename = "memMB")]
    pub mem_mb: u64,
    /// GPUs granted.
    #[serde(default)]
    pub gpu: u32,
    /// The GPU device ids granted (`CUDA_VISIBLE_DEVICES`), Linux list format; absent
    /// when the job got no GPU, when the agent states a GPU count only (no `gpuids`), and
    /// in grants recorded before device ids were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_ids: Option<String>,
    /// Exact CPU ids, Linux list format; absent when the agent is not NUMA-aware or the
    /// policy is `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// NUMA node ids, Linux list format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_nodes: Option<String>,
    /// Whether the job is pinned (the agent advertised the NUMA convention and the policy
    /// pins). `false` means "no pinning guarantees" (DESIGN, NUMA resource convention).
    #[serde(default)]
    pub pinned: bool,
    /// Port numbers granted, ascending (`$PORT0`, `$PORT1`, ... in this order); empty when
    /// the job asked for none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// The Unix user the attempt runs as (absent in grants recorded before it was
    /// shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How the grant lies over the agent's NUMA nodes, L3 cache domains and SMT siblings
    /// and how crowded they were ([`PlacementFeatures`]; the job history exports them).
    /// Absent when the job runs unpinned, and in grants recorded before they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<PlacementFeatures>,
}

/// A job, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Server-assigned id (`0` before the server answered).
    #[serde(default)]
    pub id: u64,
    /// Job name; defaults to a hash of the command.
    #[serde(default)]
    pub name: String,
    /// Application name.
    pub appid: String,
    /// Shell command.
    pub cmd: String,
    /// Environment (`-E K=V`); also accepted as `env`.
    #[serde(default, alias = "env")]
    pub props: BTreeMap<String, String>,
    /// Tags (`--tags a,b`).
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Requested resources.
    #[serde(default)]
    pub resources: JobResources,
    /// Nice-like priority, -20..19, lower runs first.
    #[serde(default)]
    pub priority: i32,
    /// Mesos attribute constraint string (kept for compatibility; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
    /// Affinity policy for this job; absent: the application's, else the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<AffinityPolicy>,
    /// How the job's CPUs lie over a node's L3 cache domains (`pack`, `spread`); absent:
    /// the cluster's (`[planner] cache`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    /// Retries after lost tasks; absent: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Also retry when the task fails (TASK_FAILED), not only when it is lost.
    #[serde(default)]
    pub retry_on_failure: bool,
    /// When the server accepted it ([`super::TIME_FORMAT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<String>,
    /// When it started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// Exit code; -1 until it finished.
    #[serde(default = "default_result")]
    pub result: i32,
    /// Why it ended or was retried (Mesos message, `Canceled by user`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Number of retries so far.
    #[serde(default)]
    pub retry: u32,
    /// Attempt number of the current task (starts at 1 when first launched).
    #[serde(default)]
    pub attempt: u32,
    /// Agent sandbox URL (`AGENT/files/browse?path=DIR`), for people and the original
    /// API. Only the server's answers carry it, built from [`Job::sandbox`] as they leave
    /// ([`Sandbox::browse_url`]); it is never stored, and the server ignores it in requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where the current attempt runs: the agent and, once the executor reported it, the
    /// sandbox directory. Set by the server; ignored in requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Sandbox>,
    /// Current Mesos task id (`retz-<app>-id-<id>-<attempt>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Agent id of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_id: Option<String>,
    /// Current state.
    #[serde(default = "default_state")]
    pub state: JobState,
    /// What the planner granted the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<Grant>,
    /// Why the job is still waiting (the planner's pending reason), while QUEUED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// Its user asked to kill it while it ran: the planner (re)sends KILL, and the
    /// TASK_KILLED that follows ends it with `Canceled by user`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub kill_requested: bool,
    /// The pinning retz-executor applied to the current attempt and verified (from its
    /// TASK_RUNNING and terminal reports); absent until it reported, and for executors
    /// that do not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinning: Option<crate::task::VerifiedPinning>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_state() -> JobState {
    JobState::Created
}

impl Job {
    /// A new job (state `CREATED`) for `appid` running `cmd`, with default resources.
    pub fn new(appid: impl Into<String>, cmd: impl Into<String>) -> Job {
        Job {
            id: 0,
            name: String::new(),
            appid: appid.into(),
            cmd: cmd.into(),
            props: BTreeMap::new(),
            tags: BTreeSet::new(),
            resources: JobResources::default(),
            priority: 0,
            attributes: None,
            affinity: None,
            cache: None,
            max_retries: None,
            retry_on_failure: false,
            scheduled: None,
            started: None,
            finished: None,
            result: -1,
            reason: None,
            retry: 0,
            attempt: 0,
            url: None,
            sandbox: None,
            task_id: None,
            slave_id: None,
            state: JobState::Created,
            granted: None,
            pending: None,
            kill_requested: false,
            pinning: None,
        }
    }

    /// Forgets everything about earlier runs (times, result, attempts, placement, sandbox,
    /// task, pending reason, kill request, pinning), as for a job queued anew; `retry`,
    /// `state` and `scheduled` are the caller's.
    pub fn clear_run_state(&mut self) {
        self.started = None;
        self.finished = None;
        self.result = -1;
        self.attempt = 0;
        self.url = None;
        self.sandbox = None;
        self.task_id = None;
        self.slave_id = None;
        self.granted = None;
        self.pending = None;
        self.kill_requested = false;
        self.pinning = None;
    }

    /// The Mesos task id of attempt `attempt`: `retz-<app>-id-<id>-<attempt>`. Attempts
    /// make every launch's id unique, so no task id is ever reused.
    pub fn task_id_for(&self, attempt: u32) -> String {
        format!("retz-{}-id-{}-{}", self.appid, self.id, attempt)
    }

    /// Parses a task id made by [`Job::task_id_for`] back into (job id, attempt).
    pub fn parse_task_id(task_id: &str) -> Option<(u64, u32)> {
        let rest = task_id.strip_prefix("retz-")?;
        let (head, attempt) = rest.rsplit_once('-')?;
        let (_, id) = head.rsplit_once("-id-")?;
        Some((id.parse().ok()?, attempt.parse().ok()?))
    }
}

/// Where a job's attempt runs, as data: the agent's HTTP base and the sandbox directory
/// on it. The URL is made from it only at the API edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// The agent's HTTP base, `SCHEME://HOST:PORT` (from the offer's agent URL).
    pub agent: String,
    /// The sandbox directory on the agent; `None` until the executor reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
}

impl Sandbox {
    /// The agent's `/files/browse` URL of the sandbox (`path=` empty while the directory
    /// is unknown), the directory percent-encoded as a query value.
    pub fn browse_url(&self) -> String {
        let dir = self.directory.as_deref().unwrap_or("");
        format!(
            "{}/files/browse?path={}",
            self.agent,
            encode_query_value(dir)
        )
    }
}

/// `application/x-www-form-urlencoded` value encoding, except that `/` stays as it is
/// (paths stay readable): unreserved characters and `/` verbatim, everything else `%XX`.
fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_accept_numbers_and_ranges() {
        let r: JobResources = serde_json::from_str(r#"{"cpu":"2-4","memMB":512,"gpu":0}"#).unwrap();
        assert_eq!(r.cpu, ResourceRange::between(2, 4));
        assert_eq!(r.mem_mb, ResourceRange::exactly(512));
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["cpu"], "2-4");
        assert_eq!(back["memMB"], 512);
        let open: JobResources = serde_json::from_str(r#"{"cpu":"2-"}"#).unwrap();
        assert_eq!(open.cpu, ResourceRange::at_least(2));
        assert_eq!(open.mem_mb, ResourceRange::exactly(32));
    }

    #[test]
    fn bad_ranges_are_refused_with_the_reason() {
        let e = serde_json::from_str::<JobResources>(r#"{"cpu":"4-2"}"#).unwrap_err();
        assert!(e.to_string().contains("below minimum"), "{e}");
        let e = serde_json::from_str::<JobResources>(r#"{"cpu":-1}"#).unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
        let e = serde_json::from_str::<JobResources>(r#"{"cpu":true}"#).unwrap_err();
        assert!(e.to_string().contains("range string"), "{e}");
        let e = serde_json::from_str::<JobResources>(r#"{"cpus":2}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn original_job_json_is_read() {
        let j: Job = serde_json::from_str(
            r#"{"appid":"a","cmd":"ls","env":{"K":"V"},"resources":{"cpu":1,"memMB":32,
               "gpu":0,"ports":0,"diskMB":32},"state":"QUEUED","id":3,"result":-1}"#,
        )
        .unwrap();
        assert_eq!(j.props["K"], "V");
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.id, 3);
    }

    #[test]
    fn task_ids_carry_the_attempt_and_parse_back() {
        let mut j = Job::new("my-app-id-x", "true");
        j.id = 42;
        let t = j.task_id_for(3);
        assert_eq!(t, "retz-my-app-id-x-id-42-3");
        assert_eq!(Job::parse_task_id(&t), Some((42, 3)));
        assert_eq!(Job::parse_task_id("retz-a-id-x-1"), None);
        assert_eq!(Job::parse_task_id("other"), None);
    }

    #[test]
    fn grant_ports_are_optional_and_shown_only_when_granted() {
        let old: Grant = serde_json::from_str(r#"{"cpu":1,"memMB":32}"#).unwrap();
        assert!(old.ports.is_empty(), "grants stored before ports parse");
        let text = serde_json::to_string(&old).unwrap();
        assert!(!text.contains("ports"), "{text}");
        let mut g = old;
        g.ports = vec![31000, 31001];
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["ports"], serde_json::json!([31000, 31001]));
        assert_eq!(serde_json::from_value::<Grant>(v).unwrap(), g);
        let e =
            serde_json::from_str::<Grant>(r#"{"cpu":1,"memMB":32,"ports":[70000]}"#).unwrap_err();
        assert!(e.to_string().contains("70000"), "{e}");
    }

    #[test]
    fn grant_features_are_optional_and_round_trip() {
        let old: Grant = serde_json::from_str(r#"{"cpu":1,"memMB":32}"#).unwrap();
        assert_eq!(old.features, None, "grants stored before features parse");
        assert!(!serde_json::to_string(&old).unwrap().contains("features"));
        let mut g = old;
        g.features = Some(PlacementFeatures {
            nodes_spanned: 2,
            l3_spanned: 3,
            smt_shared: true,
            remote_mem_share: 0.25,
            co_runners: 1,
        });
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["features"]["l3Spanned"], 3);
        assert_eq!(v["features"]["remoteMemShare"], 0.25);
        assert_eq!(serde_json::from_value::<Grant>(v).unwrap(), g);
    }

    #[test]
    fn grant_gpu_ids_are_optional_and_shown_only_when_granted() {
        let old: Grant = serde_json::from_str(r#"{"cpu":1,"memMB":32,"gpu":1}"#).unwrap();
        assert_eq!(old.gpu_ids, None, "grants stored before gpu ids parse");
        assert!(!serde_json::to_string(&old).unwrap().contains("gpuIds"));
        let mut g = old;
        g.gpu_ids = Some("0,2".into());
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(v["gpuIds"], "0,2");
        assert_eq!(serde_json::from_value::<Grant>(v).unwrap(), g);
    }

    #[test]
    fn the_verified_pinning_is_shown_once_reported() {
        let mut j = Job::new("a", "true");
        let text = serde_json::to_string(&j).unwrap();
        assert!(!text.contains("pinning"), "{text}");
        j.pinning = Some(
            serde_json::from_str(
                r#"{"affinity":"numa-strict","mechanism":"cgroup-v1","outcome":"verified",
                    "cpus":"3","cpus_seen":"3"}"#,
            )
            .unwrap(),
        );
        let v = serde_json::to_value(&j).unwrap();
        assert_eq!(v["pinning"]["mechanism"], "cgroup-v1");
        assert_eq!(v["pinning"]["cpus_seen"], "3");
        assert_eq!(serde_json::from_value::<Job>(v).unwrap(), j);
    }

    #[test]
    fn a_sandbox_becomes_a_browse_url_with_its_directory_encoded() {
        let mut s = Sandbox {
            agent: "http://10.0.0.1:5051".into(),
            directory: None,
        };
        assert_eq!(s.browse_url(), "http://10.0.0.1:5051/files/browse?path=");
        s.directory = Some("/var/lib/mesos/s 1/é&x=1".into());
        assert_eq!(
            s.browse_url(),
            "http://10.0.0.1:5051/files/browse?path=/var/lib/mesos/s%201/%C3%A9%26x%3D1"
        );
        // The URL is never stored: the job's JSON carries the sandbox as data.
        let mut job = Job::new("app", "true");
        job.sandbox = Some(s);
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["sandbox"]["agent"], "http://10.0.0.1:5051");
        assert!(v.get("url").is_none());
    }

    #[test]
    fn states_parse_case_insensitively() {
        assert_eq!("started".parse::<JobState>().unwrap(), JobState::Started);
        assert!("RUNNING".parse::<JobState>().is_err());
        assert!(JobState::Killed.is_terminal());
        assert!(JobState::Starting.is_active());
    }
}
