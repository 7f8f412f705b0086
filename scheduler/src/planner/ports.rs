//! Port grants: the `ports` RANGES resource an agent offers, handed out to the jobs placed
//! on it in one cycle (the original Retz's `ports` count, `$PORT0`..). Pure.
//!
//! A [`PortPool`] is built from an agent's offered resources and consumed job by job:
//! [`PortPool::take`] gives the lowest free ports, so within one cycle no port is given
//! twice. [`merged_ranges`] turns a grant back into the inclusive ranges a task's
//! `ports` resource carries.
//!
//! Invariants of a [`PortPool`]: its runs are sorted, disjoint and non-adjacent, and lie
//! within `1..=65535` (offered values outside are not ports and are ignored); a port
//! returned by `take` is no longer in the pool.

use retz_proto::mesos::{Resource, value};

/// The Mesos resource name of ports (a Mesos agent offers `ports:[31000-32000]` unless
/// told otherwise).
pub const PORTS: &str = "ports";

/// The free ports of one agent during one cycle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortPool {
    /// Inclusive runs, ascending, disjoint, non-adjacent.
    runs: Vec<(u16, u16)>,
}

impl PortPool {
    /// The ports of every `ports` RANGES resource in `resources` (all roles together;
    /// resources of that name with another type are not ports and are ignored).
    pub fn from_resources(resources: &[Resource]) -> PortPool {
        let runs = resources
            .iter()
            .filter(|r| r.name == PORTS && r.r#type == value::Type::Ranges as i32)
            .filter_map(|r| r.ranges.as_ref())
            .flat_map(|rs| rs.range.iter().map(|r| (r.begin, r.end)));
        PortPool::from_runs(runs)
    }

    /// A pool of the inclusive `(begin, end)` runs, in any order, overlapping or not;
    /// runs with `begin > end` are ignored, values outside `1..=65535` dropped.
    pub fn from_runs(runs: impl IntoIterator<Item = (u64, u64)>) -> PortPool {
        let mut clipped: Vec<(u16, u16)> = runs
            .into_iter()
            .filter(|&(b, e)| b <= e && e >= 1 && b <= u64::from(u16::MAX))
            .map(|(b, e)| (clip(b.max(1)), clip(e)))
            .collect();
        clipped.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(clipped.len());
        for (b, e) in clipped {
            match merged.last_mut() {
                Some(last) if u32::from(b) <= u32::from(last.1) + 1 => last.1 = last.1.max(e),
                _ => merged.push((b, e)),
            }
        }
        PortPool { runs: merged }
    }

    /// How many ports are free.
    pub fn free(&self) -> u32 {
        self.runs.iter().map(|&(b, e)| u32::from(e - b) + 1).sum()
    }

    /// Whether no port is free.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The free runs, ascending.
    pub fn runs(&self) -> &[(u16, u16)] {
        &self.runs
    }

    /// Takes the `n` lowest free ports (ascending), or nothing when fewer are free.
    pub fn take(&mut self, n: u32) -> Option<Vec<u16>> {
        if n > self.free() {
            return None;
        }
        let mut out = Vec::with_capacity(n as usize);
        let mut left = n;
        let mut consumed = 0;
        for run in &mut self.runs {
            if left == 0 {
                break;
            }
            let len = u32::from(run.1 - run.0) + 1;
            if len <= left {
                out.extend(run.0..=run.1);
                left -= len;
                consumed += 1;
            } else {
                // `left < len <= 65535`, so it fits a u16 and `run.0 + left` does not
                // pass `run.1`.
                let k = left as u16;
                out.extend(run.0..run.0 + k);
                run.0 += k;
                left = 0;
            }
        }
        self.runs.drain(..consumed);
        Some(out)
    }
}

fn clip(v: u64) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// `ports` as inclusive ranges: sorted, duplicates dropped, neighbours merged.
pub fn merged_ranges(ports: &[u16]) -> value::Ranges {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut range: Vec<value::Range> = Vec::new();
    for p in sorted {
        let p = u64::from(p);
        match range.last_mut() {
            Some(last) if last.end + 1 == p => last.end = p,
            _ => range.push(value::Range { begin: p, end: p }),
        }
    }
    value::Ranges { range }
}

/// Tests' builder of an offered `ports` resource (inclusive runs, unreserved).
#[cfg(test)]
pub(crate) fn ports_resource(runs: &[(u64, u64)]) -> Resource {
    Resource {
        name: PORTS.into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: runs
                .iter()
                .map(|&(begin, end)| value::Range { begin, end })
                .collect(),
        }),
        ..Resource::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn lowest_ports_first_and_never_twice() {
        let mut pool = PortPool::from_resources(&[ports_resource(&[(31000, 32000)])]);
        assert_eq!(pool.free(), 1001);
        assert_eq!(pool.take(2), Some(vec![31000, 31001]));
        assert_eq!(pool.take(1), Some(vec![31002]));
        assert_eq!(pool.free(), 998);
        assert_eq!(pool.runs(), &[(31003, 32000)]);
        assert_eq!(pool.take(999), None, "too few: nothing taken");
        assert_eq!(pool.free(), 998);
        let rest = pool.take(998).unwrap();
        assert_eq!(rest.first(), Some(&31003));
        assert_eq!(rest.last(), Some(&32000));
        assert!(pool.is_empty());
        assert_eq!(pool.take(0), Some(vec![]));
        assert_eq!(pool.take(1), None);
    }

