//! Content hashes, reference hashes, event IDs and (room v12) room IDs.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ruma::{EventId, OwnedEventId, OwnedRoomId, RoomId};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::canonical::canonical_json;
use super::redaction::redact;
use super::{EventError, Result, RoomVersion};

fn object_without(event: &Value, keys: &[&str]) -> Result<Value> {
    let mut obj = event
        .as_object()
        .ok_or_else(|| EventError::invalid("event is not a JSON object"))?
        .clone();
    for k in keys {
        obj.remove(*k);
    }
    Ok(Value::Object(obj))
}

/// The SHA-256 content hash of an event: the canonical JSON of the event without `unsigned`,
/// `signatures` and `hashes`.
pub fn content_hash(event: &Value) -> Result<[u8; 32]> {
    let stripped = object_without(event, &["unsigned", "signatures", "hashes"])?;
    Ok(Sha256::digest(canonical_json(&stripped)?.as_bytes()).into())
}

/// Compute the content hash and store it (unpadded standard base64) in `hashes.sha256`,
/// replacing any existing `hashes` object.
pub fn add_content_hash(event: &mut Value) -> Result<()> {
    let hash = STANDARD_NO_PAD.encode(content_hash(event)?);
    let obj = event
        .as_object_mut()
        .ok_or_else(|| EventError::invalid("event is not a JSON object"))?;
    obj.insert("hashes".to_owned(), serde_json::json!({ "sha256": hash }));
    Ok(())
}

/// Check `hashes.sha256` against the event. A mismatch means the event must be redacted
/// before further processing (the signatures, checked separately, may still be valid).
pub fn check_content_hash(event: &Value) -> Result<()> {
    let expected = event
        .get("hashes")
        .and_then(|h| h.get("sha256"))
        .and_then(Value::as_str)
        .ok_or_else(|| EventError::invalid("event has no `hashes.sha256` string"))?;
    let computed = STANDARD_NO_PAD.encode(content_hash(event)?);
    if computed == expected {
        Ok(())
    } else {
        Err(EventError::ContentHashMismatch {
            expected: expected.to_owned(),
            computed,
        })
    }
}

/// The reference hash of an event: SHA-256 of the canonical JSON of the redacted event without
/// `signatures` and `unsigned`.
///
/// From room v3 on, a stray top-level `event_id` (not part of the event format) is also
/// ignored, as Synapse does, so the ID does not depend on whether the sender echoed it; in v1
/// and v2 the `event_id` is part of the event and of its hash.
pub fn reference_hash(event: &Value, version: RoomVersion) -> Result<[u8; 32]> {
    let redacted = redact(event, version)?;
    let ignored: &[&str] = if version.event_id_in_event() {
        &["signatures", "unsigned"]
    } else {
        &["signatures", "unsigned", "event_id"]
    };
    let stripped = object_without(&redacted, ignored)?;
    Ok(Sha256::digest(canonical_json(&stripped)?.as_bytes()).into())
}

/// The event ID: `$` + unpadded base64 of the reference hash, URL-safe from room version 4 on,
/// standard (with `+` and `/`) in room version 3. In v1 and v2 it is the event's own
/// `event_id`, which must have the `$opaque:server` form.
pub fn event_id(event: &Value, version: RoomVersion) -> Result<OwnedEventId> {
    if version.event_id_in_event() {
        let text = event
            .get("event_id")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError::invalid("a room v1/v2 event needs a string `event_id`"))?;
        let id = EventId::parse(text)
            .map_err(|e| EventError::invalid(format!("bad event ID {text:?}: {e}")))?;
        if id.server_name().is_none() {
            return Err(EventError::invalid(format!(
                "event ID {text:?} has no server name, as room v1/v2 event IDs must"
            )));
        }
        return Ok(id);
    }
    event_id_from_hash(reference_hash(event, version)?, version)
}

/// The event ID of room v3 and later for a reference hash already computed (the
/// signing bytes of an event this server builds are the same as the reference hash's).
pub(crate) fn event_id_from_hash(hash: [u8; 32], version: RoomVersion) -> Result<OwnedEventId> {
    let id = if version.event_id_standard_base64() {
        format!("${}", STANDARD_NO_PAD.encode(hash))
    } else {
        format!("${}", URL_SAFE_NO_PAD.encode(hash))
    };
    EventId::parse(&id).map_err(|e| EventError::invalid(format!("bad event ID {id}: {e}")))
}

/// Room v1/v2: the event ID a server chooses for an event it builds, `$opaque:server`. The
/// opaque part is derived from the event's content hash (which covers its `prev_events`,
/// `depth` and `origin_server_ts`), so building stays free of I/O and randomness while two
/// distinct events never share an ID.
pub fn server_chosen_event_id(event: &Value, server: &str) -> Result<OwnedEventId> {
    let hash = content_hash(event)?;
    let id = format!("${}:{server}", &URL_SAFE_NO_PAD.encode(hash)[..24]);
    EventId::parse(&id).map_err(|e| EventError::invalid(format!("bad event ID {id}: {e}")))
}

/// Room v12: the room ID of the room created by `create_event`, i.e. its event ID with the
/// sigil `!` instead of `$`.
pub fn room_id_for_create_event(create_event: &Value) -> Result<OwnedRoomId> {
    if create_event.get("type").and_then(Value::as_str) != Some(super::types::CREATE) {
        return Err(EventError::invalid("not an m.room.create event"));
    }
    Ok(room_id_from_create_event_id(&event_id(
        create_event,
        RoomVersion::V12,
    )?))
}

/// Room v12: the room ID corresponding to a create event ID (`$x` → `!x`).
pub fn room_id_from_create_event_id(create_event_id: &EventId) -> OwnedRoomId {
    let id = format!("!{}", &create_event_id.as_str()[1..]);
    RoomId::parse(&id).expect("`!` + non-empty opaque ID is a valid room ID")
}

