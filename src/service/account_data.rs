//! Account data (global and per room) and room tags, which Synapse and clients treat as
//! the room account data `m.tag`, so tags travel through the same storage and stream.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;
use crate::store::Batch;

/// Types the server manages through their own endpoints; the spec has clients' writes
/// refused, globally and per room.
const SERVER_MANAGED: [&str; 2] = ["m.fully_read", "m.push_rules"];

pub const TAG_TYPE: &str = "m.tag";

const STRIPES: usize = 64;

/// Serialises each user's account data writes: a write reads the user's newest stream
/// position and the previous content, then stores both anew. Striped so memory stays
/// bounded however many users write.
pub struct AccountDataLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for AccountDataLocks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

/// Proof that the user's account data lock is held while a batch is being prepared.
pub struct AccountDataGuard<'a> {
    _held: MutexGuard<'a, ()>,
}

impl AccountDataLocks {
    pub fn lock(&self, user_id: &UserId) -> AccountDataGuard<'_> {
        let mut hasher = DefaultHasher::new();
        user_id.as_str().hash(&mut hasher);
        let stripe = &self.stripes[(hasher.finish() % STRIPES as u64) as usize];
        AccountDataGuard {
            _held: stripe.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

impl Services {
    /// Per-room account data exists only for rooms the user has a membership in (of any
    /// kind, so data stays readable after leaving). Unknown rooms answer the same, so the
    /// answer tells nothing about rooms the user is not in.
    fn check_room_account_data(&self, user_id: &UserId, room_id: Option<&RoomId>) -> Result<()> {
        if let Some(room_id) = room_id
            && self
                .store
                .user_room(user_id.as_str(), room_id.as_str())?
                .is_none()
        {
            return Err(Error::forbidden(
                "You have no membership in this room, so you cannot keep account data for it",
            ));
        }
        Ok(())
    }

    /// The users `user_id` ignores (`m.ignored_user_list`); entries that are not user
    /// IDs are skipped.
    pub fn ignored_users(&self, user_id: &UserId) -> Result<HashSet<OwnedUserId>> {
        let content = self.account_data(user_id, None, "m.ignored_user_list")?;
        Ok(content
            .as_ref()
            .and_then(|c| c.get("ignored_users"))
            .and_then(Value::as_object)
            .map(|users| {
                users
                    .keys()
                    .filter_map(|u| OwnedUserId::try_from(u.as_str()).ok())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The stored content, without any access check.
    pub fn account_data(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
    ) -> Result<Option<Value>> {
        Ok(self
            .store
            .account_data(user_id.as_str(), room_id.map(|r| r.as_str()), data_type)?
            .map(|r| r.content))
    }

    /// A client's read of its own account data.
    pub fn get_account_data(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
    ) -> Result<Value> {
        self.check_room_account_data(user_id, room_id)?;
        self.account_data(user_id, room_id, data_type)?
            .ok_or_else(|| match room_id {
                None => Error::not_found(format!("No account data of type {data_type}")),
                Some(_) => Error::not_found(format!("No room account data of type {data_type}")),
            })
    }

    /// A client's write of its own account data.
    pub fn set_account_data(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
        content: Map<String, Value>,
    ) -> Result<()> {
        if SERVER_MANAGED.contains(&data_type) {
            let hint = match data_type {
                "m.fully_read" => "use /rooms/{roomId}/read_markers",
                _ => "use the /pushrules endpoints",
            };
            return Err(Error::new(
                ErrorKind::ServerManagedType,
                format!("Cannot set {data_type} through this API; {hint}"),
            ));
        }
        self.check_room_account_data(user_id, room_id)?;
        self.update_account_data(user_id, room_id, data_type, |_| {
            Ok(Some(Value::Object(content)))
        })
    }

    /// Reads the content, lets `change` compute the new one (`None`: leave it as it is),
    /// and stores it at the user's next stream position, all under the user's lock.
    pub fn update_account_data(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
        change: impl FnOnce(Option<Value>) -> Result<Option<Value>>,
    ) -> Result<()> {
        let guard = self.account_data_locks.lock(user_id);
        let current = self.account_data(user_id, room_id, data_type)?;
        let Some(content) = change(current)? else {
            return Ok(());
        };
        let mut batch = self.store.batch();
        self.stage_account_data(&mut batch, &guard, user_id, room_id, data_type, content)?;
        self.store.write(batch)?;
        drop(guard);
        self.notifier.wake([user_id]);
        Ok(())
    }

    /// Adds an account data write to `batch`, which the caller writes while still holding
    /// `_guard` (the user's lock). At most one write per user in one batch: both would
    /// take the same position.
    pub fn stage_account_data(
        &self,
        batch: &mut Batch<'_>,
        _guard: &AccountDataGuard<'_>,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        data_type: &str,
        content: Value,
    ) -> Result<u64> {
        let room = room_id.map(|r| r.as_str());
        let previous = self
            .store
            .account_data(user_id.as_str(), room, data_type)?
            .map(|r| r.position);
        let position = self.store.account_data_position(user_id.as_str())? + 1;
        batch.put_account_data(
            user_id.as_str(),
            room,
            data_type,
            content,
            position,
            previous,
        )?;
        Ok(position)
    }

    /// The room's tags for the user: `{"tags": {...}}`, empty when none were set.
    pub fn room_tags(&self, user_id: &UserId, room_id: &RoomId) -> Result<Value> {
        self.check_room_account_data(user_id, Some(room_id))?;
        let tags = self
            .account_data(user_id, Some(room_id), TAG_TYPE)?
            .map(|content| tags_of(&content))
            .unwrap_or_default();
        Ok(json!({ "tags": tags }))
    }

    /// Adds or replaces a tag. Its content is kept as given (as Synapse does), once any
    /// `order` is a number in [0, 1] as the spec defines it.
    pub fn set_room_tag(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        tag: &str,
        content: Map<String, Value>,
    ) -> Result<()> {
        if let Some(order) = content.get("order") {
            let valid = order.as_f64().is_some_and(|o| (0.0..=1.0).contains(&o));
            if !valid {
                return Err(Error::bad_json(
                    "order must be a number between 0 and 1 inclusive",
                ));
            }
        }
        self.check_room_account_data(user_id, Some(room_id))?;
        self.update_account_data(user_id, Some(room_id), TAG_TYPE, |current| {
            let mut tags = current.as_ref().map(tags_of).unwrap_or_default();
            tags.insert(tag.to_owned(), Value::Object(content));
            Ok(Some(json!({ "tags": tags })))
        })
    }

    /// Removes a tag; removing one that is not there succeeds and changes nothing.
    pub fn remove_room_tag(&self, user_id: &UserId, room_id: &RoomId, tag: &str) -> Result<()> {
        self.check_room_account_data(user_id, Some(room_id))?;
        self.update_account_data(user_id, Some(room_id), TAG_TYPE, |current| {
            let mut tags = current.as_ref().map(tags_of).unwrap_or_default();
            if tags.remove(tag).is_none() {
                return Ok(None);
            }
            Ok(Some(json!({ "tags": tags })))
        })
    }
}

/// The tags of an `m.tag` content. Clients may have written any object there through
/// the account data endpoint; what is not a map of tags counts as no tags.
fn tags_of(content: &Value) -> Map<String, Value> {
    match content.get("tags") {
        Some(Value::Object(tags)) => tags.clone(),
        _ => Map::new(),
    }
}
