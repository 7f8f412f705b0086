//! `retz-sim fit`: per-application ordinary least squares of the placement runtime model
//! (see [`crate::model`]) on a job history (see [`crate::history`]).
//!
//! Per application, `log runtime = a + b·log(cpus) + Σ β_k·x_k`, `f_k = exp(β_k)`. The
//! solve is our own (no linear-algebra crate): modified Gram-Schmidt QR of the design
//! matrix, columns taken in the order intercept, `log cpus`, [`FACTORS`]; a column with no
//! variation in the app's data is dropped ("no variation"), and a column that the columns
//! before it already explain (e.g. `l3_spanned` always equal to `nodes_spanned` on hosts
//! with one L3 per node) is dropped ("not separable from the columns before it"). Dropped
//! factors are absent from `factors` and listed under the app's `dropped` key.
//!
//! 95 % confidence intervals: `β_k ± t(0.975, n−p)·se_k`, `se_k² = s²·[(XᵀX)⁻¹]_kk`,
//! `s² = RSS/(n−p)`, with the t quantile from the Cornish-Fisher expansion (error below
//! 1e-3 for n−p ≥ 5); the factor interval is `exp` of that.
//!
//! Pooling: applications with fewer than `min_jobs` usable lines are fitted together as
//! `"*"` (listed under its `pooled_apps` key); when every application is large enough,
//! `"*"` is fitted on all lines (the fallback for applications the history never saw).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::history::{History, Row};
use crate::metrics::round6;
use crate::model::{AppModel, FACTORS, POOLED, RuntimeModel};
use crate::svg::{Axis, scatter_chart};

/// Fit settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitOptions {
    /// Applications with fewer usable lines are pooled into `"*"`.
    pub min_jobs: usize,
}

/// A fit problem that is not about one input line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FitError(pub String);

/// The least-squares solution of one application.
#[derive(Clone, Debug, PartialEq)]
pub struct Ols {
    /// Coefficients of the kept columns (`None` = dropped), in column order.
    pub beta: Vec<Option<f64>>,
    /// Half-width of the 95 % interval of each kept coefficient.
    pub half95: Vec<Option<f64>>,
    /// Why each dropped column was dropped.
    pub dropped: Vec<Option<&'static str>>,
    /// Residual standard deviation.
    pub sigma: f64,
}

/// The 0.975 quantile of Student's t with `nu` degrees of freedom (Cornish-Fisher).
pub fn t975(nu: f64) -> f64 {
    let z: f64 = 1.959_963_984_540_054;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * nu)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * nu * nu)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * nu.powi(3))
}

/// Ordinary least squares of `y` on the columns `x` (each of length `y.len()`), dropping
/// constant and dependent columns (see the module docs). `None` when fewer rows than kept
/// columns + 1 remain.
pub fn ols(x: &[Vec<f64>], y: &[f64]) -> Option<Ols> {
    let n = y.len();
    let p = x.len();
    let mut q: Vec<Vec<f64>> = Vec::new();
    let mut kept: Vec<usize> = Vec::new();
    // r[i][j]: kept-column coordinates.
    let mut r: Vec<Vec<f64>> = Vec::new();
    let mut dropped: Vec<Option<&'static str>> = vec![None; p];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
    for (j, col) in x.iter().enumerate() {
        let constant = col.iter().all(|v| *v == col[0]);
        if constant && j > 0 {
            dropped[j] = Some("no variation in the data");
            continue;
        }
        let norm0 = dot(col, col).sqrt();
        let mut v = col.clone();
        let mut coef = vec![0.0; q.len()];
        for _ in 0..2 {
            for (i, qi) in q.iter().enumerate() {
                let c = dot(qi, &v);
                coef[i] += c;
                for (vk, qk) in v.iter_mut().zip(qi) {
                    *vk -= c * qk;
                }
            }
        }
        let norm = dot(&v, &v).sqrt();
        if norm <= 1e-9 * norm0.max(1e-300) {
            dropped[j] = Some("not separable from the columns before it");
            continue;
        }
        for vk in &mut v {
            *vk /= norm;
        }
        coef.push(norm);
        q.push(v);
        r.push(coef);
        kept.push(j);
    }
    let k = kept.len();
    if n <= k {
        return None;
    }
    // R is upper triangular: column c of R is r[c] (rows 0..=c).
    let qty: Vec<f64> = q.iter().map(|qi| dot(qi, y)).collect();
    let mut b = vec![0.0; k];
    for i in (0..k).rev() {
        let mut s = qty[i];
        for c in i + 1..k {
            s -= r[c][i] * b[c];
        }
        b[i] = s / r[i][i];
    }
    // R⁻¹ (upper triangular), then diag((XᵀX)⁻¹) = row sums of squares of R⁻¹.
    let mut rinv = vec![vec![0.0; k]; k];
    for c in 0..k {
        rinv[c][c] = 1.0 / r[c][c];
        for i in (0..c).rev() {
            let mut s = 0.0;
            for m in i + 1..=c {
                s += r[m][i] * rinv[m][c];
            }
            rinv[i][c] = -s / r[i][i];
        }
    }
    let mut rss = 0.0;
    for row in 0..n {
        let fit: f64 = kept.iter().zip(&b).map(|(&j, bj)| x[j][row] * bj).sum();
        rss += (y[row] - fit).powi(2);
    }
    let dof = (n - k) as f64;
    let s2 = rss / dof;
    let t = t975(dof);
    let mut beta = vec![None; p];
    let mut half95 = vec![None; p];
    for (i, &j) in kept.iter().enumerate() {
        beta[j] = Some(b[i]);
        let var: f64 = rinv[i].iter().map(|v| v * v).sum::<f64>() * s2;
        half95[j] = Some(t * var.sqrt());
    }
    Some(Ols {
        beta,
        half95,
        dropped,
        sigma: s2.sqrt(),
    })
}

