//! Baseline packers for comparison (retz-sim `first-fit`, `node-blind`).
//!
//! - [`first_fit`]: what the original Retz and most Mesos frameworks do: jobs in queue
//!   order, agents in the order given, the first agent whose free CPU count, total free
//!   memory and GPUs cover the minimum request; CPU ids are simply its lowest free ids;
//!   memory is accounted on the nodes of those CPUs first.
//! - [`node_blind`]: what Kubernetes does: the agent is chosen on totals only
//!   (least-allocated score: mean of the free CPU and memory fractions left after the job,
//!   highest wins), then on that agent the CPUs are taken best-fit by NUMA (the fullest
//!   single node that holds the job, else the fullest nodes first). A `numa-strict` or
//!   `numanodes` job whose chosen agent cannot hold it in NUMA terms stays pending with a
//!   topology affinity error, as a pod would be rejected by the kubelet.
//!
//! Both share the queue order of the Retz packer (priority, submit time, job id), grant
//! the minimum of each range, have no starvation protection, and mark assignments pinned
//! like the Retz packer would (NUMA-aware agent and policy other than `none`), so that a
//! comparison measures placement quality only. They scan all agents per job: they are
//! reference points, not fast paths.

use crate::agent::AgentState;
use crate::config::PolicyConfig;
use crate::packer::{duplicates, precheck, queue_order};
use crate::plan::{Assignment, NodeMemory, Pending, Plan};
use crate::reason::{Closest, PendingReason};
use crate::request::{AffinityPolicy, JobRequest};
use crate::select::{node_free_count, split_memory, take_in_node};
use crate::sets::{CpuSet, NodeSet};

fn assignment(
    s: &AgentState,
    job: &JobRequest,
    policy: AffinityPolicy,
    cpus: CpuSet,
    mem: &[(usize, u64)],
    whole_nodes: u32,
) -> Assignment {
    let topo = s.topology();
    let cpu_nodes: NodeSet = cpus.iter().filter_map(|c| topo.node_of(c)).collect();
    let memory_per_node: Vec<NodeMemory> = mem
        .iter()
        .filter(|m| m.1 > 0)
        .map(|&(i, mb)| NodeMemory {
            node: topo.nodes()[i].id(),
            mb,
        })
        .collect();
    let nodes = cpu_nodes.union(&memory_per_node.iter().map(|m| m.node).collect());
    Assignment {
        job_id: job.job_id,
        agent_id: s.agent_id().to_string(),
        hostname: s.hostname().to_string(),
        granted_cpus: cpus.len() as u32,
        granted_mem_mb: memory_per_node
            .iter()
            .fold(0u64, |s, m| s.saturating_add(m.mb)),
        granted_gpus: job.gpus,
        // Baselines ignore GPU locality: the lowest free ids.
        gpu_ids: s.free_gpu_ids().iter().take(job.gpus as usize).collect(),
        gpus_named: s.gpus_named(),
        cpus,
        cpu_nodes,
        nodes,
        memory_per_node,
        policy,
        whole_nodes,
        pinned: s.numa_aware() && policy != AffinityPolicy::None,
        cost: 0.0,
    }
}

fn takes_of(s: &AgentState, cpus: &CpuSet) -> Vec<(usize, u32)> {
    let topo = s.topology();
    let mut takes: Vec<(usize, u32)> = Vec::new();
    for c in cpus.iter() {
        if let Some(i) = topo.node_of(c).and_then(|n| topo.node_index(n)) {
            match takes.iter_mut().find(|t| t.0 == i) {
                Some(t) => t.1 += 1,
                None => takes.push((i, 1)),
            }
        }
    }
    takes.sort_unstable();
    takes
}

fn fits_counts(s: &AgentState, job: &JobRequest) -> bool {
    s.free_cpus().len() as u64 >= u64::from(job.cpus.min)
        && s.free_mem_total_mb() >= job.mem_mb.min
        && s.free_gpus() >= job.gpus
}

