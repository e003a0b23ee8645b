//! Simplified sliding sync (MSC4186): lists sorted by recency, subscriptions, required
//! state, extensions, `pos` across a restart (and `kill -9`) and long-polling.

use serde_json::{Value, json};

use crate::e2ee_support::{
    second_device, send_text_to_device, send_to_device, status_when_stopped_during_a_hold,
};
use crate::harness::{PASSWORD, TestServer, assert_error};
use crate::relations::reply_in_thread;
use crate::room_support::*;

pub const PATH: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

pub fn try_sliding(
    server: &TestServer,
    user: &User,
    pos: Option<&str>,
    timeout_ms: u64,
    body: &Value,
) -> (u16, Value) {
    let mut path = format!("{PATH}?timeout={timeout_ms}");
    if let Some(pos) = pos {
        path.push_str(&format!("&pos={pos}"));
    }
    server.post(&path, Some(&user.token), body)
}

#[track_caller]
pub fn sliding(server: &TestServer, user: &User, pos: Option<&str>, body: &Value) -> Value {
    let (status, answer) = try_sliding(server, user, pos, 0, body);
    assert_eq!(status, 200, "{answer}");
    answer
}

pub fn pos(body: &Value) -> String {
    body["pos"].as_str().expect("a pos").to_owned()
}

/// The response's rooms, newest first by bump stamp, as clients order them.
pub fn by_recency(body: &Value) -> Vec<String> {
    let mut rooms: Vec<(u64, String)> = body["rooms"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, room)| (room["bump_stamp"].as_u64().unwrap(), id.clone()))
        .collect();
    rooms.sort_by(|a, b| b.cmp(a));
    rooms.into_iter().map(|(_, id)| id).collect()
}

pub fn room_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["rooms"].as_object().unwrap().keys().cloned().collect();
    ids.sort();
    ids
}

pub fn texts(room: &Value) -> Vec<String> {
    room["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
        .collect()
}

pub fn state_keys(room: &Value) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = room["required_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["state_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    keys.sort();
    keys
}

pub fn list(ranges: Value) -> Value {
    json!({
        "ranges": ranges,
        "timeline_limit": 1,
        "required_state": [["m.room.name", ""]],
    })
}

#[test]
fn the_room_list_is_sorted_by_recency_and_a_message_moves_a_room_up() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let rooms: Vec<String> = ["first", "second", "third"]
        .iter()
        .map(|name| create_room(&server, &alice, json!({"name": name})))
        .collect();
    for (i, room) in rooms.iter().enumerate() {
        send_text(
            &server,
            &alice,
            room,
            &format!("t{i}"),
            &format!("hello {i}"),
        );
    }
    let all = sliding(
        &server,
        &alice,
        None,
        &json!({"lists": {"all": list(json!([[0, 9]]))}}),
    );
    assert_eq!(all["lists"]["all"]["count"], 3, "{all}");
    let newest_first: Vec<String> = rooms.iter().rev().cloned().collect();
    assert_eq!(by_recency(&all), newest_first);
    assert_eq!(all["rooms"][&rooms[2]]["name"], "third");
    assert_eq!(all["rooms"][&rooms[2]]["initial"], true);
    assert_eq!(texts(&all["rooms"][&rooms[2]]), ["hello 2"]);

    // A window of one room holds the newest only; a message elsewhere replaces it.
    let top_request = json!({"conn_id": "top", "lists": {"top": list(json!([[0, 0]]))}});
    let top = sliding(&server, &alice, None, &top_request);
    assert_eq!(room_ids(&top), [rooms[2].clone()]);
    assert_eq!(top["lists"]["top"]["count"], 3);
    send_text(&server, &alice, &rooms[0], "t-again", "back on top");
    let top = sliding(&server, &alice, Some(&pos(&top)), &top_request);
    assert_eq!(room_ids(&top), [rooms[0].clone()], "{top}");
    let moved = &top["rooms"][&rooms[0]];
    assert_eq!(moved["initial"], true);
    assert_eq!(texts(moved), ["back on top"]);

    // The connection with the whole list sees only the room that changed.
    let all = sliding(
        &server,
        &alice,
        Some(&pos(&all)),
        &json!({"lists": {"all": list(json!([[0, 9]]))}}),
    );
    assert_eq!(room_ids(&all), [rooms[0].clone()], "{all}");
    let moved = &all["rooms"][&rooms[0]];
    assert!(moved.get("initial").is_none(), "{moved}");
    assert_eq!(texts(moved), ["back on top"]);
    assert_eq!(moved["num_live"], 1);
    assert!(
        moved["bump_stamp"].as_u64() > Some(0),
        "the moved room has a bump stamp: {moved}"
    );
}

