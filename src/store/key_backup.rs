//! Server-side key backups (`/room_keys/*`).
//!
//! - `backup_versions`: `user 0xFF version (u64 BE)` → [`BackupVersionRecord`]. A deleted
//!   version stays as a tombstone (`deleted`), so that its number is never handed out
//!   again and deleting it twice succeeds.
//! - `backup_keys`: `user 0xFF version (u64 BE) room_id 0xFF session_id` →
//!   [`BackedUpKey`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Batch, Cf, Store, StoreResult, keys};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupVersionRecord {
    pub algorithm: String,
    pub auth_data: Map<String, Value>,
    /// Bumped whenever the version's keys change.
    pub etag: u64,
    /// How many keys the version holds.
    pub count: u64,
    #[serde(default)]
    pub deleted: bool,
}

/// One backed-up session key, as the spec's `KeyBackupData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackedUpKey {
    pub first_message_index: u64,
    pub forwarded_count: u64,
    pub is_verified: bool,
    pub session_data: Map<String, Value>,
}

fn version_key(user_id: &str, version: u64) -> Vec<u8> {
    let mut key = keys::devices_of(user_id);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn room_prefix(user_id: &str, version: u64, room_id: &str) -> Vec<u8> {
    let mut key = version_key(user_id, version);
    key.extend_from_slice(room_id.as_bytes());
    key.push(keys::SEP);
    key
}

fn session_key(user_id: &str, version: u64, room_id: &str, session_id: &str) -> Vec<u8> {
    let mut key = room_prefix(user_id, version, room_id);
    key.extend_from_slice(session_id.as_bytes());
    key
}

/// `(room_id, session_id)` of a `backup_keys` key, given the length of its
/// `user 0xFF version` prefix.
fn split_key(key: &[u8], prefix_len: usize) -> Option<(String, String)> {
    let rest = key.get(prefix_len..)?;
    let sep = rest.iter().position(|b| *b == keys::SEP)?;
    let room = std::str::from_utf8(&rest[..sep]).ok()?;
    let session = std::str::from_utf8(&rest[sep + 1..]).ok()?;
    Some((room.to_owned(), session.to_owned()))
}

fn version_of(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(8)
        .and_then(|start| <[u8; 8]>::try_from(&key[start..]).ok())
        .map_or(0, u64::from_be_bytes)
}

impl Store {
    /// Every version the user ever created, deleted ones included, oldest first.
    pub fn backup_versions(&self, user_id: &str) -> StoreResult<Vec<(u64, BackupVersionRecord)>> {
        Ok(self
            .scan_prefix::<BackupVersionRecord>(Cf::BackupVersions, &keys::devices_of(user_id))?
            .into_iter()
            .map(|(key, record)| (version_of(&key), record))
            .collect())
    }

    pub fn backup_version(
        &self,
        user_id: &str,
        version: u64,
    ) -> StoreResult<Option<BackupVersionRecord>> {
        self.get_json(Cf::BackupVersions, &version_key(user_id, version))
    }

    pub fn backup_key(
        &self,
        user_id: &str,
        version: u64,
        room_id: &str,
        session_id: &str,
    ) -> StoreResult<Option<BackedUpKey>> {
        self.get_json(
            Cf::BackupKeys,
            &session_key(user_id, version, room_id, session_id),
        )
    }

    /// `(room_id, session_id, key)` of a version's keys, of one room when `room_id` is
    /// given, in key order.
    pub fn backup_keys(
        &self,
        user_id: &str,
        version: u64,
        room_id: Option<&str>,
    ) -> StoreResult<Vec<(String, String, BackedUpKey)>> {
        let base_len = version_key(user_id, version).len();
        let prefix = match room_id {
            Some(room_id) => room_prefix(user_id, version, room_id),
            None => version_key(user_id, version),
        };
        let mut out = Vec::new();
        for (key, record) in self.scan_prefix::<BackedUpKey>(Cf::BackupKeys, &prefix)? {
            let (room, session) =
                split_key(&key, base_len).ok_or_else(|| super::StoreError::Corrupt {
                    cf: Cf::BackupKeys.name(),
                    detail: "a key backup entry's key has no room and session".into(),
                })?;
            out.push((room, session, record));
        }
        Ok(out)
    }
}

impl Batch<'_> {
    pub fn put_backup_version(
        &mut self,
        user_id: &str,
        version: u64,
        record: &BackupVersionRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::BackupVersions, &version_key(user_id, version), record)
    }

    pub fn put_backup_key(
        &mut self,
        user_id: &str,
        version: u64,
        room_id: &str,
        session_id: &str,
        record: &BackedUpKey,
    ) -> StoreResult<()> {
        self.put_json(
            Cf::BackupKeys,
            &session_key(user_id, version, room_id, session_id),
            record,
        )
    }

    pub fn delete_backup_key(
        &mut self,
        user_id: &str,
        version: u64,
        room_id: &str,
        session_id: &str,
    ) {
        self.delete(
            Cf::BackupKeys,
            &session_key(user_id, version, room_id, session_id),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_splits_back_into_room_and_session() {
        // The version's bytes may hold 0xFF; the split starts after them.
        let key = session_key("@a:x", u64::MAX, "!r:x", "sess");
        let base = version_key("@a:x", u64::MAX).len();
        assert_eq!(
            split_key(&key, base),
            Some(("!r:x".to_owned(), "sess".to_owned()))
        );
        assert!(key.starts_with(&room_prefix("@a:x", u64::MAX, "!r:x")));
        assert!(!key.starts_with(&room_prefix("@a:x", u64::MAX, "!r:xy")));
    }
}
