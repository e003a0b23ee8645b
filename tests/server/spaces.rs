//! Spaces on one server: `/hierarchy` (order, depth, suggested rooms, who sees what,
//! pagination) and `/room_summary`.

use serde_json::{Value, json};

use crate::harness::{TestServer, assert_error};
use crate::room_support::{User, create_room, enc, join, put_state, user};

fn create_space(server: &TestServer, owner: &User, preset: &str) -> String {
    create_room(
        server,
        owner,
        json!({"preset": preset, "creation_content": {"type": "m.space"}}),
    )
}

#[track_caller]
fn add_child(server: &TestServer, owner: &User, space: &str, child: &str, content: Value) {
    let (status, body) = put_state(server, owner, space, "m.space.child", child, &content);
    assert_eq!(status, 200, "{body}");
}

fn hierarchy(server: &TestServer, user: &User, space: &str, query: &str) -> (u16, Value) {
    server.get(
        &format!("/_matrix/client/v1/rooms/{}/hierarchy{query}", enc(space)),
        Some(&user.token),
    )
}

#[track_caller]
fn room_ids(page: &Value) -> Vec<String> {
    page["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms in {page}"))
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Alice's public space: `first` (order "a"), `second` (order "b", suggested), a
/// subspace holding `deep`, and `hidden`, an invite-only room Bob is not in.
struct Tree {
    alice: User,
    bob: User,
    space: String,
    first: String,
    second: String,
    subspace: String,
    deep: String,
    hidden: String,
}

fn tree(server: &TestServer) -> Tree {
    let alice = user(server, "alice");
    let bob = user(server, "bob");
    let space = create_space(server, &alice, "public_chat");
    let first = create_room(
        server,
        &alice,
        json!({"preset": "public_chat", "name": "First"}),
    );
    let second = create_room(server, &alice, json!({"preset": "public_chat"}));
    let subspace = create_space(server, &alice, "public_chat");
    let deep = create_room(server, &alice, json!({"preset": "public_chat"}));
    let hidden = create_room(
        server,
        &alice,
        json!({"preset": "private_chat", "name": "Hidden"}),
    );
    let via = json!([server.server_name()]);
    // Added in an order unlike the `order` keys: `hidden` and the subspace have none, so
    // they come after, by the time their events were sent.
    add_child(server, &alice, &space, &hidden, json!({"via": via}));
    add_child(
        server,
        &alice,
        &space,
        &second,
        json!({"via": via, "order": "b", "suggested": true}),
    );
    add_child(
        server,
        &alice,
        &space,
        &first,
        json!({"via": via, "order": "a"}),
    );
    add_child(server, &alice, &space, &subspace, json!({"via": via}));
    add_child(server, &alice, &subspace, &deep, json!({"via": via}));
    // A child event without `via` is not a child; a loop back to the space is walked once.
    add_child(server, &alice, &space, &deep, json!({}));
    add_child(server, &alice, &subspace, &space, json!({"via": via}));
    Tree {
        alice,
        bob,
        space,
        first,
        second,
        subspace,
        deep,
        hidden,
    }
}

#[test]
fn hierarchy_walks_the_tree_depth_first_in_the_specs_order() {
    let server = TestServer::start();
    let t = tree(&server);

    let (status, page) = hierarchy(&server, &t.alice, &t.space, "");
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        room_ids(&page),
        [
            t.space.as_str(),
            t.first.as_str(),
            t.second.as_str(),
            t.hidden.as_str(),
            t.subspace.as_str(),
            t.deep.as_str()
        ],
        "{page:#}"
    );
    assert!(page.get("next_batch").is_none(), "{page}");

    let root = &page["rooms"][0];
    assert_eq!(root["room_type"], "m.space");
    assert_eq!(root["join_rule"], "public");
    assert_eq!(root["num_joined_members"], 1);
    let children: Vec<&str> = root["children_state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        children.len(),
        4,
        "the child without via is left out: {root}"
    );
    for child in root["children_state"].as_array().unwrap() {
        assert_eq!(child["type"], "m.space.child");
        assert_eq!(child["sender"], t.alice.id.as_str());
        assert!(child["origin_server_ts"].is_u64(), "{child}");
    }
    let first = &page["rooms"][1];
    assert_eq!(first["name"], "First");
    assert_eq!(first["children_state"], json!([]), "not a space: {first}");
    assert!(first["room_version"].is_string(), "{first}");
    assert!(first.get("room_type").is_none(), "{first}");
}

