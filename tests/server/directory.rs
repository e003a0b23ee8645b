//! Room aliases, canonical alias checks, join by alias, and the published room directory.

use serde_json::{Value, json};

use crate::harness::{PASSWORD, TestServer, assert_error, token};

/// `#` starts a URL fragment, so aliases travel percent-encoded in paths.
fn encode(alias: &str) -> String {
    alias.replace('#', "%23").replace(' ', "%20")
}

fn alias_path(alias: &str) -> String {
    format!("/_matrix/client/v3/directory/room/{}", encode(alias))
}

fn create_room(server: &TestServer, token: &str, body: Value) -> String {
    let (status, body) = server.post("/_matrix/client/v3/createRoom", Some(token), &body);
    assert_eq!(status, 200, "{body}");
    body["room_id"].as_str().unwrap().to_owned()
}

fn join(server: &TestServer, token: &str, room_id: &str) {
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{room_id}/join"),
        Some(token),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
}

fn put_alias(server: &TestServer, token: Option<&str>, alias: &str, room_id: &str) -> (u16, Value) {
    server.send(
        "PUT",
        &alias_path(alias),
        token,
        &json!({ "room_id": room_id }),
    )
}

fn delete_alias(server: &TestServer, token: Option<&str>, alias: &str) -> (u16, Value) {
    server.send("DELETE", &alias_path(alias), token, &json!({}))
}

fn put_state(
    server: &TestServer,
    token: &str,
    room_id: &str,
    event_type: &str,
    content: Value,
) -> (u16, Value) {
    server.send(
        "PUT",
        &format!("/_matrix/client/v3/rooms/{room_id}/state/{event_type}"),
        Some(token),
        &content,
    )
}

fn joined_rooms(server: &TestServer, token: &str) -> usize {
    server.get("/_matrix/client/v3/joined_rooms", Some(token)).1["joined_rooms"]
        .as_array()
        .unwrap()
        .len()
}

fn register_admin(server: &TestServer, secret: &str, name: &str) -> String {
    let path = "/_synapse/admin/v1/register";
    let nonce = server.get(path, None).1["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let mac = hearth::service::shared_secret::mac(secret, &nonce, name, PASSWORD, true);
    let (status, body) = server.post(
        path,
        None,
        &json!({ "nonce": nonce, "username": name, "password": PASSWORD, "admin": true, "mac": mac }),
    );
    assert_eq!(status, 200, "{body}");
    token(&body)
}

#[test]
fn aliases_are_created_resolved_listed_and_deleted() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    let room = create_room(&server, &alice, json!({}));
    let alias = format!("#lounge:{}", server.server_name());

    let (status, body) = put_alias(&server, Some(&alice), &alias, &room);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}));

    // Resolving needs no access token.
    let (status, body) = server.get(&alias_path(&alias), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room_id"], room);
    assert_eq!(body["servers"], json!([server.server_name()]));

    assert_error(
        put_alias(&server, Some(&alice), &alias, &room),
        409,
        "M_UNKNOWN",
    );

    let other = format!("#other:{}", server.server_name());
    assert_eq!(put_alias(&server, Some(&alice), &other, &room).0, 200);
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{room}/aliases"),
        Some(&alice),
    );
    assert_eq!(status, 200, "{body}");
    let mut listed: Vec<String> = serde_json::from_value(body["aliases"].clone()).unwrap();
    listed.sort();
    let mut expected = vec![alias.clone(), other.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    let (status, body) = delete_alias(&server, Some(&alice), &alias);
    assert_eq!(status, 200, "{body}");
    assert_error(server.get(&alias_path(&alias), None), 404, "M_NOT_FOUND");
    assert_error(
        delete_alias(&server, Some(&alice), &alias),
        404,
        "M_NOT_FOUND",
    );
    let (_, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{room}/aliases"),
        Some(&alice),
    );
    assert_eq!(body["aliases"], json!([other]));

    // A deleted alias can be taken again, and mappings survive a restart.
    assert_eq!(put_alias(&server, Some(&alice), &alias, &room).0, 200);
    let mut server = server;
    server.restart();
    assert_eq!(server.get(&alias_path(&alias), None).1["room_id"], room);
}

