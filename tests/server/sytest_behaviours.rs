//! Behaviours where clients (and SyTest) expect what Synapse does: repeated state and
//! joins, kicks of absent users, capabilities, reading world-readable rooms.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::*;

fn messages(server: &TestServer, user: &User, room: &str) -> Vec<Value> {
    let (status, body) = server.get(
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
            enc(room)
        ),
        Some(&user.token),
    );
    assert_eq!(status, 200, "{body}");
    body["chunk"].as_array().unwrap().clone()
}

#[test]
fn identical_state_and_repeated_joins_add_no_event() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let topic = json!({ "topic": "same" });
    let (status, first) = put_state(&server, &alice, &room, "m.room.topic", "", &topic);
    assert_eq!(status, 200, "{first}");
    let before = messages(&server, &alice, &room).len();
    let (_, again) = put_state(&server, &alice, &room, "m.room.topic", "", &topic);
    assert_eq!(again["event_id"], first["event_id"]);
    let (_, join_again) = membership(&server, &bob, &room, "join", json!({}));
    assert_eq!(join_again["room_id"], room);
    assert_eq!(messages(&server, &alice, &room).len(), before);
    // Different content, or the same content from someone else, is a new event.
    let (_, changed) = put_state(
        &server,
        &alice,
        &room,
        "m.room.topic",
        "",
        &json!({ "topic": "new" }),
    );
    assert_ne!(changed["event_id"], first["event_id"]);
    set_power(&server, &alice, &room, &bob.id, 100);
    let (_, by_bob) = put_state(
        &server,
        &bob,
        &room,
        "m.room.topic",
        "",
        &json!({ "topic": "new" }),
    );
    assert_ne!(by_bob["event_id"], changed["event_id"]);
}

#[test]
fn kicking_someone_not_in_the_room_is_forbidden() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let carol = user(&server, "carol");
    assert_error(
        membership(
            &server,
            &alice,
            &room,
            "kick",
            json!({ "user_id": carol.id }),
        ),
        403,
        "M_FORBIDDEN",
    );
    let (status, _) = membership(&server, &alice, &room, "kick", json!({ "user_id": bob.id }));
    assert_eq!(status, 200);
    assert_error(
        membership(&server, &alice, &room, "kick", json!({ "user_id": bob.id })),
        403,
        "M_FORBIDDEN",
    );
    // Banning someone who is not there stays possible.
    let (status, _) = membership(
        &server,
        &alice,
        &room,
        "ban",
        json!({ "user_id": carol.id }),
    );
    assert_eq!(status, 200);
}

#[test]
fn capabilities_list_the_room_versions_and_versions_the_spec_releases() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let (status, body) = server.get("/_matrix/client/v3/capabilities", Some(&alice.token));
    assert_eq!(status, 200);
    let versions = &body["capabilities"]["m.room_versions"];
    assert_eq!(versions["default"], "12");
    for v in ["10", "11", "12"] {
        assert_eq!(versions["available"][v], "stable", "{body}");
    }
    let (_, body) = server.get("/_matrix/client/versions", None);
    let list = body["versions"].as_array().unwrap();
    assert!(list.contains(&json!("v1.16")), "{body}");
}

#[test]
fn world_readable_state_is_readable_by_non_members() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let outsider = user(&server, "olive");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    put_state(
        &server,
        &alice,
        &room,
        "m.room.topic",
        "",
        &json!({ "topic": "hi" }),
    );
    assert_error(
        get_state(&server, &outsider, &room, "m.room.topic", ""),
        403,
        "M_FORBIDDEN",
    );
    put_state(
        &server,
        &alice,
        &room,
        "m.room.history_visibility",
        "",
        &json!({ "history_visibility": "world_readable" }),
    );
    let (status, topic) = get_state(&server, &outsider, &room, "m.room.topic", "");
    assert_eq!((status, &topic["topic"]), (200, &json!("hi")));
    let (status, all) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/state", enc(&room)),
        Some(&outsider.token),
    );
    assert_eq!(status, 200);
    assert!(all.as_array().unwrap().len() > 3);
    let (status, members) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/members", enc(&room)),
        Some(&outsider.token),
    );
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["chunk"].as_array().unwrap().len(), 1);
}

