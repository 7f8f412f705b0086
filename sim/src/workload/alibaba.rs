//! Importer for the Alibaba cluster-trace-v2018 `batch_task.csv` (one task per line, no
//! header in the published file; a header line starting with `task_name` is skipped).
//!
//! Columns used (1-based): 1 `task_name`, 2 `instance_num`, 3 `job_name`, 4 `task_type`,
//! 5 `status`, 6 `start_time` (s), 7 `end_time` (s), 8 `plan_cpu` (100 = one core),
//! 9 `plan_mem` (share of one machine's memory, 0-100). Mapping:
//! - each task becomes `instance_num` jobs (its instances, which the cluster had to place
//!   side by side), with ids 1, 2, 3, ... in file order;
//! - submit = `start_time` (the trace has no submit time: the task's start is the earliest
//!   it could have started); runtime = `end_time - start_time`;
//! - CPUs = `ceil(plan_cpu / 100)`, at least 1; memory = `ceil(plan_mem / 100 * M)` MB with
//!   M = `--alibaba-machine-mem-mb` (0, the default, models no memory);
//! - tasks whose status is not `Terminated`, or with a missing or negative time, an end
//!   before the start, a missing `plan_cpu` or `instance_num` are skipped and counted.
//!
//! Malformed lines (not 9 comma-separated columns, a number column that is not a number)
//! are errors naming the line. At most [`MAX_INSTANCES`] instances per task are accepted.

use std::collections::BTreeMap;

use super::{Format, ImportOptions, Job, Workload, ceil_u64, number};
use crate::error::{InputError, excerpt};

/// Columns per line.
pub const COLUMNS: usize = 9;
/// Most instances one task may expand to.
pub const MAX_INSTANCES: u64 = 1_000_000;
/// Most jobs one file may expand to (bounds memory on hostile input).
pub const MAX_JOBS: u64 = 50_000_000;

