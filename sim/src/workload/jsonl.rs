//! The native workload format: JSON lines, one job per line.
//!
//! ```text
//! {"id": 1, "submit": 0, "runtime": 600, "cpus": "2-4", "mem": 1024, "policy": "numa-strict", "priority": 0}
//! ```
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `id` | job id, unique, whole number | required |
//! | `submit` | submit time, whole seconds ≥ 0 | required |
//! | `runtime` | run time once started, whole seconds ≥ 0 | required |
//! | `cpus` | CPUs: `N`, `"N"`, `"N-M"`, `"N-"` (as `retz-client -cpu`) | required |
//! | `mem` | memory, MB, same range forms | `0` |
//! | `policy` | `numa-strict`, `numa-prefer`, `spread`, `none` | `numa-prefer` |
//! | `priority` | `-20..=19`, lower runs first | `0` |
//! | `gpus` | GPUs | `0` |
//! | `numanodes` | whole NUMA nodes taken exclusively | none |
//! | `smt` | `whole-cores` or `pack` | `whole-cores` |
//! | `app` | application name, for `--model` runtime factors | none |
//!
//! Unknown keys are errors (a misspelt key must not silently become a default). Blank
//! lines are skipped; lines starting with `#` are comments, kept as the workload header.
//! [`to_line`] writes a job in this format (used by `retz-sim gen-workload`).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use retz_placement::{AffinityPolicy, ResourceRange, SmtPolicy};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Format, Job, Workload};
use crate::error::{InputError, excerpt};

/// A range written as a JSON number or a range string.
struct RangeField<T>(ResourceRange<T>);

impl<'de, T> Deserialize<'de> for RangeField<T>
where
    T: FromStr + Copy + Ord + fmt::Display + TryFrom<u64>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T> Visitor<'_> for V<T>
        where
            T: FromStr + Copy + Ord + fmt::Display + TryFrom<u64>,
        {
            type Value = RangeField<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number or a range string such as \"2-4\", \"2-\" or \"2\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::try_from(v)
                    .map(|n| RangeField(ResourceRange::exactly(n)))
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if v < 0 {
                    return Err(E::custom(format!("{v} is negative")));
                }
                self.visit_u64(v as u64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::custom(format!("{v} is not a whole number")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse::<ResourceRange<T>>()
                    .map(RangeField)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: u64,
    submit: u64,
    runtime: u64,
    cpus: RangeField<u32>,
    #[serde(default)]
    mem: Option<RangeField<u64>>,
    #[serde(default)]
    policy: Option<AffinityPolicy>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    gpus: u32,
    #[serde(default)]
    numanodes: Option<u32>,
    #[serde(default)]
    smt: Option<SmtPolicy>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    user: u32,
}

/// Parses native JSON lines.
pub fn parse(source: &str, text: &str) -> Result<Workload, InputError> {
    let mut jobs = Vec::new();
    let mut header = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            header.push(c.trim().to_string());
            continue;
        }
        let l: Line = serde_json::from_str(t).map_err(|e| {
            InputError::new(
                source,
                line,
                format!(
                    "{e}; a job line looks like {{\"id\":1,\"submit\":0,\"runtime\":60,\"cpus\":\"2-4\",\"mem\":1024}} (got {})",
                    excerpt(t, 60)
                ),
            )
        })?;
        let job = Job {
            id: l.id,
            submit_s: l.submit,
            runtime_s: l.runtime,
            cpus: l.cpus.0,
            mem_mb: l.mem.map_or(ResourceRange::exactly(0), |m| m.0),
            gpus: l.gpus,
            policy: l.policy.unwrap_or_default(),
            numanodes: l.numanodes,
            smt: l.smt.unwrap_or_default(),
            priority: l.priority,
            app: l.app,
            user: l.user,
        };
        job.request()
            .validate()
            .map_err(|e| InputError::new(source, line, e.to_string()))?;
        jobs.push((line, job));
    }
    Workload::finish(
        source,
        Format::Jsonl,
        jobs,
        header,
        vec!["native JSON lines: times in whole seconds, memory in MB".to_string()],
        BTreeMap::new(),
    )
}

