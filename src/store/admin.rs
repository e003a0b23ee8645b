//! What server administration keeps: the audit log of admin actions
//! (`admin_audit`: entry ID, u64 BE, counting up from 1 → `AuditRecord`), rooms an admin
//! deleted (`deleted_rooms`: room ID → `DeletedRoomRecord`), rooms an admin blocked
//! (`blocked_rooms`: room ID → `BlockedRoomRecord`), and the whole list of
//! accounts for the admin API's user list.

use ruma::{OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult, UserRecord};

/// One admin action: who did what to which target, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The admin who acted, or `None` for `hearthctl --data` working on the store offline.
    pub admin: Option<OwnedUserId>,
    /// What was done, e.g. `user.deactivate`, `room.delete`.
    pub action: String,
    /// The user, room or report acted on.
    pub target: String,
    /// Anything else worth keeping (options used, counts), short and human-readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub ts: u64,
}

/// A room shut down by an admin: its local members were made to leave (moved to a new
/// room, when asked), its aliases and directory entry removed or moved, its history
/// purged when asked; while it is recorded here, nobody on this server can join it. The
/// record is written with a `delete_room` fan-out intent and describes what the intent's
/// passes do; they fill in the progress fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedRoomRecord {
    pub delete_id: String,
    pub deleted_by: OwnedUserId,
    pub started_ts: u64,
    /// `None` while the deletion runs; set once every member was handled.
    pub finished_ts: Option<u64>,
    pub block: bool,
    pub purge_requested: bool,
    pub kicked_users: Vec<OwnedUserId>,
    pub failed_to_kick_users: Vec<OwnedUserId>,
    pub local_aliases: Vec<String>,
    /// Set when local members move to a new room this user creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_room: Option<NewRoomRequest>,
    /// The new room, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_room_id: Option<OwnedRoomId>,
    /// Whether the history has been purged (with `purge_requested`).
    #[serde(default)]
    pub purged: bool,
}

/// The room local members of a deleted room are moved to, as Synapse's
/// `new_room_user_id`, `room_name` and `message` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRoomRequest {
    pub creator: OwnedUserId,
    pub name: String,
    pub message: String,
}

/// A room nobody on this server may join, knock on or be invited to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedRoomRecord {
    pub blocked_by: OwnedUserId,
    pub ts: u64,
}

impl Store {
    pub fn blocked_room(&self, room_id: &str) -> StoreResult<Option<BlockedRoomRecord>> {
        self.get_json(Cf::BlockedRooms, room_id.as_bytes())
    }

    /// Every account, ordered by user ID.
    pub fn all_users(&self) -> StoreResult<Vec<(OwnedUserId, UserRecord)>> {
        Ok(self
            .scan_prefix::<UserRecord>(Cf::Users, b"")?
            .into_iter()
            .filter_map(|(key, user)| {
                let id = OwnedUserId::try_from(String::from_utf8(key).ok()?).ok()?;
                Some((id, user))
            })
            .collect())
    }

    /// Every room this server has a head for, ordered by room ID.
    pub fn all_room_ids(&self) -> StoreResult<Vec<OwnedRoomId>> {
        let mut out = Vec::new();
        for item in self.raw_iter_from(Cf::Rooms, b"") {
            let (key, _) = item?;
            if let Some(id) = String::from_utf8(key.to_vec())
                .ok()
                .and_then(|k| OwnedRoomId::try_from(k).ok())
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> StoreResult<Vec<(u64, AuditRecord)>> {
        Ok(self
            .scan_prefix::<AuditRecord>(Cf::AdminAudit, b"")?
            .into_iter()
            .filter_map(|(key, record)| {
                let id = u64::from_be_bytes(<[u8; 8]>::try_from(key.as_slice()).ok()?);
                Some((id, record))
            })
            .collect())
    }

    pub fn deleted_room(&self, room_id: &str) -> StoreResult<Option<DeletedRoomRecord>> {
        self.get_json(Cf::DeletedRooms, room_id.as_bytes())
    }

    /// The deletion with this ID, found by scanning (deletions are few).
    pub fn deletion(
        &self,
        delete_id: &str,
    ) -> StoreResult<Option<(OwnedRoomId, DeletedRoomRecord)>> {
        Ok(self
            .scan_prefix::<DeletedRoomRecord>(Cf::DeletedRooms, b"")?
            .into_iter()
            .find(|(_, record)| record.delete_id == delete_id)
            .and_then(|(key, record)| {
                let id = OwnedRoomId::try_from(String::from_utf8(key).ok()?).ok()?;
                Some((id, record))
            }))
    }
}

impl Batch<'_> {
    pub fn put_audit(&mut self, id: u64, record: &AuditRecord) -> StoreResult<()> {
        self.put_json(Cf::AdminAudit, &id.to_be_bytes(), record)
    }

    pub fn put_deleted_room(
        &mut self,
        room_id: &str,
        record: &DeletedRoomRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::DeletedRooms, room_id.as_bytes(), record)
    }

    pub fn set_blocked_room(
        &mut self,
        room_id: &str,
        record: Option<&BlockedRoomRecord>,
    ) -> StoreResult<()> {
        match record {
            Some(record) => self.put_json(Cf::BlockedRooms, room_id.as_bytes(), record),
            None => {
                self.delete(Cf::BlockedRooms, room_id.as_bytes());
                Ok(())
            }
        }
    }

    pub fn delete_report(&mut self, id: u64) {
        self.delete(Cf::Reports, &id.to_be_bytes());
    }
}
