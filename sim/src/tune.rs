//! `retz-sim tune`: a deterministic search for the cost-model weights (and the affinity
//! override) that suit a cluster and a workload.
//!
//! Objective: minimise `bounded_slowdown_mean`, subject to
//! (a) `numa_local_ratio` ≥ the best baseline's (`first-fit`, `node-blind`) and
//! (b) `placed` ≥ the most jobs any baseline placed.
//! Candidates are ranked by [`Score`]: feasible before infeasible; among infeasible ones,
//! smaller violation first; then lower slowdown, lower `wait_p95_s`, higher
//! `numa_local_ratio`, and the earlier evaluation.
//!
//! Search:
//! 1. evaluate both baselines (they set the constraints) and the Retz packer under each
//!    built-in affinity choice (`retz` = each job's own policy, `numa-strict`,
//!    `numa-prefer`, `spread`, `none`) with default weights; the best is the start;
//! 2. coordinate search over the seven `Weights` fields, the affinity choice and the two
//!    starvation knobs that shape the queue (`reserve_after_s`, `max_reservations`): each
//!    round visits the coordinates in an order shuffled by `seed` (SplitMix64); for a
//!    weight `w` it tries `0, w/4, w/2, 2w, 4w` (or `0.25, 1, 4` when `w == 0`), for the
//!    affinity the five choices, for `reserve_after_s` = `r` never (`i64::MAX`), `r/4`,
//!    `r/2`, `2r`, `4r`, for `max_reservations` = `m` none (0), `m/4`, `m/2`, `2m`, `4m`;
//!    it moves to the best candidate if it beats the current point; rounds stop when one
//!    brings no move, after `rounds`, or when `max_evals` simulations have run.
//!
//! With a runtime model ([`TuneOptions::model`], `tune --model`), every simulation scales
//! runtimes to placements, the objective becomes "maximise `throughput_jobs_per_h`, then
//! minimise `modelled_makespan_s`" under the same constraints (ties: slowdown, p95 wait,
//! NUMA-local ratio), and the search has one more coordinate, the cluster-wide L3 cache
//! layout `cache` (per-job, `pack`, `spread`). Without a model nothing changes.
//!
//! Every evaluation is a full simulation (see [`crate::engine`]); results are memoised by
//! configuration. The same inputs and seed give the same result, whatever the thread count.

use std::collections::BTreeMap;

use retz_placement::{AffinityPolicy, CachePolicy, PolicyConfig, Weights};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::engine::{SimError, SimOptions};
use crate::generate::SplitMix64;
use crate::metrics::{Summary, round6, summarize};
use crate::model::RuntimeModel;
use crate::policy::NamedPolicy;
use crate::run_policies_model;
use crate::workload::Workload;

/// Search settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TuneOptions {
    /// Seed of the coordinate order.
    pub seed: u64,
    /// Most coordinate rounds.
    pub rounds: usize,
    /// Most simulations in all.
    pub max_evals: usize,
    /// Engine options for every simulation.
    pub sim: SimOptions,
    /// Threads per batch of candidates.
    pub threads: usize,
    /// A runtime model: optimise throughput (see the module docs).
    pub model: Option<RuntimeModel>,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            seed: 1,
            rounds: 4,
            max_evals: 120,
            sim: SimOptions::default(),
            threads: 1,
            model: None,
        }
    }
}

/// How good a candidate is (lower is better; see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Score {
    /// Whether both constraints hold.
    pub feasible: bool,
    /// How far the constraints are missed (NUMA-local ratio points + share of jobs).
    pub violation: f64,
    /// Mean bounded slowdown.
    pub slowdown: f64,
    /// p95 wait, s.
    pub wait_p95_s: u64,
    /// NUMA-local ratio (0 when undefined).
    pub numa_local_ratio: f64,
    /// With a model: placed jobs per hour (maximised first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_jobs_per_h: Option<f64>,
    /// With a model: the modelled makespan, s (minimised next).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modelled_makespan_s: Option<u64>,
}

impl Score {
    fn key(&self) -> (bool, f64, f64, u64, f64, u64, f64) {
        (
            !self.feasible,
            self.violation,
            -self.throughput_jobs_per_h.unwrap_or(0.0),
            self.modelled_makespan_s.unwrap_or(0),
            self.slowdown,
            self.wait_p95_s,
            -self.numa_local_ratio,
        )
    }

