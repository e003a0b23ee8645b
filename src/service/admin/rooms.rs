//! The admin API's view of rooms (list, search, details, members) and room blocks.
//! Deleting a room is in `room_deletion`.

use std::cmp::Ordering;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::{Services, now_ms};
use crate::store::BlockedRoomRecord;

/// A room as Synapse's admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RoomSummary {
    pub room_id: OwnedRoomId,
    pub name: Option<String>,
    pub canonical_alias: Option<String>,
    pub topic: Option<String>,
    pub avatar: Option<String>,
    pub joined_members: u64,
    pub joined_local_members: u64,
    pub joined_local_devices: u64,
    pub invited_members: u64,
    pub version: String,
    pub creator: Option<String>,
    pub encryption: Option<String>,
    pub federatable: bool,
    pub public: bool,
    pub join_rules: Option<String>,
    pub guest_access: Option<String>,
    pub history_visibility: Option<String>,
    pub state_events: u64,
    pub room_type: Option<String>,
    /// Hearth: set once an admin deleted the room.
    pub deleted: bool,
    /// Hearth: closed to joins by an admin.
    pub blocked: bool,
}

/// Synapse's `order_by` values for the room list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoomOrder {
    #[default]
    Name,
    CanonicalAlias,
    JoinedMembers,
    JoinedLocalMembers,
    Version,
    Creator,
    Encryption,
    Federatable,
    Public,
    JoinRules,
    GuestAccess,
    HistoryVisibility,
    StateEvents,
}

