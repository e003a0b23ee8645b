//! Room aliases, the `m.room.canonical_alias` checks that depend on them, and the
//! published room directory.

use std::cmp::Reverse;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ruma::{OwnedRoomAliasId, OwnedRoomId, RoomAliasId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::event::RoomPowers;
use crate::service::Services;
use crate::service::rooms::EventTemplate;
use crate::store::AliasRecord;

const CANONICAL_ALIAS: &str = "m.room.canonical_alias";

/// Serialises alias creation so that checking an alias is free and taking it are one step.
#[derive(Default)]
pub struct Directory {
    aliases: tokio::sync::Mutex<()>,
}

/// A validated `publicRooms` request for this server's directory.
#[derive(Debug, Clone, Default)]
pub struct PublicRoomsQuery {
    /// `None` lists every room.
    pub limit: Option<usize>,
    pub since: Option<String>,
    pub search_term: Option<String>,
    /// `None` in the list stands for rooms without a type.
    pub room_types: Option<Vec<Option<String>>>,
}

/// A pagination position: the sort key of the first room of a page (`Next`), or of the
/// first room after the page (`Prev`). Keys rather than offsets keep pages from
/// shifting when rooms are published or unpublished between requests.
enum Position {
    Next(u64, OwnedRoomId),
    Prev(u64, OwnedRoomId),
}

impl Position {
    fn encode(&self) -> String {
        let (direction, count, room_id) = match self {
            Position::Next(c, r) => ('n', c, r),
            Position::Prev(c, r) => ('p', c, r),
        };
        format!(
            "{direction}{count}_{}",
            URL_SAFE_NO_PAD.encode(room_id.as_bytes())
        )
    }

    fn decode(token: &str) -> Result<Self> {
        let invalid = || Error::invalid_param(format!("Invalid pagination token {token:?}"));
        let mut chars = token.chars();
        let direction = chars.next().ok_or_else(invalid)?;
        let (count, room) = chars.as_str().split_once('_').ok_or_else(invalid)?;
        let count: u64 = count.parse().map_err(|_| invalid())?;
        let room = URL_SAFE_NO_PAD.decode(room).map_err(|_| invalid())?;
        let room_id = String::from_utf8(room)
            .ok()
            .and_then(|r| OwnedRoomId::try_from(r).ok())
            .ok_or_else(invalid)?;
        match direction {
            'n' => Ok(Position::Next(count, room_id)),
            'p' => Ok(Position::Prev(count, room_id)),
            _ => Err(invalid()),
        }
    }
}

/// One published room as the directory lists it.
struct Listing {
    joined: u64,
    room_id: OwnedRoomId,
    entry: Map<String, Value>,
    room_type: Option<String>,
}

impl Listing {
    /// Most joined members first, ties broken by room ID so the order is total.
    fn key(&self) -> (Reverse<u64>, &RoomId) {
        (Reverse(self.joined), &self.room_id)
    }

    fn matches(&self, query: &PublicRoomsQuery) -> bool {
        if let Some(types) = &query.room_types
            && !types.contains(&self.room_type)
        {
            return false;
        }
        let Some(term) = query
            .search_term
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return true;
        };
        let term = term.to_lowercase();
        ["name", "topic", "canonical_alias", "room_id"]
            .iter()
            .filter_map(|field| self.entry.get(*field).and_then(Value::as_str))
            .any(|text| text.to_lowercase().contains(&term))
    }
}

impl Services {
    /// Parses any syntactically valid alias (`400 M_INVALID_PARAM` otherwise).
    pub fn parse_alias(&self, text: &str) -> Result<OwnedRoomAliasId> {
        RoomAliasId::parse(text)
            .map_err(|e| Error::invalid_param(format!("Invalid room alias {text:?}: {e}")))
    }

