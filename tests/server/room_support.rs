//! Shared steps of the room tests: users, rooms, sends and state lookups over HTTP.

use serde_json::{Value, json};

use crate::harness::{TestServer, into_json, token};

pub struct User {
    pub id: String,
    pub token: String,
    pub device: String,
}

pub fn user(server: &TestServer, name: &str) -> User {
    let body = server.register(name);
    User {
        id: body["user_id"].as_str().unwrap().to_owned(),
        token: token(&body),
        device: body["device_id"].as_str().unwrap().to_owned(),
    }
}

/// Percent-encodes a path segment (room IDs, event IDs and user IDs hold `!$@:`).
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Alice's public room with Bob joined: where most tests begin.
pub fn alice_and_bob_in_a_room(server: &TestServer) -> (User, User, String) {
    let alice = user(server, "alice");
    let bob = user(server, "bob");
    let room = create_room(server, &alice, json!({"preset": "public_chat"}));
    join(server, &bob, &room);
    (alice, bob, room)
}

pub fn try_create_room(server: &TestServer, user: &User, body: Value) -> (u16, Value) {
    server.post("/_matrix/client/v3/createRoom", Some(&user.token), &body)
}

#[track_caller]
pub fn create_room(server: &TestServer, user: &User, body: Value) -> String {
    let (status, body) = try_create_room(server, user, body);
    assert_eq!(status, 200, "{body}");
    body["room_id"].as_str().unwrap().to_owned()
}

pub fn send_path(room: &str, event_type: &str, txn: &str) -> String {
    format!(
        "/_matrix/client/v3/rooms/{}/send/{}/{}",
        enc(room),
        enc(event_type),
        enc(txn)
    )
}

pub fn try_send(
    server: &TestServer,
    user: &User,
    room: &str,
    txn: &str,
    content: &Value,
) -> (u16, Value) {
    server.send(
        "PUT",
        &send_path(room, "m.room.message", txn),
        Some(&user.token),
        content,
    )
}

