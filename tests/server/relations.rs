//! Relations: reactions, edits, references and threads, their bundled aggregations, the
//! `/relations` and `/threads` endpoints, and who may see them.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;
use crate::sync::{sync, timeline};

fn send_event(
    server: &TestServer,
    user: &User,
    room: &str,
    event_type: &str,
    txn: &str,
    content: Value,
) -> (u16, Value) {
    server.send(
        "PUT",
        &send_path(room, event_type, txn),
        Some(&user.token),
        &content,
    )
}

#[track_caller]
fn sent(response: (u16, Value)) -> String {
    assert_eq!(response.0, 200, "{}", response.1);
    response.1["event_id"].as_str().unwrap().to_owned()
}

fn react(
    server: &TestServer,
    user: &User,
    room: &str,
    txn: &str,
    target: &str,
    key: &str,
) -> (u16, Value) {
    send_event(
        server,
        user,
        room,
        "m.reaction",
        txn,
        json!({
            "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}
        }),
    )
}

fn edit(
    server: &TestServer,
    user: &User,
    room: &str,
    txn: &str,
    target: &str,
    text: &str,
) -> (u16, Value) {
    send_event(
        server,
        user,
        room,
        "m.room.message",
        txn,
        json!({
            "msgtype": "m.text",
            "body": format!("* {text}"),
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target}
        }),
    )
}

pub(crate) fn reply_in_thread(
    server: &TestServer,
    user: &User,
    room: &str,
    txn: &str,
    root: &str,
    text: &str,
) -> (u16, Value) {
    send_event(
        server,
        user,
        room,
        "m.room.message",
        txn,
        json!({
            "msgtype": "m.text",
            "body": text,
            "m.relates_to": {"rel_type": "m.thread", "event_id": root}
        }),
    )
}

fn relations(server: &TestServer, user: &User, room: &str, rest: &str) -> (u16, Value) {
    server.get(
        &format!("/_matrix/client/v1/rooms/{}/relations/{rest}", enc(room)),
        Some(&user.token),
    )
}

fn event(server: &TestServer, user: &User, room: &str, event_id: &str) -> Value {
    let (status, body) = get_event(server, user, room, event_id);
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn one_reaction_per_key_until_it_is_redacted() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let message = send_text(&server, &alice, &room, "t1", "react to me");
    let thumbs = sent(react(&server, &bob, &room, "r1", &message, "👍"));
    assert_error(
        react(&server, &bob, &room, "r2", &message, "👍"),
        400,
        "M_DUPLICATE_ANNOTATION",
    );
    // Another key, or another user, is a different reaction.
    sent(react(&server, &bob, &room, "r3", &message, "🎉"));
    sent(react(&server, &alice, &room, "r4", &message, "👍"));

    let (status, page) = relations(
        &server,
        &alice,
        &room,
        &format!("{}/m.annotation", enc(&message)),
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["chunk"].as_array().unwrap().len(), 3);

    // Redacting the reaction takes it back: it no longer counts and may be sent again.
    let (status, _) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/x1",
            enc(&room),
            enc(&thumbs)
        ),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200);
    let (_, page) = relations(
        &server,
        &alice,
        &room,
        &format!("{}/m.annotation/m.reaction", enc(&message)),
    );
    let keys: Vec<(&str, &str)> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["sender"].as_str().unwrap(),
                e["content"]["m.relates_to"]["key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys.len(), 2, "{page}");
    assert!(!keys.contains(&(bob.id.as_str(), "👍")));
    sent(react(&server, &bob, &room, "r5", &message, "👍"));
}

