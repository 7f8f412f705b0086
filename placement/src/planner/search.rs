//! The search for a job's placement: which capacity index each affinity policy walks
//! (best fit first), and in which order the policy's fallbacks are tried; the scoring of
//! each candidate is in `candidates`.
//!
//! Invariant: the search never mutates the planner.

use super::Planner;
use super::candidates::{Cand, better, pick};
use crate::index::CapIndex;
use crate::request::{AffinityPolicy, JobRequest};

impl Planner<'_> {
    fn gpu_agents(&self, g: u32) -> impl Iterator<Item = u32> + '_ {
        self.gpu_ix.range((g, 0)..).map(|&(_, a)| a)
    }

    fn counts_from<'s>(
        &'s self,
        ix: &'s CapIndex,
        job: &'s JobRequest,
    ) -> impl Iterator<Item = Cand> + 's {
        ix.fitting(job.cpus.min, job.mem_mb.min)
            .filter_map(move |(_, (_, a, _))| self.eval_counts(a, job))
    }

    /// The best single node: of the agents with `job.gpus` free GPUs, else of every
    /// node that fits the job's CPUs and memory.
    fn best_node(&self, k: usize, job: &JobRequest) -> Option<Cand> {
        if job.gpus > 0 {
            let nodes = self.gpu_agents(job.gpus).flat_map(|a| self.agent_nodes(a));
            return self.pick_node(k, nodes, job);
        }
        let nodes = self
            .nodes_ix
            .fitting(job.cpus.min, job.mem_mb.min)
            .map(|(_, (_, a, i))| (a, i as usize));
        self.pick_node(k, nodes, job)
    }

    /// A GPU job's last resort: the agents with its GPUs that state no NUMA layout,
    /// by counts.
    fn gpu_counts_only(&self, k: usize, job: &JobRequest) -> Option<Cand> {
        let it = self
            .gpu_agents(job.gpus)
            .filter(|&a| !self.agents[a as usize].numa_aware())
            .filter_map(|a| self.eval_counts(a, job));
        pick(k, it)
    }

    pub(super) fn search(&self, job: &JobRequest) -> Option<Cand> {
        let k = self.cfg.candidates.max(1);
        let c = job.cpus.min;
        let m = job.mem_mb.min;
        let g = job.gpus;
        if let Some(n) = job.numanodes {
            return if g > 0 {
                pick(
                    k,
                    self.gpu_agents(g)
                        .filter_map(|a| self.eval_whole(a, job, n)),
                )
            } else {
                let it = self
                    .whole_ix
                    .range(n..)
                    .flat_map(|(_, s)| s.iter().copied())
                    .filter_map(|a| self.eval_whole(a, job, n));
                pick(k, it)
            };
        }
        let counts = |ix| self.counts_from(ix, job);
        match self.policy_of(job) {
            AffinityPolicy::NumaStrict => self.best_node(k, job),
            AffinityPolicy::NumaPrefer => {
                let node = self.best_node(k, job);
                if g > 0 {
                    node.or_else(|| {
                        pick(
                            k,
                            self.gpu_agents(g).filter_map(|a| self.eval_multi(a, job)),
                        )
                    })
                    .or_else(|| self.gpu_counts_only(k, job))
                } else {
                    node.or_else(|| {
                        self.pick_multi(
                            k,
                            self.agents_ix.fitting(c, m).map(|(_, (_, a, _))| a),
                            job,
                        )
                    })
                    .or_else(|| pick(k, counts(&self.plain_ix)))
                }
            }
            AffinityPolicy::Spread => {
                if g > 0 {
                    pick(
                        k,
                        self.gpu_agents(g).filter_map(|a| self.eval_spread(a, job)),
                    )
                    .or_else(|| self.gpu_counts_only(k, job))
                } else {
                    pick(
                        k,
                        self.agents_ix
                            .fitting(c, m)
                            .filter_map(|(_, (_, a, _))| self.eval_spread(a, job)),
                    )
                    .or_else(|| pick(k, counts(&self.plain_ix)))
                }
            }
            AffinityPolicy::None => {
                if g > 0 {
                    pick(
                        k,
                        self.gpu_agents(g).filter_map(|a| self.eval_counts(a, job)),
                    )
                } else {
                    let a = pick(k, counts(&self.agents_ix));
                    let b = pick(k, counts(&self.plain_ix));
                    match (a, b) {
                        (Some(x), Some(y)) => Some(if better(&y, &x) { y } else { x }),
                        (x, y) => x.or(y),
                    }
                }
            }
        }
    }
}
