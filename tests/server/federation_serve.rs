//! What a Hearth server serves another server that signs its requests: single events by
//! history visibility, the room endpoints gated on being in the room and on the room's
//! server ACL, alias queries, the published directory and device lists.
//!
//! The other server is a [`TestRemote`]. Nothing can put one of its users into a Hearth
//! room yet (that needs joins over federation), so the answers for a server in the room
//! (state, auth chains, backfill) are not reached from here.

use ruma::CanonicalJsonObject;
use ruma::signatures::{PublicKeyMap, PublicKeySet, Verified};
use serde_json::{Value, json};

use crate::federation_support::{Signing, TestRemote, federating_server};
use crate::harness::{TestServer, assert_error};
use crate::room_support::{User, create_room, enc, put_state, send_text, user};

fn event_path(event_id: &str) -> String {
    format!("/_matrix/federation/v1/event/{}", enc(event_id))
}

fn fed_get(remote: &TestRemote, server: &TestServer, path: &str) -> (u16, Value) {
    remote.request(server, "GET", path, None)
}

fn visibility(value: &str) -> Value {
    json!({
        "type": "m.room.history_visibility",
        "state_key": "",
        "content": { "history_visibility": value },
    })
}

/// A room of Alice's with the given history visibility from the start.
fn room_with_visibility(server: &TestServer, alice: &User, value: &str) -> String {
    create_room(
        server,
        alice,
        json!({ "preset": "public_chat", "initial_state": [visibility(value)] }),
    )
}

fn set_visibility(server: &TestServer, alice: &User, room: &str, value: &str) -> String {
    let (status, body) = put_state(
        server,
        alice,
        room,
        "m.room.history_visibility",
        "",
        &json!({ "history_visibility": value }),
    );
    assert_eq!(status, 200, "{body}");
    body["event_id"].as_str().unwrap().to_owned()
}

fn room_version(server: &TestServer, alice: &User, room: &str) -> String {
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.create/",
            enc(room)
        ),
        Some(&alice.token),
    );
    assert_eq!(status, 200, "{body}");
    body["room_version"].as_str().unwrap_or("1").to_owned()
}

/// The one PDU of a `/event` answer, after checking the transaction around it.
#[track_caller]
fn served_pdu(server: &TestServer, response: (u16, Value)) -> Value {
    let (status, body) = response;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["origin"], server.server_name());
    assert!(body["origin_server_ts"].is_u64(), "{body}");
    let pdus = body["pdus"].as_array().unwrap();
    assert_eq!(pdus.len(), 1, "{body}");
    pdus[0].clone()
}

/// Checks that `pdu` is the event `event_id`, whole, as `server` signed it: its reference
/// hash is the event ID, and its content hash and signature verify.
#[track_caller]
fn assert_whole_event(server: &TestServer, pdu: &Value, event_id: &str, version: &str) {
    assert!(pdu.get("event_id").is_none(), "federation format: {pdu}");
    let rules = ruma::RoomVersionId::try_from(version)
        .unwrap()
        .rules()
        .unwrap();
    let object: CanonicalJsonObject = serde_json::from_value(pdu.clone()).unwrap();
    let hash = ruma::signatures::reference_hash(&object, &rules).unwrap();
    assert_eq!(format!("${hash}"), event_id);
    let (status, published) = server.get("/_matrix/key/v2/server", None);
    assert_eq!(status, 200, "{published}");
    let mut keys = PublicKeySet::new();
    for (id, key) in published["verify_keys"].as_object().unwrap() {
        keys.insert(
            id.clone(),
            ruma::serde::Base64::parse(key["key"].as_str().unwrap()).unwrap(),
        );
    }
    let map = PublicKeyMap::from([(server.server_name(), keys)]);
    let verified = ruma::signatures::verify_event(&map, &object, &rules).unwrap();
    assert_eq!(verified, Verified::All, "content hash and signature");
}

