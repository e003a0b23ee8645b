//! Evaluating an accepted event against the push rules of the local members it may
//! concern, once, when it is accepted; and withdrawing the outcome again when the event
//! is redacted or the user's rules change.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::{EventId, OwnedEventId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use super::{RoomPushFacts, UserPushRules, lock};
use crate::error::{Error, Result};
use crate::event::push_rules::PushContext;
use crate::event::{Power, RoomVersion};
use crate::service::{Services, now_ms};
use crate::store::{Batch, EventNotifications, NotificationRecord};

/// The most events one recount (after a change of rules) reads per room.
const MAX_RECOUNT: usize = 10_000;

impl Services {
    /// Stages the notifications of an accepted event in its batch: for every local
    /// joined member but the sender (and a local user it invites), the outcome of their
    /// push rules when it says `notify`. Returns the users notified, with whether it
    /// highlights for them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn stage_notifications(
        &self,
        batch: &mut Batch<'_>,
        room_id: &RoomId,
        version: RoomVersion,
        state_group: u64,
        event_id: &EventId,
        json: &Value,
        stream: u64,
    ) -> Result<Vec<(OwnedUserId, bool)>> {
        let sender = json.get("sender").and_then(Value::as_str).unwrap_or("");
        let members = self.room_members(room_id)?;
        let mut candidates: Vec<&UserId> = members
            .joined
            .iter()
            .map(|u| &**u)
            .filter(|u| u.server_name() == self.server_name() && u.as_str() != sender)
            .collect();
        let invited = (json.get("type").and_then(Value::as_str) == Some("m.room.member"))
            .then(|| json.get("state_key").and_then(Value::as_str))
            .flatten()
            .and_then(|k| UserId::parse(k).ok());
        if let Some(invited) = &invited
            && invited.server_name() == self.server_name()
            && invited.as_str() != sender
            && !candidates.contains(&&**invited)
        {
            candidates.push(invited);
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let facts = self.room_push_facts(room_id, version, state_group, members.joined.len())?;
        let event = EventFacts::of(&facts, json);
        let mut records = Vec::new();
        for user_id in candidates {
            let rules = self.compiled_push_rules(user_id)?;
            let evaluated =
                self.evaluate_for(&rules, &facts, &event, user_id, room_id, event_id, json)?;
            if let Some(record) = evaluated {
                records.push((user_id.to_owned(), record));
            }
        }
        batch.put_notifications(stream, &records)?;
        Ok(records
            .into_iter()
            .map(|(u, record)| (u, record.highlight))
            .collect())
    }

    /// Stages the withdrawal of every notification of a redacted event; returns the
    /// users whose counts change.
    pub(crate) fn stage_withdraw_notifications(
        &self,
        batch: &mut Batch<'_>,
        event_id: &str,
    ) -> Result<Vec<OwnedUserId>> {
        let record = self.store.event_notifications(event_id)?;
        let Some(room_id) = &record.room_id else {
            return Ok(Vec::new());
        };
        for user_id in &record.users {
            batch.delete_notification(user_id.as_str(), room_id.as_str(), record.stream);
        }
        batch.put_event_notifications(event_id, &EventNotifications::default())?;
        Ok(record.users)
    }

    /// Forgets cached counts after notifications were withdrawn.
    pub(crate) fn notifications_withdrawn(&self, room_id: &RoomId, users: &[OwnedUserId]) {
        for user_id in users {
            self.notifications.counts.forget(user_id, room_id);
        }
    }

    /// Notes an event's notifications, `(user, highlight)`, once its batch is written
    /// and before it becomes visible (see `counts`).
    pub(crate) fn notifications_written(
        &self,
        room_id: &RoomId,
        stream: u64,
        records: &[(OwnedUserId, bool)],
    ) {
        self.notifications
            .counts
            .note_written(room_id, stream, records);
    }

    /// After the user changed their push rules: evaluates the unread events of each of
    /// their rooms again with the new rules, so the counts follow them.
    pub(crate) fn reevaluate_unread(&self, user_id: &UserId) -> Result<()> {
        let rules = self.compiled_push_rules(user_id)?;
        for (room_id, membership) in self.store.user_rooms(user_id.as_str())? {
            if membership.membership != "join" {
                continue;
            }
            let Some(room) = self.store.room(room_id.as_str())? else {
                continue;
            };
            let from =
                super::read_up_to(&self.store, user_id, &room_id)?.unwrap_or(membership.stream);
            let events = self
                .store
                .room_events_after(room_id.as_str(), from, MAX_RECOUNT)?;
            if events.is_empty() {
                continue;
            }
            let members = self.room_members(&room_id)?;
            let facts = self.room_push_facts(
                &room_id,
                room.version,
                room.state_group,
                members.joined.len(),
            )?;
            let mut batch = self.store.batch();
            let mut indexes: HashMap<OwnedEventId, EventNotifications> = HashMap::new();
            for (stream, event_id) in events {
                let Some(event) = self.store.event(event_id.as_str())? else {
                    continue;
                };
                if event.redacted_because.is_some()
                    || event.pdu.get("sender").and_then(Value::as_str) == Some(user_id.as_str())
                {
                    continue;
                }
                let mut index = self.store.event_notifications(event_id.as_str())?;
                index.users.retain(|u| u != user_id);
                batch.delete_notification(user_id.as_str(), room_id.as_str(), stream);
                let shared = EventFacts::of(&facts, &event.pdu);
                if let Some(record) = self.evaluate_for(
                    &rules, &facts, &shared, user_id, &room_id, &event_id, &event.pdu,
                )? {
                    batch.put_notifications(stream, &[(user_id.to_owned(), record)])?;
                    index.room_id = Some(room_id.clone());
                    index.stream = stream;
                    index.users.push(user_id.to_owned());
                }
                indexes.insert(event_id, index);
            }
            // Written last: `put_notifications` above wrote an index naming only this user.
            for (event_id, index) in &indexes {
                batch.put_event_notifications(event_id.as_str(), index)?;
            }
            self.store.write(batch)?;
            self.notifications.counts.forget(user_id, &room_id);
        }
        Ok(())
    }

    /// One user's outcome for an event, when it notifies.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_for(
        &self,
        rules: &UserPushRules,
        facts: &RoomPushFacts,
        event: &EventFacts,
        user_id: &UserId,
        room_id: &RoomId,
        event_id: &EventId,
        pdu: &Value,
    ) -> Result<Option<NotificationRecord>> {
        let display_name = if rules.rules.needs_display_name() {
            self.display_name_in(room_id, user_id)?
        } else {
            None
        };
        let context = PushContext {
            user_id: user_id.as_str(),
            display_name: display_name.as_deref(),
            member_count: facts.member_count,
            sender_power_level: event.sender_power_level,
            notification_levels: &facts.notification_levels,
        };
        let Some((outcome, actions)) = rules.rules.evaluate_actions(pdu, &context) else {
            return Ok(None);
        };
        if !outcome.notify {
            return Ok(None);
        }
        Ok(Some(NotificationRecord {
            room_id: room_id.to_owned(),
            event_id: event_id.to_owned(),
            actions: actions.to_vec(),
            highlight: outcome.highlight,
            thread: event.thread.clone(),
            ts: event.ts,
        }))
    }

    fn display_name_in(&self, room_id: &RoomId, user_id: &UserId) -> Result<Option<String>> {
        let Some(member) =
            self.store
                .current_state_id(room_id.as_str(), "m.room.member", user_id.as_str())?
        else {
            return Ok(None);
        };
        Ok(self.store.event(member.as_str())?.and_then(|member| {
            member
                .pdu
                .pointer("/content/displayname")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }))
    }

    /// What the push conditions need to know about the room at a state group, computed
    /// once per group and shared by every member's evaluation.
    fn room_push_facts(
        &self,
        room_id: &RoomId,
        version: RoomVersion,
        group: u64,
        member_count: usize,
    ) -> Result<Arc<RoomPushFacts>> {
        if let Some((_, _, facts)) = lock(&self.notifications.rooms)
            .get(room_id)
            .filter(|(g, count, _)| *g == group && *count == member_count)
        {
            return Ok(facts.clone());
        }
        let powers = self
            .powers_at(version, group)
            .map_err(|e| Error::internal(format!("push facts of {room_id}: {e}")))?;
        let facts = Arc::new(RoomPushFacts {
            member_count: member_count as u64,
            notification_levels: powers
                .levels()
                .notifications
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            powers,
        });
        lock(&self.notifications.rooms)
            .insert(room_id.to_owned(), (group, member_count, facts.clone()));
        Ok(facts)
    }
}

/// What every member's evaluation of one event shares: the sender's power, the event's
/// thread and its time.
struct EventFacts {
    sender_power_level: i64,
    thread: Option<OwnedEventId>,
    ts: u64,
}

impl EventFacts {
    fn of(facts: &RoomPushFacts, pdu: &Value) -> Self {
        let sender_power_level = pdu
            .get("sender")
            .and_then(Value::as_str)
            .and_then(|s| UserId::parse(s).ok())
            .map_or(0, |sender| match facts.powers.user_power(&sender) {
                Power::Level(level) => level,
                Power::Infinite => i64::MAX,
            });
        let thread = (pdu
            .pointer("/content/m.relates_to/rel_type")
            .and_then(Value::as_str)
            == Some("m.thread"))
        .then(|| {
            pdu.pointer("/content/m.relates_to/event_id")
                .and_then(Value::as_str)
        })
        .flatten()
        .and_then(|id| OwnedEventId::try_from(id).ok());
        Self {
            sender_power_level,
            thread,
            ts: pdu
                .get("origin_server_ts")
                .and_then(Value::as_u64)
                .unwrap_or_else(now_ms),
        }
    }
}
