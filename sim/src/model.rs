//! The placement runtime model (`model.json`, written by `retz-sim fit` and
//! `retz-executor calibrate`, read by `retz-sim run|tune --model`).
//!
//! Per application, `runtime = exp(a) · cpus^b · Π f_k^{x_k}` where the placement
//! features are `x` = (`nodes_spanned − 1`, `l3_spanned − 1`, `smt_shared` 0/1,
//! `remote_mem_share` 0..1). The simulator only uses the factors: a trace runtime is the
//! runtime at the ideal placement (every `x_k = 0`) and is multiplied by
//! [`RuntimeModel::multiplier`] of the placement the job actually got.
//!
//! Form: `{"apps": {"<app>": {"n": N, "a": .., "b": .., "factors": {name: f},
//! "ci95": {name: [lo, hi]}, ...}}, ...}`. `a`, `b` and `ci95` are optional; extra keys at
//! the top level and per application are kept (e.g. `unmeasured`, `dropped`, `pooled`).
//! Factor names outside [`FACTORS`] and non-positive or non-finite factors are errors.
//! The application `"*"` is the fallback for applications the model does not name; with
//! no `"*"` they run at their trace runtime (factor 1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// The factor names, in feature order.
pub const FACTORS: [&str; 4] = [
    "nodes_spanned",
    "l3_spanned",
    "smt_shared",
    "remote_mem_share",
];

/// The fallback application.
pub const POOLED: &str = "*";

/// The placement features of one job.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Features {
    /// NUMA nodes its CPUs span (≥ 1).
    pub nodes_spanned: u32,
    /// Last-level cache domains its CPUs span (≥ 1).
    pub l3_spanned: u32,
    /// Whether an SMT sibling of one of its CPUs was used by another job.
    pub smt_shared: bool,
    /// Share of its memory on nodes that hold none of its CPUs (0..1).
    pub remote_mem_share: f64,
}

impl Features {
    /// The regressors `x_k`, in [`FACTORS`] order (zero at the ideal placement).
    pub fn x(&self) -> [f64; 4] {
        [
            f64::from(self.nodes_spanned.saturating_sub(1)),
            f64::from(self.l3_spanned.saturating_sub(1)),
            if self.smt_shared { 1.0 } else { 0.0 },
            self.remote_mem_share.clamp(0.0, 1.0),
        ]
    }
}

/// One application's model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppModel {
    /// Jobs it was fitted on (or measurements taken).
    pub n: u64,
    /// Intercept of `log runtime` (absent from calibrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<f64>,
    /// Exponent of `cpus` (absent from calibrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<f64>,
    /// Multiplicative factor per unit of each feature; a missing factor is 1.
    pub factors: BTreeMap<String, f64>,
    /// 95 % confidence interval of each factor.
    #[serde(default)]
    pub ci95: BTreeMap<String, [f64; 2]>,
    /// Other keys, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl AppModel {
    /// `Π f_k^{x_k}` for these features.
    pub fn multiplier(&self, f: &Features) -> f64 {
        FACTORS
            .iter()
            .zip(f.x())
            .filter(|(_, x)| *x != 0.0)
            .map(|(name, x)| self.factors.get(*name).map_or(1.0, |v| v.powf(x)))
            .product()
    }
}

/// A whole model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeModel {
    /// Per application (and `"*"`).
    pub apps: BTreeMap<String, AppModel>,
    /// Other top-level keys, kept as they are.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

// Validated models hold no NaN, so equality is reflexive.
impl Eq for RuntimeModel {}

