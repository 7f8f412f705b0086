//! The figures of a simulation, computed from a [`SimResult`]: [`Summary`] (one per
//! policy, the row of `summary.json`) and the binned time series behind the charts.
//!
//! Definitions (seconds; "placed" jobs only unless said otherwise):
//! - wait = start − submit; `wait_pXX_s` is the nearest-rank percentile (the smallest wait
//!   such that at least XX % of placed jobs waited no longer);
//! - bounded slowdown = max(1, (wait + runtime) / max(runtime, 10 s)), averaged;
//! - makespan = last end − first submit of the workload;
//! - utilisation = Σ granted CPUs × runtime / (cluster CPUs × makespan): the share of the
//!   cluster's CPU-seconds that ran jobs between the first submit and the last end;
//! - `numa_local_ratio` = jobs whose grant fits in one NUMA node of their host and got
//!   one (CPUs and memory on one node, pinned; or a one-node host) / jobs whose grant fits
//!   in one NUMA node; `null` when no placed job fits one node;
//! - `l3_local_ratio` = jobs whose CPUs fit one last-level cache domain of a host whose
//!   nodes have several, and got one (pinned) / jobs that fit one; the field (with
//!   `l3_fit_jobs`, `l3_local_jobs`) is absent when no such job was placed, so clusters
//!   without split caches keep their output unchanged;
//! - `gpu_local_ratio` = GPU jobs whose GPUs are all attached to a NUMA node holding
//!   some of their CPUs / GPU jobs (a GPU of unknown locality, on a host whose topology
//!   does not list it, is not local); the field (with `gpu_jobs`, `gpu_local_jobs`) is
//!   absent when no GPU job was placed, so outputs without GPU jobs stay unchanged;
//! - fragmentation = free CPUs on partly used NUMA nodes / all free CPUs (0 when none is
//!   free), and the number of partly used NUMA nodes, both time-weighted over the
//!   samples taken after each batch;
//! - `decision_latency_p99_us` = p99 over planning cycles of the wall-clock time of one
//!   `Packer::plan` call, µs; only with `--measure-latency`, else `null`, so that the
//!   summary is byte-identical across runs by default.
//!
//! - with a runtime model (`--model`) only: runtimes are the modelled ones everywhere,
//!   `modelled_makespan_s` = that makespan and `throughput_jobs_per_h` = placed jobs ×
//!   3600 / makespan (0 when the makespan is 0); both keys are absent without a model.
//!
//! Floats are rounded to 6 decimals ([`round6`]) so the JSON is stable and readable.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{Sample, SimResult};
use crate::policy::NamedPolicy;
use crate::workload::Workload;

/// Runtime floor of the bounded slowdown, seconds.
pub const SLOWDOWN_BOUND_S: u64 = 10;