#[test]
fn the_latest_edit_is_bundled_wherever_the_original_is_served() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let original = send_text(&server, &alice, &room, "t1", "I like cake");
    let first_edit = sent(edit(
        &server,
        &alice,
        &room,
        "e1",
        &original,
        "I like chocolate cake",
    ));
    let second_edit = sent(edit(
        &server,
        &alice,
        &room,
        "e2",
        &original,
        "I like all cake",
    ));
    // The spec's "most recent": the later origin_server_ts, and on a tie (two edits in
    // one millisecond) the larger event ID.
    let order = |id: &str| {
        let body = event(&server, &alice, &room, id);
        (body["origin_server_ts"].as_u64().unwrap(), id.to_owned())
    };
    let (latest, latest_text) = if order(&second_edit) > order(&first_edit) {
        (second_edit, "I like all cake")
    } else {
        (first_edit, "I like chocolate cake")
    };
    // Someone else's "edit" is not an edit of Alice's message.
    sent(edit(&server, &bob, &room, "e3", &original, "Bob was here"));

    let body = event(&server, &bob, &room, &original);
    let replace = &body["unsigned"]["m.relations"]["m.replace"];
    assert_eq!(replace["event_id"], latest, "{body}");
    assert_eq!(replace["content"]["m.new_content"]["body"], latest_text);
    // The original's own content is left as it was.
    assert_eq!(body["content"]["body"], "I like cake");

    let (status, page) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=10",
            enc(&room)
        ),
        Some(&bob.token),
    );
    assert_eq!(status, 200);
    let in_page = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == original)
        .unwrap();
    assert_eq!(
        in_page["unsigned"]["m.relations"]["m.replace"]["event_id"],
        latest
    );
    let body = sync(&server, &bob, "");
    let in_sync = timeline(&body, &room)
        .iter()
        .find(|e| e["event_id"] == original)
        .unwrap();
    assert_eq!(
        in_sync["unsigned"]["m.relations"]["m.replace"]["event_id"],
        latest
    );

    // Once the original is redacted, its edits are no longer bundled.
    server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/x1",
            enc(&room),
            enc(&original)
        ),
        Some(&alice.token),
        &json!({}),
    );
    let body = event(&server, &bob, &room, &original);
    assert!(body["unsigned"].get("m.relations").is_none(), "{body}");
}

#[test]
fn threads_are_summarised_listed_and_checked() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let carol = user(&server, "carol");
    join(&server, &carol, &room);
    let root = send_text(&server, &alice, &room, "t1", "thread root");
    let unrelated_root = send_text(&server, &carol, &room, "t2", "another root");
    sent(reply_in_thread(&server, &bob, &room, "r1", &root, "first"));
    sent(reply_in_thread(
        &server, &alice, &room, "r2", &root, "second",
    ));
    let last = sent(reply_in_thread(&server, &bob, &room, "r3", &root, "third"));

    let body = event(&server, &bob, &room, &root);
    let thread = &body["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(thread["count"], 3, "{body}");
    assert_eq!(thread["latest_event"]["event_id"], last);
    assert_eq!(thread["current_user_participated"], true);
    let for_carol = event(&server, &carol, &room, &root);
    assert_eq!(
        for_carol["unsigned"]["m.relations"]["m.thread"]["current_user_participated"],
        false
    );

    // A thread cannot hang off an event that itself relates to another.
    assert_error(
        reply_in_thread(&server, &alice, &room, "r4", &last, "nested"),
        400,
        "M_UNKNOWN",
    );

    sent(reply_in_thread(
        &server,
        &carol,
        &room,
        "r5",
        &unrelated_root,
        "mine",
    ));
    let threads = |user: &User, query: &str| -> Vec<String> {
        let (status, body) = server.get(
            &format!("/_matrix/client/v1/rooms/{}/threads?{query}", enc(&room)),
            Some(&user.token),
        );
        assert_eq!(status, 200, "{body}");
        body["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Most recently active first.
    assert_eq!(threads(&bob, ""), [unrelated_root.clone(), root.clone()]);
    assert_eq!(threads(&bob, "include=participated"), vec![root.clone()]);
    assert_eq!(
        threads(&carol, "include=participated"),
        vec![unrelated_root.clone()]
    );
    let (status, first) = server.get(
        &format!("/_matrix/client/v1/rooms/{}/threads?limit=1", enc(&room)),
        Some(&bob.token),
    );
    assert_eq!(status, 200);
    let next = first["next_batch"].as_str().unwrap();
    let second = threads(&bob, &format!("limit=1&from={next}"));
    assert_eq!(second, vec![root.clone()]);

    let (_, page) = relations(&server, &bob, &room, &format!("{}/m.thread", enc(&root)));
    let bodies: Vec<&str> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["third", "second", "first"]);
}

#[test]
fn relations_paginate_without_repeats_and_references_are_bundled() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let target = send_text(&server, &alice, &room, "t1", "target");
    let mut references = Vec::new();
    for i in 0..5 {
        references.push(sent(send_event(
            &server,
            &bob,
            &room,
            "m.room.message",
            &format!("ref{i}"),
            json!({
                "msgtype": "m.text", "body": format!("ref {i}"),
                "m.relates_to": {"rel_type": "m.reference", "event_id": target}
            }),
        )));
    }
    let body = event(&server, &alice, &room, &target);
    let chunk: Vec<&str> = body["unsigned"]["m.relations"]["m.reference"]["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        chunk,
        references.iter().map(String::as_str).collect::<Vec<_>>()
    );

    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let query = match &from {
            Some(token) => format!("{}?limit=2&dir=f&from={}", enc(&target), enc(token)),
            None => format!("{}?limit=2&dir=f", enc(&target)),
        };
        let (status, page) = relations(&server, &alice, &room, &query);
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["chunk"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned()),
        );
        match page["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, references);
}

