//! The legacy `GET /events` stream, its room-preview (peeking) form, and
//! `GET /events/{eventId}`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::{
    User, alice_and_bob_in_a_room, create_room, enc, put_state, read_receipt, send_text,
    start_typing, user,
};

fn events(server: &TestServer, user: &User, query: &str) -> (u16, Value) {
    server.get(
        &format!("/_matrix/client/v3/events?{query}"),
        Some(&user.token),
    )
}

/// The stream's current end for the user (an immediate call without `from`).
#[track_caller]
fn stream_end(server: &TestServer, user: &User, query: &str) -> String {
    let (status, body) = events(server, user, &format!("timeout=0{query}"));
    assert_eq!(status, 200, "{body}");
    assert!(body["start"].is_string(), "{body}");
    assert_eq!(
        body["chunk"],
        json!([]),
        "nothing is new at the end: {body}"
    );
    body["end"].as_str().unwrap().to_owned()
}

fn chunk(body: &Value) -> &Vec<Value> {
    body["chunk"].as_array().expect("chunk is a list")
}

fn bodies(body: &Value) -> Vec<String> {
    chunk(body)
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_stream_gives_new_messages_in_order_and_pages_by_limit() {
    let server = TestServer::start();
    let (alice, _bob, room) = alice_and_bob_in_a_room(&server);
    let mut from = stream_end(&server, &alice, "");
    let sent: Vec<String> = (0..7).map(|i| format!("message {i}")).collect();
    for (i, text) in sent.iter().enumerate() {
        send_text(&server, &alice, &room, &format!("t{i}"), text);
    }
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (status, body) = events(&server, &alice, &format!("from={from}&timeout=0&limit=3"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["start"], from.as_str());
        // The limit counts room events; presence and the like come besides.
        let room_events: Vec<&Value> = chunk(&body)
            .iter()
            .filter(|e| e["event_id"].is_string())
            .collect();
        assert!(room_events.len() <= 3, "{body}");
        for event in room_events {
            assert_eq!(event["room_id"], room.as_str(), "{event}");
            assert!(event["event_id"].is_string(), "{event}");
            // Synapse's older format: the sender again as `user_id`, `age` at the top.
            assert_eq!(event["user_id"], alice.id.as_str(), "{event}");
            assert!(event["age"].is_u64(), "{event}");
        }
        from = body["end"].as_str().unwrap().to_owned();
        if bodies(&body).is_empty() {
            break;
        }
        seen.extend(bodies(&body));
    }
    assert_eq!(seen, sent, "every message once, oldest first");
    // The r0 path of old clients answers the same.
    let (status, body) = server.get(
        &format!("/_matrix/client/r0/events?from={from}&timeout=0"),
        Some(&alice.token),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chunk"], json!([]));
}

#[test]
fn a_waiting_call_answers_when_a_message_arrives() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let from = stream_end(&server, &bob, "");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            send_text(&server, &alice, &room, "late", "worth the wait");
        });
        let (status, body) = events(&server, &bob, &format!("from={from}&timeout=20000"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(bodies(&body), ["worth the wait"], "{body}");
    });
}

#[test]
fn typing_receipts_and_account_data_come_with_their_room() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let event_id = send_text(&server, &alice, &room, "t1", "read me");
    let from = stream_end(&server, &bob, "");
    start_typing(&server, &alice, &room, 30_000);
    read_receipt(&server, &alice, &room, &event_id);
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/user/{}/rooms/{}/tags/work",
            enc(&bob.id),
            enc(&room)
        ),
        Some(&bob.token),
        &json!({"order": 0.5}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/user/{}/account_data/my.prefs",
            enc(&bob.id)
        ),
        Some(&bob.token),
        &json!({"colour": "green"}),
    );
    assert_eq!(status, 200, "{body}");

    let (status, body) = events(&server, &bob, &format!("from={from}&timeout=0"));
    assert_eq!(status, 200, "{body}");
    let of_type = |t: &str| chunk(&body).iter().find(|e| e["type"] == t).cloned();
    let typing = of_type("m.typing").expect("a typing event");
    assert_eq!(typing["room_id"], room.as_str());
    assert_eq!(typing["content"]["user_ids"], json!([alice.id]));
    let receipt = of_type("m.receipt").expect("a receipt event");
    assert_eq!(receipt["room_id"], room.as_str());
    assert!(
        receipt["content"][&event_id]["m.read"][&alice.id]["ts"].is_u64(),
        "{receipt}"
    );
    let tag = of_type("m.tag").expect("a tag event");
    assert_eq!(tag["room_id"], room.as_str());
    assert_eq!(tag["content"]["tags"]["work"]["order"], 0.5);
    let prefs = of_type("my.prefs").expect("global account data");
    assert_eq!(prefs["content"], json!({"colour": "green"}));
    assert!(prefs.get("room_id").is_none(), "{prefs}");

    // Alice does not see Bob's account data.
    let (status, body) = events(&server, &alice, &format!("from={from}&timeout=0"));
    assert_eq!(status, 200, "{body}");
    assert!(
        !chunk(&body)
            .iter()
            .any(|e| e["type"] == "m.tag" || e["type"] == "my.prefs"),
        "{body}"
    );
}

