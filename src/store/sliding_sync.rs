//! Sliding sync connections: `user_id 0xFF device_id 0xFF conn_id 0xFF slot` (slot one
//! byte, the parity of the number a `pos` carries) → that number (a big-endian u64) and
//! the connection's state as of that position, as JSON the sliding sync service defines.
//! A connection keeps the state of the position a client last used and of the one
//! answered to it, so a retried request (its answer lost) is answered again; the next
//! answer takes the slot of the one before.
//!
//! States written before the slots (`... conn_id 0xFF seq`, seq a big-endian u64, the
//! JSON alone) are still read, so a `pos` survives the upgrade; they go when the
//! connection starts afresh or the device goes.
//!
//! An answer's state is kept decoded in memory ([`SlidingStates`], both slots of each
//! connection) and written to the store later, together with every other connection's
//! changed states: by [`Store::flush_sliding_sync_states`], which the server calls about
//! once a second, at graceful shutdown ([`Store::flush`]) and before a checkpoint. The
//! request continuing from a kept state takes it from memory; a restart, or a
//! connection not kept, reads the store. So a graceful restart keeps every `pos`, and
//! `kill -9` (or a power loss) can lose the states of the last second: their `pos` is
//! then unknown and the client starts the connection again (`M_UNKNOWN_POS`).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Batch, Cf, Store, StoreResult, decode, keys};

/// Connections whose states are kept decoded; past this, one whose states are all
/// written is dropped for each new one (it is read from the store again when used).
const MAX_KEPT: usize = 20_000;

type Decoded = Arc<dyn Any + Send + Sync>;

/// Writes a kept state as JSON (the state's type is known where it is kept).
type Encode = fn(&(dyn Any + Send + Sync), &mut Vec<u8>) -> StoreResult<()>;

fn encode_as<T: Serialize + 'static>(
    state: &(dyn Any + Send + Sync),
    out: &mut Vec<u8>,
) -> StoreResult<()> {
    let state = state
        .downcast_ref::<T>()
        .expect("a kept state is of the type it was kept as");
    serde_json::to_writer(out, state)?;
    Ok(())
}

/// One position's state, kept.
struct Kept {
    seq: u64,
    state: Decoded,
    encode: Encode,
    /// Not yet written to the store.
    dirty: bool,
}

/// A connection's kept states, by slot (the position number's parity). An empty slot
/// is the store's.
#[derive(Default)]
struct Slots([Option<Kept>; 2]);

impl Slots {
    fn dirty(&self) -> bool {
        self.0.iter().flatten().any(|kept| kept.dirty)
    }
}

/// What memory says of a position.
enum Memory {
    Kept(Decoded),
    /// Its slot holds another position: this one is gone (overwritten).
    Gone,
    /// Nothing kept: the store says.
    Store,
}

/// The connections' states kept in memory: connection key → slots.
#[derive(Default)]
pub(super) struct SlidingStates {
    latest: Mutex<HashMap<Vec<u8>, Slots>>,
    /// Held while kept states are written and while a connection's stored states are
    /// deleted, so that no write of a state collected before a deletion lands after it.
    writing: Mutex<()>,
}

/// What a batch does to connection states, applied to [`SlidingStates`] once the batch
/// is written.
#[derive(Default)]
pub(super) struct SlidingWrites {
    /// Devices whose connections all go (key prefixes).
    dropped: Vec<Vec<u8>>,
}

