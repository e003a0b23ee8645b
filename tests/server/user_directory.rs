//! The user directory: room-mates and members of open rooms can be found, by user ID or
//! display name; strangers in private rooms and deactivated users cannot.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::profile::{deactivate, set_field};
use crate::room_support::*;

const SEARCH: &str = "/_matrix/client/v3/user_directory/search";

#[track_caller]
fn search(server: &TestServer, searcher: &User, body: Value) -> Value {
    let (status, body) = server.post(SEARCH, Some(&searcher.token), &body);
    assert_eq!(status, 200, "{body}");
    assert!(body["limited"].is_boolean(), "{body}");
    body
}

/// The user IDs a search for `term` finds, in the order given.
#[track_caller]
fn found(server: &TestServer, searcher: &User, term: &str) -> Vec<String> {
    search(server, searcher, json!({ "search_term": term }))["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn room_mates_and_members_of_public_rooms_are_found_strangers_are_not() {
    let mut server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let carol = user(&server, "carol");
    let dave = user(&server, "dave");
    let erin = user(&server, "erin");
    set_field(&server, &bob, "displayname", json!("Robert Tables"));
    let avatar = format!("mxc://{}/bobby", server.server_name());
    set_field(&server, &bob, "avatar_url", json!(avatar));
    // Bob shares a private room with alice; carol is in a public room alice is not in;
    // dave is alone in a private room; erin is in no room at all.
    let shared = create_room(&server, &alice, json!({ "preset": "private_chat" }));
    invite(&server, &alice, &shared, &bob);
    join(&server, &bob, &shared);
    create_room(&server, &carol, json!({ "preset": "public_chat" }));
    create_room(&server, &dave, json!({ "preset": "private_chat" }));

    let results = search(&server, &alice, json!({ "search_term": "tab" }));
    assert_eq!(
        results,
        json!({
            "results": [{ "user_id": bob.id, "display_name": "Robert Tables", "avatar_url": avatar }],
            "limited": false,
        })
    );
    assert_eq!(found(&server, &alice, "ROB"), vec![bob.id.as_str()]);
    assert_eq!(found(&server, &alice, "robert tab"), vec![bob.id.as_str()]);
    assert_eq!(found(&server, &alice, &bob.id), vec![bob.id.as_str()]);
    assert_eq!(found(&server, &alice, "carol"), vec![carol.id.as_str()]);
    assert!(found(&server, &alice, "dave").is_empty());
    assert!(found(&server, &alice, "erin").is_empty());
    // Erin finds the public room's member, but not alice's room-mate.
    assert_eq!(found(&server, &erin, "car"), vec![carol.id.as_str()]);
    assert!(found(&server, &erin, "bob").is_empty());
    // A word in the middle of a name is not a prefix of it.
    assert!(found(&server, &alice, "ables").is_empty());
    // Someone only in private rooms does not find themselves (as Synapse); a member of
    // an open room does.
    assert!(found(&server, &dave, "dave").is_empty());
    assert_eq!(found(&server, &carol, "carol"), vec![carol.id.as_str()]);

    // What is open is known again after a restart.
    server.kill_9();
    server.restart();
    assert_eq!(found(&server, &erin, "carol"), vec![carol.id.as_str()]);
}

#[test]
fn closing_or_opening_a_room_changes_who_can_be_found() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let carol = user(&server, "carol");
    let dave = user(&server, "dave");
    let carols = create_room(&server, &carol, json!({ "preset": "public_chat" }));
    let daves = create_room(&server, &dave, json!({ "preset": "private_chat" }));
    assert_eq!(found(&server, &alice, "carol"), vec![carol.id.as_str()]);
    assert!(found(&server, &alice, "dave").is_empty());

    let (status, body) = put_state(
        &server,
        &carol,
        &carols,
        "m.room.join_rules",
        "",
        &json!({ "join_rule": "invite" }),
    );
    assert_eq!(status, 200, "{body}");
    assert!(found(&server, &alice, "carol").is_empty());
    // World-readable history opens a room's members to the directory as well.
    let (status, body) = put_state(
        &server,
        &dave,
        &daves,
        "m.room.history_visibility",
        "",
        &json!({ "history_visibility": "world_readable" }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(found(&server, &alice, "dave"), vec![dave.id.as_str()]);
}

#[test]
fn results_are_ranked_and_limited() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    let mut members = Vec::new();
    for i in 0..12 {
        let member = user(&server, &format!("member{i:02}"));
        join(&server, &member, &room);
        members.push(member);
    }
    set_field(&server, &members[7], "displayname", json!("Member"));
    let body = search(&server, &alice, json!({ "search_term": "member" }));
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 10, "{body}");
    assert_eq!(body["limited"], true);
    // An exact display name ranks first.
    assert_eq!(results[0]["user_id"], members[7].id);
    let body = search(
        &server,
        &alice,
        json!({ "search_term": "member", "limit": 20 }),
    );
    assert_eq!(body["results"].as_array().unwrap().len(), 12);
    assert_eq!(body["limited"], false);
    let body = search(
        &server,
        &alice,
        json!({ "search_term": "member1", "limit": 1 }),
    );
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    assert_eq!(body["limited"], true);
    let body = search(&server, &alice, json!({ "search_term": "   " }));
    assert_eq!(body, json!({ "results": [], "limited": false }));
}

#[test]
fn deactivated_users_vanish_from_the_directory() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    let bob = user(&server, "bob");
    let room = create_room(&server, &alice, json!({ "preset": "public_chat" }));
    join(&server, &bob, &room);
    set_field(&server, &bob, "displayname", json!("Bobby"));
    assert_eq!(found(&server, &alice, "bobby"), vec![bob.id.as_str()]);
    deactivate(&server, &bob);
    for term in ["bobby", "bob", bob.id.as_str()] {
        assert!(found(&server, &alice, term).is_empty(), "{term}");
    }
}

#[test]
fn bad_searches_get_matrix_errors() {
    let server = TestServer::start();
    let alice = user(&server, "alice");
    assert_error(
        server.post(SEARCH, None, &json!({ "search_term": "a" })),
        401,
        "M_MISSING_TOKEN",
    );
    assert_error(
        server.post(SEARCH, Some(&alice.token), &json!({})),
        400,
        "M_MISSING_PARAM",
    );
    assert_error(
        server.post(SEARCH, Some(&alice.token), &json!({ "search_term": 5 })),
        400,
        "M_BAD_JSON",
    );
    assert_error(
        server.post(
            SEARCH,
            Some(&alice.token),
            &json!({ "search_term": "a", "limit": -1 }),
        ),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        server.post(
            SEARCH,
            Some(&alice.token),
            &json!({ "search_term": "a", "limit": "ten" }),
        ),
        400,
        "M_BAD_JSON",
    );
}