#[test]
fn a_subscription_receives_its_timeline_and_required_state() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let (status, _) = put_state(
        &server,
        &alice,
        &room,
        "m.room.name",
        "",
        &json!({"name": "Plans"}),
    );
    assert_eq!(status, 200);
    for i in 0..3 {
        send_text(&server, &alice, &room, &format!("t{i}"), &format!("m{i}"));
    }
    let request = json!({
        "room_subscriptions": {
            room.clone(): {
                "timeline_limit": 2,
                "required_state": [["m.room.name", ""], ["m.room.create", ""]],
            }
        }
    });
    let first = sliding(&server, &bob, None, &request);
    let synced = &first["rooms"][&room];
    assert_eq!(synced["initial"], true, "{first}");
    assert_eq!(synced["name"], "Plans");
    assert_eq!(texts(synced), ["m1", "m2"]);
    assert_eq!(synced["limited"], true);
    assert!(synced["prev_batch"].is_string());
    assert_eq!(synced["joined_count"], 2);
    assert_eq!(synced["invited_count"], 0);
    assert_eq!(
        state_keys(synced),
        [
            ("m.room.create".to_owned(), String::new()),
            ("m.room.name".to_owned(), String::new())
        ]
    );
    // Messages from Alice after Bob joined and no receipt: they count as unread.
    assert_eq!(synced["notification_count"], 3, "{synced}");

    // The subscription is sticky: the next request need not repeat it.
    send_text(&server, &alice, &room, "t3", "m3");
    let next = sliding(&server, &bob, Some(&pos(&first)), &json!({}));
    let synced = &next["rooms"][&room];
    assert_eq!(texts(synced), ["m3"], "{next}");
    assert_eq!(synced["limited"], false);
    assert_eq!(synced["num_live"], 1);
    assert_eq!(synced["required_state"], json!([]));
    // A state change the subscription asks for comes as required state.
    let (status, _) = put_state(
        &server,
        &alice,
        &room,
        "m.room.name",
        "",
        &json!({"name": "Better plans"}),
    );
    assert_eq!(status, 200);
    let after = sliding(&server, &bob, Some(&pos(&next)), &json!({}));
    let synced = &after["rooms"][&room];
    assert_eq!(synced["name"], "Better plans", "{after}");
    assert_eq!(
        state_keys(synced),
        [("m.room.name".to_owned(), String::new())]
    );

    // Unsubscribed, the room's changes stop coming.
    let quiet = sliding(
        &server,
        &bob,
        Some(&pos(&after)),
        &json!({"unsubscribe_rooms": [room.clone()]}),
    );
    send_text(&server, &alice, &room, "t4", "m4");
    let quiet = sliding(&server, &bob, Some(&pos(&quiet)), &json!({}));
    assert_eq!(quiet["rooms"], json!({}), "{quiet}");
}

#[test]
fn lazy_members_are_the_timeline_senders_and_me_is_the_user() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let carol = user(&server, "carol");
    join(&server, &carol, &room);
    send_text(&server, &alice, &room, "t0", "from alice");
    send_text(&server, &bob, &room, "t1", "from bob");
    let lazy = sliding(
        &server,
        &carol,
        None,
        &json!({"room_subscriptions": {room.clone(): {
            "timeline_limit": 1,
            "required_state": [["m.room.member", "$LAZY"]],
        }}}),
    );
    assert_eq!(
        state_keys(&lazy["rooms"][&room]),
        [("m.room.member".to_owned(), bob.id.clone())],
        "{lazy}"
    );
    let me = sliding(
        &server,
        &carol,
        None,
        &json!({"conn_id": "me", "room_subscriptions": {room.clone(): {
            "timeline_limit": 0,
            "required_state": [["m.room.member", "$ME"]],
        }}}),
    );
    let synced = &me["rooms"][&room];
    assert_eq!(
        state_keys(synced),
        [("m.room.member".to_owned(), carol.id.clone())]
    );
    assert_eq!(synced["timeline"], json!([]));
    assert_eq!(synced["limited"], true);
    let all = sliding(
        &server,
        &carol,
        None,
        &json!({"conn_id": "all", "room_subscriptions": {room.clone(): {
            "timeline_limit": 0,
            "required_state": [["m.room.member", "*"]],
        }}}),
    );
    assert_eq!(state_keys(&all["rooms"][&room]).len(), 3, "{all}");
}

