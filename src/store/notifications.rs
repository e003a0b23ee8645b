//! Notifications (the outcome of each local member's push rules for an accepted event)
//! and pushers.
//!
//! An event's notifications are recorded once for the room when most of the local members
//! it concerns share one outcome, with the members whose outcome differs; only those get
//! records of their own:
//!
//! - `push_events`: `room_id 0xFF stream (u64 BE)` → [`PushEventRecord`]: the outcome
//!   shared by every local member joined at that position but the sender and the
//!   `excluded` users.
//! - `notifications`: `user_id 0xFF stream (u64 BE)` → [`NotificationRecord`]: the
//!   outcome of a user who is not covered by the room's record (an excluded member with
//!   an outcome of their own, the target of an invite; every notification recorded
//!   before `push_events` existed), newest last.
//! - `room_notifications`: `user_id 0xFF room_id 0xFF stream (u64 BE)` →
//!   [`NotificationCount`]: the same per-user records indexed per room, for counts
//!   (whether it highlights, and its thread).
//! - `event_notifications`: `event_id` → [`EventNotifications`]: which records an event
//!   has, so a redaction (or a recount) can withdraw them.
//! - `pushers`: `user_id 0xFF app_id 0xFF pushkey` → [`PusherRecord`].
//! - `pusher_progress`: the same key → the last stream position delivered (u64 BE).

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Cf, Store, StoreResult, keys};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub room_id: OwnedRoomId,
    pub event_id: OwnedEventId,
    /// The actions of the rule that matched, as the rule lists them.
    pub actions: Vec<Value>,
    pub highlight: bool,
    /// The thread root, for an event in a thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<OwnedEventId>,
    pub ts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationCount {
    pub highlight: bool,
    /// The thread root, for an event in a thread (records written before unread counts
    /// were split by thread lack it: they count on the main timeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<OwnedEventId>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventNotifications {
    pub room_id: Option<OwnedRoomId>,
    pub stream: u64,
    /// The users with a record of their own.
    pub users: Vec<OwnedUserId>,
    /// Whether the room has a [`PushEventRecord`] for the event.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_record: bool,
}

impl EventNotifications {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && !self.room_record
    }
}

/// The outcome of an event shared by the room's local members (see the module's notes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushEventRecord {
    pub event_id: OwnedEventId,
    pub sender: OwnedUserId,
    /// The actions of the rule that matched, as the rule lists them.
    pub actions: Vec<Value>,
    pub highlight: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<OwnedEventId>,
    pub ts: u64,
    /// The members the shared outcome does not apply to, sorted: their outcome, if any,
    /// is a record of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<OwnedUserId>,
}

impl PushEventRecord {
    /// Whether the shared outcome is the user's, given that they were joined at the time.
    pub fn applies_to(&self, user_id: &str) -> bool {
        self.sender.as_str() != user_id
            && self
                .excluded
                .binary_search_by(|u| u.as_str().cmp(user_id))
                .is_err()
    }

    /// The user's notification, as a record of their own would hold it.
    pub fn for_user(&self, room_id: &RoomId) -> NotificationRecord {
        NotificationRecord {
            room_id: room_id.to_owned(),
            event_id: self.event_id.clone(),
            actions: self.actions.clone(),
            highlight: self.highlight,
            thread: self.thread.clone(),
            ts: self.ts,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PusherRecord {
    pub kind: String,
    pub app_id: String,
    pub pushkey: String,
    pub app_display_name: String,
    pub device_display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_tag: Option<String>,
    pub lang: String,
    /// The pusher's `data` object as the client gave it (`url`, `format`, others).
    pub data: Value,
    /// When the pusher was set (ms), the `pushkey_ts` sent to the gateway.
    pub ts: u64,
    /// The device whose access token set the pusher: deleting the device (logging out)
    /// deletes the pusher. Absent for pushers set before Hearth recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// A Web Push pusher that is not activated yet (MSC4174): the token its validation
    /// push carries. Absent once activated, and for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<PusherActivation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PusherActivation {
    pub token: String,
    /// When the token stops being accepted (ms since the epoch).
    pub expires_ms: u64,
}

fn user_prefix(user_id: &str) -> Vec<u8> {
    keys::devices_of(user_id)
}

fn notification_key(user_id: &str, stream: u64) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(&stream.to_be_bytes());
    key
}

fn room_prefix(user_id: &str, room_id: &str) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(room_id.as_bytes());
    key.push(keys::SEP);
    key
}

fn room_key(user_id: &str, room_id: &str, stream: u64) -> Vec<u8> {
    let mut key = room_prefix(user_id, room_id);
    key.extend_from_slice(&stream.to_be_bytes());
    key
}

pub fn pusher_key(user_id: &str, app_id: &str, pushkey: &str) -> Vec<u8> {
    let mut key = user_prefix(user_id);
    key.extend_from_slice(app_id.as_bytes());
    key.push(keys::SEP);
    key.extend_from_slice(pushkey.as_bytes());
    key
}

fn push_event_prefix(room_id: &str) -> Vec<u8> {
    keys::devices_of(room_id)
}

fn push_event_key(room_id: &str, stream: u64) -> Vec<u8> {
    let mut key = push_event_prefix(room_id);
    key.extend_from_slice(&stream.to_be_bytes());
    key
}

fn stream_of(key: &[u8], prefix_len: usize) -> Option<u64> {
    <[u8; 8]>::try_from(key.get(prefix_len..)?)
        .ok()
        .map(u64::from_be_bytes)
}

impl Batch<'_> {
    /// Records one user's notification of an event at `stream`.
    pub fn put_notification(
        &mut self,
        user_id: &str,
        stream: u64,
        record: &NotificationRecord,
    ) -> StoreResult<()> {
        self.put_json(
            Cf::Notifications,
            &notification_key(user_id, stream),
            record,
        )?;
        self.put_json(
            Cf::RoomNotifications,
            &room_key(user_id, record.room_id.as_str(), stream),
            &NotificationCount {
                highlight: record.highlight,
                thread: record.thread.clone(),
            },
        )
    }

