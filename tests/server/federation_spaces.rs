//! Spaces across servers: `/hierarchy` for other servers, and a client's walk that asks
//! the space's server about rooms its own server is not in.

use serde_json::{Value, json};

use crate::federation_rooms::{join_via, two_servers};
use crate::federation_support::{TestRemote, federating_server};
use crate::harness::{TestServer, assert_error};
use crate::room_support::{User, create_room, enc, put_state, user};

#[track_caller]
fn add_child(server: &TestServer, owner: &User, space: &str, child: &str, order: &str) {
    let content = json!({"via": [server.server_name()], "order": order});
    let (status, body) = put_state(server, owner, space, "m.space.child", child, &content);
    assert_eq!(status, 200, "{body}");
}

fn space(server: &TestServer, owner: &User, preset: &str) -> String {
    create_room(
        server,
        owner,
        json!({"preset": preset, "room_version": "12", "creation_content": {"type": "m.space"}}),
    )
}

/// Alice's space on `a`: `lobby` (public), `secret` (invite only) and `nested`, a public
/// subspace holding `deep`.
struct Tree {
    alice: User,
    space: String,
    lobby: String,
    secret: String,
    nested: String,
    deep: String,
}

fn tree(a: &TestServer) -> Tree {
    let alice = user(a, "alice");
    let space = space(a, &alice, "public_chat");
    let lobby = create_room(
        a,
        &alice,
        json!({"preset": "public_chat", "name": "Lobby", "room_version": "12"}),
    );
    let secret = create_room(a, &alice, json!({"preset": "private_chat"}));
    let nested = self::space(a, &alice, "public_chat");
    let deep = create_room(a, &alice, json!({"preset": "public_chat", "name": "Deep"}));
    add_child(a, &alice, &space, &lobby, "1");
    add_child(a, &alice, &space, &secret, "2");
    add_child(a, &alice, &space, &nested, "3");
    add_child(a, &alice, &nested, &deep, "1");
    Tree {
        alice,
        space,
        lobby,
        secret,
        nested,
        deep,
    }
}

fn ids(rooms: &Value) -> Vec<String> {
    rooms
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {rooms}"))
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn another_server_gets_a_space_and_its_children_one_level_deep() {
    let a = federating_server();
    let t = tree(&a);
    let remote = TestRemote::start();

    let path = |room: &str| format!("/_matrix/federation/v1/hierarchy/{}", enc(room));
    let (status, answer) = remote.request(&a, "GET", &path(&t.space), None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["room"]["room_id"], t.space.as_str());
    assert_eq!(answer["room"]["room_type"], "m.space");
    assert_eq!(
        answer["room"]["children_state"].as_array().unwrap().len(),
        3
    );
    assert_eq!(
        ids(&answer["children"]),
        [t.lobby.as_str(), t.nested.as_str()]
    );
    assert_eq!(answer["inaccessible_children"], json!([t.secret]));
    assert_eq!(answer["children"][0]["name"], "Lobby");

    // The invite-only room itself is as unknown to the remote as a room that does not exist.
    assert_error(
        remote.request(&a, "GET", &path(&t.secret), None),
        404,
        "M_NOT_FOUND",
    );
    assert_error(
        remote.request(&a, "GET", &path("!nothing:example.org"), None),
        404,
        "M_NOT_FOUND",
    );
    let (status, answer) = remote.request(
        &a,
        "GET",
        &format!("{}?suggested_only=true", path(&t.space)),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["children"], json!([]));
}

#[test]
fn a_walk_asks_the_spaces_server_about_rooms_its_own_server_is_not_in() {
    let (a, b) = two_servers();
    let t = tree(&a);
    let bob = user(&b, "bob");
    let (status, body) = join_via(&b, &bob, &t.space, &a.server_name());
    assert_eq!(status, 200, "{body}");

    let (status, page) = b.get(
        &format!("/_matrix/client/v1/rooms/{}/hierarchy", enc(&t.space)),
        Some(&bob.token),
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        ids(&page["rooms"]),
        [
            t.space.as_str(),
            t.lobby.as_str(),
            t.nested.as_str(),
            t.deep.as_str()
        ],
        "the invite-only room stays hidden: {page:#}"
    );
    let rooms = page["rooms"].as_array().unwrap();
    assert_eq!(rooms[1]["name"], "Lobby");
    assert_eq!(rooms[1]["num_joined_members"], 1);
    assert_eq!(rooms[2]["room_type"], "m.space");
    assert_eq!(rooms[2]["children_state"].as_array().unwrap().len(), 1);
    assert_eq!(rooms[3]["name"], "Deep");

    // Alice sees her own server's full tree, the invite-only room included.
    let (_, page) = a.get(
        &format!("/_matrix/client/v1/rooms/{}/hierarchy", enc(&t.space)),
        Some(&t.alice.token),
    );
    assert_eq!(
        ids(&page["rooms"]),
        [
            t.space.as_str(),
            t.lobby.as_str(),
            t.secret.as_str(),
            t.nested.as_str(),
            t.deep.as_str()
        ]
    );

    // A room B is not in is summarised by asking A.
    let (status, summary) = b.get(
        &format!(
            "/_matrix/client/v1/room_summary/{}?via={}",
            enc(&t.lobby),
            enc(&a.server_name())
        ),
        Some(&bob.token),
    );
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["name"], "Lobby");
    assert_eq!(summary["membership"], "leave");
    assert_error(
        b.get(
            &format!(
                "/_matrix/client/v1/room_summary/{}?via={}",
                enc(&t.secret),
                enc(&a.server_name())
            ),
            Some(&bob.token),
        ),
        404,
        "M_NOT_FOUND",
    );
}
