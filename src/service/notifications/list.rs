//! `GET /notifications`: the user's recorded notifications, newest first.

use std::collections::HashMap;

use ruma::{DeviceId, OwnedRoomId, UserId};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::ClientView;

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
        let mut read_up_to: HashMap<OwnedRoomId, Option<u64>> = HashMap::new();
        let mut out = Vec::new();
        let mut cursor = before;
        let mut scanned = 0;
        let mut next_token = None;
        'scan: while scanned < MAX_SCAN {
            let page = self
                .store
                .notifications_before(user_id.as_str(), cursor, limit)?;
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
                let read = match read_up_to.get(&record.room_id) {
                    Some(read) => *read,
                    None => {
                        let read = super::read_up_to(&self.store, user_id, &record.room_id)?;
                        read_up_to.insert(record.room_id.clone(), read);
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
