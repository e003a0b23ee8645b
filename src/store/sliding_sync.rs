//! Sliding sync connections: `user_id 0xFF device_id 0xFF conn_id 0xFF slot` (slot one
//! byte, the parity of the number a `pos` carries) → that number (a big-endian u64) and
//! the connection's state as of that position, as JSON the sliding sync service defines.
//! A connection keeps the state of the position a client last used and of the one
//! answered to it, so a retried request (its answer lost) is answered again; the next
//! answer overwrites the slot of the one before, so an answer writes one key and deletes
//! none.
//!
//! States written before the slots (`... conn_id 0xFF seq`, seq a big-endian u64, the
//! JSON alone) are still read, so a `pos` survives the upgrade; they go when the
//! connection starts afresh or the device goes.
//!
//! The newest state written for each connection is also kept decoded in memory
//! ([`SlidingStates`]): the request continuing from it (the next long-poll) takes it from
//! there instead of reading and parsing it again. The store stays the record (a restart,
//! or a connection not kept, reads it back).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Batch, Cf, Store, StoreResult, decode, keys};

/// Connections whose latest state is kept decoded; past this, one is dropped for each
/// new one (it is read from the store again when used).
const MAX_KEPT: usize = 20_000;

type Decoded = Arc<dyn Any + Send + Sync>;

/// The latest state written per connection, decoded: connection key → (seq, state).
#[derive(Default)]
pub(super) struct SlidingStates {
    latest: Mutex<HashMap<Vec<u8>, (u64, Decoded)>>,
}

/// What a batch does to connection states, applied to [`SlidingStates`] once the batch
/// is written.
#[derive(Default)]
pub(super) struct SlidingWrites {
    puts: Vec<(Vec<u8>, u64, Decoded)>,
    deleted: Vec<(Vec<u8>, u64)>,
    /// Devices whose connections all go (key prefixes).
    dropped: Vec<Vec<u8>>,
}

impl SlidingStates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, (u64, Decoded)>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, connection: &[u8], seq: u64) -> Option<Decoded> {
        match self.lock().get(connection) {
            Some((kept, state)) if *kept == seq => Some(state.clone()),
            _ => None,
        }
    }

    /// Applies a written batch's changes, in the batch's order (deletions before puts).
    pub(super) fn written(&self, writes: SlidingWrites) {
        if writes.puts.is_empty() && writes.deleted.is_empty() && writes.dropped.is_empty() {
            return;
        }
        let mut latest = self.lock();
        for prefix in &writes.dropped {
            latest.retain(|connection, _| !connection.starts_with(prefix));
        }
        for (connection, seq) in writes.deleted {
            if latest
                .get(&connection)
                .is_some_and(|(kept, _)| *kept == seq)
            {
                latest.remove(&connection);
            }
        }
        for (connection, seq, state) in writes.puts {
            if latest.len() >= MAX_KEPT && !latest.contains_key(&connection) {
                let any = latest.keys().next().cloned();
                if let Some(any) = any {
                    latest.remove(&any);
                }
            }
            latest.insert(connection, (seq, state));
        }
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

/// Just past every key starting with `prefix` (whose parts never hold 0xFF but the
/// trailing sequence number, at most 8 bytes after one more separator).
fn end_of(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.extend_from_slice(&[keys::SEP; 10]);
    end
}

impl Store {
    /// The connection's state at position `seq`, if kept: from memory when it is the
    /// latest written, otherwise read from the store.
    pub fn sliding_sync_state<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        seq: u64,
    ) -> StoreResult<Option<Arc<T>>> {
        let kept = self
            .inner
            .sliding_states
            .get(&connection(user_id, device_id, conn_id), seq);
        if let Some(Ok(state)) = kept.map(|kept| kept.downcast::<T>()) {
            return Ok(Some(state));
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

    /// The positions kept for a connection, oldest first.
    pub fn sliding_sync_positions(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
    ) -> StoreResult<Vec<u64>> {
        let prefix = connection(user_id, device_id, conn_id);
        let mut out = Vec::new();
        for item in self.raw_iter_from(Cf::SlidingSync, &prefix) {
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
}

impl Batch<'_> {
    /// Stores a connection's state at `seq`, in place of the one at `seq - 2`; once
    /// written it is also kept in memory as the connection's latest.
    pub fn put_sliding_sync_state<T: Serialize + Send + Sync + 'static>(
        &mut self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        seq: u64,
        state: Arc<T>,
    ) -> StoreResult<()> {
        let mut value = Vec::with_capacity(1024);
        value.extend_from_slice(&seq.to_be_bytes());
        serde_json::to_writer(&mut value, &*state)?;
        let connection = connection(user_id, device_id, conn_id);
        let mut key = connection.clone();
        key.push((seq & 1) as u8);
        self.put_raw(Cf::SlidingSync, &key, &value);
        self.notes.sliding.puts.push((connection, seq, state));
        Ok(())
    }

    /// Deletes a connection's state at `seq` (its slot, or its key from before the
    /// slots; the slot may hold another position's, which goes too).
    pub fn delete_sliding_sync_state(
        &mut self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        seq: u64,
    ) {
        self.delete(Cf::SlidingSync, &position(user_id, device_id, conn_id, seq));
        self.delete(Cf::SlidingSync, &slot(user_id, device_id, conn_id, seq));
        self.notes
            .sliding
            .deleted
            .push((connection(user_id, device_id, conn_id), seq));
    }

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

    #[test]
    fn a_state_overwrites_the_one_two_before_and_old_keys_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let put = |store: &Store, seq: u64| {
            let mut batch = store.batch();
            let state = Arc::new(vec![format!("state {seq}")]);
            batch
                .put_sliding_sync_state("@a:x", "DEV", "main", seq, state)
                .unwrap();
            store.write_unsynced(batch).unwrap();
        };
        {
            let store = Store::open(dir.path(), false).unwrap();
            // A state stored before the slots, under its position number.
            let mut batch = store.batch();
            let key = position("@a:x", "DEV", "main", 7);
            batch
                .put_json(Cf::SlidingSync, &key, &vec!["state 7".to_owned()])
                .unwrap();
            store.write_unsynced(batch).unwrap();
            put(&store, 8);
            put(&store, 9);
            put(&store, 10);
            store.flush().unwrap();
        }
        // Reopened: nothing from memory.
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(read(&store, 7), Some(vec!["state 7".to_owned()]));
        assert_eq!(read(&store, 8), None, "overwritten by 10");
        assert_eq!(read(&store, 9), Some(vec!["state 9".to_owned()]));
        assert_eq!(read(&store, 10), Some(vec!["state 10".to_owned()]));
        assert_eq!(read(&store, 12), None);
        assert_eq!(
            store.sliding_sync_positions("@a:x", "DEV", "main").unwrap(),
            vec![7, 9, 10]
        );
        let mut batch = store.batch();
        for seq in [7, 9, 10] {
            batch.delete_sliding_sync_state("@a:x", "DEV", "main", seq);
        }
        store.write_unsynced(batch).unwrap();
        assert!(
            store
                .sliding_sync_positions("@a:x", "DEV", "main")
                .unwrap()
                .is_empty()
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
