//! A synthetic workload generator (`retz-sim gen-workload`): seeded, so the same options
//! give the same file.
//!
//! Model: arrivals are a Poisson process of rate `rate` jobs/s (exponential gaps,
//! submit times rounded down to whole seconds); CPUs are drawn uniformly from `cpus`
//! (repeat a value to weight it); runtime is log-uniform in `[runtime_min_s,
//! runtime_max_s]`; memory is `mem_per_cpu_mb` × CPUs; the affinity policy is drawn from
//! `policies` (weights). [`rate_for_load`] gives the rate that offers a target load to a
//! cluster of a given size.
//!
//! The random source is SplitMix64 (a published 64-bit mixing function, a few lines),
//! which is all a reproducible workload needs.

use std::io::Write;

use retz_placement::AffinityPolicy;

use crate::workload::Job;
use crate::workload::jsonl::to_line;

/// Generator settings.
#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    /// Jobs to generate.
    pub jobs: u64,
    /// Seed.
    pub seed: u64,
    /// Mean arrivals per second.
    pub rate: f64,
    /// CPU counts to draw from.
    pub cpus: Vec<u32>,
    /// Shortest runtime, s.
    pub runtime_min_s: u64,
    /// Longest runtime, s.
    pub runtime_max_s: u64,
    /// Memory per CPU, MB.
    pub mem_per_cpu_mb: u64,
    /// Affinity policies with weights.
    pub policies: Vec<(AffinityPolicy, u32)>,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            jobs: 1000,
            seed: 1,
            rate: 1.0,
            cpus: vec![1, 2, 4, 8, 16],
            runtime_min_s: 60,
            runtime_max_s: 3600,
            mem_per_cpu_mb: 1024,
            policies: vec![(AffinityPolicy::NumaPrefer, 1)],
        }
    }
}

impl GenOptions {
    /// Checks the settings; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!(
                "--rate {} must be a positive number of jobs per second",
                self.rate
            ));
        }
        if self.cpus.is_empty() || self.cpus.contains(&0) {
            return Err("--cpus must list CPU counts of at least 1, e.g. 1,2,4,8".into());
        }
        if self.runtime_min_s == 0 || self.runtime_max_s < self.runtime_min_s {
            return Err(format!(
                "runtimes must satisfy 1 <= --runtime-min ({}) <= --runtime-max ({})",
                self.runtime_min_s, self.runtime_max_s
            ));
        }
        if self.policies.iter().map(|p| u64::from(p.1)).sum::<u64>() == 0 {
            return Err("--policy-mix needs at least one positive weight".into());
        }
        Ok(())
    }

    /// Mean CPU-seconds of one job under these settings.
    pub fn mean_cpu_seconds(&self) -> f64 {
        let mean_cpus =
            self.cpus.iter().map(|&c| f64::from(c)).sum::<f64>() / self.cpus.len().max(1) as f64;
        let (a, b) = (self.runtime_min_s as f64, self.runtime_max_s as f64);
        let mean_run = if b > a { (b - a) / (b / a).ln() } else { a };
        mean_cpus * mean_run
    }
}

/// The arrival rate that offers `load` (e.g. 0.9) of `cluster_cpus` CPUs.
pub fn rate_for_load(opts: &GenOptions, load: f64, cluster_cpus: u64) -> f64 {
    load * cluster_cpus as f64 / opts.mean_cpu_seconds().max(1e-9)
}

/// SplitMix64.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// An iterator over the generated jobs, in submit order.
pub fn jobs(opts: &GenOptions) -> impl Iterator<Item = Job> + '_ {
    let mut rng = SplitMix64::new(opts.seed);
    let mut clock = 0.0f64;
    let total_w: u64 = opts.policies.iter().map(|p| u64::from(p.1)).sum();
    let (lo, hi) = (opts.runtime_min_s as f64, opts.runtime_max_s as f64);
    (1..=opts.jobs).map(move |id| {
        clock += -(1.0 - rng.next_f64()).ln() / opts.rate;
        let cpus = opts.cpus[rng.below(opts.cpus.len() as u64) as usize];
        let runtime = (lo * (hi / lo).powf(rng.next_f64())).round().clamp(lo, hi) as u64;
        let mut pick = rng.below(total_w.max(1));
        let mut policy = AffinityPolicy::NumaPrefer;
        for &(p, w) in &opts.policies {
            if pick < u64::from(w) {
                policy = p;
                break;
            }
            pick -= u64::from(w);
        }
        let mut j = Job::new(
            id,
            clock as u64,
            runtime,
            cpus,
            opts.mem_per_cpu_mb.saturating_mul(u64::from(cpus)),
        );
        j.policy = policy;
        j
    })
}

/// Writes the workload as native JSON lines, with a `#` header naming the settings.
pub fn write_jsonl(opts: &GenOptions, out: &mut impl Write) -> std::io::Result<()> {
    let mix: Vec<String> = opts
        .policies
        .iter()
        .map(|(p, w)| format!("{p}={w}"))
        .collect();
    writeln!(
        out,
        "# retz-sim gen-workload: jobs={} seed={} rate={} cpus={:?} runtime={}..{}s (log-uniform) mem_per_cpu={}MB policy_mix={}",
        opts.jobs,
        opts.seed,
        opts.rate,
        opts.cpus,
        opts.runtime_min_s,
        opts.runtime_max_s,
        opts.mem_per_cpu_mb,
        mix.join(",")
    )?;
    let mut line = String::new();
    for j in jobs(opts) {
        line.clear();
        line.push_str(&to_line(&j));
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_within_bounds() {
        let o = GenOptions {
            jobs: 2000,
            seed: 7,
            rate: 2.0,
            policies: vec![(AffinityPolicy::NumaStrict, 1), (AffinityPolicy::Spread, 3)],
            ..GenOptions::default()
        };
        o.validate().unwrap();
        let a: Vec<Job> = jobs(&o).collect();
        let b: Vec<Job> = jobs(&o).collect();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].submit_s <= w[1].submit_s));
        assert!(a.iter().all(|j| (60..=3600).contains(&j.runtime_s)));
        assert!(a.iter().all(|j| o.cpus.contains(&j.cpus.min)));
        let strict = a
            .iter()
            .filter(|j| j.policy == AffinityPolicy::NumaStrict)
            .count();
        assert!((350..650).contains(&strict), "{strict}");
        // ~2 jobs/s: 2000 jobs over ~1000 s.
        let last = a.last().unwrap().submit_s;
        assert!((850..1150).contains(&last), "{last}");
        let mut buf = Vec::new();
        write_jsonl(&o, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let w = crate::workload::jsonl::parse("g", &text).unwrap();
        assert_eq!(w.jobs.len(), 2000);
        assert!(w.header[0].contains("seed=7"));
    }

    #[test]
    fn load_and_validation() {
        let o = GenOptions {
            cpus: vec![2],
            runtime_min_s: 100,
            runtime_max_s: 100,
            ..GenOptions::default()
        };
        assert_eq!(o.mean_cpu_seconds(), 200.0);
        assert_eq!(rate_for_load(&o, 0.5, 400), 1.0);
        for bad in [
            GenOptions {
                rate: 0.0,
                ..GenOptions::default()
            },
            GenOptions {
                cpus: vec![],
                ..GenOptions::default()
            },
            GenOptions {
                runtime_min_s: 10,
                runtime_max_s: 5,
                ..GenOptions::default()
            },
            GenOptions {
                policies: vec![(AffinityPolicy::None, 0)],
                ..GenOptions::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
        let mut r = SplitMix64::new(0);
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
