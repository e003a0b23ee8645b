//! Read receipts (public, private and threaded) and the fully-read marker.

use std::sync::Arc;

use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::positions::Positions;
use crate::store::{ReceiptChange, ReceiptRecord, Store, StoreResult};

pub const READ: &str = "m.read";
pub const READ_PRIVATE: &str = "m.read.private";
pub const FULLY_READ: &str = "m.fully_read";

pub struct Receipts {
    pub(crate) positions: Arc<Positions<OwnedRoomId>>,
}

impl Receipts {
    pub fn new(store: &Store) -> StoreResult<Self> {
        Ok(Self {
            positions: Arc::new(Positions::new(
                store.last_u64_key(crate::store::Cf::ReceiptStream)?,
            )),
        })
    }

    pub fn position(&self) -> u64 {
        self.positions.visible()
    }
}

/// Where a receipt applies: the whole room, the main timeline, or one thread.
fn thread_key(thread_id: Option<&str>) -> Result<String> {
    match thread_id {
        None => Ok(String::new()),
        Some("") => Err(Error::invalid_param("thread_id must not be empty")),
        Some(id) if id == "main" || id.starts_with('$') => Ok(id.to_owned()),
        Some(id) => Err(Error::invalid_param(format!(
            "thread_id {id:?} is neither \"main\" nor an event ID"
        ))),
    }
}

impl Services {
    /// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`. A receipt for an event
    /// older than the one already receipted is accepted and ignored, as in Synapse.
    pub fn set_receipt(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        receipt_type: &str,
        event_id: &str,
        thread_id: Option<&str>,
    ) -> Result<()> {
        if receipt_type == FULLY_READ {
            if thread_id.is_some() {
                return Err(Error::invalid_param(
                    "m.fully_read markers cannot be threaded",
                ));
            }
            return self.set_fully_read(user_id, room_id, event_id);
        }
        if receipt_type != READ && receipt_type != READ_PRIVATE {
            return Err(Error::invalid_param(format!(
                "Unknown receipt type {receipt_type}; use m.read, m.read.private or m.fully_read"
            )));
        }
        let thread = thread_key(thread_id)?;
        let event_stream = self.receipt_target(user_id, room_id, event_id)?;
        // A shadow-banned user's public receipts reach nobody; private ones stay theirs.
        if receipt_type == READ && self.is_shadow_banned(user_id)? {
            return Ok(());
        }
        let change = ReceiptChange {
            room_id: room_id.to_owned(),
            receipt_type: receipt_type.to_owned(),
            user_id: user_id.to_owned(),
            thread,
        };
        // One writer per receipt at a time, so the stream entry moves exactly once.
        let _guard = self.account_data_locks.lock(user_id);
        let previous = self.store.receipt(&change)?;
        if previous
            .as_ref()
            .is_some_and(|p| p.event_stream >= event_stream)
        {
            return Ok(());
        }
        let position = self.receipts.positions.allocate();
        let result = (|| {
            let mut batch = self.store.batch();
            batch.put_receipt(
                &change,
                &ReceiptRecord {
                    event_id: event_id.try_into().map_err(|_| {
                        Error::invalid_param(format!("{event_id} is not an event ID"))
                    })?,
                    ts: crate::service::now_ms(),
                    position,
                    event_stream,
                },
                previous.map(|p| p.position),
            )?;
            self.store.write(batch)?;
            Ok(())
        })();
        let woken = self
            .receipts
            .positions
            .finish(position, result.is_ok().then(|| room_id.to_owned()));
        for room in woken {
            self.wake_room(&room);
        }
        // The user read something: their gateways get the new unread count.
        if result.is_ok() && user_id.server_name() == self.server_name() {
            self.pushers.badge(user_id);
        }
        // Public receipts of our own users go to the room's other servers.
        if result.is_ok() && receipt_type == READ && user_id.server_name() == self.server_name() {
            let mut data = json!({ "ts": crate::service::now_ms() });
            if let Some(thread_id) = thread_id {
                data["thread_id"] = json!(thread_id);
            }
            self.federate_room_edu(
                room_id,
                "m.receipt",
                json!({ room_id.as_str(): { "m.read": { user_id.as_str(): {
                    "event_ids": [event_id],
                    "data": data,
                }}}}),
            );
        }
        result
    }

    /// The event must be in the room and the user joined to it. Returns its stream position.
    fn receipt_target(&self, user_id: &UserId, room_id: &RoomId, event_id: &str) -> Result<u64> {
        if !self.is_joined(room_id, user_id)? {
            return Err(Error::forbidden("You are not joined to this room"));
        }
        match self.store.event(event_id)? {
            Some(record) if record.room_id == room_id => Ok(record.stream),
            _ => Err(Error::not_found(format!(
                "Event {event_id} not found in this room"
            ))),
        }
    }

    /// The `m.fully_read` room account data, which only the server writes.
    pub fn set_fully_read(&self, user_id: &UserId, room_id: &RoomId, event_id: &str) -> Result<()> {
        self.receipt_target(user_id, room_id, event_id)?;
        self.update_account_data(user_id, Some(room_id), FULLY_READ, |_| {
            Ok(Some(json!({ "event_id": event_id })))
        })
    }

    /// The room's `m.receipt` content for `viewer`: private receipts only their own.
    /// With `changes`, only those receipts; otherwise all of the room's.
    pub fn receipt_content(
        &self,
        viewer: &UserId,
        room_id: &RoomId,
        changes: Option<&[ReceiptChange]>,
    ) -> Result<Option<Value>> {
        let receipts: Vec<(ReceiptChange, ReceiptRecord)> = match changes {
            None => self.store.room_receipts(room_id.as_str())?,
            Some(changes) => {
                let mut out = Vec::new();
                for change in changes {
                    if let Some(record) = self.store.receipt(change)? {
                        out.push((change.clone(), record));
                    }
                }
                out
            }
        };
        let mut content: Map<String, Value> = Map::new();
        for (change, record) in receipts {
            if change.receipt_type == READ_PRIVATE && change.user_id != viewer {
                continue;
            }
            let mut receipt = json!({ "ts": record.ts });
            if !change.thread.is_empty() {
                receipt["thread_id"] = json!(change.thread);
            }
            let by_type = content
                .entry(record.event_id.to_string())
                .or_insert_with(|| json!({}));
            let by_user = by_type.as_object_mut().map(|m| {
                m.entry(change.receipt_type.clone())
                    .or_insert_with(|| json!({}))
            });
            if let Some(Value::Object(users)) = by_user {
                users.insert(change.user_id.to_string(), receipt);
            }
        }
        Ok((!content.is_empty()).then(|| json!({ "type": "m.receipt", "content": content })))
    }
}
