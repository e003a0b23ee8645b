//! `GET /notifications` and the outcome of the spec's push rule examples, recorded once
//! per event when it is accepted.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::{
    User, alice_and_bob_in_a_room, create_room, enc, join, read_receipt, send_text, set_power,
    try_send, user,
};

fn notifications(server: &TestServer, user: &User, query: &str) -> Value {
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/notifications{query}"),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn listed(body: &Value) -> Vec<Value> {
    body["notifications"].as_array().unwrap().clone()
}

fn event_ids(body: &Value) -> Vec<String> {
    listed(body)
        .iter()
        .map(|n| n["event"]["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The actions recorded for the event in the user's notifications, `None` if it did not
/// notify them.
fn actions_for(server: &TestServer, user: &User, event_id: &str) -> Option<Value> {
    listed(&notifications(server, user, "?limit=100"))
        .into_iter()
        .find(|n| n["event"]["event_id"] == event_id)
        .map(|n| n["actions"].clone())
}

fn send(server: &TestServer, user: &User, room: &str, txn: &str, content: Value) -> String {
    let (status, body) = try_send(server, user, room, txn, &content);
    assert_eq!(status, 200, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

fn put_rule(server: &TestServer, user: &User, kind: &str, id: &str, body: Value) {
    let (status, answer) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/pushrules/global/{kind}/{}", enc(id)),
        Some(&user.token),
        &body,
    );
    assert_eq!(status, 200, "{answer}");
}

fn unread(server: &TestServer, user: &User, room: &str) -> (u64, u64) {
    let (status, body) = server.get("/_matrix/client/v3/sync", Some(&user.token));
    assert_eq!(status, 200);
    let counts = &body["rooms"]["join"][room]["unread_notifications"];
    (
        counts["notification_count"].as_u64().unwrap(),
        counts["highlight_count"].as_u64().unwrap(),
    )
}

#[test]
fn notifications_are_listed_newest_first_filtered_paged_and_marked_read() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    // Three members: plain messages notify without a sound.
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    join(&server, &bob, &room);
    join(&server, &carol, &room);
    assert_error(
        server.get("/_matrix/client/v3/notifications", None),
        401,
        "M_MISSING_TOKEN",
    );
    let one = send_text(&server, &alice, &room, "t1", "one");
    let mention = send(
        &server,
        &alice,
        &room,
        "t2",
        json!({"msgtype": "m.text", "body": "bob?", "m.mentions": {"user_ids": [bob.id]}}),
    );
    let three = send_text(&server, &alice, &room, "t3", "three");

    let all = notifications(&server, &bob, "");
    assert_eq!(
        event_ids(&all),
        [three.clone(), mention.clone(), one.clone()]
    );
    let first = &listed(&all)[2];
    assert_eq!(first["room_id"], room.as_str());
    assert_eq!(first["read"], false);
    assert_eq!(first["actions"], json!(["notify"]));
    assert_eq!(first["event"]["content"]["body"], "one");
    assert_eq!(first["event"]["sender"], alice.id.as_str());
    assert!(first["ts"].as_u64().unwrap() > 0);
    assert!(first.get("profile_tag").is_some());
    assert_eq!(
        listed(&all)[1]["actions"],
        json!(["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}])
    );
    // Carol's notifications are her own; Alice is not notified of her own messages.
    assert_eq!(event_ids(&notifications(&server, &carol, "")).len(), 3);
    assert!(listed(&notifications(&server, &alice, "")).is_empty());

    let highlights = notifications(&server, &bob, "?only=highlight");
    assert_eq!(event_ids(&highlights), [mention.as_str()]);
    assert_error(
        server.get(
            "/_matrix/client/v3/notifications?only=loud",
            Some(&bob.token),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.get(
            "/_matrix/client/v3/notifications?from=nope",
            Some(&bob.token),
        ),
        400,
        "M_INVALID_PARAM",
    );

    // Paging.
    let page = notifications(&server, &bob, "?limit=2");
    assert_eq!(event_ids(&page), [three.clone(), mention.clone()]);
    let token = page["next_token"].as_str().unwrap().to_owned();
    let rest = notifications(&server, &bob, &format!("?limit=2&from={token}"));
    assert_eq!(event_ids(&rest), [one.as_str()]);
    assert!(rest.get("next_token").is_none(), "{rest}");

    // A read receipt on the mention marks it and everything before it read.
    read_receipt(&server, &bob, &room, &mention);
    let reads: Vec<bool> = listed(&notifications(&server, &bob, ""))
        .iter()
        .map(|n| n["read"].as_bool().unwrap())
        .collect();
    assert_eq!(reads, [false, true, true]);
    assert_eq!(unread(&server, &bob, &room), (1, 0));

    // Recorded with the events: they survive a crash.
    server.kill_9();
    server.restart();
    assert_eq!(event_ids(&notifications(&server, &bob, "")).len(), 3);
    assert_eq!(unread(&server, &bob, &room), (1, 0));
}

#[test]
fn the_spec_push_rule_examples_produce_their_actions() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let group = create_room(&server, &alice, json!({"preset": "public_chat"}));
    join(&server, &bob, &group);
    join(&server, &carol, &group);
    let sound = json!({"set_tweak": "sound", "value": "default"});
    let highlight = json!({"set_tweak": "highlight"});

    // A plain message in a group: notify, no sound.
    let plain = send_text(&server, &alice, &group, "p", "hi all");
    assert_eq!(actions_for(&server, &bob, &plain), Some(json!(["notify"])));

    // A user mention: `.m.rule.is_user_mention`, for Bob only.
    let to_bob = send(
        &server,
        &alice,
        &group,
        "m",
        json!({"msgtype": "m.text", "body": "hey", "m.mentions": {"user_ids": [bob.id]}}),
    );
    assert_eq!(
        actions_for(&server, &bob, &to_bob),
        Some(json!(["notify", sound, highlight]))
    );
    assert_eq!(
        actions_for(&server, &carol, &to_bob),
        Some(json!(["notify"]))
    );

    // A room mention: highlights when the sender has the `room` notification power
    // (`sender_notification_permission`), else it is a plain message.
    let at_room = json!({"msgtype": "m.text", "body": "@room", "m.mentions": {"room": true}});
    let by_creator = send(&server, &alice, &group, "r1", at_room.clone());
    assert_eq!(
        actions_for(&server, &bob, &by_creator),
        Some(json!(["notify", highlight]))
    );
    let by_carol = send(&server, &carol, &group, "r2", at_room.clone());
    assert_eq!(
        actions_for(&server, &bob, &by_carol),
        Some(json!(["notify"]))
    );
    set_power(&server, &alice, &group, &carol.id, 50);
    let by_moderator = send(&server, &carol, &group, "r3", at_room);
    assert_eq!(
        actions_for(&server, &bob, &by_moderator),
        Some(json!(["notify", highlight]))
    );

    // A keyword (a content rule), matched on word boundaries.
    put_rule(
        &server,
        &bob,
        "content",
        "cake",
        json!({"pattern": "cake", "actions": ["notify", {"set_tweak": "highlight"}]}),
    );
    let cake = send_text(&server, &alice, &group, "k1", "Cake is ready");
    assert_eq!(
        actions_for(&server, &bob, &cake),
        Some(json!(["notify", {"set_tweak": "highlight"}]))
    );
    let cakes = send_text(&server, &alice, &group, "k2", "pancakes");
    assert_eq!(actions_for(&server, &bob, &cakes), Some(json!(["notify"])));

    // A muted room (a room rule without actions): nothing for Bob.
    put_rule(&server, &bob, "room", &group, json!({"actions": []}));
    let muted = send_text(&server, &alice, &group, "x1", "muted");
    assert_eq!(actions_for(&server, &bob, &muted), None);
    assert_eq!(
        actions_for(&server, &carol, &muted),
        Some(json!(["notify"]))
    );

    // Notices and edits are suppressed.
    let notice = send(
        &server,
        &alice,
        &group,
        "n",
        json!({"msgtype": "m.notice", "body": "bot"}),
    );
    assert_eq!(actions_for(&server, &carol, &notice), None);

    // A direct message (two members): the one-to-one rule, with a sound.
    let (frank, dave, dm) = frank_and_dave_in_a_room(&server);
    let direct = send_text(&server, &frank, &dm, "d", "psst");
    assert_eq!(
        actions_for(&server, &dave, &direct),
        Some(json!(["notify", sound]))
    );

    // An invite for the user notifies them.
    let erin = user(&server, "erin");
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&dm)),
        Some(&frank.token),
        &json!({"user_id": erin.id}),
    );
    assert_eq!(status, 200, "{body}");
    let invites = listed(&notifications(&server, &erin, ""));
    assert_eq!(invites.len(), 1, "{invites:?}");
    assert_eq!(invites[0]["event"]["type"], "m.room.member");
    assert_eq!(invites[0]["actions"], json!(["notify", sound]));
}

/// Frank's room with Dave joined: two members, as in a direct chat.
fn frank_and_dave_in_a_room(server: &TestServer) -> (User, User, String) {
    let frank = user(server, "frank");
    let dave = user(server, "dave");
    let room = create_room(server, &frank, json!({"preset": "public_chat"}));
    join(server, &dave, &room);
    (frank, dave, room)
}

#[test]
fn a_redaction_withdraws_the_notification_and_rule_changes_recount_unread_events() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let one = send_text(&server, &alice, &room, "t1", "one");
    send_text(&server, &alice, &room, "t2", "two");
    assert_eq!(unread(&server, &bob, &room), (2, 0));
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/r1",
            enc(&room),
            enc(&one)
        ),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(unread(&server, &bob, &room), (1, 0));
    assert_eq!(event_ids(&notifications(&server, &bob, "")).len(), 1);

    // Muting the room applies to what is still unread.
    put_rule(&server, &bob, "room", &room, json!({"actions": []}));
    assert_eq!(unread(&server, &bob, &room), (0, 0));
    assert!(listed(&notifications(&server, &bob, "")).is_empty());
}

