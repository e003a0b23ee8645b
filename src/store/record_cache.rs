//! Decoded records, and facts read off a run of keys, of the column families every sync
//! reads for every room or device: users (locked or not), rooms, memberships, read
//! receipts, account-data and to-device positions, one-time keys (counts and the first
//! IDs) and fallback key types; and for every event it delivers, the event's relations
//! and thread summary. Absent records are kept too: most syncs ask for receipts nobody
//! sent, and most events have no relations. Also, per user, all of their devices and
//! device keys, which key queries and to-device messages for `*` read whole.
//!
//! A batch names the keys it writes in these column families; once it is written, the
//! entries those keys feed are dropped (see [`ReadCache`] for the race with readers).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::Cf;
use super::StoreResult;
use super::account_data::AccountDataRecord;
use super::accounts::{DeviceRecord, UserRecord};
use super::e2ee_keys::OneTimeKeySummary;
use super::read_cache::ReadCache;
use super::receipts::ReceiptRecord;
use super::relations::{RelationRecord, ThreadRecord};
use super::rooms::{RoomRecord, UserRoomRecord};

/// Entries per generation of each cache.
const RECORD_CACHE: usize = 8192;

/// Entries per generation of the caches of all of a user's devices or device keys,
/// whose entries are larger (signed keys of every device).
const USER_CACHE: usize = 1024;

/// Which entries a written key drops.
#[derive(Clone, Copy)]
enum Scope {
    /// The entry of that very key.
    Key,
    /// The entry of the key without its last 8 bytes (a stream position): the entry sums
    /// up every `prefix + position` key.
    Positions,
    /// The entry of the key's first two 0xFF-separated parts, the separator after them
    /// included (`user 0xFF device 0xFF`): the entry sums up one device's keys.
    Device,
    /// The entry of the key's first part and the separator after it (`user 0xFF`): the
    /// entry holds every record of one user.
    User,
}

/// `user 0xFF` of a key `user 0xFF …`.
fn user_prefix_of(key: &[u8]) -> Option<Vec<u8>> {
    let first = key.iter().position(|b| *b == super::keys::SEP)?;
    Some(key[..=first].to_vec())
}

/// `user 0xFF device 0xFF` of a key `user 0xFF device 0xFF …`.
fn device_prefix_of(key: &[u8]) -> Option<Vec<u8>> {
    let mut separators = key
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == super::keys::SEP)
        .map(|(i, _)| i);
    separators.next()?;
    let second = separators.next()?;
    Some(key[..=second].to_vec())
}

pub(super) struct RecordCache<V> {
    cf: Cf,
    scope: Scope,
    entries: ReadCache<Vec<u8>, Option<V>>,
}

impl<V: Clone> RecordCache<V> {
    fn new(cf: Cf, scope: Scope) -> Self {
        Self::with_capacity(cf, scope, RECORD_CACHE)
    }

    fn with_capacity(cf: Cf, scope: Scope, capacity: usize) -> Self {
        Self {
            cf,
            scope,
            entries: ReadCache::new(capacity),
        }
    }

    /// The entry under `key` (a record's key, or the prefix of a run of keys), or
    /// `load`'s answer, absent or not, which is then kept.
    pub(super) fn get_or_load(
        &self,
        key: &[u8],
        load: impl FnOnce() -> StoreResult<Option<V>>,
    ) -> StoreResult<Option<V>> {
        Ok(self
            .entries
            .get_or_load(key, || load().map(Some))?
            .flatten())
    }

    /// The fact kept under `key` (a position, a count, a list: never absent), or `read`'s.
    pub(super) fn get_or_read(
        &self,
        key: &[u8],
        read: impl FnOnce() -> StoreResult<V>,
    ) -> StoreResult<V>
    where
        V: Default,
    {
        Ok(self
            .get_or_load(key, || read().map(Some))?
            .unwrap_or_default())
    }

    /// Puts what a writer knows `key`'s fact to be after its write, once the write is
    /// done (and has dropped the entry). The writer must be the only one changing the
    /// records the fact sums up; a reader that raced the write does not cache.
    pub(super) fn set(&self, key: Vec<u8>, value: V) {
        self.entries.set(key, Some(value));
    }

