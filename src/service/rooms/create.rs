//! `createRoom`: the create event, then the initial state in the order the spec lays down.
//!
//! The create event is written together with a `CreateRoom` fan-out intent holding the
//! request, and the intent is deleted once the last initial event is stored. A crash in
//! between leaves the intent, and the next start finishes the room from it: every step
//! is idempotent (an initial event already current is not sent again), so a room is
//! either absent or, once the server is up again, whole; never half created.

use std::collections::BTreeSet;

use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::timeline::{CreationIntent, EventTemplate};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{PowerLevels, RoomVersion, canonical_json};
use crate::service::Services;
use crate::service::directory::canonical_alias_names;
use crate::service::fanout::FanoutKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

impl Preset {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "private_chat" => Ok(Self::PrivateChat),
            "trusted_private_chat" => Ok(Self::TrustedPrivateChat),
            "public_chat" => Ok(Self::PublicChat),
            other => Err(Error::bad_json(format!("Unknown preset {other:?}"))),
        }
    }
}

/// A validated `createRoom` request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateRoom {
    pub preset: Option<Preset>,
    /// Publish the room in this server's directory.
    pub public_visibility: bool,
    /// A new local alias, from `room_alias_name`, to become the canonical alias.
    pub alias: Option<OwnedRoomAliasId>,
    pub room_version: Option<String>,
    pub creation_content: Map<String, Value>,
    pub power_level_content_override: Option<Map<String, Value>>,
    pub initial_state: Vec<EventTemplate>,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub invite: Vec<OwnedUserId>,
    pub is_direct: bool,
}

pub(super) fn membership_content(membership: &str) -> Map<String, Value> {
    let mut content = Map::new();
    content.insert("membership".into(), json!(membership));
    content
}