fn leave(server: &TestServer, user: &User, room: &str) {
    let (status, body) = server.send(
        "POST",
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(room)),
        Some(&user.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
}

/// Unread counts and `/notifications` of several members, each by its own rules: read from
/// memory while the server runs and from the store after it was killed.
fn assert_everyones(
    server: &TestServer,
    room: &str,
    expected: &[(&User, (u64, u64), usize)],
    when: &str,
) {
    for (user, counts, listed_count) in expected {
        assert_eq!(unread(server, user, room), *counts, "{} {when}", user.id);
        assert_eq!(
            listed(&notifications(server, user, "?limit=100")).len(),
            *listed_count,
            "{} {when}",
            user.id
        );
    }
}

#[test]
fn one_record_per_event_counts_for_the_members_who_were_there_each_by_their_rules() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let dave = user(&server, "dave");
    let eve = user(&server, "eve");
    let room = create_room(&server, &alice, json!({"preset": "public_chat"}));
    for member in [&bob, &carol, &dave] {
        join(&server, member, &room);
    }
    put_rule(&server, &carol, "room", &room, json!({"actions": []}));
    send_text(&server, &alice, &room, "t1", "one");
    let mention = send(
        &server,
        &alice,
        &room,
        "t2",
        json!({"msgtype": "m.text", "body": "dave: look", "m.mentions": {"user_ids": [dave.id]}}),
    );
    assert_everyones(
        &server,
        &room,
        &[(&bob, (2, 0), 2), (&carol, (0, 0), 0), (&dave, (2, 1), 2)],
        "after the first two",
    );
    let dave_listed = listed(&notifications(&server, &dave, "?only=highlight"));
    assert_eq!(dave_listed.len(), 1);
    assert_eq!(dave_listed[0]["event"]["event_id"], mention);

    // Eve joins later: what came before is not hers.
    join(&server, &eve, &room);
    send_text(&server, &alice, &room, "t3", "three");
    // A profile change is a new member event, but not a new join: Bob keeps his count.
    let (status, body) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/profile/{}/displayname", enc(&bob.id)),
        Some(&bob.token),
        &json!({"displayname": "Bobby"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_everyones(
        &server,
        &room,
        &[(&bob, (3, 0), 3), (&eve, (1, 0), 1), (&dave, (3, 1), 3)],
        "after Eve joined",
    );

    // Bob leaves, misses one message, comes back: counts start at his new join.
    leave(&server, &bob, &room);
    send_text(&server, &alice, &room, "t4", "four");
    join(&server, &bob, &room);
    let five = send_text(&server, &alice, &room, "t5", "five");
    // Bob's list still holds the mention's notification, recorded for him alone (the
    // mention gave each member another outcome, so none was shared); "four" is not his.
    let expected = [
        (&bob, (1, 0), 2),
        (&carol, (0, 0), 0),
        (&dave, (5, 1), 5),
        (&eve, (3, 0), 3),
    ];
    assert_everyones(&server, &room, &expected, "after Bob came back");
    server.kill_9();
    server.restart();
    assert_everyones(&server, &room, &expected, "after a restart");

    // A redaction withdraws the room's record for everyone.
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/r1",
            enc(&room),
            enc(&five)
        ),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_everyones(
        &server,
        &room,
        &[(&bob, (0, 0), 1), (&dave, (4, 1), 4), (&eve, (2, 0), 2)],
        "after the redaction",
    );
}