#[test]
fn lazy_members_are_sent_once_per_connection_until_they_change() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let request = json!({"room_subscriptions": {room.clone(): {
        "timeline_limit": 1,
        "required_state": [["m.room.member", "$LAZY"]],
    }}});
    let alice_member = [("m.room.member".to_owned(), alice.id.clone())];
    send_text(&server, &alice, &room, "t0", "first");
    let first = sliding(&server, &bob, None, &request);
    assert_eq!(state_keys(&first["rooms"][&room]), alice_member, "{first}");

    // Alice speaks again: Bob's client has her membership.
    send_text(&server, &alice, &room, "t1", "second");
    let second = sliding(&server, &bob, Some(&pos(&first)), &request);
    assert_eq!(texts(&second["rooms"][&room]), ["second"], "{second}");
    assert!(state_keys(&second["rooms"][&room]).is_empty(), "{second}");
    // A request retried with the same `pos` (its answer lost) is answered the same.
    let retried = sliding(&server, &bob, Some(&pos(&first)), &request);
    assert_eq!(texts(&retried["rooms"][&room]), ["second"], "{retried}");
    assert!(state_keys(&retried["rooms"][&room]).is_empty(), "{retried}");

    // Her membership changes (a new display name): it comes with her next message.
    let (status, body) = put_state(
        &server,
        &alice,
        &room,
        "m.room.member",
        &alice.id,
        &json!({"membership": "join", "displayname": "Alice A."}),
    );
    assert_eq!(status, 200, "{body}");
    send_text(&server, &alice, &room, "t2", "third");
    let third = sliding(&server, &bob, Some(&pos(&second)), &request);
    let room_now = &third["rooms"][&room];
    assert_eq!(texts(room_now), ["third"], "{third}");
    assert_eq!(state_keys(room_now), alice_member, "{third}");
    assert_eq!(
        room_now["required_state"][0]["content"]["displayname"],
        "Alice A."
    );
    send_text(&server, &alice, &room, "t3", "fourth");
    let fourth = sliding(&server, &bob, Some(&pos(&third)), &request);
    assert!(state_keys(&fourth["rooms"][&room]).is_empty(), "{fourth}");
}

#[test]
fn extensions_deliver_to_device_messages_typing_and_key_counts() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let request = json!({
        "lists": {"all": list(json!([[0, 9]]))},
        "extensions": {
            "to_device": {"enabled": true},
            "e2ee": {"enabled": true},
            "typing": {"enabled": true},
            "account_data": {"enabled": true},
            "receipts": {"enabled": true},
        }
    });
    let first = sliding(&server, &bob, None, &request);
    let e2ee = &first["extensions"]["e2ee"];
    assert_eq!(e2ee["device_one_time_keys_count"]["signed_curve25519"], 0);
    assert!(e2ee["device_unused_fallback_key_types"].is_array());
    // The push rules come with the first response, as with `/sync`.
    assert!(
        first["extensions"]["account_data"]["global"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.push_rules"),
        "{first}"
    );

    let (status, _) = send_to_device(
        &server,
        &alice,
        "m.test",
        "td1",
        json!({ bob.id.clone(): { bob.device.clone(): {"hello": "bob"} } }),
    );
    assert_eq!(status, 200);
    start_typing(&server, &alice, &room, 30000);
    let second = sliding(&server, &bob, Some(&pos(&first)), &request);
    let to_device = &second["extensions"]["to_device"];
    assert_eq!(
        to_device["events"],
        json!([{"sender": alice.id, "type": "m.test", "content": {"hello": "bob"}}]),
        "{second}"
    );
    let typing = &second["extensions"]["typing"]["rooms"][&room];
    assert_eq!(typing["type"], "m.typing");
    assert_eq!(typing["content"]["user_ids"], json!([alice.id]));

    // Acknowledged with `since`, the message is not sent again.
    let mut again = request.clone();
    again["extensions"]["to_device"]["since"] = to_device["next_batch"].clone();
    let third = sliding(&server, &bob, Some(&pos(&second)), &again);
    assert_eq!(
        third["extensions"]["to_device"]["events"],
        json!([]),
        "{third}"
    );
}

