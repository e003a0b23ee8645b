//! Events as clients see them (the spec's "ClientEvent" format).

use ruma::{DeviceId, UserId};
use serde_json::{Map, Value, json};

use crate::service::now_ms;
use crate::store::EventRecord;

/// Who is looking: the sender's own device sees its `transaction_id`.
#[derive(Debug, Clone, Copy)]
pub struct ClientView<'a> {
    pub user_id: &'a UserId,
    pub device_id: &'a DeviceId,
}

/// Keys of the federation format that clients do not get.
pub(super) const FEDERATION_ONLY: [&str; 6] = [
    "auth_events",
    "prev_events",
    "depth",
    "hashes",
    "signatures",
    "origin",
];

/// The PDU's fields a client gets, as stored (without `unsigned`, `event_id` and
/// `room_id`, which the caller sets). Only those are copied: the federation-only ones
/// (signatures, hashes, auth and prev events) are most of a PDU's size, and copying them
/// to drop them again was a tenth of a big room's sync work.
pub(super) fn client_fields(record: &EventRecord) -> Map<String, Value> {
    record
        .pdu
        .as_object()
        .map(|pdu| {
            pdu.iter()
                .filter(|(key, _)| {
                    !FEDERATION_ONLY.contains(&key.as_str()) && key.as_str() != "unsigned"
                })
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The event's `unsigned` as `view` gets it: what the PDU carries, the event's age, and
/// for the sending device its transaction ID.
pub(super) fn receiver_unsigned(
    record: &EventRecord,
    view: Option<ClientView<'_>>,
) -> Map<String, Value> {
    let mut unsigned = match record.pdu.get("unsigned") {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    if let Some(ts) = record.pdu.get("origin_server_ts").and_then(Value::as_u64) {
        unsigned.insert("age".into(), json!(now_ms().saturating_sub(ts)));
    }
    if let (Some(view), Some((device, txn_id))) = (view, &record.txn)
        && record.pdu.get("sender").and_then(Value::as_str) == Some(view.user_id.as_str())
        && device == view.device_id.as_str()
    {
        unsigned.insert("transaction_id".into(), json!(txn_id));
    }
    unsigned
}

/// `redaction` is the redacting event, already in client format, when there is one.
pub fn client_event(
    event_id: &str,
    record: &EventRecord,
    view: Option<ClientView<'_>>,
    redaction: Option<Value>,
) -> Value {
    let mut event = client_fields(record);
    event.insert("event_id".into(), json!(event_id));
    event.insert("room_id".into(), json!(record.room_id));
    let mut unsigned = receiver_unsigned(record, view);
    if let Some(redaction) = redaction {
        // Synapse also names the redaction on its own (`redacted_by`), which SyTest reads.
        if let Some(id) = redaction.get("event_id") {
            unsigned.insert("redacted_by".into(), id.clone());
        }
        unsigned.insert("redacted_because".into(), redaction);
    }
    event.insert("unsigned".into(), Value::Object(unsigned));
    Value::Object(event)
}

/// Adds to a client event the state event it replaced (`unsigned.replaces_state` and
/// `prev_content`) and its bundled aggregations (`unsigned.m.relations`).
pub(super) fn add_extras(
    event: &mut Value,
    replaced: Option<(String, Value)>,
    bundle: Option<Value>,
) {
    let Some(unsigned) = event.get_mut("unsigned").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some((previous_id, previous_content)) = replaced {
        unsigned.insert("replaces_state".into(), Value::String(previous_id));
        unsigned.insert("prev_content".into(), previous_content);
    }
    if let Some(bundle) = bundle {
        unsigned.insert("m.relations".into(), bundle);
    }
}

impl crate::service::Services {
    /// A stored event in client format, or `None` if unknown.
    pub fn client_event_by_id(
        &self,
        event_id: &str,
        view: Option<ClientView<'_>>,
    ) -> crate::error::Result<Option<(EventRecord, Value)>> {
        let Some(record) = self.store.event(event_id)? else {
            return Ok(None);
        };
        let event = self.client_event_of(event_id, &record, view)?;
        Ok(Some((record, event)))
    }

    /// An event already read from the store in client format, with the redacting event
    /// under `unsigned.redacted_because` when it has been redacted, and its bundled
    /// aggregations (edits, references, thread summary) under `unsigned.m.relations`.
    pub fn client_event_of(
        &self,
        event_id: &str,
        record: &EventRecord,
        view: Option<ClientView<'_>>,
    ) -> crate::error::Result<Value> {
        self.client_event_with_bundles(event_id, record, view, 0)
    }

    /// `depth` counts how deep inside another event's bundle this event is.
    pub(crate) fn client_event_with_bundles(
        &self,
        event_id: &str,
        record: &EventRecord,
        view: Option<ClientView<'_>>,
        depth: u8,
    ) -> crate::error::Result<Value> {
        let redaction = match &record.redacted_because {
            Some(by) => self
                .store
                .event(by.as_str())?
                .map(|r| client_event(by.as_str(), &r, view, None)),
            None => None,
        };
        let mut event = client_event(event_id, record, view, redaction);
        let erased = match view {
            Some(view) => self.erased_for(record, view.user_id)?,
            None => false,
        };
        if (erased || self_destructed(&record.pdu))
            && let Some(room) = self.store.room(record.room_id.as_str())?
        {
            crate::service::erasure::erase_client_event(&mut event, room.version);
        }
        let replaced = self.replaced_state(event_id, record)?;
        let bundle = self.bundled_relations(event_id, record, view, depth)?;
        add_extras(&mut event, replaced, bundle);
        Ok(event)
    }
}

/// The unstable content key of an ephemeral message (MSC2228): the time (ms since the
/// epoch) after which the event is shown redacted, as Synapse's
/// `enable_ephemeral_messages` does. State events never expire.
const SELF_DESTRUCT_AFTER: &str = "org.matrix.self_destruct_after";

/// Whether `pdu` is an ephemeral message whose time has passed.
pub(super) fn self_destructed(pdu: &Value) -> bool {
    pdu.get("state_key").is_none()
        && pdu
            .get("content")
            .and_then(|c| c.get(SELF_DESTRUCT_AFTER))
            .and_then(Value::as_u64)
            .is_some_and(|after| after <= now_ms())
}

impl crate::service::Services {
    /// For a state event, the event it replaced and that event's content, which clients
    /// read as `unsigned.replaces_state` and `prev_content` (to show "changed their
    /// name from A to B", for example).
    pub(super) fn replaced_state(
        &self,
        event_id: &str,
        record: &EventRecord,
    ) -> crate::error::Result<Option<(String, Value)>> {
        let (Some(event_type), Some(state_key)) = (
            record.pdu.get("type").and_then(Value::as_str),
            record.pdu.get("state_key").and_then(Value::as_str),
        ) else {
            return Ok(None);
        };
        let Some(Some(previous_id)) = self
            .state_entries_at(record.state_before, &[(event_type, state_key)])?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        // The create event's group already holds the create event itself.
        if previous_id.as_str() == event_id {
            return Ok(None);
        }
        let Some(previous) = self.store.event(previous_id.as_str())? else {
            return Ok(None);
        };
        let content = previous
            .pdu
            .get("content")
            .cloned()
            .unwrap_or_else(|| json!({}));
        Ok(Some((previous_id.to_string(), content)))
    }

    /// `event` (in client format) as the PDU this server stores (with `prev_events`,
    /// `auth_events`, `depth`, `hashes` and `signatures`), keeping its `event_id` and
    /// `unsigned`, as Synapse sends it for a filter's `event_format: federation`.
    pub(crate) fn federation_format(&self, event: &mut Value) -> crate::error::Result<()> {
        let Some(event_id) = event.get("event_id").and_then(Value::as_str) else {
            return Ok(());
        };
        let Some(record) = self.store.event(event_id)? else {
            return Ok(());
        };
        let Value::Object(mut pdu) = record.pdu else {
            return Ok(());
        };
        pdu.insert("event_id".into(), json!(event_id));
        if let Some(unsigned) = event.get("unsigned") {
            pdu.insert("unsigned".into(), unsigned.clone());
        }
        *event = Value::Object(pdu);
        Ok(())
    }
}
