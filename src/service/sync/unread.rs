//! Unread counts for `unread_notifications`: messages from others after the user's
//! read receipt, and those among them that mention the user.
//!
//! This follows the spec's default push rules for messages (`.m.rule.message`,
//! `.m.rule.encrypted`, and `.m.rule.is_user_mention` for highlights); per-user push
//! rules come with the push work. Counts are kept per user and room in memory and
//! extended incrementally, so a sync reads only the events that arrived since the last
//! one; after a restart they are recounted from the receipt.

use std::collections::HashMap;
use std::sync::Mutex;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use crate::error::Result;
use crate::service::Services;
use crate::service::receipts::{READ, READ_PRIVATE};
use crate::store::ReceiptChange;

/// The most events one recount reads; older unread events are not counted.
const MAX_RECOUNT: usize = 10_000;

/// Event types the default push rules notify for.
const NOTIFYING_TYPES: [&str; 3] = ["m.room.message", "m.room.encrypted", "m.sticker"];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub notifications: u64,
    pub highlights: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The receipt the counts start from (event stream position).
    from: u64,
    /// The counts cover events up to here.
    to: u64,
    counts: Counts,
}

#[derive(Default)]
pub struct UnreadCounts {
    entries: Mutex<HashMap<(OwnedUserId, OwnedRoomId), Entry>>,
}

impl Services {
    /// Counts for the room as of stream position `to`. `joined_at` bounds the count when
    /// the user has no receipt.
    pub(super) fn unread_counts(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        joined_at: u64,
        to: u64,
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
            Some(entry) if entry.from == from && entry.to <= to => entry,
            _ => Entry {
                from,
                to: from,
                counts: Counts::default(),
            },
        };
        if entry.to < to {
            for (position, event_id) in
                self.store
                    .room_events_after(room_id.as_str(), entry.to, MAX_RECOUNT)?
            {
                if position > to {
                    break;
                }
                entry.to = position;
                if let Some(record) = self.store.event(event_id.as_str())? {
                    count_event(&mut entry.counts, user_id, &record.pdu);
                }
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

fn count_event(counts: &mut Counts, user_id: &UserId, pdu: &Value) {
    let event_type = pdu.get("type").and_then(Value::as_str).unwrap_or("");
    if pdu.get("sender").and_then(Value::as_str) == Some(user_id.as_str())
        || pdu.get("state_key").is_some()
        || !NOTIFYING_TYPES.contains(&event_type)
    {
        return;
    }
    let content = pdu.get("content");
    // A redacted message has lost its body and no longer notifies.
    if content
        .and_then(|c| c.get("msgtype").or(c.get("ciphertext")))
        .is_none()
        && event_type != "m.sticker"
    {
        return;
    }
    counts.notifications += 1;
    let mentioned = content
        .and_then(|c| c.pointer("/m.mentions/user_ids"))
        .and_then(Value::as_array)
        .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(user_id.as_str())));
    if mentioned {
        counts.highlights += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_others_messages_count_and_mentions_highlight() {
        let me = UserId::parse("@me:x").unwrap();
        let mut counts = Counts::default();
        let message = |sender: &str, content: Value| json!({"type": "m.room.message", "sender": sender, "content": content});
        count_event(
            &mut counts,
            &me,
            &message("@me:x", json!({"msgtype": "m.text"})),
        );
        count_event(
            &mut counts,
            &me,
            &json!({"type": "m.room.topic", "state_key": "",
            "sender": "@you:x", "content": {"topic": "t"}}),
        );
        count_event(
            &mut counts,
            &me,
            &json!({"type": "m.reaction", "sender": "@you:x",
            "content": {}}),
        );
        count_event(&mut counts, &me, &message("@you:x", json!({})));
        assert_eq!(counts, Counts::default());
        count_event(
            &mut counts,
            &me,
            &message("@you:x", json!({"msgtype": "m.text"})),
        );
        count_event(
            &mut counts,
            &me,
            &message(
                "@you:x",
                json!({"msgtype": "m.text",
            "m.mentions": {"user_ids": ["@me:x"]}}),
            ),
        );
        assert_eq!(
            counts,
            Counts {
                notifications: 2,
                highlights: 1
            }
        );
    }
}
