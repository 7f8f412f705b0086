//! `retz-executor calibrate`: placement runtime factors for a machine without job history,
//! measured with a short pinned memory-bound kernel (a STREAM-like triad, [`kernel`]) and
//! written in the model form `retz-sim run --model` reads
//! (`{"apps": {"*": {"n": .., "factors": {..}}}, "unmeasured": {factor: why}}`).
//!
//! This module owns the plan (which CPUs and which memory node each measurement uses,
//! derived from the host topology), the factor arithmetic and the report; the kernel and
//! the pinning live in [`kernel`] behind the [`Timer`] seam so the arithmetic is tested
//! with a fake timer.
//!
//! Each factor is `median(time of the worse placement) / median(time of the ideal one)`
//! over `reps` repetitions:
//! - `remote_mem_share`: one thread on node A over memory first-touched on node B, vs on
//!   node A (the whole working set remote);
//! - `nodes_spanned`: two threads over one buffer first-touched on node A, one thread on
//!   A and one on B, vs both on A (different cores);
//! - `l3_spanned`: two threads on one node over one buffer, in two L3 domains vs one;
//! - `smt_shared`: one thread alone on its core vs with its SMT sibling running the same
//!   kernel on its own buffer.
//!
//! A factor the machine cannot show (one NUMA node, no split L3, no SMT, too few CPUs) is
//! not measured and not faked: it is absent from `factors` and listed under `unmeasured`
//! with the reason. Memory placement is by first touch from a thread pinned on the target
//! node (portable, no `mbind`); threads are pinned with `sched_setaffinity`.

pub mod kernel;

use std::collections::BTreeMap;

use retz_placement::Topology;
use serde_json::{Value, json};

/// Why a calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// The topology could not be probed or used.
    #[error("cannot read this machine's topology: {0}")]
    Topology(String),
    /// A thread could not be pinned or started.
    #[error("cannot run the kernel on CPU {cpu}: {message}")]
    Pin {
        /// The CPU.
        cpu: u32,
        /// What failed.
        message: String,
    },
    /// Bad settings.
    #[error("{0}")]
    Options(String),
}

/// Where one run of the kernel happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Experiment {
    /// One thread on `cpu` over memory first-touched from `mem_cpu`.
    Alone {
        /// Where the kernel runs.
        cpu: u32,
        /// Where the memory was first touched.
        mem_cpu: u32,
    },
    /// Two threads, each over half of one buffer first-touched from `mem_cpu`; the time is
    /// until both are done.
    Pair {
        /// The two CPUs.
        cpus: [u32; 2],
        /// Where the memory was first touched.
        mem_cpu: u32,
    },
    /// One thread on `cpu` (memory local to it) while `noise_cpu` runs the kernel too.
    WithNoise {
        /// The measured CPU.
        cpu: u32,
        /// The busy sibling.
        noise_cpu: u32,
    },
}

/// One factor to measure: the ideal placement and the worse one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The factor name (as in `model.json`).
    pub factor: &'static str,
    /// The ideal placement.
    pub good: Experiment,
    /// The placement the factor is about.
    pub bad: Experiment,
}

/// What to measure on a topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The reference run (one thread, local memory) for the bandwidth figure.
    pub baseline: Experiment,
    /// The factors that can be measured here.
    pub measurements: Vec<Measurement>,
    /// The factors that cannot, and why.
    pub unmeasured: BTreeMap<&'static str, String>,
}

/// Runs experiments; the real one is [`kernel::TriadTimer`].
pub trait Timer {
    /// Seconds one run of `e` took.
    fn time(&mut self, e: &Experiment) -> Result<f64, CalibrateError>;
    /// Bytes one run moves (for the bandwidth figure).
    fn bytes_per_run(&self) -> u64;
}

fn first_cpu(t: &Topology, core: usize) -> u32 {
    t.cores()[core].iter().next().map_or(0, |c| c.0)
}

