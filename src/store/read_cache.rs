//! Records kept in memory after a read, for the few column families read on every
//! request (events, access tokens). A batch that writes or deletes such a record drops
//! the cached copy once the batch is written, and a read that raced a write is not
//! cached, so no reader sees an older version after the write returns.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreResult;
use crate::cache::Cache;

pub(super) struct ReadCache<K, V> {
    cache: Cache<K, V>,
    /// Counts written batches that touched the column family.
    writes: AtomicU64,
}

impl<K: Hash + Eq, V: Clone> ReadCache<K, V> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            cache: Cache::new(capacity),
            writes: AtomicU64::new(0),
        }
    }

    /// The cached record, or `load`'s (cached when found, unless a write to the
    /// column family happened while it was read: it may have been this record).
    pub(super) fn get_or_load<Q>(
        &self,
        key: &Q,
        load: impl FnOnce() -> StoreResult<Option<V>>,
    ) -> StoreResult<Option<V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(value) = self.cache.get(key) {
            return Ok(Some(value));
        }
        let seen = self.writes.load(Ordering::Acquire);
        let Some(value) = load()? else {
            return Ok(None);
        };
        self.cache.insert_if(key.to_owned(), value.clone(), || {
            self.writes.load(Ordering::Acquire) == seen
        });
        Ok(Some(value))
    }

    /// Puts a record a writer just wrote (see [`super::record_cache`]'s `set`).
    pub(super) fn set(&self, key: K, value: V) {
        self.cache.insert(key, value);
    }

    /// Forgets the records a batch just written changed.
    pub(super) fn written(&self, keys: &[K]) {
        if keys.is_empty() {
            return;
        }
        // First the mark, so a read in flight does not cache; then the removal, so one
        // cached just before goes.
        self.writes.fetch_add(1, Ordering::AcqRel);
        for key in keys {
            self.cache.remove(key);
        }
    }
}
