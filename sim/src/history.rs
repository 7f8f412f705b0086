//! Job history (`retz-admin export-history`, JSON lines) as `retz-sim fit` reads it, and the
//! synthetic history generator (`retz-sim gen-history`) with known factors.
//!
//! Reading: one JSON object per line; blank lines are skipped. Required keys: `job`,
//! `app`, `cpus` (≥ 1), `runtime_s` (> 0), `nodes_spanned`, `l3_spanned`, `smt_shared`,
//! `remote_mem_share` (0..1). The four feature keys may be `null` (the job ran unpinned):
//! such lines are skipped and counted. Lines whose `state` is present and not
//! `"FINISHED"` are skipped and counted. Unknown keys are ignored (the export writes more
//! than the fit needs). Anything else wrong is an [`InputError`] `file:line: what`.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::error::{InputError, excerpt};
use crate::generate::SplitMix64;
use crate::model::{FACTORS, Features};

/// One usable history line.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The application.
    pub app: String,
    /// CPUs granted (or requested).
    pub cpus: u32,
    /// Runtime, s (> 0).
    pub runtime_s: f64,
    /// The placement it got.
    pub features: Features,
}

/// A read history.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Usable lines, in file order.
    pub rows: Vec<Row>,
    /// Lines skipped because the job ran unpinned (a feature is `null`).
    pub skipped_unpinned: u64,
    /// Lines skipped because `state` is not `FINISHED`.
    pub skipped_not_finished: u64,
}

fn field<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a Value, String> {
    o.get(k).ok_or_else(|| format!("missing key `{k}`"))
}

fn whole(v: &Value, k: &str) -> Result<u64, String> {
    v.as_u64()
        .ok_or_else(|| format!("`{k}` must be a whole number ≥ 0, got {v}"))
}

/// Parses history JSON lines (see the module docs).
pub fn parse(source: &str, text: &str) -> Result<History, InputError> {
    let mut h = History::default();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        let err = |m: String| InputError::new(source, i + 1, m);
        let v: Value = serde_json::from_str(t)
            .map_err(|e| err(format!("not JSON ({e}): {}", excerpt(t, 60))))?;
        let Value::Object(o) = v else {
            return Err(err(format!(
                "a history line is a JSON object, got {}",
                excerpt(t, 60)
            )));
        };
        match o.get("state") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "FINISHED" => {}
            Some(Value::String(_)) => {
                h.skipped_not_finished += 1;
                continue;
            }
            Some(v) => return Err(err(format!("`state` must be a string, got {v}"))),
        }
        let row = (|| -> Result<Option<Row>, String> {
            whole(field(&o, "job")?, "job")?;
            let app = match field(&o, "app")? {
                Value::String(s) if !s.is_empty() => s.clone(),
                v => return Err(format!("`app` must be a non-empty string, got {v}")),
            };
            let cpus = whole(field(&o, "cpus")?, "cpus")?;
            let cpus = u32::try_from(cpus)
                .ok()
                .filter(|&c| c >= 1)
                .ok_or_else(|| format!("`cpus` must be between 1 and 2^32-1, got {cpus}"))?;
            let runtime_s = field(&o, "runtime_s")?
                .as_f64()
                .filter(|r| r.is_finite() && *r > 0.0)
                .ok_or_else(|| "`runtime_s` must be a number > 0".to_string())?;
            let mut null = false;
            for k in FACTORS {
                null |= field(&o, k)?.is_null();
            }
            if null {
                return Ok(None);
            }
            let nodes = whole(&o["nodes_spanned"], "nodes_spanned")?;
            let l3 = whole(&o["l3_spanned"], "l3_spanned")?;
            let (Ok(nodes), Ok(l3)) = (u32::try_from(nodes), u32::try_from(l3)) else {
                return Err("`nodes_spanned`/`l3_spanned` are too large".to_string());
            };
            if nodes < 1 || l3 < 1 {
                return Err("`nodes_spanned` and `l3_spanned` must be ≥ 1".to_string());
            }
            let smt = o["smt_shared"].as_bool().ok_or_else(|| {
                format!(
                    "`smt_shared` must be true or false, got {}",
                    o["smt_shared"]
                )
            })?;
            let remote = o["remote_mem_share"]
                .as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!(
                        "`remote_mem_share` must be a number in 0..1, got {}",
                        o["remote_mem_share"]
                    )
                })?;
            Ok(Some(Row {
                app,
                cpus,
                runtime_s,
                features: Features {
                    nodes_spanned: nodes,
                    l3_spanned: l3,
                    smt_shared: smt,
                    remote_mem_share: remote,
                },
            }))
        })()
        .map_err(err)?;
        match row {
            Some(r) => h.rows.push(r),
            None => h.skipped_unpinned += 1,
        }
    }
    Ok(h)
}