#[test]
fn non_members_read_only_world_readable_rooms_by_room_id() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let lurker = user(&server, "lurker");
    let open = create_room(&server, &alice, json!({"preset": "public_chat"}));
    let closed = create_room(&server, &alice, json!({"preset": "public_chat"}));
    let (status, body) = put_state(
        &server,
        &alice,
        &open,
        "m.room.history_visibility",
        "",
        &json!({"history_visibility": "world_readable"}),
    );
    assert_eq!(status, 200, "{body}");
    send_text(&server, &alice, &closed, "c1", "members only");

    assert_error(
        events(
            &server,
            &lurker,
            &format!("room_id={}&timeout=0", enc(&closed)),
        ),
        403,
        "M_FORBIDDEN",
    );
    let from = stream_end(&server, &lurker, &format!("&room_id={}", enc(&open)));
    send_text(&server, &alice, &open, "o1", "for everyone");
    send_text(&server, &alice, &closed, "c2", "still members only");
    let (status, body) = events(
        &server,
        &lurker,
        &format!("room_id={}&from={from}&timeout=0", enc(&open)),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(bodies(&body), ["for everyone"], "{body}");
    assert!(chunk(&body).iter().all(|e| e["room_id"] == open.as_str()));
    // The lurker's own stream (no room) has none of the room's events.
    let (status, body) = events(&server, &lurker, &format!("from={from}&timeout=0"));
    assert_eq!(status, 200, "{body}");
    assert!(bodies(&body).is_empty(), "{body}");
}

#[test]
fn one_event_by_id_only_for_those_who_may_see_it() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let outsider = user(&server, "outsider");
    let event_id = send_text(&server, &alice, &room, "t1", "hello");
    for version in ["v3", "r0"] {
        let (status, body) = server.get(
            &format!("/_matrix/client/{version}/events/{}", enc(&event_id)),
            Some(&bob.token),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["event_id"], event_id.as_str());
        assert_eq!(body["content"]["body"], "hello");
    }
    assert_error(
        server.get(
            &format!("/_matrix/client/v3/events/{}", enc(&event_id)),
            Some(&outsider.token),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get("/_matrix/client/v3/events/%24nonexistent", Some(&bob.token)),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn bad_tokens_and_limits_are_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    assert_error(
        events(&server, &alice, "from=nonsense&timeout=0"),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        events(&server, &alice, "limit=0&timeout=0"),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        events(&server, &alice, "room_id=notaroom&timeout=0"),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn a_sync_from_a_stream_token_loses_no_to_device_message() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let (status, body) = crate::e2ee_support::send_to_device(
        &server,
        &alice,
        "m.test",
        "t1",
        json!({ bob.id.clone(): { bob.device.clone(): {"text": "keep me"} } }),
    );
    assert_eq!(status, 200, "{body}");
    // The stream delivers no to-device messages, so its token acknowledges none.
    let end = stream_end(&server, &bob, "");
    let body = crate::e2ee_support::sync(&server, &bob, Some(&end), 0);
    let texts: Vec<&str> = body["to_device"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["text"].as_str())
        .collect();
    assert_eq!(texts, ["keep me"], "{body}");
}
