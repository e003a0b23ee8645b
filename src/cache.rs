//! A small bounded in-memory cache for values that never change once written (state
//! groups, facts derived from them) or whose writers invalidate them.
//!
//! Two generations approximate least-recently-used eviction at O(1) per operation:
//! entries go into the young generation; when it is full, it becomes the old one (the
//! previous old one is dropped). A hit in the old generation moves the entry back to the
//! young one, so what is used stays and what is not ages out within two turns.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct Cache<K, V> {
    inner: Mutex<Generations<K, V>>,
    /// Entries per generation: the cache holds at most twice as many.
    capacity: usize,
}

struct Generations<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Generations {
                young: HashMap::new(),
                old: HashMap::new(),
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut generations = self.lock();
        if let Some(value) = generations.young.get(key) {
            return Some(value.clone());
        }
        let (key, value) = generations.old.remove_entry(key)?;
        let found = value.clone();
        self.insert_locked(&mut generations, key, value);
        Some(found)
    }

    pub fn insert(&self, key: K, value: V) {
        let mut generations = self.lock();
        self.insert_locked(&mut generations, key, value);
    }

    fn insert_locked(&self, generations: &mut Generations<K, V>, key: K, value: V) {
        if generations.young.len() >= self.capacity && !generations.young.contains_key(&key) {
            generations.old = std::mem::take(&mut generations.young);
        }
        generations.young.insert(key, value);
    }

    /// Inserts unless `still_valid`, asked under the cache's lock, says the value has
    /// gone stale since it was read: a writer that changes the source first marks the
    /// change (so the check fails) and then removes the key (so an earlier insert goes).
    pub fn insert_if(&self, key: K, value: V, still_valid: impl FnOnce() -> bool) {
        let mut generations = self.lock();
        if still_valid() {
            self.insert_locked(&mut generations, key, value);
        }
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut generations = self.lock();
        generations.young.remove(key);
        generations.old.remove(key);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut generations = self.lock();
        generations.young.clear();
        generations.old.clear();
    }

    /// The cached value, or `load`'s, which is then cached. `load` runs without the lock,
    /// so two callers may both load a missing entry; the values are equal.
    pub fn get_or_load<E>(&self, key: K, load: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let value = load()?;
        self.insert(key, value.clone());
        Ok(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let generations = self.lock();
        generations.young.len() + generations.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_two_generations_and_keeps_what_is_used() {
        let cache = Cache::new(3);
        for i in 0..3 {
            cache.insert(i, i * 10);
        }
        // A fourth entry turns the generation: 0..3 are old, 3 young.
        cache.insert(3, 30);
        assert_eq!(cache.get(&0), Some(0)); // moved back to young
        cache.insert(4, 40);
        assert_eq!(cache.len(), 5);
        // Young is full again (3, 0, 4): the next insert drops 1 and 2.
        cache.insert(5, 50);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&0), Some(0));
        assert_eq!(cache.get(&5), Some(50));
        assert!(cache.len() <= 6);
    }

    #[test]
    fn removed_entries_are_gone_from_both_generations() {
        let cache = Cache::new(2);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("c", 3);
        cache.remove("a");
        cache.remove("c");
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("c"), None);
        assert_eq!(cache.get("b"), Some(2));
    }

    #[test]
    fn a_failed_load_caches_nothing() {
        let cache: Cache<u8, u8> = Cache::new(2);
        assert_eq!(cache.get_or_load(1, || Err::<u8, ()>(())), Err(()));
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get_or_load(1, || Ok::<u8, ()>(7)), Ok(7));
        assert_eq!(cache.get(&1), Some(7));
    }
}
