//! Room upgrades (CS "Room Upgrades"): a replacement room of the new version with the old
//! room's transferable state, a tombstone in the old room, and the old room locked.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::create::{default_power_levels, membership_content};
use super::persist::Local;
use super::timeline::{CreationIntent, EventTemplate, MAX_PREV_EVENTS};
use crate::error::{Error, ErrorKind, Result};
use crate::event::power_levels::integer_levels_content;
use crate::event::{Pdu, Power, PowerLevels, RoomPowers, RoomVersion};
use crate::service::Services;
use crate::service::account_data::TAG_TYPE;
use crate::service::direct::DIRECT_TYPE;
use crate::service::fanout::FanoutKind;
use crate::store::AliasRecord;

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
    ///
    /// The new room's create event is written together with an `UpgradeRoom` fan-out
    /// intent holding the whole plan (every event still to write, in order), and the
    /// intent is deleted in the write that moves the aliases, the last step. A crash in
    /// between leaves the intent, and the next start (or a retry of the request) finishes
    /// the upgrade from it, each event skipped when already current: so a new room is
    /// either whole with the old room's tombstone naming it, or, before the restart has
    /// finished it, not yet named by any tombstone.
    pub async fn upgrade_room(
        &self,
        room_id: &RoomId,
        user: &UserId,
        new_version: &str,
        additional_creators: Vec<OwnedUserId>,
    ) -> Result<OwnedRoomId> {
        let new_version = self.parse_room_version(Some(new_version))?;
        if self.store.room(room_id.as_str())?.is_none() {
            return Err(Error::not_found(format!("Unknown room {room_id}")));
        }
        // One upgrade at a time, so that two requests cannot both create a replacement.
        let _upgrading = self.rooms.upgrades.lock().await;

        if !self.is_joined(room_id, user)? {
            return Err(Error::forbidden("You are not joined to this room"));
        }
        // An upgrade of this room cut short by a crash is finished first; a retry of
        // that request then finds its room below.
        self.finish_pending_upgrade(room_id).await?;
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
        let old_version = room.version;
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
        // The room's type and whether it federates carry over (as in Synapse).
        for field in ["type", "m.federate"] {
            if let Some(value) = old_create.get(field) {
                create_content.insert(field.into(), value.clone());
            }
        }
        if !new_creators.is_empty() {
            create_content.insert("additional_creators".into(), json!(new_creators));
        }
        new_creators.insert(user.to_owned());
        let mut plan = self.plan_upgrade(
            old_version,
            new_version,
            &state,
            &powers,
            user,
            &new_creators,
        )?;
        let legacy_room_id = self.legacy_room_id(new_version)?;
        // Where the new room's ID is chosen beforehand, the tombstone is built (not yet
        // stored) first, so that the new room's predecessor names it, the old room's
        // last event, as Synapse does; the old room stays locked until it is stored.
        // From v12 the predecessor's event ID may be left out (spec, m.room.create).
        let mut predecessor = json!({ "room_id": room_id });
        let mut old_room_guard = None;
        if let Some(new_room) = &legacy_room_id {
            let guard = self.rooms.lock(room_id).await;
            let room = self
                .store
                .room(room_id.as_str())?
                .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
            let (pdu, json, _) =
                self.build_local_event(room_id, &room, user, tombstone_template(new_room))?;
            predecessor["event_id"] = json!(pdu.event_id());
            plan.tombstone = Some(json);
            old_room_guard = Some(guard);
        }
        create_content.insert("predecessor".into(), predecessor);
        let plan = match serde_json::to_value(&plan) {
            Ok(Value::Object(plan)) => plan,
            Ok(_) => return Err(Error::internal("upgrade plan is not an object")),
            Err(e) => return Err(Error::internal(format!("upgrade plan: {e}"))),
        };
        let (new_room, _) = self
            .append_create_event(
                new_version,
                user,
                Value::Object(create_content),
                legacy_room_id,
                Some(CreationIntent::UpgradeRoom {
                    old_room: room_id.to_owned(),
                    plan,
                }),
            )
            .await?;
        self.finish_pending_upgrade_locked(room_id, old_room_guard)
            .await?;
        tracing::info!(old = %room_id, new = %new_room, version = %new_version, user = %user, "room upgraded");
        Ok(new_room)
    }

    /// Finishes an upgrade of `room_id` a crash cut short, from the intent written with
    /// the new room's create event (the fan-out worker at start-up).
    pub(crate) async fn resume_room_upgrade(&self, room_id: &RoomId) -> Result<()> {
        let _upgrading = self.rooms.upgrades.lock().await;
        tracing::info!(%room_id, "finishing a room upgrade cut short");
        if let Err(e) = self.finish_pending_upgrade(room_id).await {
            tracing::warn!(%room_id, error = %e, "a room upgrade cut short could not be finished");
        }
        Ok(())
    }

    /// Carries out the room's upgrade intent, if it has one; answers the new room. The
    /// caller holds the upgrade lock. A step refused (other than those allowed to be)
    /// ends the intent, as a request refused without a crash would leave things.
    async fn finish_pending_upgrade(&self, room_id: &RoomId) -> Result<Option<OwnedRoomId>> {
        self.finish_pending_upgrade_locked(room_id, None).await
    }

    /// [`Self::finish_pending_upgrade`], with the old room's lock when the caller has
    /// held it since it built the tombstone.
    async fn finish_pending_upgrade_locked(
        &self,
        room_id: &RoomId,
        old_room_guard: Option<RoomGuard>,
    ) -> Result<Option<OwnedRoomId>> {
        let Some(payload) = self
            .store
            .fanout_intents(room_id.as_str())?
            .into_iter()
            .filter(|i| i.kind == FanoutKind::UpgradeRoom)
            .filter_map(|i| i.record.payload)
            .next_back()
        else {
            return Ok(None);
        };
        let plan: UpgradePlan = match serde_json::from_value(payload) {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(%room_id, error = %e, "dropping an unreadable room upgrade intent");
                self.end_upgrade(room_id, None).await?;
                return Ok(None);
            }
        };
        match self.carry_out_upgrade(room_id, &plan, old_room_guard).await {
            Ok(new_room) => Ok(Some(new_room)),
            Err(e) => {
                self.end_upgrade(room_id, None).await?;
                Err(e)
            }
        }
    }

    /// The steps after the new room's create event, each skipped when already done.
    async fn carry_out_upgrade(
        &self,
        room_id: &RoomId,
        plan: &UpgradePlan,
        old_room_guard: Option<RoomGuard>,
    ) -> Result<OwnedRoomId> {
        let new_room = plan
            .new_room
            .clone()
            .ok_or_else(|| Error::internal("upgrade intent without its new room"))?;
        let user = &plan.upgrader;
        self.append_member_event(&new_room, user, user, membership_content("join"))
            .await?;
        for template in &plan.new_state {
            self.append_event(&new_room, user, template.clone(), None)
                .await?;
        }
        // Bans carry over (as in Synapse) where the rules let the upgrader issue them; a
        // ban the new room's power levels refuse is left out rather than failing.
        for ban in &plan.bans {
            self.append_allowed(&new_room, user, ban.clone()).await?;
        }
        self.store_tombstone(
            room_id,
            user,
            &new_room,
            plan.tombstone.as_ref(),
            old_room_guard,
        )
        .await?;
        // The old room's canonical alias is cleared, its aliases being the new room's
        // now (as Synapse does; left as it is where the upgrader may not change it).
        if plan.clear_canonical_alias {
            self.append_allowed(
                room_id,
                user,
                EventTemplate::state("m.room.canonical_alias", "", json!({})),
            )
            .await?;
        }
        // The upgrade stands even when the upgrader may not change the old room's levels.
        if let Some(levels) = &plan.restricted_levels {
            self.append_allowed(
                room_id,
                user,
                EventTemplate::state("m.room.power_levels", "", Value::Object(levels.clone())),
            )
            .await?;
        }
        self.copy_user_state(room_id, &new_room)?;
        self.end_upgrade(room_id, Some(&new_room)).await?;
        Ok(new_room)
    }

    /// Each local member's view of the old room carries over to the new one, as Synapse
    /// does: its tags, and its place in `m.direct`. Done again after a restart, each
    /// step changes nothing the second time.
    fn copy_user_state(&self, old_room: &RoomId, new_room: &RoomId) -> Result<()> {
        let members = self.room_members(old_room)?;
        let local = members
            .joined
            .iter()
            .filter(|u| u.server_name() == self.server_name());
        for user in local {
            self.update_account_data(user, None, DIRECT_TYPE, |current| {
                Ok(current.and_then(|direct| with_replacement(direct, old_room, new_room)))
            })?;
            let tags = self.account_data(user, Some(old_room), TAG_TYPE)?;
            if let Some(tags) = tags.filter(|t| t.get("tags").is_some_and(|t| t != &json!({}))) {
                self.update_account_data(user, Some(new_room), TAG_TYPE, |current| {
                    Ok(current.is_none().then_some(tags))
                })?;
            }
        }
        Ok(())
    }

    /// Stores the tombstone built before the new room was made (whose ID the new room's
    /// predecessor names), unless it is stored already; built on extremities the old
    /// room has since moved past (only when an upgrade cut short is finished after a
    /// restart), or never built (v12, whose room ID comes from its create event), a
    /// tombstone is built now.
    async fn store_tombstone(
        &self,
        room_id: &RoomId,
        user: &UserId,
        new_room: &RoomId,
        prebuilt: Option<&Value>,
        old_room_guard: Option<RoomGuard>,
    ) -> Result<()> {
        let guard = match old_room_guard {
            Some(guard) => guard,
            None => self.rooms.lock(room_id).await,
        };
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
        if let Some(json) = prebuilt {
            let pdu = Pdu::from_json(json.clone(), room.version)?;
            if self.store.event(pdu.event_id().as_str())?.is_some() {
                return Ok(());
            }
            let current = &room.extremities[..room.extremities.len().min(MAX_PREV_EVENTS)];
            if pdu.prev_events() == current {
                let batch = self.store.batch();
                return self.commit_local_event(
                    batch,
                    room_id,
                    &room,
                    &pdu,
                    json.clone(),
                    Local::default(),
                );
            }
            tracing::warn!(%room_id, "the old room moved on before its tombstone was stored; building it again");
        }
        drop(guard);
        self.append_event(room_id, user, tombstone_template(new_room), None)
            .await?;
        Ok(())
    }

    /// Appends an event the upgrade can do without: refused by the auth rules, it is
    /// logged and left out.
    async fn append_allowed(
        &self,
        room: &RoomId,
        user: &UserId,
        template: EventTemplate,
    ) -> Result<()> {
        let what = format!("{} {:?}", template.event_type, template.state_key);
        match self.append_event(room, user, template, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::Forbidden => {
                tracing::warn!(%room, event = %what, error = %e, "left out of a room upgrade");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The last write of an upgrade: the old room's local aliases point to the new room
    /// (spec: the server SHOULD move them), the new room takes the old one's place in
    /// the published directory (as Synapse), and the intent is deleted, all in one batch.
    /// Without `new_room` only the intent is deleted.
    async fn end_upgrade(&self, room_id: &RoomId, new_room: Option<&RoomId>) -> Result<()> {
        let mut batch = self.store.batch();
        let _aliases = match new_room {
            Some(new_room) => {
                let guard = Some(self.lock_aliases().await);
                for alias in self.store.room_aliases(room_id.as_str())? {
                    if let Some(record) = self.store.alias(&alias)?
                        && record.room_id.as_str() == room_id.as_str()
                    {
                        batch.delete_alias(&alias, &record);
                        batch.put_alias(
                            &alias,
                            &AliasRecord {
                                room_id: new_room.to_owned(),
                                creator: record.creator,
                            },
                        )?;
                    }
                }
                if self.store.is_published(room_id.as_str())? {
                    batch.set_published(room_id.as_str(), false)?;
                    batch.set_published(new_room.as_str(), true)?;
                }
                guard
            }
            None => None,
        };
        for intent in self.store.fanout_intents(room_id.as_str())? {
            if intent.kind == FanoutKind::UpgradeRoom {
                batch.delete_fanout_intent(room_id.as_str(), intent.kind, intent.generation);
            }
        }
        self.store.write(batch)?;
        Ok(())
    }

    /// Every event the upgrade writes after the new room's create event, worked out from
    /// the old room's state before anything is written.
    fn plan_upgrade(
        &self,
        old_version: RoomVersion,
        new_version: RoomVersion,
        state: &StateContents,
        powers: &RoomPowers,
        user: &UserId,
        new_creators: &BTreeSet<OwnedUserId>,
    ) -> Result<UpgradePlan> {
        let old_levels = state.get(&key("m.room.power_levels", ""));
        let levels = upgraded_power_levels(
            old_version,
            new_version,
            powers,
            old_levels,
            user,
            new_creators,
        )?;
        let mut new_state = vec![EventTemplate::state(
            "m.room.power_levels",
            "",
            Value::Object(levels),
        )];
        let old_create = state_content(state, "m.room.create", "");
        let is_space = old_create.get("type").and_then(Value::as_str) == Some("m.space");
        // Guest access is written even where the old room left it at its default, so
        // that the new room states it (Synapse's replacement rooms always have one).
        if !state.contains_key(&key("m.room.guest_access", "")) {
            new_state.push(EventTemplate::state(
                "m.room.guest_access",
                "",
                json!({ "guest_access": "forbidden" }),
            ));
        }
        for ((event_type, state_key), content) in state {
            let copy = (TRANSFERABLE.contains(&event_type.as_str()) && state_key.is_empty())
                || (is_space && event_type == "m.space.child");
            if copy {
                new_state.push(EventTemplate::state(
                    event_type,
                    state_key,
                    Value::Object(content.clone()),
                ));
            }
        }
        let restricted_levels = match old_levels {
            Some(content) => restricted_levels(old_version, content)?,
            None => {
                tracing::warn!("old room has no power levels to restrict");
                None
            }
        };
        Ok(UpgradePlan {
            upgrader: user.to_owned(),
            new_room: None,
            new_state,
            bans: carried_bans(state, new_creators),
            restricted_levels,
            tombstone: None,
            clear_canonical_alias: !state_content(state, "m.room.canonical_alias", "").is_empty(),
        })
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
}

/// `m.direct` content with `new_room` listed beside `old_room` wherever that is listed;
/// `None` when nothing changes.
fn with_replacement(mut direct: Value, old_room: &RoomId, new_room: &RoomId) -> Option<Value> {
    let mut changed = false;
    for rooms in direct.as_object_mut()?.values_mut() {
        let Some(rooms) = rooms.as_array_mut() else {
            continue;
        };
        let has = |id: &RoomId| rooms.iter().any(|r| r.as_str() == Some(id.as_str()));
        if has(old_room) && !has(new_room) {
            rooms.push(json!(new_room));
            changed = true;
        }
    }
    changed.then_some(direct)
}

/// The old room's bans, to be issued again in the new room (creators cannot be banned).
fn carried_bans(state: &StateContents, new_creators: &BTreeSet<OwnedUserId>) -> Vec<EventTemplate> {
    let mut bans = Vec::new();
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
        bans.push(EventTemplate::state("m.room.member", target, ban));
    }
    bans
}

/// The old room's power levels with `events_default` and `invite` raised to
/// `max(50, users_default + 1)`, as the spec suggests, so ordinary users can no longer
/// talk or invite there; `None` when they are that high already.
fn restricted_levels(
    version: RoomVersion,
    content: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>> {
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
    Ok(changed.then_some(content))
}

/// What an upgrade writes after the new room's create event, kept in its `UpgradeRoom`
/// fan-out intent until the last step is written.
#[derive(Debug, Serialize, Deserialize)]
struct UpgradePlan {
    upgrader: OwnedUserId,
    /// Added to the intent by `append_create_event`, which makes the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    new_room: Option<OwnedRoomId>,
    /// The new room's power levels, then the copied state.
    new_state: Vec<EventTemplate>,
    bans: Vec<EventTemplate>,
    /// The old room's power levels restricted, when they change.
    restricted_levels: Option<Map<String, Value>>,
    /// The old room's tombstone, built before the new room (absent for v12 rooms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tombstone: Option<Value>,
    /// Whether the old room's canonical alias is to be emptied.
    #[serde(default)]
    clear_canonical_alias: bool,
}

type RoomGuard = tokio::sync::OwnedMutexGuard<()>;

fn tombstone_template(new_room: &RoomId) -> EventTemplate {
    EventTemplate::state(
        TOMBSTONE,
        "",
        json!({
            "body": "This room has been replaced",
            "replacement_room": new_room,
        }),
    )
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