/// One application's fit.
#[derive(Clone, Debug, PartialEq)]
pub struct AppFit {
    /// The application (`"*"` for the pool).
    pub app: String,
    /// Lines used.
    pub n: u64,
    /// The solution (columns: intercept, log cpus, then [`FACTORS`]).
    pub ols: Ols,
    /// Applications pooled into `"*"`.
    pub pooled_apps: Vec<String>,
    /// (observed, predicted) runtime of every line, s, for the chart.
    pub points: Vec<(f64, f64)>,
}

impl AppFit {
    /// `(factor, [lo, hi])` of factor `k` (index into [`FACTORS`]), if kept.
    pub fn factor(&self, k: usize) -> Option<(f64, [f64; 2])> {
        let b = self.ols.beta[k + 2]?;
        let h = self.ols.half95[k + 2]?;
        Some((b.exp(), [(b - h).exp(), (b + h).exp()]))
    }
}

/// A fit of a whole history.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// Per application, in name order (`"*"` first).
    pub apps: Vec<AppFit>,
    /// Lines skipped because the job ran unpinned.
    pub skipped_unpinned: u64,
    /// Lines skipped because the job did not finish.
    pub skipped_not_finished: u64,
    /// Notes (e.g. a pool too small to fit).
    pub notes: Vec<String>,
    /// The pooling threshold used.
    pub min_jobs: usize,
}

fn fit_rows(app: &str, rows: &[&Row]) -> Option<AppFit> {
    let mut x: Vec<Vec<f64>> = (0..6).map(|_| Vec::with_capacity(rows.len())).collect();
    let mut y = Vec::with_capacity(rows.len());
    for r in rows {
        x[0].push(1.0);
        x[1].push(f64::from(r.cpus).ln());
        for (k, v) in r.features.x().into_iter().enumerate() {
            x[k + 2].push(v);
        }
        y.push(r.runtime_s.ln());
    }
    let ols = ols(&x, &y)?;
    let points = (0..rows.len())
        .map(|i| {
            let pred: f64 = ols
                .beta
                .iter()
                .enumerate()
                .filter_map(|(j, b)| b.map(|b| b * x[j][i]))
                .sum();
            (rows[i].runtime_s, pred.exp())
        })
        .collect();
    Some(AppFit {
        app: app.to_string(),
        n: rows.len() as u64,
        ols,
        pooled_apps: Vec::new(),
        points,
    })
}

