//! Writes made under a lock, made durable after it: a writer that must read and write
//! under a lock (a one-time key claimed once, a to-device position handed out in order)
//! applies its batch without waiting for the disk, lets the lock go, then waits for one
//! fsync of the write-ahead log that covers its write. Concurrent writers share that
//! fsync, as RocksDB's own group commit shares one among synced writes that are not
//! queued behind a lock: 200 claims arriving together cost a few fsyncs, not 200 in a row.
//!
//! An applied write survives the process dying (`kill -9`) at once; it survives power
//! loss once [`Store::make_durable`] returns, which is before the client is answered.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Batch, Store, StoreResult};

/// Which writes the write-ahead log's fsyncs have covered.
#[derive(Default)]
pub(super) struct Durability {
    /// Writes applied through [`Store::write_visible`] so far.
    applied: AtomicU64,
    /// The count of applied writes that the last completed fsync covers; held across
    /// an fsync, so that writers arriving meanwhile wait for it and then find themselves
    /// covered, or start the next one for everyone waiting.
    synced: Mutex<u64>,
}

/// A write applied but perhaps not yet durable: [`Store::make_durable`] takes it.
#[must_use = "the write is durable only after make_durable"]
pub struct Applied(u64);

impl Store {
    /// Applies the batch now (readers see it; it survives `kill -9`), without waiting
    /// for the disk. For writes under a lock: call [`Self::make_durable`] after the lock
    /// is released and before answering.
    pub fn write_visible(&self, batch: Batch<'_>) -> StoreResult<Applied> {
        self.write_unsynced(batch)?;
        let ticket = self.inner.durability.applied.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Applied(ticket))
    }

    /// Every write applied so far, for [`Self::make_durable`]: a reader that saw a write
    /// of another (a repeated transaction found) waits for it to be durable too.
    pub fn applied_so_far(&self) -> Applied {
        Applied(self.inner.durability.applied.load(Ordering::SeqCst))
    }

    /// Waits until the write is durable: one fsync of the write-ahead log for all the
    /// writers waiting together (nothing when writes are not synced at all).
    pub fn make_durable(&self, applied: Applied) -> StoreResult<()> {
        if !self.inner.sync_writes {
            return Ok(());
        }
        let wait = || -> StoreResult<()> {
            let mut synced = self
                .inner
                .durability
                .synced
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *synced >= applied.0 {
                return Ok(());
            }
            // Every write counted so far is in the log: this fsync covers them all.
            let target = self.inner.durability.applied.load(Ordering::SeqCst);
            self.inner.db.flush_wal(true)?;
            *synced = target;
            Ok(())
        };
        if tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        {
            tokio::task::block_in_place(wait)
        } else {
            wait()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Store;

    #[test]
    fn writers_waiting_together_are_all_covered_by_the_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        std::thread::scope(|scope| {
            for i in 0..8u64 {
                let store = &store;
                scope.spawn(move || {
                    let mut batch = store.batch();
                    batch.set_to_device_position(i);
                    let applied = store.write_visible(batch).unwrap();
                    store.make_durable(applied).unwrap();
                });
            }
        });
        // The writer of the 8th write waited for an fsync started after it was applied.
        let synced = *store.inner.durability.synced.lock().unwrap();
        assert_eq!(synced, 8);
        // Without synced writes there is nothing to wait for.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let applied = store.write_visible(store.batch()).unwrap();
        store.make_durable(applied).unwrap();
        assert_eq!(*store.inner.durability.synced.lock().unwrap(), 0);
    }
}