#[test]
fn creating_an_alias_checks_input_and_membership() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    let bob = token(&server.register("bob"));
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let name = server.server_name();

    for bad in [
        "lounge".to_owned(),
        "#lounge".to_owned(),
        format!("#:{name}"),
        format!("#with space:{name}"),
        "#lounge:other.example".to_owned(),
    ] {
        assert_error(
            put_alias(&server, Some(&alice), &bad, &room),
            400,
            "M_INVALID_PARAM",
        );
    }
    let alias = format!("#lounge:{name}");
    assert_error(
        server.send("PUT", &alias_path(&alias), Some(&alice), &json!({})),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        put_alias(&server, Some(&alice), &alias, "not-a-room"),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        put_alias(&server, Some(&alice), &alias, &format!("!unknown:{name}")),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        put_alias(&server, None, &alias, &room),
        401,
        "M_MISSING_TOKEN",
    );
    // Only joined members may point an alias at a room.
    assert_error(
        put_alias(&server, Some(&bob), &alias, &room),
        403,
        "M_FORBIDDEN",
    );
    assert_error(server.get(&alias_path(&alias), None), 404, "M_NOT_FOUND");
    join(&server, &bob, &room);
    assert_eq!(put_alias(&server, Some(&bob), &alias, &room).0, 200);
}

#[test]
fn resolving_an_alias_reports_bad_and_unknown_aliases() {
    let server = TestServer::start();
    assert_error(
        server.get(&alias_path("nohash"), None),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.get(&alias_path("#nocolon"), None),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.get(
            &alias_path(&format!("#nobody:{}", server.server_name())),
            None,
        ),
        404,
        "M_NOT_FOUND",
    );
    // Other servers' aliases are asked of their server, which cannot be reached here.
    let body = assert_error(
        server.get(&alias_path("#room:other.example"), None),
        502,
        "M_UNKNOWN",
    );
    assert!(
        body["error"].as_str().unwrap().contains("other.example"),
        "{body}"
    );
}