#[test]
fn hierarchy_shows_others_only_what_they_may_join_or_read() {
    let server = TestServer::start();
    let t = tree(&server);

    let (status, page) = hierarchy(&server, &t.bob, &t.space, "");
    assert_eq!(status, 200, "{page}");
    let ids = room_ids(&page);
    assert!(
        !ids.contains(&t.hidden),
        "Bob may not see the private room: {ids:?}"
    );
    assert_eq!(
        ids,
        [
            t.space.as_str(),
            t.first.as_str(),
            t.second.as_str(),
            t.subspace.as_str(),
            t.deep.as_str()
        ]
    );

    // Once invited, he may.
    let (status, body) = server.post(
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&t.hidden)),
        Some(&t.alice.token),
        &json!({"user_id": t.bob.id}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, page) = hierarchy(&server, &t.bob, &t.space, "");
    assert!(room_ids(&page).contains(&t.hidden), "{page}");

    // A private space is closed to him altogether.
    let private = create_space(&server, &t.alice, "private_chat");
    add_child(
        &server,
        &t.alice,
        &private,
        &t.first,
        json!({"via": [server.server_name()]}),
    );
    assert_error(hierarchy(&server, &t.bob, &private, ""), 403, "M_FORBIDDEN");
    let (status, page) = hierarchy(&server, &t.alice, &private, "");
    assert_eq!(status, 200, "{page}");
    assert_eq!(room_ids(&page), [private.as_str(), t.first.as_str()]);
}

#[test]
fn hierarchy_restricted_rooms_are_shown_to_members_of_the_allowed_room() {
    let server = TestServer::start();
    let t = tree(&server);
    let carol = user(&server, "carol");
    let restricted = create_room(
        &server,
        &t.alice,
        json!({
            "preset": "private_chat",
            "room_version": "10",
            "initial_state": [{
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": t.space}],
                },
            }],
        }),
    );
    add_child(
        &server,
        &t.alice,
        &t.space,
        &restricted,
        json!({"via": [server.server_name()], "order": "0"}),
    );
    join(&server, &t.bob, &t.space);
    let (_, page) = hierarchy(&server, &t.bob, &t.space, "");
    assert_eq!(room_ids(&page)[1], restricted, "{page}");
    assert_eq!(page["rooms"][1]["join_rule"], "restricted");
    assert_eq!(page["rooms"][1]["allowed_room_ids"], json!([t.space]));

    // Carol is not in the space: she may see the space but not the restricted room.
    let (_, page) = hierarchy(&server, &carol, &t.space, "");
    assert!(!room_ids(&page).contains(&restricted), "{page}");
}

#[test]
fn hierarchy_depth_and_suggested_only() {
    let server = TestServer::start();
    let t = tree(&server);

    let (_, page) = hierarchy(&server, &t.alice, &t.space, "?max_depth=0");
    assert_eq!(room_ids(&page), [t.space.as_str()]);
    let (_, page) = hierarchy(&server, &t.alice, &t.space, "?max_depth=1");
    assert_eq!(
        room_ids(&page),
        [
            t.space.as_str(),
            t.first.as_str(),
            t.second.as_str(),
            t.hidden.as_str(),
            t.subspace.as_str()
        ]
    );
    let (_, page) = hierarchy(&server, &t.alice, &t.space, "?suggested_only=true");
    assert_eq!(room_ids(&page), [t.space.as_str(), t.second.as_str()]);
}