/// The plan for `t` (see the module docs).
pub fn plan(t: &Topology) -> Result<Plan, CalibrateError> {
    let cpu_nodes: Vec<usize> = (0..t.num_nodes())
        .filter(|&i| !t.nodes()[i].core_range().is_empty())
        .collect();
    let Some(&a) = cpu_nodes.first() else {
        return Err(CalibrateError::Topology("no usable CPU".to_string()));
    };
    let a_cores = t.nodes()[a].core_range();
    let a0 = first_cpu(t, a_cores.start);
    let mut m = Vec::new();
    let mut un = BTreeMap::new();
    if let Some(&b) = cpu_nodes.get(1) {
        let b0 = first_cpu(t, t.nodes()[b].core_range().start);
        m.push(Measurement {
            factor: "remote_mem_share",
            good: Experiment::Alone {
                cpu: a0,
                mem_cpu: a0,
            },
            bad: Experiment::Alone {
                cpu: a0,
                mem_cpu: b0,
            },
        });
        if a_cores.len() >= 2 {
            let a1 = first_cpu(t, a_cores.start + 1);
            m.push(Measurement {
                factor: "nodes_spanned",
                good: Experiment::Pair {
                    cpus: [a0, a1],
                    mem_cpu: a0,
                },
                bad: Experiment::Pair {
                    cpus: [a0, b0],
                    mem_cpu: a0,
                },
            });
        } else {
            un.insert(
                "nodes_spanned",
                "the first NUMA node has one core: no two-thread run inside one node to compare with".to_string(),
            );
        }
    } else {
        let why = format!(
            "this machine has {} NUMA node(s) with CPUs: there is no remote node to measure",
            cpu_nodes.len()
        );
        un.insert("remote_mem_share", why.clone());
        un.insert("nodes_spanned", why);
    }
    // L3: a node with two cache domains, the first holding two cores.
    let split = cpu_nodes.iter().find_map(|&n| {
        let r = t.nodes()[n].cache_range();
        (r.len() >= 2).then_some(r.start)
    });
    match split {
        Some(d) => {
            let cores = t.cache_cores(d);
            let other = t.cache_cores(d + 1);
            if cores.len() >= 2 && !other.is_empty() {
                let c0 = first_cpu(t, cores[0] as usize);
                m.push(Measurement {
                    factor: "l3_spanned",
                    good: Experiment::Pair {
                        cpus: [c0, first_cpu(t, cores[1] as usize)],
                        mem_cpu: c0,
                    },
                    bad: Experiment::Pair {
                        cpus: [c0, first_cpu(t, other[0] as usize)],
                        mem_cpu: c0,
                    },
                });
            } else {
                un.insert(
                    "l3_spanned",
                    "the split L3 domain has one core: no two-thread run inside one L3 to compare with".to_string(),
                );
            }
        }
        None => {
            un.insert(
                "l3_spanned",
                "every NUMA node has one L3 cache domain: there is no second L3 in a node to spread over".to_string(),
            );
        }
    }
    match t.cores().iter().find(|c| c.len() >= 2) {
        Some(core) => {
            let mut it = core.iter();
            let (s0, s1) = (it.next().map_or(0, |c| c.0), it.next().map_or(0, |c| c.0));
            m.push(Measurement {
                factor: "smt_shared",
                good: Experiment::Alone {
                    cpu: s0,
                    mem_cpu: s0,
                },
                bad: Experiment::WithNoise {
                    cpu: s0,
                    noise_cpu: s1,
                },
            });
        }
        None => {
            un.insert(
                "smt_shared",
                "no core has two usable hardware threads (no SMT, or siblings not allowed): there is no sibling to share".to_string(),
            );
        }
    }
    Ok(Plan {
        baseline: Experiment::Alone {
            cpu: a0,
            mem_cpu: a0,
        },
        measurements: m,
        unmeasured: un,
    })
}

/// The median of `v` (mean of the middle two for even lengths); `v` not empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn median_time(
    timer: &mut dyn Timer,
    e: &Experiment,
    reps: usize,
) -> Result<(f64, Vec<f64>), CalibrateError> {
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        v.push(timer.time(e)?);
    }
    let raw = v.clone();
    Ok((median(&mut v), raw))
}

