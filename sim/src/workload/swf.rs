//! Importer for the Standard Workload Format (SWF v2.2) of the Parallel Workloads Archive.
//!
//! A record is one line of 18 whitespace-separated numbers (`-1` = unknown):
//! 1 job number, 2 submit time, 3 wait time, 4 run time, 5 allocated processors, 6 average
//! CPU time, 7 used memory (KB per processor), 8 requested processors, 9 requested time,
//! 10 requested memory (KB per processor), 11 status, 12 user, 13 group, 14 application,
//! 15 queue, 16 partition, 17 preceding job, 18 think time. Lines starting with `;` are the
//! header (kept, without the `;`, in [`Workload::header`]); blank lines are skipped.
//!
//! Mapping (also written to [`Workload::notes`] for the report):
//! - id = field 1; submit = field 2 (seconds from the log start), rounded up to whole
//!   seconds; a record with an unknown submit time is skipped and counted;
//! - runtime = field 4 rounded up to whole seconds; a record with run time `-1` is skipped
//!   and counted (the log does not say how long it ran);
//! - CPUs = requested processors (field 8) when known (> 0), else allocated processors
//!   (field 5); a record with neither is skipped and counted; the job asks for exactly
//!   that many CPUs on one host (Retz runs a job on one agent);
//! - memory = requested memory (field 10) when known, else used memory (field 7), both
//!   KB per processor, times the CPUs, rounded up to MB; when neither is known the job
//!   asks 0 MB (memory does not constrain it);
//! - every job has priority 0 and policy `numa-prefer` (a policy's affinity override
//!   applies); the wait time (field 3) the original scheduler produced is not used.
//!
//! Malformed records (not 18 fields, a field that is not a finite number, a job number or
//! processor count that is not a whole number in range, a duplicate job number) are errors
//! naming the line: a log that does not parse is not silently simulated in part.

use std::collections::BTreeMap;

use super::{Format, Job, Workload, ceil_u64, number};
use crate::error::{InputError, excerpt};

/// Fields per SWF record.
pub const FIELDS: usize = 18;

const NAMES: [&str; FIELDS] = [
    "job number",
    "submit time",
    "wait time",
    "run time",
    "allocated processors",
    "average CPU time",
    "used memory",
    "requested processors",
    "requested time",
    "requested memory",
    "status",
    "user id",
    "group id",
    "application number",
    "queue number",
    "partition number",
    "preceding job number",
    "think time",
];

#[derive(Default)]
struct Counts {
    cpus_requested: u64,
    cpus_allocated: u64,
    mem_requested: u64,
    mem_used: u64,
    mem_unknown: u64,
    statuses: BTreeMap<i64, u64>,
}

fn whole(v: f64, max: f64) -> Option<u64> {
    (v >= 0.0 && v <= max && v.fract() == 0.0).then_some(v as u64)
}