#[test]
fn filters_pick_invites_and_direct_chats() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let group = create_room(&server, &alice, json!({"preset": "public_chat"}));
    join(&server, &bob, &group);
    let dm = create_room(
        &server,
        &alice,
        json!({"is_direct": true, "invite": [bob.id.clone()]}),
    );
    let body = sliding(
        &server,
        &bob,
        None,
        &json!({"lists": {
            "invites": {"ranges": [[0, 9]], "filters": {"is_invite": true}},
            "joined": {"ranges": [[0, 9]], "filters": {"is_invite": false}},
            "dms": {"ranges": [[0, 9]], "filters": {"is_dm": true}},
        }}),
    );
    assert_eq!(body["lists"]["invites"]["count"], 1, "{body}");
    assert_eq!(body["lists"]["joined"]["count"], 1);
    assert_eq!(body["lists"]["dms"]["count"], 1);
    let invite = &body["rooms"][&dm];
    assert_eq!(invite["is_dm"], true, "{invite}");
    assert!(
        invite["invite_state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create"),
        "{invite}"
    );
    assert!(body["rooms"][&group]["timeline"].is_array());
}

#[test]
fn a_room_left_is_reported_once_and_nothing_after_the_departure() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let request = json!({"lists": {"all": {
        "ranges": [[0, 9]],
        "timeline_limit": 5,
        "required_state": [["m.room.member", "*"]],
    }}});
    let first = sliding(&server, &bob, None, &request);
    assert_eq!(first["lists"]["all"]["count"], 1);
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    // Others come and talk after Bob left: none of it is his to see.
    let carol = user(&server, "carol");
    join(&server, &carol, &room);
    send_text(&server, &alice, &room, "t0", "after bob left");
    let next = sliding(&server, &bob, Some(&pos(&first)), &request);
    let left = &next["rooms"][&room];
    let timeline = left["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 1, "{next}");
    assert_eq!(timeline[0]["type"], "m.room.member");
    assert_eq!(timeline[0]["content"]["membership"], "leave");
    assert_eq!(left["joined_count"], 1, "{left}");
    assert!(
        !state_keys(left).iter().any(|(_, key)| *key == carol.id),
        "{left}"
    );
    // Reported once: the next answer lists the room no more.
    let after = sliding(&server, &bob, Some(&pos(&next)), &request);
    assert_eq!(after["lists"]["all"]["count"], 0, "{after}");
    assert_eq!(after["rooms"], json!({}));

    // Subscribed to afterwards, the room he left is read up to his departure; one he
    // was never in is not sent at all.
    let stranger = create_room(&server, &alice, json!({"preset": "public_chat"}));
    let subscribe = json!({"conn_id": "subscribed", "room_subscriptions": {
        room.clone(): {"timeline_limit": 10},
        stranger.clone(): {"timeline_limit": 10},
    }});
    let subscribed = sliding(&server, &bob, None, &subscribe);
    assert_eq!(room_ids(&subscribed), [room.as_str()], "{subscribed}");
    let read = texts(&subscribed["rooms"][&room]);
    assert!(!read.iter().any(|t| t == "after bob left"), "{read:?}");
    let last = subscribed["rooms"][&room]["timeline"]
        .as_array()
        .unwrap()
        .last()
        .cloned();
    assert_eq!(last.unwrap()["content"]["membership"], "leave");
}

