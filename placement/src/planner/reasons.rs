//! Why a job does not fit now: builds the [`PendingReason`] from the capacity indexes
//! (largest free node or agent, the best memory among those with enough CPUs, GPUs, whole
//! nodes).
//!
//! Invariant: reads only; `O(buckets)` per call, never a scan of all agents.

use super::Planner;
use crate::reason::{Closest, PendingReason};
use crate::request::{AffinityPolicy, JobRequest};

impl Planner<'_> {
    // ----- reasons --------------------------------------------------------------------

    fn closest(&self, e: Option<(u32, (u64, u32, u32))>, node: bool) -> Option<Closest> {
        e.map(|(c, (m, a, i))| Closest {
            agent_id: self.agents[a as usize].agent_id().to_string(),
            node: node.then(|| self.topo(a).nodes()[i as usize].id()),
            free_cpus: c,
            free_mem_mb: m,
        })
    }

    /// Why `job` does not fit right now (assuming [`Planner::decide`] failed).
    pub fn reason(&self, job: &JobRequest) -> PendingReason {
        if self.agents.is_empty() {
            return PendingReason::NoAgents;
        }
        let policy = self.policy_of(job);
        let numa_needed = job.numanodes.is_some() || policy == AffinityPolicy::NumaStrict;
        if numa_needed && !self.any_aware {
            return PendingReason::NoNumaLayout {
                policy: if job.numanodes.is_some() {
                    "numanodes".to_string()
                } else {
                    policy.to_string()
                },
            };
        }
        if job.gpus > 0 {
            let mut without = job.clone();
            without.gpus = 0;
            if self.search(&without).is_some() {
                let most = self
                    .gpu_ix
                    .iter()
                    .next_back()
                    .map(|&(g, a)| (self.agents[a as usize].agent_id().to_string(), g));
                return PendingReason::Gpus {
                    gpus: job.gpus,
                    most,
                };
            }
        }
        let c = job.cpus.min;
        let m = job.mem_mb.min;
        if let Some(n) = job.numanodes {
            let most = self.whole_ix.iter().next_back().and_then(|(&cnt, s)| {
                s.iter()
                    .next()
                    .map(|&a| (self.agents[a as usize].agent_id().to_string(), cnt))
            });
            return PendingReason::WholeNodes {
                nodes: n,
                cpus: c,
                mem_mb: m,
                most,
            };
        }
        if policy == AffinityPolicy::NumaStrict {
            let largest = self.nodes_ix.largest();
            let fit = largest
                .filter(|l| l.0 >= c)
                .and_then(|_| self.nodes_ix.most_memory_with(c));
            return PendingReason::OneNode {
                cpus: c,
                mem_mb: m,
                largest: self.closest(largest, true),
                cpu_fit_most_mem: self.closest(fit, true),
            };
        }
        let (ix_a, ix_b) = (&self.agents_ix, &self.plain_ix);
        let largest = match (ix_a.largest(), ix_b.largest()) {
            (Some(x), Some(y)) => Some(if (y.0, y.1.0) > (x.0, x.1.0) { y } else { x }),
            (x, y) => x.or(y),
        };
        let fit = if largest.is_some_and(|l| l.0 >= c) {
            match (ix_a.most_memory_with(c), ix_b.most_memory_with(c)) {
                (Some(x), Some(y)) => Some(if y.1.0 > x.1.0 { y } else { x }),
                (x, y) => x.or(y),
            }
        } else {
            None
        };
        PendingReason::OneAgent {
            cpus: c,
            mem_mb: m,
            largest: self.closest(largest, false),
            cpu_fit_most_mem: self.closest(fit, false),
        }
    }
}
