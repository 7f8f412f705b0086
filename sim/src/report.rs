//! Writing a run's outputs into `--out DIR`, and the plain-text table.
//!
//! Files (all byte-identical for the same inputs, unless `--measure-latency` is given):
//! - `summary.json` — a JSON array, one [`Summary`] object per policy, in `--policy` order;
//! - `run.json` — what was simulated: cluster, workload (with the source's header lines,
//!   the importer's notes and skipped-record counts), options, and each policy's full
//!   configuration;
//! - `jobs-<policy>.csv` — one row per job in workload order (see [`JOBS_CSV_HEADER`]);
//! - `utilization.svg`, `wait_cdf.svg`, `numa_local.svg`, `fragmentation.svg`;
//! - `timing.json` — only with `--measure-latency`: wall-clock figures per policy.
//!
//! Invariant: nothing here reads a clock; timing comes in through [`Timing`].

use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use retz_placement::PolicyConfig;
use serde::Serialize;

use crate::charts::charts;
use crate::cluster::{Cluster, GroupInfo};
use crate::engine::{SimOptions, SimResult};
use crate::metrics::{Summary, percentile, round6, summarize};
use crate::policy::NamedPolicy;
use crate::workload::Workload;

/// Columns of `jobs-<policy>.csv`.
pub const JOBS_CSV_HEADER: &str = "job_id,submit_s,start_s,end_s,wait_s,runtime_s,agent,cpus,cpuset,nodes,mem_mb,pinned,numa_fit,numa_local,unplaced_reason";

/// An output file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}; check that --out names a writable directory")]
pub struct OutputError {
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `contents` to `dir/name`.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> Result<(), OutputError> {
    let p = dir.join(name);
    fs::write(&p, contents).map_err(io_err(&p))
}

/// Wall-clock figures of one policy's run (non-deterministic; `timing.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timing {
    /// Policy label.
    pub policy: String,
    /// Wall time of the whole simulation, ms.
    pub wall_ms: f64,
    /// Planning cycles timed.
    pub cycles: u64,
    /// Time spent inside `Packer::plan`, all cycles, ms.
    pub plan_total_ms: f64,
    /// Median cycle, µs.
    pub cycle_p50_us: f64,
    /// p99 cycle, µs.
    pub cycle_p99_us: f64,
    /// Longest cycle, µs.
    pub cycle_max_us: f64,
}

impl Timing {
    /// Figures from a result's cycle latencies and the measured wall time.
    pub fn of(r: &SimResult, wall: std::time::Duration) -> Timing {
        let mut v = r.cycle_latency_ns.clone().unwrap_or_default();
        v.sort_unstable();
        let us = |ns: u64| round6(ns as f64 / 1000.0);
        Timing {
            policy: r.policy.clone(),
            wall_ms: round6(wall.as_secs_f64() * 1000.0),
            cycles: v.len() as u64,
            plan_total_ms: round6(v.iter().map(|&n| n as f64).sum::<f64>() / 1e6),
            cycle_p50_us: us(percentile(&v, 50.0)),
            cycle_p99_us: us(percentile(&v, 99.0)),
            cycle_max_us: us(v.last().copied().unwrap_or(0)),
        }
    }
}

#[derive(Serialize)]
struct RunClusterJson<'a> {
    spec: &'a str,
    hosts: usize,
    cpus: u64,
    numa_nodes: u64,
    groups: &'a [GroupInfo],
}

#[derive(Serialize)]
struct RunWorkloadJson<'a> {
    source: &'a str,
    format: &'a str,
    jobs: usize,
    header: &'a [String],
    notes: &'a [String],
    skipped: &'a std::collections::BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct RunPolicyJson<'a> {
    name: &'a str,
    source: &'a str,
    config: &'a PolicyConfig,
}

#[derive(Serialize)]
struct RunOptionsJson {
    cycle_interval_s: u64,
    measure_latency: bool,
    window: Option<usize>,
    time_unit: &'static str,
    slowdown_bound_s: u64,
}

#[derive(Serialize)]
struct RunJson<'a> {
    cluster: RunClusterJson<'a>,
    workload: RunWorkloadJson<'a>,
    options: RunOptionsJson,
    policies: Vec<RunPolicyJson<'a>>,
}

