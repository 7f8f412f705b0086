//! What a queued job asks for: [`JobRequest`], its resource ranges and its policies.
//!
//! Owns [`AffinityPolicy`], [`SmtPolicy`] and [`CachePolicy`] (with their stable string names, used by
//! `retz.toml`, the HTTP API and retz-sim policy files), [`ResourceRange`] (`2-4`, `2-`,
//! `2`) and request validation ([`JobRequest::validate`]).
//!
//! Conventions:
//! - priority is nice-like, `-20..=19`, **lower runs first** (as in the original Retz);
//!   within one priority, jobs run in submit order (then by job id);
//! - `submitted_at` is seconds on the caller's clock (Unix time in the server, virtual time
//!   in the simulator); the packer only uses differences `now - submitted_at`;
//! - a range with `max: None` means "at least `min`, as many as the chosen placement gives".

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Lowest (most urgent) priority value.
pub const PRIORITY_MIN: i32 = -20;
/// Highest (least urgent) priority value.
pub const PRIORITY_MAX: i32 = 19;

/// How a job's CPUs are placed relative to NUMA nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AffinityPolicy {
    /// One NUMA node or wait (`numa-strict`).
    NumaStrict,
    /// Fewest nodes, closest by distance (`numa-prefer`).
    #[default]
    NumaPrefer,
    /// Balance the job across the agent's nodes (`spread`).
    Spread,
    /// No pinning; Mesos-only behaviour, just counts (`none`).
    None,
}

impl AffinityPolicy {
    /// All policies, in a fixed order.
    pub const ALL: [AffinityPolicy; 4] = [
        AffinityPolicy::NumaStrict,
        AffinityPolicy::NumaPrefer,
        AffinityPolicy::Spread,
        AffinityPolicy::None,
    ];

    /// The stable name (`numa-strict`, `numa-prefer`, `spread`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            AffinityPolicy::NumaStrict => "numa-strict",
            AffinityPolicy::NumaPrefer => "numa-prefer",
            AffinityPolicy::Spread => "spread",
            AffinityPolicy::None => "none",
        }
    }
}

/// How sibling hardware threads of one physical core are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum SmtPolicy {
    /// Whole free cores first; siblings of partly used cores only when whole cores run out
    /// (`whole-cores`, the default).
    #[default]
    WholeCores,
    /// Pack onto partly used cores first, sharing cores with other jobs, so whole cores
    /// stay free for others (`pack`).
    Pack,
}

impl SmtPolicy {
    /// The stable name (`whole-cores`, `pack`).
    pub fn as_str(self) -> &'static str {
        match self {
            SmtPolicy::WholeCores => "whole-cores",
            SmtPolicy::Pack => "pack",
        }
    }
}

/// How a job's CPUs are laid over the last-level (L3) cache domains of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum CachePolicy {
    /// Keep the job in as few cache domains as possible: one when it fits (the tightest
    /// that holds it), else whole free domains first (`pack`, the default; for jobs whose
    /// threads share data).
    #[default]
    Pack,
    /// Spread the job over as many cache domains as the node has, one core from each in
    /// turn, most free domain first (`spread`; for memory-bandwidth-bound jobs, like
    /// Slurm's `--hint=memory_bound`).
    Spread,
}

impl CachePolicy {
    /// The stable name (`pack`, `spread`).
    pub fn as_str(self) -> &'static str {
        match self {
            CachePolicy::Pack => "pack",
            CachePolicy::Spread => "spread",
        }
    }
}

impl FromStr for CachePolicy {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s.trim() {
            "pack" => Ok(CachePolicy::Pack),
            "spread" => Ok(CachePolicy::Spread),
            other => Err(UnknownName {
                what: "cache policy",
                given: other.chars().take(64).collect(),
                expected: "pack, spread",
            }),
        }
    }
}

/// A policy name that is not one of the known ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}; expected one of: {expected}")]
pub struct UnknownName {
    /// What kind of name (`affinity policy`, `SMT policy`).
    pub what: &'static str,
    /// The rejected input.
    pub given: String,
    /// The accepted names, comma separated.
    pub expected: &'static str,
}

impl FromStr for AffinityPolicy {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s.trim() {
            "numa-strict" => Ok(AffinityPolicy::NumaStrict),
            "numa-prefer" => Ok(AffinityPolicy::NumaPrefer),
            "spread" => Ok(AffinityPolicy::Spread),
            "none" => Ok(AffinityPolicy::None),
            other => Err(UnknownName {
                what: "affinity policy",
                given: other.chars().take(64).collect(),
                expected: "numa-strict, numa-prefer, spread, none",
            }),
        }
    }
}

impl FromStr for SmtPolicy {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s.trim() {
            "whole-cores" => Ok(SmtPolicy::WholeCores),
            "pack" => Ok(SmtPolicy::Pack),
            other => Err(UnknownName {
                what: "SMT policy",
                given: other.chars().take(64).collect(),
                expected: "whole-cores, pack",
            }),
        }
    }
}