    /// Whether `self` is strictly better than `other`.
    pub fn better_than(&self, other: &Score) -> bool {
        let (a, b) = (self.key(), other.key());
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.total_cmp(&b.2))
            .then(a.3.cmp(&b.3))
            .then(a.4.total_cmp(&b.4))
            .then(a.5.cmp(&b.5))
            .then(a.6.total_cmp(&b.6))
            .is_lt()
    }
}

/// The constraints the baselines set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Constraints {
    /// Best baseline NUMA-local ratio.
    pub min_numa_local_ratio: f64,
    /// Most jobs a baseline placed.
    pub min_placed: u64,
}

impl Constraints {
    /// Scores a summary against the constraints.
    pub fn score(&self, s: &Summary) -> Score {
        let ratio = s.numa_local_ratio.unwrap_or(0.0);
        let v_ratio = (self.min_numa_local_ratio - ratio).max(0.0);
        let v_placed = self.min_placed.saturating_sub(s.placed) as f64 / s.jobs.max(1) as f64;
        let violation = round6(v_ratio + v_placed);
        Score {
            feasible: violation <= 0.0,
            violation,
            slowdown: s.bounded_slowdown_mean,
            wait_p95_s: s.wait_p95_s,
            numa_local_ratio: ratio,
            throughput_jobs_per_h: s.throughput_jobs_per_h,
            modelled_makespan_s: s.modelled_makespan_s,
        }
    }
}

/// One simulation of the search.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Order of evaluation (0-based).
    pub index: usize,
    /// What produced it: `baseline`, `start`, or `round N: <coordinate>`.
    pub step: String,
    /// The affinity override (`per-job` when none).
    pub affinity: String,
    /// The whole configuration simulated (its name is not significant).
    pub config: PolicyConfig,
    /// The figures.
    pub summary: Summary,
    /// Its score.
    pub score: Score,
}

/// The outcome of a search.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TuneReport {
    /// The objective, in words.
    pub objective: String,
    /// The constraints.
    pub constraints: Constraints,
    /// Seed used.
    pub seed: u64,
    /// Rounds run.
    pub rounds_run: usize,
    /// Every simulation, in order.
    pub evaluations: Vec<Evaluation>,
    /// Index of the start point in `evaluations`.
    pub start: usize,
    /// Index of the best in `evaluations`.
    pub best: usize,
    /// The best configuration (named `tuned`).
    pub best_config: PolicyConfig,
}

/// The objective in words (also written into the TOML).
pub const OBJECTIVE: &str = "minimise bounded_slowdown_mean (bound 10 s) subject to numa_local_ratio >= the best baseline's and placed >= the most any baseline placed";

/// The objective with a runtime model.
pub const OBJECTIVE_MODEL: &str = "maximise throughput_jobs_per_h, then minimise modelled_makespan_s, under the runtime model, subject to numa_local_ratio >= the best baseline's and placed >= the most any baseline placed";

const CACHES: [Option<CachePolicy>; 3] = [None, Some(CachePolicy::Pack), Some(CachePolicy::Spread)];

const WEIGHT_NAMES: [&str; 9] = [
    "extra_node",
    "cross_node",
    "smt_shared",
    "fragmentation",
    "balance",
    "memory_spill",
    "grant",
    "cache_split",
    "cache_fragmentation",
];

fn weight_mut<'a>(w: &'a mut Weights, name: &str) -> &'a mut f64 {
    match name {
        "extra_node" => &mut w.extra_node,
        "cross_node" => &mut w.cross_node,
        "smt_shared" => &mut w.smt_shared,
        "fragmentation" => &mut w.fragmentation,
        "balance" => &mut w.balance,
        "memory_spill" => &mut w.memory_spill,
        "cache_split" => &mut w.cache_split,
        "cache_fragmentation" => &mut w.cache_fragmentation,
        _ => &mut w.grant,
    }
}

const AFFINITIES: [Option<AffinityPolicy>; 5] = [
    None,
    Some(AffinityPolicy::NumaStrict),
    Some(AffinityPolicy::NumaPrefer),
    Some(AffinityPolicy::Spread),
    Some(AffinityPolicy::None),
];

fn affinity_name(a: Option<AffinityPolicy>) -> String {
    a.map_or_else(|| "per-job".to_string(), |a| a.to_string())
}

