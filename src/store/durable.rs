//! Writes made under a lock, made durable after it: a writer that must read and write
//! under a lock (a one-time key claimed once, a to-device position handed out in order)
//! applies its batch without waiting for the disk, lets the lock go, then waits for one
//! fsync of the write-ahead log that covers its write. Concurrent writers share that
//! fsync, as RocksDB's own group commit shares one among synced writes that are not
//! queued behind a lock: 200 claims arriving together cost a few fsyncs, not 200 in a row.
//!
//! An applied write survives the process dying (`kill -9`) at once; it survives power
//! loss once [`Store::make_durable`] returns, which is before the client is answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use rocksdb::DB;

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
            Ok(self
                .inner
                .durability
                .sync_through(&self.inner.db, applied.0)?)
        };
        if tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        {
            tokio::task::block_in_place(wait)
        } else {
            wait()
        }
    }

    /// [`Self::make_durable`] for async code: the store's commit thread makes the fsync
    /// and this awaits it, so no runtime thread blocks on the disk (with
    /// `block_in_place`, each wait handed the runtime's queue to another thread, and
    /// under a burst of claims and to-device messages requests sat unread meanwhile).
    pub async fn durable(&self, applied: Applied) -> StoreResult<()> {
        if !self.inner.sync_writes || self.inner.durability.covers(applied.0) {
            return Ok(());
        }
        self.inner.committer.sync_through(applied.0).await
    }
}

impl Durability {
    /// Whether the fsyncs so far are known to cover applied write number `ticket`,
    /// without waiting: while an fsync holds the lock, the answer is no.
    pub(super) fn covers(&self, ticket: u64) -> bool {
        match self.synced.try_lock() {
            Ok(synced) => *synced >= ticket,
            Err(TryLockError::Poisoned(synced)) => *synced.into_inner() >= ticket,
            Err(TryLockError::WouldBlock) => false,
        }
    }

    /// The count of writes applied so far: a synced write begun after reading it covers
    /// them all, since its fsync syncs every write-ahead log file up to its own record.
    pub(super) fn applied(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Records that a synced write begun after [`Self::applied`] returned `through` has
    /// made the writes it counted durable, so that their waiters need no fsync of their own.
    pub(super) fn note_synced(&self, through: u64) {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        *synced = (*synced).max(through);
    }

    /// Returns once write number `ticket` is durable: at once if an fsync already covered
    /// it, else after one more, which covers every write applied so far.
    pub(super) fn sync_through(&self, db: &DB, ticket: u64) -> Result<(), rocksdb::Error> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *synced >= ticket {
            return Ok(());
        }
        // Every write counted so far is in the log: this fsync covers them all.
        let target = self.applied.load(Ordering::SeqCst);
        let started = Instant::now();
        db.flush_wal(true)?;
        note_slow_sync(started, "write-ahead log sync");
        *synced = (*synced).max(target);
        Ok(())
    }
}

/// A synced write or fsync that took this long is logged: the disk, not the server,
/// held its waiters.
const SLOW_SYNC: Duration = Duration::from_millis(100);

/// Logs a warning when the synced write or fsync begun at `started` took [`SLOW_SYNC`]
/// or more.
pub(super) fn note_slow_sync(started: Instant, what: &str) {
    let took = started.elapsed();
    if took >= SLOW_SYNC {
        tracing::warn!(
            took_ms = took.as_millis() as u64,
            "a {what} took {} ms: the disk held its waiters",
            took.as_millis()
        );
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

    /// Awaited on a one-worker runtime, the waits do not block it: every writer's write is
    /// covered by an fsync the commit thread made, between room batches it also writes.
    #[test]
    fn awaited_durability_is_made_by_the_commit_thread_for_every_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut writers = Vec::new();
            for i in 0..16u64 {
                let store = store.clone();
                writers.push(tokio::spawn(async move {
                    if i % 4 == 0 {
                        // A grouped (synced) write in between, as a room send makes.
                        let grouped = store.begin_grouped();
                        let mut batch = store.batch();
                        batch.set_to_device_position(100 + i);
                        grouped.commit(batch).await.unwrap();
                    }
                    let mut batch = store.batch();
                    batch.set_to_device_position(i);
                    let applied = store.write_visible(batch).unwrap();
                    let ticket = applied.0;
                    store.durable(applied).await.unwrap();
                    assert!(*store.inner.durability.synced.lock().unwrap() >= ticket);
                }));
            }
            for writer in writers {
                writer.await.unwrap();
            }
        });
        assert_eq!(*store.inner.durability.synced.lock().unwrap(), 16);
        // Without synced writes it returns at once and syncs nothing.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let applied = store.write_visible(store.batch()).unwrap();
        runtime.block_on(store.durable(applied)).unwrap();
        assert_eq!(*store.inner.durability.synced.lock().unwrap(), 0);
    }
}
