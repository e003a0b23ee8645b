//! Redaction, knocking, forgetting and room upgrades.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::{self, User, enc, get_event, get_state, join, send_text, user};

/// Creates a room; `moderators` get power 50. For v10/v11 the creator is listed at 100, as
/// the default power levels would have it; v12 creators may not be listed.
fn create_room(
    server: &TestServer,
    creator: &User,
    version: &str,
    preset: &str,
    moderators: &[&User],
) -> String {
    let mut users = serde_json::Map::new();
    if version != "12" {
        users.insert(creator.id.clone(), json!(100));
    }
    for m in moderators {
        users.insert(m.id.clone(), json!(50));
    }
    let (status, body) = server.post(
        "/_matrix/client/v3/createRoom",
        Some(&creator.token),
        &json!({
            "room_version": version,
            "preset": preset,
            "power_level_content_override": { "users": users },
        }),
    );
    assert_eq!(status, 200, "{body}");
    body["room_id"].as_str().unwrap().to_owned()
}

/// The room's `event_type` state with the empty state key.
fn put_state(
    server: &TestServer,
    who: &User,
    room: &str,
    event_type: &str,
    content: Value,
) -> (u16, Value) {
    room_support::put_state(server, who, room, event_type, "", &content)
}

fn state(server: &TestServer, who: &User, room: &str, event_type: &str) -> (u16, Value) {
    get_state(server, who, room, event_type, "")
}

fn redact(
    server: &TestServer,
    who: &User,
    room: &str,
    event: &str,
    txn: &str,
    reason: Option<&str>,
) -> (u16, Value) {
    let body = match reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    server.send(
        "PUT",
        &format!("/_matrix/client/v3/rooms/{room}/redact/{event}/{txn}"),
        Some(&who.token),
        &body,
    )
}

