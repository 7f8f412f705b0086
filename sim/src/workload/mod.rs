//! Workloads: the [`Job`]s to simulate, read from one of the supported formats
//! ([`Format`]): native JSON lines ([`jsonl`]), the Standard Workload Format of the
//! Parallel Workloads Archive ([`swf`]) and the Alibaba cluster-trace-v2018
//! `batch_task.csv` ([`alibaba`]).
//!
//! Time is virtual and counted in whole seconds (`u64`), the unit of the placement engine's
//! clock (`JobRequest::submitted_at`, `Starvation::*_s`). Importers say in
//! [`Workload::notes`] how they mapped the source fields, count skipped records by reason
//! in [`Workload::skipped`], and keep a format's header lines in [`Workload::header`].
//!
//! Invariants of a [`Workload`]: job ids are unique; `jobs` is sorted by
//! `(submit_s, id)`; every job passes `JobRequest::validate`.

pub mod alibaba;
pub mod jsonl;
pub mod swf;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use retz_placement::{AffinityPolicy, JobRequest, ResourceRange, SmtPolicy};

use crate::error::{InputError, read_text};

/// One job of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Job id, unique in the workload.
    pub id: u64,
    /// Submit time, seconds.
    pub submit_s: u64,
    /// Run time once started, seconds (independent of the CPUs granted).
    pub runtime_s: u64,
    /// CPUs wanted.
    pub cpus: ResourceRange<u32>,
    /// Memory wanted, MB.
    pub mem_mb: ResourceRange<u64>,
    /// GPUs wanted.
    pub gpus: u32,
    /// The job's own affinity policy (a policy configuration may override it).
    pub policy: AffinityPolicy,
    /// Whole NUMA nodes wanted exclusively.
    pub numanodes: Option<u32>,
    /// Use of SMT siblings.
    pub smt: SmtPolicy,
    /// Nice-like priority, lower runs first.
    pub priority: i32,
    /// The application, for a runtime model (`retz-sim run --model`); `None` = unknown.
    pub app: Option<String>,
    /// The submitting user (SWF field 12; JSON lines `user`; 0 when unknown): users take
    /// turns by weighted dominant-resource fairness (see [`crate::fairshare`]).
    pub user: u32,
}

impl Job {
    /// A job with exactly `cpus` CPUs and `mem_mb` MB, `numa-prefer`, priority 0.
    pub fn new(id: u64, submit_s: u64, runtime_s: u64, cpus: u32, mem_mb: u64) -> Job {
        Job {
            id,
            submit_s,
            runtime_s,
            cpus: ResourceRange::exactly(cpus),
            mem_mb: ResourceRange::exactly(mem_mb),
            gpus: 0,
            policy: AffinityPolicy::NumaPrefer,
            numanodes: None,
            smt: SmtPolicy::WholeCores,
            priority: 0,
            app: None,
            user: 0,
        }
    }

    /// The request the packer sees.
    pub fn request(&self) -> JobRequest {
        JobRequest {
            job_id: self.id,
            cpus: self.cpus,
            mem_mb: self.mem_mb,
            gpus: self.gpus,
            policy: self.policy,
            numanodes: self.numanodes,
            smt: self.smt,
            cache: retz_placement::CachePolicy::default(),
            priority: self.priority,
            submitted_at: self.submit_s,
        }
    }
}

/// A workload file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    /// Native JSON lines (`.jsonl`, `.ndjson`, `.json`).
    Jsonl,
    /// Standard Workload Format (`.swf`).
    Swf,
    /// Alibaba cluster-trace-v2018 `batch_task.csv` (`.csv`).
    Alibaba,
}

impl Format {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Swf => "swf",
            Format::Alibaba => "alibaba",
        }
    }

    /// The format a file name's extension implies.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "swf" => Some(Format::Swf),
            "csv" => Some(Format::Alibaba),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jsonl" | "json" | "ndjson" => Ok(Format::Jsonl),
            "swf" => Ok(Format::Swf),
            "alibaba" | "alibaba-batch-task" | "csv" => Ok(Format::Alibaba),
            other => Err(format!(
                "unknown workload format {other:?}; expected swf, jsonl or alibaba"
            )),
        }
    }
}

/// Options of the importers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ImportOptions {
    /// Alibaba `plan_mem` is a share (0-100) of one machine's memory: that memory, MB.
    /// 0 = memory is not modelled (every job asks 0 MB).
    pub alibaba_machine_mem_mb: u64,
}

/// A workload ready to simulate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Where it came from (file name).
    pub source: String,
    /// Its format.
    pub format: Format,
    /// The jobs, sorted by `(submit_s, id)`.
    pub jobs: Vec<Job>,
    /// Header or comment lines of the source, without their comment marker.
    pub header: Vec<String>,
    /// How the importer mapped the source fields (for the report).
    pub notes: Vec<String>,
    /// Records not turned into jobs, counted by reason.
    pub skipped: BTreeMap<String, u64>,
}

