//! Evaluating an accepted event against the push rules of the local members it may
//! concern, once, when it is accepted; and withdrawing the outcome again when the event
//! is redacted or the user's rules change.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::{EventId, OwnedEventId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use super::{RoomPushFacts, UserPushRules, lock};
use crate::error::{Error, Result};
use crate::event::push_rules::{CompiledRules, PushContext, UserFacts};
use crate::event::{Power, RoomVersion};
use crate::service::{Services, now_ms};
use crate::store::{Batch, EventNotifications, NotificationRecord, PushEventRecord};

/// The most events one recount (after a change of rules) reads per room.
const MAX_RECOUNT: usize = 10_000;

impl Services {
    /// Stages the notifications of an accepted event in its batch: for every local
    /// joined member but the sender (and a local user it invites), the outcome of their
    /// push rules when it says `notify`; recorded once for the room with the members
    /// whose outcome differs (see [`split_outcomes`]). Returns the users notified, with
    /// whether it highlights for them, and the event's thread.
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
    ) -> Result<Notified> {
        let sender = json.get("sender").and_then(Value::as_str).unwrap_or("");
        let Ok(sender_id) = UserId::parse(sender) else {
            return Ok(Notified::default());
        };
        let members = self.room_members(room_id)?;
        let candidates: Vec<&UserId> = members
            .joined
            .iter()
            .map(|u| &**u)
            .filter(|u| u.server_name() == self.server_name() && *u != sender_id)
            .collect();
        let invited = (json.get("type").and_then(Value::as_str) == Some("m.room.member"))
            .then(|| json.get("state_key").and_then(Value::as_str))
            .flatten()
            .and_then(|k| UserId::parse(k).ok())
            .filter(|invited| {
                invited.server_name() == self.server_name()
                    && *invited != sender_id
                    && !candidates.contains(&&**invited)
            });
        if candidates.is_empty() && invited.is_none() {
            return Ok(Notified::default());
        }
        let facts = self.room_push_facts(room_id, version, state_group, members.joined.len())?;
        let mut event = EventFacts::of(&facts, json);
        event.thread = self.thread_of(room_id, json, event.thread)?;
        let target = Target {
            room_id,
            event_id,
            pdu: json,
        };
        let mut cases = Cases::default();
        let mut outcomes = Vec::with_capacity(candidates.len());
        for user_id in candidates {
            let rules = self.compiled_push_rules(user_id)?;
            let case = self.evaluate_case(&mut cases, &rules, &facts, &event, user_id, &target)?;
            outcomes.push((user_id, case));
        }
        let invited_case = match &invited {
            Some(invited) => {
                let rules = self.compiled_push_rules(invited)?;
                self.evaluate_case(&mut cases, &rules, &facts, &event, invited, &target)?
            }
            None => None,
        };
        let mut split = split_outcomes(&cases.records, outcomes);
        if let (Some(invited), Some(case)) = (&invited, invited_case) {
            // Not joined, so the room's record never covers them: theirs is their own.
            split
                .own
                .push((invited.clone(), cases.records[case].clone()));
        }
        let mut index = EventNotifications {
            room_id: Some(room_id.to_owned()),
            stream,
            users: Vec::with_capacity(split.own.len()),
            room_record: false,
        };
        if let Some(shared) = &split.shared {
            batch.put_push_event(
                room_id.as_str(),
                stream,
                &PushEventRecord {
                    event_id: event_id.to_owned(),
                    sender: sender_id.clone(),
                    actions: shared.actions.clone(),
                    highlight: shared.highlight,
                    thread: event.thread.clone(),
                    ts: event.ts,
                    excluded: split.excluded,
                },
            )?;
            index.room_record = true;
        }
        for (user_id, record) in &split.own {
            batch.put_notification(user_id.as_str(), stream, record)?;
            index.users.push(user_id.clone());
        }
        if !index.is_empty() {
            batch.put_event_notifications(event_id.as_str(), &index)?;
        }
        let mut users = Vec::with_capacity(split.own.len());
        let mut records = Vec::with_capacity(split.own.len());
        for (user_id, record) in split.own {
            users.push((user_id, record.highlight));
            records.push(Arc::new(record));
        }
        if let Some(shared) = split.shared {
            // One record for every member it applies to, as the pushers read it.
            let record = Arc::new(NotificationRecord {
                room_id: room_id.to_owned(),
                event_id: event_id.to_owned(),
                actions: shared.actions,
                highlight: shared.highlight,
                thread: event.thread.clone(),
                ts: event.ts,
            });
            for user_id in shared.users {
                users.push((user_id, shared.highlight));
                records.push(record.clone());
            }
        }
        Ok(Notified {
            thread: event.thread,
            users,
            records,
        })
    }

    /// Stages the withdrawal of every notification of a redacted event.
    pub(crate) fn stage_withdraw_notifications(
        &self,
        batch: &mut Batch<'_>,
        event_id: &str,
    ) -> Result<Withdrawn> {
        let record = self.store.event_notifications(event_id)?;
        let Some(room_id) = &record.room_id else {
            return Ok(Withdrawn::default());
        };
        for user_id in &record.users {
            batch.delete_notification(user_id.as_str(), room_id.as_str(), record.stream);
        }
        if record.room_record {
            batch.delete_push_event(room_id.as_str(), record.stream);
        }
        batch.put_event_notifications(event_id, &EventNotifications::default())?;
        Ok(Withdrawn {
            users: record.users,
            room: record.room_record,
        })
    }

    /// Forgets cached counts after notifications were withdrawn.
    pub(crate) fn notifications_withdrawn(&self, room_id: &RoomId, withdrawn: &Withdrawn) {
        if withdrawn.room {
            self.notifications.counts.forget_room(room_id);
            // Members who left since are not reset: the worker skips a redacted event.
            match self.room_members(room_id) {
                Ok(members) => self.pushers.records_changed(&members.joined),
                Err(e) => {
                    tracing::warn!(error = %e, room = %room_id, "cannot reset the members' pusher feeds")
                }
            }
        }
        for user_id in &withdrawn.users {
            self.notifications.counts.forget(user_id, room_id);
        }
        if !withdrawn.users.is_empty() {
            self.pushers.records_changed(&withdrawn.users);
        }
    }

    /// Notes an event's notifications once its batch is written and before it becomes
    /// visible (see `counts`).
    pub(crate) fn notifications_written(&self, room_id: &RoomId, stream: u64, notified: &Notified) {
        self.notifications.counts.note_written(
            room_id,
            stream,
            notified.thread.as_deref(),
            &notified.users,
        );
        self.pushers
            .feed(stream, &notified.users, &notified.records);
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
            // From the main timeline's read position: thread events read only by their
            // thread's receipt before it keep their outcome, as read ones do.
            let from = super::read_up_to(&self.store, user_id, &room_id, None)?
                .unwrap_or(membership.since());
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
                // The room's shared outcome no longer speaks for this user.
                if let Some(mut shared) = self.store.push_event(room_id.as_str(), stream)?
                    && let Err(at) = shared
                        .excluded
                        .binary_search_by(|u| u.as_str().cmp(user_id.as_str()))
                {
                    shared.excluded.insert(at, user_id.to_owned());
                    batch.put_push_event(room_id.as_str(), stream, &shared)?;
                }
                let mut shared = EventFacts::of(&facts, &event.pdu);
                shared.thread = self.thread_of(&room_id, &event.pdu, shared.thread)?;
                if let Some(record) = self.evaluate_for(
                    &rules, &facts, &shared, user_id, &room_id, &event_id, &event.pdu,
                )? {
                    batch.put_notification(user_id.as_str(), stream, &record)?;
                    index.room_id = Some(room_id.clone());
                    index.stream = stream;
                    index.users.push(user_id.to_owned());
                }
                indexes.insert(event_id, index);
            }
            for (event_id, index) in &indexes {
                batch.put_event_notifications(event_id.as_str(), index)?;
            }
            self.store.write(batch)?;
            self.notifications.counts.forget(user_id, &room_id);
            self.pushers.records_changed(&[user_id.to_owned()]);
        }
        Ok(())
    }

    /// The thread an event is in: the root its `m.thread` relation names (`direct`), or
    /// for an event with another relation (an edit, a reaction) to an event in a thread,
    /// that thread (one hop, as Synapse follows; the spec suggests up to three). Thread
    /// roots and events relating to them are on the main timeline.
    fn thread_of(
        &self,
        room_id: &RoomId,
        pdu: &Value,
        direct: Option<OwnedEventId>,
    ) -> Result<Option<OwnedEventId>> {
        if direct.is_some() {
            return Ok(direct);
        }
        let Some(parent) = pdu
            .pointer("/content/m.relates_to")
            .filter(|r| r.get("rel_type").and_then(Value::as_str).is_some())
            .and_then(|r| r.get("event_id"))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let Some(parent) = self
            .store
            .event_shared(parent)?
            .filter(|parent| parent.record.room_id == room_id)
        else {
            return Ok(None);
        };
        let relation = parent.record.pdu.pointer("/content/m.relates_to");
        Ok(relation
            .filter(|r| r.get("rel_type").and_then(Value::as_str) == Some("m.thread"))
            .and_then(|r| r.get("event_id"))
            .and_then(Value::as_str)
            .and_then(|id| OwnedEventId::try_from(id).ok()))
    }

    /// One member's outcome for an event, as an index into `cases.records` (`None`: no
    /// notification): evaluated only when no member with the same rule set and the same
    /// [`UserFacts`] was evaluated before.
    fn evaluate_case(
        &self,
        cases: &mut Cases,
        rules: &UserPushRules,
        facts: &RoomPushFacts,
        event: &EventFacts,
        user_id: &UserId,
        target: &Target<'_>,
    ) -> Result<Option<usize>> {
        let display_name = if rules.rules.needs_display_name() {
            self.display_name_in(target.room_id, user_id)?
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
        let key = (
            Arc::as_ptr(&rules.rules) as usize,
            rules.rules.user_facts(target.pdu, &context),
        );
        if let Some(case) = cases.keys.get(&key) {
            return Ok(*case);
        }
        let case = match rules.rules.evaluate_actions(target.pdu, &context) {
            Some((outcome, actions)) if outcome.notify => {
                let record = NotificationRecord {
                    room_id: target.room_id.to_owned(),
                    event_id: target.event_id.to_owned(),
                    actions: actions.to_vec(),
                    highlight: outcome.highlight,
                    thread: event.thread.clone(),
                    ts: event.ts,
                };
                Some(
                    match cases.records.iter().position(|r| same_outcome(r, &record)) {
                        Some(index) => index,
                        None => {
                            cases.records.push(record);
                            cases.records.len() - 1
                        }
                    },
                )
            }
            _ => None,
        };
        cases.alive.push(rules.rules.clone());
        cases.keys.insert(key, case);
        Ok(case)
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
        let mut cases = Cases::default();
        let target = Target {
            room_id,
            event_id,
            pdu,
        };
        let case = self.evaluate_case(&mut cases, rules, facts, event, user_id, &target)?;
        Ok(case.map(|index| cases.records.swap_remove(index)))
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

/// The users an event notifies, `(user, highlight)`, and the thread it is in.
#[derive(Debug, Default)]
pub struct Notified {
    pub thread: Option<OwnedEventId>,
    pub users: Vec<(OwnedUserId, bool)>,
    /// Each user's notification (in the order of `users`), for their pushers' feeds.
    pub records: Vec<Arc<NotificationRecord>>,
}

/// What a redaction withdrew: the users with records of their own, and whether the room's
/// shared record went too (then every member's counts change).
#[derive(Debug, Default)]
pub struct Withdrawn {
    pub users: Vec<OwnedUserId>,
    pub room: bool,
}

/// The outcome most members share, with who shares it.
#[derive(Debug, PartialEq)]
struct Shared {
    actions: Vec<Value>,
    highlight: bool,
    users: Vec<OwnedUserId>,
}

/// An event's outcomes split into what is written.
#[derive(Debug, PartialEq)]
struct Split {
    /// The outcome recorded once for the room, when more members share it than have no
    /// notification at all.
    shared: Option<Shared>,
    /// Members the shared outcome does not apply to, sorted.
    excluded: Vec<OwnedUserId>,
    /// Records of their own: members whose outcome differs from the shared one (all of
    /// them when nothing is shared).
    own: Vec<(OwnedUserId, NotificationRecord)>,
}

/// The event being evaluated.
struct Target<'a> {
    room_id: &'a RoomId,
    event_id: &'a EventId,
    pdu: &'a Value,
}

/// The distinct outcomes of one event among the members evaluated so far.
#[derive(Default)]
struct Cases {
    /// Rule set (its address) and user facts → index into `records`, `None` for no
    /// notification.
    keys: HashMap<(usize, UserFacts), Option<usize>>,
    /// The rule sets of `keys`, kept alive so no other set takes their address.
    alive: Vec<Arc<CompiledRules>>,
    /// Distinct outcomes (actions and highlight).
    records: Vec<NotificationRecord>,
}

/// Splits the members' outcomes (indexes into `records`; `None`: no notification) into
/// the most common one, recorded once for the room, and the others, recorded per member.
fn split_outcomes(
    records: &[NotificationRecord],
    outcomes: Vec<(&UserId, Option<usize>)>,
) -> Split {
    let mut tally = vec![0_usize; records.len()];
    let mut silent = 0;
    for (_, case) in &outcomes {
        match case {
            Some(index) => tally[*index] += 1,
            None => silent += 1,
        }
    }
    let common = tally
        .iter()
        .enumerate()
        .max_by_key(|(_, count)| **count)
        .filter(|(_, count)| **count > silent)
        .map(|(index, _)| index);
    let Some(common) = common else {
        return Split {
            shared: None,
            excluded: Vec::new(),
            own: outcomes
                .into_iter()
                .filter_map(|(user, case)| Some((user.to_owned(), records[case?].clone())))
                .collect(),
        };
    };
    let mut shared = Shared {
        actions: records[common].actions.clone(),
        highlight: records[common].highlight,
        users: Vec::new(),
    };
    let mut excluded = Vec::new();
    let mut own = Vec::new();
    for (user, case) in outcomes {
        match case {
            Some(index) if index == common => shared.users.push(user.to_owned()),
            Some(index) => {
                excluded.push(user.to_owned());
                own.push((user.to_owned(), records[index].clone()));
            }
            None => excluded.push(user.to_owned()),
        }
    }
    excluded.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Split {
        shared: Some(shared),
        excluded,
        own,
    }
}

fn same_outcome(a: &NotificationRecord, b: &NotificationRecord) -> bool {
    a.highlight == b.highlight && a.actions == b.actions
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(highlight: bool) -> NotificationRecord {
        NotificationRecord {
            room_id: ruma::owned_room_id!("!r:x"),
            event_id: ruma::owned_event_id!("$e"),
            actions: if highlight {
                vec![json!("notify"), json!({"set_tweak": "highlight"})]
            } else {
                vec![json!("notify")]
            },
            highlight,
            thread: None,
            ts: 1,
        }
    }

    fn users(names: &[&str]) -> Vec<OwnedUserId> {
        names
            .iter()
            .map(|n| UserId::parse(format!("@{n}:x")).unwrap())
            .collect()
    }

    #[test]
    fn the_most_common_outcome_is_shared_and_the_rest_recorded_per_member() {
        let ids = users(&["d", "a", "c", "b", "e"]);
        let records = [record(true), record(false)];
        let outcomes = vec![
            (&*ids[0], Some(1)),
            (&*ids[1], Some(0)),
            (&*ids[2], None),
            (&*ids[3], Some(1)),
            (&*ids[4], Some(1)),
        ];
        let split = split_outcomes(&records, outcomes);
        let shared = split.shared.expect("three of five share an outcome");
        assert_eq!(shared.users, users(&["d", "b", "e"]));
        assert!(!shared.highlight);
        // Sorted, for the readers' binary search.
        assert_eq!(split.excluded, users(&["a", "c"]));
        assert_eq!(split.own.len(), 1);
        assert_eq!(split.own[0].0.as_str(), "@a:x");
        assert!(split.own[0].1.highlight);
    }

    #[test]
    fn nothing_is_shared_when_most_members_are_not_notified() {
        let ids = users(&["a", "b", "c"]);
        let outcomes = vec![(&*ids[0], None), (&*ids[1], Some(0)), (&*ids[2], None)];
        let split = split_outcomes(&[record(false)], outcomes);
        assert_eq!(split.shared, None);
        assert!(split.excluded.is_empty());
        assert_eq!(split.own.len(), 1);
        assert_eq!(split_outcomes(&[], Vec::new()).own.len(), 0);
    }

    #[test]
    fn the_shared_record_applies_to_members_but_the_sender_and_the_excluded() {
        let record = PushEventRecord {
            event_id: ruma::owned_event_id!("$e"),
            sender: UserId::parse("@s:x").unwrap(),
            actions: vec![json!("notify")],
            highlight: false,
            thread: None,
            ts: 1,
            excluded: users(&["b", "d"]),
        };
        assert!(record.applies_to("@a:x"));
        assert!(record.applies_to("@c:x"));
        assert!(!record.applies_to("@b:x"));
        assert!(!record.applies_to("@d:x"));
        assert!(!record.applies_to("@s:x"));
    }
}
