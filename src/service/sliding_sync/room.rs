//! One room of a sliding sync response: its timeline since the connection last sent it,
//! the state asked for (all of it the first time, what changed after), name, heroes,
//! counts and bump stamp; for an invite or knock, what the user may see of the room.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ruma::{OwnedEventId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Pass;
use super::answer::SlidingRoom;
use super::lists::Candidate;
use super::request::RoomWants;
use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::{ClientView, RoomMembers, StateIds};
use crate::service::sync::{SyncToken, Timeline, TimelineWindow, fit_timeline_budget};

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
    /// What lists and subscriptions asked for then: shared with the states after it
    /// while they ask the same.
    pub wants: Arc<RoomWants>,
    /// Members whose membership `$LAZY` loading has sent, unchanged since: a timeline
    /// they send in later does not carry it again. Shared with the states after it
    /// until it changes.
    #[serde(default, skip_serializing_if = "none_lazy")]
    pub lazy: Arc<BTreeSet<String>>,
}

fn none_lazy(lazy: &Arc<BTreeSet<String>>) -> bool {
    lazy.is_empty()
}

impl SentRoom {
    /// Whether this was sent for a room the user is in (or left) as it is: with the
    /// membership it has, for the very `wants` asked now. Then, with no event after
    /// [`SentRoom::at`] up to where the user reads, there is nothing to send and what
    /// [`Services::sliding_room`] would keep is this.
    pub(super) fn same_room(&self, candidate: &Candidate, wants: &Arc<RoomWants>) -> bool {
        matches!(candidate.membership(), "join" | "leave" | "ban")
            && self.membership == candidate.membership()
            && self.membership_at == candidate.record.stream
            && Arc::ptr_eq(&self.wants, wants)
    }
}

/// A room's part of the response, and what the connection has sent of it after.
pub struct RoomUpdate {
    pub body: Option<SlidingRoom>,
    pub sent: SentRoom,
    /// Sent in full: the extensions send its receipts and account data in full too.
    pub initial: bool,
}

impl Services {
    pub(super) fn sliding_room(
        &self,
        pass: &Pass<'_>,
        candidate: &Candidate,
        wants: &Arc<RoomWants>,
        sent: Option<&SentRoom>,
    ) -> Result<RoomUpdate> {
        let record = candidate.record;
        let sent_now = |at: u64, lazy: Arc<BTreeSet<String>>| SentRoom {
            at,
            membership: record.membership.clone(),
            membership_at: record.stream,
            wants: wants.clone(),
            lazy,
        };
        match candidate.membership() {
            "invite" | "knock" => {
                if sent.is_some_and(|s| s.membership_at == record.stream) {
                    return Ok(RoomUpdate {
                        body: None,
                        sent: sent_now(pass.now.events, Arc::default()),
                        initial: false,
                    });
                }
                let body = self.invited_room(pass, candidate)?;
                Ok(RoomUpdate {
                    body: Some(body),
                    sent: sent_now(pass.now.events, Arc::default()),
                    initial: true,
                })
            }
            _ => self.member_room(pass, candidate, wants, sent, sent_now),
        }
    }

