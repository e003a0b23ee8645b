//! The legacy `/initialSync` endpoints: a snapshot of all the user's rooms, or of one room
//! (for its members, its former members up to their departure, and anyone peeking into a
//! world-readable room), in the shape Synapse gives them.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ruma::{DeviceId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use super::{SyncToken, TimelineWindow};
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::event_stream::legacy_client_event;
use crate::service::push_rules::PUSH_RULES_TYPE;
use crate::service::rooms::{ClientView, ReadAccess};

/// Messages per room when the client gives no limit, and the most it may ask.
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 1000;

/// Account data types by room (`None`: global).
type AccountDataTypes = BTreeMap<Option<String>, BTreeSet<String>>;

impl Services {
    /// `GET /initialSync`: every room the user is joined to or invited to (and, with
    /// `archived`, has left), with its newest `limit` messages and its state.
    pub fn initial_sync(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        limit: usize,
        archived: bool,
    ) -> Result<Value> {
        let view = ClientView { user_id, device_id };
        let now = self.sync_position(user_id)?;
        let ignored = self.ignored_users(user_id)?;
        let account_data = self.account_data_types(user_id)?;
        let mut rooms = Vec::new();
        let mut receipts = Vec::new();
        for (room_id, record) in self.store.user_rooms_shared(user_id.as_str())?.iter() {
            let membership = record.membership.as_str();
            let wanted = match membership {
                "join" | "invite" => true,
                "leave" | "ban" => archived && !record.forgotten,
                _ => false,
            };
            if !wanted {
                continue;
            }
            let mut room = json!({
                "room_id": room_id,
                "membership": membership,
                "visibility": self.visibility_word(room_id)?,
            });
            match membership {
                "invite" => {
                    if let Some((_, event)) =
                        self.client_event_by_id(record.event_id.as_str(), Some(view))?
                    {
                        room["invite"] = legacy_client_event(event);
                    }
                }
                _ if self.store.room(room_id.as_str())?.is_none() => {
                    // A declined invite to a room this server was never in.
                }
                _ => {
                    let to = if membership == "join" {
                        now.events
                    } else {
                        record.stream.min(now.events)
                    };
                    let (messages, state) =
                        self.room_snapshot(view, room_id, &ignored, now, to, limit)?;
                    room["messages"] = messages;
                    room["state"] = json!(state);
                    room["account_data"] =
                        json!(self.account_data_events(user_id, Some(room_id), &account_data)?);
                    if membership == "join"
                        && let Some(mut receipt) = self.receipt_content(user_id, room_id, None)?
                    {
                        receipt["room_id"] = json!(room_id);
                        receipts.push(receipt);
                    }
                }
            }
            rooms.push(room);
        }
        let presence = if self.config.presence.enabled {
            let mut users: Vec<OwnedUserId> = self.co_members(user_id)?.into_iter().collect();
            users.sort();
            self.presence_events(&users)
        } else {
            Vec::new()
        };
        Ok(json!({
            "end": now.to_string(),
            "rooms": rooms,
            "presence": presence,
            "receipts": receipts,
            "account_data": self.account_data_events(user_id, None, &account_data)?,
        }))
    }

