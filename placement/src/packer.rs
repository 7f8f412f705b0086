//! The planning cycle: [`Packer::plan`] takes every agent state and the whole queue and
//! returns a [`Plan`] (assignments, pending reasons, reservations).
//!
//! Order: effective priority (the job's nice-like value, lowered by one step per
//! [`Starvation::aging_step_s`] of waiting, up to [`Starvation::max_age_boost`]), then
//! submit time, then job id — lower runs first, FIFO within a priority.
//!
//! No head-of-line blocking: a job that does not fit is skipped and the jobs after it are
//! still planned. Starvation protection: a job that has waited
//! [`Starvation::reserve_after_s`] and still does not fit reserves the node or agent
//! closest to fitting it (see [`crate::config::Starvation`]); the reservation persists in
//! the [`Packer`] across cycles until the job is placed or leaves the queue, so its target
//! drains while smaller jobs keep flowing elsewhere.
//!
//! Cycle phases: (1) every job in order at its minimum request; (2) when
//! [`PolicyConfig::grow`] is set, open ranges grow with what is left on their own nodes.
//!
//! Determinism: the same agents, queue, `now`, configuration and prior reservations give
//! the same plan (B-tree maps only, explicit tie-breaks, no randomness). A failure of one
//! request shape is remembered within the cycle (free capacity only shrinks, except when a
//! reservation is released, which clears that memory), so a long queue of equal jobs that
//! do not fit costs one search.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::agent::AgentState;
use crate::config::{PackerKind, PolicyConfig, Starvation};
use crate::plan::{Pending, Plan, Reservation};
use crate::planner::Planner;
use crate::reason::PendingReason;
use crate::request::{AffinityPolicy, JobRequest};
use crate::topology::Topology;

/// The packer: configuration plus the reservations it keeps between cycles.
#[derive(Clone, Debug)]
pub struct Packer {
    config: PolicyConfig,
    reservations: BTreeMap<u64, Reservation>,
}

/// The effective priority of a job at `now` (lower runs first).
pub fn effective_priority(job: &JobRequest, now: u64, s: &Starvation) -> i64 {
    let boost = now
        .saturating_sub(job.submitted_at)
        .checked_div(s.aging_step_s)
        .map_or(0, |steps| steps.min(s.max_age_boost.max(0) as u64) as i64);
    i64::from(job.priority) - boost
}

/// Queue positions in planning order.
pub fn queue_order(queue: &[JobRequest], now: u64, s: &Starvation) -> Vec<usize> {
    let mut order: Vec<usize> = (0..queue.len()).collect();
    order.sort_by_key(|&i| {
        let j = &queue[i];
        (effective_priority(j, now, s), j.submitted_at, j.job_id, i)
    });
    order
}

/// What makes two requests equally hard to place (hard constraints only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Shape {
    policy: AffinityPolicy,
    numanodes: Option<u32>,
    gpus: u32,
    cpus: u32,
    mem: u64,
}

impl Shape {
    fn of(job: &JobRequest, policy: AffinityPolicy) -> Shape {
        Shape {
            policy,
            numanodes: job.numanodes,
            gpus: job.gpus,
            cpus: job.cpus.min,
            mem: job.mem_mb.min,
        }
    }
}

/// The distinct topologies of a cycle, to tell "never fits" from "not now".
pub(crate) struct Capacity {
    topologies: Vec<(Arc<Topology>, bool)>,
}

impl Capacity {
    pub(crate) fn new(agents: &[AgentState]) -> Capacity {
        let mut seen = BTreeSet::new();
        let mut topologies = Vec::new();
        for a in agents {
            let key = (Arc::as_ptr(a.topology()) as usize, a.numa_aware());
            if seen.insert(key) {
                topologies.push((a.topology().clone(), a.numa_aware()));
            }
        }
        Capacity { topologies }
    }