#[test]
fn deleting_an_alias_needs_its_creator_power_or_admin() {
    let secret = "directory-secret";
    let server = TestServer::start_with_env(&[("HEARTH_REGISTRATION__SHARED_SECRET", secret)]);
    let alice = token(&server.register("alice"));
    let bob = token(&server.register("bob"));
    let carol = token(&server.register("carol"));
    let admin = register_admin(&server, secret, "root");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    join(&server, &carol, &room);
    let name = server.server_name();
    let by_bob = format!("#bobs:{name}");
    let by_alice = format!("#alices:{name}");
    assert_eq!(put_alias(&server, Some(&bob), &by_bob, &room).0, 200);
    assert_eq!(put_alias(&server, Some(&alice), &by_alice, &room).0, 200);

    assert_error(delete_alias(&server, None, &by_bob), 401, "M_MISSING_TOKEN");
    assert_error(
        delete_alias(&server, Some(&bob), "bad"),
        400,
        "M_INVALID_PARAM",
    );
    // Carol is a member without the power to change the canonical alias.
    assert_error(
        delete_alias(&server, Some(&carol), &by_bob),
        403,
        "M_FORBIDDEN",
    );
    // Bob made his alias but has no power over Alice's.
    assert_error(
        delete_alias(&server, Some(&bob), &by_alice),
        403,
        "M_FORBIDDEN",
    );
    assert_eq!(delete_alias(&server, Some(&bob), &by_bob).0, 200);
    // Alice has the power; the admin needs neither power nor membership.
    assert_eq!(put_alias(&server, Some(&bob), &by_bob, &room).0, 200);
    assert_eq!(delete_alias(&server, Some(&alice), &by_bob).0, 200);
    assert_eq!(delete_alias(&server, Some(&admin), &by_alice).0, 200);

    // Someone who left the room keeps no power over aliases they did not make.
    assert_eq!(put_alias(&server, Some(&bob), &by_bob, &room).0, 200);
    let (status, _) = server.post(
        &format!("/_matrix/client/v3/rooms/{room}/leave"),
        Some(&alice),
        &json!({}),
    );
    assert_eq!(status, 200);
    assert_error(
        delete_alias(&server, Some(&alice), &by_bob),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn deleting_an_alias_drops_it_from_the_canonical_alias_when_allowed() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    let bob = token(&server.register("bob"));
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let name = server.server_name();
    let main = format!("#main:{name}");
    let alt = format!("#alt:{name}");
    let bobs = format!("#bobs:{name}");
    for (who, alias) in [(&alice, &main), (&alice, &alt), (&bob, &bobs)] {
        assert_eq!(put_alias(&server, Some(who), alias, &room).0, 200);
    }
    let (status, body) = put_state(
        &server,
        &alice,
        &room,
        "m.room.canonical_alias",
        json!({ "alias": main, "alt_aliases": [alt, bobs] }),
    );
    assert_eq!(status, 200, "{body}");
    let canonical = || {
        server
            .get(
                &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias"),
                Some(&alice),
            )
            .1
    };

    assert_eq!(delete_alias(&server, Some(&alice), &alt).0, 200);
    assert_eq!(canonical(), json!({ "alias": main, "alt_aliases": [bobs] }));
    assert_eq!(delete_alias(&server, Some(&alice), &main).0, 200);
    assert_eq!(canonical(), json!({ "alt_aliases": [bobs] }));

    // Bob may delete his own alias but not edit the event: the alias goes, the event stays.
    assert_eq!(delete_alias(&server, Some(&bob), &bobs).0, 200);
    assert_error(server.get(&alias_path(&bobs), None), 404, "M_NOT_FOUND");
    assert_eq!(canonical(), json!({ "alt_aliases": [bobs] }));
    // The stale alias, already in the event, does not block other changes.
    assert_eq!(put_alias(&server, Some(&alice), &main, &room).0, 200);
    let (status, body) = put_state(
        &server,
        &alice,
        &room,
        "m.room.canonical_alias",
        json!({ "alias": main, "alt_aliases": [bobs] }),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn room_aliases_are_for_members_or_world_readable_rooms() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    let bob = token(&server.register("bob"));
    let room = create_room(&server, &alice, json!({}));
    let alias = format!("#quiet:{}", server.server_name());
    assert_eq!(put_alias(&server, Some(&alice), &alias, &room).0, 200);
    let path = format!("/_matrix/client/v3/rooms/{room}/aliases");

    assert_error(server.get(&path, None), 401, "M_MISSING_TOKEN");
    assert_error(server.get(&path, Some(&bob)), 403, "M_FORBIDDEN");
    assert_error(
        server.get(
            &format!(
                "/_matrix/client/v3/rooms/!unknown:{}/aliases",
                server.server_name()
            ),
            Some(&bob),
        ),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.get("/_matrix/client/v3/rooms/not-a-room/aliases", Some(&bob)),
        400,
        "M_INVALID_PARAM",
    );
    let (status, _) = put_state(
        &server,
        &alice,
        &room,
        "m.room.history_visibility",
        json!({ "history_visibility": "world_readable" }),
    );
    assert_eq!(status, 200);
    let (status, body) = server.get(&path, Some(&bob));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["aliases"], json!([alias]));
}

#[test]
fn canonical_alias_events_must_name_aliases_of_the_room() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    let room = create_room(&server, &alice, json!({}));
    let elsewhere = create_room(&server, &alice, json!({}));
    let name = server.server_name();
    let ours = format!("#ours:{name}");
    let theirs = format!("#theirs:{name}");
    assert_eq!(put_alias(&server, Some(&alice), &ours, &room).0, 200);
    assert_eq!(put_alias(&server, Some(&alice), &theirs, &elsewhere).0, 200);
    let send =
        |content: Value| put_state(&server, &alice, &room, "m.room.canonical_alias", content);

    for content in [
        json!({ "alias": format!("#missing:{name}") }),
        json!({ "alias": theirs }),
        json!({ "alias": "#remote:other.example" }),
        json!({ "alias": ours, "alt_aliases": [theirs] }),
    ] {
        assert_error(send(content), 400, "M_BAD_ALIAS");
    }
    for content in [
        json!({ "alias": "not an alias" }),
        json!({ "alias": 7 }),
        json!({ "alt_aliases": "#ours" }),
        json!({ "alt_aliases": [1] }),
        json!({ "alt_aliases": ["#nocolon"] }),
    ] {
        assert_error(send(content), 400, "M_INVALID_PARAM");
    }
    let (status, body) = send(json!({ "alias": ours, "alt_aliases": [ours] }));
    assert_eq!(status, 200, "{body}");
    // No alias at all is always allowed.
    assert_eq!(send(json!({})).0, 200);
    assert_eq!(send(json!({ "alias": "" })).0, 200);
}