macro_rules! named_serde {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
named_serde!(AffinityPolicy);
named_serde!(SmtPolicy);
named_serde!(CachePolicy);

/// A resource amount range: `min`, and `max` (`None` = as many as the placement gives).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceRange<T> {
    /// The least acceptable amount.
    pub min: T,
    /// The most wanted amount; `None` = no upper bound.
    #[serde(default)]
    pub max: Option<T>,
}

impl<T: Copy + Ord> ResourceRange<T> {
    /// Exactly `n`.
    pub fn exactly(n: T) -> Self {
        ResourceRange {
            min: n,
            max: Some(n),
        }
    }
    /// At least `n`, no upper bound.
    pub fn at_least(n: T) -> Self {
        ResourceRange { min: n, max: None }
    }
    /// From `min` to `max` inclusive.
    pub fn between(min: T, max: T) -> Self {
        ResourceRange {
            min,
            max: Some(max),
        }
    }
    /// Whether `v` lies in the range.
    pub fn contains(&self, v: T) -> bool {
        v >= self.min && self.max.is_none_or(|m| v <= m)
    }
    /// `v` clamped into the range (upper bound only when present).
    pub fn clamp(&self, v: T) -> T {
        let v = if v < self.min { self.min } else { v };
        match self.max {
            Some(m) if v > m => m,
            _ => v,
        }
    }
}

/// A range string such as `2-4` that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid range {given:?}: {problem}; write N (exactly), N-M (from N to M) or N- (at least N)"
)]
pub struct RangeParseError {
    /// The rejected input.
    pub given: String,
    /// What is wrong with it.
    pub problem: String,
}

impl<T> FromStr for ResourceRange<T>
where
    T: FromStr + Copy + Ord + fmt::Display,
{
    type Err = RangeParseError;
    fn from_str(s: &str) -> Result<Self, RangeParseError> {
        let t = s.trim();
        let err = |problem: String| RangeParseError {
            given: t.chars().take(64).collect(),
            problem,
        };
        let num = |x: &str| -> Result<T, RangeParseError> {
            let x = x.trim();
            if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("{x:?} is not a whole number")));
            }
            x.parse::<T>()
                .map_err(|_| err(format!("{x:?} is too large")))
        };
        match t.split_once('-') {
            None => Ok(ResourceRange::exactly(num(t)?)),
            Some((a, "")) => Ok(ResourceRange::at_least(num(a)?)),
            Some((a, b)) => {
                let (min, max) = (num(a)?, num(b)?);
                if max < min {
                    return Err(err(format!("maximum {max} is below minimum {min}")));
                }
                Ok(ResourceRange::between(min, max))
            }
        }
    }
}

impl<T: fmt::Display + PartialEq> fmt::Display for ResourceRange<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.max {
            Some(m) if *m == self.min => write!(f, "{}", self.min),
            Some(m) => write!(f, "{}-{}", self.min, m),
            None => write!(f, "{}-", self.min),
        }
    }
}

/// One queued job as the packer sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// The job id (unique within one planning cycle).
    pub job_id: u64,
    /// CPUs wanted (whole logical CPUs).
    pub cpus: ResourceRange<u32>,
    /// Memory wanted, MB.
    pub mem_mb: ResourceRange<u64>,
    /// GPUs wanted (agent-level; GPUs carry no NUMA position here).
    #[serde(default)]
    pub gpus: u32,
    /// Placement relative to NUMA nodes.
    #[serde(default)]
    pub policy: AffinityPolicy,
    /// Whole NUMA nodes taken exclusively (`numanodes: N`); overrides `policy`. The job
    /// gets every CPU of those nodes (at least `cpus.min` of them; `cpus.max` is not
    /// applied) and their free memory up to `mem_mb.max`.
    #[serde(default)]
    pub numanodes: Option<u32>,
    /// Use of SMT siblings.
    #[serde(default)]
    pub smt: SmtPolicy,
    /// Use of a node's L3 cache domains.
    #[serde(default)]
    pub cache: CachePolicy,
    /// Nice-like priority, `-20..=19`, lower runs first.
    #[serde(default)]
    pub priority: i32,
    /// Submit time, seconds (caller's clock).
    #[serde(default)]
    pub submitted_at: u64,
}

/// Why a [`JobRequest`] cannot be planned at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("job {job_id}: needs at least 1 CPU (got -cpu {cpus})")]
    NoCpus { job_id: u64, cpus: String },
    #[error("job {job_id}: CPU range {cpus} has its maximum below its minimum")]
    CpuRange { job_id: u64, cpus: String },
    #[error("job {job_id}: memory range {mem} MB has its maximum below its minimum")]
    MemRange { job_id: u64, mem: String },
    #[error("job {job_id}: priority {priority} is outside -20..19 (lower runs first)")]
    Priority { job_id: u64, priority: i32 },
    #[error("job {job_id}: numanodes must be at least 1")]
    NoNodes { job_id: u64 },
}

impl JobRequest {
    /// A request for exactly `cpus` CPUs and `mem_mb` MB, `numa-prefer`, whole cores,
    /// priority 0, submitted at 0.
    pub fn new(job_id: u64, cpus: u32, mem_mb: u64) -> JobRequest {
        JobRequest {
            job_id,
            cpus: ResourceRange::exactly(cpus),
            mem_mb: ResourceRange::exactly(mem_mb),
            gpus: 0,
            policy: AffinityPolicy::default(),
            numanodes: None,
            smt: SmtPolicy::default(),
            cache: CachePolicy::default(),
            priority: 0,
            submitted_at: 0,
        }
    }