#[test]
fn outsiders_learn_nothing_through_relations() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let eve = user(&server, "eve");
    let room = create_room(&server, &alice, json!({"preset": "private_chat"}));
    let message = send_text(&server, &alice, &room, "t1", "secret");
    sent(react(&server, &alice, &room, "r1", &message, "🔒"));
    assert_error(
        relations(&server, &eve, &room, &enc(&message)),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.get(
            &format!("/_matrix/client/v1/rooms/{}/threads", enc(&room)),
            Some(&eve.token),
        ),
        403,
        "M_FORBIDDEN",
    );
    // Members asking about an unknown event get 404, not someone else's relations.
    assert_error(
        relations(&server, &alice, &room, &enc("$nope")),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        relations(
            &server,
            &alice,
            &room,
            &format!("{}?from=garbage", enc(&message)),
        ),
        400,
        "M_INVALID_PARAM",
    );
}

/// A message served once with nothing to bundle is known to have nothing only until a
/// relation is written: each sync after an edit, its redaction, a reaction and a thread
/// reply shows the original as it is then.
#[test]
fn a_message_synced_before_its_relations_gets_them_in_later_syncs() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let root = send_text(&server, &alice, &room, "t1", "hello");
    let relations_in_sync = || {
        let body = sync(
            &server,
            &bob,
            "filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A50%7D%7D%7D",
        );
        let original = timeline(&body, &room)
            .iter()
            .find(|e| e["event_id"] == root)
            .unwrap_or_else(|| panic!("{root} not in {body}"))
            .clone();
        original["unsigned"].get("m.relations").cloned()
    };
    assert_eq!(relations_in_sync(), None);
    // Twice: the second is answered from what the first found.
    assert_eq!(relations_in_sync(), None);

    let edit_id = sent(edit(&server, &alice, &room, "e1", &root, "hello there"));
    let bundle = relations_in_sync().expect("the edit is bundled");
    assert_eq!(bundle["m.replace"]["event_id"], edit_id);

    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/x1",
            enc(&room),
            enc(&edit_id)
        ),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(relations_in_sync(), None);

    // A reaction is not bundled.
    sent(react(&server, &bob, &room, "r1", &root, "👍"));
    assert_eq!(relations_in_sync(), None);

    let reply = sent(reply_in_thread(
        &server, &bob, &room, "t2", &root, "a reply",
    ));
    let bundle = relations_in_sync().expect("the thread is bundled");
    assert_eq!(bundle["m.thread"]["count"], 1);
    assert_eq!(bundle["m.thread"]["latest_event"]["event_id"], reply);
}
