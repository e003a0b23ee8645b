//! `createRoom` and the state it leaves, read back through the state endpoints.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;

const VERSIONS: [&str; 3] = ["10", "11", "12"];

#[test]
fn create_room_in_each_supported_version() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for version in VERSIONS {
        let room = create_room(&server, &alice, json!({ "room_version": version }));
        let create = state_event(&server, &alice, &room, "m.room.create", "");
        assert_eq!(create["content"]["room_version"], version, "{create}");
        assert_eq!(create["sender"], alice.id.as_str());
        assert_eq!(create["room_id"], room.as_str());
        let event_id = create["event_id"].as_str().unwrap();
        match version {
            // v10 names the creator; v11 dropped the field for the sender.
            "10" => assert_eq!(create["content"]["creator"], alice.id.as_str()),
            _ => assert!(create["content"].get("creator").is_none(), "{create}"),
        }
        if version == "12" {
            // A v12 room ID is the create event's reference hash, so it has no server part.
            assert_eq!(room, format!("!{}", &event_id[1..]));
        } else {
            assert!(
                room.ends_with(&format!(":{}", server.server_name())),
                "{room}"
            );
            assert_ne!(&room[1..], &event_id[1..]);
        }
        // The client format hides the federation fields.
        for hidden in [
            "hashes",
            "signatures",
            "auth_events",
            "prev_events",
            "depth",
        ] {
            assert!(create.get(hidden).is_none(), "{hidden} leaked: {create}");
        }
        assert!(joined_rooms(&server, &alice).contains(&room));
    }
}

#[test]
fn the_default_room_version_is_12() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let (status, create) = get_state(&server, &alice, &room, "m.room.create", "");
    assert_eq!(status, 200);
    assert_eq!(create["room_version"], "12");
    assert!(!room.contains(':'), "{room}");
}

#[test]
fn unsupported_room_versions_are_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for version in ["0", "13", "03", "banana", ""] {
        let body = assert_error(
            try_create_room(&server, &alice, json!({ "room_version": version })),
            400,
            "M_UNSUPPORTED_ROOM_VERSION",
        );
        assert!(body["error"].as_str().unwrap().contains("not supported"));
    }
    assert!(joined_rooms(&server, &alice).is_empty());
}

#[test]
fn create_room_rejects_malformed_requests() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for body in [
        json!({ "preset": "everyone_welcome" }),
        json!({ "invite": ["not a user id"] }),
        json!({ "initial_state": [{ "type": "m.room.member", "state_key": alice.id, "content": { "membership": "join" } }] }),
        json!({ "initial_state": [{ "type": "m.room.create", "content": {} }] }),
        json!({ "initial_state": [{ "type": "m.room.topic", "content": "not an object" }] }),
        json!({ "name": 5 }),
    ] {
        assert_error(try_create_room(&server, &alice, body), 400, "M_BAD_JSON");
    }
    assert_error(
        send_raw(
            &server,
            "POST",
            "/_matrix/client/v3/createRoom",
            &alice.token,
            "{not json",
        ),
        400,
        "M_NOT_JSON",
    );
    assert_error(
        server.post("/_matrix/client/v3/createRoom", None, &json!({})),
        401,
        "M_MISSING_TOKEN",
    );
    assert!(joined_rooms(&server, &alice).is_empty());
}

#[test]
fn presets_set_join_rules_and_guest_access() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    // A public room leaves guest access at its default (forbidden) without an event, as
    // Synapse does (SyTest 15lazy-members lists a public room's state).
    for (preset, join_rule, guest_access) in [
        (Some("public_chat"), "public", None),
        (Some("private_chat"), "invite", Some("can_join")),
        (Some("trusted_private_chat"), "invite", Some("can_join")),
        (None, "invite", Some("can_join")),
    ] {
        for version in VERSIONS {
            let mut body = json!({ "room_version": version });
            if let Some(preset) = preset {
                body["preset"] = json!(preset);
            }
            let room = create_room(&server, &alice, body);
            let (_, rules) = get_state(&server, &alice, &room, "m.room.join_rules", "");
            assert_eq!(rules["join_rule"], join_rule, "{preset:?} v{version}");
            let (status, guests) = get_state(&server, &alice, &room, "m.room.guest_access", "");
            match guest_access {
                Some(value) => assert_eq!(guests["guest_access"], value, "{preset:?} v{version}"),
                None => assert_eq!(status, 404, "{preset:?} v{version}: {guests}"),
            }
            let (_, history) = get_state(&server, &alice, &room, "m.room.history_visibility", "");
            assert_eq!(history["history_visibility"], "shared");
        }
    }
}