fn redacted_ok(response: (u16, Value)) -> String {
    let (status, body) = response;
    assert_eq!(status, 200, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

#[test]
fn redaction_by_sender_by_moderator_and_refused_without_power() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let dave = user(&server, "dave");
    let room = create_room(&server, &alice, "12", "public_chat", &[&bob]);
    join(&server, &bob, &room);
    join(&server, &carol, &room);

    // Her own event: allowed, with the reason kept on the redaction.
    let own = send_text(&server, &carol, &room, "c1", "oops");
    let redaction = redacted_ok(redact(&server, &carol, &room, &own, "r1", Some("typo")));
    let (status, event) = get_event(&server, &alice, &room, &own);
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["content"], json!({}));
    let because = &event["unsigned"]["redacted_because"];
    assert_eq!(because["event_id"], redaction.as_str());
    assert_eq!(because["type"], "m.room.redaction");
    assert_eq!(because["sender"], carol.id.as_str());
    assert_eq!(because["content"]["reason"], "typo");
    assert_eq!(because["content"]["redacts"], own.as_str());

    // A moderator (power 50, the default redact level) redacts someone else's event.
    let rude = send_text(&server, &carol, &room, "c2", "rude words");
    let by_mod = redacted_ok(redact(&server, &bob, &room, &rude, "b1", None));
    let (_, event) = get_event(&server, &carol, &room, &rude);
    assert_eq!(event["content"], json!({}));
    assert_eq!(
        event["unsigned"]["redacted_because"]["event_id"],
        by_mod.as_str()
    );

    // Without the redact level, others' events are out of reach, by either endpoint.
    let bobs = send_text(&server, &bob, &room, "b2", "moderated");
    let refused = assert_error(
        redact(&server, &carol, &room, &bobs, "c3", None),
        403,
        "M_FORBIDDEN",
    );
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("power level 50"),
        "{refused}"
    );
    assert_error(
        server.send(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.redaction/c4"),
            Some(&carol.token),
            &json!({ "redacts": bobs }),
        ),
        403,
        "M_FORBIDDEN",
    );
    let (_, event) = get_event(&server, &alice, &room, &bobs);
    assert_eq!(event["content"]["body"], "moderated");
    assert!(event["unsigned"].get("redacted_because").is_none());

    // Not a member: refused without learning whether the event exists.
    assert_error(
        redact(&server, &dave, &room, &bobs, "d1", None),
        403,
        "M_FORBIDDEN",
    );
    // Unknown events are not found; an event of another room is a bad request (as in
    // Synapse, SyTest 10redactions) and stays whole.
    assert_error(
        redact(&server, &alice, &room, "$nosuchevent", "a1", None),
        404,
        "M_NOT_FOUND",
    );
    let other = create_room(&server, &alice, "12", "private_chat", &[]);
    let elsewhere = send_text(&server, &alice, &other, "a2", "elsewhere");
    assert_error(
        redact(&server, &alice, &room, &elsewhere, "a3", None),
        400,
        "M_INVALID_PARAM",
    );
    let (_, event) = get_event(&server, &alice, &other, &elsewhere);
    assert_eq!(event["content"]["body"], "elsewhere");
    assert_error(
        redact(&server, &alice, &room, "not-an-event-id", "a4", None),
        400,
        "M_INVALID_PARAM",
    );
    // The create event stays whole, as in Synapse.
    let (_, create) = server.get(
        &format!("/_matrix/client/v3/rooms/{room}/state/m.room.create?format=event"),
        Some(&alice.token),
    );
    let create_id = create["event_id"].as_str().unwrap();
    assert_error(
        redact(&server, &alice, &room, create_id, "a5", None),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn redaction_transactions_are_idempotent() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, "12", "private_chat", &[]);
    let first = send_text(&server, &alice, &room, "m1", "one");
    let second = send_text(&server, &alice, &room, "m2", "two");

    let redaction = redacted_ok(redact(&server, &alice, &room, &first, "t1", None));
    assert_eq!(
        redacted_ok(redact(&server, &alice, &room, &first, "t1", None)),
        redaction,
        "a retransmission returns the first redaction"
    );
    let (_, event) = get_event(&server, &alice, &room, &first);
    assert_eq!(
        event["unsigned"]["redacted_because"]["event_id"],
        redaction.as_str()
    );
    assert_eq!(
        event["unsigned"]["redacted_because"]["unsigned"]["transaction_id"],
        "t1"
    );

    // The same transaction ID on another path is another request.
    let other = redacted_ok(redact(&server, &alice, &room, &second, "t1", None));
    assert_ne!(other, redaction);
    assert_ne!(send_text(&server, &alice, &room, "t1", "three"), redaction);
    // A new transaction ID for an already redacted event makes a new redaction.
    assert_ne!(
        redacted_ok(redact(&server, &alice, &room, &first, "t2", None)),
        redaction
    );
}

#[test]
fn redacted_content_follows_the_room_version() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for version in ["10", "11", "12"] {
        let room = create_room(&server, &alice, version, "private_chat", &[]);
        let message = send_text(&server, &alice, &room, &format!("m{version}"), "secret");
        let (status, topic) = put_state(
            &server,
            &alice,
            &room,
            "m.room.topic",
            json!({ "topic": "secret topic" }),
        );
        assert_eq!(status, 200, "{topic}");
        let topic = topic["event_id"].as_str().unwrap().to_owned();
        let (_, levels) = server.get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels?format=event"),
            Some(&alice.token),
        );
        let levels = levels["event_id"].as_str().unwrap().to_owned();

        for (i, target) in [&message, &topic, &levels].into_iter().enumerate() {
            let redaction = redacted_ok(redact(
                &server,
                &alice,
                &room,
                target,
                &format!("r{version}{i}"),
                None,
            ));
            let (_, event) = get_event(&server, &alice, &room, target);
            let because = &event["unsigned"]["redacted_because"];
            assert_eq!(because["event_id"], redaction.as_str(), "v{version}");
            // v10 names the target at the top level of the redaction, later versions in content.
            if version == "10" {
                assert_eq!(because["redacts"], target.as_str(), "v{version}");
            } else {
                assert_eq!(because["content"]["redacts"], target.as_str(), "v{version}");
            }
        }
        let (_, event) = get_event(&server, &alice, &room, &message);
        assert_eq!(event["content"], json!({}), "v{version}");
        assert_eq!(event["type"], "m.room.message");
        let (_, event) = get_event(&server, &alice, &room, &topic);
        assert_eq!(event["content"], json!({}), "v{version}");
        assert_eq!(event["state_key"], "");

        // Power levels: the v9 algorithm (room v10) drops `invite`; v11 keeps it.
        let (_, event) = get_event(&server, &alice, &room, &levels);
        let content = &event["content"];
        assert!(content.get("ban").is_some(), "v{version}: {content}");
        assert!(
            content.get("notifications").is_none(),
            "v{version}: {content}"
        );
        assert_eq!(
            content.get("invite").is_some(),
            version != "10",
            "v{version}: {content}"
        );
        // The room's current power levels are the redacted copy.
        let (_, current) = state(&server, &alice, &room, "m.room.power_levels");
        assert_eq!(&current, content, "v{version}");
    }
}