    #[test]
    fn takes_span_runs_and_offers_of_several_entries() {
        let mut pool = PortPool::from_resources(&[
            ports_resource(&[(31005, 31006), (31000, 31001)]),
            ports_resource(&[(31002, 31002)]),
        ]);
        assert_eq!(pool.runs(), &[(31000, 31002), (31005, 31006)]);
        assert_eq!(pool.take(4), Some(vec![31000, 31001, 31002, 31005]));
        assert_eq!(pool.runs(), &[(31006, 31006)]);
    }

    #[test]
    fn non_ports_and_bad_values_are_ignored() {
        let mut scalar = ports_resource(&[]);
        scalar.r#type = value::Type::Scalar as i32;
        scalar.scalar = Some(value::Scalar { value: 5.0 });
        scalar.ranges = None;
        let mut other = ports_resource(&[(1, 10)]);
        other.name = "cpuids".into();
        let pool = PortPool::from_resources(&[scalar, other]);
        assert!(pool.is_empty());
        let pool = PortPool::from_runs([(0, 2), (10, 5), (65530, u64::MAX), (70000, 80000)]);
        assert_eq!(pool.runs(), &[(1, 2), (65530, 65535)]);
        assert_eq!(PortPool::from_runs([(0, 0)]).free(), 0);
        assert_eq!(PortPool::from_runs([(0, u64::MAX)]).free(), 65535);
    }

    #[test]
    fn grants_become_merged_ranges() {
        let r = merged_ranges(&[31003, 31000, 31001, 31001, 31007]);
        let runs: Vec<(u64, u64)> = r.range.iter().map(|r| (r.begin, r.end)).collect();
        assert_eq!(runs, vec![(31000, 31001), (31003, 31003), (31007, 31007)]);
        assert!(merged_ranges(&[]).range.is_empty());
    }

    fn arb_runs() -> impl Strategy<Value = Vec<(u64, u64)>> {
        proptest::collection::vec((0u64..70_000, 0u64..300), 0..8)
            .prop_map(|v| v.into_iter().map(|(b, len)| (b, b + len)).collect())
    }

    proptest! {
        /// Whatever the offer and the demands: each job gets exactly what it asked for or
        /// nothing, every port handed out lies in the offer, and none is handed out twice.
        #[test]
        fn no_port_twice_all_inside_exactly_n(
            runs in arb_runs(),
            demands in proptest::collection::vec(0u32..400, 0..12),
        ) {
            let offered: BTreeSet<u16> = runs
                .iter()
                .flat_map(|&(b, e)| b..=e)
                .filter(|&p| (1..=65535).contains(&p))
                .map(|p| p as u16)
                .collect();
            let mut pool = PortPool::from_runs(runs.iter().copied());
            prop_assert_eq!(pool.free() as usize, offered.len());
            let mut given = BTreeSet::new();
            for n in demands {
                let before = pool.free();
                match pool.take(n) {
                    Some(ports) => {
                        prop_assert_eq!(ports.len(), n as usize);
                        prop_assert!(ports.windows(2).all(|w| w[0] < w[1]), "ascending");
                        // lowest first: nothing free below the highest port taken
                        if let Some(&hi) = ports.last() {
                            let lower_free = offered
                                .iter()
                                .filter(|p| **p < hi && !given.contains(*p) && !ports.contains(p))
                                .count();
                            prop_assert_eq!(lower_free, 0);
                        }
                        for p in ports {
                            prop_assert!(offered.contains(&p), "{} not offered", p);
                            prop_assert!(given.insert(p), "{} given twice", p);
                        }
                        prop_assert_eq!(pool.free(), before - n);
                    }
                    None => {
                        prop_assert!(n > before);
                        prop_assert_eq!(pool.free(), before);
                    }
                }
            }
            prop_assert_eq!(pool.free() as usize + given.len(), offered.len());
        }

        /// `merged_ranges` holds exactly the ports, as sorted, disjoint, non-adjacent runs.
        #[test]
        fn merged_ranges_hold_exactly_the_ports(ports in proptest::collection::vec(1u16.., 0..50)) {
            let r = merged_ranges(&ports);
            let back: BTreeSet<u64> = r.range.iter().flat_map(|r| r.begin..=r.end).collect();
            let want: BTreeSet<u64> = ports.iter().map(|&p| u64::from(p)).collect();
            prop_assert_eq!(back, want);
            prop_assert!(r.range.windows(2).all(|w| w[0].end + 1 < w[1].begin));
        }
    }
}
