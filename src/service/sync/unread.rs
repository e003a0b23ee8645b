//! Unread counts for `unread_notifications`: messages from others after the user's
//! read receipt, and those among them that mention the user.
//!
//! Each event from someone else is evaluated against the user's push rules: it counts
//! when the actions say `notify`, and as a highlight when they set `highlight`, as in
//! Synapse. Counts are kept per user and room in memory and extended incrementally, so a
//! sync reads only the events that arrived since the last one; after a restart, or once
//! the user changes their push rules, they are recounted from the receipt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::push_rules::{CompiledRules, PushContext, Ruleset};
use crate::event::{Power, RoomPowers, RoomVersion};
use crate::service::Services;
use crate::service::push_rules::PUSH_RULES_TYPE;
use crate::service::receipts::{READ, READ_PRIVATE};
use crate::store::ReceiptChange;

/// The most events one recount reads; older unread events are not counted.
const MAX_RECOUNT: usize = 10_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub notifications: u64,
    pub highlights: u64,
}

/// A user's push rules ready for evaluation, tagged with the account data position of
/// the `m.push_rules` they came from (0: the predefined rules).
#[derive(Clone)]
pub struct UserPushRules {
    position: u64,
    rules: Arc<CompiledRules>,
}

impl UserPushRules {
    pub fn position(&self) -> u64 {
        self.position
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The `m.push_rules` position the counts were made with.
    rules_at: u64,
    /// The receipt the counts start from (event stream position).
    from: u64,
    /// The counts cover events up to here.
    to: u64,
    counts: Counts,
}

#[derive(Default)]
pub struct UnreadCounts {
    entries: Mutex<HashMap<(OwnedUserId, OwnedRoomId), Entry>>,
    /// Compiled rules per user, so a sync compiles them only after they changed.
    rules: Mutex<HashMap<OwnedUserId, UserPushRules>>,
    /// Each room's push facts with the state group they were read at.
    rooms: Mutex<HashMap<OwnedRoomId, (u64, Arc<RoomPushFacts>)>>,
}

impl Services {
    /// The user's push rules for counting: one account data read, compiled again only
    /// when they changed.
    pub(crate) fn counting_push_rules(&self, user_id: &UserId) -> Result<UserPushRules> {
        let record = self
            .store
            .account_data(user_id.as_str(), None, PUSH_RULES_TYPE)?;
        let position = record.as_ref().map_or(0, |r| r.position);
        let mut cache = self.unread.rules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = cache.get(user_id)
            && cached.position == position
        {
            return Ok(cached.clone());
        }
        let ruleset =
            Ruleset::from_account_data(record.as_ref().map(|r| &r.content), user_id.as_str());
        let rules = UserPushRules {
            position,
            rules: Arc::new(CompiledRules::new(&ruleset)),
        };
        cache.insert(user_id.to_owned(), rules.clone());
        Ok(rules)
    }

    /// Counts for the room as of stream position `to`. `joined_at` bounds the count when
    /// the user has no receipt.
    pub(crate) fn unread_counts(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        joined_at: u64,
        to: u64,
        push_rules: &UserPushRules,
    ) -> Result<Counts> {
        let from = self.read_up_to(user_id, room_id)?.unwrap_or(joined_at);
        let key = (user_id.to_owned(), room_id.to_owned());
        let cached = self
            .unread
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied();
        let mut entry = match cached {
            Some(entry)
                if entry.from == from
                    && entry.to <= to
                    && entry.rules_at == push_rules.position =>
            {
                entry
            }
            _ => Entry {
                rules_at: push_rules.position,
                from,
                to: from,
                counts: Counts::default(),
            },
        };
        if entry.to < to {
            let events = self
                .store
                .room_events_after(room_id.as_str(), entry.to, MAX_RECOUNT)?;
            let mut room = None;
            for (position, event_id) in events {
                if position > to {
                    break;
                }
                entry.to = position;
                let Some(record) = self.store.event(event_id.as_str())? else {
                    continue;
                };
                if record.redacted_because.is_some() || is_own(user_id, &record.pdu) {
                    continue;
                }
                // Read once per call, and only when there is something to evaluate.
                let room = match &mut room {
                    Some(room) => room,
                    None => room.insert(self.push_room(user_id, room_id)?),
                };
                count_event(
                    &mut entry.counts,
                    &push_rules.rules,
                    room,
                    user_id,
                    &record.pdu,
                );
            }
            entry.to = entry.to.max(to);
        }
        self.unread
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, entry);
        Ok(entry.counts)
    }

