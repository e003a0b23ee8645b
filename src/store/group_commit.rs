//! Synced writes committed together: one thread writes every batch waiting for it as one
//! RocksDB write, so one write-ahead log append and one fsync cover them all.
//!
//! A room event is seen by nobody (no read, no sync, no federation) before it is durable,
//! because RocksDB inserts a synced write into its memtables only after the fsync: the
//! merged batch keeps that, where [`Store::write_visible`] (which applies first and syncs
//! after) would not. RocksDB's own group commit only joins writers that arrive while an
//! fsync is running, and at a few hundred evenly spaced sends a second that is rare. So
//! the committer waits, a bounded moment, for the sends already staging their batch (a
//! room's lock held, building and staging the event, no await before the write): a
//! sibling that is about to submit shares the fsync instead of queueing for the next one,
//! as PostgreSQL's `commit_delay` waits only while `commit_siblings` transactions are
//! active. With no sibling staging, a batch is written at once.
//!
//! That alone groups little (an fsync here takes tens of microseconds), so when busy a
//! batch arriving less than [`MIN_INTERVAL`] after the last write began waits for the
//! rest of that interval with whatever else arrives: at most 250 fsyncs a second.
//! Those waits stop once several in a row gathered no other batch (one client sending
//! in sequence gains nothing from them), and resume when a probe finds company again.
//!
//! The sender awaits its batch's write instead of blocking a runtime worker in it
//! (`block_in_place` hands the worker's queue to another thread for every write).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocksdb::{DB, WriteBatch, WriteOptions};
use tokio::sync::oneshot;

use super::durable::Durability;
use super::{Batch, Store, StoreError, StoreResult};

/// The longest the committer waits for staging siblings before it writes what it has.
const SIBLING_WAIT: Duration = Duration::from_micros(1500);

/// The shortest time between the starts of two writes: a batch that arrives sooner after
/// the last write waits for the rest of it, with whatever else arrives meanwhile. At most
/// 250 fsyncs a second however many sends; below that rate no batch waits.
const MIN_INTERVAL: Duration = Duration::from_millis(4);

/// Interval waits in a row that gathered no other batch after which the committer stops
/// waiting: the writes come one after another (one client sending in sequence), and
/// waiting only delays each of them.
const LONELY_WAITS: u32 = 8;

/// While not waiting for that reason, one write in this many waits again, to notice
/// that writes from several senders arrive together again.
const PROBE_EVERY: u32 = 32;

/// Whether waiting for the interval's end has been gathering batches lately.
#[derive(Default)]
struct Pacing {
    /// Interval waits in a row that ended with one batch.
    lonely: u32,
    /// Writes since the last interval wait, while `lonely` says not to wait.
    since_probe: u32,
}

impl Pacing {
    fn should_wait(&mut self) -> bool {
        if self.lonely < LONELY_WAITS {
            return true;
        }
        self.since_probe += 1;
        if self.since_probe >= PROBE_EVERY {
            self.since_probe = 0;
            return true;
        }
        false
    }

    fn waited(&mut self, batches: usize) {
        if batches > 1 {
            self.lonely = 0;
        } else {
            self.lonely = self.lonely.saturating_add(1);
        }
    }
}

/// The bytes before a write batch's records: an 8-byte sequence number and a 4-byte count,
/// little-endian (RocksDB's `WriteBatchInternal::kHeader`).
const BATCH_HEADER: usize = 12;

type Done = oneshot::Sender<Result<(), rocksdb::Error>>;

