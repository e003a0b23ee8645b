//! Account data, global and per room, with a per-user change stream.
//!
//! `account_data`: `user_id 0xFF room_id 0xFF type` (room ID empty for global data) →
//! [`AccountDataRecord`]. `account_data_stream`: `user_id 0xFF position (u64 BE)` →
//! [`AccountDataChange`]. Every write of a `(room, type)` moves its single stream entry to a
//! new, higher position, so the stream holds one entry per `(room, type)` and its last key
//! is always the user's newest position.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Cf, Store, StoreResult, keys};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountDataRecord {
    pub content: Value,
    /// The user's account data stream position of the write that set this content.
    pub position: u64,
}

/// What changed at one position of a user's account data stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDataChange {
    /// `None` for global account data.
    pub room_id: Option<String>,
    #[serde(rename = "type")]
    pub data_type: String,
}

fn data_key(user_id: &str, room_id: Option<&str>, data_type: &str) -> Vec<u8> {
    let mut key = keys::devices_of(user_id);
    key.extend_from_slice(room_id.unwrap_or("").as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(data_type.as_bytes());
    key
}

fn stream_key(user_id: &str, position: u64) -> Vec<u8> {
    let mut key = keys::devices_of(user_id);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

impl Store {
    pub fn account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> StoreResult<Option<AccountDataRecord>> {
        let key = data_key(user_id, room_id, data_type);
        self.inner
            .records
            .account_data
            .get_or_load(&key, || self.get_json(Cf::AccountData, &key))
    }

    /// The user's newest account data stream position; 0 before their first write.
    pub fn account_data_position(&self, user_id: &str) -> StoreResult<u64> {
        let prefix = keys::devices_of(user_id);
        self.inner
            .records
            .account_data_positions
            .get_or_read(&prefix, || {
                self.read_account_data_position(&prefix, user_id)
            })
    }

    fn read_account_data_position(&self, prefix: &[u8], user_id: &str) -> StoreResult<u64> {
        let mut iter =
            self.raw_iter_rev_from(Cf::AccountDataStream, &stream_key(user_id, u64::MAX));
        match iter.next() {
            Some(item) => {
                let (key, _) = item?;
                if !key.starts_with(prefix) {
                    return Ok(0);
                }
                Ok(<[u8; 8]>::try_from(&key[prefix.len()..])
                    .map(u64::from_be_bytes)
                    .unwrap_or(0))
            }
            None => Ok(0),
        }
    }

    /// The user's account data changed after position `since` (exclusive), oldest first,
    /// each `(room, type)` once at its latest position: what an incremental sync sends.
    pub fn account_data_changes_since(
        &self,
        user_id: &str,
        since: u64,
    ) -> StoreResult<Vec<(u64, AccountDataChange)>> {
        let prefix = keys::devices_of(user_id);
        let mut out = Vec::new();
        let start = stream_key(user_id, since.saturating_add(1));
        for item in self.raw_iter_within(Cf::AccountDataStream, &start, &prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let Ok(position) = <[u8; 8]>::try_from(&key[prefix.len()..]).map(u64::from_be_bytes)
            else {
                continue;
            };
            let change: AccountDataChange =
                serde_json::from_slice(&value).map_err(|e| super::StoreError::Corrupt {
                    cf: Cf::AccountDataStream.name(),
                    detail: e.to_string(),
                })?;
            out.push((position, change));
        }
        Ok(out)
    }
}

impl Batch<'_> {
    /// Stores `content` at `position`, moving the `(room, type)` stream entry there from
    /// `previous_position`. The caller serialises a user's writes and picks
    /// `position` above [`Store::account_data_position`].
    pub fn put_account_data(
        &mut self,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: Value,
        position: u64,
        previous_position: Option<u64>,
    ) -> StoreResult<()> {
        if let Some(previous) = previous_position {
            self.delete(Cf::AccountDataStream, &stream_key(user_id, previous));
        }
        self.put_json(
            Cf::AccountDataStream,
            &stream_key(user_id, position),
            &AccountDataChange {
                room_id: room_id.map(str::to_owned),
                data_type: data_type.to_owned(),
            },
        )?;
        self.put_json(
            Cf::AccountData,
            &data_key(user_id, room_id, data_type),
            &AccountDataRecord { content, position },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_users_rooms_and_global_data_apart() {
        assert_ne!(
            data_key("@a:x", None, "t"),
            data_key("@a:x", Some("!r:x"), "t")
        );
        // "@a:x" is a prefix of "@a:xy" as a string; the separator keeps their data apart.
        assert!(!data_key("@a:xy", None, "t").starts_with(&keys::devices_of("@a:x")));
        assert!(!stream_key("@a:xy", 1).starts_with(&keys::devices_of("@a:x")));
    }

    #[test]
    fn the_stream_keeps_one_entry_per_type_at_its_latest_position() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let write = |room: Option<&str>, t: &str, content: Value| {
            let previous = store
                .account_data("@a:x", room, t)
                .unwrap()
                .map(|r| r.position);
            let position = store.account_data_position("@a:x").unwrap() + 1;
            let mut batch = store.batch();
            batch
                .put_account_data("@a:x", room, t, content, position, previous)
                .unwrap();
            store.write(batch).unwrap();
        };
        assert_eq!(store.account_data_position("@a:x").unwrap(), 0);
        write(None, "one", serde_json::json!({"v": 1}));
        write(Some("!r:x"), "one", serde_json::json!({"v": 2}));
        write(None, "one", serde_json::json!({"v": 3}));
        // Another user's stream stays apart, even with an ID that extends this one.
        let mut batch = store.batch();
        batch
            .put_account_data("@a:xy", None, "one", serde_json::json!({}), 9, None)
            .unwrap();
        store.write(batch).unwrap();

        assert_eq!(store.account_data_position("@a:x").unwrap(), 3);
        let record = store.account_data("@a:x", None, "one").unwrap().unwrap();
        assert_eq!(record.content, serde_json::json!({"v": 3}));
        assert_eq!(record.position, 3);
        let changes = store.account_data_changes_since("@a:x", 0).unwrap();
        let global = AccountDataChange {
            room_id: None,
            data_type: "one".into(),
        };
        let in_room = AccountDataChange {
            room_id: Some("!r:x".into()),
            data_type: "one".into(),
        };
        assert_eq!(changes, vec![(2, in_room), (3, global.clone())]);
        assert_eq!(
            store.account_data_changes_since("@a:x", 2).unwrap(),
            vec![(3, global)]
        );
        assert!(
            store
                .account_data_changes_since("@a:x", 3)
                .unwrap()
                .is_empty()
        );
    }
}
