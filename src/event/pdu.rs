//! A validated, typed view of a PDU, as consumed by the auth rules and state resolution.

use ruma::{EventId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use super::{EventError, Result, RoomVersion, hashes, types};

/// The maximum size of a PDU, as canonical JSON including signatures (spec: "Size limits").
pub const MAX_PDU_SIZE: usize = 65_536;
/// The maximum length in bytes of `type`, `state_key`, `sender` and `room_id`.
pub const MAX_ID_SIZE: usize = 255;
/// The most `prev_events` a PDU may name (spec: PDU format, room versions 4 and later).
pub const MAX_PREV_EVENTS: usize = 20;
/// The most `auth_events` a PDU may name (the auth events selection never needs more).
pub const MAX_AUTH_EVENTS: usize = 10;

/// A state map key: `(event type, state key)`.
pub type StateKey = (String, String);

/// A parsed PDU. The event ID is always computed from the JSON (reference hash; in room v1/v2
/// the event's own `event_id`, which its signatures cover), so a `Pdu` cannot carry an ID that
/// does not belong to it.
///
/// `rejected` is local metadata (not part of the JSON): set it with [`Pdu::set_rejected`] for
/// events the server rejected, so that they are not used as auth events.
#[derive(Clone, Debug, PartialEq)]
pub struct Pdu {
    event_id: OwnedEventId,
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    event_type: String,
    state_key: Option<String>,
    content: serde_json::Map<String, Value>,
    prev_events: Vec<OwnedEventId>,
    auth_events: Vec<OwnedEventId>,
    depth: u64,
    origin_server_ts: u64,
    json: Value,
    rejected: bool,
}

fn id_list(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    version: RoomVersion,
) -> Result<Vec<OwnedEventId>> {
    let arr = obj
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| EventError::invalid(format!("`{key}` must be an array")))?;
    arr.iter()
        .map(|v| {
            let s = if version.event_id_in_event() {
                // v1/v2: `[event_id, {"sha256": hash}]`.
                match v.as_array().map(Vec::as_slice) {
                    Some([Value::String(id), Value::Object(_)]) => id.as_str(),
                    _ => {
                        return Err(EventError::invalid(format!(
                            "`{key}` entries must be [event_id, hashes] pairs in room version {version}"
                        )));
                    }
                }
            } else {
                v.as_str().ok_or_else(|| {
                    EventError::invalid(format!("`{key}` entries must be strings"))
                })?
            };
            EventId::parse(s).map_err(|e| EventError::invalid(format!("bad event ID {s:?}: {e}")))
        })
        .collect()
}

/// The event IDs of a `prev_events` or `auth_events` list, in either format: strings (room
/// v3+) or `[event_id, hashes]` pairs (v1/v2). Entries of neither form are skipped.
pub fn referenced_ids(list: Option<&Value>) -> Vec<&str> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| match v {
            Value::String(id) => Some(id.as_str()),
            Value::Array(pair) => pair.first().and_then(Value::as_str),
            _ => None,
        })
        .collect()
}

/// A `prev_events` or `auth_events` list in the format of `version`: event IDs, or in v1/v2
/// `[event_id, {}]` pairs (Synapse also leaves the hashes empty).
pub fn reference_list<I: AsRef<str>>(version: RoomVersion, ids: &[I]) -> Value {
    if version.event_id_in_event() {
        Value::Array(
            ids.iter()
                .map(|id| serde_json::json!([id.as_ref(), {}]))
                .collect(),
        )
    } else {
        Value::Array(ids.iter().map(|id| Value::from(id.as_ref())).collect())
    }
}

fn uint(obj: &serde_json::Map<String, Value>, key: &str) -> Result<u64> {
    obj.get(key)
        .and_then(Value::as_u64)
        .filter(|v| *v <= super::canonical::MAX_SAFE_INT as u64)
        .ok_or_else(|| EventError::invalid(format!("`{key}` must be a non-negative integer")))
}

impl Pdu {
    /// Parse and validate a PDU of the given room version, computing its event ID.
    ///
    /// Checks the event format (types of the fields, canonical-JSON numbers, user and event
    /// IDs). A `room_id` is required except on `m.room.create`, whose `room_id` presence is
    /// judged by the auth rules (absent in v12, present before).
    pub fn from_json(json: Value, version: RoomVersion) -> Result<Self> {
        let size = super::canonical::canonical_json(&json)?.len();
        if size > MAX_PDU_SIZE {
            return Err(EventError::invalid(format!(
                "event is {size} bytes of canonical JSON, more than {MAX_PDU_SIZE}"
            )));
        }
        Self::checked(json, version, None)
    }

