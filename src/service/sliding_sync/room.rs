//! One room of a sliding sync response: its timeline since the connection last sent it,
//! the state asked for (all of it the first time, what changed after), name, heroes,
//! counts and bump stamp; for an invite or knock, what the user may see of the room.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{OwnedEventId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Pass;
use super::lists::Candidate;
use super::request::RoomWants;
use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::{ClientView, StateIds};
use crate::service::sync::{SyncToken, Timeline, TimelineWindow};

/// The most heroes a room names, as the spec suggests for `/sync`.
const MAX_HEROES: usize = 5;

/// What the connection has sent of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRoom {
    /// Events up to this stream position are sent (or were skipped as too many).
    pub at: u64,
    /// The membership it was sent with, and that membership event's position.
    pub membership: String,
    pub membership_at: u64,
    /// What lists and subscriptions asked for then.
    pub wants: RoomWants,
}

/// A room's part of the response, and what the connection has sent of it after.
pub struct RoomUpdate {
    pub body: Option<Value>,
    pub sent: SentRoom,
    /// Sent in full: the extensions send its receipts and account data in full too.
    pub initial: bool,
}

impl Services {
    pub(super) fn sliding_room(
        &self,
        pass: &Pass<'_>,
        candidate: &Candidate,
        wants: &RoomWants,
        sent: Option<&SentRoom>,
    ) -> Result<RoomUpdate> {
        let record = &candidate.record;
        let sent_now = |at: u64| SentRoom {
            at,
            membership: record.membership.clone(),
            membership_at: record.stream,
            wants: wants.clone(),
        };
        match candidate.membership() {
            "invite" | "knock" => {
                if sent.is_some_and(|s| s.membership_at == record.stream) {
                    return Ok(RoomUpdate {
                        body: None,
                        sent: sent_now(pass.now.events),
                        initial: false,
                    });
                }
                let body = self.invited_room(pass, candidate)?;
                Ok(RoomUpdate {
                    body: Some(body),
                    sent: sent_now(pass.now.events),
                    initial: true,
                })
            }
            _ => self.member_room(pass, candidate, wants, sent, sent_now),
        }
    }

