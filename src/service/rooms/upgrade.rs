//! Room upgrades (CS "Room Upgrades"): a replacement room of the new version with the old
//! room's transferable state, a tombstone in the old room, and the old room locked.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

use super::create::{default_power_levels, membership_content};
use super::timeline::EventTemplate;
use crate::error::{Error, ErrorKind, Result};
use crate::event::power_levels::integer_levels_content;
use crate::event::{Power, PowerLevels, RoomPowers, RoomVersion};
use crate::service::Services;

/// The state the spec recommends carrying over, plus the canonical alias (as Synapse
/// does while moving aliases). Membership is never copied: it cannot be impersonated.
const TRANSFERABLE: [&str; 9] = [
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
    "m.room.canonical_alias",
];

/// Canonical JSON's integer limit.
const MAX_LEVEL: i64 = (1 << 53) - 1;

const TOMBSTONE: &str = "m.room.tombstone";

/// The old room's state, as content by `(type, state_key)`.
type StateContents = BTreeMap<(String, String), Map<String, Value>>;

impl Services {
    /// Upgrades `room_id` to `new_version` for `user`; returns the replacement room.
    /// `additional_creators` only counts where the new version knows creators.
    pub async fn upgrade_room(
        &self,
        room_id: &RoomId,
        user: &UserId,
        new_version: &str,
        additional_creators: Vec<OwnedUserId>,
    ) -> Result<OwnedRoomId> {
        let new_version = self.parse_room_version(Some(new_version))?;
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
        let old_version = room.version;
        // One upgrade at a time, so that two requests cannot both create a replacement.
        let _upgrading = self.rooms.upgrades.lock().await;

        if !self.is_joined(room_id, user)? {
            return Err(Error::forbidden("You are not joined to this room"));
        }
        let state = self.state_contents(room_id)?;
        let create = self
            .current_state_pdu(room_id, old_version, "m.room.create", "")?
            .ok_or_else(|| Error::internal("room has no create event"))?;
        let power_levels =
            self.current_state_pdu(room_id, old_version, "m.room.power_levels", "")?;
        let powers = RoomPowers::new(old_version, &create, power_levels.as_deref())?;
        if !powers.can_send(user, TOMBSTONE, true) {
            return Err(Error::forbidden(format!(
                "You cannot upgrade this room: sending {TOMBSTONE} needs power level {}, you have {}",
                powers.required_level(TOMBSTONE, true),
                powers.user_power(user)
            )));
        }
        // A repeated request (a client retrying) gets the room the first one made.
        if let Some(existing) = self.replacement_of(&state, new_version)? {
            return Ok(existing);
        }

        let mut new_creators: BTreeSet<OwnedUserId> = BTreeSet::new();
        if new_version.supports_additional_creators() {
            new_creators.extend(additional_creators);
        }
        new_creators.remove(user);

        let old_create = state_content(&state, "m.room.create", "");
        let mut create_content = Map::new();
        create_content.insert("room_version".into(), json!(new_version.as_str()));
        if new_version.create_requires_creator_field() {
            create_content.insert("creator".into(), json!(user));
        }
        if let Some(room_type) = old_create.get("type") {
            create_content.insert("type".into(), room_type.clone());
        }
        if !new_creators.is_empty() {
            create_content.insert("additional_creators".into(), json!(new_creators));
        }
        // From v12 the last event of the old room may be left out (spec, m.room.create).
        let mut predecessor = json!({ "room_id": room_id });
        if !new_version.room_id_is_create_event_hash()
            && let Some(last) = room.extremities.first()
        {
            predecessor["event_id"] = json!(last);
        }
        create_content.insert("predecessor".into(), predecessor);
        new_creators.insert(user.to_owned());

        let legacy_room_id = self.legacy_room_id(new_version)?;
        let (new_room, _) = self
            .append_create_event(
                new_version,
                user,
                Value::Object(create_content),
                legacy_room_id,
                None,
            )
            .await?;
        self.append_member_event(&new_room, user, user, membership_content("join"))
            .await?;
        let levels = upgraded_power_levels(
            old_version,
            new_version,
            &powers,
            state.get(&key("m.room.power_levels", "")),
            user,
            &new_creators,
        )?;
        self.append_event(
            &new_room,
            user,
            EventTemplate::state("m.room.power_levels", "", Value::Object(levels)),
            None,
        )
        .await?;
        let is_space = old_create.get("type").and_then(Value::as_str) == Some("m.space");
        for ((event_type, state_key), content) in &state {
            let copy = (TRANSFERABLE.contains(&event_type.as_str()) && state_key.is_empty())
                || (is_space && event_type == "m.space.child");
            if copy {
                self.append_event(
                    &new_room,
                    user,
                    EventTemplate::state(event_type, state_key, Value::Object(content.clone())),
                    None,
                )
                .await?;
            }
        }
        self.copy_bans(&state, &new_room, user, &new_creators)
            .await?;

        self.append_event(
            room_id,
            user,
            EventTemplate::state(
                TOMBSTONE,
                "",
                json!({
                    "body": "This room has been replaced",
                    "replacement_room": new_room,
                }),
            ),
            None,
        )
        .await?;
        self.lock_old_room(
            room_id,
            old_version,
            user,
            state.get(&key("m.room.power_levels", "")),
        )
        .await?;
        tracing::info!(old = %room_id, new = %new_room, version = %new_version, user = %user, "room upgraded");
        Ok(new_room)
    }