/// Rounds to 6 decimals (non-finite values become 0).
pub fn round6(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        0.0
    }
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100); 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One policy's figures: a row of `summary.json` and of the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Policy label.
    pub policy: String,
    /// `retz`, `first-fit` or `node-blind`.
    pub packer: String,
    /// The cluster-wide affinity override, or `per-job`.
    pub affinity: String,
    /// Jobs in the workload.
    pub jobs: u64,
    /// Jobs that ran.
    pub placed: u64,
    /// Jobs that never ran.
    pub unplaced: u64,
    /// Last end − first submit, s.
    pub makespan_s: u64,
    /// Mean wait, s.
    pub wait_mean_s: f64,
    /// Median wait, s.
    pub wait_p50_s: u64,
    /// 95th percentile wait, s.
    pub wait_p95_s: u64,
    /// 99th percentile wait, s.
    pub wait_p99_s: u64,
    /// Longest wait, s.
    pub wait_max_s: u64,
    /// Mean bounded slowdown (bound 10 s).
    pub bounded_slowdown_mean: f64,
    /// Mean utilisation over the makespan.
    pub utilization_mean: f64,
    /// Placed jobs whose grant fits one NUMA node of their host.
    pub numa_fit_jobs: u64,
    /// Of those, the ones that got one node.
    pub numa_local_jobs: u64,
    /// `numa_local_jobs / numa_fit_jobs`.
    pub numa_local_ratio: Option<f64>,
    /// Placed jobs whose CPUs fit one L3 cache domain of a host with several per node;
    /// absent (here and in `summary.json`) when no such job was placed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l3_fit_jobs: Option<u64>,
    /// Of those, the ones whose CPUs all got one L3 domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l3_local_jobs: Option<u64>,
    /// `l3_local_jobs / l3_fit_jobs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l3_local_ratio: Option<f64>,
    /// Placed jobs granted GPUs; absent (here and in `summary.json`) when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_jobs: Option<u64>,
    /// Of those, the ones whose GPUs are all on a NUMA node of their CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_local_jobs: Option<u64>,
    /// `gpu_local_jobs / gpu_jobs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_local_ratio: Option<f64>,
    /// Placed pinned jobs whose CPUs span more than one NUMA node.
    pub cross_node_jobs: u64,
    /// Time-weighted share of free CPUs on partly used NUMA nodes.
    pub fragmentation_mean: f64,
    /// Time-weighted number of partly used NUMA nodes.
    pub partial_nodes_mean: f64,
    /// Planning cycles run.
    pub cycles: u64,
    /// Longest queue.
    pub max_queue: u64,
    /// p99 wall-clock time of one planning cycle, µs (only with `--measure-latency`).
    pub decision_latency_p99_us: Option<f64>,
    /// Unplaced jobs by reason.
    pub unplaced_reasons: BTreeMap<String, u64>,
    /// With a runtime model only: placed jobs per hour of makespan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_jobs_per_h: Option<f64>,
    /// With a runtime model only: the makespan with the modelled runtimes, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modelled_makespan_s: Option<u64>,
    /// Per-user waits and shares, by user id; only for workloads of more than one user
    /// (absent from `summary.json` otherwise). See [`crate::fairshare`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<BTreeMap<String, crate::fairshare::UserFigures>>,
    /// Time-weighted Jain's index over the users' weighted dominant shares (see
    /// [`crate::fairshare`]); only for workloads of more than one user, `null` when no
    /// time had two users active and a job running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jain_index: Option<Option<f64>>,
}

/// Waits of placed jobs, sorted.
pub fn sorted_waits(w: &Workload, r: &SimResult) -> Vec<u64> {
    let mut waits: Vec<u64> = r
        .outcomes
        .iter()
        .filter_map(|o| {
            o.placed
                .as_ref()
                .map(|p| p.start_s - w.jobs[o.job as usize].submit_s)
        })
        .collect();
    waits.sort_unstable();
    waits
}

/// `(first submit, last end)` of a result.
pub fn span(w: &Workload, r: &SimResult) -> (u64, u64) {
    let t0 = w.jobs.first().map_or(0, |j| j.submit_s);
    let t1 = r
        .outcomes
        .iter()
        .filter_map(|o| o.placed.as_ref().map(|p| p.start_s + p.runtime_s))
        .max()
        .unwrap_or(t0);
    (t0, t1.max(t0))
}

/// Time-weighted means of (fragmentation share, partly used nodes) over the samples.
fn sample_means(samples: &[Sample]) -> (f64, f64) {
    let mut total = 0.0;
    let mut frag = 0.0;
    let mut partial = 0.0;
    for w in samples.windows(2) {
        let d = (w[1].t - w[0].t) as f64;
        if d <= 0.0 {
            continue;
        }
        total += d;
        frag += d * frag_share(&w[0]);
        partial += d * w[0].partial_nodes as f64;
    }
    if total > 0.0 {
        (frag / total, partial / total)
    } else {
        (0.0, 0.0)
    }
}

/// Free CPUs on partly used nodes / free CPUs.
pub fn frag_share(s: &Sample) -> f64 {
    if s.free_cpus == 0 {
        0.0
    } else {
        s.free_on_partial as f64 / s.free_cpus as f64
    }
}

