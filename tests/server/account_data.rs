//! Account data, room tags and direct chats (`m.direct`).

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::{User, create_room, enc, join, user};

fn global(user: &str, data_type: &str) -> String {
    format!(
        "/_matrix/client/v3/user/{}/account_data/{data_type}",
        enc(user)
    )
}

fn in_room(user: &str, room: &str, data_type: &str) -> String {
    format!(
        "/_matrix/client/v3/user/{}/rooms/{}/account_data/{data_type}",
        enc(user),
        enc(room)
    )
}

fn tags(user: &str, room: &str) -> String {
    format!(
        "/_matrix/client/v3/user/{}/rooms/{}/tags",
        enc(user),
        enc(room)
    )
}

fn tag(user: &str, room: &str, tag: &str) -> String {
    format!("{}/{tag}", tags(user, room))
}

fn leave(server: &TestServer, user: &User, room: &str) {
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{}/leave", enc(room)),
        Some(&user.token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
}

fn put(server: &TestServer, user: &User, path: &str, body: Value) -> (u16, Value) {
    server.send("PUT", path, Some(&user.token), &body)
}

fn get_ok(server: &TestServer, user: &User, path: &str) -> Value {
    let (status, body) = server.get(path, Some(&user.token));
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn direct_chat(server: &TestServer, creator: &User, invitee: &User) -> String {
    create_room(
        server,
        creator,
        json!({ "is_direct": true, "invite": [invitee.id], "preset": "trusted_private_chat" }),
    )
}

#[test]
fn global_account_data_is_stored_replaced_and_missing_types_are_404() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let path = global(&alice.id, "org.example.config");
    assert_error(server.get(&path, Some(&alice.token)), 404, "M_NOT_FOUND");
    let (status, body) = put(
        &server,
        &alice,
        &path,
        json!({ "theme": "dark", "n": [1, 2] }),
    );
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(
        get_ok(&server, &alice, &path),
        json!({ "theme": "dark", "n": [1, 2] })
    );
    // A write replaces the whole content; nothing is merged.
    put(&server, &alice, &path, json!({ "size": 3 }));
    assert_eq!(get_ok(&server, &alice, &path), json!({ "size": 3 }));
    assert_error(
        server.get(&global(&alice.id, "org.example.other"), Some(&alice.token)),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn room_account_data_is_kept_apart_from_global_data_and_other_rooms() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let other_room = create_room(&server, &alice, json!({}));
    let path = in_room(&alice.id, &room, "org.example.room");
    assert_error(server.get(&path, Some(&alice.token)), 404, "M_NOT_FOUND");
    assert_eq!(
        put(&server, &alice, &path, json!({ "pinned": true })).0,
        200
    );
    assert_eq!(get_ok(&server, &alice, &path), json!({ "pinned": true }));
    // No fallback from room to global data or between rooms, in either direction.
    assert_error(
        server.get(&global(&alice.id, "org.example.room"), Some(&alice.token)),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get(
            &in_room(&alice.id, &other_room, "org.example.room"),
            Some(&alice.token),
        ),
        404,
        "M_NOT_FOUND",
    );
    put(
        &server,
        &alice,
        &global(&alice.id, "org.example.room"),
        json!({ "global": 1 }),
    );
    assert_eq!(get_ok(&server, &alice, &path), json!({ "pinned": true }));
}

#[test]
fn other_users_account_data_and_tags_are_refused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let mallory = user(&server, "mallory");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &mallory, &room);
    put(
        &server,
        &alice,
        &global(&alice.id, "org.example.secret"),
        json!({ "k": 1 }),
    );
    put(&server, &alice, &tag(&alice.id, &room, "u.work"), json!({}));

    let attempts = [
        ("GET", global(&alice.id, "org.example.secret")),
        ("PUT", global(&alice.id, "org.example.secret")),
        ("GET", in_room(&alice.id, &room, "m.tag")),
        ("PUT", in_room(&alice.id, &room, "m.tag")),
        ("GET", tags(&alice.id, &room)),
        ("PUT", tag(&alice.id, &room, "u.evil")),
        ("DELETE", tag(&alice.id, &room, "u.work")),
    ];
    for (method, path) in &attempts {
        assert_error(
            server.send(method, path, Some(&mallory.token), &json!({ "k": 2 })),
            403,
            "M_FORBIDDEN",
        );
    }
    assert_eq!(
        get_ok(&server, &alice, &global(&alice.id, "org.example.secret")),
        json!({ "k": 1 })
    );
    assert_eq!(
        get_ok(&server, &alice, &tags(&alice.id, &room)),
        json!({ "tags": { "u.work": {} } })
    );
    // Without a token the request is refused before anything else.
    assert_error(
        server.get(&global(&alice.id, "org.example.secret"), None),
        401,
        "M_MISSING_TOKEN",
    );
}