    /// Records the outcome an event at `stream` has for the room's members.
    pub fn put_push_event(
        &mut self,
        room_id: &str,
        stream: u64,
        record: &PushEventRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::PushEvents, &push_event_key(room_id, stream), record)
    }

    pub fn delete_push_event(&mut self, room_id: &str, stream: u64) {
        self.delete(Cf::PushEvents, &push_event_key(room_id, stream));
    }

    /// Withdraws one user's notification for an event.
    pub fn delete_notification(&mut self, user_id: &str, room_id: &str, stream: u64) {
        self.delete(Cf::Notifications, &notification_key(user_id, stream));
        self.delete(Cf::RoomNotifications, &room_key(user_id, room_id, stream));
    }

    pub fn put_event_notifications(
        &mut self,
        event_id: &str,
        record: &EventNotifications,
    ) -> StoreResult<()> {
        if record.is_empty() {
            self.delete(Cf::EventNotifications, event_id.as_bytes());
            Ok(())
        } else {
            self.put_json(Cf::EventNotifications, event_id.as_bytes(), record)
        }
    }

    pub fn put_pusher(&mut self, user_id: &str, record: &PusherRecord) -> StoreResult<()> {
        self.put_json(
            Cf::Pushers,
            &pusher_key(user_id, &record.app_id, &record.pushkey),
            record,
        )
    }

    pub fn delete_pusher(&mut self, user_id: &str, app_id: &str, pushkey: &str) {
        let key = pusher_key(user_id, app_id, pushkey);
        self.delete(Cf::Pushers, &key);
        self.delete(Cf::PusherProgress, &key);
    }

    pub fn put_pusher_progress(&mut self, key: &[u8], stream: u64) {
        self.put_raw(Cf::PusherProgress, key, &stream.to_be_bytes());
    }
}

impl Store {
    pub fn event_notifications(&self, event_id: &str) -> StoreResult<EventNotifications> {
        Ok(self
            .get_json(Cf::EventNotifications, event_id.as_bytes())?
            .unwrap_or_default())
    }

    pub fn push_event(&self, room_id: &str, stream: u64) -> StoreResult<Option<PushEventRecord>> {
        self.get_json(Cf::PushEvents, &push_event_key(room_id, stream))
    }

    /// The room's shared outcomes after `after` up to `to` (inclusive), oldest first: at
    /// most `limit` of those `keep` accepts.
    pub fn push_events_after(
        &self,
        room_id: &str,
        after: u64,
        to: u64,
        limit: usize,
        mut keep: impl FnMut(&PushEventRecord) -> bool,
    ) -> StoreResult<Vec<(u64, PushEventRecord)>> {
        let prefix = push_event_prefix(room_id);
        let start = push_event_key(room_id, after.saturating_add(1));
        let mut out = Vec::new();
        for item in self.raw_iter_within(Cf::PushEvents, &start, &prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let Some(stream) = stream_of(&key, prefix.len()) else {
                continue;
            };
            if stream > to {
                break;
            }
            let record: PushEventRecord = super::decode(Cf::PushEvents, &value)?;
            if keep(&record) {
                out.push((stream, record));
            }
        }
        Ok(out)
    }

