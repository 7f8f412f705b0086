//! `POST /job/plan`: where a job would run now, or why it would wait. The body is a
//! [`ScheduleRequest`](super::ScheduleRequest), checked as `POST /job` checks it; nothing is
//! stored.

use serde::{Deserialize, Serialize};

/// The answer of `POST /job/plan`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanResponse {
    /// Where the job would run; absent when it would wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Why it would wait (absent when it would run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// QUEUED jobs that would be ahead of it (when it would wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
}

impl PlanResponse {
    /// Whether the job would run now.
    pub fn would_run(&self) -> bool {
        self.placement.is_some()
    }
}

/// Where a job would run: the planner's placement, as a launch would grant it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The Mesos agent id.
    pub agent_id: String,
    /// The agent's hostname.
    pub hostname: String,
    /// CPUs it would get.
    pub cpu: u32,
    /// Memory it would get, MB.
    #[serde(rename = "memMB")]
    pub mem_mb: u64,
    /// The exact CPU ids, Linux list format (absent when the agent is not NUMA-aware or
    /// the policy is `none`: no pinning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// The NUMA nodes holding those CPUs, Linux list format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_nodes: Option<String>,
    /// The memory nodes (`cpuset.mems`: the CPUs' nodes plus any memory spilled to),
    /// Linux list format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_nodes: Option<String>,
    /// Whether it would be pinned.
    pub pinned: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_camel_case_and_omit_what_does_not_apply() {
        let run = PlanResponse {
            placement: Some(Placement {
                agent_id: "a1".into(),
                hostname: "h".into(),
                cpu: 4,
                mem_mb: 32,
                cpuset: Some("0-3".into()),
                numa_nodes: Some("0".into()),
                memory_nodes: Some("0".into()),
                pinned: true,
            }),
            reason: None,
            queue_position: None,
        };
        let v = serde_json::to_value(&run).unwrap();
        assert_eq!(v["placement"]["agentId"], "a1");
        assert_eq!(v["placement"]["memMB"], 32);
        assert_eq!(v["placement"]["memoryNodes"], "0");
        assert!(v.get("reason").is_none());
        assert!(run.would_run());
        let wait: PlanResponse =
            serde_json::from_str(r#"{"reason":"no agent has 9 CPUs","queuePosition":3}"#).unwrap();
        assert!(!wait.would_run());
        assert_eq!(wait.queue_position, Some(3));
    }
}
