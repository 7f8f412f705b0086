//! `retz-client plan`: asks the server where a job would run now (`POST /job/plan`, the
//! same options as `schedule`, nothing queued) and prints the answer, or `--json`.
//!
//! Exit status: 0 when the job would run now, [`WOULD_WAIT`] when it would wait; 1-3 as
//! for every subcommand when the request failed.

use retz_proto::api::PlanResponse;

use super::client_args::PlanArgs;
use super::client_cli::{build_job, emit, emit_json};
use super::exit::CliError;
use crate::Client;

/// The exit status of a plan that would wait.
pub const WOULD_WAIT: u8 = 4;

/// `plan`'s `after_help`.
pub const EXIT_HELP: &str = "\
Exit status:
  0  the job would run now (where is printed)
  4  the job would wait (the reason and its queue position are printed)
  1  the server refused the request (HTTP 4xx/5xx) or the application does not exist
  2  usage error (unknown subcommand, bad or missing option)
  3  cannot reach the server, config missing or invalid, or a local file problem";

/// Runs `plan`.
pub(super) async fn plan(client: &Client, a: &PlanArgs, json: bool) -> Result<u8, CliError> {
    let job = build_job(&a.job, client.config())?;
    let answer = client.plan(job).await?;
    if json {
        emit_json(&answer)?;
    } else {
        emit(&text(&answer))?;
    }
    Ok(if answer.would_run() { 0 } else { WOULD_WAIT })
}

/// The answer in one line: `would run on agent X (host): NUMA nodes 0, CPUs 0-3, memory
/// nodes 0`, or `would wait: <reason>; queue position N`.
pub fn text(answer: &PlanResponse) -> String {
    match &answer.placement {
        Some(p) if p.pinned => format!(
            "would run on agent {} ({}): NUMA nodes {}, CPUs {}, memory nodes {} ({} CPUs, {} MB)\n",
            p.agent_id,
            p.hostname,
            p.numa_nodes.as_deref().unwrap_or("-"),
            p.cpuset.as_deref().unwrap_or("-"),
            p.memory_nodes.as_deref().unwrap_or("-"),
            p.cpu,
            p.mem_mb
        ),
        Some(p) => format!(
            "would run on agent {} ({}): {} CPUs, {} MB, not pinned (the agent does not \
             advertise its NUMA layout, or the policy is none)\n",
            p.agent_id, p.hostname, p.cpu, p.mem_mb
        ),
        None => format!(
            "would wait: {}; queue position {}\n",
            answer.reason.as_deref().unwrap_or("no reason given"),
            answer.queue_position.unwrap_or(0)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::api::Placement;

    #[test]
    fn answers_read_as_one_line() {
        let mut p = Placement {
            agent_id: "a1".into(),
            hostname: "h1".into(),
            cpu: 4,
            mem_mb: 32,
            cpuset: Some("0-3".into()),
            numa_nodes: Some("0".into()),
            memory_nodes: Some("0".into()),
            pinned: true,
        };
        let run = |p: &Placement| PlanResponse {
            placement: Some(p.clone()),
            reason: None,
            queue_position: None,
        };
        assert_eq!(
            text(&run(&p)),
            "would run on agent a1 (h1): NUMA nodes 0, CPUs 0-3, memory nodes 0 (4 CPUs, 32 MB)\n"
        );
        p.pinned = false;
        assert!(text(&run(&p)).contains("4 CPUs, 32 MB, not pinned"));
        let wait = PlanResponse {
            placement: None,
            reason: Some("needs 9 CPUs".into()),
            queue_position: Some(2),
        };
        assert_eq!(text(&wait), "would wait: needs 9 CPUs; queue position 2\n");
    }
}
