//! The simulator's multi-user queue: users take turns by weighted dominant-resource
//! fairness (DRF), as `retz-server`'s fair queue does, and the fairness figures of a run.
//!
//! **Order** ([`FairShare::order`], used when the workload has more than one user): each
//! user's running *dominant share* is the larger of its held CPUs and memory as fractions
//! of the cluster's, divided by its weight ([`Shares`], default 1). Progressive filling:
//! the user with the lowest share (ties: lowest user id) takes its next job, and its share
//! grows by that job's minimum request; repeated until the queue is ordered. Within a
//! user, the packer's own order (effective priority with aging, then submit time, then id,
//! [`retz_placement::queue_order`]). The packer then plans in that order
//! (`Packer::plan_in_order`), as the server's planner does.
//!
//! This is the server's selection rule (`retz_scheduler::planner::fairq`) on the
//! simulator's requests; the simulator does not depend on the server crate, so the rule
//! is written here once more over plain requests (no classes: the simulator plans its
//! whole queue, or its first `--window` jobs of this order).
//!
//! **Figures** ([`FairShare::sample`], after every batch): the time-weighted mean of each
//! user's dominant share (unweighted, held resources over the cluster's) and of Jain's
//! index over the *active* users (those with a job queued or running):
//! `J = (Σ xᵢ)² / (n · Σ xᵢ²)` with `xᵢ` = user i's dominant share divided by its weight,
//! counted over the time when at least two users are active and some job runs. J is 1
//! when every active user holds exactly its weighted share, and 1/n when one holds all.
//!
//! Determinism: sums are over integers (CPUs, MB) and B-tree maps; ties break on user id.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::str::FromStr;

use retz_placement::{Assignment, JobRequest, Starvation, queue_order};

use crate::engine::SimResult;
use crate::metrics::{percentile, round6};
use crate::workload::{Job, Workload};

/// Per-user weights (`--share USER=WEIGHT`); a user not listed has weight 1.
/// Weights are kept in thousandths (so options stay comparable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shares {
    milli: BTreeMap<u32, u64>,
}

/// A `--share` value that is not `USER=WEIGHT`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--share {given:?}: {why}; write USER=WEIGHT, e.g. --share 7=2")]
pub struct ShareError {
    given: String,
    why: String,
}

/// One `USER=WEIGHT` pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Share {
    /// The user id (as in the workload).
    pub user: u32,
    /// Its weight, > 0.
    pub weight: f64,
}

impl FromStr for Share {
    type Err = ShareError;
    fn from_str(s: &str) -> Result<Share, ShareError> {
        let err = |why: &str| ShareError {
            given: s.to_owned(),
            why: why.to_owned(),
        };
        let (u, w) = s.split_once('=').ok_or_else(|| err("no '='"))?;
        let user = u
            .trim()
            .parse::<u32>()
            .map_err(|_| err("the user is not a whole number (the workload's user id)"))?;
        let weight = w
            .trim()
            .parse::<f64>()
            .map_err(|_| err("the weight is not a number"))?;
        if !(weight.is_finite() && (0.001..=1e9).contains(&weight)) {
            return Err(err("the weight must be between 0.001 and 1e9"));
        }
        Ok(Share { user, weight })
    }
}

impl Shares {
    /// Shares from `--share` pairs (a later pair for the same user wins).
    pub fn new(pairs: &[Share]) -> Shares {
        Shares {
            milli: pairs
                .iter()
                .map(|s| (s.user, (s.weight * 1000.0).round().max(1.0) as u64))
                .collect(),
        }
    }

    /// The weight of `user`.
    pub fn weight(&self, user: u32) -> f64 {
        self.milli.get(&user).map_or(1.0, |&m| m as f64 / 1000.0)
    }
}

/// Fairness figures of a run (multi-user workloads only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fairness {
    /// Time-weighted mean dominant share per user over the counted time.
    pub mean_share: BTreeMap<u32, f64>,
    /// Time-weighted mean of Jain's index; `None` if no time was counted.
    pub jain_index: Option<f64>,
    /// Seconds counted (≥ 2 users active, some job running).
    pub counted_s: u64,
}

