//! Sliding sync connections: `user_id 0xFF device_id 0xFF conn_id 0xFF seq` (seq a
//! big-endian u64, the number a `pos` carries) → the connection's state as of that
//! position, as JSON the sliding sync service defines. A connection keeps the state of
//! the position a client last used and of the one answered to it, so a retried request
//! (its answer lost) is answered again.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Batch, Cf, Store, StoreResult, keys};

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

fn position(user_id: &str, device_id: &str, conn_id: &str, seq: u64) -> Vec<u8> {
    let mut key = connection(user_id, device_id, conn_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Just past every key starting with `prefix` (whose parts never hold 0xFF but the
/// trailing sequence number, at most 8 bytes after one more separator).
fn end_of(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.extend_from_slice(&[keys::SEP; 10]);
    end
}

impl Store {
    /// The connection's state at position `seq`, if kept.
    pub fn sliding_sync_state<T: DeserializeOwned>(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        seq: u64,
    ) -> StoreResult<Option<T>> {
        self.get_json(Cf::SlidingSync, &position(user_id, device_id, conn_id, seq))
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
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            if let Ok(seq) = <[u8; 8]>::try_from(&key[prefix.len()..]) {
                out.push(u64::from_be_bytes(seq));
            }
        }
        Ok(out)
    }
}

impl Batch<'_> {
    pub fn put_sliding_sync_state<T: Serialize>(
        &mut self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        seq: u64,
        state: &T,
    ) -> StoreResult<()> {
        self.put_json(
            Cf::SlidingSync,
            &position(user_id, device_id, conn_id, seq),
            state,
        )
    }

    pub fn delete_sliding_sync_state(
        &mut self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        seq: u64,
    ) {
        self.delete(Cf::SlidingSync, &position(user_id, device_id, conn_id, seq));
    }

    /// Forgets every sliding sync connection of a device (when the device goes).
    pub fn delete_sliding_sync_connections(&mut self, user_id: &str, device_id: &str) {
        let prefix = connections_of(user_id, device_id);
        let end = end_of(&prefix);
        self.inner
            .delete_range_cf(self.store.cf(Cf::SlidingSync), prefix, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_range_covers_its_connections_only() {
        let prefix = connections_of("@a:x", "DEV");
        let end = end_of(&prefix);
        for key in [
            position("@a:x", "DEV", "", u64::MAX),
            position("@a:x", "DEV", "main", 0),
            position("@a:x", "DEV", "room-list", u64::MAX),
        ] {
            assert!(key >= prefix && key < end, "{key:?}");
        }
        for key in [
            position("@a:x", "DEV2", "main", 1),
            position("@a:x", "DE", "main", 1),
            position("@a:xy", "DEV", "main", 1),
        ] {
            assert!(!(key >= prefix && key < end), "{key:?}");
        }
    }
}