/// Fits every application of `h` (see the module docs).
pub fn fit(h: &History, o: &FitOptions) -> Result<FitReport, FitError> {
    if o.min_jobs < 8 {
        return Err(FitError(format!(
            "--min-jobs {} is too small: a fit of 6 coefficients needs at least 8 jobs",
            o.min_jobs
        )));
    }
    if h.rows.is_empty() {
        return Err(FitError(format!(
            "the history has no usable line ({} unpinned, {} not finished)",
            h.skipped_unpinned, h.skipped_not_finished
        )));
    }
    let mut by_app: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &h.rows {
        by_app.entry(r.app.as_str()).or_default().push(r);
    }
    let mut apps = Vec::new();
    let mut notes = Vec::new();
    let small: Vec<&str> = by_app
        .iter()
        .filter(|(a, v)| v.len() < o.min_jobs || **a == POOLED)
        .map(|(a, _)| *a)
        .collect();
    let pool: Vec<&Row> = if small.is_empty() {
        h.rows.iter().collect()
    } else {
        small
            .iter()
            .flat_map(|a| by_app[a].iter().copied())
            .collect()
    };
    match fit_rows(POOLED, &pool) {
        Some(mut f) => {
            f.pooled_apps = small.iter().map(|s| s.to_string()).collect();
            apps.push(f);
        }
        None => notes.push(format!(
            "\"*\" not fitted: the {} pooled lines are too few for its coefficients",
            pool.len()
        )),
    }
    for (a, rows) in &by_app {
        if small.contains(a) {
            continue;
        }
        if let Some(f) = fit_rows(a, rows) {
            apps.push(f);
        }
    }
    Ok(FitReport {
        apps,
        skipped_unpinned: h.skipped_unpinned,
        skipped_not_finished: h.skipped_not_finished,
        notes,
        min_jobs: o.min_jobs,
    })
}

/// The model file of a fit: `a`, `b`, `factors`, `ci95` as documented in
/// [`crate::model`], plus per app `dropped` (`{name: why}`, when any), `sigma` (residual
/// standard deviation of `log runtime`) and for `"*"` `pooled_apps`; at the top level
/// `skipped_lines` (`unpinned`, `not_finished`) and `min_jobs`.
pub fn model_of(r: &FitReport) -> RuntimeModel {
    let mut apps = BTreeMap::new();
    for f in &r.apps {
        let mut factors = BTreeMap::new();
        let mut ci95 = BTreeMap::new();
        let mut dropped = serde_json::Map::new();
        for (k, name) in FACTORS.iter().enumerate() {
            match f.factor(k) {
                Some((v, ci)) => {
                    factors.insert(name.to_string(), round6(v));
                    ci95.insert(name.to_string(), [round6(ci[0]), round6(ci[1])]);
                }
                None => {
                    let why = f.ols.dropped[k + 2].unwrap_or("not fitted");
                    dropped.insert(name.to_string(), Value::from(why));
                }
            }
        }
        if let Some(why) = f.ols.dropped[1] {
            dropped.insert("cpus".to_string(), Value::from(why));
        }
        let mut extra = BTreeMap::new();
        if !dropped.is_empty() {
            extra.insert("dropped".to_string(), Value::Object(dropped));
        }
        extra.insert("sigma".to_string(), Value::from(round6(f.ols.sigma)));
        if f.app == POOLED {
            extra.insert(
                "pooled_apps".to_string(),
                Value::from(f.pooled_apps.clone()),
            );
        }
        apps.insert(
            f.app.clone(),
            AppModel {
                n: f.n,
                a: Some(round6(f.ols.beta[0].unwrap_or(0.0))),
                b: Some(round6(f.ols.beta[1].unwrap_or(0.0))),
                factors,
                ci95,
                extra,
            },
        );
    }
    let mut extra = BTreeMap::new();
    extra.insert(
        "skipped_lines".to_string(),
        serde_json::json!({"unpinned": r.skipped_unpinned, "not_finished": r.skipped_not_finished}),
    );
    extra.insert("min_jobs".to_string(), Value::from(r.min_jobs as u64));
    RuntimeModel { apps, extra }
}

const UNITS: [&str; 4] = [
    "per extra node",
    "per extra L3 domain",
    "with SMT siblings shared",
    "with all memory remote",
];