    /// The room's shared outcomes before `before` (exclusive) and after `after`, newest
    /// first: at most `limit` of those `keep` accepts.
    pub fn push_events_before(
        &self,
        room_id: &str,
        before: u64,
        after: u64,
        limit: usize,
        mut keep: impl FnMut(&PushEventRecord) -> bool,
    ) -> StoreResult<Vec<(u64, PushEventRecord)>> {
        let prefix = push_event_prefix(room_id);
        let Some(last) = before.checked_sub(1) else {
            return Ok(Vec::new());
        };
        let start = push_event_key(room_id, last);
        let mut out = Vec::new();
        for item in self.raw_iter_rev_from(Cf::PushEvents, &start) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let Some(stream) = stream_of(&key, prefix.len()) else {
                continue;
            };
            if stream <= after {
                break;
            }
            let record: PushEventRecord = super::decode(Cf::PushEvents, &value)?;
            if keep(&record) {
                out.push((stream, record));
            }
        }
        Ok(out)
    }

    /// The user's notifications in the room after stream position `after`, up to `to`
    /// (inclusive), at most `limit`: `(stream, record)`.
    pub fn room_notifications_after(
        &self,
        user_id: &str,
        room_id: &str,
        after: u64,
        to: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, NotificationCount)>> {
        let prefix = room_prefix(user_id, room_id);
        let start = room_key(user_id, room_id, after.saturating_add(1));
        self.streamed_after(Cf::RoomNotifications, &prefix, &start, to, limit)
    }

    /// The user's notifications after `after` up to `to` (inclusive), oldest first.
    pub fn notifications_after(
        &self,
        user_id: &str,
        after: u64,
        to: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, NotificationRecord)>> {
        let prefix = user_prefix(user_id);
        let start = notification_key(user_id, after.saturating_add(1));
        self.streamed_after(Cf::Notifications, &prefix, &start, to, limit)
    }

    /// The records of `cf` keyed `prefix + stream (u64 BE)`, from key `start` on, up to
    /// stream `to` (inclusive), oldest first, at most `limit`: `(stream, record)`.
    fn streamed_after<T: serde::de::DeserializeOwned>(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        to: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, T)>> {
        let mut out = Vec::new();
        for item in self.raw_iter_within(cf, start, prefix) {
            let (key, value) = item?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            let Some(stream) = stream_of(&key, prefix.len()) else {
                continue;
            };
            if stream > to {
                break;
            }
            out.push((stream, super::decode(cf, &value)?));
        }
        Ok(out)
    }

    /// The user's notifications before stream position `before` (exclusive), newest
    /// first, at most `limit`.
    pub fn notifications_before(
        &self,
        user_id: &str,
        before: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, NotificationRecord)>> {
        let prefix = user_prefix(user_id);
        let Some(last) = before.checked_sub(1) else {
            return Ok(Vec::new());
        };
        let start = notification_key(user_id, last);
        let mut out = Vec::new();
        for item in self.raw_iter_rev_from(Cf::Notifications, &start) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let Some(stream) = stream_of(&key, prefix.len()) else {
                continue;
            };
            out.push((stream, super::decode(Cf::Notifications, &value)?));
        }
        Ok(out)
    }

    pub fn pushers(&self, user_id: &str) -> StoreResult<Vec<PusherRecord>> {
        Ok(self
            .scan_prefix::<PusherRecord>(Cf::Pushers, &user_prefix(user_id))?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    pub fn pusher(
        &self,
        user_id: &str,
        app_id: &str,
        pushkey: &str,
    ) -> StoreResult<Option<PusherRecord>> {
        self.get_json(Cf::Pushers, &pusher_key(user_id, app_id, pushkey))
    }

    /// Every pusher of every user: `(user_id, record)`.
    pub fn all_pushers(&self) -> StoreResult<Vec<(OwnedUserId, PusherRecord)>> {
        let mut out = Vec::new();
        for item in self.raw_iter_from(Cf::Pushers, b"") {
            let (key, value) = item?;
            let Some(end) = key.iter().position(|b| *b == keys::SEP) else {
                continue;
            };
            let Ok(user_id) = OwnedUserId::try_from(String::from_utf8_lossy(&key[..end]).as_ref())
            else {
                continue;
            };
            out.push((user_id, super::decode(Cf::Pushers, &value)?));
        }
        Ok(out)
    }

    pub fn pusher_progress(&self, key: &[u8]) -> StoreResult<Option<u64>> {
        Ok(self
            .get_raw(Cf::PusherProgress, key)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map(u64::from_be_bytes))
    }
}