impl RoomOrder {
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "name" => Self::Name,
            "canonical_alias" => Self::CanonicalAlias,
            "joined_members" | "size" => Self::JoinedMembers,
            "joined_local_members" => Self::JoinedLocalMembers,
            "version" => Self::Version,
            "creator" => Self::Creator,
            "encryption" => Self::Encryption,
            "federatable" => Self::Federatable,
            "public" => Self::Public,
            "join_rules" => Self::JoinRules,
            "guest_access" => Self::GuestAccess,
            "history_visibility" => Self::HistoryVisibility,
            "state_events" => Self::StateEvents,
            other => return Err(Error::invalid_param(format!("Unknown order_by {other}"))),
        })
    }

    fn compare(self, a: &RoomSummary, b: &RoomSummary) -> Ordering {
        // Rooms without a value come last, as Synapse sorts NULLs.
        fn text(a: &Option<String>, b: &Option<String>) -> Ordering {
            match (a, b) {
                (Some(a), Some(b)) => a.to_lowercase().cmp(&b.to_lowercase()),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
        match self {
            Self::Name => text(&a.name, &b.name),
            Self::CanonicalAlias => text(&a.canonical_alias, &b.canonical_alias),
            // Sizes are listed largest first.
            Self::JoinedMembers => b.joined_members.cmp(&a.joined_members),
            Self::JoinedLocalMembers => b.joined_local_members.cmp(&a.joined_local_members),
            Self::Version => a.version.cmp(&b.version),
            Self::Creator => text(&a.creator, &b.creator),
            Self::Encryption => text(&a.encryption, &b.encryption),
            Self::Federatable => b.federatable.cmp(&a.federatable),
            Self::Public => b.public.cmp(&a.public),
            Self::JoinRules => text(&a.join_rules, &b.join_rules),
            Self::GuestAccess => text(&a.guest_access, &b.guest_access),
            Self::HistoryVisibility => text(&a.history_visibility, &b.history_visibility),
            Self::StateEvents => b.state_events.cmp(&a.state_events),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct RoomListQuery {
    /// Matches name, canonical alias or room ID, case-insensitively.
    pub search_term: Option<String>,
    pub order_by: RoomOrder,
    pub backwards: bool,
    pub from: usize,
    pub limit: usize,
}

impl Services {
    /// Who blocked the room, if anyone. Rooms need not exist here to be blocked (as in
    /// Synapse), so a room can be closed before this server ever joins it.
    pub fn admin_room_block(&self, room_id: &RoomId) -> Result<Option<BlockedRoomRecord>> {
        Ok(self.store.blocked_room(room_id.as_str())?)
    }

    pub fn admin_set_room_block(
        &self,
        admin: &UserId,
        room_id: &RoomId,
        block: bool,
    ) -> Result<()> {
        let record = block.then(|| BlockedRoomRecord {
            blocked_by: admin.to_owned(),
            ts: now_ms(),
        });
        let mut batch = self.store.batch();
        batch.set_blocked_room(room_id.as_str(), record.as_ref())?;
        self.store.write(batch)?;
        let action = if block { "room.block" } else { "room.unblock" };
        self.audit(admin, action, room_id, None)
    }

    pub fn admin_room_summary(&self, room_id: &RoomId) -> Result<RoomSummary> {
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found("Room not found"))?;
        let mut summary = RoomSummary {
            room_id: room_id.to_owned(),
            version: room.version.to_string(),
            federatable: true,
            public: self.store.is_published(room_id.as_str())?,
            deleted: self.store.deleted_room(room_id.as_str())?.is_some(),
            blocked: self.store.blocked_room(room_id.as_str())?.is_some(),
            name: None,
            canonical_alias: None,
            topic: None,
            avatar: None,
            joined_members: 0,
            joined_local_members: 0,
            joined_local_devices: 0,
            invited_members: 0,
            creator: None,
            encryption: None,
            join_rules: None,
            guest_access: None,
            history_visibility: None,
            state_events: 0,
            room_type: None,
        };
        for ((event_type, state_key), event_id) in
            self.store.current_state(room_id.as_str(), None)?
        {
            summary.state_events += 1;
            let Some(record) = self.store.event(event_id.as_str())? else {
                continue;
            };
            let content = &record.pdu["content"];
            let text = |field: &str| {
                content
                    .get(field)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            match (event_type.as_str(), state_key.as_str()) {
                ("m.room.member", user) => match content["membership"].as_str() {
                    Some("join") => {
                        summary.joined_members += 1;
                        if let Ok(user_id) = UserId::parse(user)
                            && user_id.server_name() == self.server_name()
                        {
                            summary.joined_local_members += 1;
                            summary.joined_local_devices +=
                                self.store.devices_shared(user_id.as_str())?.len() as u64;
                        }
                    }
                    Some("invite") => summary.invited_members += 1,
                    _ => {}
                },
                ("m.room.create", "") => {
                    summary.creator = text("creator")
                        .or_else(|| record.pdu["sender"].as_str().map(str::to_owned));
                    summary.federatable = content.get("m.federate") != Some(&Value::Bool(false));
                    summary.room_type = text("type");
                }
                ("m.room.name", "") => summary.name = text("name").filter(|n| !n.is_empty()),
                ("m.room.topic", "") => summary.topic = text("topic").filter(|t| !t.is_empty()),
                ("m.room.avatar", "") => summary.avatar = text("url"),
                ("m.room.canonical_alias", "") => {
                    summary.canonical_alias = text("alias").filter(|a| !a.is_empty())
                }
                ("m.room.encryption", "") => summary.encryption = text("algorithm"),
                ("m.room.join_rules", "") => summary.join_rules = text("join_rule"),
                ("m.room.guest_access", "") => summary.guest_access = text("guest_access"),
                ("m.room.history_visibility", "") => {
                    summary.history_visibility = text("history_visibility")
                }
                _ => {}
            }
        }
        Ok(summary)
    }

    /// One page of rooms, and how many match in all.
    pub fn admin_list_rooms(&self, query: &RoomListQuery) -> Result<(Vec<RoomSummary>, usize)> {
        let needle = query.search_term.as_deref().map(str::to_lowercase);
        let mut rooms = Vec::new();
        for room_id in self.store.all_room_ids()? {
            let summary = self.admin_room_summary(&room_id)?;
            if let Some(needle) = &needle {
                let hit = |s: Option<&str>| s.is_some_and(|s| s.to_lowercase().contains(needle));
                if !hit(summary.name.as_deref())
                    && !hit(summary.canonical_alias.as_deref())
                    && !hit(Some(summary.room_id.as_str()))
                {
                    continue;
                }
            }
            rooms.push(summary);
        }
        rooms.sort_by(|a, b| {
            query
                .order_by
                .compare(a, b)
                .then_with(|| a.room_id.cmp(&b.room_id))
        });
        if query.backwards {
            rooms.reverse();
        }
        let total = rooms.len();
        let page = rooms
            .into_iter()
            .skip(query.from)
            .take(query.limit)
            .collect();
        Ok((page, total))
    }

    /// The room's joined members.
    pub fn admin_room_members(&self, room_id: &RoomId) -> Result<Vec<OwnedUserId>> {
        if self.store.room(room_id.as_str())?.is_none() {
            return Err(Error::not_found("Room not found"));
        }
        Ok(self.room_members(room_id)?.joined.clone())
    }
}
