//! The legacy `GET /initialSync` and `GET /rooms/{roomId}/initialSync`.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::{
    User, alice_and_bob_in_a_room, create_room, enc, invite, put_state, read_receipt, send_text,
    user,
};

#[track_caller]
fn initial_sync(server: &TestServer, user: &User, query: &str) -> Value {
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/initialSync{query}"),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["end"].is_string(), "{body}");
    body
}

fn room_initial_sync(server: &TestServer, user: &User, room: &str, query: &str) -> (u16, Value) {
    server.get(
        &format!("/_matrix/client/v3/rooms/{}/initialSync{query}", enc(room)),
        Some(&user.token),
    )
}

#[track_caller]
fn room_of<'a>(body: &'a Value, room: &str) -> Option<&'a Value> {
    body["rooms"]
        .as_array()
        .expect("rooms is a list")
        .iter()
        .find(|r| r["room_id"] == room)
}

fn bodies(messages: &Value) -> Vec<String> {
    messages["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

fn state_of<'a>(state: &'a Value, event_type: &str) -> Option<&'a Value> {
    state
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == event_type)
}

#[track_caller]
fn set_state(
    server: &TestServer,
    user: &User,
    room: &str,
    event_type: &str,
    state_key: &str,
    content: Value,
) {
    let (status, body) = put_state(server, user, room, event_type, state_key, &content);
    assert_eq!(status, 200, "{body}");
}

fn leave(server: &TestServer, user: &User, room: &str) {
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(room)),
        Some(&user.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn global_initial_sync_gives_rooms_messages_state_invites_and_presence() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let public = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "visibility": "public"}),
    );
    let (status, _) = server.post(
        &format!("/_matrix/client/v3/join/{}", enc(&public)),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200);
    for n in 1..=3 {
        send_text(&server, &alice, &public, &format!("t{n}"), &format!("m{n}"));
    }
    let private = create_room(&server, &alice, json!({"preset": "private_chat"}));
    invite(&server, &alice, &private, &bob);

    let body = initial_sync(&server, &bob, "?limit=2");
    let joined = room_of(&body, &public).expect("the joined room is listed");
    assert_eq!(joined["membership"], "join");
    assert_eq!(joined["visibility"], "public");
    assert_eq!(bodies(&joined["messages"]), ["m2", "m3"]);
    assert!(
        state_of(&joined["state"], "m.room.create").is_some(),
        "{joined}"
    );
    assert_eq!(
        state_of(&joined["state"], "m.room.join_rules").unwrap()["content"]["join_rule"],
        "public"
    );
    // `start` pages back from just before the chunk with `/messages`.
    let start = joined["messages"]["start"].as_str().unwrap();
    let (status, older) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1&from={}",
            enc(&public),
            enc(start)
        ),
        Some(&bob.token),
    );
    assert_eq!(status, 200, "{older}");
    assert_eq!(older["chunk"][0]["content"]["body"], "m1", "{older}");

    let invited = room_of(&body, &private).expect("the invite is listed");
    assert_eq!(invited["membership"], "invite");
    assert_eq!(invited["visibility"], "private");
    assert_eq!(invited["invite"]["state_key"], bob.id.as_str());
    assert_eq!(invited["invite"]["content"]["membership"], "invite");
    assert!(invited.get("messages").is_none(), "{invited}");

    // Alice shares a room with Bob: her presence is there, in the legacy format.
    let presence = body["presence"].as_array().unwrap();
    assert!(
        presence
            .iter()
            .any(|e| e["type"] == "m.presence" && e["content"]["user_id"] == alice.id.as_str()),
        "{body}"
    );
    // As Synapse: only the account data stored, and the push rules are not.
    assert_eq!(body["account_data"], json!([]));
    let (status, _) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/user/{}/account_data/org.example.cats",
            enc(&bob.id)
        ),
        Some(&bob.token),
        &json!({"cats": true}),
    );
    assert_eq!(status, 200);

    let empty = initial_sync(&server, &bob, "?limit=0");
    assert_eq!(
        empty["account_data"],
        json!([{"type": "org.example.cats", "content": {"cats": true}}])
    );
    assert_eq!(
        room_of(&empty, &public).unwrap()["messages"]["chunk"],
        json!([])
    );
    assert_error(
        server.get(
            "/_matrix/client/v3/initialSync?limit=hello",
            Some(&bob.token),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.get("/_matrix/client/v3/initialSync", None),
        401,
        "M_MISSING_TOKEN",
    );
}

