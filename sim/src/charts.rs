//! The four charts of a run, built from the results with [`crate::svg`]:
//! `utilization.svg` (busy share of the cluster's CPUs over time, per policy),
//! `wait_cdf.svg` (share of placed jobs that waited at most x, log x axis),
//! `numa_local.svg` (`numa_local_ratio` per policy) and `fragmentation.svg` (share of
//! free CPUs stranded on partly used NUMA nodes over time, per policy); plus, when some
//! policy placed GPU jobs, `gpu_local.svg` (`gpu_local_ratio` per policy).
//!
//! All policies share one time axis: from the first submit to the last end of any policy,
//! in seconds, or hours when that span exceeds two hours.

use crate::engine::SimResult;
use crate::metrics::{Summary, fragmentation_bins, sorted_waits, span, utilization_bins};
use crate::svg::{Axis, bar_chart, line_chart};
use crate::workload::Workload;

/// Chart file names and contents, in a fixed order.
pub fn charts(
    w: &Workload,
    capacity_cpus: u64,
    results: &[SimResult],
    summaries: &[Summary],
    bins: usize,
) -> Vec<(&'static str, String)> {
    let t0 = w.jobs.first().map_or(0, |j| j.submit_s);
    let t1 = results
        .iter()
        .map(|r| span(w, r).1)
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    let hours = t1 - t0 > 7200;
    let scale = if hours { 3600.0 } else { 1.0 };
    let x = Axis::linear(
        0.0,
        (t1 - t0) as f64 / scale,
        if hours {
            "time since first submit (h)"
        } else {
            "time since first submit (s)"
        },
    );
    let width = (t1 - t0) as f64 / bins.max(1) as f64;
    let xs = |i: usize| ((i as f64 + 0.5) * width) / scale;
    let over_time = |vals: Vec<f64>| -> Vec<(f64, f64)> {
        vals.into_iter()
            .enumerate()
            .map(|(i, v)| (xs(i), v))
            .collect()
    };
    let util: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            (
                r.policy.clone(),
                over_time(utilization_bins(w, r, capacity_cpus, t0, t1, bins)),
            )
        })
        .collect();
    let frag: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            (
                r.policy.clone(),
                over_time(fragmentation_bins(r, t0, t1, bins)),
            )
        })
        .collect();
    let share = |label: &str| Axis::linear(0.0, 1.0, label);

    // Wait CDF on log10(1 + wait).
    let mut max_wait = 1u64;
    let cdf: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            let waits = sorted_waits(w, r);
            max_wait = max_wait.max(waits.last().copied().unwrap_or(0));
            let n = waits.len();
            let mut pts = Vec::new();
            if n > 0 {
                let steps = n.min(400);
                pts.push((0.0, 0.0));
                for k in 1..=steps {
                    let idx = (k * n).div_ceil(steps) - 1;
                    let x = ((waits[idx] + 1) as f64).log10();
                    pts.push((x, (idx + 1) as f64 / n as f64));
                }
            }
            (r.policy.clone(), pts)
        })
        .collect();
    let decades = ((max_wait + 1) as f64).log10().ceil().max(1.0);
    let mut ticks = vec![(0.0, "0".to_string())];
    let mut v = 1u64;
    for d in 1..=(decades as u32) {
        v *= 10;
        let label = match v {
            v if v >= 1_000_000 => format!("{}M", v / 1_000_000),
            v if v >= 1000 => format!("{}k", v / 1000),
            v => v.to_string(),
        };
        ticks.push((f64::from(d), label));
    }
    let cdf_x = Axis {
        min: 0.0,
        max: decades,
        label: "wait (s, log scale)".to_string(),
        ticks,
    };
    let bars: Vec<(String, Option<f64>)> = summaries
        .iter()
        .map(|s| (s.policy.clone(), s.numa_local_ratio))
        .collect();
    let gpu_bars: Vec<(String, Option<f64>)> = summaries
        .iter()
        .map(|s| (s.policy.clone(), s.gpu_local_ratio))
        .collect();
    let mut out = vec![
        (
            "utilization.svg",
            line_chart(
                "CPU utilisation over time",
                &x,
                &share("busy share of CPUs"),
                &util,
            ),
        ),
        (
            "wait_cdf.svg",
            line_chart(
                "Wait time CDF",
                &cdf_x,
                &share("share of placed jobs"),
                &cdf,
            ),
        ),
        (
            "numa_local.svg",
            bar_chart(
                "Jobs that fit one NUMA node and got one",
                &share("numa_local_ratio"),
                &bars,
            ),
        ),
        (
            "fragmentation.svg",
            line_chart(
                "Fragmentation: free CPUs on partly used NUMA nodes",
                &x,
                &share("share of free CPUs"),
                &frag,
            ),
        ),
    ];
    if gpu_bars.iter().any(|b| b.1.is_some()) {
        out.push((
            "gpu_local.svg",
            bar_chart(
                "GPU jobs whose GPUs are on their CPUs' NUMA node",
                &share("gpu_local_ratio"),
                &gpu_bars,
            ),
        ));
    }
    out
}
