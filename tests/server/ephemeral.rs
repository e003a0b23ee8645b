//! Typing, presence and receipts as other users see them through `/sync`.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;
use crate::sync::{next_batch, poll, sync};

fn ephemeral<'a>(body: &'a Value, room: &str) -> Vec<&'a Value> {
    body["rooms"]["join"][room]["ephemeral"]["events"]
        .as_array()
        .map(|events| events.iter().collect())
        .unwrap_or_default()
}

fn typists(body: &Value, room: &str) -> Option<Value> {
    ephemeral(body, room)
        .into_iter()
        .find(|e| e["type"] == "m.typing")
        .map(|e| e["content"]["user_ids"].clone())
}

fn set_typing(server: &TestServer, user: &User, room: &str, body: Value) -> (u16, Value) {
    server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/typing/{}",
            enc(room),
            enc(&user.id)
        ),
        Some(&user.token),
        &body,
    )
}

#[test]
fn typing_appears_and_then_expires() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let since = next_batch(&sync(&server, &bob, ""));
    let (status, _) = set_typing(
        &server,
        &alice,
        &room,
        json!({"typing": true, "timeout": 300}),
    );
    assert_eq!(status, 200);
    let body = poll(&server, &bob, &since);
    assert_eq!(typists(&body, &room), Some(json!([alice.id])));
    // The next change is the expiry: the long-poll is answered with nobody typing.
    let body = poll(&server, &bob, &next_batch(&body));
    assert_eq!(typists(&body, &room), Some(json!([])));
}

/// As in Synapse (and SyTest's "Typing can be explicitly stopped"), a message does not end
/// its sender's typing: only the client's `typing: false` or the timeout does.
#[test]
fn sending_a_message_leaves_typing_on() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    set_typing(
        &server,
        &alice,
        &room,
        json!({"typing": true, "timeout": 60000}),
    );
    let since = next_batch(&sync(&server, &bob, ""));
    send_text(&server, &alice, &room, "t1", "still typing");
    let body = poll(&server, &bob, &since);
    assert_eq!(typists(&body, &room), None, "{body}");
    let body = sync(&server, &bob, "");
    assert_eq!(typists(&body, &room), Some(json!([alice.id])), "{body}");
    set_typing(&server, &alice, &room, json!({"typing": false}));
    let body = poll(&server, &bob, &next_batch(&body));
    assert_eq!(typists(&body, &room), Some(json!([])), "{body}");
}

#[test]
fn typing_is_only_for_members_and_only_for_oneself() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let carol = user(&server, "carol");
    assert_error(
        set_typing(&server, &carol, &room, json!({"typing": true})),
        403,
        "M_FORBIDDEN",
    );
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/typing/{}",
            enc(&room),
            enc(&alice.id)
        ),
        Some(&bob.token),
        &json!({"typing": true}),
    );
    assert_error((status, body), 403, "M_FORBIDDEN");
    assert_error(
        set_typing(&server, &bob, &room, json!({"timeout": 5})),
        400,
        "M_BAD_JSON",
    );
}

#[test]
fn presence_goes_online_then_unavailable_then_offline() {
    let server = TestServer::start_with_env(&[
        ("HEARTH_PRESENCE__UNAVAILABLE_AFTER_SECS", "0.4"),
        ("HEARTH_PRESENCE__OFFLINE_AFTER_SECS", "0.8"),
    ]);
    let (alice, bob, _room) = alice_and_bob_in_a_room(&server);
    let mut since = next_batch(&sync(&server, &bob, ""));
    // Alice syncs once and goes away: online, then idle, then gone.
    sync(&server, &alice, "");
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("offline") {
        let body = poll(&server, &bob, &since);
        since = next_batch(&body);
        for event in body["presence"]["events"].as_array().unwrap() {
            if event["sender"] == alice.id {
                let state = event["content"]["presence"].as_str().unwrap().to_owned();
                if seen.last() != Some(&state) {
                    seen.push(state);
                }
            }
        }
        assert!(seen.len() <= 3, "{seen:?}");
    }
    assert_eq!(seen, ["online", "unavailable", "offline"]);
}