#[test]
fn server_managed_types_cannot_be_written_but_their_absence_reads_as_404() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    for data_type in ["m.fully_read", "m.push_rules"] {
        // The spec's answer for types the server manages is 405 with M_BAD_JSON.
        assert_error(
            put(&server, &alice, &global(&alice.id, data_type), json!({})),
            405,
            "M_BAD_JSON",
        );
        assert_error(
            put(
                &server,
                &alice,
                &in_room(&alice.id, &room, data_type),
                json!({ "event_id": "$x" }),
            ),
            405,
            "M_BAD_JSON",
        );
        assert_error(
            server.get(&global(&alice.id, data_type), Some(&alice.token)),
            404,
            "M_NOT_FOUND",
        );
    }
}

#[test]
fn room_account_data_needs_a_membership_in_the_room() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({}));
    let data = in_room(&bob.id, &room, "org.example.note");
    for (method, path) in [
        ("GET", data.clone()),
        ("PUT", data.clone()),
        ("GET", tags(&bob.id, &room)),
        ("PUT", tag(&bob.id, &room, "u.x")),
        ("DELETE", tag(&bob.id, &room, "u.x")),
    ] {
        assert_error(
            server.send(method, &path, Some(&bob.token), &json!({})),
            403,
            "M_FORBIDDEN",
        );
    }
    // A room that does not exist answers the same as one the user is not in.
    let unknown = format!("!nosuchroom:{}", server.server_name());
    assert_error(
        put(
            &server,
            &bob,
            &in_room(&bob.id, &unknown, "org.example.note"),
            json!({}),
        ),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.get(
            &in_room(&bob.id, "not-a-room-id", "org.example.note"),
            Some(&bob.token),
        ),
        400,
        "M_INVALID_PARAM",
    );

    // An invite is a membership; so is having left, and the data stays readable.
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
        Some(&alice.token),
        &json!({ "user_id": bob.id }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(put(&server, &bob, &data, json!({ "seen": 1 })).0, 200);
    join(&server, &bob, &room);
    leave(&server, &bob, &room);
    assert_eq!(get_ok(&server, &bob, &data), json!({ "seen": 1 }));
}

#[test]
fn malformed_requests_get_matrix_errors() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let path = global(&alice.id, "org.example.config");
    for path in [
        path.clone(),
        in_room(&alice.id, &room, "org.example.config"),
    ] {
        let response = server
            .client
            .put(server.url(&path))
            .bearer_auth(&alice.token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .unwrap();
        assert_error(crate::harness::into_json(response), 400, "M_NOT_JSON");
        assert_error(
            put(&server, &alice, &path, json!(["an", "array"])),
            400,
            "M_BAD_JSON",
        );
    }
    let long_type = "t".repeat(256);
    assert_error(
        put(&server, &alice, &global(&alice.id, &long_type), json!({})),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        put(
            &server,
            &alice,
            &tag(&alice.id, &room, &long_type),
            json!({}),
        ),
        400,
        "M_INVALID_PARAM",
    );
}

