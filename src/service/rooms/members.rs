//! Who is in each room, kept in memory: every event's delivery, every typing or receipt
//! update and every presence change asks this, so it must not read RocksDB each time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use crate::error::Result;
use crate::service::Services;

/// A room's joined and invited members, each list in the order they got that membership.
#[derive(Debug, Default)]
pub struct RoomMembers {
    pub joined: Vec<OwnedUserId>,
    pub invited: Vec<OwnedUserId>,
}

impl RoomMembers {
    pub fn is_joined(&self, user_id: &UserId) -> bool {
        self.joined.iter().any(|u| u == user_id)
    }

    /// Everyone the room's events are delivered to.
    pub fn audience(&self) -> impl Iterator<Item = &UserId> {
        self.joined.iter().chain(&self.invited).map(|u| u.as_ref())
    }
}

#[derive(Default)]
pub struct MemberCache {
    rooms: Mutex<HashMap<OwnedRoomId, Arc<RoomMembers>>>,
    /// Bumped by every invalidation; a load that raced one is not cached.
    generation: AtomicU64,
}

impl MemberCache {
    /// Called before a membership change becomes visible to readers.
    pub fn invalidate(&self, room_id: &RoomId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room_id);
    }
}

impl Services {
    pub fn room_members(&self, room_id: &RoomId) -> Result<Arc<RoomMembers>> {
        let cache = &self.rooms.members;
        if let Some(members) = cache
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room_id)
        {
            return Ok(members.clone());
        }
        let generation = cache.generation.load(Ordering::SeqCst);
        let mut joined = Vec::new();
        let mut invited = Vec::new();
        for ((_, state_key), event_id) in self
            .store
            .current_state(room_id.as_str(), Some("m.room.member"))?
        {
            let Some(record) = self.store.event(event_id.as_str())? else {
                continue;
            };
            let Ok(user_id) = OwnedUserId::try_from(state_key) else {
                continue;
            };
            let membership = record
                .pdu
                .pointer("/content/membership")
                .and_then(Value::as_str);
            match membership {
                Some("join") => joined.push((record.stream, user_id)),
                Some("invite") => invited.push((record.stream, user_id)),
                _ => {}
            }
        }
        joined.sort();
        invited.sort();
        let members = Arc::new(RoomMembers {
            joined: joined.into_iter().map(|(_, u)| u).collect(),
            invited: invited.into_iter().map(|(_, u)| u).collect(),
        });
        let mut rooms = cache.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if cache.generation.load(Ordering::SeqCst) == generation {
            rooms.insert(room_id.to_owned(), members.clone());
        }
        Ok(members)
    }
}

impl Services {
    /// What a user invited to a room of this server sees of it: the stripped state with
    /// their own invite and, as Synapse shares it, the inviter's membership (which
    /// clients show as who invited them).
    pub fn invite_state(
        &self,
        room_id: &RoomId,
        invitee: &UserId,
        invite_event: &ruma::EventId,
    ) -> Result<Vec<Value>> {
        let mut state = self.stripped_state(room_id, Some(invitee))?;
        let inviter = self.store.event(invite_event.as_str())?.and_then(|record| {
            record
                .pdu
                .get("sender")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let Some(inviter) = inviter.filter(|i| i != invitee.as_str()) else {
            return Ok(state);
        };
        if let Some(id) =
            self.store
                .current_state_id(room_id.as_str(), "m.room.member", &inviter)?
            && let Some(record) = self.store.event(id.as_str())?
        {
            state.push(serde_json::json!({
                "type": "m.room.member",
                "state_key": inviter,
                "sender": record.pdu.get("sender"),
                "content": record.pdu.get("content"),
            }));
        }
        Ok(state)
    }
}