/// Reads a history file.
pub fn load(path: &std::path::Path) -> Result<History, InputError> {
    let text = crate::error::read_text(path)?;
    parse(&path.display().to_string(), &text)
}

/// One application of a synthetic history: its true model.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthApp {
    /// Name.
    pub name: String,
    /// Jobs to generate.
    pub jobs: u64,
    /// Runtime of a 1-CPU job at the ideal placement, s.
    pub base_s: f64,
    /// Exponent of `cpus`.
    pub b: f64,
    /// The true factors, in [`FACTORS`] order.
    pub factors: [f64; 4],
}

impl std::str::FromStr for SynthApp {
    type Err = String;

    /// `NAME:NODES,L3,SMT,REMOTE[@JOBS]`, e.g. `etl:1.45,1.05,1.2,1.6@600`.
    fn from_str(s: &str) -> Result<SynthApp, String> {
        let bad = || {
            format!(
                "{s:?}: an app is NAME:NODES,L3,SMT,REMOTE[@JOBS], e.g. etl:1.45,1.05,1.2,1.6@600"
            )
        };
        let (name, rest) = s.split_once(':').ok_or_else(bad)?;
        let (fs, jobs) = match rest.split_once('@') {
            Some((f, j)) => (f, j.trim().parse::<u64>().map_err(|_| bad())?),
            None => (rest, 500),
        };
        let v: Vec<f64> = fs
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let factors: [f64; 4] = v.try_into().map_err(|_| bad())?;
        if name.is_empty() || factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
            return Err(bad());
        }
        Ok(SynthApp {
            name: name.to_string(),
            jobs,
            base_s: 600.0,
            b: -0.7,
            factors,
        })
    }
}

fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A synthetic history with known factors: per app, `jobs` lines whose placement features
/// are drawn at random (nodes 1-4, L3 domains ≥ nodes, SMT shared 30 %, remote memory 0
/// half the time else uniform) and whose runtime is `base · cpus^b · Π f^x` times
/// log-normal noise `exp(noise · N(0,1))`. Apps are interleaved; job ids count from 1.
pub fn generate(apps: &[SynthApp], noise: f64, seed: u64) -> String {
    let mut rng = SplitMix64::new(seed);
    let mut left: Vec<u64> = apps.iter().map(|a| a.jobs).collect();
    let mut out = String::new();
    let mut id = 0u64;
    while left.iter().any(|&l| l > 0) {
        for (k, a) in apps.iter().enumerate() {
            if left[k] == 0 {
                continue;
            }
            left[k] -= 1;
            id += 1;
            let cpus = 1u32 << rng.below(6);
            let nodes = if rng.next_f64() < 0.5 {
                1
            } else {
                2 + rng.below(3) as u32
            };
            let l3 = nodes + rng.below(u64::from(nodes) + 1) as u32;
            let smt = rng.next_f64() < 0.3;
            let remote = if rng.next_f64() < 0.5 {
                0.0
            } else {
                (rng.next_f64() * 1000.0).round() / 1000.0
            };
            let f = Features {
                nodes_spanned: nodes,
                l3_spanned: l3,
                smt_shared: smt,
                remote_mem_share: remote,
            };
            let mult: f64 = a
                .factors
                .iter()
                .zip(f.x())
                .map(|(fk, x)| fk.powf(x))
                .product();
            let rt = a.base_s * f64::from(cpus).powf(a.b) * mult * (noise * normal(&mut rng)).exp();
            let _ = writeln!(
                out,
                "{{\"job\":{id},\"app\":\"{}\",\"user\":\"synthetic\",\"state\":\"FINISHED\",\"cpus\":{cpus},\"nodes_spanned\":{nodes},\"l3_spanned\":{l3},\"smt_shared\":{smt},\"remote_mem_share\":{remote},\"runtime_s\":{:.3}}}",
                a.name.replace(['"', '\\'], "_"),
                rt.max(0.001)
            );
        }
    }
    out
}