#[test]
fn knocking_follows_the_join_rule() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let mallory = user(&server, "mallory");
    let room = create_room(&server, &alice, "12", "private_chat", &[&bob]);
    let knock = |who: &User, target: &str, reason: Option<&str>| {
        let body = match reason {
            Some(reason) => json!({ "reason": reason }),
            None => json!({}),
        };
        server.post(
            &format!("/_matrix/client/v3/knock/{target}"),
            Some(&who.token),
            &body,
        )
    };

    // An invite-only room does not take knocks.
    let refused = assert_error(knock(&carol, &room, None), 403, "M_FORBIDDEN");
    assert!(
        refused["error"].as_str().unwrap().contains("knock"),
        "{refused}"
    );

    let (status, body) = put_state(
        &server,
        &alice,
        &room,
        "m.room.join_rules",
        json!({ "join_rule": "knock" }),
    );
    assert_eq!(status, 200, "{body}");
    join_via_invite(&server, &alice, &bob, &room);
    // Invites need the moderator's level from here on.
    let (_, mut levels) = state(&server, &alice, &room, "m.room.power_levels");
    levels["invite"] = json!(50);
    let (status, body) = put_state(&server, &alice, &room, "m.room.power_levels", levels);
    assert_eq!(status, 200, "{body}");

    let (status, body) = knock(&carol, &room, Some("let me in"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room_id"], room.as_str());
    let (_, member) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{room}/state/m.room.member/{}",
            carol.id
        ),
        Some(&alice.token),
    );
    assert_eq!(member["membership"], "knock");
    assert_eq!(member["reason"], "let me in");
    // Knocking does not let her read the room, nor join uninvited.
    assert_error(
        server.get(
            &format!("/_matrix/client/v3/rooms/{room}/members"),
            Some(&carol.token),
        ),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.post(
            &format!("/_matrix/client/v3/rooms/{room}/join"),
            Some(&carol.token),
            &json!({}),
        ),
        403,
        "M_FORBIDDEN",
    );

    // Leaving retracts the knock; she may knock again.
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{room}/leave"),
        Some(&carol.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, member) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{room}/state/m.room.member/{}",
            carol.id
        ),
        Some(&alice.token),
    );
    assert_eq!(member["membership"], "leave");
    assert_eq!(knock(&carol, &room, None).0, 200);

    // The moderator lets her in; she joins.
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{room}/invite"),
        Some(&bob.token),
        &json!({ "user_id": carol.id }),
    );
    assert_eq!(status, 200, "{body}");
    join(&server, &carol, &room);
    let (_, joined) = server.get("/_matrix/client/v3/joined_rooms", Some(&carol.token));
    assert_eq!(joined["joined_rooms"], json!([room]));

    // A member without the invite level cannot answer a knock; a moderator can refuse it.
    assert_eq!(knock(&mallory, &room, None).0, 200);
    assert_error(
        server.post(
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(&carol.token),
            &json!({ "user_id": mallory.id }),
        ),
        403,
        "M_FORBIDDEN",
    );
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{room}/ban"),
        Some(&bob.token),
        &json!({ "user_id": mallory.id }),
    );
    assert_eq!(status, 200, "{body}");
    assert_error(knock(&mallory, &room, None), 403, "M_FORBIDDEN");
    // Members cannot knock.
    assert_error(knock(&carol, &room, None), 403, "M_FORBIDDEN");

    // knock_restricted also takes knocks.
    let restricted = create_room(&server, &alice, "12", "private_chat", &[]);
    let (status, body) = put_state(
        &server,
        &alice,
        &restricted,
        "m.room.join_rules",
        json!({ "join_rule": "knock_restricted", "allow": [] }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(knock(&carol, &restricted, None).0, 200);

    assert_error(
        knock(
            &carol,
            &format!("%23nothere:{}", server.server_name()),
            None,
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        knock(&carol, &format!("!unknown:{}", server.server_name()), None),
        404,
        "M_NOT_FOUND",
    );
    assert_error(knock(&carol, "not-a-room", None), 400, "M_INVALID_PARAM");
}

fn join_via_invite(server: &TestServer, inviter: &User, who: &User, room: &str) {
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{room}/invite"),
        Some(&inviter.token),
        &json!({ "user_id": who.id }),
    );
    assert_eq!(status, 200, "{body}");
    join(server, who, room);
}

#[test]
fn forgetting_needs_leaving_and_ends_reading() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let room = create_room(&server, &alice, "12", "public_chat", &[]);
    join(&server, &bob, &room);
    let message = send_text(&server, &alice, &room, "m1", "hello");
    let forget = |who: &User, room: &str| {
        server.post(
            &format!("/_matrix/client/v3/rooms/{room}/forget"),
            Some(&who.token),
            &json!({}),
        )
    };

    let still_in = assert_error(forget(&bob, &room), 400, "M_UNKNOWN");
    assert!(
        still_in["error"].as_str().unwrap().contains("leave"),
        "{still_in}"
    );
    assert_error(forget(&carol, &room), 400, "M_UNKNOWN");
    assert_error(
        forget(&carol, &format!("!unknown:{}", server.server_name())),
        400,
        "M_UNKNOWN",
    );

    // Having left, he still reads what he saw, until he forgets the room.
    let (status, _) = server.post(
        &format!("/_matrix/client/v3/rooms/{room}/leave"),
        Some(&bob.token),
        &json!({}),
    );
    assert_eq!(status, 200);
    assert_eq!(get_event(&server, &bob, &room, &message).0, 200);
    assert_eq!(state(&server, &bob, &room, "m.room.create").0, 200);
    assert_eq!(forget(&bob, &room).0, 200);
    assert_eq!(forget(&bob, &room).0, 200, "forgetting twice is fine");
    assert_error(
        get_event(&server, &bob, &room, &message),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        state(&server, &bob, &room, "m.room.create"),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.get(
            &format!("/_matrix/client/v3/rooms/{room}/state"),
            Some(&bob.token),
        ),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.get(
            &format!("/_matrix/client/v3/rooms/{room}/members"),
            Some(&bob.token),
        ),
        403,
        "M_FORBIDDEN",
    );

    // Rejoining brings the room back.
    join(&server, &bob, &room);
    assert_eq!(get_event(&server, &bob, &room, &message).0, 200);

    // The banned can forget too.
    join(&server, &carol, &room);
    let (status, _) = server.post(
        &format!("/_matrix/client/v3/rooms/{room}/ban"),
        Some(&alice.token),
        &json!({ "user_id": carol.id }),
    );
    assert_eq!(status, 200);
    assert_eq!(get_event(&server, &carol, &room, &message).0, 200);
    assert_eq!(forget(&carol, &room).0, 200);
    assert_error(
        get_event(&server, &carol, &room, &message),
        404,
        "M_NOT_FOUND",
    );
}