#[test]
fn tags_are_added_listed_and_removed_as_room_account_data() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    assert_eq!(
        get_ok(&server, &alice, &tags(&alice.id, &room)),
        json!({ "tags": {} })
    );
    assert_eq!(
        put(
            &server,
            &alice,
            &tag(&alice.id, &room, "m.favourite"),
            json!({ "order": 0.25 })
        ),
        (200, json!({}))
    );
    put(&server, &alice, &tag(&alice.id, &room, "u.work"), json!({}));
    let expected = json!({ "tags": { "m.favourite": { "order": 0.25 }, "u.work": {} } });
    assert_eq!(get_ok(&server, &alice, &tags(&alice.id, &room)), expected);
    // Tags are the room account data m.tag, so they reach sync like any other.
    assert_eq!(
        get_ok(&server, &alice, &in_room(&alice.id, &room, "m.tag")),
        expected
    );
    // Setting a tag again replaces its content.
    put(
        &server,
        &alice,
        &tag(&alice.id, &room, "m.favourite"),
        json!({ "order": 1 }),
    );
    let (status, body) = server.send(
        "DELETE",
        &tag(&alice.id, &room, "u.work"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(
        get_ok(&server, &alice, &tags(&alice.id, &room)),
        json!({ "tags": { "m.favourite": { "order": 1 } } })
    );
    // Removing a tag that is not there is not an error.
    let (status, _) = server.send(
        "DELETE",
        &tag(&alice.id, &room, "u.never"),
        Some(&alice.token),
        &json!({}),
    );
    assert_eq!(status, 200);

    for bad in [
        json!({ "order": 1.5 }),
        json!({ "order": -0.1 }),
        json!({ "order": "first" }),
    ] {
        assert_error(
            put(&server, &alice, &tag(&alice.id, &room, "u.bad"), bad),
            400,
            "M_BAD_JSON",
        );
    }
    assert_eq!(
        get_ok(&server, &alice, &tags(&alice.id, &room)),
        json!({ "tags": { "m.favourite": { "order": 1 } } })
    );
}

#[test]
fn a_client_written_m_tag_that_is_not_a_tag_map_reads_as_no_tags() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    put(
        &server,
        &alice,
        &in_room(&alice.id, &room, "m.tag"),
        json!({ "tags": "oops" }),
    );
    assert_eq!(
        get_ok(&server, &alice, &tags(&alice.id, &room)),
        json!({ "tags": {} })
    );
    put(
        &server,
        &alice,
        &tag(&alice.id, &room, "u.fixed"),
        json!({}),
    );
    assert_eq!(
        get_ok(&server, &alice, &tags(&alice.id, &room)),
        json!({ "tags": { "u.fixed": {} } })
    );
}

#[test]
fn a_restart_keeps_account_data_and_tags() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    put(
        &server,
        &alice,
        &global(&alice.id, "org.example.a"),
        json!({ "v": 1 }),
    );
    put(
        &server,
        &alice,
        &in_room(&alice.id, &room, "org.example.b"),
        json!({ "v": 2 }),
    );
    put(
        &server,
        &alice,
        &tag(&alice.id, &room, "m.lowpriority"),
        json!({ "order": 0.5 }),
    );
    server.restart();
    assert_eq!(
        get_ok(&server, &alice, &global(&alice.id, "org.example.a")),
        json!({ "v": 1 })
    );
    assert_eq!(
        get_ok(&server, &alice, &in_room(&alice.id, &room, "org.example.b")),
        json!({ "v": 2 })
    );
    assert_eq!(
        get_ok(&server, &alice, &tags(&alice.id, &room)),
        json!({ "tags": { "m.lowpriority": { "order": 0.5 } } })
    );
    // Writes after the restart carry on from the stored stream positions.
    put(
        &server,
        &alice,
        &global(&alice.id, "org.example.a"),
        json!({ "v": 3 }),
    );
    assert_eq!(
        get_ok(&server, &alice, &global(&alice.id, "org.example.a")),
        json!({ "v": 3 })
    );
}

#[test]
fn a_direct_chat_is_recorded_in_both_users_m_direct_and_reused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = direct_chat(&server, &alice, &bob);
    assert_eq!(
        get_ok(&server, &alice, &global(&alice.id, "m.direct")),
        json!({ bob.id.clone(): [room] })
    );
    // Bob's list changes only once he accepts.
    assert_error(
        server.get(&global(&bob.id, "m.direct"), Some(&bob.token)),
        404,
        "M_NOT_FOUND",
    );
    // Asking again while Bob is only invited finds the same room.
    assert_eq!(direct_chat(&server, &alice, &bob), room);
    join(&server, &bob, &room);
    assert_eq!(
        get_ok(&server, &bob, &global(&bob.id, "m.direct")),
        json!({ alice.id.clone(): [room] })
    );
    // And once he has joined.
    assert_eq!(direct_chat(&server, &alice, &bob), room);
    assert_eq!(
        get_ok(&server, &alice, &global(&alice.id, "m.direct")),
        json!({ bob.id.clone(): [room] })
    );
    // A room that is not asked for as direct is always new.
    let plain = create_room(&server, &alice, json!({ "invite": [bob.id] }));
    assert_ne!(plain, room);
    assert_eq!(
        get_ok(&server, &alice, &global(&alice.id, "m.direct")),
        json!({ bob.id.clone(): [room] })
    );
}