#[derive(Default)]
struct Queue {
    batches: Vec<(WriteBatch, Done)>,
    /// Waiters for the fsync that covers applied write number `.0` ([`Store::durable`]).
    syncs: Vec<(u64, Done)>,
    /// Writers between [`Store::begin_grouped`] and their submission.
    staging: usize,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The committing thread of one store; stopped and joined when the store is dropped.
pub(super) struct Committer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(super) fn start(db: Arc<DB>, sync: bool, durability: Arc<Durability>) -> Self {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("hearth-commit".into())
                .spawn(move || run(&db, sync, &shared, &durability))
                .expect("spawn the committer thread")
        };
        Self {
            shared,
            thread: Some(thread),
        }
    }

    /// Waits, without blocking the caller's thread, until applied write number `ticket`
    /// is durable: this thread makes the fsync, between its batches.
    pub(super) async fn sync_through(&self, ticket: u64) -> StoreResult<()> {
        let (done, synced) = oneshot::channel();
        self.shared.lock().syncs.push((ticket, done));
        self.shared.changed.notify_all();
        match synced.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::CommitterStopped),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &DB, sync: bool, shared: &Shared, durability: &Durability) {
    let mut options = WriteOptions::default();
    options.set_sync(sync);
    // Unsynced writes cost no fsync: nothing is worth waiting for.
    let (min_interval, sibling_wait) = if sync {
        (MIN_INTERVAL, SIBLING_WAIT)
    } else {
        (Duration::ZERO, Duration::ZERO)
    };
    let mut last_start = Instant::now();
    let mut pacing = Pacing::default();
    loop {
        let (batches, syncs) = {
            let mut queue = shared.lock();
            while queue.batches.is_empty() && queue.syncs.is_empty() && !queue.closed {
                queue = shared
                    .changed
                    .wait(queue)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if queue.batches.is_empty() && queue.syncs.is_empty() {
                return;
            }
            // Busy (the last write began less than MIN_INTERVAL ago): wait for the rest
            // of the interval, gathering what arrives, unless such waits have lately
            // gathered nothing; and a moment for siblings staging.
            // Waiters for an fsync are not kept waiting for more batches.
            let busy = Instant::now() < last_start + min_interval && queue.syncs.is_empty();
            let interval_wait = busy && !queue.batches.is_empty() && pacing.should_wait();
            let interval_end = if interval_wait {
                last_start + min_interval
            } else {
                Instant::now()
            };
            let sibling_end = Instant::now() + sibling_wait;
            loop {
                let until = if queue.staging > 0 {
                    interval_end.max(sibling_end)
                } else {
                    interval_end
                };
                let now = Instant::now();
                if now >= until || queue.closed || !queue.syncs.is_empty() {
                    break;
                }
                queue = shared
                    .changed
                    .wait_timeout(queue, until - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            last_start = Instant::now();
            if interval_wait {
                pacing.waited(queue.batches.len());
            }
            (
                std::mem::take(&mut queue.batches),
                std::mem::take(&mut queue.syncs),
            )
        };
        if !batches.is_empty() {
            let (merged, waiters): (Vec<_>, Vec<_>) = batches.into_iter().unzip();
            // The synced write's fsync also covers every write applied before it: the
            // waiters for those (gathered with these batches, or arriving later) need
            // no second fsync.
            let covered = durability.applied();
            let started = Instant::now();
            let result = db.write_opt(merge(merged), &options);
            super::durable::note_slow_sync(started, "grouped write");
            if sync && result.is_ok() {
                durability.note_synced(covered);
            }
            for done in waiters {
                // A sender that went away (its request dropped) needs no answer.
                let _ = done.send(result.clone());
            }
        }
        if let Some(highest) = syncs.iter().map(|(ticket, _)| *ticket).max() {
            let result = durability.sync_through(db, highest);
            for (_, done) in syncs {
                let _ = done.send(result.clone());
            }
        }
    }
}

/// One write batch holding the records of all of `batches`, in order.
fn merge(mut batches: Vec<WriteBatch>) -> WriteBatch {
    if batches.len() == 1 {
        return batches.pop().expect("one batch");
    }
    let size = batches.iter().map(WriteBatch::size_in_bytes).sum::<usize>();
    let mut data = Vec::with_capacity(size);
    data.extend_from_slice(&[0; BATCH_HEADER]);
    let mut count = 0u32;
    for batch in &batches {
        let rep = batch.data();
        let Some(records) = rep.get(BATCH_HEADER..) else {
            continue;
        };
        let header: [u8; 4] = rep[8..BATCH_HEADER].try_into().expect("4 bytes");
        count += u32::from_le_bytes(header);
        data.extend_from_slice(records);
    }
    data[8..BATCH_HEADER].copy_from_slice(&count.to_le_bytes());
    WriteBatch::from_data(&data)
}

/// A writer staging a batch for [`GroupedWrite::commit`]: while it lives, the committer
/// may wait a moment for its batch before writing the others.
#[must_use]
pub struct GroupedWrite<'a> {
    store: &'a Store,
    submitted: bool,
}

impl Store {
    /// Announces a batch about to be committed with others; see [`GroupedWrite`].
    pub fn begin_grouped(&self) -> GroupedWrite<'_> {
        self.inner.committer.shared.lock().staging += 1;
        GroupedWrite {
            store: self,
            submitted: false,
        }
    }
}

impl GroupedWrite<'_> {
    /// Applies the batch atomically, synced as [`Store::write`] is, in one write with
    /// whichever other batches are waiting; returns once it is durable.
    pub async fn commit(mut self, batch: Batch<'_>) -> StoreResult<()> {
        let (inner, notes) = batch.split();
        let (done, written) = oneshot::channel();
        let shared = &self.store.inner.committer.shared;
        {
            let mut queue = shared.lock();
            queue.staging -= 1;
            self.submitted = true;
            queue.batches.push((inner, done));
        }
        shared.changed.notify_all();
        match written.await {
            Ok(result) => result?,
            Err(_) => return Err(StoreError::CommitterStopped),
        }
        self.store.note_written(notes);
        Ok(())
    }
}