#[test]
fn create_room_makes_the_alias_canonical_and_publishes() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    let name = server.server_name();
    let alias = format!("#lobby:{name}");
    let room = create_room(
        &server,
        &alice,
        json!({ "room_alias_name": "lobby", "visibility": "public", "name": "Lobby" }),
    );

    assert_eq!(server.get(&alias_path(&alias), None).1["room_id"], room);
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias"),
        Some(&alice),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "alias": alias }));
    // Public visibility implies the public_chat preset.
    let (_, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{room}/state/m.room.join_rules"),
        Some(&alice),
    );
    assert_eq!(body["join_rule"], "public");
    let (_, body) = server.get(
        &format!("/_matrix/client/v3/directory/list/room/{room}"),
        None,
    );
    assert_eq!(body, json!({ "visibility": "public" }));
    let (_, list) = server.get("/_matrix/client/v3/publicRooms", None);
    assert_eq!(list["chunk"][0]["room_id"], room);
    assert_eq!(list["chunk"][0]["canonical_alias"], alias);

    // The alias was only made for this room: its creator did not need to delete it.
    let (_, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{room}/aliases"),
        Some(&alice),
    );
    assert_eq!(body["aliases"], json!([alias]));

    // A private room is not published.
    let private = create_room(&server, &alice, json!({ "room_alias_name": "private" }));
    let (_, body) = server.get(
        &format!("/_matrix/client/v3/directory/list/room/{private}"),
        None,
    );
    assert_eq!(body, json!({ "visibility": "private" }));
}

#[test]
fn create_room_refuses_taken_and_bad_aliases_before_creating_anything() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    create_room(&server, &alice, json!({ "room_alias_name": "lobby" }));
    assert_eq!(joined_rooms(&server, &alice), 1);
    let create = |body: Value| server.post("/_matrix/client/v3/createRoom", Some(&alice), &body);

    assert_error(
        create(json!({ "room_alias_name": "lobby", "visibility": "public" })),
        400,
        "M_ROOM_IN_USE",
    );
    for bad in ["lob:by", "#lobby:example.org", "with space", ""] {
        assert_error(
            create(json!({ "room_alias_name": bad })),
            400,
            "M_INVALID_PARAM",
        );
    }
    let name = server.server_name();
    assert_error(
        create(json!({
            "room_alias_name": "fresh",
            "initial_state": [{
                "type": "m.room.canonical_alias",
                "content": { "alias": format!("#fresh:{name}"), "alt_aliases": [format!("#lobby:{name}")] },
            }],
        })),
        400,
        "M_BAD_ALIAS",
    );
    assert_error(
        create(json!({
            "initial_state": [{ "type": "m.room.canonical_alias", "content": { "alias": "bad" } }],
        })),
        400,
        "M_INVALID_PARAM",
    );
    assert_eq!(joined_rooms(&server, &alice), 1);
    assert_error(
        server.get(&alias_path(&format!("#fresh:{name}")), None),
        404,
        "M_NOT_FOUND",
    );

    // initial_state may name the alias room_alias_name creates.
    let room = create_room(
        &server,
        &alice,
        json!({
            "room_alias_name": "fresh",
            "initial_state": [{
                "type": "m.room.canonical_alias",
                "content": { "alias": format!("#fresh:{name}"), "alt_aliases": [format!("#fresh:{name}")] },
            }],
        }),
    );
    assert_eq!(
        server.get(&alias_path(&format!("#fresh:{name}")), None).1["room_id"],
        room
    );
}