#[test]
fn creator_power_depends_on_the_room_version() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for version in VERSIONS {
        let room = create_room(&server, &alice, json!({ "room_version": version }));
        let (_, levels) = get_state(&server, &alice, &room, "m.room.power_levels", "");
        if version == "12" {
            // v12 creators have unlimited power and must not be listed.
            assert!(levels["users"].get(&alice.id).is_none(), "{levels}");
            assert_eq!(levels["events"]["m.room.tombstone"], 150);
        } else {
            assert_eq!(levels["users"][&alice.id], 100, "{levels}");
        }
        // Either way the creator can do admin things.
        let (status, body) = put_state(
            &server,
            &alice,
            &room,
            "m.room.history_visibility",
            "",
            &json!({ "history_visibility": "joined" }),
        );
        assert_eq!(status, 200, "{body}");
    }
}

#[test]
fn trusted_private_chat_gives_invitees_the_creators_power() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    for version in VERSIONS {
        let room = create_room(
            &server,
            &alice,
            json!({
                "room_version": version,
                "preset": "trusted_private_chat",
                "invite": [bob.id],
            }),
        );
        let (_, create) = get_state(&server, &alice, &room, "m.room.create", "");
        let (_, levels) = get_state(&server, &alice, &room, "m.room.power_levels", "");
        if version == "12" {
            assert_eq!(create["additional_creators"], json!([bob.id]), "{create}");
            assert!(levels["users"].get(&bob.id).is_none(), "{levels}");
        } else {
            assert!(create.get("additional_creators").is_none(), "{create}");
            assert_eq!(levels["users"][&bob.id], 100, "{levels}");
            assert_eq!(levels["users"][&alice.id], 100, "{levels}");
        }
        // Bob, once joined, can use that power: invite carol and raise her.
        join(&server, &bob, &room);
        invite(&server, &bob, &room, &carol);
        set_power(&server, &bob, &room, &carol.id, 50);
        let (_, levels) = get_state(&server, &bob, &room, "m.room.power_levels", "");
        assert_eq!(levels["users"][&carol.id], 50);
    }
    // private_chat gives invitees nothing.
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "private_chat", "invite": [bob.id], "room_version": "11" }),
    );
    let (_, levels) = get_state(&server, &alice, &room, "m.room.power_levels", "");
    assert!(levels["users"].get(&bob.id).is_none(), "{levels}");
}

#[test]
fn name_topic_initial_state_overrides_and_creation_content() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for version in VERSIONS {
        let room = create_room(
            &server,
            &alice,
            json!({
                "room_version": version,
                "name": "The Hearth",
                "topic": "Warm chat",
                "creation_content": { "m.federate": false, "type": "org.example.kind" },
                "initial_state": [
                    { "type": "m.room.history_visibility", "content": { "history_visibility": "invited" } },
                    { "type": "org.example.custom", "state_key": "k1", "content": { "x": 1 } },
                ],
                "power_level_content_override": { "events_default": 10, "invite": 50 },
            }),
        );
        let (_, name) = get_state(&server, &alice, &room, "m.room.name", "");
        assert_eq!(name["name"], "The Hearth");
        let (_, topic) = get_state(&server, &alice, &room, "m.room.topic", "");
        assert_eq!(topic["topic"], "Warm chat");
        assert_eq!(topic["m.topic"][0]["body"], "Warm chat");
        let (_, create) = get_state(&server, &alice, &room, "m.room.create", "");
        assert_eq!(create["m.federate"], false, "{create}");
        assert_eq!(create["type"], "org.example.kind", "{create}");
        assert_eq!(create["room_version"], version);
        // initial_state comes after the preset, so it wins.
        let (_, history) = get_state(&server, &alice, &room, "m.room.history_visibility", "");
        assert_eq!(history["history_visibility"], "invited");
        let (status, custom) = get_state(&server, &alice, &room, "org.example.custom", "k1");
        assert_eq!((status, custom), (200, json!({ "x": 1 })));
        let (_, levels) = get_state(&server, &alice, &room, "m.room.power_levels", "");
        assert_eq!(levels["events_default"], 10);
        assert_eq!(levels["invite"], 50);
        // The override merged over the defaults rather than replacing them.
        assert_eq!(levels["ban"], 50);
        assert_eq!(levels["events"]["m.room.name"], 50);
    }
}