    fn invited_room(&self, pass: &Pass<'_>, candidate: &Candidate) -> Result<Value> {
        let stripped = match &candidate.record.invite_state {
            Some(state) => state.clone(),
            None => self.stripped_state(&candidate.room_id, Some(pass.user_id))?,
        };
        let field = if candidate.membership() == "knock" {
            "knock_state"
        } else {
            "invite_state"
        };
        let find = |event_type: &str, pointer: &str| {
            stripped
                .iter()
                .find(|e| e.get("type").and_then(Value::as_str) == Some(event_type))
                .and_then(|e| e.pointer(pointer))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let mut body = json!({
            "initial": true,
            "bump_stamp": self.bump_stamp(pass, candidate)?,
            "is_dm": self.is_dm(pass, candidate)?,
        });
        if let Some(name) = find("m.room.name", "/content/name") {
            body["name"] = json!(name);
        }
        if let Some(avatar) = find("m.room.avatar", "/content/url") {
            body["avatar"] = json!(avatar);
        }
        body[field] = Value::Array(stripped);
        Ok(body)
    }

    fn member_room(
        &self,
        pass: &Pass<'_>,
        candidate: &Candidate,
        wants: &RoomWants,
        sent: Option<&SentRoom>,
        sent_now: impl Fn(u64) -> SentRoom,
    ) -> Result<RoomUpdate> {
        let room_id = &candidate.room_id;
        let upto = candidate.upto(pass.now.events);
        // Continued from where it was sent while the user stays in or leaves; a room last
        // sent as an invite (or before a rejoin) is new to the client as a room it is in.
        let sent =
            sent.filter(|s| s.membership == "join" || s.membership == candidate.membership());
        let initial = sent.is_none();
        let rewanted = sent.is_some_and(|s| &s.wants != wants);
        let from = sent.map(|s| s.at);
        if let Some(from) = from
            && from >= upto
            && !rewanted
        {
            return Ok(RoomUpdate {
                body: None,
                sent: sent_now(from),
                initial: false,
            });
        }
        let timeline = self.sliding_timeline(pass, candidate, from.unwrap_or(0), upto, wants)?;
        let state_now = self.state_at(room_id, upto)?.unwrap_or_default();
        let full = initial || rewanted;
        let changed: BTreeSet<(String, String)> = match from {
            Some(from) if !full => {
                let before = self.state_at(room_id, from)?.unwrap_or_default();
                let mut changed: BTreeSet<_> = state_now
                    .iter()
                    .filter(|(key, id)| before.get(*key) != Some(*id))
                    .map(|(key, _)| key.clone())
                    .collect();
                changed.extend(
                    before
                        .keys()
                        .filter(|k| !state_now.contains_key(*k))
                        .cloned(),
                );
                changed
            }
            _ => state_now.keys().cloned().collect(),
        };
        if !full && timeline.events.is_empty() && changed.is_empty() {
            return Ok(RoomUpdate {
                body: None,
                sent: sent_now(upto),
                initial: false,
            });
        }
        let required_state = self.required_state(pass, &state_now, &changed, &timeline, wants)?;

        let mut body = Map::new();
        if initial {
            body.insert("initial".into(), json!(true));
        }
        let name_key = ("m.room.name".to_owned(), String::new());
        let name = self.state_content_str(&state_now, &name_key, "name")?;
        if (full || changed.contains(&name_key))
            && let Some(name) = &name
        {
            body.insert("name".into(), json!(name));
        }
        let avatar_key = ("m.room.avatar".to_owned(), String::new());
        if (full || changed.contains(&avatar_key))
            && let Some(avatar) = self.state_content_str(&state_now, &avatar_key, "url")?
        {
            body.insert("avatar".into(), json!(avatar));
        }
        let members_changed = changed.iter().any(|(t, _)| t == "m.room.member");
        // The membership as the user may know it: now, or as they left it.
        let (joined, invited) = if candidate.membership() == "join" {
            let members = self.room_members(room_id)?;
            (members.joined.clone(), members.invited.clone())
        } else {
            self.members_in(&state_now)?
        };
        if name.is_none() && (full || members_changed) {
            body.insert(
                "heroes".into(),
                self.heroes(pass.user_id, &state_now, &joined, &invited)?,
            );
        }
        body.insert("joined_count".into(), json!(joined.len()));
        body.insert("invited_count".into(), json!(invited.len()));
        let unread = self.unread_counts(pass.user_id, room_id, candidate.record.stream, upto)?;
        body.insert("notification_count".into(), json!(unread.notifications));
        body.insert("highlight_count".into(), json!(unread.highlights));
        body.insert(
            "bump_stamp".into(),
            json!(self.bump_stamp(pass, candidate)?),
        );
        if self.is_dm(pass, candidate)? {
            body.insert("is_dm".into(), json!(true));
        }
        let num_live = match pass.since {
            Some(since) if !initial => timeline
                .events
                .iter()
                .filter(|(p, _)| *p > since.events)
                .count(),
            _ => 0,
        };
        let prev_batch = SyncToken {
            events: match timeline.events.first() {
                Some((position, _)) => position.saturating_sub(1),
                None => upto,
            },
            ..pass.now
        };
        body.insert("required_state".into(), Value::Array(required_state));
        body.insert("limited".into(), json!(timeline.limited));
        body.insert("num_live".into(), json!(num_live));
        body.insert("prev_batch".into(), json!(prev_batch.to_string()));
        body.insert(
            "timeline".into(),
            Value::Array(timeline.events.into_iter().map(|(_, e)| e).collect()),
        );
        Ok(RoomUpdate {
            body: Some(Value::Object(body)),
            sent: sent_now(upto),
            initial,
        })
    }

    /// The newest events in `(from, to]` the user may see, at most the limit.
    fn sliding_timeline(
        &self,
        pass: &Pass<'_>,
        candidate: &Candidate,
        from: u64,
        to: u64,
        wants: &RoomWants,
    ) -> Result<Timeline> {
        let limit = usize::try_from(wants.timeline_limit).unwrap_or(usize::MAX);
        let view = ClientView {
            user_id: pass.user_id,
            device_id: pass.device_id,
        };
        let window = TimelineWindow {
            from,
            to,
            limit,
            current_state_visible: false,
        };
        self.visible_timeline(&candidate.room_id, view, window, |_| true)
    }

    /// The state asked for among `keys` (the changed ones, or all of them), with the
    /// membership of the timeline's senders when members are loaded lazily.
    fn required_state(
        &self,
        pass: &Pass<'_>,
        state: &StateIds,
        keys: &BTreeSet<(String, String)>,
        timeline: &Timeline,
        wants: &RoomWants,
    ) -> Result<Vec<Value>> {
        let user = pass.user_id.as_str();
        let mut chosen: BTreeMap<&(String, String), &OwnedEventId> = state
            .iter()
            .filter(|(key, _)| keys.contains(*key) && wants.wants(user, &key.0, &key.1))
            .collect();
        if wants.lazy_members() {
            for sender in timeline.senders() {
                let key = ("m.room.member".to_owned(), sender);
                if let Some((key, id)) = state.get_key_value(&key) {
                    chosen.insert(key, id);
                }
            }
        }
        let view = ClientView {
            user_id: pass.user_id,
            device_id: pass.device_id,
        };
        let mut events = Vec::new();
        for event_id in chosen.values() {
            if let Some((_, event)) = self.client_event_by_id(event_id.as_str(), Some(view))? {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// The joined and invited members of a room state.
    fn members_in(&self, state: &StateIds) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
        let (mut joined, mut invited) = (Vec::new(), Vec::new());
        for ((event_type, state_key), event_id) in state {
            if event_type != "m.room.member" {
                continue;
            }
            let Some(record) = self.store.event(event_id.as_str())? else {
                continue;
            };
            let Ok(user) = OwnedUserId::try_from(state_key.as_str()) else {
                continue;
            };
            match record
                .pdu
                .pointer("/content/membership")
                .and_then(Value::as_str)
            {
                Some("join") => joined.push(user),
                Some("invite") => invited.push(user),
                _ => {}
            }
        }
        Ok((joined, invited))
    }

    fn state_content_str(
        &self,
        state: &StateIds,
        key: &(String, String),
        field: &str,
    ) -> Result<Option<String>> {
        let Some(event_id) = state.get(key) else {
            return Ok(None);
        };
        Ok(self.store.event(event_id.as_str())?.and_then(|e| {
            e.pdu
                .get("content")?
                .get(field)?
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        }))
    }

    /// Up to five other members, joined first, with their names and avatars.
    fn heroes(
        &self,
        user_id: &UserId,
        state: &StateIds,
        joined: &[OwnedUserId],
        invited: &[OwnedUserId],
    ) -> Result<Value> {
        let mut heroes = Vec::new();
        for member in joined
            .iter()
            .chain(invited)
            .filter(|u| u.as_str() != user_id.as_str())
            .take(MAX_HEROES)
        {
            let key = ("m.room.member".to_owned(), member.to_string());
            let mut hero = json!({ "user_id": member });
            if let Some(name) = self.state_content_str(state, &key, "displayname")? {
                hero["displayname"] = json!(name);
            }
            if let Some(avatar) = self.state_content_str(state, &key, "avatar_url")? {
                hero["avatar_url"] = json!(avatar);
            }
            heroes.push(hero);
        }
        Ok(Value::Array(heroes))
    }
}
