//! `retz-sim`: replays a workload against a cluster through the Retz placement engine
//! (`retz_placement::Packer`, the code the server calls), on virtual time,
//! deterministically, and compares affinity policies and baselines.
//!
//! Modules (each documents what it owns and its invariants):
//! - [`error`]: [`InputError`], one-line `file:line: message` errors for outside input;
//! - [`cluster`]: the `--cluster` SPEC grammar and the simulated [`Cluster`];
//! - [`recording`]: the `retz-server --record-events` format and reading agents from it;
//! - [`workload`]: [`Job`]s and the importers (native JSON lines, SWF, Alibaba);
//! - [`policy`]: `--policy` arguments (built-ins or `[placement]` TOML files);
//! - [`engine`]: the discrete-event simulation of one policy ([`simulate`]);
//! - [`fairshare`]: the multi-user order (weighted DRF) and its fairness figures;
//! - [`metrics`]: the figures ([`Summary`]) and binned time series;
//! - [`svg`], [`charts`]: hand-built SVG charts;
//! - [`report`]: `summary.json`, `run.json`, per-job CSV, the text table;
//! - [`tune`]: the deterministic search over the cost-model weights;
//! - [`model`]: the placement runtime model (`--model`, `model.json`);
//! - [`history`]: job history lines (`fit` input) and the synthetic history generator;
//! - [`fit`]: the per-application least-squares fit (`retz-sim fit`);
//! - [`generate`]: the synthetic workload generator (`retz-sim gen-workload`);
//! - [`fuzzing`]: entry points of the fuzz targets (never panic).
//!
//! Pure core, I/O at the edges: parsers take text, the engine and metrics take values;
//! only `load_*`, `report::write_*` and the binary touch files.

pub mod charts;
pub mod cluster;
pub mod engine;
pub mod error;
pub mod fairshare;
pub mod fit;
pub mod fuzzing;
pub mod generate;
pub mod history;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod recording;
pub mod report;
pub mod svg;
pub mod tune;
pub mod workload;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use cluster::{Cluster, ClusterOptions, Host, load_cluster};
pub use engine::{SimError, SimOptions, SimResult, simulate, simulate_model};
pub use error::InputError;
pub use metrics::Summary;
pub use model::RuntimeModel;
pub use policy::{NamedPolicy, load_policy};
pub use workload::{Format, ImportOptions, Job, Workload, load_workload};

/// Simulates every policy, on up to `threads` threads; results come back in policy order
/// (each simulation is independent and deterministic, so the thread count never changes
/// them), each with its wall time.
pub fn run_policies(
    cluster: &Cluster,
    workload: &Workload,
    policies: &[NamedPolicy],
    opts: &SimOptions,
    threads: usize,
) -> Result<Vec<(SimResult, Duration)>, SimError> {
    run_policies_model(cluster, workload, policies, opts, threads, None)
}

/// [`run_policies`] with runtimes scaled by a runtime model (see [`simulate_model`]).
pub fn run_policies_model(
    cluster: &Cluster,
    workload: &Workload,
    policies: &[NamedPolicy],
    opts: &SimOptions,
    threads: usize,
    model: Option<&RuntimeModel>,
) -> Result<Vec<(SimResult, Duration)>, SimError> {
    let threads = threads.clamp(1, policies.len().max(1));
    type Slot = Mutex<Option<Result<(SimResult, Duration), SimError>>>;
    let slots: Vec<Slot> = policies.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(p) = policies.get(i) else { break };
            let started = Instant::now();
            let r =
                simulate_model(cluster, workload, p, opts, model).map(|r| (r, started.elapsed()));
            if let Ok(mut slot) = slots[i].lock() {
                *slot = Some(r);
            }
        }
    };
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    slots
        .into_iter()
        .zip(policies)
        .map(|(m, p)| {
            m.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(SimError {
                    policy: p.name.clone(),
                    t: 0,
                    job_id: 0,
                    what: "nothing (the simulation thread stopped)".to_string(),
                })
            })
        })
        .collect()
}
