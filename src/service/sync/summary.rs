//! What a sync says about a room besides its timeline and state: the summary (member
//! counts and heroes) and, for invitees and knockers, the stripped state.

use ruma::{OwnedUserId, RoomId};
use serde_json::{Value, json};

use crate::error::Result;
use crate::service::Services;

/// The most heroes a summary names, as the spec suggests.
const MAX_HEROES: usize = 5;

/// State event types shown to invitees and knockers before they join.
const STRIPPED_STATE_TYPES: [&str; 7] = [
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

impl Services {
    /// Member counts, from the room's current membership, and heroes when the room has
    /// neither a name nor a canonical alias (the spec requires them only then; Synapse
    /// sends them only then).
    pub(super) fn room_summary(&self, user_id: &ruma::UserId, room_id: &RoomId) -> Result<Value> {
        let members = self.room_members(room_id)?;
        let mut summary = json!({
            "m.joined_member_count": members.joined.len(),
            "m.invited_member_count": members.invited.len(),
        });
        let named = self.state_text(room_id, "m.room.name", "name")?
            || self.state_text(room_id, "m.room.canonical_alias", "alias")?;
        if !named {
            let heroes: Vec<&OwnedUserId> = members
                .joined
                .iter()
                .chain(&members.invited)
                .filter(|u| u.as_str() != user_id.as_str())
                .take(MAX_HEROES)
                .collect();
            summary["m.heroes"] = json!(heroes);
        }
        Ok(summary)
    }

    /// Whether the room's current `event_type` state (empty state key) has a non-empty
    /// string `field`.
    fn state_text(&self, room_id: &RoomId, event_type: &str, field: &str) -> Result<bool> {
        let Some(id) = self
            .store
            .current_state_id(room_id.as_str(), event_type, "")?
        else {
            return Ok(false);
        };
        let Some(cached) = self.store.event_shared(id.as_str())? else {
            return Ok(false);
        };
        Ok(cached
            .record
            .pdu
            .pointer(&format!("/content/{field}"))
            .and_then(Value::as_str)
            .is_some_and(|text| !text.is_empty()))
    }

    /// What an invitee or knocker may see of a room: a few state events, stripped to
    /// type, state key, sender and content, plus their own membership event.
    pub fn stripped_state(
        &self,
        room_id: &RoomId,
        member: Option<&ruma::UserId>,
    ) -> Result<Vec<Value>> {
        let mut events = Vec::new();
        let mut wanted: Vec<(String, String)> = STRIPPED_STATE_TYPES
            .iter()
            .map(|t| ((*t).to_owned(), String::new()))
            .collect();
        if let Some(member) = member {
            wanted.push(("m.room.member".to_owned(), member.to_string()));
        }
        for (event_type, state_key) in wanted {
            let Some(event_id) =
                self.store
                    .current_state_id(room_id.as_str(), &event_type, &state_key)?
            else {
                continue;
            };
            if let Some(record) = self.store.event(event_id.as_str())? {
                let pdu = &record.pdu;
                events.push(json!({
                    "type": event_type,
                    "state_key": state_key,
                    "sender": pdu.get("sender"),
                    "content": pdu.get("content"),
                }));
            }
        }
        Ok(events)
    }
}
