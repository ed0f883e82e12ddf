//! A small bounded least-recently-used map, for compiled selectors and regexes and for
//! prepared PostgreSQL statements.
//!
//! Lookups are one hash probe. Each entry carries the tick of its last use; when a miss
//! finds the map full, the entry with the oldest tick goes. That scan is O(capacity), paid
//! only on a miss at capacity, which for a cache of compiled queries (capacity in the
//! hundreds, misses costing microseconds to compile) is the right trade against a linked list.

use std::collections::HashMap;

/// A bounded map from query text to a compiled value.
#[derive(Debug)]
pub struct Lru<V> {
    map: HashMap<Box<str>, (V, u64)>,
    tick: u64,
    capacity: usize,
}

impl<V> Lru<V> {
    /// An empty cache holding at most `capacity` entries (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Lru {
            map: HashMap::new(),
            tick: 0,
            capacity: capacity.max(1),
        }
    }

    /// The value for `key`, compiling it with `make` on a miss. Returns the value and
    /// whether it was a hit.
    pub fn get_or_try_insert<E>(
        &mut self,
        key: &str,
        make: impl FnOnce(&str) -> Result<V, E>,
    ) -> Result<(&V, bool), E> {
        self.tick += 1;
        let tick = self.tick;
        if self.map.contains_key(key) {
            let entry = self.map.get_mut(key).expect("checked above");
            entry.1 = tick;
            return Ok((&entry.0, true));
        }
        let v = make(key)?;
        if self.map.len() >= self.capacity {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        let entry = self.map.entry(key.into()).or_insert((v, tick));
        Ok((&entry.0, false))
    }

    /// The value for `key`, refreshed as the most recently used (a hit), or `None`.
    pub fn get(&mut self, key: &str) -> Option<&V> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.map.get_mut(key)?;
        entry.1 = tick;
        Some(&entry.0)
    }

    /// Inserts `value` as the most recently used entry for `key`. Returns what left the
    /// map: the value `key` had before, or the least recently used entry when the map was
    /// full.
    pub fn insert(&mut self, key: &str, value: V) -> Option<(Box<str>, V)> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.map.get_mut(key) {
            let old = std::mem::replace(entry, (value, tick));
            return Some((key.into(), old.0));
        }
        let mut evicted = None;
        if self.map.len() >= self.capacity {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                evicted = self.map.remove_entry(&k).map(|(k, (v, _))| (k, v));
            }
        }
        self.map.insert(key.into(), (value, tick));
        evicted
    }

    /// Removes `key`'s entry, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.map.remove(key).map(|(v, _)| v)
    }

    /// Removes every entry, returning them.
    pub fn drain(&mut self) -> Vec<(Box<str>, V)> {
        self.map.drain().map(|(k, (v, _))| (k, v)).collect()
    }

    /// Entries held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The most entries it holds.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether `key` is cached (does not count as a use).
    #[must_use]
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut l = Lru::new(2);
        let ok = |k: &str| Ok::<_, ()>(k.len());
        assert!(!l.get_or_try_insert("a", ok).unwrap().1);
        assert!(!l.get_or_try_insert("bb", ok).unwrap().1);
        assert!(l.get_or_try_insert("a", ok).unwrap().1); // a is now newer than bb
        assert!(!l.get_or_try_insert("ccc", ok).unwrap().1); // evicts bb
        assert!(l.contains("a") && l.contains("ccc") && !l.contains("bb"));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn get_refreshes_and_insert_returns_the_evicted() {
        let mut l = Lru::new(2);
        assert!(l.insert("a", 1).is_none());
        assert!(l.insert("b", 2).is_none());
        assert_eq!(l.get("a"), Some(&1)); // b is now the oldest
        let (k, v) = l.insert("c", 3).unwrap();
        assert_eq!((&*k, v), ("b", 2));
        let (k, v) = l.insert("a", 10).unwrap(); // replacing returns the old value
        assert_eq!((&*k, v), ("a", 1));
        assert_eq!(l.get("a"), Some(&10));
        assert_eq!(l.drain().len(), 2);
        assert!(l.is_empty());
    }

    #[test]
    fn a_failed_compile_caches_nothing() {
        let mut l: Lru<u32> = Lru::new(2);
        assert_eq!(l.get_or_try_insert("x", |_| Err("bad")).unwrap_err(), "bad");
        assert_eq!(l.len(), 0);
    }
}