#[test]
fn a_world_readable_rooms_events_are_served_to_any_server_and_others_are_not() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    let open = room_with_visibility(&hearth, &alice, "world_readable");
    let closed = room_with_visibility(&hearth, &alice, "joined");
    let shared = room_with_visibility(&hearth, &alice, "shared");
    let hello = send_text(&hearth, &alice, &open, "t1", "hello, world");
    let secret = send_text(&hearth, &alice, &closed, "t2", "the secret");
    let members_only = send_text(&hearth, &alice, &shared, "t3", "for members");

    let pdu = served_pdu(&hearth, fed_get(&remote, &hearth, &event_path(&hello)));
    assert_eq!(pdu["content"]["body"], "hello, world");
    assert_eq!(pdu["room_id"], open);
    assert_eq!(pdu["sender"], alice.id);
    let version = room_version(&hearth, &alice, &open);
    assert_whole_event(&hearth, &pdu, &hello, &version);

    // A server with no user in the room learns nothing of the others, redacted or not.
    for event_id in [&secret, &members_only] {
        let body = assert_error(
            fed_get(&remote, &hearth, &event_path(event_id)),
            403,
            "M_FORBIDDEN",
        );
        let text = body.to_string();
        assert!(
            !text.contains("secret") && !text.contains("members"),
            "{text}"
        );
    }
}

#[test]
fn visibility_is_the_one_in_force_at_each_event() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    let room = room_with_visibility(&hearth, &alice, "joined");
    let before = send_text(&hearth, &alice, &room, "t1", "before");
    let opened = set_visibility(&hearth, &alice, &room, "world_readable");
    let during = send_text(&hearth, &alice, &room, "t2", "during");
    let closed = set_visibility(&hearth, &alice, &room, "shared");
    let after = send_text(&hearth, &alice, &room, "t3", "after");

    // The room is `shared` now, but what was sent while it was world-readable stays so.
    for visible in [&opened, &during] {
        served_pdu(&hearth, fed_get(&remote, &hearth, &event_path(visible)));
    }
    for hidden in [&before, &closed, &after] {
        assert_error(
            fed_get(&remote, &hearth, &event_path(hidden)),
            403,
            "M_FORBIDDEN",
        );
    }
}

#[test]
fn servers_with_no_user_in_a_room_cannot_read_its_state_or_history() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    // World-readable history still does not make the remote a resident of the room.
    let room = room_with_visibility(&hearth, &alice, "world_readable");
    let event = send_text(&hearth, &alice, &room, "t1", "hello");
    let (r, e) = (enc(&room), enc(&event));
    for path in [
        format!("/_matrix/federation/v1/state/{r}?event_id={e}"),
        format!("/_matrix/federation/v1/state_ids/{r}?event_id={e}"),
        format!("/_matrix/federation/v1/event_auth/{r}/{e}"),
        format!("/_matrix/federation/v1/backfill/{r}?v={e}&limit=10"),
        format!("/_matrix/federation/v1/timestamp_to_event/{r}?ts=0&dir=f"),
    ] {
        let body = assert_error(fed_get(&remote, &hearth, &path), 403, "M_FORBIDDEN");
        assert!(
            body["error"].as_str().unwrap().contains("not in room"),
            "{path}: {body}"
        );
    }
    let body = json!({ "earliest_events": [], "latest_events": [event] });
    assert_error(
        remote.request(
            &hearth,
            "POST",
            &format!("/_matrix/federation/v1/get_missing_events/{r}"),
            Some(&body),
        ),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn unknown_rooms_and_events_are_not_found() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    let room = room_with_visibility(&hearth, &alice, "world_readable");
    let event = send_text(&hearth, &alice, &room, "t1", "hello");
    let unknown_event = "$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let unknown_room = enc(&format!("!nowhere:{}", hearth.server_name()));
    let e = enc(&event);
    assert_error(
        fed_get(&remote, &hearth, &event_path(unknown_event)),
        404,
        "M_NOT_FOUND",
    );
    for path in [
        format!("/_matrix/federation/v1/state/{unknown_room}?event_id={e}"),
        format!("/_matrix/federation/v1/state_ids/{unknown_room}?event_id={e}"),
        format!("/_matrix/federation/v1/event_auth/{unknown_room}/{e}"),
        format!("/_matrix/federation/v1/backfill/{unknown_room}?v={e}&limit=10"),
        format!("/_matrix/federation/v1/timestamp_to_event/{unknown_room}?ts=0&dir=b"),
    ] {
        assert_error(fed_get(&remote, &hearth, &path), 404, "M_NOT_FOUND");
    }
    let body = json!({ "earliest_events": [], "latest_events": [event] });
    assert_error(
        remote.request(
            &hearth,
            "POST",
            &format!("/_matrix/federation/v1/get_missing_events/{unknown_room}"),
            Some(&body),
        ),
        404,
        "M_NOT_FOUND",
    );
}

