//! Server-side key backups: versions (`auth_data` and `algorithm` as the client gave
//! them) and the encrypted session keys stored in each, with the spec's rule for
//! which copy of a session's key to keep.
//!
//! Versions are numbered per user from 1 and never reused; the current version is the
//! newest one not deleted. Keys are only written to the current version. Each version
//! carries an `etag` that changes whenever its keys change, and a `count` of its keys.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use ruma::{OwnedRoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::store::{BackedUpKey, BackupVersionRecord, Store};

/// The body of `POST /room_keys/version`.
#[derive(Debug, Deserialize)]
pub struct NewVersion {
    pub algorithm: String,
    pub auth_data: Map<String, Value>,
}

/// The body of `PUT /room_keys/version/{version}`.
#[derive(Debug, Deserialize)]
pub struct VersionUpdate {
    pub algorithm: String,
    pub auth_data: Map<String, Value>,
    #[serde(default)]
    pub version: Option<String>,
}

/// What `GET /room_keys/version[/{version}]` answers.
#[derive(Debug, Serialize)]
pub struct VersionInfo {
    pub algorithm: String,
    pub auth_data: Map<String, Value>,
    pub count: u64,
    pub etag: String,
    pub version: String,
}

/// The keys of one room: `{"sessions": {session_id: KeyBackupData}}`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RoomKeys {
    pub sessions: BTreeMap<String, BackedUpKey>,
}

/// The keys of every room: `{"rooms": {room_id: {"sessions": ...}}}`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AllKeys {
    pub rooms: BTreeMap<OwnedRoomId, RoomKeys>,
}

/// The answer to a change of keys.
#[derive(Debug, Serialize)]
pub struct KeysChanged {
    pub etag: String,
    pub count: u64,
}

/// Which keys a read or deletion is about.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    Room(&'a str),
    Session(&'a str, &'a str),
}

pub struct KeyBackup {
    store: Store,
    /// Serialises changes, so that `count` and `etag` follow the keys exactly.
    lock: Mutex<()>,
}

/// The spec's rule: of two copies of a session's key, keep the verified one; if both
/// or neither are, the one that decrypts from an earlier message; if equal, the one
/// forwarded fewer times. An identical copy does not replace the stored one.
pub fn replaces(new: &BackedUpKey, existing: &BackedUpKey) -> bool {
    if new.is_verified != existing.is_verified {
        return new.is_verified;
    }
    if new.first_message_index != existing.first_message_index {
        return new.first_message_index < existing.first_message_index;
    }
    new.forwarded_count < existing.forwarded_count
}

fn unknown_version() -> Error {
    Error::not_found("Unknown backup version")
}

/// Versions are decimal numbers; anything else names no version.
fn parse_version(version: &str) -> Result<u64> {
    if version.is_empty() || version.len() > 19 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown_version());
    }
    version.parse().map_err(|_| unknown_version())
}

fn check_algorithm(algorithm: &str) -> Result<()> {
    if algorithm.is_empty() {
        return Err(Error::invalid_param("algorithm must not be empty"));
    }
    Ok(())
}

fn info(version: u64, record: BackupVersionRecord) -> VersionInfo {
    VersionInfo {
        algorithm: record.algorithm,
        auth_data: record.auth_data,
        count: record.count,
        etag: record.etag.to_string(),
        version: version.to_string(),
    }
}

impl KeyBackup {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            lock: Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest version not deleted.
    fn current(&self, user_id: &UserId) -> Result<Option<(u64, BackupVersionRecord)>> {
        Ok(self
            .store
            .backup_versions(user_id.as_str())?
            .into_iter()
            .rev()
            .find(|(_, record)| !record.deleted))
    }

    /// A version that exists and is not deleted.
    fn existing(&self, user_id: &UserId, version: &str) -> Result<(u64, BackupVersionRecord)> {
        let number = parse_version(version)?;
        match self.store.backup_version(user_id.as_str(), number)? {
            Some(record) if !record.deleted => Ok((number, record)),
            _ => Err(unknown_version()),
        }
    }

