//! `PUT /rooms/{roomId}/send/{eventType}/{txnId}`: idempotency and input checks.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::harness::{PASSWORD, TestServer, assert_error, token};
use crate::room_support::*;

fn text(body: &str) -> Value {
    json!({ "msgtype": "m.text", "body": body })
}

#[test]
fn retries_of_a_transaction_return_the_first_event() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let first = send_text(&server, &alice, &room, "txn1", "hello");
    for _ in 0..3 {
        // Even a retry whose body differs is the same transaction.
        let (status, body) = try_send(&server, &alice, &room, "txn1", &text("changed"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["event_id"], first.as_str());
    }
    let (status, event) = get_event(&server, &alice, &room, &first);
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["content"]["body"], "hello");
    assert_eq!(event["sender"], alice.id.as_str());
    assert_eq!(event["type"], "m.room.message");
    // The sending device sees its transaction ID.
    assert_eq!(event["unsigned"]["transaction_id"], "txn1");
    assert!(event["unsigned"]["age"].is_u64(), "{event}");

    // A new transaction ID is a new event.
    let second = send_text(&server, &alice, &room, "txn2", "hello");
    assert_ne!(first, second);
}

#[test]
fn concurrent_retries_of_one_transaction_store_one_event() {
    let server = Arc::new(TestServer::start());
    let alice = Arc::new(user(&server, "alice"));
    let room = Arc::new(create_room(&server, &alice, json!({})));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (server, alice, room) = (server.clone(), alice.clone(), room.clone());
            std::thread::spawn(move || {
                let (status, body) = try_send(&server, &alice, &room, "racing", &text("once"));
                assert_eq!(status, 200, "{body}");
                body["event_id"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let ids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    // That only one event was stored is checked on the store itself, in room_store.
    let (status, _) = get_event(&server, &alice, &room, &ids[0]);
    assert_eq!(status, 200);
}

#[test]
fn transaction_ids_are_scoped_to_the_device() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let (status, login) = server.login("alice", PASSWORD);
    assert_eq!(status, 200, "{login}");
    let phone = User {
        id: alice.id.clone(),
        token: token(&login),
        device: login["device_id"].as_str().unwrap().to_owned(),
    };
    assert_ne!(phone.device, alice.device);
    let room = create_room(&server, &alice, json!({}));
    let from_laptop = send_text(&server, &alice, &room, "same", "laptop");
    let from_phone = send_text(&server, &phone, &room, "same", "phone");
    assert_ne!(from_laptop, from_phone);
    // Each device sees only its own transaction ID.
    let (_, seen_by_phone) = get_event(&server, &phone, &room, &from_phone);
    assert_eq!(seen_by_phone["unsigned"]["transaction_id"], "same");
    let (_, laptop_event_seen_by_phone) = get_event(&server, &phone, &room, &from_laptop);
    assert!(
        laptop_event_seen_by_phone["unsigned"]
            .get("transaction_id")
            .is_none(),
        "{laptop_event_seen_by_phone}"
    );
    // Other users never see it.
    let bob = user(&server, "bob");
    invite(&server, &alice, &room, &bob);
    join(&server, &bob, &room);
    let (_, seen_by_bob) = get_event(&server, &bob, &room, &from_laptop);
    assert!(seen_by_bob["unsigned"].get("transaction_id").is_none());
}

/// The spec scopes a transaction to the request path: the same ID in another room or
/// for another event type is a new request, not a retry.
#[test]
fn transaction_ids_are_scoped_to_the_request_path() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room_a = create_room(&server, &alice, json!({}));
    let room_b = create_room(&server, &alice, json!({}));
    let in_a = send_text(&server, &alice, &room_a, "reused", "a");
    let in_b = send_text(&server, &alice, &room_b, "reused", "b");
    assert_ne!(in_a, in_b);
    let (status, event) = get_event(&server, &alice, &room_b, &in_b);
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["room_id"], room_b.as_str());
    assert_eq!(event["content"]["body"], "b");

    let (status, body) = server.send(
        "PUT",
        &send_path(&room_a, "org.example.other", "reused"),
        Some(&alice.token),
        &json!({ "x": 1 }),
    );
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["event_id"], in_a.as_str());
    let (_, other) = get_event(&server, &alice, &room_a, body["event_id"].as_str().unwrap());
    assert_eq!(other["type"], "org.example.other");
    // Retrying each still answers with its own event.
    let (_, retry_b) = try_send(&server, &alice, &room_b, "reused", &text("b"));
    assert_eq!(retry_b["event_id"], in_b.as_str());
    let (_, retry_a) = try_send(&server, &alice, &room_a, "reused", &text("a"));
    assert_eq!(retry_a["event_id"], in_a.as_str());
}

