//! Direct chats: the global account data `m.direct` (`{user ID: [room ID, ...]}`) kept up
//! to date by the server, and finding an existing direct chat instead of opening another.
//!
//! Clients may write `m.direct` themselves too; the server only ever adds to it, keeping
//! whatever else the client stored there.

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value};

use super::account_data::AccountDataGuard;
use crate::error::Result;
use crate::event::Pdu;
use crate::service::Services;
use crate::store::Batch;

pub const DIRECT_TYPE: &str = "m.direct";

impl Services {
    /// Hearth behaviour, beyond the spec: a `createRoom` with `is_direct` and exactly one
    /// invitee reuses a direct chat the creator already has with that user rather than
    /// opening another, as people expect from "message this person". A room qualifies when
    /// the creator's `m.direct` lists it for the invitee, the creator is still joined, and
    /// the invitee is joined or still invited. The newest such room wins.
    pub fn existing_direct_room(
        &self,
        creator: &UserId,
        invitee: &UserId,
    ) -> Result<Option<OwnedRoomId>> {
        let Some(Value::Object(direct)) = self.account_data(creator, None, DIRECT_TYPE)? else {
            return Ok(None);
        };
        let Some(Value::Array(rooms)) = direct.get(invitee.as_str()) else {
            return Ok(None);
        };
        for room in rooms.iter().rev() {
            let Some(room_id) = room.as_str().and_then(|r| RoomId::parse(r).ok()) else {
                continue;
            };
            let invitee_membership = self.membership(&room_id, invitee)?;
            if self.is_joined(&room_id, creator)?
                && matches!(invitee_membership.as_deref(), Some("join" | "invite"))
            {
                return Ok(Some(room_id));
            }
        }
        Ok(None)
    }

    /// Lists `room_id` in `user_id`'s `m.direct` under each of `others`.
    pub fn add_direct_room(
        &self,
        user_id: &UserId,
        others: &[OwnedUserId],
        room_id: &RoomId,
    ) -> Result<()> {
        self.update_account_data(user_id, None, DIRECT_TYPE, |current| {
            Ok(with_direct_room(current, others, room_id))
        })
    }

    /// The same as [`Services::add_direct_room`] for one other user, as part of `batch`,
    /// which the caller writes while holding `guard`.
    pub fn stage_direct_room(
        &self,
        batch: &mut Batch<'_>,
        guard: &AccountDataGuard<'_>,
        user_id: &UserId,
        other: &UserId,
        room_id: &RoomId,
    ) -> Result<()> {
        let current = self.account_data(user_id, None, DIRECT_TYPE)?;
        if let Some(content) = with_direct_room(current, &[other.to_owned()], room_id) {
            self.stage_account_data(batch, guard, user_id, None, DIRECT_TYPE, content)?;
        }
        Ok(())
    }
}

/// When `event` is a user's join and `before` (their membership in the state before it)
/// an invite marked `is_direct`, the user who sent that invite: the joiner's direct chat
/// partner.
pub fn direct_inviter(event: &Pdu, before: Option<&Pdu>) -> Option<OwnedUserId> {
    let before = before?;
    let joiner = event.sender().as_str();
    let is_own_join = event.event_type() == "m.room.member"
        && event.state_key() == Some(joiner)
        && event.membership() == Some("join");
    let was_direct_invite = before.membership() == Some("invite")
        && before.content().get("is_direct") == Some(&Value::Bool(true));
    (is_own_join && was_direct_invite && before.sender() != event.sender())
        .then(|| before.sender().to_owned())
}

/// `current` `m.direct` content with `room_id` listed under each of `others`; `None` when
/// it already is. Entries that are not lists of rooms are replaced, since no client could
/// read them as `m.direct` anyway.
fn with_direct_room(
    current: Option<Value>,
    others: &[OwnedUserId],
    room_id: &RoomId,
) -> Option<Value> {
    let mut direct = match current {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let mut changed = false;
    for other in others {
        let entry = direct
            .entry(other.as_str())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !entry.is_array() {
            *entry = Value::Array(Vec::new());
        }
        if let Value::Array(rooms) = entry
            && !rooms.iter().any(|r| r.as_str() == Some(room_id.as_str()))
        {
            rooms.push(Value::String(room_id.to_string()));
            changed = true;
        }
    }
    changed.then_some(Value::Object(direct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: &str) -> OwnedUserId {
        UserId::parse(id).unwrap()
    }

    #[test]
    fn a_room_is_added_once_and_other_entries_are_kept() {
        let room = RoomId::parse("!r:x").unwrap();
        let current = json!({ "@b:x": ["!old:x"], "@c:x": ["!c:x"], "custom": 1 });
        let updated = with_direct_room(Some(current), &[user("@b:x")], &room).unwrap();
        assert_eq!(
            updated,
            json!({ "@b:x": ["!old:x", "!r:x"], "@c:x": ["!c:x"], "custom": 1 })
        );
        assert_eq!(
            with_direct_room(Some(updated), &[user("@b:x")], &room),
            None
        );
    }

    #[test]
    fn malformed_content_is_replaced_with_a_valid_map() {
        let room = RoomId::parse("!r:x").unwrap();
        assert_eq!(
            with_direct_room(Some(json!("junk")), &[user("@b:x")], &room),
            Some(json!({ "@b:x": ["!r:x"] }))
        );
        assert_eq!(
            with_direct_room(Some(json!({ "@b:x": "!r:x" })), &[user("@b:x")], &room),
            Some(json!({ "@b:x": ["!r:x"] }))
        );
        assert_eq!(
            with_direct_room(None, &[user("@b:x"), user("@c:x")], &room),
            Some(json!({ "@b:x": ["!r:x"], "@c:x": ["!r:x"] }))
        );
    }
}