#[test]
fn join_by_alias_resolves_local_aliases() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    let bob = token(&server.register("bob"));
    let room = create_room(
        &server,
        &alice,
        json!({ "room_alias_name": "lobby", "preset": "public_chat" }),
    );
    let path = |target: &str| format!("/_matrix/client/v3/join/{}", encode(target));
    let name = server.server_name();

    let (status, body) = server.post(&path(&format!("#lobby:{name}")), Some(&bob), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room_id"], room);
    assert_eq!(joined_rooms(&server, &bob), 1);

    assert_error(
        server.post(&path(&format!("#nowhere:{name}")), Some(&bob), &json!({})),
        404,
        "M_NOT_FOUND",
    );
    // Another server's alias is asked of that server, which cannot be reached here.
    assert_error(
        server.post(&path("#lobby:other.example"), Some(&bob), &json!({})),
        502,
        "M_UNKNOWN",
    );
    assert_error(
        server.post(&path("#nocolon"), Some(&bob), &json!({})),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.post(&path(&format!("#lobby:{name}")), None, &json!({})),
        401,
        "M_MISSING_TOKEN",
    );
    // The join rules still apply to rooms reached by alias.
    let private = create_room(&server, &alice, json!({ "room_alias_name": "private" }));
    let carol = token(&server.register("carol"));
    assert_error(
        server.post(&path(&format!("#private:{name}")), Some(&carol), &json!({})),
        403,
        "M_FORBIDDEN",
    );
    assert!(private.starts_with('!'));
}

#[test]
fn directory_visibility_needs_power_or_admin() {
    let secret = "directory-secret";
    let server = TestServer::start_with_env(&[("HEARTH_REGISTRATION__SHARED_SECRET", secret)]);
    let alice = token(&server.register("alice"));
    let bob = token(&server.register("bob"));
    let carol = token(&server.register("carol"));
    let admin = register_admin(&server, secret, "root");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    let path = format!("/_matrix/client/v3/directory/list/room/{room}");
    let set = |token: Option<&str>, body: Value| server.send("PUT", &path, token, &body);
    let visibility = || server.get(&path, None).1["visibility"].clone();

    assert_eq!(visibility(), "private");
    assert_error(
        server.get(
            &format!(
                "/_matrix/client/v3/directory/list/room/!unknown:{}",
                server.server_name()
            ),
            None,
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get("/_matrix/client/v3/directory/list/room/nope", None),
        400,
        "M_INVALID_PARAM",
    );

    assert_error(
        set(None, json!({ "visibility": "public" })),
        401,
        "M_MISSING_TOKEN",
    );
    assert_error(
        set(Some(&carol), json!({ "visibility": "public" })),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        set(Some(&bob), json!({ "visibility": "public" })),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        set(Some(&alice), json!({ "visibility": "hidden" })),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.send(
            "PUT",
            &format!(
                "/_matrix/client/v3/directory/list/room/!unknown:{}",
                server.server_name()
            ),
            Some(&alice),
            &json!({ "visibility": "public" }),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_eq!(visibility(), "private");

    // The body's visibility defaults to public.
    let (status, body) = set(Some(&alice), json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}));
    assert_eq!(visibility(), "public");
    assert_eq!(set(Some(&admin), json!({ "visibility": "private" })).0, 200);
    assert_eq!(visibility(), "private");

    // Raising Bob to moderator gives him the power.
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels"),
        Some(&alice),
    );
    assert_eq!(status, 200);
    let mut levels = body;
    let bob_id = server
        .get("/_matrix/client/v3/account/whoami", Some(&bob))
        .1["user_id"]
        .clone();
    levels["users"][bob_id.as_str().unwrap()] = json!(50);
    assert_eq!(
        put_state(&server, &alice, &room, "m.room.power_levels", levels).0,
        200
    );
    assert_eq!(set(Some(&bob), json!({ "visibility": "public" })).0, 200);
    assert_eq!(visibility(), "public");
}