#[test]
fn creation_content_cannot_change_the_room_version_or_creator() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(
        &server,
        &alice,
        json!({
            "room_version": "10",
            "creation_content": { "room_version": "11", "creator": "@mallory:elsewhere" },
        }),
    );
    let (_, create) = get_state(&server, &alice, &room, "m.room.create", "");
    assert_eq!(create["room_version"], "10");
    assert_eq!(create["creator"], alice.id.as_str());
}

#[test]
fn invites_at_creation() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    for version in VERSIONS {
        // A new partner each time: a second direct chat with the same person would reuse
        // the first (see the account data tests).
        let bob = user(&server, &format!("bob{version}"));
        let room = create_room(
            &server,
            &alice,
            json!({ "room_version": version, "invite": [bob.id], "is_direct": true }),
        );
        let invite = state_event(&server, &alice, &room, "m.room.member", &bob.id);
        assert_eq!(invite["content"]["membership"], "invite");
        assert_eq!(invite["content"]["is_direct"], true);
        assert_eq!(invite["sender"], alice.id.as_str());
        assert_eq!(invite["state_key"], bob.id.as_str());
        // Invited is not joined.
        assert!(!joined_rooms(&server, &bob).contains(&room));
        join(&server, &bob, &room);
        assert!(joined_rooms(&server, &bob).contains(&room));
    }
    // Without is_direct the invite carries no flag.
    let room = create_room(&server, &alice, json!({ "invite": [bob.id] }));
    let (_, invite) = get_state(&server, &alice, &room, "m.room.member", &bob.id);
    assert!(invite.get("is_direct").is_none(), "{invite}");
}

#[test]
fn invites_at_creation_to_unknown_users_fail_before_any_room_exists() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let nobody = format!("@nobody:{}", server.server_name());
    assert_error(
        try_create_room(&server, &alice, json!({ "invite": [nobody] })),
        404,
        "M_NOT_FOUND",
    );
    assert!(joined_rooms(&server, &alice).is_empty());
    // A user of a server that cannot be reached: the invite goes out over federation
    // after the room exists, and its failure says which server failed.
    let body = assert_error(
        try_create_room(
            &server,
            &alice,
            json!({ "invite": ["@bob:elsewhere.example"] }),
        ),
        502,
        "M_UNKNOWN",
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("elsewhere.example"),
        "{body}"
    );
}