    /// A message when no agent could hold the job even when idle.
    pub(crate) fn never_fits(&self, job: &JobRequest, policy: AffinityPolicy) -> Option<String> {
        if self.topologies.is_empty() {
            return None;
        }
        let c = job.cpus.min;
        let m = job.mem_mb.min;
        let aware = || self.topologies.iter().filter(|t| t.1).map(|t| &t.0);
        if let Some(n) = job.numanodes {
            aware().next()?;
            let fits = aware().any(|t| {
                let mut cpus: Vec<u64> = t
                    .nodes()
                    .iter()
                    .filter(|x| !x.is_memory_only())
                    .map(|x| x.cpus().len() as u64)
                    .collect();
                let mut mems: Vec<u64> = t
                    .nodes()
                    .iter()
                    .filter(|x| !x.is_memory_only())
                    .map(|x| x.memory_mb())
                    .collect();
                if cpus.len() < n as usize {
                    return false;
                }
                cpus.sort_unstable_by(|a, b| b.cmp(a));
                mems.sort_unstable_by(|a, b| b.cmp(a));
                let top_c: u64 = cpus.iter().take(n as usize).sum();
                let top_m: u64 = mems
                    .iter()
                    .take(n as usize)
                    .fold(0, |a, &b| a.saturating_add(b));
                top_c >= u64::from(c) && top_m >= m
            });
            if fits {
                return None;
            }
            let most = aware()
                .map(|t| t.nodes().iter().filter(|x| !x.is_memory_only()).count())
                .max()
                .unwrap_or(0);
            return Some(format!(
                "needs {n} whole NUMA nodes with {c} CPUs and {m} MB on one agent, but no agent has them (the most NUMA nodes with CPUs on one agent is {most}); lower numanodes, -cpu or -mem"
            ));
        }
        if policy == AffinityPolicy::NumaStrict {
            aware().next()?;
            let fits = aware().any(|t| {
                t.nodes()
                    .iter()
                    .any(|x| x.cpus().len() as u64 >= u64::from(c) && x.memory_mb() >= m)
            });
            if fits {
                return None;
            }
            let max_c = aware()
                .flat_map(|t| t.nodes().iter().map(|x| x.cpus().len()))
                .max()
                .unwrap_or(0);
            let max_m = aware()
                .flat_map(|t| t.nodes().iter().map(|x| x.memory_mb()))
                .max()
                .unwrap_or(0);
            return Some(format!(
                "needs {c} CPUs and {m} MB in one NUMA node, but the largest NUMA node in the cluster has {max_c} CPUs and the most memory on one node is {max_m} MB; lower -cpu/-mem or use numa-prefer"
            ));
        }
        let fits = self
            .topologies
            .iter()
            .any(|(t, _)| t.cpus().len() as u64 >= u64::from(c) && t.total_memory_mb() >= m);
        if fits {
            return None;
        }
        let max_c = self
            .topologies
            .iter()
            .map(|t| t.0.cpus().len())
            .max()
            .unwrap_or(0);
        let max_m = self
            .topologies
            .iter()
            .map(|t| t.0.total_memory_mb())
            .max()
            .unwrap_or(0);
        Some(format!(
            "needs {c} CPUs and {m} MB on one agent, but the largest agent has {max_c} CPUs and the most memory on one agent is {max_m} MB; lower -cpu/-mem"
        ))
    }
}

/// For each queue position, whether an earlier position has the same job id (only the
/// first occurrence in the queue is planned).
pub(crate) fn duplicates(queue: &[JobRequest]) -> Vec<bool> {
    let mut seen = FxHashSet::default();
    seen.reserve(queue.len());
    queue.iter().map(|j| !seen.insert(j.job_id)).collect()
}

/// Common checks before placing: duplicate ids and invalid requests. Returns the reason
/// when the job must be skipped.
pub(crate) fn precheck(job: &JobRequest, duplicate: bool) -> Option<PendingReason> {
    if duplicate {
        return Some(PendingReason::DuplicateJobId);
    }
    job.validate().err().map(|e| PendingReason::InvalidRequest {
        message: e.to_string(),
    })
}