#[test]
fn bad_parameters_are_refused_before_anything_is_read() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    let room = room_with_visibility(&hearth, &alice, "world_readable");
    let event = send_text(&hearth, &alice, &room, "t1", "hello");
    let (r, e) = (enc(&room), enc(&event));
    for (path, errcode) in [
        (event_path("not-an-event-id"), "M_INVALID_PARAM"),
        (
            format!("/_matrix/federation/v1/state/not-a-room?event_id={e}"),
            "M_INVALID_PARAM",
        ),
        (
            format!("/_matrix/federation/v1/state/{r}"),
            "M_MISSING_PARAM",
        ),
        (
            format!("/_matrix/federation/v1/state_ids/{r}?event_id=nope"),
            "M_INVALID_PARAM",
        ),
        (
            format!("/_matrix/federation/v1/backfill/{r}?v={e}"),
            "M_MISSING_PARAM",
        ),
        (
            format!("/_matrix/federation/v1/backfill/{r}?v={e}&limit=many"),
            "M_INVALID_PARAM",
        ),
        (
            format!("/_matrix/federation/v1/backfill/{r}?limit=10"),
            "M_MISSING_PARAM",
        ),
        (
            format!("/_matrix/federation/v1/timestamp_to_event/{r}?ts=0&dir=up"),
            "M_INVALID_PARAM",
        ),
        (
            format!("/_matrix/federation/v1/timestamp_to_event/{r}?dir=f"),
            "M_MISSING_PARAM",
        ),
        (
            "/_matrix/federation/v1/query/directory?room_alias=lounge".to_owned(),
            "M_INVALID_PARAM",
        ),
        (
            "/_matrix/federation/v1/user/devices/alice".to_owned(),
            "M_INVALID_PARAM",
        ),
    ] {
        let (status, body) = fed_get(&remote, &hearth, &path);
        assert_eq!(
            (status, body["errcode"].as_str()),
            (400, Some(errcode)),
            "{path}: {body}"
        );
    }
    let missing = format!("/_matrix/federation/v1/get_missing_events/{r}");
    for body in [
        json!({ "earliest_events": [], "latest_events": "not a list" }),
        json!({ "earliest_events": "not a list" }),
        json!({ "earliest_events": [], "latest_events": [event], "limit": -1 }),
    ] {
        assert_error(
            remote.request(&hearth, "POST", &missing, Some(&body)),
            400,
            "M_BAD_JSON",
        );
    }
}

#[test]
fn the_room_endpoints_need_a_signed_request() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    let room = room_with_visibility(&hearth, &alice, "world_readable");
    let event = send_text(&hearth, &alice, &room, "t1", "hello");
    assert_error(
        remote.request_with(&hearth, "GET", &event_path(&event), None, Signing::Unsigned),
        401,
        "M_UNAUTHORIZED",
    );
}

#[test]
fn the_server_acl_shuts_a_denied_server_out() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    let room = room_with_visibility(&hearth, &alice, "world_readable");
    let event = send_text(&hearth, &alice, &room, "t1", "hello");
    served_pdu(&hearth, fed_get(&remote, &hearth, &event_path(&event)));

    // The test servers are all `localhost:PORT`, and ACLs ignore ports, so this denies
    // the remote (and, were it ever asked, this server's own name: ACLs only govern
    // what other servers may do).
    let acl = |deny: &str| json!({ "allow": ["*"], "deny": [deny], "allow_ip_literals": false });
    let (status, body) = put_state(
        &hearth,
        &alice,
        &room,
        "m.room.server_acl",
        "",
        &acl("localhost"),
    );
    assert_eq!(status, 200, "{body}");
    let body = assert_error(
        fed_get(&remote, &hearth, &event_path(&event)),
        403,
        "M_FORBIDDEN",
    );
    assert!(
        body["error"].as_str().unwrap().contains("server ACL"),
        "{body}"
    );
    // The ACL is checked before membership: the refusal says so.
    let (r, e) = (enc(&room), enc(&event));
    let body = assert_error(
        fed_get(
            &remote,
            &hearth,
            &format!("/_matrix/federation/v1/state_ids/{r}?event_id={e}"),
        ),
        403,
        "M_FORBIDDEN",
    );
    assert!(
        body["error"].as_str().unwrap().contains("server ACL"),
        "{body}"
    );

    // Globs match whole host names, case-insensitively.
    let (status, body) = put_state(
        &hearth,
        &alice,
        &room,
        "m.room.server_acl",
        "",
        &acl("*.LOCALHOST"),
    );
    assert_eq!(status, 200, "{body}");
    served_pdu(&hearth, fed_get(&remote, &hearth, &event_path(&event)));
    let (status, body) = put_state(
        &hearth,
        &alice,
        &room,
        "m.room.server_acl",
        "",
        &acl("LOCAL?OST"),
    );
    assert_eq!(status, 200, "{body}");
    assert_error(
        fed_get(&remote, &hearth, &event_path(&event)),
        403,
        "M_FORBIDDEN",
    );
}