fn page(server: &TestServer, query: &str) -> Value {
    let (status, body) = server.get(&format!("/_matrix/client/v3/publicRooms{query}"), None);
    assert_eq!(status, 200, "{body}");
    body
}

fn ids(body: &Value) -> Vec<String> {
    body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn public_rooms_are_ordered_paginated_and_filtered() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    let bob = token(&server.register("bob"));
    let carol = token(&server.register("carol"));
    let big = create_room(
        &server,
        &alice,
        json!({ "visibility": "public", "name": "Big Hall", "topic": "Everyone meets here",
                "room_alias_name": "hall" }),
    );
    join(&server, &bob, &big);
    join(&server, &carol, &big);
    let medium = create_room(
        &server,
        &alice,
        json!({ "visibility": "public", "name": "Garden", "topic": "Plants and flowers" }),
    );
    join(&server, &bob, &medium);
    let space = create_room(
        &server,
        &alice,
        json!({ "visibility": "public", "name": "A Space",
                "creation_content": { "type": "m.space" } }),
    );
    let small = create_room(&server, &alice, json!({ "visibility": "public" }));
    let hidden = create_room(&server, &alice, json!({ "name": "Big secret" }));
    let (status, _) = put_state(
        &server,
        &alice,
        &small,
        "m.room.history_visibility",
        json!({ "history_visibility": "world_readable" }),
    );
    assert_eq!(status, 200);
    let (status, _) = put_state(
        &server,
        &alice,
        &small,
        "m.room.avatar",
        json!({ "url": "mxc://example.org/avatar" }),
    );
    assert_eq!(status, 200);

    let mut singles = [space.clone(), small.clone()];
    singles.sort();
    let mut all = vec![big.clone(), medium.clone()];
    all.extend(singles.iter().cloned());

    let body = page(&server, "");
    assert_eq!(ids(&body), all);
    assert!(!ids(&body).contains(&hidden));
    assert_eq!(body["total_room_count_estimate"], 4);
    assert!(body.get("next_batch").is_none(), "{body}");
    assert!(body.get("prev_batch").is_none(), "{body}");
    let first = &body["chunk"][0];
    assert_eq!(first["name"], "Big Hall");
    assert_eq!(first["topic"], "Everyone meets here");
    assert_eq!(
        first["canonical_alias"],
        format!("#hall:{}", server.server_name())
    );
    assert_eq!(first["num_joined_members"], 3);
    assert_eq!(first["world_readable"], false);
    assert_eq!(first["guest_can_join"], false);
    assert_eq!(first["join_rule"], "public");
    assert!(first.get("room_type").is_none());
    let small_entry = body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == small.as_str())
        .unwrap();
    assert_eq!(small_entry["world_readable"], true);
    assert_eq!(small_entry["avatar_url"], "mxc://example.org/avatar");
    assert!(small_entry.get("name").is_none());
    let space_entry = body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == space.as_str())
        .unwrap();
    assert_eq!(space_entry["room_type"], "m.space");

    // Forward through pages of one, then back.
    let mut seen = Vec::new();
    let mut query = "?limit=1".to_owned();
    let last = loop {
        let body = page(&server, &query);
        assert_eq!(ids(&body).len(), 1, "{body}");
        assert_eq!(body.get("prev_batch").is_some(), !seen.is_empty(), "{body}");
        seen.extend(ids(&body));
        match body["next_batch"].as_str() {
            Some(next) => query = format!("?limit=1&since={next}"),
            None => break body,
        }
    };
    assert_eq!(seen, all);
    let prev = last["prev_batch"].as_str().unwrap();
    let body = page(&server, &format!("?limit=2&since={prev}"));
    assert_eq!(ids(&body), all[1..3].to_vec());
    let body = page(
        &server,
        &format!("?limit=5&since={}", body["prev_batch"].as_str().unwrap()),
    );
    assert_eq!(ids(&body), all[..1].to_vec());
    assert!(body.get("prev_batch").is_none(), "{body}");
    // A limit of 0 means no limit.
    assert_eq!(ids(&page(&server, "?limit=0")), all);

    // The filtered form needs an access token.
    let search = |filter: Value| {
        let (status, body) = server.post(
            "/_matrix/client/v3/publicRooms",
            Some(&bob),
            &json!({ "filter": filter }),
        );
        assert_eq!(status, 200, "{body}");
        ids(&body)
    };
    assert_eq!(
        search(json!({ "generic_search_term": "FLOWERS" })),
        vec![medium.clone()]
    );
    assert_eq!(
        search(json!({ "generic_search_term": "big hall" })),
        vec![big.clone()]
    );
    assert_eq!(
        search(json!({ "generic_search_term": "#hall" })),
        vec![big.clone()]
    );
    assert_eq!(
        search(json!({ "generic_search_term": &small[1..8] })),
        vec![small.clone()]
    );
    assert_eq!(
        search(json!({ "room_types": ["m.space"] })),
        vec![space.clone()]
    );
    assert_eq!(search(json!({ "room_types": [null] })).len(), 3);
    assert_eq!(search(json!({})), all);
    let (status, body) = server.post(
        "/_matrix/client/v3/publicRooms",
        Some(&bob),
        &json!({ "limit": 2 }),
    );
    assert_eq!(status, 200);
    assert_eq!(ids(&body), all[..2].to_vec());
    let (_, body) = server.post(
        "/_matrix/client/v3/publicRooms",
        Some(&bob),
        &json!({ "limit": 2, "since": body["next_batch"] }),
    );
    assert_eq!(ids(&body), all[2..].to_vec());

    // Unpublished rooms leave the list.
    let (status, _) = server.send(
        "PUT",
        &format!("/_matrix/client/v3/directory/list/room/{big}"),
        Some(&alice),
        &json!({ "visibility": "private" }),
    );
    assert_eq!(status, 200);
    assert_eq!(ids(&page(&server, "")), all[1..].to_vec());
}

