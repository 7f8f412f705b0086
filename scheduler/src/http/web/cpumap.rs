//! The cluster CPU map: every agent, its NUMA nodes, each CPU one cell coloured by the
//! job holding it.
//!
//! Invariants:
//! - every cell carries `data-agent` and `data-cpu`; a held cell also `data-job`, a
//!   `title` naming the job and a link to its page; a free cell none of these;
//! - a job's cells are exactly the CPU ids of its grant's `cpuset` on its agent
//!   (`slave_id`); jobs without a cpuset (not pinned) are listed under their agent with
//!   their CPU count, never drawn on cells they may not be using;
//! - an agent that holds running jobs but whose layout the planner does not know (no
//!   offer since the server started) is still drawn, with the held CPUs only;
//! - a node with two or more L3 cache domains groups its cells by domain (`data-l3`);
//! - the colour of a job is a function of its id alone, so it stays put between
//!   refreshes;
//! - nothing of a job but its id is written here (no command, name, application or user).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use retz_placement::sets::CpuSet;
use retz_proto::api::Job;

use super::page::escape;
use crate::http::{AgentView, ClusterView, NodeView};

/// The colour of job `id`: hues a golden angle apart, so neighbouring ids differ.
pub fn job_colour(id: u64) -> String {
    let hue = (id.wrapping_mul(137_508) / 1000) % 360;
    format!("hsl({hue},65%,42%)")
}

/// The CPU ids of a job's grant, if it was pinned to some.
pub fn granted_cpus(job: &Job) -> Option<Vec<u32>> {
    let set = job.granted.as_ref()?.cpuset.as_deref()?;
    let set = CpuSet::from_str(set).ok()?;
    Some(set.iter().map(|c| c.0).collect())
}

/// Per agent id: CPU id → holding job id, and the running jobs without a cpuset.
#[derive(Default)]
struct Holdings {
    cpus: BTreeMap<u32, u64>,
    unpinned: Vec<(u64, u32)>,
}

fn holdings(running: &[&Job]) -> BTreeMap<String, Holdings> {
    let mut by_agent: BTreeMap<String, Holdings> = BTreeMap::new();
    for job in running {
        let Some(agent) = &job.slave_id else { continue };
        let h = by_agent.entry(agent.clone()).or_default();
        match granted_cpus(job) {
            Some(cpus) => {
                for cpu in cpus {
                    h.cpus.insert(cpu, job.id);
                }
            }
            None => h
                .unpinned
                .push((job.id, job.granted.as_ref().map_or(0, |g| g.cpu))),
        }
    }
    by_agent
}

fn cell(out: &mut String, agent: &str, cpu: u32, job: Option<u64>) {
    let agent = escape(agent);
    match job {
        Some(id) => {
            let _ = write!(
                out,
                "<a class=\"cpu held\" href=\"/ui/job/{id}\" title=\"CPU {cpu}: job {id}\" \
                 style=\"background:{}\" data-agent=\"{agent}\" data-cpu=\"{cpu}\" \
                 data-job=\"{id}\">{cpu}</a>",
                job_colour(id)
            );
        }
        None => {
            let _ = write!(
                out,
                "<span class=\"cpu free\" title=\"CPU {cpu}: free\" data-agent=\"{agent}\" \
                 data-cpu=\"{cpu}\">{cpu}</span>"
            );
        }
    }
}

fn render_agent(out: &mut String, agent: &AgentView, h: Option<&Holdings>, known: bool) {
    let all: usize = agent.nodes.iter().map(|n| n.cpus.len()).sum();
    let held = h.map_or(0, |h| h.cpus.len());
    let _ = write!(
        out,
        "<section class=\"agent\" data-agent=\"{}\"><h3>{} <small>{} · {} CPUs, {} held{}</small></h3>",
        escape(&agent.id),
        escape(&agent.hostname),
        escape(&agent.id),
        all,
        held,
        if !known {
            " · layout not known yet (no offer since the server started)"
        } else if !agent.numa_aware {
            " · no NUMA layout advertised: placeholder ids, no pinning"
        } else {
            ""
        }
    );
    for node in &agent.nodes {
        let _ = write!(
            out,
            "<div class=\"node\"><div class=\"nodehead\">node {}{}</div><div class=\"cells\">",
            node.id,
            if node.memory_mb > 0 {
                format!(" · {} MB", node.memory_mb)
            } else {
                String::new()
            }
        );
        let holder = |cpu: &u32| h.and_then(|h| h.cpus.get(cpu).copied());
        if node.caches.is_empty() {
            for cpu in &node.cpus {
                cell(out, &agent.id, *cpu, holder(cpu));
            }
        } else {
            for (k, domain) in node.caches.iter().enumerate() {
                let _ = write!(
                    out,
                    "<span class=\"l3\" title=\"L3 cache domain {k}\" data-l3=\"{k}\">"
                );
                for cpu in domain {
                    cell(out, &agent.id, *cpu, holder(cpu));
                }
                out.push_str("</span>");
            }
        }
        out.push_str("</div></div>");
    }
    if let Some(h) = h
        && !h.unpinned.is_empty()
    {
        out.push_str("<p class=\"unpinned\">Not pinned here: ");
        for (i, (id, cpus)) in h.unpinned.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(
                out,
                "<a href=\"/ui/job/{id}\">job {id}</a> ({cpus} CPU{})",
                if *cpus == 1 { "" } else { "s" }
            );
        }
        out.push_str("</p>");
    }
    out.push_str("</section>\n");
}