struct Search<'a> {
    cluster: &'a Cluster,
    workload: &'a Workload,
    opts: &'a TuneOptions,
    memo: BTreeMap<String, usize>,
    evals: Vec<Evaluation>,
    constraints: Constraints,
}

fn key_of(c: &PolicyConfig) -> String {
    let mut c = c.clone();
    c.name = String::new();
    serde_json::to_string(&c).unwrap_or_default()
}

impl Search<'_> {
    /// Evaluates the configurations not seen yet (in parallel), returns all their indexes.
    fn eval(
        &mut self,
        step: &str,
        configs: &[PolicyConfig],
        limit: usize,
    ) -> Result<Vec<usize>, SimError> {
        let mut todo: Vec<NamedPolicy> = Vec::new();
        let mut todo_keys: Vec<String> = Vec::new();
        for c in configs {
            let k = key_of(c);
            if self.memo.contains_key(&k) || todo_keys.contains(&k) {
                continue;
            }
            if self.evals.len() + todo.len() >= limit {
                break;
            }
            todo_keys.push(k);
            todo.push(NamedPolicy {
                name: format!("eval-{}", self.evals.len() + todo.len()),
                source: "tune".to_string(),
                config: c.clone(),
            });
        }
        let results = run_policies_model(
            self.cluster,
            self.workload,
            &todo,
            &self.opts.sim,
            self.opts.threads,
            self.opts.model.as_ref(),
        )?;
        let cap = self.cluster.total_cpus();
        for ((p, k), (r, _)) in todo.iter().zip(todo_keys).zip(results) {
            let summary = summarize(self.workload, cap, p, &r);
            let score = self.constraints.score(&summary);
            let index = self.evals.len();
            self.memo.insert(k, index);
            self.evals.push(Evaluation {
                index,
                step: step.to_string(),
                affinity: affinity_name(p.config.affinity),
                config: p.config.clone(),
                summary,
                score,
            });
        }
        Ok(configs
            .iter()
            .filter_map(|c| self.memo.get(&key_of(c)).copied())
            .collect())
    }

    fn best_of(&self, idx: &[usize]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for &i in idx {
            if best.is_none_or(|b| self.evals[i].score.better_than(&self.evals[b].score)) {
                best = Some(i);
            }
        }
        best
    }
}

