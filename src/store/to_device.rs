//! To-device messages waiting for their device.
//!
//! - `to_device`: `user 0xFF device 0xFF position (u64 BE)` → [`ToDeviceRecord`].
//! - `to_device_txns`: `sender 0xFF device 0xFF txn_id` (a local client's send), or
//!   `origin 0xFF message_id` (another server's EDU) → empty: what was already accepted.
//! - `meta` `to_device_position`: the highest position handed out.

use ruma::OwnedUserId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Cf, Store, StoreResult, keys};

const POSITION_KEY: &[u8] = b"to_device_position";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToDeviceRecord {
    pub sender: OwnedUserId,
    #[serde(rename = "type")]
    pub event_type: String,
    pub content: Value,
}

fn device_prefix(user_id: &str, device_id: &str) -> Vec<u8> {
    let mut key = keys::device(user_id, device_id);
    key.push(keys::SEP);
    key
}

fn message_key(user_id: &str, device_id: &str, position: u64) -> Vec<u8> {
    let mut key = device_prefix(user_id, device_id);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

fn decode_record(value: &[u8]) -> StoreResult<ToDeviceRecord> {
    serde_json::from_slice(value).map_err(|e| super::StoreError::Corrupt {
        cf: Cf::ToDevice.name(),
        detail: e.to_string(),
    })
}

fn position_of(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(8)
        .and_then(|start| <[u8; 8]>::try_from(&key[start..]).ok())
        .map_or(0, u64::from_be_bytes)
}

impl Store {
    pub fn to_device_position(&self) -> StoreResult<u64> {
        Ok(self
            .get_raw(Cf::Meta, POSITION_KEY)?
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// The device's messages after `after` up to `upto`, at most `limit`, oldest first.
    /// The device's pending positions (from memory, see [`Self::to_device_positions`])
    /// name the keys to read: a device with nothing in the range reads nothing, though
    /// the stream moved for others.
    pub fn to_device_messages(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, ToDeviceRecord)>> {
        let wanted: Vec<u64> = self
            .to_device_positions(user_id, device_id)?
            .into_iter()
            .skip_while(|p| *p <= after)
            .take_while(|p| *p <= upto)
            .take(limit)
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = wanted
            .iter()
            .map(|p| message_key(user_id, device_id, *p))
            .collect();
        let values = self
            .inner
            .db
            .batched_multi_get_cf(self.cf(Cf::ToDevice), &keys, true);
        let mut out = Vec::with_capacity(wanted.len());
        for (position, value) in wanted.into_iter().zip(values) {
            let Some(value) = value? else {
                // Deleted since the list was read (acknowledged by another sync of the
                // device, or the device removed): read the keys themselves.
                return self.scan_to_device_messages(user_id, device_id, after, upto, limit);
            };
            out.push((position, decode_record(&value)?));
        }
        Ok(out)
    }

    /// [`Self::to_device_messages`] from the keys themselves.
    fn scan_to_device_messages(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, ToDeviceRecord)>> {
        let prefix = device_prefix(user_id, device_id);
        let start = message_key(user_id, device_id, after.saturating_add(1));
        let mut out = Vec::new();
        for item in self.raw_iter_within(Cf::ToDevice, &start, &prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let position = position_of(&key);
            if position > upto {
                break;
            }
            out.push((position, decode_record(&value)?));
        }
        Ok(out)
    }

    /// The positions of the device's pending messages, oldest first, from memory when
    /// recently read: every sync of the device asks.
    pub fn to_device_positions(&self, user_id: &str, device_id: &str) -> StoreResult<Vec<u64>> {
        let prefix = device_prefix(user_id, device_id);
        self.inner
            .records
            .to_device_positions
            .get_or_read(&prefix, || self.read_to_device_positions(&prefix))
    }

    /// Keeps what a writer knows the device's pending positions to be after its write
    /// (which dropped the entry), so that the next sync need not read them. Only for
    /// writers serialised with every other adding or acknowledging writer (the
    /// to-device lock), which computed `positions` from
    /// [`Self::to_device_positions`] under it.
    pub fn set_to_device_positions(&self, user_id: &str, device_id: &str, positions: Vec<u64>) {
        self.inner
            .records
            .to_device_positions
            .set(device_prefix(user_id, device_id), positions);
    }

    /// A position up to which the device's messages are all deleted or queued for
    /// deletion ([`AcknowledgedMessages`]), as far as this process knows (0 when it does
    /// not): reads of its pending positions start after it, so they do not walk the
    /// tombstones the deletions left, nor the messages still to be deleted.
    pub fn to_device_floor(&self, user_id: &str, device_id: &str) -> u64 {
        self.inner
            .records
            .to_device_floors
            .get(&device_prefix(user_id, device_id)[..])
            .unwrap_or(0)
    }

    /// Every message of the device up to `position` is deleted, or queued for deletion.
    /// Positions only grow, so no message up to it can come later. Two callers racing may
    /// leave the lower of their floors, which is still true.
    pub fn note_to_device_floor(&self, user_id: &str, device_id: &str, position: u64) {
        let prefix = device_prefix(user_id, device_id);
        let floors = &self.inner.records.to_device_floors;
        if floors.get(&prefix[..]).is_none_or(|floor| floor < position) {
            floors.insert(prefix, position);
        }
    }

    /// Writes the queued deletions of acknowledged messages on their own (unsynced, see
    /// [`AcknowledgedMessages`]), emptying the queue; nothing when it is empty.
    pub fn write_acknowledged(&self, acknowledged: &mut AcknowledgedMessages) -> StoreResult<()> {
        if acknowledged.is_empty() {
            return Ok(());
        }
        let mut batch = self.batch();
        batch.delete_acknowledged(acknowledged);
        self.write_unsynced(batch)
    }

    fn read_to_device_positions(&self, prefix: &[u8]) -> StoreResult<Vec<u64>> {
        let mut start = prefix.to_vec();
        let floor = self.inner.records.to_device_floors.get(prefix).unwrap_or(0);
        start.extend_from_slice(&floor.saturating_add(1).to_be_bytes());
        let mut out = Vec::new();
        for item in self.raw_iter_within(Cf::ToDevice, &start, prefix) {
            let (key, _) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push(position_of(&key));
        }
        Ok(out)
    }

    pub fn to_device_txn_seen(&self, txn_key: &[u8]) -> StoreResult<bool> {
        Ok(self.get_raw(Cf::ToDeviceTxns, txn_key)?.is_some())
    }
}

/// The idempotency key of a local client's send.
pub fn to_device_client_txn(sender: &str, device_id: &str, txn_id: &str) -> Vec<u8> {
    let mut key = device_prefix(sender, device_id);
    key.extend_from_slice(txn_id.as_bytes());
    key
}

/// The idempotency key of another server's `m.direct_to_device` EDU.
pub fn to_device_edu_txn(origin: &str, message_id: &str) -> Vec<u8> {
    let mut key = keys::device(origin, message_id);
    key.insert(0, b'!');
    key
}

impl Batch<'_> {
    pub fn put_to_device(
        &mut self,
        user_id: &str,
        device_id: &str,
        position: u64,
        record: &ToDeviceRecord,
    ) -> StoreResult<()> {
        self.put_json(
            Cf::ToDevice,
            &message_key(user_id, device_id, position),
            record,
        )
    }

    pub fn delete_to_device(&mut self, user_id: &str, device_id: &str, position: u64) {
        self.delete(Cf::ToDevice, &message_key(user_id, device_id, position));
    }

    pub fn set_to_device_position(&mut self, position: u64) {
        self.put_raw(Cf::Meta, POSITION_KEY, &position.to_be_bytes());
    }

    pub fn put_to_device_txn(&mut self, txn_key: &[u8]) {
        self.put_raw(Cf::ToDeviceTxns, txn_key, b"");
    }

    /// Deletes the acknowledged messages queued in `acknowledged`, emptying it. Their
    /// devices' pending positions kept in memory stay: the acknowledgement already left
    /// these messages out of them, so the write changes nothing they say.
    pub fn delete_acknowledged(&mut self, acknowledged: &mut AcknowledgedMessages) {
        let cf = self.store.cf(Cf::ToDevice);
        for key in acknowledged.keys.drain(..) {
            self.inner.delete_cf(cf, &key);
        }
    }
}

/// Acknowledged messages whose deletion is not written yet. An acknowledgement only
/// garbage-collects: no sync reads a message at or before the position its device
/// acknowledged (reads start after the `since` the client sends, and the device's
/// pending positions leave them out), and a client that acknowledged a position sends it
/// or a later one again after any restart. So the deletions wait for the next write of
/// to-device messages, or for enough of them to be worth a write of their own, or for
/// shutdown, instead of costing every acknowledging sync a write; a crash only leaves
/// them to be deleted at the device's next acknowledgement.
#[derive(Default)]
pub struct AcknowledgedMessages {
    keys: Vec<Vec<u8>>,
}

impl AcknowledgedMessages {
    pub fn add(&mut self, user_id: &str, device_id: &str, positions: impl Iterator<Item = u64>) {
        self.keys
            .extend(positions.map(|position| message_key(user_id, device_id, position)));
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use rocksdb::perf::{PerfContext, PerfMetric, PerfStatsLevel, set_perf_stats};
    use ruma::owned_user_id;
    use serde_json::json;

    use super::*;

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        (dir, store)
    }

    fn test_message() -> ToDeviceRecord {
        ToDeviceRecord {
            sender: owned_user_id!("@s:x"),
            event_type: "m.test".into(),
            content: json!({}),
        }
    }

    #[test]
    fn reading_a_devices_messages_walks_no_deleted_key_beyond_them() {
        let (_dir, store) = temp_store();
        let message = test_message();
        // One message for @a's device; 300 for @b's, whose keys sort after it, deleted.
        let mut batch = store.batch();
        batch.put_to_device("@a:x", "D", 1, &message).unwrap();
        for position in 2..302 {
            batch
                .put_to_device("@b:x", "D", position, &message)
                .unwrap();
        }
        store.write(batch).unwrap();
        let mut batch = store.batch();
        for position in 2..302 {
            batch.delete_to_device("@b:x", "D", position);
        }
        store.write(batch).unwrap();

        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut context = PerfContext::default();
        context.reset();
        assert_eq!(store.to_device_positions("@a:x", "D").unwrap(), [1]);
        let messages = store.to_device_messages("@a:x", "D", 0, 10, 10).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(
            context.metric(PerfMetric::InternalDeleteSkippedCount),
            0,
            "{}",
            context.report(true)
        );
        // An iterator without the bound walks @b's deleted keys looking for the next one.
        context.reset();
        let mut bare = store.raw_iter_from(Cf::ToDevice, &device_prefix("@a:x", "D"));
        assert!(bare.next().is_some());
        assert!(bare.next().is_none());
        assert!(context.metric(PerfMetric::InternalDeleteSkippedCount) >= 300);
        set_perf_stats(PerfStatsLevel::Disable);
    }

    /// With the device's positions in memory, a read of its messages seeks nothing: a
    /// range with none of them reads no key, and one with some looks just those keys up.
    /// A list naming a message deleted meanwhile falls back to reading the keys.
    #[test]
    fn a_devices_messages_are_read_by_their_known_positions() {
        let (_dir, store) = temp_store();
        let message = |n: u64| ToDeviceRecord {
            content: json!({ "n": n }),
            ..test_message()
        };
        let mut batch = store.batch();
        for position in [1, 2, 3] {
            batch
                .put_to_device("@a:x", "D", position, &message(position))
                .unwrap();
        }
        batch.put_to_device("@b:x", "D", 4, &message(4)).unwrap();
        store.write(batch).unwrap();
        assert_eq!(store.to_device_positions("@a:x", "D").unwrap(), [1, 2, 3]);

        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut context = PerfContext::default();
        context.reset();
        assert!(
            store
                .to_device_messages("@a:x", "D", 3, 4, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(context.metric(PerfMetric::SeekOnMemtableCount), 0);
        assert_eq!(context.metric(PerfMetric::GetFromMemtableCount), 0);
        let read = store.to_device_messages("@a:x", "D", 1, 4, 10).unwrap();
        let contents: Vec<_> = read
            .iter()
            .map(|(p, r)| (*p, r.content["n"].clone()))
            .collect();
        assert_eq!(contents, [(2, json!(2)), (3, json!(3))]);
        assert_eq!(context.metric(PerfMetric::SeekOnMemtableCount), 0);
        // (A multi-get counts once per memtable.)
        assert!(context.metric(PerfMetric::GetFromMemtableCount) > 0);
        set_perf_stats(PerfStatsLevel::Disable);
        let limited = store.to_device_messages("@a:x", "D", 0, 4, 2).unwrap();
        assert_eq!(limited.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [1, 2]);

        // 2 deleted by a writer that left the list as it was: read from the keys.
        let mut batch = store.batch();
        batch.delete_to_device("@a:x", "D", 2);
        store.write(batch).unwrap();
        store.set_to_device_positions("@a:x", "D", vec![1, 2, 3]);
        let read = store.to_device_messages("@a:x", "D", 0, 4, 10).unwrap();
        assert_eq!(read.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [1, 3]);
    }

    /// Acknowledged messages are deleted by a later write (here another device's send),
    /// which leaves their device's pending positions in memory as the acknowledgement
    /// set them: the next read of them seeks nothing. A deletion through the tracked path
    /// drops them, for comparison.
    #[test]
    fn acknowledged_messages_are_deleted_later_and_the_known_positions_stay() {
        let (_dir, store) = temp_store();
        let message = test_message();
        let mut batch = store.batch();
        for position in [1, 2, 3] {
            batch
                .put_to_device("@a:x", "D", position, &message)
                .unwrap();
        }
        store.write(batch).unwrap();
        assert_eq!(store.to_device_positions("@a:x", "D").unwrap(), [1, 2, 3]);

        let mut acknowledged = AcknowledgedMessages::default();
        acknowledged.add("@a:x", "D", [1, 2].into_iter());
        store.set_to_device_positions("@a:x", "D", vec![3]);
        assert_eq!(acknowledged.len(), 2);
        let mut batch = store.batch();
        batch.put_to_device("@b:x", "D", 4, &message).unwrap();
        batch.delete_acknowledged(&mut acknowledged);
        store.write(batch).unwrap();
        assert!(acknowledged.is_empty());
        let stored = store
            .scan_to_device_messages("@a:x", "D", 0, 10, 10)
            .unwrap();
        assert_eq!(stored.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [3]);

        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut context = PerfContext::default();
        context.reset();
        assert_eq!(store.to_device_positions("@a:x", "D").unwrap(), [3]);
        assert_eq!(context.metric(PerfMetric::SeekOnMemtableCount), 0);
        let mut batch = store.batch();
        batch.delete_to_device("@a:x", "D", 3);
        store.write(batch).unwrap();
        context.reset();
        assert!(store.to_device_positions("@a:x", "D").unwrap().is_empty());
        assert!(context.metric(PerfMetric::SeekOnMemtableCount) > 0);
        set_perf_stats(PerfStatsLevel::Disable);
    }

    #[test]
    fn a_prefix_ends_before_the_next_key_that_does_not_begin_with_it() {
        assert_eq!(crate::store::prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(crate::store::prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(crate::store::prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(crate::store::prefix_end(b""), None);
    }
}