fn upgrade(server: &TestServer, who: &User, room: &str, body: Value) -> (u16, Value) {
    server.post(
        &format!("/_matrix/client/v3/rooms/{room}/upgrade"),
        Some(&who.token),
        &body,
    )
}

#[test]
fn upgrade_replaces_the_room_and_locks_the_old_one() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let dave = user(&server, "dave");
    for (from, to) in [("11", "12"), ("12", "11"), ("10", "11")] {
        let old = create_room(&server, &alice, from, "public_chat", &[&bob]);
        for who in [&bob, &carol, &dave] {
            join(&server, who, &old);
        }
        for (event_type, content) in [
            ("m.room.name", json!({ "name": "Lounge" })),
            ("m.room.topic", json!({ "topic": "Chat" })),
            ("m.room.avatar", json!({ "url": "mxc://localhost/avatar" })),
            (
                "m.room.encryption",
                json!({ "algorithm": "m.megolm.v1.aes-sha2" }),
            ),
            (
                "m.room.server_acl",
                json!({ "allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": false }),
            ),
            ("m.room.guest_access", json!({ "guest_access": "can_join" })),
            (
                "m.room.history_visibility",
                json!({ "history_visibility": "joined" }),
            ),
        ] {
            let (status, body) = put_state(&server, &alice, &old, event_type, content);
            assert_eq!(status, 200, "{event_type}: {body}");
        }
        let (status, body) = server.post(
            &format!("/_matrix/client/v3/rooms/{old}/ban"),
            Some(&alice.token),
            &json!({ "user_id": carol.id, "reason": "spam" }),
        );
        assert_eq!(status, 200, "{body}");

        let mut request = json!({ "new_version": to });
        if to == "12" {
            request["additional_creators"] = json!([bob.id]);
        }
        let (status, body) = upgrade(&server, &alice, &old, request.clone());
        assert_eq!(status, 200, "{from}->{to}: {body}");
        let new = body["replacement_room"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert_eq!(
            upgrade(&server, &alice, &old, request).1["replacement_room"],
            new.as_str(),
            "a repeated upgrade returns the same room"
        );

        // The new room's create event points back.
        let (status, create) = state(&server, &alice, &new, "m.room.create");
        assert_eq!(status, 200, "{create}");
        assert_eq!(create["room_version"], to);
        assert_eq!(create["predecessor"]["room_id"], old.as_str());
        if to == "12" {
            assert!(create["predecessor"].get("event_id").is_none(), "{create}");
            assert_eq!(create["additional_creators"], json!([bob.id]));
        } else {
            // The predecessor names the old room's last event, its tombstone (SyTest
            // 60version_upgrade checks this, as Synapse does it).
            let (_, old_state) = server.get(
                &format!("/_matrix/client/v3/rooms/{old}/state"),
                Some(&alice.token),
            );
            let tombstone = old_state
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["type"] == "m.room.tombstone")
                .expect("the old room has a tombstone");
            assert_eq!(
                create["predecessor"]["event_id"], tombstone["event_id"],
                "{from}->{to}: {create}"
            );
        }

        // The old room's tombstone points forward.
        let (status, tombstone) = state(&server, &alice, &old, "m.room.tombstone");
        assert_eq!(status, 200, "{tombstone}");
        assert_eq!(tombstone["replacement_room"], new.as_str());
        assert!(tombstone["body"].is_string());

        // State carried over.
        for (event_type, field, value) in [
            ("m.room.name", "name", json!("Lounge")),
            ("m.room.topic", "topic", json!("Chat")),
            ("m.room.avatar", "url", json!("mxc://localhost/avatar")),
            (
                "m.room.encryption",
                "algorithm",
                json!("m.megolm.v1.aes-sha2"),
            ),
            ("m.room.server_acl", "deny", json!(["evil.example"])),
            ("m.room.guest_access", "guest_access", json!("can_join")),
            (
                "m.room.history_visibility",
                "history_visibility",
                json!("joined"),
            ),
            ("m.room.join_rules", "join_rule", json!("public")),
        ] {
            let (status, content) = state(&server, &alice, &new, event_type);
            assert_eq!(status, 200, "{from}->{to} {event_type}: {content}");
            assert_eq!(content[field], value, "{from}->{to} {event_type}");
        }
        let (_, banned) = server.get(
            &format!(
                "/_matrix/client/v3/rooms/{new}/state/m.room.member/{}",
                carol.id
            ),
            Some(&alice.token),
        );
        assert_eq!(banned["membership"], "ban", "{from}->{to}");
        assert_eq!(banned["reason"], "spam");

        let (_, levels) = state(&server, &alice, &new, "m.room.power_levels");
        match to {
            "12" => {
                // Creators are not listed; the tombstone stays above every listed user.
                assert!(levels["users"].get(&alice.id).is_none(), "{levels}");
                assert!(levels["users"].get(&bob.id).is_none(), "{levels}");
                assert_eq!(levels["events"]["m.room.tombstone"], 150, "{levels}");
            }
            _ => {
                assert_eq!(levels["users"][&bob.id], 50, "{levels}");
                assert!(
                    levels["users"][&alice.id].as_i64().unwrap() >= 100,
                    "{levels}"
                );
            }
        }

        // Only the upgrader is in the new room; others join it themselves.
        let (_, joined) = server.get(
            &format!("/_matrix/client/v3/rooms/{new}/joined_members"),
            Some(&alice.token),
        );
        assert_eq!(
            joined["joined"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec![&alice.id]
        );
        join(&server, &dave, &new);

        // The old room is locked for ordinary members.
        let (_, old_levels) = state(&server, &alice, &old, "m.room.power_levels");
        assert_eq!(old_levels["events_default"], 50, "{old_levels}");
        assert_eq!(old_levels["invite"], 50, "{old_levels}");
        assert_error(
            server.send(
                "PUT",
                &format!("/_matrix/client/v3/rooms/{old}/send/m.room.message/late{to}"),
                Some(&dave.token),
                &json!({ "msgtype": "m.text", "body": "anyone?" }),
            ),
            403,
            "M_FORBIDDEN",
        );
        send_text(&server, &dave, &new, &format!("new{from}{to}"), "here");
    }
}