#[test]
fn hierarchy_paginates_without_repeating_rooms() {
    let server = TestServer::start();
    let t = tree(&server);

    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    for _ in 0..10 {
        let (status, page) = hierarchy(&server, &t.alice, &t.space, &query);
        assert_eq!(status, 200, "{page}");
        let ids = room_ids(&page);
        assert!(ids.len() <= 2, "{page}");
        seen.extend(ids);
        match page["next_batch"].as_str() {
            Some(next) => query = format!("?limit=2&from={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            t.space.as_str(),
            t.first.as_str(),
            t.second.as_str(),
            t.hidden.as_str(),
            t.subspace.as_str(),
            t.deep.as_str()
        ]
    );

    // A token belongs to its walk: other options, another user, or a made-up token fail.
    let (_, page) = hierarchy(&server, &t.alice, &t.space, "?limit=1");
    let next = page["next_batch"].as_str().unwrap().to_owned();
    assert_error(
        hierarchy(
            &server,
            &t.alice,
            &t.space,
            &format!("?from={next}&suggested_only=true"),
        ),
        400,
        "M_INVALID_PARAM",
    );
    let (_, page) = hierarchy(&server, &t.alice, &t.space, "?limit=1");
    let next = page["next_batch"].as_str().unwrap().to_owned();
    assert_error(
        hierarchy(&server, &t.bob, &t.space, &format!("?from={next}")),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        hierarchy(&server, &t.alice, &t.space, "?from=nonsense"),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        hierarchy(&server, &t.alice, &t.space, "?limit=0"),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        hierarchy(&server, &t.alice, &t.space, "?max_depth=-1"),
        400,
        "M_INVALID_PARAM",
    );
    assert_error(
        hierarchy(&server, &t.alice, "!unknown:localhost", ""),
        403,
        "M_FORBIDDEN",
    );
    assert_error(
        server.get(
            &format!("/_matrix/client/v1/rooms/{}/hierarchy", enc(&t.space)),
            None,
        ),
        401,
        "M_MISSING_TOKEN",
    );
}

#[test]
fn room_summary_by_id_and_alias_with_membership() {
    let server = TestServer::start();
    let t = tree(&server);
    let (status, body) = server.send(
        "PUT",
        &format!(
            "/_matrix/client/v3/directory/room/{}",
            enc(&format!("#first:{}", server.server_name()))
        ),
        Some(&t.alice.token),
        &json!({"room_id": t.first}),
    );
    assert_eq!(status, 200, "{body}");

    let path = |room: &str| format!("/_matrix/client/v1/room_summary/{}", enc(room));
    let (status, summary) = server.get(&path(&t.first), Some(&t.alice.token));
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["room_id"], t.first.as_str());
    assert_eq!(summary["name"], "First");
    assert_eq!(summary["membership"], "join");
    assert_eq!(summary["join_rule"], "public");
    assert_eq!(summary["num_joined_members"], 1);
    assert!(summary.get("children_state").is_none(), "{summary}");

    let alias = format!("#first:{}", server.server_name());
    let (status, by_alias) = server.get(&path(&alias), Some(&t.bob.token));
    assert_eq!(status, 200, "{by_alias}");
    assert_eq!(by_alias["room_id"], t.first.as_str());
    assert_eq!(by_alias["membership"], "leave");

    // Anyone may look at a public room without a token, and nobody outside at a
    // private one.
    let (status, anonymous) = server.get(&path(&t.first), None);
    assert_eq!(status, 200, "{anonymous}");
    assert!(anonymous.get("membership").is_none(), "{anonymous}");
    assert_error(server.get(&path(&t.hidden), None), 404, "M_NOT_FOUND");
    assert_error(
        server.get(&path(&t.hidden), Some(&t.bob.token)),
        404,
        "M_NOT_FOUND",
    );
    let (status, own) = server.get(&path(&t.hidden), Some(&t.alice.token));
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["join_rule"], "invite");
    assert_error(
        server.get(&path("!nowhere:localhost"), Some(&t.alice.token)),
        404,
        "M_NOT_FOUND",
    );
}
