//! Timeline events on their way into sync responses.
//!
//! Most timeline events reach a client exactly as stored: only `unsigned` (the event's
//! age, the sending device's transaction ID) is the receiver's own. Such an event is
//! written straight from the shared cached event, its content as JSON text made once per
//! event, instead of a copied tree per receiver that was then walked again for every byte
//! budget it counted against and for the response itself. A message to a room of a
//! thousand members is one copy and one content serialisation, not a thousand of each.
//! Events a receiver sees changed (redacted, erased, expired, with bundled relations or
//! the state they replaced) are built as trees, as before.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::format::{
    ClientView, FEDERATION_ONLY, client_fields, receiver_unsigned, self_destructed,
};
use crate::error::Result;
use crate::service::Services;
use crate::store::CachedEvent;

/// A timeline event in client format, ready to write.
pub(crate) enum OutEvent {
    /// Built for this receiver.
    Tree(Value),
    /// Unchanged from its PDU.
    Plain(PlainEvent),
}

pub(crate) struct PlainEvent {
    event_id: String,
    cached: Arc<CachedEvent>,
    unsigned: Map<String, Value>,
}

impl OutEvent {
    /// What filters and the sync's own checks read (`type`, `sender`, `state_key`,
    /// `content`, `room_id`): the built event, or the PDU an unchanged one is written
    /// from. Not for `event_id` or `unsigned`, which only the written event has.
    pub(crate) fn fields(&self) -> &Value {
        match self {
            OutEvent::Tree(value) => value,
            OutEvent::Plain(plain) => &plain.cached.record.pdu,
        }
    }

    /// A field of [`Self::fields`].
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.fields().get(key)
    }

    pub(crate) fn event_id(&self) -> Option<&str> {
        match self {
            OutEvent::Tree(value) => value.get("event_id").and_then(Value::as_str),
            OutEvent::Plain(plain) => Some(&plain.event_id),
        }
    }

    /// The event as a tree, for answers still built as trees (the federation event
    /// format, `/initialSync`).
    pub(crate) fn into_value(self) -> Value {
        match self {
            OutEvent::Tree(value) => value,
            OutEvent::Plain(plain) => {
                let record = &plain.cached.record;
                let mut event = client_fields(record);
                event.insert("event_id".into(), Value::String(plain.event_id));
                event.insert("room_id".into(), Value::String(record.room_id.to_string()));
                event.insert("unsigned".into(), Value::Object(plain.unsigned));
                Value::Object(event)
            }
        }
    }
}

impl Serialize for OutEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let plain = match self {
            OutEvent::Tree(value) => return value.serialize(serializer),
            OutEvent::Plain(plain) => plain,
        };
        let record = &plain.cached.record;
        let mut map = serializer.serialize_map(None)?;
        if let Some(pdu) = record.pdu.as_object() {
            for (key, value) in pdu {
                let written_below = matches!(
                    key.as_str(),
                    "content" | "unsigned" | "event_id" | "room_id"
                );
                if !written_below && !FEDERATION_ONLY.contains(&key.as_str()) {
                    map.serialize_entry(key, value)?;
                }
            }
        }
        if let Some(content) = plain.cached.content_json() {
            map.serialize_entry("content", content)?;
        }
        map.serialize_entry("event_id", &plain.event_id)?;
        map.serialize_entry("room_id", record.room_id.as_str())?;
        map.serialize_entry("unsigned", &plain.unsigned)?;
        map.end()
    }
}

impl Services {
    /// A timeline event for `view`'s sync: written from the cached event when the
    /// receiver sees it as stored, built for them otherwise.
    pub(crate) fn out_event(
        &self,
        event_id: &str,
        cached: &Arc<CachedEvent>,
        view: ClientView<'_>,
    ) -> Result<OutEvent> {
        let record = &cached.record;
        if record.redacted_because.is_some()
            || self_destructed(&record.pdu)
            || self.erased_for(record, view.user_id)?
        {
            return Ok(OutEvent::Tree(self.client_event_of(
                event_id,
                record,
                Some(view),
            )?));
        }
        // State events may carry the state they replaced (and get no bundles); a message
        // event found to have nothing to bundle is known so until a relation or thread
        // summary is written anywhere: the check is made once per event, not once per
        // receiver. (Whether there is a bundle does not depend on the viewer, only its
        // contents do, and an event's relations only gain what a write adds.)
        let (replaced, bundle) = if record.pdu.get("state_key").is_none() {
            let generation = self.store.relations_generation();
            let bundle = if cached.unbundled_at(generation) {
                None
            } else {
                let bundle = self.bundled_relations(event_id, record, Some(view), 0)?;
                if bundle.is_none() {
                    cached.note_unbundled(generation);
                }
                bundle
            };
            (None, bundle)
        } else {
            (self.replaced_state(event_id, record)?, None)
        };
        if replaced.is_none() && bundle.is_none() {
            return Ok(OutEvent::Plain(PlainEvent {
                event_id: event_id.to_owned(),
                cached: cached.clone(),
                unsigned: receiver_unsigned(record, Some(view)),
            }));
        }
        let mut event = super::format::client_event(event_id, record, Some(view), None);
        super::format::add_extras(&mut event, replaced, bundle);
        Ok(OutEvent::Tree(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventRecord, EventStatus, Store};
    use serde_json::json;

    /// The written form of an unchanged event is the tree the other path builds, field
    /// for field, and so is its `into_value`.
    #[test]
    fn a_plain_event_writes_what_the_tree_would_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let record = EventRecord {
            room_id: ruma::OwnedRoomId::try_from("!r:x").unwrap(),
            pdu: json!({
                "type": "m.room.message",
                "sender": "@a:x",
                "room_id": "!r:x",
                "origin_server_ts": 1_000,
                "content": {"body": "hé \"quoted\" \u{1F600}", "msgtype": "m.text", "n": [1, 2.5, null]},
                "unsigned": {"extra": true},
                "auth_events": ["$a"],
                "prev_events": ["$p"],
                "depth": 4,
                "hashes": {"sha256": "x"},
                "signatures": {"x": {"ed25519:a": "s"}},
            }),
            stream: 1,
            state_before: 0,
            state_after: 0,
            txn: Some(("DEV".into(), "t1".into())),
            redacted_because: None,
            status: EventStatus::Accepted,
            after_gap: false,
        };
        let mut batch = store.batch();
        batch.put_event("$e", &record).unwrap();
        store.write(batch).unwrap();
        let cached = store.event_shared("$e").unwrap().unwrap();
        let user = ruma::OwnedUserId::try_from("@a:x").unwrap();
        let device: ruma::OwnedDeviceId = "DEV".into();
        let view = ClientView {
            user_id: &user,
            device_id: &device,
        };
        let plain = OutEvent::Plain(PlainEvent {
            event_id: "$e".into(),
            cached: cached.clone(),
            unsigned: receiver_unsigned(&cached.record, Some(view)),
        });
        let tree = super::super::format::client_event("$e", &cached.record, Some(view), None);
        let written: Value = serde_json::from_str(&serde_json::to_string(&plain).unwrap()).unwrap();
        let without_age = |mut v: Value| {
            v["unsigned"].as_object_mut().unwrap().remove("age");
            v
        };
        assert_eq!(without_age(written.clone()), without_age(tree.clone()));
        assert_eq!(written["unsigned"]["transaction_id"], "t1");
        assert_eq!(written["unsigned"]["extra"], true);
        assert!(written.get("signatures").is_none());
        assert_eq!(without_age(plain.into_value()), without_age(tree));
    }
}