    fn written(&self, touched: &[(Cf, Vec<u8>)]) {
        let keys = touched
            .iter()
            .filter(|(cf, _)| *cf == self.cf)
            .map(|(_, k)| k);
        let entries: Vec<Vec<u8>> = match self.scope {
            Scope::Key => keys.cloned().collect(),
            Scope::Positions => keys
                .map(|k| k[..k.len().saturating_sub(8)].to_vec())
                .collect(),
            Scope::Device => keys.filter_map(|k| device_prefix_of(k)).collect(),
            Scope::User => keys.filter_map(|k| user_prefix_of(k)).collect(),
        };
        self.entries.written(&entries);
    }
}

pub(super) struct RecordCaches {
    pub(super) users: RecordCache<UserRecord>,
    /// Every device of a user, by their key prefix: `/keys/query` and to-device messages
    /// for `*` read them for every user they name.
    pub(super) devices: RecordCache<Arc<Vec<DeviceRecord>>>,
    /// Every device's keys of a user, by their key prefix, likewise.
    pub(super) device_keys: RecordCache<Arc<Vec<(String, Value)>>>,
    pub(super) rooms: RecordCache<RoomRecord>,
    pub(super) user_room: RecordCache<UserRoomRecord>,
    pub(super) receipts: RecordCache<ReceiptRecord>,
    pub(super) account_data: RecordCache<AccountDataRecord>,
    /// The newest position of a user's account data stream, by the stream's key prefix.
    pub(super) account_data_positions: RecordCache<u64>,
    /// The positions of a device's pending to-device messages, by their key prefix.
    pub(super) to_device_positions: RecordCache<Vec<u64>>,
    /// Per device (by the key prefix of its messages), a position up to which its
    /// messages are known deleted (see [`super::Store::to_device_floor`]).
    pub(super) to_device_floors: crate::cache::Cache<Vec<u8>, u64>,
    /// A device's unclaimed one-time keys (counts per algorithm, the first IDs), by
    /// their key prefix.
    pub(super) one_time_keys: RecordCache<Arc<OneTimeKeySummary>>,
    /// The algorithms of a device's fallback keys that no claim has used, by their key
    /// prefix: every sync of the device asks.
    pub(super) unused_fallback_types: RecordCache<Vec<String>>,
    /// An event's children with their stream positions, by their key prefix.
    pub(super) relations: RecordCache<Vec<(u64, RelationRecord)>>,
    pub(super) threads: RecordCache<ThreadRecord>,
    /// Moves after every written batch that touched relations or thread summaries,
    /// once their entries above are dropped (see [`super::Store::relations_generation`]).
    pub(super) relations_generation: AtomicU64,
}

impl RecordCaches {
    pub(super) fn new() -> Self {
        Self {
            users: RecordCache::new(Cf::Users, Scope::Key),
            devices: RecordCache::with_capacity(Cf::Devices, Scope::User, USER_CACHE),
            device_keys: RecordCache::with_capacity(Cf::DeviceKeys, Scope::User, USER_CACHE),
            rooms: RecordCache::new(Cf::Rooms, Scope::Key),
            user_room: RecordCache::new(Cf::UserRooms, Scope::Key),
            receipts: RecordCache::new(Cf::Receipts, Scope::Key),
            account_data: RecordCache::new(Cf::AccountData, Scope::Key),
            account_data_positions: RecordCache::new(Cf::AccountDataStream, Scope::Positions),
            to_device_positions: RecordCache::new(Cf::ToDevice, Scope::Positions),
            to_device_floors: crate::cache::Cache::new(RECORD_CACHE),
            one_time_keys: RecordCache::new(Cf::OneTimeKeys, Scope::Device),
            unused_fallback_types: RecordCache::new(Cf::FallbackKeys, Scope::Device),
            relations: RecordCache::new(Cf::Relations, Scope::Positions),
            threads: RecordCache::new(Cf::Threads, Scope::Key),
            relations_generation: AtomicU64::new(0),
        }
    }

