//! Sliding sync extensions: to-device messages, encryption (device lists and key
//! counts), account data, receipts and typing, each only when the client enables it,
//! the room-scoped ones only for the lists and subscriptions it names.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ruma::OwnedRoomId;
use serde_json::{Map, Value, json};

use super::Pass;
use super::answer::SlidingRoom;
use super::lists::Candidate;
use super::request::{Extensions, RoomScoped};
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::e2ee::MAX_TO_DEVICE_PER_SYNC;
use crate::service::push_rules::PUSH_RULES_TYPE;

/// Which rooms this response covers, for the room-scoped extensions.
pub struct Scope<'a> {
    /// Each list's rooms in its ranges.
    pub lists: &'a BTreeMap<String, Vec<OwnedRoomId>>,
    pub subscriptions: &'a BTreeSet<OwnedRoomId>,
    /// Rooms sent in full in this response: their extension data is sent in full too.
    pub initial: &'a HashSet<OwnedRoomId>,
    /// The user's rooms lists and subscriptions may hold, with their memberships.
    pub candidates: &'a HashMap<&'a OwnedRoomId, Candidate<'a>>,
    /// The rooms part of the response.
    pub rooms_out: &'a BTreeMap<String, SlidingRoom>,
}

impl Scope<'_> {
    fn rooms(&self, config: &RoomScoped) -> BTreeSet<OwnedRoomId> {
        let mut rooms: BTreeSet<OwnedRoomId> = self
            .lists
            .iter()
            .filter(|(name, _)| config.covers_list(name))
            .flat_map(|(_, rooms)| rooms.iter().cloned())
            .collect();
        rooms.extend(
            self.subscriptions
                .iter()
                .filter(|r| config.covers_subscription(r.as_str()))
                .cloned(),
        );
        rooms
    }

    /// Every room of the lists' ranges and of the subscriptions.
    pub fn all_rooms(&self) -> BTreeSet<OwnedRoomId> {
        let mut rooms: BTreeSet<OwnedRoomId> = self.lists.values().flatten().cloned().collect();
        rooms.extend(self.subscriptions.iter().cloned());
        rooms
    }
}

/// The name Synapse and Element give the threads extension while MSC4360 is unstable.
const THREADS_UNSTABLE: &str = "io.element.msc4360.threads";

/// The to-device position a client's `since` names.
pub fn parse_to_device_since(since: Option<&str>) -> Result<Option<u64>> {
    match since {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            Error::invalid_param(format!(
                "extensions.to_device.since {text:?} is not a position from this server"
            ))
        }),
    }
}

impl Services {
    /// The `extensions` object, and whether it holds anything a waiting request should
    /// answer with.
    pub(super) fn sliding_extensions(
        &self,
        pass: &Pass<'_>,
        config: &Extensions,
        to_device_since: Option<u64>,
        scope: &Scope<'_>,
    ) -> Result<(Map<String, Value>, bool)> {
        let mut out = Map::new();
        let mut updates = false;
        if let Some(to_device) = config
            .to_device
            .as_ref()
            .filter(|c| c.enabled == Some(true))
        {
            let after = to_device_since.unwrap_or(0);
            let limit = to_device
                .limit
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(MAX_TO_DEVICE_PER_SYNC)
                .clamp(1, MAX_TO_DEVICE_PER_SYNC);
            let (events, reached) = self.to_device_limited(pass, after, limit)?;
            updates |= !events.is_empty();
            out.insert(
                "to_device".into(),
                json!({"next_batch": reached.max(after).to_string(), "events": events}),
            );
        }
        if config
            .e2ee
            .as_ref()
            .is_some_and(|c| c.enabled == Some(true))
        {
            let (changed, left) = match pass.since {
                Some(since) => {
                    let delta = self.device_list_delta(
                        pass.user_id,
                        (since.device_lists, pass.now.device_lists),
                        (since.events, pass.now.events),
                    )?;
                    (delta.changed, delta.left)
                }
                None => Default::default(),
            };
            updates |= !changed.is_empty() || !left.is_empty();
            // Built in place: `json!` would copy the counts and types it is given.
            let mut e2ee = Map::new();
            e2ee.insert(
                "device_lists".into(),
                json!({"changed": changed, "left": left}),
            );
            e2ee.insert(
                "device_one_time_keys_count".into(),
                Value::Object(self.one_time_key_counts(pass.user_id, pass.device_id)?),
            );
            e2ee.insert(
                "device_unused_fallback_key_types".into(),
                self.unused_fallback_key_types(pass.user_id, pass.device_id)?
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            );
            out.insert("e2ee".into(), Value::Object(e2ee));
        }
        if let Some(config) = RoomScoped::on(&config.account_data) {
            let section = self.account_data_extension(pass, &scope.rooms(config), scope)?;
            updates |= section.get("global").is_some_and(|g| g != &json!([]))
                || section.get("rooms").is_some_and(|r| r != &json!({}));
            out.insert("account_data".into(), section);
        }
        if let Some(config) = RoomScoped::on(&config.receipts) {
            let rooms = self.receipts_extension(pass, &scope.rooms(config), scope)?;
            updates |= !rooms.is_empty();
            out.insert("receipts".into(), json!({ "rooms": rooms }));
        }
        if let Some(config) = RoomScoped::on(&config.typing) {
            let mut rooms = Map::new();
            for room_id in scope.rooms(config) {
                let since = pass
                    .since
                    .map(|s| s.typing)
                    .filter(|_| !scope.initial.contains(&room_id));
                if let Some(users) = self.typing.changed_since(&room_id, since) {
                    rooms.insert(
                        room_id.to_string(),
                        json!({"type": "m.typing", "content": {"user_ids": users}}),
                    );
                }
            }
            updates |= !rooms.is_empty();
            out.insert("typing".into(), json!({ "rooms": rooms }));
        }
        for (name, threads) in [
            ("threads", &config.threads),
            (THREADS_UNSTABLE, &config.threads_unstable),
        ] {
            if let Some(threads) = threads.as_ref().filter(|c| c.enabled == Some(true))
                && let Some(section) = self.threads_extension(pass, threads, scope)?
            {
                updates = true;
                out.insert(name.into(), section);
            }
        }
        Ok((out, updates))
    }