/// Runs the search (see the module docs).
pub fn tune(
    cluster: &Cluster,
    workload: &Workload,
    opts: &TuneOptions,
) -> Result<TuneReport, SimError> {
    let mut s = Search {
        cluster,
        workload,
        opts,
        memo: BTreeMap::new(),
        evals: Vec::new(),
        constraints: Constraints {
            min_numa_local_ratio: 0.0,
            min_placed: 0,
        },
    };
    let baselines: Vec<PolicyConfig> = ["first-fit", "node-blind"]
        .iter()
        .filter_map(|n| PolicyConfig::builtin(n))
        .collect();
    // Baselines and start points are always evaluated, whatever max_evals says.
    let base_idx = s.eval("baseline", &baselines, usize::MAX)?;
    s.constraints = Constraints {
        min_numa_local_ratio: base_idx
            .iter()
            .map(|&i| s.evals[i].summary.numa_local_ratio.unwrap_or(0.0))
            .fold(0.0, f64::max),
        min_placed: base_idx
            .iter()
            .map(|&i| s.evals[i].summary.placed)
            .max()
            .unwrap_or(0),
    };
    for i in base_idx {
        s.evals[i].score = s.constraints.score(&s.evals[i].summary);
    }
    let starts: Vec<PolicyConfig> = AFFINITIES
        .iter()
        .map(|&a| PolicyConfig {
            affinity: a,
            ..PolicyConfig::default()
        })
        .collect();
    let start_idx = s.eval("start", &starts, usize::MAX)?;
    let start = s.best_of(&start_idx).unwrap_or(0);
    let mut current = start;
    let mut current_cfg = config_of(&s.evals[current]);
    let mut rng = SplitMix64::new(opts.seed);
    let mut rounds_run = 0;
    for round in 1..=opts.rounds {
        if s.evals.len() >= opts.max_evals {
            break;
        }
        rounds_run = round;
        let mut coords: Vec<&str> = WEIGHT_NAMES.to_vec();
        coords.extend(["affinity", "reserve_after_s", "max_reservations"]);
        if opts.model.is_some() {
            coords.push("cache");
        }
        for i in (1..coords.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            coords.swap(i, j);
        }
        let mut moved = false;
        for coord in coords {
            let candidates: Vec<PolicyConfig> = if coord == "affinity" {
                AFFINITIES
                    .iter()
                    .map(|&a| PolicyConfig {
                        affinity: a,
                        ..current_cfg.clone()
                    })
                    .collect()
            } else if coord == "cache" {
                CACHES
                    .iter()
                    .map(|&c| PolicyConfig {
                        cache: c,
                        ..current_cfg.clone()
                    })
                    .collect()
            } else if coord == "reserve_after_s" {
                starvation_values(current_cfg.starvation.reserve_after_s, NEVER_RESERVE_S)
                    .into_iter()
                    .map(|v| {
                        let mut c = current_cfg.clone();
                        c.starvation.reserve_after_s = v;
                        c
                    })
                    .collect()
            } else if coord == "max_reservations" {
                // 0 = no reservations.
                starvation_values(current_cfg.starvation.max_reservations as u64, 0)
                    .into_iter()
                    .map(|v| {
                        let mut c = current_cfg.clone();
                        c.starvation.max_reservations = usize::try_from(v).unwrap_or(usize::MAX);
                        c
                    })
                    .collect()
            } else {
                let w = *weight_mut(&mut current_cfg.weights.clone(), coord);
                let values: Vec<f64> = if w == 0.0 {
                    vec![0.25, 1.0, 4.0]
                } else {
                    vec![0.0, w / 4.0, w / 2.0, w * 2.0, w * 4.0]
                };
                values
                    .into_iter()
                    .map(|v| {
                        let mut c = current_cfg.clone();
                        *weight_mut(&mut c.weights, coord) = round6(v);
                        c
                    })
                    .collect()
            };
            let idx = s.eval(
                &format!("round {round}: {coord}"),
                &candidates,
                opts.max_evals,
            )?;
            if let Some(b) = s.best_of(&idx)
                && s.evals[b].score.better_than(&s.evals[current].score)
            {
                current = b;
                current_cfg = config_of(&s.evals[b]);
                moved = true;
            }
            if s.evals.len() >= opts.max_evals {
                break;
            }
        }
        if !moved {
            break;
        }
    }
    let mut best_config = current_cfg;
    best_config.name = "tuned".to_string();
    Ok(TuneReport {
        objective: if opts.model.is_some() {
            OBJECTIVE_MODEL
        } else {
            OBJECTIVE
        }
        .to_string(),
        constraints: s.constraints,
        seed: opts.seed,
        rounds_run,
        evaluations: s.evals,
        start,
        best: current,
        best_config,
    })
}

fn config_of(e: &Evaluation) -> PolicyConfig {
    e.config.clone()
}

/// `reserve_after_s` meaning "never reserve" (the largest value TOML can hold).
pub const NEVER_RESERVE_S: u64 = i64::MAX as u64;