    /// Parses an alias a local user wants to create: it must be on this server, and its
    /// local part non-empty and free of whitespace and control characters, which no
    /// client could show or type back.
    pub fn parse_new_alias(&self, text: &str) -> Result<OwnedRoomAliasId> {
        let alias = self.parse_alias(text)?;
        let localpart = alias.alias();
        if localpart.is_empty() {
            return Err(Error::invalid_param(
                "The room alias has an empty local part",
            ));
        }
        if localpart
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::invalid_param(format!(
                "Room alias {alias} contains whitespace or control characters"
            )));
        }
        if alias.server_name() != self.server_name() {
            return Err(Error::invalid_param(format!(
                "Room alias {alias} is not on this server ({}); only local aliases can be created",
                self.server_name()
            )));
        }
        Ok(alias)
    }

    /// The room a local alias points to. Aliases of other servers would need a
    /// federation query, which this server cannot make yet.
    pub fn resolve_alias(&self, alias: &RoomAliasId) -> Result<OwnedRoomId> {
        if alias.server_name() != self.server_name() {
            return Err(Error::not_found(format!(
                "Room alias {alias} belongs to another server, and resolving it needs federation, which this server does not offer yet"
            )));
        }
        self.store
            .alias(alias.as_str())?
            .map(|record| record.room_id)
            .ok_or_else(|| Error::not_found(format!("Room alias {alias} not found")))
    }

    pub fn is_server_admin(&self, user_id: &UserId) -> Result<bool> {
        Ok(self
            .store
            .user(user_id.as_str())?
            .is_some_and(|u| u.admin && !u.deactivated))
    }

    /// Holds alias creation still; see [`Directory`].
    pub(crate) async fn lock_aliases(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.directory.aliases.lock().await
    }

    /// Stores a mapping; the caller holds [`Self::lock_aliases`] and checked the alias is free.
    pub(crate) fn write_alias(
        &self,
        alias: &RoomAliasId,
        room_id: &RoomId,
        creator: &UserId,
    ) -> Result<()> {
        let mut batch = self.store.batch();
        batch.put_alias(
            alias.as_str(),
            &AliasRecord {
                room_id: room_id.to_owned(),
                creator: creator.to_owned(),
            },
        )?;
        self.store.write(batch)?;
        Ok(())
    }

    /// `PUT /directory/room/{roomAlias}`: joined members (and server admins) may point a
    /// new local alias at a room. A taken alias is `409 M_UNKNOWN`, as the spec shows.
    pub async fn create_alias(
        &self,
        alias: &RoomAliasId,
        room_id: &RoomId,
        creator: &UserId,
    ) -> Result<()> {
        if self.store.room(room_id.as_str())?.is_none() {
            return Err(Error::not_found(format!("Unknown room {room_id}")));
        }
        if !self.is_joined(room_id, creator)? && !self.is_server_admin(creator)? {
            return Err(Error::forbidden(
                "You must be joined to the room to create an alias for it",
            ));
        }
        let _guard = self.lock_aliases().await;
        if self.store.alias(alias.as_str())?.is_some() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("Room alias {alias} already exists"),
            ));
        }
        self.write_alias(alias, room_id, creator)?;
        tracing::info!(%alias, %room_id, %creator, "room alias created");
        Ok(())
    }

    /// `DELETE /directory/room/{roomAlias}`: allowed to the alias's creator, to server
    /// admins, and to joined members who may send `m.room.canonical_alias` (as Synapse
    /// decides). The room's canonical alias event stops naming the alias when the user
    /// may update it; the deletion stands either way, as the spec recommends.
    pub async fn delete_alias(&self, alias: &RoomAliasId, user: &UserId) -> Result<()> {
        let not_found = || Error::not_found(format!("Room alias {alias} not found"));
        let room_id = {
            let _guard = self.lock_aliases().await;
            let record = self.store.alias(alias.as_str())?.ok_or_else(not_found)?;
            if record.creator != user && !self.can_edit_directory(&record.room_id, user)? {
                return Err(Error::forbidden(
                    "Only the alias's creator, a server admin, or a room member with the power to change the room's canonical alias can delete it",
                ));
            }
            let mut batch = self.store.batch();
            batch.delete_alias(alias.as_str(), &record);
            self.store.write(batch)?;
            record.room_id
        };
        tracing::info!(%alias, %room_id, %user, "room alias deleted");
        if let Err(e) = self.drop_from_canonical_alias(&room_id, alias, user).await {
            tracing::info!(%alias, %room_id, error = %e, "canonical alias event left as it was");
        }
        Ok(())
    }

    async fn drop_from_canonical_alias(
        &self,
        room_id: &RoomId,
        alias: &RoomAliasId,
        user: &UserId,
    ) -> Result<()> {
        let Some(mut content) = self.state_content(room_id, CANONICAL_ALIAS, "")? else {
            return Ok(());
        };
        let Some(fields) = content.as_object_mut() else {
            return Ok(());
        };
        let mut changed = false;
        if fields.get("alias").and_then(Value::as_str) == Some(alias.as_str()) {
            fields.remove("alias");
            changed = true;
        }
        if let Some(Value::Array(alt)) = fields.get_mut("alt_aliases") {
            let before = alt.len();
            alt.retain(|a| a.as_str() != Some(alias.as_str()));
            changed |= alt.len() != before;
        }
        if changed {
            self.append_event(
                room_id,
                user,
                EventTemplate::state(CANONICAL_ALIAS, "", content),
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// `GET /rooms/{roomId}/aliases`: for joined members, anyone when the room is
    /// world-readable, and server admins; others get 403 whether or not the room exists.
    pub fn local_aliases(&self, room_id: &RoomId, user: &UserId) -> Result<Vec<String>> {
        let world_readable = self
            .state_content(room_id, "m.room.history_visibility", "")?
            .is_some_and(|c| c["history_visibility"] == "world_readable");
        if !world_readable && !self.is_joined(room_id, user)? && !self.is_server_admin(user)? {
            return Err(Error::forbidden("You are not a member of this room"));
        }
        Ok(self.store.room_aliases(room_id.as_str())?)
    }

    /// Sends a client's state event after the checks the auth rules cannot make:
    /// aliases newly named by `m.room.canonical_alias` must point to this room.
    pub async fn send_state(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        template: EventTemplate,
    ) -> Result<ruma::OwnedEventId> {
        crate::service::rooms::check_state_content(&template.event_type, &template.content)?;
        if template.event_type == CANONICAL_ALIAS {
            let state_key = template.state_key.as_deref().unwrap_or_default();
            self.check_canonical_alias(room_id, state_key, &template.content)?;
        }
        self.append_event(room_id, sender, template, None).await
    }

    /// Only aliases that are new compared with the current event are checked (as Synapse
    /// does), so a room whose alias was deleted can still change its other aliases.
    /// Bad syntax is `M_INVALID_PARAM`, an alias elsewhere `M_BAD_ALIAS`, as the spec says.
    fn check_canonical_alias(
        &self,
        room_id: &RoomId,
        state_key: &str,
        content: &Value,
    ) -> Result<()> {
        let previous = self
            .state_content(room_id, CANONICAL_ALIAS, state_key)?
            .unwrap_or(Value::Null);
        let old_alias = previous.get("alias").and_then(Value::as_str);
        let old_alt: Vec<&str> = match previous.get("alt_aliases") {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let (alias, alt_aliases) = canonical_alias_names(content)?;
        if let Some(alias) = alias
            && Some(alias) != old_alias
        {
            self.check_alias_points_to(room_id, alias)?;
        }
        for alias in alt_aliases {
            if !old_alt.contains(&alias) {
                self.check_alias_points_to(room_id, alias)?;
            }
        }
        Ok(())
    }

    fn check_alias_points_to(&self, room_id: &RoomId, text: &str) -> Result<()> {
        let alias = self.parse_alias(text)?;
        let bad = |why: &str| Error::new(ErrorKind::BadAlias, format!("Room alias {alias} {why}"));
        if alias.server_name() != self.server_name() {
            return Err(bad(
                "belongs to another server and cannot be checked without federation, which this server does not offer yet",
            ));
        }
        match self.store.alias(alias.as_str())? {
            Some(record) if record.room_id == room_id => Ok(()),
            Some(_) => Err(bad("points to another room")),
            None => Err(bad("does not exist")),
        }
    }

    /// The content of a current state event, if the room has one.
    fn state_content(
        &self,
        room_id: &RoomId,
        event_type: &str,
        key: &str,
    ) -> Result<Option<Value>> {
        let Some(event_id) = self
            .store
            .current_state_id(room_id.as_str(), event_type, key)?
        else {
            return Ok(None);
        };
        Ok(self
            .store
            .event(event_id.as_str())?
            .map(|record| record.pdu.get("content").cloned().unwrap_or(Value::Null)))
    }

    /// Whether the user may change the room's directory entries: server admins may;
    /// otherwise the user must be joined (403 if not) and able to send
    /// `m.room.canonical_alias`, Synapse's test for being a room moderator.
    fn can_edit_directory(&self, room_id: &RoomId, user: &UserId) -> Result<bool> {
        if self.is_server_admin(user)? {
            return Ok(true);
        }
        if !self.is_joined(room_id, user)? {
            return Err(Error::forbidden("You are not a member of this room"));
        }
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
        let create = self
            .pdu(room.create_event.as_str(), room.version)?
            .ok_or_else(|| Error::internal("room has no create event"))?;
        let power_levels =
            self.current_state_pdu(room_id, room.version, "m.room.power_levels", "")?;
        let powers = RoomPowers::new(room.version, &create, power_levels.as_deref())?;
        Ok(powers.can_send(user, CANONICAL_ALIAS, true))
    }

    /// Whether the room is in the published directory; 404 for unknown rooms.
    pub fn room_visibility(&self, room_id: &RoomId) -> Result<bool> {
        if self.store.room(room_id.as_str())?.is_none() {
            return Err(Error::not_found(format!("Unknown room {room_id}")));
        }
        Ok(self.store.is_published(room_id.as_str())?)
    }

    /// `PUT /directory/list/room/{roomId}`.
    pub fn set_room_visibility(&self, room_id: &RoomId, user: &UserId, public: bool) -> Result<()> {
        if self.store.room(room_id.as_str())?.is_none() {
            return Err(Error::not_found(format!("Unknown room {room_id}")));
        }
        if !self.can_edit_directory(room_id, user)? {
            return Err(Error::forbidden(
                "Only server admins and room members with the power to change the room's canonical alias can change its directory visibility",
            ));
        }
        self.publish(room_id, public)?;
        tracing::info!(%room_id, %user, public, "room directory visibility changed");
        Ok(())
    }

    pub(crate) fn publish(&self, room_id: &RoomId, public: bool) -> Result<()> {
        let mut batch = self.store.batch();
        batch.set_published(room_id.as_str(), public)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// One page of this server's published directory, in the spec's response format.
    pub fn public_rooms(&self, query: &PublicRoomsQuery) -> Result<Value> {
        let position = query.since.as_deref().map(Position::decode).transpose()?;
        let mut rooms = Vec::new();
        for room_id in self.store.published_rooms()? {
            if let Some(listing) = self.listing(room_id)?
                && listing.matches(query)
            {
                rooms.push(listing);
            }
        }
        rooms.sort_by(|a, b| a.key().cmp(&b.key()));
        let total = rooms.len();
        let limit = query.limit.unwrap_or(usize::MAX);
        let (start, end) = match &position {
            None => (0, limit.min(total)),
            Some(Position::Next(count, room_id)) => {
                let at = rooms.partition_point(|r| r.key() < (Reverse(*count), &**room_id));
                (at, at.saturating_add(limit).min(total))
            }
            Some(Position::Prev(count, room_id)) => {
                let at = rooms.partition_point(|r| r.key() < (Reverse(*count), &**room_id));
                (at.saturating_sub(limit), at)
            }
        };
        let mut response = json!({ "total_room_count_estimate": total });
        if end < total {
            let next = &rooms[end];
            response["next_batch"] =
                json!(Position::Next(next.joined, next.room_id.clone()).encode());
        }
        if start > 0 {
            let first = &rooms[start];
            response["prev_batch"] =
                json!(Position::Prev(first.joined, first.room_id.clone()).encode());
        }
        let chunk: Vec<Value> = rooms
            .drain(start..end)
            .map(|r| Value::Object(r.entry))
            .collect();
        response["chunk"] = Value::Array(chunk);
        Ok(response)
    }

    /// The directory entry of a published room, or `None` if the room no longer exists:
    /// its summary without the fields public room chunks do not carry.
    fn listing(&self, room_id: OwnedRoomId) -> Result<Option<Listing>> {
        let Some(summary) = self.local_summary(&room_id)? else {
            return Ok(None);
        };
        let joined = summary.num_joined_members();
        let room_type = summary.room_type().map(str::to_owned);
        let mut entry = summary.entry;
        for field in ["room_version", "encryption", "allowed_room_ids"] {
            entry.remove(field);
        }
        Ok(Some(Listing {
            joined,
            room_id,
            entry,
            room_type,
        }))
    }
}

/// The aliases an `m.room.canonical_alias` content names: `alias` (absent, null or
/// empty means none, as the spec says) and `alt_aliases`. Wrong shapes are
/// `M_INVALID_PARAM`, like bad alias syntax.
pub(crate) fn canonical_alias_names(content: &Value) -> Result<(Option<&str>, Vec<&str>)> {
    let alias = match content.get("alias") {
        None | Some(Value::Null) => None,
        Some(Value::String(alias)) => Some(alias.as_str()).filter(|a| !a.is_empty()),
        Some(_) => return Err(Error::invalid_param("alias must be a string")),
    };
    let alt_aliases = match content.get("alt_aliases") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| Error::invalid_param("alt_aliases must be a list of strings"))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(Error::invalid_param("alt_aliases must be a list")),
    };
    Ok((alias, alt_aliases))
}