#[test]
fn departed_rooms_appear_only_when_archived_and_end_at_the_departure() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    set_state(
        &server,
        &alice,
        &room,
        "m.room.topic",
        "",
        json!({"topic": "before"}),
    );
    send_text(&server, &alice, &room, "t1", "before leaving");
    leave(&server, &bob, &room);
    send_text(&server, &alice, &room, "t2", "after leaving");
    set_state(
        &server,
        &alice,
        &room,
        "m.room.topic",
        "",
        json!({"topic": "after"}),
    );

    let body = initial_sync(&server, &bob, "");
    assert!(room_of(&body, &room).is_none(), "{body}");

    let body = initial_sync(&server, &bob, "?limit=2&archived=true");
    let left = room_of(&body, &room).expect("the departed room is listed");
    assert_eq!(left["membership"], "leave");
    assert_eq!(bodies(&left["messages"]), ["before leaving"]);
    assert_eq!(
        left["messages"]["chunk"][1]["content"]["membership"],
        "leave"
    );
    assert_eq!(
        state_of(&left["state"], "m.room.topic").unwrap()["content"]["topic"],
        "before"
    );

    let (status, single) = room_initial_sync(&server, &bob, &room, "?limit=2");
    assert_eq!(status, 200, "{single}");
    assert_eq!(single["membership"], "leave");
    assert_eq!(bodies(&single["messages"]), ["before leaving"]);
    assert_eq!(
        state_of(&single["state"], "m.room.topic").unwrap()["content"]["topic"],
        "before"
    );
    assert_eq!(single["presence"], json!([]));
    assert_eq!(single["receipts"], json!([]));
}

#[test]
fn room_initial_sync_for_members_gives_receipts_presence_and_tags() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let event = send_text(&server, &alice, &room, "t1", "hello");
    read_receipt(&server, &bob, &room, &event);
    let (status, _) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/user/{}/rooms/{}/tags/u.work",
            enc(&alice.id),
            enc(&room)
        ),
        Some(&alice.token),
        &json!({"order": 0.5}),
    );
    assert_eq!(status, 200);

    let (status, _) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/presence/{}/status", enc(&bob.id)),
        Some(&bob.token),
        &json!({"presence": "unavailable"}),
    );
    assert_eq!(status, 200);

    let (status, body) = room_initial_sync(&server, &alice, &room, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room_id"], room.as_str());
    assert_eq!(body["membership"], "join");
    assert_eq!(bodies(&body["messages"]), ["hello"]);
    assert!(body["messages"]["start"].is_string() && body["messages"]["end"].is_string());
    assert!(
        state_of(&body["state"], "m.room.power_levels").is_some(),
        "{body}"
    );
    let receipt = &body["receipts"][0];
    assert_eq!(receipt["type"], "m.receipt", "{body}");
    assert_eq!(receipt["room_id"], room.as_str());
    assert!(
        receipt["content"][&event]["m.read"][&bob.id].is_object(),
        "{body}"
    );
    let bobs = body["presence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["content"]["user_id"] == bob.id.as_str())
        .expect("Bob's presence is there");
    assert_eq!(bobs["content"]["presence"], "unavailable");
    let tag = body["account_data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.tag")
        .expect("the tag is in the room's account data");
    assert_eq!(tag["content"]["tags"]["u.work"]["order"], 0.5);

    // The global snapshot carries the same receipts and tags.
    let global = initial_sync(&server, &alice, "?limit=1");
    assert!(
        global["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room_id"] == room.as_str()
                && r["content"][&event]["m.read"][&bob.id].is_object()),
        "{global}"
    );
    let listed = room_of(&global, &room).unwrap();
    assert!(
        listed["account_data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.tag"),
        "{listed}"
    );
}

#[test]
fn outsiders_may_peek_only_into_world_readable_rooms() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let outsider = user(&server, "outsider");
    let private = create_room(&server, &alice, json!({"preset": "private_chat"}));
    send_text(&server, &alice, &private, "t1", "secret");
    assert_error(
        room_initial_sync(&server, &outsider, &private, ""),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        room_initial_sync(&server, &outsider, "!nowhere:example.org", ""),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        room_initial_sync(&server, &outsider, "not-a-room-id", ""),
        400,
        "M_INVALID_PARAM",
    );

    let open = create_room(&server, &alice, json!({"preset": "public_chat"}));
    set_state(
        &server,
        &alice,
        &open,
        "m.room.history_visibility",
        "",
        json!({"history_visibility": "world_readable"}),
    );
    send_text(&server, &alice, &open, "t2", "for everyone");
    let (status, body) = room_initial_sync(&server, &outsider, &open, "?limit=2");
    assert_eq!(status, 200, "{body}");
    assert!(body.get("membership").is_none(), "{body}");
    let chunk = body["messages"]["chunk"].as_array().unwrap();
    assert_eq!(chunk.len(), 2, "{body}");
    assert_eq!(chunk[0]["type"], "m.room.history_visibility");
    assert_eq!(chunk[1]["content"]["body"], "for everyone");
    assert!(
        state_of(&body["state"], "m.room.create").is_some(),
        "{body}"
    );
    // Peeking does not make the room one of the outsider's.
    let global = initial_sync(&server, &outsider, "");
    assert!(room_of(&global, &open).is_none(), "{global}");
}