#[test]
fn a_pos_survives_a_restart_and_an_unknown_one_is_refused() {
    let mut server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    send_text(&server, &alice, &room, "t0", "before");
    let request = json!({"lists": {"all": list(json!([[0, 9]]))}});
    let first = sliding(&server, &bob, None, &request);
    assert_eq!(texts(&first["rooms"][&room]), ["before"]);
    server.restart();
    send_text(&server, &alice, &room, "t1", "after");
    let next = sliding(&server, &bob, Some(&pos(&first)), &request);
    let synced = &next["rooms"][&room];
    assert!(synced.get("initial").is_none(), "{next}");
    assert_eq!(texts(synced), ["after"]);
    // The position before is still answered (a retried request), the one after too.
    let retried = sliding(&server, &bob, Some(&pos(&first)), &request);
    assert_eq!(texts(&retried["rooms"][&room]), ["after"]);
    assert_error(
        try_sliding(&server, &bob, Some("12345"), 0, &request),
        400,
        "M_UNKNOWN_POS",
    );
    assert_error(
        try_sliding(&server, &bob, Some("not-a-pos"), 0, &request),
        400,
        "M_UNKNOWN_POS",
    );
    // Another user's position means nothing for this one.
    assert_error(
        try_sliding(&server, &alice, Some(&pos(&next)), 0, &request),
        400,
        "M_UNKNOWN_POS",
    );
    // Once the client uses the next position, the first goes (its state is overwritten
    // by the one answered), from memory and after a restart alike; the one used stays.
    send_text(&server, &alice, &room, "t2", "later");
    let third = sliding(&server, &bob, Some(&pos(&next)), &request);
    assert_eq!(texts(&third["rooms"][&room]), ["later"]);
    for restarted in [false, true] {
        if restarted {
            server.restart();
        }
        assert_error(
            try_sliding(&server, &bob, Some(&pos(&first)), 0, &request),
            400,
            "M_UNKNOWN_POS",
        );
        let again = sliding(&server, &bob, Some(&pos(&next)), &request);
        assert_eq!(texts(&again["rooms"][&room]), ["later"], "{restarted}");
    }
}

#[test]
fn after_kill_9_a_pos_is_answered_as_stored_or_refused_as_unknown() {
    let mut server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    send_text(&server, &alice, &room, "t0", "before");
    let on = |conn_id: &str| json!({"conn_id": conn_id, "lists": {"all": list(json!([[0, 9]]))}});
    // Written by the graceful restart.
    let kept = sliding(&server, &bob, None, &on("kept"));
    server.restart();
    // Answered just before the kill: kept in memory, perhaps written.
    let recent = sliding(&server, &bob, None, &on("recent"));
    assert_eq!(texts(&recent["rooms"][&room]), ["before"]);
    server.kill_9();
    server.restart();
    send_text(&server, &alice, &room, "t1", "after");
    let next = sliding(&server, &bob, Some(&pos(&kept)), &on("kept"));
    assert!(next["rooms"][&room].get("initial").is_none(), "{next}");
    assert_eq!(texts(&next["rooms"][&room]), ["after"]);
    // The newest `pos` continues where it was, or is unknown and the client starts again.
    let (status, body) = try_sliding(&server, &bob, Some(&pos(&recent)), 0, &on("recent"));
    if status == 200 {
        assert!(body["rooms"][&room].get("initial").is_none(), "{body}");
        assert_eq!(texts(&body["rooms"][&room]), ["after"]);
    } else {
        assert_error((status, body), 400, "M_UNKNOWN_POS");
        let again = sliding(&server, &bob, None, &on("recent"));
        assert_eq!(again["rooms"][&room]["initial"], true, "{again}");
        assert_eq!(texts(&again["rooms"][&room]), ["after"]);
    }
}