/// The printed table: one line per application and factor.
pub fn table(r: &FitReport) -> String {
    let mut s = String::new();
    for f in &r.apps {
        let label = if f.app == POOLED {
            if f.pooled_apps.is_empty() {
                "* (all apps)".to_string()
            } else {
                format!("* (pooled: {})", f.pooled_apps.join(", "))
            }
        } else {
            f.app.clone()
        };
        for (k, name) in FACTORS.iter().enumerate() {
            match f.factor(k) {
                Some((v, ci)) => s.push_str(&format!(
                    "{label}: x{v:.2} {} (±{:.2}, n={})\n",
                    UNITS[k],
                    (ci[1] - ci[0]) / 2.0,
                    f.n
                )),
                None => s.push_str(&format!(
                    "{label}: {name} dropped: {} (n={})\n",
                    f.ols.dropped[k + 2].unwrap_or("not fitted"),
                    f.n
                )),
            }
        }
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s.push_str(&format!(
        "skipped lines: {} unpinned, {} not finished\n",
        r.skipped_unpinned, r.skipped_not_finished
    ));
    s
}

/// The chart file name of an application.
pub fn chart_name(app: &str) -> String {
    if app == POOLED {
        "fit-pooled.svg".to_string()
    } else {
        format!("fit-app-{}.svg", crate::report::slug(app))
    }
}

/// Observed vs predicted runtime of one application (log axes), with the identity line.
pub fn chart(f: &AppFit) -> String {
    let lg = |v: f64| v.max(1e-3).log10();
    let pts: Vec<(f64, f64)> = f.points.iter().map(|&(o, p)| (lg(p), lg(o))).collect();
    let lo = pts
        .iter()
        .flat_map(|p| [p.0, p.1])
        .fold(f64::INFINITY, f64::min);
    let hi = pts
        .iter()
        .flat_map(|p| [p.0, p.1])
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
    let ticks: Vec<(f64, String)> = (lo as i32..=hi as i32)
        .map(|e| (f64::from(e), format!("{}", 10f64.powi(e))))
        .collect();
    let axis = |label: &str| Axis {
        min: lo,
        max: hi,
        label: label.to_string(),
        ticks: ticks.clone(),
    };
    let factors: Vec<String> = (0..4)
        .filter_map(|k| f.factor(k).map(|(v, _)| format!("{} x{v:.2}", FACTORS[k])))
        .collect();
    scatter_chart(
        &format!("{} (n={}): {}", f.app, f.n, factors.join(", ")),
        &axis("predicted runtime (s, log)"),
        &axis("observed runtime (s, log)"),
        &pts,
        &[("observed = predicted".to_string(), vec![(lo, lo), (hi, hi)])],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_fit_and_dropping() {
        // y = 1 + 2·x1 exactly, x2 constant, x3 = 2·x1.
        let x1 = [0.0, 1.0, 2.0, 3.0, 5.0];
        let x = vec![
            vec![1.0; 5],
            x1.to_vec(),
            vec![0.0; 5],
            x1.iter().map(|v| 2.0 * v).collect(),
        ];
        let y: Vec<f64> = x1.iter().map(|v| 1.0 + 2.0 * v).collect();
        let o = ols(&x, &y).unwrap();
        assert!((o.beta[0].unwrap() - 1.0).abs() < 1e-12);
        assert!((o.beta[1].unwrap() - 2.0).abs() < 1e-12);
        assert_eq!(o.beta[2], None);
        assert_eq!(o.dropped[2], Some("no variation in the data"));
        assert_eq!(
            o.dropped[3],
            Some("not separable from the columns before it")
        );
        assert!(o.half95[1].unwrap() < 1e-9);
        assert!(ols(&x[..2], &y[..2]).is_none());
    }

    #[test]
    fn interval_matches_textbook() {
        // Simple regression with known se: x = 1..=6, y with residuals.
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let ys = [1.1, 1.9, 3.2, 3.8, 5.1, 6.0];
        let o = ols(&[vec![1.0; 6], xs.to_vec()], &ys).unwrap();
        let n = 6.0;
        let mx = xs.iter().sum::<f64>() / n;
        let my = ys.iter().sum::<f64>() / n;
        let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let slope = sxy / sxx;
        let rss: f64 = xs
            .iter()
            .zip(&ys)
            .map(|(x, y)| (y - (my + slope * (x - mx))).powi(2))
            .sum();
        let se = (rss / (n - 2.0) / sxx).sqrt();
        assert!((o.beta[1].unwrap() - slope).abs() < 1e-12);
        // t(0.975, 4) = 2.776.
        assert!((o.half95[1].unwrap() - 2.776 * se).abs() < 2e-3 * se * 10.0);
        assert!((t975(4.0) - 2.776).abs() < 0.01);
        assert!((t975(30.0) - 2.042).abs() < 0.001);
        assert!((t975(1e9) - 1.96).abs() < 0.001);
    }
}
