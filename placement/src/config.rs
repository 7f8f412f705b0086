//! Tunables of the packer: [`PolicyConfig`] with the cost-model [`Weights`], the
//! starvation protection ([`Starvation`]) and the search width, all serde so that the
//! server's `[placement]` TOML section and retz-sim policy files can hold them.
//!
//! Every field has a default, so an empty table is a valid configuration, and unknown
//! keys are rejected (a typo in a weight name must not silently fall back to a default).
//!
//! The cost of a candidate placement (lower is better) is
//!
//! ```text
//! cost =  extra_node    * (nodes used - 1)
//!       + cross_node    * Σ_i Σ_j f_i f_j (d_ij / d_ii - 1)      f_i = share of CPUs on node i
//!       + smt_shared    * (CPUs on cores partly used by other jobs) / CPUs
//!       + fragmentation * (free CPUs left in the chosen nodes) / (their usable CPUs)
//!       + balance       * std-dev over the agent's nodes of the free-CPU fraction afterwards
//!       + memory_spill  * Σ_k (MB on node k outside the CPU nodes) / MB * (d / d_local - 1)
//!       - grant         * (extra CPUs the placement can give) / (max - min)
//!       + cache_split   * (L3 domains spanned - 1)       single-node placements, cache pack
//!       + cache_fragmentation * (free CPUs left in its L3 domain) / (domain size)
//! ```
//!
//! (with cache policy `spread`, the `cache_split` term counts the L3 domains the job
//! cannot reach instead; the span is that of the CPUs the job would really get, see
//! `planner/cache.rs`). While `cache_split` exceeds `fragmentation + smt_shared + grant +
//! cache_fragmentation` (the spread of the other single-node terms of a job without
//! GPUs; 4 against 2.25 by default), the L3-aware node choice never spans more L3
//! domains than the choice with `cache_split = 0` (node-only scoring); with
//! `cache_fragmentation = 0` (the default) it is that very choice whenever that choice
//! already keeps the job in its fewest domains, so L3 awareness only steps in where it
//! helps (inside the node, the tightest domain is taken either way).
//!
//! which terms apply depends on the policy (see `planner.rs`): `numa-strict` and
//! `numa-prefer` use all but `balance`, `spread` uses `balance`, `smt_shared`,
//! `fragmentation` (agent level), `memory_spill` and `grant`; `none` takes the best fit by
//! counts. Age enters through the queue order ([`Starvation::aging_step_s`]) and the
//! reservation of [`Starvation::reserve_after_s`].

use serde::{Deserialize, Serialize};

use crate::request::{AffinityPolicy, CachePolicy};

/// The weights of the cost terms (see the module docs for the formula).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Per NUMA node used beyond the first (`numa-prefer`: fewest nodes first).
    pub extra_node: f64,
    /// Cross-node penalty, scaled by the SLIT distance relative to local.
    pub cross_node: f64,
    /// Sharing physical cores (SMT siblings) with other jobs.
    pub smt_shared: f64,
    /// Free CPUs left in the chosen nodes (best fit keeps large holes whole).
    pub fragmentation: f64,
    /// Imbalance of free CPUs across the agent's nodes afterwards (`spread`).
    pub balance: f64,
    /// Memory placed on nodes other than the CPU nodes, scaled by distance.
    pub memory_spill: f64,
    /// Reward for a placement that can grant more of an open CPU range.
    pub grant: f64,
    /// Per last-level (L3) cache domain a job spans beyond one (cache policy `pack`), or
    /// short of the most it could use (`spread`), in the node it is placed in; 0 turns
    /// L3-aware node choice off (within the node, CPUs still follow the cache policy).
    pub cache_split: f64,
    /// Free CPUs left in the L3 domain a single-domain placement lands in, over the
    /// domain's size: best fit per L3 across nodes (inside a node the tightest domain is
    /// taken anyway). 0 by default: on retz-sim workloads it moved jobs off the node-only
    /// choice without keeping more of them in one L3 (`sim/README.md`).
    pub cache_fragmentation: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            extra_node: 1.0,
            cross_node: 4.0,
            smt_shared: 1.0,
            fragmentation: 1.0,
            balance: 1.0,
            memory_spill: 2.0,
            grant: 0.25,
            cache_split: 4.0,
            cache_fragmentation: 0.0,
        }
    }
}