#[test]
fn a_device_logged_in_again_loses_its_connections() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    send_text(&server, &alice, &room, "t0", "before");
    let request = json!({"lists": {"all": list(json!([[0, 9]]))}});
    let first = sliding(&server, &bob, None, &request);
    let second = sliding(&server, &bob, Some(&pos(&first)), &request);
    // Logging in as the same device replaces it: its connections go, even the one
    // whose latest state the server keeps in memory.
    let (status, body) = server.post(
        "/_matrix/client/v3/login",
        None,
        &json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": bob.id.clone()},
            "password": PASSWORD,
            "device_id": bob.device.clone(),
        }),
    );
    assert_eq!(status, 200, "{body}");
    let again = User {
        token: body["access_token"].as_str().unwrap().to_owned(),
        ..bob
    };
    for used in [pos(&first), pos(&second)] {
        assert_error(
            try_sliding(&server, &again, Some(&used), 0, &request),
            400,
            "M_UNKNOWN_POS",
        );
    }
}

#[test]
fn a_long_poll_is_answered_by_the_message_it_waits_for() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let request = json!({"lists": {"all": list(json!([[0, 9]]))}});
    let first = sliding(&server, &bob, None, &request);
    let since = pos(&first);
    std::thread::scope(|scope| {
        // The harness client gives up after 30 s and the poll asks for 120 s: only a
        // wake-up answers it in time.
        let waiting = scope.spawn(|| try_sliding(&server, &bob, Some(&since), 120_000, &request));
        send_text(&server, &alice, &room, "t1", "wake up");
        let (status, body) = waiting.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(texts(&body["rooms"][&room]), ["wake up"]);
    });
    // With nothing new, a poll ends at its timeout with the same pos.
    let settled = sliding(&server, &bob, Some(&since), &request);
    let (status, idle) = try_sliding(&server, &bob, Some(&pos(&settled)), 50, &request);
    assert_eq!(status, 200);
    assert_eq!(idle["rooms"], json!({}), "{idle}");
    assert_eq!(pos(&idle), pos(&settled));
}

/// As with `/sync`: a long-poll woken by a to-device message alone waits
/// `limits.to_device_hold_ms` for a room event, and answers with both.
#[test]
fn a_room_key_and_the_message_after_it_come_in_one_long_poll_answer() {
    let server = TestServer::start_with_env(&[("HEARTH_LIMITS__TO_DEVICE_HOLD_MS", "1000")]);
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let request = json!({
        "lists": {"all": list(json!([[0, 9]]))},
        "extensions": {"to_device": {"enabled": true}},
    });
    let first = sliding(&server, &bob, None, &request);
    let since = pos(&first);
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| try_sliding(&server, &bob, Some(&since), 20_000, &request));
        std::thread::sleep(std::time::Duration::from_millis(300));
        send_text_to_device(
            &server,
            &alice,
            "m.room_key",
            "share",
            &bob,
            &bob.device,
            "the key",
        );
        send_text(&server, &alice, &room, "after-key", "the message");
        let (status, body) = waiting.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["extensions"]["to_device"]["events"][0]["content"]["text"], "the key",
            "{body}"
        );
        assert_eq!(texts(&body["rooms"][&room]), ["the message"], "{body}");
    });
}

/// A sliding long-poll holding after a wake for another device's to-device message is
/// answered when the server stops.
#[test]
fn stopping_the_server_during_a_hold_answers_the_long_poll() {
    let mut server = TestServer::start_with_env(&[("HEARTH_LIMITS__TO_DEVICE_HOLD_MS", "1000")]);
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    second_device(&server, "bob", "BOBTWO");
    let request = json!({"lists": {"all": list(json!([[0, 9]]))}});
    let first = sliding(&server, &bob, None, &request);
    let url = server.url(&format!("{PATH}?timeout=120000&pos={}", pos(&first)));
    let request = server
        .client
        .post(url)
        .bearer_auth(&bob.token)
        .json(&request);
    let status = status_when_stopped_during_a_hold(&mut server, &alice, &bob, request);
    assert_eq!(status, Some(200));
}

#[test]
fn bad_requests_get_matrix_errors_and_versions_advertise_it() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    assert_error(
        try_sliding(
            &server,
            &alice,
            None,
            0,
            &json!({"lists": {"a": {"ranges": [[5, 1]]}}}),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        try_sliding(
            &server,
            &alice,
            None,
            0,
            &json!({"lists": {"a": {"ranges": "all"}}}),
        ),
        400,
        "M_BAD_JSON",
    );
    let (status, _) = server.post(&format!("{PATH}?timeout=0"), None, &json!({}));
    assert_eq!(status, 401);
    let (_, versions) = server.get("/_matrix/client/versions", None);
    assert_eq!(
        versions["unstable_features"]["org.matrix.simplified_msc3575"],
        true
    );
}