/// The users of `jobs` (distinct ids, ascending).
pub fn users(jobs: &[Job]) -> Vec<u32> {
    let mut u: Vec<u32> = jobs.iter().map(|j| j.user).collect();
    u.sort_unstable();
    u.dedup();
    u
}

/// The engine's multi-user state: order and figures. See the module doc.
pub(crate) struct FairShare<'a> {
    jobs: &'a [Job],
    shares: &'a Shares,
    total_cpus: f64,
    total_mem: f64,
    /// The state since the last sample: (t, Jain's index if counted, shares).
    last: Option<(u64, Option<f64>, BTreeMap<u32, f64>)>,
    jain_area: f64,
    share_area: BTreeMap<u32, f64>,
    counted: u64,
}

impl<'a> FairShare<'a> {
    /// For `jobs` on a cluster of `total_cpus` CPUs and `total_mem` MB.
    pub(crate) fn new(
        jobs: &'a [Job],
        shares: &'a Shares,
        total_cpus: u64,
        total_mem: u64,
    ) -> Self {
        FairShare {
            jobs,
            shares,
            total_cpus: total_cpus as f64,
            total_mem: total_mem as f64,
            last: None,
            jain_area: 0.0,
            share_area: BTreeMap::new(),
            counted: 0,
        }
    }

    fn dominant(&self, cpus: f64, mem: f64) -> f64 {
        let f = |x: f64, t: f64| if t > 0.0 { x / t } else { 0.0 };
        f(cpus, self.total_cpus).max(f(mem, self.total_mem))
    }

    /// Held CPUs and MB per user.
    fn usage(&self, held: &HashMap<u32, Assignment>) -> BTreeMap<u32, (u64, u64)> {
        let mut by: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for (&ji, a) in held {
            let u = by.entry(self.jobs[ji as usize].user).or_default();
            u.0 += u64::from(a.granted_cpus);
            u.1 += a.granted_mem_mb;
        }
        by
    }

    /// `queue` in weighted-DRF order (see the module doc); `user_of` maps a job id to
    /// its job index.
    pub(crate) fn order(
        &self,
        queue: &[JobRequest],
        held: &HashMap<u32, Assignment>,
        index_of: &HashMap<u64, u32>,
        now: u64,
        s: &Starvation,
    ) -> Vec<JobRequest> {
        let user_of = |r: &JobRequest| {
            index_of
                .get(&r.job_id)
                .map_or(0, |&i| self.jobs[i as usize].user)
        };
        let mut per_user: BTreeMap<u32, std::collections::VecDeque<usize>> = BTreeMap::new();
        for i in queue_order(queue, now, s) {
            per_user.entry(user_of(&queue[i])).or_default().push_back(i);
        }
        let usage = self.usage(held);
        let mut shares: BTreeMap<u32, f64> = BTreeMap::new();
        let mut turn: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
        for &u in per_user.keys() {
            let (c, m) = usage.get(&u).copied().unwrap_or_default();
            let share = self.dominant(c as f64, m as f64) / self.shares.weight(u);
            shares.insert(u, share);
            turn.push(Reverse((share.to_bits(), u)));
        }
        let mut out = Vec::with_capacity(queue.len());
        while let Some(Reverse((_, u))) = turn.pop() {
            let Some(jobs) = per_user.get_mut(&u) else {
                continue;
            };
            let Some(i) = jobs.pop_front() else {
                continue;
            };
            let r = &queue[i];
            let share = shares.entry(u).or_default();
            *share +=
                self.dominant(f64::from(r.cpus.min), r.mem_mb.min as f64) / self.shares.weight(u);
            if !jobs.is_empty() {
                turn.push(Reverse((share.to_bits(), u)));
            }
            out.push(r.clone());
        }
        out
    }

