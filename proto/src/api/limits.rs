//! The bounds of every number a client sends: [`Limits`] (from the server's config) and
//! the checks [`check_job`] and [`check_app`]. Each refusal is one [`LimitError`] line
//! naming the field, the value and what to ask for instead.
//!
//! Bounds from config: `cpu` and `memMB` minimums, `gpu`, `diskMB`, `ports`,
//! `maxRetries`, `gracePeriod`. Bounds from meaning: `priority` -20..19, `cpu` and
//! `memMB` minimums at least 1 (a zero minimum can never be placed), `nodes` at most
//! [`MAX_NUMA_NODES`].

use super::{Application, Job};

/// The most NUMA nodes a machine can have (Linux `MAX_NUMNODES`, 2^10).
pub const MAX_NUMA_NODES: u32 = 1024;

/// The most one job or application may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// CPUs (the minimum of a range).
    pub max_cpus: u32,
    /// Memory, MB (the minimum of a range).
    pub max_mem_mb: u64,
    /// GPUs.
    pub max_gpus: u32,
    /// Disk, MB.
    pub max_disk_mb: u64,
    /// Ports.
    pub max_ports: u32,
    /// `maxRetries`.
    pub max_retries: u32,
    /// An application's `gracePeriod`, seconds.
    pub max_grace_period_s: u32,
}

/// A value out of its bounds; the message says what to send instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LimitError(pub String);

fn over(what: &str, asked: u64, limit: u64) -> LimitError {
    LimitError(format!(
        "{what} {asked} does not fit system limit {limit}; ask for at most {limit}"
    ))
}

/// Checks a job request against `limits` and the bounds of meaning.
pub fn check_job(job: &Job, limits: &Limits) -> Result<(), LimitError> {
    if job.cmd.trim().is_empty() {
        return Err(LimitError(
            "job has an empty cmd; give the command to run".into(),
        ));
    }
    if !(-20..=19).contains(&job.priority) {
        return Err(LimitError(format!(
            "priority {} is out of range; use -20 (first) to 19 (last)",
            job.priority
        )));
    }
    let r = &job.resources;
    if r.cpu.min == 0 {
        return Err(LimitError(
            "cpu has a zero minimum, which nothing can run on; ask for at least 1 CPU \
             (e.g. 1 or \"1-4\")"
                .into(),
        ));
    }
    if r.mem_mb.min == 0 {
        return Err(LimitError(
            "memMB has a zero minimum; ask for at least 1 MB (e.g. 32 or \"32-1024\")".into(),
        ));
    }
    if r.cpu.min > limits.max_cpus {
        return Err(over("cpu", r.cpu.min.into(), limits.max_cpus.into()));
    }
    if r.mem_mb.min > limits.max_mem_mb {
        return Err(over("memMB", r.mem_mb.min, limits.max_mem_mb));
    }
    if r.gpu > limits.max_gpus {
        return Err(over("gpu", r.gpu.into(), limits.max_gpus.into()));
    }
    if r.disk_mb > limits.max_disk_mb {
        return Err(over("diskMB", r.disk_mb, limits.max_disk_mb));
    }
    if r.ports > limits.max_ports {
        return Err(over("ports", r.ports.into(), limits.max_ports.into()));
    }
    if let Some(n) = r.nodes
        && n > MAX_NUMA_NODES
    {
        return Err(over("nodes", n.into(), MAX_NUMA_NODES.into()));
    }
    if let Some(n) = job.max_retries
        && n > limits.max_retries
    {
        return Err(over("maxRetries", n.into(), limits.max_retries.into()));
    }
    Ok(())
}

/// Checks an application against `limits`.
pub fn check_app(app: &Application, limits: &Limits) -> Result<(), LimitError> {
    if app.grace_period > limits.max_grace_period_s {
        return Err(over(
            "gracePeriod",
            app.grace_period.into(),
            limits.max_grace_period_s.into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::strict::from_json;
    use crate::api::{LoadAppRequest, ScheduleRequest};

    const LIMITS: Limits = Limits {
        max_cpus: 8,
        max_mem_mb: 4096,
        max_gpus: 0,
        max_disk_mb: 1024,
        max_ports: 10,
        max_retries: 100,
        max_grace_period_s: 3600,
    };

    fn job(fields: &str) -> Result<(), String> {
        let text = format!(r#"{{"job":{{"appid":"a","cmd":"ls"{fields}}}}}"#);
        let req: ScheduleRequest = from_json(text.as_bytes()).map_err(|e| e.to_string())?;
        check_job(&req.job, &LIMITS).map_err(|e| e.to_string())
    }

    #[test]
    fn every_number_of_a_job_is_bounded() {
        assert_eq!(job(""), Ok(()));
        assert_eq!(
            job(r#","resources":{"ports":10,"diskMB":1024},"maxRetries":100"#),
            Ok(())
        );
        for (fields, named) in [
            (r#","resources":{"ports":1000000}"#, "ports 1000000"),
            (
                r#","resources":{"diskMB":9223372036854775808}"#,
                "diskMB 9223372036854775808",
            ),
            (r#","resources":{"gpu":1}"#, "gpu 1"),
            (r#","resources":{"cpu":9}"#, "cpu 9"),
            (r#","resources":{"memMB":"4097-"}"#, "memMB 4097"),
            (r#","resources":{"cpu":"0-"}"#, "cpu has a zero minimum"),
            (r#","resources":{"cpu":0}"#, "cpu has a zero minimum"),
            (
                r#","resources":{"memMB":"0-8"}"#,
                "memMB has a zero minimum",
            ),
            (r#","resources":{"nodes":4294967295}"#, "nodes 4294967295"),
            (r#","maxRetries":4294967295"#, "maxRetries 4294967295"),
            (r#","priority":20"#, "priority 20"),
            (r#","priority":-21"#, "priority -21"),
        ] {
            let e = job(fields).unwrap_err();
            assert!(e.contains(named), "{fields}: {e}");
        }
        // Past the type's range: serde's own refusal, still an error line.
        assert!(job(r#","maxRetries":4294967296"#).is_err());
        assert!(job(r#","resources":{"diskMB":18446744073709551616}"#).is_err());
    }

    #[test]
    fn the_grace_period_is_bounded() {
        let app = |g: u64| {
            let text = format!(r#"{{"application":{{"appid":"a","gracePeriod":{g}}}}}"#);
            let req: LoadAppRequest = from_json(text.as_bytes()).map_err(|e| e.to_string())?;
            check_app(&req.application, &LIMITS).map_err(|e| e.to_string())
        };
        assert_eq!(app(3600), Ok(()));
        let e = app(4_294_967_295).unwrap_err();
        assert!(e.contains("gracePeriod 4294967295"), "{e}");
    }
}
