//! What clients send: sync filters, search requests and sync WebSocket frames.

use hearth::api::client::search::parse_room_events;
use hearth::api::client::sync_ws::{ClientRequest, parse_frame};
use hearth::service::filter::{EventFilter, Filter, RoomEventFilter};
use hearth::service::presence::PresenceState;
use hearth::service::search::parse_query;
use serde_json::{Value, json};

/// Every string in `value`, to build events the filter is applied to: event types and
/// senders chosen by whoever sends events are as untrusted as the filter.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) if out.len() < 64 => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn sample_events(words: &[&str]) -> Vec<Value> {
    let mut events = vec![
        json!({"type": "m.room.message", "sender": "@a:hs1.test", "room_id": "!r:hs1.test",
               "content": {"body": "hi", "url": "mxc://hs1.test/x"}}),
        json!({"type": "m.room.member", "sender": "@b:hs2.test", "state_key": "@b:hs2.test",
               "content": {"membership": "join"}}),
        json!({"content": 3}),
    ];
    for (i, w) in words.iter().enumerate() {
        let other = words[(i + 1) % words.len()];
        events.push(json!({"type": w, "sender": other, "room_id": w, "content": {"url": other}}));
        // A long type made of the word repeated, against the patterns of the filter.
        events.push(json!({"type": w.repeat(255 / w.len().max(1)).chars().take(255).collect::<String>(), "sender": w}));
    }
    events
}

fn apply_event_filter(filter: &EventFilter, events: &[Value]) {
    for event in events {
        filter.matches_event(event);
        let event_type = event.get("type").and_then(Value::as_str).unwrap_or("");
        filter.matches(event_type, None);
    }
}

fn apply_room_event_filter(filter: &RoomEventFilter, events: &[Value]) {
    filter.limit_or(10, 100);
    for event in events {
        filter.matches_event(event);
        if let Some(room) = event.get("room_id").and_then(Value::as_str) {
            filter.allows_room(room);
        }
    }
}

/// A filter as `/sync?filter=` or `POST /user/{userId}/filter` gives it (and the
/// RoomEventFilter of `/messages`), parsed and then applied to events as sync does.
pub fn sync_filter(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(value) = serde_json::from_str::<Value>(text.trim()) else {
        return false;
    };
    let mut words = Vec::new();
    strings(&value, &mut words);
    let events = sample_events(&words);
    let mut parsed = false;
    if let Ok(filter) = Filter::from_json(&value) {
        parsed = true;
        apply_event_filter(&filter.presence, &events);
        apply_event_filter(&filter.account_data, &events);
        for room in [
            &filter.room.timeline,
            &filter.room.state,
            &filter.room.ephemeral,
            &filter.room.account_data,
        ] {
            apply_room_event_filter(room, &events);
        }
        for event in &events {
            if let Some(room) = event.get("room_id").and_then(Value::as_str) {
                filter.room.allows_room(room);
            }
        }
    }
    if let Ok(filter) = RoomEventFilter::from_json(&value) {
        parsed = true;
        apply_room_event_filter(&filter, &events);
    }
    parsed
}

/// `POST /search`: the input's first line is the `next_batch` query parameter, the rest
/// the body. The criteria are checked and the search term split into index terms.
pub fn search_query(data: &[u8]) -> bool {
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let Some(criteria) = body
        .get("search_categories")
        .and_then(Value::as_object)
        .and_then(|c| c.get("room_events"))
    else {
        return false;
    };
    let Ok(mut request) = parse_room_events(criteria) else {
        return false;
    };
    request.next_batch = Some(String::from_utf8_lossy(head).into_owned()).filter(|t| !t.is_empty());
    if let Ok(query) = parse_query(&request) {
        assert!(query.terms.len() <= hearth::service::search::MAX_QUERY_TERMS);
    }
    true
}

/// A text frame from a sync WebSocket client, parsed as the socket's session does, and the
/// fields its handler reads before calling the services.
pub fn sync_ws_frame(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok((_, request)) = parse_frame(text) else {
        return false;
    };
    match request {
        ClientRequest::Typing { room_id, .. } | ClientRequest::Receipt { room_id, .. } => {
            let _ = ruma::RoomId::parse(&room_id);
        }
        ClientRequest::Presence { presence, .. } => {
            let _ = PresenceState::parse(&presence);
        }
        _ => {}
    }
    true
}