/// Writes the CPU map of `cluster` with the CPUs `running` jobs hold.
pub fn render(out: &mut String, cluster: &ClusterView, running: &[&Job]) {
    let mut by_agent = holdings(running);
    out.push_str("<div class=\"cpumap\">\n");
    if cluster.agents.is_empty() && by_agent.is_empty() {
        out.push_str("<p>No agent has offered resources yet.</p>");
    }
    for agent in &cluster.agents {
        let h = by_agent.remove(&agent.id);
        render_agent(out, agent, h.as_ref(), true);
    }
    // Agents known only from the grants of running jobs.
    for (id, h) in by_agent {
        let agent = AgentView {
            id: id.clone(),
            hostname: id.clone(),
            numa_aware: true,
            nodes: vec![NodeView {
                id: 0,
                memory_mb: 0,
                cpus: h.cpus.keys().copied().collect(),
                caches: Vec::new(),
            }],
        };
        render_agent(out, &agent, Some(&h), false);
    }
    out.push_str("</div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_proto::api::{Grant, JobState};

    fn running(id: u64, agent: &str, cpuset: Option<&str>) -> Job {
        let mut j = Job::new("app", "<script>alert(1)</script>");
        j.id = id;
        j.state = JobState::Started;
        j.slave_id = Some(agent.into());
        j.granted = Some(Grant {
            cpu: 2,
            mem_mb: 32,
            gpu: 0,
            gpu_ids: None,
            cpuset: cpuset.map(str::to_owned),
            numa_nodes: None,
            pinned: cpuset.is_some(),
            ports: vec![],
            user: None,
            features: None,
        });
        j
    }

    #[test]
    fn cells_are_grouped_by_l3_cache_domain() {
        let cluster = ClusterView {
            agents: vec![AgentView {
                id: "epyc".into(),
                hostname: "epyc".into(),
                numa_aware: true,
                nodes: vec![NodeView {
                    id: 0,
                    memory_mb: 0,
                    cpus: (0..8).collect(),
                    caches: vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]],
                }],
            }],
        };
        let j = running(3, "epyc", Some("4-5"));
        let mut out = String::new();
        render(&mut out, &cluster, &[&j]);
        let groups: Vec<&str> = out.split("<span class=\"l3\"").skip(1).collect();
        assert_eq!(groups.len(), 2, "{out}");
        assert!(groups[0].starts_with(" title=\"L3 cache domain 0\" data-l3=\"0\">"));
        for cpu in 0..4 {
            assert!(groups[0].contains(&format!("data-cpu=\"{cpu}\">")), "{out}");
        }
        assert!(groups[1].contains("data-cpu=\"4\" data-job=\"3\""), "{out}");
        assert!(groups[1].contains("data-cpu=\"5\" data-job=\"3\""), "{out}");
        assert_eq!(out.matches("data-cpu=").count(), 8, "every CPU once: {out}");
    }

    #[test]
    fn cells_show_exactly_the_granted_cpus_and_nothing_but_ids() {
        let cluster = ClusterView {
            agents: vec![AgentView {
                id: "a\"1".into(),
                hostname: "h<1>".into(),
                numa_aware: true,
                nodes: vec![
                    NodeView {
                        id: 0,
                        memory_mb: 1024,
                        cpus: vec![0, 1, 2, 3],
                        caches: Vec::new(),
                    },
                    NodeView {
                        id: 1,
                        memory_mb: 1024,
                        cpus: vec![4, 5, 6, 7],
                        caches: Vec::new(),
                    },
                ],
            }],
        };
        let j7 = running(7, "a\"1", Some("1,4-5"));
        let j8 = running(8, "a\"1", None);
        let j9 = running(9, "gone", Some("3"));
        let mut out = String::new();
        render(&mut out, &cluster, &[&j7, &j8, &j9]);
        assert_eq!(out.matches("data-job=\"7\"").count(), 3, "{out}");
        for cpu in [1, 4, 5] {
            assert!(
                out.contains(&format!(
                    "data-agent=\"a&quot;1\" data-cpu=\"{cpu}\" data-job=\"7\""
                )),
                "{out}"
            );
        }
        assert_eq!(out.matches("class=\"cpu free\"").count(), 5, "{out}");
        assert!(out.contains("h&lt;1&gt;") && !out.contains("h<1>"), "{out}");
        assert!(out.contains("job 8</a> (2 CPUs)"), "{out}");
        assert!(!out.contains("data-job=\"8\""), "{out}");
        // An agent only known from a grant is still drawn.
        assert!(
            out.contains("data-agent=\"gone\" data-cpu=\"3\" data-job=\"9\""),
            "{out}"
        );
        assert!(!out.contains("script"), "{out}");
        assert_eq!(job_colour(7), job_colour(7));
        assert_ne!(job_colour(7), job_colour(8));
    }
}