/// The summary of one result.
pub fn summarize(w: &Workload, capacity_cpus: u64, policy: &NamedPolicy, r: &SimResult) -> Summary {
    let waits = sorted_waits(w, r);
    let placed = waits.len() as u64;
    let (t0, t1) = span(w, r);
    let makespan = t1 - t0;
    let mut slow = 0.0;
    let mut cpu_s = 0u128;
    let mut fit = 0u64;
    let mut local = 0u64;
    let mut cross = 0u64;
    let (mut l3_fit, mut l3_local) = (0u64, 0u64);
    let (mut gpu_jobs, mut gpu_local) = (0u64, 0u64);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for o in &r.outcomes {
        let j = &w.jobs[o.job as usize];
        match (&o.placed, &o.unplaced) {
            (Some(p), _) => {
                let wait = p.start_s - j.submit_s;
                let run = p.runtime_s;
                slow += ((wait + run) as f64 / run.max(SLOWDOWN_BOUND_S) as f64).max(1.0);
                cpu_s += p.cpuset.len() as u128 * u128::from(run);
                if p.numa_fit {
                    fit += 1;
                    if p.numa_local {
                        local += 1;
                    }
                }
                if p.pinned && p.cpu_nodes.len() > 1 {
                    cross += 1;
                }
                if p.l3_fit {
                    l3_fit += 1;
                    if p.l3_local {
                        l3_local += 1;
                    }
                }
                if p.gpu_job {
                    gpu_jobs += 1;
                    if p.gpu_local {
                        gpu_local += 1;
                    }
                }
            }
            (None, Some(why)) => *reasons.entry(why.clone()).or_default() += 1,
            (None, None) => *reasons.entry("not simulated".to_string()).or_default() += 1,
        }
    }
    let (frag, partial) = sample_means(&r.samples);
    let util = if makespan > 0 && capacity_cpus > 0 {
        cpu_s as f64 / (capacity_cpus as f64 * makespan as f64)
    } else {
        0.0
    };
    let latency = r.cycle_latency_ns.as_ref().map(|l| {
        let mut v = l.clone();
        v.sort_unstable();
        round6(percentile(&v, 99.0) as f64 / 1000.0)
    });
    Summary {
        policy: policy.name.clone(),
        packer: serde_plain(&policy.config.packer),
        affinity: policy
            .config
            .affinity
            .map_or_else(|| "per-job".to_string(), |a| a.to_string()),
        jobs: w.jobs.len() as u64,
        placed,
        unplaced: w.jobs.len() as u64 - placed,
        makespan_s: makespan,
        wait_mean_s: round6(if placed > 0 {
            waits.iter().map(|&x| x as f64).sum::<f64>() / placed as f64
        } else {
            0.0
        }),
        wait_p50_s: percentile(&waits, 50.0),
        wait_p95_s: percentile(&waits, 95.0),
        wait_p99_s: percentile(&waits, 99.0),
        wait_max_s: waits.last().copied().unwrap_or(0),
        bounded_slowdown_mean: round6(if placed > 0 {
            slow / placed as f64
        } else {
            0.0
        }),
        utilization_mean: round6(util),
        numa_fit_jobs: fit,
        numa_local_jobs: local,
        numa_local_ratio: (fit > 0).then(|| round6(local as f64 / fit as f64)),
        l3_fit_jobs: (l3_fit > 0).then_some(l3_fit),
        l3_local_jobs: (l3_fit > 0).then_some(l3_local),
        l3_local_ratio: (l3_fit > 0).then(|| round6(l3_local as f64 / l3_fit as f64)),
        gpu_jobs: (gpu_jobs > 0).then_some(gpu_jobs),
        gpu_local_jobs: (gpu_jobs > 0).then_some(gpu_local),
        gpu_local_ratio: (gpu_jobs > 0).then(|| round6(gpu_local as f64 / gpu_jobs as f64)),
        cross_node_jobs: cross,
        fragmentation_mean: round6(frag),
        partial_nodes_mean: round6(partial),
        cycles: r.cycles,
        max_queue: r.max_queue,
        decision_latency_p99_us: latency,
        unplaced_reasons: reasons,
        throughput_jobs_per_h: r.modelled.then(|| {
            round6(if makespan > 0 {
                placed as f64 * 3600.0 / makespan as f64
            } else {
                0.0
            })
        }),
        modelled_makespan_s: r.modelled.then_some(makespan),
        users: crate::fairshare::user_figures(w, r),
        jain_index: r.fairness.as_ref().map(|f| f.jain_index.map(round6)),
    }
}