#[test]
fn sends_outside_a_room_are_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let eve = user(&server, "eve");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let body = assert_error(
        try_send(&server, &eve, &room, "t", &text("hi")),
        403,
        "M_FORBIDDEN",
    );
    assert!(!body["error"].as_str().unwrap().is_empty());
    // Invited is not enough either.
    invite(&server, &alice, &room, &eve);
    assert_error(
        try_send(&server, &eve, &room, "t", &text("hi")),
        403,
        "M_FORBIDDEN",
    );
    let missing = format!("!nothere:{}", server.server_name());
    assert_error(
        try_send(&server, &alice, &missing, "t", &text("hi")),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        try_send(&server, &alice, "not-a-room", "t", &text("hi")),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.send(
            "PUT",
            &send_path(&room, "m.room.message", "t"),
            None,
            &text("hi"),
        ),
        401,
        "M_MISSING_TOKEN",
    );
    // A refused send does not use up the transaction ID.
    join(&server, &eve, &room);
    let id = send_text(&server, &eve, &room, "t", "now a member");
    let (_, event) = get_event(&server, &eve, &room, &id);
    assert_eq!(event["content"]["body"], "now a member");
}

#[test]
fn malformed_bodies_are_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let path = send_path(&room, "m.room.message", "bad");
    for body in ["[1, 2]", "\"text\"", "42", "null"] {
        assert_error(
            send_raw(&server, "PUT", &path, &alice.token, body),
            400,
            "M_BAD_JSON",
        );
    }
    for body in ["{", "{\"body\": }", "not json"] {
        assert_error(
            send_raw(&server, "PUT", &path, &alice.token, body),
            400,
            "M_NOT_JSON",
        );
    }
    // Canonical JSON has no floats and no integers beyond 2^53 - 1.
    for content in [
        json!({ "body": "x", "n": 1.5 }),
        json!({ "nested": { "list": [1, 2.25] } }),
        json!({ "big": 9_007_199_254_740_992_u64 }),
        json!({ "small": -9_007_199_254_740_992_i64 }),
    ] {
        assert_error(
            try_send(&server, &alice, &room, "float", &content),
            400,
            "M_BAD_JSON",
        );
    }
    let (status, body) = try_send(
        &server,
        &alice,
        &room,
        "edge",
        &json!({ "big": 9_007_199_254_740_991_u64, "small": -9_007_199_254_740_991_i64 }),
    );
    assert_eq!(status, 200, "{body}");
    // Event types are limited to 255 bytes.
    assert_error(
        server.send(
            "PUT",
            &send_path(&room, &"t".repeat(256), "long"),
            Some(&alice.token),
            &json!({}),
        ),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn events_over_64_kib_are_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let body = assert_error(
        try_send(&server, &alice, &room, "big", &text(&"x".repeat(65_536))),
        413,
        "M_TOO_LARGE",
    );
    assert!(body["error"].as_str().unwrap().contains("65536"), "{body}");
    // The limit counts the whole signed event, so content just under 64 KiB fails too...
    assert_error(
        try_send(&server, &alice, &room, "almost", &text(&"x".repeat(65_400))),
        413,
        "M_TOO_LARGE",
    );
    // ...while a large event comfortably inside the limit is fine.
    let id = send_text(&server, &alice, &room, "fits", &"x".repeat(60_000));
    let (status, event) = get_event(&server, &alice, &room, &id);
    assert_eq!(status, 200);
    assert_eq!(event["content"]["body"].as_str().unwrap().len(), 60_000);
    // Same for state events.
    assert_error(
        put_state(
            &server,
            &alice,
            &room,
            "m.room.topic",
            "",
            &json!({ "topic": "t".repeat(70_000) }),
        ),
        413,
        "M_TOO_LARGE",
    );
}