impl RuntimeModel {
    /// Parses and checks a model file's text; errors name `source` and the line.
    pub fn parse(source: &str, text: &str) -> Result<RuntimeModel, InputError> {
        let m: RuntimeModel = serde_json::from_str(text).map_err(|e| {
            InputError::new(
                source,
                e.line(),
                format!(
                    "{e}; a model looks like {{\"apps\": {{\"etl\": {{\"n\": 900, \"factors\": {{\"nodes_spanned\": 1.45}}}}}}}}"
                ),
            )
        })?;
        for (app, am) in &m.apps {
            for (k, v) in &am.factors {
                if !FACTORS.contains(&k.as_str()) {
                    return Err(InputError::new(
                        source,
                        0,
                        format!(
                            "app {app:?}: unknown factor {k:?} (known: {})",
                            FACTORS.join(", ")
                        ),
                    ));
                }
                if !(v.is_finite() && *v > 0.0) {
                    return Err(InputError::new(
                        source,
                        0,
                        format!("app {app:?}: factor {k} = {v} must be a positive number"),
                    ));
                }
            }
            for k in am.ci95.keys() {
                if !FACTORS.contains(&k.as_str()) {
                    return Err(InputError::new(
                        source,
                        0,
                        format!("app {app:?}: ci95 of unknown factor {k:?}"),
                    ));
                }
            }
        }
        Ok(m)
    }

    /// Reads and checks a model file.
    pub fn load(path: &std::path::Path) -> Result<RuntimeModel, InputError> {
        let text = crate::error::read_text(path)?;
        RuntimeModel::parse(&path.display().to_string(), &text)
    }

    /// The model of `app`: its own, else `"*"`, else none.
    pub fn app(&self, app: Option<&str>) -> Option<&AppModel> {
        app.and_then(|a| self.apps.get(a))
            .or_else(|| self.apps.get(POOLED))
    }

    /// The runtime multiplier of a job of `app` placed with features `f` (1 when the model
    /// has neither the app nor `"*"`).
    pub fn multiplier(&self, app: Option<&str>, f: &Features) -> f64 {
        self.app(app).map_or(1.0, |m| m.multiplier(f))
    }

    /// `runtime_s` at the ideal placement scaled to placement `f`, rounded to whole
    /// seconds (a positive runtime stays ≥ 1 s).
    pub fn runtime_s(&self, app: Option<&str>, runtime_s: u64, f: &Features) -> u64 {
        if runtime_s == 0 {
            return 0;
        }
        let m = self.multiplier(app, f);
        let r = (runtime_s as f64 * m).round();
        if r >= u64::MAX as f64 {
            u64::MAX
        } else {
            (r as u64).max(1)
        }
    }
}