impl SlidingWrites {
    pub(super) fn is_empty(&self) -> bool {
        self.dropped.is_empty()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl SlidingStates {
    fn get(&self, connection: &[u8], seq: u64) -> Memory {
        let latest = lock(&self.latest);
        let Some(slots) = latest.get(connection) else {
            return Memory::Store;
        };
        match &slots.0[(seq & 1) as usize] {
            Some(kept) if kept.seq == seq => Memory::Kept(kept.state.clone()),
            Some(_) => Memory::Gone,
            None => Memory::Store,
        }
    }

    fn keep(&self, connection: Vec<u8>, seq: u64, state: Decoded, encode: Encode) {
        let kept = Kept {
            seq,
            state,
            encode,
            dirty: true,
        };
        let mut latest = lock(&self.latest);
        let mut evicted = None;
        if latest.len() >= MAX_KEPT && !latest.contains_key(&connection) {
            let written = latest
                .iter()
                .find(|(_, slots)| !slots.dirty())
                .map(|(key, _)| key.clone());
            evicted = written.and_then(|written| latest.remove(&written));
        }
        let replaced = latest.entry(connection).or_default().0[(seq & 1) as usize].replace(kept);
        // What this replaces (a connection's whole state) is dropped after the lock.
        drop(latest);
        drop((evicted, replaced));
    }
}

fn connections_of(user_id: &str, device_id: &str) -> Vec<u8> {
    let mut key = keys::device(user_id, device_id);
    key.push(keys::SEP);
    key
}

fn connection(user_id: &str, device_id: &str, conn_id: &str) -> Vec<u8> {
    let mut key = connections_of(user_id, device_id);
    key.extend_from_slice(conn_id.as_bytes());
    key.push(keys::SEP);
    key
}

/// The key of the slot a position's state is written to.
fn slot(user_id: &str, device_id: &str, conn_id: &str, seq: u64) -> Vec<u8> {
    let mut key = connection(user_id, device_id, conn_id);
    key.push((seq & 1) as u8);
    key
}

/// The key a position's state had before the slots.
fn position(user_id: &str, device_id: &str, conn_id: &str, seq: u64) -> Vec<u8> {
    let mut key = connection(user_id, device_id, conn_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// A slot's position number and state JSON.
fn split_slot(value: &[u8]) -> Option<(u64, &[u8])> {
    let (seq, json) = value.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*seq), json))
}

/// Just past every key starting with `prefix` (a device's connections, which begins with
/// a user ID, so there is such a key).
fn end_of(prefix: &[u8]) -> Vec<u8> {
    super::prefix_end(prefix).unwrap_or_default()
}

impl Store {
    /// The connection's state at position `seq`, if kept: from memory when it is kept
    /// there, otherwise read from the store.
    pub fn sliding_sync_state<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        seq: u64,
    ) -> StoreResult<Option<Arc<T>>> {
        match self
            .inner
            .sliding_states
            .get(&connection(user_id, device_id, conn_id), seq)
        {
            Memory::Kept(kept) => return Ok(kept.downcast::<T>().ok()),
            Memory::Gone => return Ok(None),
            Memory::Store => {}
        }
        let value = self.get_raw(Cf::SlidingSync, &slot(user_id, device_id, conn_id, seq))?;
        if let Some((stored, json)) = value.as_deref().and_then(split_slot)
            && stored == seq
        {
            return decode(Cf::SlidingSync, json).map(|state| Some(Arc::new(state)));
        }
        Ok(self
            .get_json(Cf::SlidingSync, &position(user_id, device_id, conn_id, seq))?
            .map(Arc::new))
    }