/// `run.json` text.
pub fn run_json(
    cluster: &Cluster,
    w: &Workload,
    policies: &[NamedPolicy],
    opts: &SimOptions,
) -> String {
    let doc = RunJson {
        cluster: RunClusterJson {
            spec: &cluster.spec,
            hosts: cluster.hosts.len(),
            cpus: cluster.total_cpus(),
            numa_nodes: cluster.total_nodes(),
            groups: &cluster.groups,
        },
        workload: RunWorkloadJson {
            source: &w.source,
            format: w.format.as_str(),
            jobs: w.jobs.len(),
            header: &w.header,
            notes: &w.notes,
            skipped: &w.skipped,
        },
        options: RunOptionsJson {
            cycle_interval_s: opts.cycle_interval_s,
            measure_latency: opts.measure_latency,
            window: opts.window,
            time_unit: "seconds (virtual, whole)",
            slowdown_bound_s: crate::metrics::SLOWDOWN_BOUND_S,
        },
        policies: policies
            .iter()
            .map(|p| RunPolicyJson {
                name: &p.name,
                source: &p.source,
                config: &p.config,
            })
            .collect(),
    };
    to_json_pretty(&doc)
}

/// Pretty JSON with a trailing newline.
pub fn to_json_pretty<T: Serialize>(v: &T) -> String {
    // Our report types hold only strings, numbers, options and maps with string keys.
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// A file-name-safe form of a policy label.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("p{s}")
    } else {
        s
    }
}

/// Distinct file slugs for the policies, in order.
pub fn slugs(policies: &[NamedPolicy]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in policies {
        let base = slug(&p.name);
        let mut s = base.clone();
        let mut k = 2;
        while out.contains(&s) {
            s = format!("{base}-{k}");
            k += 1;
        }
        out.push(s);
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes one policy's per-job CSV.
pub fn write_jobs_csv(
    path: &Path,
    cluster: &Cluster,
    w: &Workload,
    r: &SimResult,
) -> Result<(), OutputError> {
    let f = fs::File::create(path).map_err(io_err(path))?;
    let mut out = BufWriter::new(f);
    let mut line = String::new();
    writeln!(out, "{JOBS_CSV_HEADER}").map_err(io_err(path))?;
    for o in &r.outcomes {
        let j = &w.jobs[o.job as usize];
        line.clear();
        match &o.placed {
            Some(p) => {
                let _ = writeln!(
                    line,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},",
                    j.id,
                    j.submit_s,
                    p.start_s,
                    p.start_s + p.runtime_s,
                    p.start_s - j.submit_s,
                    p.runtime_s,
                    csv_field(&cluster.hosts[p.host as usize].agent_id),
                    p.cpuset.len(),
                    csv_field(&p.cpuset.to_string()),
                    csv_field(&p.cpu_nodes.to_string()),
                    p.mem_mb,
                    p.pinned,
                    p.numa_fit,
                    p.numa_local,
                );
            }
            None => {
                let _ = writeln!(
                    line,
                    "{},{},,,,{},,,,,,,,,{}",
                    j.id,
                    j.submit_s,
                    j.runtime_s,
                    csv_field(o.unplaced.as_deref().unwrap_or("not simulated"))
                );
            }
        }
        out.write_all(line.as_bytes()).map_err(io_err(path))?;
    }
    out.flush().map_err(io_err(path))
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.decimals$}"))
}

/// The side-by-side comparison: one row per figure, one column per policy.
pub fn table(summaries: &[Summary]) -> String {
    type Row = (&'static str, fn(&Summary) -> String);
    let rows: [Row; 19] = [
        ("packer", |s| s.packer.clone()),
        ("affinity", |s| s.affinity.clone()),
        ("jobs", |s| s.jobs.to_string()),
        ("placed", |s| s.placed.to_string()),
        ("unplaced", |s| s.unplaced.to_string()),
        ("makespan_s", |s| s.makespan_s.to_string()),
        ("wait_mean_s", |s| format!("{:.1}", s.wait_mean_s)),
        ("wait_p50_s", |s| s.wait_p50_s.to_string()),
        ("wait_p95_s", |s| s.wait_p95_s.to_string()),
        ("wait_p99_s", |s| s.wait_p99_s.to_string()),
        ("wait_max_s", |s| s.wait_max_s.to_string()),
        ("bounded_slowdown_mean", |s| {
            format!("{:.3}", s.bounded_slowdown_mean)
        }),
        ("utilization_mean", |s| format!("{:.4}", s.utilization_mean)),
        ("numa_local_ratio", |s| fmt_opt(s.numa_local_ratio, 4)),
        ("cross_node_jobs", |s| s.cross_node_jobs.to_string()),
        ("fragmentation_mean", |s| {
            format!("{:.4}", s.fragmentation_mean)
        }),
        ("partial_nodes_mean", |s| {
            format!("{:.1}", s.partial_nodes_mean)
        }),
        ("cycles", |s| s.cycles.to_string()),
        ("decision_latency_p99_us", |s| {
            fmt_opt(s.decision_latency_p99_us, 1)
        }),
    ];
    let mut rows = rows.to_vec();
    if summaries.iter().any(|s| s.l3_local_ratio.is_some()) {
        let at = rows
            .iter()
            .position(|r| r.0 == "cross_node_jobs")
            .unwrap_or(rows.len());
        rows.insert(at, ("l3_local_ratio", |s| fmt_opt(s.l3_local_ratio, 4)));
    }
    if summaries.iter().any(|s| s.gpu_local_ratio.is_some()) {
        let at = rows
            .iter()
            .position(|r| r.0 == "cross_node_jobs")
            .unwrap_or(rows.len());
        rows.insert(at, ("gpu_local_ratio", |s| fmt_opt(s.gpu_local_ratio, 4)));
    }
    let label_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let cells: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| rows.iter().map(|r| (r.1)(s)).collect())
        .collect();
    let widths: Vec<usize> = summaries
        .iter()
        .zip(&cells)
        .map(|(s, c)| {
            c.iter()
                .map(String::len)
                .max()
                .unwrap_or(0)
                .max(s.policy.chars().count())
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:<label_w$}", "policy");
    for (s, w) in summaries.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", s.policy);
    }
    out.push('\n');
    let total = label_w + widths.iter().map(|w| w + 2).sum::<usize>();
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for (ri, r) in rows.iter().enumerate() {
        let _ = write!(out, "{:<label_w$}", r.0);
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "  {:>w$}", c[ri]);
        }
        out.push('\n');
    }
    out
}