#[test]
fn direct_chats_asked_for_at_the_same_time_open_one_room() {
    let server = std::sync::Arc::new(TestServer::start());
    let alice = std::sync::Arc::new(user(&server, "alice"));
    let bob = std::sync::Arc::new(user(&server, "bob"));
    for _ in 0..3 {
        let askers: Vec<_> = (0..4)
            .map(|_| {
                let (server, alice, bob) = (server.clone(), alice.clone(), bob.clone());
                std::thread::spawn(move || direct_chat(&server, &alice, &bob))
            })
            .collect();
        let rooms: std::collections::BTreeSet<String> =
            askers.into_iter().map(|a| a.join().unwrap()).collect();
        assert_eq!(rooms.len(), 1, "{rooms:?}");
        let room = rooms.into_iter().next().unwrap();
        let listed = get_ok(&server, &alice, &global(&alice.id, "m.direct"));
        assert_eq!(
            listed[&bob.id].as_array().unwrap().last().unwrap(),
            &json!(room)
        );
        // Once Bob has left, the next burst opens one new room again.
        join(&server, &bob, &room);
        leave(&server, &bob, &room);
    }
}

#[test]
fn a_direct_chat_the_other_user_left_is_not_reused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let first = direct_chat(&server, &alice, &bob);
    join(&server, &bob, &first);
    leave(&server, &bob, &first);
    let second = direct_chat(&server, &alice, &bob);
    assert_ne!(second, first);
    assert_eq!(
        get_ok(&server, &alice, &global(&alice.id, "m.direct")),
        json!({ bob.id.clone(): [first, second] })
    );
    // Nor one the creator left.
    leave(&server, &alice, &second);
    let third = direct_chat(&server, &alice, &bob);
    assert!(third != first && third != second);
    // Bob joining the newest adds it to his list beside the first.
    join(&server, &bob, &third);
    assert_eq!(
        get_ok(&server, &bob, &global(&bob.id, "m.direct")),
        json!({ alice.id.clone(): [first, third] })
    );
}

#[test]
fn a_direct_room_with_several_invitees_is_listed_under_each_and_never_reused() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let body = json!({ "is_direct": true, "invite": [bob.id, carol.id] });
    let room = create_room(&server, &alice, body.clone());
    assert_eq!(
        get_ok(&server, &alice, &global(&alice.id, "m.direct")),
        json!({ bob.id.clone(): [room], carol.id.clone(): [room] })
    );
    let again = create_room(&server, &alice, body);
    assert_ne!(again, room);
    join(&server, &carol, &room);
    assert_eq!(
        get_ok(&server, &carol, &global(&carol.id, "m.direct")),
        json!({ alice.id.clone(): [room] })
    );
}

#[test]
fn m_direct_keeps_what_the_client_stored_and_plain_invites_leave_it_alone() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let client_entry = json!({ "@someone:elsewhere.example": ["!old:elsewhere.example"] });
    put(
        &server,
        &bob,
        &global(&bob.id, "m.direct"),
        client_entry.clone(),
    );
    let plain = create_room(&server, &alice, json!({ "invite": [bob.id] }));
    join(&server, &bob, &plain);
    assert_eq!(
        get_ok(&server, &bob, &global(&bob.id, "m.direct")),
        client_entry
    );
    let direct = direct_chat(&server, &alice, &bob);
    join(&server, &bob, &direct);
    server.restart();
    assert_eq!(
        get_ok(&server, &bob, &global(&bob.id, "m.direct")),
        json!({
            "@someone:elsewhere.example": ["!old:elsewhere.example"],
            alice.id.clone(): [direct],
        })
    );
    assert_eq!(direct_chat(&server, &alice, &bob), direct);
}