    /// The positions stored for a connection, oldest first (not those only kept in
    /// memory).
    pub fn sliding_sync_positions(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
    ) -> StoreResult<Vec<u64>> {
        let prefix = connection(user_id, device_id, conn_id);
        let mut out = Vec::new();
        for item in self.raw_iter_within(Cf::SlidingSync, &prefix, &prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let rest = &key[prefix.len()..];
            if let Ok(seq) = <[u8; 8]>::try_from(rest) {
                out.push(u64::from_be_bytes(seq));
            } else if rest.len() == 1
                && let Some((seq, _)) = split_slot(&value)
            {
                out.push(seq);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Starts a connection afresh: its earlier states go (stored and kept), and its
    /// first position is `now` or, when an earlier one was as high, just past it (so a
    /// `pos` of an earlier incarnation is never one of this).
    pub fn restart_sliding_sync_connection(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        now: u64,
    ) -> StoreResult<u64> {
        let states = &self.inner.sliding_states;
        let _writing = lock(&states.writing);
        let key = connection(user_id, device_id, conn_id);
        let kept = lock(&states.latest).remove(&key);
        let kept_last = kept
            .iter()
            .flat_map(|slots| slots.0.iter().flatten().map(|kept| kept.seq))
            .max();
        let stored = self.sliding_sync_positions(user_id, device_id, conn_id)?;
        if !stored.is_empty() {
            let mut batch = self.batch();
            for seq in &stored {
                batch.delete(
                    Cf::SlidingSync,
                    &position(user_id, device_id, conn_id, *seq),
                );
            }
            for parity in [0, 1] {
                batch.delete(Cf::SlidingSync, &slot(user_id, device_id, conn_id, parity));
            }
            self.write_unsynced(batch)?;
        }
        let last = stored.last().copied().max(kept_last);
        Ok(now.max(last.map_or(0, |last| last.saturating_add(1))))
    }

    /// Keeps a connection's state at `seq` in memory, in place of the one at `seq - 2`;
    /// it is written to the store by the next [`Self::flush_sliding_sync_states`].
    pub fn keep_sliding_sync_state<T: Serialize + Send + Sync + 'static>(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        seq: u64,
        state: Arc<T>,
    ) {
        self.inner.sliding_states.keep(
            connection(user_id, device_id, conn_id),
            seq,
            state,
            encode_as::<T>,
        );
    }

    /// Writes the kept states not yet written, all in one batch (not synced: it
    /// survives the process dying, not a power loss); returns how many.
    pub fn flush_sliding_sync_states(&self) -> StoreResult<usize> {
        let states = &self.inner.sliding_states;
        let _writing = lock(&states.writing);
        let mut dirty = Vec::new();
        for (connection, slots) in lock(&states.latest).iter() {
            for kept in slots.0.iter().flatten().filter(|kept| kept.dirty) {
                dirty.push((
                    connection.clone(),
                    kept.seq,
                    kept.state.clone(),
                    kept.encode,
                ));
            }
        }
        if dirty.is_empty() {
            return Ok(0);
        }
        let mut batch = self.batch();
        let mut value = Vec::with_capacity(4096);
        for (connection, seq, state, encode) in &dirty {
            value.clear();
            value.extend_from_slice(&seq.to_be_bytes());
            encode(&**state, &mut value)?;
            let mut key = connection.clone();
            key.push((seq & 1) as u8);
            batch.put_raw(Cf::SlidingSync, &key, &value);
        }
        self.write_unsynced(batch)?;
        // Written as collected: a slot answered again meanwhile stays to be written.
        let mut latest = lock(&states.latest);
        for (connection, seq, state, _) in &dirty {
            if let Some(kept) = latest
                .get_mut(connection)
                .and_then(|slots| slots.0[(seq & 1) as usize].as_mut())
                && kept.seq == *seq
                && Arc::ptr_eq(&kept.state, state)
            {
                kept.dirty = false;
            }
        }
        Ok(dirty.len())
    }

    /// Forgets the kept states of the devices a written batch deleted the connections
    /// of, and deletes them from the store again: a flush that collected them before
    /// may have written them after the batch.
    pub(super) fn sliding_connections_dropped(&self, writes: SlidingWrites) {
        let states = &self.inner.sliding_states;
        let _writing = lock(&states.writing);
        lock(&states.latest)
            .retain(|connection, _| !writes.dropped.iter().any(|p| connection.starts_with(p)));
        let mut batch = self.batch();
        for prefix in &writes.dropped {
            batch
                .inner
                .delete_range_cf(self.cf(Cf::SlidingSync), prefix, &end_of(prefix));
        }
        if let Err(e) = self.write_unsynced(batch) {
            tracing::warn!(error = %e, "could not delete a device's sliding sync states again");
        }
    }
}

impl Batch<'_> {
    /// Forgets every sliding sync connection of a device (when the device goes).
    pub fn delete_sliding_sync_connections(&mut self, user_id: &str, device_id: &str) {
        let prefix = connections_of(user_id, device_id);
        let end = end_of(&prefix);
        self.inner
            .delete_range_cf(self.store.cf(Cf::SlidingSync), &prefix, &end);
        self.notes.sliding.dropped.push(prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type State = Vec<String>;

    fn read(store: &Store, seq: u64) -> Option<State> {
        store
            .sliding_sync_state::<State>("@a:x", "DEV", "main", seq)
            .unwrap()
            .map(|state| (*state).clone())
    }

    fn keep(store: &Store, seq: u64) {
        let state = Arc::new(vec![format!("state {seq}")]);
        store.keep_sliding_sync_state("@a:x", "DEV", "main", seq, state);
    }

    fn state(seq: u64) -> Option<State> {
        Some(vec![format!("state {seq}")])
    }

    #[test]
    fn states_are_kept_then_written_together_and_old_keys_are_read() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), false).unwrap();
            // A state stored before the slots, under its position number.
            let mut batch = store.batch();
            let key = position("@a:x", "DEV", "main", 7);
            batch
                .put_json(Cf::SlidingSync, &key, &vec!["state 7".to_owned()])
                .unwrap();
            store.write_unsynced(batch).unwrap();
            keep(&store, 8);
            keep(&store, 9);
            assert_eq!(store.flush_sliding_sync_states().unwrap(), 2);
            assert_eq!(store.flush_sliding_sync_states().unwrap(), 0, "all written");
            keep(&store, 10);
            // From memory: 10 took 8's slot, so 8 is gone though the store has it.
            assert_eq!(read(&store, 8), None);
            assert_eq!(read(&store, 9), state(9));
            assert_eq!(read(&store, 10), state(10));
            store.flush().unwrap();
            // Kept after the flush, never written: as lost as after `kill -9`.
            keep(&store, 11);
            assert_eq!(read(&store, 11), state(11));
        }
        // Reopened: nothing from memory.
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(read(&store, 7), Some(vec!["state 7".to_owned()]));
        assert_eq!(read(&store, 8), None, "overwritten by 10");
        assert_eq!(read(&store, 9), state(9));
        assert_eq!(read(&store, 10), state(10));
        assert_eq!(read(&store, 11), None, "never written");
        assert_eq!(
            store.sliding_sync_positions("@a:x", "DEV", "main").unwrap(),
            vec![7, 9, 10]
        );
        // Starting afresh: every earlier state goes, and it numbers past them.
        keep(&store, 11);
        let first = store
            .restart_sliding_sync_connection("@a:x", "DEV", "main", 5)
            .unwrap();
        assert_eq!(first, 12, "past the kept 11");
        for seq in [7, 9, 10, 11] {
            assert_eq!(read(&store, seq), None, "{seq}");
        }
        assert!(
            store
                .sliding_sync_positions("@a:x", "DEV", "main")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_state_answered_again_before_its_write_is_written_as_answered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), false).unwrap();
            keep(&store, 4);
            keep(&store, 5);
            store.flush_sliding_sync_states().unwrap();
            // A retried request (`pos` 4) answers 5 again, differently.
            let again = Arc::new(vec!["state 5 again".to_owned()]);
            store.keep_sliding_sync_state("@a:x", "DEV", "main", 5, again);
            assert_eq!(store.flush_sliding_sync_states().unwrap(), 1);
        }
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(read(&store, 4), state(4));
        assert_eq!(read(&store, 5), Some(vec!["state 5 again".to_owned()]));
    }

    #[test]
    fn a_device_going_takes_its_kept_and_written_states() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        keep(&store, 1);
        store.flush_sliding_sync_states().unwrap();
        keep(&store, 2);
        let other = Arc::new(vec!["other".to_owned()]);
        store.keep_sliding_sync_state("@a:x", "DEV2", "main", 1, other);
        let mut batch = store.batch();
        batch.delete_sliding_sync_connections("@a:x", "DEV");
        store.write_unsynced(batch).unwrap();
        assert_eq!(read(&store, 1), None);
        assert_eq!(read(&store, 2), None);
        assert_eq!(store.flush_sliding_sync_states().unwrap(), 1, "DEV2's only");
        assert!(
            store
                .sliding_sync_positions("@a:x", "DEV", "main")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .sliding_sync_positions("@a:x", "DEV2", "main")
                .unwrap(),
            vec![1]
        );
    }

    #[test]
    fn a_device_range_covers_its_connections_only() {
        let prefix = connections_of("@a:x", "DEV");
        let end = end_of(&prefix);
        for key in [
            position("@a:x", "DEV", "", u64::MAX),
            position("@a:x", "DEV", "main", 0),
            position("@a:x", "DEV", "room-list", u64::MAX),
            slot("@a:x", "DEV", "", 1),
            slot("@a:x", "DEV", "main", 0),
        ] {
            assert!(key >= prefix && key < end, "{key:?}");
        }
        for key in [
            position("@a:x", "DEV2", "main", 1),
            position("@a:x", "DE", "main", 1),
            position("@a:xy", "DEV", "main", 1),
            slot("@a:x", "DEV2", "main", 1),
        ] {
            assert!(!(key >= prefix && key < end), "{key:?}");
        }
    }
}