fn largest_agent(states: &[AgentState], job: &JobRequest) -> PendingReason {
    if job.gpus > 0
        && states.iter().any(|s| {
            s.free_cpus().len() as u64 >= u64::from(job.cpus.min)
                && s.free_mem_total_mb() >= job.mem_mb.min
        })
    {
        let most = states
            .iter()
            .max_by_key(|s| s.free_gpus())
            .map(|s| (s.agent_id().to_string(), s.free_gpus()));
        return PendingReason::Gpus {
            gpus: job.gpus,
            most,
        };
    }
    let close = |s: &AgentState| Closest {
        agent_id: s.agent_id().to_string(),
        node: None,
        free_cpus: s.free_cpus().len() as u32,
        free_mem_mb: s.free_mem_total_mb(),
    };
    // max_by_key keeps the last maximum; iterate reversed so the first agent wins ties.
    let largest = states
        .iter()
        .rev()
        .max_by_key(|s| (s.free_cpus().len(), s.free_mem_total_mb()))
        .map(close);
    let fit = states
        .iter()
        .rev()
        .filter(|s| s.free_cpus().len() as u64 >= u64::from(job.cpus.min))
        .max_by_key(|s| s.free_mem_total_mb())
        .map(close);
    PendingReason::OneAgent {
        cpus: job.cpus.min,
        mem_mb: job.mem_mb.min,
        largest,
        cpu_fit_most_mem: fit,
    }
}

fn run(
    agents: &[AgentState],
    queue: &[JobRequest],
    now: u64,
    cfg: &PolicyConfig,
    mut place: impl FnMut(
        &mut [AgentState],
        &JobRequest,
        AffinityPolicy,
    ) -> Result<Assignment, PendingReason>,
) -> Plan {
    let mut states = agents.to_vec();
    let mut plan = Plan::default();
    let dups = duplicates(queue);
    for qi in queue_order(queue, now, &cfg.starvation) {
        let job = &queue[qi];
        if let Some(reason) = precheck(job, dups[qi]) {
            plan.pending.push(Pending {
                job_id: job.job_id,
                reason,
            });
            continue;
        }
        if states.is_empty() {
            plan.pending.push(Pending {
                job_id: job.job_id,
                reason: PendingReason::NoAgents,
            });
            continue;
        }
        let policy = cfg.affinity.unwrap_or(job.policy);
        match place(&mut states, job, policy) {
            Ok(a) => plan.assignments.push(a),
            Err(reason) => plan.pending.push(Pending {
                job_id: job.job_id,
                reason,
            }),
        }
    }
    plan
}

/// Commits an assignment on its agent (built from that agent's free state, so it fits).
fn commit(s: &mut AgentState, a: &Assignment) {
    let ok = s.allocate(a);
    debug_assert!(
        ok.is_ok(),
        "baseline built an assignment that does not fit: {ok:?}"
    );
}

/// The first-fit baseline (see the module docs).
pub fn first_fit(
    agents: &[AgentState],
    queue: &[JobRequest],
    now: u64,
    cfg: &PolicyConfig,
) -> Plan {
    run(agents, queue, now, cfg, |states, job, policy| {
        let Some(ai) = states.iter().position(|s| fits_counts(s, job)) else {
            return Err(largest_agent(states, job));
        };
        let s = &mut states[ai];
        let cpus: CpuSet = s.free_cpus().iter().take(job.cpus.min as usize).collect();
        let takes = takes_of(s, &cpus);
        let (mem, _) = split_memory(
            s.topology(),
            |i| s.free_mem_mb()[i],
            |_| false,
            &takes,
            job.mem_mb.min,
            true,
        )
        .ok_or_else(|| largest_agent(std::slice::from_ref(s), job))?;
        let a = assignment(s, job, policy, cpus, &mem, 0);
        commit(s, &a);
        Ok(a)
    })
}