    /// What the push conditions need to know about the room and the user in it. The
    /// room's part (power levels, member count) depends only on its state, so it is
    /// computed once per state group and shared by every member's count.
    fn push_room(&self, user_id: &UserId, room_id: &RoomId) -> Result<PushRoom> {
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::internal(format!("unknown room {room_id}")))?;
        let cached = self
            .unread
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room_id)
            .filter(|(group, _)| *group == room.state_group)
            .map(|(_, facts)| facts.clone());
        let facts = match cached {
            Some(facts) => facts,
            None => {
                let facts = Arc::new(self.room_push_facts(room_id, room.version)?);
                self.unread
                    .rooms
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(room_id.to_owned(), (room.state_group, facts.clone()));
                facts
            }
        };
        let display_name = match self.store.current_state_id(
            room_id.as_str(),
            "m.room.member",
            user_id.as_str(),
        )? {
            Some(member) => self.store.event(member.as_str())?.and_then(|member| {
                member
                    .pdu
                    .pointer("/content/displayname")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
            None => None,
        };
        Ok(PushRoom {
            facts,
            display_name,
        })
    }

    fn room_push_facts(&self, room_id: &RoomId, version: RoomVersion) -> Result<RoomPushFacts> {
        let create = self
            .current_state_pdu(room_id, version, "m.room.create", "")?
            .ok_or_else(|| Error::internal(format!("room {room_id} has no create event")))?;
        let power_levels = self.current_state_pdu(room_id, version, "m.room.power_levels", "")?;
        let powers = RoomPowers::new(version, &create, power_levels.as_ref())?;
        Ok(RoomPushFacts {
            member_count: self.room_members(room_id)?.joined.len() as u64,
            notification_levels: powers
                .levels()
                .notifications
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            powers,
        })
    }

    /// The stream position of the newest event the user has a read receipt (public or
    /// private, unthreaded or on the main timeline) for.
    fn read_up_to(&self, user_id: &UserId, room_id: &RoomId) -> Result<Option<u64>> {
        let mut newest = None;
        for receipt_type in [READ, READ_PRIVATE] {
            for thread in ["", "main"] {
                let change = ReceiptChange {
                    room_id: room_id.to_owned(),
                    receipt_type: receipt_type.to_owned(),
                    user_id: user_id.to_owned(),
                    thread: thread.to_owned(),
                };
                if let Some(record) = self.store.receipt(&change)? {
                    newest = newest.max(Some(record.event_stream));
                }
            }
        }
        Ok(newest)
    }
}

/// The part of the push context that is the same for every member of the room.
struct RoomPushFacts {
    member_count: u64,
    notification_levels: HashMap<String, i64>,
    powers: RoomPowers,
}

struct PushRoom {
    facts: Arc<RoomPushFacts>,
    display_name: Option<String>,
}

/// The push rules are not asked about the user's own events (nor about redacted ones,
/// whose notifications Synapse withdraws).
fn is_own(user_id: &UserId, pdu: &Value) -> bool {
    pdu.get("sender").and_then(Value::as_str) == Some(user_id.as_str())
}

fn count_event(
    counts: &mut Counts,
    rules: &CompiledRules,
    room: &PushRoom,
    user_id: &UserId,
    pdu: &Value,
) {
    let sender_power_level = pdu
        .get("sender")
        .and_then(Value::as_str)
        .and_then(|s| UserId::parse(s).ok())
        .map_or(0, |sender| match room.facts.powers.user_power(&sender) {
            Power::Level(level) => level,
            Power::Infinite => i64::MAX,
        });
    let context = PushContext {
        user_id: user_id.as_str(),
        display_name: room.display_name.as_deref(),
        member_count: room.facts.member_count,
        sender_power_level,
        notification_levels: &room.facts.notification_levels,
    };
    if let Some(outcome) = rules.evaluate(pdu, &context)
        && outcome.notify
    {
        counts.notifications += 1;
        if outcome.highlight {
            counts.highlights += 1;
        }
    }
}