    /// Builder-style: set the affinity policy.
    pub fn with_policy(mut self, policy: AffinityPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Builder-style: set the priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Builder-style: set the submit time.
    pub fn submitted(mut self, at: u64) -> Self {
        self.submitted_at = at;
        self
    }

    /// Checks the ranges, the priority and `numanodes`.
    pub fn validate(&self) -> Result<(), RequestError> {
        let job_id = self.job_id;
        if self.cpus.min == 0 {
            return Err(RequestError::NoCpus {
                job_id,
                cpus: self.cpus.to_string(),
            });
        }
        if self.cpus.max.is_some_and(|m| m < self.cpus.min) {
            return Err(RequestError::CpuRange {
                job_id,
                cpus: format!("{}..{:?}", self.cpus.min, self.cpus.max),
            });
        }
        if self.mem_mb.max.is_some_and(|m| m < self.mem_mb.min) {
            return Err(RequestError::MemRange {
                job_id,
                mem: format!("{}..{:?}", self.mem_mb.min, self.mem_mb.max),
            });
        }
        if !(PRIORITY_MIN..=PRIORITY_MAX).contains(&self.priority) {
            return Err(RequestError::Priority {
                job_id,
                priority: self.priority,
            });
        }
        if self.numanodes == Some(0) {
            return Err(RequestError::NoNodes { job_id });
        }
        Ok(())
    }

    /// Bytes held on the heap by this request (none: it is plain data).
    pub fn heap_bytes(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_roundtrip() {
        for p in AffinityPolicy::ALL {
            assert_eq!(p.to_string().parse::<AffinityPolicy>().unwrap(), p);
            let j = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<AffinityPolicy>(&j).unwrap(), p);
        }
        for p in [SmtPolicy::WholeCores, SmtPolicy::Pack] {
            assert_eq!(p.to_string().parse::<SmtPolicy>().unwrap(), p);
        }
        let e = "numa".parse::<AffinityPolicy>().unwrap_err();
        assert!(e.to_string().contains("numa-strict, numa-prefer"), "{e}");
        assert!(serde_json::from_str::<SmtPolicy>("\"share\"").is_err());
    }

    #[test]
    fn ranges_parse_like_the_cli() {
        let r: ResourceRange<u32> = "2-4".parse().unwrap();
        assert_eq!(r, ResourceRange::between(2, 4));
        assert_eq!(
            "2-".parse::<ResourceRange<u32>>().unwrap(),
            ResourceRange::at_least(2)
        );
        assert_eq!(
            " 2 ".parse::<ResourceRange<u64>>().unwrap(),
            ResourceRange::exactly(2)
        );
        for s in ["2-4", "2-", "2"] {
            assert_eq!(s.parse::<ResourceRange<u32>>().unwrap().to_string(), s);
        }
        for bad in [
            "",
            "-",
            "-3",
            "4-2",
            "a",
            "1-b",
            "99999999999",
            "+1",
            "1--2",
        ] {
            let e = bad.parse::<ResourceRange<u32>>().unwrap_err();
            assert!(e.to_string().contains("write N"), "{bad}: {e}");
        }
        assert!(r.contains(3) && !r.contains(5));
        assert_eq!(r.clamp(9), 4);
        assert_eq!(ResourceRange::at_least(2u32).clamp(9), 9);
    }

    #[test]
    fn validation() {
        assert!(JobRequest::new(1, 4, 100).validate().is_ok());
        assert!(matches!(
            JobRequest::new(1, 0, 100).validate(),
            Err(RequestError::NoCpus { .. })
        ));
        let mut j = JobRequest::new(2, 4, 100);
        j.cpus.max = Some(3);
        assert!(matches!(j.validate(), Err(RequestError::CpuRange { .. })));
        let mut j = JobRequest::new(3, 4, 100);
        j.mem_mb.max = Some(3);
        assert!(matches!(j.validate(), Err(RequestError::MemRange { .. })));
        let j = JobRequest::new(4, 4, 100).with_priority(20);
        assert!(
            j.validate()
                .unwrap_err()
                .to_string()
                .contains("lower runs first")
        );
        let mut j = JobRequest::new(5, 4, 100);
        j.numanodes = Some(0);
        assert!(matches!(j.validate(), Err(RequestError::NoNodes { .. })));
    }

    #[test]
    fn request_json_defaults() {
        let j: JobRequest = serde_json::from_str(
            r#"{"job_id":7,"cpus":{"min":2},"mem_mb":{"min":512,"max":1024}}"#,
        )
        .unwrap();
        assert_eq!(j.cpus, ResourceRange::at_least(2));
        assert_eq!(j.policy, AffinityPolicy::NumaPrefer);
        assert_eq!(j.smt, SmtPolicy::WholeCores);
        let back: JobRequest = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(back, j);
    }
}