    /// Whether a batch must name the keys it writes in `cf`.
    pub(super) fn tracks(cf: Cf) -> bool {
        matches!(
            cf,
            Cf::Users
                | Cf::Devices
                | Cf::DeviceKeys
                | Cf::Rooms
                | Cf::UserRooms
                | Cf::Receipts
                | Cf::AccountData
                | Cf::AccountDataStream
                | Cf::ToDevice
                | Cf::OneTimeKeys
                | Cf::FallbackKeys
                | Cf::Relations
                | Cf::Threads
        )
    }

    /// Drops the entries a written batch changed.
    pub(super) fn written(&self, touched: &[(Cf, Vec<u8>)]) {
        if touched.is_empty() {
            return;
        }
        self.users.written(touched);
        self.devices.written(touched);
        self.device_keys.written(touched);
        self.rooms.written(touched);
        self.user_room.written(touched);
        self.receipts.written(touched);
        self.account_data.written(touched);
        self.account_data_positions.written(touched);
        self.to_device_positions.written(touched);
        self.one_time_keys.written(touched);
        self.unused_fallback_types.written(touched);
        self.relations.written(touched);
        self.threads.written(touched);
        if touched
            .iter()
            .any(|(cf, _)| matches!(cf, Cf::Relations | Cf::Threads))
        {
            self.relations_generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use ruma::{owned_event_id, owned_room_id, owned_user_id};
    use serde_json::json;

    use crate::store::relations::{RelationRecord, ThreadRecord};
    use crate::store::{FallbackKeyRecord, ReceiptChange, ReceiptRecord, Store, ToDeviceRecord};

    #[test]
    fn a_write_replaces_what_was_read_before_it_absent_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();

        // A receipt read while absent, then written, then moved.
        let change = ReceiptChange {
            room_id: owned_room_id!("!r:x"),
            receipt_type: "m.read".into(),
            user_id: owned_user_id!("@a:x"),
            thread: String::new(),
        };
        assert!(store.receipt(&change).unwrap().is_none());
        for (position, event_stream) in [(1, 10), (2, 20)] {
            let record = ReceiptRecord {
                event_id: owned_event_id!("$e"),
                ts: 0,
                position,
                event_stream,
            };
            let mut batch = store.batch();
            batch
                .put_receipt(&change, &record, position.checked_sub(1))
                .unwrap();
            store.write(batch).unwrap();
            let read = store.receipt(&change).unwrap().unwrap();
            assert_eq!(read.event_stream, event_stream);
        }

        // To-device positions: the entry sums up a run of keys, each write of one drops it.
        let message = ToDeviceRecord {
            sender: owned_user_id!("@b:x"),
            event_type: "m.test".into(),
            content: json!({}),
        };
        assert!(store.to_device_positions("@a:x", "D").unwrap().is_empty());
        let mut batch = store.batch();
        batch.put_to_device("@a:x", "D", 5, &message).unwrap();
        batch.put_to_device("@a:x", "D", 7, &message).unwrap();
        store.write(batch).unwrap();
        assert_eq!(store.to_device_positions("@a:x", "D").unwrap(), [5, 7]);
        let mut batch = store.batch();
        batch.delete_to_device("@a:x", "D", 5);
        store.write_unsynced(batch).unwrap();
        assert_eq!(store.to_device_positions("@a:x", "D").unwrap(), [7]);
        // Another device's messages are apart.
        assert!(store.to_device_positions("@a:x", "E").unwrap().is_empty());
        // Reads start after the device's floor, which only rises. (Noted here with 7 still
        // stored, to show that it is not read again; the service notes a floor only once
        // everything up to it is deleted.)
        assert_eq!(store.to_device_floor("@a:x", "D"), 0);
        store.note_to_device_floor("@a:x", "D", 7);
        store.note_to_device_floor("@a:x", "D", 6);
        assert_eq!(store.to_device_floor("@a:x", "D"), 7);
        assert_eq!(store.to_device_floor("@a:x", "E"), 0);
        let mut batch = store.batch();
        batch.put_to_device("@a:x", "D", 9, &message).unwrap();
        store.write(batch).unwrap();
        assert_eq!(store.to_device_positions("@a:x", "D").unwrap(), [9]);

        // One-time keys: counted per algorithm, recounted after an upload and a claim.
        assert!(store.one_time_key_counts("@a:x", "D").unwrap().is_empty());
        let mut batch = store.batch();
        for id in ["k1", "k2"] {
            batch
                .put_one_time_key("@a:x", "D", "signed_curve25519", id, &json!("key"))
                .unwrap();
        }
        store.write(batch).unwrap();
        let counts = store.one_time_key_counts("@a:x", "D").unwrap();
        assert_eq!(counts, [("signed_curve25519".to_owned(), 2)]);
        let mut batch = store.batch();
        batch.delete_one_time_key("@a:x", "D", "signed_curve25519", "k1");
        store.write(batch).unwrap();
        let counts = store.one_time_key_counts("@a:x", "D").unwrap();
        assert_eq!(counts, [("signed_curve25519".to_owned(), 1)]);
        // Each device's count is its own entry: a write of one device's keys drops only
        // that device's.
        let mut batch = store.batch();
        batch
            .put_one_time_key("@a:x", "E", "signed_curve25519", "k9", &json!("key"))
            .unwrap();
        store.write(batch).unwrap();
        let one = [("signed_curve25519".to_owned(), 1)];
        assert_eq!(store.one_time_key_counts("@a:x", "E").unwrap(), one);
        let mut batch = store.batch();
        batch.delete_one_time_key("@a:x", "D", "signed_curve25519", "k2");
        store.write(batch).unwrap();
        assert!(store.one_time_key_counts("@a:x", "D").unwrap().is_empty());
        assert_eq!(store.one_time_key_counts("@a:x", "E").unwrap(), one);

        // Fallback keys: unused until a claim marks them used.
        assert!(
            store
                .unused_fallback_key_types("@a:x", "D")
                .unwrap()
                .is_empty()
        );
        let fallback = |used| FallbackKeyRecord {
            key_id: "f1".into(),
            key: json!("key"),
            used,
        };
        let mut batch = store.batch();
        batch
            .put_fallback_key("@a:x", "D", "signed_curve25519", &fallback(false))
            .unwrap();
        store.write(batch).unwrap();
        let types = store.unused_fallback_key_types("@a:x", "D").unwrap();
        assert_eq!(types, ["signed_curve25519"]);
        let mut batch = store.batch();
        batch
            .put_fallback_key("@a:x", "D", "signed_curve25519", &fallback(true))
            .unwrap();
        store.write(batch).unwrap();
        assert!(
            store
                .unused_fallback_key_types("@a:x", "D")
                .unwrap()
                .is_empty()
        );

        // Relations and thread summaries: read while absent, then written and deleted.
        assert!(store.relations("$p").unwrap().is_empty());
        assert!(store.thread("!r:x", "$p").unwrap().is_none());
        let child = RelationRecord {
            event_id: owned_event_id!("$c"),
            rel_type: "m.thread".into(),
            event_type: "m.room.message".into(),
            sender: owned_user_id!("@a:x"),
            key: None,
            origin_server_ts: 1,
        };
        let thread = ThreadRecord {
            latest_event: owned_event_id!("$c"),
            latest_stream: 9,
            count: 1,
            participants: vec![owned_user_id!("@a:x")],
        };
        let mut batch = store.batch();
        batch.put_relation("$p", 9, &child).unwrap();
        batch.put_thread("!r:x", "$p", &thread, None).unwrap();
        store.write(batch).unwrap();
        let relations = store.relations("$p").unwrap();
        assert_eq!(relations.len(), 1);
        assert_eq!(relations[0].0, 9);
        assert_eq!(store.thread("!r:x", "$p").unwrap().unwrap().count, 1);
        let mut batch = store.batch();
        batch.delete_relation("$p", 9, &child);
        store.write(batch).unwrap();
        assert!(store.relations("$p").unwrap().is_empty());
    }

    /// A user's devices and device keys are kept whole; a write of any of the user's
    /// devices or keys drops them, and another user's stay.
    #[test]
    fn a_users_devices_and_keys_follow_writes_of_any_of_them() {
        use rocksdb::perf::{PerfContext, PerfMetric, PerfStatsLevel, set_perf_stats};

        use crate::store::{DeviceRecord, TokenHash};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let device = |id: &str| DeviceRecord {
            device_id: id.into(),
            display_name: Some(format!("name of {id}")),
            created_ts: 0,
            last_seen_ts: None,
            last_seen_ip: None,
            last_seen_user_agent: None,
            access_token: TokenHash::of(id),
            refresh_token: None,
            retiring_refresh_token: None,
        };
        let ids = |store: &Store, user: &str| -> Vec<String> {
            store
                .devices_shared(user)
                .unwrap()
                .iter()
                .map(|d| d.device_id.to_string())
                .collect()
        };
        let keyed = |store: &Store, user: &str| -> Vec<(String, serde_json::Value)> {
            store.all_device_keys(user).unwrap().as_ref().clone()
        };
        let mut batch = store.batch();
        batch.put_device("@a:x", &device("D1")).unwrap();
        batch.put_device("@b:x", &device("B1")).unwrap();
        batch
            .put_device_keys("@a:x", "D1", &json!({"k": 1}))
            .unwrap();
        batch
            .put_device_keys("@b:x", "B1", &json!({"k": "b"}))
            .unwrap();
        store.write(batch).unwrap();
        assert_eq!(ids(&store, "@a:x"), ["D1"]);
        assert_eq!(keyed(&store, "@a:x"), [("D1".to_owned(), json!({"k": 1}))]);
        assert_eq!(ids(&store, "@b:x"), ["B1"]);
        assert_eq!(
            keyed(&store, "@b:x"),
            [("B1".to_owned(), json!({"k": "b"}))]
        );
        // Read again from memory: no iterator seeks the keys.
        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut context = PerfContext::default();
        context.reset();
        assert_eq!(ids(&store, "@a:x"), ["D1"]);
        assert_eq!(keyed(&store, "@a:x").len(), 1);
        assert_eq!(context.metric(PerfMetric::SeekOnMemtableCount), 0);
        set_perf_stats(PerfStatsLevel::Disable);

        let mut batch = store.batch();
        batch.put_device("@a:x", &device("D2")).unwrap();
        batch
            .put_device_keys("@a:x", "D2", &json!({"k": 2}))
            .unwrap();
        batch
            .put_device_keys("@a:x", "D1", &json!({"k": 3}))
            .unwrap();
        store.write(batch).unwrap();
        assert_eq!(ids(&store, "@a:x"), ["D1", "D2"]);
        assert_eq!(
            keyed(&store, "@a:x"),
            [
                ("D1".to_owned(), json!({"k": 3})),
                ("D2".to_owned(), json!({"k": 2}))
            ]
        );

        let mut batch = store.batch();
        batch.delete_device("@a:x", &device("D1"));
        batch.delete_device_e2ee("@a:x", "D1").unwrap();
        store.write(batch).unwrap();
        assert_eq!(ids(&store, "@a:x"), ["D2"]);
        assert_eq!(keyed(&store, "@a:x"), [("D2".to_owned(), json!({"k": 2}))]);
        // The other user's, read before and untouched since, are as they were.
        assert_eq!(ids(&store, "@b:x"), ["B1"]);
        assert_eq!(
            keyed(&store, "@b:x"),
            [("B1".to_owned(), json!({"k": "b"}))]
        );
        // A user whose name begins with another's is apart.
        let mut batch = store.batch();
        batch.put_device("@a:xy", &device("E1")).unwrap();
        store.write(batch).unwrap();
        assert_eq!(ids(&store, "@a:x"), ["D2"]);
        assert_eq!(ids(&store, "@a:xy"), ["E1"]);
    }
}