#[test]
fn presence_status_can_be_set_and_read_by_room_mates_only() {
    let server = TestServer::start();
    let (alice, bob, _room) = alice_and_bob_in_a_room(&server);
    let stranger = user(&server, "stranger");
    let path = format!("/_matrix/client/v3/presence/{}/status", enc(&alice.id));
    let (status, _) = server.send(
        "PUT",
        &path,
        Some(&alice.token),
        &json!({"presence": "unavailable", "status_msg": "in a meeting"}),
    );
    assert_eq!(status, 200);
    let (status, body) = server.get(&path, Some(&bob.token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["presence"], "unavailable");
    assert_eq!(body["status_msg"], "in a meeting");
    assert!(body["last_active_ago"].is_u64());
    assert_error(server.get(&path, Some(&stranger.token)), 403, "M_FORBIDDEN");
    assert_error(
        server.send(
            "PUT",
            &path,
            Some(&bob.token),
            &json!({"presence": "online"}),
        ),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.send(
            "PUT",
            &path,
            Some(&alice.token),
            &json!({"presence": "asleep"}),
        ),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn a_sync_with_set_presence_offline_leaves_presence_as_it_is() {
    let server = TestServer::start();
    let (alice, bob, _room) = alice_and_bob_in_a_room(&server);
    let path = format!("/_matrix/client/v3/presence/{}/status", enc(&alice.id));
    let (status, body) = server.send(
        "PUT",
        &path,
        Some(&alice.token),
        &json!({"presence": "online", "status_msg": "Online"}),
    );
    assert_eq!(status, 200, "{body}");
    // The spec: with `offline` the client "is not marked as being online"; it is not
    // marked offline either (as Synapse, and as SyTest's helpers expect).
    sync(&server, &alice, "set_presence=offline");
    let (status, body) = server.get(&path, Some(&bob.token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["presence"], "online");
}

#[test]
fn presence_can_be_turned_off() {
    let server = TestServer::start_with_env(&[("HEARTH_PRESENCE__ENABLED", "false")]);
    let (alice, bob, _room) = alice_and_bob_in_a_room(&server);
    sync(&server, &alice, "");
    let body = sync(&server, &bob, "");
    assert_eq!(body["presence"]["events"], json!([]));
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/presence/{}/status", enc(&alice.id)),
        Some(&bob.token),
    );
    assert_eq!((status, &body["presence"]), (200, &json!("offline")));
}

fn receipt(
    server: &TestServer,
    user: &User,
    room: &str,
    kind: &str,
    event: &str,
    body: Value,
) -> (u16, Value) {
    server.post(
        &format!(
            "/_matrix/client/v3/rooms/{}/receipt/{kind}/{}",
            enc(room),
            enc(event)
        ),
        Some(&user.token),
        &body,
    )
}

fn receipts_of(body: &Value, room: &str) -> Value {
    ephemeral(body, room)
        .into_iter()
        .find(|e| e["type"] == "m.receipt")
        .map(|e| e["content"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn private_receipts_stay_private_and_public_ones_are_shared() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let first = send_text(&server, &alice, &room, "t1", "one");
    let alice_since = next_batch(&sync(&server, &alice, ""));
    assert_eq!(
        receipt(&server, &bob, &room, "m.read.private", &first, json!({})).0,
        200
    );
    // Bob sees his own private receipt; Alice does not.
    let mine = receipts_of(&sync(&server, &bob, ""), &room);
    assert!(
        mine[&first]["m.read.private"].get(&bob.id).is_some(),
        "{mine}"
    );
    let theirs = receipts_of(&sync(&server, &alice, ""), &room);
    assert!(
        theirs
            .get(&first)
            .and_then(|r| r.get("m.read.private"))
            .is_none(),
        "{theirs}"
    );

    let second = send_text(&server, &alice, &room, "t2", "two");
    assert_eq!(
        receipt(
            &server,
            &bob,
            &room,
            "m.read",
            &second,
            json!({"thread_id": "main"})
        )
        .0,
        200
    );
    let body = poll(&server, &alice, &alice_since);
    let shared = receipts_of(&body, &room);
    assert_eq!(
        shared[&second]["m.read"][&bob.id]["thread_id"], "main",
        "{body}"
    );
    assert!(shared.get(&first).is_none(), "{shared}");
}

#[test]
fn receipts_and_read_markers_check_their_input() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let event = send_text(&server, &alice, &room, "t1", "hello");
    let carol = user(&server, "carol");
    assert_error(
        receipt(&server, &carol, &room, "m.read", &event, json!({})),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        receipt(&server, &bob, &room, "m.seen", &event, json!({})),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        receipt(&server, &bob, &room, "m.read", "$nope", json!({})),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        receipt(
            &server,
            &bob,
            &room,
            "m.read",
            &event,
            json!({"thread_id": "sideways"}),
        ),
        400,
        "M_INVALID_PARAM",
    );

    let (status, _) = server.post(
        &format!("/_matrix/client/v3/rooms/{}/read_markers", enc(&room)),
        Some(&bob.token),
        &json!({"m.fully_read": event, "m.read": event}),
    );
    assert_eq!(status, 200);
    let (status, marker) = server.get(
        &format!(
            "/_matrix/client/v3/user/{}/rooms/{}/account_data/m.fully_read",
            enc(&bob.id),
            enc(&room)
        ),
        Some(&bob.token),
    );
    assert_eq!((status, &marker), (200, &json!({"event_id": event})));
}

fn unread(body: &Value, room: &str) -> (u64, u64) {
    let counts = &body["rooms"]["join"][room]["unread_notifications"];
    (
        counts["notification_count"].as_u64().unwrap(),
        counts["highlight_count"].as_u64().unwrap(),
    )
}

#[test]
fn unread_counts_follow_messages_mentions_and_the_read_receipt() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    send_text(&server, &alice, &room, "t1", "one");
    let mention =
        json!({"msgtype": "m.text", "body": "bob?", "m.mentions": {"user_ids": [bob.id]}});
    let (status, sent) = try_send(&server, &alice, &room, "t2", &mention);
    assert_eq!(status, 200, "{sent}");
    let mentioned = sent["event_id"].as_str().unwrap().to_owned();
    send_text(&server, &alice, &room, "t3", "three");
    send_text(&server, &bob, &room, "t4", "my own message does not count");
    let body = sync(&server, &bob, "");
    assert_eq!(unread(&body, &room), (3, 1));
    // For Alice only Bob's message is unread, not her own.
    assert_eq!(unread(&sync(&server, &alice, ""), &room), (1, 0));

    let since = next_batch(&body);
    receipt(&server, &bob, &room, "m.read", &mentioned, json!({}));
    let body = poll(&server, &bob, &since);
    assert_eq!(unread(&body, &room), (1, 0));
}

#[test]
fn joining_a_room_brings_the_presence_of_its_members() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    sync(&server, &alice, "");
    let since = next_batch(&sync(&server, &bob, ""));
    join(&server, &bob, &room);
    let body = poll(&server, &bob, &since);
    let presence = body["presence"]["events"].as_array().unwrap();
    assert!(
        presence
            .iter()
            .any(|e| e["sender"] == alice.id && e["content"]["presence"] == "online"),
        "{body}"
    );
}