#[test]
fn the_threads_extension_names_the_threads_replied_to_since_the_last_answer() {
    const THREADS: &str = "io.element.msc4360.threads";
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let root = send_text(&server, &alice, &room, "root", "thread root");
    let reply = |txn: &str, text: &str| {
        let (status, body) = reply_in_thread(&server, &alice, &room, txn, &root, text);
        assert_eq!(status, 200, "{body}");
        body["event_id"].as_str().unwrap().to_owned()
    };
    let first_reply = reply("r1", "first");
    let request = |name: &str, timeline_limit: u64, include_roots: bool| {
        json!({
            "conn_id": name,
            "lists": {"all": {"ranges": [[0, 9]], "timeline_limit": timeline_limit,
                "required_state": []}},
            "extensions": {name: {"enabled": true, "include_roots": include_roots}},
        })
    };

    // The first answer names every thread; with `include_roots`, its root and summary.
    let first = sliding(&server, &bob, None, &request(THREADS, 0, true));
    let update = &first["extensions"][THREADS]["updates"][&room][&root];
    assert_eq!(update["thread_root"]["event_id"], root, "{first}");
    let summary = &update["thread_root"]["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(summary["latest_event"]["event_id"], first_reply, "{update}");
    assert!(update.get("prev_batch").is_none(), "one reply: {update}");

    // Nothing new: the extension is left out.
    let quiet = sliding(
        &server,
        &bob,
        Some(&pos(&first)),
        &request(THREADS, 0, true),
    );
    assert!(quiet["extensions"].get(THREADS).is_none(), "{quiet}");

    // Two replies later: the thread again, without its root, and a `/relations` token
    // that pages back from just before the latest reply.
    let second_reply = reply("r2", "second");
    let latest = reply("r3", "third");
    let next = sliding(
        &server,
        &bob,
        Some(&pos(&quiet)),
        &request(THREADS, 0, false),
    );
    let update = &next["extensions"][THREADS]["updates"][&room][&root];
    assert!(update.get("thread_root").is_none(), "{update}");
    let prev_batch = update["prev_batch"].as_str().expect("a prev_batch");
    let (status, page) = server.get(
        &format!(
            "/_matrix/client/v1/rooms/{}/relations/{}?dir=b&from={prev_batch}",
            enc(&room),
            enc(&root)
        ),
        Some(&bob.token),
    );
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second_reply.as_str(), first_reply.as_str()], "{page}");
    assert!(!ids.contains(&latest.as_str()));

    // Under the stable name, with a timeline that shows the reply: the client has it,
    // so without `include_roots` the thread is not named again.
    let stable = sliding(&server, &bob, None, &request("threads", 5, false));
    let pos_stable = pos(&stable);
    reply("r4", "fourth");
    let shown = sliding(
        &server,
        &bob,
        Some(&pos_stable),
        &request("threads", 5, false),
    );
    assert_eq!(texts(&shown["rooms"][&room]), ["fourth"], "{shown}");
    assert!(shown["extensions"].get("threads").is_none(), "{shown}");
    let with_roots = sliding(
        &server,
        &bob,
        Some(&pos_stable),
        &request("threads", 5, true),
    );
    assert_eq!(
        with_roots["extensions"]["threads"]["updates"][&room][&root]["thread_root"]["event_id"],
        root,
        "{with_roots}"
    );

    // Threads of a room the user is not in are never named.
    let carol = user(&server, "carol");
    let elsewhere = create_room(&server, &carol, json!({}));
    let other_root = send_text(&server, &carol, &elsewhere, "root2", "not for bob");
    let (status, _) = reply_in_thread(&server, &carol, &elsewhere, "c1", &other_root, "hi");
    assert_eq!(status, 200);
    let all = sliding(&server, &bob, None, &request(THREADS, 0, false));
    let updates = all["extensions"][THREADS]["updates"].as_object().unwrap();
    assert_eq!(updates.keys().collect::<Vec<_>>(), [&room], "{all}");
}