/// Parses SWF text.
pub fn parse(source: &str, text: &str) -> Result<Workload, InputError> {
    let mut header = Vec::new();
    let mut jobs = Vec::new();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut c = Counts::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(h) = t.strip_prefix(';') {
            header.push(h.trim().to_string());
            continue;
        }
        let err = |m: String| InputError::new(source, line, m);
        let mut f = [0f64; FIELDS];
        let mut n = 0;
        for (k, tok) in t.split_whitespace().enumerate() {
            if k >= FIELDS {
                n = k + 1;
                break;
            }
            f[k] = number(tok).ok_or_else(|| {
                err(format!(
                    "field {} ({}) is {:?}, not a number; SWF fields are numbers, -1 when unknown",
                    k + 1,
                    NAMES[k],
                    excerpt(tok, 24)
                ))
            })?;
            n = k + 1;
        }
        if n != FIELDS {
            let found = t.split_whitespace().count();
            return Err(err(format!(
                "an SWF record has {FIELDS} fields, this line has {found}; is this an SWF file?"
            )));
        }
        let id = whole(f[0], 9_007_199_254_740_991.0)
            .ok_or_else(|| err(format!("job number {} is not a whole number ≥ 0", f[0])))?;
        *c.statuses.entry(f[10] as i64).or_default() += 1;
        if f[1] < 0.0 {
            *skipped
                .entry("submit time unknown (field 2 is -1)".into())
                .or_default() += 1;
            continue;
        }
        let submit =
            ceil_u64(f[1]).ok_or_else(|| err(format!("submit time {} is out of range", f[1])))?;
        if f[3] < 0.0 {
            *skipped
                .entry("run time unknown (field 4 is -1)".into())
                .or_default() += 1;
            continue;
        }
        let runtime =
            ceil_u64(f[3]).ok_or_else(|| err(format!("run time {} is out of range", f[3])))?;
        let (procs, from_req) = if f[7] > 0.0 {
            (f[7], true)
        } else if f[4] > 0.0 {
            (f[4], false)
        } else {
            *skipped
                .entry("processor count unknown (fields 8 and 5 are -1 or 0)".into())
                .or_default() += 1;
            continue;
        };
        let cpus = whole(procs, f64::from(u32::MAX)).ok_or_else(|| {
            err(format!(
                "processor count {procs} (field {}) is not a whole number in range",
                if from_req { 8 } else { 5 }
            ))
        })? as u32;
        if from_req {
            c.cpus_requested += 1;
        } else {
            c.cpus_allocated += 1;
        }
        let kb_per_proc = if f[9] > 0.0 {
            c.mem_requested += 1;
            f[9]
        } else if f[6] > 0.0 {
            c.mem_used += 1;
            f[6]
        } else {
            c.mem_unknown += 1;
            0.0
        };
        let mem = ceil_u64(kb_per_proc * f64::from(cpus) / 1024.0).ok_or_else(|| {
            err(format!(
                "memory {kb_per_proc} KB per processor is out of range"
            ))
        })?;
        let mut job = Job::new(id, submit, runtime, cpus, mem);
        // User id (field 12); -1 (unknown) and out-of-range ids count as user 0.
        job.user = whole(f[11], f64::from(u32::MAX)).map_or(0, |u| u as u32);
        jobs.push((line, job));
    }
    let statuses: Vec<String> = c
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    let notes = vec![
        "SWF: submit = field 2 and runtime = field 4, rounded up to whole seconds; records with run time -1 are skipped".to_string(),
        format!(
            "SWF: CPUs = requested processors (field 8) for {} jobs, allocated processors (field 5) for {} jobs; one job runs on one host",
            c.cpus_requested, c.cpus_allocated
        ),
        format!(
            "SWF: memory = requested memory (field 10) x CPUs for {} jobs, used memory (field 7) x CPUs for {} jobs (KB per processor, rounded up to MB), unknown (0 MB) for {} jobs",
            c.mem_requested, c.mem_used, c.mem_unknown
        ),
        "SWF: priority 0 and policy numa-prefer for every job; the log's own wait times (field 3) are not used".to_string(),
        format!("SWF: records by status (field 11) {}", statuses.join(", ")),
    ];
    Workload::finish(source, Format::Swf, jobs, header, notes, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: &str) -> String {
        format!("; Version: 2.2\n;\n{fields}\n")
    }

    #[test]
    fn maps_fields() {
        let text = rec(
            "1 0 5 100 4 -1 2048 8 200 -1 1 1 1 -1 -1 1 -1 -1\n2 10.5 0 9.2 2 -1 -1 -1 -1 1024 0 1 1 -1 -1 1 -1 -1\n3 20 0 -1 2 -1 -1 -1 -1 -1 5 1 1 -1 -1 1 -1 -1\n4 30 0 5 -1 -1 -1 -1 -1 -1 1 1 1 -1 -1 1 -1 -1\n5 -1 0 5 1 -1 -1 -1 -1 -1 1 1 1 -1 -1 1 -1 -1",
        );
        let w = parse("t.swf", &text).unwrap();
        assert_eq!(w.header, vec!["Version: 2.2".to_string(), String::new()]);
        assert_eq!(w.jobs.len(), 2);
        let a = &w.jobs[0];
        assert_eq!((a.id, a.submit_s, a.runtime_s), (1, 0, 100));
        assert_eq!(a.cpus.min, 8, "requested procs win");
        assert_eq!(a.mem_mb.min, 16, "2048 KB x 8 procs = 16 MB");
        let b = &w.jobs[1];
        assert_eq!(
            (b.submit_s, b.runtime_s, b.cpus.min, b.mem_mb.min),
            (11, 10, 2, 2)
        );
        assert_eq!(w.skipped.len(), 3);
        assert_eq!(w.skipped_total(), 3);
        assert!(
            w.notes
                .iter()
                .any(|n| n.contains("field 8) for 1 jobs, allocated processors (field 5) for 1"))
        );
    }

    #[test]
    fn malformed_records_are_errors() {
        for (body, want) in [
            ("1 2 3", "has 3"),
            (
                "1 0 5 100 4 -1 2048 8 200 -1 1 1 1 -1 -1 1 -1 -1 7",
                "has 19",
            ),
            (
                "1 0 5 x 4 -1 2048 8 200 -1 1 1 1 -1 -1 1 -1 -1",
                "field 4 (run time)",
            ),
            (
                "1 0 5 nan 4 -1 2048 8 200 -1 1 1 1 -1 -1 1 -1 -1",
                "field 4",
            ),
            (
                "1.5 0 5 1 4 -1 2048 8 200 -1 1 1 1 -1 -1 1 -1 -1",
                "job number 1.5",
            ),
            (
                "1 0 5 1 4 -1 2048 8.5 200 -1 1 1 1 -1 -1 1 -1 -1",
                "field 8",
            ),
            (
                "1 0 5 1 4 -1 2048 1e12 200 -1 1 1 1 -1 -1 1 -1 -1",
                "in range",
            ),
            (
                "1 1e300 5 1 4 -1 2048 8 200 -1 1 1 1 -1 -1 1 -1 -1",
                "out of range",
            ),
        ] {
            let e = parse("t.swf", &rec(body)).unwrap_err();
            assert_eq!(e.line, 3, "{body}: {e}");
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
    }
}