#[test]
fn registration_lowercases_names_and_remembers_its_first_request() {
    let server = TestServer::start();
    let (status, body) = server.post(
        "/_matrix/client/v3/register",
        None,
        &json!({ "username": "Upper-Case", "password": "sUp3rs3kr1t",
                 "auth": { "type": "m.login.dummy" } }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["user_id"],
        format!("@upper-case:{}", server.server_name())
    );

    // The first request gives the parameters; the next gives only the auth stage.
    let (status, challenge) = server.post(
        "/_matrix/client/v3/register",
        None,
        &json!({ "username": "remembered", "password": "sUp3rs3kr1t", "inhibit_login": true }),
    );
    assert_eq!(status, 401);
    let auth = json!({ "auth": { "type": "m.login.dummy", "session": challenge["session"] } });
    let (status, first) = server.post("/_matrix/client/v3/register", None, &auth);
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["user_id"],
        format!("@remembered:{}", server.server_name())
    );
    assert!(first.get("access_token").is_none(), "{first}");
    // Repeating the finished request answers with the same account.
    let (status, again) = server.post("/_matrix/client/v3/register", None, &auth);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["user_id"], first["user_id"]);
    // Without a session, a taken name is still refused.
    assert_error(
        server.post(
            "/_matrix/client/v3/register",
            None,
            &json!({ "username": "remembered", "password": "sUp3rs3kr1t",
                     "auth": { "type": "m.login.dummy" } }),
        ),
        400,
        "M_USER_IN_USE",
    );
}

#[test]
fn push_rule_ids_and_paths_as_synapse_accepts_them() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let (status, body) = server.send(
        "PUT",
        "/_matrix/client/v3/pushrules/global/room/%23spam:example.com",
        Some(&alice.token),
        &json!({ "actions": ["notify"] }),
    );
    assert_eq!(status, 200, "{body}");
    let (status, rooms) = server.get(
        "/_matrix/client/v3/pushrules/global/room/",
        Some(&alice.token),
    );
    assert_eq!(status, 200, "{rooms}");
    assert_eq!(rooms[0]["rule_id"], "#spam:example.com", "{rooms}");
    for (method, path) in [
        ("PUT", "/_matrix/client/v3/pushrules/"),
        ("PUT", "/_matrix/client/v3/pushrules/global/room/"),
        ("PUT", "/_matrix/client/v3/pushrules/not_a_scope/room/x"),
        ("GET", "/_matrix/client/v3/pushrules/global"),
        ("GET", "/_matrix/client/v3/pushrules/global/room"),
        ("GET", "/_matrix/client/v3/pushrules/global/not_a_kind/"),
        (
            "GET",
            "/_matrix/client/v3/pushrules/global/override/.m.rule.master/not_an_attr",
        ),
    ] {
        let (status, body) = server.send(method, path, Some(&alice.token), &json!({}));
        assert_eq!(status, 400, "{method} {path}: {body}");
    }
    assert_eq!(
        server
            .get("/_matrix/client/v3/pushrules", Some(&alice.token))
            .0,
        404
    );
}

#[test]
fn posting_a_message_without_a_transaction_id_sends_it() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({}));
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message",
        enc(&room)
    );
    let body = json!({ "msgtype": "m.text", "body": "hi" });
    let (status, first) = server.post(&path, Some(&alice.token), &body);
    assert_eq!(status, 200, "{first}");
    let (_, second) = server.post(&path, Some(&alice.token), &body);
    assert_ne!(first["event_id"], second["event_id"]);
}

#[test]
fn ignored_users_messages_and_invites_leave_sync() {
    let server = TestServer::start();
    let (alice, bob, room) = alice_and_bob_in_a_room(&server);
    let (status, _) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/user/{}/account_data/m.ignored_user_list",
            enc(&bob.id)
        ),
        Some(&bob.token),
        &json!({ "ignored_users": { (alice.id.clone()): {} } }),
    );
    assert_eq!(status, 200);
    send_text(&server, &alice, &room, "t1", "ignored");
    let carol = user(&server, "carol");
    join(&server, &carol, &room);
    send_text(&server, &carol, &room, "t2", "heard");
    let other = create_room(&server, &alice, json!({}));
    invite(&server, &alice, &other, &bob);
    let (status, body) = server.get("/_matrix/client/v3/sync", Some(&bob.token));
    assert_eq!(status, 200);
    let timeline = body["rooms"]["join"][&room]["timeline"]["events"]
        .as_array()
        .unwrap();
    let bodies: Vec<&Value> = timeline
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| &e["content"]["body"])
        .collect();
    assert_eq!(bodies, vec![&json!("heard")], "{body}");
    // Alice's state (her join) stays.
    assert!(
        timeline
            .iter()
            .any(|e| e["sender"] == alice.id && e.get("state_key").is_some())
            || body["rooms"]["join"][&room]["state"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["state_key"] == alice.id)
    );
    assert!(body["rooms"]["invite"].get(&other).is_none(), "{body}");
}

#[test]
fn joined_members_always_carry_both_profile_keys() {
    let server = TestServer::start();
    let (alice, _bob, room) = alice_and_bob_in_a_room(&server);
    let (status, body) = server.get(
        &format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room)),
        Some(&alice.token),
    );
    assert_eq!(status, 200);
    let me = &body["joined"][&alice.id];
    assert_eq!(me["display_name"], "alice", "{body}");
    assert_eq!(me.get("avatar_url"), Some(&Value::Null), "{body}");
}
