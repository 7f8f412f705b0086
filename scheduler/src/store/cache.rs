//! [`ReadCache`]: the store's read-through cache of users and applications, which every
//! authenticated request and every submission read. Only this process writes them
//! (through the store), so the store invalidates an entry whenever it writes it.
//!
//! Invariant: a value read from the database is cached only if no invalidation happened
//! between the start of that read and the fill ([`ReadCache::generation`] taken before the
//! read, checked by [`ReadCache::fill`]); so a read racing with an update can never leave
//! the old value behind. Absent keys are not cached (random keys cannot grow it), and the
//! cache empties itself when it reaches its size bound.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the cache is emptied (users and applications are few).
const MAX_ENTRIES: usize = 65_536;

/// A read-through cache keyed by name.
#[derive(Debug)]
pub(super) struct ReadCache<V> {
    inner: Mutex<State<V>>,
}

#[derive(Debug)]
struct State<V> {
    generation: u64,
    map: HashMap<String, V>,
}

impl<V: Clone> ReadCache<V> {
    pub(super) fn new() -> Self {
        ReadCache {
            inner: Mutex::new(State {
                generation: 0,
                map: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<V>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached value of `key`.
    pub(super) fn get(&self, key: &str) -> Option<V> {
        self.state().map.get(key).cloned()
    }

    /// Take before reading the database; hand to [`ReadCache::fill`].
    pub(super) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Caches `value` read from the database under `key`, unless something was
    /// invalidated since `generation` was taken.
    pub(super) fn fill(&self, key: &str, value: &V, generation: u64) {
        let mut s = self.state();
        if s.generation != generation {
            return;
        }
        if s.map.len() >= MAX_ENTRIES {
            s.map.clear();
        }
        s.map.insert(key.to_owned(), value.clone());
    }

    /// Forgets `key` (call after every write of it, and before).
    pub(super) fn invalidate(&self, key: &str) {
        let mut s = self.state();
        s.generation += 1;
        s.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let c: ReadCache<u32> = ReadCache::new();
        let g = c.generation();
        c.fill("a", &1, g);
        assert_eq!(c.get("a"), Some(1));
        let before_read = c.generation();
        // an update lands while the old value is being read...
        c.invalidate("a");
        c.fill("a", &1, before_read);
        assert_eq!(c.get("a"), None, "the stale value must not be cached");
        let g = c.generation();
        c.fill("a", &2, g);
        assert_eq!(c.get("a"), Some(2));
    }

    #[test]
    fn the_cache_is_bounded() {
        let c: ReadCache<usize> = ReadCache::new();
        for i in 0..=MAX_ENTRIES {
            let g = c.generation();
            c.fill(&i.to_string(), &i, g);
        }
        assert!(c.state().map.len() <= MAX_ENTRIES);
        assert_eq!(c.get(&MAX_ENTRIES.to_string()), Some(MAX_ENTRIES));
    }
}