/// The node-blind baseline (see the module docs).
pub fn node_blind(
    agents: &[AgentState],
    queue: &[JobRequest],
    now: u64,
    cfg: &PolicyConfig,
) -> Plan {
    run(agents, queue, now, cfg, |states, job, policy| {
        let c = job.cpus.min;
        let m = job.mem_mb.min;
        let mut best: Option<(f64, usize)> = None;
        for (i, s) in states.iter().enumerate() {
            if !fits_counts(s, job) {
                continue;
            }
            let cap_c = s.topology().cpus().len().max(1) as f64;
            let cap_m = s.topology().total_memory_mb().max(1) as f64;
            let score = ((s.free_cpus().len() as f64 - f64::from(c)) / cap_c
                + (s.free_mem_total_mb() - m) as f64 / cap_m)
                / 2.0;
            if best.is_none_or(|b| score > b.0) {
                best = Some((score, i));
            }
        }
        let Some((_, ai)) = best else {
            return Err(largest_agent(states, job));
        };
        let s = &mut states[ai];
        let topo = s.topology().clone();
        let free = s.free_cpus().clone();
        let free_mem = s.free_mem_mb().to_vec();
        let n = topo.num_nodes();
        let node_free: Vec<u32> = (0..n).map(|i| node_free_count(&topo, i, &free)).collect();
        let agent_id = s.agent_id().to_string();
        let affinity_error = || PendingReason::TopologyAffinity {
            agent_id: agent_id.clone(),
            cpus: c,
        };
        if let Some(nn) = job.numanodes {
            let full: Vec<usize> = (0..n)
                .filter(|&i| {
                    !topo.nodes()[i].is_memory_only()
                        && node_free[i] as usize == topo.nodes()[i].cpus().len()
                })
                .take(nn as usize)
                .collect();
            let cpus: CpuSet = full
                .iter()
                .fold(CpuSet::new(), |acc, &i| acc.union(topo.nodes()[i].cpus()));
            let mem_avail = full
                .iter()
                .fold(0u64, |s, &i| s.saturating_add(free_mem[i]));
            if full.len() < nn as usize || (cpus.len() as u64) < u64::from(c) || mem_avail < m {
                return Err(affinity_error());
            }
            let takes: Vec<(usize, u32)> = full.iter().map(|&i| (i, node_free[i])).collect();
            let (mem, _) = split_memory(&topo, |i| free_mem[i], |_| false, &takes, m, false)
                .ok_or_else(affinity_error)?;
            let a = assignment(s, job, policy, cpus, &mem, nn);
            commit(s, &a);
            return Ok(a);
        }
        // Best fit single node: fewest free CPUs that hold the job (and its memory).
        let single = (0..n)
            .filter(|&i| node_free[i] >= c && free_mem[i] >= m)
            .min_by_key(|&i| (node_free[i], i));
        let takes: Vec<(usize, u32)> = match (single, policy) {
            (Some(i), _) => vec![(i, c)],
            (None, AffinityPolicy::NumaStrict) => return Err(affinity_error()),
            (None, _) => {
                let mut order: Vec<usize> = (0..n).filter(|&i| node_free[i] > 0).collect();
                order.sort_by_key(|&i| (node_free[i], i));
                let mut need = c;
                let mut t = Vec::new();
                for i in order {
                    if need == 0 {
                        break;
                    }
                    let k = node_free[i].min(need);
                    t.push((i, k));
                    need -= k;
                }
                t.sort_unstable();
                t
            }
        };
        let mut cpus = CpuSet::new();
        for &(i, k) in &takes {
            take_in_node(&topo, i, &free, k, job.smt, job.cache, &mut cpus);
        }
        let strict = policy == AffinityPolicy::NumaStrict;
        let (mem, _) = split_memory(&topo, |i| free_mem[i], |_| false, &takes, m, !strict)
            .ok_or_else(affinity_error)?;
        let a = assignment(s, job, policy, cpus, &mem, 0);
        commit(s, &a);
        Ok(a)
    })
}