impl Workload {
    /// Sorts the jobs, checks ids are unique and that there is at least one job.
    /// `lines[i]` is the source line of `jobs[i]` (for the duplicate-id error).
    pub(crate) fn finish(
        source: &str,
        format: Format,
        jobs: Vec<(usize, Job)>,
        header: Vec<String>,
        notes: Vec<String>,
        skipped: BTreeMap<String, u64>,
    ) -> Result<Workload, InputError> {
        let mut seen = BTreeSet::new();
        for (line, j) in &jobs {
            if !seen.insert(j.id) {
                return Err(InputError::new(
                    source,
                    *line,
                    format!("job id {} appears twice; job ids must be unique", j.id),
                ));
            }
        }
        if jobs.is_empty() {
            let why = if skipped.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = skipped.iter().map(|(r, n)| format!("{n} {r}")).collect();
                format!(" (skipped: {})", parts.join("; "))
            };
            return Err(InputError::new(
                source,
                0,
                format!("the workload holds no job to simulate{why}"),
            ));
        }
        let mut jobs: Vec<Job> = jobs.into_iter().map(|(_, j)| j).collect();
        jobs.sort_by_key(|j| (j.submit_s, j.id));
        Ok(Workload {
            source: source.to_string(),
            format,
            jobs,
            header,
            notes,
            skipped,
        })
    }

    /// Total skipped records.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Parses workload text in `format`.
pub fn parse_workload(
    source: &str,
    text: &str,
    format: Format,
    opts: &ImportOptions,
) -> Result<Workload, InputError> {
    match format {
        Format::Jsonl => jsonl::parse(source, text),
        Format::Swf => swf::parse(source, text),
        Format::Alibaba => alibaba::parse(source, text, opts),
    }
}

/// Reads a workload file; `format` overrides the extension.
pub fn load_workload(
    path: &Path,
    format: Option<Format>,
    opts: &ImportOptions,
) -> Result<Workload, InputError> {
    let format = match format.or_else(|| Format::from_path(path)) {
        Some(f) => f,
        None => {
            return Err(InputError::file(
                path,
                "cannot tell the workload format from the file name; name it .swf, .jsonl or .csv, or pass --format swf|jsonl|alibaba",
            ));
        }
    };
    let text = read_text(path)?;
    parse_workload(&path.display().to_string(), &text, format, opts)
}

/// Parses a number field that must be a finite number (SWF and CSV fields).
pub(crate) fn number(field: &str) -> Option<f64> {
    let v: f64 = field.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

/// `ceil(v)` as u64 when `0 <= v < 2^53`, else `None`.
pub(crate) fn ceil_u64(v: f64) -> Option<u64> {
    if (0.0..9_007_199_254_740_992.0).contains(&v) {
        Some(v.ceil() as u64)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension_and_name() {
        assert_eq!(Format::from_path(Path::new("a.SWF")), Some(Format::Swf));
        assert_eq!(Format::from_path(Path::new("a.jsonl")), Some(Format::Jsonl));
        assert_eq!(
            Format::from_path(Path::new("batch_task.csv")),
            Some(Format::Alibaba)
        );
        assert_eq!(Format::from_path(Path::new("a.txt")), None);
        assert_eq!("SWF".parse::<Format>(), Ok(Format::Swf));
        assert!(
            "gwf"
                .parse::<Format>()
                .unwrap_err()
                .contains("expected swf")
        );
        let e = load_workload(Path::new("x.txt"), None, &ImportOptions::default()).unwrap_err();
        assert!(e.to_string().contains("--format"), "{e}");
    }

    #[test]
    fn finish_sorts_and_rejects_duplicates() {
        let w = Workload::finish(
            "w",
            Format::Jsonl,
            vec![(1, Job::new(2, 5, 1, 1, 0)), (2, Job::new(1, 5, 1, 1, 0))],
            vec![],
            vec![],
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(w.jobs[0].id, 1);
        let e = Workload::finish(
            "w",
            Format::Jsonl,
            vec![(1, Job::new(2, 5, 1, 1, 0)), (7, Job::new(2, 6, 1, 1, 0))],
            vec![],
            vec![],
            BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "w:7: job id 2 appears twice; job ids must be unique"
        );
        let mut sk = BTreeMap::new();
        sk.insert("run time unknown".to_string(), 3);
        let e = Workload::finish("w", Format::Swf, vec![], vec![], vec![], sk).unwrap_err();
        assert!(e.to_string().contains("3 run time unknown"), "{e}");
    }

    #[test]
    fn numbers() {
        assert_eq!(number(" 3.5 "), Some(3.5));
        assert_eq!(number("nan"), None);
        assert_eq!(number("inf"), None);
        assert_eq!(ceil_u64(2.1), Some(3));
        assert_eq!(ceil_u64(-0.5), None);
        assert_eq!(ceil_u64(1e300), None);
    }
}