/// The features of assignment `a` on `agent` (whose state already holds `a` or not: the
/// job's own CPUs are left out of the SMT test). Judged when the job starts: SMT sharing
/// counts the jobs running on sibling PUs at that moment.
///
/// - `nodes_spanned` = NUMA nodes of its CPUs; `l3_spanned` = distinct last-level cache
///   domains of its CPUs (the topology's cache domains; one per node when the host does
///   not split caches), both at least 1;
/// - `smt_shared` = some SMT sibling of one of its CPUs is held by another job;
/// - `remote_mem_share` = MB granted on nodes holding none of its CPUs / MB granted.
pub fn placement_features(
    agent: &retz_placement::AgentState,
    a: &retz_placement::Assignment,
) -> Features {
    let topo = agent.topology();
    let mut l3: Vec<usize> = a.cpus.iter().filter_map(|c| topo.cache_of(c)).collect();
    l3.sort_unstable();
    l3.dedup();
    let smt_shared = a.cpus.iter().any(|c| {
        topo.siblings(c).is_some_and(|sib| {
            sib.iter()
                .any(|s| s != c && !a.cpus.contains(s) && !agent.is_free(s))
        })
    });
    let total: u64 = a.memory_per_node.iter().map(|m| m.mb).sum();
    let remote: u64 = a
        .memory_per_node
        .iter()
        .filter(|m| !a.cpu_nodes.contains(m.node))
        .map(|m| m.mb)
        .sum();
    Features {
        nodes_spanned: (a.cpu_nodes.len() as u32).max(1),
        l3_spanned: (l3.len() as u32).max(1),
        smt_shared,
        remote_mem_share: if total == 0 {
            0.0
        } else {
            remote as f64 / total as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_and_fallback() {
        let m = RuntimeModel::parse(
            "m.json",
            r#"{"apps": {"etl": {"n": 9, "a": 1.0, "b": -0.5, "factors": {"nodes_spanned": 1.5, "remote_mem_share": 2.0}, "ci95": {"nodes_spanned": [1.4, 1.6]}, "dropped": ["smt_shared"]},
                "*": {"n": 3, "factors": {"smt_shared": 1.2}}}, "unmeasured": {"l3_spanned": "one L3"}}"#,
        )
        .unwrap();
        let f = Features {
            nodes_spanned: 3,
            l3_spanned: 4,
            smt_shared: true,
            remote_mem_share: 0.5,
        };
        let want = 1.5f64.powi(2) * 2.0f64.sqrt();
        assert!((m.multiplier(Some("etl"), &f) - want).abs() < 1e-12);
        assert!((m.multiplier(Some("other"), &f) - 1.2).abs() < 1e-12);
        assert!((m.multiplier(None, &f) - 1.2).abs() < 1e-12);
        assert_eq!(m.runtime_s(Some("etl"), 100, &f), 318);
        assert_eq!(m.runtime_s(Some("etl"), 0, &f), 0);
        assert_eq!(m.runtime_s(Some("etl"), 100, &Features::default()), 100);
        assert!(m.extra.contains_key("unmeasured"));
        let mut no_star = m;
        no_star.apps.remove(POOLED);
        assert_eq!(no_star.multiplier(Some("other"), &f), 1.0);
    }

    #[test]
    fn features_of_an_assignment() {
        use retz_placement::{
            AffinityPolicy, AgentState, Assignment, NodeId, NodeMemory, Topology,
        };
        // Node 0: L3 0 = PUs 0-3 (cores {0,1}, {2,3}), L3 1 = 4-7; node 1: 8-15.
        let t = Topology::from_synthetic("pack:1 numa:2 l3:2 core:2 pu:2", 1024)
            .unwrap()
            .into_arc();
        let mut agent = AgentState::idle("a", "h", t, 0);
        let a = Assignment {
            job_id: 1,
            agent_id: "a".into(),
            hostname: "h".into(),
            cpus: "0,4,8".parse().unwrap(),
            cpu_nodes: "0-1".parse().unwrap(),
            nodes: "0-1".parse().unwrap(),
            memory_per_node: vec![
                NodeMemory {
                    node: NodeId(0),
                    mb: 300,
                },
                NodeMemory {
                    node: NodeId(1),
                    mb: 100,
                },
            ],
            granted_cpus: 3,
            granted_mem_mb: 400,
            granted_gpus: 0,
            gpu_ids: retz_placement::GpuSet::new(),
            gpus_named: false,
            policy: AffinityPolicy::Spread,
            whole_nodes: 0,
            pinned: true,
            cost: 0.0,
        };
        let f = placement_features(&agent, &a);
        assert_eq!((f.nodes_spanned, f.l3_spanned, f.smt_shared), (2, 3, false));
        assert_eq!(f.remote_mem_share, 0.0);
        // Another job holds PU 5, the sibling of 4; memory on node 1 only for CPUs on 0.
        agent.take_cpus(&"5".parse().unwrap()).unwrap();
        let b = Assignment {
            cpus: "0,4".parse().unwrap(),
            cpu_nodes: "0".parse().unwrap(),
            ..a
        };
        let f = placement_features(&agent, &b);
        assert_eq!((f.nodes_spanned, f.l3_spanned, f.smt_shared), (1, 2, true));
        assert_eq!(f.remote_mem_share, 0.25);
        assert_eq!(f.x(), [0.0, 1.0, 1.0, 0.25]);
    }

    #[test]
    fn bad_models_are_one_line_errors() {
        let e = RuntimeModel::parse("m.json", "{\"apps\": {\n\"x\": 3}}").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = RuntimeModel::parse(
            "m.json",
            r#"{"apps": {"x": {"n": 1, "factors": {"nodes": 1.2}}}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown factor \"nodes\""), "{e}");
        let e = RuntimeModel::parse(
            "m.json",
            r#"{"apps": {"x": {"n": 1, "factors": {"smt_shared": -1}}}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("positive"), "{e}");
    }
}