impl Packer {
    /// A packer with no reservations yet.
    pub fn new(config: PolicyConfig) -> Packer {
        Packer {
            config,
            reservations: BTreeMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The reservations kept for the next cycle, in job-id order.
    pub fn reservations(&self) -> Vec<Reservation> {
        self.reservations.values().cloned().collect()
    }

    /// Plans one cycle: `agents` as they are offered now, `queue` every job waiting, `now`
    /// on the same clock as the jobs' `submitted_at`. The caller launches the
    /// assignments, updates the agents (or receives new offers) and calls again.
    pub fn plan(&mut self, agents: &[AgentState], queue: &[JobRequest], now: u64) -> Plan {
        match self.config.packer {
            PackerKind::FirstFit => crate::baseline::first_fit(agents, queue, now, &self.config),
            PackerKind::NodeBlind => crate::baseline::node_blind(agents, queue, now, &self.config),
            PackerKind::Retz => {
                let order = queue_order(queue, now, &self.config.starvation);
                self.plan_retz(agents, queue, now, &order)
            }
        }
    }

    /// As [`Packer::plan`], but the jobs are planned in the order of `queue` (a caller's
    /// fair-share order that already accounts for priorities and aging) instead of
    /// [`queue_order`]. The baselines keep their own order.
    pub fn plan_in_order(&mut self, agents: &[AgentState], queue: &[JobRequest], now: u64) -> Plan {
        match self.config.packer {
            PackerKind::Retz => {
                self.plan_retz(agents, queue, now, &(0..queue.len()).collect::<Vec<_>>())
            }
            _ => self.plan(agents, queue, now),
        }
    }

    fn plan_retz(
        &mut self,
        agents: &[AgentState],
        queue: &[JobRequest],
        now: u64,
        order: &[usize],
    ) -> Plan {
        let cfg = &self.config;
        let mut planner = Planner::new(agents, cfg);
        if !self.reservations.is_empty() {
            let queued: FxHashSet<u64> = queue.iter().map(|j| j.job_id).collect();
            for r in self.reservations.values() {
                if queued.contains(&r.job_id) {
                    planner.restore(r);
                }
            }
        }
        let capacity = Capacity::new(agents);
        let dups = duplicates(queue);
        // Looked up only, never iterated: hash maps (results do not depend on their order).
        let mut failed: FxHashMap<Shape, PendingReason> = FxHashMap::default();
        let mut never: FxHashMap<Shape, Option<String>> = FxHashMap::default();
        let mut placed = Vec::new();
        let mut pending = Vec::new();
        // Position of each job id in this cycle's order (first occurrence).
        let mut rank: FxHashMap<u64, usize> = FxHashMap::default();
        rank.reserve(order.len());
        for (pos, &qi) in order.iter().enumerate() {
            if !dups[qi] {
                rank.entry(queue[qi].job_id).or_insert(pos);
            }
        }
        for (pos, &qi) in order.iter().enumerate() {
            let job = &queue[qi];
            if let Some(reason) = precheck(job, dups[qi]) {
                if reason != PendingReason::DuplicateJobId {
                    planner.unreserve(job.job_id);
                }
                pending.push(Pending {
                    job_id: job.job_id,
                    reason,
                });
                continue;
            }
            let policy = planner.policy_of(job);
            let shape = Shape::of(job, policy);
            if let Some(message) = never
                .entry(shape)
                .or_insert_with(|| capacity.never_fits(job, policy))
                .clone()
            {
                planner.unreserve(job.job_id);
                pending.push(Pending {
                    job_id: job.job_id,
                    reason: PendingReason::NeverFits { message },
                });
                continue;
            }
            let held = planner.unreserve(job.job_id);
            let attempt = match (&held, failed.get(&shape)) {
                (None, Some(reason)) => Err(reason.clone()),
                _ => planner.decide(job),
            };
            let reason = match attempt {
                Ok(d) => {
                    let agent = d.agent_index();
                    let asg = planner.commit(job, d);
                    placed.push((qi, agent, asg));
                    if held.is_some() {
                        // Capacity came back: earlier failures may fit now.
                        failed.clear();
                    }
                    continue;
                }
                Err(reason) => reason,
            };
            let reason = if let Some(r) = held {
                planner.restore(&r);
                planner.reserved_reason(job).unwrap_or(reason)
            } else {
                let base = match failed.get(&shape) {
                    Some(r) => r.clone(),
                    None => {
                        let r = behind_reservation(&mut planner, job).unwrap_or(reason);
                        failed.insert(shape, r.clone());
                        r
                    }
                };
                let waited = now.saturating_sub(job.submitted_at);
                if waited >= cfg.starvation.reserve_after_s
                    && reserve(
                        &mut planner,
                        job,
                        pos,
                        &rank,
                        cfg.starvation.max_reservations,
                    )
                {
                    planner.reserved_reason(job).unwrap_or(base)
                } else {
                    base
                }
            };
            pending.push(Pending {
                job_id: job.job_id,
                reason,
            });
        }
        if cfg.grow {
            for (qi, agent, asg) in &mut placed {
                planner.grow(&queue[*qi], *agent, asg);
            }
        }
        let reservations = planner.reservations();
        self.reservations = reservations.iter().map(|r| (r.job_id, r.clone())).collect();
        Plan {
            assignments: placed.into_iter().map(|p| p.2).collect(),
            pending,
            reservations,
        }
    }
}

/// Makes a reservation for `job` if a slot is free, or can be taken from a holder later in
/// this cycle's order (`later`); reservations follow the queue order, so a job cannot be
/// starved by the reservations of jobs behind it.
fn reserve(
    planner: &mut Planner<'_>,
    job: &JobRequest,
    pos: usize,
    rank: &FxHashMap<u64, usize>,
    max: usize,
) -> bool {
    if max == 0 {
        return false;
    }
    let later = |h: u64| rank.get(&h).is_some_and(|&r| r > pos);
    if planner.reservation_count() < max {
        return planner.reserve_for(job, &later);
    }
    // Full: free the slot of the holder furthest behind, if any is behind this job.
    let Some(victim) = planner
        .holders()
        .into_iter()
        .filter(|&h| later(h))
        .max_by_key(|h| rank.get(h).copied())
    else {
        return false;
    };
    let Some(r) = planner.unreserve(victim) else {
        return false;
    };
    if planner.reserve_for(job, &later) {
        true
    } else {
        planner.restore(&r);
        false
    }
}

/// If `job` would fit once some holder's reservation were lifted, says so.
fn behind_reservation(planner: &mut Planner<'_>, job: &JobRequest) -> Option<PendingReason> {
    for h in planner.holders() {
        if h == job.job_id {
            continue;
        }
        let r = planner.unreserve(h)?;
        let fits = planner.decide(job).is_ok();
        planner.restore(&r);
        if fits {
            return Some(PendingReason::BehindReservation {
                holder_job_id: h,
                agent_id: r.agent_id,
            });
        }
    }
    None
}

/// One cycle with a fresh [`Packer`] (no reservations from earlier cycles).
pub fn plan(agents: &[AgentState], queue: &[JobRequest], now: u64, config: &PolicyConfig) -> Plan {
    Packer::new(config.clone()).plan(agents, queue, now)
}