/// Parses `batch_task.csv` text.
pub fn parse(source: &str, text: &str, opts: &ImportOptions) -> Result<Workload, InputError> {
    let mut jobs = Vec::new();
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    let mut next_id = 1u64;
    let mut tasks = 0u64;
    let mut skip = |r: &str| *skipped.entry(r.to_string()).or_default() += 1;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || (line == 1 && t.starts_with("task_name")) {
            continue;
        }
        let cols: Vec<&str> = t.split(',').map(str::trim).collect();
        let err = |m: String| InputError::new(source, line, m);
        if cols.len() != COLUMNS {
            return Err(err(format!(
                "a batch_task line has {COLUMNS} comma-separated columns (task_name,instance_num,job_name,task_type,status,start_time,end_time,plan_cpu,plan_mem), this one has {}",
                cols.len()
            )));
        }
        let num = |k: usize, name: &str| -> Result<Option<f64>, InputError> {
            if cols[k].is_empty() {
                return Ok(None);
            }
            number(cols[k]).map(Some).ok_or_else(|| {
                err(format!(
                    "column {} ({name}) is {:?}, not a number",
                    k + 1,
                    excerpt(cols[k], 24)
                ))
            })
        };
        let instances = num(1, "instance_num")?;
        let start = num(5, "start_time")?;
        let end = num(6, "end_time")?;
        let plan_cpu = num(7, "plan_cpu")?;
        let plan_mem = num(8, "plan_mem")?;
        tasks += 1;
        if cols[4] != "Terminated" {
            skip("tasks not Terminated (column 5)");
            continue;
        }
        let (Some(start), Some(end)) = (start, end) else {
            skip("tasks without start_time or end_time");
            continue;
        };
        if start < 0.0 || end < 0.0 {
            skip("tasks with a negative start_time or end_time");
            continue;
        }
        if end < start {
            skip("tasks ending before they start");
            continue;
        }
        let Some(plan_cpu) = plan_cpu.filter(|c| *c > 0.0) else {
            skip("tasks without plan_cpu");
            continue;
        };
        let Some(instances) = instances.filter(|n| *n >= 1.0) else {
            skip("tasks without instance_num");
            continue;
        };
        if instances.fract() != 0.0 || instances > MAX_INSTANCES as f64 {
            return Err(err(format!(
                "instance_num {instances} is not a whole number up to {MAX_INSTANCES}"
            )));
        }
        let submit =
            ceil_u64(start).ok_or_else(|| err(format!("start_time {start} is out of range")))?;
        let runtime = ceil_u64(end - start)
            .ok_or_else(|| err(format!("run time {} is out of range", end - start)))?;
        let cpus = ceil_u64(plan_cpu / 100.0)
            .filter(|c| *c <= u64::from(u32::MAX))
            .ok_or_else(|| err(format!("plan_cpu {plan_cpu} is out of range")))?
            .max(1) as u32;
        let mem = match plan_mem {
            Some(m) if m > 0.0 && opts.alibaba_machine_mem_mb > 0 => {
                ceil_u64(m / 100.0 * opts.alibaba_machine_mem_mb as f64)
                    .ok_or_else(|| err(format!("plan_mem {m} is out of range")))?
            }
            _ => 0,
        };
        let n = instances as u64;
        if next_id - 1 + n > MAX_JOBS {
            return Err(err(format!(
                "the file expands to more than {MAX_JOBS} jobs; simulate a slice of it"
            )));
        }
        for _ in 0..n {
            jobs.push((line, Job::new(next_id, submit, runtime, cpus, mem)));
            next_id += 1;
        }
    }
    let mem_note = if opts.alibaba_machine_mem_mb > 0 {
        format!(
            "Alibaba: memory = plan_mem / 100 x {} MB (--alibaba-machine-mem-mb), rounded up",
            opts.alibaba_machine_mem_mb
        )
    } else {
        "Alibaba: memory not modelled (0 MB per job); pass --alibaba-machine-mem-mb to use plan_mem"
            .to_string()
    };
    let notes = vec![
        format!(
            "Alibaba batch_task: {tasks} tasks read; each Terminated task becomes instance_num jobs"
        ),
        "Alibaba: submit = start_time, runtime = end_time - start_time (seconds); CPUs = ceil(plan_cpu / 100)".to_string(),
        mem_note,
    ];
    Workload::finish(source, Format::Alibaba, jobs, Vec::new(), notes, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_instances_and_skips_with_reasons() {
        let text = "task_name,instance_num,job_name,task_type,status,start_time,end_time,plan_cpu,plan_mem\n\
            M1,2,j_1,1,Terminated,100,160,150,0.5\n\
            R2_1,1,j_1,1,Running,100,,100,1\n\
            M3,1,j_2,1,Terminated,200,150,100,1\n\
            M4,1,j_2,1,Terminated,200,300,,1\n\
            M5,3,j_3,1,Terminated,50,51,50,\n";
        let opts = ImportOptions {
            alibaba_machine_mem_mb: 100_000,
        };
        let w = parse("b.csv", text, &opts).unwrap();
        assert_eq!(w.jobs.len(), 5);
        assert_eq!(w.jobs[0].submit_s, 50);
        assert_eq!(w.jobs[0].cpus.min, 1);
        assert_eq!(w.jobs[0].mem_mb.min, 0);
        let m1: Vec<_> = w.jobs.iter().filter(|j| j.submit_s == 100).collect();
        assert_eq!(m1.len(), 2);
        assert_eq!(
            (m1[0].runtime_s, m1[0].cpus.min, m1[0].mem_mb.min),
            (60, 2, 500)
        );
        assert_eq!(w.skipped_total(), 3);
        let w0 = parse("b.csv", text, &ImportOptions::default()).unwrap();
        assert!(w0.jobs.iter().all(|j| j.mem_mb.min == 0));
    }

    #[test]
    fn malformed_lines_are_errors() {
        for (text, want) in [
            ("a,b,c", "has 3"),
            ("M1,x,j,1,Terminated,1,2,100,1", "column 2 (instance_num)"),
            ("M1,1.5,j,1,Terminated,1,2,100,1", "not a whole number"),
            ("M1,1,j,1,Terminated,1,2,1e30,1", "plan_cpu"),
            ("M1,1,j,1,Terminated,1e300,1e301,100,1", "out of range"),
        ] {
            let e = parse("b.csv", text, &ImportOptions::default()).unwrap_err();
            assert_eq!(e.line, 1, "{text}: {e}");
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }
}