impl Drop for GroupedWrite<'_> {
    fn drop(&mut self) {
        if !self.submitted {
            let shared = &self.store.inner.committer.shared;
            shared.lock().staging -= 1;
            shared.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stop_when_they_gather_nothing_and_resume_when_they_do() {
        let mut pacing = Pacing::default();
        // One sender in sequence: each wait ends with its batch alone.
        for _ in 0..LONELY_WAITS {
            assert!(pacing.should_wait());
            pacing.waited(1);
        }
        let waits = (0..PROBE_EVERY * 2)
            .filter(|_| pacing.should_wait())
            .count();
        assert_eq!(waits, 2, "only the probes wait");
        // A probe that gathers company turns waiting back on.
        pacing.waited(3);
        assert!((0..PROBE_EVERY).all(|_| pacing.should_wait()));
    }

    #[test]
    fn merged_batches_apply_every_record_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let mut first = store.batch();
        first.set_to_device_position(7);
        first.put_raw(super::super::Cf::Filters, b"a", b"1");
        first.put_raw(super::super::Cf::Filters, b"b", b"1");
        let mut second = store.batch();
        second.delete(super::super::Cf::Filters, b"a");
        second.put_raw(super::super::Cf::Filters, b"c", b"2");
        let merged = merge(vec![first.split().0, second.split().0]);
        assert_eq!(merged.len(), 5);
        store.inner.db.write(merged).unwrap();
        let get = |k: &[u8]| store.get_raw(super::super::Cf::Filters, k).unwrap();
        assert_eq!(get(b"a"), None);
        assert_eq!(get(b"b").as_deref(), Some(&b"1"[..]));
        assert_eq!(get(b"c").as_deref(), Some(&b"2"[..]));
    }

    /// A write applied without waiting for the disk, then a grouped (synced) write: the
    /// second's fsync is recorded as covering the first, whose waiter then needs none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_grouped_write_makes_the_writes_applied_before_it_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let mut batch = store.batch();
        batch.set_to_device_position(1);
        let applied = store.write_visible(batch).unwrap();
        let ticket = store.inner.durability.applied();
        assert!(!store.inner.durability.covers(ticket));
        let write = store.begin_grouped();
        let mut batch = store.batch();
        batch.put_raw(super::super::Cf::Filters, b"k", b"v");
        write.commit(batch).await.unwrap();
        assert!(store.inner.durability.covers(ticket));
        store.durable(applied).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_grouped_writes_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), true).unwrap();
        let mut tasks = Vec::new();
        for i in 0..32u32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let write = store.begin_grouped();
                let mut batch = store.batch();
                batch.put_raw(super::super::Cf::Filters, &i.to_be_bytes(), b"x");
                write.commit(batch).await.unwrap();
                // Answered only once written: the record is there.
                assert!(
                    store
                        .get_raw(super::super::Cf::Filters, &i.to_be_bytes())
                        .unwrap()
                        .is_some()
                );
            }));
        }
        // A writer that gives up without submitting does not hold the others back for good.
        drop(store.begin_grouped());
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.inner.committer.shared.lock().staging, 0);
    }
}