    fn invited_room(&self, pass: &Pass<'_>, candidate: &Candidate) -> Result<SlidingRoom> {
        let stripped = match &candidate.record.invite_state {
            Some(state) => state.clone(),
            None => self.stripped_state(candidate.room_id, Some(pass.user_id))?,
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
        let mut body = Map::new();
        body.insert("initial".into(), json!(true));
        body.insert(
            "bump_stamp".into(),
            json!(self.bump_stamp(pass, candidate)?),
        );
        body.insert("is_dm".into(), json!(self.is_dm(pass, candidate)?));
        if let Some(name) = find("m.room.name", "/content/name") {
            body.insert("name".into(), json!(name));
        }
        if let Some(avatar) = find("m.room.avatar", "/content/url") {
            body.insert("avatar".into(), json!(avatar));
        }
        body.insert(field.into(), Value::Array(stripped));
        Ok(SlidingRoom::without_timeline(body))
    }

    fn member_room(
        &self,
        pass: &Pass<'_>,
        candidate: &Candidate,
        wants: &Arc<RoomWants>,
        sent: Option<&SentRoom>,
        sent_now: impl Fn(u64, Arc<BTreeSet<String>>) -> SentRoom,
    ) -> Result<RoomUpdate> {
        let room_id = candidate.room_id;
        let upto = candidate.upto(pass.now.events);
        // Continued from where it was sent while the user stays in or leaves; a room last
        // sent as an invite (or before a rejoin) is new to the client as a room it is in.
        let sent =
            sent.filter(|s| s.membership == "join" || s.membership == candidate.membership());
        let initial = sent.is_none();
        // The same `Arc` while the client asks the same (see `sliding_sync_once`).
        let rewanted = sent.is_some_and(|s| !Arc::ptr_eq(&s.wants, wants) && s.wants != *wants);
        let from = sent.map(|s| s.at);
        let lazy_before = || sent.map(|s| s.lazy.clone()).unwrap_or_default();
        if let Some(from) = from
            && from >= upto
            && !rewanted
        {
            return Ok(RoomUpdate {
                body: None,
                sent: sent_now(from, lazy_before()),
                initial: false,
            });
        }
        let timeline = self.sliding_timeline(pass, candidate, from.unwrap_or(0), upto, wants)?;
        let full = initial || rewanted;
        let group_now = self.state_group_at(room_id, upto)?;
        // Messages leave a room's state group as it was: when it is the one last sent,
        // no state changed and the state need not be built (most updates).
        let same_state = match from {
            Some(from) if !full => self.state_group_at(room_id, from)? == group_now,
            _ => false,
        };
        let (state_now, changed): (Option<StateIds>, BTreeSet<(String, String)>) = if same_state {
            (None, BTreeSet::new())
        } else {
            let state_now = self.state_of_group(group_now)?;
            let changed = match from {
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
            (Some(state_now), changed)
        };
        if !full && timeline.events.is_empty() && changed.is_empty() {
            return Ok(RoomUpdate {
                body: None,
                sent: sent_now(upto, lazy_before()),
                initial: false,
            });
        }
        // The lazy members the client has, as they still are: a membership that changed
        // since is sent again with the member's next event.
        let mut lazy = if full { Arc::default() } else { lazy_before() };
        for (event_type, state_key) in &changed {
            if event_type == "m.room.member" && lazy.contains(state_key) {
                Arc::make_mut(&mut lazy).remove(state_key);
            }
        }
        let required_state = self.required_state(
            pass,
            (state_now.as_ref(), group_now),
            &changed,
            &timeline,
            wants,
            &mut lazy,
        )?;

        let mut body = Map::new();
        if initial {
            body.insert("initial".into(), json!(true));
        }
        let members_changed = changed.iter().any(|(t, _)| t == "m.room.member");
        // The membership as the user may know it: now, or as they left it.
        let members = if candidate.membership() == "join" {
            self.room_members(room_id)?
        } else {
            let (joined, invited) = match &state_now {
                Some(state) => self.members_in(state)?,
                None => self.members_in(&self.state_of_group(group_now)?)?,
            };
            Arc::new(RoomMembers { joined, invited })
        };
        let (joined, invited) = (&members.joined, &members.invited);
        // Name, avatar and heroes change with the state only: without a state change
        // they were sent before.
        if let Some(state_now) = &state_now {
            let name_key = ("m.room.name".to_owned(), String::new());
            let name = self.state_content_str(state_now, &name_key, "name")?;
            if (full || changed.contains(&name_key))
                && let Some(name) = &name
            {
                body.insert("name".into(), json!(name));
            }
            let avatar_key = ("m.room.avatar".to_owned(), String::new());
            if (full || changed.contains(&avatar_key))
                && let Some(avatar) = self.state_content_str(state_now, &avatar_key, "url")?
            {
                body.insert("avatar".into(), json!(avatar));
            }
            if name.is_none() && (full || members_changed) {
                body.insert(
                    "heroes".into(),
                    self.heroes(pass.user_id, state_now, joined, invited)?,
                );
            }
        }
        body.insert("joined_count".into(), json!(joined.len()));
        body.insert("invited_count".into(), json!(invited.len()));
        // MSC4186 has no per-thread counts: the main timeline and every thread together.
        let unread = self
            .unread_counts(pass.user_id, room_id, candidate.record.since(), upto)?
            .total();
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
        // Written from the shared cached events (see `answer.rs`).
        let events = timeline.events.into_iter().map(|(_, e)| e).collect();
        Ok(RoomUpdate {
            body: Some(SlidingRoom {
                rest: body,
                timeline: Some(events),
            }),
            sent: sent_now(upto, lazy),
            initial,
        })
    }

    /// The newest events in `(from, to]` the user may see, at most the limit, and no
    /// more than what is left of the answer's `limits.sync_timeline_bytes`.
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
        let mut timeline = self.visible_timeline(candidate.room_id, view, window, |_| true)?;
        fit_timeline_budget(&pass.timeline_bytes_left, &mut timeline);
        Ok(timeline)
    }

    /// The state asked for among `keys` (the changed ones, or all of them), with the
    /// membership of the timeline's senders when members are loaded lazily, but for
    /// those in `lazy` (the client has it; those sent now are added). `state` is the
    /// room's state (of group `group`) when built; without it only `keys` is empty and
    /// the senders' memberships are read from the group.
    fn required_state(
        &self,
        pass: &Pass<'_>,
        (state, group): (Option<&StateIds>, Option<u64>),
        keys: &BTreeSet<(String, String)>,
        timeline: &Timeline,
        wants: &RoomWants,
        lazy: &mut Arc<BTreeSet<String>>,
    ) -> Result<Vec<Value>> {
        let user = pass.user_id.as_str();
        let mut chosen: BTreeMap<(String, String), OwnedEventId> = BTreeMap::new();
        if let Some(state) = state {
            chosen.extend(
                state
                    .iter()
                    .filter(|(key, _)| keys.contains(*key) && wants.wants(user, &key.0, &key.1))
                    .map(|(key, id)| (key.clone(), id.clone())),
            );
        }
        if wants.lazy_members() {
            let mut senders = timeline.senders();
            senders.retain(|sender| !lazy.contains(sender));
            match (state, group) {
                (Some(state), _) => {
                    for sender in senders {
                        let key = ("m.room.member".to_owned(), sender);
                        if let Some(id) = state.get(&key) {
                            chosen.insert(key.clone(), id.clone());
                            Arc::make_mut(lazy).insert(key.1);
                        }
                    }
                }
                (None, Some(group)) => {
                    let wanted: Vec<(&str, &str)> = senders
                        .iter()
                        .map(|sender| ("m.room.member", sender.as_str()))
                        .collect();
                    let found = self.state_entries_at(group, &wanted)?;
                    for (sender, id) in senders.iter().zip(found) {
                        if let Some(id) = id {
                            chosen.insert(("m.room.member".to_owned(), sender.clone()), id);
                            Arc::make_mut(lazy).insert(sender.clone());
                        }
                    }
                }
                (None, None) => {}
            }
        }
        let view = ClientView {
            user_id: pass.user_id,
            device_id: pass.device_id,
        };
        let mut events = Vec::new();
        for event_id in chosen.values() {
            if let Some(cached) = self.store.event_shared(event_id.as_str())? {
                events.push(self.client_event_of(event_id.as_str(), &cached.record, Some(view))?);
            }
        }
        Ok(events)
    }

    /// The state of a state group (empty before the room's first event).
    fn state_of_group(&self, group: Option<u64>) -> Result<StateIds> {
        match group {
            Some(group) => self.state_ids_at(group),
            None => Ok(StateIds::default()),
        }
    }

    /// The joined and invited members of a room state.
    fn members_in(&self, state: &StateIds) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
        let (mut joined, mut invited) = (Vec::new(), Vec::new());
        for ((event_type, state_key), event_id) in state {
            if event_type != "m.room.member" {
                continue;
            }
            let Some(event) = self.store.event_shared(event_id.as_str())? else {
                continue;
            };
            let Ok(user) = OwnedUserId::try_from(state_key.as_str()) else {
                continue;
            };
            match event
                .record
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
        Ok(self
            .store
            .event_shared(event_id.as_str())?
            .and_then(|e| e.content_str(field).map(str::to_owned)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UserRoomRecord;

    fn record(membership: &str, stream: u64) -> UserRoomRecord {
        UserRoomRecord {
            membership: membership.to_owned(),
            event_id: ruma::owned_event_id!("$member"),
            stream,
            forgotten: false,
            invite_state: None,
            joined_since: None,
        }
    }

    /// A room is passed over only when it was sent with the membership it has and for
    /// the very wants asked now.
    #[test]
    fn a_room_with_nothing_new_is_recognised() {
        let room_id = ruma::owned_room_id!("!r:x");
        let wants = Arc::new(RoomWants::default());
        let sent = SentRoom {
            at: 10,
            membership: "join".to_owned(),
            membership_at: 4,
            wants: wants.clone(),
            lazy: Arc::default(),
        };
        let joined = record("join", 4);
        let candidate = Candidate {
            room_id: &room_id,
            record: &joined,
        };
        assert!(sent.same_room(&candidate, &wants));
        let same = Arc::new(RoomWants::default());
        assert!(!sent.same_room(&candidate, &same), "wants not shared");
        let rejoined = record("join", 7);
        let candidate = Candidate {
            room_id: &room_id,
            record: &rejoined,
        };
        assert!(
            !sent.same_room(&candidate, &wants),
            "another membership event"
        );
        let left = record("leave", 8);
        let candidate = Candidate {
            room_id: &room_id,
            record: &left,
        };
        assert!(!sent.same_room(&candidate, &wants), "left since");
        let sent_left = SentRoom {
            membership: "leave".to_owned(),
            membership_at: 8,
            ..sent.clone()
        };
        assert!(
            sent_left.same_room(&candidate, &wants),
            "left, sent as left"
        );
        let invited = record("invite", 4);
        let candidate = Candidate {
            room_id: &room_id,
            record: &invited,
        };
        let sent_invite = SentRoom {
            membership: "invite".to_owned(),
            ..sent.clone()
        };
        assert!(
            !sent_invite.same_room(&candidate, &wants),
            "invites go their way"
        );
    }
}