#[test]
fn upgrade_is_refused_without_power_or_with_a_bad_version() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let room = create_room(&server, &alice, "11", "public_chat", &[&bob]);
    join(&server, &bob, &room);

    let refused = assert_error(
        upgrade(&server, &bob, &room, json!({ "new_version": "12" })),
        403,
        "M_FORBIDDEN",
    );
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("m.room.tombstone"),
        "{refused}"
    );
    assert_error(
        upgrade(&server, &carol, &room, json!({ "new_version": "12" })),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        upgrade(&server, &alice, &room, json!({ "new_version": "13" })),
        400,
        "M_UNSUPPORTED_ROOM_VERSION",
    );
    assert_error(
        upgrade(&server, &alice, &room, json!({ "new_version": 12 })),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        upgrade(&server, &alice, &room, json!({})),
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        upgrade(
            &server,
            &alice,
            &room,
            json!({ "new_version": "12", "additional_creators": ["bob"] }),
        ),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        upgrade(
            &server,
            &alice,
            &format!("!unknown:{}", server.server_name()),
            json!({ "new_version": "12" }),
        ),
        404,
        "M_NOT_FOUND",
    );
    // Nothing happened to the room.
    assert_error(
        state(&server, &alice, &room, "m.room.tombstone"),
        404,
        "M_NOT_FOUND",
    );

    // Given the tombstone level, a moderator may upgrade, and keeps the power to copy the
    // room's state into the new one.
    let (_, mut levels) = state(&server, &alice, &room, "m.room.power_levels");
    levels["events"]["m.room.tombstone"] = json!(50);
    let (status, body) = put_state(&server, &alice, &room, "m.room.power_levels", levels);
    assert_eq!(status, 200, "{body}");
    let (status, body) = upgrade(&server, &bob, &room, json!({ "new_version": "11" }));
    assert_eq!(status, 200, "{body}");
    let new = body["replacement_room"].as_str().unwrap();
    let (_, new_levels) = state(&server, &bob, new, "m.room.power_levels");
    assert_eq!(new_levels["users"][&bob.id], 100, "{new_levels}");
    let (_, create) = state(&server, &bob, new, "m.room.create");
    assert!(create.get("additional_creators").is_none(), "{create}");
}