    /// `POST /room_keys/version`: a new version, which becomes the current one.
    pub fn create_version(&self, user_id: &UserId, body: NewVersion) -> Result<String> {
        check_algorithm(&body.algorithm)?;
        let _guard = self.lock();
        let last = self
            .store
            .backup_versions(user_id.as_str())?
            .last()
            .map_or(0, |(v, _)| *v);
        let version = last + 1;
        let mut batch = self.store.batch();
        batch.put_backup_version(
            user_id.as_str(),
            version,
            &BackupVersionRecord {
                algorithm: body.algorithm,
                auth_data: body.auth_data,
                etag: 0,
                count: 0,
                deleted: false,
            },
        )?;
        self.store.write(batch)?;
        Ok(version.to_string())
    }

    /// `GET /room_keys/version`.
    pub fn current_version(&self, user_id: &UserId) -> Result<VersionInfo> {
        let (version, record) = self
            .current(user_id)?
            .ok_or_else(|| Error::not_found("No current backup version"))?;
        Ok(info(version, record))
    }

    /// `GET /room_keys/version/{version}`.
    pub fn version(&self, user_id: &UserId, version: &str) -> Result<VersionInfo> {
        let (version, record) = self.existing(user_id, version)?;
        Ok(info(version, record))
    }

    /// `PUT /room_keys/version/{version}`: only `auth_data` may change.
    pub fn update_version(
        &self,
        user_id: &UserId,
        version: &str,
        body: VersionUpdate,
    ) -> Result<()> {
        if body.version.as_deref().is_some_and(|v| v != version) {
            return Err(Error::invalid_param(
                "the version in the body is not the version in the path",
            ));
        }
        let _guard = self.lock();
        let (number, mut record) = self.existing(user_id, version)?;
        if body.algorithm != record.algorithm {
            return Err(Error::invalid_param(
                "the algorithm of a backup version cannot change",
            ));
        }
        record.auth_data = body.auth_data;
        let mut batch = self.store.batch();
        batch.put_backup_version(user_id.as_str(), number, &record)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// `DELETE /room_keys/version/{version}`: the version and all its keys. Deleting
    /// a deleted version again succeeds.
    pub fn delete_version(&self, user_id: &UserId, version: &str) -> Result<()> {
        let number = parse_version(version)?;
        let _guard = self.lock();
        let Some(mut record) = self.store.backup_version(user_id.as_str(), number)? else {
            return Err(unknown_version());
        };
        if record.deleted {
            return Ok(());
        }
        let mut batch = self.store.batch();
        for (room, session, _) in self.store.backup_keys(user_id.as_str(), number, None)? {
            batch.delete_backup_key(user_id.as_str(), number, &room, &session);
        }
        record.deleted = true;
        record.count = 0;
        record.etag += 1;
        batch.put_backup_version(user_id.as_str(), number, &record)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Deletes every version of the user with its keys (when the account is
    /// deactivated); the tombstones keep version numbers from being reused.
    pub fn delete_all(&self, user_id: &UserId) -> Result<()> {
        let versions = self.store.backup_versions(user_id.as_str())?;
        for (version, record) in versions {
            if !record.deleted {
                self.delete_version(user_id, &version.to_string())?;
            }
        }
        Ok(())
    }

    /// `PUT /room_keys/keys[/{roomId}[/{sessionId}]]`: stores each key unless the
    /// stored copy is better by the spec's rule. Only the current version takes keys.
    pub fn put_keys(&self, user_id: &UserId, version: &str, keys: AllKeys) -> Result<KeysChanged> {
        for (room_id, room) in &keys.rooms {
            if room.sessions.keys().any(String::is_empty) {
                return Err(Error::invalid_param(format!(
                    "a session ID in {room_id} is empty"
                )));
            }
        }
        let _guard = self.lock();
        let (current, mut record) = self
            .current(user_id)?
            .ok_or_else(|| Error::not_found("No current backup version"))?;
        if parse_version(version).ok() != Some(current) {
            return Err(Error::new(
                ErrorKind::WrongRoomKeysVersion {
                    current_version: current.to_string(),
                },
                format!("{version} is not the current backup version"),
            ));
        }
        let user = user_id.as_str();
        let mut batch = self.store.batch();
        let mut changed = false;
        for (room_id, room) in keys.rooms {
            for (session_id, key) in room.sessions {
                let existing =
                    self.store
                        .backup_key(user, current, room_id.as_str(), &session_id)?;
                let store_it = match &existing {
                    None => {
                        record.count += 1;
                        true
                    }
                    Some(old) => replaces(&key, old),
                };
                if store_it {
                    batch.put_backup_key(user, current, room_id.as_str(), &session_id, &key)?;
                    changed = true;
                }
            }
        }
        if changed {
            record.etag += 1;
            batch.put_backup_version(user, current, &record)?;
            self.store.write(batch)?;
        }
        Ok(KeysChanged {
            etag: record.etag.to_string(),
            count: record.count,
        })
    }

    /// `GET /room_keys/keys[/{roomId}[/{sessionId}]]` of any version not deleted.
    pub fn keys(&self, user_id: &UserId, version: &str, scope: Scope<'_>) -> Result<Value> {
        let (number, _) = self.existing(user_id, version)?;
        let user = user_id.as_str();
        let value = match scope {
            Scope::Session(room_id, session_id) => {
                let key = self
                    .store
                    .backup_key(user, number, room_id, session_id)?
                    .ok_or_else(|| Error::not_found("No key for this session in the backup"))?;
                serde_json::to_value(key)
            }
            Scope::Room(room_id) => {
                let mut room = RoomKeys::default();
                for (_, session, key) in self.store.backup_keys(user, number, Some(room_id))? {
                    room.sessions.insert(session, key);
                }
                serde_json::to_value(room)
            }
            Scope::All => {
                let mut rooms: BTreeMap<String, RoomKeys> = BTreeMap::new();
                for (room, session, key) in self.store.backup_keys(user, number, None)? {
                    rooms.entry(room).or_default().sessions.insert(session, key);
                }
                #[derive(Serialize)]
                struct Rooms {
                    rooms: BTreeMap<String, RoomKeys>,
                }
                serde_json::to_value(Rooms { rooms })
            }
        };
        value.map_err(Error::internal)
    }

    /// `DELETE /room_keys/keys[/{roomId}[/{sessionId}]]` of any version not deleted.
    pub fn delete_keys(
        &self,
        user_id: &UserId,
        version: &str,
        scope: Scope<'_>,
    ) -> Result<KeysChanged> {
        let _guard = self.lock();
        let (number, mut record) = self.existing(user_id, version)?;
        let user = user_id.as_str();
        let doomed: Vec<(String, String)> = match scope {
            Scope::Session(room_id, session_id) => self
                .store
                .backup_key(user, number, room_id, session_id)?
                .map(|_| (room_id.to_owned(), session_id.to_owned()))
                .into_iter()
                .collect(),
            Scope::Room(room_id) => self
                .store
                .backup_keys(user, number, Some(room_id))?
                .into_iter()
                .map(|(room, session, _)| (room, session))
                .collect(),
            Scope::All => self
                .store
                .backup_keys(user, number, None)?
                .into_iter()
                .map(|(room, session, _)| (room, session))
                .collect(),
        };
        if !doomed.is_empty() {
            let mut batch = self.store.batch();
            for (room, session) in &doomed {
                batch.delete_backup_key(user, number, room, session);
            }
            record.count = record.count.saturating_sub(doomed.len() as u64);
            record.etag += 1;
            batch.put_backup_version(user, number, &record)?;
            self.store.write(batch)?;
        }
        Ok(KeysChanged {
            etag: record.etag.to_string(),
            count: record.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(is_verified: bool, first_message_index: u64, forwarded_count: u64) -> BackedUpKey {
        BackedUpKey {
            first_message_index,
            forwarded_count,
            is_verified,
            session_data: Map::new(),
        }
    }

    #[test]
    fn a_verified_key_wins_over_any_unverified_one() {
        assert!(replaces(&key(true, 9, 9), &key(false, 0, 0)));
        assert!(!replaces(&key(false, 0, 0), &key(true, 9, 9)));
    }

    #[test]
    fn then_the_lower_first_message_index_then_the_lower_forwarded_count() {
        assert!(replaces(&key(false, 1, 5), &key(false, 2, 0)));
        assert!(!replaces(&key(false, 2, 0), &key(false, 1, 5)));
        assert!(replaces(&key(true, 1, 0), &key(true, 1, 1)));
        assert!(!replaces(&key(true, 1, 1), &key(true, 1, 0)));
        assert!(!replaces(&key(true, 1, 1), &key(true, 1, 1)));
    }

    #[test]
    fn only_decimal_numbers_name_versions() {
        assert_eq!(parse_version("12").ok(), Some(12));
        for bad in ["", "+1", "-1", "1.0", "abc", "99999999999999999999"] {
            assert!(parse_version(bad).is_err(), "{bad}");
        }
    }
}