/// Protection of large jobs against starvation (reservation plus priority aging).
///
/// A job that has waited at least `reserve_after_s` and still does not fit reserves the
/// NUMA node (or, for multi-node shapes, the agent) closest to fitting it: no other job
/// can take CPUs, memory or GPUs there, so the target drains as the jobs
/// running on it end, and the reservation is kept across cycles by the [`crate::Packer`]
/// until the job is placed or leaves the queue. Smaller jobs keep flowing everywhere else.
/// Without runtime estimates nothing can be backfilled into a reserved target without
/// possibly delaying its holder, so nothing is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Starvation {
    /// Wait (seconds) after which an unplaced job reserves a target.
    pub reserve_after_s: u64,
    /// At most this many reservations at once (the oldest-ordered jobs get them).
    pub max_reservations: usize,
    /// Every `aging_step_s` seconds of waiting lower the job's effective priority value
    /// by one (more urgent); 0 disables aging.
    pub aging_step_s: u64,
    /// Upper bound of the aging boost, in priority steps.
    pub max_age_boost: i32,
}

impl Default for Starvation {
    fn default() -> Self {
        Starvation {
            reserve_after_s: 300,
            max_reservations: 16,
            aging_step_s: 3600,
            max_age_boost: 39,
        }
    }
}

/// Which algorithm plans the cycle.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PackerKind {
    /// The NUMA-aware cost-model packer.
    #[default]
    Retz,
    /// Baseline: agents in order, jobs in order, counts only, lowest free CPU ids.
    FirstFit,
    /// Baseline: agent by least-allocated totals, then best-fit CPUs by NUMA on it.
    NodeBlind,
}

/// Everything that tunes a planning cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// A label for reports (retz-sim prints it).
    pub name: String,
    /// The algorithm.
    pub packer: PackerKind,
    /// When set, every job is planned with this affinity policy instead of its own
    /// (cluster-wide override, e.g. to compare policies in retz-sim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<AffinityPolicy>,
    /// When set, every job is laid over L3 cache domains with this policy instead of its
    /// own (cluster-wide override, e.g. `retz-sim run --cache spread`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    /// Cost-model weights.
    pub weights: Weights,
    /// Starvation protection.
    pub starvation: Starvation,
    /// How many feasible candidates (nodes or agents) are scored per decision; the index
    /// yields them best-fit first.
    pub candidates: usize,
    /// Seeds tried per agent when a job spans several nodes (nodes with the most free CPUs
    /// first); bounds the work on machines with many nodes.
    pub max_seeds: usize,
    /// Grow grants of open ranges (`-cpu 2-`) with what is left after every queued job had
    /// its turn.
    pub grow: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            name: "retz".to_string(),
            packer: PackerKind::Retz,
            affinity: None,
            cache: None,
            weights: Weights::default(),
            starvation: Starvation::default(),
            candidates: 8,
            max_seeds: 16,
            grow: true,
        }
    }
}

impl PolicyConfig {
    /// A built-in configuration by name: an affinity policy (`numa-strict`, `numa-prefer`,
    /// `spread`, `none`: the Retz packer with that policy forced), a baseline
    /// (`first-fit`, `node-blind`) or `retz` (defaults, each job's own policy).
    pub fn builtin(name: &str) -> Option<PolicyConfig> {
        let mut c = PolicyConfig {
            name: name.to_string(),
            ..PolicyConfig::default()
        };
        match name {
            "retz" => {}
            "first-fit" => c.packer = PackerKind::FirstFit,
            "node-blind" => c.packer = PackerKind::NodeBlind,
            other => c.affinity = Some(other.parse().ok()?),
        }
        Some(c)
    }

    /// The names [`PolicyConfig::builtin`] accepts.
    pub const BUILTIN_NAMES: [&'static str; 7] = [
        "retz",
        "numa-strict",
        "numa-prefer",
        "spread",
        "none",
        "first-fit",
        "node-blind",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_default_and_typos_are_rejected() {
        let c: PolicyConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, PolicyConfig::default());
        let c: PolicyConfig = serde_json::from_str(
            r#"{"packer":"node-blind","affinity":"spread","weights":{"cross_node":9.5},"starvation":{"reserve_after_s":5}}"#,
        )
        .unwrap();
        assert_eq!(c.packer, PackerKind::NodeBlind);
        assert_eq!(c.affinity, Some(AffinityPolicy::Spread));
        assert_eq!(c.weights.cross_node, 9.5);
        assert_eq!(c.weights.grant, Weights::default().grant);
        assert_eq!(c.starvation.reserve_after_s, 5);
        let e = serde_json::from_str::<PolicyConfig>(r#"{"weights":{"cross_nod":1}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cross_nod"), "{e}");
    }

    #[test]
    fn builtins() {
        for n in PolicyConfig::BUILTIN_NAMES {
            let c = PolicyConfig::builtin(n).unwrap();
            assert_eq!(c.name, n);
        }
        assert_eq!(
            PolicyConfig::builtin("first-fit").unwrap().packer,
            PackerKind::FirstFit
        );
        assert_eq!(
            PolicyConfig::builtin("numa-strict").unwrap().affinity,
            Some(AffinityPolicy::NumaStrict)
        );
        assert!(PolicyConfig::builtin("best").is_none());
    }
}