    /// At most `limit` of the device's messages after `after`, and the position the
    /// client has seen once it has them: now, or the last one when more wait.
    fn to_device_limited(
        &self,
        pass: &Pass<'_>,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Value>, u64)> {
        // Nothing can be waiting past the stream's end: no read (most answers).
        if after >= pass.now.to_device {
            return Ok((Vec::new(), pass.now.to_device));
        }
        let records = self.store.to_device_messages(
            pass.user_id.as_str(),
            pass.device_id.as_str(),
            after,
            pass.now.to_device,
            limit,
        )?;
        let reached = match records.last() {
            Some((position, _)) if records.len() >= limit => *position,
            _ => pass.now.to_device,
        };
        let events = records
            .into_iter()
            .map(|(_, r)| json!({"sender": r.sender, "type": r.event_type, "content": r.content}))
            .collect();
        Ok((events, reached))
    }

    fn account_data_extension(
        &self,
        pass: &Pass<'_>,
        rooms: &BTreeSet<OwnedRoomId>,
        scope: &Scope<'_>,
    ) -> Result<Value> {
        let user = pass.user_id;
        let since = pass.since.map_or(0, |s| s.account_data);
        let mut global = Vec::new();
        let mut per_room: BTreeMap<OwnedRoomId, Vec<Value>> = BTreeMap::new();
        // Every change up to now: the newest position of each type, in order.
        for (position, change) in self.store.account_data_changes_since(user.as_str(), 0)? {
            if position > pass.now.account_data {
                break;
            }
            match change.room_id.and_then(|r| OwnedRoomId::try_from(r).ok()) {
                Some(room_id) => {
                    if !rooms.contains(&room_id)
                        || (position <= since && !scope.initial.contains(&room_id))
                    {
                        continue;
                    }
                    if let Some(content) =
                        self.account_data(user, Some(&room_id), &change.data_type)?
                    {
                        per_room
                            .entry(room_id)
                            .or_default()
                            .push(json!({"type": change.data_type, "content": content}));
                    }
                }
                None if change.data_type == PUSH_RULES_TYPE => {}
                None => {
                    if position <= since && pass.since.is_some() {
                        continue;
                    }
                    if let Some(content) = self.account_data(user, None, &change.data_type)? {
                        global.push(json!({"type": change.data_type, "content": content}));
                    }
                }
            }
        }
        // As `/sync`: push rules with the first response and after each change, merged
        // with the server's predefined rules.
        let push_rules_at = self
            .store
            .account_data(user.as_str(), None, PUSH_RULES_TYPE)?
            .map_or(0, |r| r.position);
        if pass.since.is_none() || push_rules_at > since {
            let content = self.push_ruleset(user)?.to_account_data();
            global.push(json!({"type": PUSH_RULES_TYPE, "content": content}));
        }
        Ok(json!({"global": global, "rooms": per_room}))
    }

    fn receipts_extension(
        &self,
        pass: &Pass<'_>,
        rooms: &BTreeSet<OwnedRoomId>,
        scope: &Scope<'_>,
    ) -> Result<Map<String, Value>> {
        let mut changes: BTreeMap<OwnedRoomId, Vec<_>> = BTreeMap::new();
        if let Some(since) = pass.since
            && since.receipts < pass.now.receipts
        {
            for (_, change) in self
                .store
                .receipt_changes(since.receipts, pass.now.receipts)?
            {
                if rooms.contains(&change.room_id) {
                    changes
                        .entry(change.room_id.clone())
                        .or_default()
                        .push(change);
                }
            }
        }
        let mut out = Map::new();
        for room_id in rooms {
            let content = if pass.since.is_none() || scope.initial.contains(room_id) {
                self.receipt_content(pass.user_id, room_id, None)?
            } else {
                match changes.get(room_id) {
                    Some(changes) => self.receipt_content(pass.user_id, room_id, Some(changes))?,
                    None => None,
                }
            };
            if let Some(event) = content {
                out.insert(room_id.to_string(), event);
            }
        }
        Ok(out)
    }
}