    /// `GET /rooms/{roomId}/initialSync`: one room as a member sees it now, as a former
    /// member saw it when they left, or as anyone sees a world-readable room.
    pub fn room_initial_sync(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
        limit: usize,
    ) -> Result<Value> {
        let view = ClientView { user_id, device_id };
        let now = self.sync_position(user_id)?;
        let ignored = self.ignored_users(user_id)?;
        let (membership, to) = match self.read_access(room_id, user_id)? {
            ReadAccess::Joined { .. } => (Some("join".to_owned()), now.events),
            ReadAccess::Departed { leave } => {
                let membership = leave
                    .pdu
                    .pointer("/content/membership")
                    .and_then(Value::as_str)
                    .unwrap_or("leave")
                    .to_owned();
                (Some(membership), leave.stream.min(now.events))
            }
            ReadAccess::Peeking => (None, now.events),
            ReadAccess::Denied(why) => return Err(Error::forbidden(why)),
        };
        let (messages, state) = self.room_snapshot(view, room_id, &ignored, now, to, limit)?;
        let account_data = self.account_data_types(user_id)?;
        let present = to == now.events;
        let presence = if present && self.config.presence.enabled {
            let members = self.room_members(room_id)?;
            self.presence_events(&members.joined)
        } else {
            Vec::new()
        };
        let receipts: Vec<Value> = if present {
            self.receipt_content(user_id, room_id, None)?
                .into_iter()
                .map(|mut receipt| {
                    receipt["room_id"] = json!(room_id);
                    receipt
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut room = json!({
            "room_id": room_id,
            "messages": messages,
            "state": state,
            "presence": presence,
            "receipts": receipts,
            "visibility": self.visibility_word(room_id)?,
            "account_data": self.account_data_events(user_id, Some(room_id), &account_data)?,
        });
        // As Synapse: someone peeking has no membership to report.
        if let Some(membership) = membership {
            room["membership"] = json!(membership);
        }
        Ok(room)
    }

    /// The room's newest `limit` messages up to stream position `to` that the user may
    /// see, with `/messages` tokens around them, and the room's state at `to`.
    fn room_snapshot(
        &self,
        view: ClientView<'_>,
        room_id: &RoomId,
        ignored: &HashSet<OwnedUserId>,
        now: SyncToken,
        to: u64,
        limit: usize,
    ) -> Result<(Value, Vec<Value>)> {
        let window = TimelineWindow {
            from: 0,
            to,
            limit,
            current_state_visible: false,
        };
        let timeline = self.visible_timeline(room_id, view, window, |event| {
            event.get("state_key").is_some()
                || !event
                    .get("sender")
                    .and_then(Value::as_str)
                    .is_some_and(|s| ignored.iter().any(|u| u.as_str() == s))
        })?;
        let start = match timeline.events.first() {
            Some((position, _)) => position.saturating_sub(1),
            None => to,
        };
        let messages = json!({
            "chunk": timeline
                .events
                .into_iter()
                .map(|(_, e)| legacy_client_event(e.into_value()))
                .collect::<Vec<_>>(),
            "start": SyncToken { events: start, ..now }.to_string(),
            "end": SyncToken { events: to, ..now }.to_string(),
        });
        let mut state = Vec::new();
        for event_id in self.state_at(room_id, to)?.unwrap_or_default().values() {
            if let Some((_, event)) = self.client_event_by_id(event_id.as_str(), Some(view))? {
                state.push(legacy_client_event(event));
            }
        }
        Ok((messages, state))
    }

    /// `public` for a room in the published directory, otherwise `private`.
    fn visibility_word(&self, room_id: &RoomId) -> Result<&'static str> {
        Ok(if self.store.is_published(room_id.as_str())? {
            "public"
        } else {
            "private"
        })
    }

    /// The legacy presence events of `users`: the sender repeated in the content.
    fn presence_events(&self, users: &[OwnedUserId]) -> Vec<Value> {
        users
            .iter()
            .filter_map(|user| {
                let mut event = self.presence.event(user)?;
                event["content"]["user_id"] = json!(user);
                Some(event)
            })
            .collect()
    }

    /// The types of all the user's account data, global (`None`) and per room, read once
    /// per request. As in Synapse, the push rules are left out (clients read them from
    /// `/pushrules`).
    fn account_data_types(&self, user_id: &UserId) -> Result<AccountDataTypes> {
        let mut types = AccountDataTypes::new();
        for (_, change) in self.store.account_data_changes_since(user_id.as_str(), 0)? {
            if change.room_id.is_none() && change.data_type == PUSH_RULES_TYPE {
                continue;
            }
            types
                .entry(change.room_id)
                .or_default()
                .insert(change.data_type);
        }
        Ok(types)
    }

    /// The user's account data events, global or of one room (tags, `m.tag`, included).
    fn account_data_events(
        &self,
        user_id: &UserId,
        room_id: Option<&RoomId>,
        types: &AccountDataTypes,
    ) -> Result<Vec<Value>> {
        let mut events = Vec::new();
        let key = room_id.map(|r| r.as_str().to_owned());
        for data_type in types.get(&key).into_iter().flatten() {
            if let Some(content) = self.account_data(user_id, room_id, data_type)? {
                events.push(json!({"type": data_type, "content": content}));
            }
        }
        Ok(events)
    }
}