fn serde_plain<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Time-weighted means of `value` over `bins` equal bins of `[t0, t1)`, for segments
/// `(start, end, value)`; O(segments + bins).
pub fn bin_segments(
    t0: u64,
    t1: u64,
    bins: usize,
    segments: impl Iterator<Item = (u64, u64, f64)>,
) -> Vec<f64> {
    let bins = bins.max(1);
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    let width = span / bins as f64;
    let mut acc = vec![0.0f64; bins];
    let mut full = vec![0.0f64; bins + 1];
    let pos = |t: u64| ((t.saturating_sub(t0)) as f64).min(span);
    for (s, e, v) in segments {
        let (a, b) = (pos(s), pos(e));
        if b <= a {
            continue;
        }
        let ia = ((a / width) as usize).min(bins - 1);
        let ib = ((b / width) as usize).min(bins - 1);
        if ia == ib {
            acc[ia] += v * (b - a);
            continue;
        }
        acc[ia] += v * ((ia + 1) as f64 * width - a);
        acc[ib] += v * (b - ib as f64 * width);
        if ib > ia + 1 {
            full[ia + 1] += v;
            full[ib] -= v;
        }
    }
    let mut run = 0.0;
    for i in 0..bins {
        run += full[i];
        acc[i] = acc[i] / width + run;
    }
    acc
}

/// Busy share of the cluster's CPUs per bin (from the jobs' run intervals).
pub fn utilization_bins(
    _w: &Workload,
    r: &SimResult,
    capacity_cpus: u64,
    t0: u64,
    t1: u64,
    bins: usize,
) -> Vec<f64> {
    let cap = capacity_cpus.max(1) as f64;
    bin_segments(
        t0,
        t1,
        bins,
        r.outcomes.iter().filter_map(|o| {
            o.placed.as_ref().map(|p| {
                (
                    p.start_s,
                    p.start_s + p.runtime_s,
                    p.cpuset.len() as f64 / cap,
                )
            })
        }),
    )
}

/// Fragmentation share per bin (from the samples).
pub fn fragmentation_bins(r: &SimResult, t0: u64, t1: u64, bins: usize) -> Vec<f64> {
    bin_segments(
        t0,
        t1,
        bins,
        r.samples
            .windows(2)
            .map(|w| (w[0].t, w[1].t, frag_share(&w[0]))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v = [0, 10, 20];
        assert_eq!(percentile(&v, 50.0), 10);
        assert_eq!(percentile(&v, 95.0), 20);
        assert_eq!(percentile(&v, 0.0), 0);
        assert_eq!(percentile(&[], 50.0), 0);
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 50.0), 50);
    }

    #[test]
    fn bins_integrate_exactly() {
        // One segment of value 1 over [0, 30) in 3 bins of [0, 30): all ones.
        assert_eq!(
            bin_segments(0, 30, 3, [(0, 30, 1.0)].into_iter()),
            vec![1.0; 3]
        );
        // [5, 25) value 2 in bins of 10: half, full, half.
        assert_eq!(
            bin_segments(0, 30, 3, [(5, 25, 2.0)].into_iter()),
            vec![1.0, 2.0, 1.0]
        );
        // Inside one bin, and clipped at t1.
        assert_eq!(
            bin_segments(0, 10, 2, [(1, 2, 5.0), (8, 99, 1.0)].into_iter()),
            vec![1.0, 0.4]
        );
        assert_eq!(round6(1.0 / 3.0), 0.333333);
        assert_eq!(round6(f64::NAN), 0.0);
    }
}