#[test]
fn upgrade_moves_local_aliases_and_the_directory_listing() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let old = create_room(&server, &alice, "11", "public_chat", &[]);
    let alias = format!("#lounge:{}", server.server_name());
    let alias_path = format!("/_matrix/client/v3/directory/room/{}", enc(&alias));
    let (status, body) = server.send(
        "PUT",
        &alias_path,
        Some(&alice.token),
        &json!({ "room_id": old }),
    );
    assert_eq!(status, 200, "{body}");
    let listing = |room: &str| format!("/_matrix/client/v3/directory/list/room/{}", enc(room));
    let (status, body) = server.send(
        "PUT",
        &listing(&old),
        Some(&alice.token),
        &json!({ "visibility": "public" }),
    );
    assert_eq!(status, 200, "{body}");

    let (status, body) = upgrade(&server, &alice, &old, json!({ "new_version": "12" }));
    assert_eq!(status, 200, "{body}");
    let new = body["replacement_room"].as_str().unwrap().to_owned();

    let (status, body) = server.get(&alias_path, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room_id"], new.as_str(), "the alias moved");
    for (room, aliases) in [(&old, json!([])), (&new, json!([alias]))] {
        let (status, body) = server.get(
            &format!("/_matrix/client/v3/rooms/{}/aliases", enc(room)),
            Some(&alice.token),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["aliases"], aliases, "{room}");
    }
    assert_eq!(server.get(&listing(&new), None).1["visibility"], "public");
    assert_eq!(server.get(&listing(&old), None).1["visibility"], "private");
}