#[test]
fn public_rooms_reports_bad_requests() {
    let server = TestServer::start();
    let alice = token(&server.register("alice"));
    create_room(&server, &alice, json!({ "visibility": "public" }));
    let path = "/_matrix/client/v3/publicRooms";

    assert_error(server.post(path, None, &json!({})), 401, "M_MISSING_TOKEN");
    let (status, body) = server.post(path, Some(&alice), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chunk"].as_array().unwrap().len(), 1);

    assert_eq!(
        page(&server, &format!("?server={}", server.server_name()))["chunk"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_error(
        server.get(&format!("{path}?server=other.example"), None),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.post(
            &format!("{path}?server=other.example"),
            Some(&alice),
            &json!({}),
        ),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        server.get(&format!("{path}?server=not%20a%20server"), None),
        400,
        "M_INVALID_PARAM",
    );
    for bad in [
        "?since=garbage",
        "?since=n1_%21%21",
        "?limit=many",
        "?limit=-1",
    ] {
        assert_error(
            server.get(&format!("{path}{bad}"), None),
            400,
            "M_INVALID_PARAM",
        );
    }
    assert_error(
        server.post(path, Some(&alice), &json!({ "since": "x" })),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.post(path, Some(&alice), &json!({ "limit": "ten" })),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        server.post(
            path,
            Some(&alice),
            &json!({ "include_all_networks": true, "third_party_instance_id": "irc" }),
        ),
        400,
        "M_INVALID_PARAM",
    );
    // No bridge publishes rooms under a third-party network here.
    let (status, body) = server.post(
        path,
        Some(&alice),
        &json!({ "third_party_instance_id": "irc" }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chunk"], json!([]));
}