    /// Records the state after the batch at `t` (queued jobs `queue`, running `held`).
    pub(crate) fn sample(
        &mut self,
        t: u64,
        queue: &[JobRequest],
        held: &HashMap<u32, Assignment>,
        index_of: &HashMap<u64, u32>,
    ) {
        if let Some((t0, jain, shares)) = self.last.take()
            && let Some(j) = jain
        {
            let dt = t.saturating_sub(t0);
            self.jain_area += j * dt as f64;
            self.counted += dt;
            for (u, x) in shares {
                *self.share_area.entry(u).or_default() += x * dt as f64;
            }
        }
        let usage = self.usage(held);
        let mut active: BTreeMap<u32, f64> = BTreeMap::new();
        for (&u, &(c, m)) in &usage {
            active.insert(u, self.dominant(c as f64, m as f64));
        }
        for r in queue {
            if let Some(&i) = index_of.get(&r.job_id) {
                active.entry(self.jobs[i as usize].user).or_insert(0.0);
            }
        }
        let xs: Vec<f64> = active
            .iter()
            .map(|(&u, &x)| x / self.shares.weight(u))
            .collect();
        let sum: f64 = xs.iter().sum();
        let sq: f64 = xs.iter().map(|x| x * x).sum();
        let jain = (xs.len() >= 2 && sq > 0.0).then(|| sum * sum / (xs.len() as f64 * sq));
        self.last = Some((t, jain, active));
    }

    /// The figures of the run.
    pub(crate) fn finish(self) -> Fairness {
        let n = self.counted as f64;
        Fairness {
            mean_share: self
                .share_area
                .into_iter()
                .map(|(u, a)| (u, if n > 0.0 { a / n } else { 0.0 }))
                .collect(),
            jain_index: (self.counted > 0).then(|| self.jain_area / n),
            counted_s: self.counted,
        }
    }
}

/// One user's row of `summary.json`'s `users`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UserFigures {
    /// Jobs of the user in the workload.
    pub jobs: u64,
    /// Of those, the ones that ran.
    pub placed: u64,
    /// Mean wait of its placed jobs, s.
    pub mean_wait_s: f64,
    /// 95th percentile wait of its placed jobs (nearest rank), s.
    pub p95_wait_s: u64,
    /// Time-weighted mean dominant share (see the module doc).
    pub mean_share: f64,
}

/// Per-user figures of a result, when the workload has more than one user.
pub fn user_figures(w: &Workload, r: &SimResult) -> Option<BTreeMap<String, UserFigures>> {
    let fairness = r.fairness.as_ref()?;
    let mut waits: BTreeMap<u32, (u64, Vec<u64>)> = BTreeMap::new();
    for o in &r.outcomes {
        let j = &w.jobs[o.job as usize];
        let e = waits.entry(j.user).or_default();
        e.0 += 1;
        if let Some(p) = &o.placed {
            e.1.push(p.start_s - j.submit_s);
        }
    }
    Some(
        waits
            .into_iter()
            .map(|(u, (jobs, mut v))| {
                v.sort_unstable();
                let mean = if v.is_empty() {
                    0.0
                } else {
                    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
                };
                let figures = UserFigures {
                    jobs,
                    placed: v.len() as u64,
                    mean_wait_s: round6(mean),
                    p95_wait_s: percentile(&v, 95.0),
                    mean_share: round6(fairness.mean_share.get(&u).copied().unwrap_or(0.0)),
                };
                (u.to_string(), figures)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_flags_parse_or_say_why() {
        let s: Share = "7=2.5".parse().unwrap();
        assert_eq!((s.user, s.weight), (7, 2.5));
        let shares = Shares::new(&[s]);
        assert_eq!(shares.weight(7), 2.5);
        assert_eq!(shares.weight(8), 1.0);
        for bad in ["7", "x=1", "7=0", "7=-1", "7=nan", "7=abc"] {
            let e = bad.parse::<Share>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("--share {bad:?}: ")), "{e}");
        }
    }
}