#[track_caller]
pub fn send_text(server: &TestServer, user: &User, room: &str, txn: &str, text: &str) -> String {
    let (status, body) = try_send(
        server,
        user,
        room,
        txn,
        &json!({ "msgtype": "m.text", "body": text }),
    );
    assert_eq!(status, 200, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

/// A request with a body sent verbatim, for malformed JSON.
pub fn send_raw(
    server: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    into_json(
        server
            .client
            .request(method, server.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap(),
    )
}

pub fn state_path(room: &str, event_type: &str, state_key: &str) -> String {
    format!(
        "/_matrix/client/v3/rooms/{}/state/{}/{}",
        enc(room),
        enc(event_type),
        enc(state_key)
    )
}

/// `GET /state/{type}/{key}`: the content.
pub fn get_state(
    server: &TestServer,
    user: &User,
    room: &str,
    event_type: &str,
    state_key: &str,
) -> (u16, Value) {
    server.get(&state_path(room, event_type, state_key), Some(&user.token))
}

/// `GET /state/{type}/{key}?format=event`: the whole client event.
#[track_caller]
pub fn state_event(
    server: &TestServer,
    user: &User,
    room: &str,
    event_type: &str,
    state_key: &str,
) -> Value {
    let (status, body) = server.get(
        &format!("{}?format=event", state_path(room, event_type, state_key)),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    body
}

pub fn put_state(
    server: &TestServer,
    user: &User,
    room: &str,
    event_type: &str,
    state_key: &str,
    content: &Value,
) -> (u16, Value) {
    server.send(
        "PUT",
        &state_path(room, event_type, state_key),
        Some(&user.token),
        content,
    )
}

pub fn get_event(server: &TestServer, user: &User, room: &str, event_id: &str) -> (u16, Value) {
    server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(room),
            enc(event_id)
        ),
        Some(&user.token),
    )
}

/// `POST /rooms/{room}/{action}` (join, leave, invite, kick, ban, unban).
pub fn membership(
    server: &TestServer,
    user: &User,
    room: &str,
    action: &str,
    body: Value,
) -> (u16, Value) {
    server.post(
        &format!("/_matrix/client/v3/rooms/{}/{action}", enc(room)),
        Some(&user.token),
        &body,
    )
}

#[track_caller]
pub fn join(server: &TestServer, user: &User, room: &str) {
    let (status, body) = membership(server, user, room, "join", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room_id"], room);
}

#[track_caller]
pub fn invite(server: &TestServer, inviter: &User, room: &str, invitee: &User) {
    let (status, body) = membership(
        server,
        inviter,
        room,
        "invite",
        json!({ "user_id": invitee.id }),
    );
    assert_eq!(status, 200, "{body}");
}

pub fn joined_rooms(server: &TestServer, user: &User) -> Vec<String> {
    let (status, body) = server.get("/_matrix/client/v3/joined_rooms", Some(&user.token));
    assert_eq!(status, 200, "{body}");
    body["joined_rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The user's membership as the room's state has it, or `None` without a member event.
pub fn membership_of(
    server: &TestServer,
    viewer: &User,
    room: &str,
    user_id: &str,
) -> Option<String> {
    let (status, body) = get_state(server, viewer, room, "m.room.member", user_id);
    match status {
        200 => Some(body["membership"].as_str().unwrap().to_owned()),
        404 => None,
        _ => panic!("membership lookup: {status} {body}"),
    }
}

/// Sets one user's power level, keeping the rest of the power levels.
#[track_caller]
pub fn set_power(server: &TestServer, admin: &User, room: &str, user_id: &str, level: i64) {
    let (status, mut levels) = get_state(server, admin, room, "m.room.power_levels", "");
    assert_eq!(status, 200, "{levels}");
    levels["users"][user_id] = json!(level);
    let (status, body) = put_state(server, admin, room, "m.room.power_levels", "", &levels);
    assert_eq!(status, 200, "{body}");
}

/// Every event of a room, newest first, paging back until `enough` says so.
pub fn room_history(
    server: &TestServer,
    viewer: &User,
    room: &str,
    mut enough: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let mut path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=200",
            enc(room)
        );
        if let Some(from) = &from {
            path.push_str(&format!("&from={}", enc(from)));
        }
        let (status, body) = server.get(&path, Some(&viewer.token));
        assert_eq!(status, 200, "{body}");
        let chunk = body["chunk"].as_array().cloned().unwrap_or_default();
        events.extend(chunk.iter().cloned());
        if enough(&events) {
            break;
        }
        match body["end"].as_str() {
            Some(end) if !chunk.is_empty() => from = Some(end.to_owned()),
            _ => break,
        }
    }
    events
}

/// `user` starts typing in the room for `timeout_ms`.
#[track_caller]
pub fn start_typing(server: &TestServer, user: &User, room: &str, timeout_ms: u64) {
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/typing/{}",
            enc(room),
            enc(&user.id)
        ),
        Some(&user.token),
        &json!({ "typing": true, "timeout": timeout_ms }),
    );
    assert_eq!(status, 200, "{body}");
}

/// `user` sends a public read receipt for the event.
#[track_caller]
pub fn read_receipt(server: &TestServer, user: &User, room: &str, event_id: &str) {
    post_read_receipt(server, user, room, event_id, &json!({}));
}

/// `user` sends a public read receipt for the event in `thread` (a thread root's ID, or
/// `main` for the main timeline).
#[track_caller]
pub fn thread_read_receipt(
    server: &TestServer,
    user: &User,
    room: &str,
    event_id: &str,
    thread: &str,
) {
    post_read_receipt(server, user, room, event_id, &json!({"thread_id": thread}));
}

#[track_caller]
fn post_read_receipt(server: &TestServer, user: &User, room: &str, event_id: &str, body: &Value) {
    let (status, answer) = server.post(
        &format!(
            "/_matrix/client/v3/rooms/{}/receipt/m.read/{}",
            enc(room),
            enc(event_id)
        ),
        Some(&user.token),
        body,
    );
    assert_eq!(status, 200, "{answer}");
}