#[test]
fn room_state_reads() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({ "name": "Reads" }));
    let (status, all) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/state", enc(&room)),
        Some(&alice.token),
    );
    assert_eq!(status, 200, "{all}");
    let mut keys: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["room_id"], room.as_str());
            assert!(e["event_id"].is_string() && e["origin_server_ts"].is_u64());
            (
                e["type"].as_str().unwrap().to_owned(),
                e["state_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    keys.sort();
    let expected: Vec<(String, String)> = [
        ("m.room.create", ""),
        ("m.room.guest_access", ""),
        ("m.room.history_visibility", ""),
        ("m.room.join_rules", ""),
        ("m.room.member", alice.id.as_str()),
        ("m.room.name", ""),
        ("m.room.power_levels", ""),
    ]
    .iter()
    .map(|(t, k)| (t.to_string(), k.to_string()))
    .collect();
    assert_eq!(keys, expected);

    // The empty-state-key form of the path, with and without a trailing key.
    let (status, name) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.name", enc(&room)),
        Some(&alice.token),
    );
    assert_eq!((status, name), (200, json!({ "name": "Reads" })));
    let (status, content) = server.get(
        &format!("{}?format=content", state_path(&room, "m.room.name", "")),
        Some(&alice.token),
    );
    assert_eq!((status, content), (200, json!({ "name": "Reads" })));
    let event = state_event(&server, &alice, &room, "m.room.name", "");
    assert_eq!(event["type"], "m.room.name");
    assert_eq!(event["state_key"], "");
    assert_eq!(event["content"]["name"], "Reads");
    // The event endpoint returns the same event.
    let (status, same) = get_event(&server, &alice, &room, event["event_id"].as_str().unwrap());
    assert_eq!(status, 200);
    assert_eq!(same["content"], event["content"]);
    assert_eq!(same["event_id"], event["event_id"]);

    assert_error(
        get_state(&server, &alice, &room, "m.room.topic", ""),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get(
            &format!("{}?format=yaml", state_path(&room, "m.room.name", "")),
            Some(&alice.token),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.get(
            "/_matrix/client/v3/rooms/not-a-room/state",
            Some(&alice.token),
        ),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn state_is_private_to_members() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let eve = user(&server, "eve");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    for path in [
        format!("/_matrix/client/v3/rooms/{}/state", enc(&room)),
        state_path(&room, "m.room.create", ""),
        format!("/_matrix/client/v3/rooms/{}/members", enc(&room)),
        format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
    ] {
        assert_error(server.get(&path, Some(&eve.token)), 403, "M_FORBIDDEN");
    }
    // A room that does not exist answers the same, revealing nothing.
    let missing = format!("!nothere:{}", server.server_name());
    assert_error(
        server.get(
            &format!("/_matrix/client/v3/rooms/{}/state", enc(&missing)),
            Some(&eve.token),
        ),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn state_changes_need_power_and_are_readable_back() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "room_version": "11" }),
    );
    join(&server, &bob, &room);
    let (status, body) = put_state(
        &server,
        &alice,
        &room,
        "m.room.topic",
        "",
        &json!({ "topic": "one" }),
    );
    assert_eq!(status, 200, "{body}");
    let topic_id = body["event_id"].as_str().unwrap().to_owned();
    let event = state_event(&server, &bob, &room, "m.room.topic", "");
    assert_eq!(event["event_id"], topic_id.as_str());

    // Bob (power 0) may not change what needs 50.
    for (event_type, content) in [
        ("m.room.topic", json!({ "topic": "two" })),
        ("m.room.name", json!({ "name": "mine" })),
        (
            "m.room.power_levels",
            json!({ "users": { bob.id.clone(): 100 } }),
        ),
        ("m.room.join_rules", json!({ "join_rule": "invite" })),
    ] {
        let body = assert_error(
            put_state(&server, &bob, &room, event_type, "", &content),
            403,
            "M_FORBIDDEN",
        );
        assert!(!body["error"].as_str().unwrap().is_empty(), "{body}");
    }
    let (_, topic) = get_state(&server, &bob, &room, "m.room.topic", "");
    assert_eq!(topic["topic"], "one");

    // The create event cannot be replaced; non-object and float content are bad JSON.
    assert_error(
        put_state(&server, &alice, &room, "m.room.create", "", &json!({})),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        put_state(&server, &alice, &room, "m.room.topic", "", &json!(["a"])),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        put_state(
            &server,
            &alice,
            &room,
            "m.room.topic",
            "",
            &json!({ "topic": 1.5 }),
        ),
        400,
        "M_BAD_JSON",
    );
    // A state key longer than 255 bytes is refused.
    assert_error(
        put_state(
            &server,
            &alice,
            &room,
            "org.example",
            &"k".repeat(256),
            &json!({}),
        ),
        400,
        "M_INVALID_PARAM",
    );
    let (_, again) = get_state(&server, &alice, &room, "m.room.topic", "");
    assert_eq!(again, json!({ "topic": "one" }));
}

/// Every room version's ID works in every room path.
#[test]
fn room_ids_of_every_version_round_trip_through_paths() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    for version in VERSIONS {
        let room = create_room(&server, &alice, json!({ "room_version": version }));
        let event_id = send_text(&server, &alice, &room, &format!("t{version}"), "hi");
        let (status, event): (u16, Value) = get_event(&server, &alice, &room, &event_id);
        assert_eq!(status, 200, "{event}");
        assert_eq!(event["room_id"], room.as_str());
    }
}

#[test]
fn refused_creations_leave_no_half_built_room() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bad_requests = [
        json!({ "room_version": "12", "power_level_content_override": { "users": { alice.id.clone(): 100 } } }),
        json!({ "invite": [alice.id] }),
        json!({ "room_version": "10", "power_level_content_override": { "ban": "50" } }),
        json!({ "initial_state": [{ "type": "m.room.topic", "content": { "topic": "x", "weight": 1.5 } }] }),
    ];
    for body in bad_requests {
        let (status, response) = try_create_room(&server, &alice, body.clone());
        assert_eq!(status, 400, "{body} -> {response}");
        assert!(
            response["errcode"].as_str().unwrap().starts_with("M_"),
            "{response}"
        );
    }
    assert!(joined_rooms(&server, &alice).is_empty());
}

#[test]
fn identical_room_creations_at_once_make_distinct_rooms() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let body = json!({"preset": "private_chat"});
    // A v12 room ID is the hash of its create event; requests racing within one
    // millisecond must still each get a room of their own.
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| create_room(&server, &alice, body.clone())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}