/// One job as a native JSON line (no newline); keys in a fixed order, defaults left out.
pub fn to_line(j: &Job) -> String {
    let mut s = format!(
        "{{\"id\":{},\"submit\":{},\"runtime\":{},\"cpus\":{}",
        j.id,
        j.submit_s,
        j.runtime_s,
        range(&j.cpus)
    );
    if j.mem_mb != ResourceRange::exactly(0) {
        s.push_str(&format!(",\"mem\":{}", range(&j.mem_mb)));
    }
    if j.policy != AffinityPolicy::default() {
        s.push_str(&format!(",\"policy\":\"{}\"", j.policy));
    }
    if j.priority != 0 {
        s.push_str(&format!(",\"priority\":{}", j.priority));
    }
    if j.gpus != 0 {
        s.push_str(&format!(",\"gpus\":{}", j.gpus));
    }
    if let Some(n) = j.numanodes {
        s.push_str(&format!(",\"numanodes\":{n}"));
    }
    if j.smt != SmtPolicy::default() {
        s.push_str(&format!(",\"smt\":\"{}\"", j.smt));
    }
    if let Some(app) = &j.app {
        s.push_str(&format!(
            ",\"app\":{}",
            serde_json::Value::from(app.as_str())
        ));
    }
    s.push('}');
    s
}

fn range<T: fmt::Display + PartialEq>(r: &ResourceRange<T>) -> String {
    match &r.max {
        Some(m) if *m == r.min => r.min.to_string(),
        _ => format!("\"{r}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_forms_and_round_trips() {
        let text = "# generated\n\n{\"id\":3,\"submit\":5,\"runtime\":10,\"cpus\":\"2-4\",\"mem\":\"512-\",\"policy\":\"numa-strict\",\"priority\":-3,\"gpus\":1,\"numanodes\":1,\"smt\":\"pack\"}\n{\"id\":1,\"submit\":5,\"runtime\":0,\"cpus\":2}\n";
        let w = parse("w.jsonl", text).unwrap();
        assert_eq!(w.header, vec!["generated".to_string()]);
        assert_eq!(w.jobs.len(), 2);
        assert_eq!(w.jobs[0].id, 1);
        assert_eq!(w.jobs[0].mem_mb, ResourceRange::exactly(0));
        let j = &w.jobs[1];
        assert_eq!(j.cpus, ResourceRange::between(2, 4));
        assert_eq!(j.mem_mb, ResourceRange::at_least(512));
        assert_eq!(j.policy, AffinityPolicy::NumaStrict);
        assert_eq!(j.priority, -3);
        assert_eq!(j.numanodes, Some(1));
        let back: String = w.jobs.iter().map(|j| to_line(j) + "\n").collect();
        assert_eq!(parse("b", &back).unwrap().jobs, w.jobs);
        assert_eq!(
            to_line(&w.jobs[0]),
            "{\"id\":1,\"submit\":5,\"runtime\":0,\"cpus\":2}"
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, want) in [
            (
                "{\"id\":1,\"submit\":0,\"runtime\":1}",
                1,
                "missing field `cpus`",
            ),
            (
                "\n{\"id\":1,\"submit\":0,\"runtime\":1,\"cpu\":1}",
                2,
                "unknown field `cpu`",
            ),
            (
                "{\"id\":1,\"submit\":-1,\"runtime\":1,\"cpus\":1}",
                1,
                "invalid value",
            ),
            (
                "{\"id\":1,\"submit\":0,\"runtime\":1.5,\"cpus\":1}",
                1,
                "invalid type",
            ),
            (
                "{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":\"4-2\"}",
                1,
                "below minimum",
            ),
            (
                "{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":0}",
                1,
                "at least 1 CPU",
            ),
            (
                "{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":1.5}",
                1,
                "not a whole number",
            ),
            (
                "{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":99999999999}",
                1,
                "too large",
            ),
            (
                "{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":1,\"priority\":30}",
                1,
                "lower runs first",
            ),
            (
                "{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":1,\"policy\":\"numa\"}",
                1,
                "unknown affinity policy",
            ),
            ("not json", 1, "a job line looks like"),
            (
                "{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":1}\n{\"id\":1,\"submit\":0,\"runtime\":1,\"cpus\":1}",
                2,
                "twice",
            ),
        ] {
            let e = parse("w.jsonl", text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        assert!(parse("w", "# only a comment\n").is_err());
    }
}