pub(super) fn default_power_levels(
    version: RoomVersion,
    creator: &UserId,
    trusted_invitees: &[OwnedUserId],
) -> Map<String, Value> {
    let mut users = Map::new();
    // From v12 creators have infinite power and may not be listed.
    if !version.creators_have_infinite_power() {
        users.insert(creator.to_string(), json!(100));
        for invitee in trusted_invitees {
            users.insert(invitee.to_string(), json!(100));
        }
    }
    let tombstone = if version.creators_have_infinite_power() {
        150
    } else {
        100
    };
    let content = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.avatar": 50,
            "m.room.topic": 50,
            "m.room.canonical_alias": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.tombstone": tombstone,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": { "room": 50 },
    });
    match content {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Each initial event is stored as it is accepted, so content the room would refuse part
/// way through is refused here, before the room exists, rather than leaving half a room.
fn check_initial_content(
    version: RoomVersion,
    creator: &UserId,
    create: &Map<String, Value>,
    power_levels: &Map<String, Value>,
    request: &CreateRoom,
) -> Result<()> {
    if request.invite.iter().any(|invitee| invitee == creator) {
        return Err(Error::invalid_param("You cannot invite yourself"));
    }
    canonical_json(&Value::Object(create.clone()))?;
    canonical_json(&Value::Object(power_levels.clone()))?;
    for template in &request.initial_state {
        canonical_json(&template.content)?;
        super::check_state_content(&template.event_type, &template.content)?;
    }
    let levels = PowerLevels::from_content_in(version, power_levels)?;
    if version.creators_have_infinite_power() {
        let additional = create
            .get("additional_creators")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        for listed in std::iter::once(creator.as_str()).chain(additional) {
            if levels.users.keys().any(|user| user.as_str() == listed) {
                return Err(Error::bad_json(format!(
                    "{listed} is a creator of this room version {version} room and has unlimited power; it cannot be listed in power level users"
                )));
            }
        }
    }
    Ok(())
}

/// The preset (from the request or its visibility), the invitees made creators or
/// admins by `trusted_private_chat`, and the initial power levels.
fn plan(
    version: RoomVersion,
    creator: &UserId,
    request: &CreateRoom,
) -> (Preset, Vec<OwnedUserId>, Map<String, Value>) {
    let preset = request.preset.unwrap_or(if request.public_visibility {
        Preset::PublicChat
    } else {
        Preset::PrivateChat
    });
    let trusted: Vec<OwnedUserId> = if preset == Preset::TrustedPrivateChat {
        request.invite.clone()
    } else {
        Vec::new()
    };
    let mut power_levels = default_power_levels(version, creator, &trusted);
    if let Some(overrides) = &request.power_level_content_override {
        for (key, value) in overrides {
            power_levels.insert(key.clone(), value.clone());
        }
    }
    (preset, trusted, power_levels)
}

impl Services {
    pub fn parse_room_version(&self, requested: Option<&str>) -> Result<RoomVersion> {
        match requested {
            None => Ok(RoomVersion::default()),
            Some(text) => text.parse().map_err(|_| {
                Error::new(
                    ErrorKind::UnsupportedRoomVersion,
                    format!("Room version {text:?} is not supported; use a version from 1 to 12"),
                )
            }),
        }
    }

    /// Creates a room; returns its ID once every initial event is stored.
    pub async fn create_room(&self, creator: &UserId, request: CreateRoom) -> Result<OwnedRoomId> {
        let version = self.parse_room_version(request.room_version.as_deref())?;
        let limits = &self.config.limits;
        for (what, count, limit) in [
            (
                "initial_state events",
                request.initial_state.len(),
                limits.create_room_initial_state,
            ),
            ("invites", request.invite.len(), limits.create_room_invites),
        ] {
            if count > limit {
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    format!("createRoom may carry at most {limit} {what}"),
                ));
            }
        }
        for invitee in &request.invite {
            self.check_invitable(invitee)?;
        }
        // See `existing_direct_room`: "message this person" again opens the same chat;
        // the rest of the request (name, topic, state) applies only to new rooms. The
        // creator's lock is held until the new room is in their `m.direct`, so a second
        // request sent at the same time finds it rather than opening another.
        let _direct_guard = match (request.is_direct, request.invite.as_slice()) {
            (true, [invitee]) => {
                let guard = self.direct_chat_locks.lock(creator).await;
                if let Some(existing) = self.existing_direct_room(creator, invitee)? {
                    tracing::info!(room_id = %existing, creator = %creator, "existing direct chat reused");
                    return Ok(existing);
                }
                Some(guard)
            }
            _ => None,
        };
        self.check_initial_canonical_alias(&request)?;
        // Held until the alias is stored, so no one can take it once it was found free.
        let alias_guard = match &request.alias {
            Some(alias) => {
                let guard = self.lock_aliases().await;
                if self.store.alias(alias.as_str())?.is_some() {
                    return Err(Error::new(
                        ErrorKind::RoomInUse,
                        format!("Room alias {alias} is already taken"),
                    ));
                }
                Some(guard)
            }
            None => None,
        };
        let (_, trusted, power_levels) = plan(version, creator, &request);

        // 1. m.room.create, with the intent that finishes the room after a crash.
        let mut create = request.creation_content.clone();
        create.insert("room_version".into(), json!(version.as_str()));
        if version.create_requires_creator_field() {
            create.insert("creator".into(), json!(creator));
        } else {
            create.remove("creator");
        }
        if version.supports_additional_creators() && !trusted.is_empty() {
            let mut creators: BTreeSet<String> = match create.get("additional_creators") {
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => BTreeSet::new(),
            };
            creators.extend(trusted.iter().map(|u| u.to_string()));
            creators.remove(creator.as_str());
            create.insert("additional_creators".into(), json!(creators));
        }
        check_initial_content(version, creator, &create, &power_levels, &request)?;
        let legacy_room_id = self.legacy_room_id(version)?;
        let intent = serde_json::to_value(&request)
            .map_err(|e| Error::internal(format!("createRoom request: {e}")))?;
        let (room_id, _) = self
            .append_create_event(
                version,
                creator,
                Value::Object(create),
                legacy_room_id,
                Some(CreationIntent::CreateRoom(intent)),
            )
            .await?;
        if let Some(alias) = &request.alias {
            self.write_alias(alias, &room_id, creator)?;
        }
        drop(alias_guard);
        if let Err(e) = self
            .finish_room_creation(&room_id, creator, request, version)
            .await
        {
            // Refused part-way (a remote invitee's server, say): answered as an error,
            // the room stays as it is, as a request refused without a crash always did.
            self.end_room_creation(&room_id)?;
            return Err(e);
        }
        tracing::info!(room_id = %room_id, creator = %creator, version = %version, "room created");
        Ok(room_id)
    }

    /// Finishes a room whose creation a crash cut short, from the intent written with its
    /// create event.
    pub(crate) async fn resume_room_creation(&self, room_id: &RoomId) -> Result<()> {
        let Some(room) = self.store.room(room_id.as_str())? else {
            return Ok(());
        };
        let intents = self.store.fanout_intents(room_id.as_str())?;
        let Some(payload) = intents
            .into_iter()
            .filter(|i| i.kind == FanoutKind::CreateRoom)
            .find_map(|i| i.record.payload)
        else {
            return Ok(());
        };
        let request: CreateRoom = match serde_json::from_value(payload) {
            Ok(request) => request,
            Err(e) => {
                tracing::error!(%room_id, error = %e, "dropping an unreadable room creation intent");
                return Ok(());
            }
        };
        let creator = self
            .store
            .event(room.create_event.as_str())?
            .and_then(|e| {
                e.pdu
                    .get("sender")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .and_then(|s| OwnedUserId::try_from(s).ok())
            .ok_or_else(|| Error::internal(format!("{room_id} has no readable create event")))?;
        tracing::info!(%room_id, %creator, "finishing a room creation cut short");
        if let Some(alias) = &request.alias
            && self.store.alias(alias.as_str())?.is_none()
        {
            self.write_alias(alias, room_id, &creator)?;
        }
        if let Err(e) = self
            .finish_room_creation(room_id, &creator, request, room.version)
            .await
        {
            tracing::warn!(%room_id, error = %e, "a room creation cut short could not be finished");
            self.end_room_creation(room_id)?;
        }
        Ok(())
    }

    /// Deletes the room's creation intent: nothing is left to finish after a crash.
    fn end_room_creation(&self, room_id: &RoomId) -> Result<()> {
        let mut batch = self.store.batch();
        for intent in self.store.fanout_intents(room_id.as_str())? {
            if intent.kind == FanoutKind::CreateRoom {
                batch.delete_fanout_intent(room_id.as_str(), intent.kind, intent.generation);
            }
        }
        self.store.write(batch)?;
        Ok(())
    }

    /// Steps 2 to 8 of `createRoom`, each skipped when already done, then the intent is
    /// deleted.
    async fn finish_room_creation(
        &self,
        room_id: &RoomId,
        creator: &UserId,
        request: CreateRoom,
        version: RoomVersion,
    ) -> Result<()> {
        let room_id = room_id.to_owned();
        let (preset, _, power_levels) = plan(version, creator, &request);

        // 2. The creator joins.
        self.append_member_event(&room_id, creator, creator, membership_content("join"))
            .await?;

        // 3. Power levels, with the override merged over the defaults.
        self.append_initial(
            &room_id,
            creator,
            "m.room.power_levels",
            Value::Object(power_levels),
        )
        .await?;

        // 4. The canonical alias.
        if let Some(alias) = &request.alias {
            self.send_state(
                &room_id,
                creator,
                EventTemplate::state("m.room.canonical_alias", "", json!({ "alias": alias })),
            )
            .await?;
        }

        // 5. What the preset implies. A public room's guest access is left at its
        // default, forbidden, without an event, as Synapse does (the spec: an absent
        // m.room.guest_access is treated as forbidden).
        let (join_rule, guest_access) = match preset {
            Preset::PublicChat => ("public", None),
            Preset::PrivateChat | Preset::TrustedPrivateChat => ("invite", Some("can_join")),
        };
        self.append_initial(
            &room_id,
            creator,
            "m.room.join_rules",
            json!({ "join_rule": join_rule }),
        )
        .await?;
        self.append_initial(
            &room_id,
            creator,
            "m.room.history_visibility",
            json!({ "history_visibility": "shared" }),
        )
        .await?;
        if let Some(guest_access) = guest_access {
            self.append_initial(
                &room_id,
                creator,
                "m.room.guest_access",
                json!({ "guest_access": guest_access }),
            )
            .await?;
        }

        // 6. initial_state, in order.
        for template in request.initial_state {
            self.send_state(&room_id, creator, template).await?;
        }

        // 7. Name and topic.
        if let Some(name) = request.name {
            self.append_initial(&room_id, creator, "m.room.name", json!({ "name": name }))
                .await?;
        }
        if let Some(topic) = request.topic {
            self.append_initial(
                &room_id,
                creator,
                "m.room.topic",
                json!({
                    "topic": topic,
                    "m.topic": [{ "mimetype": "text/plain", "body": topic }],
                }),
            )
            .await?;
        }

        // 8. Invites.
        for invitee in &request.invite {
            let mut content = membership_content("invite");
            if request.is_direct {
                content.insert("is_direct".into(), json!(true));
            }
            if invitee.server_name() == self.server_name() {
                self.append_member_event(&room_id, creator, invitee, content)
                    .await?;
            } else {
                self.invite_remote_user(&room_id, creator, invitee, content)
                    .await?;
            }
        }
        if request.is_direct && !request.invite.is_empty() {
            self.add_direct_room(creator, &request.invite, &room_id)?;
        }
        // Published last, so the directory never lists a room still being set up.
        if request.public_visibility {
            self.publish(&room_id, true)?;
        }
        // The room is whole.
        self.end_room_creation(&room_id)
    }

    /// A random room ID for versions whose room ID is not the create event's hash.
    pub(super) fn legacy_room_id(&self, version: RoomVersion) -> Result<Option<OwnedRoomId>> {
        if version.room_id_is_create_event_hash() {
            return Ok(None);
        }
        let id = format!(
            "!{}:{}",
            super::super::random_string(18),
            self.server_name()
        );
        OwnedRoomId::try_from(id)
            .map(Some)
            .map_err(|e| Error::internal(format!("generated room ID: {e}")))
    }

    /// A new room can have no alias but the one `room_alias_name` creates, so an
    /// `initial_state` canonical alias event naming any other is refused before the
    /// room exists rather than halfway through its creation.
    fn check_initial_canonical_alias(&self, request: &CreateRoom) -> Result<()> {
        for template in &request.initial_state {
            if template.event_type != "m.room.canonical_alias" {
                continue;
            }
            let (alias, alt_aliases) = canonical_alias_names(&template.content)?;
            for text in alias.into_iter().chain(alt_aliases) {
                let alias = self.parse_alias(text)?;
                if request.alias.as_ref() != Some(&alias) {
                    return Err(Error::new(
                        ErrorKind::BadAlias,
                        format!("Room alias {alias} does not point to the new room"),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn append_initial(
        &self,
        room_id: &RoomId,
        creator: &UserId,
        event_type: &str,
        content: Value,
    ) -> Result<()> {
        self.append_event(
            room_id,
            creator,
            EventTemplate::state(event_type, "", content),
            None,
        )
        .await?;
        Ok(())
    }

    /// A local user must exist; a user of another server is asked by their server.
    pub fn check_invitable(&self, user_id: &UserId) -> Result<()> {
        if user_id.server_name() != self.server_name() {
            return Ok(());
        }
        match self.store.user(user_id.as_str())? {
            Some(user) if !user.deactivated => Ok(()),
            _ => Err(Error::not_found(format!("Unknown user {user_id}"))),
        }
    }
}