/// The report printed on stdout: what was simulated, the table, and unplaced reasons.
pub fn report_text(cluster: &Cluster, w: &Workload, summaries: &[Summary]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cluster:  {} ({})", cluster.spec, cluster.describe());
    let _ = writeln!(
        out,
        "workload: {} ({}, {} jobs, {} records skipped)",
        w.source,
        w.format,
        w.jobs.len(),
        w.skipped_total()
    );
    for h in &w.header {
        let _ = writeln!(out, "  ; {h}");
    }
    for n in &w.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    for (r, n) in &w.skipped {
        let _ = writeln!(out, "  skipped: {n} x {r}");
    }
    out.push('\n');
    out.push_str(&table(summaries));
    for s in summaries {
        if s.unplaced_reasons.is_empty() {
            continue;
        }
        let mut reasons: Vec<(&String, &u64)> = s.unplaced_reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(out, "\nunplaced under {} ({} jobs):", s.policy, s.unplaced);
        for (r, n) in reasons.iter().take(5) {
            let _ = writeln!(out, "  {n} x {r}");
        }
        if reasons.len() > 5 {
            let _ = writeln!(
                out,
                "  ... {} more reasons in summary.json",
                reasons.len() - 5
            );
        }
    }
    out
}

/// Writes every output of a run and returns the summaries.
#[allow(clippy::too_many_arguments)]
pub fn write_run(
    dir: &Path,
    cluster: &Cluster,
    w: &Workload,
    policies: &[NamedPolicy],
    results: &[SimResult],
    opts: &SimOptions,
    bins: usize,
    timings: Option<&[Timing]>,
) -> Result<Vec<Summary>, OutputError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let cap = cluster.total_cpus();
    let summaries: Vec<Summary> = policies
        .iter()
        .zip(results)
        .map(|(p, r)| summarize(w, cap, p, r))
        .collect();
    write_file(dir, "summary.json", &to_json_pretty(&summaries))?;
    write_file(dir, "run.json", &run_json(cluster, w, policies, opts))?;
    for (s, r) in slugs(policies).iter().zip(results) {
        write_jobs_csv(&dir.join(format!("jobs-{s}.csv")), cluster, w, r)?;
    }
    for (name, svg) in charts(w, cap, results, &summaries, bins) {
        write_file(dir, name, &svg)?;
    }
    if let Some(t) = timings {
        write_file(dir, "timing.json", &to_json_pretty(&t))?;
    }
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_and_distinct() {
        assert_eq!(slug("Numa Strict/2"), "numa_strict_2");
        assert_eq!(slug(".."), "p..");
        assert_eq!(slug(""), "p");
        let ps: Vec<NamedPolicy> = ["a b", "a_b", "a?b"]
            .iter()
            .map(|n| NamedPolicy {
                name: n.to_string(),
                source: String::new(),
                config: PolicyConfig::default(),
            })
            .collect();
        assert_eq!(slugs(&ps), vec!["a_b", "a_b-2", "a_b-3"]);
        assert_eq!(csv_field("a,b\"c"), "\"a,b\"\"c\"");
        assert_eq!(csv_field("0-3"), "0-3");
    }
}