#[test]
fn upgrade_carries_the_room_and_its_members_view_of_it_over() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let (status, body) = server.post(
        "/_matrix/client/v3/createRoom",
        Some(&alice.token),
        &json!({
            "room_version": "10",
            "preset": "public_chat",
            "creation_content": { "m.federate": false },
        }),
    );
    assert_eq!(status, 200, "{body}");
    let old = body["room_id"].as_str().unwrap().to_owned();
    join(&server, &bob, &old);
    let alias = format!("#den:{}", server.server_name());
    let (status, body) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
        Some(&alice.token),
        &json!({ "room_id": old }),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = put_state(
        &server,
        &alice,
        &old,
        "m.room.canonical_alias",
        json!({ "alias": alias }),
    );
    assert_eq!(status, 200, "{body}");
    // Bob keeps the room among his direct chats, with a tag.
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/user/{}/account_data/m.direct",
            enc(&bob.id)
        ),
        Some(&bob.token),
        &json!({ &alice.id: [old] }),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/user/{}/rooms/{}/tags/u.work",
            enc(&bob.id),
            enc(&old)
        ),
        Some(&bob.token),
        &json!({ "order": 0.5 }),
    );
    assert_eq!(status, 200, "{body}");

    let (status, body) = upgrade(&server, &alice, &old, json!({ "new_version": "11" }));
    assert_eq!(status, 200, "{body}");
    let new = body["replacement_room"].as_str().unwrap().to_owned();

    // As Synapse: the create event keeps m.federate, the new room has a guest access
    // event (the old one left it at its default), and the old room's canonical alias is
    // cleared while the new room has it.
    let (_, create) = state(&server, &alice, &new, "m.room.create");
    assert_eq!(create["m.federate"], false, "{create}");
    let (status, guests) = state(&server, &alice, &new, "m.room.guest_access");
    assert_eq!(
        (status, &guests["guest_access"]),
        (200, &json!("forbidden"))
    );
    assert_eq!(
        state(&server, &alice, &old, "m.room.canonical_alias").1,
        json!({})
    );
    assert_eq!(
        state(&server, &alice, &new, "m.room.canonical_alias").1["alias"],
        alias.as_str()
    );
    // Bob's view of the old room carries over to the new one.
    let (_, direct) = server.get(
        &format!(
            "/_matrix/client/v3/user/{}/account_data/m.direct",
            enc(&bob.id)
        ),
        Some(&bob.token),
    );
    assert_eq!(direct[&alice.id], json!([old, new]), "{direct}");
    join(&server, &bob, &new);
    let (_, tags) = server.get(
        &format!(
            "/_matrix/client/v3/user/{}/rooms/{}/tags",
            enc(&bob.id),
            enc(&new)
        ),
        Some(&bob.token),
    );
    assert_eq!(tags["tags"]["u.work"]["order"], 0.5, "{tags}");
}