/// Candidate values of a starvation coordinate around its current value `v`, capped at
/// [`NEVER_RESERVE_S`] so that every value can be written to TOML.
fn starvation_values(v: u64, off: u64) -> Vec<u64> {
    let mut out = vec![off];
    if v == 0 {
        out.extend([1, 4]);
    } else if v < NEVER_RESERVE_S {
        out.extend([v / 4, v / 2, v.saturating_mul(2), v.saturating_mul(4)]);
    }
    let mut out: Vec<u64> = out.into_iter().map(|x| x.min(NEVER_RESERVE_S)).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The comment lines of the tuned policy file: objective, constraints and the figures.
pub fn toml_comments(report: &TuneReport, cluster: &Cluster, workload: &Workload) -> Vec<String> {
    let line = |label: &str, e: &Evaluation| {
        let s = &e.summary;
        let modelled = match (s.throughput_jobs_per_h, s.modelled_makespan_s) {
            (Some(t), Some(m)) => format!("  throughput {t:.3} jobs/h  makespan {m} s"),
            _ => String::new(),
        };
        format!(
            "{label:<12} slowdown {:.3}  wait p50/p95/p99 {}/{}/{} s  numa_local {}  placed {}/{}  utilisation {:.4}{modelled}",
            s.bounded_slowdown_mean,
            s.wait_p50_s,
            s.wait_p95_s,
            s.wait_p99_s,
            s.numa_local_ratio
                .map_or_else(|| "n/a".to_string(), |r| format!("{r:.4}")),
            s.placed,
            s.jobs,
            s.utilization_mean
        )
    };
    let mut c = vec![
        "Tuned by `retz-sim tune`; use as a --policy file or as the [placement] section of retz.toml.".to_string(),
        format!("cluster:  {} ({})", cluster.spec, cluster.describe()),
        format!("workload: {} ({} jobs)", workload.source, workload.jobs.len()),
        format!("objective: {}", report.objective),
        format!(
            "constraints: numa_local_ratio >= {:.4}, placed >= {}",
            report.constraints.min_numa_local_ratio, report.constraints.min_placed
        ),
        format!(
            "search: seed {}, {} rounds, {} simulations; details in tune.json",
            report.seed,
            report.rounds_run,
            report.evaluations.len()
        ),
    ];
    for e in report.evaluations.iter().filter(|e| e.step == "baseline") {
        c.push(line(&e.summary.packer, e));
    }
    c.push(line(
        &format!("start ({})", report.evaluations[report.start].affinity),
        &report.evaluations[report.start],
    ));
    c.push(line("tuned", &report.evaluations[report.best]));
    if !report.evaluations[report.best].score.feasible {
        c.push(
            "WARNING: no configuration met the constraints; this is the closest one".to_string(),
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(feasible: bool, violation: f64, slowdown: f64) -> Score {
        Score {
            feasible,
            violation,
            slowdown,
            wait_p95_s: 0,
            numa_local_ratio: 0.0,
            throughput_jobs_per_h: None,
            modelled_makespan_s: None,
        }
    }

    #[test]
    fn starvation_candidates_fit_toml() {
        assert_eq!(
            starvation_values(300, NEVER_RESERVE_S),
            vec![75, 150, 600, 1200, NEVER_RESERVE_S]
        );
        assert_eq!(starvation_values(0, 0), vec![0, 1, 4]);
        assert_eq!(
            starvation_values(NEVER_RESERVE_S, NEVER_RESERVE_S),
            vec![NEVER_RESERVE_S]
        );
        assert_eq!(starvation_values(16, 0), vec![0, 4, 8, 32, 64]);
        let mut c = PolicyConfig::default();
        c.starvation.reserve_after_s = NEVER_RESERVE_S;
        let text = crate::policy::policy_toml(&c, &[]).unwrap();
        let back = crate::policy::parse_policy_toml("t", "t", &text).unwrap();
        assert_eq!(back.config.starvation.reserve_after_s, NEVER_RESERVE_S);
    }

    #[test]
    fn every_weight_is_a_search_coordinate_with_its_own_field() {
        // The serialised weights name every field: each must be searched (the L3 weights
        // included) and map to its own field.
        let keys = serde_json::to_value(Weights::default()).unwrap();
        let keys: Vec<&String> = keys.as_object().unwrap().keys().collect();
        assert!(keys.iter().any(|k| *k == "cache_split"), "{keys:?}");
        assert!(keys.iter().any(|k| *k == "cache_fragmentation"), "{keys:?}");
        assert_eq!(keys.len(), WEIGHT_NAMES.len(), "{keys:?}");
        for k in &keys {
            assert!(WEIGHT_NAMES.contains(&k.as_str()), "{k} is not searched");
            let mut w = Weights::default();
            *weight_mut(&mut w, k) = 123.5;
            let v = serde_json::to_value(&w).unwrap();
            assert_eq!(v[k.as_str()], 123.5, "{k}");
            let changed = v
                .as_object()
                .unwrap()
                .values()
                .filter(|x| **x == 123.5)
                .count();
            assert_eq!(changed, 1, "{k}");
        }
    }

    #[test]
    fn score_order() {
        assert!(sc(true, 0.0, 9.0).better_than(&sc(false, 0.1, 1.0)));
        assert!(sc(false, 0.1, 9.0).better_than(&sc(false, 0.2, 1.0)));
        assert!(sc(true, 0.0, 1.0).better_than(&sc(true, 0.0, 2.0)));
        assert!(!sc(true, 0.0, 1.0).better_than(&sc(true, 0.0, 1.0)));
    }
}
