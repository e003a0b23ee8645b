//! Typing notifications: held in memory only, as they are worthless after a few seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use crate::error::{Error, Result};
use crate::service::{Services, now_ms};

/// Clients ask for 30 s; a longer claim is cut so a crashed client's "typing" ends soon.
pub const MAX_TYPING: Duration = Duration::from_secs(120);

pub struct Typing {
    inner: Mutex<Inner>,
}

struct Inner {
    /// The typing stream: bumped whenever any room's typing set changes. It starts from
    /// the clock so that tokens issued before a restart stay below every later position.
    position: u64,
    rooms: HashMap<OwnedRoomId, RoomTyping>,
}

#[derive(Default)]
struct RoomTyping {
    position: u64,
    /// Each typist with the serial of their latest update, so an expiry timer only
    /// removes the update it was started for.
    users: Vec<(OwnedUserId, u64)>,
}

impl Default for Typing {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                position: now_ms(),
                rooms: HashMap::new(),
            }),
        }
    }
}

impl Typing {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn position(&self) -> u64 {
        self.inner().position
    }

    /// Records the user as typing or not. Returns the update's serial, for its expiry
    /// timer, and whether clients see a change (a renewal changes nothing they see);
    /// `None` when nothing changed at all.
    fn update(&self, room_id: &RoomId, user_id: &UserId, typing: bool) -> Option<(u64, bool)> {
        let mut inner = self.inner();
        let next = inner.position + 1;
        let room = inner.rooms.entry(room_id.to_owned()).or_default();
        let existing = room.users.iter().position(|(u, _)| u == user_id);
        let visible = match (existing, typing) {
            (None, false) => return None,
            (Some(index), false) => {
                room.users.remove(index);
                true
            }
            (Some(index), true) => {
                room.users[index].1 = next;
                false
            }
            (None, true) => {
                room.users.push((user_id.to_owned(), next));
                true
            }
        };
        if visible {
            room.position = next;
        }
        inner.position = next;
        Some((next, visible))
    }

    fn expire(&self, room_id: &RoomId, user_id: &UserId, serial: u64) -> bool {
        let mut inner = self.inner();
        let Some(room) = inner.rooms.get_mut(room_id) else {
            return false;
        };
        let before = room.users.len();
        room.users.retain(|(u, s)| !(u == user_id && *s == serial));
        if room.users.len() == before {
            return false;
        }
        inner.position += 1;
        let position = inner.position;
        if let Some(room) = inner.rooms.get_mut(room_id) {
            room.position = position;
        }
        true
    }

    /// The room's typists if its set changed after `since` (always, when `since` is none).
    pub fn changed_since(&self, room_id: &RoomId, since: Option<u64>) -> Option<Vec<OwnedUserId>> {
        let inner = self.inner();
        let room = inner.rooms.get(room_id)?;
        if since.is_some_and(|since| room.position <= since) {
            return None;
        }
        if since.is_none() && room.users.is_empty() {
            return None;
        }
        Some(room.users.iter().map(|(u, _)| u.clone()).collect())
    }
}

impl Services {
    /// `PUT /rooms/{roomId}/typing/{userId}`: only joined members, only for themselves.
    pub fn set_typing(
        self: &Arc<Self>,
        room_id: &RoomId,
        user_id: &UserId,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if !self.is_joined(room_id, user_id)? {
            return Err(Error::forbidden("You are not joined to this room"));
        }
        // A shadow-banned user types to nobody.
        if self.is_shadow_banned(user_id)? {
            return Ok(());
        }
        let Some((serial, visible)) = self.typing.update(room_id, user_id, timeout.is_some())
        else {
            return Ok(());
        };
        if visible {
            self.wake_room(room_id);
            if user_id.server_name() == self.server_name() {
                self.federate_room_edu(
                    room_id,
                    "m.typing",
                    serde_json::json!({
                        "room_id": room_id,
                        "user_id": user_id,
                        "typing": timeout.is_some(),
                    }),
                );
            }
        }
        if let Some(timeout) = timeout {
            let services = Arc::clone(self);
            let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(timeout.min(MAX_TYPING)).await;
                if services.typing.expire(&room_id, &user_id, serial) {
                    services.wake_room(&room_id);
                }
            });
        }
        Ok(())
    }

    pub fn wake_room(&self, room_id: &RoomId) {
        match self.room_members(room_id) {
            Ok(members) => self.notifier.wake(members.audience()),
            Err(e) => tracing::warn!(error = %e, room = %room_id, "cannot wake room members"),
        }
    }
}