#[test]
fn local_aliases_resolve_for_other_servers() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    let room = create_room(&hearth, &alice, json!({ "preset": "public_chat" }));
    let alias = format!("#lounge:{}", hearth.server_name());
    let (status, body) = hearth.send(
        "PUT",
        &format!("/_matrix/client/v3/directory/room/{}", enc(&alias)),
        Some(&alice.token),
        &json!({ "room_id": room }),
    );
    assert_eq!(status, 200, "{body}");
    let query = |alias: &str| {
        fed_get(
            &remote,
            &hearth,
            &format!(
                "/_matrix/federation/v1/query/directory?room_alias={}",
                enc(alias)
            ),
        )
    };
    let (status, body) = query(&alias);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "room_id": room, "servers": [hearth.server_name()] })
    );
    assert_error(
        query(&format!("#nothing:{}", hearth.server_name())),
        404,
        "M_NOT_FOUND",
    );
    assert_error(query("#lounge:elsewhere.example"), 400, "M_INVALID_PARAM");
}

#[test]
fn the_published_directory_is_listed_for_other_servers() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    let mut rooms = Vec::new();
    for name in ["Gardening", "Knitting"] {
        rooms.push(create_room(
            &hearth,
            &alice,
            json!({ "preset": "public_chat", "visibility": "public", "name": name }),
        ));
    }
    create_room(
        &hearth,
        &alice,
        json!({ "preset": "private_chat", "name": "Hidden" }),
    );

    let (status, all) = fed_get(&remote, &hearth, "/_matrix/federation/v1/publicRooms");
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["total_room_count_estimate"], 2, "{all}");
    let mut names: Vec<&str> = all["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Gardening", "Knitting"]);

    // The same pages clients get: one room, then the next with the token.
    let (status, first) = fed_get(
        &remote,
        &hearth,
        "/_matrix/federation/v1/publicRooms?limit=1",
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["chunk"].as_array().unwrap().len(), 1);
    let next = first["next_batch"].as_str().unwrap();
    let (status, second) = fed_get(
        &remote,
        &hearth,
        &format!(
            "/_matrix/federation/v1/publicRooms?limit=1&since={}",
            enc(next)
        ),
    );
    assert_eq!(status, 200, "{second}");
    assert_ne!(first["chunk"][0]["room_id"], second["chunk"][0]["room_id"]);

    let (status, found) = remote.request(
        &hearth,
        "POST",
        "/_matrix/federation/v1/publicRooms",
        Some(&json!({ "filter": { "generic_search_term": "knit" } })),
    );
    assert_eq!(status, 200, "{found}");
    let chunk = found["chunk"].as_array().unwrap();
    assert_eq!(chunk.len(), 1, "{found}");
    assert_eq!(chunk[0]["room_id"], rooms[1]);
    assert_eq!(chunk[0]["name"], "Knitting");

    let (status, none) = remote.request(
        &hearth,
        "POST",
        "/_matrix/federation/v1/publicRooms",
        Some(&json!({ "third_party_instance_id": "irc" })),
    );
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["chunk"], json!([]));
}

#[test]
fn a_local_users_devices_are_listed_without_keys() {
    let hearth = federating_server();
    let remote = TestRemote::start();
    let alice = user(&hearth, "alice");
    let (status, body) = hearth.send(
        "PUT",
        &format!("/_matrix/client/v3/devices/{}", enc(&alice.device)),
        Some(&alice.token),
        &json!({ "display_name": "Alice's laptop" }),
    );
    assert_eq!(status, 200, "{body}");
    let devices = |user_id: &str| {
        fed_get(
            &remote,
            &hearth,
            &format!("/_matrix/federation/v1/user/devices/{}", enc(user_id)),
        )
    };
    let (status, body) = devices(&alice.id);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "user_id": alice.id,
            // The rename is a change of Alice's device list.
            "stream_id": 1,
            "devices": [{ "device_id": alice.device, "device_display_name": "Alice's laptop" }],
        })
    );
    let nobody = format!("@nobody:{}", hearth.server_name());
    let (status, body) = devices(&nobody);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["devices"], json!([]));
    assert_error(devices("@bob:elsewhere.example"), 400, "M_INVALID_PARAM");
}