    fn state_contents(&self, room_id: &RoomId) -> Result<StateContents> {
        let mut out = StateContents::new();
        for (state_key, event_id) in self.store.current_state(room_id.as_str(), None)? {
            let record = self
                .store
                .event(event_id.as_str())?
                .ok_or_else(|| Error::internal(format!("state event {event_id} is missing")))?;
            let content = match record.pdu.get("content") {
                Some(Value::Object(map)) => map.clone(),
                _ => Map::new(),
            };
            out.insert(state_key, content);
        }
        Ok(out)
    }

    /// The room an earlier upgrade to the same version created, if any.
    fn replacement_of(
        &self,
        state: &StateContents,
        version: RoomVersion,
    ) -> Result<Option<OwnedRoomId>> {
        let Some(target) = state
            .get(&key(TOMBSTONE, ""))
            .and_then(|c| c.get("replacement_room"))
            .and_then(Value::as_str)
            .and_then(|id| OwnedRoomId::try_from(id).ok())
        else {
            return Ok(None);
        };
        Ok(match self.store.room(target.as_str())? {
            Some(room) if room.version == version => Some(target),
            _ => None,
        })
    }

    /// Bans carry over (as in Synapse) where the rules let the upgrader issue them; a ban
    /// the new room's power levels refuse is left out rather than failing the upgrade.
    async fn copy_bans(
        &self,
        state: &StateContents,
        new_room: &RoomId,
        user: &UserId,
        new_creators: &BTreeSet<OwnedUserId>,
    ) -> Result<()> {
        for ((event_type, target), content) in state {
            if event_type != "m.room.member"
                || content.get("membership").and_then(Value::as_str) != Some("ban")
                || new_creators.iter().any(|c| c.as_str() == target)
            {
                continue;
            }
            let mut ban = json!({ "membership": "ban" });
            if let Some(reason) = content.get("reason").filter(|r| r.is_string()) {
                ban["reason"] = reason.clone();
            }
            match self
                .append_event(
                    new_room,
                    user,
                    EventTemplate::state("m.room.member", target, ban),
                    None,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::Forbidden => {
                    tracing::warn!(room = %new_room, banned = %target, error = %e, "ban not carried over");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Raises `events_default` and `invite` to `max(50, users_default + 1)`, as the spec
    /// suggests, so ordinary users can no longer talk or invite in the old room. The
    /// upgrade stands even when the upgrader lacks the power to change the levels.
    async fn lock_old_room(
        &self,
        room_id: &RoomId,
        version: RoomVersion,
        user: &UserId,
        power_levels: Option<&Map<String, Value>>,
    ) -> Result<Option<OwnedEventId>> {
        let Some(content) = power_levels else {
            tracing::warn!(room = %room_id, "old room has no power levels to restrict");
            return Ok(None);
        };
        let levels = PowerLevels::from_content_in(version, content)?;
        let restricted = 50
            .max(levels.users_default.saturating_add(1))
            .min(MAX_LEVEL);
        let mut content = content.clone();
        let mut changed = false;
        for (field, current) in [
            ("events_default", levels.events_default),
            ("invite", levels.invite),
        ] {
            if current < restricted {
                content.insert(field.into(), json!(restricted));
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        match self
            .append_event(
                room_id,
                user,
                EventTemplate::state("m.room.power_levels", "", Value::Object(content)),
                None,
            )
            .await
        {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.kind == ErrorKind::Forbidden => {
                tracing::warn!(room = %room_id, error = %e, "could not restrict the old room's power levels");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

fn key(event_type: &str, state_key: &str) -> (String, String) {
    (event_type.to_owned(), state_key.to_owned())
}

fn state_content(state: &StateContents, event_type: &str, state_key: &str) -> Map<String, Value> {
    state
        .get(&key(event_type, state_key))
        .cloned()
        .unwrap_or_default()
}

/// The new room's power levels: the old ones, with the creators adjusted to what each
/// version allows. The upgrader must be able to send every copied state event; creators
/// who had infinite power in a v12 room and are not creators of the new one keep the
/// power to run it (Synapse gives them the level needed to send any state event). In a
/// v12 room creators may not be listed, and the tombstone level is kept above every
/// listed user so that only creators can upgrade again by default.
fn upgraded_power_levels(
    old_version: RoomVersion,
    new_version: RoomVersion,
    old_powers: &RoomPowers,
    old_content: Option<&Map<String, Value>>,
    upgrader: &UserId,
    new_creators: &BTreeSet<OwnedUserId>,
) -> Result<Map<String, Value>> {
    let mut content = match old_content {
        Some(content) => integer_levels_content(old_version, content)?,
        None => default_power_levels(new_version, upgrader, &[]),
    };
    let levels = PowerLevels::from_content(&content)?;
    let needed = levels
        .events
        .values()
        .copied()
        .chain([levels.state_default, levels.ban])
        .max()
        .unwrap_or(levels.state_default);
    let mut users = match content.get("users") {
        Some(Value::Object(users)) => users.clone(),
        _ => Map::new(),
    };
    if old_version.creators_have_infinite_power() {
        for creator in old_powers.creators() {
            users.insert(creator.to_string(), json!(needed));
        }
    }
    if new_version.creators_have_infinite_power() {
        for creator in new_creators {
            users.remove(creator.as_str());
        }
        if !old_version.creators_have_infinite_power() {
            let highest = users.values().filter_map(Value::as_i64).max().unwrap_or(0);
            let tombstone = levels
                .events
                .get(TOMBSTONE)
                .copied()
                .unwrap_or(levels.state_default)
                .max(150)
                .max(highest.saturating_add(1))
                .min(MAX_LEVEL);
            let mut events = match content.get("events") {
                Some(Value::Object(events)) => events.clone(),
                _ => Map::new(),
            };
            events.insert(TOMBSTONE.into(), json!(tombstone));
            content.insert("events".into(), Value::Object(events));
        }
    } else {
        let level = match old_powers.user_power(upgrader) {
            Power::Level(level) => level.max(needed),
            Power::Infinite => needed,
        };
        users.insert(upgrader.to_string(), json!(level));
    }
    content.insert("users".into(), Value::Object(users));
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::test_support::Fixture;

    fn user(id: &str) -> OwnedUserId {
        UserId::parse(id).unwrap()
    }

    fn old_levels() -> Map<String, Value> {
        json!({
            "users": { "@alice:a": 100, "@mod:a": 50 },
            "users_default": 0,
            "events": { "m.room.tombstone": 100, "m.room.power_levels": 100 },
            "state_default": 50,
            "ban": 50,
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn to_v12_drops_creators_and_guards_the_tombstone() {
        let fx = Fixture::new(RoomVersion::V11, "@alice:a");
        let pl_content = old_levels();
        let powers = RoomPowers::new(RoomVersion::V11, fx.create(), None).unwrap();
        let creators: BTreeSet<_> = [user("@alice:a")].into();
        let out = upgraded_power_levels(
            RoomVersion::V11,
            RoomVersion::V12,
            &powers,
            Some(&pl_content),
            &user("@alice:a"),
            &creators,
        )
        .unwrap();
        assert_eq!(out["users"], json!({ "@mod:a": 50 }));
        assert_eq!(out["events"]["m.room.tombstone"], 150);
        assert_eq!(out["events"]["m.room.power_levels"], 100);
    }

    #[test]
    fn from_v12_gives_creators_the_level_to_run_the_room() {
        let fx = Fixture::with_create_content(
            RoomVersion::V12,
            "@alice:a",
            json!({ "room_version": "12", "additional_creators": ["@bob:b"] }),
        );
        let mut pl_content = old_levels();
        pl_content.insert("users".into(), json!({ "@mod:a": 50 }));
        pl_content.insert("events".into(), json!({ "m.room.tombstone": 150 }));
        let powers = RoomPowers::new(RoomVersion::V12, fx.create(), None).unwrap();
        let creators: BTreeSet<_> = [user("@alice:a")].into();
        let out = upgraded_power_levels(
            RoomVersion::V12,
            RoomVersion::V11,
            &powers,
            Some(&pl_content),
            &user("@alice:a"),
            &creators,
        )
        .unwrap();
        assert_eq!(
            out["users"],
            json!({ "@alice:a": 150, "@bob:b": 150, "@mod:a": 50 })
        );
        // v12 to v12: the new creators are unlisted, former creators keep their power.
        let out = upgraded_power_levels(
            RoomVersion::V12,
            RoomVersion::V12,
            &powers,
            Some(&pl_content),
            &user("@alice:a"),
            &creators,
        )
        .unwrap();
        assert_eq!(out["users"], json!({ "@bob:b": 150, "@mod:a": 50 }));
        assert_eq!(out["events"]["m.room.tombstone"], 150);
    }

    #[test]
    fn a_moderator_upgrader_can_copy_all_state() {
        let mut fx = Fixture::new(RoomVersion::V10, "@alice:a");
        fx.join("@alice:a");
        let pl = fx.power_levels(
            "@alice:a",
            json!({ "@mod:a": 50 }),
            json!({ "events": { "m.room.tombstone": 50, "m.room.name": 75 }, "state_default": 50 }),
        );
        let create = fx.create().clone();
        let powers = RoomPowers::new(RoomVersion::V10, &create, Some(&pl)).unwrap();
        let out = upgraded_power_levels(
            RoomVersion::V10,
            RoomVersion::V11,
            &powers,
            Some(pl.content()),
            &user("@mod:a"),
            &[user("@mod:a")].into(),
        )
        .unwrap();
        assert_eq!(out["users"]["@mod:a"], 75);
        assert_eq!(out["users"]["@alice:a"], 100);
    }
}
