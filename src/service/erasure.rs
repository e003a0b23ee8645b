//! Erasure: an account deactivated with `erase: true` (by its owner through
//! `/account/deactivate`, or by an admin) has its events shown redacted to everyone who
//! was not joined to the room when they were sent, as Synapse does; those who were keep
//! seeing what they saw then, and other servers get them redacted.

use std::collections::HashSet;
use std::sync::RwLock;

use ruma::UserId;
use serde_json::Value;

use super::Services;
use crate::error::{Error, Result};
use crate::event::RoomVersion;
use crate::store::{Cf, EventRecord, Store, StoreResult, UserRecord};

/// The erased local accounts, kept in memory so that formatting an event costs one set
/// lookup for its sender.
pub struct ErasedUsers {
    users: RwLock<HashSet<String>>,
}

impl ErasedUsers {
    /// Reads the erased accounts once, at start.
    pub fn load(store: &Store) -> StoreResult<Self> {
        let users = store
            .scan_prefix::<UserRecord>(Cf::Users, b"")?
            .into_iter()
            .filter(|(_, user)| user.erased)
            .filter_map(|(key, _)| String::from_utf8(key).ok())
            .collect();
        Ok(Self {
            users: RwLock::new(users),
        })
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(user_id)
    }

    fn insert(&self, user_id: &UserId) {
        self.users
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user_id.to_string());
    }
}

impl Services {
    /// Marks a (deactivated) account erased, in the store and in memory.
    pub async fn mark_erased(&self, user_id: &UserId) -> Result<()> {
        {
            let _guard = self.sessions.write_lock.lock().await;
            let mut user = self
                .store
                .user(user_id.as_str())?
                .ok_or_else(|| Error::not_found("No such user"))?;
            user.erased = true;
            let mut batch = self.store.batch();
            batch.put_user(user_id.as_str(), &user)?;
            self.store.write(batch)?;
        }
        self.erased_users.insert(user_id);
        Ok(())
    }

    /// Whether `viewer` gets `record` redacted: its sender is erased, and the viewer (not
    /// the sender) was not joined to the room just before it.
    pub(crate) fn erased_for(&self, record: &EventRecord, viewer: &UserId) -> Result<bool> {
        let Some(sender) = record.pdu.get("sender").and_then(Value::as_str) else {
            return Ok(false);
        };
        if sender == viewer.as_str() || !self.erased_users.contains(sender) {
            return Ok(false);
        }
        let membership = self.membership_in_group(record.state_before, viewer)?;
        Ok(membership.as_deref() != Some("join"))
    }

    /// Whether an event goes to other servers redacted: its sender is erased.
    pub(crate) fn erased_for_servers(&self, pdu: &Value) -> bool {
        pdu.get("sender")
            .and_then(Value::as_str)
            .is_some_and(|sender| self.erased_users.contains(sender))
    }
}

/// Replaces a client event's content with what the room version's redaction keeps.
pub(crate) fn erase_client_event(event: &mut Value, version: RoomVersion) {
    let event_type = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(content) = event.get("content").and_then(Value::as_object) {
        let kept = version
            .redaction_algorithm()
            .redact_content(&event_type, content);
        event["content"] = Value::Object(kept);
    }
}