/// Room v12: the create event ID implied by a room ID (`!x` → `$x`). `None` for room IDs with
/// a server name (older room versions).
pub fn create_event_id_from_room_id(room_id: &RoomId) -> Option<OwnedEventId> {
    let s = room_id.as_str();
    if s.contains(':') || s.len() < 2 {
        return None;
    }
    EventId::parse(format!("${}", &s[1..])).ok()
}

/// Lenient standard base64: padding optional, non-zero trailing bits accepted (the spec's test
/// seed `...XA1` has them), like Synapse's `unpaddedbase64`.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode unpadded (or padded) standard base64.
pub(crate) fn decode_b64(s: &str) -> Result<Vec<u8>> {
    LENIENT_B64
        .decode(s)
        .map_err(|e| EventError::InvalidKey(format!("bad base64 {s:?}: {e}")))
}

/// Encode as unpadded standard base64.
pub(crate) fn encode_b64(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The minimal event of the appendix's event signing test vector.
    fn minimal_event() -> Value {
        json!({
            "room_id": "!x:domain",
            "sender": "@a:domain",
            "origin": "domain",
            "origin_server_ts": 1000000,
            "signatures": {},
            "hashes": {},
            "type": "X",
            "content": {},
            "prev_events": [],
            "auth_events": [],
            "depth": 3,
            "unsigned": {"age_ts": 1000000}
        })
    }

    #[test]
    fn appendix_content_hashes() {
        let mut ev = minimal_event();
        add_content_hash(&mut ev).unwrap();
        assert_eq!(
            ev["hashes"]["sha256"],
            "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
        );
        check_content_hash(&ev).unwrap();

        let mut ev2 = json!({
            "content": {"body": "Here is the message content"},
            "event_id": "$0:domain",
            "origin": "domain",
            "origin_server_ts": 1000000,
            "type": "m.room.message",
            "room_id": "!r:domain",
            "sender": "@u:domain",
            "signatures": {},
            "unsigned": {"age_ts": 1000000}
        });
        add_content_hash(&mut ev2).unwrap();
        assert_eq!(
            ev2["hashes"]["sha256"],
            "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
        );
    }

    #[test]
    fn content_hash_detects_tampering_but_ignores_unsigned() {
        let mut ev = minimal_event();
        add_content_hash(&mut ev).unwrap();
        ev["unsigned"] = json!({"age": 5});
        ev["signatures"] = json!({"domain": {"ed25519:1": "x"}});
        check_content_hash(&ev).unwrap();
        ev["content"] = json!({"body": "tampered"});
        assert!(matches!(
            check_content_hash(&ev),
            Err(EventError::ContentHashMismatch { .. })
        ));
        assert!(check_content_hash(&minimal_event()).is_err());
    }

    #[test]
    fn event_id_is_url_safe_reference_hash() {
        let mut ev = minimal_event();
        add_content_hash(&mut ev).unwrap();
        for v in RoomVersion::ALL {
            if v.event_id_in_event() {
                continue;
            }
            let id = event_id(&ev, v).unwrap();
            if v == RoomVersion::V3 {
                let expected = STANDARD_NO_PAD.encode(reference_hash(&ev, v).unwrap());
                assert_eq!(id.as_str(), format!("${expected}"));
                continue;
            }
            let expected = URL_SAFE_NO_PAD.encode(reference_hash(&ev, v).unwrap());
            assert_eq!(id.as_str(), format!("${expected}"));
            assert_eq!(id.as_str().len(), 44);
            assert!(!id.as_str().contains(['+', '/', '=']));
        }
        // Unsigned data and signatures do not affect the ID; redactable content does not either.
        let base = event_id(&ev, RoomVersion::V12).unwrap();
        let mut ev2 = ev.clone();
        ev2["unsigned"] = json!({"x": 1});
        ev2["signatures"] = json!({"domain": {"ed25519:1": "sig"}});
        assert_eq!(event_id(&ev2, RoomVersion::V12).unwrap(), base);
        // `origin` is kept by the v9 redaction rules (v10) but not by the v11 rules.
        ev2["origin"] = json!("other");
        assert_eq!(event_id(&ev2, RoomVersion::V12).unwrap(), base);
        assert_ne!(
            event_id(&ev2, RoomVersion::V10).unwrap(),
            event_id(&ev, RoomVersion::V10).unwrap()
        );
        // The content hash is covered, so changing content changes the ID once re-hashed.
        ev2["content"] = json!({"a": 1});
        add_content_hash(&mut ev2).unwrap();
        assert_ne!(event_id(&ev2, RoomVersion::V12).unwrap(), base);
    }

    #[test]
    fn v12_room_id_round_trip() {
        let mut create = json!({
            "type": "m.room.create",
            "state_key": "",
            "sender": "@alice:example.org",
            "content": {"room_version": "12"},
            "prev_events": [],
            "auth_events": [],
            "depth": 1,
            "origin_server_ts": 1,
        });
        add_content_hash(&mut create).unwrap();
        let room_id = room_id_for_create_event(&create).unwrap();
        let eid = event_id(&create, RoomVersion::V12).unwrap();
        assert_eq!(&room_id.as_str()[1..], &eid.as_str()[1..]);
        assert!(room_id.as_str().starts_with('!'));
        assert_eq!(create_event_id_from_room_id(&room_id).unwrap(), eid);
        assert_eq!(room_id_from_create_event_id(&eid), room_id);
        assert!(create_event_id_from_room_id(<&RoomId>::try_from("!a:b").unwrap()).is_none());
        assert!(room_id_for_create_event(&json!({"type": "m.room.message"})).is_err());
    }
}
