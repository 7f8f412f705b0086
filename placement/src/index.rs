//! Free-capacity indexes that let a request find candidate nodes and agents without
//! scanning every agent.
//!
//! [`CapIndex`] maps a free-CPU count to the set of `(free MB, agent, slot)` entries with
//! exactly that many free CPUs. A query `(cpus ≥ c, mem ≥ m)` walks the buckets from `c`
//! upwards and, inside each bucket, the entries from `m` upwards, so it yields feasible
//! entries **best fit first** (fewest free CPUs, then least free memory, then lowest agent
//! and slot) and costs `O(buckets visited · log n)`; the number of buckets is bounded by
//! the largest free-CPU count, not by the number of agents.
//!
//! Invariants: an entry is present at most once; the owner (`planner.rs`) removes an
//! entry before changing the counts it was keyed by and re-inserts it afterwards; empty
//! buckets are removed, so `largest` is `O(log n)`.

use std::collections::{BTreeMap, BTreeSet};

/// `(free MB, agent index, slot)`; the slot is a node position or 0 for agent entries.
pub(crate) type Entry = (u64, u32, u32);

/// Buckets of entries keyed by free CPUs.
#[derive(Clone, Debug, Default)]
pub(crate) struct CapIndex {
    buckets: BTreeMap<u32, BTreeSet<Entry>>,
    len: usize,
}

impl CapIndex {
    /// Builds an index from entries in any order (bulk-loaded B-trees, `O(n log n)` for
    /// the sort, linear for the trees). Duplicates are kept once.
    pub(crate) fn bulk(mut entries: Vec<(u32, Entry)>) -> CapIndex {
        entries.sort_unstable();
        entries.dedup();
        let len = entries.len();
        let mut buckets = BTreeMap::new();
        let mut rest = entries.as_slice();
        while let Some(&(c, _)) = rest.first() {
            let n = rest.partition_point(|e| e.0 == c);
            let set: BTreeSet<Entry> = rest[..n].iter().map(|e| e.1).collect();
            buckets.insert(c, set);
            rest = &rest[n..];
        }
        CapIndex { buckets, len }
    }

    pub(crate) fn insert(&mut self, cpus: u32, e: Entry) {
        if self.buckets.entry(cpus).or_default().insert(e) {
            self.len += 1;
        }
    }

    pub(crate) fn remove(&mut self, cpus: u32, e: Entry) {
        if let Some(set) = self.buckets.get_mut(&cpus) {
            if set.remove(&e) {
                self.len -= 1;
            }
            if set.is_empty() {
                self.buckets.remove(&cpus);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries with at least `cpus` free CPUs and `mem` free MB, best fit first:
    /// `(free cpus, (free MB, agent, slot))`.
    pub(crate) fn fitting(&self, cpus: u32, mem: u64) -> impl Iterator<Item = (u32, Entry)> + '_ {
        self.buckets
            .range(cpus..)
            .flat_map(move |(&c, set)| set.range((mem, 0, 0)..).map(move |&e| (c, e)))
    }

    /// All entries, most free CPUs first (then most memory).
    pub(crate) fn largest_first(&self) -> impl Iterator<Item = (u32, Entry)> + '_ {
        self.buckets
            .iter()
            .rev()
            .flat_map(|(&c, set)| set.iter().rev().map(move |&e| (c, e)))
    }

    /// The entry with the most free CPUs (then the most memory).
    pub(crate) fn largest(&self) -> Option<(u32, Entry)> {
        self.buckets
            .last_key_value()
            .and_then(|(&c, s)| s.last().map(|&e| (c, e)))
    }

    /// Among entries with at least `cpus` free CPUs, the one with the most free memory.
    pub(crate) fn most_memory_with(&self, cpus: u32) -> Option<(u32, Entry)> {
        self.buckets
            .range(cpus..)
            .filter_map(|(&c, s)| s.last().map(|&e| (c, e)))
            .max_by(|a, b| {
                a.1.0
                    .cmp(&b.1.0)
                    .then(b.1.1.cmp(&a.1.1))
                    .then(b.1.2.cmp(&a.1.2))
            })
    }

    /// Approximate heap bytes (B-tree nodes hold ~11 entries; count entries and buckets).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.len * std::mem::size_of::<Entry>() * 3 / 2
            + self.buckets.len() * (std::mem::size_of::<BTreeSet<Entry>>() + 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_order_and_updates() {
        let mut ix = CapIndex::default();
        ix.insert(8, (100, 0, 0));
        ix.insert(4, (50, 1, 0));
        ix.insert(4, (10, 2, 1));
        ix.insert(16, (1000, 3, 0));
        ix.insert(4, (10, 2, 1));
        assert_eq!(ix.len(), 4);
        let got: Vec<_> = ix.fitting(4, 20).collect();
        assert_eq!(
            got,
            vec![(4, (50, 1, 0)), (8, (100, 0, 0)), (16, (1000, 3, 0))]
        );
        assert_eq!(ix.fitting(17, 0).count(), 0);
        assert_eq!(ix.largest(), Some((16, (1000, 3, 0))));
        assert_eq!(ix.most_memory_with(5), Some((16, (1000, 3, 0))));
        let order: Vec<u32> = ix.largest_first().map(|e| e.1.1).collect();
        assert_eq!(order, vec![3, 0, 1, 2]);
        ix.remove(16, (1000, 3, 0));
        ix.remove(16, (1000, 3, 0));
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.largest(), Some((8, (100, 0, 0))));
        assert!(ix.heap_bytes() > 0);
        let bulk = CapIndex::bulk(vec![
            (8, (100, 0, 0)),
            (4, (10, 2, 1)),
            (4, (50, 1, 0)),
            (4, (10, 2, 1)),
        ]);
        assert_eq!(bulk.len(), 3);
        assert_eq!(bulk.buckets, ix.buckets);
    }
}
