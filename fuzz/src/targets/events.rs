//! Canonical JSON, PDUs, the auth rules and state resolution.

use std::collections::BTreeMap;

use hearth::event::{
    Pdu, RoomVersion, StateMap, auth_check, canonicalize_json_str, check_event_auth, event_id,
    redact, resolve, to_canonical_object,
};
use hearth::service::rooms::{check_signatures, parse_pdu};
use ruma::OwnedEventId;
use serde_json::Value;

use super::{public_keys, resolve_refs};

/// Canonical JSON as signing and hashing use it: parse and canonicalise text, and encode
/// a parsed value. The output must be a fixed point: canonicalising it again changes nothing.
pub fn canonical_json(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut parsed = false;
    if let Ok(canonical) = canonicalize_json_str(text) {
        let again = canonicalize_json_str(&canonical).expect("canonical JSON parses again");
        assert_eq!(again, canonical, "canonical JSON is not a fixed point");
        parsed = true;
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if let Ok(canonical) = hearth::event::canonical_json(&value) {
            let reparsed: Value = serde_json::from_str(&canonical).expect("output is JSON");
            assert_eq!(reparsed, value, "canonical JSON changed the value");
        }
        let _ = to_canonical_object(&value);
    }
    parsed
}

fn room_version(value: Option<&Value>) -> RoomVersion {
    match value.and_then(Value::as_str) {
        Some("10") => RoomVersion::V10,
        Some("11") => RoomVersion::V11,
        _ => RoomVersion::V12,
    }
}

/// A PDU through the federation receive path's first two steps (format for the room
/// version, then signatures and content hash, with a redaction when the hash is wrong),
/// in every room version Hearth supports.
pub fn pdu(data: &[u8]) -> bool {
    let Ok(json) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    let mut parsed = false;
    for version in RoomVersion::ALL {
        let _ = event_id(&json, version);
        let _ = redact(&json, version);
        let mut json = json.clone();
        let Ok(pdu) = parse_pdu(&mut json, version) else {
            continue;
        };
        parsed = true;
        if let Ok((pdu, json)) = check_signatures(pdu, json, public_keys(), version) {
            // What survives the checks is what the server stores: it must parse again.
            let again = Pdu::from_json(json, version).expect("a checked PDU parses again");
            assert_eq!(again.event_id(), pdu.event_id());
        }
    }
    parsed
}

/// Events of a structured input: each parsed for `version`, with `auth_events` and
/// `prev_events` given as indices resolved to the IDs of the events before it.
fn parse_events(items: &[Value], version: RoomVersion, max: usize) -> Vec<Pdu> {
    let mut ids: Vec<OwnedEventId> = Vec::new();
    let mut events = Vec::new();
    for item in items.iter().take(max) {
        let mut item = item.clone();
        resolve_refs(&mut item, &ids);
        if let Ok(pdu) = Pdu::from_json(item, version) {
            ids.push(pdu.event_id().to_owned());
            events.push(pdu);
        }
    }
    events
}

fn state_map(events: &[Pdu]) -> BTreeMap<(String, String), &Pdu> {
    events
        .iter()
        .filter_map(|e| {
            e.state_key()
                .map(|k| ((e.event_type().to_owned(), k.to_owned()), e))
        })
        .collect()
}

/// `{"version": "12", "state": [events], "event": event}`: the event checked against
/// its own auth events (taken from the state by ID) and against the state, as the
/// receive path does.
pub fn auth_rules(data: &[u8]) -> bool {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    let version = room_version(input.get("version"));
    let state_items = input.get("state").and_then(Value::as_array);
    let state = parse_events(state_items.map_or(&[][..], Vec::as_slice), version, 64);
    let Some(mut event) = input.get("event").cloned() else {
        return false;
    };
    let ids: Vec<OwnedEventId> = state.iter().map(|e| e.event_id().to_owned()).collect();
    resolve_refs(&mut event, &ids);
    let Ok(event) = Pdu::from_json(event, version) else {
        return false;
    };
    let by_key = state_map(&state);
    let _ = auth_check(version, &event, |t, k| {
        by_key.get(&(t.to_owned(), k.to_owned())).copied()
    });
    let auth: Vec<&Pdu> = state
        .iter()
        .filter(|e| event.auth_events().iter().any(|a| a == e.event_id()))
        .collect();
    let create = by_key
        .get(&("m.room.create".to_owned(), String::new()))
        .copied();
    let _ = check_event_auth(version, &event, &auth, create);
    true
}

/// `{"version": "12", "events": [events], "sets": [[indices], ...]}`: the state sets
/// (each the state events at those indices) resolved with the events as the store.
pub fn state_res(data: &[u8]) -> bool {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    let version = room_version(input.get("version"));
    let items = input.get("events").and_then(Value::as_array);
    let events = parse_events(items.map_or(&[][..], Vec::as_slice), version, 64);
    if events.is_empty() {
        return false;
    }
    let sets: Vec<StateMap> = input
        .get("sets")
        .and_then(Value::as_array)
        .map(|sets| {
            sets.iter()
                .take(8)
                .map(|set| {
                    let mut map = StateMap::new();
                    for i in set
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_u64)
                    {
                        let e = &events[i as usize % events.len()];
                        if let Some(key) = e.state_map_key() {
                            map.insert(key, e.event_id().to_owned());
                        }
                    }
                    map
                })
                .collect()
        })
        .unwrap_or_default();
    let by_id: BTreeMap<&ruma::EventId, &Pdu> = events.iter().map(|e| (e.event_id(), e)).collect();
    if let Ok(resolved) = resolve(version, &sets, |id| by_id.get(id).copied()) {
        // Every resolved entry is an event of the input, under its own key.
        for (key, id) in &resolved {
            let event = by_id.get(&**id).expect("resolved to a known event");
            assert_eq!(event.state_map_key().as_ref(), Some(key));
        }
    }
    true
}