/// Runs `plan` with `timer`, `reps` times each, and returns the model JSON: `apps."*"`
/// with `n` (runs timed), `factors`, `ci95` (empty: a handful of runs gives no interval)
/// and `method`; top-level `unmeasured`, `baseline_gb_per_s` (triad bandwidth of one
/// thread with local memory), `topology` (nodes, cores, L3 domains, CPUs).
pub fn calibrate(
    t: &Topology,
    plan: &Plan,
    timer: &mut dyn Timer,
    reps: usize,
) -> Result<Value, CalibrateError> {
    if reps == 0 {
        return Err(CalibrateError::Options(
            "repetitions must be ≥ 1".to_string(),
        ));
    }
    let mut runs = 0u64;
    let (base, _) = median_time(timer, &plan.baseline, reps)?;
    runs += reps as u64;
    let mut factors = BTreeMap::new();
    let mut times = serde_json::Map::new();
    for m in &plan.measurements {
        let (good, g) = median_time(timer, &m.good, reps)?;
        let (bad, b) = median_time(timer, &m.bad, reps)?;
        runs += 2 * reps as u64;
        if good > 0.0 && bad > 0.0 && good.is_finite() && bad.is_finite() {
            factors.insert(m.factor.to_string(), round6(bad / good));
        }
        times.insert(
            m.factor.to_string(),
            json!({"ideal_s": g.iter().map(|x| round6(*x)).collect::<Vec<_>>(), "worse_s": b.iter().map(|x| round6(*x)).collect::<Vec<_>>()}),
        );
    }
    let gbps = if base > 0.0 {
        round6(timer.bytes_per_run() as f64 / base / 1e9)
    } else {
        0.0
    };
    Ok(json!({
        "apps": {
            "*": {
                "n": runs,
                "factors": factors,
                "ci95": {},
                "method": "retz-executor calibrate: median time of a pinned STREAM-like triad, worse placement / ideal placement",
                "times": times,
            }
        },
        "unmeasured": plan.unmeasured,
        "baseline_gb_per_s": gbps,
        "topology": {
            "numa_nodes": t.num_nodes(),
            "cores": t.cores().len(),
            "l3_domains": t.caches().len(),
            "cpus": t.cpus().to_string(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use retz_placement::CpuId;

    /// Times by experiment kind: remote memory 1.5 s, a cross-node pair 1.3 s, a pair over
    /// two L3 domains 1.1 s (detected by CPU parity in `pack:1 numa:2 l3:2 core:2 pu:2`),
    /// a noisy sibling 1.2 s, anything else 1 s; every 4th run is an outlier (×10).
    struct Fake<'a> {
        t: &'a Topology,
        n: usize,
    }

    impl Timer for Fake<'_> {
        fn time(&mut self, e: &Experiment) -> Result<f64, CalibrateError> {
            self.n += 1;
            let node = |c: u32| self.t.node_of(CpuId(c));
            let v = match e {
                Experiment::Alone { cpu, mem_cpu } if node(*cpu) != node(*mem_cpu) => 1.5,
                Experiment::Pair { cpus, .. } if node(cpus[0]) != node(cpus[1]) => 1.3,
                Experiment::Pair { cpus, .. }
                    if self.t.cache_of(CpuId(cpus[0])) != self.t.cache_of(CpuId(cpus[1])) =>
                {
                    1.1
                }
                Experiment::WithNoise { .. } => 1.2,
                _ => 1.0,
            };
            Ok(if self.n.is_multiple_of(4) {
                v * 10.0
            } else {
                v
            })
        }
        fn bytes_per_run(&self) -> u64 {
            2_000_000_000
        }
    }

    #[test]
    fn factors_are_median_ratios_on_a_full_machine() {
        let t = Topology::from_synthetic("pack:1 numa:2 l3:2 core:2 pu:2", 1024).unwrap();
        let p = plan(&t).unwrap();
        assert!(p.unmeasured.is_empty(), "{:?}", p.unmeasured);
        assert_eq!(p.measurements.len(), 4);
        let v = calibrate(&t, &p, &mut Fake { t: &t, n: 0 }, 5).unwrap();
        let f = &v["apps"]["*"]["factors"];
        assert_eq!(f["remote_mem_share"], 1.5);
        assert_eq!(f["nodes_spanned"], 1.3);
        assert_eq!(f["l3_spanned"], 1.1);
        assert_eq!(f["smt_shared"], 1.2);
        assert_eq!(v["apps"]["*"]["n"], 45);
        assert_eq!(v["baseline_gb_per_s"], 2.0);
        assert_eq!(v["unmeasured"], json!({}));
    }

    #[test]
    fn a_one_node_no_smt_machine_lists_what_it_cannot_measure() {
        let t = Topology::from_synthetic("numa:1 core:2", 1024).unwrap();
        let p = plan(&t).unwrap();
        assert!(p.measurements.is_empty());
        let keys: Vec<&str> = p.unmeasured.keys().copied().collect();
        assert_eq!(
            keys,
            [
                "l3_spanned",
                "nodes_spanned",
                "remote_mem_share",
                "smt_shared"
            ]
        );
        assert!(p.unmeasured["remote_mem_share"].contains("1 NUMA node"));
        let v = calibrate(&t, &p, &mut Fake { t: &t, n: 0 }, 3).unwrap();
        assert_eq!(v["apps"]["*"]["factors"], json!({}));
        assert_eq!(v["unmeasured"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn smt_without_numa_and_median() {
        let t = Topology::from_synthetic("numa:1 core:2 pu:2", 1024).unwrap();
        let p = plan(&t).unwrap();
        assert_eq!(p.measurements.len(), 1);
        assert_eq!(p.measurements[0].factor, "smt_shared");
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        struct Zero;
        impl Timer for Zero {
            fn time(&mut self, _: &Experiment) -> Result<f64, CalibrateError> {
                Ok(1.0)
            }
            fn bytes_per_run(&self) -> u64 {
                1
            }
        }
        assert!(calibrate(&t, &p, &mut Zero, 0).is_err());
    }
}