/// The apps `retz-sim gen-history` writes when none is given: two large apps with
/// opposite preferences and one small one (pooled by `fit`).
pub fn default_apps() -> Vec<SynthApp> {
    [
        "etl:1.45,1.05,1.20,1.60@600",
        "ml:1.02,1.25,1.35,1.10@400",
        "tiny:1.30,1.00,1.00,1.30@20",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_skips_and_rejects() {
        let text = "{\"job\":1,\"app\":\"etl\",\"state\":\"FINISHED\",\"cpus\":8,\"nodes_spanned\":1,\"l3_spanned\":2,\"smt_shared\":false,\"remote_mem_share\":0.0,\"runtime_s\":12.5,\"extra\":[1]}\n\n\
            {\"job\":2,\"app\":\"etl\",\"cpus\":8,\"nodes_spanned\":null,\"l3_spanned\":null,\"smt_shared\":null,\"remote_mem_share\":null,\"runtime_s\":3}\n\
            {\"job\":3,\"app\":\"etl\",\"state\":\"KILLED\",\"cpus\":8,\"runtime_s\":3}\n";
        let h = parse("h.jsonl", text).unwrap();
        assert_eq!(h.rows.len(), 1);
        assert_eq!(h.rows[0].features.l3_spanned, 2);
        assert_eq!((h.skipped_unpinned, h.skipped_not_finished), (1, 1));
        for (line, want) in [
            (
                "{\"job\":1,\"app\":\"a\",\"cpus\":1,\"runtime_s\":0,\"nodes_spanned\":1,\"l3_spanned\":1,\"smt_shared\":false,\"remote_mem_share\":0}",
                "runtime_s",
            ),
            (
                "{\"job\":1,\"app\":\"a\",\"cpus\":1,\"runtime_s\":1,\"l3_spanned\":1,\"smt_shared\":false,\"remote_mem_share\":0}",
                "missing key `nodes_spanned`",
            ),
            (
                "{\"job\":1,\"app\":\"a\",\"cpus\":1,\"runtime_s\":1,\"nodes_spanned\":1,\"l3_spanned\":1,\"smt_shared\":false,\"remote_mem_share\":1.5}",
                "remote_mem_share",
            ),
            ("[1]", "JSON object"),
            ("{oops", "not JSON"),
        ] {
            let e = parse("h.jsonl", &format!("\n{line}\n")).unwrap_err();
            assert_eq!(e.line, 2);
            assert!(e.to_string().starts_with("h.jsonl:2: "), "{e}");
            assert!(e.message.contains(want), "{e}");
        }
    }

    #[test]
    fn generated_history_reads_back() {
        let apps = default_apps();
        let text = generate(&apps, 0.1, 7);
        assert_eq!(text, generate(&apps, 0.1, 7));
        let h = parse("g", &text).unwrap();
        assert_eq!(h.rows.len(), 1020);
        assert!("x:1,2,3".parse::<SynthApp>().is_err());
        assert!("x:1,2,3,0@5".parse::<SynthApp>().is_err());
        assert_eq!("x:1,2,3,4@5".parse::<SynthApp>().unwrap().jobs, 5);
    }
}