    /// [`Self::from_json`] for an event this server has just built with
    /// [`super::build_signed_pdu`] and whose canonical size its caller has checked: the
    /// event ID is the one the builder computed (from the bytes it signed), so neither the
    /// size nor the reference hash is computed again. The format checks still run.
    pub fn from_built_json(
        json: Value,
        version: RoomVersion,
        event_id: OwnedEventId,
    ) -> Result<Self> {
        Self::checked(json, version, Some(event_id))
    }

    fn checked(json: Value, version: RoomVersion, event_id: Option<OwnedEventId>) -> Result<Self> {
        let obj = json
            .as_object()
            .ok_or_else(|| EventError::invalid("event is not an object"))?;
        for key in ["type", "state_key", "sender", "room_id"] {
            if let Some(Value::String(s)) = obj.get(key)
                && s.len() > MAX_ID_SIZE
            {
                return Err(EventError::invalid(format!(
                    "`{key}` is longer than {MAX_ID_SIZE} bytes"
                )));
            }
        }
        let event_type = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError::invalid("`type` must be a string"))?
            .to_owned();
        let sender_str = obj
            .get("sender")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError::invalid("`sender` must be a string"))?;
        let sender = UserId::parse(sender_str)
            .map_err(|e| EventError::invalid(format!("bad sender {sender_str:?}: {e}")))?;
        let room_id = match obj.get("room_id") {
            None => None,
            Some(Value::String(s)) => Some(
                RoomId::parse(s)
                    .map_err(|e| EventError::invalid(format!("bad room ID {s:?}: {e}")))?,
            ),
            Some(_) => return Err(EventError::invalid("`room_id` must be a string")),
        };
        if room_id.is_none() && event_type != types::CREATE {
            return Err(EventError::invalid("`room_id` is required"));
        }
        let state_key = match obj.get("state_key") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(EventError::invalid("`state_key` must be a string")),
        };
        let content = obj
            .get("content")
            .and_then(Value::as_object)
            .ok_or_else(|| EventError::invalid("`content` must be an object"))?
            .clone();
        let prev_events = id_list(obj, "prev_events", version)?;
        let auth_events = id_list(obj, "auth_events", version)?;
        if prev_events.len() > MAX_PREV_EVENTS {
            return Err(EventError::invalid(format!(
                "{} prev_events, more than {MAX_PREV_EVENTS}",
                prev_events.len()
            )));
        }
        if auth_events.len() > MAX_AUTH_EVENTS {
            return Err(EventError::invalid(format!(
                "{} auth_events, more than {MAX_AUTH_EVENTS}",
                auth_events.len()
            )));
        }
        let depth = uint(obj, "depth")?;
        let origin_server_ts = uint(obj, "origin_server_ts")?;
        let event_id = match event_id {
            Some(id) => id,
            None => hashes::event_id(&json, version)?,
        };
        Ok(Self {
            event_id,
            room_id,
            sender,
            event_type,
            state_key,
            content,
            prev_events,
            auth_events,
            depth,
            origin_server_ts,
            json,
            rejected: false,
        })
    }

    /// The event ID (`$` + reference hash).
    pub fn event_id(&self) -> &EventId {
        &self.event_id
    }
    /// The room ID; `None` only for a v12 `m.room.create` event.
    pub fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }
    /// The sender.
    pub fn sender(&self) -> &UserId {
        &self.sender
    }
    /// The event type.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }
    /// The state key, for state events.
    pub fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    /// Whether this is a state event.
    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }
    /// The `(type, state_key)` pair, for state events.
    pub fn state_map_key(&self) -> Option<StateKey> {
        self.state_key
            .as_ref()
            .map(|sk| (self.event_type.clone(), sk.clone()))
    }
    /// Whether this is a state event of the given type and state key.
    pub fn is(&self, event_type: &str, state_key: &str) -> bool {
        self.event_type == event_type && self.state_key.as_deref() == Some(state_key)
    }
    /// The content object.
    pub fn content(&self) -> &serde_json::Map<String, Value> {
        &self.content
    }
    /// A string field of the content.
    pub fn content_str(&self, key: &str) -> Option<&str> {
        self.content.get(key).and_then(Value::as_str)
    }
    /// `content.membership` for member events.
    pub fn membership(&self) -> Option<&str> {
        self.content_str("membership")
    }
    /// The `prev_events`.
    pub fn prev_events(&self) -> &[OwnedEventId] {
        &self.prev_events
    }
    /// The `auth_events`.
    pub fn auth_events(&self) -> &[OwnedEventId] {
        &self.auth_events
    }
    /// The depth.
    pub fn depth(&self) -> u64 {
        self.depth
    }
    /// The `origin_server_ts` (milliseconds).
    pub fn origin_server_ts(&self) -> u64 {
        self.origin_server_ts
    }
    /// The full JSON of the event.
    pub fn json(&self) -> &Value {
        &self.json
    }
    /// Whether `server` has a signature on the event (presence only; cryptographic validity is
    /// checked by [`super::signing::verify_event`]).
    pub fn has_signature_from(&self, server: &str) -> bool {
        self.json
            .get("signatures")
            .and_then(|s| s.get(server))
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
    }
    /// Whether the server rejected this event.
    pub fn rejected(&self) -> bool {
        self.rejected
    }
    /// Mark the event as rejected (or not).
    pub fn set_rejected(&mut self, rejected: bool) {
        self.rejected = rejected;
    }
    /// The `redacts` target of an `m.room.redaction` event (in `content` from room v11 on,
    /// top-level before).
    pub fn redacts(&self, version: RoomVersion) -> Option<&str> {
        if self.event_type != types::REDACTION {
            return None;
        }
        if version.redacts_in_content() {
            self.content_str("redacts")
        } else {
            self.json.get("redacts").and_then(Value::as_str)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev() -> Value {
        json!({
            "room_id": "!r:x", "sender": "@a:x", "type": "m.room.message",
            "content": {"body": "hi"}, "prev_events": ["$p"], "auth_events": ["$a"],
            "depth": 2, "origin_server_ts": 5, "hashes": {"sha256": "x"}, "signatures": {"x": {"ed25519:1": "s"}},
        })
    }

    #[test]
    fn parses_fields_and_computes_id() {
        let p = Pdu::from_json(ev(), RoomVersion::V12).unwrap();
        assert_eq!(
            p.event_id(),
            &*hashes::event_id(&ev(), RoomVersion::V12).unwrap()
        );
        assert_eq!(p.sender().as_str(), "@a:x");
        assert_eq!(p.room_id().unwrap().as_str(), "!r:x");
        assert!(!p.is_state());
        assert_eq!(p.prev_events()[0].as_str(), "$p");
        assert_eq!(p.depth(), 2);
        assert!(p.has_signature_from("x"));
        assert!(!p.has_signature_from("y"));
    }

    #[test]
    fn rejects_malformed_events() {
        for (key, bad) in [
            ("sender", json!("nope")),
            ("type", json!(1)),
            ("content", json!([])),
            ("prev_events", json!("$p")),
            ("auth_events", json!(["no-sigil"])),
            ("depth", json!(-1)),
            ("state_key", json!(1)),
            ("room_id", json!(5)),
        ] {
            let mut e = ev();
            e[key] = bad;
            assert!(Pdu::from_json(e, RoomVersion::V12).is_err(), "{key}");
        }
        let mut e = ev();
        e.as_object_mut().unwrap().remove("room_id");
        assert!(Pdu::from_json(e, RoomVersion::V12).is_err());
        let mut e = ev();
        e["content"]["x"] = json!(1.5);
        assert!(Pdu::from_json(e, RoomVersion::V12).is_err());
    }

    #[test]
    fn size_limits() {
        let mut e = ev();
        e["content"]["body"] = json!("x".repeat(MAX_PDU_SIZE));
        assert!(Pdu::from_json(e, RoomVersion::V12).is_err());
        let ids = |n: usize| json!((0..n).map(|i| format!("$e{i}")).collect::<Vec<_>>());
        let mut e = ev();
        e["prev_events"] = ids(MAX_PREV_EVENTS);
        e["auth_events"] = ids(MAX_AUTH_EVENTS);
        assert!(Pdu::from_json(e, RoomVersion::V12).is_ok());
        let mut e = ev();
        e["prev_events"] = ids(MAX_PREV_EVENTS + 1);
        assert!(Pdu::from_json(e, RoomVersion::V12).is_err());
        let mut e = ev();
        e["auth_events"] = ids(MAX_AUTH_EVENTS + 1);
        assert!(Pdu::from_json(e, RoomVersion::V12).is_err());
        let mut e = ev();
        e["state_key"] = json!("k".repeat(MAX_ID_SIZE + 1));
        assert!(Pdu::from_json(e, RoomVersion::V12).is_err());
        let mut e = ev();
        e["state_key"] = json!("k".repeat(MAX_ID_SIZE));
        assert!(Pdu::from_json(e, RoomVersion::V12).is_ok());
    }

    #[test]
    fn redacts_location_depends_on_version() {
        let mut e = ev();
        e["type"] = json!("m.room.redaction");
        e["redacts"] = json!("$old");
        e["content"] = json!({"redacts": "$new"});
        let p = Pdu::from_json(e, RoomVersion::V10).unwrap();
        assert_eq!(p.redacts(RoomVersion::V10), Some("$old"));
        assert_eq!(p.redacts(RoomVersion::V11), Some("$new"));
    }
}
