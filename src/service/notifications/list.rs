//! The user's recorded notifications across rooms: their own records and the shared
//! records of the rooms they are joined to (see `store::notifications`), for
//! `GET /notifications` (newest first), the pushers and the email digests (oldest first).

use std::collections::HashMap;

use ruma::{DeviceId, OwnedEventId, OwnedRoomId, UserId};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::ClientView;
use crate::store::{NotificationRecord, Store};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// The most records one request reads while looking for highlights.
const MAX_SCAN: usize = 2_000;

pub struct NotificationsQuery<'a> {
    pub from: Option<&'a str>,
    pub limit: Option<usize>,
    pub only: Option<&'a str>,
}

impl Services {
    pub fn list_notifications(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        query: &NotificationsQuery<'_>,
    ) -> Result<Value> {
        let before = match query.from {
            None | Some("") => u64::MAX,
            Some(token) => token
                .parse::<u64>()
                .map_err(|_| Error::invalid_param("from is not a token from /notifications"))?,
        };
        let only_highlight = match query.only {
            None | Some("") => false,
            Some("highlight") => true,
            Some(other) => {
                return Err(Error::invalid_param(format!(
                    "Unknown value {other:?} for only; the only filter is \"highlight\""
                )));
            }
        };
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let view = ClientView { user_id, device_id };
        // Per room and thread (`None`: the main timeline).
        let mut read_up_to: HashMap<(OwnedRoomId, Option<OwnedEventId>), Option<u64>> =
            HashMap::new();
        let mut out = Vec::new();
        let mut cursor = before;
        let mut scanned = 0;
        let mut next_token = None;
        'scan: while scanned < MAX_SCAN {
            let page = notifications_before(&self.store, user_id, cursor, limit)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            cursor = *last;
            scanned += page.len();
            for (stream, record) in page {
                if only_highlight && !record.highlight {
                    continue;
                }
                let Some((_, event)) =
                    self.client_event_by_id(record.event_id.as_str(), Some(view))?
                else {
                    continue;
                };
                let key = (record.room_id.clone(), record.thread.clone());
                let read = match read_up_to.get(&key) {
                    Some(read) => *read,
                    None => {
                        let read = super::read_up_to(
                            &self.store,
                            user_id,
                            &record.room_id,
                            record.thread.as_deref(),
                        )?;
                        read_up_to.insert(key, read);
                        read
                    }
                };
                out.push(json!({
                    "actions": record.actions,
                    "event": event,
                    "profile_tag": Value::Null,
                    "read": read.is_some_and(|r| r >= stream),
                    "room_id": record.room_id,
                    "ts": record.ts,
                }));
                if out.len() >= limit {
                    next_token = Some(stream.to_string());
                    break 'scan;
                }
            }
        }
        let mut body = json!({ "notifications": out });
        if let Some(token) = next_token {
            body["next_token"] = json!(token);
        }
        Ok(body)
    }
}

/// The user's notifications after `after` up to `to` (inclusive), oldest first, at most
/// `limit`. The shared records of a room count from the start of the user's join.
pub fn notifications_after(
    store: &Store,
    user_id: &UserId,
    after: u64,
    to: u64,
    limit: usize,
) -> Result<Vec<(u64, NotificationRecord)>> {
    let mut out = store.notifications_after(user_id.as_str(), after, to, limit)?;
    for (room_id, membership) in store.user_rooms_shared(user_id.as_str())?.iter() {
        if membership.membership != "join" {
            continue;
        }
        let shared = store.push_events_after(
            room_id.as_str(),
            after.max(membership.since()),
            to,
            limit,
            |record| record.applies_to(user_id.as_str()),
        )?;
        out.extend(
            shared
                .into_iter()
                .map(|(stream, record)| (stream, record.for_user(room_id))),
        );
    }
    out.sort_by_key(|(stream, _)| *stream);
    out.truncate(limit);
    Ok(out)
}

/// The user's notifications before `before` (exclusive), newest first, at most `limit`.
fn notifications_before(
    store: &Store,
    user_id: &UserId,
    before: u64,
    limit: usize,
) -> Result<Vec<(u64, NotificationRecord)>> {
    let mut out = store.notifications_before(user_id.as_str(), before, limit)?;
    for (room_id, membership) in store.user_rooms_shared(user_id.as_str())?.iter() {
        if membership.membership != "join" {
            continue;
        }
        let shared = store.push_events_before(
            room_id.as_str(),
            before,
            membership.since(),
            limit,
            |record| record.applies_to(user_id.as_str()),
        )?;
        out.extend(
            shared
                .into_iter()
                .map(|(stream, record)| (stream, record.for_user(room_id))),
        );
    }
    out.sort_by_key(|(stream, _)| std::cmp::Reverse(*stream));
    out.truncate(limit);
    Ok(out)
}
